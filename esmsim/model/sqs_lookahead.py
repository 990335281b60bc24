"""When the batching windows' next batch closes: the ring's look-ahead, cached.

A batch collected by a member of :class:`esmsim.model.sqs_ring.Ring` closes when its last needed
message arrives, when its window ends (or the long poll running then returns), or before the
message that would take it over the 6 MB payload cap. Arrival times are known in advance, so that
moment is computed directly. Dealing arrivals follows the plan, so the answer is kept until
something it rests on changes (see :meth:`RingLookahead.next`).

It also owns when dealt rows count as received: on arrival, or, for rows the in-flight limit held
back, from the moment it let them be dealt (``floor``, ``floors``).
"""

from __future__ import annotations

import math

import numpy as np

from esmsim.model.invoke import PAYLOAD_LIMIT_BYTES, fit_payload
from esmsim.model.sqs_collector import Collector, long_poll_end
from esmsim.model.sqs_queue import SqsQueue
from esmsim.model.sqs_ring import Ring


class RingLookahead:
    """The next completion among a ring's members, and when dealt rows were received."""

    def __init__(self, queue: SqsQueue, ring: Ring) -> None:
        self.queue = queue
        self.ring = ring
        #: Rows dealt from now on count as received no earlier than this (the in-flight limit
        #: lifted then); ``floors`` keeps every such ``(first row, floor)`` as rows were dealt.
        self.floor = -math.inf
        self.floors: list[tuple[int, float]] = []
        # The last answer of :meth:`next` and what it was computed from.
        self._next: tuple[float, Collector | None, int] = (math.inf, None, 0)
        self._next_key: tuple[int, int, float] | None = None
        self._dealt_head = -1  # the queue's head as the ring last saw it (moved by dealing)

    def lift(self, now: float) -> None:
        """The in-flight limit let rows from the queue's head be dealt again at ``now``."""
        self.floor = now
        self.floors.append((self.queue.head, now))

    def dealt(self, head: int, upto: int) -> None:
        """The ring dealt rows ``[head, upto)``: the plan still holds (the head moved by dealing)."""
        if self._dealt_head == head:
            self._dealt_head = upto

    def next(self) -> tuple[float, Collector | None, int]:
        """The earliest ring completion: ``(time, member, rows to deal up to)``.

        A batch closes when its last needed message arrives (the ring finds which comes first), when
        its window ends (or the long poll running then returns), or before the message that would
        take it over the payload cap. Rows not generated yet are unknown: a completion they would
        bring is found again once the queue generates them (:meth:`SqsReceivers.on_extend`).
        """
        queue = self.queue
        ring = self.ring
        head = queue.head
        # Rows past the in-flight limit cannot be dealt; only rows that have arrived mark it binding
        # (dispatch), not rows generated ahead of time.
        total = min(queue.fifo.top, head + queue.room())
        # Dealing follows the plan, so the answer holds until the ring's membership or quotas, the
        # rows known, the limit or the floor change (head + room is constant while rows are dealt),
        # or a receive takes fresh rows the ring would have dealt (the head moves without _settle).
        key = (ring.version, total, self.floor)
        if key == self._next_key and head == self._dealt_head:
            return self._next
        self._next_key = key
        self._dealt_head = head
        self._next = self._plan(head, total)
        return self._next

    def _plan(self, head: int, total: int) -> tuple[float, Collector | None, int]:
        """:meth:`next` computed afresh, rows ``[head, total)`` dealable."""
        queue = self.queue
        ring = self.ring
        best_t, best_c, best_upto = math.inf, None, head
        room = total  # deal no further than the first batch to fill allows (ties)
        fill = ring.next_fill(head)
        if fill is not None:
            last, c, _ = fill
            room = min(room, last + 1)
            if last < total:
                best_t, best_c, best_upto = self.at(last), c, last + 1
        # Windows ending first: members holding messages, then the next member to be dealt its first.
        for c in ring.windows_before(best_t):
            deadline = c.window_end
            if c.owner.finish_poll_after_window:
                deadline = self._poll_end(c, head, total, deadline)
            if deadline < best_t:
                best_t, best_c = deadline, c
                best_upto = queue.fifo.search("visible_at", deadline, "right", start=head)
        for c, i in ring.unvisited():
            if not c.idle:
                continue
            first = head + ring.offset(c, i)
            if first >= total:
                break
            window_end = self.at(first) + c.owner.window_s
            if window_end >= best_t:
                if len(ring.window_lengths) == 1:
                    break  # the others get their first rows later, so their windows end later
                continue
            # Its window, and the poll running when it ends, as if its first row were dealt already.
            deadline = window_end
            if c.owner.finish_poll_after_window:
                deadline = self._poll_end(c, head, total, window_end)
            if deadline < best_t:
                best_t, best_c = deadline, c
                best_upto = queue.fifo.search("visible_at", deadline, "right", start=head)
        if ring.tracking:
            for i, c in enumerate(ring.members):
                if not (c.tracks_bytes and c.active):
                    continue
                step = ring.width
                start = head + ring.offset(c, i)
                stop = min(start + ring.need(c, i) * step, total)
                if stop <= start:
                    continue
                sizes = queue.column("size", slice(start, stop, step)) + queue.overhead
                j, _, capped = fit_payload(np.cumsum(sizes), PAYLOAD_LIMIT_BYTES - self.held_bytes(c))
                if capped:
                    over = start + j * step
                    # Ties: rows dealt for another collector's completion must stop short of this
                    # one's row that does not fit (a whole backlog can appear at once).
                    room = min(room, over)
                    if self.at(over) < best_t:  # the record that does not fit waits
                        best_t, best_c, best_upto = self.at(over), c, over
        return float(best_t), best_c, min(best_upto, room)

    def _poll_end(self, c: Collector, head: int, total: int, window_end: float) -> float:
        """When a collector's batch closes at the latest, its window (ending at ``window_end``) over.

        The long poll in progress when the window ends is not cut short (AWS: on a very quiet queue
        Lambda "might wait for up to 20 seconds before invoking", even with a shorter window). That
        poll began at the collector's last message (or at a full wait after it); it returns when its
        wait runs out, or earlier with the collector's next message, which then joins the batch.
        The ring deals the collector every ``width``-th row from its next visit.
        """
        queue = self.queue
        ring = self.ring
        p = math.inf  # its first row past the window's end
        last_at = math.nan  # when it last received a message
        if c.active:
            step = ring.width
            start = head + ring.offset(c, ring.index(c))
            after = queue.fifo.search("visible_at", window_end, "right", start=head)  # first row past it
            p = start + step * max(0, -(-(after - start) // step))
            if p - step >= start:
                last_at = max(self.at(p - step), c.taken_at)
        if math.isnan(last_at):
            last_at = self._last_at(c, head)
        next_at = self.at(int(p)) if p < total else math.inf
        return long_poll_end(window_end, last_at, c.owner.wait_time_s, next_at)

    def _last_at(self, c: Collector, head: int) -> float:
        """When a holding collector last received a message, up to the row ``head``."""
        rows = self.ring.rows(c, head)
        last = c.taken_at
        if rows.shape[0]:
            last = max(last, self.received(rows[-1:])[0])
        return last

    def at(self, position: int) -> float:
        """When the fresh message at ``position`` can be dealt: on arrival, or once the limit lifted."""
        return max(self.queue.fresh_visible_at(position), self.floor)

    def received(self, rows: np.ndarray) -> np.ndarray:
        """When dealt rows were received: on arrival, or when the in-flight limit let them be dealt."""
        visible, base = self.queue.visible_column()
        at = visible[rows - base]
        if self.floors:
            starts = np.array([row for row, _ in self.floors])
            floors = np.array([-math.inf] + [floor for _, floor in self.floors])
            at = np.maximum(at, floors[np.searchsorted(starts, rows, side="right")])
        return np.asarray(at, dtype=float)

    def held_bytes(self, c: Collector) -> float:
        """Payload of what a collector holds: what its receives took and what the ring dealt it."""
        rows = self.ring.rows(c, self.queue.head)
        return c.nbytes + self.queue.payload(rows) if rows.shape[0] else c.nbytes
