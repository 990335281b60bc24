"""Cost arithmetic: pure functions of a run's billed durations, request counts and the price table.

Lambda bills every invocation that ran (success or function error; throttles are free) one request
plus memory x billed duration, rounded up to the billing granularity (1 ms), at the architecture's
rate and the memory the invocation ran with, with the INIT phase of cold starts billed too since
2025-08-01 (docs/validation.md §6). Invocations on provisioned environments use the
provisioned-duration rate, and provisioned concurrency costs its configured GB-seconds over the run,
at each stage's settings when live changes set them. SQS bills every API request
(ReceiveMessage, empty long polls included, and DeleteMessageBatch), a request per 64 KB of
payload; a redrive to the DLQ is SQS's own move during a receive, not a request. A Kinesis stream
bills shard-hours (more with retention over 24 h), enhanced fan-out consumers their
consumer-shard-hours and data; Lambda's reads of a DynamoDB stream are free. Prices are first-tier
list prices without free tiers: marginal cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from esmsim.scenario.mappings import StreamMapping
from esmsim.scenario.pricing import Pricing
from esmsim.scenario.scenario import Scenario
from esmsim.scenario.shard_plan import ShardPlan
from esmsim.scenario.sources import DynamoDBSource, KinesisSource


def billed_seconds(seconds: np.ndarray, granularity_ms: float) -> np.ndarray:
    """Durations rounded up to the billing granularity, in seconds."""
    # The tiny subtraction keeps exact multiples (0.628 s -> 628 ms) from rounding up a unit.
    units = np.ceil(np.asarray(seconds) * 1000.0 / granularity_ms - 1e-9)
    return np.maximum(units, 0.0) * granularity_ms / 1000.0


def gb_second_rate(pricing: Pricing, architecture: str, provisioned: bool = False) -> float:
    """USD per GB-second of invocation duration."""
    arm = architecture == "arm64"
    if provisioned:
        return (
            pricing.lambda_provisioned_duration_gb_second_arm_usd
            if arm
            else (pricing.lambda_provisioned_duration_gb_second_x86_usd)
        )
    return pricing.lambda_gb_second_arm_usd if arm else pricing.lambda_gb_second_x86_usd


def lambda_compute_usd(
    run_s: np.ndarray,
    init_s: np.ndarray,
    on_provisioned: np.ndarray,
    memory_mb: int,
    architecture: str,
    pricing: Pricing,
) -> float:
    """Duration charges of a function's invocations (init billed when the price table says so)."""
    seconds = run_s + init_s if pricing.lambda_init_billed else run_s
    billed = billed_seconds(seconds, pricing.lambda_billing_granularity_ms)
    gb = memory_mb / 1024.0
    on_demand = float(billed[~on_provisioned].sum()) * gb * gb_second_rate(pricing, architecture)
    provisioned = float(billed[on_provisioned].sum()) * gb * gb_second_rate(pricing, architecture, True)
    return on_demand + provisioned


def lambda_requests_usd(invocations: float, pricing: Pricing) -> float:
    """Request charges."""
    return invocations * pricing.lambda_request_per_million_usd / 1e6


def provisioned_concurrency_usd(
    environments: int, memory_mb: int, architecture: str, seconds: float, pricing: Pricing
) -> float:
    """Keeping ``environments`` provisioned for ``seconds``."""
    arm = architecture == "arm64"
    rate = (
        pricing.lambda_provisioned_gb_second_arm_usd if arm else pricing.lambda_provisioned_gb_second_x86_usd
    )
    return environments * memory_mb / 1024.0 * seconds * rate


def provisioned_over_stages(scenario: Scenario) -> float:
    """Provisioned concurrency kept over the run: at each stage's settings, for as long as it lasts.

    A live change of a function's provisioned concurrency or memory (docs/model.md §14) is billed
    from when it takes effect: AWS bills the concurrency configured for the time it is configured.
    """
    timeline = [(0.0, scenario), *scenario.stages]
    usd = 0.0
    for k, (begin, stage) in enumerate(timeline):
        end = min(timeline[k + 1][0] if k + 1 < len(timeline) else scenario.duration, scenario.duration)
        if end <= begin:
            continue
        for spec in stage.functions.values():
            usd += provisioned_concurrency_usd(
                spec.provisioned_concurrency, spec.memory_mb, spec.architecture, end - begin, scenario.pricing
            )
    return usd


def sqs_requests_usd(requests: float, pricing: Pricing, fifo: float = 0.0) -> float:
    """Request charges (in 64 KB units), ``fifo`` of them made to FIFO queues at the FIFO price."""
    standard = (requests - fifo) * pricing.sqs_request_per_million_usd
    return (standard + fifo * pricing.sqs_fifo_request_per_million_usd) / 1e6


def kinesis_stream_usd(shards: int, retention_s: float, seconds: float, pricing: Pricing) -> float:
    """A provisioned stream's shard-hours, plus extended retention when it keeps records over 24 h."""
    hours = shards * seconds / 3600.0
    rate = pricing.kinesis_shard_hour_usd
    if retention_s > 86400.0:
        rate += pricing.kinesis_extended_retention_shard_hour_usd
    return hours * rate


def kinesis_put_units(sizes: np.ndarray, pricing: Pricing) -> float:
    """Producers' PUT payload units of records of these sizes: each rounded up to 25 KB units."""
    return float(np.ceil(np.asarray(sizes) / pricing.kinesis_put_payload_unit_bytes).clip(min=1).sum())


def kinesis_put_units_usd(units: float, pricing: Pricing) -> float:
    """Producers' PUT payload units, priced."""
    return units * pricing.kinesis_put_payload_unit_per_million_usd / 1e6


def efo_consumer_usd(shards: int, seconds: float, bytes_delivered: float, pricing: Pricing) -> float:
    """An enhanced fan-out consumer: consumer-shard-hours and data delivered."""
    hours = shards * seconds / 3600.0
    return (
        hours * pricing.kinesis_efo_consumer_shard_hour_usd
        + bytes_delivered / 2**30 * pricing.kinesis_efo_gb_usd
    )


def destination_usd(kind: str, deliveries: int, pricing: Pricing) -> float:
    """Sending ``deliveries`` records to a destination (a stream's on-failure, async on-success/failure/DLQ).

    A Lambda destination is one asynchronous invoke request; the destination function's own run is
    not modelled.
    """
    if kind == "sqs":
        return sqs_requests_usd(deliveries, pricing)
    if kind == "sns":
        return deliveries * pricing.sns_publish_per_million_usd / 1e6
    if kind == "eventbridge":
        return deliveries * pricing.eventbridge_event_per_million_usd / 1e6
    if kind == "lambda":
        return lambda_requests_usd(deliveries, pricing)
    return deliveries * pricing.s3_put_per_thousand_usd / 1e3


def publish_usd(kind: str, units: float, pricing: Pricing) -> float:
    """Publishers' requests to a push source: SNS publishes, EventBridge events (S3 notifications: free)."""
    if kind == "sns":
        return units * pricing.sns_publish_per_million_usd / 1e6
    if kind == "eventbridge":
        return units * pricing.eventbridge_event_per_million_usd / 1e6
    return 0.0


@dataclass(frozen=True)
class CostBreakdown:
    """A run's cost by part, in USD."""

    lambda_requests_usd: float
    lambda_compute_usd: float
    lambda_provisioned_usd: float
    source_usd: float  # the source's capacity and the requests mappings make (SQS calls, shard-hours, EFO)
    producer_usd: float  # producers' own writes (SendMessage, PUT payload units): reported, not in the total
    event_pollers_usd: float = 0.0  # provisioned mode: SQS event poller hours, Kafka EPU hours

    @property
    def total_usd(self) -> float:
        """What the mapping configuration costs: Lambda plus the source requests it causes."""
        return (
            self.lambda_requests_usd
            + self.lambda_compute_usd
            + self.lambda_provisioned_usd
            + self.source_usd
            + self.event_pollers_usd
        )

    def per_million(self, records: int) -> float:
        """Total cost per million records (NaN without records)."""
        return self.total_usd / records * 1e6 if records else float("nan")

    def per_month(self, run_seconds: float, pricing: Pricing) -> float:
        """The run's cost scaled to a billing month (730 h by default) of the same traffic."""
        return self.total_usd * pricing.month_hours * 3600.0 / run_seconds


@dataclass(frozen=True)
class Usage:
    """What a run used, as billed: the inputs of :func:`run_cost`."""

    invocations: int
    #: Per function (scenario order): billed GB-seconds of on-demand and provisioned invocations,
    #: without and with the INIT phase (each invocation's billed duration x the memory it ran with).
    billed_gb_s: np.ndarray
    billed_init_gb_s: np.ndarray
    billed_provisioned_gb_s: np.ndarray
    billed_provisioned_init_gb_s: np.ndarray
    sqs_requests: float  # billed ReceiveMessage (empty long polls included) and DeleteMessageBatch requests
    sqs_send_units: float  # producers' SendMessage requests (64 KB units)
    kinesis_put_units: float  # producers' PUT payload units
    efo_bytes: Mapping[int, float]  # per stream mapping with enhanced fan-out: bytes delivered
    #: Asynchronous invocation: requests billed beyond one for events over 256 KB, records sent to
    #: destinations and dead-letter queues (by target type), publishers' requests (by push source type).
    async_extra_requests: float = 0.0
    async_deliveries: Mapping[str, int] = field(default_factory=dict)
    #: Stream mappings' discarded batches sent to their on-failure destination, by target type.
    on_failure_deliveries: Mapping[str, int] = field(default_factory=dict)
    #: Event poller seconds billed for SQS mappings in provisioned mode (each at least a minute).
    event_poller_s: float = 0.0
    #: EPU-seconds billed for Kafka mappings in provisioned mode (each unit at least a minute).
    kafka_epu_s: float = 0.0
    publish_units: Mapping[str, float] = field(default_factory=dict)
    #: Of ``sqs_requests`` and ``sqs_send_units``, those made to FIFO queues (priced as FIFO requests).
    sqs_fifo_requests: float = 0.0
    sqs_fifo_send_units: float = 0.0


def run_cost(scenario: Scenario, usage: Usage) -> CostBreakdown:
    """A run's cost by part (docs/model.md §8)."""
    pricing = scenario.pricing
    compute = 0.0
    init = pricing.lambda_init_billed
    for i, spec in enumerate(scenario.functions.values()):
        on_demand_gb_s = float((usage.billed_init_gb_s if init else usage.billed_gb_s)[i])
        on_pc_gb_s = float((usage.billed_provisioned_init_gb_s if init else usage.billed_provisioned_gb_s)[i])
        compute += on_demand_gb_s * gb_second_rate(pricing, spec.architecture)
        compute += on_pc_gb_s * gb_second_rate(pricing, spec.architecture, True)
    provisioned = provisioned_over_stages(scenario)
    source = sqs_requests_usd(usage.sqs_requests, pricing, usage.sqs_fifo_requests)
    producer = sqs_requests_usd(usage.sqs_send_units, pricing, usage.sqs_fifo_send_units)
    producer += kinesis_put_units_usd(usage.kinesis_put_units, pricing)
    for kind, units in usage.publish_units.items():
        producer += publish_usd(kind, units, pricing)
    for kind, deliveries in usage.async_deliveries.items():
        source += destination_usd(kind, deliveries, pricing)
    for kind, batches in usage.on_failure_deliveries.items():
        source += destination_usd(kind, batches, pricing)  # one record per discarded stream batch
    # Shard-hours of the open shards, each shard count for as long as it stood (live changes).
    end = scenario.duration
    shard_s = {
        name: ShardPlan.of(name, scenario, scenario.stages, end).shard_seconds(end)
        for name, stream in scenario.sources.items()
        if isinstance(stream, KinesisSource)
    }
    for name, stream in scenario.sources.items():
        if isinstance(stream, KinesisSource):
            source += kinesis_stream_usd(1, stream.retention, shard_s[name], pricing)
    for i, mapping in enumerate(scenario.mappings):
        stream = scenario.sources[mapping.source]
        if not isinstance(mapping, StreamMapping) or not isinstance(stream, KinesisSource | DynamoDBSource):
            continue
        if mapping.enhanced_fan_out:
            bytes_delivered = usage.efo_bytes.get(i, 0.0)
            source += efo_consumer_usd(1, shard_s[mapping.source], bytes_delivered, pricing)
    return CostBreakdown(
        lambda_requests_usd(usage.invocations + usage.async_extra_requests, pricing),
        compute,
        provisioned,
        source,
        producer,
        usage.event_poller_s / 3600.0 * pricing.sqs_event_poller_hour_usd
        + usage.kafka_epu_s / 3600.0 * pricing.kafka_epu_hour_usd,
    )
