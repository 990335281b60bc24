"""Reading one shard for one mapping: GetRecords polls (or enhanced fan-out pushes) and waiting lanes.

A polling consumer learns about records only when it polls. An idle shard is polled at a fixed
cadence (Kinesis once a second, DynamoDB four times a second, from the mapping's start); when a
lane finishes and records are already waiting, the shard is read again at once ("back to back").
Each GetRecords call returns at most ``max_records_per_call`` records and ``max_bytes_per_call``
bytes, within the shard's read limits shared by all its polling consumers; a call over the limits
is refused (ReadProvisionedThroughputExceeded) and tried again when they allow.

An enhanced fan-out consumer gets records pushed when they are available, within its own 2 MiB/s
per shard: the delivery times are known as soon as the records are generated, so waking a lane
costs one event.

Lanes wait here for "enough records fetched" or "my batching window ended", whichever comes first;
the reader schedules one wake-up for the earliest of its polls and its lanes' deadlines. Positions
are the shard log's (:class:`esmsim.model.stream_source.ShardLog`).
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import simpy

from esmsim.model.alarm import Alarm
from esmsim.model.records import RecordFifo
from esmsim.model.stream_source import ShardLog, ShardReadLimits, StreamSource, WriteLimiter
from esmsim.observe.levels import BinnedMax, BinnedSum
from esmsim.scenario.sources import KinesisSource


class LaneRows(Protocol):
    """What a waiter needs of its lane: which shard position each of its records has."""

    @property
    def top(self) -> int:
        """One past the lane's last record generated so far."""
        ...

    def row(self, position: int) -> int:
        """The shard position of a lane position."""
        ...


class Waiter:
    """A lane waiting until its record at lane position ``need`` is fetched, or ``deadline``.

    The record may not be generated yet; the reader learns its shard position when it is, so a
    lane wakes only for its own reasons, never because traffic was generated.
    """

    __slots__ = ("deadline", "event", "lane", "need")

    def __init__(self, event: simpy.Event, lane: LaneRows, need: int, deadline: float) -> None:
        self.event = event
        self.lane = lane
        self.need = need
        self.deadline = deadline

    def need_row(self) -> float:
        """The shard position to be fetched (``inf`` while the record is not generated)."""
        lane = self.lane
        return lane.row(self.need) if self.need < lane.top else math.inf


class EfoDelivery:
    """When each record of a shard reaches an enhanced fan-out consumer, block by block."""

    def __init__(self, spec: KinesisSource) -> None:
        self.delay_s = spec.efo_propagation_delay
        self._limiter = WriteLimiter(None, spec.efo_bytes_per_second)
        self.fifo = RecordFifo({"delivered_at": float, "cum": float})
        self._cum = 0.0

    def extend(self, log: ShardLog, start: int, stop: int) -> None:
        """Schedule the deliveries of the shard's new records ``[start, stop)``."""
        if self.fifo.top < start:  # positions align with the shard log's
            gap = start - self.fifo.top
            self.fifo.append({"delivered_at": np.full(gap, -math.inf), "cum": np.full(gap, self._cum)})
        sizes = log.fifo.column("size", start, stop)
        pushed = log.fifo.column("accepted_at", start, stop) + self.delay_s
        cum = self._cum + np.cumsum(sizes)
        self._cum = float(cum[-1])
        self.fifo.append({"delivered_at": self._limiter.accept(pushed, sizes), "cum": cum})


class FetchMarks:
    """When the calls that returned records ended: after each, the position fetched up to and the time.

    A shard position was fetched by the first call whose mark lies past it. Two growable arrays,
    kept from the oldest mark a lane may still ask about (one append per call, no allocation).
    """

    __slots__ = ("_at", "_hi", "_lo", "_top")

    def __init__(self) -> None:
        self._top = np.empty(64, dtype=np.int64)
        self._at = np.empty(64)
        self._lo = self._hi = 0

    def __len__(self) -> int:
        return self._hi - self._lo

    def add(self, top: int, at: float) -> None:
        """A call fetched everything before position ``top`` at ``at``."""
        if self._hi == self._top.shape[0]:
            live = self._hi - self._lo
            size = max(64, 2 * live)
            self._top = np.concatenate([self._top[self._lo : self._hi], np.empty(size - live, np.int64)])
            self._at = np.concatenate([self._at[self._lo : self._hi], np.empty(size - live)])
            self._lo, self._hi = 0, live
        self._top[self._hi] = top
        self._at[self._hi] = at
        self._hi += 1

    def times(self, rows: np.ndarray) -> np.ndarray:
        """When each of the (fetched) shard positions ``rows`` was fetched."""
        lo, hi = self._lo, self._hi
        return self._at[lo:hi][self._top[lo:hi].searchsorted(rows, side="right")]

    def forget_before(self, row: float) -> None:
        """Drop the marks of calls that fetched only positions before ``row``."""
        lo, hi = self._lo, self._hi
        self._lo = lo + int(self._top[lo:hi].searchsorted(row, side="right"))


class ShardReader:
    """The GetRecords side of one (mapping, shard) pair."""

    def __init__(
        self,
        env: simpy.Environment,
        source: StreamSource,
        log: ShardLog,
        limits: ShardReadLimits | None,
        efo: EfoDelivery | None,
        *,
        read_throttled: BinnedSum,
        run_read_throttled: BinnedSum,
        iterator_ages: BinnedMax,
    ) -> None:
        self.env = env
        self.source = source
        self.log = log
        self.fetched = 0  # positions below this are in the consumer's hands (or out of its scope)
        self.limits = limits
        #: Enhanced fan-out: when each position of the shard reaches the consumer (None: polling).
        self.efo = efo
        spec = source.spec
        self.idle_interval = spec.idle_poll_interval
        self.max_records = spec.max_records_per_call
        self.max_bytes = spec.max_bytes_per_call
        self.last_poll_at = 0.0
        self.more_waiting = False  # the last call left available records behind (call limits)
        self._retry_at = 0.0  # after a refused call, the next attempt waits for the limits
        calls_per_s = spec.read_calls_per_second
        self.own_gap = 1.0 / calls_per_s if (calls_per_s and efo is None) else 0.0
        self.waiters: list[Waiter] = []
        self._alarm = Alarm(env, self._wake)
        self._ran_dry = False  # when last planned, every generated record had been fetched
        self.calls = 0
        self.empty_calls = 0
        self.read_throttles = 0
        self._read_throttled = read_throttled
        self._run_read_throttled = run_read_throttled
        self._iterator_ages = iterator_ages
        self.bytes_read = 0.0
        # When rows were fetched, for the latency's parts: after each call that returned records,
        # the position fetched up to and the time; kept until every lane has taken its rows.
        self._marks = FetchMarks()
        self._delivered = 0  # enhanced fan-out: positions delivered when last asked
        #: When the mapping began reading the shard (a resharding's child: once its parents drained).
        self.active_from = -math.inf

    def skip_to(self, position: int) -> None:
        """The mapping's scope starts at ``position``: nothing before it is read."""
        self.fetched = max(self.fetched, position)

    # ------------------------------------------------------------------ for lanes
    def fetched_by(self, now: float) -> int:
        """Positions fetched by ``now`` (for enhanced fan-out: delivered)."""
        efo = self.efo
        if efo is not None:
            fifo = efo.fifo
            if fifo.top == fifo.low or fifo.at("delivered_at", fifo.top - 1) <= now:
                delivered = fifo.top
            else:
                delivered = fifo.search("delivered_at", now, "right")
            self._delivered = delivered
            return max(delivered, self.fetched)
        return self.fetched

    def fetch_times(self, rows: np.ndarray) -> np.ndarray:
        """When each of the shard positions ``rows`` (all fetched) reached the consumer."""
        efo = self.efo
        if efo is not None:
            # A child shard's subscription starts once its parents are drained.
            return np.asarray(np.maximum(efo.fifo.gather("delivered_at", rows), self.active_from))
        return self._marks.times(rows)

    def holds_many(self) -> bool:
        """Whether enough fetch times are kept that the lanes should let go of the old ones."""
        efo = self.efo
        return len(efo.fifo) > 4096 if efo is not None else len(self._marks) > 256

    def forget_before(self, row: float) -> None:
        """No lane will ask :meth:`fetch_times` for a position before ``row`` again."""
        efo = self.efo
        if efo is not None:
            # The last one delivered keeps the running byte count (bytes_delivered).
            efo.fifo.drop_before(int(min(row, self._delivered - 1)))
            return
        self._marks.forget_before(row)

    def wait(self, lane: LaneRows, need: int, deadline: float, now: float) -> simpy.Event:
        """An event that fires once ``lane``'s record at position ``need`` is fetched, or at ``deadline``."""
        waiter = Waiter(self.env.event(), lane, need, deadline)
        self.waiters.append(waiter)
        self._reschedule(now)
        return waiter.event

    def release(self, lane: LaneRows, now: float) -> None:
        """Wake ``lane`` if it waits here (its shard's lanes are being rebuilt, or the shard closed)."""
        mine = [w for w in self.waiters if w.lane is lane]
        if not mine:
            return
        self.waiters = [w for w in self.waiters if w.lane is not lane]
        for w in mine:
            w.event.succeed()
        self._reschedule(now)

    def on_extend(self, now: float) -> None:
        """More records were generated: waiting lanes may now have a poll (or a push) to wait for.

        A polling reader that still had records to fetch already has its next poll planned: asking
        again now would read the waiting ones "back to back" at this arbitrary moment. Only a reader
        that had run out of known records plans anew.
        """
        if self.waiters and (self.efo is not None or self._ran_dry):
            self._reschedule(now)

    def top_up(self, now: float) -> None:
        """Read what is waiting in the shard now, if a call is due.

        The poller keeps reading back to back while a lane is busy, so a lane forming a batch sees
        what arrived meanwhile.
        """
        if self.efo is not None or self.fetched >= self.log.fifo.top:
            return
        if self.log.fifo.at("available_at", self.fetched) <= now and self._next_poll(now) <= now:
            self._poll(now)

    # ------------------------------------------------------------------ polling
    def _next_poll(self, now: float) -> float:
        """When the shard will next be read, if a lane needs records (``inf`` if none is known)."""
        fifo = self.log.fifo
        if self.fetched >= fifo.top:
            return math.inf
        available = fifo.at("available_at", self.fetched)
        if available <= now:
            at = now  # records are waiting: read them back to back
        else:
            # Idle: polls fall every idle_interval after the last one; the first after `available`.
            ticks = math.ceil((available - self.last_poll_at) / self.idle_interval - 1e-9)
            # Never before the record is available: when the tolerance above rounds the tick count
            # down, that poll would find nothing and plan itself again at the same instant, forever.
            at = max(self.last_poll_at + max(ticks, 0) * self.idle_interval, available)
        # A consumer paces its own calls to the shard's call rate; only other consumers' calls can
        # get one refused.
        return max(at, self._retry_at, self.last_poll_at + self.own_gap if self.calls else 0.0)

    def _poll(self, now: float) -> None:
        """One GetRecords call (or a refused one) at ``now``."""
        log = self.log
        fifo = log.fifo
        if self.limits is not None and self.limits.ready_at(now) > now:
            # Another consumer used the shard's read throughput: this call is refused.
            self.read_throttles += 1
            self._read_throttled.add(now)
            self._run_read_throttled.add(now)
            self._retry_at = self.limits.ready_at(now)
            return
        top = fifo.top
        # GetRecords never returns records past their retention: start after them.
        retention = self.source.retention_s
        if self.fetched < top and fifo.at("accepted_at", self.fetched) + retention <= now:
            self.fetched = fifo.search("accepted_at", now - retention, "right", start=self.fetched)
        available = fifo.search("available_at", now, "right", start=self.fetched) - self.fetched
        count = min(available, self.max_records)
        budget = self.max_bytes
        if self.limits is not None:
            # What the shard's byte bucket still allows (a call returns at least one record).
            budget = min(budget, self.limits.bytes_available(now))
        if count:
            start = self.fetched
            before = fifo.at("cum", start) - fifo.at("size", start)
            cum = fifo.column("cum", start, start + count)
            fits = int(cum.searchsorted(before + budget, side="right"))
            count = max(1, min(count, fits))  # a call always returns at least one record
        self.calls += 1
        self.last_poll_at = now
        if count == 0:
            self.empty_calls += 1
            self.more_waiting = False
            return
        nbytes = log.bytes_between(self.fetched, self.fetched + count)
        if self.limits is not None:
            self.limits.spend(now, nbytes)
        self.bytes_read += nbytes
        self.fetched += count
        self._marks.add(self.fetched, now)
        self.more_waiting = count < available
        age = now - fifo.at("accepted_at", self.fetched - 1)
        self._iterator_ages.add(now, age * 1000.0)

    # ------------------------------------------------------------------ waking lanes
    def _reschedule(self, now: float) -> None:
        if not self.waiters:
            return
        t = min(w.deadline for w in self.waiters)
        efo = self.efo
        if efo is not None:
            fifo = efo.fifo
            for w in self.waiters:
                row = w.need_row()
                if fifo.low <= row < fifo.top:
                    t = min(t, fifo.at("delivered_at", int(row)))
        elif any(w.need_row() >= self.fetched for w in self.waiters):
            t = min(t, self._next_poll(now))
        self._ran_dry = self.fetched >= self.log.fifo.top
        self._alarm.request(t, now)

    def _wake(self, now: float) -> None:
        needy = self.efo is None and any(w.need_row() >= self.fetched for w in self.waiters)
        if needy and self._next_poll(now) <= now:
            self._poll(now)
        fetched = self.fetched_by(now)
        still = []
        for w in self.waiters:
            if w.need_row() < fetched or w.deadline <= now:
                w.event.succeed()
            else:
                still.append(w)
        self.waiters = still
        self._reschedule(now)

    def bytes_delivered(self, end: float) -> float:
        """Bytes an enhanced fan-out consumer received by ``end`` (GetRecords bytes for polling)."""
        efo = self.efo
        if efo is None:
            return self.bytes_read
        delivered = min(self.fetched_by(end), efo.fifo.top)
        return efo.fifo.at("cum", delivered - 1) if delivered > 0 else 0.0
