"""Exact micro-scenarios of Kinesis and DynamoDB stream mappings.

Constant durations, a handful of records, expected times derived in the comments from AWS's rules
(docs/model.md §4) and the modelling choices in docs/model.md.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from esmsim.model.function import ERROR, PARTIAL, SUCCESS
from esmsim.model.records import DLQ, DROPPED, EXPIRED, SUCCEEDED
from esmsim.rng import Streams
from esmsim.run import simulate
from esmsim.scenario.scenario import Scenario
from tests.conftest import invocations, merge, run_recording, run_world

STREAM: dict[str, Any] = {
    "name": "stream-micro",
    "duration": 120,
    "seed": 1,
    "functions": {"f": {"timeout": 60, "duration": "100ms", "cold_start": "0s"}},
    "sources": {
        "s": {
            "type": "kinesis",
            "shards": 1,
            "propagation_delay": "0s",
            "traffic": {"rate": 0, "initial_backlog": 1, "partition_keys": 1},
        }
    },
    "mappings": [{"source": "s", "function": "f", "starting_position": "TRIM_HORIZON", "batch_size": 100}],
}


def stream(extra: dict[str, Any] | None = None, mapping: dict[str, Any] | None = None) -> Scenario:
    raw = merge(STREAM, extra or {})
    if mapping:
        raw["mappings"] = [merge(raw["mappings"][0], mapping)]
    return Scenario.model_validate(raw)


ALWAYS_FAILS = {"functions": {"f": {"errors": {"invocation_error_rate": 1.0}}}}


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_retries_follow_the_backoff_and_stop_after_maximum_retry_attempts(retries: int) -> None:
    # One record, a function that always throws, retries after 2 s, 6 s, 18 s (x3): invocations at
    # 0, 0.1+2, 2.2+6, 8.3+18, ... The batch runs retries + 1 times, then is dropped (no destination).
    s = stream(
        ALWAYS_FAILS, {"maximum_retry_attempts": retries, "retry_backoff": {"initial": 2, "multiplier": 3}}
    )
    world = run_world(s)
    starts = invocations(world)["start_at"]
    expected = [0.0, 2.1, 8.2, 26.3][: retries + 1]
    np.testing.assert_allclose(starts, expected)
    m = world.stream_mappings[0]
    assert m.state[0] == DROPPED
    assert m.done_at[0] == pytest.approx(expected[-1] + 0.1)


def test_records_older_than_maximum_record_age_are_dropped() -> None:
    # Infinite retries, 1 s doubling: attempts at 0, 1.1, 3.2, 7.3, 15.4, 31.5; the next would be at
    # 63.6, when the record (written at 0) is older than 60 s: it is dropped then, not invoked.
    s = stream(ALWAYS_FAILS, {"maximum_record_age": 60})
    world = run_world(s)
    np.testing.assert_allclose(invocations(world)["start_at"], [0, 1.1, 3.2, 7.3, 15.4, 31.5])
    m = world.stream_mappings[0]
    assert m.state[0] == DROPPED
    assert m.done_at[0] == pytest.approx(63.6)


def _seed_with_one_poison(n: int, rate: float, before: int | None = None) -> tuple[int, int]:
    """A seed whose first ``n`` records hold exactly one poison record (at a row below ``before``)."""
    for seed in range(5000):
        draws = Streams(seed).get("poison", "s").random(n)
        hits = np.flatnonzero(draws < rate)
        if hits.size == 1 and (before is None or hits[0] < before):
            return seed, int(hits[0])
    raise AssertionError("no seed found")


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_bisect_isolates_one_poison_record_in_k_splits(k: int) -> None:
    # A batch of 2**k records with one poison record, bisect on, one retry, an SQS destination.
    # Each failure of a batch above one record splits it (no retry used); the halves run first half
    # first. Along the poison record's path that is k splits; every level also runs the healthy
    # half once. The lone poison record then fails twice (1 retry) and only it reaches the
    # destination: 1 + 2k + 1 invocations.
    n = 2**k
    seed, poison_row = _seed_with_one_poison(n, 0.2)
    s = stream(
        {
            "seed": seed,
            "functions": {"f": {"errors": {"poison_record_rate": 0.2}}},
            "sources": {"s": {"traffic": {"initial_backlog": n}}},
        },
        {
            "batch_size": n,
            "bisect_batch_on_function_error": True,
            "maximum_retry_attempts": 1,
            "on_failure": {"type": "sqs"},
            "retry_backoff": {"initial": 1},
        },
    )
    world, log = run_recording(s)
    sizes = [rows.size for _, _, rows, _ in log]
    assert len(log) == 1 + 2 * k + 1
    failing = [rows for _, _, rows, outcome in log if outcome == ERROR]
    assert [f.size for f in failing] == [n >> i for i in range(k)] + [1, 1]
    assert all(poison_row in f for f in failing)
    m = world.stream_mappings[0]
    assert list(np.flatnonzero(m.state == DLQ)) == [poison_row]
    assert (m.state[np.arange(n) != poison_row] == SUCCEEDED).all()
    assert m.discarded_batches == 1
    assert sorted(sizes)[0] == 1


def test_partial_batch_response_resumes_at_the_lowest_failed_record() -> None:
    # Ten records, one poison one: the handler reports it; the records before it are done at 0.1,
    # the rest (from the poison record on) is retried after 1 s and fails again at once.
    seed, poison_row = _seed_with_one_poison(10, 0.12)
    s = stream(
        {
            "seed": seed,
            "functions": {"f": {"errors": {"poison_record_rate": 0.12}}},
            "sources": {"s": {"traffic": {"initial_backlog": 10}}},
        },
        {"report_batch_item_failures": True, "maximum_retry_attempts": 0},
    )
    world, log = run_recording(s)
    assert [o for *_, o in log] == [PARTIAL]
    m = world.stream_mappings[0]
    assert (m.state[:poison_row] == SUCCEEDED).all()
    assert (m.state[poison_row:10] == DROPPED).all()  # no retries left: the rest is discarded
    np.testing.assert_allclose(m.done_at[:poison_row], 0.1)


def test_parallelization_factor_1_never_overlaps_two_batches_of_a_shard() -> None:
    s = stream(
        {
            "duration": 300,
            "functions": {"f": {"duration": {"dist": "exponential", "mean": "300ms"}}},
            "sources": {
                "s": {"shards": 3, "traffic": {"rate": "300/s", "initial_backlog": 0, "partition_keys": 500}}
            },
        },
        {"batch_size": 20},
    )
    world, log = run_recording(s)
    shard_of = world.streams["s"].shard
    for shard in range(3):
        spans = sorted((a, b) for a, b, rows, _ in log if shard_of[rows[0]] == shard)
        assert len(spans) > 10
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end


@pytest.mark.parametrize("factor", [2, 5])
def test_parallelization_keeps_each_partition_key_in_order(factor: int) -> None:
    s = stream(
        {
            "duration": 200,
            "functions": {"f": {"duration": {"dist": "exponential", "mean": "400ms"}}},
            "sources": {
                "s": {"shards": 2, "traffic": {"rate": "200/s", "initial_backlog": 0, "partition_keys": 50}}
            },
        },
        {"batch_size": 10, "parallelization_factor": factor},
    )
    world, log = run_recording(s)
    keys = np.asarray(world.streams["s"].key_lane_draw)  # equal draws <=> equal keys here
    spans_by_key: dict[float, list[tuple[float, float, int]]] = {}
    for start, end, rows, _ in log:
        for row in rows:
            spans_by_key.setdefault(float(keys[row]), []).append((start, end, int(row)))
    concurrent = 0
    for spans in spans_by_key.values():
        by_row = sorted(spans, key=lambda x: x[2])
        # Rows of one key in stream order are processed in order, never two batches at once.
        for (s1, e1, r1), (s2, e2, r2) in itertools.pairwise(by_row):
            assert r1 < r2
            if (s1, e1) != (s2, e2):
                assert s2 >= e1
    # With a factor above 1 the shard does run batches of different keys at once.
    ends = sorted((a, b) for a, b, *_ in log)
    concurrent = sum(1 for (a1, b1), (a2, _) in itertools.pairwise(ends) if a2 < b1)
    assert concurrent > 0
    assert simulate(s).summary["concurrency_max"] <= 2 * factor


@pytest.mark.parametrize(
    ("position", "expected"), [("LATEST", 20), ("TRIM_HORIZON", 25), ("AT_TIMESTAMP", 23)]
)
def test_starting_positions(position: str, expected: int) -> None:
    # Five records make the initial backlog, spread over the 50 s before time 0 (at -40, -30, -20,
    # -10 and 0), twenty more arrive at 1..20. LATEST reads the twenty, TRIM_HORIZON all 25, and
    # AT_TIMESTAMP -25 s those from -20 on: 23.
    mapping: dict[str, Any] = {"starting_position": position}
    if position == "AT_TIMESTAMP":
        mapping["starting_position_timestamp"] = -25
    s = stream(
        {
            "duration": 20,
            "sources": {
                "s": {
                    "traffic": {
                        "rate": "1/s",
                        "pattern": "constant",
                        "initial_backlog": 5,
                        "backlog_span": 50,
                    }
                }
            },
        },
        mapping,
    )
    world = run_world(s)
    m = world.stream_mappings[0]
    assert int(m.in_scope.sum()) == expected
    result = simulate(s)
    assert result.summary["records_in"] == expected


def test_a_poison_record_blocks_its_shard_until_it_expires() -> None:
    # Defaults (retry until expiry): the poison record at the head of the only shard is retried
    # (1 s doubling to 60 s) until its 24 h retention ends (DynamoDB: "blocks the shard for up to
    # one day"); the records behind it wait the whole time and are processed after.
    rate = 1 / 600  # a record every 10 minutes: 156 in 26 hours, one of them poison
    seed, poison_row = _seed_with_one_poison(156, 0.01, before=6)
    s = Scenario.model_validate(
        merge(
            STREAM,
            {
                "duration": 26 * 3600,
                "seed": seed,
                "functions": {"f": {"errors": {"poison_record_rate": 0.01}}},
                "sources": {
                    "s": {
                        "type": "dynamodb",
                        "traffic": {"rate": rate, "pattern": "constant", "initial_backlog": 0},
                    }
                },
            },
        )
    )
    world = run_world(s, seed=seed)
    m = world.stream_mappings[0]
    stream_ = world.streams["s"]
    first_poison = poison_row
    blocked_until = stream_.accepted_at[first_poison] + 86400
    # Everything before the poison record succeeded; it expired at its retention end.
    assert (m.state[:first_poison] == SUCCEEDED).all()
    assert m.state[first_poison] == EXPIRED
    assert m.done_at[first_poison] == pytest.approx(blocked_until)
    # Records behind it that were not 24 h old yet when it expired were processed only afterwards.
    behind = np.arange(first_poison + 1, len(stream_))
    done = behind[m.state[behind] == SUCCEEDED]
    assert done.size > 0
    assert (m.done_at[done] >= blocked_until).all()
    # Records behind it are younger than it, so none of them expired: only the poison record did.
    assert int((m.state == EXPIRED).sum()) == 1


def test_iterator_age_is_send_time_minus_the_batch_last_record() -> None:
    # Records at t = 1, 2, 3 (constant 1/s until the rate drops to 0 at 3.5), one shard, a 5 s
    # window opened at 0: the batch is sent when the window ends, at 5, with the three records. Its
    # last record was written at 3, so IteratorAge = send time - that record's arrival = 2 s.
    s = stream(
        {
            "duration": 5.5,
            "sources": {
                "s": {
                    "traffic": {
                        "rate": "1/s",
                        "pattern": "constant",
                        "initial_backlog": 0,
                        "schedule": [{"at": 3.5, "rate": 0}],
                    }
                }
            },
        },
        {"batching_window": 5},
    )
    world = run_world(s)
    inv = invocations(world)
    assert len(inv["start_at"]) == 1
    last = int(inv["records"][0]) - 1
    np.testing.assert_allclose(inv["iterator_age_s"], inv["start_at"] - world.streams["s"].accepted_at[last])
    np.testing.assert_allclose(inv["start_at"], [5.0])
    np.testing.assert_array_equal(inv["records"], [3])
    np.testing.assert_allclose(inv["iterator_age_s"], [2.0])


def test_two_consumers_share_a_shard_read_throughput() -> None:
    # 100 KB records at 30/s into one shard (3 MB/s written... within the write limit of 1 MB/s?
    # no: the producer is held to 1 MiB/s), read by two standard consumers: together they never
    # read more than the shard's 2 MiB/s (plus the first second's bucket) and 5 calls/s.
    raw = merge(
        STREAM,
        {
            "duration": 60,
            "functions": {"f": {"duration": "50ms"}, "g": {"duration": "50ms"}},
            "sources": {
                "s": {
                    "write_bytes_per_second": None,
                    "traffic": {"rate": "30/s", "record_size": "100KB", "initial_backlog": 0},
                }
            },
        },
    )
    raw["mappings"] = [
        {"source": "s", "function": "f", "starting_position": "TRIM_HORIZON", "batch_size": 10},
        {"source": "s", "function": "g", "starting_position": "TRIM_HORIZON", "batch_size": 10},
    ]
    world = run_world(Scenario.model_validate(raw))
    readers = [m.readers[0] for m in world.stream_mappings]
    total_bytes = sum(r.bytes_read for r in readers)
    total_calls = sum(r.calls for r in readers)
    assert total_bytes <= 2 * 1024 * 1024 * (60 + 1) + 100 * 1024
    assert total_calls <= 5 * (60 + 1)
    assert sum(len(r.throttled_calls) for r in readers) > 0  # they do get in each other's way


def test_write_limits_hold_producers_to_a_shard_capacity() -> None:
    # 2,000 records/s at one shard accepting 1,000/s: in any window of w seconds the shard accepts
    # at most 1,000 + 1,000 w records (a bucket of one second's worth), and the excess waits.
    s = stream(
        {"duration": 10, "sources": {"s": {"traffic": {"rate": "2000/s", "initial_backlog": 0}}}},
        {"enabled": False},
    )
    world = run_world(s)
    accepted = np.sort(world.streams["s"].accepted_at)
    for w in (0.1, 1.0, 3.0):
        counts = np.searchsorted(accepted, accepted + w, side="right") - np.arange(accepted.size)
        assert counts.max() <= 1000 + 1000 * w + 1
    assert world.streams["s"].write_throttled().size > 0
    result = simulate(s)
    assert result.summary["write_throttles"] > 0
    assert result.timeseries["WriteProvisionedThroughputExceeded"].sum() == result.summary["write_throttles"]


def test_idle_shard_is_polled_once_a_second() -> None:
    s = stream(
        {
            "duration": 5,
            "sources": {"s": {"traffic": {"rate": "1/s", "pattern": "constant", "initial_backlog": 0}}},
        }
    )
    world = run_world(s)
    inv = invocations(world)
    # Records at 1, 2, 3, 4: each is fetched by the poll at its own second (available exactly then).
    np.testing.assert_allclose(inv["start_at"], [1, 2, 3, 4])
    assert list(inv["outcome"]) == [SUCCESS] * 4


def test_enhanced_fan_out_backlog_waits_out_the_batching_window() -> None:
    # Three backlog records written at -20, -10 and 0 are pushed 70 ms later (-19.93, -9.93, 0.07).
    # Batch size 10, a 2 s window opened at 0: every record the shard will ever hold is in hand at
    # 0.07, short of the batch size, so the lane waits for the window's end and invokes all three
    # at 2.0. (The lane used to wait on a record it already held and spin at 0.07 for ever.)
    s = stream(
        {
            "duration": 10,
            "sources": {
                "s": {
                    "efo_propagation_delay": "70ms",
                    "traffic": {"initial_backlog": 3, "backlog_span": 30},
                }
            },
        },
        {"enhanced_fan_out": True, "batch_size": 10, "batching_window": 2},
    )
    inv = invocations(run_world(s))
    np.testing.assert_allclose(inv["start_at"], [2.0])
    np.testing.assert_array_equal(inv["records"], [3])


def test_enhanced_fan_out_pushes_each_record_after_its_propagation_delay() -> None:
    # One record a second from t=1, pushed 70 ms after it is written; batch size 1, no window: each is
    # invoked at 1.07, 2.07, ... with no polling cadence in between.
    s = stream(
        {
            "duration": 5.5,
            "sources": {
                "s": {
                    "efo_propagation_delay": "70ms",
                    "traffic": {"rate": "1/s", "pattern": "constant", "initial_backlog": 0},
                }
            },
        },
        {"enhanced_fan_out": True, "batch_size": 1},
    )
    inv = invocations(run_world(s))
    np.testing.assert_allclose(inv["start_at"], [1.07, 2.07, 3.07, 4.07, 5.07])
