"""Amazon MQ mappings (docs/model.md §17): consumers, batching from the first message, whole-batch retry.

The micro-scenarios use constant arrivals (the k-th message at k / rate) or a backlog at time 0, a
function that takes exactly 0.1 s with no cold start, so every batch and invocation time is known.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esmsim import load_scenario, simulate
from esmsim.model.mq_mapping import MAX_NAP_S
from esmsim.scenario.scenario import Scenario, validate_scenario
from tests.helpers import assert_conserved, invocations_of, records_of, traced

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

#: A function that runs exactly 0.1 s, never cold for long: times below are exact.
FUNCTION: dict[str, Any] = {
    "duration": {"dist": "constant", "value": 0.1},
    "cold_start": {"dist": "constant", "value": 0.0},
    "timeout": 60,
}


def mq(
    source: dict[str, Any] | None = None,
    mapping: dict[str, Any] | None = None,
    function: dict[str, Any] | None = None,
    **top: Any,
) -> Scenario:
    """One ActiveMQ queue ``b`` read by one mapping into function ``f`` (keys override)."""
    return validate_scenario(
        {
            "duration": 60,
            **top,
            "functions": {"f": {**FUNCTION, **(function or {})}},
            "sources": {"b": {"type": "mq", "engine": "activemq", **(source or {})}},
            "mappings": [{"source": "b", "function": "f", **(mapping or {})}],
        }
    )


def starts(s: Scenario) -> list[tuple[float, int, str]]:
    result = traced(s)
    inv = invocations_of(result, 0)
    return [
        (round(float(t), 9), int(n), str(o))
        for t, n, o in zip(inv["start_s"], inv["records"], inv["outcome"], strict=True)
    ]


def states(s: Scenario) -> dict[str, int]:
    result = traced(s)
    assert_conserved(result)
    return {str(k): int(v) for k, v in records_of(result, "b")["state"].astype(str).value_counts().items()}


# --------------------------------------------------------------------------------------------------
# Batching


def test_the_window_starts_at_the_first_message() -> None:
    # Messages at 1.25, 2.5, 3.75, 5.0 ... s (0.8/s). The window (2 s) opens when a message is there:
    # 1.25 -> invoke at 3.25 with {1.25, 2.5}; the next opens at 3.75 (not when the invocation ends
    # at 3.35) -> 5.75 with {3.75, 5.0}; and so on every 2.5 s.
    s = mq({"traffic": {"rate": 0.8, "pattern": "constant"}}, {"batching_window": 2}, duration=12)
    assert starts(s) == [
        (3.25, 2, "success"),
        (5.75, 2, "success"),
        (8.25, 2, "success"),
        (10.75, 2, "success"),
    ]


def test_the_default_window_is_half_a_second() -> None:
    s = mq({"traffic": {"rate": 0, "initial_backlog": 10}})
    assert starts(s) == [(0.5, 10, "success")]


def test_a_full_batch_goes_at_once_and_the_rest_waits_for_its_window() -> None:
    # 250 messages at time 0, batches of 100, a 300 s window: two full batches at 0 (two consumers),
    # the last 50 when the third consumer's window, open since the first message (0), ends.
    s = mq({"traffic": {"rate": 0, "initial_backlog": 250}}, {"batching_window": 300}, duration=400)
    assert starts(s) == [(0.0, 100, "success"), (0.0, 100, "success"), (300.0, 50, "success")]


def test_the_6_mb_payload_closes_a_batch() -> None:
    # 1 MB messages: base64 (4/3) plus 500 bytes of metadata, 4 fit under 6 MB (5 would not).
    s = mq(
        {"traffic": {"rate": 0, "initial_backlog": 10, "record_size": "1MB"}},
        {"batching_window": 10},
        duration=30,
    )
    assert [n for _, n, _ in starts(s)] == [4, 4, 2]


def test_poisson_batches_hold_the_first_message_and_the_window_s_arrivals() -> None:
    # A window that opens at a message and closes W later holds that message plus the Poisson
    # arrivals of W: mean 1 + rate x W, variance rate x W (consumers never all busy, batches never full).
    rate, window = 20.0, 1.0
    s = mq({"traffic": {"rate": rate}}, {"batching_window": window, "batch_size": 10000}, duration=3600)
    inv = invocations_of(traced(s), 0)
    n = inv["records"].to_numpy()
    expected, se = 1 + rate * window, np.sqrt(rate * window / len(n))
    assert abs(n.mean() - expected) < 4 * se
    # The next window opens at the next arrival after a close: batches start W + 1/rate apart on average.
    gaps = np.diff(inv["start_s"].to_numpy())
    assert abs(gaps.mean() - (window + 1 / rate)) < 4 * (1 / rate) / np.sqrt(len(gaps))


# --------------------------------------------------------------------------------------------------
# Failures


def test_a_failing_batch_is_delivered_again_whole_until_it_succeeds() -> None:
    # Invocations fail until 3 s: attempts at 0.5, 1.6, 2.7 fail (each 0.1 s, then 1 s redelivery
    # delay), the fourth at 3.8 succeeds with all 10 messages.
    s = mq(
        {"traffic": {"rate": 0, "initial_backlog": 10}},
        function={"incidents": [{"start": 0, "end": 3, "invocation_error_rate": 1.0}]},
    )
    assert starts(s) == [(0.5, 10, "error"), (1.6, 10, "error"), (2.7, 10, "error"), (3.8, 10, "success")]
    assert states(s) == {"succeeded": 10}


def test_activemq_dead_letters_after_six_redeliveries() -> None:
    s = mq(
        {"traffic": {"rate": 0, "initial_backlog": 10}}, function={"errors": {"invocation_error_rate": 1.0}}
    )
    got = starts(s)
    assert len(got) == 7  # one delivery and 6 redeliveries (Lambda's maximumRedeliveries)
    assert [t for t, _, _ in got] == pytest.approx([0.5 + 1.1 * k for k in range(7)])
    assert states(s) == {"dlq": 10}


def test_a_rabbitmq_delivery_limit_drops_by_default() -> None:
    s = mq(
        {"engine": "rabbitmq", "max_redeliveries": 2, "traffic": {"rate": 0, "initial_backlog": 10}},
        function={"errors": {"invocation_error_rate": 1.0}},
    )
    assert len(starts(s)) == 3
    assert states(s) == {"dropped": 10}


def test_rabbitmq_retries_until_the_messages_expire() -> None:
    # No delivery limit: attempts at 0.5, 1.6, 2.7, 3.8, 4.9; the next (6.0) finds every message
    # past its 5 s time to live: they expire at 5 s.
    s = mq(
        {"engine": "rabbitmq", "message_ttl": 5, "traffic": {"rate": 0, "initial_backlog": 10}},
        function={"errors": {"invocation_error_rate": 1.0}},
    )
    assert len(starts(s)) == 5
    result = traced(s)
    records = records_of(result, "b")
    assert set(records["state"].astype(str)) == {"expired"}
    np.testing.assert_allclose(records["done_s"], 5.0)


def test_waiting_messages_expire_in_the_broker() -> None:
    # RabbitMQ's one consumer takes 100 at 0.5 s and is busy 10 s; the other 100 expire at 5 s waiting.
    s = mq(
        {"engine": "rabbitmq", "message_ttl": 5, "traffic": {"rate": 0, "initial_backlog": 200}},
        function={"duration": {"dist": "constant", "value": 10.0}},
    )
    assert states(s) == {"succeeded": 100, "expired": 100}


# --------------------------------------------------------------------------------------------------
# Filtering


def test_filtered_messages_are_acknowledged_and_never_invoked() -> None:
    s = mq({"traffic": {"rate": 50}}, {"filter": {"match_rate": 0.3}})
    result = traced(s)
    assert_conserved(result)
    summary = result.summary
    records = records_of(result, "b")
    filtered = int((records["state"].astype(str) == "filtered").sum())
    assert summary["records_filtered"] == filtered
    assert 0.6 < filtered / summary["records_in"] < 0.8
    # Only matching messages reach the function: the invocations carry exactly the succeeded ones.
    assert invocations_of(result, 0)["records"].sum() == summary["records_succeeded"]


# --------------------------------------------------------------------------------------------------
# Concurrency caps (V27) and conservation


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    engine=st.sampled_from(["activemq", "rabbitmq"]),
    rate=st.floats(1, 400),
    backlog=st.integers(0, 3000),
    batch=st.integers(1, 300),
    window=st.sampled_from([0, 0.5, 1, 3]),
    run_s=st.sampled_from([0.01, 0.3, 2.0, 20.0]),
    errors=st.sampled_from([0.0, 0.2, 1.0]),
    reserved=st.sampled_from([None, 2, 50, 900]),
    provisioned=st.sampled_from([0, 20]),
    ttl=st.sampled_from([None, 5.0, 30.0]),
    match=st.sampled_from([None, 0.5]),
)
def test_consumers_cap_concurrency_and_records_are_conserved(
    engine: str,
    rate: float,
    backlog: int,
    batch: int,
    window: float,
    run_s: float,
    errors: float,
    reserved: int | None,
    provisioned: int,
    ttl: float | None,
    match: float | None,
) -> None:
    if reserved is not None and provisioned > reserved:
        provisioned = reserved
    s = mq(
        {"engine": engine, "message_ttl": ttl, "traffic": {"rate": rate, "initial_backlog": backlog}},
        {
            "batch_size": batch,
            "batching_window": window,
            **({"filter": {"match_rate": match}} if match else {}),
        },
        {
            "duration": {"dist": "constant", "value": run_s},
            "errors": {"invocation_error_rate": errors},
            "reserved_concurrency": reserved,
            "provisioned_concurrency": provisioned,
        },
        duration=120,
    )
    result = traced(s)
    assert_conserved(result)
    assert result.diagnostics["late_level_changes"] == 0
    cap = 5 if engine == "activemq" else 1
    assert result.summary["concurrency_max"] <= cap
    inv = invocations_of(result, 0)
    # Recount the overlap from the invocations themselves: +1 at a start, -1 at an end.
    times = np.concatenate([inv["start_s"], inv["end_s"]])
    steps = np.concatenate([np.ones(len(inv)), -np.ones(len(inv))])
    order = np.lexsort((steps, times))  # an end before a start at the same instant
    assert (np.cumsum(steps[order]).max(initial=0)) <= cap
    assert (inv["records"] <= batch).all()


def test_raised_consumers_lift_the_cap() -> None:
    s = mq(
        {"traffic": {"rate": 0, "initial_backlog": 2000}},
        {"consumers": 12},
        {"duration": {"dist": "constant", "value": 2.0}},
    )
    assert traced(s).summary["concurrency_max"] == 12


# --------------------------------------------------------------------------------------------------
# Live changes, outputs


def test_a_live_change_of_batch_size_and_enabled_applies_from_the_next_batch() -> None:
    s = mq(
        {"traffic": {"rate": 10, "pattern": "constant"}},
        {"batching_window": 1},
        duration=60,
        changes=[
            {"at": 10, "set": {"mappings[0].batch_size": 5}},
            {"at": 30, "set": {"mappings[0].enabled": False}},
        ],
    )
    inv = invocations_of(traced(s), 0)
    before = inv[inv["start_s"] < 15]
    after = inv[(inv["start_s"] > 16) & (inv["start_s"] < 35)]
    assert before["records"].max() == 11  # a 1 s window from 0.1 s holds 0.1 ... 1.1 s
    assert after["records"].max() == 5
    assert not (inv["start_s"] > 36).any()  # disabled from 35 s (5 s update delay)


def test_a_live_filter_change_applies_from_the_next_batch() -> None:
    s = mq(
        {"traffic": {"rate": 20}},
        duration=120,
        changes=[{"at": 55, "set": {"mappings[0].filter": {"match_rate": 0.0}}}],
    )
    result = traced(s)
    assert_conserved(result)
    records = records_of(result, "b")
    state = records["state"].astype(str)
    # Every message before the change is processed; from a minute on, none is (a match rate of 0).
    assert (state[records["sent_s"] < 59] == "succeeded").all()
    # (A gathering consumer with nothing to take looks again every MAX_NAP_S: the last few seconds'
    # messages are still waiting when the run ends.)
    later = (records["sent_s"] > 61) & (records["sent_s"] < 120 - MAX_NAP_S)
    assert (state[later] == "filtered").all()
    assert invocations_of(result, 0)["start_s"].max() < 61


def test_queue_size_is_reported_under_the_engines_names() -> None:
    s = mq({"traffic": {"rate": 0, "initial_backlog": 500}}, {"batching_window": 0}, duration=120)
    result = simulate(s)
    ts = result.timeseries
    assert ts["QueueSize"].iloc[0] > 0
    assert (ts["MessageCount"] == 0).all()
    assert result.summary["mq_queue_size_max"] == 500
    row = result.resources[result.resources["kind"] == "mapping"].iloc[0]
    assert row["limit"] == 5


def test_iam_grants_the_broker_its_secret_and_the_network_interfaces() -> None:
    from esmsim.iam import MQ_NETWORK, policies

    statements = policies(mq())["functions"]["f"]["Statement"]
    resources: dict[str, set[str]] = {}
    for statement in statements:
        arns = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for action in statement["Action"]:
            resources.setdefault(action, set()).update(arns)
    assert resources["mq:DescribeBroker"] == {"arn:aws:mq:us-east-1:123456789012:broker:b:*"}
    (secret,) = resources["secretsmanager:GetSecretValue"]
    assert secret.endswith(":secret:b-credentials-*")
    # Every network-interface action is granted; describing takes no resource, creating and deleting
    # are scoped to the interface, subnet and security-group ARNs of the account.
    assert set(MQ_NETWORK) <= set(resources)
    assert resources["ec2:DescribeNetworkInterfaces"] == {"*"}
    for action in ("ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface"):
        assert "*" not in resources[action]
        assert any(":network-interface/" in arn for arn in resources[action])


def test_the_example_scenario_peaks_above_what_five_consumers_take() -> None:
    s = load_scenario(SCENARIOS / "mq-integration.yaml")
    result = simulate(s)
    summary = result.summary
    assert summary["concurrency_max"] <= 5
    assert summary["mq_queue_size_max"] > 1000  # the peak outruns the consumers: the queue grows
    assert summary["records_in_flight_end"] < summary["records_in"] * 0.01  # and drains after it
    assert summary["records_dlq"] > 0  # poison orders take their batch mates to the DLQ
    # RabbitMQ: one consumer, redelivering its first poison batch without limit, blocks the queue.
    rabbit = simulate(s.with_changes({"sources.orders-broker.engine": "rabbitmq"})).summary
    assert rabbit["concurrency_max"] == 1
    assert rabbit["records_dlq"] == 0
    assert rabbit["records_succeeded"] < summary["records_succeeded"] * 0.05


TEMPLATE = """\
Resources:
  Broker:
    Type: AWS::AmazonMQ::Broker
    Properties: {BrokerName: orders, EngineType: RABBITMQ, HostInstanceType: mq.m5.large}
  Forwarder:
    Type: AWS::Lambda::Function
    Properties: {Runtime: python3.12, Handler: app.handler, Timeout: 60, Code: {ZipFile: x}}
  Mapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      EventSourceArn: !GetAtt Broker.Arn
      FunctionName: !Ref Forwarder
      BatchSize: 50
      Queues: [orders]
  Billing:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      EventSourceArn: arn:aws:mq:us-east-1:123456789012:broker:billing:b-1234-5678
      FunctionName: !Ref Forwarder
"""


def test_import_reads_a_broker_and_its_mappings(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from esmsim.cli import main

    template, out = tmp_path / "template.yaml", tmp_path / "scenario.yaml"
    template.write_text(TEMPLATE, encoding="utf-8")
    result = CliRunner().invoke(main, ["import", str(template), "--out", str(out)])
    assert result.exit_code == 0, result.output
    s = load_scenario(out)
    broker, billing = s.sources["Broker"], s.sources["billing"]
    assert (broker.type, getattr(broker, "engine", None)) == ("mq", "rabbitmq")
    assert (billing.type, getattr(billing, "engine", None)) == ("mq", "activemq")  # a placeholder
    assert [(m.source, m.batch_size) for m in s.mappings] == [("Broker", 50), ("billing", 100)]
    assert "sources.billing.engine" in result.output


def test_a_broker_beside_a_queue_and_a_stream_adds_to_the_backlog() -> None:
    s = validate_scenario(
        {
            "duration": 120,
            "functions": {"f": FUNCTION, "g": FUNCTION, "h": FUNCTION},
            "sources": {
                "b": {"type": "mq", "engine": "rabbitmq", "traffic": {"rate": 0, "initial_backlog": 300}},
                "q": {"type": "sqs", "visibility_timeout": 120, "traffic": {"rate": 5}},
                "k": {"type": "kinesis", "shards": 1, "traffic": {"rate": 5}},
            },
            "mappings": [
                {"source": "b", "function": "f", "batching_window": 0},
                {"source": "q", "function": "g"},
                {"source": "k", "function": "h", "starting_position": "TRIM_HORIZON"},
            ],
        }
    )
    result = traced(s)
    assert_conserved(result)
    assert result.summary["mq_queue_size_max"] == 300
    assert result.summary["backlog_max"] >= 300
    assert records_of(result, "b")["state"].astype(str).eq("succeeded").all()
