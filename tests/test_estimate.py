"""Runs that cannot finish are refused before they start, and a clock that stops ends the run.

The estimate (esmsim.estimate) is checked against real runs' peak memory; each reproducer of a run
that would exhaust the machine or run for hours gets one line and exit code 2; settings that would
loop without simulated time passing are validation errors; and the engine's watchdog stops a run
whose clock stopped anyway.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import simpy
from click.testing import CliRunner, Result

import esmsim
from esmsim.cli import main
from esmsim.errors import RunError, ScenarioError
from esmsim.estimate import estimate, refusal
from esmsim.model import watchdog
from esmsim.model.backoff import backoff
from esmsim.model.build import World

ROOT = Path(__file__).resolve().parent.parent
ORDERS = str(ROOT / "scenarios" / "sqs-orders.yaml")
CLICKS = str(ROOT / "scenarios" / "kinesis-clickstream.yaml")
SHARED = str(ROOT / "scenarios" / "sqs-shared-reserved.yaml")
SWEEP = str(ROOT / "scenarios" / "sqs-orders-sweep.yaml")

#: A stream whose poison record fails at once and is retried at once: a loop at one instant.
ZERO_LOOP = """\
name: zero-loop
duration: 10m
functions:
  f: {timeout: 10, duration: 0s, cold_start: 0s, errors: {poison_record_rate: 0.01}}
sources:
  s: {type: kinesis, shards: 1, traffic: {rate: 10/s}}
mappings:
  - {source: s, function: f, starting_position: LATEST, retry_backoff: {initial: 0s, maximum: 0s}}
"""


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def assert_one_line(result: Result, start: str) -> str:
    """Exit code 2, no traceback, and exactly one error line (warnings aside) starting with ``start``."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.stderr.splitlines() if ": warning: " not in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(start), lines[0]
    return lines[0]


# ---------------------------------------------------------------------------- reproducers
@pytest.mark.parametrize(
    ("path", "override", "needs"),
    [
        (ORDERS, "sources.orders-queue.traffic.rate=1e30/s", "memory"),
        (ORDERS, "duration=1e308", "memory"),
        (ORDERS, "sources.orders-queue.traffic.period=1us", "memory"),
        (ORDERS, "sources.orders-queue.traffic.initial_backlog=100000000000", "memory"),
        (CLICKS, "sources.clicks.traffic.partition_keys=1000000000000", "memory"),
        (ORDERS, "mappings[0].poller_scaling.tick=1us", "events"),
        (SHARED, "mappings[0].throttle_retry={initial: 1us, multiplier: 1, maximum: 1us}", "events"),
    ],
)
def test_runs_that_would_exhaust_the_machine_are_refused_in_one_line(
    tmp_path: Path, path: str, override: str, needs: str
) -> None:
    result = cli("run", path, "--set", override, "--out", str(tmp_path / "out"))
    line = assert_one_line(result, "run refused: it needs ")
    assert "--max-memory SIZE" in line
    assert "--force" in line
    assert ("events (" in line) == (needs == "events")
    assert not (tmp_path / "out").exists()


def test_event_bound_settings_are_warned_about() -> None:
    result = cli("validate", ORDERS, "--set", "mappings[0].poller_scaling.tick=100us")
    assert result.exit_code == 0, result.output
    assert "warning: mappings[0].poller_scaling.tick: 0.0001 s: 3.6e+07 scaler ticks" in result.stderr


def test_validate_prints_the_estimate() -> None:
    result = cli("validate", ORDERS)
    assert result.exit_code == 0, result.output
    assert "estimate: records 720,000, invocations" in result.stdout
    assert "peak memory" in result.stdout
    swept = cli("validate", SWEEP)
    assert swept.exit_code == 0, swept.output
    assert "estimate of the largest run (point " in swept.stdout


def test_max_memory_refuses_and_force_runs(tmp_path: Path) -> None:
    small = ["--set", "duration=2m", "--set", "warmup=0s", "--out", str(tmp_path / "out"), "--no-plot"]
    line = assert_one_line(cli("run", ORDERS, "--max-memory", "50MB", *small), "run refused: it needs ")
    assert "above the limit of about 50 MB" in line
    assert cli("run", ORDERS, "--max-memory", "50MB", "--force", *small).exit_code == 0
    assert cli("run", ORDERS, "--max-memory", "lots", *small).exit_code == 2  # click: bad parameter


def test_sweep_checks_its_largest_point_before_running(tmp_path: Path) -> None:
    result = cli(
        "sweep", SWEEP, "--set", "sources.orders-queue.traffic.initial_backlog=100000000000",
        "--executor", "serial", "--out", str(tmp_path / "sweep"),
    )  # fmt: skip
    assert_one_line(result, "run refused: it needs ")
    assert not (tmp_path / "sweep").exists()


def test_python_api_refuses_unless_forced() -> None:
    huge = esmsim.load_scenario(ORDERS, overrides=["sources.orders-queue.traffic.initial_backlog=1e11"])
    with pytest.raises(RunError, match="run refused: it needs about 8"):
        esmsim.simulate(huge)
    tiny = esmsim.load_scenario(ORDERS, overrides=["duration=1m", "warmup=0s"])
    with pytest.raises(RunError, match="above the limit of about 1 KB"):
        esmsim.simulate(tiny, max_memory=1024)
    assert esmsim.simulate(tiny, max_memory=1024, force=True).summary["records_in"] > 0
    with pytest.raises(RunError, match="point 0: run refused"):
        esmsim.sweep(SWEEP, executor="serial", max_memory=1024)


def test_a_live_change_that_raises_the_traffic_is_sized_as_if_it_held_throughout() -> None:
    # 10/s for the first 5 minutes, then 1e9/s: a run that would exhaust the machine only after its
    # change is refused before it starts, not with a MemoryError 5 simulated minutes in.
    steady = esmsim.load_scenario(
        ORDERS, overrides=["duration=10m", "sources.orders-queue.traffic.rate=10/s"]
    )
    raised = steady.model_validate(
        {**steady.data(), "changes": [{"at": "5m", "set": {"sources.orders-queue.traffic.rate": "1e9/s"}}]}
    )
    after = raised.stages[0][1]
    assert estimate(raised).records == estimate(after).records > 1000 * estimate(steady).records
    assert estimate(raised).peak_memory == estimate(after).peak_memory
    assert refusal(estimate(raised), max_memory=4 * 2**30) is not None
    assert refusal(estimate(steady), max_memory=4 * 2**30) is None
    # A change that lowers it leaves the estimate at the larger first stage's.
    lowered = steady.model_validate(
        {**steady.data(), "changes": [{"at": "5m", "set": {"sources.orders-queue.traffic.rate": "1/s"}}]}
    )
    assert estimate(lowered).records == estimate(steady).records


def test_bundled_scenarios_are_not_refused() -> None:
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        scenario = esmsim.load_scenario(path)
        assert refusal(estimate(scenario), max_memory=4 * 2**30) is None, path


# ---------------------------------------------------------------------------- estimate vs. measured
_CHILD = """
import json, sys
import esmsim
case = json.loads(sys.argv[1])
esmsim.simulate(esmsim.Scenario.model_validate(case["scenario"]), trace=case["trace"], force=True)
# VmHWM, not getrusage's ru_maxrss: that one keeps the forking parent's peak across exec, so a
# child of a large pytest process would report the parent's size.
print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) * 1024)
"""
_FAST = {"f": {"timeout": 60, "duration": "50ms", "cold_start": "0s"}}
_FAILING = {"f": {"timeout": 60, "duration": "50ms", "errors": {"invocation_error_rate": 1.0}}}


def _sqs(traffic: dict[str, Any], duration: str, mapping: dict[str, Any]) -> dict[str, Any]:
    return {
        "duration": duration,
        "functions": _FAST,
        "sources": {"q": {"type": "sqs", "visibility_timeout": "6m", "traffic": traffic}},
        "mappings": [{"source": "q", "function": "f", **mapping}],
    }


MEASURED_CASES = {
    "initial backlog of 3 M": (_sqs({"initial_backlog": 3_000_000}, "60s", {"enabled": False}), False),
    "queue outrun for 5 min": (_sqs({"rate": "20000/s"}, "300s", {"maximum_concurrency": 2}), False),
    "stalled stream": (
        {
            "duration": "600s",
            "functions": _FAILING,
            "sources": {"s": {"type": "kinesis", "shards": 4, "traffic": {"rate": "3000/s"}}},
            "mappings": [{"source": "s", "function": "f", "starting_position": "TRIM_HORIZON"}],
        },
        False,
    ),
    "traced, batches of 1": (_sqs({"rate": "500/s"}, "300s", {"batch_size": 1}), True),
}

#: The estimate must not be below the measured peak, nor above it by more than this factor.
FACTOR = 2.5


@pytest.mark.parametrize("name", list(MEASURED_CASES))
def test_estimate_bounds_the_measured_peak_within_a_factor(name: str) -> None:
    raw, trace = MEASURED_CASES[name]
    case = json.dumps({"scenario": raw, "trace": trace})
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, case], capture_output=True, text=True, check=True, cwd=ROOT
    )
    measured = float(out.stdout.strip().splitlines()[-1])
    estimated = estimate(esmsim.Scenario.model_validate(raw), trace=trace).peak_memory
    assert measured <= estimated <= FACTOR * measured, (name, measured / 2**20, estimated / 2**20)


# ---------------------------------------------------------------------------- zero-time loops
def test_zero_time_retry_loop_is_a_validation_error(tmp_path: Path) -> None:
    path = tmp_path / "zero.yaml"
    path.write_text(ZERO_LOOP, encoding="utf-8")
    line = assert_one_line(cli("validate", str(path)), f"{path}:8: mappings[0].retry_backoff.initial: ")
    assert "at least 1us" in line
    for fix in ("mappings[0].retry_backoff={initial: 1ms, maximum: 1ms}", "functions.f.duration=1ms"):
        assert cli("validate", str(path), "--set", fix).exit_code == 0


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("mappings[0].throttle_retry.initial=1e-9", "mappings[0].throttle_retry.initial"),
        ("mappings[0].poller_scaling.tick=1e-9", "mappings[0].poller_scaling.tick"),
        ("sources.orders-queue.traffic.period=1e-9", "sources.orders-queue.traffic.period"),
    ],
)
def test_steps_below_a_microsecond_are_validation_errors(override: str, key: str) -> None:
    line = assert_one_line(
        cli("validate", ORDERS, "--set", override), f"--set {override.split('=')[0]}: {key}: "
    )
    assert "allowed: at least 1us" in line


def test_a_zero_back_off_cap_is_no_wait() -> None:
    assert backoff(3, 1.0, 2.0, 0.0) == 0.0  # log(0) was a ValueError


def test_watchdog_stops_a_clock_that_stands_still() -> None:
    env = simpy.Environment()

    def spin(env: simpy.Environment) -> Any:
        while True:
            yield env.timeout(0)

    env.process(spin(env))
    with pytest.raises(watchdog.Stalled, match="clock stopped at 0 s"), watchdog.Watchdog(env, 0.2, 0.05):
        env.run(until=1)


def test_a_stalled_run_ends_in_one_line_at_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A model process that loops without simulated time passing (what validation keeps out).
    start = World.start

    def start_and_spin(world: World) -> None:
        start(world)

        def spin(env: simpy.Environment) -> Any:
            yield env.timeout(30)
            while True:
                yield env.timeout(0)

        world.env.process(spin(world.env))

    monkeypatch.setattr(World, "start", start_and_spin)
    monkeypatch.setattr(watchdog, "STALL_AFTER_S", 0.3)
    monkeypatch.setattr(watchdog, "CHECK_EVERY_S", 0.05)
    result = cli("run", ORDERS, "--set", "duration=2m", "--set", "warmup=0s", "--out", str(tmp_path / "o"))
    assert_one_line(result, "run stopped: the simulated clock stopped at 30 s: it has not moved in ")


def test_bundled_scenarios_still_validate() -> None:
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        try:
            esmsim.load_scenario(path)
        except ScenarioError as error:  # pragma: no cover - the message is the point
            pytest.fail(f"{path}: {error}")
