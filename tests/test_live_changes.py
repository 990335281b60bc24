"""Live changes (``changes:``): keys set on a running system, validated as AWS validates an update."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from esmsim.cli import main
from esmsim.run import simulate
from esmsim.scenario.scenario import Scenario
from tests.helpers import assert_conserved, traced
from tests.test_bad_input import assert_bad


def sqs(changes: list[dict[str, Any]], **extra: Any) -> Scenario:
    raw: dict[str, Any] = {
        "duration": "30m",
        "functions": {"f": {"duration": "100ms", "cold_start": "0s"}},
        "sources": {"q": {"type": "sqs", "max_receive_count": 5, "traffic": {"rate": "50/s"}}},
        "mappings": [{"source": "q", "function": "f"}],
        "changes": changes,
        **extra,
    }
    return Scenario.model_validate(raw)


def test_a_mapping_disabled_from_minute_10_to_20_stops_backs_up_and_drains() -> None:
    s = sqs(
        [
            {"at": "10m", "set": {"mappings[0].enabled": False}},
            {"at": "20m", "set": {"mappings[0].enabled": True}},
        ]
    )
    result = traced(s)
    starts = result.invocations["start_s"].to_numpy()
    delay = s.update_delay
    # Nothing starts while it is disabled: batches in hand at the change finish, and a receive
    # call still in progress then is not acted on.
    assert not ((starts > 600 + delay) & (starts < 1200 + delay)).any()
    assert (starts > 1200 + delay).any()
    visible = result.timeseries["ApproximateNumberOfMessagesVisible"].to_numpy()
    assert np.all(np.diff(visible[11:19]) > 0)  # the backlog grows, minute after minute
    assert visible[18] > 20_000  # 50/s for about 9 minutes
    assert visible[-1] < 10  # and drains once the mapping is enabled again
    assert_conserved(result)
    assert result.limits["mappings[0]: q -> f"]["binding"]["disabled mapping"] == pytest.approx(
        10 / 30, abs=0.04
    )
    assert [c["effective_s"] for c in result.changes()] == [600 + delay, 1200 + delay]


@pytest.mark.parametrize("window", [0, 5])
def test_a_disabled_mappings_waiting_pollers_stop_at_once(window: int) -> None:
    # A message every 10 s: at the change every poller waits in a long poll, one of them armed
    # to wake at the next arrival (no window), or holds messages in a 5 s window. None of them
    # may take a message while the mapping is disabled; a window closes at once with what it holds.
    s = Scenario.model_validate(
        {
            "duration": "10m",
            "functions": {"f": {"duration": "100ms", "cold_start": "0s"}},
            "sources": {"q": {"type": "sqs", "traffic": {"rate": "0.1/s", "pattern": "constant"}}},
            "mappings": [{"source": "q", "function": "f", "batch_size": 10, "batching_window": window}],
            "changes": [
                {"at": 102, "set": {"mappings[0].enabled": False}},
                {"at": 402, "set": {"mappings[0].enabled": True}},
            ],
        }
    )
    off, on = s.stages[0][0], s.stages[1][0]
    result = traced(s)
    inv = result.invocations
    assert not ((inv["start_s"] > off) & (inv["start_s"] < on)).any()
    if window:  # the message sent at 100 s was held in a window when it closed
        assert off in set(inv["start_s"])
    rec = result.records
    waited = rec[(rec["sent_s"] > off) & (rec["sent_s"] < on)]
    assert len(waited) == 30
    assert (waited["sent_s"] + waited["queued_s"] >= on).all()  # received once it is enabled
    pollers = result.timeseries["Pollers"].to_numpy()
    assert (pollers[int(off // 60) + 1 : int(on // 60)] == 0).all()  # no poller runs meanwhile
    assert_conserved(result)


def test_raising_maximum_concurrency_lets_the_fleet_grow_from_then_on() -> None:
    s = sqs(
        [{"at": "10m", "set": {"mappings[0].ScalingConfig.MaximumConcurrency": 40}}],
        functions={"f": {"duration": "1s", "cold_start": "0s"}},
    )
    s = s.with_changes({"mappings[0].maximum_concurrency": 5, "duration": "20m"})
    concurrency = simulate(s).timeseries["ConcurrentExecutions"].to_numpy()
    assert concurrency[:10].max() <= 5
    assert concurrency[12:].max() > 20  # 50 messages/s of 1 s work: the fleet grows toward 40


def test_lowering_reserved_concurrency_throttles_from_then_on() -> None:
    s = sqs(
        [{"at": "5m", "set": {"functions.f.reserved_concurrency": 3}}],
        functions={"f": {"duration": "500ms", "cold_start": "0s"}},
        duration="10m",
    )
    ts = simulate(s).timeseries
    assert ts["Throttles"].to_numpy()[:5].sum() == 0
    assert ts["Throttles"].to_numpy()[6:].sum() > 0
    assert ts["ConcurrentExecutions"].to_numpy()[6:].max() <= 3


def test_a_deploy_changes_the_handler_time() -> None:
    s = sqs([{"at": "5m", "set": {"functions.f.duration": "400ms"}}], duration="10m")
    duration = simulate(s).timeseries["Duration"].to_numpy()
    assert duration[:5] == pytest.approx(100)  # ms, as CloudWatch reports Duration
    assert duration[6:] == pytest.approx(400)


def test_a_stream_mapping_paused_and_resumed_keeps_its_place() -> None:
    s = Scenario.model_validate(
        {
            "duration": "12m",
            "functions": {"f": {"duration": "50ms", "cold_start": "0s"}},
            "sources": {"s": {"type": "kinesis", "shards": 2, "traffic": {"rate": "100/s"}}},
            "mappings": [
                {
                    "source": "s",
                    "function": "f",
                    "starting_position": "TRIM_HORIZON",
                    "maximum_retry_attempts": 2,
                    "on_failure": {"type": "sqs"},
                }
            ],
            "changes": [
                {"at": "3m", "set": {"mappings[0].enabled": False}},
                {"at": "6m", "set": {"mappings[0].enabled": True}},
            ],
        }
    )
    result = traced(s)
    starts = result.invocations["start_s"].to_numpy()
    assert not ((starts > 186) & (starts < 365)).any()
    age = result.timeseries["IteratorAge"].to_numpy()
    assert age[6] > 150_000  # the first batch after the pause is three minutes old (ms)
    assert age[-1] < 5_000
    assert result.summary["records_dropped"] == result.summary["records_expired"] == 0
    assert_conserved(result)


BASE = [
    "duration: 30m",  # 1
    "functions: {f: {duration: 100ms}}",  # 2
    "sources: {q: {type: sqs, max_receive_count: 5, traffic: {rate: 5/s}}}",  # 3
    "mappings: [{source: q, function: f}]",  # 4
    "changes:",  # 5
    "  - at: 10m",  # 6
    "    set:",  # 7
]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "      mappings[0].source: other",
            "{path}:8: changes[0].set.mappings[0].source: AWS does not let an update change a mapping's "
            "source",
        ),
        (
            "      sources.q.retention: 2h",
            "{path}:8: changes[0].set.sources.q.retention: esmsim does not change sources retention during "
            "a run (supported: sources.visibility_timeout, sources.max_receive_count, sources.traffic, "
            "sources.shards)",
        ),
        (
            "      account.concurrency_limit: 5",
            "{path}:8: changes[0].set.account.concurrency_limit: only a mapping's, function's or source's "
            "settings change during a run",
        ),
        (
            "      mappings[0].batch_size: 50",
            "{path}:7: changes[0].set: at 600 s: mappings[0].batch_size: 50 needs batching_window >= 1s: AWS "
            "rejects SQS batch sizes above 10 with a window of 0 (Maximum batch window in seconds must be "
            "greater than 0 if maximum batch size is greater than 10)",
        ),
        (
            "      functions.g.reserved_concurrency: 5",
            "{path}:8: changes[0].set.functions.g.reserved_concurrency: no function named 'g' (functions: f)",
        ),
    ],
    ids=["fixed", "not-live", "not-an-entity", "aws-rule-at-that-time", "unknown-function"],
)
def test_bad_changes_get_one_line(tmp_path: Path, line: str, expected: str) -> None:
    path = tmp_path / "live.yaml"
    path.write_text("\n".join([*BASE, line]) + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert_bad(result, expected.format(path=path))


def test_changes_out_of_order_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "live.yaml"
    path.write_text(
        "\n".join(
            [
                *BASE,
                "      mappings[0].enabled: false",
                "  - at: 5m",
                "    set:",
                "      mappings[0].enabled: true",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert_bad(result, f"{path}:9: changes[1].at: 300 s is before the change above it (600 s)")


def test_a_sweep_can_vary_a_changes_value_and_time() -> None:
    s = sqs([{"at": "5m", "set": {"mappings[0].maximum_concurrency": 5}}], duration="10m")
    varied = s.with_changes({"changes[0].set.mappings[0].maximum_concurrency": 50, "changes[0].at": "7m"})
    assert varied.changes[0].at == 420
    assert varied.changes[0].set == {"mappings[0].maximum_concurrency": 50}
    ((effective_at, stage),) = varied.stages
    assert effective_at == 420 + varied.update_delay
    assert stage.mappings[0].maximum_concurrency == 50


def test_reserved_concurrency_cut_to_zero_sends_asynchronous_events_straight_to_the_destination() -> None:
    s = Scenario.model_validate(
        {
            "duration": "4m",
            "functions": {"f": {"duration": "50ms", "async": {"on_failure": {"type": "sqs"}}}},
            "sources": {"b": {"type": "s3", "delivery_delay": "0s", "traffic": {"rate": "5/s"}}},
            "triggers": [{"source": "b", "function": "f"}],
            "changes": [{"at": "2m", "set": {"functions.f.reserved_concurrency": 0}}],
        }
    )
    result = traced(s)
    effective = 120 + s.update_delay
    assert (result.invocations["start_s"] < effective).all()
    routed = result.records[result.records["state"].astype(str) == "dlq"]
    assert len(routed) > 500  # about 5/s for two minutes
    assert (routed["done_s"] >= effective).all()
    assert result.summary["throttles"] == 0
    assert_conserved(result)


# ---------------------------------------------------------------------------- more keys, exactly
# Micro-scenarios (tests/helpers.py, test_stream_micro.py, test_async_micro.py): each change is made
# at ``at`` and takes effect update_delay (5 s) later.


def test_a_batching_window_set_live_batches_the_records_after_it() -> None:
    # One poller, a record a second, batch size 10 and no window: one record per invocation. The
    # window becomes 5 s at 30 + 5 = 35; the poller busy then (35.01) keeps its batch; the next
    # window opens with the record of 36 and closes at 41 with 36..41.
    from tests.helpers import ONE_POLLER, scenario

    s = scenario(
        {
            "duration": 90,
            "sources": {"q": {"traffic": {"rate": "1/s", "pattern": "constant"}}},
            "changes": [{"at": 30, "set": {"mappings[0].batching_window": 5}}],
        },
        {"batch_size": 10, "single_poller_batching": True, "poller_scaling": ONE_POLLER},
    )
    result = traced(s)
    inv = result.invocations
    before = inv[inv["start_s"] < 36]
    after = inv[inv["start_s"] >= 36]
    assert (before["records"] == 1).all()
    np.testing.assert_allclose(after["start_s"][:3], [41, 47, 53])
    assert (after["records"].iloc[:-1] == 6).all()
    assert_conserved(result)


def test_a_visibility_timeout_set_live_applies_from_the_next_receive() -> None:
    # One always-failing message, visibility timeout 30 s: received at 0.01, 30.01, 60.01 and 90.01.
    # The queue's timeout becomes 60 s at 105; the receive of 90.01 keeps its 30 s, and from the
    # receive of 120.01 on they are 60 s apart.
    from tests.helpers import ONE_POLLER, scenario

    s = scenario(
        {
            "duration": 400,
            "functions": {"f": {"errors": {"invocation_error_rate": 1.0}}},
            "sources": {"q": {"traffic": {"initial_backlog": 1}}},
            "changes": [{"at": 100, "set": {"sources.q.visibility_timeout": 60}}],
        },
        {"poller_scaling": ONE_POLLER},
    )
    result = traced(s)
    np.testing.assert_allclose(
        result.invocations["start_s"], [0.01, 30.01, 60.01, 90.01, 120.01, 180.01, 240.01, 300.01, 360.01]
    )
    assert_conserved(result)


def test_a_redrive_count_cut_live_dead_letters_at_the_next_return() -> None:
    # maxReceiveCount 10 becomes 2 at 105: the message, received four times by then, reaches the DLQ
    # when its fourth receive's visibility timeout ends (120.01), not after ten receives.
    from tests.helpers import ONE_POLLER, scenario

    s = scenario(
        {
            "duration": 400,
            "functions": {"f": {"errors": {"invocation_error_rate": 1.0}}},
            "sources": {"q": {"max_receive_count": 10, "traffic": {"initial_backlog": 1}}},
            "changes": [{"at": 100, "set": {"sources.q.max_receive_count": 2}}],
        },
        {"poller_scaling": ONE_POLLER},
    )
    result = traced(s)
    np.testing.assert_allclose(result.invocations["start_s"], [0.01, 30.01, 60.01, 90.01])
    record = result.records.iloc[0]
    assert str(record["state"]) == "dlq"
    assert record["done_s"] == pytest.approx(120.01)
    assert_conserved(result)


def test_stream_retries_bounded_live_release_a_blocked_shard() -> None:
    # A batch failing forever (maximum_retry_attempts -1) retries at 1.1, 3.2, 7.3, 15.4, 31.5 (back-off
    # 1 s doubling). At 35 retries become 1 with an SQS destination: the attempt already due (63.6)
    # is made, and the batch, failed more than once, goes to the destination as it ends.
    from tests.test_stream_micro import stream

    s = stream(
        {
            "duration": 120,
            "functions": {"f": {"errors": {"invocation_error_rate": 1.0}}},
            "sources": {"s": {"traffic": {"initial_backlog": 3}}},
            "changes": [
                {
                    "at": 30,
                    "set": {
                        "mappings[0].maximum_retry_attempts": 1,
                        "mappings[0].on_failure": {"type": "sqs"},
                    },
                }
            ],
        },
        {"batching_window": 0, "maximum_retry_attempts": -1},
    )
    result = traced(s)
    np.testing.assert_allclose(result.invocations["start_s"], [0, 1.1, 3.2, 7.3, 15.4, 31.5, 63.6])
    assert list(result.records["state"].astype(str)) == ["dlq"] * 3
    np.testing.assert_allclose(result.records["done_s"], 63.7)
    assert result.summary["discarded_batches"] == 1
    assert_conserved(result)


def test_stream_maximum_record_age_cut_live_discards_the_old_records_at_once() -> None:
    # A record a second into a failing stream whose batch retries forever: at 65 the maximum record
    # age becomes 60 s. The lane's next look (its next attempt) drops every record older than 60 s.
    from tests.test_stream_micro import stream

    s = stream(
        {
            "duration": 180,
            "functions": {"f": {"errors": {"invocation_error_rate": 1.0}}},
            "sources": {"s": {"traffic": {"rate": "1/s", "pattern": "constant", "initial_backlog": 0}}},
            "changes": [{"at": 60, "set": {"mappings[0].maximum_record_age": "60s"}}],
        },
        {"batching_window": 0, "maximum_retry_attempts": -1, "maximum_record_age": -1},
    )
    result = traced(s)
    rec = result.records
    dropped = rec[rec["state"].astype(str) == "dropped"]
    assert len(dropped) > 0
    # Nothing is dropped before the change takes effect, and each is older than 60 s when dropped.
    assert (dropped["done_s"] >= 65).all()
    assert (dropped["done_s"] - dropped["stored_s"] > 60 - 1e-9).all()
    assert_conserved(result)


def test_asynchronous_retries_cut_live_apply_from_the_next_failure() -> None:
    # The event fails at 0 (a 1 s run) and is due again at 61. Retries become 0 at 35: the retry
    # already due is made, and when it fails too (62) the event goes to its destination.
    from tests.test_async_micro import push

    s = push(
        {
            "functions": {
                "f": {"errors": {"invocation_error_rate": 1.0}, "async": {"on_failure": {"type": "sqs"}}}
            },
            "changes": [{"at": 30, "set": {"functions.f.async.maximum_retry_attempts": 0}}],
        }
    )
    result = traced(s)
    np.testing.assert_allclose(result.invocations["start_s"], [0, 61])
    assert str(result.records["state"].iloc[0]) == "dlq"
    assert result.records["done_s"].iloc[0] == pytest.approx(62)
    assert_conserved(result)


def test_asynchronous_maximum_age_cut_live_discards_waiting_events_at_their_new_age() -> None:
    # Reserved concurrency 1, two events at 0, 800 s invocations: the second is throttled and backs
    # off. At 105 the maximum event age becomes 2 minutes: it is dropped at 120, its new age.
    from tests.test_async_micro import push

    s = push(
        {
            "functions": {"f": {"duration": "800s", "reserved_concurrency": 1}},
            "changes": [{"at": 100, "set": {"functions.f.async.maximum_event_age": "2m"}}],
        },
        events=2,
    )
    result = traced(s)
    states = result.records.sort_values("done_s")[["state", "done_s"]]
    assert list(states["state"].astype(str)) == ["dropped", "succeeded"]
    np.testing.assert_allclose(states["done_s"], [120, 800])
    assert_conserved(result)


def test_a_deploy_starts_new_environments_cold_and_a_reservation_change_does_not() -> None:
    # 50 messages a second keep a handful of environments warm. At 2m (effective 2m05s) a deploy
    # sets a 2 s cold start: every environment set up before is retired (idle ones at once, busy
    # ones as they finish), so invocations after it start cold, each with 2 s of init. A change of
    # the reservation alone (at 4m) is no deploy: no cold start follows it.
    s = sqs(
        [
            {"at": "2m", "set": {"functions.f.cold_start": "2s"}},
            {"at": "4m", "set": {"functions.f.reserved_concurrency": 500}},
        ],
        duration="6m",
    )
    result = traced(s)
    inv = result.invocations
    cold = inv[inv["init_s"] > 0]
    after_deploy = cold[(cold["start_s"] >= 125) & (cold["start_s"] < 240)]
    assert len(after_deploy) >= 3  # the environments in use before, set up again
    np.testing.assert_allclose(after_deploy["init_s"], 2.0)
    assert cold[(cold["start_s"] >= 120) & (cold["start_s"] < 125)].empty  # nothing before it took effect
    assert cold[cold["start_s"] >= 245].empty
    assert_conserved(result)


def test_the_trace_and_the_time_series_mark_each_change() -> None:
    # Changes at 2m and 4m take effect at 2m05s and 4m05s: the minutes 2 and 4 count one each, and
    # each invocation and throttle carries the number of changes in effect when it happened.
    s = sqs(
        [
            {"at": "2m", "set": {"functions.f.reserved_concurrency": 1}},
            {"at": "4m", "set": {"functions.f.reserved_concurrency": 100}},
        ],
        duration="6m",
    )
    result = traced(s)
    np.testing.assert_array_equal(result.timeseries["LiveChanges"], [0, 0, 1, 0, 1, 0])
    inv = result.invocations
    expected = np.searchsorted([125.0, 245.0], inv["start_s"].to_numpy(), side="right")
    np.testing.assert_array_equal(inv["change"], expected)
    throttles = result.throttles
    assert len(throttles) > 0  # one reserved environment for 50 messages a second
    assert ((throttles["change"] == 1) == ((throttles["time_s"] >= 125) & (throttles["time_s"] < 245))).all()
