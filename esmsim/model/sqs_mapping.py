"""The SQS event source mapping: a fleet of pollers, each receiving a batch and invoking with it.

Each poller is one concurrent batch (AWS's unit of SQS mapping concurrency): it receives, invokes
synchronously (:mod:`esmsim.model.invoke`), deletes what succeeded, and loops.
``maximum_concurrency`` caps the fleet, so at the cap the mapping stops reading instead of being
throttled. A throttled invoke is retried with backoff until the batch's visibility timeout would
pass; then the poller lets it go and the messages reappear with their receive count already spent
(docs/model.md §3). A scaler process grows the fleet while messages remain, retires idle pollers
when they do not, and backs the fleet off while invocations fail or are throttled.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import simpy

from esmsim.events import Outcome
from esmsim.model.invoke import GAVE_UP, Invoker
from esmsim.model.scaling import (
    FailureWindow,
    SpareWindow,
    kept_share,
    next_effective,
    next_target,
    poller_floor,
)
from esmsim.model.sqs_collector import Collector, Detached
from esmsim.model.sqs_event_pollers import EventPollers
from esmsim.model.sqs_messages import Batch
from esmsim.model.sqs_queue import SqsQueue
from esmsim.model.sqs_receive import WAKE, SqsReceivers
from esmsim.observe.recorder import Recorder
from esmsim.scenario.mappings import PollerScaling, SqsMapping

_ERROR, _PARTIAL = int(Outcome.ERROR), int(Outcome.PARTIAL)


class SqsMappingRuntime:
    """One SQS mapping during a run."""

    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        spec: SqsMapping,
        queue: SqsQueue,
        receivers: SqsReceivers,
        invoker: Invoker,
        recorder: Recorder,
    ) -> None:
        self.env = env
        self.index = index
        self.spec = spec
        self.queue = queue
        self.receivers = receivers
        self.invoker = invoker
        self.recorder = recorder
        # ReceiverOwner fields, read on the hot path.
        self.batch_size = spec.batch_size
        self.window_s = spec.batching_window
        self.max_messages = spec.polling.max_messages
        self.wait_time_s = spec.polling.wait_time
        self.round_trip_s = spec.polling.round_trip
        self.finish_poll_after_window = spec.polling.finish_poll_after_window
        self.idle_collectors = 0
        self.item_failures = spec.report_batch_item_failures
        self.backoff = spec.error_backoff
        self.cap = spec.maximum_concurrency
        self.enabled = spec.enabled
        # Provisioned mode: the fleet is event pollers' invokes (None: standard mode).
        self.event_pollers: EventPollers | None = None
        self.scaling = self._scaling(spec, recorder)
        self._scaling_started = False
        self.target = self.effective = 0.0
        self.allowed = 0
        initial = float(min(self.scaling.initial, self.scaling.ceiling))
        self._set_fleet(initial, initial, 0.0)
        self.running = 0
        self.pollers = recorder.level("pollers")
        self.last_batch_at = 0.0
        # Function errors since the last scaler tick, and the invoke counts at it: the error
        # back-off looks at the share of the window's attempts that failed or were throttled.
        self.errors = 0
        self._seen = (0, 0)
        self.failures = FailureWindow(self.backoff.window)

    def _scaling(self, spec: SqsMapping, recorder: Recorder) -> PollerScaling:
        """The fleet's scaling in the mapping's mode; sets up (or drops) its event pollers."""
        provisioned = spec.provisioned_pollers
        if provisioned is None:
            self.event_pollers = None
            return spec.poller_scaling
        if self.event_pollers is None:
            self.event_pollers = EventPollers(provisioned, recorder.level("event_pollers"))
        else:
            self.event_pollers.reconfigure(provisioned)
        return provisioned.scaling(spec.poller_scaling)

    def _set_fleet(self, target: float, effective: float, now: float) -> None:
        """Change the fleet sizes; ``allowed`` is what pollers compare against on every loop."""
        self.target = target
        self.effective = min(effective, target)
        allowed = int(self.effective + 1e-9) if self.enabled else 0
        self.allowed = min(allowed, self.cap) if self.cap is not None else allowed
        pollers = self.event_pollers
        if pollers is not None:
            pollers.resize(pollers.needed(target, self.enabled), now)

    def start(self) -> None:
        """Start the initial pollers and the scaler."""
        if not self.enabled:
            if self.queue.filtered is not None:
                self.queue.filtered.pause(0.0)
            return
        self._spawn(self.allowed, 0.0)
        self._scaling_started = True
        self.env.process(self._scaler())

    def apply(self, spec: SqsMapping, now: float) -> None:
        """A live change (UpdateEventSourceMapping).

        Enabled, batch size, batching window, maximum concurrency, partial batch responses.
        Disabling stops the pollers: idle ones at once, busy ones after their batch. Enabling starts
        the fleet again from its initial size, as a new mapping starts.
        """
        self.spec = spec
        resized = spec.batch_size != self.batch_size or spec.batching_window != self.window_s
        self.batch_size = spec.batch_size
        self.window_s = spec.batching_window
        self.cap = spec.maximum_concurrency
        self.item_failures = self.invoker.item_failures = spec.report_batch_item_failures
        if spec.provisioned_pollers is not None or self.event_pollers is not None:
            self.scaling = self._scaling(spec, self.recorder)
            # Within the new mode's floor and ceiling (a standard mapping keeps its event pollers'
            # concurrency until the scaler retires what it does not need).
            floor, ceiling = float(self.scaling.min_pollers), float(self.scaling.ceiling)
            self.target = min(ceiling, max(floor, self.target))
            if self.event_pollers is not None:  # the minimum pollers' invokes are there at once
                self.effective = max(self.effective, floor)
        if resized and self.running:
            # Idle pollers waiting in a long poll hold a batch sized (and a window timed) before the
            # change: they stop, and the scaler's next tick starts new ones with the new settings
            # (busy ones keep theirs for the batch in hand).
            self.receivers.retire_idle(self, self.running, now)
        filtered = self.queue.filtered
        if filtered is not None and spec.enabled != self.enabled:
            (filtered.resume if spec.enabled else filtered.pause)(now)
        if spec.enabled and not self.enabled:
            self.enabled = True
            initial = float(min(self.scaling.initial, self.scaling.ceiling))
            self._set_fleet(initial, initial, now)
            if not self._scaling_started:
                self._scaling_started = True
                self.env.process(self._scaler())
        else:
            self.enabled = spec.enabled
            self._set_fleet(self.target, self.effective, now)
        if self.running < self.allowed:
            self._spawn(self.allowed - self.running, now)
        elif self.running > self.allowed:
            self.receivers.retire_idle(self, self.running - self.allowed, now)

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
        receive = self.receivers.receive
        woken = self.receivers.woken
        release = self.receivers.release
        invoke = self.invoker.invoke
        visible_for_receive = self.receivers.visible_for_receive
        round_trip = self.round_trip_s
        while self.running <= self.allowed:
            now = env.now
            event_pollers = self.event_pollers
            if event_pollers is not None:
                pace = event_pollers.read_delay(now)  # provisioned mode: the event pollers' read throughput
                if pace:
                    yield env.timeout(pace)
                    continue  # the fleet may have shrunk meanwhile
            dealt = False  # whether the waiting pollers were just brought up to now
            if round_trip:
                if visible_for_receive(now):
                    # Messages are waiting: the call returns a round trip later with what is
                    # visible then, as a long poll ended by an arrival does (docs/model.md §3).
                    yield env.timeout(round_trip)
                    now = env.now
                    if not self.allowed:  # disabled meanwhile: the call's answer is not acted on
                        break
                else:
                    dealt = True
            got: Batch | Collector | Detached | None = receive(self, now, dealt=dealt)
            while isinstance(got, Collector):
                value = yield got.event
                now = env.now
                # A batch handed over, the armed wake-up, or None: retired while idle.
                got = woken(got, now) if value is WAKE else value
            if got is None:
                break
            if isinstance(got, Detached):
                return  # let go while it waited: poller_gone counted it out then
            batch = got  # the loop above leaves only a batch
            if not batch.n:
                continue  # its messages all left while its window collected
            self.last_batch_at = now
            batch.ready_at = now
            if event_pollers is not None:
                event_pollers.read(batch.nbytes, now)
            outcome, failed, _, end, _ = yield from invoke(batch, batch.visible_at)
            if outcome == GAVE_UP:
                release(batch, env.now)  # its messages reappear at their visibility timeout
                continue
            if outcome >= _ERROR:
                # Nothing is deleted: the whole batch reappears after its visibility timeout.
                release(batch, end)
                if not self.item_failures:
                    self.errors += 1
            else:
                queue.complete(batch, end, failed)  # failed: None unless PARTIAL
                if outcome == _PARTIAL:
                    release(batch, end)
        self.running -= 1
        self.pollers.add(env.now, -1)

    def poller_gone(self, now: float) -> None:
        """A poller stopped at ``now`` ahead of its process (a disabled mapping's armed long poll)."""
        self.running -= 1
        self.pollers.add(now, -1)

    def finish(self, end: float) -> None:
        """At the end of the run: bill the event pollers (provisioned mode)."""
        if self.event_pollers is not None:
            self.recorder.add_total(f"event_poller_s:{self.index}", self.event_pollers.finish(end))

    # ------------------------------------------------------------------ the scaler
    def _scaler(self) -> Generator[simpy.Event, Any, None]:
        env = self.env
        tick = self.scaling.tick
        queue = self.queue
        # Scale-down looks at a trailing window, not at this tick alone: a moment with nothing
        # visible and a poller idle is routine for a fleet that is just big enough, and retiring
        # on it would keep such a fleet below the size its load needs.
        idle_window = SpareWindow(self.scaling.scale_down_window)
        while True:
            yield env.timeout(tick)
            now = env.now
            if not self.enabled:
                # A disabled mapping neither polls nor scales; the queue's own clocks (messages
                # whose visibility timeout ends) are still noticed within a tick, as levels need.
                self.receivers.dispatch(now)
                continue
            self.receivers.dispatch(now)
            visible = queue.visible_now(now)
            running = self.running
            idle_window.add(now, running, self.idle_collectors)
            if visible:
                self.last_batch_at = now
            if not queue.room():
                visible = 0  # at the in-flight limit receives return nothing: no reason to grow
            floor = poller_floor(self.scaling, now - self.last_batch_at, self.cap is not None)
            admitted, throttled = self.invoker.admitted, self.invoker.throttled
            attempts = admitted + throttled - sum(self._seen)
            failures = self.errors + self.backoff.throttle_weight * (throttled - self._seen[1])
            self._seen = (admitted, throttled)
            self.errors = 0
            self.failures.add(now, attempts, failures)
            share = self.failures.share if self.backoff.enabled else 0.0
            if kept_share(share, self.backoff) >= 1.0:
                share = 0.0  # failures too rare for the curve to take anything off: no back-off
            # The demand-driven size follows the queue; while invocations fail it does not shrink
            # (the idle pollers are the back-off's doing) and, from ``hold_from``, does not grow.
            target = self.target
            if share == 0 or share < self.backoff.hold_from:
                target = next_target(
                    target,
                    visible=visible,
                    spare=idle_window.spare(now, running) if share == 0 else 0,
                    dt_s=tick,
                    params=self.scaling,
                    floor=floor,
                    cap=self.cap,
                )
            effective = next_effective(
                self.effective,
                target,
                share=share,
                dt_s=tick,
                params=self.backoff,
                per_minute=self.scaling.per_minute,
            )
            self._set_fleet(target, effective, now)
            allowed = self.allowed
            if self.running < allowed:
                self._spawn(allowed - self.running, now)
            elif self.running > allowed:
                # Busy pollers notice on their next loop; idle ones are gone now.
                self.receivers.retire_idle(self, self.running - allowed, now)
