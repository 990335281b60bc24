"""Shared test helpers: small scenarios built from dicts, traced runs, and checks on their tables.

Tests read runs through the public API only: ``esmsim.simulate(..., trace=True)`` and the
``RunResult`` tables (``invocations``, ``throttles``, ``records``), never ``esmsim.model``.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from esmsim.result import RunResult
from esmsim.run import simulate
from esmsim.scenario.scenario import Scenario

#: ``poller_scaling`` that pins an SQS mapping's fleet to one poller.
ONE_POLLER: dict[str, Any] = {"initial": 1, "ceiling": 1, "min_pollers": 1, "idle_min_pollers": 1}


def one_poller_window(batch_size: int, window: float) -> dict[str, Any]:
    """A mapping of one poller collecting ``batch_size`` over ``window`` seconds, alone."""
    return {
        "batch_size": batch_size,
        "batching_window": window,
        "single_poller_batching": True,
        "poller_scaling": ONE_POLLER,
    }


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


def traced(s: Scenario, seed: int | None = None, replication: int = 0, *, tables: bool = True) -> RunResult:
    """Run a scenario keeping every invocation, throttle and record (``RunResult`` tables)."""
    return simulate(s, seed=seed, replication=replication, tables=tables, trace=True)


def records_of(result: RunResult, consumer: str) -> pd.DataFrame:
    """The records table of one consumer (a queue's name, or a mapping's label), by id."""
    table = result.records
    return table[table["consumer"] == consumer].sort_values(["shard", "id"]).reset_index(drop=True)


def invocations_of(result: RunResult, mapping: int) -> pd.DataFrame:
    """The invocations of ``mappings[mapping]``, in start order."""
    table = result.invocations
    mine = table["mapping"].astype(str).str.startswith(f"mappings[{mapping}]:")
    return table[mine].reset_index(drop=True)


STATES = ("waiting", "in_flight", "succeeded", "dlq", "dropped", "expired", "filtered")


def assert_conserved(result: RunResult) -> None:
    """Check a traced run's record books against its records table, counted independently.

    The summary's counts are sums of counters kept as records end; the records table lists every
    record once per consumer with its final state. Recounting the table checks which records were
    counted and how they were classified.
    """
    table = result.records
    summary = result.summary
    assert set(table["state"].astype(str)) <= set(STATES)
    assert not table.duplicated(["consumer", "shard", "id"]).any(), "a record counted twice for one consumer"
    counts = table["state"].astype(str).value_counts()
    assert summary["records_in"] == len(table)
    assert summary["records_succeeded"] == counts.get("succeeded", 0)
    assert summary["records_dlq"] == counts.get("dlq", 0)
    assert summary["records_dropped"] == counts.get("dropped", 0)
    assert summary["records_expired"] == counts.get("expired", 0)
    assert summary["records_filtered"] == counts.get("filtered", 0)
    assert summary["records_in_flight_end"] == counts.get("waiting", 0) + counts.get("in_flight", 0)
    ts = result.timeseries
    if not ts.empty:  # the per-minute outcome counts add up to the same totals
        assert ts["RecordsSucceeded"].sum() == summary["records_succeeded"]
        assert ts["RecordsDLQ"].sum() == summary["records_dlq"]
        assert ts["RecordsDropped"].sum() == summary["records_dropped"]
        assert ts["RecordsExpired"].sum() == summary["records_expired"]
        assert ts["RecordsFiltered"].sum() == summary["records_filtered"]
    finished = table["done_s"].notna()
    # A record ends after it was sent, within the run; one still there has no end.
    assert (table.loc[finished, "done_s"] >= table.loc[finished, "sent_s"] - 1e-9).all()
    assert (table.loc[finished, "done_s"] <= result.scenario.duration + 1e-9).all()
    still = table["state"].astype(str).isin(["waiting", "in_flight"])
    assert (still == ~finished).all()
    assert_latency_parts(result)


#: The records table's columns of a success's latency parts, in order.
PART_COLUMNS = ("queued_s", "retry_s", "batching_s", "throttled_s", "init_s", "handler_s")


def assert_latency_parts(result: RunResult) -> None:
    """Each success's latency parts are never negative and sum to its latency; so do the means.

    Checked three ways: per record (the records table), per run (the summary's parts against
    ``latency_mean_s``) and per minute (the time series' mean parts, weighted by the minute's
    successes, against the records table's total latency).
    """
    table = result.records
    ok = table["state"].astype(str) == "succeeded"
    parts = table.loc[ok, list(PART_COLUMNS)].to_numpy()
    latency = (table.loc[ok, "done_s"] - table.loc[ok, "sent_s"]).to_numpy()
    assert not np.isnan(parts).any(), "a success without its latency parts"
    assert (parts >= -1e-9).all(), "a negative latency part"
    np.testing.assert_allclose(parts.sum(axis=1), latency, rtol=1e-9, atol=1e-9)
    assert table.loc[~ok, list(PART_COLUMNS)].isna().all().all(), (
        "latency parts of a record that did not succeed"
    )
    summary = result.summary
    means = [summary[f"latency_mean_{c}"] for c in PART_COLUMNS]
    if math.isnan(summary["latency_mean_s"]):
        assert all(math.isnan(m) for m in means)
    else:
        assert sum(means) == pytest.approx(summary["latency_mean_s"], rel=1e-9, abs=1e-12)
    ts = result.timeseries
    if not ts.empty and len(latency):
        columns = [f"Latency{c[:-2].capitalize()}" for c in PART_COLUMNS]
        weighted = (ts[columns].fillna(0.0).to_numpy() * ts[["RecordsSucceeded"]].to_numpy()).sum()
        assert weighted == pytest.approx(latency.sum(), rel=1e-9, abs=1e-9)


def concurrency_at(invocations: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    """How many of these invocations run at each time (started at or before it, ending after it)."""
    start = np.sort(invocations["start_s"].to_numpy())
    end = np.sort(invocations["end_s"].to_numpy())
    return np.searchsorted(start, times, side="right") - np.searchsorted(end, times, side="right")


def peak_concurrency(invocations: pd.DataFrame) -> int:
    """The most invocations running at once (an end and a start at one instant do not overlap)."""
    if invocations.empty:
        return 0
    return int(concurrency_at(invocations, invocations["start_s"].to_numpy()).max())


def summary_differences(a: dict[str, Any], b: dict[str, Any], rel: float = 0.0) -> list[str]:
    """Keys whose values differ: counts exactly, floats beyond ``rel`` relative (NaN equals NaN)."""
    keys = sorted(a.keys() ^ b.keys())
    for key in sorted(a.keys() & b.keys()):
        x, y = a[key], b[key]
        if isinstance(x, float) and isinstance(y, float):
            same = (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=rel, abs_tol=0.0)
        else:
            same = type(x) is type(y) and x == y
        if not same:
            keys.append(key)
    return keys
