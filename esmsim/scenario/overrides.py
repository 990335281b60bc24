"""``--set KEY=VALUE`` overrides of a raw scenario, before validation.

KEY is a dotted path with list indices (``mappings[0].batch_size``, ``functions.orders.memory_mb``; a
name containing dots can be bracketed: ``functions["my.fn"].timeout``). VALUE is read as YAML with the
scenario loader's YAML 1.2 rules, so ``100`` is an integer, ``true`` a boolean, ``500/s`` and ``no``
strings, and ``{dist: lognormal, median: 40ms, p99: 250ms}`` a mapping.
"""

from __future__ import annotations

import re
from typing import Any

from esmsim.errors import Issue, Path, ScenarioError, format_path
from esmsim.scenario.base import AWS_NAMES

__all__ = ["apply_override", "parse_key", "parse_override"]

_NAME = r"[^.\[\]\s=\"']+"
_STEP = rf"\.{_NAME}|\[\s*\d+\s*\]|\[\s*\"[^\"]*\"\s*\]|\[\s*'[^']*'\s*\]"
_KEY = re.compile(rf"^{_NAME}(?:{_STEP})*$")
_STEPS = re.compile(rf"^{_NAME}|{_STEP}")

_EXAMPLE = "write e.g. mappings[0].batch_size=100 or functions.orders.memory_mb=2048"

#: The AWS spelling of each snake_case key and back, so setting one replaces the other.
_SPELLINGS: dict[str, str] = {**AWS_NAMES, **{aws: name for name, aws in AWS_NAMES.items()}}


def parse_key(key: str) -> Path:
    """Split ``mappings[0].batch_size`` into ``("mappings", 0, "batch_size")``.

    Args:
        key: The KEY part of an override.

    Returns:
        The key path.

    Raises:
        ValueError: The key is empty or its dots and brackets do not parse.
    """
    key = key.strip()
    if not key:
        raise ValueError(f"the key before '=' is empty ({_EXAMPLE})")
    if not _KEY.match(key):
        raise ValueError(f"{key!r} is not a key path ({_EXAMPLE}; list indices are whole numbers in [])")
    path: list[str | int] = []
    for step in _STEPS.findall(key):
        if step.startswith("."):
            path.append(step[1:])
        elif step.startswith("["):
            inner = step[1:-1].strip()
            path.append(int(inner) if inner.isdigit() else inner[1:-1])
        else:
            path.append(step)
    return tuple(path)


def parse_override(text: str) -> tuple[Path, Any]:
    """Parse ``KEY=VALUE`` into a key path and a YAML value.

    Args:
        text: One ``--set`` argument.

    Returns:
        The key path and the value (``None`` for an empty VALUE, as in YAML).

    Raises:
        ScenarioError: One issue labelled ``--set TEXT`` when the text is malformed.
    """
    # Imported here: the loader imports this module's users, and owns the YAML rules.
    from esmsim.scenario.loader import parse_yaml

    label = f"--set {text}"
    if "=" not in text:
        raise ScenarioError([Issue((), f"expected KEY=VALUE ({_EXAMPLE})", origin=label)])
    key_text, value_text = text.split("=", 1)
    try:
        path = parse_key(key_text)
    except ValueError as error:
        raise ScenarioError([Issue((), str(error), origin=label)]) from None
    try:
        value, _ = parse_yaml(value_text)
    except ScenarioError as error:
        raise ScenarioError([Issue((), issue.message, origin=label) for issue in error.issues]) from None
    return path, value


def apply_override(raw: dict[str, Any], path: Path, value: Any) -> dict[str, Any]:
    """Return a copy of ``raw`` with ``value`` at ``path``; ``raw`` itself is not changed.

    Missing mapping keys on the way are created as empty mappings. Setting a key that AWS also names
    (``batch_size`` / ``BatchSize``) removes the other spelling, so the override is not a repeat.

    Args:
        raw: The scenario as read from its file.
        path: Where to set the value, from :func:`parse_override`.
        value: The new value.

    Returns:
        The new raw scenario (containers on the path copied, the rest shared).

    Raises:
        ScenarioError: A list index is out of range, an index is used on a mapping or a name on a
            list, or the path runs into a plain value; labelled ``--set KEY``.
    """
    if not path:
        raise ScenarioError([Issue((), "the key is empty", origin="--set")])
    result = _set(raw, path, 0, value, f"--set {format_path(path)}")
    assert isinstance(result, dict)
    return result


def _set(node: Any, path: Path, depth: int, value: Any, label: str) -> Any:
    here, part, last = path[:depth], path[depth], depth == len(path) - 1
    name = format_path(here) or "the scenario"

    def fail(where: Path, message: str) -> ScenarioError:
        return ScenarioError([Issue(where, message, origin=label)])

    if isinstance(node, dict):
        if isinstance(part, int):
            raise fail(here, f"a mapping of names, not a list: write {name}.NAME, not {name}[{part}]")
        new = dict(node)
        if last:
            other = _SPELLINGS.get(part)
            if other is not None:
                new.pop(other, None)
            new[part] = value
        else:
            child = node.get(part)
            new[part] = _set({} if child is None else child, path, depth + 1, value, label)
        return new
    if isinstance(node, list):
        if not isinstance(part, int):
            raise fail(here, f"a list, not a mapping: write {name}[0].{part}, not {name}.{part}")
        if part >= len(node):
            count = f"{len(node)} item" + ("" if len(node) == 1 else "s")
            raise fail((*here, part), f"index {part} is out of range ({name} has {count})")
        new_list = list(node)
        new_list[part] = value if last else _set(node[part], path, depth + 1, value, label)
        return new_list
    step = f"[{part}]" if isinstance(part, int) else repr(part)
    raise fail(here, f"{node!r} is a plain value, so it has no {step} to set")
