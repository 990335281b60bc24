"""Schema of the price table; its defaults come from ``esmsim/data/pricing-us-east-1.yaml``."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml
from pydantic import Field

from esmsim.scenario.base import Frozen, Number


def _load_defaults() -> dict[str, Any]:
    text = resources.files("esmsim").joinpath("data/pricing-us-east-1.yaml").read_text(encoding="utf-8")
    table = yaml.safe_load(text)
    assert isinstance(table, dict)
    return table


_DEFAULTS = _load_defaults()


def _price(key: str, description: str, **constraints: Any) -> Any:
    return Field(_DEFAULTS[key], description=description, **constraints)


class Pricing(Frozen):
    """Unit prices in USD. Defaults: us-east-1 list prices, first tier, no free tier (docs/pricing.md)."""

    lambda_request_per_million_usd: Number = _price(
        "lambda_request_per_million_usd", "Per million invocations.", ge=0
    )
    lambda_gb_second_x86_usd: Number = _price(
        "lambda_gb_second_x86_usd", "Per GB-second of duration, x86.", ge=0
    )
    lambda_gb_second_arm_usd: Number = _price(
        "lambda_gb_second_arm_usd", "Per GB-second of duration, Arm.", ge=0
    )
    lambda_provisioned_gb_second_x86_usd: Number = _price(
        "lambda_provisioned_gb_second_x86_usd",
        "Per GB-second of provisioned concurrency configured, x86.",
        ge=0,
    )
    lambda_provisioned_gb_second_arm_usd: Number = _price(
        "lambda_provisioned_gb_second_arm_usd",
        "Per GB-second of provisioned concurrency configured, Arm.",
        ge=0,
    )
    lambda_provisioned_duration_gb_second_x86_usd: Number = _price(
        "lambda_provisioned_duration_gb_second_x86_usd",
        "Per GB-second of duration on provisioned environments, x86.",
        ge=0,
    )
    lambda_provisioned_duration_gb_second_arm_usd: Number = _price(
        "lambda_provisioned_duration_gb_second_arm_usd",
        "Per GB-second of duration on provisioned environments, Arm.",
        ge=0,
    )
    lambda_billing_granularity_ms: Number = _price(
        "lambda_billing_granularity_ms", "Billed duration is rounded up to this.", gt=0
    )
    lambda_init_billed: bool = _price(
        "lambda_init_billed", "Whether cold-start INIT time is billed (it is since 2025-08-01)."
    )
    sqs_request_per_million_usd: Number = _price(
        "sqs_request_per_million_usd", "Per million SQS standard-queue requests.", ge=0
    )
    sqs_fifo_request_per_million_usd: Number = _price(
        "sqs_fifo_request_per_million_usd", "Per million SQS FIFO-queue requests.", ge=0
    )
    sqs_request_chunk_bytes: Number = _price(
        "sqs_request_chunk_bytes", "Each this many bytes of payload is billed as one request.", gt=0
    )
    sqs_event_poller_hour_usd: Number = _price(
        "sqs_event_poller_hour_usd", "Per event poller hour of an SQS mapping in provisioned mode.", ge=0
    )
    kafka_epu_hour_usd: Number = _price(
        "kafka_epu_hour_usd", "Per event poller unit (EPU) hour of a Kafka mapping in provisioned mode.", ge=0
    )
    month_hours: Number = _price("month_hours", "Hours in a billing month, for the monthly projection.", gt=0)
    kinesis_shard_hour_usd: Number = _price("kinesis_shard_hour_usd", "Per provisioned shard-hour.", ge=0)
    kinesis_put_payload_unit_per_million_usd: Number = _price(
        "kinesis_put_payload_unit_per_million_usd", "Per million PUT payload units (producers' cost).", ge=0
    )
    kinesis_put_payload_unit_bytes: Number = _price(
        "kinesis_put_payload_unit_bytes", "Size of a PUT payload unit (25 KB).", gt=0
    )
    kinesis_extended_retention_shard_hour_usd: Number = _price(
        "kinesis_extended_retention_shard_hour_usd",
        "Per shard-hour when retention exceeds 24 hours (up to 7 days; stored GB-months beyond that "
        "are not counted).",
        ge=0,
    )
    kinesis_efo_consumer_shard_hour_usd: Number = _price(
        "kinesis_efo_consumer_shard_hour_usd", "Per enhanced fan-out consumer-shard-hour.", ge=0
    )
    kinesis_efo_gb_usd: Number = _price(
        "kinesis_efo_gb_usd", "Per GB delivered to an enhanced fan-out consumer.", ge=0
    )
    sns_publish_per_million_usd: Number = _price(
        "sns_publish_per_million_usd",
        "Per million SNS publish requests, each 64 KB of payload one (topics' publishers, destinations).",
        ge=0,
    )
    eventbridge_event_per_million_usd: Number = _price(
        "eventbridge_event_per_million_usd",
        "Per million EventBridge custom events put, each 64 KB of payload one (publishers, destinations).",
        ge=0,
    )
    s3_put_per_thousand_usd: Number = _price(
        "s3_put_per_thousand_usd", "Per thousand S3 PUTs (on-failure destination).", ge=0
    )
