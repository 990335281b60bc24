"""Cross-field rules of event filtering (a mapping's ``filter``, docs/model.md §15).

A pattern names attributes of its source's traffic (``traffic.attributes``) and values of them; a
filter on an SQS queue needs the queue to have that one mapping (which of several mappings
receives a message decides whether it is filtered, and esmsim does not model that race).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping

from esmsim.errors import Issue, did_you_mean
from esmsim.scenario.mappings import FILTERS_DEFAULT_QUOTA, EventFilter, SqsMapping
from esmsim.scenario.system import System

#: AWS: a filter pattern is at most 4,096 characters (FilterCriteria.Filters[].Pattern).
PATTERN_MAX_CHARS = 4096


def _steps(where: str) -> tuple[str | int, ...]:
    """``"patterns[1]"`` as key steps (``("patterns", 1)``); ``"pattern"`` as itself."""
    if "[" not in where:
        return (where,)
    name, index = where.rstrip("]").split("[")
    return (name, int(index))


def match_share(spec: EventFilter, attributes: Mapping[str, Mapping[str, float]]) -> float:
    """The share of records ``spec`` lets through, given the source's attribute shares.

    Attributes are drawn independently per record; several patterns match when any does, so their
    union is counted by inclusion and exclusion (at most 2**10 terms).
    """
    share = 1.0 if spec.match_rate is None else float(spec.match_rate)
    patterns = [p for _, p in spec.named_patterns()]
    if not patterns:
        return share
    union = 0.0
    for size in range(1, len(patterns) + 1):
        for chosen in itertools.combinations(patterns, size):
            both = 1.0  # every chosen pattern matches: per attribute, a value all of them list
            for name in {n for p in chosen for n in p}:
                wanted = set.intersection(*(set(p[name]) for p in chosen if name in p))
                both *= sum(part for value, part in attributes.get(name, {}).items() if value in wanted)
            union += both if size % 2 else -both
    return share * union


def filter_rules(s: System) -> Iterator[Issue]:
    """A pattern's attributes and values exist on its source; a filtered queue has one mapping."""
    for i, m in enumerate(s.mappings):
        spec = m.filter
        source = s.sources.get(m.source)
        if spec is None or source is None:
            continue
        traffic = getattr(source, "traffic", None)
        attributes = {} if traffic is None else traffic.attributes
        declared = ", ".join(sorted(attributes)) or "none declared"
        for where, pattern in spec.named_patterns():
            for name, values in pattern.items():
                at = ("mappings", i, "filter", *_steps(where), name)
                if name not in attributes:
                    yield Issue(
                        at,
                        f"{name!r} is not an attribute of the traffic of source {m.source!r} "
                        f"(allowed: its traffic.attributes: {declared})"
                        + did_you_mean(name, list(attributes)),
                    )
                    continue
                known = attributes[name]
                for value in values:
                    if value not in known:
                        yield Issue(
                            at,
                            f"{value!r} is not a value of attribute {name!r} of source {m.source!r} "
                            f"(allowed: {', '.join(map(repr, known))})",
                        )
            chars = len(json.dumps({name: list(values) for name, values in pattern.items()}))
            if chars > PATTERN_MAX_CHARS:
                yield Issue(
                    ("mappings", i, "filter", *_steps(where)),
                    f"the pattern is {chars} characters as JSON (allowed: at most {PATTERN_MAX_CHARS})",
                )
        if spec.patterns is not None and len(spec.patterns) > FILTERS_DEFAULT_QUOTA:
            yield Issue(
                ("mappings", i, "filter", "patterns"),
                f"{len(spec.patterns)} filters: AWS allows {FILTERS_DEFAULT_QUOTA} a mapping unless the "
                "account's quota is raised (Service Quotas, up to 10)",
                "warning",
            )
        if isinstance(m, SqsMapping):
            readers = [j for j, other in enumerate(s.mappings) if other.source == m.source]
            if len(readers) > 1:
                others = ", ".join(f"mappings[{j}]" for j in readers if j != i)
                yield Issue(
                    ("mappings", i, "filter"),
                    f"queue {m.source!r} is also read by {others}: which mapping receives a message decides "
                    "whether its filter deletes it, which esmsim does not model (allowed: a filter on a "
                    "queue's only mapping)",
                )
