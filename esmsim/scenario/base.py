"""Shared pieces of the scenario schema: the frozen base model, unit types and AWS-name aliases."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field

from esmsim.units import parse_duration, parse_rate, parse_size


class Frozen(BaseModel):
    """Base of every scenario model: immutable, and unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _whole_seconds(value: Any) -> float:
    seconds = parse_duration(value)
    if not float(seconds).is_integer():
        raise ValueError(f"{seconds:g} s is not a whole number of seconds (AWS takes integer seconds here)")
    return seconds


Seconds = Annotated[float, BeforeValidator(parse_duration)]
WholeSeconds = Annotated[float, BeforeValidator(_whole_seconds)]
PerSecond = Annotated[float, BeforeValidator(parse_rate)]
Bytes = Annotated[float, BeforeValidator(parse_size)]


def aws(name: str, aws_name: str, default: Any = ..., **constraints: Any) -> Any:
    """A field that also accepts AWS's CamelCase parameter name (``BatchSize`` for ``batch_size``)."""
    return Field(default, validation_alias=AliasChoices(name, aws_name), **constraints)


#: AWS CamelCase names accepted for each snake_case key, for messages and line look-ups.
AWS_NAMES: dict[str, str] = {
    "batch_size": "BatchSize",
    "batching_window": "MaximumBatchingWindowInSeconds",
    "enabled": "Enabled",
    "maximum_concurrency": "MaximumConcurrency",
    "memory_mb": "MemorySize",
    "timeout": "Timeout",
    "reserved_concurrency": "ReservedConcurrentExecutions",
    "provisioned_concurrency": "ProvisionedConcurrentExecutions",
    "visibility_timeout": "VisibilityTimeout",
    "retention": "MessageRetentionPeriod",
    "delivery_delay": "DelaySeconds",
    "max_message_size": "MaximumMessageSize",
    "parallelization_factor": "ParallelizationFactor",
    "starting_position": "StartingPosition",
    "maximum_retry_attempts": "MaximumRetryAttempts",
    "maximum_record_age": "MaximumRecordAgeInSeconds",
    "bisect_batch_on_function_error": "BisectBatchOnFunctionError",
    "tumbling_window": "TumblingWindowInSeconds",
}
