"""Reading one shard for one mapping: GetRecords polls (or enhanced fan-out pushes) and waiting lanes.

A polling consumer learns about records only when it polls. An idle shard is polled at a fixed
cadence (Kinesis once a second, DynamoDB four times a second, from the mapping's start); when a
lane finishes and records are already waiting, the shard is read again at once ("back to back").
Each GetRecords call returns at most ``max_records_per_call`` records and ``max_bytes_per_call``
bytes, within the shard's read limits shared by all its polling consumers; a call over the limits
is refused (ReadProvisionedThroughputExceeded) and tried again when they allow.

An enhanced fan-out consumer gets records pushed when they are available, within its own 2 MiB/s
per shard: the delivery times are known in advance, so waking a lane costs one event.

Lanes wait here for "enough records fetched" or "my batching window ended", whichever comes first;
the reader schedules one wake-up for the earliest of its polls and its lanes' deadlines.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from esmsim.model.alarm import Alarm
from esmsim.model.stream_source import ShardReadLimits, StreamRecords

if TYPE_CHECKING:
    import simpy


class Waiter:
    """A lane waiting for records: until row ``need_row`` is fetched, or ``deadline``."""

    __slots__ = ("deadline", "event", "need_row")

    def __init__(self, event: simpy.Event, need_row: int, deadline: float) -> None:
        self.event = event
        self.need_row = need_row
        self.deadline = deadline


class ShardReader:
    """The GetRecords side of one (mapping, shard) pair."""

    def __init__(
        self,
        env: simpy.Environment,
        stream: StreamRecords,
        shard: int,
        start_row: int,
        limits: ShardReadLimits | None,
        delivery_at: np.ndarray | None,
    ) -> None:
        self.env = env
        self.stream = stream
        self.lo = int(stream.offsets[shard])
        self.hi = int(stream.offsets[shard + 1])
        self.fetched = max(self.lo, start_row)  # rows below this are in the consumer's hands
        self.limits = limits
        #: Enhanced fan-out: when each row of the shard reaches the consumer (None: polling).
        self.delivery_at = delivery_at
        spec = stream.spec
        self.idle_interval = spec.idle_poll_interval
        self.max_records = spec.max_records_per_call
        self.max_bytes = spec.max_bytes_per_call
        self.last_poll_at = 0.0
        self.more_waiting = False  # the last call left available records behind (call limits)
        self._retry_at = 0.0  # after a refused call, the next attempt waits for the limits
        calls_per_s = stream.spec.read_calls_per_second
        self.own_gap = 1.0 / calls_per_s if (calls_per_s and delivery_at is None) else 0.0
        self.waiters: list[Waiter] = []
        self._alarm = Alarm(env, self._wake)
        # Observations, read by the mapping afterwards.
        self.calls = 0
        self.empty_calls = 0
        self.throttled_calls: list[float] = []
        self.record_ages: list[tuple[float, float]] = []  # (poll time, GetRecords.IteratorAge in s)
        self.bytes_read = 0.0

    # ------------------------------------------------------------------ for lanes
    def fetched_by(self, now: float) -> int:
        """Rows fetched by ``now`` (for enhanced fan-out: delivered)."""
        if self.delivery_at is not None:
            return self.lo + int(self.delivery_at.searchsorted(now, side="right"))
        return self.fetched

    def wait(self, need_row: int, deadline: float, now: float) -> simpy.Event:
        """An event that fires once row ``need_row`` is fetched or at ``deadline``."""
        waiter = Waiter(self.env.event(), need_row, deadline)
        self.waiters.append(waiter)
        self._reschedule(now)
        return waiter.event

    def top_up(self, now: float) -> None:
        """Read what is waiting in the shard now, if a call is due.

        The poller keeps reading back to back while a lane is busy, so a lane forming a batch sees
        what arrived meanwhile.
        """
        if self.delivery_at is not None or self.fetched >= self.hi:
            return
        if self.stream.available_at[self.fetched] <= now and self._next_poll(now) <= now:
            self._poll(now)

    # ------------------------------------------------------------------ polling
    def _next_poll(self, now: float) -> float:
        """When the shard will next be read, if a lane needs records (``inf`` if nothing will come)."""
        stream = self.stream
        if self.fetched >= self.hi:
            return math.inf
        available = float(stream.available_at[self.fetched])
        if available <= now:
            at = now  # records are waiting: read them back to back
        else:
            # Idle: polls fall every idle_interval after the last one; the first after `available`.
            ticks = math.ceil((available - self.last_poll_at) / self.idle_interval - 1e-9)
            at = self.last_poll_at + max(ticks, 0) * self.idle_interval
        # A consumer paces its own calls to the shard's call rate; only other consumers' calls can
        # get one refused.
        return max(at, self._retry_at, self.last_poll_at + self.own_gap if self.calls else 0.0)

    def _poll(self, now: float) -> None:
        """One GetRecords call (or a refused one) at ``now``."""
        stream = self.stream
        if self.limits is not None and self.limits.ready_at(now) > now:
            # Another consumer used the shard's read throughput: this call is refused.
            self.throttled_calls.append(now)
            self._retry_at = self.limits.ready_at(now)
            return
        # GetRecords never returns records past their retention: start after them.
        if self.fetched < self.hi and stream.accepted_at[self.fetched] + stream.retention_s <= now:
            cutoff = now - stream.retention_s
            self.fetched += int(stream.accepted_at[self.fetched : self.hi].searchsorted(cutoff, side="right"))
        available = int(stream.available_at[self.fetched : self.hi].searchsorted(now, side="right"))
        count = min(available, self.max_records)
        budget = self.max_bytes
        if self.limits is not None:
            budget = min(budget, max(self.limits.bytes_available(now), stream.max_size))
        if count:
            start = self.fetched
            before = float(stream.cum_size[start - 1]) if start else 0.0
            fits = int(stream.cum_size[start : start + count].searchsorted(before + budget, side="right"))
            count = max(1, min(count, fits))  # a call always returns at least one record
        self.calls += 1
        self.last_poll_at = now
        if count == 0:
            self.empty_calls += 1
            self.more_waiting = False
            return
        nbytes = stream.bytes_between(self.fetched, self.fetched + count)
        if self.limits is not None:
            self.limits.spend(now, nbytes)
        self.bytes_read += nbytes
        self.fetched += count
        self.more_waiting = count < available
        self.record_ages.append((now, now - float(stream.accepted_at[self.fetched - 1])))

    # ------------------------------------------------------------------ waking lanes
    def _reschedule(self, now: float) -> None:
        if not self.waiters:
            return
        t = min(w.deadline for w in self.waiters)
        if self.delivery_at is not None:
            for w in self.waiters:
                if w.need_row < self.hi:
                    t = min(t, float(self.delivery_at[w.need_row - self.lo]))
        elif any(w.need_row >= self.fetched for w in self.waiters):
            t = min(t, self._next_poll(now))
        self._alarm.request(t, now)

    def _wake(self, now: float) -> None:
        needy = self.delivery_at is None and any(w.need_row >= self.fetched for w in self.waiters)
        if needy and self._next_poll(now) <= now:
            self._poll(now)
        fetched = self.fetched_by(now)
        still = []
        for w in self.waiters:
            if w.need_row < fetched or w.deadline <= now:
                w.event.succeed()
            else:
                still.append(w)
        self.waiters = still
        self._reschedule(now)
