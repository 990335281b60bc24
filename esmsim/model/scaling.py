"""Pure decisions of the SQS poller fleet: how many concurrent batches a mapping runs next.

AWS documents the start (5 concurrent batches), the scale-up rate while messages remain (+300 a
minute since November 2023, +60 before), the ceiling (1,250; 1,000 before), the floor when traffic
is low (5, "as few as 2" without maximum concurrency), that errors and throttles make it back off
"gradually" and that it does not scale up while they occur. It documents neither when nor how fast
idle pollers are retired, nor how strong the back-off is; those are the knobs of
:class:`esmsim.scenario.mappings.PollerScaling` and ``ErrorBackoff`` (docs/model.md).

The fleet has two sizes: the demand-driven ``target`` (grown while messages remain, shrunk by the
pollers left idle over a trailing window, :class:`SpareWindow`) and the ``effective`` size pollers
obey, which the error back-off pulls below it.
"""

from __future__ import annotations

import math
from collections import deque

from esmsim.scenario.mappings import ErrorBackoff, PollerScaling


def poller_floor(params: PollerScaling, quiet_for_s: float, capped: bool) -> int:
    """Fewest pollers kept: ``min_pollers``, or ``idle_min_pollers`` after a quiet spell.

    AWS only drops to the lower floor when the mapping has no maximum concurrency.
    """
    if not capped and quiet_for_s >= params.idle_after:
        return min(params.min_pollers, params.idle_min_pollers)
    return params.min_pollers


def next_target(
    target: float,
    *,
    visible: int,
    spare: int,
    dt_s: float,
    params: PollerScaling,
    floor: int,
    cap: int | None = None,
) -> float:
    """The fleet size after one scaler tick of ``dt_s`` seconds.

    Args:
        target: current fleet size (fractional: the rate accrues between ticks).
        visible: messages waiting in the queue that no poller has taken; the fleet grows when
            there are at least ``params.scale_up_visible``, and may shrink only when there are none.
        spare: pollers the fleet could have done without over the trailing scale-down window
            (:meth:`SpareWindow.spare`): at most these are retired, never a busy one.
        dt_s: time since the previous tick.
        params: the scaling knobs.
        floor: the current floor (see :func:`poller_floor`).
        cap: the mapping's ``maximum_concurrency``: the fleet grows no further, so that once the
            queue empties it retires real pollers, not a growth that never ran.
    """
    if visible >= params.scale_up_visible:
        ceiling = params.ceiling if cap is None else min(params.ceiling, cap)
        target = max(target, min(float(ceiling), target + params.per_minute * dt_s / 60.0))
    elif visible == 0 and spare > 0:
        target -= min(float(spare), params.scale_down_per_minute * dt_s / 60.0)
    return max(float(floor), target)


class SpareWindow:
    """Pollers idle at every scaler tick of a trailing window: the scale-down signal.

    A poller is idle when it waits in ReceiveMessage with empty hands; invoking, retrying a
    throttle or gathering a batch, it is busy. A fleet that had ``k`` pollers idle at every tick of
    the window had ``k`` it could have done without all along: with them retired, every tick would
    still have found the same work taken. Two things bound ``k``: the fewest idle at any tick, and
    the current fleet less the most busy at any tick (pollers retired since were among the idle).
    Pollers added since are not credited: a fleet held smaller (by the back-off, say) kept its work
    waiting or batched, which says nothing of what a larger one would have left idle. Sampled at
    the ticks, it is the continuous minimum up to what happens between two ticks.
    """

    __slots__ = ("_busiest", "_first", "_idlest", "span_s")

    def __init__(self, span_s: float) -> None:
        self.span_s = span_s
        # Sliding extremes (constant time per tick on average): the ticks no later tick has
        # matched, the window's extreme in front; most busy in ``_busiest``, fewest idle in
        # ``_idlest``.
        self._busiest: deque[tuple[float, int]] = deque()
        self._idlest: deque[tuple[float, int]] = deque()
        self._first = math.inf

    def add(self, now: float, fleet: int, idle: int) -> None:
        """Book one tick's fleet and idle pollers, forgetting ticks older than the window."""
        self._first = min(self._first, now)
        busiest, idlest = self._busiest, self._idlest
        busy = fleet - idle
        while busiest and busiest[-1][1] <= busy:
            busiest.pop()
        busiest.append((now, busy))
        while idlest and idlest[-1][1] >= idle:
            idlest.pop()
        idlest.append((now, idle))
        # The current tick always counts: a window of 0 is this tick alone.
        cut = now - self.span_s
        for ticks in (busiest, idlest):
            while ticks[0][0] < now and ticks[0][0] <= cut:
                ticks.popleft()

    def spare(self, now: float, fleet: int) -> int:
        """Pollers of a fleet of ``fleet`` idle at every tick of the window.

        0 until ticks have been booked over a whole window: a fleet younger than the window has
        not shown that it can do without any poller.
        """
        if not self._busiest or now - self._first < self.span_s:
            return 0
        return max(0, min(self._idlest[0][1], fleet - self._busiest[0][1]))


class FailureWindow:
    """Invocation attempts and failures over a trailing window of scaler ticks."""

    __slots__ = ("_ticks", "attempts", "failures", "span_s")

    def __init__(self, span_s: float) -> None:
        self.span_s = span_s
        self._ticks: deque[tuple[float, int, float]] = deque()
        self.attempts = 0
        self.failures = 0.0

    def add(self, now: float, attempts: int, failures: float) -> None:
        """Book one tick's attempts and failures, forgetting ticks older than the window."""
        self._ticks.append((now, attempts, failures))
        self.attempts += attempts
        self.failures += failures
        ticks = self._ticks
        while ticks and ticks[0][0] <= now - self.span_s:
            _, a, f = ticks.popleft()
            self.attempts -= a
            self.failures -= f
        if not ticks:
            self.attempts, self.failures = 0, 0.0

    @property
    def share(self) -> float:
        """Failed share of the window's attempts (0 without attempts)."""
        if self.failures <= 1e-9 or self.attempts <= 0:
            return 0.0
        return min(1.0, self.failures / self.attempts)


def kept_share(share: float, params: ErrorBackoff) -> float:
    """Share of the demand-driven fleet kept at failure share ``share`` (1 without failures)."""
    if share <= 0:
        return 1.0
    return min(1.0, float(params.at_one_percent * (share / 0.01) ** -params.exponent))


def next_effective(
    effective: float,
    target: float,
    *,
    share: float,
    dt_s: float,
    params: ErrorBackoff,
    per_minute: float,
) -> float:
    """The fleet size pollers obey after one tick, given the window's failure share.

    While the window holds failures the fleet moves toward ``kept_share x target`` (never below
    ``params.floor``): down with time constant ``params.lag``, up (when a growing backlog raises the
    target) at the scale-up rate. Once the window holds none, it grows back to ``target`` at the
    scale-up rate. It never exceeds ``target``.
    """
    grow = per_minute * dt_s / 60.0
    if share > 0:
        goal = max(float(params.floor), kept_share(share, params) * target)
        if effective > goal:
            effective = goal + (effective - goal) * math.exp(-dt_s / params.lag)
        else:
            effective = min(goal, effective + grow)
        return min(effective, target)
    return min(target, effective + grow)
