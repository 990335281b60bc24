"""Choosing a configuration: the cheapest that meets the objective, and the Pareto frontier."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from esmsim.sweep.spec import Bound, Objective, Point


@dataclass(frozen=True)
class Recommendation:
    """What a sweep recommends, in one sentence and as data."""

    met: bool
    message: str
    point: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    value: float | None = None
    binding: tuple[str, ...] = ()


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


def recommend(table: pd.DataFrame, points: list[Point], objective: Objective) -> Recommendation:
    """The configuration minimising ``objective.minimize`` among those meeting every constraint.

    Constraints and the minimised metric use each configuration's mean over its replications.
    When none qualifies, the message names the constraint no configuration meets (or says that the
    constraints cannot all be met at once) and the configuration that comes closest.
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
        return Recommendation(True, message, point.index, point.params, float(best[target]))
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
    return Recommendation(False, message, point.index, point.params, float(closest[target]), binding)


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
