"""An Amazon MQ broker queue: its waiting messages as numpy columns, oldest first (docs/model.md §17).

A broker queue hands messages to the mapping's consumers in the order they were sent; what a
consumer takes leaves the queue (it is then in flight until the consumer acknowledges it, or
the broker gives up on it). Messages are data: send times, sizes, ids and poison draws in
arrays that grow by blocks of traffic and are compacted as the head moves, never one SimPy
event per message. With a ``message_ttl`` the broker expires waiting messages itself, checked
at most once a second (:data:`EXPIRY_TICK_S`) so expiry costs no event per message; each ends
at its own expiry time.

The queue's size (ActiveMQ's ``QueueSize``, RabbitMQ's ``MessageCount``: waiting plus delivered
but unacknowledged) is a level the queue and its mapping write together: +1 when a message is
sent, -1 when it ends (acknowledged, filtered, expired, dead-lettered or dropped).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from esmsim.events import RecordState
from esmsim.observe.levels import BinnedLevel
from esmsim.observe.recorder import Recorder

#: How often, at most, the broker looks for expired waiting messages (an expiry is recorded at its
#: own time; only noticing it may lag by this much).
EXPIRY_TICK_S = 1.0


class MqBroker:
    """One broker queue's waiting messages (see the module docstring)."""

    def __init__(
        self,
        env: simpy.Environment,
        name: str,
        consumer: int,
        recorder: Recorder,
        *,
        ttl_s: float | None,
        draws: bool,
        levels: tuple[BinnedLevel, ...],
    ) -> None:
        self.env = env
        self.name = name
        self.consumer = consumer
        self.outcomes = recorder.outcomes
        self.ttl_s = ttl_s
        self.draws = draws
        #: The queue size and, when it is not the same level, the run's backlog.
        self.levels = levels
        self.sent = np.empty(0)
        self.size = np.empty(0)
        self.ids = np.empty(0, dtype=np.int64)
        self.draw: np.ndarray | None = np.empty(0) if draws else None
        self.head = 0  # the oldest waiting message's row
        self._next_id = 0
        #: Every message sent before this time is in the arrays (``inf`` once all are).
        self.horizon = -math.inf
        #: Succeeds when a block of messages is added (consumers waiting for more wake on it).
        self.extended = env.event()

    # ------------------------------------------------------------------ the producers' side
    def extend(self, block: dict[str, np.ndarray], horizon: float) -> None:
        """Append a block of newly generated messages (sent after every earlier one)."""
        sent = block["sent_at"]
        n = sent.shape[0]
        self.horizon = horizon
        if n:
            if self.head > 4096 and self.head * 2 > self.sent.shape[0]:
                self._compact()
            self.sent = np.concatenate([self.sent, sent])
            self.size = np.concatenate([self.size, block["size"]])
            self.ids = np.concatenate([self.ids, np.arange(self._next_id, self._next_id + n, dtype=np.int64)])
            if self.draw is not None:
                self.draw = np.concatenate([self.draw, block["draw"]])
            self._next_id += n
            self.outcomes.arrived(self.consumer, n)
            for level in self.levels:
                level.add_many(sent, 1.0)
        event, self.extended = self.extended, self.env.event()
        event.succeed()

    def _compact(self) -> None:
        h = self.head
        self.sent, self.size, self.ids = self.sent[h:], self.size[h:], self.ids[h:]
        if self.draw is not None:
            self.draw = self.draw[h:]
        self.head = 0

    # ------------------------------------------------------------------ the consumers' side
    @property
    def rows(self) -> int:
        """Rows generated (waiting or still to be sent)."""
        return int(self.sent.shape[0])

    def end(self, start: int, stop: int, state: RecordState, done: float | np.ndarray, **more: Any) -> None:
        """Messages ``[start, stop)`` (rows at the head) reached a final state at ``done``."""
        if stop <= start:
            return
        sent = self.sent[start:stop]
        self.outcomes.ended(self.consumer, sent, done, int(state), ids=self.ids[start:stop], **more)
        at = done if isinstance(done, np.ndarray) else np.full(stop - start, done)
        for level in self.levels:
            level.add_many(at, -1.0)

    def expire(self, now: float) -> None:
        """Waiting messages past their time to live leave the queue, each at its expiry time."""
        ttl = self.ttl_s
        if ttl is None or self.head >= self.rows:
            return
        stop = int(np.searchsorted(self.sent, now - ttl, side="right"))
        stop = max(stop, self.head)
        if stop > self.head:
            self.end(self.head, stop, RecordState.EXPIRED, self.sent[self.head : stop] + ttl)
            self.head = stop

    def oldest_age(self, now: float) -> float:
        """How long the oldest message waiting at ``now`` has waited (0: none waits); read-only."""
        h = self.head
        if h >= self.rows or self.sent[h] > now:
            return 0.0
        return now - float(self.sent[h])

    def next_expiry(self) -> float:
        """When the oldest waiting message expires (``inf``: never, or nothing waits)."""
        if self.ttl_s is None or self.head >= self.rows:
            return math.inf
        return float(self.sent[self.head]) + self.ttl_s

    def expiry(self) -> Generator[simpy.Event, Any, None]:
        """The broker's own expiry of waiting messages, at most every :data:`EXPIRY_TICK_S`."""
        env = self.env
        while True:
            self.expire(env.now)
            due = self.next_expiry()
            if due == math.inf:
                yield self.extended
                continue
            yield env.timeout(max(due - env.now, EXPIRY_TICK_S))

    def finish(self, end: float) -> None:
        """At the end of the run: what still waits in the queue is counted as waiting."""
        self.expire(end)
        h, top = self.head, self.rows
        if top > h:
            self.outcomes.census(self.consumer, self.sent[h:top], RecordState.WAITING, ids=self.ids[h:top])
