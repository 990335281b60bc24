"""The result of one run, with everything needed to reproduce it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from esmsim.scenario.scenario import Scenario


def scenario_hash(scenario: Scenario) -> str:
    """A stable digest of the resolved scenario (every default filled in)."""
    text = json.dumps(scenario.model_dump(mode="json", by_alias=True), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class RunResult:
    """One simulated run.

    The four tables are empty for a run simulated with ``tables=False`` (as in sweeps).

    Attributes:
        summary: flat dict of the run's numbers (README.md's summary table lists the contract keys).
        timeseries: one row per simulated minute, columns named as CloudWatch names them.
        resources: per function, per mapping and per shard: invocations, errors, throttles, cold
            starts, concurrency, limits, iterator age; for shards records, backlog and read throttles.
        scenario: the resolved scenario that ran (every default filled in).
        seed: the seed of the run.
        replication: the replication index (random streams are per seed and replication).
        version: esmsim's version.
        wall_time_s: how long the simulation took on the wall clock.
        latency_histogram: counts of record latencies in ``esmsim.histogram``'s shared 1 % buckets,
            which add up across runs.
        warnings: the scenario's warnings (AWS recommendations it does not follow).
        mapping_timeseries: one row per mapping and minute (``minute``, ``time_s``, ``mapping``,
            Invocations, Errors, Throttles, Duration, ConcurrentExecutions, IteratorAge, BatchSize,
            ShardBacklogMax): ``timeseries`` split by event source mapping.
        shard_timeseries: one row per stream mapping, shard and minute (``Backlog`` at the
            minute's end, ``ReadProvisionedThroughputExceeded``); empty without streams.
        latency_method: how the summary's latency percentiles were computed (exact over every
            record, or from the 1 % histogram once a run has too many records to keep).
        invocations: a traced run's invocations, one row each (``start_s``, ``end_s``,
            ``function``, ``mapping``, ``records``, ``bytes``, ``outcome``, ``environment``,
            ``cold_start``, ``init_s``, ``run_s``, ``iterator_age_s``, ``shard``, ``lane``); empty
            unless ``simulate(..., trace=True)``.
        throttles: a traced run's throttled invokes (``time_s``, ``function``, ``mapping``,
            ``reason`` as AWS names it); empty unless traced.
        limits: what limited each mapping and trigger: ``{label: {"binding": {limit: share of
            minutes}, "advice": one line}}`` (:mod:`esmsim.observe.explain`).
        throttle_reasons: throttles by the reason AWS gives
            (``ReservedFunctionConcurrentInvocationLimitExceeded``,
            ``ConcurrentInvocationLimitExceeded``, ``FunctionInvocationRateLimitExceeded``,
            ``ExecutionEnvironmentScalingRateExceeded``), traced or not.
        traced: whether the run kept its event tables (``simulate(..., trace=True)``).
        diagnostics: facts about the simulation itself: ``late_level_changes`` counts level changes
            noticed after their minute was folded (exact means, maxima bounded from above).
        records: a traced run's records, one row per record and consumer (``source``,
            ``consumer``, ``id``, ``sent_s``, ``done_s``, ``state``, ``receives``); empty unless
            traced.
    """

    summary: dict[str, Any]
    timeseries: pd.DataFrame
    resources: pd.DataFrame
    scenario: Scenario
    seed: int
    replication: int
    version: str
    wall_time_s: float
    latency_histogram: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    warnings: tuple[str, ...] = field(default=())
    mapping_timeseries: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)
    shard_timeseries: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)
    latency_method: str = "exact"
    throttle_reasons: dict[str, int] = field(default_factory=dict)
    limits: dict[str, dict[str, Any]] = field(default_factory=dict)
    traced: bool = False
    diagnostics: dict[str, Any] = field(default_factory=dict)
    invocations: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)
    throttles: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)
    records: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)

    def scenario_has(self, *source_types: str) -> bool:
        """Whether the scenario has a source of one of these types (``sqs``, ``kinesis``, ``dynamodb``)."""
        return any(source.type in source_types for source in self.scenario.sources.values())

    def provenance(self) -> dict[str, Any]:
        """What identifies this run: scenario name and hash, seed, replication, version, wall time."""
        return {
            "scenario": self.scenario.name,
            "scenario_hash": scenario_hash(self.scenario),
            "seed": self.seed,
            "replication": self.replication,
            "esmsim_version": self.version,
            "wall_time_s": self.wall_time_s,
        }

    def changes(self) -> list[dict[str, Any]]:
        """The scenario's live changes: when made, when they took effect, what they set."""
        delay = self.scenario.update_delay
        return [
            {"at_s": change.at, "effective_s": change.at + delay, "set": dict(change.set)}
            for change in self.scenario.changes
        ]

    def to_dict(self) -> dict[str, Any]:
        """The summary with its provenance and the resolved scenario, ready for JSON."""
        return {
            "summary": self.summary,
            "latency_method": self.latency_method,
            "throttle_reasons": self.throttle_reasons,
            "limits": self.limits,
            "changes": self.changes(),
            "diagnostics": self.diagnostics,
            "provenance": self.provenance(),
            "warnings": list(self.warnings),
            "scenario": self.scenario.model_dump(mode="json", by_alias=True),
        }
