"""The fields of a scenario: what to simulate and for how long (the rules come on top, in scenario.py).

Kept apart from :class:`~esmsim.scenario.scenario.Scenario` so the cross-key rules (rules.py) and the
error messages (messages.py) can read the schema while the scenario runs them: imports flow one way.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from esmsim.scenario.base import Frozen, Int, Seconds, key_error
from esmsim.scenario.functions import Account, Function
from esmsim.scenario.live import LiveChange
from esmsim.scenario.mappings import Mapping
from esmsim.scenario.pricing import Pricing
from esmsim.scenario.sources import Source
from esmsim.scenario.triggers import Trigger

#: The one account's name when a scenario gives ``account`` rather than ``accounts``.
DEFAULT_ACCOUNT = "default"
#: Seeds are stored as signed 64-bit integers in result tables (runs.parquet): seeds stay below.
SEED_LIMIT = 2**63


class System(Frozen):
    """A system of sources, functions and mappings, and how to run it."""

    name: str = Field("scenario", description="Shown in reports and recorded with every result.")
    description: str = Field("", description="Free text: what the scenario is about.")
    duration: Seconds = Field(3600.0, gt=0, description="Simulated time.")
    warmup: Seconds = Field(
        0.0, ge=0, description="Excluded from latency percentiles and time-weighted means (not from counts)."
    )
    seed: Int = Field(
        0, ge=0, lt=SEED_LIMIT, description="Root of every random stream; same seed, same results."
    )
    account: Account = Field(
        default_factory=Account, description="The account's concurrency settings (one account)."
    )
    accounts: dict[str, Account] = Field(
        {},
        description="Several accounts by name, instead of `account`: each has its own concurrency pool, "
        "scaling and invoke-rate quota; functions and sources name theirs.",
    )
    functions: dict[str, Function] = Field(min_length=1, description="Lambda functions by name.")
    sources: dict[str, Source] = Field(
        min_length=1, description="Event sources (queues, streams, buckets, topics, buses) by name."
    )
    mappings: tuple[Mapping, ...] = Field(
        (), description="Event source mappings (SQS, Kinesis, DynamoDB), source to function."
    )
    triggers: tuple[Trigger, ...] = Field(
        (),
        description="Pushes (S3, SNS, EventBridge) to a function, invoked asynchronously, or SNS to a queue.",
    )
    changes: tuple[LiveChange, ...] = Field(
        (), description="Keys set during the run, in time order (docs/model.md §14)."
    )
    update_delay: Seconds = Field(
        5.0,
        ge=0,
        description="From a change to its effect: AWS applies updates asynchronously and documents no "
        "delay (an assumption).",
    )
    pricing: Pricing = Field(
        default_factory=Pricing, description="Unit prices (default: us-east-1 list prices)."
    )
    sweep: dict[str, Any] | None = Field(
        None,
        description=(
            "What `esmsim sweep` varies (below); checked by `esmsim validate` and `esmsim sweep`, ignored "
            "by `esmsim run`."
        ),
    )

    @property
    def all_accounts(self) -> dict[str, Account]:
        """The accounts by name: ``accounts``, or the one ``account`` (named ``default``)."""
        return dict(self.accounts) if self.accounts else {DEFAULT_ACCOUNT: self.account}

    def account_name(self, owner: str | None) -> str:
        """The account an entity names (``owner``), or the only account when it names none."""
        if owner is not None:
            return owner
        return next(iter(self.all_accounts)) if len(self.all_accounts) == 1 else DEFAULT_ACCOUNT

    def function_account(self, function: str) -> Account:
        """The account a function runs in."""
        return self.all_accounts[self.account_name(self.functions[function].account)]

    def source_account(self, source: str) -> Account:
        """The account that owns a source."""
        return self.all_accounts[self.account_name(self.sources[source].account)]

    @model_validator(mode="after")
    def _something_consumes(self) -> System:
        if not self.mappings and not self.triggers:
            raise key_error(("mappings",), "give at least one mapping (or a trigger, for a push source)")
        return self

    @model_validator(mode="before")
    @classmethod
    def _mapping_source_types(cls, data: Any) -> Any:
        """Tell each mapping the type of the source it reads: it decides which keys the mapping takes."""
        if not isinstance(data, dict) or not isinstance(data.get("mappings"), list | tuple):
            return data
        raw_sources = data.get("sources")
        sources: dict[Any, Any] = raw_sources if isinstance(raw_sources, dict) else {}
        mappings = []
        for mapping in data["mappings"]:
            if isinstance(mapping, dict):
                source = (
                    sources.get(mapping.get("source")) if isinstance(mapping.get("source"), str) else None
                )
                kind = source.get("type") if isinstance(source, dict) else None
                # The source decides, never the user.
                if kind in ("sqs", "kinesis", "dynamodb", "kafka", "mq"):
                    mapping = {**mapping, "source_type": kind}
            mappings.append(mapping)
        return {**data, "mappings": mappings}
