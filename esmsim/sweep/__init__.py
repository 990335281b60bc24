"""Parameter sweeps: expansion, executors, resumable output, aggregation, recommendation, plots."""

from esmsim.sweep.runner import SweepPlan, analyse, iter_sweep, plan, sweep

__all__ = ["SweepPlan", "analyse", "iter_sweep", "plan", "sweep"]
