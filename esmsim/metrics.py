"""From a finished world to numbers: the summary contract and the 1-minute CloudWatch time series.

Summary latency percentiles are exact (``numpy.percentile`` over every record's latency); the
per-minute ones come from 1 %-bucket histograms. Levels are time-weighted. The record counts obey
the conservation law
``records_in == records_succeeded + records_dlq + records_dropped + records_expired + records_in_flight_end``,
checked on every run. A queue's records count once; a stream's count once per mapping reading it
(each consumer processes every record), or once if no mapping reads it.
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
    destination_usd,
    efo_consumer_usd,
    kinesis_put_units_usd,
    kinesis_stream_usd,
    lambda_compute_usd,
    lambda_requests_usd,
    provisioned_concurrency_usd,
    sqs_requests_usd,
)
from esmsim.model.build import SAMPLE_PERIOD_S, World
from esmsim.model.function import COLD, ERROR, PROVISIONED
from esmsim.model.records import DLQ, DROPPED, EXPIRED, IN_FLIGHT, SUCCEEDED, WAITING
from esmsim.model.sqs_queue import chunked_request_units
from esmsim.model.stream_mapping import StreamMappingRuntime
from esmsim.observe import Level, LevelStats, bin_edges, binned_sum, level_stats
from esmsim.scenario.sources import KinesisSource

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
    "iterator_age_s",
    "shard",
)
START, END, FUNCTION, MAPPING, RECORDS, OUTCOME, INIT, RUN, ENV, ITERATOR_AGE, SHARD = range(
    len(INVOCATION_COLUMNS)
)


class ConservationError(AssertionError):
    """Records were created or lost: a bug in the simulator, never a user error."""


@dataclass(frozen=True)
class Observations:
    """A run's numbers: summary, latency histogram, and the per-minute and per-resource tables."""

    summary: dict[str, Any]
    timeseries: pd.DataFrame
    resources: pd.DataFrame
    latency_histogram: np.ndarray
    mapping_timeseries: pd.DataFrame
    shard_timeseries: pd.DataFrame


@dataclass(frozen=True)
class _View:
    """One consumer's view of a source's records: when each was sent, and what became of it."""

    sent_at: np.ndarray
    state: np.ndarray
    done_at: np.ndarray
    scope: np.ndarray | None  # the records this consumer is responsible for (None: all)


def _views(world: World) -> list[_View]:
    views = [_View(q.rec.arrival_at, q.rec.state, q.rec.done_at, None) for q in world.queues.values()]
    end = world.scenario.duration
    for name, stream in world.streams.items():
        readers = [m for m in world.stream_mappings if m.spec.source == name]
        for m in readers:
            views.append(_View(stream.table.arrival_at, m.state, m.done_at, m.in_scope))
        if not readers:  # nobody reads it: records stay until retention removes them
            expiry = stream.accepted_at + stream.retention_s
            state = np.where(expiry <= end, EXPIRED, WAITING).astype(np.int8)
            views.append(_View(stream.table.arrival_at, state, np.where(expiry <= end, expiry, 0.0), None))
    return views


@dataclass
class _Records:
    """Record outcomes over all consumers."""

    counts: dict[str, int]
    latency: np.ndarray  # of records that arrived after the warm-up and succeeded
    latency_all: np.ndarray  # of every record that succeeded, warm-up included
    latency_done_at: np.ndarray  # when each of those finished
    finished: np.ndarray  # [state, minute]: records reaching a final state in each minute
    sent: np.ndarray  # records sent per minute (once per source)
    throughput: float


def _minute(times: np.ndarray, nb: int) -> np.ndarray:
    """Bin index of each time (times at the very end fall in the last bin, negative ones in the first)."""
    idx = (times * (1.0 / SAMPLE_PERIOD_S)).astype(np.int64)
    return np.clip(idx, 0, nb - 1, out=idx)


def _records(world: World, edges: np.ndarray) -> _Records:
    """A few vectorised passes over every consumer's records; no per-record Python."""
    warmup, end = world.scenario.warmup, world.scenario.duration
    nb = len(edges) - 1
    counts = dict.fromkeys(("in", "succeeded", "dlq", "dropped", "expired", "in_flight"), 0)
    latencies, all_latencies, done_ats = [], [], []
    finished = np.zeros((6, nb))
    steady_done = 0
    for view in _views(world):
        state, done_at, sent = view.state, view.done_at, view.sent_at
        if view.scope is not None:
            state, done_at, sent = state[view.scope], done_at[view.scope], sent[view.scope]
        n = state.size
        by_state = np.bincount(state, minlength=6)
        counts["in"] += n
        counts["succeeded"] += int(by_state[SUCCEEDED])
        counts["dlq"] += int(by_state[DLQ])
        counts["dropped"] += int(by_state[DROPPED])
        counts["expired"] += int(by_state[EXPIRED])
        counts["in_flight"] += int(by_state[WAITING] + by_state[IN_FLIGHT])
        if by_state[SUCCEEDED] == n:  # the common case: no masks, no copies
            finished[SUCCEEDED] += np.bincount(_minute(done_at, nb), minlength=nb)
        else:
            final = state >= SUCCEEDED
            key = state[final].astype(np.int64) * nb + _minute(done_at[final], nb)
            finished += np.bincount(key, minlength=6 * nb).reshape(6, nb)
            ok = state == SUCCEEDED
            done_at, sent = done_at[ok], sent[ok]
        latency = done_at - sent
        all_latencies.append(latency)
        done_ats.append(done_at)
        if warmup > 0:
            steady_done += int(np.count_nonzero(done_at >= warmup))
            latency = latency[sent >= warmup]
        else:
            steady_done += done_at.size
        latencies.append(latency)
    total = counts["succeeded"] + counts["dlq"] + counts["dropped"] + counts["expired"] + counts["in_flight"]
    if total != counts["in"]:
        raise ConservationError(f"records_in {counts['in']} != sum of outcomes {total}: {counts}")
    sources = [q.rec.arrival_at for q in world.queues.values()] + [
        s.table.arrival_at for s in world.streams.values()
    ]
    sent_per_minute = sum((np.bincount(_minute(a, nb), minlength=nb)[:nb] for a in sources), np.zeros(nb))

    def joined(arrays: list[np.ndarray]) -> np.ndarray:
        return arrays[0] if len(arrays) == 1 else np.concatenate([np.empty(0), *arrays])

    return _Records(
        counts,
        joined(latencies),
        joined(all_latencies),
        joined(done_ats),
        finished,
        sent_per_minute,
        steady_done / (end - warmup),
    )


def _table(rows: list[tuple[Any, ...]], width: int) -> np.ndarray:
    """A log of tuples as a float array (``fromiter`` is twice as fast as ``asarray`` here)."""
    flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=float, count=len(rows) * width)
    return flat.reshape(-1, width)


def _concurrency(inv: np.ndarray, mask: np.ndarray | None = None) -> Level:
    """Concurrency from the invocation log: +1 at each start, -1 at each end."""
    level = Level()
    level.add_many(inv[:, START] if mask is None else inv[mask, START], 1.0)
    level.add_many(inv[:, END] if mask is None else inv[mask, END], -1.0)
    return level


def _concurrency_by_resource(
    world: World, inv: np.ndarray, run: LevelStats, edges: np.ndarray
) -> tuple[dict[int, LevelStats], dict[int, LevelStats]]:
    """Concurrency statistics per mapping and per function (by index), each computed once.

    A mapping or function that made every invocation shares the run's; a function fed by one
    mapping shares that mapping's.
    """
    s = world.scenario

    def of(mask: np.ndarray) -> LevelStats:
        return run if mask.all() else level_stats(_concurrency(inv, mask), s.warmup, s.duration, edges)

    by_mapping = {m.index: of(inv[:, MAPPING] == m.index) for m in world.mappings}
    by_function = {}
    for fn in world.functions.values():
        feeding = [m.index for m in world.mappings if m.function is fn]
        by_function[fn.index] = (
            by_mapping[feeding[0]] if len(feeding) == 1 else of(inv[:, FUNCTION] == fn.index)
        )
    return by_mapping, by_function


def _shard_samples(world: World, m: StreamMappingRuntime) -> np.ndarray:
    """Each shard's unprocessed records at the end of every minute, as (minutes, shards)."""
    return np.asarray(world.shard_backlog.get(m.index, []), dtype=float).reshape(-1, m.stream.shards)


def _invocation_columns(
    rows: np.ndarray, throttled_at: np.ndarray, edges: np.ndarray
) -> dict[str, np.ndarray]:
    """CloudWatch's per-minute invocation metrics of some invocations (a run's, or a mapping's)."""
    nb = len(edges) - 1
    start_at = rows[:, START]
    n = binned_sum(start_at, np.ones(start_at.size), edges)
    ages = rows[:, ITERATOR_AGE]
    streaming = ~np.isnan(ages)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "Invocations": n,
            "Errors": binned_sum(start_at, (rows[:, OUTCOME] >= ERROR).astype(float), edges),
            "Throttles": binned_sum(throttled_at, np.ones(throttled_at.size), edges),
            "Duration": binned_sum(start_at, rows[:, RUN] * 1000.0, edges) / n,
            "IteratorAge": _binned_max(start_at[streaming], ages[streaming] * 1000.0, nb),
            "BatchSize": binned_sum(start_at, rows[:, RECORDS], edges) / n,
        }


def _stream_backlog(world: World) -> Level:
    """Records in streams not yet processed by their mappings: +1 when written, -1 when finished."""
    level = Level()
    for m in world.stream_mappings:
        # Both are sorted within each shard (or lane): a stable sort merges those runs cheaply.
        level.add_sorted(np.sort(m.stream.accepted_at[m.in_scope], kind="stable"), +1)
        final = m.in_scope & (m.state >= SUCCEEDED)
        level.add_sorted(np.sort(m.done_at[final], kind="stable"), -1)
    return level


def observe(world: World, *, tables: bool = True) -> Observations:
    """Everything the summary, time series and resource tables report for a finished run.

    With ``tables=False`` only the summary and the latency histogram are computed (what a sweep
    keeps); the time series and resource tables are left empty.
    """
    s = world.scenario
    end, warmup = s.duration, s.warmup
    edges = bin_edges(end, SAMPLE_PERIOD_S)
    inv = _table(world.invocations, len(INVOCATION_COLUMNS))
    thr = _table(world.throttles, 4)
    records = _records(world, edges)

    levels = {
        "concurrency": _concurrency(inv),
        "environments": Level().merged(*(f.environments for f in world.functions.values())),
        "pollers": Level().merged(*(m.pollers for m in world.sqs_mappings)),
        "stream_backlog": _stream_backlog(world),
    }
    queue_levels = [q.levels(end) for q in world.queues.values()]
    levels["visible"] = Level().merged(*(v for v, _ in queue_levels))
    levels["in_flight"] = Level().merged(*(f for _, f in queue_levels))
    stats = {name: level_stats(level, warmup, end, edges) for name, level in levels.items()}
    if world.queues and world.streams:
        backlog = levels["visible"].merged(levels["stream_backlog"])
        stats["backlog"] = level_stats(backlog, warmup, end, edges)
    else:
        stats["backlog"] = stats["stream_backlog"] if world.streams else stats["visible"]

    sqs_requests = _sqs_requests(world)
    cost = _cost(world, inv, sqs_requests)
    counts = records.counts
    run_s = inv[:, RUN]
    ages = inv[:, ITERATOR_AGE]
    ages = ages[~np.isnan(ages)]
    readers = [r for m in world.stream_mappings for r in m.readers]
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
        "backlog_max": stats["backlog"].maximum,
        "iterator_age_max_s": float(ages.max()) if ages.size else math.nan,
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
        "backlog_mean": stats["backlog"].mean,
        "in_flight_mean": stats["in_flight"].mean,
        "environments_max": stats["environments"].maximum,
        "pollers_max": stats["pollers"].maximum,
        "pollers_mean": stats["pollers"].mean,
        "batch_size_mean": float(inv[:, RECORDS].mean()) if inv.shape[0] else math.nan,
        "duration_mean_ms": float(run_s.mean() * 1000) if run_s.size else math.nan,
        "duration_p99_ms": float(np.percentile(run_s, 99) * 1000) if run_s.size else math.nan,
        "provisioned_invocations": int((inv[:, ENV] == PROVISIONED).sum()),
        "sqs_requests": sqs_requests,
        "sqs_empty_receives": int(sum(q.counts.total("empty_receives") for q in world.queues.values())),
        "visibility_overruns": int(sum(q.overrun_batches for q in world.queues.values())),
        "iterator_age_mean_s": float(ages.mean()) if ages.size else math.nan,
        "getrecords_calls": int(sum(r.calls for r in readers)),
        "read_throttles": int(sum(len(r.throttled_calls) for r in readers)),
        "write_throttles": int(sum(st.write_throttled().size for st in world.streams.values())),
        "discarded_batches": int(sum(m.discarded_batches for m in world.stream_mappings)),
        "duration_s": end,
        "warmup_s": warmup,
    }
    latency_histogram = histogram.histogram(records.latency)
    if not tables:
        empty = pd.DataFrame()
        return Observations(summary, empty, empty, latency_histogram, empty, empty)
    by_mapping, by_function = _concurrency_by_resource(world, inv, stats["concurrency"], edges)
    return Observations(
        summary,
        _timeseries(world, edges, inv, thr, stats, records),
        _resources(world, inv, thr, by_mapping, by_function),
        latency_histogram,
        _mapping_timeseries(world, edges, inv, thr, by_mapping),
        _shard_timeseries(world, edges),
    )


def _latency_summary(latency: np.ndarray) -> dict[str, float]:
    keys = ("latency_p50_s", "latency_p90_s", "latency_p99_s", "latency_max_s", "latency_mean_s")
    if latency.size == 0:
        return dict.fromkeys(keys, math.nan)
    p50, p90, p99 = np.percentile(latency, [50, 90, 99])
    values = (float(p50), float(p90), float(p99), float(latency.max()), float(latency.mean()))
    return dict(zip(keys, values, strict=True))


def _sqs_requests(world: World) -> int:
    names = ("receive_units", "deletes", "dlq_writes")
    return int(sum(q.counts.total(name) for q in world.queues.values() for name in names))


def _cost(world: World, inv: np.ndarray, sqs_requests: int) -> CostBreakdown:
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
    source = sqs_requests_usd(sqs_requests, pricing)
    chunk = pricing.sqs_request_chunk_bytes
    producer = sqs_requests_usd(
        sum(chunked_request_units(q.rec.size, chunk) for q in world.queues.values()), pricing
    )
    for stream in world.streams.values():
        if isinstance(stream.spec, KinesisSource):
            source += kinesis_stream_usd(stream.shards, stream.retention_s, s.duration, pricing)
            producer += kinesis_put_units_usd(stream.table.size, pricing)
    for m in world.stream_mappings:
        if m.spec.enhanced_fan_out:
            source += efo_consumer_usd(
                m.stream.shards, s.duration, sum(r.bytes_read for r in m.readers), pricing
            )
        if m.spec.on_failure is not None:
            source += destination_usd(m.spec.on_failure.type, m.discarded_batches, pricing)
    return CostBreakdown(
        lambda_requests_usd(int(inv.shape[0]), pricing), compute, provisioned, source, producer
    )


def _binned_max(times: np.ndarray, values: np.ndarray, nb: int) -> np.ndarray:
    """Maximum of values per minute (NaN where none)."""
    out = np.full(nb, -np.inf)
    if times.size:
        np.maximum.at(out, _minute(times, nb), values)
    return np.where(np.isfinite(out), out, np.nan)


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
    calls = _invocation_columns(inv, thr[:, 0], edges)
    counts = [q.counts for q in world.queues.values()]

    def counter(name: str) -> np.ndarray:
        return np.sum([c.array(name) for c in counts], axis=0) if counts else np.zeros(nb)

    oldest = np.zeros(nb)
    for ages in world.oldest_age.values():
        oldest = np.maximum(oldest, np.asarray(ages, dtype=float))
    readers = [r for m in world.stream_mappings for r in m.readers]
    poll_ages = np.asarray([a for r in readers for a in r.record_ages], dtype=float).reshape(-1, 2)
    read_throttled = np.asarray([t for r in readers for t in r.throttled_calls], dtype=float)
    write_throttled = np.concatenate([np.empty(0), *(st.write_throttled() for st in world.streams.values())])
    shard_max = np.zeros(nb)
    for m in world.stream_mappings:
        samples = _shard_samples(world, m)
        if samples.size:
            shard_max = np.maximum(shard_max, samples.max(axis=1))
    destination = np.zeros(nb)
    for m in world.stream_mappings:
        if m.spec.on_failure is not None:
            sent = m.in_scope & (m.state == DLQ)
            destination += np.bincount(_minute(m.done_at[sent], nb), minlength=nb)[:nb]
    deleted = np.zeros(nb)
    for q in world.queues.values():
        ok = q.rec.state == SUCCEEDED
        deleted += np.bincount(_minute(q.rec.done_at[ok], nb), minlength=nb)[:nb]
    minute = _minute(records.latency_done_at, nb)
    p50, p99 = histogram.percentiles(histogram.per_bin(records.latency_all, minute, nb), [50, 99]).T
    with np.errstate(invalid="ignore", divide="ignore"):
        frame = pd.DataFrame(
            {
                "time_s": edges[:-1],
                "Invocations": calls["Invocations"],
                "Errors": calls["Errors"],
                "Throttles": calls["Throttles"],
                "Duration": calls["Duration"],
                "ConcurrentExecutions": stats["concurrency"].bin_max,
                "IteratorAge": calls["IteratorAge"],
                "NumberOfMessagesSent": records.sent,
                "NumberOfMessagesReceived": counter("received"),
                "NumberOfMessagesDeleted": deleted,
                "NumberOfEmptyReceives": counter("empty_receives"),
                "ApproximateNumberOfMessagesVisible": stats["visible"].bin_mean,
                "ApproximateNumberOfMessagesNotVisible": stats["in_flight"].bin_mean,
                "ApproximateAgeOfOldestMessage": oldest,
                "GetRecords.IteratorAgeMilliseconds": _binned_max(
                    poll_ages[:, 0], poll_ages[:, 1] * 1000.0, nb
                ),
                "ReadProvisionedThroughputExceeded": binned_sum(
                    read_throttled, np.ones(read_throttled.size), edges
                ),
                "WriteProvisionedThroughputExceeded": binned_sum(
                    write_throttled, np.ones(write_throttled.size), edges
                ),
                "DroppedEventCount": records.finished[DROPPED],
                "OnFailureDestinationDeliveredEventCount": destination,
                "ColdStarts": binned_sum(start_at, (inv[:, ENV] == COLD).astype(float), edges),
                "RecordsSucceeded": records.finished[SUCCEEDED],
                "RecordsDLQ": records.finished[DLQ],
                "RecordsDropped": records.finished[DROPPED],
                "RecordsExpired": records.finished[EXPIRED],
                "ConcurrencyMean": stats["concurrency"].bin_mean,
                "Environments": stats["environments"].bin_mean,
                "Pollers": stats["pollers"].bin_mean,
                "BacklogMax": stats["backlog"].bin_max,
                "StreamBacklog": stats["stream_backlog"].bin_mean,
                "ShardBacklogMax": shard_max,
                "BatchSize": calls["BatchSize"],
                "LatencyP50": p50,
                "LatencyP99": p99,
            }
        )
    frame.index.name = "minute"
    return frame


def mapping_label(index: int, source: str, function: str) -> str:
    """How a mapping is named in the per-resource tables: ``mappings[0]: queue -> function``."""
    return f"mappings[{index}]: {source} -> {function}"


def _mapping_timeseries(
    world: World, edges: np.ndarray, inv: np.ndarray, thr: np.ndarray, concurrency: dict[int, LevelStats]
) -> pd.DataFrame:
    """One row per mapping and minute: what CloudWatch reports per event source mapping.

    The run's time series adds mappings up (IteratorAge is their maximum); this keeps them apart,
    so a stalled mapping is told from a healthy one reading the same stream.
    """
    nb = len(edges) - 1
    frames = []
    for m in world.mappings:
        calls = _invocation_columns(inv[inv[:, MAPPING] == m.index], thr[thr[:, 2] == m.index, 0], edges)
        backlog = np.full(nb, np.nan)
        if isinstance(m, StreamMappingRuntime):
            backlog = _shard_samples(world, m).max(axis=1)
        frame = pd.DataFrame(
            {
                "minute": np.arange(nb),
                "time_s": edges[:-1],
                "mapping": mapping_label(m.index, m.spec.source, m.spec.function),
                **{k: calls[k] for k in ("Invocations", "Errors", "Throttles", "Duration")},
                "ConcurrentExecutions": concurrency[m.index].bin_max,
                "IteratorAge": calls["IteratorAge"],
                "BatchSize": calls["BatchSize"],
                "ShardBacklogMax": backlog,
            }
        )
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _shard_timeseries(world: World, edges: np.ndarray) -> pd.DataFrame:
    """One row per stream mapping, shard and minute: its backlog at the minute's end, its calls."""
    nb = len(edges) - 1
    frames = []
    for m in world.stream_mappings:
        samples = _shard_samples(world, m)
        for shard, reader in enumerate(m.readers):
            refused = np.asarray(reader.throttled_calls, dtype=float)
            frames.append(
                pd.DataFrame(
                    {
                        "minute": np.arange(nb),
                        "time_s": edges[:-1],
                        "mapping": mapping_label(m.index, m.spec.source, m.spec.function),
                        "shard": shard,
                        "Backlog": samples[:, shard],
                        "ReadProvisionedThroughputExceeded": binned_sum(
                            refused, np.ones(refused.size), edges
                        ),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _resources(
    world: World,
    inv: np.ndarray,
    thr: np.ndarray,
    by_mapping: dict[int, LevelStats],
    by_function: dict[int, LevelStats],
) -> pd.DataFrame:
    """Per function, per mapping and per shard: what each did (for scenarios with several)."""
    rows: list[dict[str, Any]] = []

    def usage(
        kind: str, name: str, mine: np.ndarray, throttled: np.ndarray, limit: int | None, conc: LevelStats
    ) -> dict[str, Any]:
        ages = inv[mine, ITERATOR_AGE]
        return {
            "kind": kind,
            "name": name,
            "invocations": int(mine.sum()),
            "invocation_errors": int((inv[mine, OUTCOME] >= ERROR).sum()),
            "throttles": int(throttled.sum()),
            "cold_starts": int((inv[mine, ENV] == COLD).sum()),
            "concurrency_max": conc.maximum,
            "concurrency_mean": conc.mean,
            "limit": limit,
            "iterator_age_max_s": float(np.nanmax(ages))
            if ages.size and not np.isnan(ages).all()
            else math.nan,
        }

    for name, fn in world.functions.items():
        mine = inv[:, FUNCTION] == fn.index
        limit = fn.spec.reserved_concurrency
        rows.append(usage("function", name, mine, thr[:, 1] == fn.index, limit, by_function[fn.index]))
    for m in world.mappings:
        mine = inv[:, MAPPING] == m.index
        if isinstance(m, StreamMappingRuntime):
            limit = m.stream.shards * m.spec.parallelization_factor
        else:
            limit = m.spec.maximum_concurrency
        label = mapping_label(m.index, m.spec.source, m.spec.function)
        rows.append(usage("mapping", label, mine, thr[:, 2] == m.index, limit, by_mapping[m.index]))
    for m in world.stream_mappings:
        samples = _shard_samples(world, m)
        for shard, (lo, hi) in enumerate(m.shard_rows):
            backlog = samples[:, shard] if samples.size else np.zeros(1)
            rows.append(
                {
                    "kind": "shard",
                    "name": f"mappings[{m.index}] shard {shard}",
                    "records": hi - lo,
                    "backlog_max": float(backlog.max()),
                    "backlog_end": float(backlog[-1]),
                    "read_throttles": len(m.readers[shard].throttled_calls),
                }
            )
    return pd.DataFrame(rows)
