"""A Kinesis or DynamoDB stream mapping: per shard, ``parallelization_factor`` lanes in key order.

Each shard is split into lanes by partition key (one lane when the factor is 1); a lane processes
its records strictly in order, one batch at a time, so records of one key are never processed
concurrently or out of order and a shard runs at most ``parallelization_factor`` batches at once.

A lane forms a batch when it has ``batch_size`` records fetched, the 6 MB payload is reached, or its
batching window has passed: the window starts when the lane's previous invocation completes (AWS).
A failing batch blocks its lane: it is retried (after ``retry_backoff``) until it succeeds, its
records expire or grow older than ``maximum_record_age``, or it has failed more than
``maximum_retry_attempts`` times; bisect splits it instead, and a partial batch response resumes at
the lowest failed record. Discarded records go to the on-failure destination or are dropped.
Throttled invokes are retried without counting as retries.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from esmsim.dists import UniformSource
from esmsim.model.function import PARTIAL, SUCCESS, LambdaFunction
from esmsim.model.records import DLQ, DROPPED, EXPIRED, SUCCEEDED, Ids
from esmsim.model.sqs_queue import PAYLOAD_LIMIT_BYTES
from esmsim.model.stream_reader import ShardReader
from esmsim.model.stream_retry import backoff, bisect, checkpoint, retries_exhausted, retry_delay
from esmsim.model.stream_source import ShardReadLimits, StreamRecords, efo_delivery
from esmsim.rng import Streams
from esmsim.scenario.mappings import StreamMapping
from esmsim.scenario.sources import KinesisSource


class Pending:
    """A batch a lane is working on: lane positions ``[start, end)``, failures so far, earliest retry."""

    __slots__ = ("end", "failures", "not_before", "start", "throttles")

    def __init__(self, start: int, end: int, failures: int = 0, not_before: float = 0.0) -> None:
        self.start = start
        self.end = end
        self.failures = failures
        self.not_before = not_before
        self.throttles = 0


class Lane:
    """One ordered sub-stream of a shard (all of it when the parallelization factor is 1)."""

    __slots__ = (
        "accepted",
        "pending",
        "pos",
        "reader",
        "rows",
        "shard",
        "size",
        "start_row",
        "trim_after",
        "window_start",
    )

    def __init__(
        self,
        shard: int,
        reader: ShardReader,
        rows: np.ndarray | None,
        start_row: int,
        stop_row: int,
        accepted: np.ndarray,
    ) -> None:
        self.shard = shard
        self.reader = reader
        #: Stream rows of the lane in order; None when the lane is the contiguous run [start_row, ...).
        self.rows = rows
        self.start_row = start_row
        self.size = int(rows.size) if rows is not None else stop_row - start_row
        self.accepted = accepted  # accepted_at of the lane's rows, in order
        self.pos = 0  # lane positions below this are in a batch already (or finished)
        self.pending: deque[Pending] = deque()
        self.window_start = 0.0
        self.trim_after = -math.inf  # no record of the lane expires or ages out before this time

    def ids(self, start: int, end: int) -> Ids:
        """Stream rows of lane positions ``[start, end)``."""
        if self.rows is None:
            return slice(self.start_row + start, self.start_row + end)
        return self.rows[start:end]

    def row(self, position: int) -> int:
        """The stream row at a lane position."""
        return self.start_row + position if self.rows is None else int(self.rows[position])

    def fetched(self, fetched_row: int) -> int:
        """How many of the lane's rows lie below ``fetched_row``."""
        if self.rows is None:
            return max(0, min(fetched_row - self.start_row, self.size))
        return int(self.rows.searchsorted(fetched_row))


class StreamMappingRuntime:
    """One stream mapping during a run: its readers, lanes and its own view of every record."""

    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        spec: StreamMapping,
        stream: StreamRecords,
        limits: list[ShardReadLimits],
        function: LambdaFunction,
        invocations: list[tuple[Any, ...]],
        throttles: list[tuple[Any, ...]],
        streams: Streams,
    ) -> None:
        self.env = env
        self.index = index
        self.spec = spec
        self.stream = stream
        self.function = function
        self._log_invocation = invocations.append
        self._log_throttle = throttles.append
        self.jitter = UniformSource(streams.get("retry_jitter", f"mappings[{index}]"))
        n = len(stream)
        #: This mapping's outcome for every record of the stream (streams are not consumed).
        self.state = np.zeros(n, dtype=np.int8)
        self.done_at = np.zeros(n)
        self.in_scope = np.zeros(n, dtype=bool)
        self.discarded_batches = 0  # batches sent to the destination, or dropped
        self.finished = np.zeros(stream.shards, dtype=np.int64)  # records finished per shard
        self.readers: list[ShardReader] = []
        self.lanes: list[Lane] = []
        self.shard_rows: list[tuple[int, int]] = []  # per shard, the rows this mapping reads
        src = stream.spec
        efo = spec.enhanced_fan_out
        # Enhanced fan-out is Kinesis only (the scenario rules refuse it on DynamoDB streams).
        assert not efo or isinstance(src, KinesisSource)
        for shard in range(stream.shards):
            lo, hi = int(stream.offsets[shard]), int(stream.offsets[shard + 1])
            start = lo + self._start_offset(lo, hi)
            self.in_scope[start:hi] = True
            self.shard_rows.append((start, hi))
            delivery = None
            if efo:
                assert isinstance(src, KinesisSource)
                pushed = stream.accepted_at[lo:hi] + src.efo_propagation_delay
                delivery = efo_delivery(pushed, stream.table.size[lo:hi], src.efo_bytes_per_second)
            reader = ShardReader(env, stream, shard, start, None if efo else limits[shard], delivery)
            self.readers.append(reader)
            factor = spec.parallelization_factor
            if factor == 1:
                self.lanes.append(Lane(shard, reader, None, start, hi, stream.accepted_at[start:hi]))
                continue
            lane_of = np.minimum((stream.key_lane_draw[start:hi] * factor).astype(np.int64), factor - 1)
            for lane in range(factor):
                rows = start + np.flatnonzero(lane_of == lane)
                self.lanes.append(Lane(shard, reader, rows, start, hi, stream.accepted_at[rows]))

    def _start_offset(self, lo: int, hi: int) -> int:
        """Rows of a shard before the mapping's starting position."""
        position = self.spec.starting_position
        if position == "TRIM_HORIZON":
            return 0
        if position == "LATEST":
            return int(np.count_nonzero(self.stream.initial[lo:hi]))
        ts = self.spec.starting_position_timestamp or 0.0
        return int(self.stream.accepted_at[lo:hi].searchsorted(ts, side="left"))

    def start(self) -> None:
        """Start one process per lane."""
        if not self.spec.enabled:
            return
        for lane in self.lanes:
            if lane.size:
                self.env.process(self._lane(lane))

    # ------------------------------------------------------------------ outcomes
    def _finish(self, lane: Lane, start: int, end: int, state: int, at: float | np.ndarray) -> None:
        ids = lane.ids(start, end)
        self.state[ids] = state
        self.done_at[ids] = at
        self.finished[lane.shard] += end - start

    def _discard(self, lane: Lane, start: int, end: int, now: float) -> None:
        """Records given up on: to the on-failure destination, or dropped."""
        if end > start:
            self._finish(lane, start, end, DLQ if self.spec.on_failure else DROPPED, now)
            self.discarded_batches += 1

    def _trim(self, lane: Lane, start: int, end: int, now: float) -> int:
        """Expire or discard the records at the front of ``[start, end)`` that may no longer be sent."""
        if now < lane.trim_after or start >= end:
            return start
        accepted = lane.accepted
        retention = self.stream.retention_s
        if accepted[start] + retention <= now:
            cut = start + int(accepted[start:end].searchsorted(now - retention, side="right"))
            self._finish(lane, start, cut, EXPIRED, accepted[start:cut] + retention)
            start = cut
        age = self.spec.maximum_record_age
        if age >= 0 and start < end and accepted[start] < now - age:
            cut = start + int(accepted[start:end].searchsorted(now - age, side="left"))
            self._discard(lane, start, cut, now)
            start = cut
        if start < end and start == min(lane.pos, (lane.pending[0].start if lane.pending else lane.pos)):
            # Records behind the lane's oldest unfinished one are younger: nothing to check before this.
            limit = retention if age < 0 else min(retention, age)
            lane.trim_after = float(accepted[start]) + limit
        return start

    # ------------------------------------------------------------------ the lane
    def _next(self, lane: Lane, now: float) -> Pending | float | simpy.Event | None:
        """The batch to invoke now, or what to wait for: a time, an event, or None (no more records)."""
        while lane.pending:
            batch = lane.pending[0]
            if now < batch.not_before:
                return batch.not_before
            batch.start = self._trim(lane, batch.start, batch.end, now)
            if batch.start < batch.end:
                return batch
            lane.pending.popleft()
        if lane.pos < lane.size:
            lane.pos = self._trim(lane, lane.pos, lane.size, now)
        if lane.pos >= lane.size:
            return None
        reader = lane.reader
        fetched = lane.fetched(reader.fetched_by(now)) - lane.pos
        if fetched < self.spec.batch_size:
            reader.top_up(now)
            fetched = lane.fetched(reader.fetched_by(now)) - lane.pos
        batch_size = self.spec.batch_size
        window_end = lane.window_start + self.spec.batching_window
        if fetched <= 0:
            return lane.reader.wait(lane.row(lane.pos), math.inf, now)
        n = min(fetched, batch_size)
        n, capped = self._fit(lane, lane.pos, n)
        if n >= batch_size or capped or now >= window_end:
            batch = Pending(lane.pos, lane.pos + n)
            lane.pos += n
            lane.pending.append(batch)
            return batch
        wanted = min(batch_size, lane.size - lane.pos)
        if fetched >= wanted:
            # Every record the lane will ever see is in hand and the batch is still short of the batch
            # size: only the window's end is left to wait for (waiting on a fetched row would wake
            # at once, again and again).
            return float(window_end)
        return lane.reader.wait(lane.row(lane.pos + wanted - 1), window_end, now)

    def _fit(self, lane: Lane, start: int, n: int) -> tuple[int, bool]:
        """How many of ``n`` records from ``start`` fit the 6 MB payload; whether the cap bound."""
        src = self.stream.spec
        per_record_max = self.stream.max_size * src.payload_expansion + src.record_overhead
        if n * per_record_max <= PAYLOAD_LIMIT_BYTES:
            return n, False
        sizes = (
            self.stream.table.size[lane.ids(start, start + n)] * src.payload_expansion + src.record_overhead
        )
        fits = int(np.cumsum(sizes).searchsorted(PAYLOAD_LIMIT_BYTES, side="right"))
        return max(1, min(n, fits)), fits < n

    def _lane(self, lane: Lane) -> Generator[simpy.Event, Any, None]:
        env = self.env
        function = self.function
        spec = self.spec
        records = self.stream.table
        accepted_at = self.stream.accepted_at
        while True:
            now = env.now
            nxt = self._next(lane, now)
            if nxt is None:
                return
            if isinstance(nxt, float):
                yield env.timeout(nxt - now)
                continue
            if not isinstance(nxt, Pending):
                yield nxt
                continue
            batch = nxt
            kind = function.acquire(now)
            if kind < 0:
                # Throttled: retried with backoff, not counted against maximum_retry_attempts.
                self._log_throttle((now, function.index, self.index, -kind))
                retry = spec.throttle_retry
                batch.throttles += 1
                batch.not_before = now + backoff(
                    batch.throttles, retry.initial, retry.multiplier, retry.maximum
                )
                continue
            batch.throttles = 0
            n = batch.end - batch.start
            ids = lane.ids(batch.start, batch.end)
            init_s, run_s, outcome, failed = function.plan(
                now, kind, n, ids, records, spec.report_batch_item_failures
            )
            busy_s = init_s + run_s
            end = now + busy_s
            age = now - float(accepted_at[lane.row(batch.end - 1)])  # IteratorAge: the batch's last record
            self._log_invocation(
                (now, end, function.index, self.index, n, outcome, init_s, run_s, kind, age, lane.shard)
            )
            yield env.timeout(busy_s)
            function.release(end, kind)
            lane.window_start = end
            if outcome == SUCCESS:
                self._finish(lane, batch.start, batch.end, SUCCEEDED, end)
                lane.pending.popleft()
                continue
            done = 0
            if outcome == PARTIAL:
                assert failed is not None
                done = checkpoint(failed)
                self._finish(lane, batch.start, batch.start + done, SUCCEEDED, end)
                batch.start += done
                n -= done
            if spec.bisect_batch_on_function_error and n > 1 and done == 0:
                # With item failures too, AWS bisects at the returned sequence number: the part
                # before it is done above; a batch whose first record failed is split in halves.
                lane.pending.popleft()
                first, second = bisect(batch.start, batch.end)
                lane.pending.appendleft(Pending(*second, batch.failures, end))
                lane.pending.appendleft(Pending(*first, batch.failures, end))
                continue
            batch.failures += 1
            if retries_exhausted(batch.failures, spec.maximum_retry_attempts):
                self._discard(lane, batch.start, batch.end, end)
                lane.pending.popleft()
            else:
                batch.not_before = end + retry_delay(batch.failures, spec.retry_backoff, self.jitter.next())

    def shard_backlog(self, now: float) -> np.ndarray:
        """Records each shard has received (within the mapping's scope) and the mapping not finished."""
        accepted = self.stream.accepted_at
        arrived = np.array([accepted[lo:hi].searchsorted(now, side="right") for lo, hi in self.shard_rows])
        return np.maximum(arrived - self.finished, 0)

    def finish(self, end: float) -> None:
        """Records still unprocessed whose retention ended before the end of the run expire."""
        pending = self.in_scope & (self.state < SUCCEEDED)
        expiry = self.stream.accepted_at + self.stream.retention_s
        gone = pending & (expiry <= end)
        self.state[gone] = EXPIRED
        self.done_at[gone] = expiry[gone]
