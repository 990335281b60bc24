"""Schema of event source mappings (docs/model.md §3, §4)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from esmsim.scenario.base import Bytes, Frozen, Int, Number, Seconds, WholeSeconds, aws, key_error

#: Most event metadata per SQS record: Lambda's 6 MB payload less SQS's largest message (1 MB).
MAX_SQS_RECORD_OVERHEAD = 5 * 1024 * 1024


class PollerScaling(Frozen):
    """How the SQS poller fleet (concurrent batches) grows and shrinks.

    AWS documents the start (5), the rate (+300 a minute since November 2023, +60 before) and the
    ceiling (1,250; 1,000 before). Everything else here is a modelling choice; see docs/model.md.
    In particular AWS documents no scale-down signal or rate: the fleet retires only pollers that
    stayed idle over a trailing ``scale_down_window`` (a minute), at most ``scale_down_per_minute``.
    """

    initial: Int = Field(5, ge=1, description="Concurrent batches when messages first appear.")
    per_minute: Number = Field(300.0, ge=0, description="Added per minute while messages remain visible.")
    ceiling: Int = Field(1250, ge=1, description="Most concurrent batches one mapping runs.")
    min_pollers: Int = Field(5, ge=1, description="Floor when traffic is low.")
    idle_min_pollers: Int = Field(
        2, ge=1, description="Floor after `idle_after` without messages (not with maximum_concurrency)."
    )
    idle_after: Seconds = Field(
        300.0, ge=0, description="Quiet time before the floor drops to idle_min_pollers."
    )
    scale_down_per_minute: Number = Field(
        300.0, ge=0, description="Idle pollers retired per minute (undocumented by AWS: an assumption)."
    )
    scale_down_window: Seconds = Field(
        60.0,
        ge=0,
        description="Trailing time over which pollers must have been idle to be retired: at most the "
        "fewest idle at any tick of it, and only once nothing is visible (undocumented by AWS: an "
        "assumption, a minute like the scale-up rate; 0 retires whatever is idle at a tick).",
    )
    tick: Seconds = Field(1.0, gt=0, description="How often the scaler re-evaluates.")
    scale_up_visible: Int = Field(
        1,
        ge=1,
        description="Messages that must be visible (waiting, unreceived) at a tick for the fleet to grow "
        "(AWS: it grows on queue depth, threshold undocumented: an assumption).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> PollerScaling:
        if self.initial > self.ceiling:
            raise ValueError(f"initial ({self.initial}) must not exceed ceiling ({self.ceiling})")
        if self.min_pollers > self.ceiling:
            raise ValueError(f"min_pollers ({self.min_pollers}) must not exceed ceiling ({self.ceiling})")
        return self


#: Named presets of poller scaling: the current model and the pre-November-2023 one.
POLLER_PRESETS: dict[str, dict[str, Any]] = {
    "current": {},
    "legacy": {"per_minute": 60.0, "ceiling": 1000, "scale_down_per_minute": 60.0},
}


class ErrorBackoff(Frozen):
    """Reduction of the poller fleet while invocations fail or are throttled.

    AWS documents that the mapping "gradually backs off, reducing the amount of concurrency
    allocated" on function errors (not with ReportBatchItemFailures) and on throttles, and that it
    does not scale up while invocations fail; it publishes no numbers. Over the trailing ``window``
    the failure share ``e`` (function errors plus ``throttle_weight`` x throttles, per invocation
    attempt) sets the fleet kept: ``at_one_percent x (e / 1 %)^-exponent`` of the demand-driven
    fleet, approached with time constant ``lag``, never below ``floor``. The defaults fit the only
    published measurement (concurrency 60 falling to 25, 16 and 13 at 1, 5 and 10 % errors); see
    docs/model.md. The curve keeps the whole fleet below about 0.045 % failures: rarer errors change
    nothing. From ``hold_from`` (0.1 %) the demand-driven fleet does not grow while the back-off
    lasts (AWS: errors prevent scaling); below it, it follows the queue and the fleet is its kept
    share. Once the window holds no failure, the fleet grows back at the scale-up rate.
    """

    enabled: bool = Field(True, description="Shrink the fleet while invocations fail or are throttled.")
    window: Seconds = Field(
        60.0, gt=0, description="Trailing time over which the failure share is measured (assumption)."
    )
    at_one_percent: Number = Field(
        0.42,
        gt=0,
        le=1,
        description="Share of the fleet kept at a 1 % failure share (fitted to a published measurement).",
    )
    exponent: Number = Field(
        0.28,
        ge=0,
        le=5,
        description="How fast the kept share falls with the failure share (fitted; 0 keeps it constant).",
    )
    lag: Seconds = Field(
        60.0, gt=0, description="Time constant of the fleet's approach to its backed-off size (assumption)."
    )
    floor: Int = Field(2, ge=1, description="Fewest pollers kept while backing off (AWS's minimum, 2).")
    throttle_weight: Number = Field(
        1.0, ge=0, le=1, description="How much a throttled attempt counts as a failure (assumption)."
    )
    hold_from: Number = Field(
        0.001,
        ge=0,
        le=1,
        description="Failure share from which the fleet does not scale up while backing off (AWS: errors "
        "prevent scaling); below it the demand-driven fleet follows the queue and the fleet is its kept "
        "share (assumption: the curve takes under 20 % off there).",
    )


class ThrottleRetry(Frozen):
    """How a throttled invoke is retried (AWS gives no spacing).

    SQS: until the batch's visibility timeout would pass, then its messages reappear. Streams: until
    the invoke is let through; throttles never count against ``maximum_retry_attempts``.
    """

    initial: Seconds = Field(1.0, gt=0, description="First wait after a throttle (assumption).")
    multiplier: Number = Field(2.0, ge=1, description="Each further wait is this much longer (assumption).")
    maximum: Seconds = Field(30.0, gt=0, description="Longest wait (assumption).")


class Polling(Frozen):
    """ReceiveMessage parameters the SQS pollers use."""

    wait_time: WholeSeconds = Field(20.0, ge=1, le=20, description="Long-poll wait (SQS WaitTimeSeconds).")
    max_messages: Int = Field(10, ge=1, le=10, description="Messages per ReceiveMessage (SQS allows 10).")
    round_trip: Seconds = Field(
        0.01,
        ge=0,
        description="A ReceiveMessage call's round trip: a long poll returns this long after the message "
        "that ends it arrives, with what is visible then; messages arriving closer together than this "
        "share one call (undocumented by AWS: an assumption).",
    )
    finish_poll_after_window: bool = Field(
        True,
        description="A long poll in progress when the batching window ends is not cut short, so a quiet "
        "queue may wait up to wait_time past the window (AWS documents up to 20 s); false closes "
        "the batch at the window's end.",
    )


class ProvisionedPollers(Frozen):
    """SQS provisioned mode (ProvisionedPollerConfig, since November 2025): a fleet of event pollers.

    AWS documents the range of the minimum (2 to 200, default 2) and maximum (2 to 2,000, default
    200), what one event poller handles (up to 1 MB/s, 10 concurrent invokes or 10 polling calls a
    second), the scale-up ("up to 1,000 concurrent executions per minute", to 20,000) and the price
    per event poller unit-hour. The scale-down rate is not documented: a knob.
    """

    minimum: Int = Field(2, ge=2, le=200, description="Event pollers always running (MinimumPollers).")
    maximum: Int = Field(200, ge=2, le=2000, description="Most event pollers (MaximumPollers).")
    invokes_per_poller: Int = Field(
        10, ge=1, description="Concurrent invokes one event poller runs (AWS: up to 10)."
    )
    bytes_per_second: Bytes = Field(
        1024 * 1024, gt=0, description="Payload one event poller reads a second (AWS: up to 1 MB/s)."
    )
    per_minute: Number = Field(
        1000.0,
        ge=0,
        description="Concurrent executions added per minute while messages remain (AWS: up to 1,000).",
    )
    scale_down_per_minute: Number = Field(
        1000.0,
        ge=0,
        description="Idle concurrency retired per minute (undocumented by AWS: an assumption, the "
        "scale-up rate).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ProvisionedPollers:
        if self.minimum > self.maximum:
            raise ValueError(f"minimum ({self.minimum}) must not exceed maximum ({self.maximum})")
        return self

    def scaling(self, standard: PollerScaling) -> PollerScaling:
        """The fleet of concurrent batches these event pollers run, as the poller scaler takes it.

        The minimum pollers' invokes are always available (they run, and are billed, idle or not);
        the ceiling is the maximum pollers' invokes; the scaler's tick, window and threshold are the
        mapping's own.
        """
        floor = self.minimum * self.invokes_per_poller
        return standard.model_copy(
            update={
                "initial": floor,
                "per_minute": self.per_minute,
                "ceiling": self.maximum * self.invokes_per_poller,
                "min_pollers": floor,
                "idle_min_pollers": floor,
                "scale_down_per_minute": self.scale_down_per_minute,
            }
        )


#: AWS: filters per event source mapping (FilterCriteria.Filters): 5 by default, 10 with a quota
#: increase; a record passes when any one matches.
FILTERS_DEFAULT_QUOTA = 5
FILTERS_MAX = 10

#: One pattern: per attribute, the values that match.
Pattern = dict[str, tuple[str, ...]]


class EventFilter(Frozen):
    """A mapping's FilterCriteria: which records reach the function (docs/model.md §15).

    AWS matches JSON patterns against each record; esmsim draws, per record, what the patterns
    would decide: a share of records that match (``match_rate``), or the values of traffic
    attributes (``pattern``, or several ``patterns`` of which any may match). Given a rate and
    patterns, a record must pass both.
    """

    match_rate: Number | None = Field(
        None, ge=0, le=1, description="Share of records that match (drawn per record, per mapping)."
    )
    pattern: Pattern | None = Field(
        None,
        description="Records match when each named attribute of the source's `traffic.attributes` has "
        "one of the listed values (AND across attributes, OR within a list, as in an AWS pattern).",
    )
    patterns: tuple[Pattern, ...] | None = Field(
        None,
        description="Several patterns, as AWS's Filters: a record matches when any one of them does "
        f"(at most {FILTERS_MAX}; AWS's default quota is {FILTERS_DEFAULT_QUOTA} a mapping). Not with "
        "`pattern`.",
    )

    @model_validator(mode="after")
    def _something(self) -> EventFilter:
        if self.pattern is not None and self.patterns is not None:
            raise ValueError("give pattern (one) or patterns (several, any of which matches), not both")
        if self.match_rate is None and not self.pattern and not self.patterns:
            raise ValueError(
                "give match_rate, pattern (or patterns) or both (a filter with neither matches everything)"
            )
        if self.patterns is not None and len(self.patterns) > FILTERS_MAX:
            raise ValueError(
                f"patterns lists {len(self.patterns)} (allowed: at most {FILTERS_MAX} filters a mapping, "
                f"AWS's quota of {FILTERS_DEFAULT_QUOTA} raised)"
            )
        for where, pattern in self.named_patterns():
            if not pattern:
                raise ValueError(f"{where} names no attribute (it would match every record)")
            for name, values in pattern.items():
                if not values:
                    raise ValueError(f"{where}.{name} lists no values (a record could never match)")
        return self

    def named_patterns(self) -> list[tuple[str, Pattern]]:
        """Each pattern with where it is written (``pattern``, ``patterns[1]``); a record matches any."""
        if self.pattern is not None:
            return [("pattern", self.pattern)]
        return [(f"patterns[{i}]", p) for i, p in enumerate(self.patterns or ())]


class _MappingBase(Frozen):
    """What every event source mapping has: the source it reads, the function it invokes."""

    source: str = Field(description="Name of a source under `sources`.")
    function: str = Field(description="Name of a function under `functions`.")
    enabled: bool = aws("_MappingBase", "enabled", True, description="A disabled mapping reads nothing.")
    filter: EventFilter | None = Field(
        None,
        description="FilterCriteria: records that do not match never reach the function (null: all do).",
    )


class SqsMapping(_MappingBase):
    """An event source mapping from an SQS standard queue to a function."""

    source_type: Literal["sqs"] = "sqs"
    batch_size: Int = aws(
        "SqsMapping",
        "batch_size",
        10,
        ge=1,
        le=10000,
        description="Most records per invocation (above 10 needs a window).",
    )
    batching_window: WholeSeconds = aws(
        "SqsMapping",
        "batching_window",
        0.0,
        ge=0,
        le=300,
        description="Longest a poller gathers records before invoking (whole seconds).",
    )
    maximum_concurrency: Int | None = aws(
        "SqsMapping",
        "maximum_concurrency",
        None,
        ge=2,
        le=1000,
        description="Cap on the mapping's concurrent invocations (AWS ScalingConfig).",
    )
    report_batch_item_failures: bool = Field(
        False,
        description="The handler reports failed records; only those are retried (FunctionResponseTypes).",
    )
    provisioned_pollers: ProvisionedPollers | None = Field(
        None,
        description="Provisioned mode (ProvisionedPollerConfig): event pollers between a minimum and a "
        "maximum, billed per event poller hour; excludes maximum_concurrency (null: standard mode).",
    )
    poller_scaling: PollerScaling = Field(
        default_factory=PollerScaling, description="Fleet growth: a preset (`current`, `legacy`) or knobs."
    )
    error_backoff: ErrorBackoff = Field(
        default_factory=ErrorBackoff, description="Fleet reduction on errors."
    )
    throttle_retry: ThrottleRetry = Field(
        default_factory=ThrottleRetry, description="Retries of throttled batches."
    )
    polling: Polling = Field(default_factory=Polling, description="ReceiveMessage parameters.")
    record_overhead: Bytes = Field(
        800.0,
        ge=0,
        # Room for the largest SQS message (1 MB) under Lambda's 6 MB payload: a message that could
        # never fit in a batch would be received and put back forever.
        le=MAX_SQS_RECORD_OVERHEAD,
        description=(
            "Bytes of event metadata per record that count toward the 6 MB payload (message id, receipt "
            "handle, attributes), estimated from AWS's sample SQS event. Per queue: the largest value of "
            "its mappings applies."
        ),
    )
    single_poller_batching: bool = Field(
        False,
        description=(
            "Deal arriving messages to one collecting poller at a time instead of spreading them over all "
            "waiting pollers (the single-poller batching-window model of docs/validation.md §3). Per "
            "queue: on when any of its mappings sets it."
        ),
    )

    @model_validator(mode="after")
    def _one_mode(self) -> SqsMapping:
        if self.provisioned_pollers is not None and self.maximum_concurrency is not None:
            raise ValueError(
                "maximum_concurrency and provisioned_pollers exclude each other (AWS: provisioned mode "
                "takes MinimumPollers and MaximumPollers instead of ScalingConfig)"
            )
        return self

    @field_validator("poller_scaling", mode="before")
    @classmethod
    def _presets(cls, value: Any) -> Any:
        """A preset name, or a mapping that may start from one: ``{preset: legacy, ceiling: 50}``."""
        if isinstance(value, str):
            value = {"preset": value}
        if isinstance(value, dict) and "preset" in value:
            value = dict(value)
            preset = value.pop("preset")
            if preset not in POLLER_PRESETS:
                raise ValueError(f"{preset!r} is not a poller_scaling preset (allowed: current, legacy)")
            value = {**POLLER_PRESETS[preset], **value}
        return value


class RetryBackoff(Frozen):
    """Spacing of a stream mapping's retries after function errors (AWS documents none).

    Default: 1 s doubling to 60 s. LocalStack's emulator uses 0.5 s x 1.5 up to 60 s; AWS-side
    observations (a destination record minutes after one retry) suggest seconds to minutes.
    """

    initial: Seconds = Field(1.0, ge=0, description="Wait before the first retry (assumption).")
    multiplier: Number = Field(2.0, ge=1, description="Each further wait is this much longer (assumption).")
    maximum: Seconds = Field(60.0, ge=0, description="Longest wait (assumption).")
    jitter: Number = Field(0.0, ge=0, lt=1, description="Each wait varies uniformly by up to this fraction.")


class Destination(Frozen):
    """Where a stream mapping sends what it discards (DestinationConfig.OnFailure)."""

    type: Literal["sqs", "sns", "s3"] = Field(
        description="SQS and SNS receive a metadata record per batch; S3 also receives the records."
    )
    name: str | None = Field(
        None,
        description="The queue, topic or bucket, for `esmsim iam` (default: the mapping's function name "
        "and `-on-failure`).",
    )


class StreamMapping(_MappingBase):
    """An event source mapping from a Kinesis or DynamoDB stream to a function."""

    source_type: Literal["kinesis", "dynamodb"] = "kinesis"
    batch_size: Int = aws(
        "StreamMapping", "batch_size", 100, ge=1, le=10000, description="Most records per invocation."
    )
    batching_window: WholeSeconds = aws(
        "StreamMapping",
        "batching_window",
        0.0,
        ge=0,
        le=300,
        description="Longest a shard gathers records after its previous invocation ends (whole seconds).",
    )
    parallelization_factor: Int = aws(
        "StreamMapping",
        "parallelization_factor",
        1,
        ge=1,
        le=10,
        description="Concurrent batches per shard; records of one partition key stay in order.",
    )
    starting_position: Literal["LATEST", "TRIM_HORIZON", "AT_TIMESTAMP"] = aws(
        "StreamMapping",
        "starting_position",
        description="LATEST: records written from time 0; TRIM_HORIZON: everything retained; AT_TIMESTAMP.",
    )
    starting_position_timestamp: Seconds | None = aws(
        "StreamMapping",
        "starting_position_timestamp",
        None,
        description="With AT_TIMESTAMP: records written from this time on (negative: before time 0).",
    )
    maximum_record_age: Seconds = aws(
        "StreamMapping",
        "maximum_record_age",
        -1.0,
        description="Discard records older than this (-1: only retention limits them; else 60..604800 s).",
    )
    maximum_retry_attempts: Int = aws(
        "StreamMapping",
        "maximum_retry_attempts",
        -1,
        ge=-1,
        le=10000,
        description="Retries of a failing batch before it is discarded (-1: until the records expire).",
    )
    bisect_batch_on_function_error: bool = aws(
        "StreamMapping",
        "bisect_batch_on_function_error",
        False,
        description="Split a failing batch in two and retry each half (splits do not count as retries).",
    )
    report_batch_item_failures: bool = Field(
        False, description="The handler reports failed sequence numbers; the shard resumes at the lowest one."
    )
    checkpoint: Literal["shard", "key"] = Field(
        "shard",
        description="With parallelization_factor > 1 (AWS does not say): `shard` (safe): while a lane "
        "retries a failing batch the shard's other lanes finish what they hold and start no new batch, "
        "so the shard's checkpoint never passes the failing record; `key`: other keys flow on.",
    )
    on_failure: Destination | None = Field(None, description="Where discarded batches go (null: dropped).")
    enhanced_fan_out: bool = Field(
        False,
        description="Kinesis only: a dedicated-throughput consumer with push delivery (an EFO consumer ARN).",
    )
    retry_backoff: RetryBackoff = Field(
        default_factory=RetryBackoff, description="Spacing of retries after errors."
    )
    throttle_retry: ThrottleRetry = Field(
        default_factory=ThrottleRetry, description="Retries of throttled batches."
    )

    @field_validator("maximum_record_age")
    @classmethod
    def _record_age(cls, value: float) -> float:
        if value != -1 and not 60 <= value <= 604800:
            raise ValueError(f"{value:g} is not -1 or between 60 and 604800 seconds (AWS's range)")
        return value


class KafkaDestination(Destination):
    """Where a Kafka mapping sends what it discards: SQS, SNS, S3, or a Kafka topic (``kafka://topic``)."""

    type: Literal["sqs", "sns", "s3", "kafka"] = Field(  # type: ignore[assignment]
        description="SQS and SNS receive a metadata record per batch; S3 and a Kafka topic also the records."
    )


class KafkaProvisionedPollers(Frozen):
    """Kafka provisioned mode (ProvisionedPollerConfig, since November 2024): pollers kept between bounds.

    AWS documents the range of the minimum (1 to 200, default 1) and maximum (1 to 2,000, default
    200), what one poller handles (up to 5 MB/s or 5 concurrent invokes) and the price per event
    poller unit (EPU) hour, an EPU holding up to 10 pollers by default. How fast the fleet follows
    the lag is not documented: each evaluation sets it to what the last minute needed, at once.
    """

    minimum: Int = Field(1, ge=1, le=200, description="Pollers always running (MinimumPollers).")
    maximum: Int = Field(200, ge=1, le=2000, description="Most pollers (MaximumPollers).")

    @model_validator(mode="after")
    def _consistent(self) -> KafkaProvisionedPollers:
        if self.minimum > self.maximum:
            raise ValueError(f"minimum ({self.minimum}) must not exceed maximum ({self.maximum})")
        return self


class KafkaScaling(Frozen):
    """How Lambda's Kafka pollers are counted and scaled on offset lag (docs/model.md §16).

    AWS documents a minute between evaluations, changes applied within three minutes of one, at
    most one poller per partition in on-demand mode, fewer pollers when the function is throttled,
    and what one poller handles (5 MB/s or 5 concurrent invokes). The rest are assumptions.
    """

    initial_pollers: Int = Field(
        1, ge=1, description="On-demand pollers when the mapping starts (AWS: 'a default number'; 2022: 1)."
    )
    evaluation_interval: Seconds = Field(
        60.0, gt=0, description="Time between scaling evaluations on offset lag (AWS: every minute)."
    )
    apply_delay_max: Seconds = Field(
        180.0,
        ge=0,
        description="A change decided at an evaluation takes effect after a delay drawn uniformly up to "
        "this (AWS: within three minutes).",
    )
    invokes_per_poller: Int = Field(
        5, ge=1, description="Concurrent invokes one poller runs (AWS, provisioned mode: up to 5)."
    )
    bytes_per_poller: Bytes = Field(
        5.0 * 1024 * 1024, gt=0, description="Throughput one poller handles (AWS: up to 5 MB/s)."
    )
    scale_down_step: Int = Field(
        1,
        ge=0,
        description="Pollers removed at an evaluation that saw throttles or no lag (assumption; AWS: "
        "fewer pollers when the function is throttled).",
    )
    pollers_per_epu: Int = Field(
        10, ge=1, description="Provisioned pollers one event poller unit holds (AWS default: 10)."
    )


class KafkaMapping(StreamMapping):
    """An event source mapping from a Kafka topic (Amazon MSK or self-managed) to a function.

    It takes a stream mapping's keys, except those about shards (``parallelization_factor``,
    ``checkpoint``, ``enhanced_fan_out``): a partition is read by one batch at a time.
    """

    source_type: Literal["kafka"] = "kafka"  # type: ignore[assignment]
    batching_window: Seconds = aws(
        "KafkaMapping",
        "batching_window",
        0.5,
        ge=0,
        le=300,
        description="Longest a partition gathers records from the first one's arrival (Kafka: 0.5 s "
        "default, sub-second allowed).",
    )
    starting_position: Literal["LATEST", "TRIM_HORIZON", "AT_TIMESTAMP"] = aws(
        "KafkaMapping",
        "starting_position",
        description="LATEST: records written from time 0; TRIM_HORIZON: everything retained; AT_TIMESTAMP.",
    )
    on_failure: KafkaDestination | None = Field(
        None, description="Where discarded batches go: SQS, SNS, S3 or a Kafka topic (null: dropped)."
    )
    provisioned_pollers: KafkaProvisionedPollers | None = Field(
        None,
        description="Provisioned mode (ProvisionedPollerConfig): pollers between a minimum and a maximum, "
        "billed per event poller unit hour (null: on-demand mode).",
    )
    kafka_scaling: KafkaScaling = Field(
        default_factory=KafkaScaling, description="Poller counting and scaling knobs."
    )

    @model_validator(mode="after")
    def _no_shard_keys(self) -> KafkaMapping:
        for key, why in (
            ("parallelization_factor", "a partition is read by one batch at a time"),
            ("checkpoint", "a partition is read by one batch at a time"),
            ("enhanced_fan_out", "enhanced fan-out is for Kinesis streams only"),
        ):
            # Its default is what a Kafka mapping does anyway: a resolved scenario (every default
            # written out, as summary.json holds it) reads back.
            if key in self.model_fields_set and getattr(self, key) != type(self).model_fields[key].default:
                raise key_error((key,), f"not valid for Kafka event sources ({why})")
        return self


class MqMapping(_MappingBase):
    """An event source mapping from an Amazon MQ broker queue to a function (docs/model.md §17)."""

    source_type: Literal["mq"] = "mq"
    batch_size: Int = aws(
        "MqMapping", "batch_size", 100, ge=1, le=10000, description="Most messages per invocation."
    )
    batching_window: Seconds = aws(
        "MqMapping",
        "batching_window",
        0.5,
        ge=0,
        le=300,
        description="Longest a consumer gathers messages, from the first one's arrival (AWS default "
        "500 ms; any other value in whole seconds).",
    )
    consumers: Int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Concurrent invocations the mapping runs at most, whatever the function's reserved or "
        "provisioned concurrency (null: AWS's default, 5 for ActiveMQ, 1 for RabbitMQ; AWS support raises "
        "it per mapping).",
    )
    redelivery_delay: Seconds = Field(
        1.0,
        ge=0,
        description="Wait before a failed batch is delivered again (ActiveMQ's default redelivery policy, "
        "which Lambda uses: 1 s, no back-off; RabbitMQ's is undocumented: the same, an assumption).",
    )
    throttle_retry: ThrottleRetry = Field(
        default_factory=ThrottleRetry, description="Retries of throttled batches."
    )

    @property
    def report_batch_item_failures(self) -> bool:
        """Amazon MQ mappings take no partial batch responses (FunctionResponseTypes)."""
        return False

    @field_validator("batching_window")
    @classmethod
    def _whole_or_default(cls, value: float) -> float:
        if value != 0.5 and not float(value).is_integer():
            raise ValueError(
                f"{value:g} s is not a whole number of seconds (AWS takes integer seconds; 0.5 s is only "
                "the default)"
            )
        return value


def _mapping_kind(data: Any) -> str:
    """Which mapping model applies: the type of the source it reads (injected by Scenario).

    The tags are values of each model's ``source_type`` so error messages can strip them.
    """
    kind = data.get("source_type", "sqs") if isinstance(data, dict) else getattr(data, "source_type", "sqs")
    if kind == "kafka":
        return "kafka"
    if kind == "mq":
        return "mq"
    return "kinesis" if kind in ("kinesis", "dynamodb") else "sqs"


Mapping = Annotated[
    Annotated[SqsMapping, Tag("sqs")]
    | Annotated[StreamMapping, Tag("kinesis")]
    | Annotated[KafkaMapping, Tag("kafka")]
    | Annotated[MqMapping, Tag("mq")],
    Discriminator(_mapping_kind),
]
