"""The ``sweep`` section of a scenario: its schema, and its expansion into validated points.

A scenario keeps its ``sweep`` section as plain data; :func:`parse_sweep` validates it here (so the
scenario package never imports the sweep package). ``grid`` takes the Cartesian product of its keys'
values, in the order the keys are written; ``zip`` lists vary together (the first values together,
then the second, ...) and multiply the grid. Keys are dotted paths with list indices, as for
``--set``, in snake_case or AWS's spelling. Every point is validated as a whole scenario up front:
one bad combination names its point and stops the sweep before it starts.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

from pydantic import Field, ValidationError, model_validator

from esmsim.errors import Issue, Path, ScenarioError, did_you_mean, show_value
from esmsim.keys import ALL_SUMMARY_KEYS
from esmsim.scenario.aws_names import entity_of, setting_of, spellings
from esmsim.scenario.base import Frozen, Int, Number, key_error
from esmsim.scenario.messages import issues_from_validation_error
from esmsim.scenario.overrides import Change, change, parse_key
from esmsim.scenario.scenario import build
from esmsim.scenario.where import Where

# --------------------------------------------------------------------------------------------------
# Schema


class Bound(Frozen):
    """Limits on one summary metric."""

    max: Number | None = Field(None, description="The metric must not exceed this.")
    min: Number | None = Field(None, description="The metric must be at least this.")


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
        for at, name in (("minimize",), self.minimize), *((("constraints", n), n) for n in self.constraints):
            if name not in ALL_SUMMARY_KEYS:
                raise key_error(
                    at, f"{name!r} is not a summary metric" + did_you_mean(name, list(ALL_SUMMARY_KEYS))
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
    replications: Int = Field(
        1, ge=1, description="Runs per configuration, each with its own random streams."
    )
    objective: Objective | None = Field(None, description="Constraints and the metric to minimise.")
    plot: SweepPlot = Field(default_factory=SweepPlot, description="Axes of the sweep's plots.")

    @model_validator(mode="after")
    def _consistent(self) -> Sweep:
        lengths = {len(v) for v in self.zip.values()}
        if len(lengths) > 1:
            raise ValueError(f"zip lists must all have the same length (got {sorted(lengths)})")
        settings: dict[Path, str] = {}
        for section, keys in (("grid", self.grid), ("zip", self.zip)):
            for key, values in keys.items():
                problem = _key_problem(key, values, self.grid if section == "zip" else None)
                if problem is None:
                    setting = _setting(parse_key(key))
                    if setting in settings:
                        problem = f"sets the same value as {settings[setting]}"
                    settings.setdefault(setting, key)
                if problem is not None:
                    raise key_error((section, key), problem)
        combos = list(zip(*self.zip.values(), strict=True))
        for i, combo in enumerate(combos):
            if _canonical(combo) in [_canonical(c) for c in combos[:i]]:
                raise key_error(
                    ("zip",), f"combination {i} repeats an earlier one: its runs would be the same"
                )
        swept = {**self.grid, **self.zip}
        for axis, chosen in (("x", self.plot.x), ("series", self.plot.series)):
            if chosen is not None and chosen not in swept:
                raise key_error(("plot", axis), f"{chosen!r} is not a swept key (swept: {', '.join(swept)})")
        return self


def _key_problem(key: str, values: tuple[Any, ...], grid: dict[str, Any] | None) -> str | None:
    """What is wrong with one swept key and its values, if anything (``grid``: None for a grid key)."""
    in_grid = grid is None
    try:
        path = parse_key(key)
    except ValueError as error:
        return str(error)
    if not values:
        return "give at least one value"
    if grid is not None and key in grid:
        return f"{key} is both in grid and in zip"
    if path == ("seed",):
        # Every point of a replication shares its random streams (common random numbers).
        return "seed cannot be swept: use sweep.replications for independent runs"
    if path[0] == "sweep":
        return "the sweep section cannot sweep itself"
    seen: list[str] = []
    for value in values if in_grid else ():  # a zip list may repeat a value: its combinations count
        if _canonical(value) in seen:
            return f"{show_value(value)} is listed twice: each value is one configuration"
        seen.append(_canonical(value))
    return None


def _canonical(value: Any) -> str:
    """A value as run ids see it (see :attr:`Point.key`)."""
    return json.dumps(value, sort_keys=True, default=str)


def _setting(path: Path) -> Path:
    """The setting a key path names, whatever its spelling: ``mappings[0].BatchSize`` -> batch_size."""
    found = entity_of(path)
    if found is not None:
        entity, relative, models = found
        key = setting_of(models, relative)
        if key is not None and relative in spellings(models, key):
            return (*entity, key)
    return path


def parse_sweep(raw: Any, where: Where | None = None) -> Sweep:
    """Validate a scenario's ``sweep`` section.

    Args:
        raw: The section as plain data (None: no sweep, one configuration).
        where: Where the scenario's keys came from, to locate problems at ``file:line``.

    Returns:
        The sweep.

    Raises:
        ScenarioError: One located issue per problem (``sweep.grid.KEY: ...``).
    """
    try:
        return Sweep.model_validate({} if raw is None else raw)
    except ValidationError as error:
        issues = issues_from_validation_error(error, root=Sweep, prefix=("sweep",))
    raise ScenarioError((where or Where()).place(issues)) from None


# --------------------------------------------------------------------------------------------------
# Expansion


@dataclass(frozen=True)
class Point:
    """One configuration of a sweep."""

    index: int  # its position in the sweep's list of points
    params: dict[str, Any]  # dotted key -> value, in the sweep's key order
    raw: dict[str, Any]  # the full scenario of this point, as plain data (no `sweep` section)

    @property
    def key(self) -> str:
        """A stable identity of the configuration (its parameters), independent of its index."""
        return json.dumps(self.params, sort_keys=True, default=str)

    def label(self) -> str:
        """``mappings[0].batch_size=10, functions.f.memory_mb=512``."""
        return label(self.params)

    def cells(self) -> dict[str, Any]:
        """The parameters as table cells (see :func:`cell`)."""
        return {key: cell(value) for key, value in self.params.items()}


def label(params: dict[str, Any]) -> str:
    """Parameters as ``key=value, key=value``, values as a scenario file writes them (``null``, JSON)."""
    return ", ".join(f"{k}={_written(v)}" for k, v in params.items())


def _written(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True)
    return str(value)


def cell(value: Any) -> Any:
    """A parameter value as a table cell: numbers and text stay as they are, anything else is JSON."""
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return json.dumps(value, sort_keys=True)


def run_id(point: Point, replication: int) -> str:
    """Identity of one run: its configuration and replication."""
    return hashlib.sha1(f"{point.key}|{replication}".encode()).hexdigest()[:16]


def combinations(sweep: Sweep) -> list[dict[str, Any]]:
    """Every parameter combination of a sweep, grid keys first, in order."""
    grid_keys = list(sweep.grid)
    zip_keys = list(sweep.zip)
    zipped = list(zip(*(sweep.zip[k] for k in zip_keys), strict=True)) if zip_keys else [()]
    out = []
    for grid_values in itertools.product(*(sweep.grid[k] for k in grid_keys)):
        for zip_values in zipped:
            out.append(
                {
                    **dict(zip(grid_keys, grid_values, strict=True)),
                    **dict(zip(zip_keys, zip_values, strict=True)),
                }
            )
    return out


def expand(
    raw: dict[str, Any], sweep: Sweep, *, file: str | None = None, where: Where | None = None
) -> list[Point]:
    """The sweep's points, each validated as a complete scenario.

    Args:
        raw: The scenario as plain data (its ``sweep`` section is left out of the points).
        sweep: The validated sweep section.
        file: The scenario file, for messages (when ``where`` is not given).
        where: Where the scenario's keys came from, to locate problems of the swept keys.

    Returns:
        One point per combination, in order.

    Raises:
        ScenarioError: A key names nothing in the scenario (located at the key's line), or a point is
            not a valid scenario (``sweep point 3 (mappings[0].batch_size=20000): ...``).
    """
    where = where or Where(file)
    base = {k: v for k, v in raw.items() if k != "sweep"}
    paths = {key: parse_key(key) for key in (*sweep.grid, *sweep.zip)}
    problems: list[Issue] = []
    for key, path in paths.items():
        # Checked once per key, not once per point: a key that names nothing fails every point alike.
        section = "grid" if key in sweep.grid else "zip"
        try:
            change(base, Change(path, {**sweep.grid, **sweep.zip}[key][0], key))
        except ScenarioError as error:
            problems += [Issue(("sweep", section, key), issue.message) for issue in error.issues]
    if problems:
        raise ScenarioError(where.place(problems))
    points = []
    for index, params in enumerate(combinations(sweep)):
        text = f"sweep point {index} ({label(params)})"
        try:
            built = build(base, where, [Change(paths[key], value, text) for key, value in params.items()])
        except ScenarioError as error:
            problems.extend(issue.located(where.file, None, text) for issue in error.issues)
            continue
        points.append(Point(index, params, built.data))
    if problems:
        raise ScenarioError(problems)
    return points


__all__ = [
    "Bound",
    "Objective",
    "Point",
    "Sweep",
    "SweepPlot",
    "cell",
    "combinations",
    "expand",
    "label",
    "parse_sweep",
    "run_id",
]
