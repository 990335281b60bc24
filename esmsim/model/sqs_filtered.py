"""Messages of an SQS queue that its mapping's filter does not match: received, deleted, never invoked.

Lambda receives every message, deletes those its FilterCriteria rejects and batches only the
others, so a batch fills with ``batch_size`` matching messages (docs/model.md §15). The queue's
match of a message is known the moment it is sent (a hash of its key, see
:mod:`esmsim.model.filtering`), so the queue splits each block as it is generated: matching messages
become the queue's rows (what pollers receive, batch and invoke), the others wait here.

A filtered message leaves when the pollers pass it: when the receive that takes the next matching
message after it (its ``anchor``, that message's queue position) moves the queue's head past it, or
on its own arrival when the pollers have already taken every matching message before it (they are
waiting for more, so a receive returns it at once). It then counts as received and deleted
(NumberOfMessagesReceived, NumberOfMessagesDeleted, the ReceiveMessage and DeleteMessageBatch
requests billed for it) and ends FILTERED; retention removes it first if it is older than that.
While the mapping is disabled nobody receives: filtered messages wait (and expire at their
retention), and those the head has passed leave with the first receives once it is enabled again.

The key a filter hashes is the message's number in sending order within the queue (stable across
its receives); the records table names a filtered message ``FILTERED_ID_BASE`` plus that number,
since the queue's own positions number only the matching messages.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from esmsim.events import RecordState
from esmsim.model.filtering import RecordFilter
from esmsim.model.records import RecordFifo
from esmsim.model.sqs_messages import chunked_request_units

if TYPE_CHECKING:
    from esmsim.model.sqs_queue import SqsQueue

#: Trace ids of filtered messages start here (the queue's matching messages are 0, 1, ...).
FILTERED_ID_BASE = 1 << 40
#: DeleteMessageBatch takes at most 10 entries.
_DELETE_BATCH_MAX = 10


class FilteredMessages:
    """One queue's messages that do not match the filter in effect when they arrived.

    ``timeline``: ``(effective_at, filter)`` pairs in time order, the first from ``-inf``; a live
    change of the mapping's filter applies to messages arriving after it takes effect (messages
    already waiting keep the decision made at their arrival).
    """

    def __init__(
        self,
        queue: SqsQueue,
        timeline: Sequence[tuple[float, RecordFilter | None]],
        *,
        max_messages: int,
        round_trip_s: float,
    ) -> None:
        self.queue = queue
        self._starts = np.array([t for t, _ in timeline], dtype=float)
        self._filters = [f for _, f in timeline]
        self.max_messages = max_messages
        self.round_trip_s = round_trip_s
        self.sent_total = 0  # messages the queue accepted so far (the next one's key)
        columns: dict[str, type] = {
            "key": np.int64,
            "sent_at": float,
            "visible_at": float,
            "size": float,
            "anchor": np.int64,
        }
        if queue.draws:
            columns["draw"] = float
        self.rows = RecordFifo(columns)
        self._posted = 0  # rows whose arrival is posted to the visible level
        self.n_filtered = 0
        self._paused = False  # the mapping is disabled: nothing is received
        self._floor = -math.inf  # no filtered message leaves before this (the last enable)

    # ------------------------------------------------------------------ arriving
    def split(self, block: dict[str, np.ndarray], top: int) -> np.ndarray | None:
        """Keep the rejected messages of ``block`` here; return the mask of the matching ones.

        None: every message matches. ``top``: the queue position the block's first matching message
        will take. The rejected ones are counted as sent and arrived here (the queue counts the rest).
        """
        sent = block["sent_at"]
        n = int(sent.shape[0])
        if n == 0:
            return None
        keys = np.arange(self.sent_total, self.sent_total + n, dtype=np.int64)
        self.sent_total += n
        queue = self.queue
        visible = sent + queue.delay_s if queue.delay_s else sent
        keep = np.ones(n, dtype=bool)
        which = np.searchsorted(self._starts, visible, side="right") - 1
        for j, flt in enumerate(self._filters):
            if flt is None:
                continue
            rows = which == j
            if rows.all():
                keep = flt.matches(keys)
            elif rows.any():
                keep[rows] = flt.matches(keys[rows])
        if keep.all():
            return None
        drop = ~keep
        columns = {
            "key": keys[drop],
            "sent_at": sent[drop],
            "visible_at": visible[drop],
            "size": block["size"][drop],
            "anchor": top + np.cumsum(keep)[drop],
        }
        if queue.draws:
            columns["draw"] = block["draw"][drop]
        self.rows.append(columns)
        m = int(columns["key"].shape[0])
        queue.outcomes.arrived(queue.consumer, m)
        queue.sent.add_many(columns["sent_at"])
        queue.recorder.add_total("sqs_send_units", chunked_request_units(columns["size"], queue.chunk_bytes))
        return keep

    # ------------------------------------------------------------------ leaving
    def pause(self, now: float) -> None:
        """The mapping is disabled at ``now``: what the pollers passed by then leaves; the rest waits."""
        self._leave(now, self.queue.head, None)
        self._paused = True

    def resume(self, now: float) -> None:
        """The mapping is enabled at ``now``: what the head passed meanwhile leaves with its receives."""
        self._paused = False
        self._floor = now

    def advance(self, now: float, old_head: int, new_head: int) -> None:
        """The queue's head moved from ``old_head`` to ``new_head`` at ``now``: pass what it passed."""
        self._leave(now, old_head, None)
        if new_head > old_head:
            self._leave(now, new_head, now)

    def refresh(self, now: float, head: int | None = None) -> None:
        """Messages arrived by ``now`` behind the head (the queue's, or ``head``) were received on arrival.

        ``head`` is given when pollers took the matching messages as they arrived (batching windows,
        a FIFO queue's waiting pool): the filtered ones among them went the same way.
        """
        self._leave(now, self.queue.head if head is None else head, None)

    def _leave(self, now: float, head: int, passed_at: float | None) -> None:
        """Messages anchored at or before ``head`` and visible by ``now`` are received and deleted.

        They leave on arrival (``passed_at`` None: the head was past them already) or at ``passed_at``.
        """
        rows = self.rows
        start, top = rows.low, rows.top
        if start >= top:
            return
        if self._paused:  # nobody receives: only retention takes them (rows are in sending order)
            k = rows.expired_until("sent_at", start, now, self.queue.retention_s) - start
            if k:
                self._post_arrivals(start + k)
                sent, expiry, ids, draw = self._columns(start, start + k)
                self._expire(sent, expiry, ids, draw, np.ones(k, dtype=bool))
                rows.drop_before(start + k)
            return
        anchor = rows.column("anchor", start, top)
        if anchor[0] > head:
            return
        visible = rows.column("visible_at", start, top)
        k = min(int(anchor.searchsorted(head, side="right")), int(visible.searchsorted(now, side="right")))
        if k == 0:
            return
        stop = start + k
        at = np.maximum(visible[:k], self._floor) if passed_at is None else np.full(k, passed_at)
        self._post_arrivals(stop)
        self._end(start, stop, at, own_receives=passed_at is None)
        rows.drop_before(stop)

    def _end(self, start: int, stop: int, at: np.ndarray, *, own_receives: bool) -> None:
        """Rows ``[start, stop)`` leave at ``at``: deleted (FILTERED), or expired before that.

        ``own_receives``: they came in receives of their own (on arrival), not in the receive that
        took a matching message (which is counted already).
        """
        queue = self.queue
        sent, expiry, ids, draw = self._columns(start, stop)
        expired = expiry <= at
        outcomes = queue.outcomes
        if expired.any():
            self._expire(sent, expiry, ids, draw, expired)
            keep = ~expired
            sent, at, ids = sent[keep], at[keep], ids[keep]
            draw = None if draw is None else draw[keep]
        k = int(sent.shape[0])
        if not k:
            return
        self.n_filtered += k
        traced = {"receives": np.ones(k, dtype=np.int32), "poison_draw": draw} if outcomes.tracing else None
        outcomes.ended(queue.consumer, sent, at, RecordState.FILTERED, ids=ids, detail=traced)
        queue._visible(at, -1.0)
        queue.received.add_many(at)
        queue.deletes.add_many(at)
        # Messages closer together than a round trip come back in one ReceiveMessage call (of at
        # most ``max_messages``) and go in one DeleteMessageBatch (of at most 10).
        bursts = at[np.r_[True, np.diff(at) > self.round_trip_s]]
        receive_extra = max(0, math.ceil(k / self.max_messages) - bursts.shape[0])
        delete_extra = max(0, math.ceil(k / _DELETE_BATCH_MAX) - bursts.shape[0])
        queue.delete_calls.add_many(bursts)
        last = float(at[-1])
        if own_receives:
            queue.receive_calls.add_many(bursts)
            queue.receive_units.add_many(bursts)
        if own_receives and receive_extra:
            queue.receive_calls.post((last, receive_extra))
            queue.receive_units.post((last, receive_extra))
        if delete_extra:
            queue.delete_calls.post((last, delete_extra))

    # ------------------------------------------------------------------ levels and the end
    def _post_arrivals(self, upto: int) -> None:
        if self._posted < upto:
            start = max(self._posted, self.rows.low)
            self.queue._visible(self.rows.column("visible_at", start, upto).copy(), 1.0)
            self._posted = upto

    def post_until(self, until: float) -> None:
        """Before a level folds: leave what left by ``until`` and post the arrivals of what waits."""
        self._leave(until, self.queue.head, None)
        rows = self.rows
        if self._posted < rows.top:
            self._post_arrivals(rows.search("visible_at", until, "right", start=max(self._posted, rows.low)))

    def oldest_sent_at(self, now: float) -> float:
        """The oldest filtered message waiting and visible at ``now`` (``inf``: none)."""
        rows = self.rows
        if rows.low < rows.top and rows.at("visible_at", rows.low) <= now:
            return rows.at("sent_at", rows.low)
        return math.inf

    def finish(self, end: float) -> None:
        """At the end of the run: what the pollers passed leaves; the rest expired or is still waiting."""
        self._leave(end, self.queue.head, None)
        rows = self.rows
        start, top = rows.low, rows.top
        if start >= top:
            return
        self._post_arrivals(rows.search("visible_at", end, "right", start=max(self._posted, start)))
        queue = self.queue
        sent, expiry, ids, draw = self._columns(start, top)
        gone = expiry <= end
        if gone.any():
            self._expire(sent, expiry, ids, draw, gone)
        waiting = ~gone
        if waiting.any():
            detail = {"receives": 0, "poison_draw": None if draw is None else draw[waiting]}
            queue.outcomes.census(
                queue.consumer,
                sent[waiting],
                RecordState.WAITING,
                ids=ids[waiting],
                detail=detail if queue.outcomes.tracing else None,
            )
        rows.drop_before(top)

    def _columns(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """Rows ``[start, stop)``: sent times, expiry times, record ids and poison draws (if kept)."""
        rows = self.rows
        sent = rows.column("sent_at", start, stop)
        ids = FILTERED_ID_BASE + rows.column("key", start, stop)
        draw = rows.column("draw", start, stop) if self.queue.draws else None
        return sent, sent + self.queue.retention_s, ids, draw

    def _expire(
        self, sent: np.ndarray, expiry: np.ndarray, ids: np.ndarray, draw: np.ndarray | None, gone: np.ndarray
    ) -> None:
        """The rows ``gone`` marks expired in the queue before a receive took them: EXPIRED."""
        queue = self.queue
        outcomes = queue.outcomes
        detail = {"receives": 0, "poison_draw": None if draw is None else draw[gone]}
        outcomes.ended(
            queue.consumer,
            sent[gone],
            expiry[gone],
            RecordState.EXPIRED,
            ids=ids[gone],
            detail=detail if outcomes.tracing else None,
        )
        queue._visible(expiry[gone], -1.0)
