"""A Kinesis or DynamoDB stream mapping: per shard, ``parallelization_factor`` lanes in key order.

Each shard is split into lanes by partition key (one lane when the factor is 1); a lane processes
its records strictly in order, one batch at a time, so records of one key are never processed
concurrently or out of order and a shard runs at most ``parallelization_factor`` batches at once.
A lane keeps its own copy of the records it has yet to finish (:class:`~esmsim.model.stream_lanes.Lane`),
so a stalled lane holds its own backlog and nothing else. A live change of the factor rebuilds a
shard's lanes once none of them holds a batch (:mod:`esmsim.model.stream_lanes`). After a live
change of the shard count, a child shard is read only once every parent shard is drained
(:class:`~esmsim.scenario.shard_plan.ShardPlan`).

A lane forms a batch when it has ``batch_size`` records fetched, the 6 MB payload is reached, or its
batching window has passed: the window starts when the lane's previous invocation completes (AWS).
A failing batch blocks its lane (and, with ``checkpoint: shard``, keeps the shard's other lanes from
starting new batches until it is resolved): it is retried (after ``retry_backoff``) until it succeeds, its
records expire or grow older than ``maximum_record_age``, or it has failed more than
``maximum_retry_attempts`` times; bisect splits it instead, and a partial batch response resumes at
the lowest failed record. Discarded records go to the on-failure destination or are dropped.
Throttled invokes are retried by the invoke step without counting as retries.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from esmsim.dists import UniformSource
from esmsim.events import Outcome, RecordState
from esmsim.model.filtering import RecordFilter
from esmsim.model.invoke import GAVE_UP, PAYLOAD_LIMIT_BYTES, Invoked, Invoker, fit_payload
from esmsim.model.stream_batch import Pending
from esmsim.model.stream_filtering import FilteredLanes, bisect_matching, first_failed_offset
from esmsim.model.stream_lanes import Lane, ShardLanes, split_by_key
from esmsim.model.stream_reader import EfoDelivery, ShardReader
from esmsim.model.stream_retry import bisect, checkpoint, retries_exhausted, retry_delay
from esmsim.model.stream_source import ShardLog, ShardReadLimits, StreamSource
from esmsim.observe.recorder import Recorder
from esmsim.rng import Streams
from esmsim.scenario.mappings import StreamMapping
from esmsim.scenario.sources import KinesisSource

_SUCCESS, _PARTIAL = int(Outcome.SUCCESS), int(Outcome.PARTIAL)
#: What :meth:`StreamMappingRuntime._next` returns to a lane whose work is over (rebuilt or drained).
_CLOSED = None


class StreamMappingRuntime(FilteredLanes):
    """One stream mapping during a run: its readers, lanes and its own view of every record."""

    #: The summary total the readers' fetch calls add to (None: not a GetRecords call).
    FETCH_CALLS: str | None = "getrecords_calls"

    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        label: str,
        spec: StreamMapping,
        source: StreamSource,
        limits: list[ShardReadLimits],
        invoker: Invoker,
        recorder: Recorder,
        consumer: int,
        streams: Streams,
    ) -> None:
        self.env = env
        self.index = index
        self.spec = spec
        self._started = False
        self._resumed = env.event()  # succeeds when a live change enables the mapping again
        self.source = source
        self.invoker = invoker
        self.recorder = recorder
        self.outcomes = recorder.outcomes
        self.consumer = consumer
        self.jitter = UniformSource(streams.get("retry_jitter", f"mappings[{index}]"))
        self._streams = streams
        #: The mapping's filter (None: every record matches), read as each batch forms; ``filtering``
        #: stays True once any filter was used, as records of earlier batches keep its decisions.
        self.filter: RecordFilter | None = self._filter_of(spec)
        self.filtering = self.filter is not None
        src = source.spec
        self.expansion = src.payload_expansion
        self.overhead = src.record_overhead
        self.draws = source.draws
        self.stream_backlog = recorder.level("stream_backlog")
        self.backlog = recorder.level("backlog")
        plan = source.plan  # every shard the run has, a resharding's children included
        shards = plan.total
        self.finished = np.zeros(shards, dtype=np.int64)  # records finished per shard
        self.arrived = recorder.tally(f"shard_records:{index}", shards)  # in-scope records per shard
        self.scope_start = np.full(shards, -1, dtype=np.int64)  # first in-scope position per shard
        self.readers: list[ShardReader] = []
        #: Every lane still in use, by its number (a batch names its lane by number).
        self.lanes: dict[int, Lane[Pending]] = {}
        self.shard_lanes: list[ShardLanes] = []
        self._lane_ids = 0  # the next lane number
        efo = spec.enhanced_fan_out
        # Enhanced fan-out is Kinesis only (the scenario rules refuse it on DynamoDB streams).
        assert not efo or isinstance(src, KinesisSource)
        iterator_ages = recorder.maximum("GetRecords.IteratorAgeMilliseconds")
        run_throttled = recorder.counter("ReadProvisionedThroughputExceeded")
        for shard, log in enumerate(source.shards):
            delivery = EfoDelivery(src) if efo and isinstance(src, KinesisSource) else None
            reader = ShardReader(
                env,
                source,
                log,
                None if efo else limits[shard],
                delivery,
                read_throttled=recorder.counter("ReadProvisionedThroughputExceeded", f"{label}#{shard}"),
                run_read_throttled=run_throttled,
                iterator_ages=iterator_ages,
            )
            self.readers.append(reader)
            if delivery is None:
                source.add_reader(shard, reader)
            lanes = self._new_lanes(shard, self._reserve(spec.parallelization_factor))
            self.shard_lanes.append(ShardLanes(shard, lanes, plan.parents[shard], plan.closes_at[shard]))
        for lanes_of, children in zip(self.shard_lanes, plan.children, strict=True):
            lanes_of.children = children
        #: When reshardings close shards: their idle lanes are told then that nothing more comes.
        self._closings = sorted({t for t in plan.closes_at if t < math.inf})
        source.subscribe(self._on_rows, self._after_block)
        recorder.gauge("shard_backlog", label, self.shard_backlog)

    # ------------------------------------------------------------------ records arriving
    def _in_scope(self, log: ShardLog, start: int, stop: int) -> np.ndarray:
        """Which of the shard's new positions the mapping reads (its starting position)."""
        position = self.spec.starting_position
        if position == "TRIM_HORIZON":
            return np.ones(stop - start, dtype=bool)
        if position == "LATEST":
            return ~log.fifo.column("initial", start, stop)
        ts = self.spec.starting_position_timestamp or 0.0
        return log.fifo.column("accepted_at", start, stop) >= ts

    def _on_rows(self, log: ShardLog, start: int, stop: int) -> None:
        shard = log.index
        scope = self._in_scope(log, start, stop)
        if not scope.any():
            if self.scope_start[shard] < 0:
                self.readers[shard].skip_to(stop)  # before the scope: never read
            return
        first = start + int(np.argmax(scope))  # the scope is a suffix of the shard's records
        rows = np.arange(first, stop)
        if self.scope_start[shard] < 0:
            self.scope_start[shard] = first
            self.readers[shard].skip_to(first)
        fifo = log.fifo
        sent = fifo.column("sent_at", first, stop)
        accepted = fifo.column("accepted_at", first, stop)
        size = fifo.column("size", first, stop)
        key = fifo.column("key", first, stop)
        draw = fifo.column("draw", first, stop) if self.draws else None
        self.outcomes.arrived(self.consumer, rows.size)
        self.arrived[shard] += rows.size
        self.stream_backlog.add_many(accepted, 1.0)
        if self.backlog is not self.stream_backlog:
            self.backlog.add_many(accepted, 1.0)
        reader = self.readers[shard]
        if reader.efo is not None:
            reader.efo.extend(log, first, stop)
        columns = {
            "seq": rows,
            "sent_at": sent,
            "accepted_at": accepted,
            "size": size,
            "key": key,
            "fetched_at": np.full(rows.shape[0], math.nan),
            "match": np.ones(rows.shape[0], dtype=bool),
        }
        if draw is not None:
            columns["draw"] = draw
        # By the shard's lanes as they stand: while a factor change waits for the old lanes' batches
        # new records join the old lanes, and move with their unbatched records when they are rebuilt.
        lanes = self.shard_lanes[shard].lanes
        parts = split_by_key(columns, len(lanes), self.source.key_lane_draw)
        for lane, part in zip(lanes, parts, strict=True):
            if part["seq"].size:
                lane.fifo.append(part)

    def _after_block(self) -> None:
        now = self.env.now
        for reader in self.readers:
            reader.on_extend(now)

    def _reserve(self, n: int) -> int:
        """Reserve ``n`` consecutive lane numbers; the first of them."""
        first = self._lane_ids
        self._lane_ids += n
        return first

    def _new_lanes(self, shard: int, first_id: int) -> list[Lane[Pending]]:
        """The lanes of ``shard`` at the factor in effect, numbered from ``first_id``."""
        reader = self.readers[shard]
        lanes: list[Lane[Pending]] = [
            Lane(shard, first_id + k, reader, self.draws) for k in range(self.spec.parallelization_factor)
        ]
        for lane in lanes:
            self.lanes[lane.index] = lane
        return lanes

    def start(self) -> None:
        """Start one process per lane of every shard being read."""
        if not self.spec.enabled:
            return
        self._started = True
        for shard in self.shard_lanes:
            if shard.active:
                for lane in shard.lanes:
                    self.env.process(self._lane(lane))
        if self._closings:
            self.env.process(self._close_shards())

    # ------------------------------------------------------------------ resharding
    def _close_shards(self) -> Generator[simpy.Event, Any, None]:
        """At each resharding, wake the parents' lanes that wait for records: none will come."""
        env = self.env
        for t in self._closings:
            yield env.timeout(max(0.0, t - env.now))
            # Every record sent before t has been generated (the traffic runs ahead of the clock).
            assert self.source.horizon >= t or self.source.exhausted
            for shard in self.shard_lanes:
                if shard.closes_at == t and shard.active:
                    for lane in shard.lanes:
                        if lane.idle and lane.pos >= lane.top:
                            lane.reader.release(lane, env.now)

    def _drain(self, shard: ShardLanes, now: float) -> None:
        """A closed shard whose lanes hold nothing more is drained: its children may be read."""
        if shard.drained or not all(lane.idle and lane.pos >= lane.top for lane in shard.lanes):
            return
        shard.drained = True
        for lane in shard.lanes:
            lane.closed = True
            lane.reader.release(lane, now)
        for index in shard.children:
            child = self.shard_lanes[index]
            if child.active or not all(self.shard_lanes[p].drained for p in child.parents):
                continue
            # Lambda processes a parent shard completely before its children (docs/model.md §4).
            child.active = True
            self.readers[index].active_from = now
            if self._started:
                for lane in child.lanes:
                    self.env.process(self._lane(lane))

    def apply(self, spec: StreamMapping, now: float) -> None:
        """A live change (UpdateEventSourceMapping).

        Enabled, batch size, batching window, retries, maximum record age, bisect, the on-failure
        destination and partial batch responses: lanes read them from the spec for each batch, so
        a batch being retried follows the new retry settings from its next attempt. Disabling
        pauses every lane after its current batch; enabling resumes them where they stopped (the
        mapping keeps its checkpoints).

        A new parallelization factor rebuilds each shard's lanes: the old lanes form no new batch;
        once none of them holds a batch the records they have not taken into one move, in shard
        order, into the new lanes by key (:meth:`_rebuild`). Per key the order holds: a record taken
        into a batch is finished before a later record of its key is taken again.
        """
        was = self.spec.enabled
        if spec.maximum_record_age != self.spec.maximum_record_age:
            for lane in self.lanes.values():
                lane.trim_after = -math.inf  # a shorter age may make records due now: look again
        self.invoker.item_failures = spec.report_batch_item_failures
        if spec.filter != self.spec.filter:
            # Batches formed from now on follow it; batches already formed keep their decisions.
            self.filter = self._filter_of(spec)
            self.filtering = self.filtering or self.filter is not None
        refactor = spec.parallelization_factor != self.spec.parallelization_factor
        self.spec = spec
        if refactor:
            # Numbered shard by shard, from the change: lane numbers tell the invocations of each
            # factor apart (a shard rebuilt again before this one is made skips its numbers).
            first = self._reserve(len(self.shard_lanes) * spec.parallelization_factor)
            for shard in self.shard_lanes:
                if shard.drained:
                    continue
                shard.closing = True
                shard.next_ids = first + shard.index * spec.parallelization_factor
                self._rebuild(shard, now)
                if shard.closing:
                    for lane in shard.lanes:
                        if lane.idle:
                            lane.reader.release(lane, now)  # it forms no new batch: let it end
        if spec.enabled and not was:
            resumed, self._resumed = self._resumed, self.env.event()
            resumed.succeed()
            if not self._started:
                self.start()

    def _rebuild(self, shard: ShardLanes, now: float) -> None:
        """Rebuild a closing shard's lanes at the factor in effect, once none of them holds a batch."""
        if not shard.closing or not shard.idle():
            return
        old = shard.lanes
        records = shard.unbatched()  # closes the old lanes
        for lane in old:
            del self.lanes[lane.index]
            lane.reader.release(lane, now)  # a lane waiting for records ends
        shard.lanes = self._new_lanes(shard.index, shard.next_ids)
        shard.closing = False
        for lane, part in zip(
            shard.lanes,
            split_by_key(records, len(shard.lanes), self.source.key_lane_draw),
            strict=True,
        ):
            lane.window_start = now  # a new lane's first window starts with it
            if part["seq"].size:
                lane.fifo.append(part)  # fetched_at travels with its records
        if self._started and shard.active:
            for lane in shard.lanes:
                self.env.process(self._lane(lane))

    def _resolve(self, shard: ShardLanes) -> None:
        """A lane's failed batch is resolved: wake the lanes it held back if no other lane fails."""
        if shard.resolved is not None and not shard.failing():
            resolved, shard.resolved = shard.resolved, None
            resolved.succeed()

    # ------------------------------------------------------------------ outcomes
    def _detail(self, lane: Lane[Pending], start: int, end: int) -> dict[str, Any] | None:
        """What a traced run's records table shows of these records (None when not tracing)."""
        if not self.outcomes.tracing:
            return None
        fifo = lane.fifo
        return {
            "shard": lane.shard,
            "key": fifo.column("key", start, end),
            "stored_s": fifo.column("accepted_at", start, end),
            "poison_draw": fifo.column("draw", start, end) if self.draws else None,
        }

    def _finish(
        self,
        lane: Lane[Pending],
        start: int,
        end: int,
        state: RecordState,
        at: float | np.ndarray,
        batch: Pending | None = None,
    ) -> None:
        """Records ``[start, end)`` of ``lane`` ended; a success names the ``batch`` that processed them.

        Records the filter rejected among them end FILTERED, whatever became of the batch they lay
        in (retention removes them as it removes the others: EXPIRED).
        """
        if self.filtering and state != RecordState.EXPIRED and not isinstance(at, np.ndarray):
            match = lane.fifo.column("match", start, end)
            if not match.all():
                self._end(lane, start, end, state, at, batch, np.flatnonzero(match))
                self._end(lane, start, end, RecordState.FILTERED, at, None, np.flatnonzero(~match))
                return
        self._end(lane, start, end, state, at, batch, None)

    def _end(
        self,
        lane: Lane[Pending],
        start: int,
        end: int,
        state: RecordState,
        at: float | np.ndarray,
        batch: Pending | None,
        which: np.ndarray | None,
    ) -> None:
        """Records ``[start, end)`` (those at offsets ``which`` only, if given) reached ``state``."""
        fifo = lane.fifo

        def column(name: str) -> np.ndarray:
            values = fifo.column(name, start, end)
            return values if which is None else values[which]

        n = end - start if which is None else int(which.shape[0])
        if not n:
            return
        detail = self._detail(lane, start, end)
        if detail is not None and which is not None:
            detail = {k: None if v is None else v[which] for k, v in detail.items() if k != "shard"} | {
                "shard": lane.shard
            }
        self.outcomes.ended(
            self.consumer,
            column("sent_at"),
            at,
            state,
            ids=column("seq"),
            detail=detail,
            timing=None if batch is None else batch.timing(column("fetched_at")),
        )
        self.finished[lane.shard] += n
        if isinstance(at, np.ndarray):
            self.stream_backlog.add_many(at, -1.0)
            if self.backlog is not self.stream_backlog:
                self.backlog.add_many(at, -1.0)
        else:
            self.stream_backlog.add(at, -n)
            if self.backlog is not self.stream_backlog:
                self.backlog.add(at, -n)

    def _discard(self, lane: Lane[Pending], start: int, end: int, now: float) -> None:
        """Records given up on: to the on-failure destination, or dropped."""
        if end > start:
            self._finish(
                lane, start, end, RecordState.DLQ if self.spec.on_failure else RecordState.DROPPED, now
            )
            self.recorder.add_total(f"discarded_batches:{self.index}", 1)
            destination = self.spec.on_failure  # as it stands now: a live change may set or lift it
            if destination is not None:
                self.recorder.add_total(f"on_failure_deliveries:{destination.type}", 1)

    def trim(self, lane: Lane[Pending], start: int, end: int, now: float) -> int:
        """Expire or discard the records at the front of ``[start, end)`` that may no longer be sent."""
        if now < lane.trim_after or start >= end:
            return start
        fifo = lane.fifo
        accepted = fifo.column("accepted_at", start, end)
        retention = self.source.retention_s
        if accepted[0] + retention <= now:
            k = int(accepted.searchsorted(now - retention, side="right"))
            self._finish(lane, start, start + k, RecordState.EXPIRED, accepted[:k] + retention)
            start += k
            accepted = accepted[k:]
        age = self.spec.maximum_record_age
        if age >= 0 and start < end and accepted[0] < now - age:
            k = int(accepted.searchsorted(now - age, side="left"))
            self._discard(lane, start, start + k, now)
            start += k
            accepted = accepted[k:]
        if start < end and start == min(lane.pos, (lane.pending[0].start if lane.pending else lane.pos)):
            # Records behind the lane's oldest unfinished one are younger: nothing to check before this.
            limit = retention if age < 0 else min(retention, age)
            lane.trim_after = float(accepted[0]) + limit
        return start

    # ------------------------------------------------------------------ the lane
    def _next(self, lane: Lane[Pending], now: float) -> Pending | float | simpy.Event | None:
        """The batch to invoke now, or what to wait for: a time or an event (None: the lane is over)."""
        if lane.closed:
            return _CLOSED
        while lane.pending:
            batch = lane.pending[0]
            if now < batch.not_before:
                return batch.not_before
            batch.start = self.trim(lane, batch.start, batch.end, now)
            if batch.start < batch.end:
                return batch
            lane.pending.popleft()
        shard = self.shard_lanes[lane.shard]
        if lane.failing:  # its failed batch is done or discarded
            lane.failing = False
            self._resolve(shard)
        if shard.closing:
            # A factor change: the old lanes form no new batch. The last to finish its batches
            # rebuilds the shard's lanes; this one is over either way.
            self._rebuild(shard, now)
            return _CLOSED
        if self.spec.checkpoint == "shard" and shard.failing():
            # Another lane retries a failed batch: start nothing new, so the shard's checkpoint stays
            # at the failing record until it is resolved.
            if shard.resolved is None:
                shard.resolved = self.env.event()
            return shard.resolved
        if lane.pos < lane.top:
            lane.pos = self.trim(lane, lane.pos, lane.top, now)
        lane.release_finished()
        reader = lane.reader
        if lane.pos >= lane.top:
            if now >= shard.closes_at:
                # A resharding closed the shard and every record sent to it is generated: this lane
                # has nothing more to do, and the last of its shard's lanes to end drains it.
                self._drain(shard, now)
                return _CLOSED
            # Nothing in hand: wait for the next record (it may not be generated yet, or never come:
            # an idle lane keeps its shard polled either way, so how far traffic has been
            # generated never changes when the shard is read).
            return reader.wait(lane, lane.pos, math.inf, now)
        batch_size = self.spec.batch_size
        fetched = lane.fetched(reader.fetched_by(now)) - lane.pos
        if fetched < batch_size:
            reader.top_up(now)
            fetched = lane.fetched(reader.fetched_by(now)) - lane.pos
        window_end = lane.window_start + self.spec.batching_window
        if fetched <= 0:
            return reader.wait(lane, lane.pos, math.inf, now)
        if self.filter is not None:
            found: Pending | simpy.Event = self._next_filtered(lane, fetched, window_end, now)
            return found
        n = min(fetched, batch_size)
        n, capped = self._fit(lane, lane.pos, n)
        if n >= batch_size or capped or now >= window_end:
            return self._open_batch(lane, lane.pos + n)
        # Wait for the batch's last record (never one already fetched: that would wake at once, again
        # and again) or the window's end.
        return reader.wait(lane, lane.pos + batch_size - 1, window_end, now)

    def _open_batch(self, lane: Lane[Pending], stop: int) -> Pending:
        """The lane's records from its position to ``stop`` form its next batch."""
        batch = Pending(self, lane, lane.pos, stop)
        self._stamp_fetches(lane, lane.pos, stop)
        lane.pos = stop
        lane.pending.append(batch)
        return batch

    def _stamp_fetches(self, lane: Lane[Pending], start: int, stop: int) -> None:
        """Keep when the records ``[start, stop)`` were fetched, as they go into a batch."""
        fifo = lane.fifo
        reader = lane.reader
        fifo.column("fetched_at", start, stop)[:] = reader.fetch_times(fifo.column("seq", start, stop))
        if not reader.holds_many():
            return  # forgetting is cheap to defer: a few hundred marks at most
        # The earliest shard position a lane of this shard has yet to take (lane.pos moves to stop).
        needed = min(
            (
                (other.row(other.pos) if other.pos < other.top else math.inf)
                if other is not lane
                else (other.row(stop) if stop < other.top else math.inf)
            )
            for other in self.shard_lanes[lane.shard].lanes
        )
        reader.forget_before(needed if needed < math.inf else reader.fetched_by(self.env.now))

    def _fit(self, lane: Lane[Pending], start: int, n: int) -> tuple[int, bool]:
        """How many of ``n`` records from ``start`` fit the 6 MB payload; whether the cap bound."""
        per_record_max = self.source.max_size * self.expansion + self.overhead
        if n * per_record_max <= PAYLOAD_LIMIT_BYTES:
            return n, False
        sizes = lane.fifo.column("size", start, start + n) * self.expansion + self.overhead
        fits, _, capped = fit_payload(np.cumsum(sizes), PAYLOAD_LIMIT_BYTES)
        return max(1, fits), capped

    def _invoke(self, batch: Pending) -> Generator[simpy.Event, Any, Invoked]:
        """The invoke step for one batch (a Kafka partition holds its poller's slot around it)."""
        return self.invoker.invoke(batch)

    def _lane(self, lane: Lane[Pending]) -> Generator[simpy.Event, Any, None]:
        env = self.env
        invoke = self._invoke
        while True:
            if lane.closed:
                return
            if not self.spec.enabled:  # disabled by a live change: wait to be enabled again
                yield self._resumed
                continue
            spec = self.spec  # a live change may replace it between batches
            now = env.now
            nxt = self._next(lane, now)
            if nxt is _CLOSED:
                return
            if isinstance(nxt, float):
                yield env.timeout(nxt - now)
                continue
            if not isinstance(nxt, Pending):
                yield nxt
                continue
            batch = nxt
            batch.ready(now)
            outcome, failed, _, end, _ = yield from invoke(batch)
            if outcome == GAVE_UP:
                continue  # throttled until every record of the batch expired or aged out
            lane.window_start = end
            if outcome == _SUCCESS:
                self._finish(lane, batch.start, batch.end, RecordState.SUCCEEDED, end, batch)
                lane.pending.popleft()
                lane.release_finished()
                continue
            n = batch.n  # the records sent (a filter's rejects ride in the range unsent)
            done = 0
            lane.failing = True  # until the lane holds no batch (checkpoint: shard holds the others)
            if outcome == _PARTIAL:
                assert failed is not None
                done = checkpoint(failed)
                passed = done
                if self.filtering:
                    passed = first_failed_offset(lane.fifo.column("match", batch.start, batch.end), done)
                self._finish(lane, batch.start, batch.start + passed, RecordState.SUCCEEDED, end, batch)
                batch.start += passed
                n -= done
            if spec.bisect_batch_on_function_error and n > 1 and done == 0:
                # With item failures too, AWS bisects at the returned sequence number: the part
                # before it is done above; a batch whose first record failed is split in halves.
                lane.pending.popleft()
                if self.filtering:
                    match = lane.fifo.column("match", batch.start, batch.end)
                    first, second = bisect_matching(batch.start, match)
                else:
                    first, second = bisect(batch.start, batch.end)
                later = Pending(self, lane, *second, batch.failures)
                earlier = Pending(self, lane, *first, batch.failures)
                later.not_before = earlier.not_before = end
                later.first_ready = earlier.first_ready = batch.first_ready
                lane.pending.appendleft(later)
                lane.pending.appendleft(earlier)
                continue
            batch.failures += 1
            if retries_exhausted(batch.failures, spec.maximum_retry_attempts):
                self._discard(lane, batch.start, batch.end, end)
                lane.pending.popleft()
                lane.release_finished()
            else:
                batch.not_before = end + retry_delay(batch.failures, spec.retry_backoff, self.jitter.next())

    # ------------------------------------------------------------------ observation and the end
    def shard_backlog(self, now: float) -> np.ndarray:
        """Records each shard has stored (within the mapping's scope) and the mapping not finished.

        Read-only: what the once-a-minute sample of each shard's backlog sees.
        """
        stored = np.array([log.accepted_by(now) for log in self.source.shards], dtype=np.int64)
        in_scope = np.where(self.scope_start >= 0, stored - self.scope_start, 0)
        return np.maximum(in_scope - self.finished, 0)

    def finish(self, end: float) -> None:
        """Close the books at the end of the run.

        Records still unprocessed whose retention ended before the end of the run expire; the rest
        are counted as still waiting.
        """
        retention = self.source.retention_s
        for lane in self.lanes.values():
            fifo = lane.fifo
            # Pending batches cover [pending[0].start, pos) in order: unfinished is everything from there.
            start = min(lane.pending[0].start if lane.pending else lane.pos, lane.pos)
            if start >= fifo.top:
                continue
            accepted = fifo.column("accepted_at", start, fifo.top)
            k = int(accepted.searchsorted(end - retention, side="right"))  # accepted never decreases
            if k:
                self._finish(lane, start, start + k, RecordState.EXPIRED, accepted[:k] + retention)
                start += k
            if start < fifo.top:
                self.outcomes.census(
                    self.consumer,
                    fifo.column("sent_at", start, fifo.top),
                    RecordState.WAITING,
                    ids=fifo.column("seq", start, fifo.top),
                    detail=self._detail(lane, start, fifo.top),
                )
        for reader in self.readers:
            if self.FETCH_CALLS is not None:
                self.recorder.add_total(self.FETCH_CALLS, reader.calls)
            self.recorder.add_total("read_throttles", reader.read_throttles)
            self.recorder.add_total(f"bytes_delivered:{self.index}", reader.bytes_delivered(end))
