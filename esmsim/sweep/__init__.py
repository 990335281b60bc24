"""Parameter sweeps: expansion, executors, resumable output, aggregation, recommendation, plots.

The package is callable: ``esmsim.sweep(...)`` is :func:`esmsim.sweep.runner.sweep`. Importing a
submodule (``esmsim.sweep.plots``) binds ``esmsim.sweep`` to this package, so the package itself
must be the function too, whichever of the two a program reaches first.
"""

import sys
import types
from typing import Any

from esmsim.sweep.runner import SweepPlan, analyse, iter_sweep, plan, sweep

__all__ = ["SweepPlan", "analyse", "iter_sweep", "plan", "sweep"]


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
