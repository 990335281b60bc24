"""Cross-field rules of event filtering (a mapping's ``filter``, docs/model.md §15).

A pattern names attributes of its source's traffic (``traffic.attributes``) and values of them; a
filter on an SQS queue needs the queue to have that one mapping (which of several mappings
receives a message decides whether it is filtered, and esmsim does not model that race).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from esmsim.errors import Issue, did_you_mean
from esmsim.scenario.mappings import SqsMapping
from esmsim.scenario.system import System

#: AWS: a filter pattern is at most 4,096 characters (FilterCriteria.Filters[].Pattern).
PATTERN_MAX_CHARS = 4096


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
        for name, values in (spec.pattern or {}).items():
            at = ("mappings", i, "filter", "pattern", name)
            if name not in attributes:
                yield Issue(
                    at,
                    f"{name!r} is not an attribute of the traffic of source {m.source!r} "
                    f"(allowed: its traffic.attributes: {declared})" + did_you_mean(name, list(attributes)),
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
        if spec.pattern is not None:
            chars = len(json.dumps({name: list(values) for name, values in spec.pattern.items()}))
            if chars > PATTERN_MAX_CHARS:
                yield Issue(
                    ("mappings", i, "filter", "pattern"),
                    f"the pattern is {chars} characters as JSON (allowed: at most {PATTERN_MAX_CHARS})",
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
