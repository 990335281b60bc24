"""Changes to a raw scenario before validation: ``--set KEY=VALUE``, sweep points, ``with_changes``.

KEY is a dotted path with list indices (``mappings[0].batch_size``, ``functions.orders.memory_mb``; a
name containing dots can be bracketed: ``functions["my.fn"].timeout``). VALUE is read as YAML with the
scenario loader's YAML 1.2 rules, so ``100`` is an integer, ``true`` a boolean, ``500/s`` and ``no``
strings, and ``{dist: lognormal, median: 40ms, p99: 250ms}`` a mapping.

A change sets one value, whatever spelling names it: setting ``maximum_concurrency``,
``MaximumConcurrency`` or ``ScalingConfig.MaximumConcurrency`` removes the other spellings of that key
from the entity. A change never creates a function or source key by key (a misspelled name would
otherwise add a phantom entity nobody uses); giving the whole entity creates it on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, NamedTuple

from esmsim.errors import Issue, Path, ScenarioError, did_you_mean, format_path
from esmsim.scenario.aws_names import entity_of, setting_of, spellings
from esmsim.scenario.formats import parse_yaml
from esmsim.scenario.where import Where

__all__ = ["Change", "apply_changes", "apply_override", "parse_key", "parse_override"]

_NAME = r"[^.\[\]\s=\"']+"
_STEP = rf"\.{_NAME}|\[\s*\d+\s*\]|\[\s*\"[^\"]*\"\s*\]|\[\s*'[^']*'\s*\]"
_KEY = re.compile(rf"^{_NAME}(?:{_STEP})*$")
_STEPS = re.compile(rf"^{_NAME}|{_STEP}")

_EXAMPLE = "write e.g. mappings[0].batch_size=100 or functions.orders.memory_mb=2048"

#: Sections whose entries are named entities a change may not create key by key.
_NAMED = {"functions": "function", "sources": "source"}


class Change(NamedTuple):
    """One change: the value to put at a key path, and the label its issues carry."""

    path: Path
    value: Any
    label: str


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

    Args:
        raw: The scenario as read from its file.
        path: Where to set the value, from :func:`parse_override`.
        value: The new value.

    Returns:
        The new raw scenario (containers on the path copied, the rest shared).

    Raises:
        ScenarioError: See :func:`change`; labelled ``--set KEY``.
    """
    return change(raw, Change(path, value, f"--set {format_path(path)}"))[0]


def apply_changes(
    raw: dict[str, Any], where: Where, changes: Iterable[Change]
) -> tuple[dict[str, Any], Where]:
    """Apply changes in order (later ones win) and track where each value now comes from.

    Args:
        raw: The scenario as plain data (not modified).
        where: The origin of its keys (a file's lines).
        changes: The changes.

    Returns:
        The changed data, and its origins: the file's lines no longer describe a changed key, its
        label does.

    Raises:
        ScenarioError: Every change that does not apply, each labelled with its change's label.
    """
    problems: list[Issue] = []
    for item in changes:
        try:
            raw, replaced = change(raw, item)
        except ScenarioError as error:
            problems.extend(error.issues)
            continue
        where = where.changed(item.path, item.label, replaced)
    if problems:
        raise ScenarioError(problems)
    return raw, where


def live_key_path(path: Path) -> Path:
    """``changes[1].set.mappings[0].enabled``: the key inside ``set`` is one dotted key, not a path.

    So a sweep or ``--set`` can vary a live change's value: the path stops at the ``set`` entry
    named ``mappings[0].enabled``.
    """
    if len(path) > 4 and path[0] == "changes" and isinstance(path[1], int) and path[2] == "set":
        return (*path[:3], format_path(path[3:]))
    return path


def change(raw: dict[str, Any], item: Change) -> tuple[dict[str, Any], list[Path]]:
    """Set one value, removing the other spellings of the key it sets.

    Missing mapping keys on the way are created as empty mappings, but not a function or source:
    ``functions.order.memory_mb`` for a function named ``orders`` is refused with a suggestion;
    ``functions.order={...}`` creates it.

    Args:
        raw: The scenario as plain data (not modified).
        item: The change.

    Returns:
        The new data (containers on the path copied, the rest shared) and the key paths of the other
        spellings it removed.

    Raises:
        ScenarioError: The path names a function or source that does not exist, a list index is out of
            range, an index is used on a mapping or a name on a list, or the path runs into a plain value.
    """
    path, value, label = item
    if not path:
        raise ScenarioError([Issue((), "the key is empty", origin=label)])
    path = live_key_path(path)
    _refuse_new_entity(raw, path, label)
    removed: list[Path] = []
    found = entity_of(path)
    if found is not None:
        entity, relative, models = found
        key = setting_of(models, relative)
        holder = _get(raw, entity)
        if key is not None and isinstance(holder, dict):
            others = [
                s
                for s in spellings(models, key)
                if s[: len(relative)] != relative[: len(s)] and s[0] in holder
            ]
            if others:
                new_holder = holder
                for other in others:
                    new_holder, gone = _without(new_holder, other)
                    removed.append((*entity, *gone))
                raw = _set(raw, entity, 0, new_holder, label)
    result = _set(raw, path, 0, value, label)
    assert isinstance(result, dict)
    return result, removed


def _refuse_new_entity(raw: dict[str, Any], path: Path, label: str) -> None:
    kind = _NAMED.get(str(path[0])) if len(path) > 2 else None
    if kind is None:
        return
    section = raw.get(str(path[0])) or {}
    name = path[1]
    if not isinstance(section, dict) or not isinstance(name, str) or name in section:
        return  # a list where a mapping belongs is reported by _set
    entity = format_path(path[:2])
    raise ScenarioError(
        [
            Issue(
                path[:2],
                f"no {kind} named {name!r}{did_you_mean(name, [str(k) for k in section])}; a change "
                f"cannot create one key by key: to add a {kind}, set it whole ({entity}={{...}})",
                origin=label,
            )
        ]
    )


def _get(node: Any, path: Path) -> Any:
    for part in path:
        in_list = isinstance(node, list | tuple) and isinstance(part, int) and part < len(node)
        if not in_list and not (isinstance(node, dict) and part in node):
            return None
        node = node[part]
    return node


def _without(holder: dict[str, Any], spelling: Path) -> tuple[dict[str, Any], Path]:
    """``holder`` without the value at ``spelling``; containers left empty go too.

    Returns the copy and the path of what was removed (the outermost container dropped).
    """
    top = str(spelling[0])
    new = dict(holder)
    if len(spelling) == 1 or not isinstance(holder[top], dict) or spelling[1] not in holder[top]:
        del new[top]
        return new, (top,)
    inner, gone = _without(holder[top], spelling[1:])
    if inner:
        new[top] = inner
        return new, (top, *gone)
    del new[top]
    return new, (top,)


def _set(node: Any, path: Path, depth: int, value: Any, label: str) -> Any:
    if depth == len(path):
        return value
    here, part, last = path[:depth], path[depth], depth == len(path) - 1
    name = format_path(here) or "the scenario"

    def fail(where: Path, message: str) -> ScenarioError:
        return ScenarioError([Issue(where, message, origin=label)])

    if isinstance(node, dict):
        if isinstance(part, int):
            raise fail(here, f"a mapping of names, not a list: write {name}.NAME, not {name}[{part}]")
        new = dict(node)
        child = node.get(part)
        new[part] = value if last else _set({} if child is None else child, path, depth + 1, value, label)
        return new
    if isinstance(node, list | tuple):  # tuples: raw data built in Python rather than read from a file
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
