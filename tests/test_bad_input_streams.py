"""Bad input for stream sources and mappings: one located line each, exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from esmsim.cli import main

BASE = """\
functions:
  f: {timeout: 10}
sources:
  s: {type: SOURCE_TYPE, shards: 2}
mappings:
  - source: s
    function: f
    starting_position: LATEST
EXTRA
"""


def validate(tmp_path: Path, extra: str, source_type: str = "kinesis") -> tuple[int, str, str]:
    path = tmp_path / "stream.yaml"
    path.write_text(BASE.replace("SOURCE_TYPE", source_type).replace("EXTRA", extra))
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert "Traceback" not in result.output
    return result.exit_code, result.stderr.strip(), str(path)


@pytest.mark.parametrize(
    ("source_type", "extra", "line", "message"),
    [
        (
            "kinesis",
            "    parallelization_factor: 11",
            9,
            "mappings[0].parallelization_factor: 11 is above the maximum 10",
        ),
        (
            "kinesis",
            "    parallelization_factor: 0",
            9,
            "mappings[0].parallelization_factor: 0 is below the minimum 1",
        ),
        ("kinesis", "    batch_size: 10001", 9, "mappings[0].batch_size: 10001 is above the maximum 10000"),
        (
            "kinesis",
            "    maximum_retry_attempts: -2",
            9,
            "mappings[0].maximum_retry_attempts: -2 is below the minimum -1",
        ),
        (
            "kinesis",
            "    maximum_record_age: 30",
            9,
            "mappings[0].maximum_record_age: 30 is not -1 or between 60 and 604800 seconds (AWS's range)",
        ),
        (
            "kinesis",
            "    maximum_concurrency: 5",
            9,
            "mappings[0].maximum_concurrency: only for SQS mappings, not valid for Kinesis and "
            "DynamoDB event sources (ScalingConfig)",
        ),
        (
            "kinesis",
            "    TumblingWindowInSeconds: 60",
            9,
            "mappings[0].TumblingWindowInSeconds: tumbling windows are not modelled by esmsim; "
            "remove the key",
        ),
        (
            "kinesis",
            "    FilterCriteria: {Filters: [{Pattern: '{}'}]}",
            9,
            "mappings[0].FilterCriteria: a mapping's FilterCriteria is its `filter` here (match_rate, or a "
            "pattern on the source's traffic.attributes; docs/model.md §15)",
        ),
        (
            "kinesis",
            "    on_failure: {type: lambda}",
            9,
            "mappings[0].on_failure.type: 'lambda' is not allowed (allowed: sqs, sns, s3)",
        ),
        (
            "dynamodb",
            "    starting_position_timestamp: 0",
            9,
            "mappings[0].starting_position_timestamp: only valid with starting_position AT_TIMESTAMP "
            "(got LATEST)",
        ),
        (
            "dynamodb",
            "    enhanced_fan_out: true",
            9,
            "mappings[0].enhanced_fan_out: enhanced fan-out is for Kinesis streams only",
        ),
    ],
)
def test_stream_mapping_rules(tmp_path: Path, source_type: str, extra: str, line: int, message: str) -> None:
    code, stderr, path = validate(tmp_path, extra, source_type)
    assert code == 2
    assert stderr == f"{path}:{line}: {message}"


def test_at_timestamp_is_not_valid_for_dynamodb(tmp_path: Path) -> None:
    path = tmp_path / "ddb.yaml"
    path.write_text(
        BASE.replace("SOURCE_TYPE", "dynamodb").replace("LATEST", "AT_TIMESTAMP").replace("EXTRA", "")
    )
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"{path}:8: mappings[0].starting_position: AT_TIMESTAMP is not valid for DynamoDB streams "
        "(allowed: LATEST, TRIM_HORIZON)"
    )


def test_at_timestamp_needs_a_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "k.yaml"
    path.write_text(
        BASE.replace("SOURCE_TYPE", "kinesis").replace("LATEST", "AT_TIMESTAMP").replace("EXTRA", "")
    )
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == f"{path}:6: mappings[0].starting_position_timestamp: required with AT_TIMESTAMP"
    )


def test_starting_position_is_required_for_streams(tmp_path: Path) -> None:
    path = tmp_path / "k.yaml"
    path.write_text(
        BASE.replace("SOURCE_TYPE", "kinesis")
        .replace("    starting_position: LATEST\n", "")
        .replace("EXTRA", "")
    )
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"{path}:6: mappings[0].starting_position: required"


def test_dynamodb_retention_cannot_be_set(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(
        BASE.replace("{type: SOURCE_TYPE, shards: 2}", "{type: dynamodb, shards: 2, retention: 48h}").replace(
            "EXTRA", ""
        )
    )
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"{path}:4: sources.s.retention: DynamoDB streams keep records 24 hours; "
        "their retention cannot be set"
    )


def test_starting_position_is_not_valid_for_sqs(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text(BASE.replace("{type: SOURCE_TYPE, shards: 2}", "{type: sqs}").replace("EXTRA", ""))
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"{path}:8: mappings[0].starting_position: not valid for SQS event sources "
        "(AWS: StartingPosition is not valid for SQS event sources)"
    )


def test_three_readers_of_a_dynamodb_stream_is_a_warning(tmp_path: Path) -> None:
    extra = "\n".join(f"  - {{source: s, function: g{i}, starting_position: LATEST}}" for i in range(2))
    text = BASE.replace("SOURCE_TYPE", "dynamodb").replace("EXTRA", extra)
    text = text.replace("  f: {timeout: 10}", "  f: {timeout: 10}\n  g0: {timeout: 10}\n  g1: {timeout: 10}")
    path = tmp_path / "d.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0
    assert (
        "warning: mappings[2]: 3 mappings read DynamoDB stream 's': AWS advises at most 2 readers"
        in result.stderr
    )


def test_kinesis_long_term_retention_cost_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "k.yaml"
    path.write_text(BASE.replace("SOURCE_TYPE", "kinesis, retention: 30d").replace("EXTRA", ""))
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0
    assert (
        f"{path}:4: warning: sources.s.retention: retention beyond 7 days is billed per GB-month stored, "
        "which esmsim does not count: cost_source_usd is understated"
    ) in result.stderr
