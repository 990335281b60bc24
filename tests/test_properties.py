"""Properties of whole runs over small random SQS scenarios.

Each example is a complete scenario built as a dict and validated like a user's file: one or two
mappings (one queue, two queues into one function, one queue into two functions, or two separate
pairs), random batching, caps, reservations, provisioned concurrency, failures, timeouts, cold starts,
retention, redrive, poller scaling, invoke-rate quotas and traffic shapes. Runs are short (30-300 s, at
most a few thousand records) so that each example takes a fraction of a second.

Runs are read through the public API only: a traced ``RunResult`` (its ``summary``, time series and
``invocations``, ``throttles`` and ``records`` tables) and the scenario that ran.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import esmsim.model.traffic as traffic_module
from esmsim.errors import ScenarioError
from esmsim.model.invoke import fit_payload
from esmsim.model.traffic import cumulative_rate_at, rate_profile
from esmsim.result import RunResult
from esmsim.run import simulate
from esmsim.scenario.mappings import SqsMapping
from esmsim.scenario.scenario import Scenario
from esmsim.scenario.sources import SqsSource
from tests.helpers import (
    assert_conserved,
    invocations_of,
    merge,
    one_poller_window,
    peak_concurrency,
    records_of,
    scenario,
    summary_differences,
    traced,
)

#: Most records one example's traffic may offer (rate x duration), to keep an example fast.
MAX_OFFERED = 2000

#: Lambda's synchronous invocation payload limit (6 MB), which caps every batch.
PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024

#: Why Lambda refuses an invoke (429), as AWS names it.
RESERVED_LIMIT = "ReservedFunctionConcurrentInvocationLimitExceeded"
ACCOUNT_LIMIT = "ConcurrentInvocationLimitExceeded"
RATE_LIMIT = "FunctionInvocationRateLimitExceeded"
SCALING_LIMIT = "ExecutionEnvironmentScalingRateExceeded"
REASONS = (RESERVED_LIMIT, ACCOUNT_LIMIT, RATE_LIMIT, SCALING_LIMIT)

SETTINGS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TOPOLOGIES = {
    "single": ({"q0": ["f0"]}, 1),
    "fan_in": ({"q0": ["f0"], "q1": ["f0"]}, 1),  # two queues into one function
    "fan_out": ({"q0": ["f0", "f1"]}, 2),  # one queue read by two functions
    "pairs": ({"q0": ["f0"], "q1": ["f1"]}, 2),
}


# ------------------------------------------------------------------------------------------ strategies


def _duration_dist(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["constant", "exponential", "lognormal"]))
    if kind == "constant":
        return f"{draw(st.integers(5, 2500))}ms"
    if kind == "exponential":
        return {"dist": "exponential", "mean": f"{draw(st.integers(20, 1500))}ms"}
    median = draw(st.integers(20, 1500))
    return {"dist": "lognormal", "median": f"{median}ms", "p99": f"{median * draw(st.integers(1, 8))}ms"}


def _function(draw: st.DrawFn) -> dict[str, Any]:
    fn: dict[str, Any] = {
        "memory_mb": draw(st.sampled_from([128, 512, 1024, 1769, 3008])),
        "architecture": draw(st.sampled_from(["x86_64", "arm64"])),
        # Short timeouts next to durations of up to a few seconds: some invocations time out.
        "timeout": draw(st.integers(1, 5)),
        "duration": _duration_dist(draw),
        "per_record": f"{draw(st.sampled_from([0, 0, 1, 5]))}ms",
        "keep_alive": draw(st.sampled_from([5, 20, 60, 600])),
        "cold_start": draw(
            st.sampled_from(["0s", "200ms", {"dist": "lognormal", "median": "300ms", "p99": "1500ms"}])
        ),
        # A timed-out invocation resets its environment (AWS), or, to compare, keeps it warm.
        "reset_on_timeout": draw(st.sampled_from([True, True, False])),
        "errors": {
            "invocation_error_rate": draw(st.sampled_from([0.0, 0.0, 0.05, 0.3])),
            "poison_record_rate": draw(st.sampled_from([0.0, 0.0, 0.02, 0.2])),
            "record_error_rate": draw(st.sampled_from([0.0, 0.0, 0.1])),
        },
    }
    if draw(st.booleans()):
        fn["reserved_concurrency"] = draw(st.integers(0, 20))
    if draw(st.integers(0, 4)) == 0:
        # A window of slow, failing invocations.
        start = draw(st.integers(0, 100))
        fn["incidents"] = [
            {
                "start": start,
                "end": start + draw(st.integers(1, 100)),
                "invocation_error_rate": draw(st.sampled_from([None, 0.5, 1.0])),
                "duration_multiplier": draw(st.sampled_from([1, 3])),
            }
        ]
    return fn


def _traffic(draw: st.DrawFn, duration: int) -> dict[str, Any]:
    top = min(50.0, MAX_OFFERED / duration)
    rate = draw(st.floats(0.0, top))
    traffic: dict[str, Any] = {
        "rate": rate,
        "pattern": draw(st.sampled_from(["poisson", "poisson", "constant"])),
        "initial_backlog": draw(st.sampled_from([0, 0, draw(st.integers(1, 500))])),
    }
    shape = draw(st.sampled_from(["flat", "flat", "steps", "periodic"]))
    if shape != "flat":
        # Points laid end to end inside a period (or the run): steps and ramps.
        span = duration if shape == "steps" else draw(st.integers(20, duration))
        at, schedule = 0.0, []
        for _ in range(draw(st.integers(1, 3))):
            at += draw(st.floats(0, span / 3))
            ramp = draw(st.sampled_from([0.0, 0.0, draw(st.floats(0, span / 6))]))
            if at + ramp > span:
                break
            schedule.append({"at": at, "rate": draw(st.floats(0.0, top)), "ramp": ramp})
            at += ramp
        traffic["schedule"] = schedule
        if shape == "periodic":
            traffic["period"] = span
    sizes = draw(st.sampled_from(["default", "varied", "large"]))
    if sizes == "varied":
        # Varied sizes that never reach the 6 MB payload cap (1,000 x (4 KB + 800 B) < 6 MB).
        traffic["record_size"] = {"dist": "uniform", "low": "100B", "high": "4KB"}
    elif sizes == "large":
        # Large messages make the payload cap bind (8 of 700 KB fill 6 MB; batch sizes go up to 10),
        # with and without a batching window
        # (test_batching_window_stops_before_the_message_that_would_pass_6_mb).
        traffic["record_size"] = draw(
            st.sampled_from(["700KB", {"dist": "lognormal", "median": "200KB", "p99": "1MB"}])
        )
    return traffic


def _mapping(draw: st.DrawFn, source: str, function: str) -> dict[str, Any]:
    if draw(st.booleans()):
        batch_size, window = draw(st.integers(1, 10)), 0
    else:
        batch_size, window = draw(st.integers(1, 1000)), draw(st.integers(1, 5))
    mapping: dict[str, Any] = {
        "source": source,
        "function": function,
        "batch_size": batch_size,
        "batching_window": window,
        "report_batch_item_failures": draw(st.booleans()),
        "single_poller_batching": draw(st.booleans()),
    }
    mode = draw(st.sampled_from(["capped", "standard", "provisioned"]))
    if mode == "capped":
        mapping["maximum_concurrency"] = draw(st.integers(2, 20))
    elif mode == "provisioned":
        minimum = draw(st.integers(2, 3))
        mapping["provisioned_pollers"] = {
            "minimum": minimum,
            "maximum": draw(st.integers(minimum, 4)),
            "invokes_per_poller": draw(st.sampled_from([1, 3, 10])),
            "bytes_per_second": draw(st.sampled_from(["64KB", "1MB"])),
            "per_minute": draw(st.sampled_from([0, 100, 1000])),
            "scale_down_per_minute": draw(st.sampled_from([0, 60, 1000])),
        }
    preset = draw(st.sampled_from(["current", "legacy", "custom", "custom"]))
    if preset == "custom":
        ceiling = draw(st.integers(1, 20))
        mapping["poller_scaling"] = {
            "initial": draw(st.integers(1, ceiling)),
            "per_minute": draw(st.sampled_from([0, 30, 300, 1200])),
            "ceiling": ceiling,
            "min_pollers": draw(st.integers(1, ceiling)),
            "idle_min_pollers": draw(st.integers(1, 3)),
            "idle_after": draw(st.sampled_from([0, 10, 300])),
            "scale_down_per_minute": draw(st.sampled_from([0, 60, 600])),
            "scale_down_window": draw(st.sampled_from([0, 5, 60])),
            "tick": draw(st.sampled_from([0.5, 1, 3])),
        }
    else:
        mapping["poller_scaling"] = preset
    if draw(st.booleans()):
        mapping["error_backoff"] = {
            "enabled": draw(st.booleans()),
            "at_one_percent": draw(st.sampled_from([0.2, 0.42, 1.0])),
            "window": draw(st.sampled_from([5, 60])),
            "hold_from": draw(st.sampled_from([0.0, 0.01, 1.0])),
        }
    if draw(st.booleans()):
        mapping["throttle_retry"] = {
            "initial": draw(st.sampled_from([0.2, 1, 3])),
            "multiplier": draw(st.sampled_from([1, 2, 3])),
            "maximum": draw(st.sampled_from([1, 30])),
        }
    if draw(st.booleans()):
        mapping["polling"] = {"wait_time": draw(st.integers(1, 20)), "max_messages": draw(st.integers(1, 10))}
    return mapping


@st.composite
def sqs_scenarios(
    draw: st.DrawFn, *, v5: bool = False, tight_scaling: bool = True, rate_limited: bool = False
) -> Scenario:
    """A small random SQS scenario.

    ``v5``: every mapping has a maximum concurrency and each function's reservation covers the sum of
    its mappings' caps (AWS's V5 condition). ``tight_scaling``: sometimes shrink the scaling-rate
    buckets so that they bind within a short run. ``rate_limited``: always set a low account
    invocation rate quota (otherwise only sometimes).
    """
    duration = draw(st.integers(30, 300))
    topology, n_functions = TOPOLOGIES[draw(st.sampled_from(list(TOPOLOGIES)))]
    functions = {f"f{i}": _function(draw) for i in range(n_functions)}
    mappings = [_mapping(draw, q, f) for q, fs in topology.items() for f in fs]

    account: dict[str, Any] = {"scaling": draw(st.sampled_from(["2023", "legacy"]))}
    if tight_scaling and draw(st.booleans()):
        account |= {
            "function_scale_environments": draw(st.integers(1, 10)),
            "function_scale_period": draw(st.sampled_from([1, 5, 10])),
            "legacy_burst": draw(st.integers(1, 10)),
            "legacy_refill": f"{draw(st.sampled_from([6, 60, 300]))}/m",
        }
    if rate_limited or (not v5 and draw(st.integers(0, 3)) == 0):
        # A low invoke-rate quota (AWS's default, 10 x the concurrency limit, binds only when that is
        # small). Not with ``v5``: V5 mappings are never throttled by concurrency, but the rate binds.
        account["invocation_rate_limit"] = draw(st.sampled_from([1, 2, 2.5, 5, 10, 30]))
    if v5:
        for fname, fn in functions.items():
            mine = [m for m in mappings if m["function"] == fname]
            for m in mine:
                m.pop("provisioned_pollers", None)  # V5 is about capped standard mappings
                m["maximum_concurrency"] = draw(st.integers(2, 20))
            fn["reserved_concurrency"] = sum(m["maximum_concurrency"] for m in mine) + draw(st.integers(0, 3))
    else:
        # A small account limit makes the account cap bind; nothing then has to stay unreserved.
        small = draw(st.booleans())
        limit = draw(st.integers(2, 30)) if small else 1000
        keep = 0 if small else 100
        account |= {"concurrency_limit": limit, "unreserved_minimum": keep}
        room = limit - keep
        for fn in functions.values():  # reservations must fit in what may be reserved
            reserved = fn.get("reserved_concurrency")
            if reserved is not None:
                if reserved > room:
                    del fn["reserved_concurrency"]
                else:
                    room -= reserved
    for fn in functions.values():
        # Provisioned concurrency fits within the reservation, or within what is left unreserved. The
        # provisioned concurrency of all unreserved functions together must fit too: AWS takes it
        # out of the unreserved pool and esmsim rejects scenarios where it does not (see
        # test_provisioned_concurrency_of_unreserved_functions_fits_the_account).
        reserved = fn.get("reserved_concurrency")
        if v5 or reserved is not None:
            fn["provisioned_concurrency"] = draw(st.integers(0, min(3, reserved or 0)))
        else:
            fn["provisioned_concurrency"] = draw(st.integers(0, max(0, min(3, room))))
            room -= fn["provisioned_concurrency"]

    sources: dict[str, Any] = {}
    for q, fs in topology.items():
        # AWS: the visibility timeout must be at least the timeout of every function reading the queue.
        # Batching windows may be longer than it; records then stay causal
        # (test_window_longer_than_the_visibility_timeout_keeps_records_causal).
        longest = max(functions[f]["timeout"] for f in fs)
        sources[q] = {
            "type": "sqs",
            "visibility_timeout": longest + draw(st.sampled_from([0, 0, 3, 30])),
            "retention": draw(st.sampled_from([60, 90, 345600])),
            "max_receive_count": draw(st.one_of(st.none(), st.integers(1, 5))),
            "delivery_delay": draw(st.sampled_from([0, 0, 2])),
            "traffic": _traffic(draw, duration),
        }
    raw = {
        "name": "property",
        "duration": duration,
        "warmup": draw(st.sampled_from([0, 0, duration // 4])),
        "seed": draw(st.integers(0, 2**16)),
        "account": account,
        "functions": functions,
        "sources": sources,
        "mappings": mappings,
    }
    return Scenario.model_validate(raw)


# ------------------------------------------------------------------------------------------ helpers


def invoke_rate_limit(s: Scenario) -> float:
    """The account's invoke-rate quota: as set, or AWS's default of 10 x the concurrency limit."""
    a = s.account
    return (
        float(a.invocation_rate_limit) if a.invocation_rate_limit is not None else 10.0 * a.concurrency_limit
    )


def admissions_in_window(starts: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Admissions (sorted ``starts``) in the sliding 1 s window (at - 1, at] ending at each of ``at``."""
    return np.searchsorted(starts, at, side="right") - np.searchsorted(starts, at - 1.0, side="right")


def _assert_token_bucket(times: np.ndarray, capacity: float, refill_per_s: float) -> None:
    """At most ``capacity + refill * τ`` of the sorted ``times`` in any closed window of length τ.

    For events i <= j that is (j - i + 1) <= capacity + refill (t_j - t_i), i.e. with
    a_k = k - refill t_k: max over i <= j of a_j - a_i + 1 <= capacity.
    """
    if times.size == 0:
        return
    a = np.arange(times.size) - refill_per_s * times
    worst = float(np.max(a - np.minimum.accumulate(a))) + 1.0
    assert worst <= capacity + 1e-6, (worst, capacity)


def expected_arrivals(s: Scenario, name: str) -> float:
    """Records a source's traffic offers over the run, on average (the initial backlog aside)."""
    times, rates = rate_profile(s.sources[name].traffic, s.duration)
    return cumulative_rate_at(times, rates, s.duration)


def sqs_mappings(s: Scenario) -> list[SqsMapping]:
    """The scenario's mappings (all SQS here)."""
    out = []
    for m in s.mappings:
        assert isinstance(m, SqsMapping)
        out.append(m)
    return out


def queue(s: Scenario, name: str) -> SqsSource:
    """The queue called ``name``."""
    source = s.sources[name]
    assert isinstance(source, SqsSource)
    return source


def mapping_indices(s: Scenario, source: str) -> list[int]:
    """The mappings reading ``source``."""
    return [i for i, m in enumerate(s.mappings) if m.source == source]


def invocations_of_function(result: RunResult, name: str) -> pd.DataFrame:
    """The invocations of function ``name``, in start order."""
    table = result.invocations
    return table[table["function"].astype(str) == name].reset_index(drop=True)


# ------------------------------------------------------------------------------------------ properties


@SETTINGS
@given(sqs_scenarios())
def test_conservation_of_records(s: Scenario) -> None:
    result = traced(s)
    assert_conserved(result)  # recounts the records table against the summary and the time series
    summary = result.summary
    assert summary["records_dropped"] == 0  # SQS never drops: it redrives or expires
    table = result.records
    # A queue's records count once, however many mappings read it: one consumer per queue.
    assert set(table["consumer"].astype(str)) <= set(s.sources)
    assert sum(len(records_of(result, name)) for name in s.sources) == len(table) == summary["records_in"]
    for name in s.sources:
        rec = records_of(result, name)
        assert (rec["source"].astype(str) == name).all()
        # Numbered in arrival order, the initial backlog first: 0, 1, 2 ... in order of sending.
        np.testing.assert_array_equal(rec["id"], np.arange(len(rec)))
        assert (np.diff(rec["sent_s"].to_numpy()) >= 0).all(), name
        assert (rec["shard"] == -1).all()
        assert (rec["key"] == -1).all()
        state = rec["state"].astype(str)
        assert (state != "dropped").all()
        assert (rec["receives"] >= 0).all()
        # A message is processed, dead-lettered or in flight only after it was received.
        assert (rec.loc[state.isin(["succeeded", "dlq", "in_flight"]), "receives"] >= 1).all(), name
    # The queues' gauges keep the same books: never negative.
    ts = result.timeseries
    assert ts["ApproximateNumberOfMessagesVisible"].min() >= -1e-9
    assert ts["ApproximateNumberOfMessagesNotVisible"].min() >= -1e-9
    # Every level change came before its minute was folded (arrivals the queues held back too),
    # so the per-minute maxima are exact.
    assert result.diagnostics["late_level_changes"] == 0


@SETTINGS
@given(sqs_scenarios())
def test_no_concurrency_cap_is_ever_exceeded(s: Scenario) -> None:
    result = traced(s)
    inv, summary, ts = result.invocations, result.summary, result.timeseries
    limit = s.account.concurrency_limit
    assert peak_concurrency(inv) <= limit
    reserved_total = sum(f.reserved_concurrency or 0 for f in s.functions.values())
    unreserved = []
    for name, spec in s.functions.items():
        concurrency = peak_concurrency(invocations_of_function(result, name))
        if spec.reserved_concurrency is not None:
            assert concurrency <= spec.reserved_concurrency, name
        else:
            unreserved.append(name)
    # Functions without a reservation share what the others did not reserve.
    shared = inv[inv["function"].astype(str).isin(unreserved)]
    assert peak_concurrency(shared) <= limit - reserved_total
    # Every running invocation holds an environment: minute by minute, the time-weighted mean of
    # environments alive is at least that of invocations running (and never negative).
    assert ts["Environments"].min() >= -1e-9
    assert (ts["Environments"] >= ts["ConcurrencyMean"] - 1e-9).all()
    assert summary["environments_max"] >= summary["concurrency_max"]
    fleet = event_pollers = 0
    for i, m in enumerate(sqs_mappings(s)):
        concurrency = peak_concurrency(invocations_of(result, i))
        ceiling = m.poller_scaling.ceiling
        provisioned = m.provisioned_pollers
        if provisioned is not None:  # provisioned mode: the maximum event pollers' invokes
            ceiling = provisioned.maximum * provisioned.invokes_per_poller
            event_pollers += provisioned.maximum
        cap = m.maximum_concurrency
        assert concurrency <= ceiling, i
        if cap is not None:
            assert concurrency <= cap, i
        fleet += min(ceiling, cap) if cap is not None else ceiling
    assert summary["event_pollers_max"] <= event_pollers
    # Pollers never exceed their ceilings and caps; one invocation at a time per poller.
    assert ts["Pollers"].min() >= -1e-9
    assert summary["pollers_max"] <= fleet
    assert summary["concurrency_max"] <= summary["pollers_max"]
    assert (ts["ConcurrencyMean"] <= ts["Pollers"] + 1e-9).all()


@SETTINGS
@given(sqs_scenarios())
def test_summary_and_time_series_agree_with_the_tables(s: Scenario) -> None:
    result = traced(s)
    summary, ts, inv, thr = result.summary, result.timeseries, result.invocations, result.throttles
    # One row per invocation and per throttled invoke, each with one of AWS's throttle reasons.
    assert len(inv) == summary["invocations"] == ts["Invocations"].sum()
    assert len(thr) == summary["throttles"] == ts["Throttles"].sum()
    assert set(thr["reason"].astype(str)) <= set(REASONS)
    assert summary["concurrency_max"] == peak_concurrency(inv)
    # Time-weighted mean concurrency: the busy time after the warm-up over the time after it.
    start, end = inv["start_s"].to_numpy(), inv["end_s"].to_numpy()
    busy = float(np.sum(np.maximum(np.minimum(end, s.duration) - np.maximum(start, s.warmup), 0.0)))
    steady = s.duration - s.warmup
    assert abs(summary["concurrency_mean"] - busy / steady) <= 1e-9 * max(1.0, busy)
    assert summary["environments_mean"] >= summary["concurrency_mean"] - 1e-9
    assert ts["ConcurrentExecutions"].max() == summary["concurrency_max"]
    # Errors are thrown errors and timeouts; cold starts are the invocations that ran Init.
    outcome, environment = inv["outcome"].astype(str), inv["environment"].astype(str)
    assert set(outcome) <= {"success", "partial", "error", "timeout"}
    assert set(environment) <= {"warm", "cold", "provisioned", "reinit", "provisioned_reinit"}
    errors = int(outcome.isin(["error", "timeout"]).sum())
    assert summary["invocation_errors"] == errors == ts["Errors"].sum()
    np.testing.assert_array_equal(
        inv["cold_start"], environment.isin(["cold", "reinit", "provisioned_reinit"])
    )
    assert summary["cold_starts"] == inv["cold_start"].sum() == ts["ColdStarts"].sum()
    assert summary["provisioned_invocations"] == environment.isin(["provisioned", "provisioned_reinit"]).sum()
    if len(inv):
        assert summary["batch_size_mean"] == pytest.approx(inv["records"].mean(), rel=1e-12)
        assert summary["duration_mean_ms"] == pytest.approx(inv["run_s"].mean() * 1000, rel=1e-9)
    # Per-minute counts add up to the run's.
    assert ts["RecordsSucceeded"].sum() == summary["records_succeeded"]
    assert ts["RecordsDLQ"].sum() == summary["records_dlq"]
    assert ts["RecordsExpired"].sum() == summary["records_expired"]
    # Per function and per mapping, the resources table and the mapping time series count the same rows.
    resources = result.resources.set_index(["kind", "name"])
    for name in s.functions:
        mine = invocations_of_function(result, name)
        assert resources.loc[("function", name), "invocations"] == len(mine)
        assert resources.loc[("function", name), "cold_starts"] == mine["cold_start"].sum()
        assert resources.loc[("function", name), "throttles"] == (thr["function"].astype(str) == name).sum()
    per_mapping = result.mapping_timeseries.groupby("mapping", observed=True)
    for i in range(len(s.mappings)):
        mine = invocations_of(result, i)
        label = f"mappings[{i}]: {s.mappings[i].source} -> {s.mappings[i].function}"
        assert resources.loc[("mapping", label), "invocations"] == len(mine)
        assert per_mapping["Invocations"].sum()[label] == len(mine)
        assert per_mapping["Throttles"].sum()[label] == (thr["mapping"].astype(str) == label).sum()
    # Every succeeded record was in an invocation that succeeded (or reported item failures).
    ran_ok = outcome.isin(["success", "partial"])
    assert summary["records_succeeded"] <= inv.loc[ran_ok, "records"].sum()
    # Throttle reasons match the limit that applies to the function.
    for name, reason in zip(thr["function"].astype(str), thr["reason"].astype(str), strict=True):
        spec = s.functions[name]
        if reason == RESERVED_LIMIT:
            assert spec.reserved_concurrency is not None
        elif reason == ACCOUNT_LIMIT:
            assert spec.reserved_concurrency is None


@SETTINGS
@given(sqs_scenarios(v5=True, tight_scaling=False))
def test_v5_caps_within_the_reservation_are_never_throttled(s: Scenario) -> None:
    # AWS V5: when the maximum concurrency of a function's SQS mappings adds up to no more than its
    # reserved concurrency, the mappings stop reading at their caps and the function is never throttled.
    for name, fn in s.functions.items():
        caps = [m.maximum_concurrency or 0 for m in sqs_mappings(s) if m.function == name]
        assert sum(caps) <= (fn.reserved_concurrency or 0)
        assert sum(caps) <= 1000
    # (Nor by the invoke-rate quota, AWS's default 10,000 a second here, which a few thousand
    # records cannot reach.)
    assert s.account.invocation_rate_limit is None
    result = traced(s)
    assert result.throttles.empty
    assert result.summary["throttles"] == 0


@SETTINGS
@given(sqs_scenarios())
def test_cold_starts_respect_the_scaling_rate(s: Scenario) -> None:
    inv = traced(s).invocations
    # Only a new environment takes a token; Init again in a reset one (reinit) does not.
    new = inv[inv["environment"].astype(str) == "cold"]
    a = s.account
    if a.scaling == "2023":
        # Per function: a bucket of function_scale_environments refilled over function_scale_period
        # (1,000 per 10 s by default: 1,000 + 100 τ in any window τ).
        for name in s.functions:
            mine = new[new["function"].astype(str) == name]
            _assert_token_bucket(
                np.sort(mine["start_s"].to_numpy()),
                a.function_scale_environments,
                a.function_scale_environments / a.function_scale_period,
            )
    else:
        # Legacy: one account-wide burst bucket shared by every function.
        _assert_token_bucket(np.sort(new["start_s"].to_numpy()), a.legacy_burst, a.legacy_refill)


def _size_bounds(s: Scenario, i: int) -> tuple[float, float]:
    """The least and most payload bytes one record of ``mappings[i]`` can carry (size + metadata)."""
    mappings = sqs_mappings(s)
    source = queue(s, mappings[i].source)
    # The largest record overhead of the queue's mappings applies.
    overhead = max(mappings[j].record_overhead for j in mapping_indices(s, mappings[i].source))
    size = source.traffic.record_size
    cut = source.max_message_size
    low = {"constant": getattr(size, "value", 0.0), "uniform": getattr(size, "low", 0.0)}.get(size.dist, 0.0)
    return min(low, cut) + overhead, min(size.upper_bound(), cut) + overhead


@SETTINGS
@given(sqs_scenarios())
def test_every_invocation_fits_its_batch_size_payload_and_timeout(s: Scenario) -> None:
    result = traced(s)
    for i, m in enumerate(s.mappings):
        mine = invocations_of(result, i)
        records, nbytes = mine["records"].to_numpy(), mine["bytes"].to_numpy()
        assert np.all(records >= 1)
        assert np.all(records <= m.batch_size)
        # The 6 MB payload limit: every batch's records plus event metadata fit.
        assert np.all(nbytes <= PAYLOAD_LIMIT_BYTES)
        # ... and the payload is its records' sizes plus metadata.
        low, high = _size_bounds(s, i)
        assert np.all(nbytes >= records * low * (1 - 1e-12)), i
        assert np.all(nbytes <= records * high * (1 + 1e-12)), i
        assert (mine["shard"] == -1).all()
        assert (mine["lane"] == -1).all()
        assert mine["iterator_age_s"].isna().all()  # SQS has no iterator age
    inv = result.invocations
    timeout = inv["function"].astype(str).map({n: f.timeout for n, f in s.functions.items()}).to_numpy(float)
    np.testing.assert_allclose(inv["end_s"] - inv["start_s"], inv["init_s"] + inv["run_s"], atol=1e-9)
    assert np.all(inv["run_s"] <= timeout)
    assert np.all(inv["init_s"] >= 0)
    assert (inv.loc[~inv["cold_start"], "init_s"] == 0).all()  # Init runs only on a cold start
    timed_out = (inv["outcome"].astype(str) == "timeout").to_numpy()
    np.testing.assert_array_equal(inv["run_s"].to_numpy()[timed_out], timeout[timed_out])


@SETTINGS
@given(sqs_scenarios())
def test_receives_never_exceed_max_receive_count(s: Scenario) -> None:
    result = traced(s)
    total = 0
    for name in s.sources:
        source = queue(s, name)
        rec = records_of(result, name)
        receives = rec["receives"].to_numpy()
        total += int(receives.sum())
        mrc = source.max_receive_count
        dlq = (rec["state"].astype(str) == "dlq").to_numpy()
        if mrc is None:
            assert not dlq.any()
        else:
            # A message goes to the DLQ at the end of its max_receive_count-th receive.
            np.testing.assert_array_equal(receives[dlq], mrc)
            assert receives.max(initial=0) <= mrc
        # Every record an invocation carried was received for it (some receives never reach one).
        invoked = sum(int(invocations_of(result, i)["records"].sum()) for i in mapping_indices(s, name))
        assert receives.sum() >= invoked, name
    # CloudWatch's NumberOfMessagesReceived counts the same receives, once a receive has handed its
    # messages over as a batch: a receive still gathering a batch when the run ends may not count yet.
    counted = result.timeseries["NumberOfMessagesReceived"].sum()
    assert total - result.summary["records_in_flight_end"] <= counted <= total


@SETTINGS
@given(sqs_scenarios())
def test_records_finish_after_they_arrive_and_within_the_run(s: Scenario) -> None:
    result = traced(s)
    for name in s.sources:
        source = queue(s, name)
        rec = records_of(result, name)
        state = rec["state"].astype(str)
        assert set(state) <= {"waiting", "in_flight", "succeeded", "dlq", "expired"}
        final = rec["done_s"].notna()
        assert (final == ~state.isin(["waiting", "in_flight"])).all()
        assert (rec.loc[final, "done_s"] >= rec.loc[final, "sent_s"]).all(), name
        assert (rec.loc[final, "done_s"] <= s.duration).all(), name
        # A message expires exactly when it is older than the retention period.
        expired = rec[state == "expired"]
        np.testing.assert_allclose(expired["done_s"], expired["sent_s"] + source.retention)
        # A message is delivered only after its delivery delay.
        ok = rec[state == "succeeded"]
        assert (ok["done_s"] >= ok["sent_s"] + source.delivery_delay).all(), name


@SETTINGS
@given(sqs_scenarios(rate_limited=True))
def test_the_invoke_rate_quota_holds_in_every_second(s: Scenario) -> None:
    result = traced(s)
    limit = invoke_rate_limit(s)
    starts = np.sort(result.invocations["start_s"].to_numpy())
    # No sliding 1 s window (t - 1, t] ever holds more admitted invocations than the quota (every
    # function of the account together, provisioned concurrency included).
    assert admissions_in_window(starts, starts).max(initial=0) <= limit
    # An invoke is refused for the rate only when one more admission would pass the quota.
    thr = result.throttles
    refused = thr.loc[thr["reason"].astype(str) == RATE_LIMIT, "time_s"].to_numpy()
    assert np.all(admissions_in_window(starts, refused) + 1 > limit)


def test_a_binding_invoke_rate_quota_throttles_with_its_reason() -> None:
    # 2,000 messages waiting, batch size 1, 100 ms invocations: five pollers alone could invoke 50
    # times a second; the account accepts 5 a second.
    raw = {"duration": 30, "sources": {"q": {"traffic": {"initial_backlog": 2000}}}}
    limited = traced(scenario({**raw, "account": {"invocation_rate_limit": 5}}, {"batch_size": 1}))
    starts = np.sort(limited.invocations["start_s"].to_numpy())
    assert admissions_in_window(starts, starts).max() == 5
    reasons = limited.throttles["reason"].astype(str)
    assert (reasons == RATE_LIMIT).any()
    assert len(limited.invocations) <= 5 * 30
    # AWS's default quota, 10 x the concurrency limit (10,000 a second), does not bind here.
    default = traced(scenario(raw, {"batch_size": 1}))
    assert not (default.throttles["reason"].astype(str) == RATE_LIMIT).any()
    assert len(default.invocations) > 5 * 30


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_timeouts_reset_the_environment(data: st.DataObject) -> None:
    # Every invocation runs 2 s against a 1 s timeout. Idle environments outlive the run.
    pc = data.draw(st.integers(0, 2), label="provisioned")
    function: dict[str, Any] = {
        "timeout": 1,
        "duration": "2s",
        "cold_start": data.draw(st.sampled_from(["0s", "100ms"]), label="cold_start"),
        "keep_alive": 600,
        "provisioned_concurrency": pc,
    }
    if data.draw(st.booleans(), label="reserved"):
        function["reserved_concurrency"] = data.draw(
            st.integers(max(1, pc), 10), label="reserved_concurrency"
        )
    raw: dict[str, Any] = {
        "duration": data.draw(st.integers(30, 200), label="duration"),
        "seed": data.draw(st.integers(0, 1000), label="seed"),
        "functions": {"f": function},
        "sources": {
            "q": {
                "traffic": {
                    "rate": data.draw(st.floats(0.5, 10), label="rate"),
                    "initial_backlog": data.draw(st.integers(20, 200), label="backlog"),
                }
            }
        },
    }
    ceiling = data.draw(st.integers(1, 10), label="pollers")
    mapping = {
        "batch_size": data.draw(st.integers(1, 10), label="batch_size"),
        "poller_scaling": {"initial": 1, "ceiling": ceiling, "min_pollers": 1, "per_minute": 60},
    }
    # AWS: a timeout restarts the runtime, so the next invocation in that environment runs Init.
    reset = traced(scenario(raw, mapping))
    inv = reset.invocations
    assert len(inv) > 0
    assert (inv["outcome"].astype(str) == "timeout").all()
    environment = inv["environment"].astype(str)
    assert not (environment == "warm").any()  # every environment was reset before it was used again
    assert (environment == "provisioned").sum() <= pc  # each provisioned environment once, initialised
    if pc == 0:
        assert inv["cold_start"].mean() >= 0.9
    # Kept warm after a timeout, a function cold-starts only when it adds an environment.
    kept = traced(scenario(merge(raw, {"functions": {"f": {"reset_on_timeout": False}}}), mapping))
    inv = kept.invocations
    environment = inv["environment"].astype(str)
    assert set(environment) <= {"warm", "cold", "provisioned"}
    assert (environment == "cold").sum() == inv["cold_start"].sum() == kept.summary["environments_max"] - pc


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sqs_scenarios())
def test_results_do_not_depend_on_how_traffic_is_generated_in_blocks(s: Scenario) -> None:
    runs = []
    for chunk in (1 << 10, 1 << 20):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(traffic_module, "CHUNK", chunk)
            runs.append(simulate(s, tables=False))
    assert summary_differences(runs[0].summary, runs[1].summary, rel=1e-12) == []


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sqs_scenarios(), st.integers(0, 1000))
def test_same_seed_same_results(s: Scenario, seed: int) -> None:
    first, second = simulate(s, seed=seed), traced(s, seed)
    # Tracing a run changes nothing in it.
    assert summary_differences(first.summary, second.summary) == []
    pd.testing.assert_frame_equal(first.timeseries, second.timeseries)
    pd.testing.assert_frame_equal(first.resources, second.resources)
    pd.testing.assert_frame_equal(first.mapping_timeseries, second.mapping_timeseries)
    third = traced(s, seed)
    assert summary_differences(second.summary, third.summary) == []
    pd.testing.assert_frame_equal(second.invocations, third.invocations)
    pd.testing.assert_frame_equal(second.throttles, third.throttles)
    pd.testing.assert_frame_equal(second.records, third.records)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sqs_scenarios(), st.integers(0, 1000))
def test_another_replication_sees_other_arrivals(s: Scenario, seed: int) -> None:
    # Sources with random traffic of at least 20 expected records (two empty runs are then unlikely
    # enough, e^-40, never to happen).
    poisson = [
        name
        for name, src in s.sources.items()
        if src.traffic.pattern == "poisson" and expected_arrivals(s, name) >= 20
    ]
    assume(poisson)
    a, b = traced(s, seed, replication=0), traced(s, seed, replication=1)
    for name in poisson:
        x, y = records_of(a, name)["sent_s"].to_numpy(), records_of(b, name)["sent_s"].to_numpy()
        assert x.shape != y.shape or not np.array_equal(x, y), name


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sqs_scenarios(), st.data())
def test_common_random_numbers_across_mapping_parameters(s: Scenario, data: st.DataObject) -> None:
    # Change only what a sweep changes: batch size (and window), maximum concurrency, function memory.
    raw = s.model_dump(mode="json", by_alias=True)  # by alias: see test_resolved_scenario_in_a_result_reloads
    for m in raw["mappings"]:
        m["batch_size"] = data.draw(st.integers(1, 10))
        m["batching_window"] = data.draw(st.sampled_from([0, m["batching_window"]]))
        m["maximum_concurrency"] = data.draw(st.sampled_from([None, 2, 7]))
        if m["maximum_concurrency"] is not None:
            m["provisioned_pollers"] = None  # the two modes exclude each other
    for fn in raw["functions"].values():
        # The same code at more memory: durations were measured at the old size and now run faster.
        fn["measured_at_memory_mb"] = fn["memory_mb"]
        fn["memory_mb"] = min(10240, fn["memory_mb"] * data.draw(st.sampled_from([1, 2, 8])))
    other = Scenario.model_validate(raw)
    a, b = traced(s), traced(other)
    for name in s.sources:
        x, y = records_of(a, name), records_of(b, name)
        np.testing.assert_array_equal(x["sent_s"], y["sent_s"])
        np.testing.assert_array_equal(x["poison_draw"], y["poison_draw"])  # NaN where no poison is drawn


@settings(max_examples=100, deadline=None)
@given(sqs_scenarios())
def test_resolved_scenario_reloads_to_the_same_scenario(s: Scenario) -> None:
    # Every default filled in, dumped with the keys a file uses, validates back to the same scenario.
    assert Scenario.model_validate(s.model_dump(mode="json", by_alias=True)) == s


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 3000), max_size=30),
    st.integers(0, 20_000),
    st.integers(0, 5000),
)
def test_fit_payload_takes_the_longest_prefix_that_fits(sizes: list[int], room: int, before: int) -> None:
    # Running totals of a source's payloads, of which ``before`` bytes precede the candidates.
    cumulative = before + np.cumsum(np.asarray(sizes, dtype=float))
    k, nbytes, capped = fit_payload(cumulative, float(room), float(before))
    prefix = np.concatenate([[0], np.cumsum(sizes)])
    fits = int(np.count_nonzero(prefix[1:] <= room))  # payloads grow: the fitting prefixes come first
    assert k == fits
    assert nbytes == prefix[k]
    assert capped == (k < len(sizes))


# ------------------------------------------------------------------------------------------ regressions


def test_payload_cap_never_grows_a_batch_past_its_batch_size() -> None:
    # Found by test_every_invocation_fits_its_batch_size_payload_and_timeout; fixed upstream in 81851f8
    # (SqsQueue.take: k = min(k, fits)).
    # Ten 1 KB-or-1 MB messages wait at t=0, then one arrives every second; batch size 10, no window.
    # The queue holds 1 MB messages, so 10 x 1 MB > 6 MB engages the payload check; the first ten
    # messages (one 1 MB, nine 1 KB) fit in 6 MB, so the first batch is those ten, returned by the
    # receive a 10 ms round trip after t=0.
    s = scenario(
        {
            "duration": 60,
            "sources": {
                "q": {
                    "traffic": {
                        "initial_backlog": 10,
                        "rate": "1/s",
                        "pattern": "constant",
                        "record_size": {"dist": "empirical", "values": ["1KB"] * 9 + ["1MB"]},
                    }
                }
            },
        }
    )
    result = traced(s)
    inv = result.invocations
    # The seed draws 1 MB messages (no record overhead here): the payload check is engaged.
    assert (inv["bytes"] >= 1024 * 1024).any()
    assert inv["start_s"][0] == pytest.approx(0.01)
    assert inv["records"][0] == 10  # (was 36, with the 26 messages that arrive at t = 1..26)
    assert inv["bytes"][0] == 1024 * 1024 + 9 * 1024  # one 1 MB and nine 1 KB messages
    rec = records_of(result, "q")
    ok = rec[rec["state"].astype(str) == "succeeded"]
    assert (ok["done_s"] >= ok["sent_s"]).all()  # (26 finished before they were sent)


# ----------------------------------------------------------------------------------- regression tests
# Each test below reproduces a bug the properties above once found, pinned as an exact scenario.


def test_resolved_scenario_in_a_result_reloads() -> None:
    s = scenario({"functions": {"f": {"duration": {"dist": "exponential", "mean": "20ms"}}}})
    saved = simulate(s).to_dict()["scenario"]
    assert Scenario.model_validate(saved) == s


def test_window_longer_than_the_visibility_timeout_keeps_records_causal() -> None:
    # One poller, batch size 2, a 20 s window, visibility timeout 10 s, maxReceiveCount 1. Records
    # arrive at 15 and 30: the window opens at 15 and the batch fills at 30; the invocation runs
    # 30-30.1 and succeeds. The message received at 30 has a visibility timeout until 40, so it is
    # deleted at 30.1. (The one received at 15 may time out at 25 under the model: that is allowed.)
    s = scenario(
        {
            "duration": 40,
            "sources": {
                "q": {
                    "visibility_timeout": 10,
                    "max_receive_count": 1,
                    "traffic": {"rate": "4/m", "pattern": "constant"},
                }
            },
        },
        one_poller_window(2, 20),
    )
    result = traced(s)
    rec = records_of(result, "q")
    np.testing.assert_array_equal(rec["sent_s"], [15, 30])
    np.testing.assert_array_equal(result.invocations["start_s"], [30])
    assert rec["done_s"][1] >= rec["sent_s"][1]  # actual: dead-lettered at 25, before it was sent
    assert rec["state"][1] == "succeeded"
    assert rec["done_s"][1] == pytest.approx(30.1)


def test_provisioned_concurrency_of_unreserved_functions_fits_the_account() -> None:
    # Account limit 5 (nothing kept unreserved), two functions without reservations, each with 3
    # provisioned environments: 6 > 5. AWS rejects the second provisioned concurrency configuration;
    # esmsim must reject the scenario.
    fn = {"timeout": 10, "duration": "5s", "cold_start": "0s", "provisioned_concurrency": 3}
    queue = {"type": "sqs", "visibility_timeout": 60, "traffic": {"initial_backlog": 3}}
    raw = {
        "duration": 30,
        "account": {"concurrency_limit": 5, "unreserved_minimum": 0},
        "functions": {"a": fn, "b": fn},
        "sources": {"qa": queue, "qb": queue},
        "mappings": [
            {"source": "qa", "function": "a", "batch_size": 1},
            {"source": "qb", "function": "b", "batch_size": 1},
        ],
    }
    # Rejected, as AWS does (it was accepted and ran 6 at once).
    with pytest.raises(ScenarioError, match="exceeds the unreserved concurrency available"):
        Scenario.model_validate(raw)


def test_batching_window_stops_before_the_message_that_would_pass_6_mb() -> None:
    # 700 KB messages (no metadata overhead here), ten a second, batch size 9, a 5 s window. Eight
    # messages make 5.47 MiB; a ninth would make 6.15 MiB, over Lambda's 6 MB payload limit, so the
    # batch is invoked with 8 when the ninth arrives (t=0.9), as it is with batch size 10.
    s = scenario(
        {
            "duration": 3,
            "sources": {"q": {"traffic": {"rate": "10/s", "pattern": "constant", "record_size": "700KB"}}},
        },
        one_poller_window(9, 5),
    )
    inv = traced(s).invocations
    assert inv["start_s"][0] == pytest.approx(0.9)
    assert inv["records"][0] == 8  # actual: 9 messages, 6.15 MiB
    assert inv["bytes"][0] == 8 * 700 * 1024


def test_item_failures_reported_after_the_visibility_timeout() -> None:
    # Found by the properties above (a crash, IndexError in SqsQueue._complete_overrun): one poison
    # message, ReportBatchItemFailures, and an invocation (0.2 s Init + 1.9 s) that ends after the
    # 2 s visibility timeout. The message reappears at 2 s while the first invocation still runs;
    # that invocation then reports it failed. It is never deleted: it fails on every receive.
    s = scenario(
        {
            "duration": 10,
            "functions": {
                "f": {
                    "timeout": 2,
                    "duration": "1900ms",
                    "cold_start": "200ms",
                    "errors": {"poison_record_rate": 1.0},
                }
            },
            "sources": {"q": {"visibility_timeout": 2, "traffic": {"initial_backlog": 1}}},
        },
        {"batch_size": 1, "report_batch_item_failures": True},
    )
    result = traced(s)
    assert_conserved(result)
    rec = records_of(result, "q")
    assert len(rec) == 1
    assert rec["state"][0] in ("waiting", "in_flight")
    assert rec["receives"][0] >= 2  # received again once its visibility timeout passed
    assert len(result.invocations) >= 2
    assert (result.invocations["outcome"].astype(str) == "partial").all()
