"""The resources table's ``limit``: the highest cap a function or mapping had over the run.

Live changes may raise a cap mid-run (docs/model.md §14): the row must not report the cap the run
started with when the concurrency it shows went past it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from esmsim import simulate
from esmsim.scenario.scenario import Scenario


def row(result: Any, kind: str, start: str) -> Any:
    table = result.resources
    (found,) = table[(table["kind"] == kind) & table["name"].astype(str).str.startswith(start)].itertuples()
    return found


def test_raised_caps_are_the_limits_the_rows_report() -> None:
    s = Scenario.model_validate(
        {
            "name": "raised",
            "duration": "4m",
            "functions": {
                "f": {"timeout": 10, "duration": "1s", "cold_start": "0s", "reserved_concurrency": 10},
                "g": {"timeout": 10, "duration": "1s", "cold_start": "0s"},
            },
            "sources": {
                "q": {"type": "sqs", "traffic": {"rate": "100/s"}},
                "s": {"type": "kinesis", "shards": 2, "traffic": {"rate": "100/s"}},
            },
            "mappings": [
                {"source": "q", "function": "f", "maximum_concurrency": 5},
                {"source": "s", "function": "g", "starting_position": "LATEST", "parallelization_factor": 2},
            ],
            "changes": [
                {
                    "at": "1m",
                    "set": {
                        "mappings[0].maximum_concurrency": 20,
                        "functions.f.reserved_concurrency": 30,
                        "sources.s.shards": 4,
                    },
                },
                {"at": "2m", "set": {"mappings[0].maximum_concurrency": 8}},
            ],
        }
    )
    result = simulate(s)
    assert row(result, "mapping", "mappings[0]").limit == 20
    assert row(result, "mapping", "mappings[0]").concurrency_max > 5  # above the starting cap
    assert row(result, "function", "f").limit == 30
    assert row(result, "mapping", "mappings[1]").limit == 4 * 2  # the children's shards × factor
    # A function that never had reserved concurrency has no limit of its own.
    assert pd.isna(row(result, "function", "g").limit)
