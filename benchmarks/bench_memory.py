"""Peak memory of runs: flat in run length, within the targets of docs/model.md §7.

Each case runs in a fresh process, which reports its own peak resident set size
(``VmHWM`` of ``/proc/self/status``; not ``ru_maxrss``, which keeps the forking parent's peak
across exec), so cases cannot inflate each other.

Cases:
* ``steady-1h`` and ``steady-4h``: an SQS queue at 1,000 records/s, batches of 100 collected over
  1 s windows. Target: the 4 h run peaks within 1.25 x the 1 h run.
* ``clickstream``: ``scenarios/kinesis-clickstream.yaml`` as bundled (1 h, 8,000 records/s, 28.8 M
  records). Target: under 1 GB.
* ``day-10k`` (``--full`` only, about 20-30 minutes): 24 h of an SQS queue at 10,000 records/s,
  864 M records, batches of 1,000 over 1 s windows. Target: under 2 GB.

Usage: ``python benchmarks/bench_memory.py [--full]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys, time
import esmsim
case = json.loads(sys.argv[1])
if case["scenario"].endswith(".yaml"):
    scenario = esmsim.load_scenario(case["scenario"])
else:
    scenario = esmsim.Scenario.model_validate(json.loads(case["scenario"]))
started = time.perf_counter()
result = esmsim.simulate(scenario, tables=case["tables"])
wall = time.perf_counter() - started
# VmHWM (this process's own peak), not ru_maxrss, which keeps the forking parent's peak across exec.
peak_mb = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
print(json.dumps({"peak_mb": peak_mb, "wall_s": wall, "records": result.summary["records_in"],
                  "invocations": result.summary["invocations"], "latency_method": result.latency_method}))
"""


def steady(duration: str, rate: str, batch_size: int) -> str:
    """A steady SQS queue drained in batches collected over 1 s windows."""
    return json.dumps(
        {
            "name": f"steady-{rate}-{duration}",
            "duration": duration,
            "seed": 1,
            "functions": {
                "f": {
                    "memory_mb": 1024,
                    "timeout": 60,
                    "duration": {"dist": "lognormal", "median": "100ms", "p99": "400ms"},
                    "per_record": "100us",
                }
            },
            "sources": {
                "q": {
                    "type": "sqs",
                    "visibility_timeout": "6m",
                    "traffic": {"rate": rate, "record_size": "1KB"},
                }
            },
            "mappings": [{"source": "q", "function": "f", "batch_size": batch_size, "batching_window": "1s"}],
        }
    )


def measure(scenario: str, tables: bool = True) -> dict[str, float]:
    """Run one case in a fresh process and return what it reports."""
    case = json.dumps({"scenario": scenario, "tables": tables})
    out = subprocess.run(
        [sys.executable, "-c", CHILD, case], cwd=ROOT, capture_output=True, text=True, check=True
    )
    report: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="also run the 24 h, 864 M-record day")
    args = parser.parse_args()
    cases = {
        "steady-1h": steady("1h", "1000/s", 100),
        "steady-4h": steady("4h", "1000/s", 100),
        "clickstream": str(ROOT / "scenarios" / "kinesis-clickstream.yaml"),
    }
    if args.full:
        cases["day-10k"] = steady("24h", "10000/s", 1000)
    results = {}
    print(f"{'case':12s} {'records':>13s} {'invocations':>12s} {'wall s':>8s} {'peak MB':>8s}  latency")
    for name, scenario in cases.items():
        r = results[name] = measure(scenario)
        print(
            f"{name:12s} {r['records']:13,.0f} {r['invocations']:12,.0f} {r['wall_s']:8.1f} "
            f"{r['peak_mb']:8.0f}  {str(r['latency_method']).split(':')[0]}"
        )
    ratio = results["steady-4h"]["peak_mb"] / results["steady-1h"]["peak_mb"]
    print(f"steady 4 h / 1 h peak: {ratio:.2f} (target: at most 1.25)")
    print(f"clickstream peak: {results['clickstream']['peak_mb']:.0f} MB (target: under 1,024)")
    if "day-10k" in results:
        print(f"24 h at 10,000/s peak: {results['day-10k']['peak_mb']:.0f} MB (target: under 2,048)")


if __name__ == "__main__":
    main()
