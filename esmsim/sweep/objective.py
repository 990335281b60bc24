"""Choosing a configuration: the cheapest that meets the objective, and the Pareto frontier."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from esmsim.sweep.aggregate import t975
from esmsim.sweep.spec import Bound, Objective, Point


@dataclass(frozen=True)
class Alternative:
    """Another configuration beside the recommended one, as ratios a planner can weigh."""

    point: int
    label: str
    value: float  # the minimised metric's mean
    value_ratio: float  # against the recommended configuration's
    latency: float  # the latency metric's mean (the objective's latency constraint, else p99)
    latency_ratio: float
    feasible: bool  # meets every constraint
    overlaps: bool  # its interval of the minimised metric overlaps the recommended one's

    def describe(self, target: str, latency_key: str) -> str:
        """``batch_size=50, ...: latency_p99_s 0.63 (0.46x), cost ... 1.03x``."""
        return (
            f"{self.label}: {latency_key} {_fmt(self.latency)} ({_ratio(self.latency_ratio)}), "
            f"{target} {_fmt(self.value)} ({_ratio(self.value_ratio)})"
            + ("" if self.feasible else ", misses the objective")
            + (", intervals overlap" if self.overlaps else "")
        )


@dataclass(frozen=True)
class Recommendation:
    """What a sweep recommends, in one sentence and as data, with the context to weigh it."""

    met: bool
    message: str
    point: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    value: float | None = None
    binding: tuple[str, ...] = ()
    latency_key: str = "latency_p99_s"
    #: The Pareto frontier's other points (minimised metric against latency), nearest first.
    runners_up: tuple[Alternative, ...] = ()
    #: Configurations meeting the objective whose interval of the minimised metric overlaps the
    #: recommended one's: the replications cannot tell them apart.
    overlapping: tuple[int, ...] = ()
    #: Per configuration that misses the objective: the constraint it misses by most.
    rejected: dict[int, str] = field(default_factory=dict)
    #: When the intervals overlap: replications that would separate the closest competitor (None
    #: when their means are equal).
    replications_needed: int | None = None
    warning: str | None = None

    def context(self, target: str) -> list[str]:
        """Lines to print after the message: runners-up, overlap, the replications warning."""
        lines = [f"  runner-up {a.describe(target, self.latency_key)}" for a in self.runners_up]
        if self.warning:
            lines.append(f"  warning: {self.warning}")
        return lines

    def as_dict(self) -> dict[str, Any]:
        """As ``manifest.json`` holds it."""
        return {
            "met": self.met,
            "message": self.message,
            "point": self.point,
            "params": self.params,
            "value": self.value,
            "binding": list(self.binding),
            "latency_key": self.latency_key,
            "runners_up": [a.__dict__ for a in self.runners_up],
            "overlapping": list(self.overlapping),
            "rejected": {str(k): v for k, v in self.rejected.items()},
            "replications_needed": self.replications_needed,
            "warning": self.warning,
        }


def _ratio(x: float) -> str:
    return "n/a" if _missing(x) else f"{x:.2f}x"


def _describe(bound: Bound) -> str:
    parts = []
    if bound.min is not None:
        parts.append(f">= {bound.min:g}")
    if bound.max is not None:
        parts.append(f"<= {bound.max:g}")
    return " and ".join(parts)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _fmt(value: float) -> str:
    return "n/a" if _missing(value) else f"{value:.4g}"


def _within(value: Any, bound: Bound) -> bool:
    if _missing(value):
        return False
    return (bound.max is None or value <= bound.max) and (bound.min is None or value >= bound.min)


def meets(row: Mapping[Any, Any], objective: Objective) -> bool:
    """Whether a configuration's means meet every constraint of ``objective``."""
    return all(_within(row[m], b) for m, b in objective.constraints.items())


def _violation(row: dict[str, Any], constraints: dict[str, Bound]) -> float:
    """How far a configuration is from meeting the constraints, relative to each bound."""
    total = 0.0
    for metric, bound in constraints.items():
        value = row[metric]
        if _missing(value):
            return math.inf
        scale = max(abs(bound.max or 0.0), abs(bound.min or 0.0), 1e-9)
        if bound.max is not None:
            total += max(0.0, value - bound.max) / scale
        if bound.min is not None:
            total += max(0.0, bound.min - value) / scale
    return total


def recommend(
    table: pd.DataFrame, points: list[Point], objective: Objective, replications: int = 1
) -> Recommendation:
    """The configuration minimising ``objective.minimize`` among those meeting every constraint.

    Constraints and the minimised metric use each configuration's mean over its replications.
    When none qualifies, the message names the constraint no configuration meets (or says that the
    constraints cannot all be met at once) and the configuration that comes closest. A
    recommendation carries its context (:func:`_weigh`): the frontier's runners-up, the
    configurations its interval cannot separate from it and the replications that would, and why
    each rejected configuration was rejected.
    """
    rows: list[dict[str, Any]] = [
        {str(k): v for k, v in r.items()} for r in table.to_dict("records") if r["replications"] > 0
    ]
    if not rows:
        return Recommendation(False, "no configuration finished a run: nothing to recommend")
    constraints = objective.constraints
    target = objective.minimize
    # A configuration without a value to minimise (no record processed: no cost per record) cannot
    # be the best; NaN would also sort first.
    feasible = [r for r in rows if meets(r, objective) and not _missing(r[target])]
    if feasible:
        best = min(feasible, key=lambda r: (r[target], r["point"]))
        point = points[int(best["point"])]
        checks = ", ".join(f"{m} {_fmt(best[m])} {_describe(b)}" for m, b in constraints.items())
        best_of = "cheapest configuration" if target.startswith("cost") else f"lowest {target}"
        message = f"{best_of} meeting the objective: {point.label()} ({target} {_fmt(best[target])}"
        message += f"; {checks})" if checks else ")"
        return Recommendation(
            True,
            message,
            point.index,
            point.params,
            float(best[target]),
            **_weigh(rows, points, objective, best, replications),
        )
    binding = tuple(m for m, b in constraints.items() if not any(_within(r[m], b) for r in rows))
    closest = min(rows, key=lambda r: (_violation(r, constraints), r["point"]))
    point = points[int(closest["point"])]
    values = ", ".join(f"{m} {_fmt(closest[m])}" for m in constraints)
    if binding:
        what = " and ".join(f"{m} {_describe(constraints[m])}" for m in binding)
        reason = f"{what} holds for no configuration"
    else:
        reason = "each constraint is met by some configuration, but never all at once"
    message = f"no configuration meets the objective: {reason}; closest: {point.label()} ({values})"
    rejected = {int(r["point"]): _missed(r, constraints) for r in rows}  # every one misses it
    return Recommendation(
        False,
        message,
        point.index,
        point.params,
        float(closest[target]),
        binding,
        latency_key=latency_key(objective),
        rejected=rejected,
    )


def latency_key(objective: Objective) -> str:
    """The latency a recommendation is weighed against: the objective's latency constraint, else p99."""
    return next((m for m in objective.constraints if m.startswith("latency")), "latency_p99_s")


def _interval(row: dict[str, Any], metric: str) -> tuple[float, float]:
    low, high = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    if low is None or high is None or _missing(low) or _missing(high):
        return float(row[metric]), float(row[metric])  # one replication: no interval, just the mean
    return float(low), float(high)


def _weigh(
    rows: list[dict[str, Any]],
    points: list[Point],
    objective: Objective,
    best: dict[str, Any],
    replications: int,
) -> dict[str, Any]:
    """The context of recommending ``best``: the fields of :class:`Recommendation` after ``binding``."""
    target, lat = objective.minimize, latency_key(objective)
    if lat == target:  # minimising the latency itself: weigh it against the cost per record
        lat = "cost_per_million_records_usd"
    low, high = _interval(best, target)

    def alternative(row: dict[str, Any]) -> Alternative:
        other_low, other_high = _interval(row, target)
        return Alternative(
            point=int(row["point"]),
            label=points[int(row["point"])].label(),
            value=float(row[target]),
            value_ratio=float(row[target]) / float(best[target]) if best[target] else math.nan,
            latency=float(row[lat]),
            latency_ratio=float(row[lat]) / float(best[lat]) if best[lat] else math.nan,
            feasible=meets(row, objective),
            overlaps=other_low <= high and low <= other_high,
        )

    table = pd.DataFrame(rows)
    front = [p for p in pareto_front(table, target, lat) if p != best["point"]] if lat in table else []
    by_point = {int(r["point"]): r for r in rows}
    runners = sorted(
        (alternative(by_point[p]) for p in front), key=lambda a: abs(math.log(a.value_ratio or 1))
    )
    feasible = [
        r for r in rows if meets(r, objective) and r["point"] != best["point"] and not _missing(r[target])
    ]
    overlapping = tuple(a.point for a in map(alternative, feasible) if a.overlaps)
    rejected = {int(r["point"]): _missed(r, objective.constraints) for r in rows if not meets(r, objective)}
    needed, warning = None, None
    if overlapping:
        closest = min((by_point[p] for p in overlapping), key=lambda r: abs(r[target] - best[target]))
        gap = abs(float(closest[target]) - float(best[target]))
        closest_low, closest_high = _interval(closest, target)
        spread = (high - low) / 2 + (closest_high - closest_low) / 2
        if gap > 0 and spread > 0 and replications > 1:
            needed = _replications_to_part(spread, gap, replications)
        more = (
            f"about {needed} replications would separate them if their spread holds"
            if needed
            else "more replications"
        )
        if replications < 2:
            more = "one replication gives no interval: run at least 3"
        warning = (
            f"{len(overlapping)} other configuration(s) meeting the objective have {target} intervals "
            f"overlapping the recommended one's (closest: {points[int(closest['point'])].label()}, "
            f"{_fmt(closest[target])} against {_fmt(best[target])}) with {replications} replication(s): "
            f"{more}"
        )
    elif replications < 2:
        warning = "one replication gives no interval: the ranking may be noise; run at least 3"
    return {
        "latency_key": lat,
        "runners_up": tuple(runners[:3]),
        "overlapping": overlapping,
        "rejected": rejected,
        "replications_needed": needed,
        "warning": warning,
    }


def _replications_to_part(spread: float, gap: float, replications: int) -> int | None:
    """Replications at which two 95 % intervals whose half-widths sum to ``spread`` part at ``gap``.

    A half-width is t(n - 1) x sd / sqrt(n): with the standard deviations held at what
    ``replications`` runs showed, find the smallest n whose half-widths sum below the gap
    (None beyond 10,000).
    """
    sd_sum = spread * math.sqrt(replications) / t975(replications - 1)
    for n in range(replications + 1, 10_001):
        if t975(n - 1) * sd_sum / math.sqrt(n) < gap:
            return n
    return None


def _missed(row: dict[str, Any], constraints: dict[str, Bound]) -> str:
    """The constraint a configuration misses by most, with its value: ``latency_p99_s 2.4 > 2``."""
    worst, text = -1.0, "no value"
    for metric, bound in constraints.items():
        value = row[metric]
        if _missing(value):
            return f"{metric}: no value (no processed record to measure)"
        scale = max(abs(bound.max or 0.0), abs(bound.min or 0.0), 1e-9)
        over = (value - bound.max) / scale if bound.max is not None else -math.inf
        under = (bound.min - value) / scale if bound.min is not None else -math.inf
        if max(over, under) > worst and max(over, under) > 0:
            worst = max(over, under)
            text = (
                f"{metric} {_fmt(value)} > {bound.max:g}"
                if over >= under
                else f"{metric} {_fmt(value)} < {bound.min:g}"
            )
    return text


def pareto_front(table: pd.DataFrame, cost: str, latency: str) -> list[int]:
    """Points (by index) not beaten on both cost and latency by another configuration."""
    ran = table[(table["replications"] > 0) & table[cost].notna() & table[latency].notna()]
    ordered = ran.sort_values([cost, latency])
    front: list[int] = []
    best_latency = math.inf
    for point, value in zip(ordered["point"].tolist(), ordered[latency].tolist(), strict=True):
        if value < best_latency:
            front.append(int(point))
            best_latency = value
    return front
