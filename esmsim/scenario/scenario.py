"""The top-level scenario: what to simulate, for how long, and what to sweep."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from esmsim.errors import ScenarioError
from esmsim.scenario.base import Frozen, Seconds
from esmsim.scenario.functions import Account, Function
from esmsim.scenario.mappings import Mapping
from esmsim.scenario.pricing import Pricing
from esmsim.scenario.sources import Source


class Sweep(Frozen):
    """Which knobs ``esmsim sweep`` varies (dotted keys, list indices allowed)."""

    grid: dict[str, tuple[Any, ...]] = Field(
        default_factory=dict, description="Dotted keys and the values to try; every combination runs."
    )
    zip: dict[str, tuple[Any, ...]] = Field(
        default_factory=dict, description="Dotted keys whose value lists vary together (equal lengths)."
    )
    replications: int = Field(
        1, ge=1, description="Runs per configuration, each with its own random streams."
    )


class Scenario(Frozen):
    """A system of sources, functions and mappings, and how to run it."""

    name: str = Field("scenario", description="Shown in reports and recorded with every result.")
    description: str = Field("", description="Free text: what the scenario is about.")
    duration: Seconds = Field(3600.0, gt=0, description="Simulated time.")
    warmup: Seconds = Field(
        0.0, ge=0, description="Excluded from latency percentiles and time-weighted means (not from counts)."
    )
    seed: int = Field(0, ge=0, description="Root of every random stream; same seed, same results.")
    account: Account = Field(default_factory=Account, description="The account's concurrency settings.")
    functions: dict[str, Function] = Field(min_length=1, description="Lambda functions by name.")
    sources: dict[str, Source] = Field(min_length=1, description="Event sources (queues) by name.")
    mappings: tuple[Mapping, ...] = Field(
        min_length=1, description="Event source mappings, source to function."
    )
    pricing: Pricing = Field(
        default_factory=Pricing, description="Unit prices (default: us-east-1 list prices)."
    )
    sweep: Sweep | None = Field(None, description="What `esmsim sweep` varies.")

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
                if kind in ("sqs", "kinesis", "dynamodb") and "source_type" not in mapping:
                    mapping = {**mapping, "source_type": kind}
            mappings.append(mapping)
        return {**data, "mappings": mappings}

    @model_validator(mode="after")
    def _aws_rules(self) -> Scenario:
        # Imported here: rules reads the finished models, the models do not need rules to exist.
        from esmsim.scenario.rules import check

        errors = [issue for issue in check(self) if issue.severity == "error"]
        if errors:
            # Not a ValueError: pydantic lets it through with the exact key paths intact.
            raise ScenarioError(errors)
        return self

    def function_of(self, mapping: Mapping) -> Function:
        """The function a mapping invokes."""
        return self.functions[mapping.function]

    def source_of(self, mapping: Mapping) -> Source:
        """The source a mapping reads."""
        return self.sources[mapping.source]
