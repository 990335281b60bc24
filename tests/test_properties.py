"""Properties of whole runs over small random SQS scenarios.

Each example is a complete scenario built as a dict and validated like a user's file: one or two
mappings (one queue, two queues into one function, one queue into two functions, or two separate
pairs), random batching, caps, reservations, provisioned concurrency, failures, timeouts, cold starts,
retention, redrive, poller scaling and traffic shapes. Runs are short (30-300 s, at most a few
thousand records) so that each example takes a fraction of a second.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from esmsim.errors import ScenarioError
from esmsim.metrics import observe
from esmsim.model.concurrency import ACCOUNT_LIMIT, RESERVED_LIMIT
from esmsim.model.function import COLD, PARTIAL
from esmsim.model.records import DLQ, EXPIRED, IN_FLIGHT, SUCCEEDED, WAITING
from esmsim.model.sqs_queue import PAYLOAD_LIMIT_BYTES, Batch, SqsQueue
from esmsim.model.traffic import cumulative_rate_at, rate_profile
from esmsim.observe import Level
from esmsim.run import simulate
from esmsim.scenario.scenario import Scenario
from tests.conftest import ONE_POLLER, assert_conserved, invocations, run_world, scenario

#: Most records one example's traffic may offer (rate x duration), to keep an example fast.
MAX_OFFERED = 2000

SETTINGS = settings(
    max_examples=75,
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
    if draw(st.booleans()):
        mapping["maximum_concurrency"] = draw(st.integers(2, 20))
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
            "tick": draw(st.sampled_from([0.5, 1, 3])),
        }
    else:
        mapping["poller_scaling"] = preset
    if draw(st.booleans()):
        mapping["error_backoff"] = {
            "enabled": draw(st.booleans()),
            "factor": draw(st.sampled_from([0.5, 0.9])),
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
def sqs_scenarios(draw: st.DrawFn, *, v5: bool = False, tight_scaling: bool = True) -> Scenario:
    """A small random SQS scenario.

    ``v5``: every mapping has a maximum concurrency and each function's reservation covers the sum of
    its mappings' caps (AWS's V5 condition). ``tight_scaling``: sometimes shrink the scaling-rate
    buckets so that they bind within a short run.
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
    if v5:
        for fname, fn in functions.items():
            mine = [m for m in mappings if m["function"] == fname]
            for m in mine:
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


def max_overlap(start: np.ndarray, end: np.ndarray) -> int:
    """Most intervals [start, end) open at once: an event sweep where ends sort before starts."""
    if start.size == 0:
        return 0
    times = np.concatenate([end, start])
    deltas = np.concatenate([-np.ones(end.size), np.ones(start.size)])
    order = np.lexsort((deltas, times))  # by time, then -1 before +1
    return int(np.cumsum(deltas[order]).max())


def level_values(level: Level) -> np.ndarray:
    """A level after all of its changes at each instant (every value it takes)."""
    times, _ = level.small_steps()
    points = np.unique(np.concatenate([times, *(at for at, _ in level.sorted_parts)]))
    return np.asarray(level.value(points)) if points.size else np.zeros(1)


def function_index(s: Scenario, name: str) -> int:
    return list(s.functions).index(name)


@contextmanager
def receipts() -> Iterator[dict[int, list[Batch]]]:
    """Every batch each queue forms (a receive), keyed by the queue's id."""
    formed: dict[int, list[Batch]] = {}
    original = SqsQueue.form_batch

    def form_batch(self: SqsQueue, *args: Any, **kwargs: Any) -> Batch:
        batch = original(self, *args, **kwargs)
        formed.setdefault(id(self), []).append(batch)
        return batch

    SqsQueue.form_batch = form_batch  # type: ignore[method-assign]
    try:
        yield formed
    finally:
        SqsQueue.form_batch = original  # type: ignore[method-assign]


def summary_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Keys whose values differ (NaN equals NaN: a run without latencies reports NaN percentiles)."""
    keys = sorted(a.keys() ^ b.keys())
    for key in a.keys() & b.keys():
        x, y = a[key], b[key]
        both_nan = isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)
        if not both_nan and x != y:
            keys.append(key)
    return keys


# ------------------------------------------------------------------------------------------ properties


@SETTINGS
@given(sqs_scenarios())
def test_conservation_of_records(s: Scenario) -> None:
    world = run_world(s)
    observed = observe(world)  # raises ConservationError when the books do not balance
    summary = observed.summary
    assert_conserved(world, summary, observed.timeseries)
    assert summary["records_in"] == (
        summary["records_succeeded"]
        + summary["records_dlq"]
        + summary["records_dropped"]
        + summary["records_expired"]
        + summary["records_in_flight_end"]
    )
    totals = dict.fromkeys(("waiting", "in_flight", "succeeded", "dlq", "dropped", "expired"), 0)
    for queue in world.queues.values():
        for state, n in queue.rec.state_counts().items():
            totals[state] += n
    assert summary["records_in"] == sum(len(q.rec) for q in world.queues.values())
    assert summary["records_succeeded"] == totals["succeeded"]
    assert summary["records_dlq"] == totals["dlq"]
    assert summary["records_dropped"] == totals["dropped"] == 0  # SQS never drops: it redrives or expires
    assert summary["records_expired"] == totals["expired"]
    assert summary["records_in_flight_end"] == totals["waiting"] + totals["in_flight"]
    # The queue's gauges keep the same books: never negative, and at the end every message that has
    # become visible and is not finished is either visible or in flight.
    for queue in world.queues.values():
        visible, in_flight = queue.levels(s.duration)
        assert level_values(visible).min() >= 0
        assert level_values(in_flight).min() >= 0
        at_end = np.array([s.duration])
        unfinished = np.count_nonzero((queue.rec.state < SUCCEEDED) & (queue.visible_from <= s.duration))
        assert visible.value(at_end)[0] + in_flight.value(at_end)[0] == unfinished


@SETTINGS
@given(sqs_scenarios())
def test_no_concurrency_cap_is_ever_exceeded(s: Scenario) -> None:
    world = run_world(s)
    inv = invocations(world)
    limit = s.account.concurrency_limit
    assert max_overlap(inv["start_at"], inv["end_at"]) <= limit
    reserved_total = sum(f.reserved_concurrency or 0 for f in s.functions.values())
    unreserved = np.zeros(inv["start_at"].size, dtype=bool)
    for name, spec in s.functions.items():
        mine = inv["function"] == function_index(s, name)
        concurrency = max_overlap(inv["start_at"][mine], inv["end_at"][mine])
        if spec.reserved_concurrency is not None:
            assert concurrency <= spec.reserved_concurrency, name
        else:
            unreserved |= mine
        # Every running invocation holds an environment, and environments never go negative.
        environments = world.functions[name].environments
        values = level_values(environments)
        assert values.min() >= 0, name
        # Invocations running at each start: started by then and not yet ended.
        starts = np.sort(inv["start_at"][mine])
        ends = np.sort(inv["end_at"][mine])
        running = np.searchsorted(starts, starts, side="right") - np.searchsorted(ends, starts, side="right")
        assert np.all(environments.value(starts) >= running), name
    # Functions without a reservation share what the others did not reserve.
    assert max_overlap(inv["start_at"][unreserved], inv["end_at"][unreserved]) <= limit - reserved_total
    for m in world.mappings:
        mine = inv["mapping"] == m.index
        concurrency = max_overlap(inv["start_at"][mine], inv["end_at"][mine])
        pollers = level_values(m.pollers)
        assert pollers.min() >= 0
        assert pollers.max() <= m.spec.poller_scaling.ceiling
        # One invocation at a time per poller.
        assert concurrency <= max(pollers.max(), 0)
        cap = m.spec.maximum_concurrency
        if cap is not None:
            assert concurrency <= cap
            assert pollers.max() <= cap


@SETTINGS
@given(sqs_scenarios())
def test_summary_and_time_series_agree_with_the_logs(s: Scenario) -> None:
    world = run_world(s)
    observed = observe(world)
    summary, ts = observed.summary, observed.timeseries
    inv = invocations(world)
    assert summary["concurrency_max"] == max_overlap(inv["start_at"], inv["end_at"])
    # Time-weighted mean concurrency: the busy time after the warm-up over the time after it.
    busy_from = np.maximum(inv["start_at"], s.warmup)
    busy = float(np.sum(np.maximum(np.minimum(inv["end_at"], s.duration) - busy_from, 0.0)))
    steady = s.duration - s.warmup
    assert abs(summary["concurrency_mean"] - busy / steady) <= 1e-9 * max(1.0, busy)
    assert summary["environments_mean"] >= summary["concurrency_mean"] - 1e-9
    assert ts["ConcurrentExecutions"].max() == summary["concurrency_max"]
    # Per-minute counts add up to the run's.
    assert ts["Invocations"].sum() == summary["invocations"]
    assert ts["Errors"].sum() == summary["invocation_errors"]
    assert ts["Throttles"].sum() == summary["throttles"] == len(world.throttles)
    assert ts["ColdStarts"].sum() == summary["cold_starts"]
    assert ts["RecordsSucceeded"].sum() == summary["records_succeeded"]
    assert ts["RecordsDLQ"].sum() == summary["records_dlq"]
    assert ts["RecordsExpired"].sum() == summary["records_expired"]
    # Every succeeded record was in an invocation that succeeded (or reported item failures).
    ran_ok = inv["outcome"] <= PARTIAL
    assert summary["records_succeeded"] <= inv["records"][ran_ok].sum()
    # Throttle reasons match the limit that applies to the function.
    for _, fn_index, _, reason in world.throttles:
        spec = list(s.functions.values())[int(fn_index)]
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
        caps = [m.maximum_concurrency or 0 for m in s.mappings if m.function == name]
        assert sum(caps) <= (fn.reserved_concurrency or 0)
        assert sum(caps) <= 1000
    world = run_world(s)
    assert world.throttles == []


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


@SETTINGS
@given(sqs_scenarios())
def test_cold_starts_respect_the_scaling_rate(s: Scenario) -> None:
    world = run_world(s)
    inv = invocations(world)
    cold = inv["env"] == COLD
    a = s.account
    if a.scaling == "2023":
        # Per function: a bucket of function_scale_environments refilled over function_scale_period
        # (1,000 per 10 s by default: 1,000 + 100 τ in any window τ).
        for name in s.functions:
            mine = cold & (inv["function"] == function_index(s, name))
            _assert_token_bucket(
                np.sort(inv["start_at"][mine]),
                a.function_scale_environments,
                a.function_scale_environments / a.function_scale_period,
            )
    else:
        # Legacy: one account-wide burst bucket shared by every function.
        _assert_token_bucket(np.sort(inv["start_at"][cold]), a.legacy_burst, a.legacy_refill)


@SETTINGS
@given(sqs_scenarios())
def test_every_invocation_fits_its_batch_size_and_timeout(s: Scenario) -> None:
    with receipts() as formed:
        world = run_world(s)
    inv = invocations(world)
    batch_size = np.array([m.batch_size for m in s.mappings])[inv["mapping"].astype(int)]
    timeout = np.array([f.timeout for f in s.functions.values()])[inv["function"].astype(int)]
    assert np.all(inv["records"] >= 1)
    assert np.all(inv["records"] <= batch_size)
    np.testing.assert_allclose(inv["end_at"] - inv["start_at"], inv["init_s"] + inv["run_s"], atol=1e-9)
    assert np.all(inv["run_s"] <= timeout)
    assert np.all(inv["init_s"] >= 0)
    # The 6 MB payload limit: every batch's records plus event metadata fit, as the batch says.
    for queue in world.queues.values():
        overhead = queue.overhead
        for batch in formed.get(id(queue), []):
            rows = batch.index()
            assert rows.size == batch.n
            payload = float((queue.rec.size[rows] + overhead).sum())
            assert payload <= PAYLOAD_LIMIT_BYTES
            assert abs(batch.nbytes - payload) <= 1e-9 * max(payload, 1.0)


@SETTINGS
@given(sqs_scenarios())
def test_receives_never_exceed_max_receive_count(s: Scenario) -> None:
    with receipts() as formed:
        world = run_world(s)
    for name, queue in world.queues.items():
        rec = queue.rec
        received = np.zeros(len(rec), dtype=np.int64)
        for batch in formed.get(id(queue), []):
            np.add.at(received, batch.index(), 1)
        mrc = s.sources[name].max_receive_count
        dlq = rec.state == DLQ
        if mrc is None:
            assert not dlq.any()
            continue
        # A message goes to the DLQ at the end of its max_receive_count-th receive (SqsQueue._return):
        # the receives before it each counted a retry.
        np.testing.assert_array_equal(rec.retries[dlq] + 1, mrc)
        np.testing.assert_array_equal(received[dlq], mrc)
        assert received.max(initial=0) <= mrc
        assert rec.retries.max(initial=0) <= mrc - 1


@SETTINGS
@given(sqs_scenarios())
def test_records_finish_after_they_arrive_and_within_the_run(s: Scenario) -> None:
    world = run_world(s)
    for name, queue in world.queues.items():
        rec = queue.rec
        final = rec.state >= SUCCEEDED
        assert np.all(rec.done_at[final] >= rec.arrival_at[final]), name
        assert np.all(rec.done_at[final] <= s.duration), name
        # A message expires exactly when it is older than the retention period.
        expired = rec.state == EXPIRED
        np.testing.assert_allclose(rec.done_at[expired], rec.arrival_at[expired] + s.sources[name].retention)
        ok = rec.state == SUCCEEDED
        if ok.any():
            delay = s.sources[name].delivery_delay
            assert np.all(rec.done_at[ok] >= rec.arrival_at[ok] + delay), name
        assert set(np.unique(rec.state)) <= {WAITING, IN_FLIGHT, SUCCEEDED, DLQ, EXPIRED}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sqs_scenarios(), st.integers(0, 1000))
def test_same_seed_same_results(s: Scenario, seed: int) -> None:
    first, second = simulate(s, seed=seed), simulate(s, seed=seed)
    assert summary_differences(first.summary, second.summary) == []
    pd.testing.assert_frame_equal(first.timeseries, second.timeseries)
    pd.testing.assert_frame_equal(first.resources, second.resources)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sqs_scenarios(), st.integers(0, 1000))
def test_another_replication_sees_other_arrivals(s: Scenario, seed: int) -> None:
    def expected_arrivals(traffic: Any) -> float:
        times, rates = rate_profile(traffic, s.duration)
        return cumulative_rate_at(times, rates, s.duration)

    # Sources with random traffic of at least 20 expected records (two empty runs are then unlikely
    # enough, e^-40, never to happen).
    poisson = [
        name
        for name, src in s.sources.items()
        if src.traffic.pattern == "poisson" and expected_arrivals(src.traffic) >= 20
    ]
    assume(poisson)
    a, b = run_world(s, seed, replication=0), run_world(s, seed, replication=1)
    for name in poisson:
        x, y = a.queues[name].rec.arrival_at, b.queues[name].rec.arrival_at
        assert x.shape != y.shape or not np.array_equal(x, y), name


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sqs_scenarios(), st.data())
def test_common_random_numbers_across_mapping_parameters(s: Scenario, data: st.DataObject) -> None:
    # Change only what a sweep changes: batch size (and window), maximum concurrency, function memory.
    raw = s.model_dump(mode="json", by_alias=True)  # by alias: see test_resolved_scenario_in_a_result_reloads
    for m in raw["mappings"]:
        m["batch_size"] = data.draw(st.integers(1, 10))
        m["batching_window"] = data.draw(st.sampled_from([0, m["batching_window"]]))
        m["maximum_concurrency"] = data.draw(st.sampled_from([None, 2, 7]))
    for fn in raw["functions"].values():
        # The same code at more memory: durations were measured at the old size and now run faster.
        fn["measured_at_memory_mb"] = fn["memory_mb"]
        fn["memory_mb"] = min(10240, fn["memory_mb"] * data.draw(st.sampled_from([1, 2, 8])))
    other = Scenario.model_validate(raw)
    a, b = run_world(s), run_world(other)
    for name in s.sources:
        x, y = a.queues[name].rec, b.queues[name].rec
        np.testing.assert_array_equal(x.arrival_at, y.arrival_at)
        np.testing.assert_array_equal(x.size, y.size)
        if x.draw is not None and y.draw is not None:
            np.testing.assert_array_equal(x.draw, y.draw)


@settings(max_examples=100, deadline=None)
@given(sqs_scenarios())
def test_resolved_scenario_reloads_to_the_same_scenario(s: Scenario) -> None:
    # Every default filled in, dumped with the keys a file uses, validates back to the same scenario.
    assert Scenario.model_validate(s.model_dump(mode="json", by_alias=True)) == s


# ------------------------------------------------------------------------------------------ regressions


def test_payload_cap_never_grows_a_batch_past_its_batch_size() -> None:
    # Found by test_every_invocation_fits_its_batch_size_and_timeout; fixed upstream in 81851f8
    # (SqsQueue.take: k = min(k, fits)).
    # Ten 1 KB-or-1 MB messages wait at t=0, then one arrives every second; batch size 10, no window.
    # The queue holds a 1 MB message, so 10 x 1 MB > 6 MB engages the payload check; the first ten
    # messages (one 1 MB, nine 1 KB) fit in 6 MB, so the first batch is those ten, at t=0.
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
    world = run_world(s)
    rec = world.queues["q"].rec
    assert rec.size.max() == 1024 * 1024  # the seed draws a 1 MB message: the payload check is engaged
    assert rec.size[:10].sum() < 6 * 1024 * 1024
    inv = invocations(world)
    assert inv["start_at"][0] == 0
    assert inv["records"][0] == 10  # (was 36, with the 26 messages that arrive at t = 1..26)
    ok = rec.state == SUCCEEDED
    assert np.all(rec.done_at[ok] >= rec.arrival_at[ok])  # (26 finished before they were sent)


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
        {
            "batch_size": 2,
            "batching_window": 20,
            "single_poller_batching": True,
            "poller_scaling": ONE_POLLER,
        },
    )
    world = run_world(s)
    rec = world.queues["q"].rec
    np.testing.assert_array_equal(rec.arrival_at, [15, 30])
    inv = invocations(world)
    np.testing.assert_array_equal(inv["start_at"], [30])
    assert rec.done_at[1] >= rec.arrival_at[1]  # actual: dead-lettered at 25, before it was sent
    assert rec.state[1] == SUCCEEDED
    assert rec.done_at[1] == pytest.approx(30.1)


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
        {"batch_size": 9, "batching_window": 5, "single_poller_batching": True, "poller_scaling": ONE_POLLER},
    )
    inv = invocations(run_world(s))
    assert inv["start_at"][0] == pytest.approx(0.9)
    assert inv["records"][0] == 8  # actual: 9 messages, 6.15 MiB
