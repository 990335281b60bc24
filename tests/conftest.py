"""Shared test helpers: small scenarios built from dicts, and runs whose internals can be inspected."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from esmsim.metrics import INVOCATION_COLUMNS
from esmsim.model.build import World, build
from esmsim.rng import Streams
from esmsim.scenario.scenario import Scenario


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--stats",
        choices=("quick", "full"),
        default="quick",
        help="statistical tests: 'quick' (bounded, the default and what CI runs) or 'full' (long runs)",
    )


@pytest.fixture
def stats_level(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--stats"))


#: ``poller_scaling`` that pins an SQS mapping's fleet to one poller.
ONE_POLLER: dict[str, Any] = {"initial": 1, "ceiling": 1, "min_pollers": 1, "idle_min_pollers": 1}


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``extra`` into a copy of ``base`` (lists are replaced, dicts merged)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


#: A tiny deterministic system: one queue, one function with constant durations, no cold starts.
BASE: dict[str, Any] = {
    "name": "micro",
    "duration": 120,
    "seed": 1,
    "functions": {"f": {"timeout": 10, "duration": "100ms", "cold_start": "0s"}},
    "sources": {"q": {"type": "sqs", "visibility_timeout": 30, "traffic": {"rate": 0}}},
    "mappings": [{"source": "q", "function": "f", "record_overhead": 0}],
}


def scenario(extra: dict[str, Any] | None = None, mapping: dict[str, Any] | None = None) -> Scenario:
    """``BASE`` merged with ``extra``; ``mapping`` is merged into the first mapping."""
    raw = merge(BASE, extra or {})
    if mapping:
        raw["mappings"] = [merge(raw["mappings"][0], mapping), *raw["mappings"][1:]]
    return Scenario.model_validate(raw)


def run_world(s: Scenario, seed: int | None = None, replication: int = 0) -> World:
    """Run a scenario and return its world (queues, functions, logs) for inspection."""
    world = build(s, Streams(s.seed if seed is None else seed, replication))
    world.start()
    world.run()
    return world


def invocations(world: World) -> dict[str, np.ndarray]:
    """The invocation log as named columns."""
    table = np.asarray(world.invocations, dtype=float).reshape(-1, len(INVOCATION_COLUMNS))
    return {name: table[:, i] for i, name in enumerate(INVOCATION_COLUMNS)}


def run_recording(
    s: Scenario, seed: int | None = None
) -> tuple[World, list[tuple[float, float, np.ndarray, int]]]:
    """Run a scenario, recording every invocation's (start, end, stream or queue rows, outcome)."""
    world = build(s, Streams(s.seed if seed is None else seed, 0))
    log: list[tuple[float, float, np.ndarray, int]] = []
    for fn in world.functions.values():
        original = fn.plan

        def plan(
            now: float, kind: int, n: int, ids: Any, records: Any, rbif: bool, _orig: Any = original
        ) -> Any:
            init_s, run_s, outcome, failed = _orig(now, kind, n, ids, records, rbif)
            rows = np.arange(ids.start, ids.stop, ids.step or 1) if isinstance(ids, slice) else np.array(ids)
            log.append((now, now + (init_s + run_s), rows, outcome))
            return init_s, run_s, outcome, failed

        fn.plan = plan  # type: ignore[method-assign]
    world.start()
    world.run()
    return world, log


def assert_conserved(world: World, summary: dict[str, Any], timeseries: Any = None) -> None:
    """Check a run's record books against its record tables, counted independently of the summary.

    The summary's outcome counts come from one pass over the records, so they add up to
    ``records_in`` by construction; what can go wrong is which records are counted (a view missed
    or counted twice) and how they are classified. This recounts from the tables: every queue's
    records, every stream mapping's records in its scope, and an unread stream's records once.
    """
    from esmsim.model.records import DLQ, DROPPED, EXPIRED, IN_FLIGHT, SUCCEEDED, WAITING

    states = [q.rec.state for q in world.queues.values()]
    for name, stream in world.streams.items():
        readers = [m for m in world.stream_mappings if m.spec.source == name]
        states += [m.state[m.in_scope] for m in readers]
        if not readers:  # nobody reads it: its records wait or expire
            expired = stream.accepted_at + stream.retention_s <= world.scenario.duration
            states.append(np.where(expired, EXPIRED, WAITING))
    every = np.concatenate([np.empty(0, dtype=np.int8), *states])
    assert np.isin(every, [WAITING, IN_FLIGHT, SUCCEEDED, DLQ, DROPPED, EXPIRED]).all()
    assert summary["records_in"] == every.size
    assert summary["records_succeeded"] == np.count_nonzero(every == SUCCEEDED)
    assert summary["records_dlq"] == np.count_nonzero(every == DLQ)
    assert summary["records_dropped"] == np.count_nonzero(every == DROPPED)
    assert summary["records_expired"] == np.count_nonzero(every == EXPIRED)
    assert summary["records_in_flight_end"] == np.count_nonzero((every == WAITING) | (every == IN_FLIGHT))
    if timeseries is not None:  # the per-minute outcome counts add up to the same totals
        assert timeseries["RecordsSucceeded"].sum() == summary["records_succeeded"]
        assert timeseries["RecordsDLQ"].sum() == summary["records_dlq"]
        assert timeseries["RecordsDropped"].sum() == summary["records_dropped"]
        assert timeseries["RecordsExpired"].sum() == summary["records_expired"]
