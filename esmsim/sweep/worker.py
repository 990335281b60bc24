"""What runs on a worker: one (configuration, replication) of a sweep, returning a small result.

Only small things travel back: the summary (a flat dict of numbers) and the latency histogram as
its non-empty buckets, never per-record data. A run that raises is a result too, carrying its error,
so one bad run never stops a sweep.
"""

from __future__ import annotations

import math
import time
import traceback
from typing import Any

import numpy as np


def failure(
    task: dict[str, Any], error: BaseException, *, wall_time_s: float | None = None, tb: str | None = None
) -> dict[str, Any]:
    """A run that raised (or whose worker crashed or was lost): recorded with its error."""
    return {
        **{k: task[k] for k in ("run_id", "point", "replication", "seed")},
        "summary": None,
        "histogram": None,
        "wall_time_s": wall_time_s,
        "error": f"{type(error).__name__}: {error}",
        "traceback": tb,
    }


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """Simulate one run described by ``task`` (keys: run_id, point, replication, seed, scenario)."""
    # Imported here so a worker process pays for the simulator once, on its first task.
    from esmsim.run import simulate
    from esmsim.scenario.scenario import Scenario

    started = time.perf_counter()
    try:
        scenario = Scenario.model_validate(task["scenario"])
        # force: iter_sweep checked the largest point's estimate before submitting any run.
        result = simulate(
            scenario, seed=task["seed"], replication=task["replication"], tables=False, force=True
        )
    except Exception as error:  # a failed run is recorded, the sweep goes on
        tb = "".join(traceback.format_exception(error)[-3:])
        return failure(task, error, wall_time_s=time.perf_counter() - started, tb=tb)
    summary = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in result.summary.items()}
    hist = result.latency_histogram
    nonzero = np.flatnonzero(hist)
    return {
        **{k: task[k] for k in ("run_id", "point", "replication", "seed")},
        "summary": summary,
        "histogram": [nonzero.tolist(), hist[nonzero].tolist()],
        "wall_time_s": time.perf_counter() - started,
        "error": None,
        "traceback": None,
    }
