"""Exact micro-scenarios of the SQS mapping: constant durations, a handful of records, event by event.

Every expected time below follows from AWS's documented rules and the modelling choices in
docs/model.md; the comment on each test derives it.

Runs are read through the public API: a traced run's ``invocations``, ``throttles`` and
``records`` tables (tests/helpers.py), and the summary and time series.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from esmsim.rng import Streams
from esmsim.run import simulate
from esmsim.scenario.scenario import Scenario
from tests.helpers import (
    ONE_POLLER,
    assert_conserved,
    invocations_of,
    merge,
    one_poller_window,
    records_of,
    scenario,
    traced,
)

#: Lambda's synchronous invocation payload limit (6 MB), which caps every batch a mapping sends.
PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024


def states(records: pd.DataFrame) -> np.ndarray:
    """The records' final states as plain strings ("succeeded", "dlq", ...)."""
    return records["state"].astype(str).to_numpy()


def outcomes(invocations: pd.DataFrame) -> list[str]:
    """The invocations' outcomes as plain strings ("success", "partial", "error", "timeout")."""
    return list(invocations["outcome"].astype(str))


def test_window_opens_at_first_record_and_flushes_at_its_end() -> None:
    # One poller, a record every second (t = 1, 2, ...), batch size 100, a 5 s window. The first
    # record (t=1) opens the window; it closes at t=6 with the records of 1..6 (the one arriving
    # exactly at the close is in). The invocation (0.1 s) ends at 6.1; the next record, at 7, opens
    # the next window, which flushes at 12. Invocations start at 6, 12, 18, 24 with 6 records each.
    s = scenario(
        {"duration": 30, "sources": {"q": {"traffic": {"rate": "1/s", "pattern": "constant"}}}},
        one_poller_window(100, 5),
    )
    result = traced(s)
    inv = invocations_of(result, 0)
    np.testing.assert_allclose(inv["start_s"], [6, 12, 18, 24])
    np.testing.assert_array_equal(inv["records"], [6, 6, 6, 6])
    # The records of 1..6 end with the first invocation (6.1), those of 7..12 with the second.
    rec = records_of(result, "q")
    np.testing.assert_allclose(rec["done_s"][:12], [6.1] * 6 + [12.1] * 6)
    assert_conserved(result)


def test_full_batch_flushes_before_the_window_ends() -> None:
    # Ten records a second (t = 0.1, 0.2, ...), batch size 20, window 5 s: the 20th record (t=2.0)
    # fills the batch long before the window (opened at 0.1) would close. The 0.15 s invocation
    # ends at 2.15; record 21 (t=2.1) is waiting, so the next window opens at once and record 40
    # (t=4.0) fills it.
    s = scenario(
        {
            "duration": 5,
            "functions": {"f": {"duration": "150ms"}},
            "sources": {"q": {"traffic": {"rate": "10/s", "pattern": "constant"}}},
        },
        one_poller_window(20, 5),
    )
    result = traced(s)
    inv = invocations_of(result, 0)
    np.testing.assert_allclose(inv["start_s"], [2.0, 4.0])
    np.testing.assert_array_equal(inv["records"], [20, 20])
    # Record 21 (t=2.1) arrived while the poller was invoking: it waited and joined the second batch.
    rec = records_of(result, "q")
    assert rec["sent_s"][20] == pytest.approx(2.1)
    assert rec["state"][20] == "succeeded"
    assert rec["done_s"][20] == pytest.approx(4.15)


def test_window_opens_when_the_previous_invocation_completes_under_backlog() -> None:
    # Three messages wait at t=0: the poller's receive returns them a 10 ms round trip later,
    # which opens its window at 0.01 (AWS: the next window starts as soon as the previous
    # invocation completes), not at the next arrival. It collects the records of t=0.5..5 and
    # flushes at its window's end, 5.01, with 3 + 10 records.
    s = scenario(
        {
            "duration": 5.5,
            "sources": {"q": {"traffic": {"rate": "2/s", "pattern": "constant", "initial_backlog": 3}}},
        },
        merge(one_poller_window(100, 5), {"polling": {"finish_poll_after_window": False}}),
    )
    inv = invocations_of(traced(s), 0)
    np.testing.assert_allclose(inv["start_s"], [5.01])
    np.testing.assert_array_equal(inv["records"], [13])


def test_failed_message_is_retried_after_the_visibility_timeout_then_dead_lettered() -> None:
    # One message, a function that always throws, visibility timeout 30 s, maxReceiveCount 3.
    # Receive 1 returns at t=0.01 (the message was waiting: a 10 ms round trip) and fails at 0.11;
    # visible again at 30.01, it goes at once to the poller waiting in a long poll (receive 2), at
    # 60.01 receive 3; when the third visibility timeout ends (90.01) it has been received 3 times:
    # SQS moves it to the DLQ.
    s = scenario(
        {
            "functions": {"f": {"errors": {"invocation_error_rate": 1.0}}},
            "sources": {"q": {"max_receive_count": 3, "traffic": {"initial_backlog": 1}}},
        }
    )
    result = traced(s)
    inv = invocations_of(result, 0)
    np.testing.assert_allclose(inv["start_s"], [0.01, 30.01, 60.01])
    assert set(outcomes(inv)) == {"error"}
    rec = records_of(result, "q")
    assert list(states(rec)) == ["dlq"]
    assert rec["done_s"][0] == pytest.approx(90.01)
    assert rec["receives"][0] == 3  # received 3 times: 2 retries
    assert_conserved(result)


@pytest.mark.parametrize("max_receive_count", [1, 2, 5])
def test_dead_letter_after_exactly_max_receive_count_receives(max_receive_count: int) -> None:
    s = scenario(
        {
            "duration": 400,
            "functions": {"f": {"errors": {"invocation_error_rate": 1.0}}},
            "sources": {"q": {"max_receive_count": max_receive_count, "traffic": {"initial_backlog": 4}}},
        }
    )
    result = traced(s)
    assert result.summary["records_dlq"] == 4
    # Each of the 4 messages was invoked exactly max_receive_count times (batches of up to 10).
    assert result.summary["invocations"] == max_receive_count
    assert result.summary["invocation_errors"] == max_receive_count
    rec = records_of(result, "q")
    assert (states(rec) == "dlq").all()
    assert (rec["receives"] == max_receive_count).all()


def test_partial_batch_response_returns_exactly_the_failed_messages() -> None:
    # Ten messages in one batch (received at 0.01, a round trip after the poller asked); some are
    # poison for the function. With ReportBatchItemFailures the first invocation deletes the others
    # at 0.11 and only the poison ones reappear at 30.01, in a batch of their own; after
    # maxReceiveCount 2 they are dead-lettered at 60.01.
    s = scenario(
        {
            "functions": {"f": {"errors": {"poison_record_rate": 0.3}}},
            "sources": {"q": {"max_receive_count": 2, "traffic": {"initial_backlog": 10}}},
        },
        {"report_batch_item_failures": True},
    )
    # Poison draws come from the "poison" stream of the queue, one per message in arrival order
    # (docs/model.md): the same messages are poison whatever the mapping does.
    poison = Streams(1).get("poison", "q").random(10) < 0.3
    assert 0 < poison.sum() < 10, "the seed must give a mixed batch"
    result = traced(s)
    inv = invocations_of(result, 0)
    np.testing.assert_allclose(inv["start_s"], [0.01, 30.01])
    np.testing.assert_array_equal(inv["records"], [10, poison.sum()])
    assert outcomes(inv) == ["partial", "partial"]
    rec = records_of(result, "q")
    np.testing.assert_array_equal(rec["id"], np.arange(10))
    np.testing.assert_array_equal(states(rec) == "dlq", poison)
    np.testing.assert_array_equal(states(rec) == "succeeded", ~poison)
    np.testing.assert_allclose(rec["done_s"][~poison], 0.11)
    np.testing.assert_allclose(rec["done_s"][poison], 60.01)
    np.testing.assert_array_equal(rec["receives"], np.where(poison, 2, 1))
    assert_conserved(result)


def test_without_partial_batch_response_one_poison_message_fails_the_whole_batch() -> None:
    s = scenario(
        {
            "functions": {"f": {"errors": {"poison_record_rate": 0.3}}},
            "sources": {"q": {"max_receive_count": 2, "traffic": {"initial_backlog": 10}}},
        }
    )
    result = traced(s)
    inv = invocations_of(result, 0)
    np.testing.assert_array_equal(inv["records"], [10, 10])
    assert outcomes(inv) == ["error", "error"]
    rec = records_of(result, "q")
    assert len(rec) == 10
    assert (states(rec) == "dlq").all()


def test_maximum_concurrency_is_a_hard_cap_without_throttles() -> None:
    # A deep backlog and a mapping capped at 5: the mapping stops reading at the cap, so the
    # function (reserved 10) is never asked for more and nothing is throttled (AWS V5).
    s = scenario(
        {
            "duration": 300,
            "functions": {
                "f": {"reserved_concurrency": 10, "duration": {"dist": "exponential", "mean": "200ms"}}
            },
            "sources": {"q": {"traffic": {"initial_backlog": 20000, "rate": "50/s"}}},
        },
        {"maximum_concurrency": 5},
    )
    result = simulate(s)
    assert result.summary["concurrency_max"] == 5
    assert result.summary["pollers_max"] <= 5
    assert result.summary["throttles"] == 0


def _fleet(times: np.ndarray, per_minute: int, ceiling: int) -> np.ndarray:
    """The documented ramp: 5 pollers at 0, then per_minute/60 more at each 1 s tick, up to the ceiling."""
    return np.asarray(np.minimum(5 + per_minute // 60 * np.floor(times), ceiling), dtype=float)


@pytest.mark.parametrize(
    ("preset", "per_minute", "ceiling", "checks"),
    [
        (
            "current",
            300,
            1250,
            [(0.5, 5), (30.5, 155), (60.5, 305), (120.5, 605), (248.5, 1245), (260.5, 1250)],
        ),
        ("legacy", 60, 1000, [(0.5, 5), (60.5, 65), (300.5, 305), (600.5, 605)]),
    ],
)
def test_poller_fleet_ramps_by_the_documented_rate_to_its_ceiling(
    preset: str, per_minute: int, ceiling: int, checks: list[tuple[float, int]]
) -> None:
    # A backlog that outlasts the ramp and a 10 s function: the fleet starts at 5 and, at one
    # scaler tick a second, adds per_minute/60 pollers a second up to the ceiling (AWS V4). The
    # receive round trip is pinned to 0 so pollers invoke back to back (concurrency below is the
    # fleet's size at every check; with it, a poller can be between two invocations).
    duration = 270 if preset == "current" else 610
    s = scenario(
        {
            "duration": duration,
            "account": {"concurrency_limit": 3000},
            "functions": {"f": {"duration": "10s", "timeout": 15}},
            "sources": {"q": {"traffic": {"initial_backlog": 400_000}}},
        },
        {"poller_scaling": preset, "polling": {"round_trip": 0}},
    )
    times = np.array([t for t, _ in checks])
    np.testing.assert_array_equal(_fleet(times, per_minute, ceiling), [n for _, n in checks])
    result = traced(s)
    # The fleet's per-minute time-weighted mean is the ramp's, exactly: a fine grid of the step
    # function (constant between ticks) averaged over each minute (the last one may be shorter).
    grid = np.arange(0.0, duration, 0.25) + 0.125
    minute = (grid // 60).astype(int)
    expected_means = np.bincount(minute, _fleet(grid, per_minute, ceiling)) / np.bincount(minute)
    np.testing.assert_allclose(result.timeseries["Pollers"], expected_means)
    assert result.summary["pollers_max"] == _fleet(np.array([duration - 1.0]), per_minute, ceiling)[0]
    assert result.summary["pollers_max"] <= ceiling
    # Under the backlog every poller is invoking (10 s each, back to back) from the moment it is
    # added, so the function's concurrency at the check times is the fleet's size.
    inv = invocations_of(result, 0)
    np.testing.assert_array_equal(
        [int(((inv["start_s"] <= t) & (inv["end_s"] > t)).sum()) for t in times], [n for _, n in checks]
    )


def test_throttled_batch_is_retried_with_backoff_then_given_up_before_its_visibility_timeout() -> None:
    # Reserved concurrency 1, two pollers, two messages, a 20 s function, visibility timeout 30 s.
    # Both receives return a 10 ms round trip after t=0. Poller A runs message 0 from 0.01 to
    # 20.01. Poller B is throttled at 0.01 and retries after 1, 2, 4 and 8 s (at 1.01, 3.01, 7.01,
    # 15.01); the next wait (16 s) would pass the visibility timeout (30.01), so it gives the batch
    # up at 15.01. Message 1 reappears at 30.01 with its receive spent, and runs 30.01-50.01.
    s = scenario(
        {
            "duration": 60,
            "functions": {"f": {"reserved_concurrency": 1, "duration": "20s", "timeout": 25}},
            "sources": {"q": {"traffic": {"initial_backlog": 2}}},
        },
        {
            "batch_size": 1,
            "poller_scaling": {"initial": 2, "ceiling": 2, "min_pollers": 2, "idle_min_pollers": 2},
            "throttle_retry": {"initial": "1s", "multiplier": 2, "maximum": "30s"},
        },
    )
    result = traced(s)
    throttles = result.throttles
    np.testing.assert_allclose(throttles["time_s"], [0.01, 1.01, 3.01, 7.01, 15.01])
    assert set(throttles["reason"].astype(str)) == {"ReservedFunctionConcurrentInvocationLimitExceeded"}
    inv = invocations_of(result, 0)
    np.testing.assert_allclose(inv["start_s"], [0.01, 30.01])
    rec = records_of(result, "q")
    assert list(states(rec)) == ["succeeded", "succeeded"]
    np.testing.assert_allclose(rec["done_s"], [20.01, 50.01])
    assert list(rec["receives"]) == [1, 2]  # message 1's first receive was spent on the throttles


def test_messages_expire_after_the_retention_period() -> None:
    # Nobody reads the queue (the mapping is disabled): a message sent at t expires at t + 60.
    s = scenario(
        {
            "duration": 150,
            "sources": {"q": {"retention": 60, "traffic": {"rate": "1/s", "pattern": "constant"}}},
        },
        {"enabled": False},
    )
    result = traced(s)
    rec = records_of(result, "q")
    sent = rec["sent_s"].to_numpy()
    expired = sent + 60 <= 150
    np.testing.assert_array_equal(states(rec) == "expired", expired)
    np.testing.assert_allclose(rec["done_s"][expired], sent[expired] + 60)
    assert (states(rec)[~expired] == "waiting").all()
    assert result.summary["records_expired"] == expired.sum() == 90
    # Backlog: 1..60 messages over the first minute, then a steady 60 (one in, one out a second).
    assert result.summary["backlog_max"] == 60
    assert_conserved(result)


def test_cold_starts_follow_the_idle_lifetime() -> None:
    # A message every 20 minutes (the last at 7200 s). Environments live 10 minutes idle: every
    # invocation is cold. With 30 minutes, only the first one is. (The scaler ticks every 0.7 s, so
    # no message arrives on a tick, when a newly started poller would take it at once.)
    base = {
        "duration": 7210,
        "functions": {"f": {"cold_start": "300ms"}},
        "sources": {"q": {"traffic": {"rate": "3/h", "pattern": "constant"}}},
    }
    mapping = {"poller_scaling": {"tick": 0.7}}
    short = traced(
        scenario({**base, "functions": {"f": {"cold_start": "300ms", "keep_alive": "10m"}}}, mapping)
    )
    long = traced(
        scenario({**base, "functions": {"f": {"cold_start": "300ms", "keep_alive": "30m"}}}, mapping)
    )
    assert short.summary["invocations"] == long.summary["invocations"] == 6
    assert short.summary["cold_starts"] == 6
    assert long.summary["cold_starts"] == 1
    assert list(short.invocations["environment"].astype(str)) == ["cold"] * 6
    assert list(long.invocations["environment"].astype(str)) == ["cold"] + ["warm"] * 5
    # The idle poller's long poll returns a 10 ms round trip after the message arrives; a cold
    # invocation takes the init time too: latency 0.01 + 0.3 + 0.1 s.
    assert short.summary["latency_max_s"] == pytest.approx(0.41)
    assert long.summary["latency_p50_s"] == pytest.approx(0.11)
    np.testing.assert_allclose(short.invocations["init_s"], 0.3)


def test_provisioned_concurrency_serves_without_cold_starts() -> None:
    s = scenario(
        {
            "functions": {"f": {"provisioned_concurrency": 2, "cold_start": "1s"}},
            "sources": {"q": {"traffic": {"initial_backlog": 2}}},
        },
        {"batch_size": 1},
    )
    result = traced(s)
    assert result.summary["cold_starts"] == 0
    assert result.summary["provisioned_invocations"] == 2
    # The receive's 10 ms round trip (the messages were waiting), then a warm 100 ms invocation.
    assert result.summary["latency_max_s"] == pytest.approx(0.11)
    assert list(result.invocations["environment"].astype(str)) == ["provisioned", "provisioned"]


def test_function_timeout_is_a_function_error_billed_at_the_timeout() -> None:
    s = scenario(
        {
            "duration": 40,
            "functions": {"f": {"duration": "12s", "timeout": 10}},
            "sources": {"q": {"traffic": {"initial_backlog": 1}}},
        }
    )
    result = traced(s)
    inv = invocations_of(result, 0)
    assert outcomes(inv) == ["timeout", "timeout"]  # at 0, and again after the 30 s visibility timeout
    np.testing.assert_allclose(inv["run_s"], 10)
    np.testing.assert_allclose(inv["end_s"] - inv["start_s"], 10)
    # The timeout resets the environment: the retry runs Init again in it (here a 0 s Init).
    assert list(inv["environment"].astype(str)) == ["cold", "reinit"]
    assert result.summary["invocation_errors"] == 2


def test_incident_window_changes_the_error_rate_only_inside_it() -> None:
    s = scenario(
        {
            "duration": 300,
            "functions": {"f": {"incidents": [{"start": 100, "end": 200, "invocation_error_rate": 1.0}]}},
            "sources": {"q": {"visibility_timeout": 30, "traffic": {"rate": "1/s", "pattern": "constant"}}},
        }
    )
    inv = invocations_of(traced(s), 0)
    start = inv["start_s"].to_numpy()
    errors = np.array(outcomes(inv)) == "error"
    assert errors.any()
    assert ((start[errors] >= 100) & (start[errors] < 200)).all()
    outside = (start < 100) | (start >= 200)
    assert (np.array(outcomes(inv))[outside] == "success").all()


def test_incident_duration_multiplier_slows_invocations_inside_the_window() -> None:
    s = scenario(
        {
            "duration": 300,
            "functions": {"f": {"incidents": [{"start": 100, "end": 200, "duration_multiplier": 3}]}},
            "sources": {"q": {"traffic": {"rate": "1/s", "pattern": "constant"}}},
        }
    )
    inv = invocations_of(traced(s), 0)
    inside = ((inv["start_s"] >= 100) & (inv["start_s"] < 200)).to_numpy()
    assert inside.any()
    assert (~inside).any()
    np.testing.assert_allclose(inv["run_s"][inside], 0.3)
    np.testing.assert_allclose(inv["run_s"][~inside], 0.1)


def test_payload_cap_limits_batches_of_large_messages() -> None:
    # 1 MB messages with 800 B of event metadata each: six would exceed Lambda's 6 MB payload
    # (6,291,456 bytes), so a batch of up to 10 holds 5.
    s = scenario(
        {"sources": {"q": {"traffic": {"initial_backlog": 40, "record_size": "1MB"}}}},
        {"batch_size": 10, "record_overhead": 800},
    )
    inv = invocations_of(traced(s), 0)
    assert set(inv["records"]) == {5}
    np.testing.assert_allclose(inv["bytes"], 5 * (1024 * 1024 + 800))


def test_batches_never_exceed_the_batch_size_when_the_payload_cap_could_bind() -> None:
    # Sizes with a long tail (median 100 KB: 50 of them make about 5 MB, with the tail more than
    # 6 MB) make the 6 MB check necessary; it must never let a batch grow, and it must cut some.
    s = scenario(
        {
            "duration": 60,
            "sources": {
                "q": {
                    "traffic": {
                        "rate": "300/s",
                        "record_size": {"dist": "lognormal", "median": "100KB", "p99": "400KB"},
                    }
                }
            },
        },
        {"batch_size": 50, "batching_window": 1},
    )
    result = traced(s)
    inv = invocations_of(result, 0)
    assert inv["records"].max() <= 50
    rec = records_of(result, "q")
    # Each message's size, drawn independently of the run: the queue's "sizes" stream, one draw per
    # message in arrival order (docs/model.md), cut to the queue's maximum message size.
    source = s.sources["q"]
    sizes = np.minimum(
        source.traffic.record_size.sample(Streams(1).get("sizes", "q"), len(rec)),
        source.max_message_size,  # type: ignore[union-attr]
    )
    assert sizes.max() * 50 > PAYLOAD_LIMIT_BYTES  # the cap could have bound
    # Which messages each invocation carried: nothing fails, so a batch's messages are deleted when
    # its invocation ends. Where one invocation alone ends at a time its messages are known, and
    # its payload is recomputed from their sizes; where several end at one instant (pollers
    # flushing together) their messages are known together, and so is their total payload.
    assert (states(rec) != "dlq").all()
    overhead = s.mappings[0].record_overhead  # type: ignore[union-attr]
    done = rec["done_s"].to_numpy()
    finished = inv[inv["end_s"] < s.duration]  # the others still run at the (exclusive) end: in flight
    alone = 0
    for end, group in finished.groupby("end_s"):
        rows = rec["id"].to_numpy()[done == end]
        assert rows.size == group["records"].sum()
        payload = float((sizes[rows] + overhead).sum())
        assert payload == pytest.approx(group["bytes"].sum())
        if len(group) == 1:
            alone += 1
            assert payload <= PAYLOAD_LIMIT_BYTES
    assert alone > 0.9 * len(finished)
    # Every batch's payload (records plus their event metadata) stays within 6 MB.
    assert inv["bytes"].max() <= PAYLOAD_LIMIT_BYTES
    assert (inv["records"] < 50).any()  # and it did bind: some batches stopped short


def test_initial_backlog_sent_before_time_zero_counts_its_wait_and_retention() -> None:
    # Four messages sent evenly over the 120 s before time 0 (at -90, -60, -30 and 0), retention
    # 60 s. At 0 the first two are past their retention (-90 + 60 <= 0, -60 + 60 <= 0) and expire;
    # the poller's receive returns the other two a 10 ms round trip later and the 100 ms
    # invocation deletes them at 0.11, so their latencies are 30.11 s and 0.11 s.
    s = scenario(
        {
            "duration": 10,
            "sources": {"q": {"retention": 60, "traffic": {"initial_backlog": 4, "backlog_span": 120}}},
        },
        {"batch_size": 10, "poller_scaling": ONE_POLLER},
    )
    result = traced(s)
    rec = records_of(result, "q")
    np.testing.assert_allclose(rec["sent_s"], [-90, -60, -30, 0])
    assert list(states(rec)) == ["expired", "expired", "succeeded", "succeeded"]
    np.testing.assert_allclose(rec["done_s"][2:] - rec["sent_s"][2:], [30.11, 0.11])
    summary = result.summary
    assert summary["records_expired"] == 2
    assert summary["latency_max_s"] == pytest.approx(30.11)
    assert_conserved(result)


def test_an_idle_queues_empty_receives_are_booked_in_the_minute_each_long_poll_ended() -> None:
    # Five pollers each hold a 20 s long poll on an empty queue: three empty receives a minute each,
    # every minute (the AWS-observed 15 a minute of an idle mapping). The pollers start together at
    # 0 s, so minute 0 holds the polls ending at 20 and 40 s; the one ending at 60 s is minute 1's,
    # and the one ending exactly at the end of the run is outside it.
    fleet = {"initial": 5, "min_pollers": 5, "idle_min_pollers": 5}
    result = simulate(scenario({"duration": 1800, "warmup": 0}, {"poller_scaling": fleet}), seed=1)
    per_minute = result.timeseries["NumberOfEmptyReceives"].to_numpy()
    assert per_minute[0] == 10
    np.testing.assert_array_equal(per_minute[1:], np.full(29, 15.0))
    assert result.summary["sqs_empty_receives"] == 5 * (1800 // 20 - 1)


def test_oldest_age_skips_messages_received_three_times_as_sqs_documents() -> None:
    # 1 % poison messages, 30 s visibility timeout, ten receives before the DLQ: a poison batch is
    # received ten times over 300 s. SQS's metric stops counting a message after its third failed
    # receive, so the oldest age stays below three visibility timeouts (plus the sampling minute's
    # part of one); it does reach two of them, since a message on its third receive still counts.
    s = scenario(
        {
            "duration": 1800,
            "warmup": 0,
            "functions": {"f": {"errors": {"poison_record_rate": 0.01}}},
            "sources": {
                "q": {"visibility_timeout": 30, "max_receive_count": 10, "traffic": {"rate": "20/s"}}
            },
        }
    )
    result = simulate(s, seed=1)
    assert result.summary["records_dlq"] > 0  # the poison batches did go the full ten receives
    age = result.timeseries["ApproximateAgeOfOldestMessage"].to_numpy()
    assert age.max() < 120
    assert age.max() >= 2 * 30


@pytest.mark.parametrize(
    ("rate", "finish_poll", "starts", "records"),
    [
        # One message a minute (t = 60, 120, ...), a 5 s window: the long poll that received the
        # message runs its 20 s wait out, so the batch closes at 80, not at 65 (AWS: a quiet queue
        # "might wait for up to 20 seconds", even with a shorter window).
        ("1/min", True, [80, 140, 200, 260], [1, 1, 1, 1]),
        ("1/min", False, [65, 125, 185, 245], [1, 1, 1, 1]),
        # One every 8 s: the poll in progress when the window (8..13) ends returns with the next
        # message, at 16, which joins the batch.
        ("7.5/min", True, [16, 32, 48], [2, 2, 2]),
        # Without it each message waits out its own 5 s window: 8 -> 13, 16 -> 21, ...
        ("7.5/min", False, [13, 21, 29, 37, 45], [1, 1, 1, 1, 1]),
    ],
    ids=["quiet-waits-the-poll", "quiet-knob-off", "next-message-joins", "next-message-knob-off"],
)
def test_a_long_poll_in_progress_when_the_window_ends_is_not_cut_short(
    rate: str, finish_poll: bool, starts: list[float], records: list[int]
) -> None:
    s = scenario(
        {
            "duration": 290 if rate == "1/min" else 50,
            "sources": {"q": {"traffic": {"rate": rate, "pattern": "constant"}}},
        },
        {
            "batch_size": 100,
            "batching_window": 5,
            "single_poller_batching": True,
            "poller_scaling": ONE_POLLER,
            "polling": {"finish_poll_after_window": finish_poll},
        },
    )
    result = traced(s)
    inv = invocations_of(result, 0)
    np.testing.assert_allclose(inv["start_s"], starts)
    np.testing.assert_array_equal(inv["records"], records)
    assert_conserved(result)


@pytest.mark.parametrize("tick", [1, 10])
def test_the_poll_running_at_a_windows_end_does_not_depend_on_the_scaler_tick(tick: int) -> None:
    # One message every 2.5 s (t = 2.5, 5, 7.5), a 1 s window: the window opened by the message at
    # 2.5 ends at 3.5, and the long poll running then returns with the next message, at 5, which
    # joins the batch. With a 10 s scaler tick no tick falls inside the window; the engine used to
    # close the batch at 3.5 with one message then (the rule applied only once a tick had dealt
    # the window its first message).
    s = scenario(
        {"duration": 9, "sources": {"q": {"traffic": {"rate": "0.4/s", "pattern": "constant"}}}},
        merge(one_poller_window(100, 1), {"poller_scaling": {"tick": tick}}),
    )
    inv = invocations_of(traced(s), 0)
    np.testing.assert_allclose(inv["start_s"], [5.0])
    np.testing.assert_array_equal(inv["records"], [2])


@pytest.mark.parametrize(("finish_poll", "start", "records"), [(True, 2.5, 4), (False, 2.25, 3)])
def test_pollers_sharing_arrivals_each_wait_for_their_own_next_message(
    finish_poll: bool, start: float, records: int
) -> None:
    # Three pollers batching at once share arrivals round-robin: a message every 0.25 s, so poller A
    # gets 0.25, 1.0, 1.75, 2.5, ..., B 0.5, 1.25, ... and C 0.75, 1.5, 2.25, ... A's 2 s window
    # (0.25 .. 2.25) ends with three messages; its long poll then returns with A's own next
    # message, at 2.5, not with C's at 2.25. Without the knob it closes at its window's end.
    fleet = {"initial": 3, "ceiling": 3, "min_pollers": 3, "idle_min_pollers": 3}
    s = scenario(
        {"duration": 3, "sources": {"q": {"traffic": {"rate": "4/s", "pattern": "constant"}}}},
        {
            "batch_size": 100,
            "batching_window": 2,
            "poller_scaling": fleet,
            "polling": {"finish_poll_after_window": finish_poll},
        },
    )
    first = invocations_of(traced(s), 0).iloc[0]
    assert first["start_s"] == pytest.approx(start)
    assert first["records"] == records


#: Summaries of ``_window_0`` runs, by scenario.
_WINDOW_0_RUNS: dict[str, dict[str, Any]] = {}


def _window_0(poller_scaling: dict[str, Any], polling: dict[str, Any]) -> dict[str, Any]:
    """500 messages/s, 200 ms invocations, batch size 10, no window: a run's summary.

    Five minutes, the first 100 s warm-up (7.5 and 150 s before): every ordering the two tests
    below assert held at seeds 1 to 6, as over 7.5 minutes. The closest is the fleet of thresholds
    1 and 5: 49.6 against 44.8 pollers at seed 1 (49.6 and 45.8 over 7.5 minutes), 49.6 against
    48.8 at seed 4 (50.3 and 48.7 over 7.5 minutes): a small effect at any horizon, not noise of
    a short one.
    """
    s = scenario(
        {
            "duration": 300,
            "warmup": 100,
            "functions": {"f": {"duration": "200ms"}},
            "sources": {"q": {"visibility_timeout": 30, "traffic": {"rate": "500/s"}}},
        },
        {"batch_size": 10, "poller_scaling": poller_scaling, "polling": polling},
    )
    # Keyed on the whole validated scenario: the two tests below share their default row (a
    # scale-up threshold of 1 and a 10 ms round trip are the defaults), which is run once.
    key = s.model_dump_json()
    if key not in _WINDOW_0_RUNS:
        _WINDOW_0_RUNS[key] = simulate(s, seed=1).summary
    return _WINDOW_0_RUNS[key]


def test_the_scale_up_threshold_moves_the_window_0_cost_curve() -> None:
    # 500 messages/s, 200 ms invocations, batch size 10, no window. With the default rule (grow
    # whenever one message is visible at a tick) the fleet grows until polls find about three
    # messages; asking for more visible messages before growing leaves a smaller fleet with fuller
    # batches: fewer invocations and SQS calls per record, so a lower cost per million records,
    # at the same latency (capacity is ample in every case). The cost curves without a window rest
    # on this knob, which is why it is one.
    # (A threshold of 5 is too close to what the default already finds: 3.35 against 3.3.)
    rows = [_window_0({"scale_up_visible": threshold}, {}) for threshold in (1, 10, 20)]
    batch = [r["batch_size_mean"] for r in rows]
    fleet = [r["pollers_mean"] for r in rows]
    cost = [r["cost_per_million_records_usd"] for r in rows]
    assert batch[0] < batch[1] < batch[2]
    assert fleet[0] > fleet[1] > fleet[2]
    assert cost[0] > cost[1] > cost[2]
    assert max(r["latency_p99_s"] for r in rows) < 0.25  # 200 ms of work, no queueing to speak of


def test_the_receive_round_trip_moves_the_window_0_cost_curve() -> None:
    # The same load. A long poll returns a round trip after the message that ends it arrives, with
    # what is visible then. With no round trip every poll returns one message the instant it
    # arrives and the fleet grows until batches average under 1.6; a 10 ms round trip (the default)
    # lets the messages of those 10 ms join, 50 ms more: fuller batches, a smaller fleet, a lower
    # cost per million records, for a latency a round trip longer.
    rows = [_window_0({}, {"round_trip": rtt}) for rtt in (0.0, 0.01, 0.05)]
    batch = [r["batch_size_mean"] for r in rows]
    fleet = [r["pollers_mean"] for r in rows]
    cost = [r["cost_per_million_records_usd"] for r in rows]
    assert batch[0] < 1.6 < batch[1] < batch[2]
    assert fleet[0] > fleet[1] > fleet[2]
    assert cost[0] > cost[1] > cost[2]
    p50 = [r["latency_p50_s"] for r in rows]
    assert p50[0] < p50[2] < p50[0] + 0.05 + 0.005  # at most the round trip more (ms of rounding)


@pytest.mark.parametrize("round_trip", [0.0, 0.01, 0.05])
def test_a_receive_that_finds_messages_waiting_returns_a_round_trip_later(round_trip: float) -> None:
    # 30 messages wait at t=0; one poller, batch size 10, no window, a 100 ms function. Each loop is
    # a receive that finds messages waiting, returning a round trip later, then an invocation:
    # batches start at rt, 2 rt + 0.1 and 3 rt + 0.2. Under a backlog the round trip is part of
    # every poller's loop, so it sets how fast a fleet drains (10 % of a 100 ms invocation here).
    s = scenario(
        {"duration": 5, "sources": {"q": {"traffic": {"initial_backlog": 30}}}},
        {"batch_size": 10, "poller_scaling": ONE_POLLER, "polling": {"round_trip": round_trip}},
    )
    inv = invocations_of(traced(s), 0)
    np.testing.assert_allclose(inv["start_s"], [round_trip + k * (round_trip + 0.1) for k in range(3)])
    np.testing.assert_array_equal(inv["records"], [10, 10, 10])


def test_a_message_deleted_after_its_visibility_timeout_keeps_its_receive_count() -> None:
    # A visibility timeout of 1 s and an invoke rate quota of 1/s: throttled batches outlast their
    # visibility timeout, their messages go back to the queue (a receive spent) and the late delete
    # takes them from there. Such a message is not held by anyone when deleted, so its receive
    # count is what it was, not one more: every receive is one CloudWatch counted.
    s = scenario(
        {
            "duration": 30,
            "account": {"invocation_rate_limit": 1.0},
            "functions": {"f": {"timeout": 1, "duration": "5ms", "keep_alive": 5}},
            "sources": {"q": {"visibility_timeout": 1, "traffic": {"rate": "1/s"}}},
        },
        {
            "poller_scaling": {**ONE_POLLER, "per_minute": 0, "tick": 0.5},
            "throttle_retry": {"initial": 0.2, "multiplier": 1, "maximum": 1},
        },
    )
    result = traced(s)
    assert result.summary["throttles"] > 0
    receives = int(records_of(result, "q")["receives"].sum())
    counted = result.timeseries["NumberOfMessagesReceived"].sum()
    assert receives - result.summary["records_in_flight_end"] <= counted <= receives


def test_error_back_off_shrinks_the_fleet_more_as_the_error_rate_rises() -> None:
    # The published measurement this back-off is fitted to, replayed at a smaller scale: a steady
    # 300 messages/s on a 50 ms function, then three minutes of errors (from 240 s to 420 s, no
    # ReportBatchItemFailures) at 0, 2 and 5 %. AWS: the mapping "gradually backs off, reducing the
    # amount of concurrency", and does not scale up meanwhile; measured: 60 concurrent batches fell
    # to 25 at 1 % and 16 at 5 %. The fleet in minutes 5 and 6 falls with the error rate, by more
    # than 10 % already at 2 %, and recovers once the errors stop: back above 80 % of the size the
    # errors found (minute 3), against about half of it while they lasted. (Without a batching
    # window a fleet this small wanders a few pollers from minute to minute, and the backlog the
    # errors left can carry it past its old size for a minute.)
    fleets = []
    for rate in (0.0, 0.02, 0.05):
        s = scenario(
            {
                "duration": 600,
                "warmup": 0,
                "functions": {
                    "f": {
                        "duration": "50ms",
                        "incidents": [{"start": 240, "end": 420, "invocation_error_rate": rate}],
                    }
                },
                "sources": {"q": {"visibility_timeout": 30, "traffic": {"rate": "300/s"}}},
            },
            {"batch_size": 10},
        )
        pollers = simulate(s, seed=1).timeseries["Pollers"].to_numpy()
        fleets.append((pollers[2:4].mean(), pollers[5:7].mean(), pollers[8:10].mean(), pollers[3]))
    before = fleets[0][0]
    during = [f[1] for f in fleets]
    assert all(f[0] == pytest.approx(before) for f in fleets)  # the same fleet before the errors
    assert during[0] > during[1] > during[2]
    assert during[1] < 0.9 * during[0]
    assert all(f[1] < 0.6 * f[3] < 0.8 * f[3] < f[2] for f in fleets[1:])  # and after them


def test_rare_errors_take_nothing_off_the_fleet() -> None:
    # The fitted curve keeps the whole fleet below about 0.045 % failures (0.42 x (e / 1 %)^-0.28
    # reaches 1 there): a mapping with rare errors scales as if it had none.
    def fleet(rate: float) -> float:
        s = scenario(
            {
                "duration": 300,
                "functions": {"f": {"duration": "50ms", "errors": {"invocation_error_rate": rate}}},
                "sources": {"q": {"visibility_timeout": 30, "traffic": {"rate": "300/s"}}},
            },
            {"batch_size": 10},
        )
        return float(simulate(s, seed=1).summary["pollers_mean"])

    assert fleet(0.0002) == pytest.approx(fleet(0.0), rel=0.05)


def test_pollers_completing_together_never_overfill_one_whose_payload_cap_binds() -> None:
    # A backlog of large messages (median 200 KB) becomes visible all at once (a 2 s delivery
    # delay): several collecting pollers of two mappings complete at the same instant. Rows dealt
    # for one poller's completion stopped short of another poller's 6 MB cap only by chance: one
    # batch carried 6.4 MB (a hypothesis example found it).
    fn = {"memory_mb": 128, "timeout": 1, "duration": "5ms", "cold_start": "0s", "keep_alive": 5}
    one = {"initial": 1, "per_minute": 0, "ceiling": 1, "min_pollers": 1, "idle_min_pollers": 1, "tick": 0.5}
    s = scenario(
        {
            "duration": 30,
            "seed": 0,
            "functions": {"f0": fn, "f1": fn},
            "sources": {
                "q": {
                    "visibility_timeout": 1,
                    "delivery_delay": 2,
                    "traffic": {
                        "rate": 0,
                        "record_size": {"dist": "lognormal", "median": "200KB", "p99": "1MB"},
                        "initial_backlog": 133,
                    },
                }
            },
            "mappings": [
                {"source": "q", "function": "f0", "batch_size": 23, "batching_window": 1},
                {
                    "source": "q",
                    "function": "f1",
                    "batch_size": 22,
                    "batching_window": 1,
                    "poller_scaling": one,
                },
            ],
        }
    )
    result = traced(s)
    assert result.invocations["bytes"].max() <= 6 * 1024 * 1024
    assert_conserved(result)


def test_a_long_window_with_a_long_invocation_overruns_its_first_messages_visibility() -> None:
    # SQS starts each message's visibility timeout at its own receive. A record a second from t=1,
    # one poller, a 20 s window, a 15 s function, visibility timeout 30 s. The window opens at 1 and
    # closes at 21 with records 1..21; the invocation runs 21..36. Record i was received at i, so
    # records 1..6 are visible again at 31..36, before the invocation ends: an overrun, which a
    # clock started when the batch closed (21 + 30 = 51) would hide. Records 7..21 are deleted as
    # usual; records 1..6 sit in the queue again (nobody else polls) and the late delete removes
    # them from there, their second receive never having happened.
    s = scenario(
        {
            "duration": 40,
            "functions": {"f": {"timeout": 30, "duration": "15s"}},
            "sources": {"q": {"visibility_timeout": 30, "traffic": {"rate": "1/s", "pattern": "constant"}}},
        },
        one_poller_window(100, 20),
    )
    result = traced(s)
    assert result.summary["visibility_overruns"] == 1
    inv = invocations_of(result, 0)
    assert inv["start_s"][0] == pytest.approx(21)
    assert inv["records"][0] == 21
    rec = records_of(result, "q").iloc[:21]
    assert (states(rec) == "succeeded").all()
    np.testing.assert_allclose(rec["done_s"], 36)
    np.testing.assert_array_equal(rec["receives"], 1)
    assert_conserved(result)


def test_a_window_longer_than_the_visibility_timeout_spends_receives_while_it_collects() -> None:
    # A record a second from t=1, one poller, a 60 s window, visibility timeout 30 s, a DLQ after
    # 2 receives. The window opens at 1 and closes at 61. Record i's clock runs out at i + 30 while
    # it is still being collected: it is visible again and the polling collector receives it again
    # at once (a receive spent, its clock restarted). Record 1 is received at 1 and 31; its second
    # timeout ends at 61: the DLQ. Records 2..31 were received twice and are in the batch with
    # receive count 2; records 32..61 once. The batch carries 60 records.
    s = scenario(
        {
            "duration": 65,
            "functions": {"f": {"timeout": 30, "duration": "100ms"}},
            "sources": {
                "q": {
                    "visibility_timeout": 30,
                    "max_receive_count": 2,
                    "traffic": {"rate": "1/s", "pattern": "constant"},
                }
            },
        },
        one_poller_window(100, 60),
    )
    result = traced(s)
    inv = invocations_of(result, 0)
    assert inv["start_s"][0] == pytest.approx(61)
    assert inv["records"][0] == 60
    rec = records_of(result, "q").iloc[:61]
    assert states(rec)[0] == "dlq"
    assert rec["done_s"][0] == pytest.approx(61)
    assert (states(rec)[1:] == "succeeded").all()
    np.testing.assert_array_equal(rec["receives"][1:31], 2)
    np.testing.assert_array_equal(rec["receives"][31:], 1)
    assert_conserved(result)


def test_receives_never_take_a_queue_past_its_in_flight_limit() -> None:
    # 100 messages wait at t=0, an in-flight limit of 5, batches of 10 without a window, two pollers,
    # a 1 s function. The first poller's receive takes 5 (the room left), the second finds the queue
    # at its limit: its long poll runs its full 20 s wait empty. Every second the first poller
    # deletes its 5 and takes the next 5, so 20 batches of 5 drain the queue by t=20, in flight
    # never above 5.
    s = scenario(
        {
            "duration": 30,
            "functions": {"f": {"duration": "1s"}},
            "sources": {"q": {"in_flight_limit": 5, "traffic": {"initial_backlog": 100}}},
        },
        {"batch_size": 10, "poller_scaling": {**ONE_POLLER, "initial": 2, "ceiling": 2, "min_pollers": 2}},
    )
    with pytest.warns(
        UserWarning, match=r"sources\.q\.in_flight_limit: the queue reached 5 messages in flight"
    ):
        result = traced(s)
    inv = invocations_of(result, 0)
    assert (inv["records"] == 5).all()
    assert inv["records"].sum() == 100
    assert result.summary["in_flight_max"] == 5
    assert result.summary["sqs_over_limit_receives"] >= 1
    assert_conserved(result)


def test_the_in_flight_limit_holds_a_fleet_that_would_pass_it() -> None:
    # 5,000 messages a second collected into batches of 2,000 over 60 s windows for a 30 s function:
    # unbounded, about 180,000 messages would be in flight at once (pollers holding windows plus
    # batches being processed). A standard queue stops at about 120,000: receives return nothing
    # there, so esmsim holds the count at the limit and says so.
    raw = {
        "duration": "5m",
        "functions": {"f": {"timeout": 30, "duration": "30s"}},
        "sources": {"q": {"visibility_timeout": "6m", "traffic": {"rate": "5000/s", "record_size": "200B"}}},
    }
    mapping = {"batch_size": 2000, "batching_window": "60s"}
    with pytest.warns(UserWarning, match="120,000 messages in flight"):
        limited = simulate(scenario(raw, mapping)).summary
    unbounded = simulate(
        scenario(merge(raw, {"sources": {"q": {"in_flight_limit": 10**9}}}), mapping)
    ).summary
    assert limited["in_flight_max"] == 120_000
    assert unbounded["in_flight_max"] > 150_000
    assert limited["batch_size_mean"] <= 2000


def test_a_late_delete_leaves_a_message_received_again_since_its_receipt() -> None:
    # Visibility timeout 1 s, an invoke-rate quota of 1/s, 0.2 s throttle retries, cold starts. Message
    # 1 (sent 1.34) is received at once, throttled until 2.14, and its cold invocation runs to 3.69,
    # past its visibility timeout (2.34). It is received again at 2.34 by another poller, throttled,
    # and back in the queue at 3.34. The first invocation's delete at 3.69 names a receipt older than
    # that second receive: SQS ignores it, so the message is processed again later (at-least-once),
    # not counted done at 3.69 (which also showed as a negative wait in its latency split). The
    # names are those the property test found it with: they key the random streams.
    s = Scenario.model_validate(
        {
            "duration": 30,
            "seed": 0,
            "account": {"invocation_rate_limit": 1},
            "functions": {
                "f0": {
                    "timeout": 1,
                    "memory_mb": 128,
                    "duration": {"dist": "lognormal", "median": 0.709, "p99": 0.709},
                    "cold_start": {"dist": "lognormal", "median": 0.3, "p99": 1.5},
                    "keep_alive": 5,
                }
            },
            "sources": {
                "q0": {
                    "type": "sqs",
                    "visibility_timeout": 1,
                    "retention": 60,
                    "traffic": {"rate": 0, "schedule": [{"at": 0, "rate": 1}]},
                }
            },
            "mappings": [
                {
                    "source": "q0",
                    "function": "f0",
                    "batch_size": 1,
                    "batching_window": 1,
                    "maximum_concurrency": 2,
                    "throttle_retry": {"initial": 0.2, "multiplier": 1, "maximum": 1},
                }
            ],
        }
    )
    result = traced(s)
    inv = invocations_of(result, 0)
    assert inv["start_s"].iloc[1] == pytest.approx(2.14325, abs=1e-4)
    assert inv["end_s"].iloc[1] == pytest.approx(3.6926, abs=1e-4)
    rec = records_of(result, "q0")
    assert rec["sent_s"][1] == pytest.approx(1.34325, abs=1e-4)
    assert rec["done_s"][1] > 3.7
    assert rec["receives"][1] == 3
    assert_conserved(result)
