"""The command line: run and validate end to end, and the README's commands as written."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import esmsim
from esmsim.cli import main
from esmsim.keys import SUMMARY_KEYS
from esmsim.scenario.reference import reference

ROOT = Path(__file__).resolve().parent.parent
ORDERS = ROOT / "scenarios" / "sqs-orders.yaml"


def test_run_writes_summary_timeseries_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["run", str(ORDERS), "--out", str(out), "--set", "duration=3m", "--set", "warmup=30s", "--seed", "5"],
    )
    assert result.exit_code == 0, result.output
    assert "latency" in result.output
    assert "per million records" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(SUMMARY_KEYS) <= set(summary["summary"])
    assert summary["provenance"]["seed"] == 5
    assert summary["scenario"]["duration"] == 180
    s = summary["summary"]
    assert s["records_in"] == (
        s["records_succeeded"]
        + s["records_dlq"]
        + s["records_dropped"]
        + s["records_expired"]
        + s["records_in_flight_end"]
    )
    series = pd.read_parquet(out / "timeseries.parquet")
    assert len(series) == 3
    for column in (
        "Invocations",
        "Errors",
        "Throttles",
        "Duration",
        "ConcurrentExecutions",
        "ApproximateNumberOfMessagesVisible",
        "ColdStarts",
        "RecordsSucceeded",
        "RecordsDLQ",
    ):
        assert column in series.columns
    assert series["Invocations"].sum() == s["invocations"]
    per_mapping = pd.read_parquet(out / "mapping_timeseries.parquet")
    assert list(per_mapping["mapping"].unique()) == ["mappings[0]: orders-queue -> orders"]
    assert per_mapping["Invocations"].sum() == s["invocations"]
    assert not (out / "shard_timeseries.parquet").exists()  # an SQS scenario has no shards
    png = (out / "timeseries.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_run_without_plot_and_same_seed_same_summary(tmp_path: Path) -> None:
    args = ["run", str(ORDERS), "--set", "duration=2m", "--set", "warmup=0s", "--no-plot", "--seed", "3"]
    first = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "a")])
    second = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "b")])
    assert first.exit_code == second.exit_code == 0
    assert not (tmp_path / "a" / "timeseries.png").exists()
    a = json.loads((tmp_path / "a" / "summary.json").read_text())["summary"]
    b = json.loads((tmp_path / "b" / "summary.json").read_text())["summary"]
    assert a == b


def test_run_with_a_bad_override_exits_2_with_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["run", str(ORDERS), "--set", "mappings[0].batch_size=20000"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "--set mappings[0].batch_size: mappings[0].batch_size: 20000 is above the maximum 10000"
    )
    assert "Traceback" not in result.output


def test_scenario_reference_is_up_to_date() -> None:
    # scenarios/README.md is generated from the schema; regenerate it with
    # `python -m esmsim.scenario.reference > scenarios/README.md` after changing a model.
    assert (ROOT / "scenarios" / "README.md").read_text() == reference()


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"## Two commands.*?```bash\n(.*?)```.*?```bash\n(.*?)```", text, re.S)
    assert blocks, "README.md must keep its two commands under '## Two commands'"
    return [block.strip() for block in blocks[0]]


def test_readme_main_command_runs_as_written(tmp_path: Path) -> None:
    install, run = _readme_commands()[0].split(" && ")
    assert install.startswith("pip install -e .")
    # The package is installed in this environment already; run the rest exactly as written, from
    # a copy of the repository's scenarios so it writes its `out` there. The copy simulates 6
    # minutes instead of 30 (the command, its 12 configurations and its outputs are the same): the
    # full horizon would make this one test half of the suite's time.
    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")
    sweep_file = tmp_path / "scenarios" / "sqs-orders-sweep.yaml"
    text = sweep_file.read_text()
    assert "\nduration: 30m\nwarmup: 5m\n" in text
    sweep_file.write_text(text.replace("\nduration: 30m\nwarmup: 5m\n", "\nduration: 6m\nwarmup: 1m\n"))
    argv = shlex.split(run)
    assert argv[0] == "esmsim"
    done = subprocess.run(
        [sys.executable, "-m", "esmsim", *argv[1:]], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    out = tmp_path / argv[argv.index("--out") + 1]
    for name in (
        "runs.parquet",
        "aggregate.parquet",
        "manifest.json",
        "latency.png",
        "cost.png",
        "pareto.png",
    ):
        assert (out / name).exists(), name
    assert "cheapest configuration meeting the objective" in done.stdout


def test_readme_test_command_is_what_ci_runs() -> None:
    test_command = _readme_commands()[1]
    assert test_command in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["validate", "--help"], ["--version"]])
def test_help_and_version(args: list[str]) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0
    assert result.output
    if args == ["--version"]:
        assert esmsim.__version__ in result.output


def test_readme_scenario_example_is_valid(tmp_path: Path) -> None:
    block = re.search(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block is not None
    path = tmp_path / "example.yaml"
    path.write_text(block.group(1))
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output
