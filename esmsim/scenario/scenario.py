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


class Bound(Frozen):
    """Limits on one summary metric."""

    max: float | None = Field(None, description="The metric must not exceed this.")
    min: float | None = Field(None, description="The metric must be at least this.")


class Objective(Frozen):
    """What a sweep recommends: the configuration minimising a metric within constraints."""

    minimize: str = Field(
        "cost_per_month_usd", description="Summary metric to minimise (mean over replications)."
    )
    constraints: dict[str, Bound] = Field(
        default_factory=dict,
        description="Summary metric -> {max, min}, met by the mean over replications.",
    )

    @model_validator(mode="after")
    def _known_metrics(self) -> Objective:
        from esmsim.keys import ALL_SUMMARY_KEYS
        from esmsim.scenario.rules import did_you_mean

        for name in (self.minimize, *self.constraints):
            if name not in ALL_SUMMARY_KEYS:
                raise ValueError(
                    f"{name!r} is not a summary metric" + did_you_mean(name, list(ALL_SUMMARY_KEYS))
                )
        return self


class SweepPlot(Frozen):
    """Which swept keys the sweep's plots put on the x axis and on separate lines."""

    x: str | None = Field(None, description="Swept key for the x axis (default: the first grid key).")
    series: str | None = Field(
        None, description="Swept key drawn as one line per value (default: the second)."
    )


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
    objective: Objective | None = Field(None, description="Constraints and the metric to minimise.")
    plot: SweepPlot = Field(default_factory=SweepPlot, description="Axes of the sweep's plots.")

    @model_validator(mode="after")
    def _zip_lengths(self) -> Sweep:
        lengths = {len(v) for v in self.zip.values()}
        if len(lengths) > 1:
            raise ValueError(f"zip lists must all have the same length (got {sorted(lengths)})")
        for key, values in {**self.grid, **self.zip}.items():
            if not values:
                raise ValueError(f"{key}: give at least one value")
        overlap = set(self.grid) & set(self.zip)
        if overlap:
            raise ValueError(f"{', '.join(sorted(overlap))} is both in grid and in zip")
        if "seed" in self.grid or "seed" in self.zip:
            # Every point of a replication shares its random streams (common random numbers).
            raise ValueError("seed cannot be swept: use sweep.replications for independent runs")
        swept = {**self.grid, **self.zip}
        for axis, chosen in (("x", self.plot.x), ("series", self.plot.series)):
            if chosen is not None and chosen not in swept:
                raise ValueError(f"plot.{axis}: {chosen!r} is not a swept key (swept: {', '.join(swept)})")
        return self


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
    sources: dict[str, Source] = Field(
        min_length=1, description="Event sources (queues and streams) by name."
    )
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
                if kind in ("sqs", "kinesis", "dynamodb"):  # the source decides, never the user
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
