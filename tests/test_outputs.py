"""Output directories: nothing a user produced is lost or mixed, and every problem is one line.

A run's directory holds exactly one run's files; a sweep's directory is locked, stamped, checked
on resume, and refused with its file named when it is corrupt or foreign.
"""

from __future__ import annotations

import importlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner, Result

import esmsim
from esmsim.cli import main
from esmsim.errors import EsmsimWarning, OutputError
from esmsim.sweep import iter_sweep, plan, sweep
from esmsim.sweep.store import SweepStore, read_journal

runner = importlib.import_module("esmsim.sweep.runner")
ROOT = Path(__file__).resolve().parents[1]
#: A directory nobody may create entries in, whoever runs the tests (root ignores file modes).
UNWRITABLE = Path("/sys/esmsim-out")

SMALL: dict[str, Any] = {
    "name": "small-sweep",
    "duration": 20,
    "seed": 3,
    "functions": {"f": {"timeout": 10, "duration": {"dist": "exponential", "mean": "50ms"}}},
    "sources": {"q": {"type": "sqs", "visibility_timeout": 60, "traffic": {"rate": "5/s"}}},
    "mappings": [{"source": "q", "function": "f"}],
    "sweep": {"grid": {"mappings[0].batch_size": [1, 10]}, "replications": 2},
}


def write(tmp_path: Path, raw: dict[str, Any], name: str = "small.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, [*args], catch_exceptions=False)


def one_error_line(result: Result, *needles: str) -> str:
    """The single stderr line of a refused command (exit code 2), holding every needle."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    # The scenario's own warnings (`file:line: warning: ...`) may come first, as validate prints them.
    lines = [
        line
        for line in result.stderr.splitlines()
        if line and not line.startswith("warning:") and ": warning: " not in line
    ]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def sweep_cli(path: Path, out: Path, *extra: str) -> Result:
    return cli("sweep", str(path), "--executor", "serial", "--out", str(out), "--no-plot", *extra)


# --- esmsim run ---------------------------------------------------------------------------------


def test_a_run_replaces_every_file_of_the_run_before_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    stream = cli("run", str(ROOT / "scenarios" / "kinesis-clickstream.yaml"), "--out", str(out),
                 "--set", "duration=120", "--set", "warmup=0")  # fmt: skip
    assert stream.exit_code == 0, stream.output
    assert (out / "shard_timeseries.parquet").exists()
    assert (out / "timeseries.png").exists()
    queue = cli("run", str(ROOT / "scenarios" / "sqs-orders.yaml"), "--out", str(out), "--no-plot",
                "--set", "duration=120", "--set", "warmup=0")  # fmt: skip
    assert queue.exit_code == 0, queue.output
    summary = json.loads((out / "summary.json").read_text())
    # Only the SQS run's own files remain: no shard table, no plot of the Kinesis run; the page the
    # command writes from them afterwards is the SQS run's too.
    assert sorted(p.name for p in out.iterdir()) == sorted([*summary["files"], "report.html"])
    assert "sqs-orders" in (out / "report.html").read_text(encoding="utf-8")
    assert not (out / "shard_timeseries.parquet").exists()
    assert not (out / "timeseries.png").exists()
    assert summary["provenance"]["scenario"] == "sqs-orders"


def test_files_that_are_not_a_runs_are_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = cli("run", str(ROOT / "scenarios" / "sqs-orders.yaml"), "--out", str(out), "--no-plot",
                 "--set", "duration=60", "--set", "warmup=0")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (out / "notes.txt").read_text() == "mine"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging or probe left over


@pytest.mark.parametrize(
    ("make_out", "needle"),
    [
        (lambda tmp: tmp / "afile", "is a file, not a directory"),
        (lambda tmp: tmp / "afile" / "sub", "a part of the path is a file"),
        (lambda tmp: UNWRITABLE, "cannot write there"),
    ],
    ids=["out-is-a-file", "out-under-a-file", "out-unwritable"],
)
def test_an_unusable_out_is_refused_before_the_simulation(tmp_path: Path, make_out: Any, needle: str) -> None:
    (tmp_path / "afile").write_text("x")
    out = make_out(tmp_path)
    # A full hour: the refusal must come at once, not after simulating it.
    result = cli("run", str(ROOT / "scenarios" / "sqs-orders.yaml"), "--out", str(out))
    one_error_line(result, "--out", needle)
    assert "p99" not in result.stdout  # nothing was simulated


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file modes")
def test_a_read_only_out_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "ro"
    out.mkdir(mode=0o500)
    result = cli("run", str(ROOT / "scenarios" / "sqs-orders.yaml"), "--out", str(out))
    one_error_line(result, "cannot write there")


# --- esmsim sweep: lock, stamps, manifest first -------------------------------------------------


def test_a_second_sweep_into_a_busy_directory_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, SMALL)
    out = tmp_path / "out"
    holder = SweepStore.open(out, {"scenario_hash": plan(path).scenario_hash, "started_at": "now"})
    try:
        result = sweep_cli(path, out)
        one_error_line(result, str(out), "another sweep is writing here", f"pid {os.getpid()}")
        assert not (out / "runs.parquet").exists()  # the refused sweep wrote nothing
    finally:
        holder.close()
    assert sweep_cli(path, out).exit_code == 0  # released: the directory is usable again


def test_two_different_scenarios_into_one_out_cannot_mix(tmp_path: Path) -> None:
    first = write(tmp_path, SMALL, "first.yaml")
    second = write(tmp_path, {**SMALL, "duration": 30}, "second.yaml")
    out = tmp_path / "out"
    holder = SweepStore.open(out, {"scenario_hash": plan(first).scenario_hash, "started_at": "now"})
    try:  # at the same time: the lock refuses
        one_error_line(sweep_cli(second, out), "another sweep is writing here")
    finally:
        holder.close()
    assert sweep_cli(first, out).exit_code == 0
    # One after the other: the manifest refuses.
    one_error_line(sweep_cli(second, out), "holds a sweep of a different scenario")


def test_the_manifest_is_written_before_the_first_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    seen: list[dict[str, Any]] = []
    real = runner.run_task

    def spy(task: dict[str, Any]) -> dict[str, Any]:
        seen.append(json.loads((out / "manifest.json").read_text()))
        record: dict[str, Any] = real(task)
        return record

    monkeypatch.setattr(runner, "run_task", spy)
    sweep(write(tmp_path, SMALL), executor="serial", out=out, plots=False)
    assert seen[0]["status"] == "running"
    assert seen[0]["runs_done"] == 0
    assert seen[0]["runs_total"] == 4
    assert seen[0]["scenario_hash"] == plan(write(tmp_path, SMALL)).scenario_hash


def test_every_journal_line_carries_the_scenario_hash_and_version(tmp_path: Path) -> None:
    path = write(tmp_path, SMALL)
    out = tmp_path / "out"
    sweep(path, executor="serial", out=out, plots=False)
    lines = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert len(lines) == 4
    assert {line["scenario_hash"] for line in lines} == {plan(path).scenario_hash}
    assert {line["esmsim_version"] for line in lines} == {esmsim.__version__}


def test_a_deleted_manifest_does_not_let_another_scenario_adopt_the_runs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert sweep_cli(write(tmp_path, SMALL, "a.yaml"), out).exit_code == 0
    (out / "manifest.json").unlink()
    other = write(tmp_path, {**SMALL, "duration": 30}, "b.yaml")
    one_error_line(sweep_cli(other, out), "runs.jsonl:1", "a run of a different scenario")


def _age(out: Path, version: str) -> None:
    """Make a sweep directory look as if another esmsim version had written it."""
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "esmsim_version": version}))
    lines = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    text = "".join(json.dumps({**line, "esmsim_version": version}) + "\n" for line in lines)
    (out / "runs.jsonl").write_text(text)


def test_a_version_change_is_refused_unless_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, SMALL)
    out = tmp_path / "out"
    assert sweep_cli(path, out).exit_code == 0
    _age(out, "0.0.1")
    one_error_line(
        sweep_cli(path, out), "esmsim 0.0.1", f"this is {esmsim.__version__}", "--allow-version-change"
    )
    (out / "manifest.json").unlink()  # the journal's stamps refuse it too
    one_error_line(sweep_cli(path, out), "runs.jsonl:1", "esmsim 0.0.1")
    allowed = sweep_cli(path, out, "--allow-version-change")
    assert allowed.exit_code == 0, allowed.output
    assert "resumed: 4 run(s) were already done" in allowed.stdout
    _age(out, "0.0.2")
    assert sweep_cli(path, out, "--allow-version-change").exit_code == 0
    assert json.loads((out / "manifest.json").read_text())["resumed_versions"] == ["0.0.2"]


# --- partial and corrupt journals ----------------------------------------------------------------


def test_a_partial_last_line_is_set_aside_and_its_run_run_again(tmp_path: Path) -> None:
    path = write(tmp_path, SMALL)
    out, reference = tmp_path / "out", tmp_path / "reference"
    sweep(path, executor="serial", out=reference, plots=False)
    sweep(path, executor="serial", out=out, plots=False)
    journal = (out / "runs.jsonl").read_bytes()
    cut = journal[: journal.rindex(b"\n", 0, len(journal) - 1) + 1 + 40]  # the last line, cut short
    (out / "runs.jsonl").write_bytes(cut)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = sweep(path, executor="serial", out=out, plots=False)
    assert [str(w.message) for w in caught if issubclass(w.category, EsmsimWarning)] == [
        f"{out / 'runs.jsonl'}:4: a partial line (a run cut off by a crash) was moved to runs.jsonl.broken; "
        "that run is run again"
    ]
    assert (out / "runs.jsonl.broken").read_bytes() == journal[len(cut) - 40 : len(cut)] + b"\n"
    lines = (out / "runs.jsonl").read_text().splitlines()
    assert len(lines) == 4  # the next record was not swallowed by the broken line
    assert all(json.loads(line) for line in lines)
    expected = pd.read_parquet(reference / "runs.parquet").drop(columns="wall_time_s")
    pd.testing.assert_frame_equal(again.drop(columns="wall_time_s"), expected)


def test_a_whole_last_record_without_its_newline_is_kept(tmp_path: Path) -> None:
    path = write(tmp_path, SMALL)
    out = tmp_path / "out"
    sweep(path, executor="serial", out=out, plots=False)
    (out / "runs.jsonl").write_bytes((out / "runs.jsonl").read_bytes().rstrip(b"\n"))
    result = sweep_cli(path, out)
    assert result.exit_code == 0
    assert "resumed: 4 run(s)" in result.stdout
    assert not [line for line in result.stderr.splitlines() if "runs.jsonl" in line]  # nothing repaired
    assert len((out / "runs.jsonl").read_text().splitlines()) == 4


def _corrupt_line(out: Path, text: bytes) -> None:
    lines = (out / "runs.jsonl").read_bytes().splitlines(keepends=True)
    (out / "runs.jsonl").write_bytes(lines[0] + text + b"\n" + b"".join(lines[1:]))


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda out: _corrupt_line(out, b"\xff\xfe{}"), "runs.jsonl:2: not a run record (not UTF-8 text)"),
        (lambda out: _corrupt_line(out, b"[1, 2]"), "runs.jsonl:2: not a run record (not a JSON object)"),
        (lambda out: _corrupt_line(out, b'{"run_id": 5}'), "runs.jsonl:2: not a run record (run_id is int)"),
        (
            lambda out: _corrupt_line(out, json.dumps({**_first(out), "point": "x"}).encode()),
            "runs.jsonl:2: not a run record (point is str)",
        ),
        (
            lambda out: _corrupt_line(out, json.dumps({**_first(out), "summary": {"a": "b"}}).encode()),
            "not a run record (summary.a is str, not a number)",
        ),
        (
            lambda out: _corrupt_line(out, json.dumps({**_first(out), "histogram": [[10**9], [1]]}).encode()),
            "not a run record (histogram is not [buckets, counts])",
        ),
        (lambda out: _replace(out / "runs.jsonl", dir=True), "runs.jsonl: cannot read the journal"),
        (
            lambda out: (out / "manifest.json").write_bytes(b"\x89PNG\x00\x01"),
            "manifest.json: not a readable",
        ),
        (lambda out: (out / "manifest.json").write_text("[]"), "manifest.json: not a sweep manifest"),
    ],
    ids=[
        "non-utf8",
        "non-object",
        "ill-typed-id",
        "ill-typed-point",
        "ill-typed-summary",
        "bad-histogram",
        "journal-is-a-directory",
        "binary-manifest",
        "list-manifest",
    ],
)
def test_a_corrupt_sweep_directory_is_one_line_naming_the_file(
    tmp_path: Path, damage: Any, needle: str
) -> None:
    path = write(tmp_path, SMALL)
    out = tmp_path / "out"
    sweep(path, executor="serial", out=out, plots=False)
    damage(out)
    line = one_error_line(sweep_cli(path, out), needle)
    assert "delete" in line or "another --out" in line  # and what to do about it


def _first(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "runs.jsonl").read_text().splitlines()[0]))


def _replace(path: Path, *, dir: bool) -> None:
    path.unlink()
    if dir:
        path.mkdir()


def test_journal_lines_of_another_scenario_are_refused_by_the_reader(tmp_path: Path) -> None:
    path = write(tmp_path, SMALL)
    out = tmp_path / "out"
    sweep(path, executor="serial", out=out, plots=False)
    assert len(read_journal(out / "runs.jsonl", scenario_hash=plan(path).scenario_hash)) == 4
    with pytest.raises(OutputError, match="a run of a different scenario"):
        read_journal(out / "runs.jsonl", scenario_hash="0" * 16)


def test_a_sweep_out_that_cannot_be_written_is_refused_before_any_run(tmp_path: Path) -> None:
    path = write(tmp_path, SMALL)
    one_error_line(sweep_cli(path, UNWRITABLE), "cannot write there")
    (tmp_path / "afile").write_text("x")
    one_error_line(sweep_cli(path, tmp_path / "afile"), "is a file, not a directory")
    with pytest.raises(OutputError):
        next(iter_sweep(path, executor="serial", out=tmp_path / "afile" / "sub"))


# --- esmsim plot ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (
            lambda out: (out / "aggregate.parquet").write_bytes(b"PAR1 garbage"),
            "aggregate.parquet: unreadable",
        ),
        (
            lambda out: pd.DataFrame({"x": [1]}).to_parquet(out / "aggregate.parquet"),
            "aggregate.parquet: not this sweep's table (no column point)",
        ),
        (
            lambda out: (out / "manifest.json").write_text(json.dumps({"scenario_hash": "h", "points": 3})),
            "manifest.json: not a sweep manifest (bad sweep or points)",
        ),
        (lambda out: (out / "manifest.json").unlink(), "not a sweep output directory (no manifest.json)"),
    ],
    ids=["garbage-aggregate", "foreign-aggregate", "bad-points", "no-manifest"],
)
def test_plot_of_a_corrupt_directory_is_one_line(tmp_path: Path, damage: Any, needle: str) -> None:
    out = tmp_path / "out"
    sweep(write(tmp_path, SMALL), executor="serial", out=out, plots=False)
    damage(out)
    one_error_line(cli("plot", str(out)), needle)


def test_plot_csv_of_a_garbage_runs_table_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    sweep(write(tmp_path, SMALL), executor="serial", out=out, plots=False)
    (out / "runs.parquet").write_bytes(b"not parquet")
    one_error_line(cli("plot", str(out), "--format", "csv"), "runs.parquet: unreadable")
