"""Every bundled scenario runs, on a shortened horizon, and tells the story its comments promise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from esmsim import RunResult, load_scenario, simulate
from tests.helpers import assert_conserved, traced

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def run(name: str, *overrides: str) -> dict[str, Any]:
    return run_result(name, *overrides).summary


def run_result(name: str, *overrides: str) -> RunResult:
    return simulate(load_scenario(SCENARIOS / name, overrides))


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_scenario_runs_and_conserves_records(path: Path) -> None:
    result = traced(load_scenario(path, ["duration=4m", "warmup=1m"]))
    s = result.summary
    assert_conserved(result)
    # No level change came after its minute was folded: every per-minute maximum is exact.
    assert result.diagnostics["late_level_changes"] == 0
    assert s["records_in"] > 0
    assert s["invocations"] > 0


def test_orders_is_healthy() -> None:
    s = run("sqs-orders.yaml", "duration=10m", "warmup=1m")
    assert s["throttles"] == 0
    assert s["records_dlq"] == 0
    assert s["latency_p99_s"] < 2


def test_spike_builds_a_backlog() -> None:
    # Two minutes into the 10x burst (from minute 15), the capped mapping is far behind: its
    # backlog passes 300,000 (about 2,700 records/s more than the ~2,300/s it processes). The burst's minutes
    # are the run's cost: five of them (20 minutes, a backlog of 800,000) show nothing more.
    s = run("sqs-spike.yaml", "duration=17m", "warmup=1m")
    assert s["backlog_max"] > 100_000
    assert s["concurrency_max"] <= 100


def test_poison_messages_drag_batch_mates_into_the_dlq_without_partial_responses() -> None:
    without = run("sqs-poison-dlq.yaml", "duration=20m", "warmup=1m")
    with_rbif = run(
        "sqs-poison-dlq.yaml", "duration=20m", "warmup=1m", "mappings[0].report_batch_item_failures=true"
    )
    assert without["records_dlq"] > with_rbif["records_dlq"] > 0


def test_shared_reservation_throttles_until_the_mappings_are_capped() -> None:
    shared = run("sqs-shared-reserved.yaml", "duration=10m", "warmup=1m")
    capped = run(
        "sqs-shared-reserved.yaml",
        "duration=10m",
        "warmup=1m",
        "mappings[0].maximum_concurrency=7",
        "mappings[1].maximum_concurrency=3",
    )
    assert shared["throttles"] > 0
    assert capped["throttles"] == 0
    assert capped["latency_p99_s"] < shared["latency_p99_s"]


def test_clickstream_keeps_up() -> None:
    s = run("kinesis-clickstream.yaml", "duration=5m", "warmup=1m")
    assert s["iterator_age_max_s"] < 10
    assert s["concurrency_max"] <= 16
    assert s["records_dropped"] == s["records_expired"] == 0


def test_cdc_isolates_bad_items() -> None:
    # Bisect with partial batch responses sends the bad items alone to the destination.
    result = simulate(load_scenario(SCENARIOS / "dynamodb-cdc.yaml", ["duration=20m", "warmup=1m"]))
    s = result.summary
    assert 0 < s["records_dlq"] <= 20
    assert s["latency_p99_s"] < 10


def test_poison_record_with_lanes_stalls_its_shard_unless_checkpointed_by_key() -> None:
    # The sweep's points with 4 lanes per shard: under `checkpoint: shard` (the default) the whole
    # shard holding the poison record stalls; under `checkpoint: key` only the poisoned lane's keys
    # (about a quarter of the shard) wait, the others flow on.
    def stalled_backlog(checkpoint: str) -> float:
        result = simulate(
            load_scenario(
                SCENARIOS / "kinesis-poison-record.yaml",
                [
                    "duration=30m",
                    "warmup=1m",
                    "mappings[0].parallelization_factor=4",
                    f"mappings[0].checkpoint={checkpoint}",
                ],
            )
        )
        shards = result.shard_timeseries
        last = shards[shards["minute"] == shards["minute"].max()].set_index(["mapping", "shard"])["Backlog"]
        defaults = last[last.index.get_level_values("mapping").str.contains("handler-defaults")]
        assert (defaults > 10_000).sum() == 1  # one stalled shard either way
        return float(defaults.max())

    by_shard, by_key = stalled_backlog("shard"), stalled_backlog("key")
    assert by_shard > 2.5 * by_key


def test_poison_record_stalls_the_default_mapping_only() -> None:
    # The poison record arrives about 21 minutes in: by minute 30 the mapping with AWS's defaults
    # has held its shard for minutes, the recovering one sent the record to its destination.
    result = simulate(load_scenario(SCENARIOS / "kinesis-poison-record.yaml", ["duration=30m", "warmup=1m"]))
    mappings = result.resources[result.resources["kind"] == "mapping"].set_index("name")
    defaults = mappings.filter(like="handler-defaults", axis=0).iloc[0]
    recovering = mappings.filter(like="handler-recovering", axis=0).iloc[0]
    assert defaults["iterator_age_max_s"] > 300
    assert recovering["iterator_age_max_s"] < 30
    assert result.summary["records_dlq"] == 1
    # Per mapping over time: the stalled mapping's IteratorAge climbs about a second per second in
    # the last minutes and one of its shards piles up, while the other mapping stays current.
    series = result.mapping_timeseries.set_index(["mapping", "minute"])
    stalled = series.loc[str(defaults.name)]
    healthy = series.loc[str(recovering.name)]
    assert stalled["IteratorAge"].iloc[-1] > stalled["IteratorAge"].iloc[-4] + 100_000  # ms, 3 minutes
    assert healthy["IteratorAge"].iloc[-3:].max() < 30_000
    shards = result.shard_timeseries
    last = shards[shards["minute"] == shards["minute"].max()].set_index(["mapping", "shard"])["Backlog"]
    assert last.loc[defaults.name].max() > 50 * last.loc[recovering.name].max()
    assert (last.loc[defaults.name] > 10_000).sum() == 1  # one stalled shard
    # The split adds up to the run's series.
    total = result.mapping_timeseries.groupby("minute")[["Invocations", "Errors"]].sum()
    np.testing.assert_array_equal(total["Invocations"], result.timeseries["Invocations"])
    np.testing.assert_array_equal(total["Errors"], result.timeseries["Errors"])
    np.testing.assert_allclose(
        result.mapping_timeseries.groupby("minute")["IteratorAge"].max(), result.timeseries["IteratorAge"]
    )


def test_hot_shards_lag_and_more_lanes_help() -> None:
    hot = run("kinesis-hot-shard.yaml", "duration=10m", "warmup=1m")
    lanes = run("kinesis-hot-shard.yaml", "duration=10m", "warmup=1m", "mappings[0].parallelization_factor=4")
    assert hot["iterator_age_max_s"] > 120
    assert lanes["iterator_age_max_s"] < hot["iterator_age_max_s"] / 3


def test_a_hot_key_outruns_its_lane_until_batches_grow() -> None:
    # With four lanes, the busiest tenant's lane still gets about 500 records/s against the ~450 one
    # lane of batches of 100 processes: it falls behind (by minute 12 its records wait over a minute,
    # and the wait keeps growing) and explain names the lane. Batches of 200 (~540/s per lane) keep up.
    lanes = run_result(
        "kinesis-hot-shard.yaml", "duration=12m", "warmup=1m", "mappings[0].parallelization_factor=4"
    )
    assert lanes.summary["iterator_age_max_s"] > 60
    (limits,) = lanes.limits.values()
    assert (
        max(limits["binding"], key=limits["binding"].get) == "a hot key's lane (one batch at a time per key)"
    )
    bigger = run(
        "kinesis-hot-shard.yaml",
        "duration=12m",
        "warmup=1m",
        "mappings[0].parallelization_factor=4",
        "mappings[0].batch_size=200",
    )
    assert bigger["iterator_age_max_s"] < 5


def test_s3_thumbnails_throttled_events_age_out_to_the_destination() -> None:
    # The burst (50/s from minute 20) exceeds the 20 reserved environments (about 35/s): throttled
    # events back off in the event queue. With the maximum age cut to 5 minutes the oldest of them
    # reach the on-failure queue within the shortened run; enough concurrency removes both.
    short = ("duration=35m", "warmup=1m", "functions.thumbnail.async.maximum_event_age=5m")
    capped = run("s3-thumbnails.yaml", *short)
    assert capped["throttles"] > 0
    assert capped["records_dlq"] > 0
    assert capped["async_event_age_max_s"] <= 300
    roomy = run("s3-thumbnails.yaml", *short, "functions.thumbnail.reserved_concurrency=60")
    assert roomy["records_dlq"] == 0
    assert roomy["async_event_age_max_s"] < 60


def test_sns_fanout_processes_every_order_once_per_subscription() -> None:
    result = simulate(load_scenario(SCENARIOS / "sns-order-fanout.yaml", ["duration=6m", "warmup=1m"]))
    rows = result.resources.set_index("name")
    audit = rows.loc["triggers[2]: orders-topic -> audit"]
    assert audit["kind"] == "trigger"
    s = result.summary
    # Three delivery paths of the same messages: records_in is three times the audit path's count.
    assert s["records_in"] == 3 * audit["records"]
    # 2 % of audit invocations fail and are retried a minute later: retries, and a tail of minutes.
    assert s["async_retries"] > 0
    assert s["latency_max_s"] > 60


def test_eventbridge_handoff_retries_delay_some_events() -> None:
    s = run("eventbridge-rule.yaml", "duration=10m", "warmup=1m")
    assert s["push_handoff_retries"] > 0
    assert s["records_dropped"] == 0
    assert s["latency_max_s"] > 5


def test_sqs_incident_backs_up_while_disabled_and_drains_after() -> None:
    result = traced(load_scenario(SCENARIOS / "sqs-incident.yaml", ["duration=25m"]))
    assert_conserved(result)
    assert result.diagnostics["late_level_changes"] == 0  # the live changes write no level late
    ts = result.timeseries
    invocations = ts["Invocations"].to_numpy()
    visible = ts["ApproximateNumberOfMessagesVisible"].to_numpy()
    assert invocations[11:20].sum() == 0  # disabled from 10:05 to 20:05
    assert visible[19] > 50_000  # 150 orders/s kept coming
    assert visible[-1] < 100  # drained within five minutes at the raised cap
    assert ts["ConcurrentExecutions"].to_numpy()[20:].max() > 30  # above the old cap of 30


def test_provisioned_mode_catches_the_spike_that_standard_mode_queues() -> None:
    # The 30x spike from minute 8: standard mode adds 300 concurrent batches a minute and queues tens of
    # thousands of orders for seconds; provisioned mode (2 to 200 event pollers) adds up to 1,000 a
    # minute, so fewer wait and not as long, for event poller hours standard mode does not pay.
    standard = run("sqs-provisioned-spike.yaml", "duration=12m", "warmup=3m")
    provisioned = run(
        "sqs-provisioned-spike.yaml",
        "duration=12m",
        "warmup=3m",
        "mappings[0].provisioned_pollers={minimum: 2, maximum: 200}",
    )
    assert standard["backlog_max"] > 2 * provisioned["backlog_max"]
    assert standard["latency_p99_s"] > 2 * provisioned["latency_p99_s"]
    assert standard["cost_event_pollers_usd"] == 0
    assert provisioned["cost_event_pollers_usd"] > 0
    assert provisioned["event_pollers_max"] > 2  # it scaled beyond its minimum


def test_msk_ingest_lag_rises_in_the_spike_and_drains_once_pollers_are_added() -> None:
    # From minute 5 the 6,000 events/s outrun one poller's 5 invokes: OffsetLag climbs by about
    # 1,500 a second. The evaluation at minute 6 sees it and adds pollers within 3 minutes (one per
    # 5 partitions: 3); the lag drains after the spike and the fleet shrinks back. Provisioned mode
    # with 3 pollers from the start never falls behind by more than a few batches, for EPU-hours.
    result = simulate(load_scenario(SCENARIOS / "msk-ingest.yaml", ["duration=15m"]))
    lag = result.timeseries["OffsetLag"].to_numpy()
    pollers = result.timeseries["KafkaPollers"].to_numpy()
    assert lag[:5].max() < 2_000
    assert lag[8] > 200_000
    assert lag[-1] < 2_000
    assert (pollers[:6] == 1).all()  # no change before the evaluation after the spike began
    assert pollers[6:10].max() == 3  # within 1 + 3 minutes of it
    provisioned = run(
        "msk-ingest.yaml", "duration=15m", "mappings[0].provisioned_pollers={minimum: 3, maximum: 12}"
    )
    assert provisioned["offset_lag_max"] < 20_000
    assert provisioned["cost_event_pollers_usd"] > 0
    assert result.summary["cost_event_pollers_usd"] == 0


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.name)
def test_a_resolved_scenario_reads_back_as_itself(path: Path) -> None:
    # summary.json holds the resolved scenario (every default written out); report.html and Python
    # users read it back: defaults of keys a source refuses (a Kafka mapping's parallelization
    # factor, `account` beside `accounts`) must not be taken for statements.
    from esmsim.scenario.scenario import Scenario

    scenario = load_scenario(path)
    assert Scenario.model_validate(scenario.model_dump(mode="json", by_alias=True)) == scenario
