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
    # Nothing starts while it is disabled (after the batches in progress at the change).
    assert not ((starts > 600 + delay + 1) & (starts < 1200 + delay)).any()
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
            "      mappings[0].batching_window: 5s",
            "{path}:8: changes[0].set.mappings[0].batching_window: esmsim does not change mappings "
            "batching_window during a run (supported: mappings.enabled, mappings.batch_size, "
            "mappings.maximum_concurrency)",
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
