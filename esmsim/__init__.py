"""esmsim: a discrete-event simulator of AWS Lambda event source mappings, for capacity planning.

Public API::

    import esmsim
    scenario = esmsim.load_scenario("scenarios/sqs-orders.yaml")
    result = esmsim.simulate(scenario, seed=7)
    result.summary["latency_p99_s"], result.timeseries["ConcurrentExecutions"]
    runs = esmsim.sweep("scenarios/sqs-orders-sweep.yaml", executor="local", out="out/sweep")

The names are imported on first use (PEP 562): ``esmsim --version`` and ``esmsim validate`` do
not pay for the simulator, pandas or matplotlib. ``esmsim.sweep`` is the sweep package made
callable, so it is both ``esmsim.sweep(...)`` and the home of ``esmsim.sweep.plots``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from esmsim._version import __version__

if TYPE_CHECKING:
    from esmsim.errors import ScenarioError
    from esmsim.result import RunResult
    from esmsim.run import simulate
    from esmsim.scenario import Scenario
    from esmsim.scenario.loader import load_scenario
    from esmsim.sweep import iter_sweep, sweep

#: Public name -> the module that defines it.
_LAZY = {
    "RunResult": "esmsim.result",
    "Scenario": "esmsim.scenario",
    "ScenarioError": "esmsim.errors",
    "iter_sweep": "esmsim.sweep",
    "load_scenario": "esmsim.scenario.loader",
    "simulate": "esmsim.run",
}

__all__ = [
    "RunResult",
    "Scenario",
    "ScenarioError",
    "__version__",
    "iter_sweep",
    "load_scenario",
    "simulate",
    "sweep",
]


def __getattr__(name: str) -> Any:
    if name == "sweep":  # the callable package (see esmsim/sweep/__init__.py)
        return importlib.import_module("esmsim.sweep")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'esmsim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
