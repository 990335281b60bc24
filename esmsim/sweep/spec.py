"""Expanding a sweep into points, each a complete scenario validated before anything runs.

``grid`` takes the Cartesian product of its keys' values, in the order the keys are written;
``zip`` lists vary together (the first values together, then the second, ...) and multiply the grid.
Keys are dotted paths with list indices, as for ``--set``. Every point is validated as a whole
scenario up front: one bad combination names its point and stops the sweep before it starts.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

from esmsim.errors import Issue, Path, ScenarioError
from esmsim.scenario.loader import scenario_from_dict
from esmsim.scenario.overrides import apply_override, parse_key
from esmsim.scenario.scenario import Sweep


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
    """Parameters as ``key=value, key=value``."""
    return ", ".join(f"{k}={v}" for k, v in params.items())


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


def expand(raw: dict[str, Any], sweep: Sweep, *, file: str | None = None) -> list[Point]:
    """The sweep's points, each validated as a complete scenario.

    Raises:
        ScenarioError: A key does not parse or a point is not a valid scenario; each issue names the
            point (``sweep point 3 (mappings[0].batch_size=20000): ...``).
    """
    base = {k: v for k, v in raw.items() if k != "sweep"}
    paths: dict[str, Path] = {}
    problems: list[Issue] = []
    for key in (*sweep.grid, *sweep.zip):
        try:
            paths[key] = parse_key(key)
        except ValueError as error:
            problems.append(Issue(("sweep", "grid" if key in sweep.grid else "zip", key), str(error)))
    if problems:
        raise ScenarioError(problems)
    points = []
    for index, params in enumerate(combinations(sweep)):
        where = f"sweep point {index} ({label(params)})"
        point_raw = base
        try:
            for key, value in params.items():
                point_raw = apply_override(point_raw, paths[key], value)
            scenario_from_dict(point_raw, file=file, origin={(): where})
        except ScenarioError as error:
            problems.extend(issue.located(file, None, where) for issue in error.issues)
            continue
        points.append(Point(index, params, point_raw))
    if problems:
        raise ScenarioError(problems)
    return points


__all__ = ["Point", "cell", "combinations", "expand", "label", "run_id"]
