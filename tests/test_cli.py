"""The command line: run and validate end to end, and the README's commands as written."""

from __future__ import annotations

import json
import math
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
from esmsim import load_scenario, simulate
from esmsim.cli import main
from esmsim.keys import ALL_SUMMARY_KEYS, SUMMARY_KEYS
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
    # The file holds what a run of the same scenario and seed returns (NaN written as null).
    again = simulate(load_scenario(ORDERS, ["duration=3m", "warmup=30s"]), seed=5).summary
    assert summary["summary"] == {
        k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in again.items()
    }
    assert summary["latency_method"].startswith("exact")
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


def test_run_refuses_a_broken_sweep_section_it_would_otherwise_carry(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(ORDERS.read_text() + "sweep:\n  grid:\n    mappings[0].batch_size: 7\n")
    line_number = len(ORDERS.read_text().splitlines()) + 3
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    expected = f"{path}:{line_number}: sweep.grid.mappings[0].batch_size: 7 is not a list"
    assert result.stderr.strip() == expected
    assert not (tmp_path / "out").exists()


def test_scenario_reference_is_up_to_date() -> None:
    # scenarios/README.md is generated from the schema; regenerate it with
    # `python -m esmsim.scenario.reference > scenarios/README.md` after changing a model.
    assert (ROOT / "scenarios" / "README.md").read_text() == reference()


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"## Two commands.*?```bash\n(.*?)```.*?```bash\n(.*?)```", text, re.S)
    assert blocks, "README.md must keep its two commands under '## Two commands'"
    return [block.strip() for block in blocks[0]]


#: The horizon the README's sweep is run with here, by ``--stats`` level: the command, its 12
#: configurations x 2 replications, its executor and its outputs are the ones written; only the
#: simulated time is shorter than the file's 30 minutes (the full horizon would make this one test
#: half of the suite's time). One minute (15 s of it warm-up) still runs every configuration
#: through the executor, the journal, the aggregate, the objective and the plots: the sweep notebook
#: (notebooks/sweep.ipynb) reads the same sweep's numbers over 5 minutes. ``--stats full`` runs the
#: 6 minutes this test used before (about 100 s on 2 cores, against about 15 s).
README_SWEEP_HORIZON = {"quick": "\nduration: 1m\nwarmup: 15s\n", "full": "\nduration: 6m\nwarmup: 1m\n"}


def test_readme_main_command_runs_as_written(tmp_path: Path, stats_level: str) -> None:
    install, run = _readme_commands()[0].split(" && ")
    assert install.startswith("pip install -e .")
    # The package is installed in this environment already; run the rest exactly as written, from
    # a copy of the repository's scenarios so it writes its `out` there, on a shorter horizon.
    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")
    sweep_file = tmp_path / "scenarios" / "sqs-orders-sweep.yaml"
    text = sweep_file.read_text()
    assert "\nduration: 30m\nwarmup: 5m\n" in text
    sweep_file.write_text(text.replace("\nduration: 30m\nwarmup: 5m\n", README_SWEEP_HORIZON[stats_level]))
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
    runs = pd.read_parquet(out / "runs.parquet")
    assert len(runs) == 24  # 12 configurations x 2 replications, every one run
    assert runs["error"].isna().all()
    assert "cheapest configuration meeting the objective" in done.stdout


def test_run_trace_writes_the_event_tables(tmp_path: Path) -> None:
    # Reserved concurrency 2 under 20 messages a second: throttles, each with AWS's reason.
    out = tmp_path / "out"
    shared = ROOT / "scenarios" / "sqs-shared-reserved.yaml"
    args = ["run", str(shared), "--out", str(out), "--set", "duration=2m", "--set", "warmup=0s", "--trace"]
    result = CliRunner().invoke(main, [*args, "--no-plot"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())["summary"]
    invocations = pd.read_parquet(out / "invocations.parquet")
    throttles = pd.read_parquet(out / "throttles.parquet")
    records = pd.read_parquet(out / "records.parquet")
    assert len(invocations) == summary["invocations"] > 0
    assert len(throttles) == summary["throttles"] > 0
    assert len(records) == summary["records_in"]
    assert set(throttles["reason"].astype(str)) == {"ReservedFunctionConcurrentInvocationLimitExceeded"}
    assert "ReservedFunctionConcurrentInvocationLimitExceeded" in result.output
    # Without --trace no event tables are written.
    plain = CliRunner().invoke(main, [*args[:-1], "--out", str(tmp_path / "plain"), "--no-plot"])
    assert plain.exit_code == 0, plain.output
    assert not (tmp_path / "plain" / "invocations.parquet").exists()


def test_summary_keys_are_defined_once() -> None:
    # esmsim.keys defines the summary; a run returns exactly those keys, in that order, and the
    # README's summary table names every key of the contract.
    summary = simulate(load_scenario(ORDERS, ["duration=1m", "warmup=0s"]), tables=False).summary
    assert tuple(summary) == ALL_SUMMARY_KEYS
    readme = (ROOT / "README.md").read_text()
    missing = [key for key in SUMMARY_KEYS if f"`{key}`" not in readme]
    assert missing == []


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


def test_the_cli_seed_range_is_the_schemas() -> None:
    from esmsim.cli import SEED_MAX
    from esmsim.scenario.system import SEED_LIMIT

    assert SEED_MAX == SEED_LIMIT - 1


def test_version_and_validate_load_neither_pandas_nor_the_simulator() -> None:
    # A fresh interpreter: --version imports nothing heavy; validate needs the schema only.
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from esmsim.cli import main\n"
        "assert CliRunner().invoke(main, ['--version']).exit_code == 0\n"
        "assert 'pydantic' not in sys.modules and 'numpy' not in sys.modules\n"
        f"assert CliRunner().invoke(main, ['validate', {str(ORDERS)!r}]).exit_code == 0\n"
        "heavy = sorted({'pandas', 'matplotlib', 'simpy'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_esmsim_sweep_is_callable_whichever_is_imported_first() -> None:
    # Importing a submodule binds esmsim.sweep to the package: the package must be the function too.
    script = (
        "import esmsim.sweep.plots\n"
        "import esmsim\n"
        "assert callable(esmsim.sweep)\n"
        "assert esmsim.sweep.plan is esmsim.sweep.runner.plan\n"
        "from esmsim import iter_sweep, simulate\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
