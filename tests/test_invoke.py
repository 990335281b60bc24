"""The invoke step's Lambda limits, end to end: the invocation rate quota, throttle reasons, and
environments reset by timeouts (docs/model.md §5, §6)."""

from __future__ import annotations

import numpy as np
import pytest

from esmsim.model.invoke import fit_payload
from esmsim.run import simulate
from esmsim.scenario.scenario import Scenario
from tests.helpers import scenario, traced


def busiest_second(starts: np.ndarray) -> int:
    """The most invocations that started within any 1-second window (t - 1, t]."""
    starts = np.sort(starts)
    return int((np.arange(starts.size) - np.searchsorted(starts, starts - 1.0, side="right") + 1).max())


def fast_function_scenario(duration: float = 3.0, **account: object) -> Scenario:
    # A 10 ms function draining a deep queue one message at a time with 1,000 pollers (the fleet
    # pinned at the account's concurrency, so no concurrency limit binds): each poller's loop is a
    # 10 ms receive round trip and a 10 ms invocation, so it would invoke 50 times a second.
    return Scenario.model_validate(
        {
            "name": "fast",
            "duration": duration,
            "account": {"concurrency_limit": 1000, **account},
            "functions": {"f": {"timeout": 1, "duration": "10ms", "cold_start": "0s"}},
            "sources": {
                "q": {"type": "sqs", "visibility_timeout": 60, "traffic": {"initial_backlog": 400_000}}
            },
            "mappings": [
                {
                    "source": "q",
                    "function": "f",
                    "batch_size": 1,
                    "maximum_concurrency": 1000,
                    "poller_scaling": {"initial": 1000, "ceiling": 1000, "min_pollers": 1000},
                }
            ],
        }
    )


def test_a_10_ms_function_never_exceeds_10000_invocations_a_second() -> None:
    # AWS's quota is 10 x the account's concurrency per second (10,000 here): beyond it invokes are
    # throttled with FunctionInvocationRateLimitExceeded, counted like any throttle.
    result = traced(fast_function_scenario(), tables=False)
    starts = result.invocations["start_s"].to_numpy()
    assert busiest_second(starts) == 10_000  # the quota binds, exactly
    reasons = result.throttles["reason"].astype(str)
    assert len(reasons) == result.summary["throttles"] > 0
    assert set(reasons) == {"FunctionInvocationRateLimitExceeded"}
    assert result.throttle_reasons == {"FunctionInvocationRateLimitExceeded": len(reasons)}


def test_without_the_quota_the_same_function_runs_far_faster() -> None:
    # The quota is a knob: raised out of the way, the same pollers run 50 invocations a second each
    # (started at 0.01, 0.03, ..., 0.99), and nothing is throttled. (What the quota prevents.)
    result = simulate(fast_function_scenario(1.0, invocation_rate_limit="1000000/s"), tables=False)
    assert result.summary["invocations"] == 50_000  # in one second
    assert result.summary["throttles"] == 0


def timing_out(reset: bool) -> Scenario:
    # Every invocation runs past the 1 s timeout; one poller, one environment.
    return scenario(
        {
            "duration": 300,
            "functions": {
                "f": {"timeout": 1, "duration": "2s", "cold_start": "200ms", "reset_on_timeout": reset}
            },
            "sources": {"q": {"visibility_timeout": 6, "traffic": {"rate": "2/s"}}},
        },
        {"poller_scaling": {"initial": 1, "ceiling": 1, "min_pollers": 1, "idle_min_pollers": 1}},
    )


def test_an_always_timing_out_function_cold_starts_on_every_invocation() -> None:
    # AWS resets the execution environment after a timeout: the next invocation in it runs Init
    # again. One poller reuses its one environment, so every invocation after the first is a
    # re-initialisation, billed and counted as a cold start.
    result = traced(timing_out(reset=True))
    inv = result.invocations
    assert len(inv) > 50
    assert set(inv["outcome"].astype(str)) == {"timeout"}
    assert inv["cold_start"].mean() >= 0.9
    assert list(inv["environment"].astype(str))[:3] == ["cold", "reinit", "reinit"]
    assert (inv["init_s"] == 0.2).all()
    assert result.summary["cold_starts"] == len(inv)
    # Each attempt takes init + timeout: 1.2 s from start to end.
    np.testing.assert_allclose(inv["end_s"] - inv["start_s"], 1.2)


def test_without_the_reset_the_environment_stays_warm() -> None:
    inv = traced(timing_out(reset=False)).invocations
    assert list(inv["environment"].astype(str)).count("cold") == 1
    assert set(inv["environment"].astype(str)) == {"cold", "warm"}


def test_provisioned_environments_reset_too() -> None:
    s = scenario(
        {
            "duration": 300,
            "functions": {
                "f": {"timeout": 1, "duration": "2s", "cold_start": "200ms", "provisioned_concurrency": 1}
            },
            "sources": {"q": {"visibility_timeout": 6, "traffic": {"rate": "2/s"}}},
        },
        {"poller_scaling": {"initial": 1, "ceiling": 1, "min_pollers": 1, "idle_min_pollers": 1}},
    )
    kinds = list(traced(s).invocations["environment"].astype(str))
    assert kinds[:2] == ["provisioned", "provisioned_reinit"]
    assert set(kinds[1:]) == {"provisioned_reinit"}


@pytest.mark.parametrize(
    ("payloads", "room", "expected"),
    [
        ([1.0, 1.0, 1.0], 10.0, (3, 3.0, False)),  # everything fits
        ([4.0, 4.0, 4.0], 10.0, (2, 8.0, True)),  # the third would pass the cap
        ([4.0, 6.0], 10.0, (2, 10.0, False)),  # exactly at the cap fits
        ([11.0], 10.0, (0, 0.0, True)),  # not even one
        ([], 10.0, (0, 0.0, False)),
    ],
)
def test_fit_payload(payloads: list[float], room: float, expected: tuple[int, float, bool]) -> None:
    cumulative = np.cumsum(np.asarray(payloads, dtype=float))
    assert fit_payload(cumulative, room) == expected
    # Running totals of a source carry what came before: the offset removes it.
    assert fit_payload(cumulative + 100.0, room, offset=100.0) == expected


def test_invocation_bytes_are_records_plus_metadata() -> None:
    # Each 1 KB message carries 800 B of event metadata toward the 6 MB payload.
    s = scenario(
        {"duration": 10, "sources": {"q": {"traffic": {"initial_backlog": 25, "record_size": "1KB"}}}},
        {"batch_size": 10, "record_overhead": 800},
    )
    inv = simulate(s, trace=True).invocations
    np.testing.assert_array_equal(inv["bytes"], inv["records"] * (1024 + 800))
