"""What becomes of records: counted per consumer and per minute, latencies folded as records end.

A consumer is whoever processes a source's records: a queue's mappings together (a message is
consumed once), each mapping reading a stream (streams are not consumed: every reader processes
every record), or nobody (an unread stream, whose records only wait or expire). The model reports
records as they arrive and as they end; here they become counts, per-minute bins and latency
histograms, and are forgotten. Nothing is kept per record unless the run is traced.

Latency is from a record's arrival at the source to the end of the invocation that processed it
successfully. The summary's percentiles are exact (numpy over every steady-state latency) while
a run has at most :data:`EXACT_LATENCY_LIMIT` of them; beyond that they are read from the 1 %
histogram, within 0.5 % (``latency_method`` in the result says which). Means and maxima are
always exact.

A success also says where its latency went (:data:`Timing`): the mean splits into
:data:`LATENCY_PARTS` that sum to it, folded with the same steady-state mask and, per minute, over
the same records as the minute's percentiles. Only the sums of each part's boundary times are
kept, so the split costs a few vector operations per fold, nothing per record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np

from esmsim import histogram
from esmsim.events import RecordState
from esmsim.observe.levels import bin_index

#: Steady-state latencies kept for exact percentiles (80 MB of float64); beyond it, the histogram.
EXACT_LATENCY_LIMIT = 10_000_000
#: Pending ends folded once this many records wait.
FOLD_RECORDS = 1 << 16

#: The parts of a success's latency, in order: each is the span between two of its times
#: (sent, first, received, ready, start, start + init, done).
LATENCY_PARTS = ("queued", "retry", "batching", "throttled", "init", "handler")
_PARTS = len(LATENCY_PARTS)
STATES = len(RecordState)
_SUCCEEDED = int(RecordState.SUCCEEDED)
#: Columns of a traced run's records table, in the order they are kept.
TRACE_COLUMNS = (
    "consumer",
    "id",
    "sent_s",
    "done_s",
    "state",
    "receives",
    "shard",
    "key",
    "stored_s",
    "poison_draw",
    *(f"{part}_s" for part in LATENCY_PARTS),
)


#: Where a success's latency went, as the times that bound its parts:
#: ``(first, received, ready, start, init_s)``. ``first``: the record's first receive (SQS), fetch
#: (streams) or attempt (asynchronous events); ``received``: the start of the attempt sequence that
#: succeeded (SQS: its receive; streams: the fetch plus the time lost to failed attempts; async:
#: its first try after the last failure); ``ready``: the batch handed to the invoke step; ``start``:
#: the invocation admitted; ``init_s``: its cold start. ``first`` and ``received`` are one time for
#: the whole end or one per record; the rest are one time.
Timing: TypeAlias = "tuple[float | np.ndarray, float | np.ndarray, float, float, float]"

#: An end as :meth:`Outcomes.ended` keeps it: ``(consumer, sent, done, state, ids, detail, timing)``.
_PendingEnd = tuple[int, np.ndarray, "float | np.ndarray", int, Any, Any, "Timing | None"]


class ConservationError(AssertionError):
    """Records were created or lost: a bug in the simulator, never a user error."""


@dataclass(frozen=True)
class Consumer:
    """One consumer of a source's records."""

    label: str  # the queue's name, or the mapping's label (``mappings[0]: stream -> fn``)
    source: str
    mapping: int  # the mapping's index, -1 for a queue (all its mappings) or an unread stream
    kind: str  # "queue", "stream", or "unread"


@dataclass
class OutcomeTotals:
    """Everything the outcomes of a run reduce to."""

    consumers: list[Consumer]
    arrived: np.ndarray  # per consumer
    by_state: np.ndarray  # (consumers, states): final states and, from the census, waiting/in flight
    per_minute: np.ndarray  # (consumers, states, minutes): records reaching a final state per minute
    steady_histogram: np.ndarray  # latency histogram of steady-state records
    steady_exact: np.ndarray | None  # every steady-state latency, or None beyond the limit
    steady_count: int
    steady_sum: float
    steady_max: float
    steady_done: int  # successes that ended after the warm-up (throughput)
    minute_p50: np.ndarray  # per minute, from that minute's histogram (every record, warm-up included)
    minute_p99: np.ndarray
    steady_parts: np.ndarray  # (LATENCY_PARTS,): sums of each part over the steady-state latencies
    minute_parts: np.ndarray  # (LATENCY_PARTS, minutes): sums over the successes ending each minute
    minute_done: np.ndarray  # successes ending each minute (every record, warm-up included)
    trace: dict[str, np.ndarray] | None = field(default=None, repr=False)


class Outcomes:
    """Record outcomes of one run, folded as they come (see the module docstring)."""

    def __init__(
        self, consumers: list[Consumer], edges: np.ndarray, warmup: float, *, trace: bool = False
    ) -> None:
        self.consumers = consumers
        self.edges = edges
        self.warmup = warmup
        self.nb = len(edges) - 1
        n = len(consumers)
        self._arrived = np.zeros(n, dtype=np.int64)
        self._census = np.zeros((n, STATES), dtype=np.int64)
        self._per_minute = np.zeros((n, STATES, self.nb))
        self._pending: list[_PendingEnd] = []
        self._pending_n = 0
        self._steady_hist = np.zeros(histogram.BUCKETS, dtype=np.int64)
        self._exact: list[np.ndarray] | None = []
        self._steady_count = 0
        self._steady_sum = 0.0
        self._steady_max = -np.inf
        self._steady_done = 0
        self._steady_parts = np.zeros(_PARTS)
        self._minute_parts = np.zeros((_PARTS, self.nb))
        self._minute_hist: dict[int, np.ndarray] = {}
        self._p50 = np.full(self.nb, np.nan)
        self._p99 = np.full(self.nb, np.nan)
        self._closed_minutes = 0
        #: A traced run's record ends: column chunks (TRACE_COLUMNS), one per fold, and the ends
        #: since the last fold as given, (consumer, sent, done, state, ids, detail).
        self._trace: list[dict[str, np.ndarray]] | None = [] if trace else None
        #: Whether every record's fate is kept (a traced run): a plain attribute, read per batch.
        self.tracing = trace
        self._trace_pending: list[_TraceEntry] = []

    # ------------------------------------------------------------------ writing
    def arrived(self, consumer: int, n: int) -> None:
        """``n`` records entered ``consumer``'s scope."""
        self._arrived[consumer] += n

    def ended(
        self,
        consumer: int,
        sent_at: np.ndarray,
        done_at: float | np.ndarray,
        state: int,
        ids: slice | np.ndarray | None = None,
        detail: dict[str, Any] | None = None,
        timing: Timing | None = None,
    ) -> None:
        """Records of ``consumer`` reached a final state.

        Args:
            consumer: the consumer's index.
            sent_at: when each was sent (latency counts from here).
            done_at: when they ended (one time for all, or one each).
            state: SUCCEEDED, DLQ, DROPPED or EXPIRED (a :class:`RecordState`, or its int).
            ids: the records' ids in their source (kept only when tracing).
            detail: more columns for the records table, kept only when tracing: ``receives`` (SQS),
                ``shard``, ``key`` and ``stored_s`` (streams), ``poison_draw``; a scalar or one value
                per record.
            timing: where a success's latency went (required for SUCCEEDED).
        """
        if sent_at.size == 0:
            return
        if timing is None and state == _SUCCEEDED:
            raise ValueError("a success needs its timing: where its latency went")
        self._pending.append((consumer, sent_at, done_at, state, ids, detail, timing))
        self._pending_n += sent_at.size
        if self._pending_n >= FOLD_RECORDS:
            self.fold()

    def census(
        self,
        consumer: int,
        sent_at: np.ndarray,
        state: RecordState,
        ids: slice | np.ndarray | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """At the end of the run: records still WAITING or IN_FLIGHT at ``consumer``."""
        if sent_at.size == 0:
            return
        self._census[consumer, int(state)] += sent_at.size
        if self._trace is not None:
            self._trace_rows(consumer, sent_at, math.nan, int(state), ids, detail)

    def census_count(self, consumer: int, state: RecordState, n: int) -> None:
        """Like :meth:`census`, for records whose columns were not kept (an unread stream's)."""
        self._census[consumer, int(state)] += n

    # ------------------------------------------------------------------ folding
    def fold(self) -> None:
        """Fold every pending end into the counts and histograms."""
        if not self._pending:
            return
        pending, self._pending, self._pending_n = self._pending, [], 0
        count = len(pending)
        sizes = np.fromiter((p[1].shape[0] for p in pending), dtype=np.int64, count=count)
        consumer = np.fromiter((p[0] for p in pending), np.int64, count)
        state = np.fromiter((p[3] for p in pending), np.int64, count)
        scalar = np.fromiter((not isinstance(p[2], np.ndarray) for p in pending), bool, count)
        # Counted per end (a batch's records end together) rather than per record: an end with one
        # time is one bincount entry weighted by its size; one with a time per record (a window's
        # messages reappearing each at its deadline) is one entry per record.
        if scalar.all():
            done_at = np.fromiter((p[2] for p in pending), float, count)
            minute = bin_index(done_at, self.edges)
            key_owner = consumer * STATES + state
            weights = sizes
        else:
            done_at = np.fromiter(
                (p[2] if s else math.nan for p, s in zip(pending, scalar, strict=True)), float, count
            )
            per_record = [
                np.asarray(p[2], dtype=float) for p, s in zip(pending, scalar, strict=True) if not s
            ]
            many = ~scalar
            times = np.concatenate([done_at[scalar], *per_record])
            minute = bin_index(times, self.edges)
            key_owner = np.concatenate(
                [
                    (consumer * STATES + state)[scalar],
                    np.repeat((consumer * STATES + state)[many], sizes[many]),
                ]
            )
            weights = np.concatenate([sizes[scalar], np.ones(int(sizes[many].sum()), dtype=np.int64)])
        # Only the minutes these records ended in (few: most end "now").
        lo = int(minute.min())
        span = int(minute.max()) - lo + 1
        counts = np.bincount(
            key_owner * span + (minute - lo), weights=weights, minlength=len(self.consumers) * STATES * span
        )
        self._per_minute[:, :, lo : lo + span] += counts.reshape(len(self.consumers), STATES, span)
        ok = state == _SUCCEEDED
        if ok.any():
            self._fold_successes(
                [p for p, o in zip(pending, ok.tolist(), strict=True) if o],
                sizes[ok],
                done_at[ok],
                scalar[ok],
            )
        if self._trace is not None:
            self._trace_pending += pending
            self._trace_chunk()

    def _fold_successes(
        self, ends: list[_PendingEnd], sizes: np.ndarray, done_at: np.ndarray, scalar: np.ndarray
    ) -> None:
        """Latencies of the records that ended SUCCEEDED: ``ends`` with their sizes and end times."""
        sent = ends[0][1] if len(ends) == 1 else np.concatenate([e[1] for e in ends])
        if scalar.all():
            done = np.repeat(done_at, sizes)
            # Records of one end share its minute: bin the ends, not the records.
            end_minute = bin_index(done_at, self.edges)
            lo = int(end_minute.min())
            span = int(end_minute.max()) - lo + 1
            offset = None if span == 1 else np.repeat(end_minute - lo, sizes)
            self._steady_done += int(sizes[done_at >= self.warmup].sum())
        else:
            done = np.concatenate(
                [
                    np.full(e[1].shape[0], e[2]) if s else np.asarray(e[2], dtype=float)
                    for e, s in zip(ends, scalar.tolist(), strict=True)
                ]
            )
            minute = bin_index(done, self.edges)
            lo = int(minute.min())
            span = int(minute.max()) - lo + 1
            offset = minute - lo
            self._steady_done += int(np.count_nonzero(done >= self.warmup))
        latency = done - sent
        bucket = histogram.bucket_of(latency)  # once: the run's histogram and the minute's share it
        parts = _latency_parts(ends, sizes, sent, done)
        if self.warmup > 0:
            steady_mask = sent >= self.warmup
            steady = latency[steady_mask]
            steady_bucket = bucket[steady_mask]
            self._steady_parts += parts[:, steady_mask].sum(axis=1)
        else:
            steady, steady_bucket = latency, bucket
            self._steady_parts += parts.sum(axis=1)
        if offset is None:
            self._minute_parts[:, lo] += parts.sum(axis=1)
        else:
            for k in range(_PARTS):
                self._minute_parts[k, lo : lo + span] += np.bincount(offset, weights=parts[k], minlength=span)
        if steady.size:
            self._steady_hist += np.bincount(steady_bucket, minlength=histogram.BUCKETS)
            self._steady_count += steady.size
            self._steady_sum += float(steady.sum())
            self._steady_max = max(self._steady_max, float(steady.max()))
            if self._exact is not None:
                if self._steady_count <= EXACT_LATENCY_LIMIT:
                    self._exact.append(steady)
                else:
                    self._exact = None
        # Per-minute histograms for the minutes these records ended in (few: records end "now").
        key = bucket if offset is None else offset * histogram.BUCKETS + bucket
        counts = np.bincount(key, minlength=span * histogram.BUCKETS).reshape(span, histogram.BUCKETS)
        for i in np.flatnonzero(counts.sum(axis=1)).tolist():
            m = lo + i
            if m in self._minute_hist:
                self._minute_hist[m] += counts[i]
            else:
                self._minute_hist[m] = counts[i].copy()

    def close_minutes(self, until: float) -> None:
        """Turn the latency histograms of minutes that ended by ``until`` into their percentiles."""
        self.fold()
        edges = self.edges
        while self._closed_minutes < self.nb and edges[self._closed_minutes + 1] <= until:
            self._close_minute(self._closed_minutes)
            self._closed_minutes += 1

    def _close_minute(self, m: int) -> None:
        counts = self._minute_hist.pop(m, None)
        if counts is not None:
            self._p50[m], self._p99[m] = histogram.percentiles(counts, [50, 99])

    def _trace_rows(
        self,
        consumer: int,
        sent: np.ndarray,
        done: float | np.ndarray,
        state: int,
        ids: slice | np.ndarray | None,
        detail: dict[str, Any] | None,
    ) -> None:
        # Kept as given (record columns are never modified once written, so views stay valid) and
        # turned into columns at the next fold.
        self._trace_pending.append((consumer, sent, done, state, ids, detail, None))

    def _trace_chunk(self) -> None:
        """Turn the ends kept since the last fold into one chunk of columns.

        Per fold rather than once at the end: an end kept as given holds a tuple, a view and often a
        dict, several hundred bytes for a batch of one, against about 70 bytes as columns.
        """
        assert self._trace is not None
        entries, self._trace_pending = self._trace_pending, []
        if entries:
            self._trace.append(_trace_columns(entries))

    def _trace_table(self) -> dict[str, np.ndarray]:
        """The traced records as columns (TRACE_COLUMNS)."""
        self._trace_chunk()
        chunks = self._trace or [_trace_columns([])]
        self._trace = []
        table = {}
        for name in TRACE_COLUMNS:  # a column at a time, its chunks freed: never two copies of all
            table[name] = np.concatenate([c.pop(name) for c in chunks])
        return table

    # ------------------------------------------------------------------ reading
    def close(self) -> OutcomeTotals:
        """Fold everything, check conservation, and return the totals."""
        self.fold()
        for m in range(self._closed_minutes, self.nb):
            self._close_minute(m)
        self._closed_minutes = self.nb
        by_state = self._per_minute.sum(axis=2).round().astype(np.int64) + self._census
        total = by_state.sum(axis=1)
        for i, consumer in enumerate(self.consumers):
            if total[i] != self._arrived[i]:
                raise ConservationError(
                    f"{consumer.label}: {self._arrived[i]} records arrived but {total[i]} are accounted for "
                    f"({dict(zip([s.name for s in RecordState], by_state[i].tolist(), strict=True))})"
                )
        trace = self._trace_table() if self._trace is not None else None
        exact = None
        if self._exact is not None:
            exact = np.concatenate(self._exact) if self._exact else np.empty(0)
        return OutcomeTotals(
            consumers=self.consumers,
            arrived=self._arrived.copy(),
            by_state=by_state,
            per_minute=self._per_minute,
            steady_histogram=self._steady_hist,
            steady_exact=exact,
            steady_count=self._steady_count,
            steady_sum=self._steady_sum,
            steady_max=self._steady_max if self._steady_count else np.nan,
            steady_done=self._steady_done,
            minute_p50=self._p50,
            minute_p99=self._p99,
            steady_parts=self._steady_parts.copy(),
            minute_parts=self._minute_parts,
            minute_done=self._per_minute[:, _SUCCEEDED, :].sum(axis=0),
            trace=trace,
        )


_TraceEntry = tuple[int, np.ndarray, Any, int, Any, "dict[str, Any] | None", "Timing | None"]


def _latency_parts(
    ends: list[_PendingEnd], sizes: np.ndarray, sent: np.ndarray, done: np.ndarray
) -> np.ndarray:
    """Each success's latency split into LATENCY_PARTS: a (parts, records) array, rows summing to it."""
    timings = [e[6] for e in ends]
    assert all(t is not None for t in timings), "a success without its timing"

    def per_record(k: int) -> np.ndarray:
        values = [t[k] for t in timings]  # type: ignore[index]
        if all(not isinstance(v, np.ndarray) for v in values):
            return np.repeat(np.asarray(values, dtype=float), sizes)
        return np.concatenate(
            [
                np.asarray(v, dtype=float) if isinstance(v, np.ndarray) else np.full(int(n), v)
                for v, n in zip(values, sizes.tolist(), strict=True)
            ]
        )

    first, received, ready, start, init = (per_record(k) for k in range(5))
    parts = np.empty((_PARTS, sent.shape[0]))
    parts[0] = first - sent
    parts[1] = received - first
    parts[2] = ready - received
    parts[3] = start - ready
    parts[4] = init
    parts[5] = done - start - init
    return parts


def _trace_columns(entries: list[_TraceEntry]) -> dict[str, np.ndarray]:
    """Record ends kept as given, ``(consumer, sent, done, state, ids, detail)``, as TRACE_COLUMNS."""
    count = len(entries)
    sizes = np.fromiter((e[1].shape[0] for e in entries), dtype=np.int64, count=count)

    def repeated(values: list[Any], dtype: Any) -> np.ndarray:
        return np.repeat(np.asarray(values, dtype=dtype), sizes)

    def column(values: list[Any], default: float, dtype: Any) -> np.ndarray:
        if all(v is None or np.isscalar(v) for v in values):  # one value per entry: repeat it
            return repeated([default if v is None else v for v in values], dtype)
        parts = [
            np.broadcast_to(np.asarray(default if v is None else v, dtype=dtype), (int(n),))
            for v, n in zip(values, sizes, strict=True)
        ]
        return np.concatenate(parts)

    def id_part(ids: slice | np.ndarray | None, n: int) -> np.ndarray:
        if isinstance(ids, slice):
            return np.arange(ids.start, ids.stop, ids.step or 1, dtype=np.int64)
        return np.full(n, -1, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)

    details = [e[5] or {} for e in entries]
    ids = [id_part(e[4], int(n)) for e, n in zip(entries, sizes, strict=True)]
    sent = [np.asarray(e[1], dtype=float) for e in entries]
    # Each success's latency parts (NaN for every other record).
    parts = np.full((_PARTS, int(sizes.sum())), math.nan)
    timed = [i for i, e in enumerate(entries) if e[6] is not None]
    if timed:
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        rows = np.concatenate([np.arange(starts[i], starts[i] + sizes[i]) for i in timed])
        ends: list[_PendingEnd] = [entries[i] for i in timed]
        done = np.concatenate(
            [
                np.broadcast_to(np.asarray(e[2], dtype=float), (int(sizes[i]),))
                for i, e in zip(timed, ends, strict=True)
            ]
        )
        parts[:, rows] = _latency_parts(ends, sizes[timed], np.concatenate([sent[i] for i in timed]), done)
    return {
        "consumer": repeated([e[0] for e in entries], np.int32),
        "id": np.concatenate(ids) if ids else np.empty(0, dtype=np.int64),
        "sent_s": np.concatenate(sent) if sent else np.empty(0),
        "done_s": column([e[2] for e in entries], np.nan, float),
        "state": repeated([e[3] for e in entries], np.int8),
        "receives": column([d.get("receives") for d in details], -1, np.int32),
        "shard": column([d.get("shard") for d in details], -1, np.int32),
        "key": column([d.get("key") for d in details], -1, np.int64),
        "stored_s": column([d.get("stored_s") for d in details], np.nan, float),
        "poison_draw": column([d.get("poison_draw") for d in details], np.nan, float),
        **{f"{part}_s": parts[k] for k, part in enumerate(LATENCY_PARTS)},
    }
