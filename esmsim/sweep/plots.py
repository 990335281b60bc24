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
from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator

from esmsim.plots import plain_log_ticks
from esmsim.report import atomic_write
from esmsim.sweep.objective import meets, pareto_front, recommend
from esmsim.sweep.spec import Objective, Point, Sweep

COST = "cost_per_million_records_usd"
LATENCY_P99 = "latency_p99_s"

#: Swept keys (their last part) in words, with units, for axis labels and legends.
KEY_WORDS = {
    "batch_size": "batch size (records)",
    "maximum_concurrency": "maximum concurrency (invocations)",
    "batching_window": "batching window (s)",
    "parallelization_factor": "parallelization factor (batches per shard)",
    "memory_mb": "memory (MB)",
    "reserved_concurrency": "reserved concurrency",
    "provisioned_concurrency": "provisioned concurrency",
    "shards": "shards",
    "partitions": "partitions",
    "rate": "arrival rate (records/s)",
    "visibility_timeout": "visibility timeout (s)",
    "timeout": "function timeout (s)",
    "max_receive_count": "maximum receives",
    "maximum_retry_attempts": "maximum retry attempts",
    "maximum_record_age": "maximum record age (s)",
    "provisioned_pollers": "provisioned pollers",
    "concurrency_limit": "account concurrency limit",
}


def key_words(key: str) -> str:
    """A swept key as an axis label: ``mappings[0].batch_size`` -> ``batch size (records)``."""
    last = key.split(".")[-1]
    return KEY_WORDS.get(last, last.replace("_", " "))


def _short(key: str) -> str:
    """A swept key's words without the unit, for legends: ``maximum concurrency``."""
    return key_words(key).split(" (")[0]


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


def _lines(
    table: pd.DataFrame, x: str | None, series: str | None, metrics: Sequence[str] = ()
) -> list[tuple[str, pd.DataFrame]]:
    """(label, rows sorted by x) per value of ``series`` (one line when there is no series).

    Values of ``series`` whose ``metrics`` coincide at every x would hide each other: they share
    one line whose label lists them and says so.
    """
    lines = _series(table, x, series)
    if not metrics or len(lines) < 2:
        return lines
    merged: list[tuple[list[str], pd.DataFrame, np.ndarray]] = []
    for label, rows in lines:
        values = rows[list(metrics)].to_numpy(dtype=float)
        for labels, _rows, seen in merged:
            if seen.shape == values.shape and np.allclose(seen, values, rtol=1e-9, atol=0, equal_nan=True):
                labels.append(label)
                break
        else:
            merged.append(([label], rows, values))
    out = []
    for labels, rows, _ in merged:
        if len(labels) == 1:
            out.append((labels[0], rows))
        else:
            name, _, _ = labels[0].partition("=")
            shared = ", ".join(label.partition("=")[2] for label in labels)
            out.append((f"{name}={shared} (identical)", rows))
    return out


def _series(table: pd.DataFrame, x: str | None, series: str | None) -> list[tuple[str, pd.DataFrame]]:
    """(label, rows sorted by x) per value of ``series``."""
    ran = table[table["replications"] > 0]
    if x is not None and _numeric(ran[x]):
        ran = ran.assign(_x=pd.to_numeric(ran[x])).sort_values("_x")
    else:
        ran = ran.assign(_x=ran[x].map(_label) if x else ran["point"])
    if series is None:
        return [("", ran)]
    # Numbers group (and sort) as numbers; anything else (null, a mapping) as its label.
    keys = pd.to_numeric(ran[series]) if _numeric(ran[series]) else ran[series].map(_label)
    return [(f"{_short(series)}={_label(value)}", group) for value, group in ran.groupby(keys, sort=True)]


def _x_axis(ax: Axes, table: pd.DataFrame, x: str | None) -> None:
    """Label the x axis in words and tick it at the swept values (log scale across decades)."""
    ax.set_xlabel(
        key_words(x) + (", log scale" if _spans_decades(table, x) else "") if x else "configuration"
    )
    if x is not None and _numeric(table[x]):
        values = np.unique(pd.to_numeric(table[x]).to_numpy(dtype=float))
        if _spans_decades(table, x):
            ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(values.tolist()))
        ax.xaxis.set_major_formatter(FixedFormatter([f"{v:g}" for v in values]))
        ax.xaxis.set_minor_locator(NullLocator())


def _width(i: int, n: int) -> dict[str, Any]:
    """Line width and marker size of line ``i`` of ``n``.

    Earlier lines are wider, so a later line running over part of an earlier one leaves it
    visible around its edges.
    """
    share = (n - 1 - i) / max(1, n - 1)
    return {"linewidth": 1.3 + 2.2 * share, "markersize": 5.0 + 5.0 * share}


def _spans_decades(table: pd.DataFrame, x: str | None) -> bool:
    if x is None or not _numeric(table[x]):
        return False
    values = pd.to_numeric(table[x]).to_numpy(dtype=float)
    positive = values[values > 0]
    return bool(positive.size == values.size and positive.max() / positive.min() >= 10)


def _bound_lines(ax: Axes, objective: Objective | None, metric: str, *, vertical: bool = False) -> None:
    """The objective's bound on ``metric`` as a dashed line (horizontal, or vertical on the x axis)."""
    if objective is None or metric not in objective.constraints:
        return
    bound = objective.constraints[metric]
    for value, word in ((bound.max, "<="), (bound.min, ">=")):
        if value is None:
            continue
        label = f"objective: {metric} {word} {value:g}"
        line = ax.axvline if vertical else ax.axhline
        line(value, color="0.35", linestyle=(0, (4, 3)), linewidth=1.2, label=label)


def _mark(ax: Axes, table: pd.DataFrame, x: str | None, metric: str, recommended: int | None) -> None:
    """The recommended configuration on a curve: a ring around its point."""
    if recommended is None or x is None:
        return
    rows = table[(table["point"] == recommended) & (table["replications"] > 0)]
    if rows.empty:
        return
    row = rows.iloc[0]
    at = pd.to_numeric(row[x]) if _numeric(table[x]) else _label(row[x])
    ax.scatter([at], [row[metric]], s=220, facecolors="none", edgecolors="C2", linewidths=2, zorder=5,
               label="recommended")  # fmt: skip


def _band(ax: Axes, rows: pd.DataFrame, metric: str, color: Any) -> None:
    low, high = rows[f"{metric}_ci_low"], rows[f"{metric}_ci_high"]
    if low.notna().any():
        ax.fill_between(rows["_x"], low, high, color=color, alpha=0.15, linewidth=0)


def latency_figure(
    table: pd.DataFrame,
    x: str | None,
    series: str | None,
    objective: Objective | None = None,
    recommended: int | None = None,
) -> Figure:
    """p50 (solid) and p99 (dashed) latency against ``x``, one colour per value of ``series``.

    The objective's latency bounds are drawn, and the recommended configuration ringed.
    """
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    lines = _lines(table, x, series, ("latency_p50_s", LATENCY_P99))
    for i, (label, rows) in enumerate(lines):
        color = f"C{i}"
        suffix = f" ({label})" if label else ""
        width = _width(i, len(lines))
        ax.plot(rows["_x"], rows["latency_p50_s"], color=color, marker="o", label=f"p50{suffix}", **width)
        ax.plot(rows["_x"], rows[LATENCY_P99], color=color, marker="s", linestyle="--", label=f"p99{suffix}",
                **width)  # fmt: skip
        _band(ax, rows, LATENCY_P99, color)
    _bound_lines(ax, objective, LATENCY_P99)
    _bound_lines(ax, objective, "latency_p50_s")
    _mark(ax, table, x, LATENCY_P99, recommended)
    _x_axis(ax, table, x)
    ax.set_ylabel("record latency (s, log scale)")
    ax.set_yscale("log")
    plain_log_ticks(ax.yaxis)
    ax.set_title("Record latency (mean over replications, 95 % band on p99)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", ncols=2)
    return fig


def cost_figure(
    table: pd.DataFrame,
    x: str | None,
    series: str | None,
    objective: Objective | None = None,
    recommended: int | None = None,
) -> Figure:
    """Cost per million records against ``x``, one line per value of ``series``; the choice ringed."""
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    lines = _lines(table, x, series, (COST,))
    for i, (label, rows) in enumerate(lines):
        color = f"C{i}"
        ax.plot(
            rows["_x"], rows[COST], color=color, marker="o", label=label or "cost", **_width(i, len(lines))
        )
        _band(ax, rows, COST, color)
    _bound_lines(ax, objective, COST)
    _mark(ax, table, x, COST, recommended)
    _x_axis(ax, table, x)
    costs = table.loc[table["replications"] > 0, COST].dropna()
    if len(costs) and costs.min() > 0 and costs.max() / costs.min() >= 10:
        ax.set_yscale("log")
        plain_log_ticks(ax.yaxis)
    ax.set_ylabel("cost per million records (USD)" + (", log scale" if ax.get_yscale() == "log" else ""))
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
    _bound_lines(ax, objective, LATENCY_P99, vertical=True)
    _bound_lines(ax, objective, COST)
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
    if ran[COST].notna().any() and ran[COST].min() > 0 and ran[COST].max() / ran[COST].min() >= 10:
        ax.set_yscale("log")
        plain_log_ticks(ax.yaxis)
    title = "Cost against p99 latency"
    if keys:
        title += f" (labels: {' × '.join(_short(k) for k in keys)})"
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    _label_points(fig, ax, ran, points)
    return fig


def _label_points(fig: Figure, ax: Axes, ran: pd.DataFrame, points: list[Point]) -> None:
    """Label every configuration with its swept values, no two labels overlapping.

    Configurations at (nearly) the same place share one label (``50 × 15, 50 × 50``). Each label
    takes the first of a ring of offsets around its point whose box overlaps no label placed
    before it (nor the legend); the points are placed left to right.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()  # type: ignore[no-untyped-call]
    fig.draw(renderer)  # lay out the axes (scales, limits) before measuring
    placed = []
    legend = ax.get_legend()
    if legend is not None:
        placed.append(legend.get_window_extent(renderer))
    groups: list[tuple[float, float, list[str]]] = []
    rows = ran.dropna(subset=[LATENCY_P99, COST]).sort_values([LATENCY_P99, COST])
    for row in rows.to_dict("records"):
        x, y = float(row[LATENCY_P99]), float(row[COST])
        name = " × ".join(
            f"{v:g}" if isinstance(v, float) else _label(v) for v in points[int(row["point"])].params.values()
        )
        for gx, gy, names in groups:
            if abs(gx - x) <= 0.02 * abs(gx) and abs(gy - y) <= 0.02 * abs(gy):
                names.append(name)
                break
        else:
            groups.append((x, y, [name]))
    offsets = [
        (6, 6),
        (6, -14),
        (-6, 6),
        (-6, -14),
        (8, -4),
        (-8, -4),
        (0, 12),
        (0, -20),
        (14, 14),
        (-14, -24),
    ]
    for x, y, names in groups:
        text = ", ".join(names)
        for dx, dy in offsets:
            annotation = ax.annotate(
                text,
                (x, y),
                xytext=(dx, dy),
                textcoords="offset points",
                fontsize="x-small",
                ha="left" if dx >= 0 else "right",
            )
            box = annotation.get_window_extent(renderer)
            inside = ax.bbox.contains(box.x0, box.y0) and ax.bbox.contains(box.x1, box.y1)
            if inside and not any(box.overlaps(other) for other in placed):
                placed.append(box)
                break
            annotation.remove()
        else:  # crowded everywhere: keep the first place rather than lose the label
            annotation = ax.annotate(
                text, (x, y), xytext=offsets[0], textcoords="offset points", fontsize="x-small"
            )
            placed.append(annotation.get_window_extent(renderer))


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
        latency_figure(table, x, series, sweep.objective, recommended),
        cost_figure(table, x, series, sweep.objective, recommended),
        pareto_figure(table, points, recommended, sweep.objective),
    )
    written = []
    for name, figure in zip(PLOT_FILES, figures, strict=True):
        with atomic_write(out / name, "wb") as handle:
            figure.savefig(handle, format="png", dpi=110)
        written.append(out / name)
    return written
