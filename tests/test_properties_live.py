"""Properties of runs with random live changes: records conserved, limits in effect never exceeded.

Each example is a small SQS or Kinesis scenario from the property tests' strategies plus one to
three live changes at random times: mappings disabled and enabled, maximum concurrency and batch
size changed, functions' reserved concurrency and handler time changed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from esmsim.errors import ScenarioError
from esmsim.scenario.scenario import Scenario
from tests.helpers import assert_conserved, concurrency_at, traced
from tests.test_properties import SETTINGS, sqs_scenarios

#: Fewer examples than the other property tests: each run here is traced and has live changes.
LIVE_SETTINGS = settings(SETTINGS, max_examples=8)


@st.composite
def live_scenarios(draw: st.DrawFn) -> Scenario:
    base = draw(sqs_scenarios())
    changes: list[dict[str, Any]] = []
    at = 0.0
    for _ in range(draw(st.integers(1, 3))):
        at += draw(st.floats(1.0, base.duration / 2))
        sets: dict[str, Any] = {}
        i = draw(st.integers(0, len(base.mappings) - 1))
        kind = draw(st.sampled_from(["enabled", "cap", "batch", "reserved", "duration"]))
        if kind == "enabled":
            sets[f"mappings[{i}].enabled"] = draw(st.booleans())
        elif kind == "cap":
            sets[f"mappings[{i}].maximum_concurrency"] = draw(st.integers(2, 20))
        elif kind == "batch":
            sets[f"mappings[{i}].batch_size"] = draw(st.integers(1, 10))
        elif kind == "reserved":
            sets[f"functions.{base.mappings[i].function}.reserved_concurrency"] = draw(st.integers(1, 10))
        else:
            sets[f"functions.{base.mappings[i].function}.duration"] = f"{draw(st.integers(5, 800))}ms"
        changes.append({"at": at, "set": sets})
    raw = base.data()
    raw["changes"] = changes
    raw["update_delay"] = draw(st.sampled_from([0, 1, 5]))
    try:
        return Scenario.model_validate(raw)
    except ScenarioError:
        assume(False)  # a change AWS would reject at that time (e.g. a reservation too large)
        raise


@LIVE_SETTINGS
@given(live_scenarios())
def test_live_changes_conserve_records_and_respect_the_limits_in_effect(s: Scenario) -> None:
    result = traced(s)
    assert_conserved(result)
    assert result.diagnostics["late_level_changes"] == 0
    inv = result.invocations
    if inv.empty:
        return
    starts = inv["start_s"].to_numpy()
    for i, spec in enumerate(s.mappings):
        mine = inv[inv["mapping"].astype(str).str.startswith(f"mappings[{i}]:")]
        # Between changes the mapping's settings are those in effect: never more records per batch
        # than the batch size in effect when the batch started (plus nothing for a disabled one).
        timeline = [(0.0, spec)] + [(t, stage.mappings[i]) for t, stage in s.stages]
        for k, (begin, state) in enumerate(timeline):
            end = timeline[k + 1][0] if k + 1 < len(timeline) else np.inf
            # A batch already being collected when the change came may close up to a window and a
            # long poll after it, with the settings it was collected under, and a throttled one is
            # retried until its visibility timeout would pass.
            visibility = getattr(s.sources[state.source], "visibility_timeout", 0.0)
            grace = state.batching_window + state.polling.wait_time + visibility + 1
            window = mine[(mine["start_s"] >= begin + grace) & (mine["start_s"] < end)]
            if not state.enabled:
                assert window.empty, f"mappings[{i}] invoked while disabled"
                readers = [m for m in s.mappings if m.source == state.source]
                if len(readers) == 1 and end < np.inf:
                    # Nothing is received while it is disabled (its queue's only mapping).
                    rec = result.records
                    rec = rec[rec["consumer"].astype(str) == state.source]
                    received = (rec["sent_s"] + rec["queued_s"]).to_numpy()
                    assert not ((received > begin + 1e-9) & (received < end)).any()
            assert (window["records"] <= state.batch_size).all()
            cap = getattr(state, "maximum_concurrency", None)
            if cap is not None and not window.empty:
                # Batches started once the change had settled run at most the cap in effect.
                running = concurrency_at(window, window["start_s"].to_numpy())
                assert running.max() <= cap, f"mappings[{i}] ran {running.max()} batches, cap {cap}"
    for name in s.functions:
        mine = inv[inv["function"].astype(str) == name]
        timeline = [(0.0, s.functions[name])] + [(t, stage.functions[name]) for t, stage in s.stages]
        for k, (begin, state) in enumerate(timeline):
            end = timeline[k + 1][0] if k + 1 < len(timeline) else np.inf
            reserved = state.reserved_concurrency
            if reserved is None:
                continue
            # Invocations admitted after a change respect the reservation then in effect (those
            # already running when it came are not stopped).
            admitted = mine[(mine["start_s"] >= begin) & (mine["start_s"] < end)]
            if admitted.empty:
                continue
            running = concurrency_at(admitted, admitted["start_s"].to_numpy())
            assert running.max() <= reserved
    assert (starts >= 0).all()
