"""Parameter sweeps: expansion, validation, seeding, executors, resumable output, objective, plots."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

import esmsim
from esmsim.cli import main
from esmsim.errors import ScenarioError
from esmsim.scenario.scenario import Scenario
from esmsim.sweep import iter_sweep, plan, sweep
from esmsim.sweep.objective import meets, pareto_front, recommend
from esmsim.sweep.plots import cost_figure, latency_figure, pareto_figure
from esmsim.sweep.spec import Bound, Objective, Point, Sweep, combinations, expand
from tests.helpers import traced

TINY: dict[str, Any] = {
    "name": "tiny-sweep",
    "duration": 60,
    "warmup": 10,
    "seed": 7,
    "functions": {"f": {"timeout": 10, "duration": {"dist": "exponential", "mean": "50ms"}}},
    "sources": {"q": {"type": "sqs", "visibility_timeout": 60, "traffic": {"rate": "20/s"}}},
    "mappings": [{"source": "q", "function": "f", "batching_window": 1}],
    "sweep": {
        "grid": {"mappings[0].batch_size": [1, 20], "functions.f.memory_mb": [512, 1024]},
        "replications": 2,
        "objective": {
            "minimize": "cost_per_million_records_usd",
            "constraints": {"latency_p99_s": {"max": 2}},
        },
    },
}


def tiny(**sweep: Any) -> dict[str, Any]:
    raw = copy.deepcopy(TINY)
    raw["sweep"].update(sweep)
    return raw


def write(tmp_path: Path, raw: dict[str, Any], name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def comparable(runs: pd.DataFrame) -> pd.DataFrame:
    return runs.drop(columns=["wall_time_s"]).sort_values(["point", "replication"]).reset_index(drop=True)


# ---------------------------------------------------------------- expansion and validation
def test_grid_is_the_cartesian_product_in_key_order() -> None:
    s = Sweep.model_validate({"grid": {"a": [1, 2], "b": ["x", "y", "z"]}})
    combos = combinations(s)
    assert len(combos) == 6
    assert combos[0] == {"a": 1, "b": "x"}
    assert combos[1] == {"a": 1, "b": "y"}
    assert combos[-1] == {"a": 2, "b": "z"}


def test_zip_values_vary_together_and_multiply_the_grid() -> None:
    s = Sweep.model_validate({"grid": {"a": [1, 2]}, "zip": {"b": [10, 20, 30], "c": ["p", "q", "r"]}})
    combos = combinations(s)
    assert len(combos) == 6
    assert {(c["b"], c["c"]) for c in combos} == {(10, "p"), (20, "q"), (30, "r")}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"zip": {"a": [1, 2], "b": [1]}}, "zip lists must all have the same length"),
        ({"grid": {"a": [1]}, "zip": {"a": [2]}}, "a is both in grid and in zip"),
        ({"grid": {"a": []}}, "a: give at least one value"),
    ],
)
def test_bad_sweep_specs(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Sweep.model_validate(spec)


def test_points_carry_their_overrides_with_list_indices() -> None:
    points = plan(tiny()).points
    assert [p.params for p in points] == combinations(Sweep.model_validate(TINY["sweep"]))
    last = points[-1]
    assert last.raw["mappings"][0]["batch_size"] == 20
    assert last.raw["functions"]["f"]["memory_mb"] == 1024
    assert "sweep" not in last.raw


def test_every_point_is_validated_and_a_bad_one_is_named(tmp_path: Path) -> None:
    # batch size 20 needs a window of at least 1 s on SQS: the point with window 0 is rejected.
    raw = tiny(grid={"mappings[0].batch_size": [5, 20], "mappings[0].batching_window": [0, 1]})
    with pytest.raises(ScenarioError) as caught:
        plan(raw)
    lines = [issue.format() for issue in caught.value.issues]
    assert lines == [
        "sweep point 2 (mappings[0].batch_size=20, mappings[0].batching_window=0): "
        "mappings[0].batch_size: 20 "
        "needs batching_window >= 1s: AWS rejects SQS batch sizes above 10 with a window of 0 (Maximum batch "
        "window in seconds must be greater than 0 if maximum batch size is greater than 10)"
    ]
    path = write(tmp_path, raw)
    result = CliRunner().invoke(
        main, ["sweep", str(path), "--executor", "serial", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert result.stderr.strip().startswith(
        "sweep point 2 (mappings[0].batch_size=20, mappings[0].batching_window=0)"
    )
    assert not (tmp_path / "o").exists()  # nothing ran


def test_a_bad_key_is_reported() -> None:
    with pytest.raises(ScenarioError) as caught:
        plan(tiny(grid={"mappings[9].batch_size": [5]}))
    assert "index 9 is out of range" in caught.value.issues[0].format()


def test_expand_does_not_touch_the_raw_scenario() -> None:
    raw = tiny()
    before = copy.deepcopy(raw)
    expand(raw, Sweep.model_validate(raw["sweep"]))
    assert raw == before


# ---------------------------------------------------------------- seeding
def test_points_of_one_replication_see_the_same_traffic() -> None:
    points = plan(tiny()).points

    def arrivals(raw: dict[str, Any], replication: int) -> np.ndarray:
        records = traced(Scenario.model_validate(raw), seed=7, replication=replication, tables=False).records
        return records.sort_values("id")["sent_s"].to_numpy()

    first = [arrivals(p.raw, 0) for p in points]
    for other in first[1:]:
        np.testing.assert_array_equal(first[0], other)
    assert not np.array_equal(first[0], arrivals(points[0].raw, 1))


# ---------------------------------------------------------------- executors
def test_serial_local_and_dask_local_give_identical_rows() -> None:
    serial = sweep(tiny(), executor="serial")
    local = sweep(tiny(), executor="local:2")
    dask = sweep(tiny(), executor="dask-local:2")
    assert len(serial) == 8
    pd.testing.assert_frame_equal(comparable(serial), comparable(local))
    pd.testing.assert_frame_equal(comparable(serial), comparable(dask))


def test_unknown_executor_is_a_one_line_error(tmp_path: Path) -> None:
    path = write(tmp_path, tiny())
    result = CliRunner().invoke(main, ["sweep", str(path), "--executor", "cloud"])
    assert result.exit_code == 2
    # The scenario's warnings come first (a sweep says what validate says), then the one error line.
    errors = [line for line in result.stderr.splitlines() if ": warning: " not in line]
    assert errors == [
        "unknown executor 'cloud' (use serial, local, local:N, dask-local:N or dask://host:port)"
    ]


def test_a_sweep_prints_and_records_its_warnings(tmp_path: Path) -> None:
    path = write(tmp_path, tiny())
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["sweep", str(path), "--executor", "serial", "--out", str(out), "--no-plot"]
    )
    assert result.exit_code == 0, result.output
    # Not a terminal: no bar, but plain progress lines, the last at the total.
    progress = [line for line in result.stderr.splitlines() if line.startswith("progress: ")]
    assert progress
    assert progress[-1].startswith("progress: 8/8 runs done (0 failed), ")
    warned = [line for line in result.stderr.splitlines() if ": warning: " in line]
    assert any("no redrive policy" in line for line in warned)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["warnings"] == warned
    # The verdict, printed with its context, is also in the manifest.
    verdict = manifest["recommendation"]
    assert verdict["message"] in result.stdout
    assert set(verdict) >= {"runners_up", "overlapping", "rejected", "replications_needed", "warning"}
    for runner in verdict["runners_up"]:
        assert f"runner-up {runner['label']}" in result.stdout


def test_iter_sweep_streams_results_as_they_finish() -> None:
    seen = [(r["point"], r["replication"], r["error"]) for r in iter_sweep(tiny(), executor="serial")]
    assert seen == [(p, r, None) for p in range(4) for r in range(2)]  # serial: in grid order


def test_sweep_returns_runs_with_parameters_metrics_aggregate_and_recommendation() -> None:
    runs = sweep(tiny(), executor="serial")
    assert {"point", "replication", "seed", "mappings[0].batch_size", "functions.f.memory_mb"} <= set(runs)
    assert set(esmsim.keys.SUMMARY_KEYS) <= set(runs)
    assert (runs["seed"] == 7).all()
    table = runs.attrs["aggregate"]
    assert len(table) == 4
    assert (table["replications"] == 2).all()
    means = runs.groupby("point")["latency_p99_s"].mean().to_numpy()
    np.testing.assert_allclose(table["latency_p99_s"].to_numpy(), means)
    assert (table["latency_p99_s_ci_low"] <= table["latency_p99_s"]).all()
    verdict = runs.attrs["recommendation"]
    assert verdict.met
    feasible = table[table["latency_p99_s"] <= 2]
    assert verdict.point == int(feasible.sort_values("cost_per_million_records_usd").iloc[0]["point"])


def test_a_scenario_without_a_sweep_runs_its_replications() -> None:
    raw = tiny()
    del raw["sweep"]
    runs = sweep(raw, executor="serial", replications=3)
    assert list(runs["replication"]) == [0, 1, 2]
    assert runs["point"].nunique() == 1


# ---------------------------------------------------------------- failures
def test_a_failing_run_is_recorded_and_the_sweep_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import esmsim.run

    real = esmsim.run.simulate

    def flaky(scenario: Scenario, seed: int | None = None, replication: int = 0, **kwargs: Any) -> Any:
        if scenario.mappings[0].batch_size == 20 and scenario.functions["f"].memory_mb == 512:
            raise RuntimeError("boom")
        return real(scenario, seed=seed, replication=replication, **kwargs)

    monkeypatch.setattr(esmsim.run, "simulate", flaky)
    path = write(tmp_path, tiny())
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["sweep", str(path), "--executor", "serial", "--out", str(out), "--no-plot"]
    )
    assert result.exit_code == 1
    assert "2 run(s) failed:" in result.stderr
    assert (
        "point 2 (mappings[0].batch_size=20, functions.f.memory_mb=512) replication 0: RuntimeError: boom"
        in (result.stderr)
    )
    runs = pd.read_parquet(out / "runs.parquet")
    assert len(runs) == 8
    assert runs["error"].notna().sum() == 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert [f["point"] for f in manifest["failed_runs"]] == [2, 2]


# ---------------------------------------------------------------- output, resume, interruption
def _sweep_cli(path: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "esmsim",
            "sweep",
            str(path),
            "--executor",
            "serial",
            "--out",
            str(out),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # Ctrl-C as a terminal delivers it: a pytest started in the background (`pytest &`, some CI
        # runners) passes SIGINT on ignored, and Python then installs no KeyboardInterrupt handler.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _journal_lines(out: Path) -> list[dict[str, Any]]:
    path = out / "runs.jsonl"
    if not path.exists():
        return []
    lines = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a line cut short by the kill
            lines.append(json.loads(line))
    return lines


def _wait_for_runs(out: Path, count: int, proc: subprocess.Popen[str], limit_s: float = 120) -> None:
    started = time.monotonic()
    while len(_journal_lines(out)) < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - started < limit_s
        time.sleep(0.05)


def slow_tiny() -> dict[str, Any]:
    # Longer runs so the sweep can be stopped part-way: 8 of them, in grid order, the four of
    # batch size 1 first (about 0.8 s each on a 2-core machine) and the four of batch size 20
    # (about 0.2 s). The tests poll the journal every 50 ms and stop the sweep once it holds two
    # runs (about 1.6 s of runs left) or three (about 0.8 s left): it cannot finish in between.
    # (600 s runs made these two tests take 85 s for the same checks.)
    raw = tiny(replications=2)
    raw["duration"] = 120
    raw["sources"]["q"]["traffic"]["rate"] = "60/s"
    return raw


def test_a_killed_sweep_resumes_to_exactly_the_rows_of_an_uninterrupted_one(tmp_path: Path) -> None:
    path = write(tmp_path, slow_tiny())
    reference = tmp_path / "reference"
    sweep(path, executor="serial", out=reference, plots=False)

    out = tmp_path / "out"
    proc = _sweep_cli(path, out, "--no-plot")
    _wait_for_runs(out, 3, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    before = {line["run_id"]: line for line in _journal_lines(out)}
    assert 3 <= len(before) < 8

    again = _sweep_cli(path, out, "--no-plot")
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr
    after = _journal_lines(out)
    # Every run finished before the kill is in the journal once: none was computed again.
    assert len(after) == 8
    assert len({line["run_id"] for line in after}) == 8
    assert [line for line in after if line["run_id"] in before] == list(before.values())
    resumed = pd.read_parquet(out / "runs.parquet")
    uninterrupted = pd.read_parquet(reference / "runs.parquet")
    pd.testing.assert_frame_equal(comparable(resumed), comparable(uninterrupted))
    assert f"resumed: {len(before)} run(s) were already done" in stdout


def test_ctrl_c_leaves_a_readable_resumable_directory(tmp_path: Path) -> None:
    path = write(tmp_path, slow_tiny())
    out = tmp_path / "out"
    proc = _sweep_cli(path, out, "--no-plot")
    _wait_for_runs(out, 2, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "run the same command again to resume" in stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    runs = pd.read_parquet(out / "runs.parquet")
    assert 2 <= len(runs) < 8
    again = _sweep_cli(path, out, "--no-plot")
    assert again.wait(300) == 0
    assert len(pd.read_parquet(out / "runs.parquet")) == 8
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


def test_a_changed_scenario_is_refused_rather_than_mixed_in(tmp_path: Path) -> None:
    path = write(tmp_path, tiny())
    out = tmp_path / "out"
    first = CliRunner().invoke(
        main, ["sweep", str(path), "--executor", "serial", "--out", str(out), "--no-plot"]
    )
    assert first.exit_code == 0, first.output
    second = CliRunner().invoke(
        main, ["sweep", str(path), "--executor", "serial", "--out", str(out), "--set", "duration=90"]
    )
    assert second.exit_code == 2
    assert "holds a sweep of a different scenario" in second.stderr
    # Adding replications to the same scenario resumes: only the new runs execute.
    third = CliRunner().invoke(
        main,
        ["sweep", str(path), "--executor", "serial", "--out", str(out), "--replications", "3", "--no-plot"],
    )
    assert third.exit_code == 0, third.output
    assert "resumed: 8 run(s) were already done" in third.output
    assert len(pd.read_parquet(out / "runs.parquet")) == 12


def test_outputs_manifest_and_csv(tmp_path: Path) -> None:
    path = write(tmp_path, tiny())
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "sweep",
            str(path),
            "--executor",
            "serial",
            "--out",
            str(out),
            "--format",
            "parquet",
            "--format",
            "csv",
        ],
    )
    assert result.exit_code == 0, result.output
    for name in ("runs.parquet", "runs.csv", "aggregate.parquet", "aggregate.csv", "manifest.json",
                 "latency.png", "cost.png", "pareto.png"):  # fmt: skip
        assert (out / name).exists(), name
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["runs_total"] == manifest["runs_done"] == 8
    assert manifest["executor"] == "serial"
    assert manifest["esmsim_version"] == esmsim.__version__
    assert manifest["scenario_text"] == path.read_text()
    assert manifest["started_at"] <= manifest["finished_at"]
    assert "cheapest configuration meeting the objective" in result.output
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 8


def test_plot_command_redraws_and_exports(tmp_path: Path) -> None:
    path = write(tmp_path, tiny())
    out = tmp_path / "out"
    assert (
        CliRunner()
        .invoke(main, ["sweep", str(path), "--executor", "serial", "--out", str(out), "--no-plot"])
        .exit_code
        == 0
    )
    assert not (out / "latency.png").exists()
    result = CliRunner().invoke(main, ["plot", str(out), "--format", "png", "--format", "csv"])
    assert result.exit_code == 0, result.output
    for name in ("latency.png", "cost.png", "pareto.png", "runs.csv", "aggregate.csv"):
        assert (out / name).exists(), name
    bad = CliRunner().invoke(main, ["plot", str(tmp_path)])
    assert bad.exit_code == 2
    assert "not a sweep output directory" in bad.stderr


# ---------------------------------------------------------------- objective
POINTS = [Point(i, {"b": b, "c": c}, {}) for i, (b, c) in enumerate([(1, 5), (10, 5), (100, 5), (10, 50)])]


def table(**columns: list[float]) -> pd.DataFrame:
    base = {"point": [0, 1, 2, 3], "replications": [2, 2, 2, 2]}
    return pd.DataFrame({**base, **columns})


def test_recommend_picks_the_cheapest_feasible() -> None:
    t = table(cost_usd=[4.0, 2.0, 1.0, 3.0], latency_p99_s=[0.5, 1.0, 9.0, 0.4], records_dlq=[0, 0, 0, 0])
    objective = Objective(
        minimize="cost_usd", constraints={"latency_p99_s": Bound(max=2), "records_dlq": Bound(max=0)}
    )
    verdict = recommend(t, POINTS, objective)
    assert verdict.met
    assert verdict.point == 1
    assert verdict.message == (
        "cheapest configuration meeting the objective: b=10, c=5 "
        "(cost_usd 2; latency_p99_s 1 <= 2, records_dlq 0 <= 0)"
    )


def test_recommend_names_the_binding_constraint() -> None:
    t = table(cost_usd=[4.0, 2.0, 1.0, 3.0], latency_p99_s=[5.0, 3.0, 9.0, 2.5], records_dlq=[0, 0, 0, 0])
    objective = Objective(
        minimize="cost_usd", constraints={"latency_p99_s": Bound(max=2), "records_dlq": Bound(max=0)}
    )
    verdict = recommend(t, POINTS, objective)
    assert not verdict.met
    assert verdict.binding == ("latency_p99_s",)
    assert verdict.message == (
        "no configuration meets the objective: latency_p99_s <= 2 holds for no configuration; "
        "closest: b=10, c=50 (latency_p99_s 2.5, records_dlq 0)"
    )


def test_recommend_when_constraints_clash() -> None:
    t = table(cost_usd=[4.0, 2.0, 1.0, 3.0], latency_p99_s=[0.5, 3.0, 9.0, 2.5], records_dlq=[10, 0, 0, 5])
    objective = Objective(
        minimize="cost_usd", constraints={"latency_p99_s": Bound(max=2), "records_dlq": Bound(max=0)}
    )
    verdict = recommend(t, POINTS, objective)
    assert not verdict.met
    assert verdict.binding == ()
    assert "each constraint is met by some configuration, but never all at once" in verdict.message


def test_unknown_objective_metric_is_rejected() -> None:
    with pytest.raises(ValueError, match="'p99' is not a summary metric"):
        Objective(minimize="p99")


def test_pareto_front() -> None:
    t = table(cost_per_million_records_usd=[4.0, 2.0, 1.0, 3.0], latency_p99_s=[0.5, 1.0, 9.0, 0.4])
    # (cost, latency): (1, 9) cheapest; (2, 1) better latency; (3, 0.4) better still; (4, 0.5) dominated.
    assert pareto_front(t, "cost_per_million_records_usd", "latency_p99_s") == [2, 1, 3]


# ---------------------------------------------------------------- plots (content, not pixels)
def _aggregate() -> tuple[pd.DataFrame, list[Point]]:
    runs = sweep(tiny(), executor="serial")
    return runs.attrs["aggregate"], plan(tiny()).points


def test_latency_and_cost_plots_have_a_line_per_series_value() -> None:
    table_, _ = _aggregate()
    fig = latency_figure(table_, "mappings[0].batch_size", "functions.f.memory_mb")
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    # The handler's time does not depend on memory here: both memories give the same latencies, so
    # they share one line that says so rather than one hiding the other.
    by_memory = table_.groupby("functions.f.memory_mb")["latency_p99_s"].apply(list)
    assert by_memory[512] == by_memory[1024]
    assert labels == ["p50 (memory=512, 1024 (identical))", "p99 (memory=512, 1024 (identical))"]
    assert all(np.asarray(line.get_xdata()).tolist() == [1, 20] for line in ax.get_lines())
    assert ax.get_xlabel() == "batch size (records), log scale"
    assert ax.get_ylabel() == "record latency (s, log scale)"
    assert ax.get_xscale() == "log"  # 1 to 20 spans more than a factor of 10
    assert ax.get_xticks().tolist() == [1, 20]  # ticks at the swept values, not powers of ten
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "20"]
    np.testing.assert_allclose(
        np.asarray(ax.get_lines()[1].get_ydata()),
        table_[table_["functions.f.memory_mb"] == 512]["latency_p99_s"],
    )
    fig = cost_figure(table_, "mappings[0].batch_size", "functions.f.memory_mb")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["memory=512", "memory=1024"]
    assert ax.get_ylabel().startswith("cost per million records (USD)")


def test_pareto_plot_marks_the_frontier_and_the_choice() -> None:
    table_, points = _aggregate()
    verdict = recommend(table_, points, Objective.model_validate(TINY["sweep"]["objective"]))
    fig = pareto_figure(table_, points, verdict.point)
    ax = fig.axes[0]
    front = [line for line in ax.get_lines() if line.get_label() == "Pareto frontier"]
    assert len(front) == 1
    assert len(np.asarray(front[0].get_xdata())) == len(
        pareto_front(table_, "cost_per_million_records_usd", "latency_p99_s")
    )
    assert ax.get_legend() is not None
    legend = [t.get_text() for t in ax.get_legend().get_texts()]  # type: ignore[union-attr]
    assert legend == ["configurations", "Pareto frontier", "recommended"]
    assert ax.get_xlabel() == "p99 latency (s)"
    # With an objective that some configurations fail (p99 at most the median p99), those are drawn apart.
    objective = Objective(
        minimize="cost_per_million_records_usd",
        constraints={"latency_p99_s": Bound(max=float(table_["latency_p99_s"].median()))},
    )
    ax = pareto_figure(table_, points, verdict.point, objective).axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]  # type: ignore[union-attr]
    assert legend == [
        "meets the constraints",
        "fails a constraint",
        "Pareto frontier",
        f"objective: latency_p99_s <= {objective.constraints['latency_p99_s'].max:g}",
        "recommended",
    ]
    ran = table_[table_["replications"] > 0].to_dict("records")
    meeting = np.asarray(ax.collections[0].get_offsets())
    failing = np.asarray(ax.collections[1].get_offsets())
    assert len(meeting) == sum(meets(r, objective) for r in ran) > 0
    assert len(failing) > 0
    assert len(meeting) + len(failing) == len(ran)


def test_coincident_series_share_a_line_that_says_so() -> None:
    # Two caps that never bind give the same curve: one line, labelled with both values.
    table = pd.DataFrame(
        {
            "point": [0, 1, 2, 3, 4, 5],
            "b": [1, 10, 1, 10, 1, 10],
            "c": [5, 5, 15, 15, 50, 50],
            "replications": [2] * 6,
            "cost_per_million_records_usd": [2.0, 0.3, 2.1, 0.5, 2.1, 0.5],
            "cost_per_million_records_usd_ci_low": [np.nan] * 6,
            "cost_per_million_records_usd_ci_high": [np.nan] * 6,
        }
    )
    ax = cost_figure(table, "b", "c").axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["c=5", "c=15, 50 (identical)"]


def test_every_figure_draws_the_objective_and_marks_the_recommendation() -> None:
    table_, points = _aggregate()
    objective = Objective.model_validate(TINY["sweep"]["objective"])
    verdict = recommend(table_, points, objective)
    assert verdict.met
    x, series = "mappings[0].batch_size", "functions.f.memory_mb"
    figures = {
        "latency": latency_figure(table_, x, series, objective, verdict.point),
        "cost": cost_figure(table_, x, series, objective, verdict.point),
        "pareto": pareto_figure(table_, points, verdict.point, objective),
    }
    chosen = table_[table_["point"] == verdict.point].iloc[0]
    for name, fig in figures.items():
        ax = fig.axes[0]
        labels = [t.get_text() for t in ax.get_legend().get_texts()]  # type: ignore[union-attr]
        assert "recommended" in labels, name
        ring = next(c for c in ax.collections if c.get_label() == "recommended")
        at = np.asarray(ring.get_offsets())[0]
        assert at[1] == pytest.approx(
            chosen["latency_p99_s" if name == "latency" else "cost_per_million_records_usd"]
        )
    bounds = [
        line
        for line in figures["latency"].axes[0].get_lines()
        if str(line.get_label()).startswith("objective: latency_p99_s <=")
    ]
    assert len(bounds) == 1
    assert np.asarray(bounds[0].get_ydata()).tolist() == [objective.constraints["latency_p99_s"].max] * 2


def test_every_pareto_point_is_labelled_and_no_labels_overlap() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    # Twelve configurations on a grid of cost and latency, several close together.
    points = [
        Point(i, {"b": b, "c": c}, {})
        for i, (b, c) in enumerate((b, c) for b in (1, 10, 50, 200) for c in (5, 15, 50))
    ]
    rng = np.random.default_rng(3)
    table = pd.DataFrame(
        {
            "point": range(12),
            "replications": [2] * 12,
            "latency_p99_s": rng.uniform(0.2, 3.0, 12),
            "cost_per_million_records_usd": rng.uniform(0.1, 2.0, 12),
        }
    )
    fig = pareto_figure(table, points, None)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    named = ", ".join(texts)
    for point in points:
        assert f"{point.params['b']} × {point.params['c']}" in named
    renderer = FigureCanvasAgg(fig).get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    for i, first in enumerate(boxes):
        for second in boxes[i + 1 :]:
            assert not first.overlaps(second)


def test_a_key_swept_over_null_and_mappings_plots_and_labels_as_written() -> None:
    # Standard against provisioned mode: the swept values are null and mappings. The table holds NaN
    # and JSON; the plots put them on a categorical axis as written, and labels say null.
    from esmsim.sweep.plots import latency_figure
    from esmsim.sweep.spec import label

    key = "mappings[0].provisioned_pollers"
    table = pd.DataFrame(
        {
            "point": [0, 1],
            key: [np.nan, '{"maximum": 200, "minimum": 2}'],
            "replications": [2, 2],
            "latency_p50_s": [0.3, 0.25],
            "latency_p99_s": [12.0, 4.0],
            "latency_p99_s_ci_low": [11.0, 3.5],
            "latency_p99_s_ci_high": [13.0, 4.5],
        }
    )
    ax = latency_figure(table, key, None).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["null", '{"maximum": 200, "minimum": 2}']
    assert label({key: None}) == f"{key}=null"
    assert label({key: {"minimum": 2, "maximum": 200}}) == f'{key}={{"maximum": 200, "minimum": 2}}'


def test_run_point_and_replication_reproduce_a_sweep_row(tmp_path: Path) -> None:
    path = write(tmp_path, tiny())
    out = tmp_path / "out"
    assert (
        CliRunner()
        .invoke(main, ["sweep", str(path), "--executor", "serial", "--out", str(out), "--no-plot"])
        .exit_code
        == 0
    )
    runs = pd.read_parquet(out / "runs.parquet")
    row = runs[(runs["point"] == 1) & (runs["replication"] == 1)].iloc[0]
    one = tmp_path / "one"
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(path),
            "--point",
            "1",
            "--replication",
            "1",
            "--format",
            "csv",
            "--no-plot",
            "--out",
            str(one),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((one / "summary.json").read_text())["summary"]
    for key in ("records_in", "records_succeeded", "invocations", "latency_p99_s", "cost_usd"):
        assert summary[key] == row[key], key
    # The CSV copy holds what the Parquet table holds.
    pd.testing.assert_frame_equal(
        pd.read_csv(one / "timeseries.csv", index_col=0),
        pd.read_parquet(one / "timeseries.parquet"),
        check_dtype=False,
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--point", "99"], "--point 99: the sweep has 4 configuration(s) (0 to 3)"),
    ],
)
def test_a_point_outside_the_sweep_is_one_line(tmp_path: Path, args: list[str], line: str) -> None:
    path = write(tmp_path, tiny())
    result = CliRunner().invoke(main, ["run", str(path), *args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert [x for x in result.stderr.splitlines() if ": warning: " not in x] == [line]
