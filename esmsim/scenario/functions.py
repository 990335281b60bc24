"""Schema of the account and of Lambda functions (docs/model.md §5, §6)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from esmsim.dists import ConstantDuration, DurationDist, LognormalDuration
from esmsim.scenario.base import Frozen, Int, Number, PerSecond, Seconds, WholeSeconds, aws

#: Memory at which a function has one full vCPU (docs/model.md §5).
ONE_VCPU_MB = 1769


class Account(Frozen):
    """Regional account settings: the concurrency quota and the scaling-rate model."""

    concurrency_limit: Int = Field(1000, ge=1, description="Account concurrency quota for the Region.")
    unreserved_minimum: Int = Field(
        100, ge=0, description="Concurrency that must stay unreserved (AWS keeps 100 back)."
    )
    scaling: Literal["2023", "legacy"] = Field(
        "2023",
        description=(
            "'2023': each function adds at most `function_scale_environments` new environments per "
            "`function_scale_period` (token bucket refilled continuously, November 2023 model). "
            "'legacy': an account-wide burst bucket refilled at `legacy_refill` (pre-November-2023)."
        ),
    )
    function_scale_environments: Int = Field(
        1000, ge=1, description="New execution environments a function may add per period (2023 model)."
    )
    function_scale_period: Seconds = Field(
        10.0, gt=0, description="That period; the bucket refills continuously."
    )
    legacy_burst: Int = Field(
        3000, ge=1, description="Initial burst (3,000 in us-east-1, us-west-2, eu-west-1)."
    )
    legacy_refill: PerSecond = Field(500 / 60, gt=0, description="Legacy refill, 500 environments a minute.")
    invocation_rate_limit: PerSecond | None = Field(
        None,
        gt=0,
        description=(
            "Invocation requests the account accepts per second (any 1 s window), all functions together; "
            "beyond it an invoke is throttled (FunctionInvocationRateLimitExceeded). Null: AWS's quota, "
            "10 x concurrency_limit."
        ),
    )
    region: str = Field(
        "us-east-1", description="Informational; prices are us-east-1 unless `pricing` says otherwise."
    )

    @field_validator("scaling", mode="before")
    @classmethod
    def _year_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @property
    def invocation_rate(self) -> float:
        """Invocation requests per second the account accepts (AWS: 10 x the concurrency quota)."""
        if self.invocation_rate_limit is not None:
            return self.invocation_rate_limit
        return 10.0 * self.concurrency_limit


class FunctionErrors(Frozen):
    """How often the function fails."""

    invocation_error_rate: Number = Field(
        0.0, ge=0, le=1, description="Probability that an invocation throws (the whole batch fails)."
    )
    record_error_rate: Number = Field(
        0.0,
        ge=0,
        le=1,
        description="Probability that one record fails transiently (it may succeed on retry).",
    )
    poison_record_rate: Number = Field(
        0.0, ge=0, le=1, description="Fraction of records that fail on every attempt."
    )


class Incident(Frozen):
    """A window of simulated time in which the function misbehaves."""

    start: Seconds = Field(ge=0, description="When it begins (invocations starting from here are affected).")
    end: Seconds = Field(gt=0, description="When it ends.")
    invocation_error_rate: Number | None = Field(
        None, ge=0, le=1, description="Replaces the error rate inside."
    )
    record_error_rate: Number | None = Field(
        None, ge=0, le=1, description="Replaces the record error rate inside."
    )
    duration_multiplier: Number = Field(1.0, gt=0, description="Multiplies handler time inside.")

    @model_validator(mode="after")
    def _ordered(self) -> Incident:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end:g} s) must be after start ({self.start:g} s)")
        return self


class Function(Frozen):
    """A Lambda function: configuration, duration model, environments and failures."""

    memory_mb: Int = aws(
        "Function",
        "memory_mb",
        128,
        ge=128,
        le=10240,
        description="Memory; CPU share grows with it up to 1,769 MB.",
    )
    timeout: WholeSeconds = aws(
        "Function",
        "timeout",
        3.0,
        ge=1,
        le=900,
        description="Function timeout (whole seconds); exceeding it is an error.",
    )
    architecture: Literal["x86_64", "arm64"] = Field("x86_64", description="Sets the GB-second price.")
    reserved_concurrency: Int | None = aws(
        "Function",
        "reserved_concurrency",
        None,
        ge=0,
        description="The function's own cap and guarantee (null: share the unreserved pool; 0: disabled).",
    )
    provisioned_concurrency: Int = aws(
        "Function",
        "provisioned_concurrency",
        0,
        ge=0,
        description="Pre-initialised environments: no cold starts, billed whether busy or not.",
    )
    duration: DurationDist = Field(
        default_factory=lambda: ConstantDuration(value=0.1),
        description="Handler time per invocation, as measured at `measured_at_memory_mb`.",
    )
    per_record: Seconds = Field(0.0, ge=0, description="Handler time added per record in the batch.")
    measured_at_memory_mb: Int | None = Field(
        None, ge=128, le=10240, description="Memory at which `duration` was measured (default: memory_mb)."
    )
    cpu_scaling: bool = Field(
        True, description=f"Scale compute time by CPU share below {ONE_VCPU_MB} MB (one vCPU)."
    )
    cold_start: DurationDist = Field(
        default_factory=lambda: LognormalDuration(dist="lognormal", median=0.25, p99=0.8),
        description="Init duration of a new execution environment (undocumented by AWS: an assumption).",
    )
    keep_alive: Seconds = Field(
        600.0, gt=0, description="Idle lifetime of a warm environment (undocumented by AWS: an assumption)."
    )
    reset_on_timeout: bool = Field(
        True,
        description=(
            "A timed-out invocation resets its execution environment: the next invocation in it runs Init "
            "again (a cold start). AWS documents the reset; false keeps the environment warm (what-if)."
        ),
    )
    errors: FunctionErrors = Field(default_factory=FunctionErrors, description="How often it fails.")
    incidents: tuple[Incident, ...] = Field(
        (), description="Windows of time with other error rates or durations."
    )

    @property
    def reference_memory_mb(self) -> int:
        """Memory at which the duration model was measured."""
        return self.measured_at_memory_mb or self.memory_mb

    @property
    def cpu_factor(self) -> float:
        """Multiplier on compute time from running at ``memory_mb`` instead of the reference memory."""
        if not self.cpu_scaling:
            return 1.0
        share_ref = min(1.0, self.reference_memory_mb / ONE_VCPU_MB)
        share_now = min(1.0, self.memory_mb / ONE_VCPU_MB)
        return share_ref / share_now
