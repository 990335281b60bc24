"""esmsim: a discrete-event simulator of AWS Lambda event source mappings, for capacity planning.

Public API::

    import esmsim
    scenario = esmsim.load_scenario("scenarios/sqs-orders.yaml")
    result = esmsim.simulate(scenario, seed=7)
    result.summary["latency_p99_s"], result.timeseries["ConcurrentExecutions"]
    runs = esmsim.sweep("scenarios/sqs-orders-sweep.yaml", executor="local", out="out/sweep")
"""

from esmsim._version import __version__
from esmsim.errors import ScenarioError
from esmsim.result import RunResult
from esmsim.run import simulate
from esmsim.scenario import Scenario
from esmsim.scenario.loader import load_scenario
from esmsim.sweep import iter_sweep, sweep

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
