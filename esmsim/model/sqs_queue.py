"""An SQS standard queue: visible messages, in-flight batches, visibility timeouts, DLQ, retention.

Messages are rows of a :class:`RecordTable`. Fresh messages are the rows from ``head`` on, visible
from their arrival (plus the queue's delivery delay). A receive takes a slice of rows; the batch it
forms carries its visibility deadline. Success deletes the rows. Anything not deleted when the
deadline passes becomes visible again (or goes to the DLQ once it has been received
``max_receive_count`` times, or expires once older than the retention period). All of this happens
lazily, when somebody next looks at the queue, with timestamps exact to the event: no SimPy event
is spent on a message.

Visible messages are received oldest first: redelivered ones (which were received before any
message still waiting) ahead of fresh ones. Waiting pollers (long polls, batching windows) live in
:mod:`esmsim.model.sqs_receive`.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque

import numpy as np

from esmsim.model.records import DLQ, EXPIRED, SUCCEEDED, Ids, RecordTable, as_array, count
from esmsim.observe import Level

#: Lambda's synchronous invocation payload limit, which caps a batch (docs/model.md §3).
PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024
#: Messages per DeleteMessageBatch / ReceiveMessage call.
SQS_BATCH_API_MAX = 10


class Batch:
    """Messages handed to one poller in one receive, with their shared visibility deadline."""

    __slots__ = ("ids", "n", "nbytes", "received_at", "released", "visible_at")

    def __init__(self, ids: Ids, n: int, nbytes: float, received_at: float, visible_at: float):
        self.ids = ids
        self.n = n
        self.nbytes = nbytes
        self.received_at = received_at
        self.visible_at = visible_at
        self.released = False  # its visibility deadline is pending: undeleted rows will reappear

    def index(self) -> np.ndarray:
        """The batch's rows as an index array."""
        ids = self.ids
        return np.arange(ids.start, ids.stop, ids.step or 1) if isinstance(ids, slice) else ids


class QueueCounts:
    """Per-minute API and message counts of a queue, summed in place (one list per counter)."""

    NAMES = ("received", "receives", "empty_receives", "receive_units", "deletes", "dlq_writes")

    def __init__(self, minutes: int, period_s: float = 60.0) -> None:
        self.per_s = 1.0 / period_s
        self.last = minutes - 1
        size = minutes + 1  # plus one bin for events at the very end of the run
        self.received = [0.0] * size  # messages received (NumberOfMessagesReceived)
        self.receives = [0.0] * size  # ReceiveMessage calls that returned messages
        self.empty_receives = [0.0] * size  # long polls that returned nothing
        self.receive_units = [0.0] * size  # billed ReceiveMessage requests (64 KB chunks)
        self.deletes = [0.0] * size  # DeleteMessageBatch calls
        self.dlq_writes = [0.0] * size  # messages redriven to the dead-letter queue

    def minute(self, at: float) -> int:
        """The bin of time ``at`` (the end of the run falls in a spare bin folded into the last)."""
        return int(at * self.per_s)

    def array(self, name: str) -> np.ndarray:
        """One counter per minute."""
        values = np.asarray(getattr(self, name), dtype=float)
        values[self.last] += values[self.last + 1 :].sum()
        return values[: self.last + 1]

    def total(self, name: str) -> float:
        """One counter over the run."""
        return float(sum(getattr(self, name)))


class SqsQueue:
    """State of one SQS standard queue."""

    def __init__(
        self,
        name: str,
        records: RecordTable,
        *,
        visibility_timeout_s: float,
        retention_s: float,
        max_receive_count: int | None,
        delivery_delay_s: float = 0.0,
        chunk_bytes: float = 65536.0,
        record_overhead: float = 0.0,
        minutes: int = 1,
    ) -> None:
        self.name = name
        self.rec = records
        self.visibility_timeout_s = visibility_timeout_s
        self.retention_s = retention_s
        self.max_receive_count = max_receive_count or 0
        self.chunk_bytes = chunk_bytes
        n = len(records)
        #: When each message first becomes visible (arrival plus delivery delay), sorted.
        self.visible_from = records.arrival_at + delivery_delay_s if delivery_delay_s else records.arrival_at
        self.head = 0  # first fresh row never received
        self.max_size = float(records.size.max()) if n else 0.0
        #: Bytes of event metadata per record counted toward the payload cap.
        self.overhead = record_overhead
        #: Running payload bytes (record plus metadata) of rows 0..i: any run's payload in two look-ups.
        self.cum_payload = np.cumsum(records.size + record_overhead)
        self.redelivered: deque[np.ndarray] = deque()  # visible again after a visibility timeout
        self.n_redelivered = 0
        self._deadlines: list[tuple[float, int, Batch]] = []
        self._seq = 0
        self._oldest = 0
        self._arrived = 0  # cache of arrived(): rows visible before _next_visible
        self._next_visible = float(self.visible_from[0]) if n else math.inf
        self._retention_watermark = (float(records.arrival_at[0]) if n else math.inf) + retention_s
        #: (time, change of visible messages, change of in-flight messages), one per batch-level event.
        self.flows: list[tuple[float, float, float]] = []
        self.counts = QueueCounts(minutes)
        self.overrun_batches = 0  # batches whose visibility timeout passed before they finished
        self._never_received: list[slice] = []  # fresh rows that expired while waiting
        self._expired_redelivered: list[np.ndarray] = []  # expiry times of redelivered rows

    # ----------------------------------------------------------------------------- looking
    def refresh(self, now: float) -> None:
        """Apply everything due by ``now``: visibility deadlines, then retention."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            self._return(heapq.heappop(deadlines)[2])
        if now >= self._retention_watermark:
            self._expire_due(now)

    def arrived(self, now: float) -> int:
        """Rows that have become visible by ``now`` (received or not)."""
        if now < self._next_visible:
            return self._arrived
        arrived = self._arrived + 1  # usually exactly one more arrival since the last look
        if arrived < len(self.visible_from) and self.visible_from[arrived] <= now:
            arrived = int(self.visible_from.searchsorted(now, side="right"))
        self._arrived = arrived
        self._next_visible = (
            float(self.visible_from[arrived]) if arrived < len(self.visible_from) else math.inf
        )
        return arrived

    def visible(self, now: float) -> int:
        """Messages a receive would find right now (call :meth:`refresh` first)."""
        return self.arrived(now) - self.head + self.n_redelivered

    def next_fresh_at(self) -> float:
        """When the next never-received message becomes visible (``inf`` when there is none)."""
        return float(self.visible_from[self.head]) if self.head < len(self.visible_from) else math.inf

    def next_deadline(self) -> float:
        """The earliest pending visibility deadline (``inf`` when none)."""
        return self._deadlines[0][0] if self._deadlines else math.inf

    def oldest_age(self, now: float) -> float:
        """Age of the oldest message not yet deleted, dead-lettered or expired (0 when empty)."""
        arrived = self.arrived(now)
        start = self._oldest
        if start < arrived:
            pending = np.flatnonzero(self.rec.state[start:arrived] < SUCCEEDED)
            # Rows before the first pending one are finished for good: never look at them again.
            self._oldest = start + (int(pending[0]) if pending.size else arrived - start)
        if self._oldest < arrived:
            return now - float(self.rec.arrival_at[self._oldest])
        return 0.0

    # ----------------------------------------------------------------------------- receiving
    def take(self, now: float, max_n: int, bytes_left: float) -> tuple[list[Ids], int, float, bool]:
        """Receive up to ``max_n`` visible messages fitting in ``bytes_left`` (redeliveries first).

        Returns the parts taken, their count, their payload bytes (records plus per-record event
        metadata) and whether the payload cap stopped the take. :meth:`form_batch` turns parts into
        an in-flight batch.
        """
        parts: list[Ids] = []
        n = 0
        nbytes = 0.0
        capped = False
        while self.n_redelivered and n < max_n and not capped:
            pool = self.redelivered[0]
            k, part_bytes, capped = self._fit(self.rec.size[pool[: max_n - n]], bytes_left - nbytes)
            if k == 0:
                break
            if k == pool.size:
                self.redelivered.popleft()
            else:
                self.redelivered[0] = pool[k:]
            self.n_redelivered -= k
            parts.append(pool[:k])
            n += k
            nbytes += part_bytes
            self.flows.append((now, -k, k))
        if n < max_n and not capped:
            start = self.head
            k = min(max_n - n, self.arrived(now) - start)
            if k > 0:
                # Prefix sums put the payload of any run of fresh rows two look-ups away.
                cum = self.cum_payload
                before = float(cum[start - 1]) if start else 0.0
                if k * (self.max_size + self.overhead) > bytes_left - nbytes:
                    fits = int(cum.searchsorted(before + bytes_left - nbytes, side="right")) - start
                    capped = fits < k
                    k = min(k, fits)
                if k > 0:
                    parts.append(slice(start, start + k))
                    self.head = start + k
                    n += k
                    nbytes += float(cum[start + k - 1]) - before
                    self.flows.append((now, -k, k))
        return parts, n, nbytes, capped

    def _fit(self, sizes: np.ndarray, bytes_left: float) -> tuple[int, float, bool]:
        """How many of ``sizes`` fit in ``bytes_left``; their bytes; whether the cap stopped it."""
        if sizes.size == 0:
            return 0, 0.0, False
        cumulative = np.cumsum(sizes + self.overhead)
        k = int(cumulative.searchsorted(bytes_left, side="right"))
        return k, float(cumulative[k - 1]) if k else 0.0, k < sizes.size

    def payload(self, part: Ids) -> float:
        """Payload bytes (with event metadata) of a part."""
        if isinstance(part, slice) and (part.step or 1) == 1:
            cum = self.cum_payload
            return float(cum[part.stop - 1] - (cum[part.start - 1] if part.start else 0.0))
        return float(self.rec.size[part].sum()) + count(part) * self.overhead

    def form_batch(self, parts: list[Ids], n: int, nbytes: float, received_at: float) -> Batch:
        """Turn received parts into a batch whose visibility timeout runs from ``received_at``.

        Its deadline is not scheduled yet: most batches are deleted before it, and a deadline only
        matters once the poller lets go of a batch with rows undeleted (:meth:`release`).
        """
        batch = Batch(as_array(parts), n, nbytes, received_at, received_at + self.visibility_timeout_s)
        self.counts.received[int(received_at * self.counts.per_s)] += n
        return batch

    def release(self, batch: Batch) -> None:
        """Rows of ``batch`` not deleted by its deadline reappear then (or dead-letter, or expire).

        Called when the poller gives up a batch (a function error, a throttled batch it stops
        retrying) or knows it will still be running when the visibility timeout ends.
        """
        if not batch.released:
            batch.released = True
            self._seq += 1
            heapq.heappush(self._deadlines, (batch.visible_at, self._seq, batch))

    def count_receives(self, now: float, calls: int, empty_calls: int, nbytes: float) -> None:
        """Account ReceiveMessage calls: those that returned messages, and empty long polls."""
        counts = self.counts
        m = int(now * counts.per_s)
        if calls:
            counts.receives[m] += calls
            counts.receive_units[m] += max(calls, math.ceil(nbytes / self.chunk_bytes))
        if empty_calls:
            counts.empty_receives[m] += empty_calls
            counts.receive_units[m] += empty_calls

    # ----------------------------------------------------------------------------- finishing
    def complete(self, batch: Batch, now: float, failed: np.ndarray | None) -> None:
        """Delete a processed batch's messages, except ``failed`` (a boolean mask over the batch).

        Failed messages stay in flight until the batch's visibility deadline.
        """
        if now >= batch.visible_at:
            self._complete_overrun(batch, now, failed)
            return
        rec = self.rec
        if failed is None:
            done: Ids = batch.ids
            n_done = batch.n
        else:
            kept = batch.index()[~failed]
            done, n_done = kept, int(kept.shape[0])
            self.release(batch)  # the failed rows reappear at the deadline
        if n_done:
            rec.state[done] = SUCCEEDED
            rec.done_at[done] = now
            self.flows.append((now, 0, -n_done))
            self.counts.deletes[int(now * self.counts.per_s)] += math.ceil(n_done / SQS_BATCH_API_MAX)

    def _complete_overrun(self, batch: Batch, now: float, failed: np.ndarray | None) -> None:
        """The visibility timeout passed before the batch finished: its rows are visible again.

        SQS deletes with the batch's receipt handle only what nobody received since: the rows still
        waiting in the queue. Rows another poller holds now carry a newer receipt; the delete of
        them is ignored and they will be processed again (at-least-once delivery).
        """
        self.overrun_batches += 1
        self.refresh(now)
        rows = batch.index() if failed is None else batch.index()[~failed]
        waiting = [pool[np.isin(pool, rows)] for pool in self.redelivered]
        visible_again = np.concatenate(waiting) if waiting else np.empty(0, dtype=np.int64)
        if visible_again.size:
            self.rec.state[visible_again] = SUCCEEDED
            self.rec.done_at[visible_again] = now
            kept = (pool[~np.isin(pool, visible_again)] for pool in self.redelivered)
            self.redelivered = deque(pool for pool in kept if pool.size)
            self.n_redelivered -= int(visible_again.size)
            self.flows.append((now, -int(visible_again.size), 0))
            self.counts.deletes[int(now * self.counts.per_s)] += math.ceil(
                visible_again.size / SQS_BATCH_API_MAX
            )

    def _return(self, batch: Batch) -> None:
        """A batch's visibility deadline passed: undeleted messages reappear, dead-letter or expire."""
        rec = self.rec
        at = batch.visible_at
        rows = batch.index()
        rows = rows[rec.state[rows] < SUCCEEDED]
        if rows.size == 0:
            return
        self.flows.append((at, 0, -int(rows.size)))
        expiry = rec.arrival_at[rows] + self.retention_s
        old = expiry <= at
        if old.any():
            rec.state[rows[old]] = EXPIRED
            rec.done_at[rows[old]] = expiry[old]
            rows = rows[~old]
        if self.max_receive_count:
            # Received retries + 1 times by now: SQS redrives once that reaches maxReceiveCount.
            dead = rec.retries[rows] + 1 >= self.max_receive_count
            if dead.any():
                rec.state[rows[dead]] = DLQ
                rec.done_at[rows[dead]] = at
                self.counts.dlq_writes[self.counts.minute(at)] += int(dead.sum())
                rows = rows[~dead]
        if rows.size:
            rec.retries[rows] += 1
            self.redelivered.append(rows)
            self.n_redelivered += int(rows.size)
            self.flows.append((at, int(rows.size), 0))
            oldest = float(rec.arrival_at[rows].min()) + self.retention_s
            self._retention_watermark = min(self._retention_watermark, oldest)

    def _expire_due(self, now: float) -> None:
        rec = self.rec
        cutoff = now - self.retention_s
        arrival_at = rec.arrival_at
        if self.head < len(arrival_at) and arrival_at[self.head] <= cutoff:
            stop = int(arrival_at.searchsorted(cutoff, side="right"))
            part = slice(self.head, stop)
            rec.state[part] = EXPIRED
            rec.done_at[part] = arrival_at[part] + self.retention_s
            self._never_received.append(part)
            self.head = stop
        if self.n_redelivered:
            kept: deque[np.ndarray] = deque()
            for pool in self.redelivered:
                expiry = arrival_at[pool] + self.retention_s
                old = expiry <= now
                if old.any():
                    rec.state[pool[old]] = EXPIRED
                    rec.done_at[pool[old]] = expiry[old]
                    self._expired_redelivered.append(expiry[old])
                    pool = pool[~old]
                if pool.size:
                    kept.append(pool)
            self.redelivered = kept
            self.n_redelivered = sum(int(pool.size) for pool in kept)
        # Nothing can expire before the oldest waiting message does (head only moves forward).
        oldest = [float(arrival_at[self.head])] if self.head < len(arrival_at) else []
        oldest += [float(arrival_at[pool].min()) for pool in self.redelivered]
        self._retention_watermark = min(oldest, default=math.inf) + self.retention_s

    def finish(self, end: float) -> None:
        """Close the books at the end of the run (deadlines and expiry up to ``end``)."""
        self.refresh(end)

    def levels(self, end: float) -> tuple[Level, Level]:
        """Visible and in-flight levels: the batch-level changes plus per-record sorted components.

        A fresh message is visible from its arrival until a receive takes it (a batch-level change),
        unless a poller was waiting for it (``dealt``): then it was in flight from its arrival. One
        that expired without ever being received leaves the visible count when it expires.
        """
        rec = self.rec
        arrived = self.arrived(end)
        dealt = rec.dealt[:arrived]
        visible, in_flight = Level(), Level()
        if self.flows:
            flat = np.fromiter(
                itertools.chain.from_iterable(self.flows), dtype=float, count=3 * len(self.flows)
            )
            flows = flat.reshape(-1, 3)
            visible.add_many(flows[:, 0], flows[:, 1])
            in_flight.add_many(flows[:, 0], flows[:, 2])
        visible.add_sorted(self.visible_from[:arrived][~dealt], +1)
        in_flight.add_sorted(self.visible_from[:arrived][dealt], +1)
        for part in self._never_received:
            visible.add_sorted(rec.done_at[part], -1)
        if self._expired_redelivered:
            visible.add_many(np.concatenate(self._expired_redelivered), -1.0)
        return visible, in_flight


def chunked_request_units(sizes: np.ndarray, chunk_bytes: float) -> int:
    """Billed requests for sending messages one per call: each 64 KB of payload is a request."""
    return int(np.maximum(1, np.ceil(sizes / chunk_bytes)).sum())
