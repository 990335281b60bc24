"""An Amazon MQ mapping: a few consumers, each gathering a batch and invoking it (docs/model.md §17).

AWS runs at most 5 concurrent invocations per ActiveMQ mapping and 1 per RabbitMQ mapping,
whatever the function's reserved or provisioned concurrency: here, that many consumers, each
one batch at a time. One consumer gathers at a time (the others wait their turn idle): its
batching window starts when the first (matching) message is there, and the batch closes at
``batch_size`` messages, at the 6 MB payload or when the window ends. Messages that do not match
the mapping's filter are acknowledged as the gathering consumer reads them (they end FILTERED).

A batch is invoked through the shared invoke step (throttles retried there). On a function error
the consumer keeps the batch and delivers it again, whole, after ``redelivery_delay``, until it
succeeds, its messages expire (``message_ttl``) or the broker's redelivery limit is passed; then
its messages go to the dead-letter queue or are dropped (the source's ``dead_letter``). Other
consumers go on meanwhile. Everything a consumer waits for is computed from the messages' send
times: one SimPy event per gathering step and per invocation, none per message.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from esmsim.events import Outcome, RecordState
from esmsim.model.filtering import RecordFilter, record_filter
from esmsim.model.invoke import GAVE_UP, PAYLOAD_LIMIT_BYTES, Invoker, fit_payload
from esmsim.model.mq_broker import MqBroker
from esmsim.observe.recorder import Recorder
from esmsim.rng import Streams
from esmsim.scenario.mappings import MqMapping
from esmsim.scenario.sources import MQ_ENGINES, MqSource

_ERROR = int(Outcome.ERROR)
#: Longest a gathering consumer sleeps before it looks at the queue again: it acknowledges
#: filtered messages and notices live changes at least this often (a level's lateness bound).
MAX_NAP_S = 5.0


def consumers_of(spec: MqMapping, source: MqSource) -> int:
    """Concurrent invocations the mapping runs at most: its ``consumers``, or the engine's default."""
    return spec.consumers if spec.consumers is not None else MQ_ENGINES[source.engine]


class MqBatch:
    """A consumer's batch: its messages as columns, kept until acknowledged or given up on.

    It is what the invoke step invokes (:class:`esmsim.model.invoke.Attempt`): before each
    attempt it drops messages that expired meanwhile.
    """

    __slots__ = (
        "deliveries",
        "draw",
        "draws",
        "first",
        "first_ready",
        "ids",
        "init_s",
        "n",
        "nbytes",
        "owner",
        "ready_at",
        "returned_at",
        "sent",
        "size",
        "start_at",
    )

    #: Queues have no shard or lane, and no stored time (no IteratorAge).
    shard = -1
    lane = -1
    stored_at = math.nan

    def __init__(
        self,
        owner: MqMappingRuntime,
        sent: np.ndarray,
        size: np.ndarray,
        ids: np.ndarray,
        draw: np.ndarray | None,
        first: np.ndarray,
        now: float,
    ) -> None:
        self.owner = owner
        self.sent, self.size, self.ids, self.draw = sent, size, ids, draw
        self.first = first  # when each message reached the gathering consumer
        self.deliveries = 0
        self.first_ready = self.ready_at = self.returned_at = now
        self.start_at = math.nan
        self.init_s = 0.0
        self.n = 0
        self.nbytes = 0.0
        self.draws: np.ndarray | None = None
        self._describe()

    def _describe(self) -> None:
        owner = self.owner
        self.n = int(self.sent.shape[0])
        self.nbytes = float(self.size.sum()) * owner.expansion + self.n * owner.overhead
        self.draws = self.draw

    def prepare(self, now: float) -> bool:
        """Drop the messages that expired since the batch was gathered; False when none is left.

        A message that expired while an invocation held it ends when the batch came back (the
        broker cannot take it back sooner), so no end is written further back than a retry's wait.
        """
        ttl = self.owner.broker.ttl_s
        if ttl is not None and self.n:
            gone = self.sent + ttl <= now
            if gone.any():
                at = np.maximum(self.sent[gone] + ttl, self.returned_at)
                self.owner.end(self, gone, RecordState.EXPIRED, at)
                self._keep(~gone)
        return self.n > 0

    def _keep(self, keep: np.ndarray) -> None:
        self.sent, self.size, self.ids, self.first = (
            self.sent[keep],
            self.size[keep],
            self.ids[keep],
            self.first[keep],
        )
        if self.draw is not None:
            self.draw = self.draw[keep]
        self._describe()

    def started(self, start: float, end: float, init_s: float) -> None:
        """The attempt was admitted: only its times are kept (the messages stay until acknowledged)."""
        self.start_at = start
        self.init_s = init_s

    def timing(self) -> tuple[np.ndarray, np.ndarray, float, float, float]:
        """Where the latency went (outcomes.Timing): a batch is retried in place, as a stream's is."""
        lost = self.ready_at - self.first_ready
        return (
            self.first,
            self.first + lost if lost else self.first,
            self.ready_at,
            self.start_at,
            self.init_s,
        )


class MqMappingRuntime:
    """One Amazon MQ mapping during a run: its consumers and the batches they hold."""

    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        spec: MqMapping,
        source_name: str,
        source: MqSource,
        broker: MqBroker,
        invoker: Invoker,
        recorder: Recorder,
        streams: Streams,
    ) -> None:
        self.env = env
        self.index = index
        self.spec = spec
        self.source_name = source_name
        self.source = source
        self.broker = broker
        self.invoker = invoker
        self.recorder = recorder
        self.outcomes = recorder.outcomes
        self.streams = streams
        self.expansion = source.payload_expansion
        self.overhead = source.record_overhead
        self.consumers = consumers_of(spec, source)
        self.redeliveries = source.redeliveries
        self.give_up_state = RecordState.DLQ if source.dead_letters else RecordState.DROPPED
        #: The filter in effect, read at every batch: a live change of the mapping's filter replaces it.
        self.filter: RecordFilter | None = self._filter(spec)
        self._turn = simpy.Resource(env, capacity=1)  # one consumer gathers at a time
        self._changed = env.event()  # succeeds when a live change reaches the mapping
        self.holding: set[MqBatch] = set()  # batches taken from the queue, not yet acknowledged

    def _filter(self, spec: MqMapping) -> RecordFilter | None:
        return record_filter(
            spec.filter,
            self.source.traffic.attributes,
            source=self.source_name,
            mapping=self.index,
            streams=self.streams,
        )

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Start the consumers."""
        for _ in range(self.consumers):
            self.env.process(self._consumer())

    def apply(self, spec: MqMapping, now: float) -> None:
        """A live change: batch size, window, enabled and filter apply from the next batch."""
        self.spec = spec
        self.filter = self._filter(spec)
        event, self._changed = self._changed, self.env.event()
        event.succeed()

    def finish(self, end: float) -> None:
        """At the end of the run: the messages consumers hold are in flight."""
        for batch in self.holding:
            self.outcomes.census(self.broker.consumer, batch.sent, RecordState.IN_FLIGHT, ids=batch.ids)

    # ------------------------------------------------------------------ a consumer
    def _consumer(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        while True:
            if not self.spec.enabled:
                yield self._changed
                continue
            with self._turn.request() as turn:
                yield turn
                batch = yield from self._gather()
            if batch is not None:
                yield from self._deliver(batch)
            elif self.spec.enabled:  # a batch all of whose messages expired: look again
                yield env.timeout(0)

    def _gather(self) -> Generator[simpy.Event, Any, MqBatch | None]:
        """Wait for a first matching message, then gather until a batch closes; None if disabled."""
        env, broker = self.env, self.broker
        since = env.now  # from now on this consumer reads the queue as messages arrive
        window_start = math.inf
        while True:
            now = env.now
            if not self.spec.enabled:
                return None
            broker.expire(now)
            spec = self.spec
            h = broker.head
            sent, keep, matched = self._scan(h, spec.batch_size + 1)
            if window_start == math.inf:
                arrived_first = float(sent[matched[0]]) if matched.size else math.inf
                if self.filter is not None:  # messages before the first match are read (acknowledged)
                    self._ack_filtered(h, sent, keep, min(now, arrived_first), since)
                if arrived_first <= now:
                    window_start = max(arrived_first, since)
                    continue
                wake = min(arrived_first, now + MAX_NAP_S)
                yield env.timeout(wake - now) | broker.extended | self._changed
                continue
            close, count = self._close_time(sent, keep, matched, window_start + spec.batching_window)
            if close <= now:
                return self._take(h, sent, keep, matched, count, since, window_start, now)
            wake = min(close, now + MAX_NAP_S)
            yield env.timeout(wake - now) | broker.extended | self._changed

    def _scan(self, h: int, need: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The queue's rows from ``h`` until ``need`` match the filter (or all rows): sent, match, matches.

        Only a prefix is read, so a long backlog costs a batch's worth of work per batch.
        """
        broker, flt = self.broker, self.filter
        top = broker.rows
        length = need if flt is None else max(4 * need, 1024)
        while True:
            stop = min(top, h + length)
            sent = broker.sent[h:stop]
            if flt is None:  # every message matches: no mask to search
                keep, matched = np.ones(stop - h, dtype=bool), np.arange(stop - h)
            else:
                keep = flt.matches(broker.ids[h:stop])
                matched = np.flatnonzero(keep)
            if matched.shape[0] >= need or stop >= top:
                return sent, keep, matched
            length *= 4

    def _close_time(
        self, sent: np.ndarray, keep: np.ndarray, matched: np.ndarray, deadline: float
    ) -> tuple[float, int]:
        """When the batch closes, and how many matching messages it then takes.

        The batch closes at the window's end, when ``batch_size`` matching messages are there, or
        when the next matching message would take the payload past 6 MB, whichever comes first;
        only messages already generated (sent before the broker's horizon) can decide it.
        """
        broker = self.broker
        limit = self.spec.batch_size
        candidates = matched[: limit + 1]
        payload = broker.size[broker.head + candidates] * self.expansion + self.overhead
        k, _, capped = fit_payload(np.cumsum(payload), PAYLOAD_LIMIT_BYTES)
        k = max(k, 1)  # a single message always goes (AWS drops only records above 6 MB by themselves)
        close, count = deadline, int(np.count_nonzero(sent[matched] <= deadline))
        if capped and k < min(limit, candidates.shape[0]) and sent[candidates[k]] < close:
            close, count = float(sent[candidates[k]]), k  # the message that does not fit closes the batch
        if matched.shape[0] >= limit and sent[matched[limit - 1]] < close:
            close, count = float(sent[matched[limit - 1]]), limit
        count = min(count, k, limit)
        if close > broker.horizon:  # later messages are not generated yet: they might close it sooner
            return math.inf, 0
        return close, count

    def _take(
        self,
        h: int,
        sent: np.ndarray,
        keep: np.ndarray,
        matched: np.ndarray,
        count: int,
        since: float,
        window_start: float,
        now: float,
    ) -> MqBatch | None:
        """Take the batch's ``count`` matching messages off the queue, acknowledging filtered ones."""
        broker = self.broker
        if count == 0:
            return None
        stop = int(matched[count - 1]) + 1  # rows up to the batch's last message leave the queue
        sel: slice | np.ndarray = slice(h, h + stop)  # views: the broker never writes its arrays in place
        if self.filter is not None:
            self._ack_filtered(h, sent[:stop], keep[:stop], now, since, through=stop)
            sel = np.flatnonzero(keep[:stop]) + h
        first = np.maximum(broker.sent[sel], window_start)
        batch = MqBatch(
            self,
            broker.sent[sel],
            broker.size[sel],
            broker.ids[sel],
            None if broker.draw is None else broker.draw[sel],
            first,
            now,
        )
        broker.head = h + stop
        self.holding.add(batch)
        return batch

    def _ack_filtered(
        self,
        h: int,
        sent: np.ndarray,
        keep: np.ndarray,
        upto: float,
        since: float,
        through: int | None = None,
    ) -> None:
        """Acknowledge the non-matching messages at the head sent by ``upto`` (or the first ``through`` rows).

        A message the gathering consumer reads is acknowledged when it arrives (or when the
        consumer started reading, if it waited before). Matching messages stop the sweep unless
        ``through`` says the rows up to it leave the queue together (a batch being taken).
        """
        broker = self.broker
        if through is None:
            stop = int(np.searchsorted(sent, upto, side="right"))
            first_match = np.flatnonzero(keep[:stop])
            stop = int(first_match[0]) if first_match.size else stop
            if stop == 0:
                return
            # The head's non-matching run leaves together.
            broker.end(h, h + stop, RecordState.FILTERED, np.maximum(sent[:stop], since))
            broker.head = h + stop
            return
        drop = np.flatnonzero(~keep[:through])
        if drop.size == 0:
            return
        rows = drop + h
        self.outcomes.ended(
            broker.consumer,
            broker.sent[rows],
            np.maximum(broker.sent[rows], since),
            int(RecordState.FILTERED),
            ids=broker.ids[rows],
        )
        for level in broker.levels:
            level.add_many(np.maximum(broker.sent[rows], since), -1.0)

    def _deliver(self, batch: MqBatch) -> Generator[simpy.Event, Any, None]:
        """Invoke the batch until it succeeds, expires or passes the broker's redelivery limit."""
        env = self.env
        while True:
            outcome, _, _, end, _ = yield from self.invoker.invoke(batch)
            if outcome == GAVE_UP:  # every message expired while it waited
                break
            batch.deliveries += 1
            if outcome < _ERROR:  # success (MQ mappings have no partial batch responses)
                self.end(
                    batch, np.ones(batch.n, dtype=bool), RecordState.SUCCEEDED, end, timing=batch.timing()
                )
                break
            if 0 <= self.redeliveries < batch.deliveries:
                self.end(batch, np.ones(batch.n, dtype=bool), self.give_up_state, end)
                break
            batch.returned_at = end
            yield env.timeout(self.spec.redelivery_delay)
            batch.ready_at = env.now
        self.holding.discard(batch)

    def end(
        self,
        batch: MqBatch,
        which: np.ndarray,
        state: RecordState,
        done: float | np.ndarray,
        timing: Any = None,
    ) -> None:
        """Messages of ``batch`` (mask ``which``) reached a final state at ``done``."""
        n = int(np.count_nonzero(which))
        if n == 0:
            return
        broker = self.broker
        self.outcomes.ended(
            broker.consumer, batch.sent[which], done, int(state), ids=batch.ids[which], timing=timing
        )
        at = done if isinstance(done, np.ndarray) else np.full(n, done)
        for level in broker.levels:
            level.add_many(at, -1.0)
