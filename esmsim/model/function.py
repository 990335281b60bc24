"""A Lambda function: how long an invocation runs and how it ends.

Its outcome and duration are decided when the invocation starts, as values (design rule 4): the
caller spends one SimPy timeout on it. Admission (concurrency, the invoke rate, environments) is
:class:`esmsim.model.lambda_env.Environments`'s; the two meet in :mod:`esmsim.model.invoke`.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import simpy

from esmsim.dists import Sampler, UniformSource
from esmsim.events import COLD_KINDS, Outcome
from esmsim.model.concurrency import AccountPool
from esmsim.model.lambda_env import Environments
from esmsim.observe.levels import BinnedLevel
from esmsim.rng import Streams
from esmsim.scenario.functions import Function

_SUCCESS, _PARTIAL, _ERROR, _TIMEOUT = (int(o) for o in Outcome)


class LambdaFunction:
    """One function: its environments and the random streams that decide its invocations."""

    def __init__(
        self, name: str, index: int, spec: Function, pool: AccountPool, streams: Streams, level: BinnedLevel
    ) -> None:
        self.name = name
        self.index = index
        self.spec = spec
        self.environments = Environments(spec, pool, level)
        self.timeout_s = spec.timeout
        self.per_record_s = spec.per_record
        self.cpu_factor = spec.cpu_factor
        #: The memory invocations run with (each is billed at the memory it started with).
        self.memory_mb = spec.memory_mb
        account = pool.account
        #: New provisioned environments Lambda allocates per second: the function scaling rate.
        self.allocation_rate = account.function_scale_environments / account.function_scale_period
        #: Counts provisioned concurrency configurations: one still being allocated when a newer one
        #: comes is abandoned.
        self.allocations = 0
        self.durations = Sampler(spec.duration, streams.get("duration", name))
        self.inits = Sampler(spec.cold_start, streams.get("init", name))
        self.uniforms = UniformSource(streams.get("errors", name))
        self.record_rng = streams.get("record_errors", name)
        self.error_rate = spec.errors.invocation_error_rate
        self.record_error_rate = spec.errors.record_error_rate
        self.poison_rate = spec.errors.poison_record_rate
        self.incidents = tuple((i.start, i.end, i) for i in spec.incidents)

    def apply(self, spec: Function, env: simpy.Environment) -> None:
        """A live change (UpdateFunctionConfiguration, code, PutFunctionConcurrency, provisioned concurrency).

        Reserved and provisioned concurrency, memory, timeout, handler duration, cold start, errors;
        the random streams go on where they were. A change of anything but the reservation, the
        provisioned concurrency and the asynchronous invocation settings is a deploy: the next
        invocations start in new environments.
        """
        now = env.now
        old = self.spec
        unchanged = {
            "reserved_concurrency": old.reserved_concurrency,
            "provisioned_concurrency": old.provisioned_concurrency,
            "async_": old.async_,
        }
        deployed = spec.model_copy(update=unchanged) != old
        if spec.cold_start != old.cold_start:
            self.inits = Sampler(spec.cold_start, self.inits.rng)
        self.spec = spec
        self.environments.reserve(spec)
        if spec.provisioned_concurrency != old.provisioned_concurrency:
            self.provision(env, spec.provisioned_concurrency)
        if deployed:
            self.environments.redeploy(now)
        self.memory_mb = spec.memory_mb
        self.cpu_factor = spec.cpu_factor
        self.timeout_s = spec.timeout
        self.per_record_s = spec.per_record
        self.durations = Sampler(spec.duration, self.durations.rng)
        self.error_rate = spec.errors.invocation_error_rate
        self.record_error_rate = spec.errors.record_error_rate
        self.poison_rate = spec.errors.poison_record_rate

    def provision(self, env: simpy.Environment, target: int) -> None:
        """A new provisioned concurrency configuration (docs/model.md §14).

        Lower: the environments beyond it go now (busy ones as they finish). Higher: Lambda
        prepares for ``provisioned_allocation``, then allocates the new environments at the
        function scaling rate; none of them serves an invocation before all are allocated, and
        those allocated before go on serving. A configuration still being allocated is replaced.
        """
        self.allocations += 1
        environments = self.environments
        if target < environments.pc:
            environments.deprovision(environments.pc - target, env.now)
        elif target > environments.pc:
            more = target - environments.pc
            delay = self.spec.provisioned_allocation + more / self.allocation_rate
            env.process(self._allocate(env, self.allocations, more, delay))

    def _allocate(
        self, env: simpy.Environment, allocation: int, more: int, delay: float
    ) -> Generator[simpy.Event, Any, None]:
        """Add ``more`` provisioned environments ``delay`` from now, unless a newer configuration came."""
        yield env.timeout(delay)
        if allocation == self.allocations:
            self.environments.provision(more, env.now)

    def reaper(self, env: simpy.Environment, every_s: float = 60.0) -> Generator[simpy.Event, Any, None]:
        """Retire expired idle environments at least every ``every_s`` (see lambda_env)."""
        while True:
            yield env.timeout(every_s)
            self.environments.reap(env.now)

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
        self, now: float, kind: int, n: int, draws: np.ndarray | None, item_failures: bool
    ) -> tuple[float, float, int, np.ndarray | None]:
        """Decide an invocation of ``n`` records: ``(init_s, run_s, outcome, failed)``.

        ``draws`` are the records' poison draws (a record is poison for this function when its
        draw is below the poison rate). ``failed`` is a boolean mask over the batch for a PARTIAL
        outcome (the records reported in ``batchItemFailures``), else None. Poison records fail
        every time; transient record errors and invocation errors come from the function's streams.
        """
        init_s = self.inits.next() if kind in COLD_KINDS else 0.0
        run_s = (self.durations.next() + self.per_record_s * n) * self.cpu_factor
        if self.incidents:
            multiplier, error_rate, record_rate = self.conditions(now)
            run_s *= multiplier
        else:  # the usual case: no multiplier, no tuple to unpack
            error_rate, record_rate = self.error_rate, self.record_error_rate
        if run_s > self.timeout_s:
            return init_s, self.timeout_s, _TIMEOUT, None
        if error_rate and self.uniforms.next() < error_rate:
            return init_s, run_s, _ERROR, None
        failed = None
        if self.poison_rate and draws is not None:
            failed = draws < self.poison_rate
        if record_rate:
            transient = self.record_rng.random(n) < record_rate
            failed = transient if failed is None else failed | transient
        if failed is not None and failed.any():
            return (init_s, run_s, _PARTIAL, failed) if item_failures else (init_s, run_s, _ERROR, None)
        return init_s, run_s, _SUCCESS, None
