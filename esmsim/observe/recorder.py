"""The recorder: the one place a run is observed.

The model writes typed rows (an invocation, a throttle with its reason), changes of named levels
(concurrency, environments, pollers, messages visible and in flight, stream backlog), counts of API
calls, and record outcomes (:mod:`esmsim.observe.outcomes`). It never reads anything back. Once a
simulated minute, a process of the recorder's own folds what is settled into per-minute bins and
samples the model's read-only gauges (a queue's oldest message, each shard's backlog); nothing it
does changes the run. Rows are folded in blocks and forgotten unless the run is traced, so memory
does not grow with the length of the run.

:meth:`Recorder.close` reduces everything to an :class:`Observed`: plain arrays and totals, from
which :mod:`esmsim.observe.summary`, :mod:`~esmsim.observe.timeseries` and
:mod:`~esmsim.observe.resources` build the tables, with no model object in sight.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from esmsim import histogram
from esmsim.cost import billed_seconds
from esmsim.events import COLD_KINDS, PROVISIONED_KINDS, ThrottleReason
from esmsim.observe.levels import BinnedLevel, BinnedMax, BinnedSum, LevelStats, bin_edges, bin_index
from esmsim.observe.outcomes import EXACT_LATENCY_LIMIT, Consumer, Outcomes, OutcomeTotals

#: CloudWatch's metric period.
BIN_S = 60.0
#: How often the recorder folds what is settled (a divisor of BIN_S): memory holds about this much
#: unfolded, plus the layout's horizon.
FOLD_EVERY_S = 10.0
#: Invocation and throttle rows folded once this many wait.
FOLD_ROWS = 1 << 14

#: Columns of an invocation row, in the order :meth:`Recorder.invocation` writes them.
INVOCATION_FIELDS = (
    "start_s",
    "end_s",
    "function",
    "mapping",
    "records",
    "bytes",
    "outcome",
    "environment",
    "init_s",
    "run_s",
    "iterator_age_s",
    "shard",
    "lane",
    "memory_mb",
)
(
    _START,
    _END,
    _FUNCTION,
    _MAPPING,
    _RECORDS,
    _BYTES,
    _OUTCOME,
    _ENV,
    _INIT,
    _RUN,
    _AGE,
    _SHARD,
    _LANE,
    _MEMORY,
) = range(len(INVOCATION_FIELDS))
#: Columns of a throttle row.
THROTTLE_FIELDS = ("time_s", "function", "mapping", "reason")

#: Per-minute invocation statistics kept per mapping.
MAPPING_SERIES = ("Invocations", "Errors", "DurationSum", "RecordsSum", "ColdStarts", "Throttles")


@dataclass(frozen=True)
class Layout:
    """What a run is made of, as the recorder names it."""

    functions: tuple[str, ...]
    mappings: tuple[str, ...]  # labels, ``mappings[0]: source -> function``
    mapping_function: tuple[int, ...]  # the function each mapping invokes
    consumers: tuple[Consumer, ...]
    duration_s: float
    warmup_s: float
    billing_granularity_ms: float
    #: How late the model may write a level change (see :mod:`esmsim.observe.levels`).
    horizon_s: float = 60.0


@dataclass
class Observed:
    """A finished run reduced to arrays and totals (no model objects)."""

    layout: Layout
    edges: np.ndarray
    outcomes: OutcomeTotals
    levels: dict[str, LevelStats]
    concurrency_by_mapping: list[LevelStats]
    concurrency_by_function: list[LevelStats]
    mapping_series: dict[str, np.ndarray]  # name -> (mappings, minutes)
    mapping_age_max: np.ndarray  # (mappings, minutes), NaN where no stream invocation started
    invocations: int
    errors: int
    cold_starts: int
    provisioned_invocations: int
    records_invoked: int
    run_s_sum: float
    duration_histogram: np.ndarray
    durations: np.ndarray | None  # every invocation's run_s, or None beyond the exact limit
    age_sum: float
    age_count: int
    age_max: float
    function_totals: dict[str, np.ndarray]  # name -> per function
    mapping_totals: dict[str, np.ndarray]  # name -> per mapping
    throttles_by_reason: dict[str, int]  # AWS reason name -> count
    #: Throttles per mapping, reason (a ThrottleReason's value) and minute: (mappings, reasons, minutes).
    mapping_throttle_reasons: np.ndarray
    counters: dict[tuple[str, str], np.ndarray]  # (name, owner) -> per minute
    counter_totals: dict[tuple[str, str], float]
    maxima: dict[tuple[str, str], np.ndarray]  # (name, owner) -> per-minute maximum (NaN: none)
    gauges: dict[tuple[str, str], np.ndarray]  # (name, owner) -> samples at each minute's end
    totals: dict[str, float]  # named run totals written by the model
    tallies: dict[str, np.ndarray]  # named arrays of counts written by the model
    late_level_changes: int
    invocation_table: dict[str, np.ndarray] | None = field(default=None, repr=False)
    throttle_table: dict[str, np.ndarray] | None = field(default=None, repr=False)


class Recorder:
    """Observes one run (see the module docstring)."""

    def __init__(self, layout: Layout, *, trace: bool = False) -> None:
        self.layout = layout
        self.trace = trace
        edges = bin_edges(layout.duration_s, BIN_S)
        self.edges = edges
        self.nb = len(edges) - 1
        warmup = layout.warmup_s
        self.outcomes = Outcomes(list(layout.consumers), edges, warmup, trace=trace)
        nm, nf = len(layout.mappings), len(layout.functions)
        # Rows written flat (INVOCATION_FIELDS, THROTTLE_FIELDS after each other), not as tuples:
        # thousands of tuples alive until a fold cost more to convert and free than to write.
        self._rows: array[float] = array("d")
        self._throttles: array[float] = array("d")
        self._fold_at = FOLD_ROWS * len(INVOCATION_FIELDS)
        self._series = {name: np.zeros((nm, self.nb)) for name in MAPPING_SERIES}
        self._age_max = np.full((nm, self.nb), -np.inf)
        self.concurrency = BinnedLevel(edges, warmup)
        self._by_mapping = [BinnedLevel(edges, warmup) for _ in range(nm)]
        self._by_function = [BinnedLevel(edges, warmup) for _ in range(nf)]
        self._counts = dict.fromkeys(("invocations", "errors", "cold", "provisioned", "records"), 0)
        self._run_s_sum = 0.0
        self._duration_hist = np.zeros(histogram.BUCKETS, dtype=np.int64)
        self._durations: list[np.ndarray] | None = []  # every run_s, while there are few enough
        self._age = [0.0, 0, -math.inf]  # sum, count, max
        fn_names = ("invocations", "errors", "cold_starts", "provisioned_invocations", "throttles")
        # GB-seconds billed: each invocation's billed duration times the memory it ran with.
        billed = (
            "billed_gb_s",
            "billed_init_gb_s",
            "billed_provisioned_gb_s",
            "billed_provisioned_init_gb_s",
        )
        self._fn_totals = {name: np.zeros(nf) for name in (*fn_names, *billed)}
        self._map_totals = {name: np.zeros(nm) for name in fn_names}
        self._reasons = np.zeros(len(ThrottleReason) + 1, dtype=np.int64)
        self._mapping_reasons = np.zeros((nm, len(ThrottleReason) + 1, self.nb), dtype=np.int64)
        self._levels: dict[str, BinnedLevel] = {}
        self._counters: dict[tuple[str, str], BinnedSum] = {}
        self._maxima: dict[tuple[str, str], BinnedMax] = {}
        self._gauges: dict[tuple[str, str], tuple[Callable[[float], Any], list[Any]]] = {}
        self.totals: dict[str, float] = {}
        self._tallies: dict[str, np.ndarray] = {}
        self._inv_trace: list[np.ndarray] | None = [] if trace else None
        self._thr_trace: list[np.ndarray] | None = [] if trace else None
        self._sampled = 0

    # ------------------------------------------------------------------ what the model writes
    def invocation(
        self,
        start_s: float,
        end_s: float,
        function: int,
        mapping: int,
        records: int,
        nbytes: float,
        outcome: int,
        environment: int,
        init_s: float,
        run_s: float,
        iterator_age_s: float,
        shard: int,
        lane: int,
        memory_mb: float,
    ) -> None:
        """An invocation started at ``start_s`` (its whole course is decided when it starts).

        ``memory_mb`` is the function's memory it runs with: it is billed at it (a live change of the
        memory applies to the invocations that start after it).
        """
        self._rows.extend(
            (
                start_s,
                end_s,
                function,
                mapping,
                records,
                nbytes,
                outcome,
                environment,
                init_s,
                run_s,
                iterator_age_s,
                shard,
                lane,
                memory_mb,
            )
        )
        if len(self._rows) >= self._fold_at:
            self._fold_rows()

    def throttle(self, time_s: float, function: int, mapping: int, reason: int) -> None:
        """An invoke was answered with 429, for ``reason`` (a :class:`~esmsim.events.ThrottleReason`)."""
        self._throttles.extend((time_s, function, mapping, reason))

    def level(self, name: str) -> BinnedLevel:
        """The level called ``name`` (created on first use)."""
        level = self._levels.get(name)
        if level is None:
            level = self._levels[name] = BinnedLevel(self.edges, self.layout.warmup_s)
        return level

    def share_level(self, name: str, same_as: str) -> None:
        """Make ``name`` the very same level as ``same_as`` (e.g. the backlog when only queues exist)."""
        self._levels[name] = self.level(same_as)

    def counter(self, name: str, owner: str = "") -> BinnedSum:
        """A per-minute sum (API calls, messages received ...), created on first use."""
        key = (name, owner)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = BinnedSum(self.edges)
        return counter

    def maximum(self, name: str, owner: str = "") -> BinnedMax:
        """A per-minute maximum (GetRecords.IteratorAgeMilliseconds ...), created on first use."""
        key = (name, owner)
        found = self._maxima.get(key)
        if found is None:
            found = self._maxima[key] = BinnedMax(self.edges)
        return found

    def gauge(self, name: str, owner: str, read: Callable[[float], Any]) -> None:
        """Sample ``read(now)`` at the end of every minute; it must only read the model."""
        self._gauges[(name, owner)] = (read, [])

    def add_total(self, name: str, value: float) -> None:
        """Add to a named run total (bytes delivered, batches discarded ...)."""
        self.totals[name] = self.totals.get(name, 0.0) + value

    def tally(self, name: str, size: int) -> np.ndarray:
        """A named array of counts the model adds to in place (records per shard ...)."""
        array = self._tallies.get(name)
        if array is None:
            array = self._tallies[name] = np.zeros(size, dtype=np.int64)
        return array

    # ------------------------------------------------------------------ the once-a-minute process
    def start(self, env: simpy.Environment) -> None:
        """Start folding what is settled every few seconds, and sampling every simulated minute."""
        env.process(self._every_few_seconds(env))

    def _every_few_seconds(self, env: simpy.Environment) -> Generator[simpy.Event, Any, None]:
        ticks_per_bin = round(BIN_S / FOLD_EVERY_S)
        tick = 0
        while True:
            tick += 1
            yield env.timeout(tick * FOLD_EVERY_S - env.now)  # on the grid: minute ends exactly
            now = env.now
            if tick % ticks_per_bin == 0:
                self._sample(now)
            self._fold_rows()
            for counter in self._counters.values():
                counter.fold()
            horizon = now - self.layout.horizon_s
            for level in self._all_levels():
                level.fold(horizon)
            self.outcomes.close_minutes(now)

    def _sample(self, now: float) -> None:
        for read, samples in self._gauges.values():
            samples.append(read(now))
        self._sampled += 1

    def _all_levels(self) -> list[BinnedLevel]:
        unique = {id(level): level for level in self._levels.values()}
        return [self.concurrency, *self._by_mapping, *self._by_function, *unique.values()]

    # ------------------------------------------------------------------ folding rows
    def _fold_rows(self) -> None:
        self._fold_throttles()
        if not self._rows:
            return
        inv = np.array(self._rows, dtype=float).reshape(-1, len(INVOCATION_FIELDS))
        del self._rows[:]
        start, end = inv[:, _START], inv[:, _END]
        mapping = inv[:, _MAPPING].astype(np.int64)
        function = inv[:, _FUNCTION].astype(np.int64)
        outcome = inv[:, _OUTCOME]
        env_kind = inv[:, _ENV]
        records = inv[:, _RECORDS]
        run_s = inv[:, _RUN]
        init_s = inv[:, _INIT]
        errors = outcome >= 2
        cold = np.isin(env_kind, COLD_KINDS)
        provisioned = np.isin(env_kind, PROVISIONED_KINDS)
        nb, nm, nf = self.nb, len(self.layout.mappings), len(self.layout.functions)
        minute = bin_index(start, self.edges)
        key = mapping * nb + minute
        size = nm * nb

        def per_minute(weights: np.ndarray | None) -> np.ndarray:
            return np.bincount(key, weights=weights, minlength=size).reshape(nm, nb)

        series = self._series
        series["Invocations"] += per_minute(None)
        series["Errors"] += per_minute(errors.astype(float))
        series["DurationSum"] += per_minute(run_s * 1000.0)
        series["RecordsSum"] += per_minute(records)
        series["ColdStarts"] += per_minute(cold.astype(float))
        ages = inv[:, _AGE]
        streaming = ~np.isnan(ages)
        if streaming.any():
            np.maximum.at(self._age_max, (mapping[streaming], minute[streaming]), ages[streaming] * 1000.0)
            a = ages[streaming]
            self._age[0] += float(a.sum())
            self._age[1] += int(a.size)
            self._age[2] = max(self._age[2], float(a.max()))
        # Concurrency: +1 at each start, -1 at each end (ends lie ahead: levels fold later).
        self.concurrency.add_many(start, 1.0)
        self.concurrency.add_many(end, -1.0)
        for levels, owner in ((self._by_mapping, mapping), (self._by_function, function)):
            for i in np.unique(owner).tolist():
                mine = owner == i
                levels[i].add_many(start[mine], 1.0)
                levels[i].add_many(end[mine], -1.0)
        counts = self._counts
        counts["invocations"] += inv.shape[0]
        counts["errors"] += int(errors.sum())
        counts["cold"] += int(cold.sum())
        counts["provisioned"] += int(provisioned.sum())
        counts["records"] += int(records.sum())
        self._run_s_sum += float(run_s.sum())
        self._duration_hist += histogram.histogram(run_s)
        if self._durations is not None:
            if self._counts["invocations"] <= EXACT_LATENCY_LIMIT:
                self._durations.append(run_s.copy())
            else:
                self._durations = None
        gran = self.layout.billing_granularity_ms
        gb = inv[:, _MEMORY] / 1024.0
        billed = billed_seconds(run_s, gran) * gb
        billed_init = billed_seconds(run_s + init_s, gran) * gb
        fn = self._fn_totals
        fn["invocations"] += np.bincount(function, minlength=nf)
        fn["errors"] += np.bincount(function, weights=errors, minlength=nf)
        fn["cold_starts"] += np.bincount(function, weights=cold, minlength=nf)
        fn["provisioned_invocations"] += np.bincount(function, weights=provisioned, minlength=nf)
        on_demand = ~provisioned
        fn["billed_gb_s"] += np.bincount(function, weights=billed * on_demand, minlength=nf)
        fn["billed_init_gb_s"] += np.bincount(function, weights=billed_init * on_demand, minlength=nf)
        fn["billed_provisioned_gb_s"] += np.bincount(function, weights=billed * provisioned, minlength=nf)
        fn["billed_provisioned_init_gb_s"] += np.bincount(
            function, weights=billed_init * provisioned, minlength=nf
        )
        mt = self._map_totals
        mt["invocations"] += np.bincount(mapping, minlength=nm)
        mt["errors"] += np.bincount(mapping, weights=errors, minlength=nm)
        mt["cold_starts"] += np.bincount(mapping, weights=cold, minlength=nm)
        mt["provisioned_invocations"] += np.bincount(mapping, weights=provisioned, minlength=nm)
        if self._inv_trace is not None:
            self._inv_trace.append(inv)

    def _fold_throttles(self) -> None:
        if not self._throttles:
            return
        thr = np.array(self._throttles, dtype=float).reshape(-1, len(THROTTLE_FIELDS))
        del self._throttles[:]
        mapping = thr[:, 2].astype(np.int64)
        function = thr[:, 1].astype(np.int64)
        nb, nm, nf = self.nb, len(self.layout.mappings), len(self.layout.functions)
        key = mapping * nb + bin_index(thr[:, 0], self.edges)
        self._series["Throttles"] += np.bincount(key, minlength=nm * nb).reshape(nm, nb)
        self._fn_totals["throttles"] += np.bincount(function, minlength=nf)
        self._map_totals["throttles"] += np.bincount(mapping, minlength=nm)
        reason = thr[:, 3].astype(np.int64)
        self._reasons += np.bincount(reason, minlength=self._reasons.size)
        nr = self._reasons.size
        by = (mapping * nr + reason) * nb + bin_index(thr[:, 0], self.edges)
        self._mapping_reasons += np.bincount(by, minlength=nm * nr * nb).reshape(nm, nr, nb)
        if self._thr_trace is not None:
            self._thr_trace.append(thr)

    # ------------------------------------------------------------------ the end
    def close(self) -> Observed:
        """Fold everything: the run's observations, with nothing left pending."""
        end = self.layout.duration_s
        # SimPy stops before events at the end: the last minute's sample is taken here.
        while self._sampled < self.nb:
            self._sample(end)
        self._fold_rows()
        levels = {name: level.stats() for name, level in self._levels.items()}
        levels["concurrency"] = self.concurrency.stats()
        by_mapping = [level.stats() for level in self._by_mapping]
        by_function = [level.stats() for level in self._by_function]
        late = sum(level.late for level in self._all_levels())
        outcomes = self.outcomes.close()
        age_max = np.where(np.isfinite(self._age_max), self._age_max, np.nan)
        reasons = {
            reason.aws_name: int(self._reasons[int(reason)])
            for reason in ThrottleReason
            if self._reasons[int(reason)]
        }
        gauges = {}
        for key, (_, samples) in self._gauges.items():
            gauges[key] = np.asarray(samples[: self.nb], dtype=float)
        return Observed(
            layout=self.layout,
            edges=self.edges,
            outcomes=outcomes,
            levels=levels,
            concurrency_by_mapping=by_mapping,
            concurrency_by_function=by_function,
            mapping_series=self._series,
            mapping_age_max=age_max,
            invocations=self._counts["invocations"],
            errors=self._counts["errors"],
            cold_starts=self._counts["cold"],
            provisioned_invocations=self._counts["provisioned"],
            records_invoked=self._counts["records"],
            run_s_sum=self._run_s_sum,
            duration_histogram=self._duration_hist,
            durations=(
                None
                if self._durations is None
                else (np.concatenate(self._durations) if self._durations else np.empty(0))
            ),
            age_sum=float(self._age[0]),
            age_count=int(self._age[1]),
            age_max=float(self._age[2]) if self._age[1] else math.nan,
            function_totals=self._fn_totals,
            mapping_totals=self._map_totals,
            throttles_by_reason=reasons,
            mapping_throttle_reasons=self._mapping_reasons,
            counters={key: c.array() for key, c in self._counters.items()},
            counter_totals={key: c.total for key, c in self._counters.items()},
            maxima={key: m.array() for key, m in self._maxima.items()},
            gauges=gauges,
            totals=dict(self.totals),
            tallies={name: array.copy() for name, array in self._tallies.items()},
            late_level_changes=late,
            invocation_table=self._table(self._inv_trace, len(INVOCATION_FIELDS), INVOCATION_FIELDS),
            throttle_table=self._table(self._thr_trace, len(THROTTLE_FIELDS), THROTTLE_FIELDS),
        )

    @staticmethod
    def _table(
        parts: list[np.ndarray] | None, width: int, names: tuple[str, ...]
    ) -> dict[str, np.ndarray] | None:
        if parts is None:
            return None
        rows = np.concatenate(parts) if parts else np.empty((0, width))
        return {name: rows[:, i] for i, name in enumerate(names)}
