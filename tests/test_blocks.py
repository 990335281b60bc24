"""Traffic is generated a block at a time as a run advances: the block size must change nothing.

Small blocks make every boundary case frequent: sources generating while pollers hold dealt
messages, FIFOs dropping received rows, lanes waiting for records not yet generated. Each run here
is compared, number for number, with the same scenario generated in the default blocks.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from esmsim.run import simulate
from esmsim.scenario.scenario import Scenario
from tests.helpers import merge

SQS: dict[str, Any] = {
    "name": "blocks-sqs",
    "duration": "3m",
    "seed": 4,
    "functions": {
        "f": {"timeout": 10, "duration": {"dist": "exponential", "mean": "80ms"}, "per_record": "1ms"}
    },
    "sources": {
        "q": {
            "type": "sqs",
            "visibility_timeout": 60,
            "max_receive_count": 3,
            "traffic": {"rate": "400/s", "initial_backlog": 300, "record_size": "2KB"},
        }
    },
    "mappings": [{"source": "q", "function": "f", "batch_size": 50, "batching_window": 1}],
}
STREAM: dict[str, Any] = {
    "name": "blocks-stream",
    "duration": "3m",
    "seed": 4,
    "functions": {"f": {"timeout": 10, "duration": {"dist": "exponential", "mean": "60ms"}}},
    "sources": {
        "s": {
            "type": "kinesis",
            "shards": 3,
            "traffic": {"rate": "300/s", "partition_keys": 50, "key_skew": 1.1},
        }
    },
    "mappings": [
        {
            "source": "s",
            "function": "f",
            "starting_position": "TRIM_HORIZON",
            "batch_size": 40,
            "batching_window": 1,
            "parallelization_factor": 3,
        }
    ],
}
CASES = {
    "sqs-window": SQS,
    "sqs-no-window": merge(SQS, {"mappings": [{"source": "q", "function": "f", "batch_size": 10}]}),
    "sqs-errors": merge(SQS, {"functions": {"f": {"errors": {"invocation_error_rate": 0.2}}}}),
    "stream-lanes": STREAM,
    "stream-efo": merge(
        STREAM, {"mappings": [{**STREAM["mappings"][0], "enhanced_fan_out": True, "batching_window": 0}]}
    ),
}


def same(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Keys whose values differ (floats within 1e-12 relative: only summation order may differ)."""
    differ = []
    for key, x in a.items():
        y = b[key]
        if isinstance(x, float) and isinstance(y, float):
            if math.isnan(x) and math.isnan(y):
                continue
            if math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-12):
                continue
        elif x == y:
            continue
        differ.append(f"{key}: {x} != {y}")
    return differ


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("chunk", [64, 1000])
def test_results_do_not_depend_on_the_block_size(
    name: str, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = Scenario.model_validate(CASES[name])
    default = simulate(scenario, tables=False).summary
    monkeypatch.setattr("esmsim.model.traffic.CHUNK", chunk)
    small = simulate(scenario, tables=False).summary
    assert same(default, small) == []
    assert small["records_in"] > 0
