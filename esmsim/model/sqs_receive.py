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
directly (:class:`esmsim.model.sqs_lookahead.RingLookahead`, from the ring's laps), and the messages that
arrived in between are dealt at once: one SimPy event per completed batch, never one per message,
and a constant amount of Python work per batch however many pollers share the arrivals.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import simpy

from esmsim.events import RecordState
from esmsim.model.alarm import Alarm
from esmsim.model.invoke import PAYLOAD_LIMIT_BYTES
from esmsim.model.records import count
from esmsim.model.sqs_collector import (
    DETACHED,
    NO_EMPTY_POLLS,
    Collector,
    Detached,
    ReceiverOwner,
    dealt_receive_calls,
    empty_polls,
)
from esmsim.model.sqs_lookahead import RingLookahead
from esmsim.model.sqs_messages import Batch, Messages, Part
from esmsim.model.sqs_queue import SqsQueue
from esmsim.model.sqs_ring import Ring

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
        self.ring = Ring(single=single_poller)  # batching window: round-robin dealing
        self._alarm = Alarm(env, self._wake)
        # The in-flight limit: while it binds, rows past it cannot be dealt (``_capped``); rows
        # dealt once it is lifted count as received then (the look-ahead's floor), not on arrival.
        self._capped = False
        #: The largest payload one record can have (its size distribution's bound, cut to the queue's
        #: maximum message size, plus event metadata): it decides whether the 6 MB cap can bind.
        self._max_record_bytes = max_record_bytes
        self.lookahead = RingLookahead(queue, self.ring)
        queue.held_by_pollers = self.held_parts

    def held_parts(self) -> list[Part]:
        """The oldest messages waiting pollers hold.

        What their receives took, and the first row the ring dealt each: rows arrive in sending
        order, so that is the oldest the ring dealt it (enough for the queue's oldest age and for
        the rows it must keep).
        """
        waiting = [*self.fifo, *self.ring.members] + ([self.head_waiter] if self.head_waiter else [])
        parts = [p for c in waiting for p in c.parts]
        parts += [slice(c.first_row, c.first_row + 1) for c in self.ring.members if c.first_row >= 0]
        return parts

    # ------------------------------------------------------------------ the pollers' side
    def receive(self, owner: ReceiverOwner, now: float, *, dealt: bool = False) -> Batch | Collector:
        """A poller asks for a batch: it gets one at once, or a collector whose event yields it.

        ``dealt``: :meth:`visible_for_receive` has just brought the waiting pollers up to ``now``.
        """
        queue = self.queue
        if not dealt:
            self._catch_up(now)
        parts, n, nbytes, capped = queue.take(now, owner.batch_size, PAYLOAD_LIMIT_BYTES)
        if n and (n == owner.batch_size or capped or owner.window_s == 0):
            queue.count_receives(now, math.ceil(n / owner.max_messages), nbytes, NO_EMPTY_POLLS)
            return self._form(parts, nbytes, now)
        collector = Collector(self.env.event(), owner, now, self._max_record_bytes)
        owner.idle_collectors += 1  # it waits empty-handed until it holds a message
        if n:
            collector.hold(now)
            collector.took(parts, n, nbytes, now)
            collector.quota -= n
        elif owner.window_s and queue.room() == 0:
            queue.over_limit_receives += 1  # a receive at the in-flight limit returns nothing
        if owner.window_s == 0:
            if self.head_waiter is None:
                self._arm(collector, now, parked=False)
            else:
                self.fifo.append(collector)
            if queue.next_deadline() < self._alarm.at:
                self._reschedule(now, math.inf)  # a redelivery may come before the next arrival
        else:
            self.ring.join(collector)
            self._reschedule(now, self.lookahead.next()[0])
        return collector

    def visible_for_receive(self, now: float) -> bool:
        """Whether a receive issued now finds messages waiting (after the windows took theirs)."""
        self._catch_up(now)
        return self.queue.visible_now(now) > 0 and self.queue.room() > 0

    def _catch_up(self, now: float) -> None:
        """Bring the queue, and the windows collecting from it, up to ``now`` before a receive."""
        if self.ring:
            self.dispatch(now)  # deal what arrived to the windows first: it is theirs
        else:
            self.queue.refresh(now)

    def _form(
        self, parts: list[Part], nbytes: float, now: float, received: np.ndarray | None = None
    ) -> Batch:
        batch = self.queue.form_batch(parts, nbytes, now, received)
        batch.on_overrun = self.release
        return batch

    def woken(self, collector: Collector, now: float) -> Batch | Collector | Detached:
        """The armed long poll woke at the arrival it waited for: take it, pass the turn on.

        Returns the batch, or the same collector re-armed when another poller took the message first,
        or :data:`DETACHED` when its poller was let go while it waited.
        """
        if collector.detached:
            return DETACHED  # let go while it waited (a disabled mapping): it takes nothing
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
            self._reschedule(now, self.lookahead.next()[0])

    def release(self, batch: Batch, now: float) -> None:
        """A poller gives up a batch with undeleted rows: make sure a waiter wakes when they reappear."""
        self.queue.release(batch)
        if self.fifo or self.ring or self.head_waiter:
            self._reschedule(now, self.lookahead.next()[0] if self.ring else math.inf)

    def poke(self, now: float) -> None:
        """Messages may have become receivable without arriving (a FIFO group unblocked): serve waiters."""
        if self.fifo or self.head_waiter:
            self._alarm.request(now, now)

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
        members = self.ring.members
        for i in range(len(members) - 1, -1, -1):
            if len(stopped) == k:
                break
            c = members[i]
            if c.owner is owner and c.idle:
                self.ring.leave(i)
                stopped.append(c)
        for c in stopped:
            owner.idle_collectors -= 1
            self._count_empty(c, now)
            c.event.succeed(None)
        head = self.head_waiter
        if len(stopped) < k and head is not None and head.owner is owner and owner.allowed == 0:
            # A disabled mapping's armed long poll stops too: its wake-up (at the next arrival) is
            # scheduled and cannot be taken back, so the poller is let go now and its process ends
            # quietly when the wake-up fires, taking nothing.
            self.head_waiter = None
            if self.fifo:
                self._arm(self.fifo.popleft(), now, parked=True)
            owner.idle_collectors -= 1
            self._count_empty(head, now)
            if head.armed:
                head.detached = True
                owner.poller_gone(now)
            else:  # nothing scheduled wakes it: stop it like the others
                head.event.succeed(None)
            stopped.append(head)
        if owner.allowed == 0 and any(c.owner is owner for c in self.ring.members):
            # A disabled mapping's pollers holding messages in a batching window receive nothing
            # more: their windows close now, with what they hold, and they invoke it.
            self.dispatch(now)  # what arrived by now is theirs
            for c in [c for c in self.ring.members if c.owner is owner]:
                self._complete(c, now)
        return len(stopped)

    # ------------------------------------------------------------------ dealing
    def dispatch(self, now: float, *, deal_all: bool = True) -> float:
        """Bring every waiting poller up to ``now``; returns when the ring next completes.

        With ``deal_all`` false, rows that arrived since the last completion may stay undealt
        (they are dealt, as they would have been, before anything else reads or takes them): the
        ring's own wake-ups need not deal what nobody looks at yet.
        """
        queue = self.queue
        queue.refresh(now)
        if self.fifo or self.head_waiter:
            self._serve_fifo(now)
        if not self.ring:
            return math.inf
        if self._capped:
            self.lookahead.lift(now)  # rows held back by the in-flight limit are receivable from now
            self._capped = False
        while True:
            t, c, upto = self.lookahead.next()
            if t > now or c is None:  # no member: t is inf
                break
            self._settle(upto)
            self._complete(c, t)
            if not self.ring:
                return math.inf
        arrived = queue.arrived(now)
        dealable = self._dealable(arrived)
        if dealable < arrived:
            queue.over_limit_receives += 1  # the limit held back messages waiting pollers would take
        elif not deal_all and not queue.n_redelivered and not (self.fifo or self.head_waiter):
            return t  # the ring alone reads these rows; its next dispatch deals them
        self._settle(dealable)
        if queue.n_redelivered:
            self._serve_ring_redelivered(now)
            return self.lookahead.next()[0] if self.ring else math.inf
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

    def _settle(self, upto: int) -> None:
        """Deal fresh rows ``[head, upto)`` to the ring, round-robin."""
        queue = self.queue
        head = queue.head
        m = upto - head
        if m <= 0:
            return
        for c in self.ring.deal(head, m):
            if c.idle:
                c.hold(self.lookahead.at(c.first_row))
                self.ring.push_window(c)
        # Dealt messages were received the moment they arrived (or once the limit let them be).
        arrived_at = queue.column("visible_at", slice(head, upto))
        if self.lookahead.floor > -math.inf:
            arrived_at = np.maximum(arrived_at, self.lookahead.floor)
        self.lookahead.dealt(head, upto)
        queue.dealt_on_arrival(upto, arrived_at)

    def _serve_ring_redelivered(self, now: float) -> None:
        """Messages visible again after a visibility timeout go to the ring in turn."""
        queue = self.queue
        ring = self.ring
        i = 0
        while queue.n_redelivered and i < len(ring):
            idx = (ring.rr + i) % len(ring)
            c = ring.members[idx]
            need = ring.need(c, idx)
            room = PAYLOAD_LIMIT_BYTES - (self.lookahead.held_bytes(c) if c.tracks_bytes else c.nbytes)
            parts, n, nbytes, capped = queue.take(now, need, room)
            if n:
                if c.idle:
                    c.hold(now)
                    ring.push_window(c)
                c.took(parts, n, nbytes, now)
                ring.took(c, n)
            if need == n or capped or (n and now >= c.window_end):
                self._complete(c, now)
            else:
                i += 1

    def _complete(self, c: Collector, now: float) -> None:
        """A ring member's batch closes at ``now``: it leaves the ring and its poller invokes."""
        ring = self.ring
        ring.leave(ring.index(c))
        queue = self.queue
        owner = c.owner
        calls = c.calls
        parts = c.parts
        received = [
            np.full(len(p) if isinstance(p, Messages) else count(p), at)
            for p, at in zip(parts, c.part_at, strict=True)
        ]
        rows = ring.rows(c, queue.head)
        if rows.shape[0]:
            visible, base = queue.visible_column()
            arrived_at = visible[rows - base]
            calls += dealt_receive_calls(arrived_at, owner.round_trip_s, owner.max_messages)
            c.nbytes += queue.payload(rows)
            parts = [*parts, rows]
            received.append(self.lookahead.received(rows) if self.lookahead.floors else arrived_at)
        self._count_empty(c, now, calls=calls)
        times = None
        if c.first_at < now:
            times = received[0] if len(received) == 1 else np.concatenate(received)
        c.event.succeed(self._form(parts, c.nbytes, now, times))

    def _count_empty(self, c: Collector, now: float, calls: int = 0) -> None:
        self.queue.count_receives(now, calls, c.nbytes, empty_polls(c, now if c.idle else c.first_at))

    # ------------------------------------------------------------------ waking up
    def _reschedule(self, now: float, ring_next: float) -> None:
        t = ring_next
        if self.fifo or self.ring or self.head_waiter:
            t = min(t, self.queue.next_deadline())
        self._alarm.request(t, now)

    def _wake(self, now: float) -> None:
        self._reschedule(now, self.dispatch(now, deal_all=False))

    def finish(self, end: float) -> None:
        """At the end of the run, messages held by waiting pollers are in flight."""
        self.dispatch(end)
        queue = self.queue
        waiting = [*self.fifo, *self.ring.members] + ([self.head_waiter] if self.head_waiter else [])
        for c in waiting:
            empty = empty_polls(c, end, run_end=True) if c.idle else empty_polls(c, c.first_at)
            parts = list(c.parts)
            rows = self.ring.rows(c, queue.head) if c.in_ring else None
            if rows is not None and rows.shape[0]:
                parts.append(rows)
                c.nbytes += queue.payload(rows)
            self.queue.count_receives(end, 0, c.nbytes, empty)
            if parts:
                m: Messages = queue.messages(parts)
                queue.outcomes.census(queue.consumer, m.sent_at, RecordState.IN_FLIGHT, m.ids, m.detail(1))
