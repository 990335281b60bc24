"""Every bundled scenario runs, on a shortened horizon, and tells the story its comments promise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from esmsim import load_scenario, simulate

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


def run(name: str, *overrides: str) -> dict[str, Any]:
    return simulate(load_scenario(SCENARIOS / name, overrides)).summary


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_scenario_runs_and_conserves_records(path: Path) -> None:
    s = simulate(load_scenario(path, ["duration=4m", "warmup=1m"])).summary
    assert s["records_in"] > 0
    assert s["records_in"] == (
        s["records_succeeded"]
        + s["records_dlq"]
        + s["records_dropped"]
        + s["records_expired"]
        + s["records_in_flight_end"]
    )
    assert s["invocations"] > 0


def test_orders_is_healthy() -> None:
    s = run("sqs-orders.yaml", "duration=10m", "warmup=1m")
    assert s["throttles"] == 0
    assert s["records_dlq"] == 0
    assert s["latency_p99_s"] < 2


def test_spike_builds_a_backlog() -> None:
    # Five minutes into the 10x burst, the capped mapping is far behind.
    s = run("sqs-spike.yaml", "duration=20m", "warmup=1m")
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
