"""The SQS fleet's pure decisions: the error back-off's curve, its approach and its window."""

from __future__ import annotations

import math

import pytest

from esmsim.model.scaling import FailureWindow, kept_share, next_effective
from esmsim.scenario.mappings import ErrorBackoff

DEFAULT = ErrorBackoff()


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
