"""A sweep's recommendation with its context: runners-up, overlapping intervals, rejections, warnings."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from esmsim.sweep.aggregate import t975
from esmsim.sweep.objective import _replications_to_part, recommend
from esmsim.sweep.spec import Bound, Objective, Point

POINTS = [Point(i, {"b": b}, {}) for i, b in enumerate([1, 10, 50, 200])]
OBJECTIVE = Objective(minimize="cost_usd", constraints={"latency_p99_s": Bound(max=2)})


def table(cost: list[float], half: list[float], p99: list[float], reps: int = 2) -> pd.DataFrame:
    """Four configurations: mean cost with a symmetric interval of half-width ``half``, and p99."""
    return pd.DataFrame(
        {
            "point": [0, 1, 2, 3],
            "replications": [reps] * 4,
            "cost_usd": cost,
            "cost_usd_ci_low": [c - h for c, h in zip(cost, half, strict=True)],
            "cost_usd_ci_high": [c + h for c, h in zip(cost, half, strict=True)],
            "latency_p99_s": p99,
        }
    )


def test_runners_up_are_the_frontier_with_ratios_to_the_winner() -> None:
    # b=50 is cheapest within p99 <= 2; b=10 costs 3x for half the p99 (frontier); b=200 is cheaper
    # but misses the objective (frontier too, below the winner's cost); b=1 misses by p99 4.
    verdict = recommend(table([9.0, 3.0, 1.0, 0.5], [0.01] * 4, [4.0, 0.5, 1.0, 3.0]), POINTS, OBJECTIVE, 2)
    assert verdict.point == 2
    by_point = {a.point: a for a in verdict.runners_up}
    assert set(by_point) == {1, 3}  # b=1 is beaten on both axes by b=10
    assert by_point[1].value_ratio == pytest.approx(3.0)
    assert by_point[1].latency_ratio == pytest.approx(0.5)
    assert by_point[1].feasible
    assert not by_point[3].feasible
    assert verdict.rejected == {0: "latency_p99_s 4 > 2", 3: "latency_p99_s 3 > 2"}
    assert verdict.overlapping == ()
    assert verdict.warning is None
    lines = verdict.context("cost_usd")
    assert "  runner-up b=10: latency_p99_s 0.5 (0.50x), cost_usd 3 (3.00x)" in lines


def test_overlapping_intervals_are_named_with_the_replications_that_would_part_them() -> None:
    # b=10 (cost 1.1 +- 0.2) and the winner b=50 (1.0 +- 0.2) overlap; b=200 misses the objective.
    verdict = recommend(table([5.0, 1.1, 1.0, 0.5], [0.2] * 4, [0.1, 0.5, 1.0, 3.0]), POINTS, OBJECTIVE, 2)
    assert verdict.point == 2
    assert verdict.overlapping == (1,)
    # Half-widths sum to 0.4 at n=2 (t=12.706): the sd sum is 0.4 * sqrt(2) / 12.706; the intervals
    # part at the first n with t(n-1) * sd_sum / sqrt(n) < 0.1.
    sd_sum = 0.4 * math.sqrt(2) / 12.706
    expected = next(n for n in range(3, 1000) if t975(n - 1) * sd_sum / math.sqrt(n) < 0.1)
    assert verdict.replications_needed == expected
    assert verdict.warning is not None
    assert f"about {expected} replications would separate them" in verdict.warning
    assert "closest: b=10" in verdict.warning


def test_one_replication_is_warned_about() -> None:
    t = table([5.0, 1.1, 1.0, 0.5], [math.nan] * 4, [0.1, 0.5, 1.0, 3.0], reps=1)
    verdict = recommend(t, POINTS, OBJECTIVE, 1)
    assert verdict.point == 2
    assert verdict.warning is not None
    assert "one replication gives no interval" in verdict.warning


def test_replications_to_part_shrinks_with_the_t_quantile() -> None:
    assert _replications_to_part(spread=0.4, gap=0.1, replications=2) == pytest.approx(
        next(n for n in range(3, 100) if t975(n - 1) * (0.4 * math.sqrt(2) / t975(1)) / math.sqrt(n) < 0.1)
    )
    assert _replications_to_part(spread=1.0, gap=1e-9, replications=3) is None  # beyond 10,000


def test_the_manifest_form_round_trips_through_json() -> None:
    import json

    verdict = recommend(table([9.0, 3.0, 1.0, 0.5], [0.01] * 4, [4.0, 0.5, 1.0, 3.0]), POINTS, OBJECTIVE, 2)
    data = json.loads(json.dumps(verdict.as_dict()))
    assert data["point"] == 2
    assert data["rejected"] == {"0": "latency_p99_s 4 > 2", "3": "latency_p99_s 3 > 2"}
    assert [r["point"] for r in data["runners_up"]] == [a.point for a in verdict.runners_up]


def test_when_nothing_meets_the_objective_each_configuration_says_what_it_misses() -> None:
    verdict = recommend(table([5.0, 1.1, 1.0, 0.5], [0.1] * 4, [3.0, 4.0, 2.5, 9.0]), POINTS, OBJECTIVE, 2)
    assert not verdict.met
    assert verdict.rejected == {
        0: "latency_p99_s 3 > 2",
        1: "latency_p99_s 4 > 2",
        2: "latency_p99_s 2.5 > 2",
        3: "latency_p99_s 9 > 2",
    }
