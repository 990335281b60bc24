"""Live changes of a stream mapping's parallelization factor and of a Kinesis stream's shard count.

Exact micro-scenarios (constant durations, a handful of records, expected times derived in the
comments from docs/model.md §4 and §14) and a hypothesis property over random factor changes.

Runs are read through the public API: a traced run's ``invocations`` and ``records`` tables, the
summary and the time series. Lane numbers follow docs/model.md §14: the lanes a run starts with are
numbered shard by shard (shard x factor + k); a factor change numbers the new lanes after every
earlier one, shard by shard in the same way.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from esmsim.errors import ScenarioError
from esmsim.rng import Streams
from esmsim.scenario.mappings import StreamMapping
from esmsim.scenario.scenario import Scenario
from tests.helpers import assert_conserved, concurrency_at, invocations_of, merge, records_of, traced
from tests.test_properties_live import LIVE_SETTINGS
from tests.test_properties_streams import check_records, label, stream_scenarios

STREAM: dict[str, Any] = {
    "name": "live-streams",
    "duration": 60,
    "seed": 1,
    "update_delay": 0,
    "functions": {"f": {"timeout": 60, "duration": "1s", "cold_start": "0s"}},
    "sources": {
        "s": {
            "type": "kinesis",
            "shards": 1,
            "propagation_delay": "0s",
            "traffic": {"rate": 0, "initial_backlog": 8, "backlog_span": 0, "partition_keys": 8},
        }
    },
    "mappings": [{"source": "s", "function": "f", "starting_position": "TRIM_HORIZON", "batch_size": 2}],
}

#: The records table's consumer label of the mapping.
READER = "mappings[0]: s -> f"


def stream(extra: dict[str, Any] | None = None, mapping: dict[str, Any] | None = None) -> Scenario:
    raw = merge(STREAM, extra or {})
    if mapping:
        raw["mappings"] = [merge(raw["mappings"][0], mapping)]
    return Scenario.model_validate(raw)


def key_lanes(seed: int, keys: int, factor: int) -> np.ndarray:
    """Each key's lane within its shard at ``factor``: ``floor(draw * factor)``.

    The draws come from the source's "key_hashes" stream, after the shard hashes (docs/model.md §4:
    a key's hash picks its shard and its lane).
    """
    draws = Streams(seed).get("key_hashes", "s").random(2 * keys)[keys:]
    return np.minimum((draws * factor).astype(np.int64), factor - 1)


def backlog_keys(seed: int) -> np.ndarray:
    """The keys of the eight backlog records of ``STREAM`` run with ``seed``, by record id."""
    rec = records_of(traced(stream({"seed": seed, "duration": 1})), READER)
    return rec["key"].to_numpy()


def spread_seed(factor: int, records: slice, lanes: int) -> int:
    """A seed whose backlog records ``records`` fall into at least ``lanes`` lanes at ``factor``."""
    for seed in range(1, 200):
        keys = backlog_keys(seed)[records]
        if np.unique(key_lanes(seed, 8, factor)[keys]).size >= lanes:
            return seed
    raise AssertionError("no seed found")


def per_key_in_order(rec: pd.DataFrame) -> bool:
    """Records of one key succeed in the order they were written (shard, then id)."""
    ok = rec[rec["state"].astype(str) == "succeeded"].sort_values(["shard", "id"])
    return bool((ok.groupby("key")["done_s"].diff().dropna() >= -1e-9).all())


def test_factor_1_to_4_waits_for_the_batch_in_flight_then_splits_the_rest_by_key() -> None:
    # Eight records in one shard, batches of 2, 1 s each. At 0 the single lane (lane 0) takes
    # records 0-1 (0 -> 1). The factor becomes 4 at 0.5 s: lane 0 forms no new batch, and when
    # its batch ends at 1 s records 2-7 move to lanes 1-4 by key (their draw x 4). Each new lane
    # then runs its records two at a time from 1 s: its j-th record (0-based) is done at 2 + j // 2.
    seed = spread_seed(4, slice(2, 8), 3)
    s = stream({"seed": seed, "changes": [{"at": 0.5, "set": {"mappings[0].parallelization_factor": 4}}]})
    result = traced(s)
    inv = invocations_of(result, 0).sort_values(["start_s", "lane"]).reset_index(drop=True)
    rec = records_of(result, READER)
    assert (rec["state"].astype(str) == "succeeded").all()
    lane_of = key_lanes(seed, 8, 4)[rec["key"].to_numpy()] + 1  # lanes 1-4
    lane_of[:2] = 0
    expected_done = np.ones(8)
    starts: list[tuple[float, int, int]] = [(0.0, 0, 2)]
    for lane in range(1, 5):
        rows = np.flatnonzero(lane_of == lane)
        expected_done[rows] = 2 + np.arange(rows.size) // 2
        starts += [(1.0 + b, lane, min(2, rows.size - 2 * b)) for b in range((rows.size + 1) // 2)]
    np.testing.assert_allclose(rec["done_s"], expected_done)
    starts.sort()
    assert list(zip(inv["start_s"], inv["lane"], inv["records"], strict=True)) == starts
    # Before the change one batch at a time; after it, up to one per new lane, and never a new lane
    # while the old lane's batch runs.
    assert concurrency_at(inv, np.array([0.0])).max() == 1
    assert concurrency_at(inv, inv["start_s"].to_numpy()).max() == np.unique(lane_of[2:]).size
    assert per_key_in_order(rec)
    assert_conserved(result)


def test_factor_4_to_1_waits_for_every_lane_then_merges_in_shard_order() -> None:
    # Factor 4 from the start: at 0 each lane (0-3) with records takes up to two of them, all done
    # at 1 s. The factor becomes 1 at 0.5 s; at 1 s, when the last of those batches ends, what is
    # left moves to one lane (lane 4) in shard order, and runs two at a time from 1 s.
    seed = spread_seed(4, slice(0, 8), 3)
    s = stream(
        {"seed": seed, "changes": [{"at": 0.5, "set": {"mappings[0].parallelization_factor": 1}}]},
        {"parallelization_factor": 4},
    )
    result = traced(s)
    inv = invocations_of(result, 0).sort_values(["start_s", "lane"]).reset_index(drop=True)
    rec = records_of(result, READER)
    lane_of = key_lanes(seed, 8, 4)[rec["key"].to_numpy()]
    first_batch = np.zeros(8, dtype=bool)
    starts: list[tuple[float, int, int]] = []
    for lane in range(4):
        rows = np.flatnonzero(lane_of == lane)[:2]
        first_batch[rows] = True
        if rows.size:
            starts.append((0.0, lane, rows.size))
    rest = np.flatnonzero(~first_batch)
    expected_done = np.ones(8)
    expected_done[rest] = 2 + np.arange(rest.size) // 2
    starts += [(1.0 + b, 4, min(2, rest.size - 2 * b)) for b in range((rest.size + 1) // 2)]
    np.testing.assert_allclose(rec["done_s"], expected_done)
    assert list(zip(inv["start_s"], inv["lane"], inv["records"], strict=True)) == sorted(starts)
    after = inv[inv["start_s"] >= 1.0]
    assert concurrency_at(after, after["start_s"].to_numpy()).max() == 1
    assert per_key_in_order(rec)
    assert_conserved(result)


def test_a_failing_batch_holds_the_rebuild_until_it_is_discarded() -> None:
    # Factor 2 -> 1 at 0.5 s while every invocation fails, two retries 1 s after each failure, no
    # destination: each old lane's first batch runs at 0 -> 1, 2 -> 3 and 4 -> 5 and is dropped
    # at 5. Only then does the rest move to lane 2, whose batches fail the same way from 5 s.
    s = stream(
        {
            "functions": {"f": {"errors": {"invocation_error_rate": 1.0}}},
            "changes": [{"at": 0.5, "set": {"mappings[0].parallelization_factor": 1}}],
        },
        {
            "parallelization_factor": 2,
            "maximum_retry_attempts": 2,
            "retry_backoff": {"initial": 1, "multiplier": 1},
        },
    )
    result = traced(s)
    inv = invocations_of(result, 0)
    assert set(inv["lane"]) <= {0, 1, 2}
    for _, old in inv[inv["lane"] < 2].groupby("lane"):
        assert list(old["start_s"]) == [0.0, 2.0, 4.0]
    new = inv[inv["lane"] == 2]
    assert list(new["start_s"][:3]) == [5.0, 7.0, 9.0]
    rec = records_of(result, READER)
    assert set(rec["state"].astype(str)) == {"dropped"}
    assert_conserved(result)


def test_raising_the_factor_under_load_raises_the_shards_concurrency() -> None:
    # 100 records a second into one shard, 200 ms per batch of at most 10: one lane drains 50 a
    # second, so a backlog builds until the factor becomes 4 at 30 s (effective 35 s); four lanes
    # drain it within the next minute.
    s = Scenario.model_validate(
        {
            "duration": 180,
            "seed": 3,
            "functions": {"f": {"duration": "200ms", "cold_start": "0s"}},
            "sources": {
                "s": {"type": "kinesis", "shards": 1, "traffic": {"rate": "100/s", "partition_keys": 200}}
            },
            "mappings": [{"source": "s", "function": "f", "starting_position": "LATEST", "batch_size": 10}],
            "changes": [{"at": 30, "set": {"mappings[0].ParallelizationFactor": 4}}],
        }
    )
    result = traced(s)
    inv = invocations_of(result, 0)
    before = inv[inv["lane"] == 0]
    after = inv[inv["lane"] > 0]
    assert set(after["lane"]) == {1, 2, 3, 4}
    assert before["end_s"].max() <= after["start_s"].min()
    assert after["start_s"].min() >= 35.0
    assert concurrency_at(before, before["start_s"].to_numpy()).max() == 1
    assert concurrency_at(after, after["start_s"].to_numpy()).max() == 4
    age = result.timeseries["IteratorAge"].to_numpy()
    assert age[0] > 10_000  # ms
    assert age[-1] < 1_000
    rec = records_of(result, READER)
    assert per_key_in_order(rec)
    assert_conserved(result)


def test_the_factor_can_change_while_the_mapping_is_disabled() -> None:
    # Disabled at 0.5 (after its first batch), factor 4 at 2 s, enabled again at 10 s: the shard
    # is rebuilt while nothing runs, and the new lanes start at 10 s.
    seed = spread_seed(4, slice(2, 8), 2)
    s = stream(
        {
            "seed": seed,
            "changes": [
                {"at": 0.5, "set": {"mappings[0].enabled": False}},
                {"at": 2, "set": {"mappings[0].parallelization_factor": 4}},
                {"at": 10, "set": {"mappings[0].enabled": True}},
            ],
        }
    )
    result = traced(s)
    inv = invocations_of(result, 0)
    assert list(inv.loc[inv["lane"] == 0, "start_s"]) == [0.0]
    new = inv[inv["lane"] > 0]
    assert new["start_s"].min() == 10.0
    assert set(new["lane"]) <= {1, 2, 3, 4}
    assert per_key_in_order(records_of(result, READER))
    assert_conserved(result)


# ---------------------------------------------------------------------------------- the property


def lane_generations(s: Scenario, i: int) -> list[tuple[float, int, int]]:
    """For ``mappings[i]``: each factor the run uses, as (from when, factor, first lane number)."""
    spec = s.mappings[i]
    assert isinstance(spec, StreamMapping)
    shards = s.sources[spec.source].shards  # type: ignore[union-attr]
    factor = spec.parallelization_factor
    found = [(0.0, factor, 0)]
    next_id = shards * factor
    for effective, stage in s.stages:
        if effective >= s.duration:
            break
        new = stage.mappings[i]
        assert isinstance(new, StreamMapping)
        if new.parallelization_factor != factor:
            factor = new.parallelization_factor
            found.append((effective, factor, next_id))
            next_id += shards * factor
    return found


def check_generations(s: Scenario, i: int, inv: pd.DataFrame) -> None:
    """Each factor's lanes of every shard run at most that many batches at once.

    Each lane runs one batch at a time; a factor's lanes start no batch before the factor took
    effect, nor before every batch of an earlier factor's lanes of that shard ended.
    """
    generations = lane_generations(s, i)
    for shard in np.unique(inv["shard"].to_numpy()):
        mine = inv[inv["shard"] == shard]
        previous_end = -np.inf
        for effective, factor, first in generations:
            lo = first + int(shard) * factor
            part = mine[(mine["lane"] >= lo) & (mine["lane"] < lo + factor)]
            if part.empty:
                continue
            assert part["start_s"].min() >= effective - 1e-9
            assert part["start_s"].min() >= previous_end - 1e-9
            assert concurrency_at(part, part["start_s"].to_numpy()).max() <= factor
            for _, lane in part.groupby("lane"):
                assert concurrency_at(lane, lane["start_s"].to_numpy()).max() <= 1
            previous_end = max(previous_end, part["end_s"].max())
        # Every invocation belongs to one of the shard's generations of lanes.
        owned = np.zeros(len(mine), dtype=bool)
        for _, factor, first in generations:
            lo = first + int(shard) * factor
            owned |= ((mine["lane"] >= lo) & (mine["lane"] < lo + factor)).to_numpy()
        assert owned.all()


@st.composite
def factor_changes(draw: st.DrawFn) -> Scenario:
    raw = draw(stream_scenarios())
    changes: list[dict[str, Any]] = []
    at = 0.0
    for _ in range(draw(st.integers(1, 3))):
        at += draw(st.floats(1.0, raw["duration"] / 2))
        i = draw(st.integers(0, len(raw["mappings"]) - 1))
        sets: dict[str, Any] = {f"mappings[{i}].parallelization_factor": draw(st.integers(1, 6))}
        if draw(st.booleans()):
            sets[f"mappings[{i}].enabled"] = draw(st.booleans())
        changes.append({"at": at, "set": sets})
    raw["changes"] = changes
    raw["update_delay"] = draw(st.sampled_from([0, 1, 5]))
    try:
        return Scenario.model_validate(raw)
    except ScenarioError:
        assume(False)
        raise


@LIVE_SETTINGS
@given(factor_changes())
def test_factor_changes_keep_key_order_and_each_factors_concurrency(s: Scenario) -> None:
    result = traced(s)
    assert_conserved(result)
    assert result.diagnostics["late_level_changes"] == 0
    check_records(s, result)
    for i in range(len(s.mappings)):
        inv = invocations_of(result, i)
        check_generations(s, i, inv)
        assert per_key_in_order(records_of(result, label(s, i)))


# ---------------------------------------------------------------------------------- resharding

#: One shard of 20 keys: six records at 0, then one a second from 1 s (docs/model.md §1, constant).
RESHARD: dict[str, Any] = {
    "duration": 12,
    "sources": {
        "s": {"traffic": {"rate": 1, "pattern": "constant", "initial_backlog": 6, "partition_keys": 20}}
    },
}


def test_one_shard_to_two_children_read_after_the_parent_is_drained() -> None:
    # UpdateShardCount 1 -> 2 at 2.5 s: shard 0 closes, shards 1 and 2 open. Shard 0 keeps the six
    # records sent at 0 and those sent at 1 and 2; the records from 3 s on go to 1 or 2 by key.
    # Batches of 2, 1 s each: shard 0 runs 0 -> 1, 1 -> 2, 2 -> 3 and 3 -> 4 (the records sent at 1
    # and 2 last). Its children are read only from 4 s, when it is drained: each child's first
    # batch starts then, with what it holds by then.
    s = stream(merge(RESHARD, {"changes": [{"at": 2.5, "set": {"sources.s.shards": 2}}]}))
    result = traced(s)
    inv = invocations_of(result, 0)
    rec = records_of(result, READER)
    parent = inv[inv["shard"] == 0]
    assert list(parent["start_s"]) == [0.0, 1.0, 2.0, 3.0]
    assert list(parent["records"]) == [2, 2, 2, 2]
    children = inv[inv["shard"] > 0]
    assert set(children["shard"]) == {1, 2}
    assert children["start_s"].min() == 4.0
    for shard in (1, 2):
        first = children[children["shard"] == shard].iloc[0]
        sent = rec.loc[rec["shard"] == shard, "sent_s"]
        assert first["start_s"] == max(4.0, sent.min())
        assert first["records"] == min(2, int((sent <= first["start_s"]).sum()))
    # Records go to the shards open when they are sent; a key's records stay in order.
    assert (rec.loc[rec["sent_s"] < 2.5, "shard"] == 0).all()
    assert (rec.loc[rec["sent_s"] > 2.5, "shard"] > 0).all()
    assert per_key_in_order(rec)
    # A key keeps its child: the hash range [0, 1/2) goes to shard 1, [1/2, 1) to shard 2.
    assert (rec[rec["shard"] > 0].groupby("key")["shard"].nunique() == 1).all()
    assert_conserved(result)


def test_two_shards_to_one_child_waits_for_both_parents() -> None:
    # UpdateShardCount 2 -> 1 at 2.5 s: shard 2 takes every key, after shards 0 and 1 are both
    # drained: its first batch starts when the later of its parents ends its last one.
    s = stream(
        merge(
            RESHARD,
            {"sources": {"s": {"shards": 2}}, "changes": [{"at": 2.5, "set": {"sources.s.shards": 1}}]},
        )
    )
    result = traced(s)
    inv = invocations_of(result, 0)
    rec = records_of(result, READER)
    parents = inv[inv["shard"] < 2]
    child = inv[inv["shard"] == 2]
    assert set(parents["shard"]) == {0, 1}
    assert child["start_s"].min() == parents["end_s"].max()
    assert set(rec.loc[rec["sent_s"] > 2.5, "shard"]) == {2}
    assert per_key_in_order(rec)
    assert_conserved(result)


def test_shard_hours_follow_the_shard_count() -> None:
    # One shard for 30 s, then two: 30 + 2 x 90 = 210 shard-seconds at $0.015 a shard-hour.
    s = Scenario.model_validate(
        {
            "duration": 120,
            "update_delay": 0,
            "functions": {"f": {"duration": "100ms"}},
            "sources": {"s": {"type": "kinesis", "shards": 1, "traffic": {"rate": "20/s"}}},
            "mappings": [{"source": "s", "function": "f", "starting_position": "LATEST"}],
            "changes": [{"at": 30, "set": {"sources.s.shards": 2}}],
        }
    )
    result = traced(s)
    assert result.summary["cost_source_usd"] == pytest.approx(210 / 3600 * 0.015)
    # The shards' time series and the records table name the new shards.
    assert set(result.shard_timeseries["shard"]) == {0, 1, 2}
    assert set(result.records["shard"]) == {0, 1, 2}
    assert_conserved(result)


def test_resharding_with_enhanced_fan_out_and_a_factor_change() -> None:
    # 2 -> 4 shards, then the factor 1 -> 3, then back to 2 shards while the mapping is paused:
    # every shard read after its parents, keys in order, the books balanced.
    s = Scenario.model_validate(
        {
            "duration": 240,
            "seed": 5,
            "functions": {"f": {"duration": "100ms", "errors": {"invocation_error_rate": 0.2}}},
            "sources": {
                "s": {
                    "type": "kinesis",
                    "shards": 2,
                    "traffic": {"rate": "50/s", "partition_keys": 40, "initial_backlog": 500},
                }
            },
            "mappings": [
                {
                    "source": "s",
                    "function": "f",
                    "starting_position": "TRIM_HORIZON",
                    "batch_size": 10,
                    "enhanced_fan_out": True,
                }
            ],
            "changes": [
                {"at": 30, "set": {"sources.s.shards": 4}},
                {"at": 60, "set": {"mappings[0].parallelization_factor": 3}},
                {"at": 100, "set": {"sources.s.shards": 2, "mappings[0].enabled": False}},
                {"at": 150, "set": {"mappings[0].enabled": True}},
            ],
        }
    )
    result = traced(s)
    check_lineage(s, 0, result)
    assert_conserved(result)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            [{"at": 10, "set": {"sources.t.shards": 4}}],
            "changes[0].set.sources.t.shards: DynamoDB manages a stream's shards (they follow the table's "
            "partitions): no update sets them",
        ),
        (
            [{"at": 10, "set": {"sources.s.shards": 9}}],
            "changes[0].set: at 10 s: sources.s.shards: 4 -> 9: UpdateShardCount scales a stream up to at "
            "most double its open shards (8)",
        ),
        (
            [{"at": 10, "set": {"sources.s.shards": 1}}],
            "changes[0].set: at 10 s: sources.s.shards: 4 -> 1: UpdateShardCount scales a stream down to at "
            "least half its open shards (2)",
        ),
        (
            [{"at": 10 * i, "set": {"sources.s.shards": 4 + i % 2}} for i in range(1, 12)],
            "changes[10].set: at 110 s: sources.s.shards: UpdateShardCount scales a stream at most 10 times "
            "in a rolling 24 hours",
        ),
    ],
)
def test_shard_count_changes_are_validated_as_update_shard_count(
    changes: list[dict[str, Any]], message: str
) -> None:
    raw = {
        "functions": {"f": {"duration": "100ms"}},
        "sources": {
            "s": {"type": "kinesis", "shards": 4, "traffic": {"rate": "5/s"}},
            "t": {"type": "dynamodb", "shards": 2, "traffic": {"rate": 1}},
        },
        "mappings": [{"source": "s", "function": "f", "starting_position": "LATEST"}],
        "changes": changes,
    }
    with pytest.raises(ScenarioError) as error:
        Scenario.model_validate(raw)
    assert [issue.format() for issue in error.value.issues] == [message]


def shard_epochs(s: Scenario) -> list[tuple[float, int, int]]:
    """The stream's shards over the run: (from when, how many, the first one's number)."""
    count = s.sources["s"].shards  # type: ignore[union-attr]
    found = [(-np.inf, count, 0)]
    for effective, stage in s.stages:
        new = stage.sources["s"].shards  # type: ignore[union-attr]
        if effective < s.duration and new != found[-1][1]:
            _, n, first = found[-1]
            found.append((effective, new, first + n))
    return found


def check_lineage(s: Scenario, i: int, result: Any) -> None:
    """Records in the shards open when they were sent; a child read only after its parents ended."""
    epochs = shard_epochs(s)
    rec = records_of(result, label(s, i))
    inv = invocations_of(result, i)
    starts = np.array([e[0] for e in epochs])
    epoch = np.searchsorted(starts, rec["sent_s"].to_numpy(), side="right") - 1
    firsts = np.array([e[2] for e in epochs])
    counts = np.array([e[1] for e in epochs])
    shard = rec["shard"].to_numpy()
    assert ((shard >= firsts[epoch]) & (shard < firsts[epoch] + counts[epoch])).all()
    for (_, n, before), (_, m, after) in itertools.pairwise(epochs):
        for j in range(m):
            child = inv[inv["shard"] == after + j]
            if child.empty:
                continue
            for k in range(n):
                if k * m < (j + 1) * n and j * n < (k + 1) * m:  # hash ranges overlap: a parent
                    parent = before + k
                    ended = inv.loc[inv["shard"] == parent, "end_s"].to_numpy()
                    assert child["start_s"].min() >= ended.max(initial=-np.inf) - 1e-9
                    done = rec.loc[(rec["shard"] == parent), "done_s"].to_numpy()
                    assert not np.isnan(done).any(), "a child read before its parent finished"
                    assert child["start_s"].min() >= done.max(initial=-np.inf) - 1e-9
    for lane in np.unique(inv["lane"].to_numpy()):
        mine = inv[inv["lane"] == lane]
        assert mine["shard"].nunique() == 1
        assert concurrency_at(mine, mine["start_s"].to_numpy()).max() <= 1
    assert per_key_in_order(rec)


@st.composite
def reshardings(draw: st.DrawFn) -> Scenario:
    raw = draw(stream_scenarios())
    source = raw["sources"]["s"]
    source["type"] = "kinesis"
    shards = source["shards"]
    changes: list[dict[str, Any]] = []
    at = 0.0
    for _ in range(draw(st.integers(1, 3))):
        at += draw(st.floats(1.0, raw["duration"] / 2))
        sets: dict[str, Any] = {}
        if draw(st.booleans()):
            shards = draw(st.integers(-(-shards // 2), 2 * shards))
            sets["sources.s.shards"] = shards
        else:
            i = draw(st.integers(0, len(raw["mappings"]) - 1))
            sets[f"mappings[{i}].parallelization_factor"] = draw(st.integers(1, 4))
        changes.append({"at": at, "set": sets})
    raw["changes"] = changes
    raw["update_delay"] = draw(st.sampled_from([0, 1, 5]))
    try:
        return Scenario.model_validate(raw)
    except ScenarioError:
        assume(False)
        raise


@LIVE_SETTINGS
@given(reshardings())
def test_reshardings_keep_key_order_and_read_children_after_parents(s: Scenario) -> None:
    result = traced(s)
    assert_conserved(result)
    assert result.diagnostics["late_level_changes"] == 0
    for i in range(len(s.mappings)):
        check_lineage(s, i, result)
