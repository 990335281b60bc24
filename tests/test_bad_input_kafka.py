"""Bad input for Kafka sources and mappings: one located line each, exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from esmsim.cli import main

BASE = """\
functions:
  f: {timeout: TIMEOUT}
sources:
  t: {type: kafka, partitions: 2SOURCE}
mappings:
  - source: t
    function: f
    starting_position: LATEST
EXTRA
"""


def validate(tmp_path: Path, extra: str = "", source: str = "", timeout: str = "10") -> tuple[int, str, str]:
    path = tmp_path / "kafka.yaml"
    text = BASE.replace("EXTRA", extra).replace("SOURCE", source).replace("TIMEOUT", timeout)
    path.write_text(text)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert "Traceback" not in result.output
    return result.exit_code, result.stderr.strip(), str(path)


@pytest.mark.parametrize(
    ("extra", "line", "message"),
    [
        ("    batch_size: 0", 9, "mappings[0].batch_size: 0 is below the minimum 1"),
        ("    batch_size: 10001", 9, "mappings[0].batch_size: 10001 is above the maximum 10000"),
        ("    batching_window: 301", 9, "mappings[0].batching_window: 301 s is above the maximum 300 s (5m)"),
        (
            "    maximum_record_age: 30",
            9,
            "mappings[0].maximum_record_age: 30 is not -1 or between 60 and 604800 seconds (AWS's range)",
        ),
        (
            "    maximum_retry_attempts: -2",
            9,
            "mappings[0].maximum_retry_attempts: -2 is below the minimum -1",
        ),
        (
            "    provisioned_pollers: {minimum: 0}",
            9,
            "mappings[0].provisioned_pollers.minimum: 0 is below the minimum 1",
        ),
        (
            "    provisioned_pollers: {minimum: 201}",
            9,
            "mappings[0].provisioned_pollers.minimum: 201 is above the maximum 200",
        ),
        (
            "    provisioned_pollers: {maximum: 2001}",
            9,
            "mappings[0].provisioned_pollers.maximum: 2001 is above the maximum 2000",
        ),
        (
            "    provisioned_pollers: {minimum: 5, maximum: 2}",
            9,
            "mappings[0].provisioned_pollers: minimum (5) must not exceed maximum (2)",
        ),
        (
            "    on_failure: {type: kinesis}",
            9,
            "mappings[0].on_failure.type: 'kinesis' is not allowed (allowed: sqs, sns, s3, kafka)",
        ),
        (
            "    DestinationConfig: {OnFailure: {Destination: 'arn:aws:kinesis:us-east-1:1:stream/x'}}",
            6,
            "mappings[0]: DestinationConfig.OnFailure.Destination must be an SQS, SNS or S3 ARN or "
            "kafka://TOPIC",
        ),
        (
            "    kafka_scaling: {invokes_per_poller: 0}",
            9,
            "mappings[0].kafka_scaling.invokes_per_poller: 0 is below the minimum 1",
        ),
        (
            "    kafka_scaling: {evaluation_interval: 0}",
            9,
            "mappings[0].kafka_scaling.evaluation_interval: must be greater than 0 s (got 0 s)",
        ),
        (
            "    parallelization_factor: 2",
            9,
            "mappings[0].parallelization_factor: not valid for Kafka event sources (a partition is read by "
            "one batch at a time)",
        ),
        (
            "    checkpoint: key",
            9,
            "mappings[0].checkpoint: not valid for Kafka event sources (a partition is read by one batch at "
            "a time)",
        ),
        (
            "    enhanced_fan_out: true",
            9,
            "mappings[0].enhanced_fan_out: not valid for Kafka event sources (enhanced fan-out is for "
            "Kinesis streams only)",
        ),
        (
            "    maximum_concurrency: 5",
            9,
            "mappings[0].maximum_concurrency: only for SQS mappings, not valid for Kafka event sources "
            "(ScalingConfig)",
        ),
        (
            "    tumbling_window: 5",
            9,
            "mappings[0].tumbling_window: tumbling windows are not modelled by esmsim; remove the key",
        ),
    ],
)
def test_kafka_mapping_keys(tmp_path: Path, extra: str, line: int, message: str) -> None:
    code, stderr, path = validate(tmp_path, extra)
    assert code == 2
    assert stderr == f"{path}:{line}: {message}"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (", flavor: confluent", "sources.t.flavor: 'confluent' is not allowed (allowed: msk, self_managed)"),
        (", retention: 0", "sources.t.retention: must be greater than 0 s (got 0 s)"),
        (", shards: 2", "sources.t.shards: unknown key here"),
    ],
)
def test_kafka_source_keys(tmp_path: Path, source: str, message: str) -> None:
    code, stderr, path = validate(tmp_path, source=source)
    assert code == 2
    assert stderr.startswith(f"{path}:4: {message}")


def test_partitions_are_required(tmp_path: Path) -> None:
    path = tmp_path / "kafka.yaml"
    path.write_text(BASE.replace(", partitions: 2SOURCE", "").replace("EXTRA", "").replace("TIMEOUT", "10"))
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"{path}:4: sources.t.partitions: required"


def test_a_function_timeout_above_14_minutes_is_refused(tmp_path: Path) -> None:
    code, stderr, path = validate(tmp_path, timeout="841")
    assert code == 2
    assert stderr == (
        f"{path}:2: functions.f.timeout: 841 s is above 14 minutes, the longest timeout of a function a "
        "Kafka mapping invokes (mappings[0] reads 't'; allowed: up to 840s)"
    )


def test_14_minutes_is_allowed(tmp_path: Path) -> None:
    code, _, _ = validate(tmp_path, timeout="840")
    assert code == 0
