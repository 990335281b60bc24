"""Running a sweep: every (configuration, replication) on an executor, results streaming back.

All configurations of one replication share its random streams (common random numbers): they
see the same records, so differences between them are their configurations', not noise. The same
sweep gives identical rows on every executor.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from esmsim._version import __version__
from esmsim.errors import Issue, RunError, ScenarioError
from esmsim.estimate import Estimate, estimate, refusal
from esmsim.result import scenario_hash
from esmsim.scenario.loader import parse_overrides, read_raw
from esmsim.scenario.scenario import Scenario, build
from esmsim.scenario.where import Where
from esmsim.sweep.executors import open_executor
from esmsim.sweep.objective import Recommendation, recommend
from esmsim.sweep.spec import Point, Sweep, expand, parse_sweep, run_id
from esmsim.sweep.store import JOURNAL, SweepStore, now_iso, read_journal, runs_frame
from esmsim.sweep.worker import failure, run_task


@dataclass(frozen=True)
class SweepPlan:
    """A validated sweep: its points, replications and identity."""

    name: str
    sweep: Sweep
    points: list[Point]
    replications: int
    seed: int
    #: The resolved scenario without its sweep section: the sweep section may change between
    #: resumes (configurations already run are reused), the scenario may not.
    scenario_hash: str
    source: str | None  # the scenario file's text, when it came from a file
    #: AWS's recommendations the scenario or a point does not follow, one line each (as `validate`
    #: prints them; a point's own are prefixed with the point).
    warnings: tuple[str, ...] = ()

    @property
    def runs(self) -> int:
        """How many runs the sweep has."""
        return len(self.points) * self.replications


def plan(
    scenario: str | os.PathLike[str] | Scenario | dict[str, Any],
    *,
    overrides: Sequence[str] = (),
    replications: int | None = None,
) -> SweepPlan:
    """Expand and validate a sweep (a scenario file, a ``Scenario`` or a raw dict) before anything runs.

    The scenario, its ``sweep`` section and every point are validated, each problem located at its
    ``file:line``, ``--set KEY`` or sweep point.
    """
    where = Where()
    source = None
    if isinstance(scenario, Scenario):
        raw = scenario.data()
    elif isinstance(scenario, dict):
        raw = scenario
    else:
        raw, lines = read_raw(scenario)
        where = Where(os.fspath(scenario), lines)
        source = Path(os.fspath(scenario)).read_text(encoding="utf-8")
    built = build(raw, where, parse_overrides(overrides))
    validated = built.scenario
    sweep = parse_sweep(validated.sweep, built.where)
    points = expand(built.data, sweep, where=built.where)
    reps = replications if replications is not None else sweep.replications
    if reps < 1:
        raise ScenarioError([Issue(("sweep", "replications"), f"{reps} is below the minimum 1")])
    if overrides:
        source = (source or "") + "".join(f"\n# --set {text}" for text in overrides)
    identity = scenario_hash(validated.model_copy(update={"sweep": None}))
    return SweepPlan(
        validated.name, sweep, points, reps, validated.seed, identity, source, _warnings(built, points)
    )


def _warnings(built: Any, points: list[Point]) -> tuple[str, ...]:
    """The scenario's warnings, then those only some points have (a swept value breaking a rule)."""
    base = [issue.format() for issue in built.where.place(built.scenario.warnings)]
    seen = {issue.message for issue in built.scenario.warnings}
    own: list[str] = []
    for point in points:
        for issue in Scenario.model_validate(point.raw).warnings:
            if issue.message not in seen:
                own.append(f"point {point.index} ({point.label()}): {issue.format()}")
    return (*base, *own)


def largest_point(the_plan: SweepPlan) -> tuple[Point, Estimate] | None:
    """The point whose run is largest by its estimate (peak memory, then events), and that estimate."""
    best: tuple[Point, Estimate] | None = None
    for point in the_plan.points:
        found = estimate(Scenario.model_validate(point.raw))
        if best is None or (found.peak_memory, found.events) > (best[1].peak_memory, best[1].events):
            best = (point, found)
    return best


def check_sweep(the_plan: SweepPlan, *, max_memory: float | None = None, force: bool = False) -> None:
    """Refuse a sweep whose largest run the estimate refuses (:func:`esmsim.estimate.refusal`).

    Raises:
        RunError: One line naming the point, its estimate and the override.
    """
    biggest = None if force else largest_point(the_plan)
    if biggest is None:
        return
    reason = refusal(biggest[1], max_memory)
    if reason is not None:
        raise RunError(f"point {biggest[0].index}: {reason}")


def _task(plan: SweepPlan, point: Point, replication: int) -> dict[str, Any]:
    return {
        "run_id": run_id(point, replication),
        "point": point.index,
        "replication": replication,
        "seed": plan.seed,
        "scenario": point.raw,
    }


def iter_sweep(
    scenario: str | os.PathLike[str] | Scenario | dict[str, Any] | SweepPlan,
    *,
    executor: str = "local",
    out: str | os.PathLike[str] | None = None,
    replications: int | None = None,
    overrides: Sequence[str] = (),
    csv: bool = False,
    plots: bool = True,
    allow_version_change: bool = False,
    force: bool = False,
    max_memory: float | None = None,
) -> Iterator[dict[str, Any]]:
    """Run a sweep, yielding each run's result (summary, parameters, error) as it finishes.

    With ``out``, results are journaled there as they arrive, the tables and manifest are rewritten
    every few seconds and at the end (also when interrupted), and the plots are drawn once the
    sweep completes; running the same sweep into the same ``out`` again skips the runs already
    done (runs journaled by another esmsim version only with ``allow_version_change``). ``out`` is
    locked while the sweep runs: a second sweep into it raises ``OutputError`` at once. Closing the
    iterator early (or Ctrl-C) cancels the runs not yet started. Works from scripts and notebooks
    without a ``__main__`` guard.

    Before anything runs, the largest point's estimate is checked against ``max_memory`` (bytes,
    default three quarters of the machine's memory) and the event limit; ``force`` skips the check.

    Raises:
        RunError: The largest run is refused by its estimate.
        OutputError: ``out`` is busy, holds another scenario's runs, or cannot be written.
    """
    the_plan = (
        scenario
        if isinstance(scenario, SweepPlan)
        else plan(scenario, overrides=overrides, replications=replications)
    )
    check_sweep(the_plan, max_memory=max_memory, force=force)
    store = None
    if out is not None:  # refused before any worker starts: a busy, foreign or corrupt directory
        manifest = {
            "esmsim_version": __version__,
            "scenario": the_plan.name,
            "scenario_hash": the_plan.scenario_hash,
            "scenario_text": the_plan.source,
            "sweep": the_plan.sweep.model_dump(mode="json"),
            "replications": the_plan.replications,
            "seed": the_plan.seed,
            "executor": executor,
            "started_at": now_iso(),
            "points": [{"point": p.index, "params": p.params} for p in the_plan.points],
            "warnings": list(the_plan.warnings),
        }
        store = SweepStore.open(Path(out), manifest, allow_version_change=allow_version_change)
    try:
        yield from _run_plan(the_plan, store, executor, csv=csv, plots=plots)
    finally:
        if store:
            store.close()


def _verdict(the_plan: SweepPlan) -> Any:
    """How to judge the finished tables for the manifest: the objective's recommendation, if any."""
    objective = the_plan.sweep.objective
    if objective is None:
        return None
    return lambda table: recommend(table, the_plan.points, objective, the_plan.replications).as_dict()


def _run_plan(
    the_plan: SweepPlan, store: SweepStore | None, executor: str, *, csv: bool, plots: bool
) -> Iterator[dict[str, Any]]:
    with open_executor(executor) as info:
        if store:
            store.manifest["executor"] = info.description
            store.write(the_plan.points, the_plan.replications, "running", csv=csv)
        done = store.completed() if store else set()
        todo = [
            (point, r)
            for point in the_plan.points
            for r in range(the_plan.replications)
            if run_id(point, r) not in done
        ]
        status = "interrupted"
        queue = iter(todo)
        running: dict[Future[Any], dict[str, Any]] = {}

        def submit_next() -> None:
            for point, replication in queue:
                task = _task(the_plan, point, replication)
                running[info.executor.submit(run_task, task)] = task
                return

        try:
            for _ in range(2 * info.workers):  # a bounded window: results stream, memory stays flat
                submit_next()
            while running:
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                # In submission order among those finished: a serial sweep yields in grid order.
                for future in [f for f in running if f in finished]:
                    task = running.pop(future)
                    try:
                        record = future.result()
                    except Exception as error:  # the worker died, not the run
                        record = failure(task, error)
                    if store:
                        store.append(record)
                        if store.due():
                            store.write(the_plan.points, the_plan.replications, "running", csv=csv)
                    yield {**record, "params": the_plan.points[record["point"]].params}
                    submit_next()
            status = "complete"
        finally:
            for future in running:
                future.cancel()  # not started yet: nobody will read its result
            if store:
                runs, table = store.write(
                    the_plan.points, the_plan.replications, status, csv=csv, verdict=_verdict(the_plan)
                )
                if plots and status == "complete" and not runs.empty:
                    from esmsim.sweep.plots import write_plots

                    write_plots(table, the_plan.sweep, the_plan.points, store.out)
                if status == "complete" and not runs.empty:
                    from esmsim.html_report import write_report

                    write_report(store.out)


def sweep(
    scenario: str | os.PathLike[str] | Scenario | dict[str, Any] | SweepPlan,
    *,
    executor: str = "local",
    out: str | os.PathLike[str] | None = None,
    replications: int | None = None,
    overrides: Sequence[str] = (),
    csv: bool = False,
    plots: bool = True,
    allow_version_change: bool = False,
    force: bool = False,
    max_memory: float | None = None,
) -> pd.DataFrame:
    """Run a sweep and return one row per run (parameters, replication, seed, every summary metric).

    ``frame.attrs`` also holds ``aggregate`` (one row per configuration: means and 95 % intervals)
    and ``recommendation`` (the objective's verdict, when the sweep states one). ``force`` and
    ``max_memory`` are :func:`iter_sweep`'s.
    """
    the_plan = (
        scenario
        if isinstance(scenario, SweepPlan)
        else plan(scenario, overrides=overrides, replications=replications)
    )
    runs = iter_sweep(
        the_plan,
        executor=executor,
        out=out,
        csv=csv,
        plots=plots,
        allow_version_change=allow_version_change,
        force=force,
        max_memory=max_memory,
    )
    records = {r["run_id"]: r for r in runs}
    if out is not None:  # the journal also holds the runs an earlier, interrupted sweep did
        records = read_journal(Path(out) / JOURNAL)
    return analyse(the_plan, records)


def analyse(the_plan: SweepPlan, records: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """The runs table of a sweep, with its aggregate table and recommendation in ``attrs``."""
    from esmsim.sweep.aggregate import aggregate

    runs = runs_frame(records, the_plan.points, the_plan.replications)
    table = aggregate(runs, the_plan.points, records)
    runs.attrs["aggregate"] = table
    verdict: Recommendation | None = None
    if the_plan.sweep.objective is not None:
        verdict = recommend(table, the_plan.points, the_plan.sweep.objective, the_plan.replications)
    runs.attrs["recommendation"] = verdict
    return runs
