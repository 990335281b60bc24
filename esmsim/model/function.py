"""A Lambda function: concurrency, execution environments, durations and failures.

An invocation first acquires concurrency (never waiting: a limit answers 429 at once), then an
execution environment: a free provisioned one, else the most recently used warm one, else a new one
(a cold start, which the scaling-rate bucket must allow). Its outcome and duration are decided when
it starts, as values (design rule 4); the caller spends one SimPy timeout on it.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from esmsim.dists import Sampler, UniformSource
from esmsim.model.concurrency import ACCOUNT_LIMIT, RESERVED_LIMIT, SCALING_RATE, AccountPool
from esmsim.model.records import Ids, RecordTable
from esmsim.observe import Level
from esmsim.rng import Streams
from esmsim.scenario.functions import Function

# Invocation outcomes.
SUCCESS = 0  # every record processed
PARTIAL = 1  # the handler reported batch item failures: a successful invocation to Lambda
ERROR = 2  # the handler threw: a function error, the whole batch fails
TIMEOUT = 3  # the handler ran past the function timeout: a function error
OUTCOME_NAMES = ("success", "partial", "error", "timeout")

# Execution environment an invocation ran in.
WARM = 0
COLD = 1
PROVISIONED = 2


class LambdaFunction:
    """State of one function: busy and idle environments, concurrency in use, random streams."""

    def __init__(self, name: str, index: int, spec: Function, pool: AccountPool, streams: Streams) -> None:
        self.name = name
        self.index = index
        self.spec = spec
        self.pool = pool
        self.reserved = spec.reserved_concurrency
        pc = spec.provisioned_concurrency
        self.pc_free = pc
        # On-demand environments may not use the slots provisioned concurrency holds.
        self.on_demand_cap = None if self.reserved is None else self.reserved - pc
        self.on_demand_in_use = 0
        self.idle: deque[float] = deque()  # idle-since times of warm on-demand environments, oldest first
        self.bucket = pool.function_bucket()
        # Concurrency itself is read off the invocation log afterwards; environments live longer.
        self.environments = Level()
        if pc:
            self.environments.add(0.0, pc)
        self.keep_alive_s = spec.keep_alive
        self.timeout_s = spec.timeout
        self.per_record_s = spec.per_record
        self.cpu_factor = spec.cpu_factor
        self.durations = Sampler(spec.duration, streams.get("duration", name))
        self.inits = Sampler(spec.cold_start, streams.get("init", name))
        self.uniforms = UniformSource(streams.get("errors", name))
        self.record_rng = streams.get("record_errors", name)
        self.error_rate = spec.errors.invocation_error_rate
        self.record_error_rate = spec.errors.record_error_rate
        self.poison_rate = spec.errors.poison_record_rate
        self.incidents = tuple((i.start, i.end, i) for i in spec.incidents)

    # ------------------------------------------------------------------ concurrency and environments
    def acquire(self, now: float) -> int:
        """Start an invocation: the environment kind (>= 0), or minus a throttle reason."""
        if self.pc_free:
            self.pc_free -= 1
            return PROVISIONED
        pool = self.pool
        if self.on_demand_cap is not None:
            if self.on_demand_in_use >= self.on_demand_cap:
                return -RESERVED_LIMIT
        elif pool.unreserved_in_use >= pool.unreserved_limit:
            return -ACCOUNT_LIMIT
        idle = self.idle
        keep = self.keep_alive_s
        while idle and idle[0] + keep <= now:
            self.environments.add(idle.popleft() + keep, -1)
        if idle:
            idle.pop()
            kind = WARM
        else:
            bucket = self.bucket or pool.legacy_bucket
            if bucket is not None and not bucket.take(now):
                return -SCALING_RATE
            self.environments.add(now, 1)
            kind = COLD
        self.on_demand_in_use += 1
        if self.on_demand_cap is None:
            pool.unreserved_in_use += 1
        return kind

    def release(self, now: float, kind: int) -> None:
        """End an invocation: its environment goes back to the warm pool."""
        if kind == PROVISIONED:
            self.pc_free += 1
            return
        self.on_demand_in_use -= 1
        if self.on_demand_cap is None:
            self.pool.unreserved_in_use -= 1
        self.idle.append(now)

    def finish(self, end: float) -> None:
        """Retire environments whose idle lifetime ended before the end of the run."""
        keep = self.keep_alive_s
        while self.idle and self.idle[0] + keep <= end:
            self.environments.add(self.idle.popleft() + keep, -1)

    # ------------------------------------------------------------------ what an invocation does
    def conditions(self, now: float) -> tuple[float, float, float]:
        """Duration multiplier, invocation error rate and record error rate in effect at ``now``."""
        multiplier, error_rate, record_rate = 1.0, self.error_rate, self.record_error_rate
        for start, end, incident in self.incidents:
            if start <= now < end:
                multiplier *= incident.duration_multiplier
                if incident.invocation_error_rate is not None:
                    error_rate = incident.invocation_error_rate
                if incident.record_error_rate is not None:
                    record_rate = incident.record_error_rate
        return multiplier, error_rate, record_rate

    def plan(
        self, now: float, kind: int, n: int, ids: Ids, records: RecordTable, item_failures: bool
    ) -> tuple[float, float, int, np.ndarray | None]:
        """Decide an invocation: ``(init_s, run_s, outcome, failed)``.

        ``failed`` is a boolean mask over the batch for a PARTIAL outcome (records reported in
        ``batchItemFailures``), else None. Poison records fail every time; transient record errors
        and invocation errors are drawn from the function's own streams.
        """
        init_s = self.inits.next() if kind == COLD else 0.0
        if self.incidents:
            multiplier, error_rate, record_rate = self.conditions(now)
        else:
            multiplier, error_rate, record_rate = 1.0, self.error_rate, self.record_error_rate
        run_s = (self.durations.next() + self.per_record_s * n) * self.cpu_factor * multiplier
        if run_s > self.timeout_s:
            return init_s, self.timeout_s, TIMEOUT, None
        if error_rate and self.uniforms.next() < error_rate:
            return init_s, run_s, ERROR, None
        failed = None
        if self.poison_rate and records.draw is not None:
            failed = records.draw[ids] < self.poison_rate
        if record_rate:
            transient = self.record_rng.random(n) < record_rate
            failed = transient if failed is None else failed | transient
        if failed is not None and failed.any():
            return (init_s, run_s, PARTIAL, failed) if item_failures else (init_s, run_s, ERROR, None)
        return init_s, run_s, SUCCESS, None
