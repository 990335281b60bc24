"""From a finished world to numbers: the summary contract and the 1-minute CloudWatch time series.

Summary latency percentiles are exact (``numpy.percentile`` over every record's latency); the
per-minute ones come from 1 %-bucket histograms. Levels are time-weighted. The record counts obey
the conservation law
``records_in == records_succeeded + records_dlq + records_dropped + records_expired + records_in_flight_end``,
checked on every run.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from esmsim import histogram
from esmsim.cost import (
    CostBreakdown,
    lambda_compute_usd,
    lambda_requests_usd,
    provisioned_concurrency_usd,
    sqs_requests_usd,
)
from esmsim.model.build import SAMPLE_PERIOD_S, World
from esmsim.model.function import COLD, ERROR, PROVISIONED
from esmsim.model.records import DLQ, DROPPED, EXPIRED, IN_FLIGHT, SUCCEEDED, WAITING
from esmsim.model.sqs_queue import chunked_request_units
from esmsim.observe import Level, LevelStats, bin_edges, binned_sum, level_stats

#: Columns of the invocation log, in the order the model appends them.
INVOCATION_COLUMNS = (
    "start_at",
    "end_at",
    "function",
    "mapping",
    "records",
    "outcome",
    "init_s",
    "run_s",
    "env",
)
START, END, FUNCTION, MAPPING, RECORDS, OUTCOME, INIT, RUN, ENV = range(len(INVOCATION_COLUMNS))

#: The summary keys every run reports (design.md §4); more follow them.
SUMMARY_KEYS = (
    "records_in",
    "records_succeeded",
    "records_dlq",
    "records_dropped",
    "records_expired",
    "records_in_flight_end",
    "latency_p50_s",
    "latency_p90_s",
    "latency_p99_s",
    "latency_max_s",
    "latency_mean_s",
    "invocations",
    "invocation_errors",
    "throttles",
    "cold_starts",
    "concurrency_max",
    "concurrency_mean",
    "environments_mean",
    "backlog_max",
    "iterator_age_max_s",
    "cost_usd",
    "cost_lambda_requests_usd",
    "cost_lambda_compute_usd",
    "cost_source_usd",
    "cost_per_million_records_usd",
)


class ConservationError(AssertionError):
    """Records were created or lost: a bug in the simulator, never a user error."""


@dataclass(frozen=True)
class Observations:
    """A run's numbers: summary, per-minute series, per-resource table, latency histogram."""

    summary: dict[str, Any]
    timeseries: pd.DataFrame
    resources: pd.DataFrame
    latency_histogram: np.ndarray


@dataclass
class _Records:
    """Record outcomes over all sources."""

    counts: dict[str, int]
    latency: np.ndarray  # of records that arrived after the warm-up and succeeded
    latency_all: np.ndarray  # of every record that succeeded, warm-up included
    latency_done_at: np.ndarray  # when each of those finished
    finished: np.ndarray  # [state, minute]: records reaching a final state in each minute
    sent: np.ndarray  # arrivals per minute
    throughput: float


def _minute(times: np.ndarray, nb: int) -> np.ndarray:
    """Bin index of each time (times at the very end fall in the last bin)."""
    return np.minimum((times * (1.0 / SAMPLE_PERIOD_S)).astype(np.int64), nb - 1)


def _records(world: World, edges: np.ndarray) -> _Records:
    """A few vectorised passes over every source's records; no per-record Python."""
    warmup, end = world.scenario.warmup, world.scenario.duration
    nb = len(edges) - 1
    counts = dict.fromkeys(("in", "succeeded", "dlq", "dropped", "expired", "in_flight"), 0)
    latencies, all_latencies, done_ats = [], [], []
    finished = np.zeros((6, nb))
    sent = np.zeros(nb)
    steady_done = 0
    for queue in world.queues.values():
        rec = queue.rec
        n = len(rec)
        by_state = np.bincount(rec.state, minlength=6)
        counts["in"] += n
        counts["succeeded"] += int(by_state[SUCCEEDED])
        counts["dlq"] += int(by_state[DLQ])
        counts["dropped"] += int(by_state[DROPPED])
        counts["expired"] += int(by_state[EXPIRED])
        counts["in_flight"] += int(by_state[WAITING] + by_state[IN_FLIGHT])
        if by_state[SUCCEEDED] == n:  # the common case: no masks, no copies
            done_at, arrival = rec.done_at, rec.arrival_at
            finished[SUCCEEDED] += np.bincount(_minute(done_at, nb), minlength=nb)
        else:
            final = rec.state >= SUCCEEDED
            key = rec.state[final].astype(np.int64) * nb + _minute(rec.done_at[final], nb)
            finished += np.bincount(key, minlength=6 * nb).reshape(6, nb)
            ok = rec.state == SUCCEEDED
            done_at, arrival = rec.done_at[ok], rec.arrival_at[ok]
        latency = done_at - arrival
        all_latencies.append(latency)
        done_ats.append(done_at)
        if warmup > 0:
            steady_done += int(np.count_nonzero(done_at >= warmup))
            latency = latency[arrival >= warmup]
        else:
            steady_done += done_at.size
        latencies.append(latency)
        sent += np.diff(np.searchsorted(rec.arrival_at, edges, side="right"))
    total = counts["succeeded"] + counts["dlq"] + counts["dropped"] + counts["expired"] + counts["in_flight"]
    if total != counts["in"]:
        raise ConservationError(f"records_in {counts['in']} != sum of outcomes {total}: {counts}")

    def joined(arrays: list[np.ndarray]) -> np.ndarray:
        return arrays[0] if len(arrays) == 1 else np.concatenate([np.empty(0), *arrays])

    return _Records(
        counts,
        joined(latencies),
        joined(all_latencies),
        joined(done_ats),
        finished,
        sent,
        steady_done / (end - warmup),
    )


def _table(rows: list[tuple[Any, ...]], width: int) -> np.ndarray:
    """A log of tuples as a float array (``fromiter`` is twice as fast as ``asarray`` here)."""
    flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=float, count=len(rows) * width)
    return flat.reshape(-1, width)


def _concurrency(inv: np.ndarray, mask: np.ndarray | None = None) -> Level:
    """Concurrency from the invocation log: +1 at each start, -1 at each end."""
    rows = inv if mask is None else inv[mask]
    level = Level()
    level.add_many(rows[:, START], 1.0)
    level.add_many(rows[:, END], -1.0)
    return level


def observe(world: World) -> Observations:
    """Everything the summary, time series and resource table report for a finished run."""
    s = world.scenario
    end, warmup = s.duration, s.warmup
    edges = bin_edges(end, SAMPLE_PERIOD_S)
    inv = _table(world.invocations, len(INVOCATION_COLUMNS))
    thr = _table(world.throttles, 4)
    records = _records(world, edges)

    levels = {
        "concurrency": _concurrency(inv),
        "environments": Level().merged(*(f.environments for f in world.functions.values())),
        "pollers": Level().merged(*(m.pollers for m in world.mappings)),
    }
    queue_levels = [q.levels(end) for q in world.queues.values()]
    levels["visible"] = Level().merged(*(v for v, _ in queue_levels))
    levels["in_flight"] = Level().merged(*(f for _, f in queue_levels))
    stats = {name: level_stats(level, warmup, end, edges) for name, level in levels.items()}

    cost = _cost(world, inv)
    counts = records.counts
    run_s = inv[:, RUN]
    summary: dict[str, Any] = {
        "records_in": counts["in"],
        "records_succeeded": counts["succeeded"],
        "records_dlq": counts["dlq"],
        "records_dropped": counts["dropped"],
        "records_expired": counts["expired"],
        "records_in_flight_end": counts["in_flight"],
        **_latency_summary(records.latency),
        "invocations": int(inv.shape[0]),
        "invocation_errors": int((inv[:, OUTCOME] >= ERROR).sum()),
        "throttles": int(thr.shape[0]),
        "cold_starts": int((inv[:, ENV] == COLD).sum()),
        "concurrency_max": stats["concurrency"].maximum,
        "concurrency_mean": stats["concurrency"].mean,
        "environments_mean": stats["environments"].mean,
        "backlog_max": stats["visible"].maximum,
        "iterator_age_max_s": math.nan,  # streams only
        "cost_usd": cost.total_usd,
        "cost_lambda_requests_usd": cost.lambda_requests_usd,
        "cost_lambda_compute_usd": cost.lambda_compute_usd,
        "cost_source_usd": cost.source_usd,
        "cost_per_million_records_usd": cost.per_million(counts["succeeded"]),
        # ---- beyond the contract
        "cost_lambda_provisioned_usd": cost.lambda_provisioned_usd,
        "cost_per_month_usd": cost.per_month(end, s.pricing),
        "cost_producer_usd": cost.producer_usd,
        "throughput_per_s": records.throughput,
        "backlog_mean": stats["visible"].mean,
        "in_flight_mean": stats["in_flight"].mean,
        "environments_max": stats["environments"].maximum,
        "pollers_max": stats["pollers"].maximum,
        "pollers_mean": stats["pollers"].mean,
        "batch_size_mean": float(inv[:, RECORDS].mean()) if inv.shape[0] else math.nan,
        "duration_mean_ms": float(run_s.mean() * 1000) if run_s.size else math.nan,
        "duration_p99_ms": float(np.percentile(run_s, 99) * 1000) if run_s.size else math.nan,
        "provisioned_invocations": int((inv[:, ENV] == PROVISIONED).sum()),
        "sqs_requests": _sqs_requests(world),
        "sqs_empty_receives": int(sum(q.counts.total("empty_receives") for q in world.queues.values())),
        "visibility_overruns": int(sum(q.overrun_batches for q in world.queues.values())),
        "duration_s": end,
        "warmup_s": warmup,
    }
    return Observations(
        summary,
        _timeseries(world, edges, inv, thr, stats, records),
        _resources(world, inv, thr),
        histogram.histogram(records.latency),
    )


def _latency_summary(latency: np.ndarray) -> dict[str, float]:
    keys = ("latency_p50_s", "latency_p90_s", "latency_p99_s", "latency_max_s", "latency_mean_s")
    if latency.size == 0:
        return dict.fromkeys(keys, math.nan)
    p50, p90, p99 = np.percentile(latency, [50, 90, 99])
    return dict(
        zip(
            keys,
            (float(p50), float(p90), float(p99), float(latency.max()), float(latency.mean())),
            strict=True,
        )
    )


def _sqs_requests(world: World) -> int:
    names = ("receive_units", "deletes", "dlq_writes")
    return int(sum(q.counts.total(name) for q in world.queues.values() for name in names))


def _cost(world: World, inv: np.ndarray) -> CostBreakdown:
    s = world.scenario
    pricing = s.pricing
    compute = provisioned = 0.0
    for fn in world.functions.values():
        mine = inv[:, FUNCTION] == fn.index
        spec = fn.spec
        compute += lambda_compute_usd(
            inv[mine, RUN],
            inv[mine, INIT],
            inv[mine, ENV] == PROVISIONED,
            spec.memory_mb,
            spec.architecture,
            pricing,
        )
        provisioned += provisioned_concurrency_usd(
            spec.provisioned_concurrency, spec.memory_mb, spec.architecture, s.duration, pricing
        )
    source = sqs_requests_usd(_sqs_requests(world), pricing)
    chunk = pricing.sqs_request_chunk_bytes
    producer = sqs_requests_usd(
        sum(chunked_request_units(q.rec.size, chunk) for q in world.queues.values()), pricing
    )
    return CostBreakdown(
        lambda_requests_usd(int(inv.shape[0]), pricing), compute, provisioned, source, producer
    )


def _timeseries(
    world: World,
    edges: np.ndarray,
    inv: np.ndarray,
    thr: np.ndarray,
    stats: dict[str, LevelStats],
    records: _Records,
) -> pd.DataFrame:
    """One row per minute, CloudWatch's names first, esmsim's own after."""
    nb = len(edges) - 1
    start_at = inv[:, START]
    ones = np.ones(inv.shape[0])
    invocations = binned_sum(start_at, ones, edges)
    counts = [q.counts for q in world.queues.values()]

    def counter(name: str) -> np.ndarray:
        return np.sum([c.array(name) for c in counts], axis=0) if counts else np.zeros(nb)

    oldest = np.zeros(nb)
    for samples in world.oldest_age.values():
        oldest = np.maximum(oldest, np.asarray(samples[:nb], dtype=float))
    minute = _minute(records.latency_done_at, nb)
    p50, p99 = histogram.percentiles(histogram.per_bin(records.latency_all, minute, nb), [50, 99]).T
    with np.errstate(invalid="ignore", divide="ignore"):
        frame = pd.DataFrame(
            {
                "time_s": edges[:-1],
                "Invocations": invocations,
                "Errors": binned_sum(start_at, (inv[:, OUTCOME] >= ERROR).astype(float), edges),
                "Throttles": binned_sum(thr[:, 0], np.ones(thr.shape[0]), edges),
                "Duration": binned_sum(start_at, inv[:, RUN] * 1000.0, edges) / invocations,
                "ConcurrentExecutions": stats["concurrency"].bin_max,
                "NumberOfMessagesSent": records.sent,
                "NumberOfMessagesReceived": counter("received"),
                "NumberOfMessagesDeleted": records.finished[SUCCEEDED],
                "NumberOfEmptyReceives": counter("empty_receives"),
                "ApproximateNumberOfMessagesVisible": stats["visible"].bin_mean,
                "ApproximateNumberOfMessagesNotVisible": stats["in_flight"].bin_mean,
                "ApproximateAgeOfOldestMessage": oldest,
                "ColdStarts": binned_sum(start_at, (inv[:, ENV] == COLD).astype(float), edges),
                "RecordsSucceeded": records.finished[SUCCEEDED],
                "RecordsDLQ": records.finished[DLQ],
                "RecordsDropped": records.finished[DROPPED],
                "RecordsExpired": records.finished[EXPIRED],
                "ConcurrencyMean": stats["concurrency"].bin_mean,
                "Environments": stats["environments"].bin_mean,
                "Pollers": stats["pollers"].bin_mean,
                "BacklogMax": stats["visible"].bin_max,
                "BatchSize": binned_sum(start_at, inv[:, RECORDS], edges) / invocations,
                "LatencyP50": p50,
                "LatencyP99": p99,
            }
        )
    frame.index.name = "minute"
    return frame


def _resources(world: World, inv: np.ndarray, thr: np.ndarray) -> pd.DataFrame:
    """Per function and per mapping: what each did (for scenarios with several of them)."""
    s = world.scenario
    whole = bin_edges(s.duration, s.duration)
    rows = []
    for name, fn in world.functions.items():
        mine = inv[:, FUNCTION] == fn.index
        conc = level_stats(_concurrency(inv, mine), s.warmup, s.duration, whole)
        rows.append(
            {
                "kind": "function",
                "name": name,
                "invocations": int(mine.sum()),
                "invocation_errors": int((inv[mine, OUTCOME] >= ERROR).sum()),
                "throttles": int((thr[:, 1] == fn.index).sum()),
                "cold_starts": int((inv[mine, ENV] == COLD).sum()),
                "concurrency_max": conc.maximum,
                "concurrency_mean": conc.mean,
                "limit": fn.spec.reserved_concurrency,
            }
        )
    for m in world.mappings:
        mine = inv[:, MAPPING] == m.index
        conc = level_stats(_concurrency(inv, mine), s.warmup, s.duration, whole)
        rows.append(
            {
                "kind": "mapping",
                "name": f"mappings[{m.index}]: {m.spec.source} -> {m.spec.function}",
                "invocations": int(mine.sum()),
                "invocation_errors": int((inv[mine, OUTCOME] >= ERROR).sum()),
                "throttles": int((thr[:, 2] == m.index).sum()),
                "cold_starts": int((inv[mine, ENV] == COLD).sum()),
                "concurrency_max": conc.maximum,
                "concurrency_mean": conc.mean,
                "limit": m.spec.maximum_concurrency,
            }
        )
    return pd.DataFrame(rows)
