"""Read a scenario file (YAML or TOML) into a frozen :class:`Scenario`, every problem located to a line.

The pipeline is: read the file into a raw dict plus a map from key paths to line numbers
(:func:`read_raw`), parse ``--set`` overrides into changes (:func:`parse_overrides`), then apply the
changes and validate (:func:`esmsim.scenario.scenario.build`, the path sweeps and
``Scenario.with_changes`` take too); each pydantic error becomes one plain sentence at ``file:line``
(:mod:`esmsim.scenario.messages`).

YAML is read with YAML 1.2 core-schema scalars rather than PyYAML's YAML 1.1 defaults: ``no``, ``on``
and ``yes`` stay strings, ``1e3`` is a float, ``010`` is ten and ``2024-01-01`` is text. Duplicate keys
are errors instead of the last one silently winning.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path as FilePath
from typing import Any

from esmsim.errors import Issue, Path, ScenarioError, format_path, show_value
from esmsim.scenario.formats import parse_yaml, read_toml
from esmsim.scenario.messages import issues_from_validation_error
from esmsim.scenario.overrides import Change, parse_override
from esmsim.scenario.scenario import Scenario, build, validate_scenario
from esmsim.scenario.where import Where

__all__ = [
    "issues_from_validation_error",
    "load_scenario",
    "load_scenario_with_warnings",
    "parse_overrides",
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
        The validated, frozen scenario; ``scenario.warnings`` holds its warnings (not located; see
        :func:`load_scenario_with_warnings`).

    Raises:
        ScenarioError: With every problem found, each located as ``file:line`` or ``--set KEY``.
    """
    return load_scenario_with_warnings(path, overrides)[0]


def load_scenario_with_warnings(
    path: str | os.PathLike[str], overrides: Sequence[str] = ()
) -> tuple[Scenario, list[Issue]]:
    """Like :func:`load_scenario`, also returning AWS's recommendations the scenario ignores, located.

    Args:
        path: A ``.yaml``, ``.yml`` or ``.toml`` scenario file.
        overrides: ``KEY=VALUE`` texts as given to ``--set``.

    Returns:
        The scenario and its warnings (``scenario.warnings``, each located like errors).

    Raises:
        ScenarioError: With every problem found.
    """
    raw, lines = read_raw(path)
    built = build(raw, Where(os.fspath(path), lines), parse_overrides(overrides))
    return built.scenario, built.where.place(built.scenario.warnings)


def parse_overrides(overrides: Sequence[str]) -> list[Change]:
    """``--set KEY=VALUE`` texts as changes labelled ``--set KEY``.

    Raises:
        ScenarioError: With every text that does not parse.
    """
    changes: list[Change] = []
    problems: list[Issue] = []
    for text in overrides:
        try:
            key, value = parse_override(text)
        except ScenarioError as error:
            problems.extend(error.issues)
            continue
        changes.append(Change(key, value, f"--set {format_path(key)}"))
    if problems:
        raise ScenarioError(problems)
    return changes


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
    return validate_scenario(raw, Where(file, lines or {}, origin or {}))


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
