"""Schema of event sources and the traffic that feeds them (docs/model.md §1, §2, §4)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from esmsim.dists import ConstantSize, DurationDist, LognormalDuration, SizeDist
from esmsim.scenario.base import Bytes, Frozen, Int, Number, PerSecond, Seconds, WholeSeconds, aws, key_error
from esmsim.scenario.encryption import KEY_FORMS, parse_kms_key

#: SQS's maximum message size since 2025 (docs/model.md §2).
SQS_MAX_MESSAGE_BYTES = 1024 * 1024


class RatePoint(Frozen):
    """A change of arrival rate: from ``at``, move to ``rate`` linearly over ``ramp`` (0 = a step)."""

    at: Seconds = Field(ge=0, description="When the change starts.")
    rate: PerSecond = Field(ge=0, description="The rate it moves to.")
    ramp: Seconds = Field(0.0, ge=0, description="How long the move takes (0: a step).")


class Traffic(Frozen):
    """Records offered to a source by producers (queues take these keys; streams take two more)."""

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
    initial_backlog: Int = Field(0, ge=0, description="Records already in the source at time 0.")
    backlog_span: Seconds = Field(
        0.0,
        ge=0,
        description="The initial backlog arrived evenly over this long before time 0 (0: all at 0).",
    )
    attributes: dict[str, dict[str, Number]] = Field(
        default_factory=dict,
        description="Record attributes a mapping's `filter.pattern` can match: per attribute, each "
        "value's share of records (shares sum to 1; drawn per record).",
    )

    @field_validator("attributes")
    @classmethod
    def _shares(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for name, shares in value.items():
            if not shares:
                raise ValueError(f"{name} has no values (give each value's share of records)")
            if any(share < 0 for share in shares.values()):
                raise ValueError(f"{name}: shares must be 0 or more")
            total = sum(shares.values())
            if abs(total - 1.0) > 1e-9:
                raise ValueError(f"{name}: the shares of its values sum to {total:g}, not 1")
        return value

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


class StreamTraffic(Traffic):
    """Records written to a stream: what a queue takes, plus the partition keys that pick shards."""

    partition_keys: Int = Field(
        1000, ge=1, description="Distinct partition keys (DynamoDB: items); keys hash to shards."
    )
    key_skew: Number = Field(
        0.0, ge=0, description="Zipf exponent of key popularity (0: uniform; 1.2: a few hot keys)."
    )


class SqsTraffic(Traffic):
    """Messages sent to a queue; a FIFO queue's also carry message group ids (docs/model.md §2)."""

    message_groups: Int | None = Field(
        None,
        ge=1,
        description="FIFO queues: distinct message group ids (MessageGroupId) the producers use (default 1).",
    )
    group_skew: Number = Field(
        0.0, ge=0, description="FIFO queues: Zipf exponent of group popularity (0: uniform; 1.2: hot groups)."
    )
    duplicate_rate: Number = Field(
        0.0,
        ge=0,
        lt=1,
        description="FIFO queues: share of sends that are producer retries of a message sent within the "
        "5-minute deduplication interval; SQS accepts and drops them (counted, not delivered).",
    )


#: What each source's ``encryption`` may be.
Encryption = Literal["none", "managed", "kms"]


def _kms_key() -> Any:
    return Field(
        None,
        description=f"The KMS key of `encryption: kms`: {KEY_FORMS} (`alias/aws/SERVICE` is the "
        "service's AWS managed key, which needs no grant).",
    )


def _owner() -> Any:
    return Field(
        None, description="Name of the account under `accounts` that owns it (default: the only one)."
    )


def _read_grants() -> Any:
    return Field(
        None,
        description="Accounts (names under `accounts`) whose functions the source's resource policy lets "
        "read it (a queue policy, a Kinesis stream policy). Null: not stated; a reader in another account "
        "then gets a warning naming the policy it needs (`esmsim iam` prints it).",
    )


def _checked_key(value: str | None) -> str | None:
    if value is not None:
        parse_kms_key(value)  # raises ValueError with the forms a key may take
    return value


def _key_fits(encryption: str, kms_key: str | None) -> None:
    """``kms_key`` comes with ``encryption: kms`` and only with it: AWS asks for a key only for SSE-KMS."""
    if encryption == "kms" and kms_key is None:
        raise key_error(("encryption",), f"kms needs kms_key ({KEY_FORMS})")
    if encryption != "kms" and kms_key is not None:
        raise key_error(
            ("kms_key",), f"only used with encryption: kms (this source's encryption is {encryption})"
        )


class SqsSource(Frozen):
    """An SQS queue: standard, or FIFO with ``fifo: true``."""

    type: Literal["sqs"] = Field(description="`sqs`: a standard queue (a FIFO queue with `fifo: true`).")
    fifo: bool = Field(
        False,
        description="A FIFO queue: order kept per message group, a group blocked while a message of it is "
        "in flight, 300 sends a second (docs/model.md §2).",
    )
    high_throughput: bool = Field(
        False,
        description="FIFO queues: high throughput mode (FifoThroughputLimit perMessageGroupId): the "
        "queue-wide send quota rises from 300 to 70,000 a second (us-east-1); a group's own 300 a second "
        "is a warning, not enforced (docs/model.md §2).",
    )
    visibility_timeout: WholeSeconds = aws(
        "SqsSource",
        "visibility_timeout",
        30.0,
        ge=0,
        le=43200,
        description="How long a received message stays invisible: the retry delay of a failed batch.",
    )
    retention: WholeSeconds = aws(
        "SqsSource",
        "retention",
        345600.0,
        ge=60,
        le=1209600,
        description="Messages older than this are deleted by SQS (expired).",
    )
    max_receive_count: Int | None = Field(
        None, ge=1, le=1000, description="Redrive to the queue's dead-letter queue after this many receives."
    )
    delivery_delay: WholeSeconds = aws(
        "SqsSource",
        "delivery_delay",
        0.0,
        ge=0,
        le=900,
        description="Delay before a new message is visible.",
    )
    max_message_size: Bytes = aws(
        "SqsSource",
        "max_message_size",
        float(SQS_MAX_MESSAGE_BYTES),
        ge=1024,
        le=SQS_MAX_MESSAGE_BYTES,
        description="Largest message; record sizes are cut to it.",
    )
    in_flight_limit: Int = Field(
        120_000,
        ge=1,
        description="Most messages in flight (received, not yet deleted or visible again); SQS documents "
        "about 120,000 for a standard queue. A receive at the limit returns nothing.",
    )
    traffic: SqsTraffic = Field(default_factory=SqsTraffic, description="What producers send.")
    account: str | None = _owner()
    read_grants: tuple[str, ...] | None = _read_grants()
    encryption: Encryption = Field(
        "managed",
        description="At rest: `managed` is SSE-SQS, SQS-owned keys (AWS's default for new queues; no "
        "permission needed); `kms` is SSE-KMS with `kms_key` (a reader needs kms:Decrypt on a customer "
        "managed key); `none` is unencrypted.",
    )
    kms_key: str | None = _kms_key()

    _kms_key_form = field_validator("kms_key")(_checked_key)

    @model_validator(mode="after")
    def _key_named(self) -> SqsSource:
        _key_fits(self.encryption, self.kms_key)
        if not self.fifo:
            t = self.traffic
            for key, used in (
                ("message_groups", t.message_groups is not None),
                ("group_skew", t.group_skew != 0),
                ("duplicate_rate", t.duplicate_rate != 0),
            ):
                if used:
                    raise key_error(("traffic", key), "only FIFO queues have message groups (set fifo: true)")
            if self.high_throughput:
                raise key_error(("high_throughput",), "only FIFO queues have it (set fifo: true)")
        return self


#: Amazon MQ's engines, and how many concurrent invocations one mapping of each runs by default
#: (AWS: 5 for ActiveMQ, 1 for RabbitMQ, raised per mapping on request; docs/model.md §17).
MQ_ENGINES = {"activemq": 5, "rabbitmq": 1}
#: Redeliveries before a broker gives up on a message, by engine (docs/model.md §17): Lambda's
#: fixed ActiveMQ redelivery policy (maximumRedeliveries 6); a RabbitMQ queue requeues without
#: limit unless a quorum queue's delivery-limit is set (-1: no limit).
MQ_REDELIVERIES = {"activemq": 6, "rabbitmq": -1}


class MqSource(Frozen):
    """An Amazon MQ broker queue (ActiveMQ or RabbitMQ), read by a mapping (docs/model.md §17)."""

    type: Literal["mq"] = Field(description="`mq`: a queue on an Amazon MQ broker.")
    engine: Literal["activemq", "rabbitmq"] = Field(
        description="The broker engine: `activemq` (5 concurrent invocations a mapping) or `rabbitmq` (1)."
    )
    message_ttl: Seconds | None = Field(
        None,
        gt=0,
        description="Messages older than this expire in the broker, waiting or being retried (JMS "
        "expiration, RabbitMQ x-message-ttl; null: never).",
    )
    max_redeliveries: Int | None = Field(
        None,
        ge=-1,
        description="Redeliveries of a failing message before the broker gives up on it (-1: no limit; "
        "null: the engine's default, 6 for ActiveMQ (Lambda's redelivery policy), no limit for RabbitMQ "
        "(set a quorum queue's delivery-limit here)).",
    )
    dead_letter: bool | None = Field(
        None,
        description="A message past max_redeliveries goes to a dead-letter queue (true) or is dropped "
        "(false); null: the engine's default, ActiveMQ.DLQ for ActiveMQ, dropped for RabbitMQ (a quorum "
        "queue drops it unless a dead-letter exchange is set).",
    )
    record_overhead: Bytes = Field(
        500.0,
        ge=0,
        description="Event metadata per message toward the 6 MB payload (message id, type, timestamps, "
        "destination; estimated from AWS's sample MQ events).",
    )
    payload_expansion: Number = Field(
        4 / 3, ge=1, description="Payload bytes per message byte in the event (Lambda base64-encodes data)."
    )
    traffic: Traffic = Field(default_factory=Traffic, description="What producers send.")
    account: str | None = _owner()

    @property
    def redeliveries(self) -> int:
        """Redeliveries before the broker gives up (-1: no limit), the engine's default filled in."""
        return MQ_REDELIVERIES[self.engine] if self.max_redeliveries is None else self.max_redeliveries

    @property
    def dead_letters(self) -> bool:
        """Whether a message past the limit is dead-lettered (else dropped), the default filled in."""
        return self.engine == "activemq" if self.dead_letter is None else self.dead_letter


class _StreamSource(Frozen):
    """What Kinesis and DynamoDB streams share: shards, retention, read limits, the event format."""

    shards: Int = Field(ge=1, le=10000, description="Open shards.")
    propagation_delay: Seconds = Field(
        0.1,
        ge=0,
        description=(
            "From a put to when GetRecords can return it (assumption: AWS quotes ~200 ms average for one "
            "polling consumer, which includes its polling)."
        ),
    )
    idle_poll_interval: Seconds = Field(1.0, gt=0, description="How often an idle shard is polled.")
    read_calls_per_second: PerSecond | None = Field(
        5.0,
        gt=0,
        description="GetRecords calls a shard serves per second, shared by its consumers (null: no limit).",
    )
    read_bytes_per_second: Bytes | None = Field(
        2.0 * 1024 * 1024,
        gt=0,
        description="Bytes a shard serves per second to its consumers together (null: no limit).",
    )
    max_records_per_call: Int = Field(10000, ge=1, description="Records one GetRecords call returns at most.")
    max_bytes_per_call: Bytes = Field(
        10.0 * 1024 * 1024, gt=0, description="Bytes one GetRecords call returns at most."
    )
    record_overhead: Bytes = Field(
        350.0, ge=0, description="Event metadata per record counted toward the 6 MB payload (assumption)."
    )
    payload_expansion: Number = Field(
        4 / 3, ge=1, description="Payload bytes per record byte in the event (Kinesis base64-encodes data)."
    )
    traffic: StreamTraffic = Field(default_factory=StreamTraffic, description="What producers write.")
    account: str | None = _owner()
    read_grants: tuple[str, ...] | None = _read_grants()
    encryption: Encryption = Field(
        "none",
        description="Server-side encryption: `managed` uses the AWS managed key aws/kinesis (no "
        "permission needed); `kms` uses `kms_key` (a reader needs kms:Decrypt on a customer managed key); "
        "`none` (AWS's default) leaves records unencrypted.",
    )
    kms_key: str | None = _kms_key()

    _kms_key_form = field_validator("kms_key")(_checked_key)

    @model_validator(mode="after")
    def _key_named(self) -> _StreamSource:
        _key_fits(self.encryption, self.kms_key)
        return self

    @property
    def shard_read_calls_per_second(self) -> float | None:
        """GetRecords calls a shard serves per second to its readers together."""
        return self.read_calls_per_second


class KinesisSource(_StreamSource):
    """A Kinesis data stream (provisioned capacity)."""

    type: Literal["kinesis"] = Field(description="`kinesis`: a Kinesis data stream.")
    retention: Seconds = Field(
        86400.0,
        ge=86400,
        le=8760 * 3600,
        description="Records older than this leave the stream (24 h to 365 d).",
    )
    write_records_per_second: PerSecond | None = Field(
        1000.0,
        gt=0,
        description="Records a shard accepts per second; producers retry the excess (null: no limit).",
    )
    write_bytes_per_second: Bytes | None = Field(
        1024.0 * 1024, gt=0, description="Bytes a shard accepts per second (null: no limit)."
    )
    efo_propagation_delay: Seconds = Field(
        0.07, ge=0, description="Put to delivery for an enhanced fan-out consumer (AWS: ~70 ms typical)."
    )
    efo_bytes_per_second: Bytes = Field(
        2.0 * 1024 * 1024, gt=0, description="Each enhanced fan-out consumer's own read throughput per shard."
    )


class DynamoDBSource(_StreamSource):
    """A DynamoDB stream: 24 h retention, polled four times a second, no producer throttling modelled."""

    type: Literal["dynamodb"] = Field(description="`dynamodb`: a DynamoDB table's stream.")
    idle_poll_interval: Seconds = Field(
        0.25, gt=0, description="How often an idle shard is polled (AWS: 4 times a second)."
    )
    read_calls_per_second: PerSecond | None = Field(
        5.0,
        gt=0,
        description="GetRecords calls a second each reader of a shard makes at most (assumption: AWS "
        "gives no rate); the shard serves `readers_per_shard` times this, shared (null: no limit).",
    )
    readers_per_shard: Int = Field(
        2,
        ge=1,
        description="Readers a shard serves at full speed (AWS: no more than 2 processes per shard; "
        "more are throttled with LimitExceededException).",
    )
    read_bytes_per_second: Bytes | None = Field(
        None, gt=0, description="Bytes a shard serves per second (null: AWS documents no limit)."
    )
    max_records_per_call: Int = Field(
        1000, ge=1, le=1000, description="Records one GetRecords call returns at most."
    )
    max_bytes_per_call: Bytes = Field(
        1024.0 * 1024, gt=0, description="Bytes one GetRecords call returns at most (1 MB)."
    )
    record_overhead: Bytes = Field(
        400.0, ge=0, description="Event metadata per record (keys, sequence number, ...) (assumption)."
    )
    payload_expansion: Number = Field(1.0, ge=1, description="Payload bytes per record byte in the event.")
    encryption: Literal["managed", "kms"] = Field(
        "managed",
        description="The table's key, which also encrypts its stream (every table is encrypted): "
        "`managed` is the AWS owned key (AWS's default; no permission needed); `kms` is `kms_key`, "
        "alias/aws/dynamodb for the AWS managed key or a customer managed key (a stream reader needs "
        "kms:Decrypt on it).",
    )

    @property
    def retention(self) -> float:
        """DynamoDB streams keep records 24 hours."""
        return DYNAMODB_RETENTION_S

    @property
    def shard_read_calls_per_second(self) -> float | None:
        """GetRecords calls a shard serves per second to its readers together."""
        calls = self.read_calls_per_second
        return None if calls is None else calls * self.readers_per_shard


#: DynamoDB streams keep records for 24 hours, not configurable.
DYNAMODB_RETENTION_S = 86400.0


class KafkaSource(Frozen):
    """A Kafka topic: Amazon MSK or self-managed Apache Kafka (docs/model.md §16).

    Partitions play the part of a stream's shards (records hashed to them by key, kept in order);
    Lambda's Kafka pollers have no GetRecords quotas, so the read limits below are fixed to none.
    """

    type: Literal["kafka"] = Field(description="`kafka`: a Kafka topic (Amazon MSK or self-managed).")
    flavor: Literal["msk", "self_managed"] = Field(
        "msk",
        description="`msk`: an Amazon MSK cluster (EventSourceArn); `self_managed`: any other Kafka "
        "cluster (SelfManagedEventSource with bootstrap servers).",
    )
    partitions: Int = Field(ge=1, le=100000, description="Partitions of the topic.")
    retention: Seconds = Field(
        604800.0,
        gt=0,
        description="Records older than this leave the topic (Kafka's retention.ms; default 7 days).",
    )
    propagation_delay: Seconds = Field(
        0.01,
        ge=0,
        description="From a produce to when a consumer's fetch can return it (assumption).",
    )
    idle_poll_interval: Seconds = Field(
        0.01,
        gt=0,
        description="A new record reaches the poller within this of its arrival (a Kafka consumer's "
        "fetch is a long poll that returns when records arrive; assumption).",
    )
    max_records_per_call: Int = Field(10000, ge=1, description="Records one fetch returns at most.")
    max_bytes_per_call: Bytes = Field(
        50.0 * 1024 * 1024, gt=0, description="Bytes one fetch returns at most (Kafka's fetch.max.bytes)."
    )
    record_overhead: Bytes = Field(
        300.0, ge=0, description="Event metadata per record toward the 6 MB payload (topic, offset, ...)."
    )
    payload_expansion: Number = Field(
        4 / 3, ge=1, description="Payload bytes per record byte in the event (Lambda base64-encodes values)."
    )
    traffic: StreamTraffic = Field(default_factory=StreamTraffic, description="What producers write.")
    account: str | None = _owner()
    encryption: Encryption = Field(
        "managed",
        description="At rest: `managed` (MSK's AWS managed key, no permission needed), `kms` with "
        "`kms_key` (MSK decrypts for its clients: a reader needs no key grant), `none` (self-managed).",
    )
    kms_key: str | None = _kms_key()

    _kms_key_form = field_validator("kms_key")(_checked_key)

    @model_validator(mode="after")
    def _key_named(self) -> KafkaSource:
        _key_fits(self.encryption, self.kms_key)
        return self

    # What the stream engine reads of a stream's spec (esmsim.model.stream_source, stream_reader).
    @property
    def shards(self) -> int:
        """The partitions, which the stream engine treats as shards."""
        return self.partitions

    @property
    def read_calls_per_second(self) -> None:
        """Kafka has no GetRecords quota."""
        return None

    @property
    def read_bytes_per_second(self) -> None:
        """Kafka has no per-partition read quota Lambda hits."""
        return None

    @property
    def shard_read_calls_per_second(self) -> None:
        """Kafka has no GetRecords quota."""
        return None


#: SNS's largest message (and an SNS destination's): 256 KB.
SNS_MAX_MESSAGE_BYTES = 256 * 1024


class _PushSource(Frozen):
    """What S3, SNS and EventBridge share: they push events; Lambda invokes asynchronously (triggers)."""

    traffic: Traffic = Field(default_factory=Traffic, description="Events the service emits.")
    account: str | None = _owner()


def _handoff_failure_rate() -> Any:
    return Field(
        0.0,
        ge=0,
        lt=1,
        description="Probability that one hand-off attempt to Lambda fails and is retried by this service's "
        "own retry policy (Lambda accepts asynchronous invokes from AWS services without a rate limit, so "
        "failures are rare: an assumption, 0 by default).",
    )


class S3Source(_PushSource):
    """An S3 bucket's event notifications (ObjectCreated and the like), pushed to Lambda."""

    type: Literal["s3"] = Field(description="`s3`: a bucket's event notifications.")
    delivery_delay: DurationDist = Field(
        default_factory=lambda: LognormalDuration(dist="lognormal", median=1.0, p99=30.0),
        description="From the object event to Lambda accepting the notification (AWS: typically "
        "seconds, sometimes a minute or longer; the shape is an assumption).",
    )
    duplicate_rate: Number = Field(
        0.0,
        ge=0,
        le=1,
        description="Fraction of notifications delivered twice (AWS: at-least-once; the rate is a knob).",
    )


class SnsSource(_PushSource):
    """An SNS standard topic: every message goes to every subscription (`triggers`)."""

    type: Literal["sns"] = Field(description="`sns`: a standard topic.")
    delivery_delay: DurationDist = Field(
        default_factory=lambda: LognormalDuration(dist="lognormal", median=0.05, p99=0.5),
        description="From Publish to the subscriber accepting the message (AWS documents none: an "
        "assumption).",
    )
    handoff_failure_rate: Number = _handoff_failure_rate()
    encryption: Encryption = Field(
        "none",
        description="Server-side encryption: `managed` uses the AWS managed key aws/sns; `kms` uses "
        "`kms_key`; `none` (AWS's default) leaves messages unencrypted. SNS decrypts a message before "
        "delivering it, so a subscribed function needs no key permission.",
    )
    kms_key: str | None = _kms_key()

    _kms_key_form = field_validator("kms_key")(_checked_key)

    @model_validator(mode="after")
    def _key_named(self) -> SnsSource:
        _key_fits(self.encryption, self.kms_key)
        return self


class EventBridgeSource(_PushSource):
    """An EventBridge event bus and rule: matching events go to the rule's targets (`triggers`)."""

    type: Literal["eventbridge"] = Field(description="`eventbridge`: a bus whose rule targets a function.")
    delivery_delay: DurationDist = Field(
        default_factory=lambda: LognormalDuration(dist="lognormal", median=0.5, p99=2.0),
        description="From PutEvents to Lambda accepting the event (AWS documents none: an assumption).",
    )
    maximum_retry_attempts: Int = aws(
        "EventBridgeSource",
        "maximum_retry_attempts",
        185,
        ge=0,
        le=185,
        description="The target's retry policy: hand-off attempts after the first (AWS default 185).",
    )
    maximum_event_age: WholeSeconds = aws(
        "EventBridgeSource",
        "maximum_event_age",
        86400.0,
        ge=60,
        le=86400,
        description="The target's retry policy: an event older than this is not retried (24 h).",
    )
    retry_interval_max: Seconds = Field(
        480.0,
        gt=0,
        description="Longest wait between hand-off retries; waits double from 1 s up to it (AWS: "
        "exponential back-off with jitter, 185 attempts over 24 h; the cap is an assumption).",
    )
    handoff_failure_rate: Number = _handoff_failure_rate()


Source = Annotated[
    SqsSource
    | KinesisSource
    | DynamoDBSource
    | KafkaSource
    | MqSource
    | S3Source
    | SnsSource
    | EventBridgeSource,
    Field(discriminator="type"),
]
StreamSource = KinesisSource | DynamoDBSource
PushSource = S3Source | SnsSource | EventBridgeSource
#: The push sources' types, and what each is called in messages.
PUSH_TYPES = {"s3": "an S3 bucket", "sns": "an SNS topic", "eventbridge": "an EventBridge bus"}
