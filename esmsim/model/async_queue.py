"""Lambda's internal event queue for asynchronous invocation: one per function that triggers invoke.

Triggers (S3, SNS, EventBridge) hand events to Lambda, which accepts each one (202) into the
function's event queue; Lambda's own pollers invoke the function from it, one event per invocation,
when concurrency allows (docs/model.md §11):

* An event is tried when it arrives, oldest first among those due at one instant.
* A throttle (or a Lambda system error) puts the event back with a wait that doubles from
  ``throttle_backoff_initial`` up to ``throttle_backoff_maximum`` (AWS: 1 s to 5 minutes).
* A function error (or timeout) is retried ``maximum_retry_attempts`` times, ``retry_delays`` after
  the failed attempt ends (AWS: about 1 and 2 minutes).
* An event never waits past ``maximum_event_age``: it is discarded at that age, as it is when its
  retries run out, or at once when the function's reserved concurrency is 0. A discarded event goes
  to the on-failure destination and/or the dead-letter queue, or is dropped.

Events are a function's invocations (one each), so each waiting event is one small Python list:
fresh ones stay in the numpy blocks they arrived in until first tried; retried ones wait in a heap
keyed by when they are due. SimPy events are spent per invocation (its end) and per distinct due
time (one timer), never per waiting event.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import simpy

from esmsim.events import Outcome, RecordState
from esmsim.model.backoff import backoff
from esmsim.model.invoke import Invoker
from esmsim.model.push import Delivered
from esmsim.observe.recorder import Recorder
from esmsim.scenario.functions import AsyncConfig
from esmsim.scenario.sources import SNS_MAX_MESSAGE_BYTES

#: Lambda's asynchronous invocation payload limit (raised from 256 KB in 2025): a larger event is
#: refused at the invoke and never queued.
ASYNC_PAYLOAD_LIMIT_BYTES = 1024 * 1024
#: Events up to this size are one billed request; each further :data:`ASYNC_CHUNK_BYTES` is another.
ASYNC_BILLED_BYTES = 256 * 1024
ASYNC_CHUNK_BYTES = 64 * 1024

_SUCCESS = int(Outcome.SUCCESS)
# An event: [trigger, sent_at, accepted_at, size, draw, errors, throttles, id, first, tries_from, due]:
# ``first`` its first try, ``tries_from`` the first try since its last function error (NaN: none yet),
# ``due`` when it is next to be tried (kept for a live change of the maximum age).
_TRIGGER, _SENT, _ACCEPTED, _SIZE, _DRAW, _ERRORS, _THROTTLES, _ID, _FIRST, _TRIES_FROM, _DUE = range(11)
Event: TypeAlias = list[Any]


def extra_requests(size: float) -> int:
    """Requests billed beyond the first for an asynchronous event of ``size`` bytes."""
    if size <= ASYNC_BILLED_BYTES:
        return 0
    return math.ceil((size - ASYNC_BILLED_BYTES) / ASYNC_CHUNK_BYTES)


def retry_wait(config: AsyncConfig, errors: int) -> float | None:
    """The wait after the ``errors``-th failed attempt before the next, or None when retries are spent."""
    if errors > config.maximum_retry_attempts:
        return None
    return config.retry_delays[min(errors, len(config.retry_delays)) - 1]


def throttle_wait(config: AsyncConfig, throttles: int) -> float:
    """The wait after an event's ``throttles``-th throttle."""
    return backoff(throttles, config.throttle_backoff_initial, 2.0, config.throttle_backoff_maximum)


class _Single:
    """One event as the invoke step sees a batch (one object, refilled for each attempt)."""

    __slots__ = ("draws", "init_s", "n", "nbytes")
    stored_at = math.nan
    shard = -1
    lane = -1

    def __init__(self) -> None:
        self.n = 1
        self.nbytes = 0.0
        self.draws: np.ndarray | None = None
        self.init_s = 0.0

    def prepare(self, now: float) -> bool:
        return True

    def started(self, start: float, end: float, init_s: float) -> None:
        self.init_s = init_s


@dataclass
class AsyncTotals:
    """What one function's event queue did over the run."""

    received: int = 0  # events accepted (AsyncEventsReceived)
    retries: int = 0  # attempts after a function error
    dropped: int = 0  # events discarded (AsyncEventsDropped; routed or not)
    destination_failures: int = 0  # DestinationDeliveryFailures
    dead_letter_errors: int = 0  # DeadLetterErrors
    deliveries: dict[str, int] = field(default_factory=dict)  # destination type -> records sent


class AsyncEventQueue:
    """One function's asynchronous event queue and the invocations Lambda makes from it."""

    def __init__(
        self,
        env: simpy.Environment,
        function_name: str,
        config: AsyncConfig,
        recorder: Recorder,
        end_s: float,
        *,
        backlog_shared: bool,
    ) -> None:
        self.env = env
        self.name = function_name
        self.config = config
        self.recorder = recorder
        self.outcomes = recorder.outcomes
        self.end_s = end_s
        self.invokers: dict[int, Invoker] = {}
        self.consumers: dict[int, int] = {}
        #: Fresh events per trigger: blocks of arrivals and how far each trigger has been read.
        self._fresh: dict[int, list[Delivered]] = {}
        self._cursor: dict[int, int] = {}
        #: Events due again: (due at, sequence, event, discard instead of trying).
        self._due: list[tuple[float, int, Event, bool]] = []
        self._seq = itertools.count()
        self._running: dict[int, Event] = {}
        #: (trigger, sent, ids) of events arriving after the end.
        self._late: list[tuple[int, np.ndarray, np.ndarray]] = []
        self._timers: list[float] = []  # when the pending timers fire (a heap)
        self._batch = _Single()
        self.totals = AsyncTotals()
        #: Events waiting in the queue (accepted, not executing): its own level and, where queues or
        #: streams also wait, the run's backlog (build shares the two when only push sources exist).
        self._levels = [recorder.level("async_queued")]
        if not backlog_shared:
            self._levels.append(recorder.level("backlog"))
        self._received = recorder.counter("AsyncEventsReceived", function_name)
        self._dropped = recorder.counter("AsyncEventsDropped", function_name)
        self._age_sum = recorder.counter("AsyncEventAgeSum", function_name)
        self._age_count = recorder.counter("AsyncEventAgeCount", function_name)
        self._age_max = recorder.maximum("AsyncEventAge", function_name)
        self._dlq_errors = recorder.counter("DeadLetterErrors", function_name)
        self._dest_failures = recorder.counter("DestinationDeliveryFailures", function_name)

    def add_trigger(self, trigger: int, invoker: Invoker, consumer: int) -> None:
        """A trigger delivering to this function: its invoke step and its record consumer."""
        self.invokers[trigger] = invoker
        self.consumers[trigger] = consumer
        self._fresh[trigger] = []
        self._cursor[trigger] = 0

    # ------------------------------------------------------------------ events arriving
    def accept(self, trigger: int, events: Delivered) -> None:
        """Take a trigger's block of arrivals (sorted, all after its earlier ones)."""
        consumer = self.consumers[trigger]
        self.outcomes.arrived(consumer, len(events))
        late = events.arrived_at > self.end_s
        if late.any():
            self._late.append((trigger, events.sent_at[late], events.ids[late]))
            events = events.take(~late)
        big = events.size > ASYNC_PAYLOAD_LIMIT_BYTES
        if big.any():
            self.outcomes.ended(
                consumer,
                events.sent_at[big],
                events.arrived_at[big],
                RecordState.DROPPED,
                ids=events.ids[big],
            )
            events = events.take(~big)
        if not len(events):
            return
        self.totals.received += len(events)
        self._received.add_many(events.arrived_at)
        for level in self._levels:
            level.add_many(events.arrived_at, 1.0)
        self._fresh[trigger].append(events)
        self._arm(float(events.arrived_at[0]))

    def _next_fresh(self) -> tuple[float, int]:
        """The earliest fresh arrival and its trigger (inf when none waits)."""
        best, which = math.inf, -1
        for trigger, blocks in self._fresh.items():
            if blocks:
                at = float(blocks[0].arrived_at[self._cursor[trigger]])
                if at < best:
                    best, which = at, trigger
        return best, which

    def _pop_fresh(self, trigger: int) -> Event:
        blocks = self._fresh[trigger]
        block, k = blocks[0], self._cursor[trigger]
        draw = math.nan if block.draw is None else float(block.draw[k])
        event = [
            trigger,
            float(block.sent_at[k]),
            float(block.arrived_at[k]),
            float(block.size[k]),
            draw,
            0,
            0,
            int(block.ids[k]),
            math.nan,
            math.nan,
            math.nan,
        ]
        if k + 1 < len(block):
            self._cursor[trigger] = k + 1
        else:
            blocks.pop(0)
            self._cursor[trigger] = 0
        return event

    # ------------------------------------------------------------------ the pollers
    def _arm(self, at: float) -> None:
        """Make sure a timer wakes the queue by ``at``.

        A pending timer at or before ``at`` will do: when it fires, the queue arms the next one.
        """
        timers = self._timers
        if not timers or at < timers[0]:
            heapq.heappush(timers, at)
            timer = self.env.timeout(max(0.0, at - self.env.now))
            timer.callbacks.append(self._on_timer)

    def _on_timer(self, _: simpy.Event) -> None:
        heapq.heappop(self._timers)  # timers fire in time order: this one is the earliest
        self.dispatch(self.env.now)

    def dispatch(self, now: float) -> None:
        """Try every event due by ``now``, oldest due first; then arm the timer for the next."""
        due = self._due
        while True:
            fresh_at, trigger = self._next_fresh()
            due_at = due[0][0] if due else math.inf
            if min(fresh_at, due_at) > now:
                break
            if fresh_at <= due_at:
                self._attempt(self._pop_fresh(trigger), now)
                continue
            at, _, event, discard = heapq.heappop(due)
            if discard:
                self._discard(event, at)
            else:
                self._attempt(event, now)
        nxt = min(self._next_fresh()[0], due[0][0] if due else math.inf)
        if nxt < math.inf:
            self._arm(nxt)

    def _attempt(self, event: Event, now: float) -> None:
        invoker = self.invokers[event[_TRIGGER]]
        if invoker.function.spec.reserved_concurrency == 0:  # AWS: straight to the destination or DLQ
            self._discard(event, now)  # (read each time: a live change may set or lift it)
            return
        if math.isnan(event[_TRIES_FROM]):
            event[_TRIES_FROM] = now
            if math.isnan(event[_FIRST]):
                event[_FIRST] = now
        batch = self._batch
        batch.nbytes = event[_SIZE]
        batch.draws = None if math.isnan(event[_DRAW]) else np.array([event[_DRAW]])
        started = invoker.start(batch, now)
        if started is None:
            event[_THROTTLES] += 1
            self._wait(event, now + throttle_wait(self.config, event[_THROTTLES]))
            return
        kind, outcome, end, busy_s, _ = started
        self._post(now, -1.0)
        age = now - event[_ACCEPTED]
        self._age_sum.add(now, age)
        self._age_count.add(now, 1.0)
        self._age_max.add(now, age)
        extra = extra_requests(event[_SIZE])
        if extra:
            self.recorder.add_total("async_extra_requests", extra)
        key = id(event)
        self._running[key] = event
        timer = self.env.timeout(busy_s)
        timer.callbacks.append(self._ender(event, invoker, kind, outcome, (now, end, batch.init_s)))

    def _ender(
        self, event: Event, invoker: Invoker, kind: int, outcome: int, times: tuple[float, float, float]
    ) -> Callable[[simpy.Event], None]:
        """What happens when an attempt ``(start, end, init_s)`` ends."""
        start, end, init_s = times

        def ended(_: simpy.Event) -> None:
            invoker.release(end, kind, outcome)
            del self._running[id(event)]
            if outcome == _SUCCESS:
                consumer = self.consumers[event[_TRIGGER]]
                tries_from = event[_TRIES_FROM]  # no batching: ready when tried
                self.outcomes.ended(
                    consumer,
                    np.array([event[_SENT]]),
                    end,
                    RecordState.SUCCEEDED,
                    ids=np.array([event[_ID]]),
                    timing=(event[_FIRST], tries_from, tries_from, start, init_s),
                )
                target = self.config.on_success
                if target is not None:
                    self._count_delivery(target.type)
                return
            event[_ERRORS] += 1
            event[_TRIES_FROM] = math.nan
            wait = retry_wait(self.config, event[_ERRORS])
            if wait is None:
                self._discard(event, end)
                return
            self.totals.retries += 1
            self._post(end, 1.0)
            self._wait(event, end + wait)

        return ended

    def _wait(self, event: Event, due_at: float, *, not_before: float = -math.inf) -> None:
        """Put an event back, due at ``due_at``, or to be discarded at its maximum age if that is sooner.

        ``not_before``: a discard never happens before it (a live change cannot discard in the past).
        """
        event[_DUE] = due_at
        deadline = max(event[_ACCEPTED] + self.config.maximum_event_age, not_before)
        if due_at >= deadline:
            heapq.heappush(self._due, (deadline, next(self._seq), event, True))
            self._arm(deadline)
        else:
            heapq.heappush(self._due, (due_at, next(self._seq), event, False))
            self._arm(due_at)

    def apply(self, config: AsyncConfig, now: float) -> None:
        """A live change of the function's EventInvokeConfig (PutFunctionEventInvokeConfig).

        Retries, retry delays and destinations apply to the next attempt or discard; a new maximum
        age applies to every waiting event at once (one already older is discarded now).
        """
        if config == self.config:
            return
        age_changed = config.maximum_event_age != self.config.maximum_event_age
        self.config = config
        if age_changed:
            waiting, self._due = self._due, []
            for _, _, event, _ in waiting:
                self._wait(event, max(event[_DUE], now), not_before=now)

    def _post(self, at: float, delta: float) -> None:
        for level in self._levels:
            level.post((at, delta))

    # ------------------------------------------------------------------ discarding
    def _discard(self, event: Event, at: float) -> None:
        """The event leaves without success: to the on-failure destination and/or the DLQ, or dropped."""
        self._post(at, -1.0)
        self.totals.dropped += 1
        self._dropped.add(at)
        config = self.config
        routed = False
        for target, failures in (
            (config.on_failure, self._dest_failures),
            (config.dead_letter_queue, self._dlq_errors),
        ):
            if target is None:
                continue
            if target.type == "sns" and event[_SIZE] > SNS_MAX_MESSAGE_BYTES:
                failures.add(at)  # SNS refuses a message over 256 KB
                if failures is self._dest_failures:
                    self.totals.destination_failures += 1
                else:
                    self.totals.dead_letter_errors += 1
                continue
            routed = True
            self._count_delivery(target.type)
        state = RecordState.DLQ if routed else RecordState.DROPPED
        self.outcomes.ended(
            self.consumers[event[_TRIGGER]], np.array([event[_SENT]]), at, state, ids=np.array([event[_ID]])
        )

    def _count_delivery(self, kind: str) -> None:
        self.totals.deliveries[kind] = self.totals.deliveries.get(kind, 0) + 1

    # ------------------------------------------------------------------ the end of the run
    def finish(self) -> None:
        """Census of the events still queued (or not yet arrived) and of those executing."""
        waiting: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {t: [] for t in self.consumers}
        running: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {t: [] for t in self.consumers}
        for _, _, event, _ in self._due:
            waiting[event[_TRIGGER]].append((np.array([event[_SENT]]), np.array([event[_ID]])))
        for trigger, blocks in self._fresh.items():
            k = self._cursor[trigger]
            for i, block in enumerate(blocks):
                rest = block.take(slice(k if i == 0 else 0, None))
                waiting[trigger].append((rest.sent_at, rest.ids))
        for trigger, sent, ids in self._late:
            waiting[trigger].append((sent, ids))
        for event in self._running.values():
            running[event[_TRIGGER]].append((np.array([event[_SENT]]), np.array([event[_ID]])))
        for trigger, consumer in self.consumers.items():
            for parts, state in (
                (waiting[trigger], RecordState.WAITING),
                (running[trigger], RecordState.IN_FLIGHT),
            ):
                if parts:
                    sent = np.concatenate([p[0] for p in parts])
                    ids = np.concatenate([p[1] for p in parts])
                    self.outcomes.census(consumer, sent, state, ids=ids)
        totals = self.totals
        for name in ("received", "retries", "dropped"):
            self.recorder.add_total(f"async_{name}", getattr(totals, name))
        self.recorder.add_total("async_destination_failures", totals.destination_failures)
        self.recorder.add_total("async_dead_letter_errors", totals.dead_letter_errors)
        for kind, n in totals.deliveries.items():
            self.recorder.add_total(f"async_deliveries:{kind}", n)
