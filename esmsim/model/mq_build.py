"""Wiring of Amazon MQ broker queues and their mappings into a run (called by esmsim.model.build)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import simpy

from esmsim.model.invoke import Invoker
from esmsim.model.mq_broker import MqBroker
from esmsim.model.mq_mapping import MqMappingRuntime
from esmsim.model.traffic import RecordFeed, traffic_timeline
from esmsim.observe.outcomes import Consumer
from esmsim.observe.recorder import Recorder
from esmsim.rng import Streams
from esmsim.scenario.mappings import MqMapping
from esmsim.scenario.scenario import Scenario
from esmsim.scenario.sources import MqSource, Traffic


class World(Protocol):
    """The parts of :class:`esmsim.model.build.World` the MQ wiring adds to.

    Build imports this module, so the world is named here by what it offers.
    """

    env: simpy.Environment
    scenario: Scenario
    recorder: Recorder
    brokers: dict[str, MqBroker]
    mappings: list[Any]
    feeders: list[tuple[Callable[[float], None], Callable[[], float], Callable[[], bool]]]
    finishers: list[Callable[[], None]]
    starters: list[Callable[[], Any]]


#: The level of each broker queue's size (messages waiting or delivered and not yet acknowledged).
QUEUE_SIZE_LEVEL = "mq_queue_size"


def mq_consumer(name: str) -> Consumer:
    """A broker queue's record consumer: its mapping consumes each message once, as a queue's do."""
    return Consumer(name, name, -1, "queue")


def add_broker(world: World, name: str, source: MqSource, *, poison: bool, streams: Streams) -> None:
    """A broker queue and its traffic."""
    recorder, scenario = world.recorder, world.scenario
    size = recorder.level(QUEUE_SIZE_LEVEL)
    backlog = recorder.level("backlog")
    engine = recorder.level(f"{QUEUE_SIZE_LEVEL}:{source.engine}")
    levels = (size, engine) if backlog is size else (size, engine, backlog)
    broker = MqBroker(
        world.env,
        name,
        recorder.layout.consumers.index(mq_consumer(name)),
        recorder,
        ttl_s=source.message_ttl,
        draws=poison,
        levels=levels,
    )
    world.brokers[name] = broker
    recorder.gauge("mq_oldest_age", name, broker.oldest_age)
    feed = RecordFeed(
        traffic_timeline(scenario, name, Traffic),
        scenario.duration,
        streams,
        name,
        float("inf"),
        draws=poison,
    )

    def generate(now: float) -> None:
        broker.extend(feed.next_block(), feed.horizon)

    world.feeders.append((generate, lambda: feed.horizon, lambda: feed.exhausted))
    if source.message_ttl is not None:
        world.starters.append(lambda: world.env.process(broker.expiry()))
    world.finishers.append(lambda: broker.finish(scenario.duration))


def add_mq_mapping(world: World, index: int, spec: MqMapping, invoker: Invoker, streams: Streams) -> None:
    """A mapping reading a broker queue: its consumers, started with the run."""
    source = world.scenario.sources[spec.source]
    assert isinstance(source, MqSource)
    runtime = MqMappingRuntime(
        world.env,
        index,
        spec,
        spec.source,
        source,
        world.brokers[spec.source],
        invoker,
        world.recorder,
        streams,
    )
    world.mappings.append(runtime)
    end = world.scenario.duration
    # Before the broker's census: what a consumer holds is in flight, the rest waits.
    world.finishers.insert(0, lambda: runtime.finish(end))
