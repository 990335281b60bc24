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

import difflib
import os
import re
import tomllib
import types
from collections.abc import Hashable, Iterable, Sequence, Sized
from dataclasses import dataclass
from functools import cache
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import AliasChoices, BaseModel, ValidationError

from esmsim.dists import AnyDist
from esmsim.errors import Issue, Path, ScenarioError, format_path, locate
from esmsim.scenario.base import AWS_NAMES
from esmsim.scenario.functions import Account, Function
from esmsim.scenario.mappings import SqsMapping
from esmsim.scenario.scenario import Scenario
from esmsim.scenario.sources import SqsSource, Traffic
from esmsim.units import format_duration, format_size

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
    # Imported here: overrides uses this module's YAML reader for its values.
    from esmsim.scenario.overrides import apply_override, parse_override
    from esmsim.scenario.rules import check

    file = os.fspath(path)
    raw, lines = read_raw(path)
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
    scenario = scenario_from_dict(raw, file=file, lines=lines, origin=origin)
    warnings = [issue for issue in check(scenario) if issue.severity == "warning"]
    return scenario, _place(warnings, file, lines, origin)


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
        data, lines = _read_toml(text, file)
    else:
        data, lines = parse_yaml(text, file)
    if data is None or data == {}:
        raise fail("the file is empty (a scenario needs at least functions, sources and mappings)")
    if not isinstance(data, dict):
        raise fail(
            f"the top level must be a mapping of keys (name, functions, ...), not {_show(data)}",
            lines.get((), 1),
        )
    return data, lines


# --------------------------------------------------------------------------------------------------
# YAML


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 core-schema scalars (see the module docstring)."""


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    assert isinstance(node, yaml.ScalarNode)
    text = str(loader.construct_scalar(node))
    sign, digits = (-1, text[1:]) if text.startswith("-") else (1, text.lstrip("+"))
    try:
        if digits.startswith("0o"):
            return sign * int(digits[2:], 8)
        if digits.startswith("0x"):
            return sign * int(digits[2:], 16)
        return sign * int(digits, 10)
    except ValueError:
        raise yaml.constructor.ConstructorError(
            None, None, f"{text!r} is not an integer", node.start_mark
        ) from None


_Yaml12Loader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+.0123456789",
    ),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("merge", r"^(?:<<)$", "<"),
):
    _Yaml12Loader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(_pattern), list(_first))
_Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)

_MERGE_TAG = "tag:yaml.org,2002:merge"


def parse_yaml(text: str, file: str | None = None) -> tuple[Any, dict[Path, int]]:
    """Parse one YAML document with YAML 1.2 scalars, rejecting duplicate keys.

    Args:
        text: The document.
        file: Name to put on issues.

    Returns:
        The value (``None`` for an empty document) and the line of every mapping key and sequence item.

    Raises:
        ScenarioError: A syntax error (one issue at the parser's line) or duplicate keys (one each).
    """
    loader = _Yaml12Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: dict[Path, int] = {(): node.start_mark.line + 1}
        duplicates: list[Issue] = []
        _NodeWalker(loader, lines, duplicates, file).walk(node, ())
        if duplicates:
            raise ScenarioError(duplicates)
        return loader.construct_document(node), lines
    except yaml.MarkedYAMLError as error:
        raise ScenarioError([_yaml_issue(error, file)]) from None
    except yaml.YAMLError as error:
        raise ScenarioError([Issue((), f"invalid YAML: {_one_line(str(error))}", file=file)]) from None
    finally:
        loader.dispose()


def _yaml_issue(error: yaml.MarkedYAMLError, file: str | None) -> Issue:
    mark = error.problem_mark or error.context_mark
    problem, context = error.problem, error.context
    message = f"invalid YAML: {problem or context or 'syntax error'}"
    if problem and context and problem.startswith("but "):  # "expected one document, but found another"
        message = f"invalid YAML: {context}, {problem}"
    elif problem and context:
        where = f" at line {error.context_mark.line + 1}" if error.context_mark else ""
        message += f" ({context}{where})"
    return Issue((), _one_line(message), file=file, line=mark.line + 1 if mark else None)


class _NodeWalker:
    """Records the line of every key and item, and reports repeated keys, before construction."""

    def __init__(
        self, loader: yaml.SafeLoader, lines: dict[Path, int], issues: list[Issue], file: str | None
    ):
        self.loader, self.lines, self.issues, self.file = loader, lines, issues, file
        self.checked: set[int] = set()  # nodes already checked for duplicates (anchors are shared)

    def walk(
        self, node: yaml.Node, path: Path, stack: frozenset[int] = frozenset(), fill: bool = False
    ) -> None:
        if id(node) in stack:  # a recursive alias
            return
        stack = stack | {id(node)}
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._mark((*path, i), item, fill)
                self.walk(item, (*path, i), stack, fill)
        elif isinstance(node, yaml.MappingNode):
            check = id(node) not in self.checked
            self.checked.add(id(node))
            seen: dict[Hashable, int] = {}
            merged: list[yaml.Node] = []
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    values = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                    merged.extend(values)
                    continue
                key = self.loader.construct_object(key_node, deep=True)
                if not isinstance(key, Hashable):
                    continue  # the constructor reports unhashable keys with their line
                part = _key_part(key)
                line = key_node.start_mark.line + 1
                if key in seen:
                    if check:
                        self.issues.append(
                            Issue(
                                (*path, part),
                                f"duplicate key {_show(key)} (first at line {seen[key]})",
                                file=self.file,
                                line=line,
                            )
                        )
                    continue
                seen[key] = line
                self._mark((*path, part), key_node, fill)
                self.walk(value_node, (*path, part), stack, fill)
            for source in merged:  # merged keys count only where not given explicitly
                self.walk(source, path, stack, fill=True)

    def _mark(self, path: Path, node: yaml.Node, fill: bool) -> None:
        if not fill or path not in self.lines:
            self.lines[path] = node.start_mark.line + 1


def _key_part(key: Any) -> str | int:
    if isinstance(key, str) or (isinstance(key, int) and not isinstance(key, bool)):
        return key
    return _show(key) if isinstance(key, bool) or key is None else str(key)


# --------------------------------------------------------------------------------------------------
# TOML

_TOML_KEY = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_TOML_DOTTED = rf"{_TOML_KEY}(?:\s*\.\s*{_TOML_KEY})*"
_TOML_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_TOML_DOTTED})\s*\]\]?\s*(?:#.*)?$")
_TOML_ASSIGN = re.compile(rf"^\s*({_TOML_DOTTED})\s*=")
_TOML_POSITION = re.compile(r"\s*\(at (?:line (\d+), column \d+|end of document)\)$")


def _read_toml(text: str, file: str) -> tuple[dict[str, Any], dict[Path, int]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        _, duplicates = _toml_lines(text, file)
        if duplicates and "overwrite" in str(error):
            raise ScenarioError(duplicates) from None
        message = str(error)
        match = _TOML_POSITION.search(message)
        line = None
        if match:
            message = message[: match.start()]
            line = (
                int(match.group(1))
                if match.group(1)
                else max(1, text.count("\n") + (not text.endswith("\n")))
            )
        raise ScenarioError(
            [Issue((), f"invalid TOML: {_one_line(message)}", file=file, line=line)]
        ) from None
    return data, _toml_lines(text, file)[0]


def _toml_keys(dotted: str) -> list[str]:
    keys = []
    for part in re.findall(_TOML_KEY, dotted):
        keys.append(part[1:-1] if part[0] in "\"'" else part)
    return keys


def _toml_lines(text: str, file: str) -> tuple[dict[Path, int], list[Issue]]:
    """Line of each key by scanning ``[table]`` headers and ``key =`` lines (a heuristic, not a parser).

    Keys inside inline tables and multi-line arrays fall back to the line of the key holding them.
    """
    lines: dict[Path, int] = {(): 1}
    duplicates: list[Issue] = []
    counts: dict[tuple[str, ...], int] = {}  # array-of-tables path -> items so far
    table: Path = ()
    in_string: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if in_string:
            if line.count(in_string) % 2:
                in_string = None
            continue
        header = _TOML_HEADER.match(line)
        if header:
            keys = _toml_keys(header.group(2))
            if header.group(1) == "[[":
                counts[tuple(keys)] = counts.get(tuple(keys), 0) + 1
                for other in [k for k in counts if len(k) > len(keys) and k[: len(keys)] == tuple(keys)]:
                    del counts[other]
            table = _toml_table_path(keys, counts)
            lines.setdefault(table, number)
            lines.setdefault(table[:-1], number)
            continue
        assign = _TOML_ASSIGN.match(line)
        if assign:
            path = table + tuple(_toml_keys(assign.group(1)))
            if path in lines and len(path) > len(table):
                duplicates.append(
                    Issue(
                        path,
                        f"duplicate key {path[-1]!r} (first at line {lines[path]})",
                        file=file,
                        line=number,
                    )
                )
            lines.setdefault(path, number)
            rest = line[assign.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2:
                    in_string = quote
    return lines, duplicates


def _toml_table_path(keys: list[str], counts: dict[tuple[str, ...], int]) -> Path:
    path: list[str | int] = []
    for i, key in enumerate(keys):
        path.append(key)
        count = counts.get(tuple(keys[: i + 1]))
        if count:
            path.append(count - 1)
    return tuple(path)


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


# --------------------------------------------------------------------------------------------------
# pydantic errors -> one sentence each

#: Keys of Kinesis/DynamoDB stream mappings that AWS rejects on an SQS mapping, with AWS's names.
_STREAM_ONLY: dict[str, str] = {
    "parallelization_factor": "ParallelizationFactor",
    "starting_position": "StartingPosition",
    "starting_position_timestamp": "StartingPositionTimestamp",
    "maximum_retry_attempts": "MaximumRetryAttempts",
    "maximum_record_age": "MaximumRecordAgeInSeconds",
    "bisect_batch_on_function_error": "BisectBatchOnFunctionError",
    "tumbling_window": "TumblingWindowInSeconds",
    "on_failure": "DestinationConfig",
    "destination_config": "DestinationConfig",
}
_STREAM_ONLY.update({aws: aws for aws in list(_STREAM_ONLY.values())})

#: Keys accepted by a model's before-validator rather than by a field (AWS's nested shapes).
_SHAPE_KEYS: dict[type[BaseModel], tuple[str, ...]] = {
    SqsMapping: ("ScalingConfig", "FunctionResponseTypes"),
    Function: ("Architectures",),
    SqsSource: ("RedrivePolicy",),
}

#: Where a key belongs, for "unknown key here" messages.
_HOMES: tuple[tuple[type[BaseModel], str], ...] = (
    (Scenario, "at the top level"),
    (Account, "under account"),
    (Function, "under functions.NAME"),
    (SqsSource, "under sources.NAME"),
    (Traffic, "under sources.NAME.traffic"),
    (SqsMapping, "in a mapping"),
)

#: pydantic's own steps in an error's loc (validators, union members), never a user's key.
_INTERNAL = re.compile(r"^(?:[a-z]+(?:-[a-z]+)*\[.*\]|constrained-[a-z]+|int|float|str|bool|bytes|none)$")

_UNITS = {"parse_duration": "s", "_whole_seconds": "s", "parse_size": "bytes", "parse_rate": "/s"}

_TYPE_NAMES = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_parsing": "a number",
    "float_type": "a number",
    "finite_number": "a finite number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "tuple_type": "a list",
    "list_type": "a list",
}


def issues_from_validation_error(error: ValidationError) -> list[Issue]:
    """Turn each pydantic error into an :class:`Issue` with a plain message and the user's key path.

    Args:
        error: Raised by validating a :class:`Scenario`.

    Returns:
        One issue per distinct problem, without pydantic's internal loc parts, URLs or jargon.
    """
    issues: list[Issue] = []
    for detail in error.errors(include_url=False):
        issue = _issue(dict(detail))
        if issue is not None and issue not in issues:
            issues.append(issue)
    return issues


@dataclass(frozen=True)
class _Where:
    """What the schema says about the place an error points to."""

    path: Path
    parents: tuple[type[BaseModel], ...]  # models holding the last key (several for a plain union)
    leaf: Any  # the annotation at that place, or None
    meta: tuple[Any, ...]  # constraints and validators attached to it


def _issue(detail: dict[str, Any]) -> Issue | None:
    kind: str = detail["type"]
    loc: tuple[str | int, ...] = tuple(detail["loc"])
    ctx: dict[str, Any] = detail.get("ctx") or {}
    value = detail.get("input")
    if kind == "too_short" and isinstance(value, Sized) and len(value) >= ctx.get("min_length", 0):
        return None  # pydantic repeats an item's error as "too short" for tuples; the item's error suffices
    if loc and loc[-1] == "[key]":
        where = _walk(loc[:-2], keep_last=False)
        return Issue((*where.path, str(loc[-2])), f"names here must be text, not {_show(value)}")
    where = _walk(loc, keep_last=kind == "extra_forbidden")
    path = where.path
    if kind == "extra_forbidden":
        return Issue(path, _unknown_key(str(path[-1]), where.parents))
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return _tag_issue(kind, where, ctx, value)
    return Issue(path, _one_line(_message(kind, where, ctx, value, detail.get("msg", ""))))


def _message(kind: str, where: _Where, ctx: dict[str, Any], value: Any, msg: str) -> str:
    unit = _unit(where.meta)
    bound = {"less_than_equal": "le", "greater_than_equal": "ge", "less_than": "lt", "greater_than": "gt"}
    if kind in bound:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{_show(value)} is not {'an integer' if where.leaf is int else 'a number'}"
        limit = ctx[bound[kind]]
        shown, limit_text = _with_unit(value, unit), _with_unit(limit, unit)
        return {
            "le": f"{shown} is above the maximum {limit_text}",
            "ge": f"{shown} is below the minimum {limit_text}",
            "lt": f"must be less than {limit_text} (got {shown})",
            "gt": f"must be greater than {limit_text} (got {shown})",
        }[bound[kind]]
    if kind == "missing":
        return "required"
    if kind in ("value_error", "assertion_error"):
        error = ctx.get("error")
        return str(error) if error is not None else re.sub(r"^(Value error|Assertion failed), ", "", msg)
    if kind in ("literal_error", "enum"):
        return (
            f"{_show(value)} is not allowed (allowed: {', '.join(_quoted_choices(ctx.get('expected', '')))})"
        )
    if kind == "model_attributes_type" and _is_dist_union(where.leaf):
        return (
            f"expected a distribution (a value such as 50ms, or e.g. {{dist: lognormal, median: 40ms, "
            f"p99: 250ms}}), got {_show(value)}"
        )
    if kind in _TYPE_NAMES:
        wanted = _TYPE_NAMES[kind]
        if value is None and wanted == "a mapping":
            return "expected a mapping, got nothing (write {} to take every default)"
        if isinstance(value, str | int | float):
            return f"{_show(value)} is not {wanted}"
        return f"expected {wanted}, got {_show(value)}"
    if kind == "too_short":
        minimum = ctx.get("min_length", 1)
        return "must not be empty" if minimum == 1 else f"needs at least {minimum} items"
    if kind == "too_long":
        return f"has too many items (at most {ctx.get('max_length')})"
    if kind == "multiple_of":
        return f"{_show(value)} is not a multiple of {ctx.get('multiple_of')}"
    return f"{msg.replace('Input should be', 'must be')} (got {_show(value)})"


def _tag_issue(kind: str, where: _Where, ctx: dict[str, Any], value: Any) -> Issue:
    key = str(ctx.get("discriminator", "'type'")).strip("'")
    tags = _quoted_choices(ctx["expected_tags"]) if "expected_tags" in ctx else _union_tags(where.leaf, key)
    allowed = f"(allowed: {', '.join(tags)})" if tags else ""
    path = (*where.path, key)
    if kind == "union_tag_not_found":
        return Issue(path, f"required {allowed}".strip())
    tag = value.get(key, ctx.get("tag")) if isinstance(value, dict) else ctx.get("tag")
    what = "a distribution" if key == "dist" else f"a known {key}"
    return Issue(path, f"{_show(tag)} is not {what} {allowed}".strip())


def _unknown_key(key: str, parents: tuple[type[BaseModel], ...]) -> str:
    if not parents:
        return "unknown key"
    accepted: dict[str, str] = {}
    for model in parents:
        accepted.update(_accepted_keys(model))
    if key in accepted:  # a second spelling (AWS name or snake_case) of a key given already
        field = accepted[key]
        other = next(k for k, f in accepted.items() if f == field and k != key)
        return f"{key} repeats {other}"
    if key in _STREAM_ONLY and any(_source_type(m) == "sqs" for m in parents):
        aws = _STREAM_ONLY[key]
        if aws == "DestinationConfig":
            return (
                "not valid for SQS event sources (AWS: DestinationConfig is not valid for SQS event sources; "
                "failed messages go to the queue's dead-letter queue after max_receive_count receives)"
            )
        return f"not valid for SQS event sources (AWS: {aws} is not valid for SQS event sources)"
    close = _closest(key, list(accepted))
    if close:
        return f"unknown key (did you mean {close!r}?)"
    homes = [home for model, home in _HOMES if model not in parents and key in _accepted_keys(model)]
    if homes:
        return f"unknown key here ({key} belongs {homes[0]})"
    canonical = sorted({_canonical_key(model, f) for model in parents for f in model.model_fields})
    return f"unknown key (allowed: {', '.join(canonical)})"


def _closest(word: str, choices: list[str]) -> str | None:
    # Compare lower-cased so BATCHSIZE finds BatchSize; on a tie prefer the snake_case spelling.
    by_lower: dict[str, str] = {}
    for choice in sorted(choices, key=lambda c: c != c.lower()):
        by_lower.setdefault(choice.lower(), choice)
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


@cache
def _accepted_keys(model: type[BaseModel]) -> dict[str, str]:
    """Every key the model accepts, mapped to its field name (aliases included)."""
    by_name = bool(model.model_config.get("populate_by_name") or model.model_config.get("validate_by_name"))
    keys: dict[str, str] = {}
    for name, field in model.model_fields.items():
        alias = field.validation_alias
        choices: list[str] = []
        if isinstance(alias, AliasChoices):
            choices = [c for c in alias.choices if isinstance(c, str)]
        elif isinstance(alias, str):
            choices = [alias]
        elif field.alias:
            choices = [field.alias]
        if by_name or not choices:
            keys[name] = name
        for choice in choices:
            keys.setdefault(choice, name)
    for shape in _SHAPE_KEYS.get(model, ()):
        keys[shape] = shape
    return keys


def _canonical_key(model: type[BaseModel], name: str) -> str:
    field = model.model_fields[name]
    return field.alias if field.alias and not model.model_config.get("populate_by_name") else name


def _source_type(model: type[BaseModel]) -> Any:
    field = model.model_fields.get("source_type")
    return field.default if field is not None else None


def _walk(loc: tuple[str | int, ...], *, keep_last: bool) -> _Where:
    """Follow an error's loc through the schema's annotations, dropping pydantic's internal steps."""
    path: list[str | int] = []
    kind: Any = Scenario
    meta: list[Any] = []
    parents: tuple[type[BaseModel], ...] = ()
    for i, part in enumerate(loc):
        kind, more = _unwrap(kind)
        meta.extend(more)
        options = _members(kind)
        if len(options) > 1 and isinstance(part, str):
            tagged = _by_tag(options, part)
            if tagged is not None:
                kind, meta = tagged, []
                continue
        internal = isinstance(part, str) and _INTERNAL.match(part) and not (keep_last and i == len(loc) - 1)
        models = [o for o in options if isinstance(o, type) and issubclass(o, BaseModel)]
        if models and isinstance(part, str):
            hits = [(m, _accepted_keys(m)[part]) for m in models if part in _accepted_keys(m)]
            if hits:
                model, name = hits[0]
                field = model.model_fields.get(name)
                parents, meta = (model,), list(field.metadata) if field else []
                kind = field.annotation if field else None
                path.append(part)
                continue
            if internal:
                continue
            parents, kind, meta = tuple(models), None, []
            path.append(part)
            continue
        origin, args = get_origin(kind), get_args(kind)
        if origin is dict and len(args) == 2:
            kind, meta, parents = args[1], [], ()
        elif origin in (tuple, list) and args and isinstance(part, int):
            kind, meta, parents = args[0], [], ()
        elif internal:
            continue
        else:
            kind, meta, parents = None, [], ()
        path.append(part)
    kind, more = _unwrap(kind)
    return _Where(tuple(path), parents, kind, (*meta, *more))


def _unwrap(kind: Any) -> tuple[Any, list[Any]]:
    """Strip ``Annotated`` (keeping its metadata) and ``| None``."""
    meta: list[Any] = []
    while True:
        if get_origin(kind) is Annotated:
            kind, *extra = get_args(kind)
            meta.extend(extra)
            continue
        members = _members(kind)
        if len(members) == 1 and members[0] is not kind:
            kind = members[0]
            continue
        return kind, meta


def _members(kind: Any) -> list[Any]:
    if get_origin(kind) in (Union, types.UnionType):
        return [m for m in get_args(kind) if m is not type(None)]
    return [kind]


def _by_tag(options: list[Any], tag: str) -> Any:
    for option in options:
        if isinstance(option, type) and issubclass(option, BaseModel):
            for field in option.model_fields.values():
                if get_origin(field.annotation) is Literal and tag in get_args(field.annotation):
                    return option
    return None


def _union_tags(kind: Any, key: str) -> list[str]:
    tags: list[str] = []
    for option in _members(kind):
        field = getattr(option, "model_fields", {}).get(key)
        if field is not None and get_origin(field.annotation) is Literal:
            tags.extend(str(t) for t in get_args(field.annotation))
    return tags


def _is_dist_union(kind: Any) -> bool:
    members = _members(kind)
    return all(isinstance(m, type) and issubclass(m, AnyDist) for m in members)


def _unit(meta: tuple[Any, ...]) -> str | None:
    for item in meta:
        name = getattr(getattr(item, "func", None), "__name__", None)
        if name in _UNITS:
            return _UNITS[name]
    return None


# --------------------------------------------------------------------------------------------------
# Rendering values


def _num(x: float) -> str:
    if isinstance(x, int) or (x.is_integer() and abs(x) < 1e16):
        return str(int(x))
    return format(x, ".10g")


def _with_unit(x: float, unit: str | None) -> str:
    if unit == "s":
        human = format_duration(x)
        return f"{_num(x)} s" + ("" if human == f"{_num(x)}s" else f" ({human})")
    if unit == "bytes":
        human = format_size(x)
        return f"{_num(x)} bytes" + ("" if human == f"{_num(x)}B" else f" ({human})")
    if unit == "/s":
        return f"{_num(x)}/s"
    return _num(x)


def _show(value: Any) -> str:
    """A value as a user would recognise it from their file."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _num(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return _one_line(repr(value))[:60]


def _quoted_choices(expected: str) -> list[str]:
    """``"'x86_64' or 'arm64'"`` -> ``["x86_64", "arm64"]``."""
    found = re.findall(r"'((?:[^'\\]|\\.)*)'", expected)
    return found or [part for part in re.split(r",\s*|\s+or\s+", expected) if part]


def _one_line(text: str) -> str:
    return re.sub(r"\s*\n\s*", "; ", text.strip())
