"""Exact micro-scenarios of Kinesis and DynamoDB stream mappings.

Constant durations, a handful of records, expected times derived in the comments from AWS's rules
(docs/model.md §4) and the modelling choices in docs/model.md.

Runs are read through the public API: a traced run's ``invocations`` and ``records`` tables
(tests/helpers.py), and the summary and time series.
"""

from __future__ import annotations

import itertools
import signal
from types import FrameType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from esmsim.rng import Streams
from esmsim.scenario.scenario import Scenario
from tests.helpers import assert_conserved, invocations_of, merge, records_of, traced

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

#: The records table's consumer label of the first mapping (it reads stream ``s`` for ``f``).
READER = "mappings[0]: s -> f"


def stream(extra: dict[str, Any] | None = None, mapping: dict[str, Any] | None = None) -> Scenario:
    raw = merge(STREAM, extra or {})
    if mapping:
        raw["mappings"] = [merge(raw["mappings"][0], mapping)]
    return Scenario.model_validate(raw)


ALWAYS_FAILS = {"functions": {"f": {"errors": {"invocation_error_rate": 1.0}}}}


def states(records: pd.DataFrame) -> np.ndarray:
    """The records' final states as plain strings ("succeeded", "dlq", ...)."""
    return records["state"].astype(str).to_numpy()


def outcomes(invocations: pd.DataFrame) -> list[str]:
    """The invocations' outcomes as plain strings ("success", "partial", "error", "timeout")."""
    return list(invocations["outcome"].astype(str))


def processed_by(invocations: pd.DataFrame, records: pd.DataFrame) -> list[pd.DataFrame]:
    """The records each invocation processed successfully, for runs where that is unambiguous.

    A stream record a batch processes is checkpointed when the invocation ends: it is done at the
    invocation's ``end_s``, on the invocation's shard. Each invocation here must be the only one of
    its shard to end at its time, or its records could not be told apart.
    """
    assert not invocations.duplicated(["shard", "end_s"]).any(), "two batches of a shard end at once"
    ok = records[records["state"].astype(str) == "succeeded"]
    return [
        ok[(ok["shard"] == shard) & (ok["done_s"] == end)]
        for shard, end in zip(invocations["shard"], invocations["end_s"], strict=True)
    ]


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_retries_follow_the_backoff_and_stop_after_maximum_retry_attempts(retries: int) -> None:
    # One record, a function that always throws, retries after 2 s, 6 s, 18 s (x3): invocations at
    # 0, 0.1+2, 2.2+6, 8.3+18, ... The batch runs retries + 1 times, then is dropped (no destination).
    s = stream(
        ALWAYS_FAILS, {"maximum_retry_attempts": retries, "retry_backoff": {"initial": 2, "multiplier": 3}}
    )
    result = traced(s)
    inv = invocations_of(result, 0)
    expected = [0.0, 2.1, 8.2, 26.3][: retries + 1]
    np.testing.assert_allclose(inv["start_s"], expected)
    assert set(outcomes(inv)) == {"error"}
    rec = records_of(result, READER)
    assert list(states(rec)) == ["dropped"]
    assert rec["done_s"][0] == pytest.approx(expected[-1] + 0.1)
    assert result.summary["discarded_batches"] == 1
    assert_conserved(result)


def test_records_older_than_maximum_record_age_are_dropped() -> None:
    # Infinite retries, 1 s doubling: attempts at 0, 1.1, 3.2, 7.3, 15.4, 31.5; the next would be at
    # 63.6, when the record (written at 0) is older than 60 s: it is dropped then, not invoked.
    s = stream(ALWAYS_FAILS, {"maximum_record_age": 60})
    result = traced(s)
    np.testing.assert_allclose(invocations_of(result, 0)["start_s"], [0, 1.1, 3.2, 7.3, 15.4, 31.5])
    rec = records_of(result, READER)
    assert list(states(rec)) == ["dropped"]
    assert rec["done_s"][0] == pytest.approx(63.6)


def _seed_with_one_poison(n: int, rate: float, before: int | None = None) -> tuple[int, int]:
    """A seed whose first ``n`` records hold exactly one poison record (at a row below ``before``).

    Poison draws come from the source's "poison" stream, one per record in the order they are sent
    (docs/model.md); with one shard that is also their order in the shard.
    """
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
    result = traced(s)
    inv = invocations_of(result, 0)
    assert len(inv) == 1 + 2 * k + 1
    failing = inv[np.array(outcomes(inv)) == "error"]
    assert list(failing["records"]) == [n >> i for i in range(k)] + [1, 1]
    # The only source of errors is the poison record, so every failing batch held it. Every
    # healthy half ran once and succeeded: the batches that succeeded are the halves n/2, n/4, ...,
    # 1 (one per split), each a run of consecutive records without the poison record.
    healthy = inv[np.array(outcomes(inv)) == "success"]
    assert sorted(healthy["records"], reverse=True) == [n >> i for i in range(1, k + 1)]
    rec = records_of(result, READER)
    np.testing.assert_array_equal(rec["id"], np.arange(n))  # row i is the shard's record i
    for batch, size in zip(processed_by(healthy, rec), healthy["records"], strict=True):
        ids = np.sort(batch["id"].to_numpy())
        assert ids.size == size
        np.testing.assert_array_equal(np.diff(ids), 1)
        assert poison_row not in ids
    assert list(np.flatnonzero(states(rec) == "dlq")) == [poison_row]
    assert (states(rec)[np.arange(n) != poison_row] == "succeeded").all()
    # The poison record reaches the destination when its last retry fails.
    assert rec["done_s"][poison_row] == pytest.approx(failing["end_s"].iloc[-1])
    assert result.summary["discarded_batches"] == 1
    assert inv["records"].min() == 1
    assert_conserved(result)


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
    result = traced(s)
    assert outcomes(invocations_of(result, 0)) == ["partial"]
    rec = records_of(result, READER)
    np.testing.assert_array_equal(rec["id"], np.arange(10))  # row i is the shard's record i
    assert (states(rec)[:poison_row] == "succeeded").all()
    assert (states(rec)[poison_row:10] == "dropped").all()  # no retries left: the rest is discarded
    np.testing.assert_allclose(rec["done_s"][:poison_row], 0.1)


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
    inv = invocations_of(traced(s), 0)
    for shard in range(3):
        mine = inv[inv["shard"] == shard]
        spans = sorted(zip(mine["start_s"], mine["end_s"], strict=True))
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
    result = traced(s)
    inv = invocations_of(result, 0)
    rec = records_of(result, READER)
    assert set(outcomes(inv)) == {"success"}
    spans_by_key: dict[tuple[int, int], list[tuple[float, float, int]]] = {}
    batches = processed_by(inv, rec)
    for start, end, n, batch in zip(inv["start_s"], inv["end_s"], inv["records"], batches, strict=True):
        if end <= s.duration:  # a batch still running at the end has no records done yet
            assert len(batch) == n
        for shard, key, row in zip(batch["shard"], batch["key"], batch["id"], strict=True):
            spans_by_key.setdefault((int(shard), int(key)), []).append((start, end, int(row)))
    assert sum(len(v) for v in spans_by_key.values()) == int((states(rec) == "succeeded").sum())
    for spans in spans_by_key.values():
        by_row = sorted(spans, key=lambda x: x[2])
        # Rows of one key in stream order are processed in order, never two batches at once.
        for (s1, e1, r1), (s2, e2, r2) in itertools.pairwise(by_row):
            assert r1 < r2
            if (s1, e1) != (s2, e2):
                assert s2 >= e1
    # With a factor above 1 the shard does run batches of different keys at once.
    ends = sorted(zip(inv["start_s"], inv["end_s"], strict=True))
    concurrent = sum(1 for (a1, b1), (a2, _) in itertools.pairwise(ends) if a2 < b1)
    assert concurrent > 0
    assert result.summary["concurrency_max"] <= 2 * factor


@pytest.mark.parametrize(
    ("position", "expected", "first_sent"),
    [("LATEST", 20, 1.0), ("TRIM_HORIZON", 25, -40.0), ("AT_TIMESTAMP", 23, -20.0)],
)
def test_starting_positions(position: str, expected: int, first_sent: float) -> None:
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
    result = traced(s)
    rec = records_of(result, READER)
    assert len(rec) == expected
    assert rec["sent_s"].min() == pytest.approx(first_sent)
    np.testing.assert_array_equal(rec["id"], np.arange(25 - expected, 25))  # the shard's last ones
    assert result.summary["records_in"] == expected
    assert_conserved(result)


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
    result = traced(s, seed=seed)
    rec = records_of(result, READER)
    assert len(rec) == 156
    np.testing.assert_array_equal(rec["id"], np.arange(156))
    state = states(rec)
    first_poison = poison_row
    blocked_until = rec["stored_s"][first_poison] + 86400
    # Everything before the poison record succeeded; it expired at its retention end.
    assert (state[:first_poison] == "succeeded").all()
    assert state[first_poison] == "expired"
    assert rec["done_s"][first_poison] == pytest.approx(blocked_until)
    # Records behind it that were not 24 h old yet when it expired were processed only afterwards.
    behind = np.arange(first_poison + 1, len(rec))
    done = behind[state[behind] == "succeeded"]
    assert done.size > 0
    assert (rec["done_s"].to_numpy()[done] >= blocked_until).all()
    # Records behind it are younger than it, so none of them expired: only the poison record did.
    assert int((state == "expired").sum()) == 1
    assert_conserved(result)


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
    result = traced(s)
    inv = invocations_of(result, 0)
    assert len(inv) == 1
    (batch,) = processed_by(inv, records_of(result, READER))
    last = batch.sort_values("id").iloc[-1]  # the batch's last record in the shard
    np.testing.assert_allclose(inv["iterator_age_s"], inv["start_s"] - last["stored_s"])
    np.testing.assert_allclose(inv["start_s"], [5.0])
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
    result = traced(Scenario.model_validate(raw))
    # Nothing fails, so each consumer reads each record once and hands what it read to its
    # function: the records its invocations carried (those still running at the end included), all
    # 100 KB, are what it read, short only of a last read not yet invoked when the run ends.
    record_bytes = 100 * 1024
    read = 0
    for i, consumer in enumerate(("mappings[0]: s -> f", "mappings[1]: s -> g")):
        rec = records_of(result, consumer)
        assert set(states(rec)) <= {"waiting", "in_flight", "succeeded"}
        invoked = int(invocations_of(result, i)["records"].sum())
        assert invoked >= int((states(rec) == "succeeded").sum()) > 0
        read += invoked
    total_bytes = read * record_bytes
    total_calls = result.summary["getrecords_calls"]
    assert total_bytes <= 2 * 1024 * 1024 * (60 + 1) + 100 * 1024
    assert total_calls <= 5 * (60 + 1)
    assert result.summary["read_throttles"] > 0  # they do get in each other's way
    assert result.timeseries["ReadProvisionedThroughputExceeded"].sum() == result.summary["read_throttles"]


def test_write_limits_hold_producers_to_a_shard_capacity() -> None:
    # 2,000 records/s at one shard accepting 1,000/s: in any window of w seconds the shard accepts
    # at most 1,000 + 1,000 w records (a bucket of one second's worth), and the excess waits.
    s = stream(
        {"duration": 10, "sources": {"s": {"traffic": {"rate": "2000/s", "initial_backlog": 0}}}},
        {"enabled": False},
    )
    result = traced(s)
    rec = records_of(result, READER)  # the disabled mapping's records: every record the shard stores
    assert len(rec) == result.summary["records_in"] > 10_000
    accepted = np.sort(rec["stored_s"].to_numpy())
    for w in (0.1, 1.0, 3.0):
        counts = np.searchsorted(accepted, accepted + w, side="right") - np.arange(accepted.size)
        assert counts.max() <= 1000 + 1000 * w + 1
    assert (rec["stored_s"] > rec["sent_s"] + 1e-9).any()  # the excess waited
    assert result.summary["write_throttles"] > 0
    assert result.timeseries["WriteProvisionedThroughputExceeded"].sum() == result.summary["write_throttles"]


def test_idle_shard_is_polled_once_a_second() -> None:
    s = stream(
        {
            "duration": 5,
            "sources": {"s": {"traffic": {"rate": "1/s", "pattern": "constant", "initial_backlog": 0}}},
        }
    )
    inv = invocations_of(traced(s), 0)
    # Records at 1, 2, 3, 4: each is fetched by the poll at its own second (available exactly then).
    np.testing.assert_allclose(inv["start_s"], [1, 2, 3, 4])
    assert outcomes(inv) == ["success"] * 4


def test_a_shard_without_a_call_limit_is_not_polled_before_its_next_record_is_available() -> None:
    # Found by fuzzing: with no call-rate limit, an idle poll planned a hair before the next record
    # was available (the tick count rounded down) found nothing and planned itself again at the same
    # instant, so the run never ended. Each run below takes well under a second.
    s = stream(
        {
            "duration": 60,
            "sources": {
                "s": {
                    "type": "dynamodb",
                    "shards": 5,
                    "propagation_delay": "100ms",
                    "read_calls_per_second": None,
                    "traffic": {
                        "rate": "20/s",
                        "pattern": "constant",
                        "initial_backlog": 0,
                        "partition_keys": 1000,
                    },
                }
            },
        },
        mapping={"starting_position": "LATEST"},
    )

    def hung(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError("the run did not end within 30 s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, 30.0)
    try:
        result = traced(s)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert_conserved(result)
    assert result.summary["records_in"] == 1200
    assert result.summary["records_in_flight_end"] < 20  # every record read, the last second's in flight


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
    inv = invocations_of(traced(s), 0)
    np.testing.assert_allclose(inv["start_s"], [2.0])
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
    inv = invocations_of(traced(s), 0)
    np.testing.assert_allclose(inv["start_s"], [1.07, 2.07, 3.07, 4.07, 5.07])
