"""Scenario files: schema, AWS rules, loading and overrides."""

from esmsim.scenario.scenario import Scenario, Sweep

__all__ = ["Scenario", "Sweep"]
