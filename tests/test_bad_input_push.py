"""Bad input around push sources and triggers: one located line each, exit code 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from esmsim.cli import main
from tests.test_bad_input import assert_bad

BASE = [
    "duration: 10m",  # 1
    "functions:",  # 2
    "  thumbnail: {duration: 300ms}",  # 3
    "sources:",  # 4
    "  my-s3-bucket: {type: s3, traffic: {rate: 5/s}}",  # 5
    "triggers:",  # 6
    "  - {source: my-s3-bucket, function: thumbnail}",  # 7
]


def write(tmp_path: Path, edits: dict[int, str | None]) -> str:
    lines: list[str | None] = list(BASE)
    for number, text in edits.items():
        lines[number - 1] = text
    path = tmp_path / "push.yaml"
    path.write_text("\n".join(line for line in lines if line is not None) + "\n", encoding="utf-8")
    return str(path)


GUIDE = (
    "{path}:7: mappings[0].source: 'my-s3-bucket' is an S3 bucket: S3 invokes Lambda asynchronously through "
    "a trigger, not an event source mapping, and AWS rejects CreateEventSourceMapping for it; write it "
    "under triggers: - {{source: my-s3-bucket, function: thumbnail}}"
)


@pytest.mark.parametrize("command", ["validate", "run"])
def test_the_guides_s3_mapping_is_refused_with_what_to_write_instead(tmp_path: Path, command: str) -> None:
    path = write(
        tmp_path, {6: "mappings:", 7: "  - {source: my-s3-bucket, function: thumbnail, batch_size: 10}"}
    )
    result = CliRunner().invoke(
        main, [command, path, *(["--out", str(tmp_path / "out")] if command == "run" else [])]
    )
    assert_bad(result, GUIDE.format(path=path))
    assert not (tmp_path / "out").exists()


def test_a_mapping_naming_an_s3_arn_gets_the_same_explanation(tmp_path: Path) -> None:
    path = write(
        tmp_path, {6: "mappings:", 7: "  - {source: 'arn:aws:s3:::my-s3-bucket', function: thumbnail}"}
    )
    result = CliRunner().invoke(main, ["validate", path])
    assert len(result.stderr.splitlines()) == 1
    assert "is an S3 bucket: S3 invokes Lambda asynchronously through a trigger" in result.stderr
    assert result.exit_code == 2


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        (
            {5: "  q: {type: sqs, traffic: {rate: 5/s}}", 7: "  - {source: q, function: thumbnail}"},
            "{path}:7: triggers[0].source: 'q' is a sqs source, read by an event source mapping: write it "
            "under mappings, not triggers (triggers are for s3, sns, eventbridge)",
        ),
        (
            {7: "  - {source: my-s3-bucket, function: thumbnial}"},
            "{path}:7: triggers[0].function: unknown function 'thumbnial' (did you mean 'thumbnail'?)",
        ),
        (
            {7: "  - {source: my-s3-bucket}"},
            "{path}:7: triggers[0]: give exactly one of function (an asynchronous invoke) or queue "
            "(into SQS)",
        ),
        (
            {
                7: "  - {source: my-s3-bucket, function: thumbnail}\n"
                + "  - {source: my-s3-bucket, function: thumbnail}"
            },
            "{path}:8: triggers[1]: 'my-s3-bucket' already delivers to 'thumbnail' (triggers[0]); a "
            "subscription or notification exists once",
        ),
        (
            {3: "  thumbnail: {duration: 300ms, async: {on_success: {type: s3}}}"},
            "{path}:3: functions.thumbnail.async.on_success: S3 is an on-failure destination only (AWS "
            "rejects it on success)",
        ),
        (
            {3: "  thumbnail: {duration: 300ms, async: {MaximumRetryAttempts: 3}}"},
            "{path}:3: functions.thumbnail.async.MaximumRetryAttempts: 3 is above the maximum 2",
        ),
        (
            {
                5: "  t: {type: sns, traffic: {rate: 5/s, record_size: 300KB}}",
                7: "  - {source: t, function: thumbnail}",
            },
            "{path}:5: sources.t.traffic.record_size: records of up to 307200 bytes exceed SNS's largest "
            "message (262144 bytes)",
        ),
        (
            {
                5: "  t: {type: sns, traffic: {rate: 5/s}}\n  q: {type: sqs, traffic: {rate: 1/s}}",
                7: "  - {source: t, queue: q}",
            },
            "{path}:6: sources.q.traffic: queue 'q' is fed by triggers[0] (t); esmsim does not mix it with "
            "traffic of its own: remove the traffic key",
        ),
    ],
    ids=[
        "sqs-as-trigger",
        "unknown-function",
        "no-target",
        "duplicate",
        "s3-on-success",
        "retry-range",
        "sns-size",
        "fed-queue-traffic",
    ],
)
def test_trigger_rules(tmp_path: Path, edits: dict[int, str | None], expected: str) -> None:
    path = write(tmp_path, edits)
    result = CliRunner().invoke(main, ["validate", path])
    assert_bad(result, expected.format(path=path))
