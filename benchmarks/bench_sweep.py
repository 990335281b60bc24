"""Sweep throughput: runs per minute of the default sweep on each executor, measured back to back.

The ratio local / serial is what to compare across machines (2 cores: at most 2x). By default
the default scenario's horizon is shortened to keep the benchmark to a few minutes; pass
``--full`` for the sweep exactly as `esmsim sweep scenarios/sqs-orders-sweep.yaml` runs it.

Usage: ``python benchmarks/bench_sweep.py [--full] [--executors serial local dask-local:2]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from esmsim.sweep import plan, sweep

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "sqs-orders-sweep.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="the default sweep as shipped (longer)")
    parser.add_argument("--executors", nargs="+", default=["serial", "local"], help="executors to compare")
    args = parser.parse_args()
    overrides = [] if args.full else ["duration=10m", "warmup=1m"]
    the_plan = plan(SCENARIO, overrides=overrides, replications=None if args.full else 1)
    print(f"{SCENARIO.name}: {the_plan.runs} runs ({'as shipped' if args.full else ', '.join(overrides)})")
    rates: dict[str, float] = {}
    reference = None
    for executor in args.executors:
        started = time.perf_counter()
        runs = sweep(the_plan, executor=executor)
        wall = time.perf_counter() - started
        rates[executor] = len(runs) / wall * 60
        table = (
            runs.drop(columns=["wall_time_s"]).sort_values(["point", "replication"]).reset_index(drop=True)
        )
        same = (
            "" if reference is None else f", rows identical to {args.executors[0]}: {table.equals(reference)}"
        )
        reference = table if reference is None else reference
        print(f"{executor:>14s}: {wall:7.1f} s, {rates[executor]:6.1f} runs/min{same}")
    base = rates[args.executors[0]]
    for executor in args.executors[1:]:
        print(f"{executor} / {args.executors[0]}: {rates[executor] / base:.2f}x")


if __name__ == "__main__":
    main()
