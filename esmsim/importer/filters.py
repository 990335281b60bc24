"""A mapping's FilterCriteria read into esmsim's ``filter`` (docs/model.md §15).

AWS matches each record against JSON patterns; esmsim draws per record what a pattern would
decide. A single pattern whose every field lists plain values (``{"body": {"kind": ["a", "b"]}}``)
becomes ``filter.pattern`` on attributes of the source's traffic: one attribute per field, the
listed values plus ``(other)``, with placeholder shares the user replaces by measured ones; several
such patterns (AWS ORs them) become ``filter.patterns``. What esmsim cannot draw as attribute values
(content filters such as ``prefix`` or ``numeric``) becomes a placeholder ``match_rate``, and the
reason is listed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

#: Share of records a placeholder filter lets through, and the placeholder share of ``(other)``.
PLACEHOLDER_MATCH_RATE = 0.5
#: The value standing for every value a pattern does not list.
OTHER = "(other)"
#: The record's envelope: where each source puts its payload, not a field of it.
_ENVELOPE = {"body", "data", "dynamodb", "value", "NewImage", "OldImage", "Keys"}
#: DynamoDB's attribute-value types: the value's type, not a field's name.
_DYNAMODB_TYPES = {"S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS", "L", "M"}


@dataclass
class ImportedFilter:
    """What one mapping's FilterCriteria became."""

    filter: dict[str, Any]  # the mapping's `filter`
    fields: dict[str, list[str]] = field(default_factory=dict)  # attribute -> the record field's path
    values: dict[str, list[str]] = field(default_factory=dict)  # attribute -> the values it lists
    why_rate: str | None = None  # why it is a placeholder match_rate, when it is one


def read_filter_criteria(criteria: Any) -> ImportedFilter | str:
    """The ``filter`` a FilterCriteria stands for, or why it cannot be read (one phrase)."""
    filters = criteria.get("Filters") if isinstance(criteria, dict) else None
    if not isinstance(filters, list) or not filters:
        return "no Filters list"
    patterns: list[dict[str, Any]] = []
    for i, item in enumerate(filters):
        raw = item.get("Pattern") if isinstance(item, dict) else None
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError as exc:
                return f"Filters[{i}].Pattern is not JSON ({exc.msg} at character {exc.pos})"
        if not isinstance(raw, dict):
            return f"Filters[{i}].Pattern is not a JSON object"
        patterns.append(raw)
    rate = ImportedFilter({"match_rate": PLACEHOLDER_MATCH_RATE})
    every: list[list[tuple[list[str], list[Any]]]] = []  # per pattern, its (field path, values)
    for i, pattern in enumerate(patterns):
        leaves: list[tuple[list[str], list[Any]]] = []
        problem = _leaves(pattern, [], leaves)
        if problem is None and not leaves:  # `{}` matches every record
            problem = "an empty pattern"
        if problem is not None:
            rate.why_rate = problem if len(patterns) == 1 else f"Filters[{i}]: {problem}"
            return rate
        every.append(leaves)
    return _as_attributes(every)


def _leaves(node: Any, path: list[str], out: list[tuple[list[str], list[Any]]]) -> str | None:
    """Collect ``(field path, values)`` of a pattern; the first thing that is not a plain value list."""
    for key, value in node.items():
        where = [*path, str(key)]
        if isinstance(value, dict):
            problem = _leaves(value, where, out)
            if problem is not None:
                return problem
        elif isinstance(value, list) and value:
            rules = [v for v in value if isinstance(v, (dict, list))]
            if rules:
                operator = next(iter(rules[0]), "a nested list") if isinstance(rules[0], dict) else "a list"
                return f"{'.'.join(where)} uses {operator!r}, a content filter esmsim draws only as a share"
            out.append((where, value))
        else:
            return f"{'.'.join(where)} is not a list of values"
    return None


def _as_attributes(patterns: list[list[tuple[list[str], list[Any]]]]) -> ImportedFilter:
    """One attribute per field, named by its last meaningful step (the whole path if two clash)."""
    paths = list(dict.fromkeys(tuple(path) for leaves in patterns for path, _ in leaves))
    steps = [[s for s in path if s not in _ENVELOPE] for path in paths]
    steps = [s[:-1] if len(s) > 1 and s[-1] in _DYNAMODB_TYPES else s or ["field"] for s in steps]
    short = [s[-1] for s in steps]
    names = {
        path: name if short.count(name) == 1 else "_".join(s)
        for path, name, s in zip(paths, short, steps, strict=True)
    }
    out = ImportedFilter({})
    written: list[dict[str, list[str]]] = []
    for leaves in patterns:
        pattern: dict[str, list[str]] = {}
        for path, values in leaves:
            name = names[tuple(path)]
            listed = list(dict.fromkeys(_text(v) for v in values))
            pattern[name] = listed
            out.fields[name] = path
            out.values[name] = list(dict.fromkeys([*out.values.get(name, []), *listed]))
        written.append(pattern)
    out.filter = {"pattern": written[0]} if len(written) == 1 else {"patterns": written}
    return out


def _text(value: Any) -> str:
    """A pattern value as an attribute value: strings as they are, others as JSON (``5``, ``true``)."""
    return value if isinstance(value, str) else json.dumps(value)


def placeholder_shares(values: list[str]) -> dict[str, float]:
    """Shares for an attribute's listed values: about half the records among them, the rest ``(other)``."""
    each = round((1 - PLACEHOLDER_MATCH_RATE) / len(values), 4)
    shares = {value: each for value in values}
    other = OTHER
    while other in shares:  # a pattern that itself lists "(other)"
        other = f"({other})"
    shares[other] = round(1 - each * len(values), 4)
    return shares
