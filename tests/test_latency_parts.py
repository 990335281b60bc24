"""Where latency goes: exact micro-scenarios of the latency's parts (docs/model.md §7).

A success's latency (sent to processed) splits into queued (in the source until first received,
fetched or tried), retry (lost to failed attempts), batching (waiting for the batch to close),
throttled (the batch waiting for concurrency), init (cold start) and handler. Each expected value
is derived in the comments from the same rules the micro-scenarios of test_sqs_micro.py,
test_stream_micro.py and test_async_micro.py pin; every run here also passes
``assert_latency_parts`` (parts never negative, summing to each latency, to the mean and per
minute).
"""

from __future__ import annotations

import numpy as np
import pytest

from esmsim.keys import LATENCY_PART_KEYS
from esmsim.run import simulate
from esmsim.scenario.loader import load_scenario
from tests.helpers import (
    PART_COLUMNS,
    assert_conserved,
    merge,
    one_poller_window,
    records_of,
    scenario,
    traced,
)
from tests.test_async_micro import push
from tests.test_stream_micro import READER, stream


def parts(records, i: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Record ``i``'s latency parts, in PART_COLUMNS order."""
    return [float(records[c].iloc[i]) for c in PART_COLUMNS]


def test_sqs_window_time_is_batching_and_the_means_sum_to_the_mean() -> None:
    # One poller, a record a second from t=1, a 5 s window, 100 ms invocations: the records of
    # 1..6 are each received as they arrive (the poller is already polling) and the batch closes
    # at 6, so record k waited 6 - k for its batch; then 0.1 s in the handler.
    s = scenario(
        {"duration": 30, "sources": {"q": {"traffic": {"rate": "1/s", "pattern": "constant"}}}},
        one_poller_window(100, 5),
    )
    result = traced(s)
    rec = records_of(result, "q")
    np.testing.assert_allclose(rec["batching_s"][:6], [5, 4, 3, 2, 1, 0], atol=1e-9)
    np.testing.assert_allclose(rec["queued_s"][:6], 0, atol=1e-9)
    np.testing.assert_allclose(rec["handler_s"][:6], 0.1, atol=1e-9)
    summary = result.summary
    assert summary["latency_mean_batching_s"] == pytest.approx(2.5)
    assert summary["latency_mean_handler_s"] == pytest.approx(0.1)
    assert sum(summary[k] for k in LATENCY_PART_KEYS) == pytest.approx(summary["latency_mean_s"], rel=1e-12)
    assert_conserved(result)


def test_sqs_throttled_wait_before_an_admitted_invocation_is_throttled_time() -> None:
    # Reserved concurrency 1, two pollers, two messages at 0, 2 s invocations. Both receive a 10 ms
    # round trip after 0. Message 0 runs 0.01-2.01. Message 1's poller is throttled at 0.01 and at
    # 1.01 (1 s back-off), then admitted at 3.01 (2 s more): 3 s throttled, 2 s in the handler.
    s = scenario(
        {
            "duration": 60,
            "functions": {"f": {"reserved_concurrency": 1, "duration": "2s", "timeout": 25}},
            "sources": {"q": {"traffic": {"initial_backlog": 2}}},
        },
        {
            "batch_size": 1,
            "poller_scaling": {"initial": 2, "ceiling": 2, "min_pollers": 2, "idle_min_pollers": 2},
            "throttle_retry": {"initial": "1s", "multiplier": 2, "maximum": "30s"},
        },
    )
    result = traced(s)
    np.testing.assert_allclose(result.throttles["time_s"], [0.01, 1.01])
    rec = records_of(result, "q")
    np.testing.assert_allclose(parts(rec, 0), [0.01, 0, 0, 0, 0, 2.0], atol=1e-9)
    np.testing.assert_allclose(parts(rec, 1), [0.01, 0, 0, 3.0, 0, 2.0], atol=1e-9)
    assert result.summary["latency_mean_throttled_s"] == pytest.approx(1.5)
    assert_conserved(result)


def test_sqs_failed_attempt_and_visibility_timeout_are_retry_time_and_its_cold_start_is_not_init() -> None:
    # Every invocation before t=10 fails; cold starts take 1 s. The message is received at 0.01
    # (round trip), its cold invocation fails at 1.11, and it reappears at its visibility timeout
    # (30.01), is received again at once by the waiting poller and succeeds warm, 30.01-30.11. The
    # 30 s between its two receives are retry time; the failed attempt's cold start is part of
    # them, not of ``init`` (which belongs to the invocation that succeeded).
    s = scenario(
        {
            "duration": 60,
            "functions": {
                "f": {
                    "cold_start": "1s",
                    "incidents": [{"start": 0, "end": 10, "invocation_error_rate": 1.0}],
                }
            },
            "sources": {"q": {"traffic": {"initial_backlog": 1}}},
        }
    )
    result = traced(s)
    inv = result.invocations
    np.testing.assert_allclose(inv["start_s"], [0.01, 30.01])
    rec = records_of(result, "q")
    assert int(rec["receives"][0]) == 2
    np.testing.assert_allclose(parts(rec, 0), [0.01, 30.0, 0, 0, 0, 0.1], atol=1e-9)
    assert_conserved(result)


def test_a_cold_start_of_the_successful_invocation_is_init() -> None:
    # One message, a 1 s cold start: received at 0.01, the invocation starts cold at 0.01 and runs
    # 1 s of init and 0.1 s of handler.
    s = scenario(
        {
            "duration": 30,
            "functions": {"f": {"cold_start": "1s"}},
            "sources": {"q": {"traffic": {"initial_backlog": 1}}},
        }
    )
    result = traced(s)
    rec = records_of(result, "q")
    np.testing.assert_allclose(parts(rec, 0), [0.01, 0, 0, 0, 1.0, 0.1], atol=1e-9)
    assert result.summary["latency_mean_init_s"] == pytest.approx(1.0)
    assert_conserved(result)


def test_stream_batching_window_time_is_batching() -> None:
    # One shard polled once a second from t=0, a record a second from t=1 (each fetched the moment
    # it is stored, at a poll), a 3 s window opened at 0: the batch closes at 3 with the records of
    # 1, 2 and 3, which waited 2, 1 and 0 s for it.
    s = stream(
        {
            "duration": 12,
            "sources": {"s": {"traffic": {"rate": "1/s", "pattern": "constant", "initial_backlog": 0}}},
        },
        {"batching_window": 3},
    )
    result = traced(s)
    rec = records_of(result, READER)
    np.testing.assert_allclose(rec["queued_s"][:3], 0, atol=1e-9)
    np.testing.assert_allclose(rec["batching_s"][:3], [2, 1, 0], atol=1e-9)
    assert_conserved(result)


def test_enhanced_fan_out_propagation_is_queued_time() -> None:
    # Enhanced fan-out pushes each record 70 ms after it is stored (efo_propagation_delay): that
    # is time in the source; the rest of the wait, to the window's close, is batching.
    s = stream(
        {
            "duration": 12,
            "sources": {"s": {"traffic": {"rate": "1/s", "pattern": "constant", "initial_backlog": 0}}},
        },
        {"batching_window": 3, "enhanced_fan_out": True},
    )
    result = traced(s)
    rec = records_of(result, READER)
    done = rec[rec["state"].astype(str) == "succeeded"]
    assert len(done) == 9
    np.testing.assert_allclose(done["queued_s"], 0.07, atol=1e-9)
    np.testing.assert_allclose(rec["batching_s"][:2], [1.93, 0.93], atol=1e-9)
    assert_conserved(result)


def test_a_stream_batch_retried_in_place_counts_the_failed_attempt_as_retry() -> None:
    # Three records stored at 0 and fetched at once; every invocation before t=1 fails. The batch
    # runs 0-0.1 (error), waits the 1 s retry back-off and runs again 1.1-1.2: 1.1 s of retry each.
    s = stream(
        {
            "duration": 30,
            "sources": {"s": {"traffic": {"initial_backlog": 3}}},
            "functions": {"f": {"incidents": [{"start": 0, "end": 1, "invocation_error_rate": 1.0}]}},
        },
        {"batching_window": 0},
    )
    result = traced(s)
    np.testing.assert_allclose(result.invocations["start_s"], [0, 1.1])
    rec = records_of(result, READER)
    for i in range(3):
        np.testing.assert_allclose(parts(rec, i), [0, 1.1, 0, 0, 0, 0.1], atol=1e-9)
    assert_conserved(result)


def test_async_retry_after_a_function_error_is_retry_time() -> None:
    # The event is tried at 0 (fails, 1 s), retried a minute after that attempt ends (61) and
    # succeeds at 62: 61 s of retry, 1 s of handler.
    s = push({"functions": {"f": {"incidents": [{"start": 0, "end": 1, "invocation_error_rate": 1.0}]}}})
    result = traced(s)
    np.testing.assert_allclose(parts(result.records, 0), [0, 61, 0, 0, 0, 1], atol=1e-9)
    assert_conserved(result)


def test_async_throttle_back_off_is_throttled_time() -> None:
    # Reserved concurrency 1, two events at 0, 800 s invocations: the second is throttled from 0
    # and runs at 811 (test_async_micro derives the back-off): 811 s throttled.
    s = push({"functions": {"f": {"duration": "800s", "reserved_concurrency": 1}}}, events=2)
    result = traced(s)
    rec = result.records.sort_values("done_s").reset_index(drop=True)
    np.testing.assert_allclose(parts(rec, 0), [0, 0, 0, 0, 0, 800], atol=1e-9)
    np.testing.assert_allclose(parts(rec, 1), [0, 0, 0, 811, 0, 800], atol=1e-9)
    assert_conserved(result)


@pytest.mark.parametrize("path", ["scenarios/sqs-orders.yaml", "scenarios/kinesis-clickstream.yaml"])
def test_bundled_scenarios_parts_sum_to_the_mean_without_tracing(path: str) -> None:
    # Untraced (the per-fold sums only): the summary's parts still sum to its mean, with the
    # warm-up excluded from both alike.
    summary = simulate(load_scenario(path, ["duration=10m", "warmup=2m"]), tables=False).summary
    total = sum(summary[k] for k in LATENCY_PART_KEYS)
    assert total == pytest.approx(summary["latency_mean_s"], rel=1e-9)
    assert all(summary[k] >= -1e-12 for k in LATENCY_PART_KEYS)


def test_the_parts_follow_the_warm_up_mask() -> None:
    # With a warm-up, the mean and its parts are over the same steady-state records: a spike's
    # queueing before the warm-up ends is out of both.
    s = scenario(
        merge(
            {
                "duration": 120,
                "warmup": 60,
                "sources": {"q": {"traffic": {"rate": "5/s", "initial_backlog": 500}}},
            },
            {"functions": {"f": {"reserved_concurrency": 1}}},
        )
    )
    result = traced(s)
    rec = records_of(result, "q")
    steady = rec[(rec["state"].astype(str) == "succeeded") & (rec["sent_s"] >= 60)]
    for key, column in zip(LATENCY_PART_KEYS, PART_COLUMNS, strict=True):
        assert result.summary[key] == pytest.approx(steady[column].mean(), rel=1e-9, abs=1e-12)
    assert_conserved(result)


def test_the_run_figure_shows_each_minutes_split_in_shares_that_stack_to_100() -> None:
    from esmsim.plots import PART_COLOURS, plot_run

    result = simulate("scenarios/sqs-incident.yaml")
    figure = plot_run(result)
    panel = figure.axes[2]
    assert panel.get_ylabel() == "mean latency (%)"
    bars = [patch for container in panel.containers for patch in container]  # not the warm-up shade
    minutes = len(result.timeseries)
    assert len(bars) == len(PART_COLOURS) * minutes
    heights = np.array([bar.get_height() for bar in bars]).reshape(len(PART_COLOURS), minutes)
    processed = result.timeseries["RecordsSucceeded"].to_numpy() > 0
    np.testing.assert_allclose(heights.sum(axis=0)[processed], 100.0)
    np.testing.assert_allclose(heights.sum(axis=0)[~processed], 0.0)
    # While the mapping was disabled nothing was processed; the minute it drained, queueing is most
    # of the latency (the backlog of ten minutes).
    drained = int(np.nanargmax(result.timeseries["LatencyQueued"].to_numpy()))
    assert heights[0, drained] > 99.0
