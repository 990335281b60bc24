"""Fuzzing scenario files end to end: any file loads or is refused in located lines, and a short run ends.

Each example is YAML text written to a file and read by ``load_scenario``, so the YAML parser, the line
map, the AWS spellings and ``--set`` take part as they do for a user. The files come from three
strategies:

* generated scenarios: one or two functions, sources (SQS, Kinesis, DynamoDB) and mappings whose keys
  are drawn from the schema, each spelled in snake_case, in AWS's spelling (flat or nested) or both,
  with valid values, boundary values (zero, negative, huge, ``.nan``, ``1e30/s``, ``1us``), values of
  the wrong type (booleans, lists, maps, text), unknown keys, repeated keys and dangling references;
* the bundled ``scenarios/*.yaml`` with a few mutations of their text (a line dropped, repeated or given
  another value, a key renamed) or of their data (a key dropped, a value replaced, a key added);
* random ``--set KEY=VALUE`` overrides of either, with keys from the scenario, AWS spellings, unknown
  keys and malformed ones.

The property: loading returns a scenario, or raises :class:`ScenarioError` whose issues each print as
one line with a message; nothing else escapes. A scenario that loads is made small (:func:`bounded`:
a minute of simulated time, a few thousand records) and run under a wall-clock budget: it either ends
within the budget with its record counts adding up, or raises ScenarioError.

By default each test runs a fixed set of examples (``derandomize``), so CI sees the same files every
time. ``ESMSIM_FUZZ_EXAMPLES=N`` runs N fresh random examples per test instead, to search further.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path as FilePath
from types import FrameType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esmsim.errors import ScenarioError
from esmsim.result import RunResult
from esmsim.run import simulate
from esmsim.scenario.aws_names import AWS_NAMES
from esmsim.scenario.formats import parse_yaml
from esmsim.scenario.loader import load_scenario_with_warnings
from esmsim.scenario.scenario import Scenario
from tests.helpers import assert_conserved

SCENARIOS = sorted((FilePath(__file__).parent.parent / "scenarios").glob("*.yaml"))

#: ``ESMSIM_FUZZ_EXAMPLES=N``: N fresh random examples per test instead of the fixed default set.
_EXAMPLES = os.environ.get("ESMSIM_FUZZ_EXAMPLES")


def fuzz(examples: int) -> settings:
    """Settings of one fuzz test: ``examples`` fixed examples (derandomized), or the environment's N."""
    return settings(
        max_examples=int(_EXAMPLES) if _EXAMPLES else examples,
        derandomize=not _EXAMPLES,
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


#: Wall-clock seconds a bounded run may take. A bounded run takes well under a second; the margin is
#: for a loaded machine. Past it the run counts as hung.
RUN_BUDGET_S = 20.0

# --------------------------------------------------------------------------------------------------
# YAML text: a small emitter, because a generated file must be able to say what PyYAML's dumper
# cannot: a key written twice, and tokens as a user types them (``yes``, ``0x1F``, ``1e30/s``, ``.nan``).


@dataclass(frozen=True)
class Raw:
    """A token written into the file exactly as it is (no quoting)."""

    text: str


@dataclass(frozen=True)
class Pairs:
    """A mapping written as these key-value pairs in order, repeated keys included."""

    items: tuple[tuple[Any, Any], ...]


@dataclass(frozen=True)
class Flow:
    """A collection written on one line, ``{a: 1, b: [2]}``."""

    value: Any


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def scalar_text(value: Any) -> str:
    """One scalar as YAML 1.2 reads it back (text in double quotes, which take JSON's escapes)."""
    if isinstance(value, Raw):
        return value.text
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    return json.dumps(str(value))


def key_text(key: Any) -> str:
    """A mapping key: plain when it is a simple name, else quoted like any scalar."""
    if isinstance(key, str) and _PLAIN_KEY.match(key) and key.lower() not in ("true", "false", "null"):
        return key
    return scalar_text(key)


def _items(node: Any) -> list[tuple[Any, Any]] | None:
    if isinstance(node, Pairs):
        return list(node.items)
    if isinstance(node, dict):
        return list(node.items())
    return None


def flow_text(node: Any) -> str:
    """A value written on one line."""
    if isinstance(node, Flow):
        node = node.value
    pairs = _items(node)
    if pairs is not None:
        return "{" + ", ".join(f"{key_text(k)}: {flow_text(v)}" for k, v in pairs) + "}"
    if isinstance(node, list | tuple):
        return "[" + ", ".join(flow_text(v) for v in node) + "]"
    return scalar_text(node)


def _inline(node: Any) -> bool:
    """Whether a value goes on its key's line (scalars, flow and empty collections)."""
    if isinstance(node, Flow):
        return True
    pairs = _items(node)
    if pairs is not None:
        return not pairs
    if isinstance(node, list | tuple):
        return not node
    return True


def block_lines(node: Any, indent: int = 0) -> list[str]:
    """A mapping or list in YAML's block style, nested values indented by two spaces."""
    pad = " " * indent
    lines: list[str] = []
    pairs = _items(node)
    if pairs is not None:
        for key, value in pairs:
            if _inline(value):
                lines.append(f"{pad}{key_text(key)}: {flow_text(value)}")
            else:
                lines.append(f"{pad}{key_text(key)}:")
                lines.extend(block_lines(value, indent + 2))
        return lines
    for value in node:
        if _inline(value):
            lines.append(f"{pad}- {flow_text(value)}")
        else:  # "- " then the item's first line; the rest is already indented under it
            inner = block_lines(value, indent + 2)
            lines.append(f"{pad}- {inner[0].lstrip()}")
            lines.extend(inner[1:])
    return lines


def yaml_text(node: Any) -> str:
    """A whole document."""
    if _inline(node):
        return flow_text(node) + "\n"
    return "\n".join(block_lines(node)) + "\n"


# --------------------------------------------------------------------------------------------------
# Values

#: Tokens at the edges of what a key takes, and of what YAML 1.2 reads: numbers that are huge, tiny,
#: negative, not finite or out of int64; YAML 1.1 spellings that stay text; units AWS never uses.
EDGE_TOKENS = (
    "0", "-0", "-1", "1", "2", "0.5", "-0.5", "1e30", "-1e30", "1e-30", "1e400", "-1e400", "1e308",
    "5e-324", ".nan", ".NaN", ".inf", "-.inf", "+.inf", "nan", "inf", "NaN/s", "inf/s", "-inf",
    "9223372036854775807", "9223372036854775808", "-9223372036854775809", "1" + "0" * 40,
    "true", "false", "null", "~", "yes", "no", "on", "off", "y", "0x1F", "0o17", "010", "0b101",
    "1_000", "2024-01-01", "12:30", "1us", "0us", "1ns", "0ms", "0s", "-1s", "1e30s", "1e30d",
    "1e-30ms", "1e30/s", "1e-30/s", "0/s", "-5/s", "5/fortnight", "5 / min", "1e6/h", "1KB", "1e30GB",
    "-1KB", "0B", "6MB", "7MB", "1e400KB", "300", "301", "900", "901", "10000", "10001", "43200",
    "604800", "1209600", "1250", "LATEST", "TRIM_HORIZON", "AT_TIMESTAMP", "sqs", "kinesis",
    "dynamodb", "lambda", "current", "legacy", "2023", "ReportBatchItemFailures", "x86_64", "arm64",
    '""', "''", "[]", "{}", "[1, 2]", "{a: 1}", "[[]]", "{value: 1s}", '"\\x1b[31mred"', '"a\\nb"',
    '"\\u200b"', '"\\t"', '" 5s "', "!!str 5", "!!int 5", "!!float 1", "&a 5", "*undefined",
)  # fmt: skip


def any_scalar() -> st.SearchStrategy[Any]:
    """Any scalar a file may hold where a value belongs."""
    return st.one_of(
        st.sampled_from(EDGE_TOKENS).map(Raw),
        st.integers(-(2**70), 2**70),
        st.floats(),
        st.booleans(),
        st.none(),
        st.text(max_size=12),
    )


def any_value() -> st.SearchStrategy[Any]:
    """A scalar or a small collection of them, in block or flow style."""
    keys = st.one_of(st.text(max_size=8), st.sampled_from(["value", "dist", "rate", "type"]))
    collections = st.recursive(
        any_scalar(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
        max_leaves=6,
    )
    return st.one_of(any_scalar(), collections, collections.map(Flow))


def chance(draw: st.DrawFn, p: float) -> bool:
    """True with probability about ``p`` (hypothesis shrinks it to False)."""
    return p > 0 and draw(st.integers(0, 99)) >= 100 - round(100 * p)


def whole(low: int, high: int) -> st.SearchStrategy[int]:
    """A whole number (of seconds, bytes or items) in AWS's range."""
    return st.integers(low, high)


def real(low: float, high: float) -> st.SearchStrategy[float]:
    """A number in AWS's range, ends included."""
    return st.one_of(st.floats(low, high), st.sampled_from([low, high]))


def probability() -> st.SearchStrategy[float]:
    """A probability, mostly small (a rate of 1 fails every record)."""
    return st.one_of(st.sampled_from([0.0, 0.001, 0.01, 0.1, 0.5, 1.0]), st.floats(0, 1))


def optional(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A value or null (the keys where null means "no limit")."""
    return st.one_of(st.none(), values)


@st.composite
def dist(draw: st.DrawFn, values: st.SearchStrategy[float], unit: str) -> Any:
    """A distribution of durations or sizes, in any of its forms, with its values in order."""
    kind = draw(st.sampled_from(["bare", "constant", "exponential", "lognormal", "uniform", "empirical"]))

    def one() -> Any:
        return with_unit(draw, unit, draw(values))

    if kind == "bare":
        return one()
    if kind == "constant":
        return {"value": one()} if draw(st.booleans()) else {"dist": "constant", "value": one()}
    if kind == "exponential":
        return {"dist": "exponential", "mean": with_unit(draw, unit, max(draw(values), 1e-3))}
    if kind in ("lognormal", "uniform"):
        low, high = sorted([draw(values), draw(values)])
        if kind == "uniform":
            return {"dist": "uniform", "low": with_unit(draw, unit, low), "high": with_unit(draw, unit, high)}
        low = max(low, 1e-3)
        high = max(low, high)
        return {"dist": "lognormal", "median": with_unit(draw, unit, low), "p99": with_unit(draw, unit, high)}
    return {"dist": "empirical", "values": [one() for _ in range(draw(st.integers(1, 4)))]}


def _number_text(x: float) -> str:
    return str(x) if isinstance(x, int) else repr(float(x))


def with_unit(draw: st.DrawFn, unit: str | None, value: Any) -> Any:
    """A number of seconds, per-second or bytes, bare or written with one of the unit's suffixes."""
    if unit is None or isinstance(value, bool) or not isinstance(value, int | float):
        return value
    form = draw(st.integers(0, 3))
    if form == 0:
        return value
    if unit == "duration":
        if form == 3 and value % 60 == 0:
            return Raw(f"{_number_text(value // 60)}m")
        if form == 2 and value % 1 == 0:
            return Raw(f"{_number_text(int(value) * 1000)}ms")
        return Raw(f"{_number_text(value)}s")
    if unit == "rate":
        if form == 2:
            return Raw(f"{_number_text(value * 60)}/min")
        return Raw(f"{_number_text(value)}/s")
    if form == 3 and value % (1024 * 1024) == 0:
        return Raw(f"{_number_text(value // (1024 * 1024))}MB")
    if form == 2 and value % 1024 == 0:
        return Raw(f"{_number_text(value // 1024)}KB")
    return Raw(f"{_number_text(value)}B")


# --------------------------------------------------------------------------------------------------
# Entities. A composite draws valid values for some of an entity's keys (its cross-key rules kept, so
# a tame example loads); `dress` then spells each key in snake_case or AWS's spelling, writes numbers
# with units, and at the example's `wild` rate puts in faults: a value of any type, a required key
# missing, both spellings of one key, an unknown key, a key written twice.

Fields = dict[str, st.SearchStrategy[Any]]

#: Keys whose plain numbers may be written with units, by model: seconds, per second, bytes.
UNITS: dict[str, dict[str, str]] = {
    "System": {"duration": "duration", "warmup": "duration"},
    "Account": {
        "function_scale_period": "duration",
        "legacy_refill": "rate",
        "invocation_rate_limit": "rate",
    },
    "Function": {"timeout": "duration", "per_record": "duration", "keep_alive": "duration"},
    "Incident": {"start": "duration", "end": "duration"},
    "RatePoint": {"at": "duration", "rate": "rate", "ramp": "duration"},
    "Traffic": {"rate": "rate", "period": "duration", "backlog_span": "duration"},
    "StreamTraffic": {"rate": "rate", "period": "duration", "backlog_span": "duration"},
    "SqsSource": {
        "visibility_timeout": "duration",
        "retention": "duration",
        "delivery_delay": "duration",
        "max_message_size": "size",
    },
    "KinesisSource": {
        "propagation_delay": "duration",
        "idle_poll_interval": "duration",
        "read_calls_per_second": "rate",
        "read_bytes_per_second": "size",
        "max_bytes_per_call": "size",
        "record_overhead": "size",
        "retention": "duration",
        "write_records_per_second": "rate",
        "write_bytes_per_second": "size",
        "efo_propagation_delay": "duration",
        "efo_bytes_per_second": "size",
    },
    "PollerScaling": {"idle_after": "duration", "tick": "duration"},
    "ThrottleRetry": {"initial": "duration", "maximum": "duration"},
    "RetryBackoff": {"initial": "duration", "maximum": "duration"},
    "Polling": {"wait_time": "duration", "round_trip": "duration"},
    "SqsMapping": {"batching_window": "duration", "record_overhead": "size"},
    "StreamMapping": {
        "batching_window": "duration",
        "starting_position_timestamp": "duration",
        "maximum_record_age": "duration",
    },
}
UNITS["DynamoDBSource"] = UNITS["KinesisSource"]

#: How AWS writes a value of a key whose AWS spelling converts (the inverse of aws_names' convert).
AWS_VALUE: dict[str, Callable[[Any], Any]] = {
    "report_batch_item_failures": lambda v: (
        ["ReportBatchItemFailures"] if v is True else [] if v is False else v
    ),
    "architecture": lambda v: [v],
    "on_failure": lambda v: (
        f"arn:aws:{v['type']}:us-east-1:123456789012:failed" if isinstance(v, dict) and "type" in v else v
    ),
}


def aws_spellings(model: str, key: str) -> list[tuple[str, ...]]:
    """AWS's spellings of a model's key, from the same table the loader reads."""
    return [name.spelling for name in AWS_NAMES.get(model, ()) if name.key == key]


def nest(spelling: tuple[str, ...], value: Any) -> tuple[str, Any]:
    """``("ScalingConfig", "MaximumConcurrency"), 5`` as ``ScalingConfig: {MaximumConcurrency: 5}``."""
    for step in reversed(spelling[1:]):
        value = {step: value}
    return spelling[0], value


@st.composite
def some(draw: st.DrawFn, fields: Fields) -> dict[str, Any]:
    """Values for some of ``fields`` (each key given or left to its default)."""
    return {key: draw(values) for key, values in fields.items() if draw(st.booleans())}


@st.composite
def dress(
    draw: st.DrawFn, model: str, values: dict[str, Any], wild: float, required: tuple[str, ...] = ()
) -> Any:
    """An entity's values as the file writes them: spelled, with units, and with faults at rate ``wild``.

    Args:
        draw: Hypothesis's draw.
        model: The model's class name (for its AWS spellings and units).
        values: Valid snake_case values.
        wild: Chance of a fault at each place one can go.
        required: Keys the model requires (dropping one is a fault).
    """
    pairs: list[tuple[Any, Any]] = []
    for key, valid in values.items():
        if key in required and chance(draw, wild / 4):
            continue
        value = (
            draw(any_value()) if chance(draw, wild) else with_unit(draw, UNITS.get(model, {}).get(key), valid)
        )
        spellings = aws_spellings(model, key)
        if not spellings or (value is None and key in AWS_VALUE) or not draw(st.booleans()):
            pairs.append((key, value))
        elif chance(draw, wild):  # both spellings: a repeat the loader must name
            pairs.append((key, value))
            pairs.append(nest(draw(st.sampled_from(spellings)), AWS_VALUE.get(key, lambda v: v)(value)))
        else:
            pairs.append(nest(draw(st.sampled_from(spellings)), AWS_VALUE.get(key, lambda v: v)(value)))
    if chance(draw, wild):  # an unknown key: a typo, a case change or nonsense
        known = list(values) or ["x"]
        typo = draw(st.sampled_from(known))
        pairs.append((draw(st.sampled_from([typo + "s", typo.upper(), typo.replace("_", ""), "Foo"])), 1))
    if pairs and chance(draw, wild):  # a key written twice
        pairs.append(draw(st.sampled_from(pairs)))
    if draw(st.booleans()):
        pairs = [pairs[i] for i in draw(st.permutations(range(len(pairs))))]
    return Flow(Pairs(tuple(pairs))) if chance(draw, 0.1) else Pairs(tuple(pairs))


def account(wild: float) -> st.SearchStrategy[Any]:
    """An account whose quota leaves room for the functions' reservations (at most 100 each)."""
    fields = {
        "concurrency_limit": whole(300, 3000),
        "unreserved_minimum": whole(0, 100),
        "scaling": st.sampled_from(["2023", "legacy", 2023]),
        "function_scale_environments": whole(1, 2000),
        "function_scale_period": real(0.1, 60),
        "legacy_burst": whole(1, 3000),
        "legacy_refill": real(0.1, 1000),
        "invocation_rate_limit": optional(real(1, 1000)),
        "region": st.sampled_from(["us-east-1", "eu-west-1"]),
    }
    return some(fields).flatmap(lambda values: dress("Account", values, wild))


@st.composite
def function(draw: st.DrawFn, wild: float) -> Any:
    """A function with a timeout under every queue's visibility timeout (both drawn so)."""
    seconds = real(0, 2)
    values = draw(
        some(
            {
                "memory_mb": whole(128, 10240),
                "timeout": whole(1, 20),
                "architecture": st.sampled_from(["x86_64", "arm64"]),
                "reserved_concurrency": optional(whole(0, 100)),
                "provisioned_concurrency": whole(0, 5),
                "duration": dist(seconds, "duration"),
                "per_record": real(0, 0.1),
                "measured_at_memory_mb": whole(128, 10240),
                "cpu_scaling": st.booleans(),
                "cold_start": dist(seconds, "duration"),
                "keep_alive": real(0.001, 900),
                "reset_on_timeout": st.booleans(),
            }
        )
    )
    reserved = values.get("reserved_concurrency")
    if reserved is not None:
        values["provisioned_concurrency"] = min(values.get("provisioned_concurrency", 0), reserved)
    if draw(st.booleans()):
        errors = {"invocation_error_rate": probability(), "record_error_rate": probability()}
        values["errors"] = draw(
            dress("FunctionErrors", draw(some({**errors, "poison_record_rate": probability()})), wild)
        )
    if draw(st.booleans()):
        values["incidents"] = [draw(incident(wild)) for _ in range(draw(st.integers(0, 2)))]
    return draw(dress("Function", values, wild))


@st.composite
def incident(draw: st.DrawFn, wild: float) -> Any:
    """A window of misbehaviour."""
    start = draw(real(0, 120))
    values = {"start": start, "end": start + draw(real(0.001, 120))}
    values |= draw(
        some(
            {
                "invocation_error_rate": optional(probability()),
                "record_error_rate": optional(probability()),
                "duration_multiplier": real(0.01, 10),
            }
        )
    )
    return draw(dress("Incident", values, wild, required=("start", "end")))


@st.composite
def traffic(draw: st.DrawFn, stream: bool, wild: float) -> Any:
    """Traffic with a schedule in time order that ends within its period."""
    fields: Fields = {
        "rate": real(0, 100),
        "pattern": st.sampled_from(["poisson", "constant"]),
        "record_size": dist(whole(0, 64 * 1024), "size"),
        "initial_backlog": whole(0, 500),
        "backlog_span": real(0, 60),
    }
    if stream:
        fields |= {"partition_keys": whole(1, 10000), "key_skew": real(0, 3)}
    values = draw(some(fields))
    if draw(st.booleans()):
        end, points = 0.0, []
        for _ in range(draw(st.integers(0, 3))):
            at, ramp = end + draw(real(0, 60)), draw(real(0, 30))
            point = {"at": at, "rate": draw(real(0, 100))} | ({"ramp": ramp} if draw(st.booleans()) else {})
            end = at + point.get("ramp", 0.0)
            points.append(draw(dress("RatePoint", point, wild, required=("at", "rate"))))
        values["schedule"] = points
        if draw(st.booleans()):
            values["period"] = max(end, 1.0) + draw(real(0, 120))
    return draw(dress("StreamTraffic" if stream else "Traffic", values, wild))


@st.composite
def source(draw: st.DrawFn, kind: str, wild: float) -> Any:
    """A queue, or a Kinesis or DynamoDB stream."""
    if kind == "sqs":
        fields: Fields = {
            "visibility_timeout": whole(20, 43200),
            "retention": whole(60, 1209600),
            "max_receive_count": optional(whole(1, 1000)),
            "delivery_delay": whole(0, 900),
            "max_message_size": whole(64 * 1024, 1024 * 1024),
        }
        model = "SqsSource"
    else:
        fields = {
            "shards": whole(1, 8),
            "propagation_delay": real(0, 2),
            "idle_poll_interval": real(0.01, 5),
            "read_calls_per_second": optional(real(0.1, 20)),
            "read_bytes_per_second": optional(whole(1024, 4 * 1024 * 1024)),
            "max_records_per_call": whole(1, 1000 if kind == "dynamodb" else 10000),
            "max_bytes_per_call": whole(1, 10 * 1024 * 1024),
            "record_overhead": whole(0, 1024),
            "payload_expansion": real(1, 3),
        }
        model = "DynamoDBSource"
        if kind == "kinesis":
            model = "KinesisSource"
            fields |= {
                "retention": real(86400, 8760 * 3600),
                "write_records_per_second": optional(real(1, 1000)),
                "write_bytes_per_second": optional(whole(1, 1024 * 1024)),
                "efo_propagation_delay": real(0, 1),
                "efo_bytes_per_second": whole(1, 2 * 1024 * 1024),
            }
    values = {"type": kind, **draw(some(fields))}
    if kind != "sqs":
        values.setdefault("shards", draw(whole(1, 8)))
    if draw(st.integers(0, 9)):
        values["traffic"] = draw(traffic(kind != "sqs", wild))
    return draw(dress(model, values, wild, required=("type", "shards") if kind != "sqs" else ("type",)))


def _retry(model: str, floor: float, wild: float) -> st.SearchStrategy[Any]:
    fields = {"initial": real(floor, 10), "multiplier": real(1, 4), "maximum": real(max(floor, 0.01), 60)}
    if model == "RetryBackoff":
        fields["jitter"] = real(0, 0.99)
    return some(fields).flatmap(lambda values: dress(model, values, wild))


@st.composite
def poller_scaling(draw: st.DrawFn, wild: float) -> Any:
    """A preset name, or knobs whose initial size and floor stay under the ceiling."""
    if draw(st.booleans()):
        return draw(st.sampled_from(["current", "legacy"]))
    ceiling = draw(whole(1, 1250))
    values = draw(
        some(
            {
                "initial": whole(1, ceiling),
                "per_minute": real(0, 600),
                "min_pollers": whole(1, ceiling),
                "idle_min_pollers": whole(1, 5),
                "idle_after": real(0, 600),
                "scale_down_per_minute": real(0, 600),
                "scale_down_window": real(0, 600),
                "tick": real(0.1, 10),
            }
        )
    )
    values["ceiling"] = ceiling
    for key in ("initial", "min_pollers"):  # their defaults (5) may be above a small ceiling
        values.setdefault(key, min(5, ceiling))
    if draw(st.booleans()):
        values["preset"] = draw(st.sampled_from(["current", "legacy"]))
    return draw(dress("PollerScaling", values, wild))


@st.composite
def mapping(draw: st.DrawFn, source: str, function: str, kind: str, wild: float) -> Any:
    """A mapping of ``source`` to ``function``, with the keys of its source's kind."""
    common: Fields = {
        "enabled": st.booleans(),
        "batch_size": whole(1, 10000),
        "batching_window": whole(0, 300),
        "report_batch_item_failures": st.booleans(),
    }
    if kind == "sqs":
        values = draw(
            some(
                {
                    **common,
                    "maximum_concurrency": optional(whole(2, 1000)),
                    "record_overhead": whole(0, 2048),
                    "single_poller_batching": st.booleans(),
                }
            )
        )
        if values.get("batch_size", 10) > 10 and values.get("batching_window", 0) < 1:
            values["batching_window"] = draw(whole(1, 300))  # AWS rejects a bigger batch without a window
        nested = {
            "poller_scaling": poller_scaling(wild),
            "error_backoff": some(
                {"enabled": st.booleans(), "threshold": real(0.01, 1), "factor": real(0.01, 1)}
            ).flatmap(lambda v: dress("ErrorBackoff", v, wild)),
            "throttle_retry": _retry("ThrottleRetry", 0.01, wild),
            "polling": some(
                {"wait_time": whole(1, 20), "max_messages": whole(1, 10), "round_trip": real(0, 0.1)}
            ).flatmap(lambda v: dress("Polling", v, wild)),
        }
        model = "SqsMapping"
    else:
        positions = ["LATEST", "TRIM_HORIZON"] + (["AT_TIMESTAMP"] if kind == "kinesis" else [])
        values = {"starting_position": draw(st.sampled_from(positions))}
        values |= draw(
            some(
                {
                    **common,
                    "parallelization_factor": whole(1, 10),
                    "maximum_record_age": st.one_of(st.just(-1), real(60, 604800)),
                    "maximum_retry_attempts": whole(-1, 10000),
                    "bisect_batch_on_function_error": st.booleans(),
                    "on_failure": optional(st.builds(dict, type=st.sampled_from(["sqs", "sns", "s3"]))),
                }
            )
        )
        if values["starting_position"] == "AT_TIMESTAMP":
            values["starting_position_timestamp"] = draw(real(-600, 600))
        if kind == "kinesis" and draw(st.booleans()):
            values["enhanced_fan_out"] = draw(st.booleans())
        nested = {
            "retry_backoff": _retry("RetryBackoff", 0.01, wild),
            "throttle_retry": _retry("ThrottleRetry", 0.01, wild),
        }
        model = "StreamMapping"
    values |= {key: draw(values_) for key, values_ in nested.items() if draw(st.booleans())}
    if chance(draw, wild):  # a key of the other kind of mapping
        values |= {"parallelization_factor": 2} if kind == "sqs" else {"maximum_concurrency": 5}
    values = {"source": source, "function": function, **values}
    return draw(dress(model, values, wild, required=("source", "function")))


#: How wild an example is: the chance of a fault at each place one can go (tame first, to shrink to).
WILDNESS = (0.0, 0.0, 0.02, 0.1)

NAMES = ["f", "orders", "q", "orders-queue", "my.fn", "名前", "a b", "a\nb", "\x1b[2J", "1", ""]


@st.composite
def generated(draw: st.DrawFn) -> Any:
    """A whole scenario: one or two functions and sources, one to three mappings, the run's keys.

    Each example draws how wild it is: most are tame (every fault off, so the file loads and runs),
    the others put faults in at a low or a high rate.
    """
    wild = draw(st.sampled_from(WILDNESS))
    names = st.sampled_from(NAMES)
    functions = draw(st.lists(names, min_size=1, max_size=2, unique=True))
    sources = draw(st.lists(names, min_size=1, max_size=2, unique=True))
    kinds = {name: draw(st.sampled_from(["sqs", "kinesis", "dynamodb"])) for name in sources}
    pairs = st.tuples(st.sampled_from(sources), st.sampled_from(functions))
    links = draw(st.lists(pairs, min_size=1, max_size=3, unique=True))
    mappings = []
    for source_name, function_name in links:
        if chance(draw, wild):  # a name no source or function has
            source_name, function_name = draw(
                st.sampled_from([(source_name, "missing"), ("missing", function_name)])
            )
        mappings.append(draw(mapping(source_name, function_name, kinds.get(source_name, "sqs"), wild)))
    values = draw(
        some({"name": st.text(max_size=10), "description": st.text(max_size=20), "seed": whole(0, 2**63 - 1)})
    )
    run = draw(real(1, 300))
    if draw(st.booleans()):
        values["duration"] = run
    if draw(st.booleans()):
        values["warmup"] = draw(real(0, run / 2))
    if draw(st.booleans()):
        values["account"] = draw(account(wild))
    values["functions"] = Pairs(tuple((name, draw(function(wild))) for name in functions))
    values["sources"] = Pairs(tuple((name, draw(source(kinds[name], wild))) for name in sources))
    values["mappings"] = mappings
    return draw(dress("System", values, wild, required=("functions", "sources", "mappings")))


# --------------------------------------------------------------------------------------------------
# Mutations of the bundled scenarios


def _key_lines(lines: list[str]) -> list[int]:
    return [i for i, line in enumerate(lines) if re.match(r"^\s*(- )?[\w.-]+:", line)]


@st.composite
def text_mutation(draw: st.DrawFn, text: str) -> str:
    """The text with one line dropped, repeated, given another value, or its key renamed."""
    lines = text.splitlines()
    keyed = _key_lines(lines)
    at = draw(st.sampled_from(keyed))
    line = lines[at]
    head, _, _ = line.partition(":")
    op = draw(st.sampled_from(["drop", "drop_block", "repeat", "value", "rename", "indent"]))
    if op == "drop":
        del lines[at]
    elif op == "drop_block":  # the key and everything indented under it
        depth = len(line) - len(line.lstrip(" -"))
        end = at + 1
        while end < len(lines) and (
            not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > depth
        ):
            end += 1
        del lines[at:end]
    elif op == "repeat":
        lines.insert(at, line)
    elif op == "value":
        lines[at] = f"{head}: {flow_text(draw(any_value()))}"
    elif op == "rename":
        key = head.strip(" -")
        new = draw(st.sampled_from([key.upper(), key + "x", key.replace("_", ""), camel(key), "unknown"]))
        lines[at] = line.replace(key, new, 1)
    else:
        lines[at] = " " + line
    return "\n".join(lines) + "\n"


def camel(key: str) -> str:
    """``batch_size`` as ``BatchSize`` (often AWS's name, sometimes not a key at all)."""
    return "".join(part.capitalize() for part in key.split("_"))


def paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path in plain data (mappings and lists), outermost first."""
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from paths(value, (*path, i))


def _replace(node: Any, path: tuple[Any, ...], make: Callable[[Any], Any]) -> Any:
    if not path:
        return make(node)
    head, rest = path[0], path[1:]
    if isinstance(node, dict):
        return {**node, head: _replace(node[head], rest, make)}
    copied = list(node)
    copied[head] = _replace(node[head], rest, make)
    return copied


@st.composite
def data_mutation(draw: st.DrawFn, data: dict[str, Any]) -> Any:
    """The data with one key dropped or renamed, one value replaced, or one key added."""
    chosen = draw(st.sampled_from(list(paths(data))[1:]))
    parent, last = chosen[:-1], chosen[-1]
    op = draw(st.sampled_from(["drop", "replace", "add", "rename"]))
    if op == "replace":
        return _replace(data, chosen, lambda _: draw(any_value()))

    def edit(holder: Any) -> Any:
        if isinstance(holder, list):
            return (
                [v for i, v in enumerate(holder) if i != last]
                if op == "drop"
                else [*holder, draw(any_value())]
            )
        if op == "drop":
            return {k: v for k, v in holder.items() if k != last}
        if op == "add":
            return {
                **holder,
                draw(st.sampled_from(["extra", "BatchSize", "Timeout", "type", 1])): draw(any_value()),
            }
        return {(camel(k) if k == last and isinstance(k, str) else k): v for k, v in holder.items()}

    return _replace(data, parent, edit)


@st.composite
def bundled(draw: st.DrawFn) -> str:
    """A bundled scenario's text with one to three mutations."""
    text = draw(st.sampled_from(SCENARIOS)).read_text(encoding="utf-8")
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            text = draw(text_mutation(text))
            continue
        try:
            data, _ = parse_yaml(text)
        except ScenarioError:
            continue  # an earlier text mutation broke the YAML; keep that
        if isinstance(data, dict) and data:
            text = yaml_text(draw(data_mutation(data)))
    return text


# --------------------------------------------------------------------------------------------------
# Overrides


def key_path_text(path: tuple[Any, ...]) -> str:
    """A key path as ``--set`` takes it (names with dots or spaces in brackets)."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.match(r"^[^.\[\]\s=\"']+$", str(part)):
            text += f".{part}" if text else str(part)
        else:
            text += f'["{part}"]'
    return text


#: Values an override often means: small numbers, durations, rates, words a key takes.
PLAUSIBLE = (
    "1",
    "2",
    "5",
    "10",
    "30",
    "60",
    "100",
    "0",
    "true",
    "false",
    "1s",
    "100ms",
    "5/s",
    "1KB",
    "LATEST",
    "null",
)


@st.composite
def overrides(draw: st.DrawFn, text: str) -> list[str]:
    """Zero to three ``--set KEY=VALUE`` texts aimed at the scenario in ``text``."""
    try:
        data, _ = parse_yaml(text)
    except ScenarioError:
        data = None
    known = [p for p in paths(data) if p] if isinstance(data, dict) else []
    made = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.integers(0, 9))
        if kind == 9:  # anything at all
            made.append(draw(st.text(max_size=30)))
            continue
        if kind <= 5 and known:
            path = draw(st.sampled_from(known))
        else:
            path = draw(
                st.sampled_from(
                    [
                        ("mappings", 0, "ScalingConfig", "MaximumConcurrency"),
                        ("mappings", 0, "BatchSize"),
                        ("mappings", 0, "FunctionResponseTypes"),
                        ("mappings", 0, "DestinationConfig", "OnFailure", "Destination"),
                        ("mappings", 5, "batch_size"),
                        ("functions", "nope", "memory_mb"),
                        ("functions", "new"),
                        ("duration",),
                        ("mappings", "x"),
                        ("seed", "deeper"),
                        ("unknown",),
                    ]
                )
            )
        key = key_path_text(path)
        if draw(st.integers(0, 9)) == 9:
            key = draw(st.sampled_from(["", "a..b", "x[", "[0]", "a[-1]", "a.", key + "]"]))
        value = draw(st.one_of(st.sampled_from(PLAUSIBLE).map(Raw), any_value()))
        made.append(f"{key}={flow_text(value)}")
    return made


# --------------------------------------------------------------------------------------------------
# The property


class RunTooLong(Exception):
    """A bounded run went past its wall-clock budget."""


def bounded(scenario: Scenario) -> Scenario:
    """The scenario made small enough to run in a fraction of a second.

    A minute of simulated time, at most a few thousand records, a few shards and bounded partition
    keys. Periods and retry waits are kept above a floor: the simulator takes the schema's ranges as
    they are, and a wait of a nanosecond (``tick: 1e-9``, a throttle retry every 1e-9 s) is a run of
    billions of events, not a short one. Everything else is kept.
    """
    data = scenario.data()
    data["duration"] = min(scenario.duration, 60.0)
    data["warmup"] = min(scenario.warmup, data["duration"] / 2)
    for name, source in scenario.sources.items():
        raw = data["sources"][name]
        traffic = raw.setdefault("traffic", {})
        traffic["rate"] = min(source.traffic.rate, 10.0)
        traffic["initial_backlog"] = min(source.traffic.initial_backlog, 300)
        for point in traffic.get("schedule", []):
            point["rate"] = min(point["rate"], 20.0)
        if "period" in traffic and traffic["period"] is not None:
            traffic["period"] = max(traffic["period"], 1.0)  # a schedule repeated every 1e-9 s
        if source.type in ("kinesis", "dynamodb"):
            raw["shards"] = min(source.shards, 4)
            traffic["partition_keys"] = min(source.traffic.partition_keys, 1000)
            _floor(raw, "idle_poll_interval", 0.01)
    for raw_function in data["functions"].values():  # throttled asynchronous events back off
        _floor(raw_function.get("async"), "throttle_backoff_initial", 0.01)
        _floor(raw_function.get("async"), "throttle_backoff_maximum", 0.01)
    for raw_mapping in data.get("mappings", []):
        _floor(raw_mapping.get("poller_scaling"), "tick", 0.1)
        for retry in ("throttle_retry", "retry_backoff"):
            _floor(raw_mapping.get(retry), "initial", 0.01)
            _floor(raw_mapping.get(retry), "maximum", 0.01)
    return Scenario.model_validate(data)


def _floor(holder: dict[str, Any] | None, key: str, least: float) -> None:
    if holder is not None and key in holder:
        holder[key] = max(holder[key], least)


@dataclass
class Budget:
    """A wall-clock budget for one call, enforced with SIGALRM (main thread only)."""

    seconds: float

    def run(self, call: Callable[[], RunResult]) -> RunResult:
        if threading.current_thread() is not threading.main_thread():
            return call()

        def expire(signum: int, frame: FrameType | None) -> None:
            raise RunTooLong(f"the run took more than {self.seconds:g} s of wall-clock time")

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)
        try:
            return call()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def assert_issues_print(error: ScenarioError) -> None:
    """Every issue has a message and prints as one line."""
    assert error.issues, "a ScenarioError without issues"
    for issue in error.issues:
        assert issue.message.strip(), f"an issue without a message: {issue!r}"
        line = issue.format()
        assert line.strip(), f"an empty line for {issue!r}"
        assert "\n" not in line, f"not one line: {line!r}"
        assert "\r" not in line, f"not one line: {line!r}"
    assert len(str(error).split("\n")) == len(error.issues)


def assert_sane(result: RunResult) -> None:
    """The run's books balance and nothing is negative."""
    assert_conserved(result)
    summary = result.summary
    for key, value in summary.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value):
            assert value >= 0 or key.endswith("_delta"), f"{key} = {value}"
    outcomes = (
        "records_succeeded",
        "records_dlq",
        "records_dropped",
        "records_expired",
        "records_filtered",
        "records_in_flight_end",
    )
    assert summary["records_in"] == sum(summary[key] for key in outcomes)


def check_file(directory: FilePath, text: str, sets: list[str]) -> None:
    """Load ``text`` as a file with ``sets``; run what loads, bounded and on a budget."""
    path = directory / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        scenario, warnings = load_scenario_with_warnings(path, sets)
    except ScenarioError as error:
        assert_issues_print(error)
        return
    for warning in warnings:
        assert "\n" not in warning.format()
    assert Scenario.model_validate(scenario.data()) == scenario, "a scenario's data does not give it back"
    small = bounded(scenario)
    try:
        result = Budget(RUN_BUDGET_S).run(lambda: simulate(small, trace=True))
    except ScenarioError as error:
        assert_issues_print(error)
        return
    assert_sane(result)


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> FilePath:
    return tmp_path_factory.mktemp("fuzz")


@fuzz(150)
@given(data=generated(), sets=st.data())
def test_generated_scenarios(directory: FilePath, data: Any, sets: st.DataObject) -> None:
    text = yaml_text(data)
    check_file(directory, text, sets.draw(overrides(text)) if sets.draw(st.integers(0, 3)) == 0 else [])


@fuzz(100)
@given(text=bundled())
def test_mutated_bundled_scenarios(directory: FilePath, text: str) -> None:
    check_file(directory, text, [])


@fuzz(100)
@given(scenario=st.sampled_from(SCENARIOS), sets=st.data())
def test_overrides_of_bundled_scenarios(directory: FilePath, scenario: FilePath, sets: st.DataObject) -> None:
    text = scenario.read_text(encoding="utf-8")
    check_file(directory, text, sets.draw(overrides(text)))
