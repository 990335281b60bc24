"""Read a scenario file (YAML or TOML) into a frozen :class:`Scenario`, every problem located to a line.

The pipeline is: read the file into a raw dict plus a map from key paths to line numbers
(:func:`read_raw`), apply ``--set`` overrides (:mod:`esmsim.scenario.overrides`), validate with pydantic
(:func:`scenario_from_dict`), and turn each pydantic error into one plain sentence at ``file:line``
(:func:`issues_from_validation_error`).

YAML is read with YAML 1.2 core-schema scalars rather than PyYAML's YAML 1.1 defaults: ``no``, ``on``
and ``yes`` stay strings, ``1e3`` is a float, ``010`` is ten and ``2024-01-01`` is text. Duplicate keys
are errors instead of the last one silently winning.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path as FilePath
from typing import Any

from pydantic import ValidationError

from esmsim.errors import Issue, Path, ScenarioError, format_path, locate, show_value
from esmsim.scenario.base import AWS_NAMES
from esmsim.scenario.formats import parse_yaml, read_toml
from esmsim.scenario.messages import issues_from_validation_error
from esmsim.scenario.scenario import Scenario

__all__ = [
    "issues_from_validation_error",
    "load_scenario",
    "load_scenario_with_warnings",
    "parse_yaml",
    "read_raw",
    "scenario_from_dict",
]

_YAML_SUFFIXES = (".yaml", ".yml")
_TOML_SUFFIXES = (".toml",)


# --------------------------------------------------------------------------------------------------
# Public entry points


def load_scenario(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> Scenario:
    """Read, override and validate a scenario file.

    Args:
        path: A ``.yaml``, ``.yml`` or ``.toml`` scenario file.
        overrides: ``KEY=VALUE`` texts as given to ``--set`` (applied in order, later ones win).

    Returns:
        The validated, frozen scenario. Warnings are dropped; use :func:`load_scenario_with_warnings`.

    Raises:
        ScenarioError: With every problem found, each located as ``file:line`` or ``--set KEY``.
    """
    return load_scenario_with_warnings(path, overrides)[0]


def load_scenario_with_warnings(
    path: str | os.PathLike[str], overrides: Sequence[str] = ()
) -> tuple[Scenario, list[Issue]]:
    """Like :func:`load_scenario`, also returning AWS's recommendations the scenario ignores.

    Args:
        path: A ``.yaml``, ``.yml`` or ``.toml`` scenario file.
        overrides: ``KEY=VALUE`` texts as given to ``--set``.

    Returns:
        The scenario and its warnings (severity ``"warning"``), located like errors.

    Raises:
        ScenarioError: With every problem found.
    """
    from esmsim.scenario.rules import check

    file = os.fspath(path)
    raw, lines = read_raw(path)
    raw, lines, origin = apply_overrides(raw, lines, overrides)
    scenario = scenario_from_dict(raw, file=file, lines=lines, origin=origin)
    warnings = [issue for issue in check(scenario) if issue.severity == "warning"]
    return scenario, _place(warnings, file, lines, origin)


def apply_overrides(
    raw: dict[str, Any], lines: dict[Path, int], overrides: Sequence[str]
) -> tuple[dict[str, Any], dict[Path, int], dict[Path, str]]:
    """Apply ``--set KEY=VALUE`` texts to raw scenario data.

    Returns the new data, the file's line numbers still describing it, and where each overridden
    key's value came from (``--set key``), for error messages.

    Raises:
        ScenarioError: With every override that does not parse or apply.
    """
    # Imported here: overrides uses this module's YAML reader for its values.
    from esmsim.scenario.overrides import apply_override, parse_override

    origin: dict[Path, str] = {}
    problems: list[Issue] = []
    for text in overrides:
        try:
            key, value = parse_override(text)
            raw = apply_override(raw, key, value)
        except ScenarioError as error:
            problems.extend(error.issues)
            continue
        # The file's lines under an overridden key no longer describe its value.
        lines = {p: n for p, n in lines.items() if p[: len(key)] != key}
        origin = {p: o for p, o in origin.items() if p[: len(key)] != key}
        origin[key] = f"--set {format_path(key)}"
    if problems:
        raise ScenarioError(problems)
    return raw, lines, origin


def scenario_from_dict(
    raw: dict[str, Any],
    *,
    file: str | None = None,
    lines: dict[Path, int] | None = None,
    origin: dict[Path, str] | None = None,
) -> Scenario:
    """Validate a raw scenario mapping (as read from a file, or one point of a sweep).

    Args:
        raw: The scenario as plain dicts, lists and scalars. Not modified.
        file: Name to put in front of messages.
        lines: Line of each key path, from :func:`read_raw`.
        origin: Labels such as ``--set mappings[0].batch_size`` for key paths set outside the file.

    Returns:
        The validated, frozen scenario.

    Raises:
        ScenarioError: One located issue per problem (schema errors and AWS rule errors).
    """
    try:
        return Scenario.model_validate(raw)
    except ValidationError as error:
        issues = issues_from_validation_error(error)
    except ScenarioError as error:  # the AWS rules, raised by Scenario's after-validator
        issues = error.issues
    raise ScenarioError(_place(issues, file, lines or {}, origin or {})) from None


def read_raw(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[Path, int]]:
    """Parse a scenario file without validating it.

    Args:
        path: A ``.yaml``, ``.yml`` or ``.toml`` file.

    Returns:
        The top-level mapping, and the 1-based line of every mapping key and sequence item by key path
        (``("mappings", 0, "batch_size")``; ``()`` is the top-level mapping).

    Raises:
        ScenarioError: The file is missing, unreadable, of an unknown type, empty, not a mapping, not
            valid YAML/TOML, or repeats a key.
    """
    file = os.fspath(path)
    target = FilePath(file)

    def fail(message: str, line: int | None = None) -> ScenarioError:
        return ScenarioError([Issue((), message, file=file, line=line)])

    if not target.exists():
        raise fail("no such file")
    suffix = target.suffix.lower()
    if suffix not in _YAML_SUFFIXES + _TOML_SUFFIXES:
        raise fail(f"unknown file type {suffix or '(none)'!r} (a scenario file ends in .yaml, .yml or .toml)")
    try:
        text = target.read_text(encoding="utf-8")
    except IsADirectoryError:
        raise fail("is a directory, not a scenario file") from None
    except UnicodeDecodeError as error:
        raise fail(f"is not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise fail(f"cannot be read ({error.strerror or error})") from None
    if suffix in _TOML_SUFFIXES:
        data, lines = read_toml(text, file)
    else:
        data, lines = parse_yaml(text, file)
    if data is None or data == {}:
        raise fail("the file is empty (a scenario needs at least functions, sources and mappings)")
    if not isinstance(data, dict):
        raise fail(
            f"the top level must be a mapping of keys (name, functions, ...), not {show_value(data)}",
            lines.get((), 1),
        )
    return data, lines


# --------------------------------------------------------------------------------------------------
# Locating issues


#: AWS-shaped keys that set a snake_case key: (parent key, key) or key -> the key they set.
_AWS_SHAPES: dict[Path, str] = {
    ("ScalingConfig", "MaximumConcurrency"): "maximum_concurrency",
    ("RedrivePolicy", "maxReceiveCount"): "max_receive_count",
    ("FunctionResponseTypes",): "report_batch_item_failures",
    ("Architectures",): "architecture",
    **{(aws,): name for name, aws in AWS_NAMES.items()},
}


def _with_aliases(lines: dict[Path, int]) -> dict[Path, int]:
    """Also give the snake_case key the line of the AWS name it was written as (rules use snake_case)."""
    extra: dict[Path, int] = {}
    for path, line in lines.items():
        for size in (1, 2):
            name = _AWS_SHAPES.get(tuple(path[-size:])) if len(path) >= size else None
            if name is not None:
                extra.setdefault((*path[:-size], name), line)
    return {**extra, **lines}


def _place(
    issues: Iterable[Issue], file: str | None, lines: dict[Path, int], origin: dict[Path, str]
) -> list[Issue]:
    lines = _with_aliases(lines) if lines else lines
    placed = [locate(issue, file, lines, origin) for issue in issues]
    # File order first, then the command line's.
    return sorted(placed, key=lambda issue: (issue.origin is not None, issue.line or 0))
