"""Per-configuration statistics of a sweep: means with confidence intervals, pooled percentiles."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from esmsim import histogram
from esmsim.keys import ALL_SUMMARY_KEYS
from esmsim.sweep.spec import Point

# Student's t quantile at 0.975 by degrees of freedom (1..30); beyond 30 the normal's 1.96 is close.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t975(dof: int) -> float:
    """Two-sided 95 % Student t quantile."""
    return _T975[dof - 1] if 1 <= dof <= len(_T975) else 1.96


def mean_interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95 % t-interval of independent replication results (NaN bounds for one value)."""
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if values.size == 1:
        return mean, math.nan, math.nan
    half = t975(values.size - 1) * float(values.std(ddof=1)) / math.sqrt(values.size)
    return mean, mean - half, mean + half


def aggregate(runs: pd.DataFrame, points: list[Point], records: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per configuration, with its statistics over replications.

    Columns: the parameters, replications done, mean and 95 % interval of every metric
    (``<metric>``, ``<metric>_ci_low``, ``<metric>_ci_high``), and latency percentiles of all its
    replications' records pooled (``latency_p50_pooled_s``, ``latency_p99_pooled_s``).
    """
    ok = runs[runs["error"].isna()]
    rows = []
    for point in points:
        mine = ok[ok["point"] == point.index]
        row: dict[str, Any] = {"point": point.index, **point.cells()}
        row["replications"] = len(mine)
        for metric in ALL_SUMMARY_KEYS:
            mean, low, high = mean_interval(mine[metric].to_numpy(dtype=float))
            row[metric], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = mean, low, high
        pooled = np.zeros(histogram.BUCKETS)
        for rid in mine["run_id"]:
            hist = records.get(rid, {}).get("histogram")
            if hist:
                pooled[np.asarray(hist[0], dtype=int)] += np.asarray(hist[1], dtype=float)
        p50, p99 = histogram.percentiles(pooled, [50, 99])
        row["latency_p50_pooled_s"], row["latency_p99_pooled_s"] = float(p50), float(p99)
        rows.append(row)
    return pd.DataFrame(rows)
