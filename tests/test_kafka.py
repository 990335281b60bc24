"""Kafka mappings (Amazon MSK and self-managed): exact micro-scenarios, properties, scaling, cost.

Expected times come from AWS's rules (docs/model.md §16): the batching window starts when the
batch's first record arrives, one batch in flight per partition, a poller runs at most
``invokes_per_poller`` invocations, the fleet is evaluated every minute and changes within three.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esmsim import load_scenario
from esmsim.cli import main
from esmsim.run import simulate
from esmsim.scenario.mappings import KafkaMapping
from esmsim.scenario.scenario import Scenario
from tests.helpers import assert_conserved, invocations_of, merge, peak_concurrency, records_of, traced

KAFKA: dict[str, Any] = {
    "name": "kafka-micro",
    "duration": 60,
    "seed": 1,
    "functions": {"f": {"timeout": 60, "duration": "100ms", "cold_start": "0s"}},
    "sources": {
        "t": {
            "type": "kafka",
            "partitions": 1,
            "propagation_delay": "0s",
            "idle_poll_interval": "1ms",
            "traffic": {"rate": 0, "initial_backlog": 3, "partition_keys": 1},
        }
    },
    "mappings": [{"source": "t", "function": "f", "starting_position": "TRIM_HORIZON"}],
}

READER = "mappings[0]: t -> f"


def kafka(extra: dict[str, Any] | None = None, mapping: dict[str, Any] | None = None) -> Scenario:
    raw = merge(KAFKA, extra or {})
    if mapping:
        raw["mappings"] = [merge(raw["mappings"][0], mapping)]
    return Scenario.model_validate(raw)


def traffic(**keys: Any) -> dict[str, Any]:
    return {"sources": {"t": {"traffic": keys}}}


# ---------------------------------------------------------------------------- micro-scenarios
def test_defaults_follow_aws() -> None:
    m = kafka().mappings[0]
    assert m.batch_size == 100
    assert m.batching_window == 0.5
    assert m.provisioned_pollers is None
    assert m.kafka_scaling.evaluation_interval == 60
    assert m.kafka_scaling.apply_delay_max == 180
    assert m.kafka_scaling.invokes_per_poller == 5


def test_a_backlog_waits_out_the_window_from_its_first_record() -> None:
    # Three records at 0, batch size 100: the 0.5 s window from the first record's arrival ends
    # at 0.5, so one invocation of all three at 0.5 ending at 0.6.
    result = traced(kafka())
    inv = invocations_of(result, 0)
    assert inv["start_s"].tolist() == pytest.approx([0.5])
    assert inv["records"].tolist() == [3]
    rec = records_of(result, READER)
    assert (rec["state"].astype(str) == "succeeded").all()
    assert rec["done_s"].tolist() == pytest.approx([0.6] * 3)
    assert_conserved(result)


def test_the_window_starts_at_the_first_record_not_at_the_last_invocation() -> None:
    # Records every 1/3 s from 1/3 s: each batch opens with its first record and closes 0.5 s
    # later, holding that record and the next (the third arrives after the window). A stream
    # mapping's window would start when the previous invocation ended instead.
    result = traced(kafka(traffic(rate=3, pattern="constant", initial_backlog=0), None))
    inv = invocations_of(result, 0)
    rec = records_of(result, READER)
    sent = rec["sent_s"].to_numpy()
    first = sent[0 : 2 * len(inv) : 2]
    assert inv["records"].iloc[:-1].eq(2).all()
    np.testing.assert_allclose(inv["start_s"].to_numpy(), first[: len(inv)] + 0.5, atol=1e-9)


def test_batches_of_a_partition_are_in_order_and_one_at_a_time() -> None:
    # 250 records at 0, batch size 100: two full batches at once, back to back (0 and 0.1); the
    # last 50 wait out the window that opened with their arrival at 0 (until 0.5).
    result = traced(kafka(traffic(initial_backlog=250)))
    inv = invocations_of(result, 0)
    assert inv["records"].tolist() == [100, 100, 50]
    assert inv["start_s"].tolist() == pytest.approx([0.0, 0.1, 0.5])
    rec = records_of(result, READER)
    done = rec.sort_values("id")["done_s"].to_numpy()
    assert (np.diff(done) >= 0).all()  # offsets committed in order
    assert_conserved(result)


def test_a_poller_runs_at_most_five_invokes() -> None:
    # 10 partitions with a backlog, one poller (on-demand start) and 10 s invocations: 5 run at
    # once until the scaler adds pollers (not before the first evaluation at 60 s).
    s = kafka(
        {
            "duration": 59,
            "functions": {"f": {"duration": "10s"}},
            "sources": {"t": {"partitions": 10, "traffic": {"initial_backlog": 1000, "partition_keys": 100}}},
        }
    )
    result = traced(s)
    inv = invocations_of(result, 0)
    assert peak_concurrency(inv) == 5
    assert set(inv["shard"]) == set(range(10))  # the poller's partitions take turns


def test_offset_lag_rises_and_drains_to_zero() -> None:
    s = kafka(
        {
            "duration": 600,
            "sources": {"t": {"partitions": 4, "traffic": {"initial_backlog": 20000, "partition_keys": 100}}},
        }
    )
    result = simulate(s)
    lag = result.timeseries["OffsetLag"].to_numpy()
    assert lag[0] == 20000  # the whole backlog is behind at the start
    assert lag[-1] == 0
    assert result.summary["offset_lag_max"] == 20000
    assert result.summary["records_succeeded"] == 20000


def test_filtered_records_are_committed_and_never_invoked() -> None:
    s = kafka(
        {"duration": 120, "sources": {"t": {"traffic": {"initial_backlog": 0, "rate": 50}}}},
        {"filter": {"match_rate": 0.3}},
    )
    result = traced(s)
    summary = result.summary
    assert summary["records_filtered"] > 0
    assert (
        summary["records_filtered"] + summary["records_succeeded"] + summary["records_in_flight_end"]
        == (summary["records_in"])
    )
    inv = invocations_of(result, 0)
    done = inv[inv["end_s"] < s.duration]  # the run's end is exclusive
    assert done["records"].sum() == summary["records_succeeded"]  # only matching records are sent
    share = summary["records_filtered"] / summary["records_in"]
    assert share == pytest.approx(0.7, abs=0.05)  # ~6,000 draws: 0.05 is over 8 standard errors
    assert_conserved(result)


def test_a_failing_batch_goes_to_a_kafka_topic_after_its_retries() -> None:
    s = kafka(
        {"functions": {"f": {"errors": {"invocation_error_rate": 1.0}}}},
        {
            "maximum_retry_attempts": 2,
            "retry_backoff": {"initial": 1, "maximum": 1},
            "DestinationConfig": {"OnFailure": {"Destination": "kafka://orders-dlq"}},
        },
    )
    result = traced(s)
    assert len(invocations_of(result, 0)) == 3  # retries + 1 attempts
    assert result.summary["records_dlq"] == 3
    assert_conserved(result)


# ---------------------------------------------------------------------------- scaling
def _pollers(result: Any) -> np.ndarray:
    return np.asarray(result.timeseries["KafkaPollers"].to_numpy())


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_lag_step_changes_pollers_after_a_minute_and_within_four(seed: int) -> None:
    # V25: lag appears at 60 s (right after an evaluation); the next evaluation is at 120 s and
    # the change lands within 180 s of it: never before 120 s, always by 300 s.
    s = kafka(
        {
            "seed": seed,
            "duration": 420,
            "functions": {"f": {"duration": "1s"}},
            "sources": {
                "t": {
                    "partitions": 12,
                    "traffic": {
                        "initial_backlog": 0,
                        "rate": 1,
                        "partition_keys": 1200,
                        "schedule": [{"at": 60, "rate": 300}],
                    },
                }
            },
        }
    )
    pollers = _pollers(simulate(s))
    assert (pollers[:2] == 1).all()  # minutes 0 and 1: no change
    assert pollers[2:6].max() > 1  # by the end of minute 5 (300 s), more pollers


def test_on_demand_pollers_never_exceed_partitions() -> None:
    s = kafka(
        {
            "duration": 900,
            "functions": {"f": {"duration": "2s"}},
            "sources": {"t": {"partitions": 3, "traffic": {"rate": 500, "partition_keys": 300}}},
        },
        {"kafka_scaling": {"invokes_per_poller": 1}},
    )
    result = simulate(s)
    assert result.summary["kafka_pollers_max"] == 3


def test_provisioned_pollers_follow_throughput_and_are_billed_per_epu() -> None:
    # V26: 10 KB records at 1,500/s are ~14.6 MiB/s: at least ceil(14.6 / 5) = 3 pollers once the
    # scaler has seen a minute of it; the minimum (2) from the start. 3 pollers fit one EPU.
    s = kafka(
        {
            "duration": 600,
            "sources": {
                "t": {
                    "partitions": 12,
                    "traffic": {
                        "initial_backlog": 0,
                        "rate": 1500,
                        "record_size": "10KB",
                        "partition_keys": 1200,
                    },
                }
            },
        },
        {"provisioned_pollers": {"minimum": 2, "maximum": 20}, "batch_size": 1000},
    )
    result = simulate(s)
    pollers = _pollers(result)
    assert pollers.min() >= 2
    mib_per_s = 1500 * 10 * 1000 / 2**20
    assert pollers[5:].min() >= math.ceil(mib_per_s / 5)
    assert result.summary["kafka_epu_hours"] == pytest.approx(600 / 3600)
    assert result.summary["cost_event_pollers_usd"] == pytest.approx(600 / 3600 * 0.185)


def test_provisioned_pollers_are_capped_at_the_partitions() -> None:
    # AWS caps MaximumPollers at the partition count (ordered processing); the minimum with it.
    s = kafka({"duration": 120, "sources": {"t": {"partitions": 3}}}, {"provisioned_pollers": {"minimum": 5}})
    result = simulate(s)
    assert result.summary["kafka_pollers_max"] == 3
    assert result.summary["kafka_epu_hours"] == pytest.approx(120 / 3600)


def test_a_disabled_mapping_runs_and_bills_no_pollers() -> None:
    # "If you disable the event source mapping, AWS Lambda stops polling": provisioned 3..12
    # pollers (one EPU) for 20 minutes, disabled from minute 5 to 15: EPUs billed for 10 minutes.
    s = kafka(
        {
            "duration": 1200,
            "update_delay": 0,
            "sources": {"t": {"partitions": 12, "traffic": {"rate": 300, "initial_backlog": 0}}},
            "changes": [
                {"at": 300, "set": {"mappings[0].enabled": False}},
                {"at": 900, "set": {"mappings[0].enabled": True}},
            ],
        },
        {"provisioned_pollers": {"minimum": 3, "maximum": 12}},
    )
    result = simulate(s)
    pollers = _pollers(result)
    assert (pollers[5:15] == 0).all()
    assert (pollers[:5] >= 3).all()
    assert (pollers[15:] >= 3).all()
    assert result.summary["kafka_epu_hours"] == pytest.approx(600 / 3600)


def test_a_mapping_enabled_later_scales_its_pollers_from_then() -> None:
    # Created disabled, enabled at minute 5 with a backlog of 100,000 records in 12 partitions:
    # no pollers before, then the on-demand scaler adds pollers on the offset lag.
    s = kafka(
        {
            "duration": 900,
            "update_delay": 0,
            "sources": {"t": {"partitions": 12, "traffic": {"rate": 300, "initial_backlog": 100_000}}},
            "changes": [{"at": 300, "set": {"mappings[0].enabled": True}}],
        },
        {"enabled": False, "batch_size": 100},
    )
    result = simulate(s)
    pollers = _pollers(result)
    assert (pollers[:5] == 0).all()
    assert pollers[5:].max() > s.mappings[0].kafka_scaling.initial_pollers  # type: ignore[union-attr]


def test_on_demand_mode_costs_no_epu() -> None:
    result = simulate(kafka())
    assert result.summary["kafka_epu_hours"] == 0
    assert result.summary["cost_event_pollers_usd"] == 0


def test_a_live_change_of_batch_size_applies_to_later_batches() -> None:
    s = kafka(
        {
            "duration": 30,
            "sources": {"t": {"traffic": {"initial_backlog": 0, "rate": 200, "pattern": "constant"}}},
            "update_delay": 0,
            "changes": [{"at": 10, "set": {"mappings[0].batch_size": 10}}],
        },
        {"batching_window": 5},
    )
    inv = invocations_of(traced(s), 0)
    assert inv.loc[inv["start_s"] < 10, "records"].max() == 100
    assert inv.loc[inv["start_s"] > 11, "records"].max() == 10


# ---------------------------------------------------------------------------- properties
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    partitions=st.integers(1, 6),
    backlog=st.integers(0, 300),
    rate=st.sampled_from([0.0, 5.0, 40.0]),
    batch=st.integers(1, 50),
    window=st.sampled_from([0.0, 0.3, 2.0]),
    error=st.sampled_from([0.0, 0.2]),
    per_poller=st.integers(1, 3),
    seed=st.integers(0, 1000),
)
def test_property_caps_conservation_and_order(
    partitions: int,
    backlog: int,
    rate: float,
    batch: int,
    window: float,
    error: float,
    per_poller: int,
    seed: int,
) -> None:
    s = kafka(
        {
            "seed": seed,
            "duration": 90,
            "functions": {"f": {"duration": "300ms", "errors": {"invocation_error_rate": error}}},
            "sources": {
                "t": {
                    "partitions": partitions,
                    "traffic": {"initial_backlog": backlog, "rate": rate, "partition_keys": 20},
                }
            },
        },
        {
            "batch_size": batch,
            "batching_window": window,
            "maximum_retry_attempts": 1,
            "retry_backoff": {"initial": 0.5, "maximum": 0.5},
            "kafka_scaling": {"invokes_per_poller": per_poller},
        },
    )
    result = traced(s)
    assert_conserved(result)
    inv = invocations_of(result, 0)
    assert peak_concurrency(inv) <= partitions
    for _, part in inv.groupby("shard"):
        assert peak_concurrency(part) <= 1  # one batch in flight per partition
    rec = records_of(result, READER)
    for _, part in rec[rec["state"].astype(str) == "succeeded"].groupby("shard"):
        done = part.sort_values("id")["done_s"].to_numpy()
        assert (np.diff(done) >= -1e-9).all()  # committed in offset order


# ---------------------------------------------------------------------------- iam, resources
def _actions(policy: dict[str, Any]) -> set[str]:
    return {a for statement in policy["Statement"] for a in statement["Action"]}


def test_iam_for_msk_names_the_cluster_the_network_and_iam_access() -> None:
    from esmsim.iam import policies

    s = kafka(mapping={"DestinationConfig": {"OnFailure": {"Destination": "kafka://dlq"}}})
    policy = policies(s)["functions"]["f"]
    actions = _actions(policy)
    assert {"kafka:DescribeCluster", "kafka:DescribeClusterV2", "kafka:GetBootstrapBrokers"} <= actions
    assert {
        "ec2:CreateNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DeleteNetworkInterface",
    } <= actions
    assert {"kafka-cluster:Connect", "kafka-cluster:ReadData", "kafka-cluster:AlterGroup"} <= actions
    assert "kafka-cluster:WriteData" in actions  # the on-failure topic
    sids = [statement["Sid"] for statement in policy["Statement"]]
    assert len(sids) == len(set(sids))
    assert "secretsmanager:GetSecretValue" not in actions


def test_iam_for_self_managed_kafka_reads_its_secret() -> None:
    from esmsim.iam import policies

    s = kafka({"sources": {"t": {"flavor": "self_managed"}}})
    actions = _actions(policies(s)["functions"]["f"])
    assert "secretsmanager:GetSecretValue" in actions
    assert not any(a.startswith("kafka") for a in actions)


def test_resources_row_names_partitions_pollers_and_epu_hours() -> None:
    s = kafka(
        {"duration": 120, "sources": {"t": {"partitions": 12}}},
        {"provisioned_pollers": {"minimum": 11, "maximum": 20}},
    )
    table = simulate(s).resources
    row = table[table["kind"] == "mapping"].iloc[0]
    assert row["limit"] == 12
    assert row["partitions"] == 12
    assert row["kafka_pollers_max"] == 11
    assert row["epu_hours"] == pytest.approx(2 * 120 / 3600)  # 11 pollers: 2 EPUs of 10


def test_live_changes_into_and_out_of_provisioned_mode_and_of_the_filter() -> None:
    # At 100 s provisioned mode with at least 6 pollers: the fleet jumps to 6, one EPU is billed
    # from then; at 200 s back to on-demand (the EPU stops: 100 s billed) and a filter starts.
    s = kafka(
        {
            "duration": 300,
            "update_delay": 0,
            "sources": {"t": {"partitions": 12, "traffic": {"rate": 100, "partition_keys": 100}}},
            "changes": [
                {"at": 100, "set": {"mappings[0].provisioned_pollers": {"minimum": 6, "maximum": 12}}},
                {
                    "at": 200,
                    "set": {
                        "mappings[0].provisioned_pollers": None,
                        "mappings[0].filter": {"match_rate": 0.5},
                    },
                },
            ],
        }
    )
    result = simulate(s)
    pollers = result.timeseries["KafkaPollers"].to_numpy()
    assert pollers[0] == 1
    assert pollers[2] == 6
    assert result.summary["kafka_epu_hours"] == pytest.approx(100 / 3600)
    assert 0 < result.summary["records_filtered"] < result.summary["records_in"]


def test_import_reads_msk_and_self_managed_kafka_mappings(tmp_path: Path) -> None:
    out = tmp_path / "scenario.yaml"
    template = Path(__file__).resolve().parent / "templates" / "msk-kafka.yaml"
    result = CliRunner().invoke(main, ["import", str(template), "--out", str(out)])
    assert result.exit_code == 0, result.output
    s = load_scenario(out)
    msk, smk = s.sources["Telemetry"], s.sources["audit-log"]
    assert (msk.type, msk.flavor, smk.flavor) == ("kafka", "msk", "self_managed")
    ingest = next(m for m in s.mappings if m.source == "Telemetry")
    assert isinstance(ingest, KafkaMapping)
    assert (ingest.batch_size, ingest.starting_position, ingest.maximum_retry_attempts) == (
        500,
        "TRIM_HORIZON",
        3,
    )
    assert ingest.provisioned_pollers is not None
    assert (ingest.provisioned_pollers.minimum, ingest.provisioned_pollers.maximum) == (2, 10)
    assert ingest.on_failure is not None
    assert (ingest.on_failure.type, ingest.on_failure.name) == ("kafka", "telemetry-dlq")
    assert simulate(s.with_changes({"duration": 60})).summary["invocations"] > 0
