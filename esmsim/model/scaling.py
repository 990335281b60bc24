"""Pure decisions of the SQS poller fleet: how many concurrent batches a mapping runs next.

AWS documents the start (5 concurrent batches), the scale-up rate while messages remain (+300 a
minute since November 2023, +60 before), the ceiling (1,250; 1,000 before), the floor when traffic
is low (5, "as few as 2" without maximum concurrency) and that errors and throttles make it back off.
It documents neither how fast idle pollers are retired nor how strong the back-off is; those are
the knobs of :class:`esmsim.scenario.mappings.PollerScaling` and ``ErrorBackoff`` (docs/model.md).
The back-off looks at the share of a tick's invocation attempts that failed, so a rare error on a
busy mapping does not shrink it, while a failing function does.
"""

from __future__ import annotations

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
    idle: int,
    dt_s: float,
    params: PollerScaling,
    floor: int,
    holding: bool,
) -> float:
    """The fleet size after one scaler tick of ``dt_s`` seconds.

    Args:
        target: current fleet size (fractional: the rate accrues between ticks).
        visible: messages waiting in the queue that no poller has taken; the fleet grows when
            there are at least ``params.scale_up_visible``, and retires idle pollers when none.
        idle: this mapping's pollers waiting with empty hands.
        dt_s: time since the previous tick.
        params: the scaling knobs.
        floor: the current floor (see :func:`poller_floor`).
        holding: True during the hold after an error back-off (no scale-up).
    """
    if visible >= params.scale_up_visible:
        if not holding:
            target = min(float(params.ceiling), target + params.per_minute * dt_s / 60.0)
    elif visible == 0 and idle > 0:
        target -= min(float(idle), params.scale_down_per_minute * dt_s / 60.0)
    return max(float(floor), target)


def failing_share(attempts: int, failures: int, params: ErrorBackoff) -> bool:
    """Whether a tick's invocation attempts failed (errors, throttles) often enough to back off."""
    return failures > 0 and failures >= params.threshold * attempts


def backed_off(target: float, params: ErrorBackoff, floor: int) -> float:
    """The fleet size right after a function error or throttle."""
    return max(float(floor), target * params.factor)
