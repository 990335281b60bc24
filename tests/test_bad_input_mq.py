"""Amazon MQ sources and mappings (docs/model.md §17): each bad key gives one located line, exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_bad_input import assert_bad, run_file

BASE = [
    "name: broker",  # 1
    "functions:",  # 2
    "  forwarder:",  # 3
    "    memory_mb: 512",  # 4
    "    timeout: 30s",  # 5
    "    duration: {dist: lognormal, median: 40ms, p99: 250ms}",  # 6
    "sources:",  # 7
    "  orders:",  # 8
    "    type: mq",  # 9
    "    engine: activemq",  # 10
    "    traffic: {rate: 100/s, record_size: 2KB}",  # 11
    "mappings:",  # 12
    "  - source: orders",  # 13
    "    function: forwarder",  # 14
    "    batch_size: 100",  # 15
]

#: What an MQ mapping's message lists after the AWS name of a key it does not take.
TAKES = (
    "an MQ mapping takes batch_size, batching_window, enabled, filter, consumers, redelivery_delay and "
    "throttle_retry"
)


def scenario(edits: dict[int, str | None] | None = None) -> str:
    lines: list[str | None] = list(BASE)
    for number, text in (edits or {}).items():
        lines[number - 1] = text
    return "\n".join(line for line in lines if line is not None) + "\n"


def check(tmp_path: Path, edits: dict[int, str | None], expected: str) -> None:
    path, result = run_file(tmp_path, scenario(edits))
    assert_bad(result, expected.format(path=path))


def test_the_base_file_is_valid(tmp_path: Path) -> None:
    _, result = run_file(tmp_path, scenario())
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        ({10: None}, "{path}:8: sources.orders.engine: required"),
        (
            {10: "    engine: kafka"},
            "{path}:10: sources.orders.engine: 'kafka' is not allowed (allowed: activemq, rabbitmq)",
        ),
        (
            {10: "    engine: activemq\n    message_ttl: 0s"},
            "{path}:11: sources.orders.message_ttl: must be greater than 0 s (got 0 s)",
        ),
        (
            {10: "    engine: activemq\n    max_redeliveries: -2"},
            "{path}:11: sources.orders.max_redeliveries: -2 is below the minimum -1",
        ),
        (
            {10: "    engine: activemq\n    dead_letter: maybe"},
            "{path}:11: sources.orders.dead_letter: 'maybe' is not true or false",
        ),
        (
            {10: "    engine: activemq\n    record_overhead: -1"},
            "{path}:11: sources.orders.record_overhead: -1 bytes is below the minimum 0 bytes",
        ),
    ],
    ids=["engine-missing", "engine", "ttl", "redeliveries", "dead-letter", "overhead"],
)
def test_bad_source_keys(tmp_path: Path, edits: dict[int, str | None], expected: str) -> None:
    check(tmp_path, edits, expected)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("    batch_size: 0", "mappings[0].batch_size: 0 is below the minimum 1"),
        ("    batch_size: 10001", "mappings[0].batch_size: 10001 is above the maximum 10000"),
        ("    batching_window: 301s", "mappings[0].batching_window: 301 s is above the maximum 300 s (5m)"),
        (
            "    batching_window: 1.5s",
            "mappings[0].batching_window: 1.5 s is not a whole number of seconds (AWS takes integer "
            "seconds; 0.5 s is only the default)",
        ),
        ("    consumers: 0", "mappings[0].consumers: 0 is below the minimum 1"),
        ("    redelivery_delay: -1s", "mappings[0].redelivery_delay: -1 s is below the minimum 0 s"),
    ],
    ids=["batch-0", "batch-big", "window-big", "window-fraction", "consumers", "redelivery-delay"],
)
def test_bad_mapping_values(tmp_path: Path, line: str, expected: str) -> None:
    check(tmp_path, {15: line}, "{path}:15: " + expected)


@pytest.mark.parametrize(
    ("line", "key", "aws"),
    [
        ("    parallelization_factor: 2", "parallelization_factor", "ParallelizationFactor"),
        ("    maximum_concurrency: 10", "maximum_concurrency", "ScalingConfig"),
        ("    ScalingConfig: {MaximumConcurrency: 10}", "ScalingConfig", "ScalingConfig"),
        (
            "    provisioned_pollers: {minimum: 2, maximum: 10}",
            "provisioned_pollers",
            "ProvisionedPollerConfig",
        ),
        (
            "    bisect_batch_on_function_error: true",
            "bisect_batch_on_function_error",
            "BisectBatchOnFunctionError",
        ),
        ("    on_failure: {type: sqs}", "on_failure", "DestinationConfig"),
        (
            "    FunctionResponseTypes: [ReportBatchItemFailures]",
            "FunctionResponseTypes",
            "FunctionResponseTypes",
        ),
        ("    starting_position: LATEST", "starting_position", "StartingPosition"),
        ("    maximum_retry_attempts: 3", "maximum_retry_attempts", "MaximumRetryAttempts"),
    ],
    ids=[
        "factor",
        "max-concurrency",
        "scaling-config",
        "provisioned",
        "bisect",
        "on-failure",
        "rbif",
        "start",
        "retries",
    ],
)
def test_keys_an_mq_mapping_does_not_take(tmp_path: Path, line: str, key: str, aws: str) -> None:
    check(
        tmp_path,
        {15: line},
        f"{{path}}:15: mappings[0].{key}: not valid for Amazon MQ event sources ({aws}); {TAKES}",
    )


def test_a_function_timeout_above_14_minutes(tmp_path: Path) -> None:
    check(
        tmp_path,
        {5: "    timeout: 15m"},
        "{path}:5: functions.forwarder.timeout: 900 s is above 14 minutes, the longest timeout of a function "
        "an Amazon MQ mapping invokes (mappings[0] reads 'orders'; allowed: up to 840s)",
    )


def test_a_broker_in_another_account(tmp_path: Path) -> None:
    check(
        tmp_path,
        {
            1: "name: broker\naccounts:\n  a: {}\n  b: {}",
            4: "    memory_mb: 512\n    account: a",
            10: "    engine: activemq\n    account: b",
        },
        "{path}:19: mappings[0].function: 'forwarder' is in account 'a' and broker queue 'orders' in 'b': "
        "Lambda does not read Amazon MQ brokers of another account (put both in one account)",
    )


def test_a_second_mapping_on_one_queue(tmp_path: Path) -> None:
    check(
        tmp_path,
        {
            3: "  other:\n    duration: {dist: constant, value: 0.1}\n  forwarder:",
            15: "  - source: orders\n    function: other",
        },
        "{path}:17: mappings[1].source: 'orders' is already read by mappings[0]: esmsim models one mapping "
        "per Amazon MQ queue",
    )


def test_a_failing_batch_redelivered_without_time_passing(tmp_path: Path) -> None:
    check(
        tmp_path,
        {
            6: "    duration: {dist: constant, value: 0}\n    errors: {invocation_error_rate: 0.5}",
            15: "    redelivery_delay: 0s",
        },
        "{path}:16: mappings[0].redelivery_delay: a failing batch would be delivered again every 0 s: the "
        "simulated clock would stop (allowed: at least 1e-06s; default 1s)",
    )


def test_a_poison_message_without_a_redelivery_limit_is_warned(tmp_path: Path) -> None:
    path, result = run_file(
        tmp_path,
        scenario(
            {
                6: "    duration: {dist: constant, value: 0.1}\n    errors: {poison_record_rate: 0.001}",
                10: "    engine: rabbitmq",
            }
        ),
    )
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        f"{path}:9: warning: sources.orders: 'forwarder' meets poison messages and broker queue 'orders' "
        "redelivers without limit nor expiry: a poison batch holds its consumer for the rest of the run "
        "(set max_redeliveries, as a quorum queue's delivery-limit, or message_ttl)"
    ]
