"""Live changes during a run: each change made when it takes effect (docs/model.md §14).

The scenario holds, after validation, the system as it stands after each change
(:attr:`~esmsim.scenario.scenario.Scenario.stages`); this process hands the mappings, functions,
queues and asynchronous event queues that a change touches their new settings, which each applies
itself (``apply``).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from typing import Any

import simpy

from esmsim.model.async_queue import AsyncEventQueue
from esmsim.model.function import LambdaFunction
from esmsim.model.mq_mapping import MqMappingRuntime
from esmsim.model.sqs_mapping import SqsMappingRuntime
from esmsim.model.sqs_queue import SqsQueue
from esmsim.model.stream_mapping import StreamMappingRuntime
from esmsim.scenario.mappings import MqMapping, SqsMapping, StreamMapping
from esmsim.scenario.scenario import Scenario
from esmsim.scenario.sources import SqsSource


def apply_changes(
    env: simpy.Environment,
    scenario: Scenario,
    mappings: Sequence[SqsMappingRuntime | StreamMappingRuntime | MqMappingRuntime],
    functions: Mapping[str, LambdaFunction],
    queues: Mapping[str, SqsQueue],
    async_queues: Mapping[str, AsyncEventQueue],
) -> Generator[simpy.Event, Any, None]:
    """Make each live change when it takes effect: the mappings, functions, queues it touches follow it."""
    current = scenario
    for effective_at, stage in scenario.stages:
        if effective_at >= scenario.duration:
            return
        yield env.timeout(max(0.0, effective_at - env.now))
        now = env.now
        for runtime, old, new in zip(mappings, current.mappings, stage.mappings, strict=True):
            if old == new:
                continue
            # A mapping's kind never changes (its source is fixed), so the spec fits its runtime.
            if isinstance(runtime, SqsMappingRuntime):
                assert isinstance(new, SqsMapping)
                runtime.apply(new, now)
            elif isinstance(runtime, MqMappingRuntime):
                assert isinstance(new, MqMapping)
                runtime.apply(new, now)
            else:
                assert isinstance(new, StreamMapping)
                runtime.apply(new, now)
        for name, function in functions.items():
            if current.functions[name] != stage.functions[name]:
                function.apply(stage.functions[name], env)
                if name in async_queues:
                    async_queues[name].apply(stage.functions[name].async_, now)
        for name, queue in queues.items():
            spec = stage.sources[name]
            if current.sources[name] != spec:
                assert isinstance(spec, SqsSource)  # a source's type never changes
                queue.apply(spec)
        current = stage
