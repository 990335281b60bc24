"""The one place a batch becomes a Lambda invocation, for every event source mapping.

``admit -> plan -> record -> wait -> release``: the function admits the invocation or throttles it
with a reason (:mod:`esmsim.model.lambda_env`); a throttled invoke is retried with one exponential
back-off until the caller's deadline; the function decides duration and outcome
(:mod:`esmsim.model.function`); the recorder gets one typed row; one SimPy timeout covers the
invocation; the environment goes back idle (reset if the invocation timed out). Lambda's own
limits on a batch live here too: the 6 MB synchronous payload (:func:`fit_payload`).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any, Protocol, TypeAlias

import numpy as np
import simpy

from esmsim.events import Outcome
from esmsim.model.backoff import backoff
from esmsim.model.function import LambdaFunction
from esmsim.observe.recorder import Recorder
from esmsim.scenario.mappings import ThrottleRetry

#: Lambda's synchronous invocation payload limit, which caps every batch a mapping sends.
PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024

#: An invocation's course: ``(outcome, failed, start, end, throttles)``. ``outcome`` is an
#: :class:`~esmsim.events.Outcome`, or :data:`GAVE_UP` when the caller's deadline passed while
#: throttled (or nothing was left to send); ``failed`` masks the batch's failed records for PARTIAL.
Invoked: TypeAlias = tuple[int, np.ndarray | None, float, float, int]
GAVE_UP = -1
#: An admitted attempt: ``(kind, outcome, end, busy_s, failed)``: the :class:`~esmsim.events.EnvKind`
#: it runs in, its outcome, when it ends, how long it runs, and the PARTIAL mask as in :data:`Invoked`.
Started: TypeAlias = tuple[int, int, float, float, np.ndarray | None]
_TIMEOUT = int(Outcome.TIMEOUT)


def fit_payload(cumulative: np.ndarray, room: float, offset: float = 0.0) -> tuple[int, float, bool]:
    """How many leading records fit in ``room`` payload bytes.

    Args:
        cumulative: running payload totals of the candidate records (record bytes plus event
            metadata): ``cumulative[i] - offset`` is the payload of the first ``i + 1``.
        room: bytes left under the cap.
        offset: what ``cumulative`` counts before the first candidate (prefix sums of a source).

    Returns:
        ``(k, nbytes, capped)``: how many fit, their payload, and whether the cap stopped them.
    """
    k = int(cumulative.searchsorted(offset + room, side="right"))
    nbytes = float(cumulative[k - 1]) - offset if k else 0.0
    return k, nbytes, k < cumulative.shape[0]


class Attempt(Protocol):
    """A batch as the invoke step sees it."""

    @property
    def n(self) -> int:
        """Records."""
        ...

    @property
    def nbytes(self) -> float:
        """Payload bytes (records plus event metadata)."""
        ...

    @property
    def draws(self) -> np.ndarray | None:
        """The records' poison draws."""
        ...

    @property
    def stored_at(self) -> float:
        """When the source stored the batch's last record (streams; NaN for queues)."""
        ...

    @property
    def shard(self) -> int:
        """The shard (-1 for queues)."""
        ...

    @property
    def lane(self) -> int:
        """The lane (-1 for queues)."""
        ...

    def prepare(self, now: float) -> bool:
        """Bring the batch up to ``now`` before an attempt; False when nothing is left to send."""
        ...

    def started(self, start: float, end: float, init_s: float) -> None:
        """The invocation was admitted at ``start`` and will end at ``end``, ``init_s`` of it cold start."""
        ...


class Invoker:
    """Invokes one function on behalf of one mapping."""

    __slots__ = (
        "_record",
        "admitted",
        "env",
        "environments",
        "function",
        "item_failures",
        "mapping",
        "recorder",
        "retry",
        "throttled",
    )

    def __init__(
        self,
        env: simpy.Environment,
        function: LambdaFunction,
        mapping: int,
        recorder: Recorder,
        retry: ThrottleRetry,
        item_failures: bool,
    ) -> None:
        self.env = env
        self.function = function
        self.mapping = mapping
        self.recorder = recorder
        self.retry = retry
        self.item_failures = item_failures
        # Read on every invocation: bound once here.
        self.environments = function.environments
        self._record = recorder.invocation
        #: Invokes admitted and throttled so far (a poller fleet's back-off watches them as they happen).
        self.admitted = 0
        self.throttled = 0

    def invoke(self, batch: Attempt, give_up_at: float = math.inf) -> Generator[simpy.Event, Any, Invoked]:
        """Invoke the function with ``batch``; throttled attempts are retried until ``give_up_at``."""
        env = self.env
        now = env.now
        throttles = 0
        while True:
            if not batch.prepare(now):
                return GAVE_UP, None, now, now, throttles
            started = self.start(batch, now)
            if started is not None:
                break
            throttles += 1
            retry = self.retry
            delay = backoff(throttles, retry.initial, retry.multiplier, retry.maximum)
            if now + delay >= give_up_at:
                return GAVE_UP, None, now, now, throttles
            yield env.timeout(delay)
            now = env.now
        kind, outcome, end, busy_s, failed = started
        yield env.timeout(busy_s)
        self.release(end, kind, outcome)
        return outcome, failed, now, end, throttles

    def start(self, batch: Attempt, now: float) -> Started | None:
        """One attempt at ``now``, admitted and recorded; None if throttled (the throttle is recorded).

        The caller decides when to try again after a throttle. An admitted invocation holds its
        environment until the caller's :meth:`release` at ``end``, ``busy_s`` after ``now`` (wait
        exactly ``busy_s``: ``now + busy_s`` is ``end`` to the bit).
        """
        function = self.function
        kind = self.environments.acquire(now)
        if kind < 0:
            self.recorder.throttle(now, function.index, self.mapping, -kind)
            self.throttled += 1
            return None
        self.admitted += 1
        n = batch.n
        draws = batch.draws if function.poison_rate else None  # only poison needs them
        init_s, run_s, outcome, failed = function.plan(now, kind, n, draws, self.item_failures)
        busy_s = init_s + run_s
        end = now + busy_s  # exactly the time SimPy will resume at: no rounding differences
        self._record(
            now,
            end,
            function.index,
            self.mapping,
            n,
            batch.nbytes,
            outcome,
            kind,
            init_s,
            run_s,
            now - batch.stored_at,
            batch.shard,
            batch.lane,
            function.memory_mb,
        )
        batch.started(now, end, init_s)
        return kind, outcome, end, busy_s, failed

    def release(self, end: float, kind: int, outcome: int) -> None:
        """The invocation admitted as ``kind`` ended at ``end``: its environment goes back idle."""
        self.environments.release(end, kind, outcome == _TIMEOUT)
