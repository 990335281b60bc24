"""Push sources (S3, SNS, EventBridge): events emitted by a service and delivered along each trigger.

A push source's events (when emitted, their size, their poison draw) are generated once per source,
block by block, like a queue's traffic. Each trigger is a delivery path with its own random streams:
the service's delivery delay, S3's duplicate notifications, and the service's own retries of a
failed hand-off to Lambda (SNS's fixed policy for Lambda endpoints, an EventBridge target's retry
policy). A path hands its events on in the order they arrive, a block at a time, to what the trigger
targets: a function's asynchronous event queue (:mod:`esmsim.model.async_queue`) or an SQS queue
(:func:`into_queue`); :class:`PathBooks` keeps the records that never reach it.

Arrivals are complete up to the source's horizon (no later emission can arrive earlier than its own
emission), so a path passes on what arrives before it and carries the rest to the next block.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import simpy

from esmsim.events import RecordState
from esmsim.model.sqs_queue import SqsQueue
from esmsim.model.sqs_receive import SqsReceivers
from esmsim.observe.outcomes import Outcomes
from esmsim.rng import Streams
from esmsim.scenario.sources import EventBridgeSource, PushSource, S3Source, SnsSource

#: SNS's delivery policy for AWS-managed endpoints (Lambda, SQS): the waits before each retry of a
#: failed hand-off. 3 immediate retries, 2 a second apart, 10 backing off exponentially from 1 to
#: 20 s, then 100,000 at 20 s: 100,015 retries over about 23 days (docs/model.md §11).
SNS_IMMEDIATE, SNS_PRE_BACKOFF, SNS_BACKOFF, SNS_POST_BACKOFF = 3, 2, 10, 100_000
SNS_MIN_DELAY_S, SNS_MAX_DELAY_S = 1.0, 20.0


def sns_retry_waits() -> np.ndarray:
    """The waits before SNS's retries 1, 2, ... of the backed-off phases (the 20 s tail excluded)."""
    backoff = SNS_MIN_DELAY_S * (SNS_MAX_DELAY_S / SNS_MIN_DELAY_S) ** (
        np.arange(SNS_BACKOFF) / (SNS_BACKOFF - 1)
    )
    return np.concatenate([np.zeros(SNS_IMMEDIATE), np.full(SNS_PRE_BACKOFF, SNS_MIN_DELAY_S), backoff])


def handoff_delay(source: PushSource, failures: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The extra delay of ``failures`` failed hand-offs before one succeeds, and whether the service gave up.

    Pure: the waits of the source's retry policy summed over the failed attempts. S3 documents no
    retry policy toward Lambda and is never asked (its failure rate is not a knob).
    """
    k = failures.astype(np.int64)
    if isinstance(source, SnsSource):
        head = np.concatenate([[0.0], np.cumsum(sns_retry_waits())])
        limit = head.shape[0] - 1 + SNS_POST_BACKOFF
        delay = np.where(k < head.shape[0], head[np.minimum(k, head.shape[0] - 1)], 0.0)
        tail = np.maximum(k - (head.shape[0] - 1), 0)
        delay = delay + np.where(tail > 0, head[-1] + tail * SNS_MAX_DELAY_S, 0.0)
        return delay, k > limit
    if isinstance(source, EventBridgeSource):
        # Waits double from 1 s up to the cap: after k failures, sum of min(2**(j-1), cap), j = 1..k.
        cap = source.retry_interval_max
        doubling = max(0, math.floor(math.log2(cap)) + 1) if cap >= 1 else 0  # waits below the cap
        below = np.minimum(k, doubling)
        delay = (2.0**below - 1.0) + np.maximum(k - doubling, 0) * cap
        gave_up = (k > source.maximum_retry_attempts) | (delay > source.maximum_event_age)
        return delay, gave_up
    return np.zeros(k.shape[0]), np.zeros(k.shape[0], dtype=bool)


@dataclass
class Delivered:
    """Events as they reach a trigger's target, in arrival order."""

    sent_at: np.ndarray  # when the service emitted the event (latency counts from here)
    arrived_at: np.ndarray  # when the target accepted it (sorted)
    size: np.ndarray
    draw: np.ndarray | None  # poison draws, when a function may find poison
    ids: np.ndarray  # numbered along the path as emitted (a duplicate gets its own number)

    def __len__(self) -> int:
        return int(self.arrived_at.shape[0])

    def take(self, index: np.ndarray | slice) -> Delivered:
        """The events ``index`` picks (a mask, positions or a slice)."""
        draw = None if self.draw is None else self.draw[index]
        return Delivered(self.sent_at[index], self.arrived_at[index], self.size[index], draw, self.ids[index])


@dataclass
class PathTotals:
    """What one delivery path did, for the run's totals."""

    duplicates: int = 0  # extra copies S3 delivered
    handoff_retries: int = 0  # failed hand-offs the service retried


class DeliveryPath:
    """One trigger's delivery of a push source's events (delays, duplicates, hand-off retries)."""

    def __init__(
        self,
        source: PushSource,
        name: str,
        index: int,
        streams: Streams,
        deliver: Callable[[Delivered], None],
        lose: Callable[[np.ndarray, np.ndarray, np.ndarray], None],
    ) -> None:
        """A trigger's delivery path.

        Args:
            source: The push source's spec.
            name: The source's name.
            index: The trigger's index (its random streams are its own).
            streams: The run's random streams.
            deliver: Takes each block of arrivals (sorted, complete up to the source's horizon).
            lose: Takes the emission times, give-up times and ids of events the service gave up on.
        """
        self.source = source
        entity = f"{name}#triggers[{index}]"
        self._delays = streams.get("delivery_delay", entity)
        self._duplicates = streams.get("duplicates", entity)
        self._handoff = streams.get("handoff", entity)
        self._deliver = deliver
        self._lose = lose
        self._carry: Delivered | None = None
        self._next_id = 0
        self.totals = PathTotals()

    def emit(self, block: dict[str, np.ndarray], horizon: float) -> None:
        """Take a block the source emitted; pass on what arrives before ``horizon``, carry the rest."""
        sent = block["sent_at"]
        n = sent.shape[0]
        size, draw = block["size"], block.get("draw")
        source = self.source
        if isinstance(source, S3Source) and source.duplicate_rate > 0 and n:
            twice = self._duplicates.random(n) < source.duplicate_rate
            again = np.flatnonzero(twice)
            self.totals.duplicates += int(again.shape[0])
            order = np.concatenate([np.arange(n), again])
            sent, size = sent[order], size[order]
            draw = None if draw is None else draw[order]
            n = sent.shape[0]
        ids = np.arange(self._next_id, self._next_id + n)
        self._next_id += n
        arrived = sent + source.delivery_delay.sample(self._delays, n)
        rate = getattr(source, "handoff_failure_rate", 0.0)
        if rate > 0 and n:
            failures = np.asarray(self._handoff.geometric(1.0 - rate, n)) - 1
            extra, gave_up = handoff_delay(source, failures)
            self.totals.handoff_retries += int(failures[~gave_up].sum())
            if gave_up.any():
                self._lose(sent[gave_up], arrived[gave_up] + extra[gave_up], ids[gave_up])
                keep = ~gave_up
                sent, size, arrived, extra, ids = (
                    sent[keep],
                    size[keep],
                    arrived[keep],
                    extra[keep],
                    ids[keep],
                )
                draw = None if draw is None else draw[keep]
            arrived = arrived + extra
        fresh = Delivered(sent, arrived, size, draw, ids)
        if self._carry is not None:
            fresh = _concat(self._carry, fresh)
        order = np.argsort(fresh.arrived_at, kind="stable")
        fresh = fresh.take(order)
        cut = (
            int(fresh.arrived_at.searchsorted(horizon, side="left")) if math.isfinite(horizon) else len(fresh)
        )
        now_part = fresh.take(slice(0, cut))
        self._carry = fresh.take(slice(cut, None)) if cut < len(fresh) else None
        if len(now_part):
            self._deliver(now_part)


def _concat(a: Delivered, b: Delivered) -> Delivered:
    draw = None if a.draw is None or b.draw is None else np.concatenate([a.draw, b.draw])
    return Delivered(
        np.concatenate([a.sent_at, b.sent_at]),
        np.concatenate([a.arrived_at, b.arrived_at]),
        np.concatenate([a.size, b.size]),
        draw,
        np.concatenate([a.ids, b.ids]),
    )


class PathBooks:
    """A delivery path's records that never reach its target: lost by the service, or still on the way.

    A queue numbers its own messages (0, 1, ...); events that never reach it carry ``-1 - n``, n their
    number along the path, so no two records of one consumer share an id.
    """

    def __init__(self, outcomes: Outcomes, end: float, *, into_queue: bool) -> None:
        self.outcomes = outcomes
        self.end = end
        self.into_queue = into_queue
        self.consumer = -1
        self.held: list[tuple[np.ndarray, np.ndarray]] = []  # (sent, ids) of events on the way at the end

    def _ids(self, ids: np.ndarray) -> np.ndarray:
        return -1 - ids if self.into_queue else ids

    def lose(self, sent: np.ndarray, at: np.ndarray, ids: np.ndarray) -> None:
        """The service gave up on these events at ``at`` (after the run: still on their way)."""
        self.outcomes.arrived(self.consumer, sent.shape[0])
        gone = at <= self.end
        self.outcomes.ended(
            self.consumer, sent[gone], at[gone], RecordState.DROPPED, ids=self._ids(ids[gone])
        )
        self.held.append((sent[~gone], self._ids(ids[~gone])))

    def late(self, sent: np.ndarray, ids: np.ndarray) -> None:
        """These events reach a queue after the run ends."""
        self.outcomes.arrived(self.consumer, sent.shape[0])
        self.held.append((sent, self._ids(ids)))

    def census(self) -> None:
        """At the end: the events still on their way are waiting."""
        if self.held:
            sent = np.concatenate([h[0] for h in self.held])
            ids = np.concatenate([h[1] for h in self.held])
            self.outcomes.census(self.consumer, sent, RecordState.WAITING, ids=ids)


def into_queue(
    queue: SqsQueue, receivers: SqsReceivers, env: simpy.Environment, end: float, books: PathBooks
) -> Callable[[Delivered], None]:
    """Deliveries into an SQS queue: they arrive as its messages (sent when they reach it)."""

    def deliver(events: Delivered) -> None:
        late = events.arrived_at > end
        if late.any():
            books.late(events.sent_at[late], events.ids[late])
            events = events.take(~late)
        if not len(events):
            return
        block = {"sent_at": events.arrived_at, "size": events.size}
        if events.draw is not None:
            block["draw"] = events.draw
        queue.extend(block)
        receivers.on_extend(env.now)

    return deliver
