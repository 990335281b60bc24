"""Waiting SQS pollers: long polls and batching windows, dealt arriving messages without events.

A poller that finds fewer messages than it wants becomes a :class:`Collector`:

* without a batching window it long-polls: the next message to arrive ends its receive;
* with a window it collects until the batch is full, the 6 MB payload is reached, or the window
  ends. The window opens with its first message (at once when it found messages on arrival, so under
  a backlog it opens when the previous invocation completed, as AWS documents).

Pollers without a window are served first come, first served. Pollers with a window share the
arriving messages round-robin, one each in turn: several pollers batching independently form smaller
batches than one poller would (docs/validation.md §3). With ``single_poller_batching`` only the
oldest collector receives messages, which reproduces the single-poller closed forms exactly.

Because arrival times are known in advance (as far as traffic has been generated; the queue calls
:meth:`SqsReceivers.on_extend` when more is), the moment the next collector completes is computed
directly, and the messages that arrived in between are dealt as strided slices: one SimPy event per
completed batch, never one per message.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import simpy

from esmsim.events import RecordState
from esmsim.model.alarm import Alarm
from esmsim.model.invoke import PAYLOAD_LIMIT_BYTES, fit_payload
from esmsim.model.records import count
from esmsim.model.sqs_collector import NO_EMPTY_POLLS, Collector, ReceiverOwner, empty_polls
from esmsim.model.sqs_messages import Batch, Messages, Part
from esmsim.model.sqs_queue import SqsQueue

#: The value an armed long poll wakes with (as opposed to a batch handed to it).
WAKE = "wake"


class SqsReceivers:
    """The pollers waiting on one queue, and the dealing of what arrives to them."""

    def __init__(
        self, env: simpy.Environment, queue: SqsQueue, max_record_bytes: float, *, single_poller: bool = False
    ) -> None:
        self.env = env
        self.queue = queue
        self.single = single_poller
        self.fifo: deque[Collector] = deque()  # no batching window: first come, first served
        self.head_waiter: Collector | None = None  # the one armed to wake at the next arrival
        self.ring: list[Collector] = []  # batching window: round-robin dealing
        self.rr = 0  # ring position that gets the next arrival
        self._alarm = Alarm(env, self._wake)
        # The in-flight limit: while it binds, rows past it cannot be dealt (``_capped``); rows
        # dealt once it is lifted count as received then (``_floor``), not when they arrived.
        self._capped = False
        self._floor = -math.inf
        #: The largest payload one record can have (its size distribution's bound, cut to the queue's
        #: maximum message size, plus event metadata): it decides whether the 6 MB cap can bind.
        self._max_record_bytes = max_record_bytes
        queue.held_by_pollers = self.held_parts

    def held_parts(self) -> list[Part]:
        """Messages waiting pollers hold (dealt to them, not yet in a batch)."""
        waiting = [*self.fifo, *self.ring] + ([self.head_waiter] if self.head_waiter else [])
        return [p for c in waiting for p in c.parts]

    # ------------------------------------------------------------------ the pollers' side
    def receive(self, owner: ReceiverOwner, now: float) -> Batch | Collector:
        """A poller asks for a batch: it gets one at once, or a collector whose event yields it."""
        queue = self.queue
        if self.ring:
            self.dispatch(now)  # deal what arrived to the windows first: it is theirs
        else:
            queue.refresh(now)
        parts, n, nbytes, capped = queue.take(now, owner.batch_size, PAYLOAD_LIMIT_BYTES)
        if n and (n == owner.batch_size or capped or owner.window_s == 0):
            queue.count_receives(now, math.ceil(n / owner.max_messages), nbytes, NO_EMPTY_POLLS)
            return self._form(parts, nbytes, now)
        collector = Collector(self.env.event(), owner, now, self._max_record_bytes)
        if n:
            collector.parts = parts
            collector.part_at = [now] * len(parts)
            collector.part_dealt = [False] * len(parts)
            collector.held = n
            collector.need -= n
            collector.nbytes = nbytes
            collector.calls = math.ceil(n / owner.max_messages)
            collector.first_at = collector.last_at = now
            collector.window_end = now + owner.window_s
        else:
            owner.idle_collectors += 1
            if owner.window_s and queue.room() == 0:
                queue.over_limit_receives += 1  # a receive at the in-flight limit returns nothing
        if owner.window_s == 0:
            if self.head_waiter is None:
                self._arm(collector, now, parked=False)
            else:
                self.fifo.append(collector)
            if queue.next_deadline() < self._alarm.at:
                self._reschedule(now, math.inf)  # a redelivery may come before the next arrival
        else:
            self.ring.append(collector)
            self._reschedule(now, self._ring_next()[0])
        return collector

    def _form(
        self, parts: list[Part], nbytes: float, now: float, received: np.ndarray | None = None
    ) -> Batch:
        batch = self.queue.form_batch(parts, nbytes, now, received)
        batch.on_overrun = self.release
        return batch

    def woken(self, collector: Collector, now: float) -> Batch | Collector:
        """The armed long poll woke at the arrival it waited for: take it, pass the turn on.

        Returns the batch, or the same collector re-armed when another poller took the message first.
        """
        self.head_waiter = None
        queue = self.queue
        queue.refresh(now)
        owner = collector.owner
        parts, n, nbytes, _ = queue.take(now, owner.batch_size, PAYLOAD_LIMIT_BYTES)
        if not n:
            collector.event = self.env.event()
            self._arm(collector, now, parked=False)
            return collector
        owner.idle_collectors -= 1
        queue.count_receives(now, math.ceil(n / owner.max_messages), nbytes, empty_polls(collector, now))
        if self.fifo:
            self._arm(self.fifo.popleft(), now, parked=True)
        return self._form(parts, nbytes, now)

    def _arm(self, collector: Collector, now: float, *, parked: bool) -> None:
        """Make ``collector`` the long poll that the next arriving message wakes.

        The poll returns ``round_trip_s`` after that message arrives and takes what is visible then
        (up to its batch size): messages arriving meanwhile join the batch. A collector its poller
        has not yet waited on gets a timeout as its event (one SimPy event per wake); one already
        waiting is woken by a timeout's callback. Arrival times are known in advance; a message
        that becomes visible earlier (a redelivery) is served by the dispatcher to the other
        waiters, or taken at this wake.
        """
        self.head_waiter = collector
        queue = self.queue
        # The long poll returns a round trip after the message arrives, with what is visible then.
        at = queue.next_fresh_at() + collector.owner.round_trip_s
        if queue.room() == 0:
            # At the in-flight limit a receive returns nothing: the long poll runs its full wait.
            queue.over_limit_receives += 1
            at = now + collector.owner.wait_time_s
        collector.armed = at < math.inf
        if not collector.armed:
            return  # nothing known to arrive yet: on_extend arms it once traffic is generated
        delay = max(0.0, at - now)
        if not parked:
            collector.event = self.env.timeout(delay, WAKE)
        else:
            event = collector.event

            def wake(_: simpy.Event) -> None:
                event.succeed(WAKE)

            self.env.timeout(delay).callbacks.append(wake)

    def on_extend(self, now: float) -> None:
        """More traffic was generated: arm a long poll waiting for it, re-plan the windows."""
        head = self.head_waiter
        if head is not None and not head.armed:
            self._arm(head, now, parked=True)
        if self.ring:
            self._reschedule(now, self._ring_next()[0])

    def release(self, batch: Batch, now: float) -> None:
        """A poller gives up a batch with undeleted rows: make sure a waiter wakes when they reappear."""
        self.queue.release(batch)
        if self.fifo or self.ring or self.head_waiter:
            self._reschedule(now, self._ring_next()[0] if self.ring else math.inf)

    def retire_idle(self, owner: ReceiverOwner, k: int, now: float) -> int:
        """Stop up to ``k`` of ``owner``'s empty-handed collectors (scale-down); returns how many."""
        stopped: list[Collector] = []
        for c in reversed(self.fifo):
            if len(stopped) == k:
                break
            if c.owner is owner:
                stopped.append(c)
        if stopped:
            gone = {id(c) for c in stopped}
            self.fifo = deque(c for c in self.fifo if id(c) not in gone)
        for i in range(len(self.ring) - 1, -1, -1):
            if len(stopped) == k:
                break
            c = self.ring[i]
            if c.owner is owner and c.held == 0:
                self._pop_ring(i)
                stopped.append(c)
        for c in stopped:
            owner.idle_collectors -= 1
            self._count_empty(c, now)
            c.event.succeed(None)
        return len(stopped)

    # ------------------------------------------------------------------ dealing
    def dispatch(self, now: float) -> float:
        """Bring every waiting poller up to ``now``; returns when the ring next completes."""
        queue = self.queue
        queue.refresh(now)
        if self.fifo or self.head_waiter:
            self._serve_fifo(now)
        if not self.ring:
            return math.inf
        if self._capped:
            self._floor = now  # rows held back by the in-flight limit are receivable from now
            self._capped = False
        while True:
            t, i, upto = self._ring_next()
            if t > now:
                break
            self._settle(upto)
            self._complete(i, t)
            if not self.ring:
                return math.inf
        arrived = queue.arrived(now)
        dealable = self._dealable(arrived)
        if dealable < arrived:
            queue.over_limit_receives += 1  # the limit held back messages waiting pollers would take
        self._settle(dealable)
        if queue.n_redelivered:
            self._serve_ring_redelivered(now)
            return self._ring_next()[0] if self.ring else math.inf
        return t

    def _serve_fifo(self, now: float) -> None:
        """Hand visible messages (redeliveries) to waiting long polls that are not armed."""
        queue = self.queue
        head = self.head_waiter
        if head is not None and not head.armed and queue.visible_now(now) > 0:
            self.fifo.appendleft(head)  # no arrival will wake it: serve it like the others
            self.head_waiter = None
        while self.fifo and queue.visible_now(now) > 0 and queue.room() > 0:
            c = self.fifo.popleft()
            owner = c.owner
            owner.idle_collectors -= 1
            parts, n, nbytes, _ = queue.take(now, owner.batch_size, PAYLOAD_LIMIT_BYTES)
            queue.count_receives(now, math.ceil(n / owner.max_messages), nbytes, empty_polls(c, now))
            c.event.succeed(self._form(parts, nbytes, now))

    def _dealable(self, upto: int) -> int:
        """Fresh rows up to ``upto`` that the in-flight limit lets be dealt (marks it binding)."""
        queue = self.queue
        limit = queue.head + queue.room()
        if limit < upto:
            self._capped = True
            return limit
        return upto

    def _ring_next(self) -> tuple[float, int, int]:
        """The earliest ring completion: ``(time, ring index, rows to deal up to)``.

        Rows not generated yet are unknown: a completion they would bring is found again once the
        queue generates them (:meth:`on_extend`).
        """
        queue = self.queue
        head = queue.head
        total = self._dealable(queue.fifo.top)
        ring = self.ring
        n = len(ring)
        step = 1 if self.single else n
        best_t, best_i, best_upto = math.inf, -1, head
        room = total  # deal no further than every collector's need allows (ties)
        # The hot loop reads arrival times straight from the queue's column (``_at`` inlined).
        visible, base = queue.visible_column()
        floor = self._floor
        for o in range(1 if self.single else n):
            i = (self.rr + o) % n
            c = ring[i]
            last = head + o + (c.need - 1) * step
            if last + 1 < room:
                room = last + 1
            if last < total:
                t, upto = visible[last - base], last + 1
                if t < floor:
                    t = floor
            else:
                t, upto = math.inf, total
            if c.held:
                deadline = c.window_end
                if deadline < t and c.owner.finish_poll_after_window:  # else it fills first anyway
                    deadline = self._poll_end(c, o, step, head, total)
            elif head + o < total:
                deadline = max(visible[head + o - base], floor) + c.owner.window_s
            else:
                deadline = math.inf
            if deadline < t:
                t = deadline
                upto = queue.fifo.search("visible_at", deadline, "right", start=head)
            if c.tracks_bytes:
                stop = min(head + o + c.need * step, total)
                if stop > head + o:
                    sizes = queue.column("size", slice(head + o, stop, step)) + queue.overhead
                    j, _, capped = fit_payload(np.cumsum(sizes), c.nbytes_left())
                    if capped:
                        over = head + o + j * step
                        # Ties: rows dealt for another collector's completion must stop short of
                        # this one's row that does not fit (a whole backlog can appear at once).
                        room = min(room, over)
                        if self._at(over) <= t:
                            t, upto = self._at(over), over  # the record that does not fit waits
            if t < best_t:
                best_t, best_i, best_upto = t, i, upto
        return float(best_t), best_i, min(best_upto, room)

    def _poll_end(self, c: Collector, o: int, step: int, head: int, total: int) -> float:
        """When a holding collector's batch closes at the latest, its window over.

        The long poll in progress when the window ends is not cut short (AWS: on a very quiet queue
        Lambda "might wait for up to 20 seconds before invoking", even with a shorter window). That
        poll began at the collector's last message (or at a full wait after it); it returns when its
        wait runs out, or earlier with the collector's next message, which then joins the batch.
        Rows are dealt round-robin, so the collector's rows from ``head`` are ``head + o``,
        ``head + o + step``, ...
        """
        queue = self.queue
        window_end = c.window_end
        after = queue.fifo.search("visible_at", window_end, "right", start=head)  # first row past it
        p = head + o + step * max(0, -(-(after - head - o) // step))  # the collector's first row past it
        last_at = self._at(p - step) if p - step >= head + o else c.last_at
        last_at = max(last_at, c.last_at)  # a redelivered message may have been its last receive
        wait = c.owner.wait_time_s
        # A receive that returned after the window ended closes the batch at once.
        end = last_at + wait * math.ceil((window_end - last_at) / wait) if window_end > last_at else last_at
        if p < total:
            end = min(end, self._at(p))
        return end

    def _at(self, position: int) -> float:
        """When the fresh message at ``position`` can be dealt: on arrival, or once the limit lifted."""
        return max(self.queue.fresh_visible_at(position), self._floor)

    def _settle(self, upto: int) -> None:
        """Deal fresh rows ``[head, upto)`` to the ring, round-robin."""
        queue = self.queue
        head = queue.head
        m = upto - head
        if m <= 0:
            return
        ring = self.ring
        n = len(ring)
        step = 1 if self.single else n
        for o in range(min(step, m)):
            c = ring[(self.rr + o) % n]
            part = slice(head + o, upto, step)
            k = count(part)
            if not c.held:
                c.first_at = self._at(head + o)
                c.window_end = c.first_at + c.owner.window_s
                c.owner.idle_collectors -= 1
            c.last_at = self._at(head + o + (k - 1) * step)
            c.parts.append(part)
            c.part_at.append(self._floor)
            c.part_dealt.append(True)
            c.dealt.append(part)
            c.held += k
            c.need -= k
            if c.tracks_bytes:
                c.nbytes += queue.payload(part)
        # Dealt messages were received the moment they arrived: never visible, in flight at once.
        arrived_at = queue.column("visible_at", slice(head, upto))
        if self._floor > -math.inf:
            arrived_at = np.maximum(arrived_at, self._floor)
        queue.received_into_flight(m, float(arrived_at[-1]))
        queue.visible.add_many(arrived_at, -1.0)
        if queue.backlog is not queue.visible:
            queue.backlog.add_many(arrived_at, -1.0)
        queue.in_flight_level.add_many(arrived_at, 1.0)
        if not self.single:
            self.rr = (self.rr + m) % n
        queue.head = upto

    def _serve_ring_redelivered(self, now: float) -> None:
        """Messages visible again after a visibility timeout go to the ring in turn."""
        queue = self.queue
        i = 0
        while queue.n_redelivered and i < len(self.ring):
            idx = (self.rr + i) % len(self.ring)
            c = self.ring[idx]
            parts, n, nbytes, capped = queue.take(now, c.need, c.nbytes_left())
            if n:
                if not c.held:
                    c.first_at = now
                    c.window_end = now + c.owner.window_s
                    c.owner.idle_collectors -= 1
                c.last_at = now
                c.parts += parts
                c.part_at += [now] * len(parts)
                c.part_dealt += [False] * len(parts)
                c.held += n
                c.need -= n
                c.nbytes += nbytes
                c.calls += math.ceil(n / c.owner.max_messages)
            if c.need == 0 or capped or (n and now >= c.window_end):
                self._complete(idx, now)
            else:
                i += 1

    def _pop_ring(self, i: int) -> Collector:
        c = self.ring.pop(i)
        if i < self.rr:
            self.rr -= 1
        if self.rr >= len(self.ring):
            self.rr = 0
        return c

    def _complete(self, i: int, now: float) -> None:
        c = self._pop_ring(i)
        queue = self.queue
        owner = c.owner
        calls = c.calls
        if c.dealt:
            rows_at = np.concatenate([queue.column("visible_at", p) for p in c.dealt])
            # Messages closer together than a round trip come back in one ReceiveMessage call.
            bursts = 1 + int(np.count_nonzero(np.diff(rows_at) > owner.round_trip_s))
            calls += max(bursts, math.ceil(rows_at.size / owner.max_messages))
            if not c.tracks_bytes:
                sizes = np.concatenate([queue.column("size", p) for p in c.dealt])
                c.nbytes += float(sizes.sum()) + sizes.size * queue.overhead
        self._count_empty(c, now, calls=calls)
        received = c.received_times(self.queue) if c.first_at < now else None
        c.event.succeed(self._form(c.parts, c.nbytes, now, received))

    def _count_empty(self, c: Collector, now: float, calls: int = 0) -> None:
        self.queue.count_receives(now, calls, c.nbytes, empty_polls(c, c.first_at if c.held else now))

    # ------------------------------------------------------------------ waking up
    def _reschedule(self, now: float, ring_next: float) -> None:
        t = ring_next
        if self.fifo or self.ring or self.head_waiter:
            t = min(t, self.queue.next_deadline())
        self._alarm.request(t, now)

    def _wake(self, now: float) -> None:
        self._reschedule(now, self.dispatch(now))

    def finish(self, end: float) -> None:
        """At the end of the run, messages held by waiting pollers are in flight."""
        self.dispatch(end)
        queue = self.queue
        waiting = [*self.fifo, *self.ring] + ([self.head_waiter] if self.head_waiter else [])
        for c in waiting:
            empty = empty_polls(c, c.first_at) if c.held else empty_polls(c, end, run_end=True)
            self.queue.count_receives(end, 0, c.nbytes, empty)
            if c.parts:
                m: Messages = queue.messages(c.parts)
                queue.outcomes.census(queue.consumer, m.sent_at, RecordState.IN_FLIGHT, m.ids, m.detail(1))
