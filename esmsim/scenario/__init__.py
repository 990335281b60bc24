"""Scenario files: schema, AWS rules, loading and changes."""

from esmsim.scenario.scenario import Scenario

__all__ = ["Scenario"]
