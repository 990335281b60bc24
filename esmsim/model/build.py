"""Wire a scenario into a SimPy world: sources, functions, mappings and the recorder on one environment."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from esmsim.events import RecordState
from esmsim.model.async_queue import AsyncEventQueue
from esmsim.model.concurrency import AccountPool
from esmsim.model.filtering import filter_timeline
from esmsim.model.function import LambdaFunction
from esmsim.model.invoke import Invoker
from esmsim.model.kafka import KafkaMappingRuntime
from esmsim.model.live import apply_changes
from esmsim.model.mq_broker import MqBroker
from esmsim.model.mq_build import add_broker, add_mq_mapping, mq_consumer
from esmsim.model.mq_mapping import MqMappingRuntime
from esmsim.model.push import Delivered, DeliveryPath, PathBooks, into_queue
from esmsim.model.sqs_fifo import FifoQueue
from esmsim.model.sqs_filtered import FilteredMessages
from esmsim.model.sqs_mapping import SqsMappingRuntime
from esmsim.model.sqs_messages import chunked_request_units
from esmsim.model.sqs_queue import SqsQueue
from esmsim.model.sqs_receive import SqsReceivers
from esmsim.model.stream_mapping import StreamMappingRuntime
from esmsim.model.stream_source import ShardLog, ShardReadLimits, StreamSource
from esmsim.model.traffic import RecordFeed, traffic_timeline
from esmsim.model.watchdog import Watchdog
from esmsim.observe.outcomes import Consumer
from esmsim.observe.recorder import FOLD_EVERY_S, Layout, Recorder
from esmsim.rng import Streams
from esmsim.scenario.mappings import KafkaMapping, MqMapping, SqsMapping, StreamMapping, ThrottleRetry
from esmsim.scenario.scenario import Scenario
from esmsim.scenario.shard_plan import ShardPlan
from esmsim.scenario.sources import (
    PUSH_TYPES,
    SNS_MAX_MESSAGE_BYTES,
    MqSource,
    PushSource,
    SqsSource,
    SqsTraffic,
    StreamTraffic,
    Traffic,
)

#: How often idle execution environments past their lifetime are retired (a level's lateness bound).
REAP_EVERY_S = 10.0


def mapping_label(index: int, source: str, function: str) -> str:
    """How a mapping is named in tables: ``mappings[0]: queue -> function``."""
    return f"mappings[{index}]: {source} -> {function}"


def trigger_label(index: int, source: str, target: str) -> str:
    """How a trigger is named in tables: ``triggers[0]: bucket -> function``."""
    return f"triggers[{index}]: {source} -> {target}"


def invoking_triggers(scenario: Scenario) -> list[int]:
    """The triggers that invoke a function (asynchronously), in order: they follow the mappings in tables."""
    return [i for i, t in enumerate(scenario.triggers) if t.function is not None]


def layout(scenario: Scenario) -> Layout:
    """The recorder's names for a scenario's functions, mappings and record consumers."""
    functions = tuple(scenario.functions)
    invoking = invoking_triggers(scenario)
    labels = tuple(mapping_label(i, m.source, m.function) for i, m in enumerate(scenario.mappings)) + tuple(
        trigger_label(i, scenario.triggers[i].source, scenario.triggers[i].target) for i in invoking
    )
    targets = [m.function for m in scenario.mappings] + [str(scenario.triggers[i].function) for i in invoking]
    consumers: list[Consumer] = []
    for name, source in scenario.sources.items():
        if source.type in PUSH_TYPES:
            continue  # its events are counted along each trigger
        if isinstance(source, SqsSource):
            consumers.append(Consumer(name, name, -1, "queue"))
            continue
        if isinstance(source, MqSource):
            consumers.append(mq_consumer(name))
            continue
        readers = [i for i, m in enumerate(scenario.mappings) if m.source == name]
        consumers += [Consumer(labels[i], name, i, "stream") for i in readers]
        if not readers:
            consumers.append(Consumer(name, name, -1, "unread"))
    nm = len(scenario.mappings)
    for k, i in enumerate(invoking):
        consumers.append(Consumer(labels[nm + k], scenario.triggers[i].source, nm + k, "async"))
    return Layout(
        functions=functions,
        mappings=labels,
        mapping_function=tuple(functions.index(f) for f in targets),
        consumers=tuple(consumers),
        duration_s=scenario.duration,
        warmup_s=scenario.warmup,
        billing_granularity_ms=scenario.pricing.lambda_billing_granularity_ms,
        horizon_s=horizon(scenario),
    )


def horizon(scenario: Scenario) -> float:
    """How late the model may write a level change (see :mod:`esmsim.observe.levels`).

    Lazily noticed changes (a message dealt to a collecting poller, an expiry noticed when a lane
    wakes, an idle environment retired) come at the latest after a batching window, a scaler
    tick, a retry wait or a reaper period; a margin covers the recorder's own folding step.
    """
    late = REAP_EVERY_S
    for m in scenario.mappings:
        late = max(late, m.batching_window, m.throttle_retry.maximum)
        if isinstance(m, SqsMapping):
            late = max(late, m.poller_scaling.tick)
        elif isinstance(m, MqMapping):
            late = max(late, m.redelivery_delay)
        else:
            late = max(late, m.retry_backoff.maximum)
    return late + FOLD_EVERY_S


def account_pools(scenario: Scenario) -> dict[str, AccountPool]:
    """Each account's pool: its unreserved concurrency, scaling bucket and invoke-rate quota."""
    pools = {}
    for name, account in scenario.all_accounts.items():
        mine = [f for f in scenario.functions.values() if scenario.account_name(f.account) == name]
        reserved = sum(f.reserved_concurrency or 0 for f in mine)
        pc_unreserved = sum(f.provisioned_concurrency for f in mine if f.reserved_concurrency is None)
        pools[name] = AccountPool(account, reserved, pc_unreserved)
    return pools


@dataclass
class World:
    """Everything a run simulates, and the recorder that observes it."""

    env: simpy.Environment
    scenario: Scenario
    recorder: Recorder
    pools: dict[str, AccountPool]  # by account name
    functions: dict[str, LambdaFunction]
    queues: dict[str, SqsQueue] = field(default_factory=dict)
    receivers: dict[str, SqsReceivers] = field(default_factory=dict)
    streams: dict[str, StreamSource] = field(default_factory=dict)
    async_queues: dict[str, AsyncEventQueue] = field(default_factory=dict)
    mappings: list[SqsMappingRuntime | StreamMappingRuntime | MqMappingRuntime] = field(default_factory=list)
    brokers: dict[str, MqBroker] = field(default_factory=dict)
    #: One per source: generate the next block (given the time), its horizon, whether it is exhausted.
    feeders: list[tuple[Callable[[float], None], Callable[[], float], Callable[[], bool]]] = field(
        default_factory=list
    )
    #: Called once the run has ended, after the mappings closed their books.
    finishers: list[Callable[[], None]] = field(default_factory=list)
    #: Called when the run starts, after the mappings started.
    starters: list[Callable[[], Any]] = field(default_factory=list)

    @property
    def stream_mappings(self) -> list[StreamMappingRuntime]:
        """The Kinesis and DynamoDB mappings."""
        return [m for m in self.mappings if isinstance(m, StreamMappingRuntime)]

    def start(self) -> None:
        """Generate the first traffic, start every mapping's processes and the recorder."""
        for generate, horizon_of, exhausted in self.feeders:
            self.env.process(self._feed(generate, horizon_of, exhausted))
        for mapping in self.mappings:
            mapping.start()
        for function in self.functions.values():
            self.env.process(function.reaper(self.env, REAP_EVERY_S))
        for start in self.starters:
            start()
        self.recorder.start(self.env)

    def _feed(
        self,
        generate: Callable[[float], None],
        horizon_of: Callable[[], float],
        exhausted: Callable[[], bool],
    ) -> Generator[simpy.Event, Any, None]:
        """Keep at least one block of traffic generated beyond the present."""
        env = self.env
        generate(env.now)
        while not exhausted():
            before = horizon_of()
            generate(env.now)
            if exhausted():
                return
            # Wake when the older of the two blocks ahead begins to be consumed.
            yield env.timeout(max(0.0, before - env.now))

    def run(self) -> None:
        """Simulate the scenario's duration and close the books.

        Raises:
            esmsim.model.watchdog.Stalled: The simulated clock stopped advancing.
        """
        end = self.scenario.duration
        with Watchdog(self.env):
            self.env.run(until=end)
        for generate, _, exhausted in self.feeders:  # the rest of the run's traffic, all waiting
            while not exhausted():
                generate(end)
        for receivers in self.receivers.values():
            receivers.finish(end)
        for queue in self.queues.values():
            queue.finish(end)
        for mapping in self.stream_mappings:
            mapping.finish(end)
        for runtime in self.mappings:
            if isinstance(runtime, SqsMappingRuntime):
                runtime.finish(end)
        for finish in self.finishers:
            finish()
        for function in self.functions.values():
            function.environments.reap(end)


def build(scenario: Scenario, streams: Streams, *, trace: bool = False) -> World:
    """Create the world for one run of ``scenario`` with the run's random streams."""
    env = simpy.Environment()
    recorder = Recorder(layout(scenario), trace=trace)
    kinds = {s.type for s in scenario.sources.values() if s.type not in PUSH_TYPES}
    if not kinds:
        recorder.share_level("backlog", "async_queued")
    elif kinds == {"mq"}:
        recorder.share_level("backlog", "mq_queue_size")
    elif not kinds & {"sqs", "mq"}:
        recorder.share_level("backlog", "stream_backlog")
    elif kinds == {"sqs"}:
        recorder.share_level("backlog", "visible")
    pools = account_pools(scenario)
    environments = recorder.level("environments")
    functions = {
        name: LambdaFunction(name, i, spec, pools[scenario.account_name(spec.account)], streams, environments)
        for i, (name, spec) in enumerate(scenario.functions.items())
    }
    world = World(env, scenario, recorder, pools, functions)
    consumer_of = {(c.source, c.mapping): i for i, c in enumerate(recorder.layout.consumers)}
    for name, source in scenario.sources.items():
        if isinstance(source, PushSource):
            continue  # after the queues they may feed
        readers = [m for m in scenario.mappings if m.source == name]
        poison = any(scenario.functions[m.function].errors.poison_record_rate > 0 for m in readers)
        if isinstance(source, SqsSource):
            _queue(world, name, source, [m for m in readers if isinstance(m, SqsMapping)], poison, streams)
            continue
        if isinstance(source, MqSource):
            add_broker(world, name, source, poison=poison, streams=streams)
            continue
        stream = StreamSource(
            name,
            source,
            scenario.duration,
            streams,
            recorder,
            scenario.pricing,
            draws=poison,
            timeline=traffic_timeline(scenario, name, StreamTraffic),
            plan=ShardPlan.of(name, scenario, scenario.stages, scenario.duration),
        )
        world.streams[name] = stream
        world.feeders.append((stream.next_block, _horizon_of(stream), _exhausted(stream)))
        if not readers:
            _unread(world, stream, consumer_of[(name, -1)])
    limits = {
        name: [
            ShardReadLimits(s.spec.shard_read_calls_per_second, s.spec.read_bytes_per_second)
            for _ in s.shards
        ]
        for name, s in world.streams.items()
    }
    for i, spec in enumerate(scenario.mappings):
        function = functions[spec.function]
        invoker = Invoker(env, function, i, recorder, spec.throttle_retry, spec.report_batch_item_failures)
        if isinstance(spec, MqMapping):
            add_mq_mapping(world, i, spec, invoker, streams)
            continue
        if isinstance(spec, SqsMapping):
            world.mappings.append(
                SqsMappingRuntime(
                    env, i, spec, world.queues[spec.source], world.receivers[spec.source], invoker, recorder
                )
            )
        else:
            assert isinstance(spec, StreamMapping)
            runtime: type[StreamMappingRuntime] = (
                KafkaMappingRuntime if isinstance(spec, KafkaMapping) else StreamMappingRuntime
            )
            world.mappings.append(
                runtime(
                    env,
                    i,
                    recorder.layout.mappings[i],
                    spec,
                    world.streams[spec.source],
                    limits[spec.source],
                    invoker,
                    recorder,
                    consumer_of[(spec.source, i)],
                    streams,
                )
            )
    for name, source in scenario.sources.items():
        if isinstance(source, PushSource):
            _push(world, name, source, streams, backlog_shared=not kinds)
    if scenario.stages:
        world.starters.append(
            lambda: env.process(
                apply_changes(
                    env, scenario, world.mappings, world.functions, world.queues, world.async_queues
                )
            )
        )
    return world


def _push(world: World, name: str, source: PushSource, streams: Streams, *, backlog_shared: bool) -> None:
    """A push source, its delivery paths (one per trigger) and the event queues of the functions invoked."""
    scenario, recorder, env = world.scenario, world.recorder, world.env
    outcomes = recorder.outcomes
    end = scenario.duration
    consumer_of = {c.label: i for i, c in enumerate(recorder.layout.consumers)}
    nm = len(scenario.mappings)
    invoking = invoking_triggers(scenario)

    def functions_behind(index: int) -> list[str]:
        t = scenario.triggers[index]
        if t.function is not None:
            return [t.function]
        return [m.function for m in scenario.mappings if m.source == t.queue]

    mine = [i for i, t in enumerate(scenario.triggers) if t.source == name]
    if not mine:
        return
    poison = any(
        scenario.functions[f].errors.poison_record_rate > 0 for i in mine for f in functions_behind(i)
    )
    cut = SNS_MAX_MESSAGE_BYTES if source.type == "sns" else math.inf
    feed = RecordFeed(traffic_timeline(scenario, name, Traffic), end, streams, name, cut, draws=poison)
    paths: list[DeliveryPath] = []
    for i in mine:
        trigger = scenario.triggers[i]
        books = PathBooks(outcomes, end, into_queue=trigger.queue is not None)
        if trigger.function is not None:
            label = recorder.layout.mappings[nm + invoking.index(i)]
            consumer = consumer_of[label]
            queue = world.async_queues.get(trigger.function)
            if queue is None:
                spec = scenario.functions[trigger.function]
                queue = AsyncEventQueue(
                    env,
                    trigger.function,
                    spec.async_,
                    recorder,
                    end,
                    backlog_shared=backlog_shared,
                )
                world.async_queues[trigger.function] = queue
                world.finishers.append(queue.finish)
            # One attempt at a time (Invoker.start): the event queue decides when to try again, so
            # the invoker's own throttle retry is never used; one event has no batch item failures.
            invoker = Invoker(
                env,
                world.functions[trigger.function],
                nm + invoking.index(i),
                recorder,
                ThrottleRetry(),
                False,
            )
            queue.add_trigger(i, invoker, consumer)
            deliver: Callable[[Delivered], None] = functools.partial(queue.accept, i)
        else:
            consumer = consumer_of[str(trigger.queue)]
            name_of_queue = str(trigger.queue)
            deliver = into_queue(
                world.queues[name_of_queue], world.receivers[name_of_queue], world.env, end, books
            )
        books.consumer = consumer

        path = DeliveryPath(source, name, i, streams, deliver, books.lose)
        paths.append(path)
        world.finishers.append(books.census)

    def generate(now: float) -> None:
        block = feed.next_block()
        if source.type != "s3":  # publishers' requests (S3's notifications are not billed)
            units = chunked_request_units(block["size"], scenario.pricing.sqs_request_chunk_bytes)
            recorder.add_total(f"publish_units:{source.type}", units)
        for path in paths:
            path.emit(block, feed.horizon)

    def totals() -> None:
        for path in paths:
            recorder.add_total("push_duplicates", path.totals.duplicates)
            recorder.add_total("push_handoff_retries", path.totals.handoff_retries)

    world.finishers.append(totals)

    world.feeders.append((generate, lambda: feed.horizon, lambda: feed.exhausted))


def _horizon_of(stream: StreamSource) -> Callable[[], float]:
    return lambda: stream.horizon


def _exhausted(stream: StreamSource) -> Callable[[], bool]:
    return lambda: stream.exhausted


def _queue(
    world: World, name: str, source: SqsSource, readers: list[SqsMapping], poison: bool, streams: Streams
) -> None:
    """An SQS queue, its waiting pollers and its traffic."""
    scenario = world.scenario
    recorder = world.recorder
    overhead = max((m.record_overhead for m in readers), default=0.0)
    fifo: dict[str, Any] = {}
    if source.fifo:  # docs/model.md §2, FIFO queues
        fifo = {
            "groups_rng": streams.get("groups", name),
            "duplicates_rng": streams.get("duplicates", name),
            "max_groups": max(t.message_groups or 1 for _, t in traffic_timeline(scenario, name, SqsTraffic)),
            "high_throughput": source.high_throughput,
            "end_s": scenario.duration,
        }
    queue = (FifoQueue if source.fifo else SqsQueue)(
        world.env,
        name,
        recorder.layout.consumers.index(Consumer(name, name, -1, "queue")),
        recorder,
        **fifo,
        visibility_timeout_s=source.visibility_timeout,
        retention_s=source.retention,
        max_receive_count=source.max_receive_count,
        in_flight_limit=source.in_flight_limit,
        delivery_delay_s=source.delivery_delay,
        chunk_bytes=scenario.pricing.sqs_request_chunk_bytes,
        record_overhead=overhead,
        draws=poison,
        hold_arrivals=any(m.enabled and m.batching_window > 0 for m in readers),
    )
    world.queues[name] = queue
    recorder.gauge("oldest_age", name, queue.oldest_age)
    timeline = traffic_timeline(scenario, name, Traffic)
    # The largest message the queue can hold decides whether the 6 MB payload can bind a batch: its
    # own traffic's, or that of the push sources delivering into it (a queue they feed has none).
    feeders = [t.source for t in scenario.triggers if t.queue == name]
    largest = max(
        traffic.record_size.upper_bound()
        for origin in (name, *feeders)
        for _, traffic in traffic_timeline(scenario, origin, Traffic)
    )
    biggest = min(largest, source.max_message_size) + overhead
    single = any(m.single_poller_batching for m in readers)
    receivers = SqsReceivers(world.env, queue, biggest, single_poller=single)
    world.receivers[name] = receivers
    index = next((i for i, m in enumerate(scenario.mappings) if m.source == name), None)
    filters = None if index is None else filter_timeline(scenario, index, streams)
    if filters is not None:  # docs/model.md §15 (the rules allow a filter on a queue's only mapping)
        polling = readers[0].polling
        filtered = FilteredMessages(
            queue, filters, max_messages=polling.max_messages, round_trip_s=polling.round_trip
        )
        queue.use_filter(filtered)
    feed = RecordFeed(timeline, scenario.duration, streams, name, source.max_message_size, draws=poison)
    if isinstance(queue, FifoQueue):
        queue.traffic_now = lambda: feed.traffic  # type: ignore[assignment,return-value]
        queue.on_unblock = receivers.poke

    def generate(now: float) -> None:
        queue.extend(feed.next_block())
        receivers.on_extend(now)

    world.feeders.append((generate, lambda: feed.horizon, lambda: feed.exhausted))


def _unread(world: World, stream: StreamSource, consumer: int) -> None:
    """A stream nobody reads: its records wait until retention removes them."""
    outcomes = world.recorder.outcomes
    end = world.scenario.duration
    retention = stream.retention_s
    left = [0]  # records still in the stream at the end (columns kept only when tracing)
    kept: list[tuple[np.ndarray, np.ndarray, dict[str, Any]]] = []

    def on_rows(log: ShardLog, start: int, stop: int) -> None:
        fifo = log.fifo
        sent = fifo.column("sent_at", start, stop)
        stored = fifo.column("accepted_at", start, stop)
        expiry = stored + retention
        outcomes.arrived(consumer, stop - start)
        gone = expiry <= end
        ids = np.arange(start, stop)
        keys = fifo.column("key", start, stop)
        detail = (
            {"shard": log.index, "key": keys[gone], "stored_s": stored[gone]} if outcomes.tracing else None
        )
        outcomes.ended(consumer, sent[gone], expiry[gone], RecordState.EXPIRED, ids=ids[gone], detail=detail)
        left[0] += int(np.count_nonzero(~gone))
        if outcomes.tracing:
            rest = {"shard": log.index, "key": keys[~gone].copy(), "stored_s": stored[~gone].copy()}
            kept.append((sent[~gone].copy(), ids[~gone], rest))

    def at_end() -> None:
        if outcomes.tracing:
            for sent, ids, detail in kept:
                outcomes.census(consumer, sent, RecordState.WAITING, ids=ids, detail=detail)
        else:
            outcomes.census_count(consumer, RecordState.WAITING, left[0])

    stream.subscribe(on_rows)
    world.finishers.append(at_end)
