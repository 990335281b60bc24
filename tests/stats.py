"""Confidence intervals over seeded replications, and how many replications to run.

Every statistical test (``tests/test_theory*.py``) goes through this module:

* :func:`replicate` runs replications ``0, 1, 2, ...`` of one seeded experiment until the 95 %
  t-interval of every metric is narrower than the test's target half-width (a pilot estimates the
  standard deviations, then enough replications follow; a floor and a cap bound the count);
* :func:`check` asserts that a closed form lies inside the t-interval of the replication means at the
  test's family-wise confidence (Bonferroni over the checks of one test function), or, once the
  interval is narrower than a stated tolerance (a known model bias far below the noise of a
  bounded run, say), within that tolerance of the mean; a failure prints the interval, the closed
  form and every replication's value;
* :func:`check_below` asserts that the upper end of an interval lies below a bound.

Seeds are fixed, so the replication counts and every value are reproducible; a change of the model
or of its random streams draws new samples (and may choose other counts).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: Family-wise confidence of each test function: a correct simulator fails it with probability ≤ 1 %.
FAMILY_CONFIDENCE = 0.99
#: Confidence at which :func:`replicate` sizes intervals (the target is a 95 % half-width).
SIZING_CONFIDENCE = 0.95


def t_half(sd: float, n: int, confidence: float) -> float:
    """Half-width of the two-sided Student-t interval of a mean of ``n`` values of sample SD ``sd``."""
    return float(stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n))


def level(checks: int) -> float:
    """Per-check confidence when a test function makes ``checks`` checks (Bonferroni)."""
    return 1.0 - (1.0 - FAMILY_CONFIDENCE) / checks


@dataclass(frozen=True)
class Interval:
    """A Student-t interval for the mean of replication values."""

    values: tuple[float, ...]
    confidence: float

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def sd(self) -> float:
        return float(np.std(self.values, ddof=1))

    @property
    def half(self) -> float:
        return t_half(self.sd, self.n, self.confidence)

    def __str__(self) -> str:
        return (
            f"{self.mean:.6g} ± {self.half:.3g} "
            f"({self.confidence:.2%} t-interval, {self.n} replications, SD {self.sd:.3g})"
        )


def interval(values: Sequence[float] | np.ndarray, checks: int = 1) -> Interval:
    """The t-interval of the mean of ``values`` at the per-check level of a family of ``checks``."""
    x = tuple(float(v) for v in values)
    if len(x) < 2:
        raise ValueError(f"an interval needs at least 2 replications, got {len(x)}")
    return Interval(x, level(checks))


def _replications_text(ci: Interval) -> str:
    return "replications: [" + ", ".join(f"{v:.6g}" for v in ci.values) + "]"


def check(
    name: str,
    expected: float,
    values: Sequence[float] | np.ndarray,
    checks: int,
    tolerance: float = 0.0,
    detect: float | None = None,
) -> Interval:
    """Assert that ``expected`` lies in the t-interval of ``values``, or within ``tolerance`` of its mean.

    Args:
        name: what is checked, for the printout and the failure message.
        expected: the closed form.
        values: one value per replication.
        checks: how many checks the test function makes (Bonferroni: each is at 1 − 1 %/checks).
        tolerance: matters only when the interval is narrower than it: a bias the test accepts
            (documented where it is passed), e.g. a model detail the closed form ignores.
        detect: also assert that the interval excludes ``expected × (1 ± detect)``: the check
            could see an error of that size (a test that cannot fail is no test).
    """
    ci = interval(values, checks)
    # The floor covers float rounding in a degenerate sample (every replication the same).
    allowed = max(ci.half, tolerance, 1e-12 * max(1.0, abs(expected)))
    print(f"  {name}: closed form {expected:.6g}, simulated {ci}")
    if abs(ci.mean - expected) > allowed:
        raise AssertionError(
            f"{name}: closed form {expected:.6g} outside the simulated interval "
            f"[{ci.mean - ci.half:.6g}, {ci.mean + ci.half:.6g}] = {ci}"
            + (f", tolerance {tolerance:.3g}" if tolerance else "")
            + f"; {_replications_text(ci)}"
        )
    if detect is not None:
        for wrong in (expected * (1 - detect), expected * (1 + detect)):
            if abs(ci.mean - wrong) <= allowed:
                raise AssertionError(
                    f"{name}: the simulated interval {ci} also contains {wrong:.6g}, the closed form "
                    f"{expected:.6g} off by {detect:.0%}: too wide to see such an error; "
                    f"{_replications_text(ci)}"
                )
    return ci


def check_below(name: str, bound: float, values: Sequence[float] | np.ndarray, checks: int = 1) -> Interval:
    """Assert that the whole t-interval of ``values`` lies below ``bound``."""
    ci = interval(values, checks)
    print(f"  {name}: bound {bound:.6g}, simulated {ci}")
    if ci.mean + ci.half >= bound:
        raise AssertionError(
            f"{name}: the simulated interval [{ci.mean - ci.half:.6g}, {ci.mean + ci.half:.6g}] = {ci} "
            f"is not below {bound:.6g}; {_replications_text(ci)}"
        )
    return ci


def needed(sd: float, target: float, confidence: float = SIZING_CONFIDENCE) -> int:
    """Fewest replications whose t-interval half-width at ``confidence`` is at most ``target``."""
    if sd <= target * 1e-9:
        return 2
    n = max(2, math.ceil(float(stats.norm.ppf(0.5 + confidence / 2) * sd / target) ** 2))
    while t_half(sd, n, confidence) > target:  # the t quantile is larger than the normal one
        n += 1
    return n


@dataclass(frozen=True)
class Replications:
    """Per-metric values of replications ``0 .. n − 1``, and why that many were run."""

    values: dict[str, list[float]]
    pilot: int
    floor: int
    cap: int
    targets: dict[str, float]
    cpu_s: float  # processor time the replications took

    @property
    def n(self) -> int:
        return len(next(iter(self.values.values())))

    def __getitem__(self, metric: str) -> list[float]:
        return self.values[metric]

    def describe(self) -> str:
        """How the count was chosen: the targets, the 95 % half-widths reached, the bounds."""
        parts = []
        for metric, target in self.targets.items():
            sd = float(np.std(self.values[metric], ddof=1))
            got = t_half(sd, self.n, SIZING_CONFIDENCE)
            parts.append(f"{metric}: 95 % half-width {got:.3g} (target {target:.3g})")
        capped = " (capped)" if self.n == self.cap and self.n > self.floor else ""
        bounds = f"pilot {self.pilot}, floor {self.floor}, cap {self.cap}, {self.cpu_s:.1f} s CPU"
        return f"{self.n} replications{capped} [{bounds}]; " + "; ".join(parts)


def replicate(
    run: Callable[[int], Mapping[str, float]],
    targets: Mapping[str, float],
    *,
    floor: int = 10,
    cap: int = 40,
    pilot: int | None = None,
) -> Replications:
    """Run replications of ``run(replication)`` until every targeted 95 % half-width is reached.

    A pilot of ``pilot`` replications estimates each targeted metric's standard deviation; from it,
    :func:`needed` gives the count whose 95 % t-interval is below the metric's target, and the
    largest count over the metrics is run (at least ``floor``, at most ``cap``). The estimate is
    then refreshed with every replication so far, and more are run while it asks for more and the
    cap allows. Metrics without a target are collected too (they are checked, not sized).

    Args:
        run: one replication: its index to the metrics it measured.
        targets: the 95 % half-width wanted per metric, in the metric's units.
        floor: fewest replications (the intervals' t quantiles and SD estimates need a few).
        cap: most replications (bounds the test's time; ``Replications.describe`` says if it bound).
        pilot: replications run before the first estimate (default and at most ``floor``).
    """
    pilot = max(2, floor if pilot is None else min(pilot, floor))
    started = time.process_time()
    values: dict[str, list[float]] = {}

    def more(upto: int) -> None:
        for r in range(len(next(iter(values.values()), [])), upto):
            for metric, value in run(r).items():
                values.setdefault(metric, []).append(float(value))

    more(pilot)
    while True:
        done = len(values[next(iter(values))])
        want = max([floor, *(needed(float(np.std(values[m], ddof=1)), t) for m, t in targets.items())])
        want = min(want, cap)
        if want <= done:
            break
        more(want)
    return Replications(values, pilot, floor, cap, dict(targets), time.process_time() - started)
