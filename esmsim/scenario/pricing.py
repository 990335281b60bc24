"""Schema of the price table; its defaults come from ``esmsim/data/pricing-us-east-1.yaml``."""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml
from pydantic import Field

from esmsim.scenario.base import Frozen


def _load_defaults() -> dict[str, Any]:
    text = resources.files("esmsim").joinpath("data/pricing-us-east-1.yaml").read_text(encoding="utf-8")
    table = yaml.safe_load(text)
    assert isinstance(table, dict)
    return table


_DEFAULTS = _load_defaults()


class Pricing(Frozen):
    """Unit prices in USD. Defaults: us-east-1 list prices, first tier, no free tier."""

    lambda_request_per_million_usd: float = Field(_DEFAULTS["lambda_request_per_million_usd"], ge=0)
    lambda_gb_second_x86_usd: float = Field(_DEFAULTS["lambda_gb_second_x86_usd"], ge=0)
    lambda_gb_second_arm_usd: float = Field(_DEFAULTS["lambda_gb_second_arm_usd"], ge=0)
    lambda_provisioned_gb_second_x86_usd: float = Field(
        _DEFAULTS["lambda_provisioned_gb_second_x86_usd"], ge=0
    )
    lambda_provisioned_gb_second_arm_usd: float = Field(
        _DEFAULTS["lambda_provisioned_gb_second_arm_usd"], ge=0
    )
    lambda_provisioned_duration_gb_second_x86_usd: float = Field(
        _DEFAULTS["lambda_provisioned_duration_gb_second_x86_usd"], ge=0
    )
    lambda_provisioned_duration_gb_second_arm_usd: float = Field(
        _DEFAULTS["lambda_provisioned_duration_gb_second_arm_usd"], ge=0
    )
    lambda_billing_granularity_ms: float = Field(_DEFAULTS["lambda_billing_granularity_ms"], gt=0)
    lambda_init_billed: bool = _DEFAULTS["lambda_init_billed"]
    sqs_request_per_million_usd: float = Field(_DEFAULTS["sqs_request_per_million_usd"], ge=0)
    sqs_request_chunk_bytes: float = Field(_DEFAULTS["sqs_request_chunk_bytes"], gt=0)
    month_hours: float = Field(_DEFAULTS["month_hours"], gt=0)
