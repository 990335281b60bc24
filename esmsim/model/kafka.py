"""A Kafka event source mapping (Amazon MSK or self-managed): the stream engine with Kafka's rules.

Partitions are read like stream shards with a parallelization factor of 1
(:class:`~esmsim.model.stream_mapping.StreamMappingRuntime`): records of a partition in order, one
batch in flight per partition, the offset committed after each successful batch; retries, maximum
record age, bisect, partial batch responses and the on-failure destination work as for streams.
What differs (docs/model.md §16):

* a partition starts a batch only when its poller has an invoke slot free
  (:class:`~esmsim.model.kafka_pollers.KafkaPollers`), and the pollers are scaled on the offset lag;
* the batching window starts when the batch's first record reaches the poller, not when the
  previous invocation ended;
* no Kinesis read quotas (the source reports none) and no GetRecords pricing;
* a filter's non-matching records are the stream engine's: read, their offsets committed with
  the batch they lie in, ending FILTERED without reaching the function;
* ``OffsetLag``: per partition, records written (within the mapping's starting position) and not
  yet committed, summed over the topic (a level; the per-minute series is its maximum).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from esmsim.events import RecordState
from esmsim.model.invoke import Invoked, Invoker
from esmsim.model.kafka_pollers import KafkaPollers, poller_bounds, pollers_needed
from esmsim.model.stream_batch import Pending
from esmsim.model.stream_lanes import Lane
from esmsim.model.stream_mapping import StreamMappingRuntime
from esmsim.model.stream_source import ShardLog, ShardReadLimits, StreamSource
from esmsim.observe.recorder import Recorder
from esmsim.rng import Streams
from esmsim.scenario.mappings import KafkaMapping, StreamMapping


def _first_pollers(spec: KafkaMapping, partitions: int) -> int:
    """Pollers a mapping starts with: provisioned mode's minimum, else the on-demand start."""
    low, high = poller_bounds(spec, partitions)
    first = low if spec.provisioned_pollers is not None else spec.kafka_scaling.initial_pollers
    return min(max(first, low), high)


class KafkaMappingRuntime(StreamMappingRuntime):
    """One Kafka mapping during a run."""

    spec: KafkaMapping
    FETCH_CALLS = None  # a Kafka consumer's fetches are not Kinesis or DynamoDB GetRecords calls

    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        label: str,
        spec: KafkaMapping,
        source: StreamSource,
        limits: list[ShardReadLimits],
        invoker: Invoker,
        recorder: Recorder,
        consumer: int,
        streams: Streams,
    ) -> None:
        self.lag = recorder.level("offset_lag")
        super().__init__(env, index, label, spec, source, limits, invoker, recorder, consumer, streams)
        partitions = len(source.shards)
        levels = (recorder.level(f"kafka_pollers:{index}"), recorder.level("kafka_pollers"))
        # A disabled mapping runs (and bills) no pollers: "Lambda stops polling".
        first = _first_pollers(spec, partitions) if spec.enabled else 0
        self.pollers = KafkaPollers(env, partitions, first, levels)
        if spec.provisioned_pollers is not None:
            self.pollers.resize(self.pollers.count, 0.0, spec.kafka_scaling.pollers_per_epu, billed=True)
        self._delays = streams.get("kafka_apply_delay", f"mappings[{index}]")
        interval = spec.kafka_scaling.evaluation_interval
        #: Bytes written per evaluation interval (by when the partition stored them).
        self._bytes_in = np.zeros(math.ceil(recorder.layout.duration_s / interval) + 2)
        self._interval = interval
        self._throttled_seen = 0

    def _invoke(self, batch: Pending) -> Generator[simpy.Event, Any, Invoked]:
        """Invoke ``batch`` holding its partition's poller slot (free: the lane checked before forming it)."""
        self.pollers.take(batch.shard)
        try:
            return (yield from self.invoker.invoke(batch))
        finally:
            self.pollers.give(batch.shard)

    # ------------------------------------------------------------------ records arriving
    def _on_rows(self, log: ShardLog, start: int, stop: int) -> None:
        shard = log.index
        before = int(self.arrived[shard])
        super()._on_rows(log, start, stop)
        n = int(self.arrived[shard]) - before
        if not n:
            return
        first = stop - n  # the mapping's scope is a suffix of the partition's records
        accepted = log.fifo.column("accepted_at", first, stop)
        self.lag.add_many(accepted, 1.0)
        sizes = log.fifo.column("size", first, stop)
        bins = np.minimum((accepted // self._interval).astype(np.int64), self._bytes_in.size - 1)
        np.add.at(self._bytes_in, bins, sizes)

    def _finish(
        self,
        lane: Lane[Pending],
        start: int,
        end: int,
        state: RecordState,
        at: float | np.ndarray,
        batch: Pending | None = None,
    ) -> None:
        super()._finish(lane, start, end, state, at, batch)
        if isinstance(at, np.ndarray):
            self.lag.add_many(at, -1.0)
        else:
            self.lag.add(at, -(end - start))

    # ------------------------------------------------------------------ the partition's next batch
    def _next(self, lane: Lane[Pending], now: float) -> Pending | float | simpy.Event | None:
        if not lane.closed and not self.pollers.may_start(
            lane.shard, self.spec.kafka_scaling.invokes_per_poller
        ):
            return self.pollers.freed  # its poller's invoke slots are all held
        if not lane.pending and lane.pos < lane.top:
            # Kafka: the window starts when the batch's first record reaches the poller.
            first = float(lane.fifo.at("accepted_at", lane.pos)) + self.source.spec.propagation_delay
            lane.window_start = first
        return super()._next(lane, now)

    # ------------------------------------------------------------------ scaling
    def start(self) -> None:
        """Start the partitions' processes and the poller scaler (idle while the mapping is disabled)."""
        super().start()
        self.env.process(self._scaler())

    def _scaler(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        interval = self._interval
        tick = 0
        while True:
            tick += 1
            if tick * interval < env.now:  # a change was pending over these evaluations
                tick = math.ceil(env.now / interval - 1e-9)
            yield env.timeout(tick * interval - env.now)
            now = env.now
            spec = self.spec
            if not spec.enabled:  # no pollers to scale; throttles seen meanwhile are old news
                self._throttled_seen = self.invoker.throttled
                continue
            knobs = spec.kafka_scaling
            partitions = self.pollers.partitions
            low, high = poller_bounds(spec, partitions)
            current = self.pollers.count
            throttled = self.invoker.throttled - self._throttled_seen
            self._throttled_seen = self.invoker.throttled
            b = int(now // interval) - 1
            written = float(self._bytes_in[b]) if 0 <= b < self._bytes_in.size else 0.0
            needed = pollers_needed(self.shard_backlog(now), written / interval, spec)
            if throttled:
                target = current - knobs.scale_down_step
            elif needed > current:
                target = needed
            elif needed < current:
                target = max(needed, current - knobs.scale_down_step)
            else:
                target = current
            target = min(max(target, low), high)
            if target == current:
                continue
            delay = float(self._delays.uniform(0.0, knobs.apply_delay_max))
            yield env.timeout(delay)
            spec = self.spec
            if not spec.enabled:  # disabled while the change was being applied
                continue
            low, high = poller_bounds(spec, partitions)
            self.pollers.resize(
                min(max(target, low), high),
                env.now,
                spec.kafka_scaling.pollers_per_epu,
                billed=spec.provisioned_pollers is not None,
            )

    # ------------------------------------------------------------------ live changes
    def apply(self, spec: StreamMapping, now: float) -> None:
        """A live change: a stream mapping's keys (the filter too), and provisioned mode's bounds."""
        assert isinstance(spec, KafkaMapping)
        old = self.spec
        super().apply(spec, now)
        partitions = self.pollers.partitions
        low, high = poller_bounds(spec, partitions)
        if not spec.enabled:
            count = 0  # disabled: its pollers stop (and their EPUs with them)
        elif not old.enabled:
            count = _first_pollers(spec, partitions)  # enabled: it starts again as a new mapping
        else:
            count = min(max(self.pollers.count, low), high)
        provisioned = spec.provisioned_pollers is not None
        if count != self.pollers.count or provisioned != (old.provisioned_pollers is not None):
            self.pollers.resize(count, now, spec.kafka_scaling.pollers_per_epu, billed=provisioned)
            if not provisioned:
                self.pollers.stop_billing(now)

    # ------------------------------------------------------------------ the end
    def finish(self, end: float) -> None:
        """Close the books; provisioned mode's EPU-seconds go to the run's totals."""
        super().finish(end)
        self.recorder.add_total(f"kafka_epu_s:{self.index}", self.pollers.finish(end))
