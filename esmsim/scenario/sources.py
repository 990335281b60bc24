"""Schema of event sources and the traffic that feeds them (aws-behaviour.md §2)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from esmsim.dists import ConstantSize, SizeDist
from esmsim.scenario.base import Bytes, Frozen, PerSecond, Seconds, WholeSeconds, aws

#: SQS's maximum message size since 2025 (aws-behaviour.md §2.1).
SQS_MAX_MESSAGE_BYTES = 1024 * 1024


class RatePoint(Frozen):
    """A change of arrival rate: from ``at``, move to ``rate`` linearly over ``ramp`` (0 = a step)."""

    at: Seconds = Field(ge=0, description="When the change starts.")
    rate: PerSecond = Field(ge=0, description="The rate it moves to.")
    ramp: Seconds = Field(0.0, ge=0, description="How long the move takes (0: a step).")


class Traffic(Frozen):
    """Records offered to a source by producers."""

    rate: PerSecond = Field(0.0, ge=0, description="Arrival rate before the first schedule point.")
    pattern: Literal["poisson", "constant"] = Field(
        "poisson", description="Poisson arrivals, or evenly spaced ones at the same rate."
    )
    schedule: tuple[RatePoint, ...] = Field(
        (), description="Rate changes over time: steps (ramp 0) and linear ramps."
    )
    period: Seconds | None = Field(
        None, gt=0, description="Repeat the schedule every `period` (e.g. 24h for a daily profile)."
    )
    record_size: SizeDist = Field(
        default_factory=lambda: ConstantSize(value=1024.0), description="Payload size of one record."
    )
    initial_backlog: int = Field(0, ge=0, description="Records already waiting at time 0.")

    @model_validator(mode="after")
    def _schedule_in_order(self) -> Traffic:
        previous_end = -1.0
        for i, point in enumerate(self.schedule):
            if point.at < previous_end:
                raise ValueError(
                    f"schedule[{i}] starts at {point.at:g} s, before the previous change ends at "
                    f"{previous_end:g} s (list changes in time order, ramps must not overlap)"
                )
            previous_end = point.at + point.ramp
            if self.period is not None and previous_end > self.period:
                raise ValueError(
                    f"schedule[{i}] ends at {previous_end:g} s, after the period of {self.period:g} s"
                )
        return self


class SqsSource(Frozen):
    """An SQS standard queue."""

    type: Literal["sqs"] = Field(description="`sqs`: a standard queue.")
    visibility_timeout: WholeSeconds = aws(
        "visibility_timeout",
        "VisibilityTimeout",
        30.0,
        ge=0,
        le=43200,
        description="How long a received message stays invisible: the retry delay of a failed batch.",
    )
    retention: WholeSeconds = aws(
        "retention",
        "MessageRetentionPeriod",
        345600.0,
        ge=60,
        le=1209600,
        description="Messages older than this are deleted by SQS (expired).",
    )
    max_receive_count: int | None = Field(
        None, ge=1, le=1000, description="Redrive to the queue's dead-letter queue after this many receives."
    )
    delivery_delay: WholeSeconds = aws(
        "delivery_delay",
        "DelaySeconds",
        0.0,
        ge=0,
        le=900,
        description="Delay before a new message is visible.",
    )
    max_message_size: Bytes = aws(
        "max_message_size",
        "MaximumMessageSize",
        float(SQS_MAX_MESSAGE_BYTES),
        ge=1024,
        le=SQS_MAX_MESSAGE_BYTES,
        description="Largest message; record sizes are cut to it.",
    )
    traffic: Traffic = Field(default_factory=Traffic, description="What producers send.")

    @model_validator(mode="before")
    @classmethod
    def _aws_redrive_policy(cls, data: Any) -> Any:
        if isinstance(data, dict) and "RedrivePolicy" in data:
            data = dict(data)
            policy = data.pop("RedrivePolicy")
            if not isinstance(policy, dict) or "maxReceiveCount" not in policy:
                raise ValueError("RedrivePolicy needs maxReceiveCount")
            data.setdefault("max_receive_count", policy["maxReceiveCount"])
        return data


Source = SqsSource
