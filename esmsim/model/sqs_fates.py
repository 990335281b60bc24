"""What becomes of received SQS messages: deleted, visible again, dead-lettered or expired.

:class:`MessageFates` is the part of :class:`esmsim.model.sqs_queue.SqsQueue` that owns visibility
deadlines: a batch's undeleted messages reappear when its deadline passes (or go to the DLQ once
received ``max_receive_count`` times, or expire once older than the retention period), a late
delete only removes what nobody received since, SQS deletes what outlives its retention, and a
poller collecting a window longer than the visibility timeout receives its messages again.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import simpy

from esmsim.events import RecordState
from esmsim.model.alarm import Alarm
from esmsim.model.records import RecordFifo
from esmsim.model.sqs_messages import Batch, Messages
from esmsim.observe.outcomes import Outcomes
from esmsim.observe.recorder import Recorder


class FilteredPart(Protocol):
    """What a queue asks of its messages that do not match its mapping's filter.

    :class:`esmsim.model.sqs_filtered.FilteredMessages` works on the queue itself, so the queue
    and its fates name it by this protocol and the imports flow one way.
    """

    def split(self, block: dict[str, np.ndarray], top: int) -> np.ndarray | None:
        """Keep the block's non-matching messages; the mask of the matching ones (None: all)."""

    def post_until(self, until: float) -> None:
        """Before a level folds: settle what left by ``until``."""

    def refresh(self, now: float, head: int | None = None) -> None:
        """Let go of the non-matching messages the pollers have passed by ``now``."""

    def advance(self, now: float, old_head: int, new_head: int) -> None:
        """The queue's head moved: the non-matching messages before it leave."""

    def finish(self, end: float) -> None:
        """At the end of the run: count what is still waiting."""

    def oldest_sent_at(self, now: float) -> float:
        """The oldest non-matching message waiting and visible at ``now`` (``inf``: none)."""

    def pause(self, now: float) -> None:
        """The mapping is disabled at ``now``: nobody receives, so nothing leaves as filtered."""

    def resume(self, now: float) -> None:
        """The mapping is enabled again at ``now``: its receives take the waiting ones from then."""


#: Messages per DeleteMessageBatch / ReceiveMessage call.
SQS_BATCH_API_MAX = 10

_SUCCEEDED, _DLQ, _EXPIRED = RecordState.SUCCEEDED, RecordState.DLQ, RecordState.EXPIRED
_SUCCEEDED_INT = int(_SUCCEEDED)  # as Outcomes keeps states (per batch: no conversion)


class MessageFates:
    """Deletes, visibility deadlines, redrive and retention of one queue (mixed into SqsQueue)."""

    # State the queue owns (see SqsQueue.__init__).
    env: simpy.Environment
    recorder: Recorder
    outcomes: Outcomes
    consumer: int
    fifo: RecordFifo
    head: int
    redelivered: deque[Messages]
    n_redelivered: int
    in_flight: dict[int, Batch]
    retention_s: float
    max_receive_count: int
    overrun_batches: int
    draws: bool
    _deadlines: list[tuple[float, int, Batch]]
    _retention_watermark: float
    _expiry: Alarm
    in_flight_level: Any
    in_flight_n: int
    over_limit_receives: int
    _post_in_flight: Callable[[tuple[float, float]], None]
    _post_deletes: Callable[[tuple[float, float]], None]
    _post_delete_calls: Callable[[tuple[float, float]], None]
    _post_received: Callable[[tuple[float, float]], None]
    visibility_timeout_s: float
    overhead: float
    filtered: FilteredPart | None

    def refresh(self, now: float) -> None:
        """Apply everything due by ``now``: visibility deadlines, then retention."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            self._return(heapq.heappop(deadlines)[2], now)
        if now >= self._retention_watermark:
            self._expire_due(now)
        if self.filtered is not None:
            self.filtered.refresh(now)

    def next_deadline(self) -> float:
        """The earliest pending visibility deadline (``inf`` when none)."""
        return self._deadlines[0][0] if self._deadlines else math.inf

    def release(self, batch: Batch) -> None:
        """Rows of ``batch`` not deleted by its deadline reappear then (or dead-letter, or expire).

        Called when the poller gives up a batch (a function error, a throttled batch it stops
        retrying) or knows it will still be running when the visibility timeout ends.
        """
        if not batch.released:
            batch.released = True
            heapq.heappush(self._deadlines, (batch.visible_at, batch.serial, batch))

    def complete(self, batch: Batch, now: float, failed: np.ndarray | None) -> None:
        """Delete a processed batch's messages, except ``failed`` (a boolean mask over the batch).

        Failed messages stay in flight until their visibility deadlines.
        """
        if now >= batch.visible_at:
            self._complete_overrun(batch, now, failed)
            return
        messages = batch.messages
        if failed is None:
            del self.in_flight[batch.serial]
            n = batch.n
            self._delete(messages, now, n, batch)
        else:
            done = messages.select(~failed)
            self._keep(batch, failed)
            self.release(batch)  # the failed rows reappear at their deadlines
            n = len(done)
            self._delete(done, now, n, batch)
        self._post_in_flight((now, -n))
        self.in_flight_n -= n

    @staticmethod
    def _keep(batch: Batch, which: np.ndarray) -> None:
        """Narrow ``batch`` to the messages at ``which`` (a mask over its messages), all still held."""
        batch.messages = batch.messages.select(which)
        batch.n = len(batch.messages)
        if batch.deadlines is not None:
            batch.deadlines = batch.deadlines[which]
            batch.visible_at = float(batch.deadlines.min())
        batch.returned = None

    def _delete(self, done: Messages, now: float, n: int, batch: Batch, held: int = 1) -> None:
        """Delete ``done``, processed in ``batch``'s invocation.

        ``held`` is 1 when a poller holds them (a receive still in progress).
        """
        if n:
            timing = done.timing(batch.ready_at, batch.start_at, batch.init_s)
            if self.outcomes.tracing:
                self.outcomes.ended(
                    self.consumer,
                    done.sent_at,
                    now,
                    _SUCCEEDED,
                    ids=done.ids,
                    detail=done.detail(held),
                    timing=timing,
                )
            else:
                self.outcomes.ended(self.consumer, done.sent_at, now, _SUCCEEDED_INT, timing=timing)
            self._post_deletes((now, n))
            self._post_delete_calls((now, -(-n // SQS_BATCH_API_MAX)))  # ceil(n / 10), in ints

    def _complete_overrun(self, batch: Batch, now: float, failed: np.ndarray | None) -> None:
        """A visibility timeout of the batch passed before it finished: those rows are visible again.

        Rows whose deadline has not passed are still held by the batch's receipts and are deleted
        as usual. Of the rows visible again, SQS deletes with the batch's receipt handle only what
        nobody received since: the rows still waiting in the queue. Rows another poller holds now
        carry a newer receipt; the delete of them is ignored and they will be processed again
        (at-least-once delivery).
        """
        self.overrun_batches += 1
        self.refresh(now)  # every row due by now is back in the queue
        ok = np.ones(batch.n, dtype=bool) if failed is None else ~failed
        if batch.serial in self.in_flight:
            held = batch.held()
            if held is None:
                held = np.ones(batch.n, dtype=bool)
        else:
            held = np.zeros(batch.n, dtype=bool)
        ids = batch.messages.ids
        visible_again = ok & ~held
        stale = ids[visible_again]
        # Receives each row had when this batch received it (read before the batch is narrowed).
        receives = batch.messages.retries[visible_again]
        done = ok & held
        if done.any():
            n = int(np.count_nonzero(done))
            self._delete(batch.messages.select(done), now, n, batch)
            self._post_in_flight((now, -n))
            self.in_flight_n -= n
        still = held & ~ok
        if still.any():
            self._keep(batch, still)  # failed rows still held: they reappear at their deadlines
            self.release(batch)
        elif batch.serial in self.in_flight:
            del self.in_flight[batch.serial]
        if not stale.size:
            return
        # A row back in the queue with exactly one receive more than this batch saw (its own) was
        # received by nobody since: the receipt still names it. One received again and returned
        # since has moved on to a newer receipt.
        order = np.argsort(stale)
        stale, receives = stale[order], receives[order]
        kept: deque[Messages] = deque()
        deleted = []
        for pool in self.redelivered:
            at = np.minimum(np.searchsorted(stale, pool.ids), stale.size - 1)
            hit = (stale[at] == pool.ids) & (pool.retries == receives[at] + 1)
            if hit.any():
                deleted.append(pool.select(hit))
                pool = pool.select(~hit)
            if len(pool):
                kept.append(pool)
        if deleted:
            gone = Messages.join(deleted)
            self.redelivered = kept
            self.n_redelivered -= len(gone)
            self._visible(now, -len(gone))
            # Waiting in the queue again: their receives are all counted already.
            self._delete(gone, now, len(gone), batch, held=0)

    def _return(self, batch: Batch, now: float) -> None:
        """Visibility deadlines of ``batch`` passed by ``now``: those messages reappear (or leave).

        A batch whose messages share one deadline returns whole; one collected over a batching
        window returns the messages due by ``now``, each at its own deadline, and waits for the
        rest.
        """
        if batch.serial not in self.in_flight:
            return  # already returned (or deleted)
        deadlines = batch.deadlines
        if deadlines is None:
            del self.in_flight[batch.serial]
            # A copy: the batch keeps its own view of its messages (receive counts, receive times)
            # for a late delete, whatever becomes of them in the queue.
            self._reappear(batch.messages.select(slice(None)), batch.visible_at)
            return
        returned = batch.returned if batch.returned is not None else np.zeros(batch.n, dtype=bool)
        due = ~returned & (deadlines <= now)
        if due.any():
            # Kept on the batch (marked returned): a late delete still names their receipts.
            self._reappear(batch.messages.select(due), deadlines[due])
            returned = returned | due
            batch.returned = returned
        if returned.all():
            del self.in_flight[batch.serial]
        else:
            heapq.heappush(self._deadlines, (float(deadlines[~returned].min()), batch.serial, batch))

    def _wait_again(self, messages: Messages) -> None:
        """Messages visible again wait in the queue (a FIFO queue keeps them by message group)."""
        self.redelivered.append(messages)
        self.n_redelivered += len(messages)

    def _reappear(self, messages: Messages, at: float | np.ndarray) -> None:
        """Received messages whose visibility timeout ended at ``at`` (one time, or one each).

        They reappear in the queue with one more receive spent, or move to the DLQ on their
        ``max_receive_count``-th receive, or expire if their retention ended meanwhile.
        """
        n = len(messages)
        if not n:
            return
        messages.remember_first()
        self.in_flight_n -= n
        many = isinstance(at, np.ndarray)
        if many:
            self.in_flight_level.add_many(at, -1.0)
        else:
            self.in_flight_level.add(at, -n)
        expiry = messages.sent_at + self.retention_s
        old = expiry <= at
        if old.any():
            gone = messages.select(old)
            self.outcomes.ended(
                self.consumer, gone.sent_at, expiry[old], _EXPIRED, ids=gone.ids, detail=gone.detail(1)
            )
            messages = messages.select(~old)
            at = at[~old] if isinstance(at, np.ndarray) else at
        if self.max_receive_count and len(messages):
            # Received retries + 1 times by now: SQS redrives once that reaches maxReceiveCount.
            dead = messages.retries + 1 >= self.max_receive_count
            if dead.any():
                gone = messages.select(dead)
                when = at[dead] if isinstance(at, np.ndarray) else at
                detail = gone.detail(1)
                self.outcomes.ended(self.consumer, gone.sent_at, when, _DLQ, ids=gone.ids, detail=detail)
                messages = messages.select(~dead)
                at = at[~dead] if isinstance(at, np.ndarray) else at
        if len(messages):
            messages.retries = messages.retries + 1
            self._wait_again(messages)
            self._visible(at, 1.0 if isinstance(at, np.ndarray) else len(messages))
            oldest = float(messages.sent_at.min()) + self.retention_s
            self._retention_watermark = min(self._retention_watermark, oldest)
            self._expiry.request(self._retention_watermark, self.env.now)

    def _expire(self, messages: Messages, now: float, held: int) -> tuple[Messages, np.ndarray | None]:
        """End the messages whose retention passed by ``now``, at the moment it passed.

        ``held`` is 1 while a poller holds them (their receive counts one more). Returns the others
        and the expiry times of those ended (None when none were).
        """
        expiry = messages.sent_at + self.retention_s
        old = expiry <= now
        if not old.any():
            return messages, None
        gone = messages.select(old)
        self.outcomes.ended(
            self.consumer, gone.sent_at, expiry[old], _EXPIRED, ids=gone.ids, detail=gone.detail(held)
        )
        return messages.select(~old), expiry[old]

    def _expire_due(self, now: float) -> None:
        fifo = self.fifo
        retention = self.retention_s
        # The retention watermark is sent + retention: the test is that sum (see expired_until).
        if self.head < fifo.top and fifo.at("sent_at", self.head) + retention <= now:
            stop = fifo.expired_until("sent_at", self.head, now, retention)
            part = slice(self.head, stop)
            sent = fifo.gather("sent_at", part)
            expiry = sent + self.retention_s
            self.outcomes.ended(
                self.consumer, sent, expiry, _EXPIRED, ids=part, detail=self._fresh_detail(part)
            )
            self.post_arrivals_through(stop)
            self._visible(expiry, -1.0)
            if self.filtered is not None:
                self.filtered.advance(now, self.head, stop)
            self.head = stop
        if self.n_redelivered:
            kept: deque[Messages] = deque()
            for pool in self.redelivered:
                pool, expired_at = self._expire(pool, now, held=0)
                if expired_at is not None:
                    self._visible(expired_at, -1.0)
                if len(pool):
                    kept.append(pool)
            self.redelivered = kept
            self.n_redelivered = sum(len(pool) for pool in kept)
        # Nothing can expire before the oldest waiting message does (head only moves forward).
        oldest = [fifo.at("sent_at", self.head)] if self.head < fifo.top else []
        oldest += [float(pool.sent_at.min()) for pool in self.redelivered]
        self._retention_watermark = min(oldest, default=math.inf) + self.retention_s
        self._expiry.request(self._retention_watermark, now)

    def finish(self, end: float) -> None:
        """Close the books at the end of the run.

        Deadlines and expiry up to ``end``, then a census of what is still waiting (in the queue)
        or in flight (in batches).
        """
        self.refresh(end)
        if self.filtered is not None:
            self.filtered.finish(end)
        fifo = self.fifo
        if self.head < fifo.top:
            part = slice(self.head, fifo.top)
            self.outcomes.census(
                self.consumer,
                fifo.gather("sent_at", part),
                RecordState.WAITING,
                ids=part,
                detail=self._fresh_detail(part),
            )
        for pool in self.redelivered:
            self.outcomes.census(self.consumer, pool.sent_at, RecordState.WAITING, pool.ids, pool.detail())
        for batch in self.in_flight.values():
            held = batch.held()
            m = batch.messages if held is None else batch.messages.select(held)
            self.outcomes.census(self.consumer, m.sent_at, RecordState.IN_FLIGHT, m.ids, m.detail(1))
        self.recorder.add_total("visibility_overruns", self.overrun_batches)
        self.recorder.add_total("sqs_over_limit_receives", self.over_limit_receives)

    def _received_again(
        self, messages: Messages, received: np.ndarray, now: float, nbytes: float
    ) -> tuple[Messages, np.ndarray, float]:
        """Messages a collecting poller held past their visibility timeout, before its batch closed.

        Each became visible again at its deadline and, the poller still polling, was received again
        at once (its receive count spent, its clock restarted), once per visibility timeout that
        passed. One that reached ``max_receive_count`` moved to the DLQ at that deadline instead;
        one whose retention ended first expired. Returns the messages left, their receive times
        and their payload bytes.
        """
        vt = self.visibility_timeout_s
        k = np.maximum(np.floor((now - received) / vt).astype(np.int64), 0)  # deadlines passed, each
        retries = messages.retries
        # The deadline at which each would leave: the first one at or after its retention ends (it
        # expires), or the one ending receive number max_receive_count (the DLQ), expiry first.
        expiry = messages.sent_at + self.retention_s
        j_expire = np.maximum(np.ceil((expiry - received) / vt), 1).astype(np.int64)
        j_dead = (
            self.max_receive_count - retries
            if self.max_receive_count
            else np.full(k.shape, np.iinfo(np.int64).max)
        )
        last = np.minimum(j_expire, j_dead)
        leave = last <= k
        expired = leave & (j_expire <= j_dead)
        dead = leave & ~expired
        again = np.where(leave, last - 1, k)  # receives that started at a deadline
        if leave.any():
            at = received + last * vt
            gone = messages.select(leave)
            gone.retries = gone.retries + again[leave]  # the receive ending at ``at`` is added below
            for mask, state, when in (
                (expired[leave], RecordState.EXPIRED, expiry),
                (dead[leave], RecordState.DLQ, at),
            ):
                if mask.any():
                    part = gone.select(mask)
                    self.outcomes.ended(
                        self.consumer,
                        part.sent_at,
                        when[leave][mask],
                        state,
                        ids=part.ids,
                        detail=part.detail(1),
                    )
            self.in_flight_level.add_many(at[leave], -1.0)
            self.in_flight_n -= int(np.count_nonzero(leave))
            nbytes -= float(messages.size[leave].sum()) + float(np.count_nonzero(leave)) * self.overhead
        # Receives beyond the batch's own (which form_batch counts for the messages that stay):
        # the re-receives, and the first receive of those that left.
        extra = int(again.sum()) + int(np.count_nonzero(leave))
        if extra:
            self._post_received((now, extra))
        stay = ~leave
        messages = messages.select(stay)
        messages.retries = retries[stay] + k[stay]
        return messages, received[stay] + k[stay] * vt, nbytes

    # Provided by SqsQueue.
    def _visible(self, at: float | np.ndarray, delta: float) -> None:
        raise NotImplementedError

    def post_arrivals_through(self, row: int) -> None:
        """Post the arrivals the queue held back of fresh rows before ``row`` (about to expire)."""
        raise NotImplementedError

    def _fresh_detail(self, part: slice) -> dict[str, Any] | None:
        raise NotImplementedError
