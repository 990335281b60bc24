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

from esmsim.errors import Issue, Path, ScenarioError, format_path
from esmsim.scenario.loader import scenario_from_dict
from esmsim.scenario.overrides import apply_override, parse_key
from esmsim.scenario.scenario import Scenario, Sweep


@dataclass(frozen=True)
class Point:
    """One configuration of a sweep."""

    index: int
    params: dict[str, Any]  # dotted key -> value, in the sweep's key order
    raw: dict[str, Any]  # the full scenario of this point, as plain data (no `sweep` section)

    @property
    def key(self) -> str:
        """A stable identity of the configuration (its parameters), independent of its index."""
        return json.dumps(self.params, sort_keys=True, default=str)

    def label(self) -> str:
        """``mappings[0].batch_size=10, functions.f.memory_mb=512``."""
        return ", ".join(f"{k}={v}" for k, v in self.params.items())


def run_id(point: Point, replication: int) -> str:
    """Identity of one run: its configuration and replication."""
    return hashlib.sha1(f"{point.key}|{replication}".encode()).hexdigest()[:16]


def base_hash(raw: dict[str, Any]) -> str:
    """Digest of a scenario without its sweep section: a changed scenario is a different sweep."""
    base = {k: v for k, v in raw.items() if k != "sweep"}
    return hashlib.sha256(json.dumps(base, sort_keys=True, default=str).encode()).hexdigest()[:16]


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
        label = f"sweep point {index} ({', '.join(f'{k}={v}' for k, v in params.items())})"
        point_raw = base
        try:
            for key, value in params.items():
                point_raw = apply_override(point_raw, paths[key], value)
            scenario_from_dict(point_raw, file=file, origin={(): label})
        except ScenarioError as error:
            problems.extend(issue.located(file, None, label) for issue in error.issues)
            continue
        points.append(Point(index, params, point_raw))
    if problems:
        raise ScenarioError(problems)
    return points


def validated(point: Point) -> Scenario:
    """The point's scenario (validated again: cheap, and what a worker does on its side)."""
    return Scenario.model_validate(point.raw)


__all__ = ["Point", "base_hash", "combinations", "expand", "format_path", "run_id", "validated"]
