"""pydantic validation errors turned into one plain sentence each, located by key path."""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Sized
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AliasChoices, BaseModel, Tag, ValidationError

from esmsim.dists import AnyDist
from esmsim.errors import Issue, Path, format_number, one_line, show_value
from esmsim.scenario.aws_names import AWS_NAMES, names_of, shown_name, top_keys
from esmsim.scenario.functions import Account, AsyncConfig, Function
from esmsim.scenario.mappings import MqMapping, SqsMapping, StreamMapping
from esmsim.scenario.sources import (
    DynamoDBSource,
    EventBridgeSource,
    KinesisSource,
    MqSource,
    S3Source,
    SnsSource,
    SqsSource,
    SqsTraffic,
    StreamTraffic,
    Traffic,
)
from esmsim.scenario.system import System
from esmsim.units import format_duration, format_size

# --------------------------------------------------------------------------------------------------
# pydantic errors -> one sentence each


def _only_in(model: type[BaseModel], other: type[BaseModel]) -> dict[str, str]:
    """Keys of ``model`` that ``other`` lacks, in every spelling, each with the name AWS gives it.

    A key AWS sets inside a nested shape is named by the shape (``ScalingConfig`` for
    ``maximum_concurrency``). Keys only esmsim has map to themselves.
    """
    own = {f: shown_name(model.__name__, f) or f for f in model.model_fields if f not in other.model_fields}
    spellings = {n.spelling[0]: own[n.key] for n in names_of(model.__name__) if n.key in own}
    return {**own, **spellings}


#: Keys of Kinesis/DynamoDB stream mappings that AWS rejects on an SQS mapping, with AWS's names.
_STREAM_ONLY = _only_in(StreamMapping, SqsMapping)

#: Keys of SQS mappings that AWS (or esmsim) rejects on a stream mapping.
_SQS_ONLY = _only_in(SqsMapping, StreamMapping)

#: Keys of SQS and stream mappings that an Amazon MQ mapping does not take, with AWS's names.
_NOT_FOR_MQ = {**_only_in(SqsMapping, MqMapping), **_only_in(StreamMapping, MqMapping)}

#: The first step of every AWS spelling, to tell AWS's parameters from esmsim's own knobs.
_AWS_WORDS = {name.spelling[0] for names in AWS_NAMES.values() for name in names}

#: Traffic keys that only streams take (partition keys pick a stream's shard).
_STREAM_TRAFFIC = [f for f in StreamTraffic.model_fields if f not in Traffic.model_fields]

#: Parameters AWS has that esmsim does not model: said plainly rather than as unknown keys.
_NOT_MODELLED: dict[str, str] = {
    "tumbling_window": "tumbling windows are not modelled by esmsim",
    "TumblingWindowInSeconds": "tumbling windows are not modelled by esmsim",
}

#: AWS spellings esmsim takes in another shape: said with the key to write instead.
_RESHAPED: dict[str, str] = {
    "filter_criteria": "a mapping's FilterCriteria is its `filter` here (match_rate, or a pattern on the "
    "source's traffic.attributes; docs/model.md §15)",
    "FilterCriteria": "a mapping's FilterCriteria is its `filter` here (match_rate, or a pattern on the "
    "source's traffic.attributes; docs/model.md §15)",
}

#: Where a key belongs, for "unknown key here" messages.
_HOMES: tuple[tuple[type[BaseModel], str], ...] = (
    (System, "at the top level"),
    (Account, "under account"),
    (Function, "under functions.NAME"),
    (SqsSource, "under sources.NAME"),
    (KinesisSource, "under sources.NAME (a Kinesis stream)"),
    (S3Source, "under sources.NAME (an S3 bucket)"),
    (SnsSource, "under sources.NAME (an SNS topic)"),
    (EventBridgeSource, "under sources.NAME (an EventBridge bus)"),
    (AsyncConfig, "under functions.NAME.async"),
    (Traffic, "under sources.NAME.traffic"),
    (StreamTraffic, "under sources.NAME.traffic (a stream)"),
    (MqSource, "under sources.NAME (an Amazon MQ queue)"),
    (SqsMapping, "in a mapping"),
    (StreamMapping, "in a stream mapping"),
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


def issues_from_validation_error(
    error: ValidationError, root: type[BaseModel] = System, prefix: Path = ()
) -> list[Issue]:
    """Turn each pydantic error into an :class:`Issue` with a plain message and the user's key path.

    Args:
        error: Raised by validating a scenario (or the model ``root``).
        root: The model that was validated.
        prefix: Where that model sits in a scenario file (``("sweep",)`` for a sweep section).

    Returns:
        One issue per distinct problem, without pydantic's internal loc parts, URLs or jargon.
    """
    issues: list[Issue] = []
    for detail in error.errors(include_url=False):
        issue = _issue(dict(detail), root)
        if issue is not None:
            issue = Issue((*prefix, *issue.path), issue.message)
            if issue not in issues:
                issues.append(issue)
    return issues


@dataclass(frozen=True)
class _Where:
    """What the schema says about the place an error points to."""

    path: Path
    parents: tuple[type[BaseModel], ...]  # models holding the last key (several for a plain union)
    leaf: Any  # the annotation at that place, or None
    meta: tuple[Any, ...]  # constraints and validators attached to it


def _issue(detail: dict[str, Any], root: type[BaseModel]) -> Issue | None:
    kind: str = detail["type"]
    loc: tuple[str | int, ...] = tuple(detail["loc"])
    ctx: dict[str, Any] = detail.get("ctx") or {}
    value = detail.get("input")
    if kind == "too_short" and isinstance(value, Sized) and len(value) >= ctx.get("min_length", 0):
        return None  # pydantic repeats an item's error as "too short" for tuples; the item's error suffices
    if loc and loc[-1] == "[key]":
        where = _walk(root, loc[:-2], keep_last=False)
        return Issue((*where.path, str(loc[-2])), f"names here must be text, not {show_value(value)}")
    where = _walk(root, loc, keep_last=kind == "extra_forbidden")
    path = where.path
    if kind == "esmsim_at":  # a model validator's error about one key below it (base.key_error)
        return Issue((*path, *ctx["at"]), ctx["message"])
    if kind == "extra_forbidden":
        return Issue(path, _unknown_key(str(path[-1]), where.parents))
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return _tag_issue(kind, where, ctx, value)
    return Issue(path, one_line(_message(kind, where, ctx, value, detail.get("msg", ""))))


def _message(kind: str, where: _Where, ctx: dict[str, Any], value: Any, msg: str) -> str:
    unit = _unit(where.meta)
    bound = {"less_than_equal": "le", "greater_than_equal": "ge", "less_than": "lt", "greater_than": "gt"}
    if kind in bound:
        if isinstance(value, str):  # pydantic shows a list item's input before its unit was parsed
            value = _parsed(where.meta, value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{show_value(value)} is not {'an integer' if where.leaf is int else 'a number'}"
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
        allowed = ", ".join(_quoted_choices(ctx.get("expected", "")))
        return f"{show_value(value)} is not allowed (allowed: {allowed})"
    if kind == "model_attributes_type" and _is_dist_union(where.leaf):
        return (
            f"expected a distribution (a value such as 50ms, or e.g. {{dist: lognormal, median: 40ms, "
            f"p99: 250ms}}), got {show_value(value)}"
        )
    if kind in _TYPE_NAMES:
        wanted = _TYPE_NAMES[kind]
        if value is None and wanted == "a mapping":
            return "expected a mapping, got nothing (write {} to take every default)"
        if isinstance(value, str | int | float):
            return f"{show_value(value)} is not {wanted}"
        return f"expected {wanted}, got {show_value(value)}"
    if kind == "too_short":
        minimum = ctx.get("min_length", 1)
        return "must not be empty" if minimum == 1 else f"needs at least {minimum} items"
    if kind == "too_long":
        return f"has too many items (at most {ctx.get('max_length')})"
    if kind == "multiple_of":
        return f"{show_value(value)} is not a multiple of {ctx.get('multiple_of')}"
    return f"{msg.replace('Input should be', 'must be')} (got {show_value(value)})"


def _tag_issue(kind: str, where: _Where, ctx: dict[str, Any], value: Any) -> Issue:
    key = str(ctx.get("discriminator", "'type'")).strip("'")
    tags = _quoted_choices(ctx["expected_tags"]) if "expected_tags" in ctx else _union_tags(where.leaf, key)
    allowed = f"(allowed: {', '.join(tags)})" if tags else ""
    path = (*where.path, key)
    if kind == "union_tag_not_found":
        return Issue(path, f"required {allowed}".strip())
    tag = value.get(key, ctx.get("tag")) if isinstance(value, dict) else ctx.get("tag")
    what = "a distribution" if key == "dist" else f"a known {key}"
    return Issue(path, f"{show_value(tag)} is not {what} {allowed}".strip())


def _unknown_key(key: str, parents: tuple[type[BaseModel], ...]) -> str:
    if not parents:
        return "unknown key"
    accepted: dict[str, str] = {}
    for model in parents:
        accepted.update(_accepted_keys(model))
    if key in accepted:  # a second spelling (AWS name or snake_case) of a key given already
        shapes = {top: name for model in parents for top, name in top_keys(model.__name__).items()}
        shown = shapes[key].text if key in shapes else key
        return f"{shown} repeats {accepted[key]}"
    if key in _NOT_MODELLED:
        return f"{_NOT_MODELLED[key]}; remove the key"
    if key in _RESHAPED:
        return _RESHAPED[key]
    if key in ("retention", "MessageRetentionPeriod") and DynamoDBSource in parents:
        return "DynamoDB streams keep records 24 hours; their retention cannot be set"
    if key in ("encryption", "kms_key") and (S3Source in parents or EventBridgeSource in parents):
        why = (
            "an S3 notification names the object, it does not carry it"
            if S3Source in parents
            else "EventBridge decrypts an event before it sends it to a target"
        )
        return (
            f"esmsim has no encryption setting here: {why}, so the key changes nothing the function's role "
            "needs (docs/model.md §12)"
        )
    if key in _NOT_FOR_MQ and any(_source_type(m) == "mq" for m in parents):
        return (
            f"not valid for Amazon MQ event sources ({_NOT_FOR_MQ[key]}); an MQ mapping takes batch_size, "
            "batching_window, enabled, filter, consumers, redelivery_delay and throttle_retry"
        )
    if key in _SQS_ONLY and any(_source_type(m) in ("kinesis", "dynamodb") for m in parents):
        return f"only for SQS mappings, not valid for Kinesis and DynamoDB event sources ({_SQS_ONLY[key]})"
    if key in _SQS_ONLY and any(_source_type(m) == "kafka" for m in parents):
        return f"only for SQS mappings, not valid for Kafka event sources ({_SQS_ONLY[key]})"
    if key in _STREAM_ONLY and any(_source_type(m) == "sqs" for m in parents):
        aws = _STREAM_ONLY[key]
        if aws == "DestinationConfig":
            return (
                "not valid for SQS event sources (AWS: DestinationConfig is not valid for SQS event sources; "
                "failed messages go to the queue's dead-letter queue after max_receive_count receives)"
            )
        if aws == key and key not in _AWS_WORDS:  # esmsim's own knob, not an AWS parameter
            return "only for Kinesis and DynamoDB mappings, not valid for SQS event sources"
        return f"not valid for SQS event sources (AWS: {aws} is not valid for SQS event sources)"
    queue_traffic = Traffic in parents or SqsTraffic in parents
    if key in _STREAM_TRAFFIC and queue_traffic and StreamTraffic not in parents:
        return "only for Kinesis and DynamoDB streams: an SQS queue's traffic has no partition keys"
    close = _closest(key, list(accepted))
    if close:
        return f"unknown key (did you mean {close!r}?)"
    homes = [home for model, home in _HOMES if model not in parents and key in _accepted_keys(model)]
    if homes:
        return f"unknown key here ({key} belongs {homes[0]})"
    canonical = sorted(
        {_canonical_key(model, f) for model in parents for f in model.model_fields if f != "source_type"}
    )
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
        if name == "source_type":
            continue  # set from the source the mapping reads, not written by users
        alias = field.validation_alias
        choices: list[str] = []
        if isinstance(alias, AliasChoices):
            choices = [c for c in alias.choices if isinstance(c, str)]
        elif isinstance(alias, str):
            choices = [alias]
        elif field.alias:
            choices = [field.alias]
        if (by_name and not field.serialization_alias) or not choices:
            keys[name] = name
        for choice in choices:
            keys.setdefault(choice, name)
    for top, shape in top_keys(model.__name__).items():
        keys[top] = shape.key  # an AWS shape (ScalingConfig) sets its snake_case key
    return keys


def _canonical_key(model: type[BaseModel], name: str) -> str:
    field = model.model_fields[name]
    if field.serialization_alias:  # a key that is a Python keyword (``async``)
        return field.serialization_alias
    return field.alias if field.alias and not model.model_config.get("populate_by_name") else name


def _source_type(model: type[BaseModel]) -> Any:
    field = model.model_fields.get("source_type")
    return field.default if field is not None else None


def _walk(root: type[BaseModel], loc: tuple[str | int, ...], *, keep_last: bool) -> _Where:
    """Follow an error's loc through the schema's annotations, dropping pydantic's internal steps."""
    path: list[str | int] = []
    kind: Any = root
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
        members = [m for m in get_args(kind) if m is not type(None)]
        # Tagged union members are Annotated[Model, Tag(...)]: the model is what matters here.
        return [get_args(m)[0] if _is_tagged(m) else m for m in members]
    return [kind]


def _is_tagged(kind: Any) -> bool:
    return get_origin(kind) is Annotated and any(isinstance(x, Tag) for x in get_args(kind)[1:])


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


def _parsed(meta: tuple[Any, ...], text: str) -> Any:
    """``text`` as the unit parser in ``meta`` reads it (``"-5ms"`` -> -0.005), else ``text``."""
    for item in meta:
        func: Any = getattr(item, "func", None)
        if getattr(func, "__name__", None) in _UNITS:
            try:
                return func(text)
            except ValueError:
                return text
    return text


def _unit(meta: tuple[Any, ...]) -> str | None:
    for item in meta:
        name = getattr(getattr(item, "func", None), "__name__", None)
        if name in _UNITS:
            return _UNITS[name]
    return None


# --------------------------------------------------------------------------------------------------
# Rendering values


def _with_unit(x: float, unit: str | None) -> str:
    if unit == "s":
        human = format_duration(x)
        return f"{format_number(x)} s" + ("" if human == f"{format_number(x)}s" else f" ({human})")
    if unit == "bytes":
        human = format_size(x)
        return f"{format_number(x)} bytes" + ("" if human == f"{format_number(x)}B" else f" ({human})")
    if unit == "/s":
        return f"{format_number(x)}/s"
    return format_number(x)


def _quoted_choices(expected: str) -> list[str]:
    """``"'x86_64' or 'arm64'"`` -> ``["x86_64", "arm64"]``."""
    found = re.findall(r"'((?:[^'\\]|\\.)*)'", expected)
    return found or [part for part in re.split(r",\s*|\s+or\s+", expected) if part]
