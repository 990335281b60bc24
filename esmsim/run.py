"""``simulate(scenario, seed)``: one run of a scenario."""

from __future__ import annotations

import time

from esmsim._version import __version__
from esmsim.metrics import observe
from esmsim.model.build import build
from esmsim.result import RunResult
from esmsim.rng import Streams
from esmsim.scenario.rules import check
from esmsim.scenario.scenario import Scenario


def simulate(
    scenario: Scenario, seed: int | None = None, replication: int = 0, *, tables: bool = True
) -> RunResult:
    """Run ``scenario`` once.

    Args:
        scenario: a scenario (``esmsim.load_scenario``, ``Scenario.model_validate`` or a
            ``model_copy`` of one); it is validated again, so an invalid copy raises
            ``pydantic.ValidationError`` (wrong types) or ``ScenarioError`` (AWS rules) naming the field.
        seed: overrides the scenario's seed.
        replication: which replication of the seed; each has independent random streams.
        tables: build the time series and resource tables (False: summary and latency histogram
            only, which is all a sweep keeps).

    Returns:
        The run's summary, time series and provenance. Same scenario, seed and replication give
        identical results on any machine.
    """
    # Validated again: a copy made with ``model_copy(update=...)`` skips pydantic's validation and
    # the AWS rules, and a wrong value must fail here with its field name, not deep in the model.
    scenario = Scenario.model_validate(scenario.model_dump(mode="json", by_alias=True, warnings=False))
    seed = scenario.seed if seed is None else seed
    started = time.perf_counter()
    world = build(scenario, Streams(seed, replication))
    world.start()
    world.run()
    observed = observe(world, tables=tables)
    warnings = tuple(issue.format() for issue in check(scenario) if issue.severity == "warning")
    return RunResult(
        summary=observed.summary,
        timeseries=observed.timeseries,
        resources=observed.resources,
        scenario=scenario,
        seed=seed,
        replication=replication,
        version=__version__,
        wall_time_s=time.perf_counter() - started,
        latency_histogram=observed.latency_histogram,
        warnings=warnings,
        mapping_timeseries=observed.mapping_timeseries,
        shard_timeseries=observed.shard_timeseries,
    )
