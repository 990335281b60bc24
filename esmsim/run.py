"""``simulate(scenario, seed)``: one run of a scenario."""

from __future__ import annotations

import os
import time
import warnings

import pandas as pd

from esmsim._version import __version__
from esmsim.errors import EsmsimWarning
from esmsim.estimate import check
from esmsim.model.build import build
from esmsim.observe import explain, resources, summary, timeseries
from esmsim.observe import tables as event_tables
from esmsim.result import RunResult
from esmsim.rng import Streams
from esmsim.scenario.scenario import Scenario


def simulate(
    scenario: Scenario | str | os.PathLike[str],
    seed: int | None = None,
    replication: int = 0,
    *,
    tables: bool = True,
    trace: bool = False,
    force: bool = False,
    max_memory: float | None = None,
) -> RunResult:
    """Run a scenario once.

    Args:
        scenario: a scenario (``esmsim.load_scenario``, ``Scenario.model_validate``,
            ``scenario.with_changes(...)``: every Scenario is validated when it is made), or the path
            of a scenario file.
        seed: overrides the scenario's seed.
        replication: which replication of the seed; each has independent random streams.
        tables: build the time series and resource tables (False: summary and latency histogram
            only, which is all a sweep keeps).
        trace: also keep every invocation, throttle and record outcome as tables
            (``RunResult.invocations``, ``.throttles``, ``.records``); memory then grows with the
            run's length, as the tables do.
        force: run even when the estimate (:func:`esmsim.estimate.estimate`) is beyond the limits.
        max_memory: bytes the run may use at its peak, by the estimate (default: three quarters of
            the machine's memory).

    Returns:
        The run's summary, time series and provenance. Same scenario, seed and replication give
        identical results on any machine.

    Raises:
        esmsim.errors.RunError: The run is refused by its estimate (too much memory, too many events),
            or its simulated clock stopped (a loop that takes no simulated time).
    """
    if not isinstance(scenario, Scenario):
        from esmsim.scenario.loader import load_scenario

        scenario = load_scenario(scenario)
    seed = scenario.seed if seed is None else seed
    check(scenario, trace=trace, max_memory=max_memory, force=force)
    started = time.perf_counter()
    world = build(scenario, Streams(seed, replication), trace=trace)
    world.start()
    world.run()
    reached = tuple(
        f"sources.{name}.in_flight_limit: the queue reached {queue.in_flight_limit:,} messages in flight "
        f"at {queue.limit_reached_at:.6g} s; {queue.over_limit_receives:,} receives were refused or cut "
        "short (SQS's OverLimit) and the poller fleet did not grow while at the limit"
        for name, queue in world.queues.items()
        if queue.limit_reached_at == queue.limit_reached_at  # reached: not NaN
    )
    for line in reached:
        warnings.warn(line, EsmsimWarning, stacklevel=2)
    observed = world.recorder.close()
    numbers, _ = summary.summary(scenario, observed)
    empty = pd.DataFrame()
    changes = [effective_at for effective_at, _ in scenario.stages]
    return RunResult(
        summary=numbers,
        timeseries=timeseries.timeseries(scenario, observed) if tables else empty,
        resources=resources.resources(scenario, observed) if tables else empty,
        scenario=scenario,
        seed=seed,
        replication=replication,
        version=__version__,
        wall_time_s=time.perf_counter() - started,
        latency_histogram=observed.outcomes.steady_histogram,
        latency_method=summary.latency_method(observed),
        throttle_reasons=observed.throttles_by_reason,
        limits={found.name: found.as_dict() for found in explain.explain(scenario, observed)},
        traced=trace,
        diagnostics={"late_level_changes": observed.late_level_changes},
        warnings=(*(issue.format() for issue in scenario.warnings), *reached),
        mapping_timeseries=timeseries.mapping_timeseries(scenario, observed) if tables else empty,
        shard_timeseries=timeseries.shard_timeseries(scenario, observed) if tables else empty,
        invocations=event_tables.invocations(observed, changes) if trace else empty,
        throttles=event_tables.throttles(observed, changes) if trace else empty,
        records=event_tables.records(observed) if trace else empty,
    )
