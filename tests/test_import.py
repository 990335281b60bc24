"""``esmsim import``: CloudFormation and SAM templates into scenarios that validate and run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from esmsim import load_scenario, simulate
from esmsim.cli import main
from esmsim.importer import PLACEHOLDER_NOTE, import_template
from tests.test_bad_input import assert_bad

TEMPLATES = Path(__file__).resolve().parent / "templates"


def imported(tmp_path: Path, template: str) -> tuple[Path, str, str]:
    out = tmp_path / "scenario.yaml"
    result = CliRunner().invoke(main, ["import", str(TEMPLATES / template), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.stdout, result.stderr


def test_a_sam_application_is_carried_over_value_by_value(tmp_path: Path) -> None:
    out, stdout, stderr = imported(tmp_path, "sam-app.yaml")
    s = load_scenario(out)
    orders = s.functions["OrdersFunction"]
    # Globals (Timeout, Architectures) and the function's own settings, through SAM's expansion.
    assert (orders.memory_mb, orders.timeout, orders.architecture) == (1024, 25, "arm64")
    assert orders.reserved_concurrency == 50
    assert orders.provisioned_concurrency == 5  # AutoPublishAlias + ProvisionedConcurrencyConfig
    queue = s.sources["OrdersQueue"]
    assert (queue.visibility_timeout, queue.retention, queue.max_receive_count) == (180, 86400, 5)
    sqs = next(m for m in s.mappings if m.source == "OrdersQueue")
    assert sqs.function == "OrdersFunction"  # through the alias the mapping names
    assert (sqs.batch_size, sqs.batching_window, sqs.maximum_concurrency) == (10, 2, 20)
    assert sqs.report_batch_item_failures is True
    cdc = next(m for m in s.mappings if m.source == "OrdersTable")
    assert s.sources["OrdersTable"].type == "dynamodb"
    assert (cdc.batch_size, cdc.maximum_retry_attempts, cdc.maximum_record_age) == (100, 3, 3600)
    assert (cdc.bisect_batch_on_function_error, cdc.parallelization_factor) == (True, 2)
    assert cdc.starting_position == "TRIM_HORIZON"
    assert cdc.on_failure is not None
    assert (cdc.on_failure.type, cdc.on_failure.name) == ("sqs", "CdcFailures")
    thumb = s.functions["ThumbFunction"].async_
    assert (thumb.maximum_retry_attempts, thumb.maximum_event_age) == (1, 3600)
    assert thumb.on_failure is not None
    assert (thumb.on_failure.type, thumb.on_failure.name) == ("sqs", "OrdersDLQ")
    pushes = {(t.source, t.function) for t in s.triggers}
    assert pushes == {
        ("Uploads", "ThumbFunction"),
        ("Topic", "ThumbFunction"),
        ("NightlyFunctionNightly", "NightlyFunction"),
    }
    assert s.sources["Uploads"].type == "s3"
    assert s.sources["Topic"].type == "sns"
    nightly = s.sources["NightlyFunctionNightly"]
    assert nightly.type == "eventbridge"
    assert nightly.traffic.rate == pytest.approx(1 / 300)  # rate(5 minutes)
    # What a template cannot say is a marked placeholder; what esmsim does not model is listed.
    text = out.read_text(encoding="utf-8")
    assert text.count(PLACEHOLDER_NOTE) == 9
    assert "not imported: Dashboard: AWS::CloudWatch::Dashboard (not modelled by esmsim)" in stderr
    assert "functions.OrdersFunction.duration" in stdout
    # And it runs.
    result = simulate(load_scenario(out, ["duration=3m"]))
    assert result.summary["records_succeeded"] > 0
    assert set(result.resources["kind"]) >= {"mapping", "trigger"}


def test_the_guides_s3_mapping_imports_as_a_trigger_with_a_note(tmp_path: Path) -> None:
    out, _, stderr = imported(tmp_path, "guide-s3-mapping.yaml")
    s = load_scenario(out)
    assert s.mappings == ()
    assert [(t.source, t.function) for t in s.triggers] == [("my-s3-bucket", "MyFunction")]
    assert s.sources["my-s3-bucket"].type == "s3"
    assert s.functions["MyFunction"].memory_mb == 512
    assert "an event source mapping on S3 source 'my-s3-bucket': AWS rejects it" in stderr
    assert "MyEventSourceMapping.BatchSize: a trigger has no such setting" in stderr
    assert "AWS rejects it" in out.read_text(encoding="utf-8")
    assert simulate(load_scenario(out, ["duration=1m"])).summary["invocations"] > 0


def test_what_cannot_be_imported_is_listed(tmp_path: Path) -> None:
    template = {
        "Resources": {
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Timeout": 10}},
            "DocDb": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "EventSourceArn": "arn:aws:rds:us-east-1:123456789012:cluster:docs",
                    "FunctionName": {"Ref": "Fn"},
                },
            },
            "Kafka": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "EventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/c/abc",
                    "FunctionName": {"Ref": "Fn"},
                    "Topics": ["orders"],
                },
            },
            "Stream": {"Type": "AWS::Kinesis::Stream", "Properties": {"ShardCount": 1}},
            "Windowed": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "EventSourceArn": {"Fn::GetAtt": ["Stream", "Arn"]},
                    "FunctionName": {"Ref": "Fn"},
                    "StartingPosition": "LATEST",
                    "TumblingWindowInSeconds": 60,
                },
            },
            "Queue": {"Type": "AWS::SQS::Queue"},
            "Filtered": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "EventSourceArn": {"Fn::GetAtt": ["Queue", "Arn"]},
                    "FunctionName": {"Ref": "Fn"},
                    "FilterCriteria": {"Filters": [{"Pattern": "[1]"}]},
                },
            },
            "Dashboard": {"Type": "AWS::CloudWatch::Dashboard"},
        }
    }
    path = tmp_path / "template.json"
    path.write_text(json.dumps(template), encoding="utf-8")
    result = import_template(path)
    assert result.skipped == [
        "DocDb.EventSourceArn: a rds source (not modelled by esmsim)",
        "Windowed.TumblingWindowInSeconds: not modelled by esmsim",
        "Filtered.FilterCriteria: Filters[0].Pattern is not a JSON object; state the share of records it "
        "matches as mappings[2].filter.match_rate",
        "Dashboard: AWS::CloudWatch::Dashboard (not modelled by esmsim)",
    ]
    # The Kafka mapping (an MSK cluster outside the template) is imported: tests/test_kafka.py.
    # FIFO queues and filters that can be read: tests/test_import_filters.py.
    assert [m["source"] for m in result.data["mappings"]] == ["abc", "Stream", "Queue"]


def test_a_template_that_does_not_parse_gets_one_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("Resources:\n  Fn: {Type: AWS::Lambda::Function\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["import", str(path), "--out", str(tmp_path / "s.yaml")])
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"{path}:")
    assert not (tmp_path / "s.yaml").exists()


def test_a_template_aws_would_reject_is_reported_like_any_scenario(tmp_path: Path) -> None:
    # A function timeout above its queue's visibility timeout: AWS rejects the mapping.
    template = {
        "Resources": {
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Timeout": 120}},
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 30}},
            "Read": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "EventSourceArn": {"Fn::GetAtt": ["Queue", "Arn"]},
                    "FunctionName": {"Ref": "Fn"},
                },
            },
        }
    }
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(template), encoding="utf-8")
    result = CliRunner().invoke(main, ["import", str(path), "--out", str(tmp_path / "s.yaml")])
    # Located at the template's line of the mapping's resource.
    line = path.read_text(encoding="utf-8").splitlines().index("  Read:") + 1
    assert_bad(
        result,
        f"{path}:{line}: mappings[0]: function 'Fn' timeout 120 s exceeds the visibility timeout of queue "
        "'Queue' (30 s): AWS rejects this mapping",
    )


def test_a_bad_value_points_at_the_templates_line(tmp_path: Path) -> None:
    template = """\
Resources:
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      MemorySize: 20
  Queue:
    Type: AWS::SQS::Queue
  Read:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      EventSourceArn: !GetAtt Queue.Arn
      FunctionName: !Ref Fn
      BatchSize: 20000
"""
    path = tmp_path / "t.yaml"
    path.write_text(template, encoding="utf-8")
    result = CliRunner().invoke(main, ["import", str(path), "--out", str(tmp_path / "s.yaml")])
    assert_bad(
        result,
        f"{path}:5: functions.Fn.MemorySize: 20 is below the minimum 128",
        f"{path}:13: mappings[0].BatchSize: 20000 is above the maximum 10000",
    )


def test_a_sam_events_bad_value_points_at_its_function(tmp_path: Path) -> None:
    # SAM makes the mapping (FnOrders); its line is the SAM function's it came from.
    template = """\
Transform: AWS::Serverless-2016-10-31
Resources:
  Queue:
    Type: AWS::SQS::Queue
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.handler
      Runtime: python3.12
      CodeUri: src/
      Events:
        Orders:
          Type: SQS
          Properties: {Queue: !GetAtt Queue.Arn, BatchSize: 20000}
"""
    path = tmp_path / "sam.yaml"
    path.write_text(template, encoding="utf-8")
    result = CliRunner().invoke(main, ["import", str(path), "--out", str(tmp_path / "s.yaml")])
    assert_bad(result, f"{path}:5: mappings[0].BatchSize: 20000 is above the maximum 10000")


def test_lint_prints_cfn_lints_findings_and_the_import_goes_on(tmp_path: Path) -> None:
    template = """\
Resources:
  Fn:
    Type: AWS::Lambda::Function
    Properties: {Timeout: 10}
  Queue:
    Type: AWS::SQS::Queue
    Properties: {VisibilityTimeout: 60, Colour: blue}
  Read:
    Type: AWS::Lambda::EventSourceMapping
    Properties: {EventSourceArn: !GetAtt Queue.Arn, FunctionName: !Ref Fn}
"""
    path = tmp_path / "t.yaml"
    path.write_text(template, encoding="utf-8")
    out = tmp_path / "s.yaml"
    result = CliRunner().invoke(main, ["import", str(path), "--out", str(out), "--lint"])
    assert result.exit_code == 0, result.output
    lint = [line for line in result.stderr.splitlines() if ": lint " in line]
    # cfn-lint knows the whole resource specification: an unknown queue property is its finding.
    assert (
        f"{path}:7: lint error E3002: Additional properties are not allowed ('Colour' was unexpected)" in lint
    )
    assert out.exists()
    assert result.stdout.startswith(f"wrote {out}")
