"""The SQS fleet's pure decisions: scale-down's window and step, the error back-off's curve, its
approach and its window."""

from __future__ import annotations

import math

import pytest

from esmsim.model.scaling import FailureWindow, SpareWindow, kept_share, next_effective, next_target
from esmsim.scenario.mappings import ErrorBackoff, PollerScaling

DEFAULT = ErrorBackoff()
FLEET = PollerScaling()


def test_no_poller_is_spare_until_a_whole_window_has_been_seen() -> None:
    window = SpareWindow(60.0)
    assert window.spare(0.0, 10) == 0  # nothing booked
    for t in range(1, 61):
        window.add(float(t), 10, 8)
        assert window.spare(float(t), 10) == 0  # up to 59 s of an idle fleet prove nothing yet
    window.add(61.0, 10, 8)
    assert window.spare(61.0, 10) == 8  # ticks 2..61 s: 8 idle at each


def test_the_spare_pollers_are_those_idle_at_every_tick_of_the_window() -> None:
    # A fleet of 10 with 7, 1, 6 idle: one poller was idle at every tick.
    window = SpareWindow(3.0)
    for t, idle in [(1.0, 7), (2.0, 1), (3.0, 6), (4.0, 6)]:
        window.add(t, 10, idle)
    assert window.spare(4.0, 10) == 1
    # Against a fleet already shrunk to 9 (the spare poller retired), nothing is spare.
    assert window.spare(4.0, 9) == 0
    # The tick with one idle leaves the window after 3 s: 2..4 s keep it, 3..5 s do not.
    window.add(5.0, 10, 6)
    assert window.spare(5.0, 10) == 6


def test_pollers_added_during_the_window_are_not_credited_as_spare() -> None:
    # A fleet held at 8, all busy (backing off, say), then back to 20 with 12 idle: the 12 new
    # pollers were not idle throughout, so nothing is spare until the busy ticks leave the window.
    window = SpareWindow(10.0)
    for t in range(1, 11):
        window.add(float(t), 8, 0)
    for t in range(11, 20):
        window.add(float(t), 20, 12)
        assert window.spare(float(t), 20) == 0
    window.add(20.0, 20, 12)  # ticks 11..20 s: 12 idle at each
    assert window.spare(20.0, 20) == 12
    # Retired since, the pollers that were idle are no longer spare: a fleet of 15 had 7 left idle.
    assert window.spare(20.0, 15) == 7


def test_the_sliding_extremes_match_brute_force_ones() -> None:
    fleet = [10 + (t // 17) % 5 for t in range(300)]
    idle = [(t * 7 + (t * t) % 5) % (fleet[t] + 1) for t in range(300)]
    window = SpareWindow(10.0)
    for t in range(1, 300):
        window.add(float(t), fleet[t], idle[t])
        if t > 10:
            last = range(t - 9, t + 1)
            brute = min(min(idle[i] for i in last), fleet[t] - max(fleet[i] - idle[i] for i in last))
            assert window.spare(float(t), fleet[t]) == max(0, brute)


def test_a_window_of_0_is_the_current_tick_alone() -> None:
    window = SpareWindow(0.0)
    window.add(1.0, 10, 1)
    window.add(2.0, 10, 7)
    assert window.spare(2.0, 10) == 7


def test_the_fleet_retires_at_most_its_spare_pollers_at_the_scale_down_rate() -> None:
    step = FLEET.scale_down_per_minute / 60  # 5 a second
    down = {"dt_s": 1.0, "params": FLEET, "floor": 5}
    assert next_target(20.0, visible=0, spare=2, **down) == 18.0  # never more than the spare
    assert next_target(20.0, visible=0, spare=12, **down) == 20.0 - step  # nor faster than the rate
    assert next_target(7.0, visible=0, spare=6, **down) == 5.0  # nor below the floor
    assert next_target(20.0, visible=0, spare=0, **down) == 20.0  # no spare: nothing retired
    # A visible message keeps the fleet (one below the scale-up threshold) or grows it.
    assert next_target(20.0, visible=1, spare=12, **down) == 20.0 + FLEET.per_minute / 60
    slow = PollerScaling(scale_up_visible=5)
    assert next_target(20.0, visible=3, spare=12, dt_s=1.0, params=slow, floor=5) == 20.0
    # The legacy rate: 60 a minute, one a second, accruing between ticks.
    legacy = PollerScaling(per_minute=60, ceiling=1000, scale_down_per_minute=60)
    assert next_target(20.0, visible=0, spare=12, dt_s=0.5, params=legacy, floor=5) == 19.5


def test_a_capped_fleet_grows_no_further_than_its_maximum_concurrency() -> None:
    # A backlog under maximum_concurrency 10: the fleet stops at 10, so when the queue empties the
    # first spare poller retired is a real one (before, the target ran on to the 1,250 ceiling and
    # had (1,250 - 10) / 5 s of growth that never ran to retire first).
    up = {"visible": 1000, "spare": 0, "dt_s": 1.0, "params": FLEET, "floor": 2}
    assert next_target(8.0, cap=10, **up) == 10.0
    assert next_target(10.0, cap=10, **up) == 10.0
    assert next_target(10.0, **up) == 10.0 + FLEET.per_minute / 60  # uncapped, it grows
    assert next_target(9.0, visible=0, spare=1, dt_s=1.0, params=FLEET, floor=2, cap=10) == 8.0


def test_a_fleet_just_big_enough_for_its_load_is_not_retired() -> None:
    # Ten pollers at 80 % load: at some tick of every minute all ten are busy, though most ticks
    # find two idle and nothing visible. Judged tick by tick (a window of 0) those moments retire
    # two pollers; over a minute none is spare, so the fleet keeps its ten.
    def fleet_after(params: PollerScaling) -> float:
        window = SpareWindow(params.scale_down_window)
        target = 10.0
        for t in range(1, 601):
            fleet = int(target)
            window.add(float(t), fleet, max(0, fleet - (10 if t % 45 == 0 else 8)))
            spare = window.spare(float(t), fleet)
            target = next_target(target, visible=0, spare=spare, dt_s=1.0, params=params, floor=5)
        return target

    assert fleet_after(FLEET) == 10.0
    assert fleet_after(PollerScaling(scale_down_window=0)) == 8.0


@pytest.mark.parametrize(("share", "measured"), [(0.01, 25 / 60), (0.05, 16 / 60), (0.10, 13 / 60)])
def test_the_kept_share_fits_the_published_measurement(share: float, measured: float) -> None:
    # Concurrency 60 fell to 25, 16 and 13 at 1, 5 and 10 % errors: the curve passes within 0.03.
    assert kept_share(share, DEFAULT) == pytest.approx(measured, abs=0.03)


def test_no_failures_keep_everything_and_more_failures_keep_less() -> None:
    assert kept_share(0.0, DEFAULT) == 1.0
    assert kept_share(0.0002, DEFAULT) == 1.0  # the curve reaches 1 near 0.045 %
    shares = [kept_share(e, DEFAULT) for e in (0.001, 0.01, 0.1, 1.0)]
    assert shares == sorted(shares, reverse=True)


def test_the_fleet_approaches_its_backed_off_size_with_the_lag() -> None:
    # From 60 toward 0.42 x 60 = 25.2, one lag (60 s) in 1 s ticks covers 1 - 1/e of the way.
    fleet = 60.0
    for _ in range(60):
        fleet = next_effective(fleet, 60.0, share=0.01, dt_s=1.0, params=DEFAULT, per_minute=300)
    goal = 0.42 * 60
    assert fleet == pytest.approx(goal + (60 - goal) / math.e, rel=1e-6)


def test_the_fleet_never_goes_below_the_floor_and_grows_back_at_the_scale_up_rate() -> None:
    assert next_effective(3.0, 10.0, share=1.0, dt_s=1e6, params=DEFAULT, per_minute=300) == DEFAULT.floor
    # No failures in the window: +300 a minute, up to the demand-driven size.
    assert next_effective(20.0, 60.0, share=0.0, dt_s=1.0, params=DEFAULT, per_minute=300) == 25.0
    assert next_effective(58.0, 60.0, share=0.0, dt_s=1.0, params=DEFAULT, per_minute=300) == 60.0


def test_the_failure_window_forgets_old_ticks() -> None:
    window = FailureWindow(60.0)
    window.add(0.0, 100, 5.0)
    assert window.share == pytest.approx(0.05)
    window.add(30.0, 100, 0.0)
    assert window.share == pytest.approx(0.025)
    window.add(60.0, 100, 0.0)  # the tick at 0 s has left the window
    assert window.share == 0.0
