"""Event filtering on a stream mapping's lanes: which records of a batch's range are sent.

A stream mapping reads every record (GetRecords, read throughput and IteratorAge do not change);
records its filter rejects are skipped: they never count toward ``batch_size`` or the payload, and
they end FILTERED when the checkpoint passes them, with the batch whose range they lie in or, ahead
of any matching record, as soon as the lane reaches them (docs/model.md §15). Here: the records'
keys and positions counted in matching records (pure functions), and :class:`FilteredLanes`, the
part of a stream mapping that forms batches of matching records (mixed into
:class:`~esmsim.model.stream_mapping.StreamMappingRuntime`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import simpy

from esmsim.events import RecordState
from esmsim.model.filtering import RecordFilter, attributes_of_spec, record_filter
from esmsim.model.invoke import PAYLOAD_LIMIT_BYTES, fit_payload
from esmsim.model.stream_lanes import Lane
from esmsim.model.stream_source import StreamSource
from esmsim.rng import Streams
from esmsim.scenario.mappings import StreamMapping

#: A record's key for the filter: its shard in the high bits, its sequence number (shard log
#: position) in the low ones, so it is unique within the source and the same on every read.
_SEQ_BITS = 40


def filter_keys(shard: int, seq: np.ndarray) -> np.ndarray:
    """The filter keys of records ``seq`` of ``shard``."""
    return (np.int64(shard) << np.int64(_SEQ_BITS)) + seq.astype(np.int64, copy=False)


def matching_offset(match: np.ndarray, k: int) -> int:
    """The offset just past the ``k``-th matching record (``len(match)`` if fewer match; 0 for k=0)."""
    if k <= 0:
        return 0
    hits = np.flatnonzero(match)
    return int(hits[k - 1]) + 1 if hits.shape[0] >= k else int(match.shape[0])


def first_failed_offset(match: np.ndarray, done: int) -> int:
    """Where a partial batch response resumes: the offset of matching record number ``done``.

    ``done`` counts the leading matching records that succeeded (the checkpoint of the records
    sent); every record before the first failed one, filtered or not, is passed.
    """
    hits = np.flatnonzero(match)
    return int(hits[done]) if done < hits.shape[0] else int(match.shape[0])


def bisect_matching(start: int, match: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """Split a batch at ``start`` with records ``match`` in two halves of its matching records.

    The first half has the more of them when their number is odd, as an unfiltered split has.
    """
    hits = np.flatnonzero(match)
    n = hits.shape[0]
    middle = start + int(hits[(n + 1) // 2 - 1]) + 1
    return (start, middle), (middle, start + int(match.shape[0]))


class FilteredLanes:
    """Batches of a filtered stream mapping's lanes (mixed into ``StreamMappingRuntime``).

    A lane's records carry a ``match`` column: True until a filter rejects them. The runtime keeps
    the filter in effect in ``filter`` and ``filtering`` True once any filter was used (records of
    earlier batches keep its decisions).
    """

    # State and steps the runtime owns (see StreamMappingRuntime).
    env: simpy.Environment
    spec: StreamMapping
    index: int
    source: StreamSource
    expansion: float
    overhead: float
    _streams: Streams
    filter: RecordFilter | None
    filtering: bool

    def _finish(
        self, lane: Lane[Any], start: int, end: int, state: RecordState, at: float, batch: Any = None
    ) -> None:
        raise NotImplementedError  # StreamMappingRuntime's: records [start, end) reached ``state``

    def _open_batch(self, lane: Lane[Any], stop: int) -> Any:
        raise NotImplementedError  # StreamMappingRuntime's: the lane's next batch, up to ``stop``

    def _filter_of(self, spec: StreamMapping) -> RecordFilter | None:
        """The filter of ``spec`` on this mapping's stream (None: every record matches)."""
        return record_filter(
            spec.filter,
            attributes_of_spec(self.source.spec),
            source=self.source.name,
            mapping=self.index,
            streams=self._streams,
        )

    def finish_filtered(self, lane: Lane[Any], batch: Any) -> None:
        """A batch left with no matching record (the rest expired or aged out): the checkpoint passes it."""
        self._finish(lane, batch.start, batch.end, RecordState.FILTERED, self.env.now)
        lane.pending.popleft()
        lane.release_finished()

    def _next_filtered(
        self, lane: Lane[Any], fetched: int, window_end: float, now: float
    ) -> Any | simpy.Event:
        """The lane's next batch with a filter, or the event to wait for.

        ``fetched`` records from the lane's position are in hand. Rejected records ahead of the
        first matching one are passed at once (the lane holds no batch, so its checkpoint moves
        past them); a batch closes on ``batch_size`` matching records, the payload of the matching
        ones, or the window.
        """
        assert self.filter is not None
        fifo = lane.fifo
        start = lane.pos
        match = self.filter.matches(filter_keys(lane.shard, fifo.column("seq", start, start + fetched)))
        lead = int(np.argmax(match)) if match.any() else fetched
        if lead:
            fifo.column("match", start, start + lead)[:] = False
            self._finish(lane, start, start + lead, RecordState.FILTERED, now)
            lane.pos = start = start + lead
            lane.release_finished()
            match = match[lead:]
            fetched -= lead
            if not fetched:
                return lane.reader.wait(lane, start, math.inf, now)
        batch_size = self.spec.batch_size
        n = matching_offset(match, batch_size)  # through the batch_size-th matching record
        full = int(np.count_nonzero(match[:n])) >= batch_size
        n, capped = self._fit_matching(lane, start, match[:n])
        if full or capped or now >= window_end:
            fifo.column("match", start, start + n)[:] = match[:n]
            return self._open_batch(lane, start + n)
        # At least the missing matching records are still to come: wait for as many more.
        missing = batch_size - int(np.count_nonzero(match))
        return lane.reader.wait(lane, start + fetched + missing - 1, window_end, now)

    def _fit_matching(self, lane: Lane[Any], start: int, match: np.ndarray) -> tuple[int, bool]:
        """How many records from ``start`` fit the 6 MB payload counting the matching ones only."""
        n = int(match.shape[0])
        per_record_max = self.source.max_size * self.expansion + self.overhead
        if int(np.count_nonzero(match)) * per_record_max <= PAYLOAD_LIMIT_BYTES:
            return n, False
        sizes = (lane.fifo.column("size", start, start + n) * self.expansion + self.overhead) * match
        fits, _, capped = fit_payload(np.cumsum(sizes), PAYLOAD_LIMIT_BYTES)
        return max(1, fits), capped
