"""Wire a scenario into a SimPy world: records, sources, functions, mappings on one environment."""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from esmsim.model.concurrency import AccountPool
from esmsim.model.function import LambdaFunction
from esmsim.model.sqs_mapping import SqsMappingRuntime
from esmsim.model.sqs_queue import SqsQueue
from esmsim.model.sqs_receive import SqsReceivers
from esmsim.model.stream_mapping import StreamMappingRuntime
from esmsim.model.stream_source import ShardReadLimits, StreamRecords, generate_stream_records
from esmsim.model.traffic import generate_records
from esmsim.rng import Streams
from esmsim.scenario.mappings import SqsMapping, StreamMapping
from esmsim.scenario.scenario import Scenario
from esmsim.scenario.sources import SqsSource

#: CloudWatch's metric period.
SAMPLE_PERIOD_S = 60.0


@dataclass
class World:
    """Everything a run simulates, and the logs it writes."""

    env: simpy.Environment
    scenario: Scenario
    pool: AccountPool
    functions: dict[str, LambdaFunction]
    queues: dict[str, SqsQueue] = field(default_factory=dict)
    receivers: dict[str, SqsReceivers] = field(default_factory=dict)
    streams: dict[str, StreamRecords] = field(default_factory=dict)
    read_limits: dict[str, list[ShardReadLimits]] = field(default_factory=dict)
    mappings: list[SqsMappingRuntime | StreamMappingRuntime] = field(default_factory=list)
    invocations: list[tuple[Any, ...]] = field(default_factory=list)
    throttles: list[tuple[Any, ...]] = field(default_factory=list)
    #: Per queue, the age of its oldest message at the end of each minute.
    oldest_age: dict[str, list[float]] = field(default_factory=dict)
    #: Per stream mapping (by index), records each shard has not processed, at the end of each minute.
    shard_backlog: dict[int, list[np.ndarray]] = field(default_factory=dict)

    @property
    def sqs_mappings(self) -> list[SqsMappingRuntime]:
        """The SQS mappings."""
        return [m for m in self.mappings if isinstance(m, SqsMappingRuntime)]

    @property
    def stream_mappings(self) -> list[StreamMappingRuntime]:
        """The Kinesis and DynamoDB mappings."""
        return [m for m in self.mappings if isinstance(m, StreamMappingRuntime)]

    def start(self) -> None:
        """Start every mapping's processes and the per-minute sampler."""
        for mapping in self.mappings:
            mapping.start()
        self.oldest_age = {name: [] for name in self.queues}
        self.shard_backlog = {m.index: [] for m in self.stream_mappings}
        self.env.process(self._sample_minutes())

    def _sample(self, now: float) -> None:
        for name, queue in self.queues.items():
            self.receivers[name].dispatch(now)
            self.oldest_age[name].append(queue.oldest_age(now))
        for m in self.stream_mappings:
            self.shard_backlog[m.index].append(m.shard_backlog(now))

    def _sample_minutes(self) -> Generator[simpy.Event, Any, None]:
        """Gauges sampled once a minute (ApproximateAgeOfOldestMessage, per-shard backlog)."""
        while True:
            yield self.env.timeout(SAMPLE_PERIOD_S)
            self._sample(self.env.now)

    def run(self) -> None:
        """Simulate the scenario's duration and close the books."""
        end = self.scenario.duration
        self.env.run(until=end)
        for receivers in self.receivers.values():
            receivers.finish(end)
        for queue in self.queues.values():
            queue.finish(end)
        for function in self.functions.values():
            function.finish(end)
        for mapping in self.stream_mappings:
            mapping.finish(end)
        # SimPy stops before events at `until`: the last minute's sample is taken here.
        bins = math.ceil(end / SAMPLE_PERIOD_S - 1e-9)
        samples: list[list[Any]] = [*self.oldest_age.values(), *self.shard_backlog.values()]
        for series in samples:
            del series[bins:]
        while any(len(series) < bins for series in samples):
            self._sample(end)


def build(scenario: Scenario, streams: Streams) -> World:
    """Create the world for one run of ``scenario`` with the run's random streams."""
    env = simpy.Environment()
    reserved = sum(f.reserved_concurrency or 0 for f in scenario.functions.values())
    pc_unreserved = sum(
        f.provisioned_concurrency for f in scenario.functions.values() if f.reserved_concurrency is None
    )
    pool = AccountPool(scenario.account, reserved, pc_unreserved)
    functions = {
        name: LambdaFunction(name, i, spec, pool, streams)
        for i, (name, spec) in enumerate(scenario.functions.items())
    }
    world = World(env, scenario, pool, functions)
    minutes = math.ceil(scenario.duration / SAMPLE_PERIOD_S - 1e-9)
    for name, source in scenario.sources.items():
        readers = [m for m in scenario.mappings if m.source == name]
        poison = any(scenario.functions[m.function].errors.poison_record_rate > 0 for m in readers)
        if isinstance(source, SqsSource):
            sqs_readers = [m for m in readers if isinstance(m, SqsMapping)]
            records = generate_records(
                source.traffic, scenario.duration, streams, name, source.max_message_size, draws=poison
            )
            queue = SqsQueue(
                name,
                records,
                visibility_timeout_s=source.visibility_timeout,
                retention_s=source.retention,
                max_receive_count=source.max_receive_count,
                delivery_delay_s=source.delivery_delay,
                chunk_bytes=scenario.pricing.sqs_request_chunk_bytes,
                record_overhead=max((m.record_overhead for m in sqs_readers), default=0.0),
                minutes=minutes,
            )
            world.queues[name] = queue
            single = any(m.single_poller_batching for m in sqs_readers)
            world.receivers[name] = SqsReceivers(env, queue, single_poller=single)
        else:
            world.streams[name] = generate_stream_records(
                source, scenario.duration, streams, name, draws=poison
            )
            world.read_limits[name] = [
                ShardReadLimits(source.read_calls_per_second, source.read_bytes_per_second)
                for _ in range(source.shards)
            ]
    for i, spec in enumerate(scenario.mappings):
        function = functions[spec.function]
        if isinstance(spec, SqsMapping):
            world.mappings.append(
                SqsMappingRuntime(
                    env,
                    i,
                    spec,
                    world.queues[spec.source],
                    world.receivers[spec.source],
                    function,
                    world.invocations,
                    world.throttles,
                )
            )
        else:
            assert isinstance(spec, StreamMapping)
            world.mappings.append(
                StreamMappingRuntime(
                    env,
                    i,
                    spec,
                    world.streams[spec.source],
                    world.read_limits[spec.source],
                    function,
                    world.invocations,
                    world.throttles,
                    streams,
                )
            )
    return world
