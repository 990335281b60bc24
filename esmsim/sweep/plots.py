"""A sweep's figures: latency and cost curves over two swept keys, and cost against p99 latency.

Curves use each configuration's mean over replications with its 95 % interval as a band. The x axis
is the first swept key (log scale when its values span a factor of 10 or more), and each value of
the second swept key is a line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from esmsim.report import atomic_write
from esmsim.sweep.objective import meets, pareto_front, recommend
from esmsim.sweep.spec import Objective, Point, Sweep

COST = "cost_per_million_records_usd"
LATENCY_P99 = "latency_p99_s"


def axes_keys(sweep: Sweep, keys: Sequence[str]) -> tuple[str | None, str | None]:
    """The swept keys for the x axis and for the lines (either may be None)."""
    x = sweep.plot.x or (keys[0] if keys else None)
    rest = [k for k in keys if k != x]
    series = sweep.plot.series or (rest[0] if rest else None)
    return x, series


def _numeric(values: pd.Series) -> bool:
    return bool(pd.to_numeric(values, errors="coerce").notna().all())


def _label(value: Any) -> str:
    """A swept value as a category on an axis: ``null`` for a key set to null (NaN in the table)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "null"
    return str(value)


def _lines(table: pd.DataFrame, x: str | None, series: str | None) -> list[tuple[str, pd.DataFrame]]:
    """(label, rows sorted by x) per value of ``series`` (one line when there is no series)."""
    ran = table[table["replications"] > 0]
    if x is not None and _numeric(ran[x]):
        ran = ran.assign(_x=pd.to_numeric(ran[x])).sort_values("_x")
    else:
        ran = ran.assign(_x=ran[x].map(_label) if x else ran["point"])
    if series is None:
        return [("", ran)]
    # Numbers group (and sort) as numbers; anything else (null, a mapping) as its label.
    keys = pd.to_numeric(ran[series]) if _numeric(ran[series]) else ran[series].map(_label)
    return [
        (f"{series.split('.')[-1]}={_label(value)}", group) for value, group in ran.groupby(keys, sort=True)
    ]


def _x_axis(ax: Axes, table: pd.DataFrame, x: str | None) -> None:
    ax.set_xlabel(x or "configuration")
    if x is not None and _numeric(table[x]):
        values = pd.to_numeric(table[x]).to_numpy(dtype=float)
        positive = values[values > 0]
        if positive.size and positive.max() / positive.min() >= 10:
            ax.set_xscale("log")


def _band(ax: Axes, rows: pd.DataFrame, metric: str, color: Any) -> None:
    low, high = rows[f"{metric}_ci_low"], rows[f"{metric}_ci_high"]
    if low.notna().any():
        ax.fill_between(rows["_x"], low, high, color=color, alpha=0.15, linewidth=0)


def latency_figure(table: pd.DataFrame, x: str | None, series: str | None) -> Figure:
    """p50 (solid) and p99 (dashed) latency against ``x``, one colour per value of ``series``."""
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    for i, (label, rows) in enumerate(_lines(table, x, series)):
        color = f"C{i}"
        suffix = f" ({label})" if label else ""
        ax.plot(rows["_x"], rows["latency_p50_s"], color=color, marker="o", label=f"p50{suffix}")
        ax.plot(rows["_x"], rows[LATENCY_P99], color=color, marker="s", linestyle="--", label=f"p99{suffix}")
        _band(ax, rows, LATENCY_P99, color)
    _x_axis(ax, table, x)
    ax.set_ylabel("latency (s)")
    ax.set_yscale("log")
    ax.set_title("Record latency (mean over replications, 95 % band)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", ncols=2)
    return fig


def cost_figure(table: pd.DataFrame, x: str | None, series: str | None) -> Figure:
    """Cost per million records against ``x``, one line per value of ``series``."""
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    for i, (label, rows) in enumerate(_lines(table, x, series)):
        color = f"C{i}"
        ax.plot(rows["_x"], rows[COST], color=color, marker="o", label=label or "cost")
        _band(ax, rows, COST, color)
    _x_axis(ax, table, x)
    ax.set_ylabel("cost per million records (USD)")
    ax.set_title("Cost per million records processed")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def pareto_figure(
    table: pd.DataFrame, points: list[Point], recommended: int | None, objective: Objective | None = None
) -> Figure:
    """Every configuration's cost against its p99 latency; the Pareto frontier joined; the choice marked.

    With an ``objective``, configurations failing one of its constraints are drawn apart (grey
    crosses). Frontier points are labelled with their swept values only (``10 × 5``); the axes
    title names the keys, so neighbouring labels stay short enough not to collide.
    """
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    ran = table[table["replications"] > 0]
    if objective is not None and objective.constraints:
        ok = pd.Series([meets(row, objective) for row in ran.to_dict("records")], index=ran.index, dtype=bool)
        ax.scatter(ran[LATENCY_P99][ok], ran[COST][ok], color="C0", alpha=0.7, label="meets the constraints")
        ax.scatter(ran[LATENCY_P99][~ok], ran[COST][~ok], color="0.5", marker="x", label="fails a constraint")
    else:
        ax.scatter(ran[LATENCY_P99], ran[COST], color="C0", alpha=0.6, label="configurations")
    front = pareto_front(table, COST, LATENCY_P99)
    rows = ran.set_index("point").loc[front].sort_values(LATENCY_P99) if front else ran.iloc[:0]
    ax.plot(rows[LATENCY_P99], rows[COST], color="C3", marker="o", label="Pareto frontier")
    keys = list(points[0].params) if points else []
    for n, (index, row) in enumerate(zip(rows.index.tolist(), rows.to_dict("records"), strict=True)):
        text = " × ".join(
            f"{v:g}" if isinstance(v, float) else str(v) for v in points[int(index)].params.values()
        )
        # Frontier points fall left to right: alternate labels above and below the line.
        offset = (6, 8) if n % 2 == 0 else (6, -14)
        ax.annotate(
            text, (row[LATENCY_P99], row[COST]), fontsize="small", xytext=offset, textcoords="offset points"
        )
    if recommended is not None and recommended in set(ran["point"]):
        chosen = ran[ran["point"] == recommended].iloc[0]
        ax.scatter([chosen[LATENCY_P99]], [chosen[COST]], s=200, facecolors="none", edgecolors="C2",
                   linewidths=2, label="recommended")  # fmt: skip
    ax.set_xlabel("p99 latency (s)")
    ax.set_ylabel("cost per million records (USD)")
    if (
        ran[LATENCY_P99].notna().any()
        and np.nanmax(ran[LATENCY_P99]) / max(np.nanmin(ran[LATENCY_P99]), 1e-9) >= 10
    ):
        ax.set_xscale("log")
    title = "Cost against p99 latency"
    if keys:
        title += f" (labels: {' × '.join(k.split('.')[-1] for k in keys)})"
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return fig


#: The figures a sweep draws, in the order they are reported.
PLOT_FILES = ("latency.png", "cost.png", "pareto.png")


def write_plots(table: pd.DataFrame, sweep: Sweep, points: list[Point], out: Path) -> list[Path]:
    """Draw latency.png, cost.png and pareto.png into ``out`` (atomically)."""
    keys = list(points[0].params) if points else []
    x, series = axes_keys(sweep, keys)
    recommended = None
    if sweep.objective is not None:
        verdict = recommend(table, points, sweep.objective)
        recommended = verdict.point if verdict.met else None  # the closest miss is no recommendation
    figures = (
        latency_figure(table, x, series),
        cost_figure(table, x, series),
        pareto_figure(table, points, recommended, sweep.objective),
    )
    written = []
    for name, figure in zip(PLOT_FILES, figures, strict=True):
        with atomic_write(out / name, "wb") as handle:
            figure.savefig(handle, format="png", dpi=110)
        written.append(out / name)
    return written
