"""How fast esmsim simulates, as ratios to a plain SimPy timeout loop timed in the same process.

Machines here are noisy, so absolute rates mean little; the ratio to plain SimPy timeouts per
second, measured in the same process just before each timed run (column ``simpy/s``), is what to
compare across runs and machines.

Cases:
* ``steady``: ``scenarios/sqs-orders.yaml`` (steady order processing, about 200 orders/s), one run.
* ``backlog-b10`` / ``backlog-b1000``: a queue with a standing backlog, so every poll returns a full
  batch; the same number of invocations at batch size 10 and 1,000. Wall time per invocation should
  not depend on the batch size (records are numpy rows, not events).
* ``sqs-1k-b10-w1``, ``sqs-500-b10-w0``, ``sqs-50k-b500-w1``: the SQS speed cases of the issue
  "SQS engine, second generation": steady 1,000/s in batches of 10 over 1 s windows, 500/s in batches
  of 10 without a window (10 simulated minutes each) and 50,000/s in batches of 500 over 1 s windows
  (2 minutes); a 100 ms function. Goals: 0.1 invocations per timeout for the first two, 3.5 records
  per timeout for the third.
* ``kinesis-64x2``: a Kinesis stream of 64 shards read with parallelization factor 2 (128 lanes),
  12,800 records/s for 5 simulated minutes.
* ``s3-async``, ``s3-async-throttled``: S3 notifications at 200/s invoking a 100 ms function
  asynchronously for 10 simulated minutes, with room to spare and with reserved concurrency 15
  (about 150 events/s: every event waiting in the event queue retries on its own back-off, so the
  throttled case spends SimPy events on throttled attempts as well as invocations).
* ``fifo-10m``, ``fifo-30m``: ``scenarios/sqs-fifo-orders.yaml`` (a FIFO queue whose hot message group
  stalls behind poison orders, so its backlog grows all run) for 10 and 30 simulated minutes. Wall
  time per invocation should not grow with the run (a receive must not scan the blocked backlog).

Usage: ``python benchmarks/bench_core.py [--invocations N] [--repeat R] [--cases NAME ...] [--check]``

``--check`` exits with 1 when an SQS case misses its goal (the check of the issue's speed goals).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path
from typing import Any

import simpy

import esmsim
from esmsim.scenario.scenario import Scenario

ROOT = Path(__file__).resolve().parent.parent

#: The SQS engine's speed goals: (column, ratio to plain SimPy timeouts).
GOALS = {
    "sqs-1k-b10-w1": ("inv/timeout", 0.1),
    "sqs-500-b10-w0": ("inv/timeout", 0.1),
    "sqs-50k-b500-w1": ("rec/timeout", 3.5),
}


def plain_simpy_rate(n: int = 1_000_000) -> float:
    """Timeouts per second of a one-process SimPy loop: the unit of the ratios."""

    def loop(env: simpy.Environment) -> Any:
        while True:
            yield env.timeout(1.0)

    env = simpy.Environment()
    env.process(loop(env))
    started = time.perf_counter()
    env.run(until=n + 0.5)
    return n / (time.perf_counter() - started)


def backlog_scenario(batch_size: int, invocations: int) -> Scenario:
    """A queue holding ``batch_size * invocations`` records at t=0, drained by 10 pollers."""
    duration_s = invocations / 10 * 0.05 + 1.0  # 10 concurrent 50 ms invocations
    return Scenario.model_validate(
        {
            "name": f"backlog-b{batch_size}",
            "duration": duration_s,
            "functions": {"f": {"timeout": 10, "duration": "50ms", "cold_start": "0s"}},
            "sources": {
                "q": {
                    "type": "sqs",
                    "visibility_timeout": "5m",
                    "traffic": {"initial_backlog": batch_size * invocations, "record_size": "200B"},
                }
            },
            "mappings": [
                {
                    "source": "q",
                    "function": "f",
                    "batch_size": batch_size,
                    "batching_window": "1s" if batch_size > 10 else 0,
                    "maximum_concurrency": 10,
                    "record_overhead": 0,
                }
            ],
        }
    )


def steady_sqs(rate: int, batch_size: int, window: str, duration: str) -> Scenario:
    """A steady SQS queue at ``rate`` messages/s drained by a 100 ms function."""
    return Scenario.model_validate(
        {
            "name": f"sqs-{rate}-b{batch_size}-w{window}",
            "duration": duration,
            "functions": {"f": {"timeout": 30, "duration": "100ms", "cold_start": "0s"}},
            "sources": {"q": {"type": "sqs", "traffic": {"rate": f"{rate}/s", "record_size": "200B"}}},
            "mappings": [
                {"source": "q", "function": "f", "batch_size": batch_size, "batching_window": window}
            ],
        }
    )


def stream_scenario() -> Scenario:
    """64 shards, parallelization factor 2, 200 records/s per shard."""
    return Scenario.model_validate(
        {
            "name": "kinesis-64x2",
            "duration": "5m",
            "functions": {
                "f": {
                    "timeout": 60,
                    "memory_mb": 1024,
                    "duration": {"dist": "lognormal", "median": "50ms", "p99": "250ms"},
                    "per_record": "500us",
                    "cold_start": "0s",
                }
            },
            "sources": {
                "s": {
                    "type": "kinesis",
                    "shards": 64,
                    "traffic": {"rate": "12800/s", "record_size": "512B", "partition_keys": 100000},
                }
            },
            "mappings": [
                {
                    "source": "s",
                    "function": "f",
                    "batch_size": 100,
                    "starting_position": "LATEST",
                    "parallelization_factor": 2,
                }
            ],
        }
    )


def async_scenario(reserved: int | None) -> Scenario:
    """S3 events at 200/s into a 100 ms function, asynchronously; throttled when ``reserved`` is small."""
    function: dict[str, Any] = {"timeout": 30, "duration": "100ms", "cold_start": "0s"}
    if reserved is not None:
        function["reserved_concurrency"] = reserved
    return Scenario.model_validate(
        {
            "name": f"s3-async-rc{reserved}",
            "duration": "10m",
            "functions": {"f": function},
            "sources": {"b": {"type": "s3", "traffic": {"rate": "200/s", "record_size": "1KB"}}},
            "triggers": [{"source": "b", "function": "f"}],
        }
    )


def timed_run(scenario: Scenario) -> dict[str, float]:
    """Simulate once (summary only, as a sweep does) and time it."""
    gc.collect()
    started = time.perf_counter()
    result = esmsim.simulate(scenario, tables=False)
    return {
        "total_s": time.perf_counter() - started,
        "invocations": result.summary["invocations"],
        "records": result.summary["records_succeeded"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--invocations", type=int, default=20_000, help="invocations in the backlog cases")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the fastest counts")
    parser.add_argument("--cases", nargs="*", help="run only these cases (default: all)")
    parser.add_argument("--check", action="store_true", help="exit 1 if an SQS case misses its goal")
    args = parser.parse_args()

    cases = {
        "steady": esmsim.load_scenario(ROOT / "scenarios" / "sqs-orders.yaml"),
        "backlog-b10": backlog_scenario(10, args.invocations),
        "backlog-b1000": backlog_scenario(1000, args.invocations),
        "sqs-1k-b10-w1": steady_sqs(1000, 10, "1s", "10m"),
        "sqs-500-b10-w0": steady_sqs(500, 10, "0s", "10m"),
        "sqs-50k-b500-w1": steady_sqs(50_000, 500, "1s", "2m"),
        "kinesis-64x2": stream_scenario(),
        "s3-async": async_scenario(None),
        "s3-async-throttled": async_scenario(15),
        "fifo-10m": esmsim.load_scenario(ROOT / "scenarios" / "sqs-fifo-orders.yaml", ["duration=10m"]),
        "fifo-30m": esmsim.load_scenario(ROOT / "scenarios" / "sqs-fifo-orders.yaml", ["duration=30m"]),
    }
    if args.cases:
        unknown = set(args.cases) - set(cases)
        if unknown:
            parser.error(f"unknown cases {sorted(unknown)}; known: {', '.join(cases)}")
        cases = {name: scenario for name, scenario in cases.items() if name in args.cases}
    # The machine's speed drifts within a run, so each timed run is paired with a plain SimPy loop
    # timed just before it (the best of three short ones), and the best ratio over the repeats
    # counts.
    header = f"{'case':16s} {'invocations':>11s} {'records':>11s} {'total s':>7s} {'simpy/s':>9s} "
    header += f"{'inv/s':>9s} {'rec/s':>11s} {'inv/timeout':>11s} {'rec/timeout':>11s} {'us/inv':>7s}  goal"
    print(header)
    per_invocation: dict[str, float] = {}
    missed: list[str] = []
    for name, scenario in cases.items():
        runs = []
        for _ in range(args.repeat):
            rate = max(plain_simpy_rate(300_000) for _ in range(3))
            runs.append({**timed_run(scenario), "simpy_rate": rate})
        best = min(runs, key=lambda r: r["total_s"] * r["simpy_rate"])
        simpy_rate = best["simpy_rate"]
        inv_rate = best["invocations"] / best["total_s"]
        rec_rate = best["records"] / best["total_s"]
        per_invocation[name] = best["total_s"] / best["invocations"]
        goal = ""
        if name in GOALS:
            column, wanted = GOALS[name]
            got = (inv_rate if column == "inv/timeout" else rec_rate) / simpy_rate
            goal = f"{column} >= {wanted}: {'met' if got >= wanted else 'MISSED'}"
            if got < wanted:
                missed.append(name)
        print(
            f"{name:16s} {best['invocations']:11,.0f} {best['records']:11,.0f} "
            f"{best['total_s']:7.2f} {simpy_rate:9,.0f} {inv_rate:9,.0f} {rec_rate:11,.0f} "
            f"{inv_rate / simpy_rate:11.3f} {rec_rate / simpy_rate:11.3f} "
            f"{per_invocation[name] * 1e6:7.1f}  {goal}"
        )
    if "backlog-b1000" in per_invocation and "backlog-b10" in per_invocation:
        ratio = per_invocation["backlog-b1000"] / per_invocation["backlog-b10"]
        print(f"wall time per invocation, batch 1000 / batch 10: {ratio:.2f}x (target: at most 2x)")
    if "fifo-30m" in per_invocation and "fifo-10m" in per_invocation:
        ratio = per_invocation["fifo-30m"] / per_invocation["fifo-10m"]
        print(f"wall time per invocation, FIFO 30 min / 10 min: {ratio:.2f}x (target: about 1x)")
    if args.check and missed:
        print(f"speed goals missed: {', '.join(missed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
