"""Schema of the account and of Lambda functions (docs/model.md §5, §6)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

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
        "us-east-1",
        description="The Region (for the ARNs of `esmsim iam`); prices are us-east-1 unless `pricing` "
        "says otherwise.",
    )
    id: str = Field(
        "123456789012",
        description="The 12-digit account ID, for the ARNs `esmsim iam` writes (default: AWS's documentation "
        "example).",
    )

    @field_validator("region")
    @classmethod
    def _region_name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", value):
            raise ValueError(f"{value!r} is not a Region name (e.g. us-east-1, eu-west-1)")
        return value

    @field_validator("id")
    @classmethod
    def _account_id(cls, value: str) -> str:
        if not re.fullmatch(r"\d{12}", value):
            raise ValueError(f"{value!r} is not an account ID (12 digits, e.g. 123456789012)")
        return value

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


class AsyncTarget(Frozen):
    """Where an asynchronous invocation's record goes: a destination or the function's dead-letter queue."""

    type: Literal["sqs", "sns", "eventbridge", "lambda", "s3"] = Field(
        description="The target service (S3 on failure only; a dead-letter queue is SQS or SNS)."
    )
    name: str | None = Field(
        None,
        description="The queue, topic, event bus, function or bucket, for `esmsim iam` (default: the "
        "function's name and the target's role, e.g. `thumbnail-on-failure`).",
    )


class AsyncConfig(Frozen):
    """The function's event invoke config: how Lambda retries and routes asynchronous events.

    Applies to events pushed by triggers (S3, SNS, EventBridge), not to event source mappings.
    """

    maximum_retry_attempts: Int = aws(
        "AsyncConfig",
        "maximum_retry_attempts",
        2,
        ge=0,
        le=2,
        description="Retries after a function error (or timeout): up to 3 attempts in all.",
    )
    maximum_event_age: WholeSeconds = aws(
        "AsyncConfig",
        "maximum_event_age",
        21600.0,
        ge=60,
        le=21600,
        description="An event older than this is discarded instead of retried (60 s to 6 h).",
    )
    retry_delays: tuple[Seconds, Seconds] = Field(
        (60.0, 120.0),
        description="Waits after a function error before the 2nd and the 3rd attempt (AWS: about 1 "
        "and 2 minutes).",
    )
    throttle_backoff_initial: Seconds = Field(
        1.0, gt=0, description="First wait after a throttle or system error (AWS: 1 s)."
    )
    throttle_backoff_maximum: Seconds = Field(
        300.0, gt=0, description="Longest wait after throttles; waits double up to it (AWS: 5 minutes)."
    )
    on_success: AsyncTarget | None = Field(None, description="Where a successful invocation's record goes.")
    on_failure: AsyncTarget | None = Field(None, description="Where a discarded event's record goes.")
    dead_letter_queue: AsyncTarget | None = Field(
        None, description="The function's older dead-letter queue (SQS or SNS): the event's payload only."
    )

    @field_validator("on_success")
    @classmethod
    def _success_target(cls, value: AsyncTarget | None) -> AsyncTarget | None:
        if value is not None and value.type == "s3":
            raise ValueError("S3 is an on-failure destination only (AWS rejects it on success)")
        return value

    @field_validator("dead_letter_queue")
    @classmethod
    def _dlq_target(cls, value: AsyncTarget | None) -> AsyncTarget | None:
        if value is not None and value.type not in ("sqs", "sns"):
            raise ValueError(f"a dead-letter queue is an SQS queue or an SNS topic, not {value.type}")
        return value


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
    provisioned_allocation: Seconds = Field(
        120.0,
        ge=0,
        description=(
            "When a live change raises provisioned_concurrency: Lambda's preparation before it allocates "
            "the new environments (AWS: 'a minute or two'; an assumption), which then come at the function "
            "scaling rate and serve only once all are allocated."
        ),
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
    account: str | None = Field(
        None, description="Name of the account under `accounts` it runs in (default: the only one)."
    )
    role_name: str | None = Field(
        None, description="Its execution role's name, for `esmsim iam` (default: `NAME-role`)."
    )
    async_: AsyncConfig = Field(
        default_factory=AsyncConfig,
        validation_alias=AliasChoices("async", "EventInvokeConfig"),
        serialization_alias="async",
        description="How asynchronous events from triggers are retried and routed (EventInvokeConfig).",
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
