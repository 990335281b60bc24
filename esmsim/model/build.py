"""Wire a scenario into a SimPy world: records, queues, functions, mappings on one environment."""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from esmsim.model.concurrency import AccountPool
from esmsim.model.function import LambdaFunction
from esmsim.model.sqs_mapping import SqsMappingRuntime
from esmsim.model.sqs_queue import SqsQueue
from esmsim.model.sqs_receive import SqsReceivers
from esmsim.model.traffic import generate_records
from esmsim.rng import Streams
from esmsim.scenario.scenario import Scenario

#: CloudWatch's metric period.
SAMPLE_PERIOD_S = 60.0


@dataclass
class World:
    """Everything a run simulates, and the logs it writes."""

    env: simpy.Environment
    scenario: Scenario
    pool: AccountPool
    functions: dict[str, LambdaFunction]
    queues: dict[str, SqsQueue]
    receivers: dict[str, SqsReceivers]
    mappings: list[SqsMappingRuntime]
    invocations: list[tuple[Any, ...]] = field(default_factory=list)
    throttles: list[tuple[Any, ...]] = field(default_factory=list)
    #: Per queue, the age of its oldest message at the end of each minute.
    oldest_age: dict[str, list[float]] = field(default_factory=dict)

    def start(self) -> None:
        """Start every mapping's processes and the per-minute sampler."""
        for mapping in self.mappings:
            mapping.start()
        self.oldest_age = {name: [] for name in self.queues}
        self.env.process(self._sample_minutes())

    def _sample_minutes(self) -> Generator[simpy.Event, Any, None]:
        """Gauges CloudWatch samples once a minute (ApproximateAgeOfOldestMessage)."""
        while True:
            yield self.env.timeout(SAMPLE_PERIOD_S)
            now = self.env.now
            for name, queue in self.queues.items():
                self.receivers[name].dispatch(now)
                self.oldest_age[name].append(queue.oldest_age(now))

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
        # SimPy stops before events at `until`: the last minute's sample is taken here.
        bins = math.ceil(end / SAMPLE_PERIOD_S - 1e-9)
        for name, queue in self.queues.items():
            samples = self.oldest_age[name]
            del samples[bins:]
            while len(samples) < bins:
                samples.append(queue.oldest_age(end))


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
    queues: dict[str, SqsQueue] = {}
    receivers: dict[str, SqsReceivers] = {}
    for name, source in scenario.sources.items():
        readers = [m for m in scenario.mappings if m.source == name]
        poison = any(scenario.functions[m.function].errors.poison_record_rate > 0 for m in readers)
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
            record_overhead=max((m.record_overhead for m in readers), default=0.0),
            minutes=math.ceil(scenario.duration / SAMPLE_PERIOD_S - 1e-9),
        )
        queues[name] = queue
        receivers[name] = SqsReceivers(
            env, queue, single_poller=any(m.single_poller_batching for m in readers)
        )
    world = World(env, scenario, pool, functions, queues, receivers, [])
    for i, spec in enumerate(scenario.mappings):
        world.mappings.append(
            SqsMappingRuntime(
                env,
                i,
                spec,
                queues[spec.source],
                receivers[spec.source],
                functions[spec.function],
                world.invocations,
                world.throttles,
            )
        )
    return world
