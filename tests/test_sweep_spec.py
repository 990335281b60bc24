"""The sweep section is checked by ``esmsim validate`` like the rest of the file, located to its lines.

Reproducers of issue 8 ("validate does not check the sweep section", "an unparsable grid key has no
file:line", "duplicate grid values give duplicate run ids") and the move of the sweep schema to
``esmsim.sweep.spec``. Nothing here runs a simulation.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from esmsim.cli import main
from esmsim.errors import ScenarioError
from esmsim.scenario import Scenario
from esmsim.sweep import plan
from esmsim.sweep.spec import Sweep, parse_sweep, run_id

BASE = """\
name: orders
functions:
  orders: {timeout: 10}
sources:
  q: {type: sqs, visibility_timeout: 70, max_receive_count: 5, traffic: {rate: 20/s}}
mappings:
  - {source: q, function: orders, batching_window: 1}
sweep:
  grid:
    mappings[0].batch_size: [1, 20]
    functions.orders.memory_mb: [512, 1024, 2048]
  replications: 3
"""

RAW: dict[str, Any] = {
    "functions": {"f": {"timeout": 10}},
    "sources": {"q": {"type": "sqs", "visibility_timeout": 60}},
    "mappings": [{"source": "q", "function": "f", "batching_window": 1}],
    "sweep": {"grid": {"mappings[0].batch_size": [1, 20]}},
}


def validate(tmp_path: Path, text: str) -> tuple[str, Result]:
    path = tmp_path / "sweep.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path), CliRunner().invoke(main, ["validate", str(path)])


def test_validate_reports_the_expansion(tmp_path: Path) -> None:
    path, result = validate(tmp_path, BASE)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:2] == [
        f"{path}: ok: 'orders', 1 source(s), 1 function(s), 1 mapping(s)",
        "sweep: 6 configuration(s) x 3 replication(s) = 18 runs over mappings[0].batch_size, "
        "functions.orders.memory_mb",
    ]
    # The largest run is a batch-size-1 point: 20/s for the default hour is 72,000 records, each an
    # invocation at most.
    assert re.fullmatch(
        r"estimate of the largest run \(point 0\): records 72,000, invocations 72,000, events [\d,]+, "
        r"peak memory [\d.]+ [MG]B, about [\d.]+ s",
        lines[2],
    ), lines[2]
    assert len(lines) == 3


def test_the_bundled_sweep_validates(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["validate", str(Path(__file__).parents[1] / "scenarios" / "sqs-orders-sweep.yaml")]
    )
    assert result.exit_code == 0, result.output
    assert "sweep: 12 configuration(s) x 2 replication(s) = 24 runs" in result.stdout


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "  replications: 3",
            "  replications: 3\n  grdi: {}",
            "{path}:13: sweep.grdi: unknown key (did you mean 'grid'?)",
        ),
        ("  replications: 3", "  replications: 0", "{path}:12: sweep.replications: 0 is below the minimum 1"),
        (
            "  replications: 3",
            "  replications: true",
            "{path}:12: sweep.replications: true is not an integer",
        ),
        (
            "    mappings[0].batch_size: [1, 20]",
            "    mappings[0]]batch_size: [1, 20]",
            "{path}:10: sweep.grid.mappings[0]]batch_size: 'mappings[0]]batch_size' is not a key path (write "
            "e.g. mappings[0].batch_size=100 or functions.orders.memory_mb=2048; list indices are whole "
            "numbers in [])",
        ),
        (
            "    mappings[0].batch_size: [1, 20]",
            "    mappings[0].batch_size: [1, 20, 1]",
            "{path}:10: sweep.grid.mappings[0].batch_size: 1 is listed twice: each value is one "
            "configuration",
        ),
        (
            "    mappings[0].batch_size: [1, 20]",
            "    mappings[0].batch_size: []",
            "{path}:10: sweep.grid.mappings[0].batch_size: give at least one value",
        ),
        (
            "    mappings[0].batch_size: [1, 20]",
            "    seed: [1, 2]",
            "{path}:10: sweep.grid.seed: seed cannot be swept: use sweep.replications for independent runs",
        ),
        (
            "  replications: 3",
            "  replications: 3\n  objective: {minimize: latency_p99, constraints: {records_dlq: {max: 0}}}",
            "{path}:13: sweep.objective.minimize: 'latency_p99' is not a summary metric (did you mean "
            "'latency_p99_s'?)",
        ),
        (
            "  replications: 3",
            "  replications: 3\n  plot: {x: 'mappings[0].batch_siz'}",
            "{path}:13: sweep.plot.x: 'mappings[0].batch_siz' is not a swept key (swept: "
            "mappings[0].batch_size, functions.orders.memory_mb)",
        ),
        (
            "    mappings[0].batch_size: [1, 20]",
            "    mappings[3].batch_size: [1, 20]",
            "{path}:10: sweep.grid.mappings[3].batch_size: index 3 is out of range (mappings has 1 item)",
        ),
    ],
    ids=[
        "unknown",
        "replications",
        "bool",
        "key-syntax",
        "duplicate",
        "empty",
        "seed",
        "metric",
        "plot",
        "index",
    ],
)
def test_validate_checks_the_sweep_section(tmp_path: Path, old: str, new: str, expected: str) -> None:
    path, result = validate(tmp_path, BASE.replace(old, new))
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [expected.format(path=path)]
    assert result.stdout == ""


def test_a_bad_point_fails_validate(tmp_path: Path) -> None:
    _, result = validate(tmp_path, BASE.replace("batching_window: 1", "batching_window: 0"))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"sweep point {i} (mappings[0].batch_size=20, functions.orders.memory_mb={mb}): "
        "mappings[0].batch_size: 20 needs batching_window >= 1s: AWS rejects SQS batch sizes above 10 "
        "with a window of 0 (Maximum batch window in seconds must be greater than 0 if maximum batch "
        "size is greater than 10)"
        for i, mb in ((3, 512), (4, 1024), (5, 2048))
    ]


def test_duplicate_zip_combinations_are_refused() -> None:
    with pytest.raises(ValueError, match="combination 2 repeats an earlier one"):
        Sweep.model_validate({"zip": {"a": [1, 2, 1], "b": ["x", "y", "x"]}})
    # A value may repeat in one zip list as long as the combinations differ.
    assert Sweep.model_validate({"zip": {"a": [1, 2, 1], "b": ["x", "y", "z"]}}).zip["a"] == (1, 2, 1)


def test_run_ids_are_unique() -> None:
    raw = copy.deepcopy(RAW)
    raw["sweep"] = {
        "grid": {"mappings[0].batch_size": [1, 2, 5]},
        "zip": {"functions.f.memory_mb": [512, 1024]},
    }
    the_plan = plan(raw)
    ids = [run_id(p, r) for p in the_plan.points for r in range(the_plan.replications)]
    assert len(ids) == len(set(ids)) == 6


def test_the_scenario_hash_ignores_the_sweep_section() -> None:
    other = copy.deepcopy(RAW)
    other["sweep"] = {"grid": {"mappings[0].batch_size": [3, 4, 5]}, "replications": 4}
    assert plan(RAW).scenario_hash == plan(other).scenario_hash
    changed = copy.deepcopy(RAW)
    changed["duration"] = 60
    assert plan(changed).scenario_hash != plan(RAW).scenario_hash


def test_a_scenario_keeps_its_sweep_section_as_data() -> None:
    scenario = Scenario.model_validate(RAW)
    assert scenario.sweep == {"grid": {"mappings[0].batch_size": [1, 20]}}
    assert parse_sweep(scenario.sweep).grid == {"mappings[0].batch_size": (1, 20)}
    assert parse_sweep(None) == Sweep()


def test_parse_sweep_locates_its_errors() -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_sweep({"grid": {"a[": [1]}})
    assert [i.format() for i in caught.value.issues] == [
        "sweep.grid.a[: 'a[' is not a key path (write e.g. mappings[0].batch_size=100 or "
        "functions.orders.memory_mb=2048; list indices are whole numbers in [])"
    ]


def test_the_reference_example_is_a_valid_sweep_section() -> None:
    text = (Path(__file__).parents[1] / "scenarios" / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(sweep:.*?)```", text, re.S)
    assert block is not None
    sweep = parse_sweep(yaml.safe_load(block.group(1))["sweep"])
    assert (len(sweep.grid), len(sweep.zip), sweep.replications) == (2, 2, 3)
    assert sweep.plot.x == "mappings[0].batch_size"
