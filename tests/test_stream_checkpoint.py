"""Exact micro-scenarios: readers of a DynamoDB stream shard, and a shard's checkpoint with lanes.

DynamoDB Streams serves at most two readers per shard (AWS: "More than 2 processes are reading from
the same streams shard at the same time. Exceeding this limit may result in request throttling",
LimitExceededException): two mappings read without a refused call, a third is throttled and warned
about. With a parallelization factor above 1, ``checkpoint: shard`` (the default) holds the shard's
other lanes back while one retries a failing batch; ``checkpoint: key`` lets them flow on
(docs/model.md §4).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from esmsim.cli import main
from esmsim.scenario.scenario import Scenario
from tests.helpers import assert_conserved, invocations_of, merge, records_of, traced
from tests.test_stream_micro import READER, STREAM, _seed_with_one_poison, states


def dynamodb_readers(n: int, source: dict[str, Any] | None = None) -> Scenario:
    """One DynamoDB shard, 20 changes/s, read by ``n`` mappings (each to its own function)."""
    raw = merge(
        STREAM,
        {
            "duration": 60,
            "functions": {f"f{i}": {"timeout": 60, "duration": "50ms", "cold_start": "0s"} for i in range(n)},
            "sources": {
                "s": merge(
                    {"type": "dynamodb", "traffic": {"rate": "20/s", "initial_backlog": 0}}, source or {}
                )
            },
        },
    )
    del raw["functions"]["f"]
    raw["mappings"] = [
        {"source": "s", "function": f"f{i}", "starting_position": "TRIM_HORIZON", "batch_size": 10}
        for i in range(n)
    ]
    return Scenario.model_validate(raw)


def test_two_mappings_read_a_dynamodb_shard_without_throttles() -> None:
    # Each reader polls an idle shard 4 times a second and paces itself to 5 calls a second; the
    # shard serves two readers' worth (10 calls/s): no call is refused.
    s = dynamodb_readers(2)
    assert not any("read DynamoDB stream" in w.message for w in s.warnings)
    result = traced(s)
    assert result.summary["read_throttles"] == 0
    assert result.timeseries["ReadProvisionedThroughputExceeded"].sum() == 0
    assert result.summary["getrecords_calls"] <= 2 * 5 * (60 + 1)
    for i in range(2):
        assert (states(records_of(result, f"mappings[{i}]: s -> f{i}")) != "waiting").any()
    assert_conserved(result)


def test_three_mappings_on_a_dynamodb_shard_are_throttled_and_warned_about() -> None:
    # Three readers polling 4 times a second ask 12 calls/s of a shard serving 10: calls are refused.
    s = dynamodb_readers(3)
    assert any("3 mappings read DynamoDB stream 's'" in w.message for w in s.warnings)
    result = traced(s)
    assert result.summary["read_throttles"] > 0
    assert result.timeseries["ReadProvisionedThroughputExceeded"].sum() == result.summary["read_throttles"]
    assert_conserved(result)


def test_readers_per_shard_is_a_knob() -> None:
    # A what-if: a shard serving three readers' worth of calls throttles none of three.
    result = traced(dynamodb_readers(3, {"readers_per_shard": 3}))
    assert result.summary["read_throttles"] == 0


#: One Kinesis shard, 10 records/s over 20 keys, two lanes; a failing batch is retried 3 times
#: (after 1, 2 and 4 s) and then dropped.
N_RECORDS = 600


def poisoned(checkpoint: str) -> tuple[Scenario, int]:
    seed, poison_row = _seed_with_one_poison(N_RECORDS, 0.01, before=100)
    raw = merge(
        STREAM,
        {
            "duration": N_RECORDS / 10,
            "seed": seed,
            "functions": {"f": {"errors": {"poison_record_rate": 0.01}}},
            "sources": {
                "s": {
                    "traffic": {
                        "rate": "10/s",
                        "pattern": "constant",
                        "initial_backlog": 0,
                        "partition_keys": 20,
                    }
                }
            },
        },
    )
    raw["mappings"] = [
        merge(
            raw["mappings"][0],
            {
                "batch_size": 5,
                "parallelization_factor": 2,
                "maximum_retry_attempts": 3,
                "checkpoint": checkpoint,
            },
        )
    ]
    return Scenario.model_validate(raw), poison_row


def _failure_span(inv: pd.DataFrame) -> tuple[float, float, int]:
    """When the failing batch first failed and when it was given up on; its lane."""
    failed = inv[inv["outcome"].astype(str) != "success"]
    assert len(failed) == 4  # the first attempt and 3 retries
    assert failed["lane"].nunique() == 1
    return float(failed["end_s"].min()), float(failed["end_s"].max()), int(failed["lane"].iloc[0])


def test_checkpoint_shard_holds_the_other_lanes_until_the_failing_batch_is_resolved() -> None:
    s, poison = poisoned("shard")
    result = traced(s, seed=s.seed)
    inv = invocations_of(result, 0)
    rec = records_of(result, READER)
    t_fail, t_resolved, lane = _failure_span(inv)
    assert t_resolved - t_fail == pytest.approx(1 + 2 + 4 + 3 * 0.1, abs=0.01)
    # Between the first failure and the discard only the failing lane's retries start.
    between = inv[(inv["start_s"] > t_fail) & (inv["start_s"] < t_resolved)]
    assert len(between) == 3
    assert (between["lane"] == lane).all()
    assert (between["outcome"].astype(str) != "success").all()
    # No record past the poison record is done meanwhile, except by a batch already in flight
    # when it failed (a 100 ms invocation).
    done = rec["done_s"].to_numpy()
    later = (rec["id"].to_numpy() > poison) & (states(rec) == "succeeded")
    assert not (later & (done > t_fail + 0.1 + 1e-9) & (done < t_resolved)).any()
    # Once it is resolved the shard flows again and catches up.
    assert (later & (done >= t_resolved)).sum() > 50
    failing = inv[inv["outcome"].astype(str) != "success"]
    assert (states(rec) == "dropped").sum() == failing["records"].iloc[0]  # the failing batch
    assert poison in set(rec["id"][states(rec) == "dropped"])
    assert_conserved(result)


def test_checkpoint_key_lets_other_keys_flow_past_a_failing_batch() -> None:
    s, poison = poisoned("key")
    result = traced(s, seed=s.seed)
    inv = invocations_of(result, 0)
    rec = records_of(result, READER)
    t_fail, t_resolved, lane = _failure_span(inv)
    between = inv[(inv["start_s"] > t_fail) & (inv["start_s"] < t_resolved)]
    others = between[between["lane"] != lane]
    assert len(others) > 5  # about 7 s of the other lane's records, a batch a 0.5-1 s
    assert (others["outcome"].astype(str) == "success").all()
    done = rec["done_s"].to_numpy()
    later = (rec["id"].to_numpy() > poison) & (states(rec) == "succeeded")
    assert (later & (done > t_fail + 0.2) & (done < t_resolved)).sum() > 10
    assert_conserved(result)


def test_a_factor_change_while_a_lane_is_held_back_rebuilds_the_lanes() -> None:
    # checkpoint: shard, and a live change to factor 3 while the failing batch is being retried: the
    # held lane ends, the shard is rebuilt once the failing batch is dropped, and every record ends up
    # processed once (or dropped with the failing batch).
    s, _ = poisoned("shard")
    inv = invocations_of(traced(s, seed=s.seed), 0)
    t_fail, t_resolved, _ = _failure_span(inv)
    raw = s.model_dump(mode="json", exclude_none=True)
    raw["changes"] = [{"at": (t_fail + t_resolved) / 2, "set": {"mappings[0].parallelization_factor": 3}}]
    changed = Scenario.model_validate(raw)
    result = traced(changed, seed=changed.seed)
    rec = records_of(result, READER)
    assert 1 <= (states(rec) == "dropped").sum() <= 5
    assert int(invocations_of(result, 0)["lane"].max()) >= 2  # new lanes ran
    assert (states(rec) == "succeeded").sum() > N_RECORDS - 30
    assert_conserved(result)


@pytest.mark.parametrize("value", ["lane", "shards"])
def test_checkpoint_takes_shard_or_key(tmp_path: Path, value: str) -> None:
    path = tmp_path / "k.yaml"
    path.write_text(
        "functions:\n  f: {timeout: 10}\nsources:\n  s: {type: kinesis, shards: 2}\nmappings:\n"
        f"  - source: s\n    function: f\n    starting_position: LATEST\n    checkpoint: {value}\n"
    )
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"{path}:9: mappings[0].checkpoint: {value!r} is not allowed (allowed: shard, key)"
    )
    assert np.size(result.stderr.strip().splitlines()) == 1
