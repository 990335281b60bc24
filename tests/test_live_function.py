"""Live changes of a function's memory and provisioned concurrency (docs/model.md §14).

The micro-scenarios feed a queue at a constant 1 message a second (the first at 1 s) to a function
of constant handler time, one message per batch. A ReceiveMessage round trip is 10 ms, so one
poller starts an invocation every 1.01 s while it keeps up: the k-th at k x 1.01 s. A change made
at 60 s takes effect at 65 s (``update_delay`` 5 s).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import assume, given
from hypothesis import strategies as st

from esmsim.cli import main
from esmsim.errors import ScenarioError
from esmsim.scenario.scenario import Scenario
from tests.helpers import ONE_POLLER, assert_conserved, concurrency_at, peak_concurrency, traced
from tests.test_bad_input import assert_bad
from tests.test_properties import sqs_scenarios
from tests.test_properties_live import LIVE_SETTINGS

# us-east-1 list prices, USD per GB-second (esmsim/data/pricing-us-east-1.yaml).
X86 = 0.0000166667  # duration, on demand
X86_ON_PROVISIONED = 0.0000097222  # duration on a provisioned environment
X86_PROVISIONED_KEPT = 0.0000041667  # keeping provisioned concurrency configured
EFFECTIVE = 65.0  # a change at 60 s, update_delay 5 s
#: Three pollers, always: up to three invocations at once.
THREE_POLLERS = {"initial": 3, "ceiling": 3, "min_pollers": 3, "idle_min_pollers": 3}


def queue_into(
    function: dict[str, Any],
    changes: list[dict[str, Any]],
    *,
    rate: float = 1,
    pollers: dict[str, Any] = ONE_POLLER,
    **extra: Any,
) -> Scenario:
    """A 5-minute run: a queue fed at a constant ``rate`` into function ``f``, one message per batch."""
    defaults = {"duration": "1s", "cold_start": "0s", "memory_mb": 1024, "timeout": 10}
    raw: dict[str, Any] = {
        "duration": "5m",
        "functions": {"f": defaults | function},
        "sources": {
            "q": {
                "type": "sqs",
                "visibility_timeout": 30,
                "traffic": {"rate": f"{rate}/s", "pattern": "constant"},
            }
        },
        "mappings": [{"source": "q", "function": "f", "batch_size": 1, "poller_scaling": pollers}],
        "changes": changes,
        **extra,
    }
    return Scenario.model_validate(raw)


def at_60s(**keys: Any) -> list[dict[str, Any]]:
    """One change at 60 s setting ``functions.f.KEY`` for each keyword."""
    return [{"at": "1m", "set": {f"functions.f.{key}": value for key, value in keys.items()}}]


def test_memory_doubled_mid_run_bills_each_invocation_at_the_memory_it_ran_with() -> None:
    # 1,024 MB to 2,048 MB (MemorySize, AWS's spelling) at 60 s. The handler was measured at the
    # memory the run started with, 1 s; at 2,048 MB it has one full vCPU (1,769 MB and above), so it
    # runs 1,024 / 1,769 of the time: 0.578858 s, billed 579 ms.
    s = queue_into({}, at_60s(MemorySize=2048))
    stage = s.stages[0][1].functions["f"]
    assert stage.measured_at_memory_mb == 1024
    assert stage.cpu_factor == pytest.approx(1024 / 1769)
    result = traced(s)
    inv = result.invocations
    before, after = inv[inv["start_s"] < EFFECTIVE], inv[inv["start_s"] >= EFFECTIVE]
    # Invocations start at k x 1.01 s: k = 1..64 before 65 s (64.64 s), all at 1,024 MB for 1 s.
    assert len(before) == 64
    assert (before["memory_mb"] == 1024).all()
    np.testing.assert_allclose(before["run_s"], 1.0)
    # The rest run at 2,048 MB, faster: the poller catches up, and every message that arrived by
    # the end (one a second, 1 s to 299 s) is invoked: 299 - 64 = 235 of them.
    assert len(after) == 235
    assert (after["memory_mb"] == 2048).all()
    np.testing.assert_allclose(after["run_s"], 1024 / 1769)
    # The new memory is a new configuration: the first invocation after it starts in a new environment.
    assert list(after["environment"].astype(str))[:2] == ["cold", "warm"]
    # Compute: 64 x 1 s x 1 GB + 235 x 0.579 s x 2 GB = 64 + 272.13 = 336.13 GB-s.
    assert result.summary["cost_lambda_compute_usd"] == pytest.approx((64 + 235 * 0.579 * 2) * X86, rel=1e-12)
    assert result.summary["cost_lambda_provisioned_usd"] == 0
    assert_conserved(result)


def test_memory_halved_below_one_vcpu_costs_the_same_gb_seconds_but_doubles_the_handler_time() -> None:
    # 1,024 MB to 512 MB at 60 s: half the CPU share, twice the time (2 s), the same GB-seconds per
    # invocation (2 s x 0.5 GB = 1 s x 1 GB). Billing at any one memory for the whole run would not
    # give 1 GB-s for every invocation.
    s = queue_into({}, at_60s(memory_mb=512))
    result = traced(s)
    inv = result.invocations
    memory, run_s = inv["memory_mb"].to_numpy(), inv["run_s"].to_numpy()
    np.testing.assert_array_equal(memory, np.where(inv["start_s"] < EFFECTIVE, 1024, 512))
    np.testing.assert_allclose(run_s, np.where(memory == 1024, 1.0, 2.0))
    n = len(inv)
    assert result.summary["cost_lambda_compute_usd"] == pytest.approx(n * 1.0 * X86, rel=1e-12)
    assert_conserved(result)


def test_provisioned_concurrency_raised_serves_after_its_allocation_and_is_billed_from_the_change() -> None:
    # 0 to 2 at 60 s, in effect at 65 s. Lambda prepares for provisioned_allocation (default 120 s)
    # and allocates the 2 environments at the function scaling rate (1,000 per 10 s): 0.02 s. From
    # 185.02 s they serve every invocation (one at a time here), initialised: no cold start.
    s = queue_into({"cold_start": "300ms"}, at_60s(provisioned_concurrency=2))
    result = traced(s)
    inv = result.invocations
    ready = EFFECTIVE + 120 + 2 / 100
    environment = inv["environment"].astype(str).to_numpy()
    starts = inv["start_s"].to_numpy()
    assert set(environment[starts < ready]) == {"cold", "warm"}
    assert set(environment[starts >= ready]) == {"provisioned"}
    assert (inv["init_s"].to_numpy()[starts >= ready] == 0).all()
    # Environments alive, minute by minute: the on-demand one from its cold start at 1.01 s; from
    # 185.02 s the two provisioned ones too (the idle on-demand one lives out its 10 minutes).
    np.testing.assert_allclose(
        result.timeseries["Environments"], [(60 - 1.01) / 60, 1, 1, 1 + 2 * (240 - ready) / 60, 3]
    )
    # Provisioned concurrency is billed for what is configured, from when the change took effect:
    # 2 x 1 GB x (300 - 65) s.
    assert result.summary["cost_lambda_provisioned_usd"] == pytest.approx(
        2 * 1 * (300 - EFFECTIVE) * X86_PROVISIONED_KEPT, rel=1e-12
    )
    # Compute: each invocation's billed time x 1 GB at the rate of the environment it ran in (the
    # cold start's 300 ms init billed with it).
    billed = np.ceil(np.round((inv["run_s"] + inv["init_s"]).to_numpy() * 1000, 6)) / 1000
    rate = np.where(environment == "provisioned", X86_ON_PROVISIONED, X86)
    assert result.summary["cost_lambda_compute_usd"] == pytest.approx(float((billed * rate).sum()), rel=1e-12)
    assert result.summary["provisioned_invocations"] == (starts >= ready).sum()
    assert_conserved(result)


def test_provisioned_allocation_is_a_knob_and_a_new_configuration_replaces_one_being_allocated() -> None:
    # 0 to 5 at 60 s (effective 65 s, allocation 30 s: due at 95.05 s), then 5 to 1 at 80 s
    # (effective 85 s): the allocation of 5 is abandoned and one of 1 starts, due at 85 + 30 + 0.01.
    s = queue_into(
        {"provisioned_allocation": "30s"},
        [
            {"at": "1m", "set": {"functions.f.provisioned_concurrency": 5}},
            {"at": "80s", "set": {"functions.f.provisioned_concurrency": 1}},
        ],
    )
    result = traced(s)
    inv = result.invocations
    ready = 85 + 30 + 1 / 100
    provisioned = inv["environment"].astype(str) == "provisioned"
    assert (provisioned == (inv["start_s"] >= ready)).all()
    minute_1 = (60 - ready % 60) / 60
    np.testing.assert_allclose(result.timeseries["Environments"][1:3], [1 + minute_1, 2])
    # Billed as configured: 5 from 65 s to 85 s, then 1.
    assert result.summary["cost_lambda_provisioned_usd"] == pytest.approx(
        (5 * 20 + 1 * (300 - 85)) * X86_PROVISIONED_KEPT, rel=1e-12
    )


def test_provisioned_concurrency_lowered_releases_free_environments_at_once() -> None:
    # 3 to 1 at 60 s, one invocation at a time: at 65 s the two free environments go at once and the
    # busy one carries on. Environments alive: 3, then 3 for 5 s and 1 for 55 s of minute 1, then 1.
    s = queue_into({"provisioned_concurrency": 3}, at_60s(provisioned_concurrency=1))
    result = traced(s)
    assert set(result.invocations["environment"].astype(str)) == {"provisioned"}
    np.testing.assert_allclose(result.timeseries["Environments"], [3, (3 * 5 + 55) / 60, 1, 1, 1])
    # 3 x 1 GB for 65 s, then 1 x 1 GB for 235 s.
    assert result.summary["cost_lambda_provisioned_usd"] == pytest.approx(
        (3 * 65 + 1 * 235) * X86_PROVISIONED_KEPT, rel=1e-12
    )


def test_provisioned_concurrency_lowered_busy_environments_finish_and_on_demand_takes_the_rest() -> None:
    # Three pollers and 3 messages a second of 1 s work: three provisioned environments busy all the
    # time. Lowered to 1 at 60 s: at 65 s all three are busy (started at 64.31, 64.64 and 64.98 s);
    # the first two to finish leave, the third stays. The invocations beyond one at a time go on
    # demand from then on: the first two start cold (500 ms init), each 10 ms after an environment left.
    s = queue_into(
        {"provisioned_concurrency": 3, "cold_start": "500ms"},
        at_60s(provisioned_concurrency=1),
        rate=3,
        pollers=THREE_POLLERS,
    )
    result = traced(s)
    inv = result.invocations
    environment = inv["environment"].astype(str)
    on_pc = inv[environment == "provisioned"]
    on_demand = inv[environment != "provisioned"]
    assert (on_demand["start_s"] >= EFFECTIVE).all()
    assert list(on_demand["environment"].astype(str))[:3] == ["cold", "cold", "warm"]
    # After the two busy ones left (by 65.64 s), provisioned invocations never overlap.
    later = on_pc[on_pc["start_s"] > 65.64]
    assert peak_concurrency(later) == 1
    # Concurrency never went above the three environments the function had: one left at 65.31 s
    # and a cold on-demand one came 10 ms later, twice: 3 x 60 s minus 2 x 10 ms of minute 1.
    assert peak_concurrency(inv) == 3
    np.testing.assert_allclose(result.timeseries["Environments"][:3], [3, 3 - 2 * 0.01 / 60, 3])
    assert_conserved(result)


@pytest.mark.parametrize(
    ("function", "account", "reason"),
    [
        ({"reserved_concurrency": 2}, None, "ReservedFunctionConcurrentInvocationLimitExceeded"),
        ({}, {"concurrency_limit": 2, "unreserved_minimum": 0}, "ConcurrentInvocationLimitExceeded"),
    ],
    ids=["reservation", "account"],
)
def test_new_provisioned_environments_wait_for_the_on_demand_invocations_holding_their_concurrency(
    function: dict[str, Any], account: dict[str, Any] | None, reason: str
) -> None:
    # Concurrency 2 in all (the function's reservation, or an account of 2). Queue q keeps two
    # pollers busy with 20 s invocations: on demand, started at 61.03 and 62.04 s. Provisioned
    # concurrency 0 to 2 at 60 s, allocated at 65 + 10 + 0.02 = 75.02 s: both new environments take
    # concurrency the two running invocations hold, so each serves only once one of them has ended
    # (81.03 and 82.04 s). Queue r's one message, visible at 80 s, is throttled at 80.01 s: it finds
    # no free environment rather than a third invocation beyond the limit.
    fn = {"duration": "20s", "cold_start": "0s", "timeout": 30, "provisioned_allocation": "10s"}
    two = {"initial": 2, "ceiling": 2, "min_pollers": 2, "idle_min_pollers": 2}
    raw: dict[str, Any] = {
        "duration": "3m",
        "functions": {"f": fn | function},
        "sources": {
            "q": {"type": "sqs", "visibility_timeout": 60, "traffic": {"rate": "1/s", "pattern": "constant"}},
            "r": {
                "type": "sqs",
                "visibility_timeout": 60,
                "delivery_delay": "80s",
                "traffic": {"initial_backlog": 1},
            },
        },
        "mappings": [
            {"source": "q", "function": "f", "batch_size": 1, "poller_scaling": two},
            {"source": "r", "function": "f", "batch_size": 1, "poller_scaling": ONE_POLLER},
        ],
        "changes": at_60s(provisioned_concurrency=2),
    }
    if account is not None:
        raw["account"] = account
    result = traced(Scenario.model_validate(raw))
    inv = result.invocations
    assert peak_concurrency(inv) == 2
    around = inv[(inv["start_s"] > 60) & (inv["start_s"] < 105)]
    np.testing.assert_allclose(around["start_s"], [61.03, 62.04, 81.04, 82.05, 101.05, 102.06])
    assert list(around["environment"].astype(str)) == ["warm", "warm"] + ["provisioned"] * 4
    throttles = result.throttles
    assert throttles["time_s"].iloc[0] == pytest.approx(80.01)
    assert set(throttles["reason"].astype(str)) == {reason}
    assert_conserved(result)


BASE = [
    "duration: 30m",  # 1
    "functions: {f: {duration: 100ms, reserved_concurrency: 3}}",  # 2
    "sources: {q: {type: sqs, max_receive_count: 5, traffic: {rate: 5/s}}}",  # 3
    "mappings: [{source: q, function: f}]",  # 4
    "changes:",  # 5
    "  - at: 10m",  # 6
    "    set:",  # 7
]


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        (
            {2: "functions: {f: {duration: 100ms, provisioned_allocation: -1s}}"},
            "{path}:2: functions.f.provisioned_allocation: -1 s is below the minimum 0 s",
        ),
        (
            {8: "      functions.f.ProvisionedConcurrentExecutions: 5"},
            "{path}:7: changes[0].set: at 600 s: functions.f.provisioned_concurrency: 5 exceeds the "
            "function's reserved concurrency (3)",
        ),
    ],
    ids=["negative-allocation", "above-the-reservation-at-that-time"],
)
def test_bad_provisioned_settings_get_one_line(tmp_path: Path, edits: dict[int, str], expected: str) -> None:
    lines = [*BASE, "      functions.f.memory_mb: 2048"]
    for number, text in edits.items():
        lines[number - 1] = text
    path = tmp_path / "live.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert_bad(CliRunner().invoke(main, ["validate", str(path)]), expected.format(path=path))


# --------------------------------------------------------------------------------------------------
# A property: random memory, provisioned and reserved concurrency changes


@st.composite
def function_changes(draw: st.DrawFn) -> Scenario:
    base = draw(sqs_scenarios())
    raw = base.data()
    for fn in raw["functions"].values():
        fn["provisioned_allocation"] = draw(st.sampled_from([0, 1, 10]))
    changes: list[dict[str, Any]] = []
    at = 0.0
    for _ in range(draw(st.integers(1, 3))):
        at += draw(st.floats(1.0, base.duration / 2))
        name = draw(st.sampled_from(list(base.functions)))
        sets: dict[str, Any] = {}
        for key in draw(st.sets(st.sampled_from(["memory", "provisioned", "reserved"]), min_size=1)):
            if key == "memory":
                sets[f"functions.{name}.memory_mb"] = draw(st.sampled_from([128, 512, 1769, 3008]))
            elif key == "provisioned":
                sets[f"functions.{name}.provisioned_concurrency"] = draw(st.integers(0, 4))
            else:
                sets[f"functions.{name}.reserved_concurrency"] = draw(st.integers(1, 10))
        changes.append({"at": at, "set": sets})
    raw["changes"] = changes
    raw["update_delay"] = draw(st.sampled_from([0, 1, 5]))
    try:
        return Scenario.model_validate(raw)
    except ScenarioError:
        assume(False)  # a change AWS would reject at that time (provisioned above the reservation ...)
        raise


@LIVE_SETTINGS
@given(function_changes())
def test_memory_and_provisioned_changes_conserve_records_respect_limits_and_bill_exactly(s: Scenario) -> None:
    result = traced(s)
    assert_conserved(result)
    assert result.diagnostics["late_level_changes"] == 0
    inv, summary, ts = result.invocations, result.summary, result.timeseries
    timeline = [(0.0, s), *((t, stage) for t, stage in s.stages if t < s.duration)]
    times = np.array([t for t, _ in timeline])
    if not any("reserved_concurrency" in key for change in s.changes for key in change.set):
        # (A reservation set live while the function runs more than it allows leaves the account
        # over its limit until those invocations end: running invocations are not stopped.)
        assert peak_concurrency(inv) <= s.account.concurrency_limit
    assert (ts["Environments"] >= ts["ConcurrencyMean"] - 1e-9).all()
    for name in s.functions:
        mine = inv[inv["function"].astype(str) == name]
        starts = mine["start_s"].to_numpy()
        # Each invocation ran with the memory in effect when it started (a start at the very
        # instant a change takes effect may fall on either side).
        stage = np.searchsorted(times, starts, side="right") - 1
        expected = np.array([spec.functions[name].memory_mb for _, spec in timeline])[stage]
        clear = ~np.isin(starts, times)
        np.testing.assert_array_equal(mine["memory_mb"].to_numpy()[clear], expected[clear])
        # Never more provisioned invocations at once than the most provisioned concurrency configured.
        most = max(spec.functions[name].provisioned_concurrency for _, spec in timeline)
        on_pc = mine[mine["environment"].astype(str).str.startswith("provisioned")]
        assert peak_concurrency(on_pc) <= most
        # Invocations admitted while a reservation is in effect never exceed it (those running when
        # it came are not stopped).
        for k, (begin, spec) in enumerate(timeline):
            end = timeline[k + 1][0] if k + 1 < len(timeline) else math.inf
            reserved = spec.functions[name].reserved_concurrency
            admitted = mine[(starts >= begin) & (starts < end)]
            if reserved is not None and not admitted.empty:
                assert concurrency_at(admitted, admitted["start_s"].to_numpy()).max() <= reserved
    # Compute: each invocation's billed time x the memory it ran with x its environment's rate.
    pricing = s.pricing
    billed = np.ceil(np.round((inv["run_s"] + inv["init_s"]).to_numpy() * 1000, 6)) / 1000
    on_pc = inv["environment"].astype(str).str.startswith("provisioned").to_numpy()
    arm = np.array([s.functions[str(f)].architecture == "arm64" for f in inv["function"]], dtype=bool)
    rate = np.where(
        on_pc,
        np.where(arm, pricing.lambda_provisioned_duration_gb_second_arm_usd, X86_ON_PROVISIONED),
        np.where(arm, pricing.lambda_gb_second_arm_usd, X86),
    )
    expected_compute = float((billed * inv["memory_mb"].to_numpy() / 1024 * rate).sum())
    assert summary["cost_lambda_compute_usd"] == pytest.approx(expected_compute, rel=1e-9, abs=1e-15)
    # Provisioned: configured concurrency x memory over each stage's time.
    kept = 0.0
    for k, (begin, spec) in enumerate(timeline):
        end = timeline[k + 1][0] if k + 1 < len(timeline) else s.duration
        for fn in spec.functions.values():
            price = (
                pricing.lambda_provisioned_gb_second_arm_usd
                if fn.architecture == "arm64"
                else X86_PROVISIONED_KEPT
            )
            kept += fn.provisioned_concurrency * fn.memory_mb / 1024 * (min(end, s.duration) - begin) * price
    assert summary["cost_lambda_provisioned_usd"] == pytest.approx(kept, rel=1e-9, abs=1e-15)
