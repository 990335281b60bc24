"""Properties of whole runs over small random scenarios with push sources (S3, SNS, EventBridge).

Each example has one or two push sources delivering to one or two functions through triggers, and
sometimes an SNS topic subscribed by a queue that a mapping reads; random event invoke configs
(retries, maximum age, retry waits, throttle back-off, destinations), reservations (0 included),
delivery delays, S3 duplicates and failed hand-offs. Runs are short (60-400 s).

Checked through the public API: records are conserved, concurrency never passes a reservation,
no event is invoked after its maximum age or more often than its retries allow, a reservation of 0
never runs the function, and a seed gives the same run twice.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from esmsim.scenario.scenario import Scenario
from tests.helpers import assert_conserved, peak_concurrency, summary_differences, traced
from tests.test_properties import SETTINGS, _function, _traffic


def _async(draw: st.DrawFn) -> dict[str, Any]:
    config: dict[str, Any] = {
        "maximum_retry_attempts": draw(st.integers(0, 2)),
        "maximum_event_age": draw(st.sampled_from([60, 120, 600, 21600])),
        # Short waits so that retries happen inside a short run.
        "retry_delays": [draw(st.sampled_from([0.5, 5, 60])), draw(st.sampled_from([1, 10, 120]))],
        "throttle_backoff_initial": draw(st.sampled_from([0.1, 1])),
        "throttle_backoff_maximum": draw(st.sampled_from([2, 30, 300])),
    }
    for key, kinds in (
        ("on_failure", ["sqs", "sns", "eventbridge", "lambda", "s3"]),
        ("on_success", ["sqs", "sns", "eventbridge", "lambda"]),
        ("dead_letter_queue", ["sqs", "sns"]),
    ):
        if draw(st.booleans()):
            config[key] = {"type": draw(st.sampled_from(kinds))}
    return config


def _push_source(draw: st.DrawFn, kind: str, duration: int) -> dict[str, Any]:
    traffic = _traffic(draw, duration)
    if kind == "sns":  # SNS messages are at most 256 KB
        traffic["record_size"] = draw(
            st.sampled_from(["1KB", {"dist": "uniform", "low": "100B", "high": "200KB"}])
        )
    source: dict[str, Any] = {
        "type": kind,
        "traffic": traffic,
        "delivery_delay": draw(
            st.sampled_from(["0s", "500ms", {"dist": "lognormal", "median": "1s", "p99": "20s"}])
        ),
    }
    if kind == "s3":
        source["duplicate_rate"] = draw(st.sampled_from([0.0, 0.0, 0.1, 1.0]))
    else:
        source["handoff_failure_rate"] = draw(st.sampled_from([0.0, 0.0, 0.3, 0.9]))
    if kind == "eventbridge" and draw(st.booleans()):
        source["maximum_retry_attempts"] = draw(st.integers(0, 3))
        source["retry_interval_max"] = draw(st.sampled_from([1, 4]))
    return source


@st.composite
def push_scenarios(draw: st.DrawFn) -> Scenario:
    """A small random scenario with push sources and triggers."""
    duration = draw(st.integers(60, 400))
    n_functions = draw(st.integers(1, 2))
    functions = {f"f{i}": _function(draw) for i in range(n_functions)}
    for fn in functions.values():
        fn["async"] = _async(draw)
    kinds = draw(st.lists(st.sampled_from(["s3", "sns", "eventbridge"]), min_size=1, max_size=2))
    sources = {f"p{i}": _push_source(draw, kind, duration) for i, kind in enumerate(kinds)}
    triggers: list[dict[str, Any]] = []
    for name in sources:
        targets = draw(
            st.lists(st.sampled_from(list(functions)), min_size=1, max_size=n_functions, unique=True)
        )
        triggers += [{"source": name, "function": f} for f in targets]
    mappings: list[dict[str, Any]] = []
    topics = [name for name, s in sources.items() if s["type"] == "sns"]
    if topics and draw(st.booleans()):
        sources["q"] = {"type": "sqs", "visibility_timeout": 60}
        triggers.append({"source": topics[0], "queue": "q"})
        mappings.append({"source": "q", "function": draw(st.sampled_from(list(functions))), "batch_size": 10})
    raw = {
        "duration": duration,
        "seed": draw(st.integers(0, 2**31)),
        "functions": functions,
        "sources": sources,
        "triggers": triggers,
        "mappings": mappings,
    }
    return Scenario.model_validate(raw)


def _of(table: pd.DataFrame, function: str) -> pd.DataFrame:
    return table[table["function"].astype(str) == function]


@SETTINGS
@given(push_scenarios())
def test_push_runs_conserve_records_and_respect_limits(s: Scenario) -> None:
    result = traced(s)
    assert_conserved(result)
    inv = result.invocations
    for name, fn in s.functions.items():
        mine = _of(inv, name)
        if fn.reserved_concurrency is not None:
            assert peak_concurrency(mine) <= fn.reserved_concurrency
        if fn.reserved_concurrency == 0:
            assert mine.empty
    summary = result.summary
    ages = [fn.async_.maximum_event_age for fn in s.functions.values()]
    if summary["async_events_received"]:
        age_max = summary["async_event_age_max_s"]
        assert age_max != age_max or age_max <= max(ages) + 1e-9  # NaN when nothing ran
    # Each asynchronous event is invoked at most 1 + maximum_retry_attempts times.
    triggered = inv[inv["mapping"].astype(str).str.startswith("triggers[")]
    for name, fn in s.functions.items():
        attempts = len(_of(triggered, name))
        consumers = result.records["consumer"].astype(str)
        received = int((consumers.str.startswith("triggers[") & consumers.str.endswith(f"-> {name}")).sum())
        assert attempts <= received * (1 + fn.async_.maximum_retry_attempts)


@SETTINGS
@given(push_scenarios())
def test_push_runs_are_deterministic(s: Scenario) -> None:
    a = traced(s).summary
    b = traced(s).summary
    assert summary_differences(a, b) == []
