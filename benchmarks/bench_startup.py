"""How fast the CLI starts: ``esmsim --version``, ``validate --help`` and ``validate FILE``.

Each command runs in a fresh interpreter (as a user's shell starts it) several times; the best and
median wall times are printed, beside a bare ``python -c pass`` measured the same way in the same
run (these machines are noisy: compare the columns, not the absolute numbers across runs). The
package imports its public names lazily, so the first two load neither the scenario schema nor
pandas, and ``validate`` loads the schema (pydantic, numpy) but not pandas, matplotlib or SimPy.

Usage: ``python benchmarks/bench_startup.py [--repeat N]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

COMMANDS = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "esmsim --version": [sys.executable, "-m", "esmsim", "--version"],
    "esmsim validate --help": [sys.executable, "-m", "esmsim", "validate", "--help"],
    "esmsim validate sqs-orders.yaml": [
        sys.executable,
        "-m",
        "esmsim",
        "validate",
        str(ROOT / "scenarios" / "sqs-orders.yaml"),
    ],
}


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'command':36s} {'best s':>8s} {'median s':>9s} {'x baseline':>11s}")
    baseline = None
    for name, command in COMMANDS.items():
        times = [timed(command) for _ in range(args.repeat)]
        best, median = min(times), statistics.median(times)
        baseline = baseline or best
        print(f"{name:36s} {best:8.3f} {median:9.3f} {best / baseline:11.1f}")


if __name__ == "__main__":
    main()
