"""The SQS event source mapping: a fleet of pollers, each receiving a batch and invoking with it.

Each poller is one concurrent batch (AWS's unit of SQS mapping concurrency): it receives, invokes
synchronously, deletes what succeeded, and loops. ``maximum_concurrency`` caps the fleet, so at the
cap the mapping stops reading instead of being throttled. A throttled invoke is retried with backoff
until the batch's visibility timeout would pass; then the poller lets it go and the messages
reappear with their receive count already spent (docs/model.md §3). A scaler process grows
the fleet while messages remain and retires idle pollers when they do not.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any, cast

import simpy

from esmsim.model.function import ERROR, PARTIAL, LambdaFunction
from esmsim.model.scaling import backed_off, failing_share, next_target, poller_floor
from esmsim.model.sqs_queue import Batch, SqsQueue
from esmsim.model.sqs_receive import WAKE, Collector, SqsReceivers
from esmsim.observe import Level
from esmsim.scenario.mappings import SqsMapping

NAN = math.nan  # the iterator age and shard columns of the invocation log are for streams


class SqsMappingRuntime:
    """One SQS mapping during a run."""

    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        spec: SqsMapping,
        queue: SqsQueue,
        receivers: SqsReceivers,
        function: LambdaFunction,
        invocations: list[tuple[Any, ...]],
        throttles: list[tuple[Any, ...]],
    ) -> None:
        self.env = env
        self.index = index
        self.spec = spec
        self.queue = queue
        self.receivers = receivers
        self.function = function
        self._log_invocation = invocations.append
        self._log_throttle = throttles.append
        # ReceiverOwner fields, read on the hot path.
        self.batch_size = spec.batch_size
        self.window_s = spec.batching_window
        self.max_messages = spec.polling.max_messages
        self.wait_time_s = spec.polling.wait_time
        self.round_trip_s = spec.polling.round_trip
        self.idle_collectors = 0
        self.item_failures = spec.report_batch_item_failures
        self.scaling = spec.poller_scaling
        self.backoff = spec.error_backoff
        self.cap = spec.maximum_concurrency
        self.target = 0.0
        self.allowed = 0
        self._set_target(float(min(self.scaling.initial, self.scaling.ceiling)))
        self.running = 0
        self.pollers = Level()
        self.last_batch_at = 0.0
        # Attempts since the last scaler tick: the error back-off looks at their failure share.
        self.attempts = 0
        self.failures = 0

    def _set_target(self, target: float) -> None:
        """Change the fleet size; ``allowed`` is what pollers compare against on every loop."""
        self.target = target
        allowed = int(target + 1e-9)
        self.allowed = min(allowed, self.cap) if self.cap is not None else allowed

    def start(self) -> None:
        """Start the initial pollers and the scaler."""
        if not self.spec.enabled:
            return
        self._spawn(self.allowed, 0.0)
        self.env.process(self._scaler())

    def _spawn(self, k: int, now: float) -> None:
        for _ in range(k):
            self.running += 1
            self.env.process(self._poller())
        if k:
            self.pollers.add(now, k)

    # ------------------------------------------------------------------ the poller
    def _poller(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        queue = self.queue
        function = self.function
        receive = self.receivers.receive
        woken = self.receivers.woken
        release = self.receivers.release
        log_invocation = self._log_invocation
        records = queue.rec
        while self.running <= self.allowed:
            got = receive(self, env.now)
            while type(got) is Collector:
                value = yield got.event
                # A batch handed over, the armed wake-up, or None: retired while idle.
                got = woken(got, env.now) if value is WAKE else value
            if got is None:
                break
            batch = cast(Batch, got)  # the loop above leaves only a batch
            now = env.now
            self.last_batch_at = now
            kind = function.acquire(now)
            if kind < 0:
                kind = yield from self._retry_throttled(batch, now, kind)
                if kind < 0:
                    continue
                now = env.now
            self.attempts += 1
            init_s, run_s, outcome, failed = function.plan(
                now, kind, batch.n, batch.ids, records, self.item_failures
            )
            busy_s = init_s + run_s
            end = now + busy_s  # exactly the time SimPy will resume at: no rounding differences
            log_invocation(
                (now, end, function.index, self.index, batch.n, outcome, init_s, run_s, kind, NAN, -1)
            )
            if end >= batch.visible_at:
                release(batch, now)  # the rows become visible again while this invocation runs
            yield env.timeout(busy_s)
            function.release(end, kind)
            if outcome >= ERROR:
                # Nothing is deleted: the whole batch reappears after its visibility timeout.
                release(batch, end)
                if not self.item_failures:
                    self.failures += 1
            else:
                queue.complete(batch, end, failed if outcome == PARTIAL else None)
                if outcome == PARTIAL:
                    release(batch, end)
        self.running -= 1
        self.pollers.add(env.now, -1)

    def _retry_throttled(self, batch: Batch, now: float, kind: int) -> Generator[simpy.Event, Any, int]:
        """Retry a throttled invoke with backoff until the batch's visibility timeout would pass.

        Returns the environment kind once an attempt is admitted, or a negative throttle reason
        when the poller gives the batch up (its messages reappear at their visibility timeout).
        """
        env, function, retry = self.env, self.function, self.spec.throttle_retry
        delay = retry.initial
        while kind < 0:
            self._log_throttle((now, function.index, self.index, -kind))
            self.attempts += 1
            self.failures += 1
            if now + delay >= batch.visible_at:
                self.receivers.release(batch, now)
                return kind
            yield env.timeout(delay)
            now = env.now
            delay = min(delay * retry.multiplier, retry.maximum)
            kind = function.acquire(now)
        return kind

    # ------------------------------------------------------------------ the scaler
    def _scaler(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        tick = self.scaling.tick
        queue = self.queue
        while True:
            yield env.timeout(tick)
            now = env.now
            self.receivers.dispatch(now)
            visible = queue.visible(now)
            if visible:
                self.last_batch_at = now
            floor = poller_floor(self.scaling, now - self.last_batch_at, self.cap is not None)
            failing = self.backoff.enabled and failing_share(self.attempts, self.failures, self.backoff)
            self.attempts = self.failures = 0
            target = next_target(
                self.target,
                visible=visible,
                idle=self.idle_collectors,
                dt_s=tick,
                params=self.scaling,
                floor=floor,
                holding=failing,
            )
            self._set_target(backed_off(target, self.backoff, floor) if failing else target)
            allowed = self.allowed
            if self.running < allowed:
                self._spawn(allowed - self.running, now)
            elif self.running > allowed:
                retired = self.receivers.retire_idle(self, self.running - allowed, now)
                # Busy pollers notice on their next loop; idle ones are gone now.
                del retired
