"""``esmsim import`` of what issue 12 added: a mapping's FilterCriteria and FIFO queues."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from esmsim import load_scenario, simulate
from esmsim.cli import main
from esmsim.importer import PLACEHOLDER_NOTE, import_template
from esmsim.importer.filters import OTHER, placeholder_shares

FN = {"Type": "AWS::Lambda::Function", "Properties": {"Timeout": 10}}


def reads(source: str, pattern: Any = None, **props: Any) -> dict[str, Any]:
    """An event source mapping of ``Fn`` on ``source``, filtered by ``pattern`` (a list: several)."""
    p: dict[str, Any] = {"EventSourceArn": {"Fn::GetAtt": [source, "Arn"]}, "FunctionName": {"Ref": "Fn"}}
    if pattern is not None:
        patterns = pattern if isinstance(pattern, list) else [pattern]
        p["FilterCriteria"] = {
            "Filters": [{"Pattern": x if isinstance(x, str) else json.dumps(x)} for x in patterns]
        }
    return {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {**p, **props}}


def write(tmp_path: Path, resources: dict[str, Any]) -> Path:
    path = tmp_path / "template.json"
    path.write_text(json.dumps({"Resources": {"Fn": FN, **resources}}), encoding="utf-8")
    return path


def imported(tmp_path: Path, resources: dict[str, Any]) -> tuple[str, str]:
    """The written scenario's text and the command's stderr (``esmsim import`` must succeed)."""
    out = tmp_path / "scenario.yaml"
    result = CliRunner().invoke(main, ["import", str(write(tmp_path, resources)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out.read_text(encoding="utf-8"), result.stderr


def line_of(text: str, start: str) -> str:
    (found,) = [line for line in text.splitlines() if line.lstrip(" -").startswith(start)]
    return found


# ------------------------------------------------------------------------------------- filters
def test_a_body_pattern_becomes_a_pattern_on_placeholder_attributes_and_runs(tmp_path: Path) -> None:
    pattern = {"body": {"kind": ["order", "refund"]}}
    text, stderr = imported(tmp_path, {"Queue": {"Type": "AWS::SQS::Queue"}, "Read": reads("Queue", pattern)})
    data = yaml.safe_load(text)
    assert data["mappings"][0]["filter"] == {"pattern": {"kind": ["order", "refund"]}}
    # Half the records split among the listed values, half match none: a placeholder, marked.
    shares = data["sources"]["Queue"]["traffic"]["attributes"]["kind"]
    assert shares == {"order": 0.25, "refund": 0.25, OTHER: 0.5}
    assert line_of(text, "attributes:").endswith(PLACEHOLDER_NOTE)
    note = "imported as mappings[0].filter.pattern on sources.Queue.traffic.attributes (kind is body.kind)"
    assert note in stderr
    # It validates and runs: about half the messages are filtered out, none reach the function.
    result = simulate(load_scenario(tmp_path / "scenario.yaml", ["duration=2m"]))
    s = result.summary
    assert s["records_filtered"] + s["records_succeeded"] + s["records_in_flight_end"] == s["records_in"]
    assert 0.4 < s["records_filtered"] / s["records_in"] < 0.6  # 0.5 of ~1,200 records: 7 standard errors


def test_a_dynamodb_pattern_names_its_attributes_by_field_not_by_type(tmp_path: Path) -> None:
    pattern = {"eventName": ["INSERT", "MODIFY"], "dynamodb": {"NewImage": {"status": {"S": ["active"]}}}}
    table = {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {"StreamSpecification": {"StreamViewType": "NEW_IMAGE"}},
    }
    text, stderr = imported(
        tmp_path,
        {"Table": table, "Cdc": reads("Table", pattern, StartingPosition="LATEST")},
    )
    data = yaml.safe_load(text)
    expected = {"eventName": ["INSERT", "MODIFY"], "status": ["active"]}
    assert data["mappings"][0]["filter"]["pattern"] == expected
    assert set(data["sources"]["Table"]["traffic"]["attributes"]) == {"eventName", "status"}
    assert "status is dynamodb.NewImage.status.S" in stderr
    load_scenario(tmp_path / "scenario.yaml")


def test_two_fields_with_one_name_keep_their_paths(tmp_path: Path) -> None:
    pattern = {"data": {"order": {"id": ["1"]}, "customer": {"id": ["7", 7]}}}
    stream = {"Type": "AWS::Kinesis::Stream", "Properties": {"ShardCount": 1}}
    text, _ = imported(tmp_path, {"S": stream, "Read": reads("S", pattern, StartingPosition="LATEST")})
    # The number 7 and the string "7" are one attribute value.
    expected = {"order_id": ["1"], "customer_id": ["7"]}
    assert yaml.safe_load(text)["mappings"][0]["filter"]["pattern"] == expected


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ({"body": {"kind": [{"prefix": "ord"}]}}, "body.kind uses 'prefix', a content filter"),
        ({"body": {"size": [{"numeric": [">", 10]}]}}, "body.size uses 'numeric'"),
        (
            [{"body": {"kind": ["a"]}}, {"body": {"kind": [{"prefix": "b"}]}}],
            "Filters[1]: body.kind uses 'prefix'",
        ),
        ({}, "an empty pattern"),
    ],
)
def test_what_esmsim_cannot_draw_as_values_is_a_placeholder_share(
    tmp_path: Path, pattern: Any, why: str
) -> None:
    text, stderr = imported(tmp_path, {"Queue": {"Type": "AWS::SQS::Queue"}, "Read": reads("Queue", pattern)})
    data = yaml.safe_load(text)
    assert data["mappings"][0]["filter"] == {"match_rate": 0.5}
    assert "attributes" not in data["sources"]["Queue"]["traffic"]
    assert line_of(text, "filter:").endswith(f"match_rate: {PLACEHOLDER_NOTE}")
    assert f"Read.FilterCriteria: {why}" in stderr
    assert "imported as mappings[0].filter.match_rate 0.5" in stderr


def test_several_patterns_become_patterns_on_shared_attributes(tmp_path: Path) -> None:
    # AWS ORs a mapping's filters; one field keeps one attribute name across them.
    patterns = [{"body": {"kind": ["order"]}}, {"body": {"kind": ["refund"], "region": ["eu"]}}]
    text, stderr = imported(
        tmp_path, {"Queue": {"Type": "AWS::SQS::Queue"}, "Read": reads("Queue", patterns)}
    )
    data = yaml.safe_load(text)
    assert data["mappings"][0]["filter"] == {
        "patterns": [{"kind": ["order"]}, {"kind": ["refund"], "region": ["eu"]}]
    }
    attributes = data["sources"]["Queue"]["traffic"]["attributes"]
    assert attributes == {
        "kind": {"order": 0.25, "refund": 0.25, OTHER: 0.5},
        "region": {"eu": 0.5, OTHER: 0.5},
    }
    assert "imported as mappings[0].filter.patterns on sources.Queue.traffic.attributes" in stderr
    load_scenario(tmp_path / "scenario.yaml")


def test_an_unreadable_pattern_is_listed_and_left_out(tmp_path: Path) -> None:
    path = write(tmp_path, {"Queue": {"Type": "AWS::SQS::Queue"}, "Read": reads("Queue", "{kind: a}")})
    result = import_template(path)
    assert "filter" not in result.data["mappings"][0]
    assert result.skipped == [
        "Read.FilterCriteria: Filters[0].Pattern is not JSON (Expecting property name enclosed in double "
        "quotes at character 1); state the share of records it matches as mappings[0].filter.match_rate"
    ]


def test_a_filter_on_a_queue_two_mappings_read_is_left_out(tmp_path: Path) -> None:
    # esmsim refuses it (which mapping receives a message decides whether it is filtered).
    pattern = {"body": {"kind": ["a"]}}
    path = write(
        tmp_path,
        {"Queue": {"Type": "AWS::SQS::Queue"}, "One": reads("Queue", pattern), "Two": reads("Queue")},
    )
    result = import_template(path)
    assert all("filter" not in m for m in result.data["mappings"])
    assert "attributes" not in result.data["sources"]["Queue"]["traffic"]
    assert result.skipped == [
        "One.FilterCriteria: queue 'Queue' is read by 2 mappings; which one receives a message decides "
        "whether it is filtered, which esmsim does not model"
    ]


def test_mappings_on_one_stream_share_its_attributes(tmp_path: Path) -> None:
    stream = {"Type": "AWS::Kinesis::Stream", "Properties": {"ShardCount": 2}}
    text, _ = imported(
        tmp_path,
        {
            "S": stream,
            "A": reads("S", {"data": {"kind": ["a"]}}, StartingPosition="LATEST"),
            "Fn2": FN,  # AWS allows one mapping per stream and function
            "B": reads(
                "S", {"data": {"kind": ["b", "c"]}}, StartingPosition="LATEST", FunctionName={"Ref": "Fn2"}
            ),
        },
    )
    kinds = yaml.safe_load(text)["sources"]["S"]["traffic"]["attributes"]["kind"]
    assert list(kinds) == ["a", "b", "c", OTHER]
    assert sum(kinds.values()) == pytest.approx(1, abs=1e-9)
    load_scenario(tmp_path / "scenario.yaml")


def test_placeholder_shares_sum_to_one_and_other_never_clashes() -> None:
    for n in (1, 3, 7, 1000):
        shares = placeholder_shares([f"v{i}" for i in range(n)])
        assert abs(sum(shares.values()) - 1) < 1e-9
        assert min(shares.values()) > 0
    assert set(placeholder_shares([OTHER])) == {OTHER, f"({OTHER})"}


# ---------------------------------------------------------------------------------------- FIFO
def test_a_fifo_queue_and_its_mapping_are_imported_and_run(tmp_path: Path) -> None:
    fifo = {
        "Type": "AWS::SQS::Queue",
        "Properties": {
            "FifoQueue": True,
            "FifoThroughputLimit": "perMessageGroupId",
            "DeduplicationScope": "messageGroup",
            "VisibilityTimeout": 60,
            "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["Dlq", "Arn"]}, "maxReceiveCount": 3},
        },
    }
    dlq = {"Type": "AWS::SQS::Queue", "Properties": {"FifoQueue": "true"}}
    text, stderr = imported(tmp_path, {"Orders": fifo, "Dlq": dlq, "Read": reads("Orders", BatchSize=10)})
    s = load_scenario(tmp_path / "scenario.yaml")
    queue = s.sources["Orders"]
    assert (queue.fifo, queue.high_throughput, queue.visibility_timeout, queue.max_receive_count) == (
        True,
        True,
        60,
        3,
    )
    # How many message groups the producers use is for the user to say: a marked placeholder.
    assert queue.traffic.message_groups == 10
    assert line_of(text, "traffic:").endswith(PLACEHOLDER_NOTE)
    assert "Dlq: a dead-letter queue" in stderr
    assert "FIFO" not in stderr
    result = simulate(load_scenario(tmp_path / "scenario.yaml", ["duration=1m"]))
    assert result.summary["records_succeeded"] > 0


def test_a_fifo_queue_outside_the_template_is_known_by_its_name(tmp_path: Path) -> None:
    arn = "arn:aws:sqs:us-east-1:123456789012:orders.fifo"
    mapping = reads("X")
    mapping["Properties"]["EventSourceArn"] = arn
    result = import_template(write(tmp_path, {"Read": mapping}))
    assert result.data["sources"]["orders.fifo"]["fifo"] is True
    assert result.data["sources"]["orders.fifo"]["traffic"]["message_groups"] == 10


def test_a_sam_events_filter_criteria_arrives_through_the_expansion(tmp_path: Path) -> None:
    template = """
Transform: AWS::Serverless-2016-10-31
Resources:
  Queue: {Type: AWS::SQS::Queue, Properties: {FifoQueue: true, VisibilityTimeout: 60}}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.handler
      Runtime: python3.12
      CodeUri: src/
      Timeout: 10
      Events:
        Orders:
          Type: SQS
          Properties:
            Queue: !GetAtt Queue.Arn
            BatchSize: 10
            FilterCriteria:
              Filters:
                - Pattern: '{"body": {"kind": ["order"]}}'
"""
    path = tmp_path / "sam.yaml"
    path.write_text(template, encoding="utf-8")
    result = import_template(path)
    assert result.data["sources"]["Queue"]["fifo"] is True
    (mapping,) = result.data["mappings"]
    assert mapping["filter"] == {"pattern": {"kind": ["order"]}}
    assert result.data["sources"]["Queue"]["traffic"]["attributes"] == {"kind": {"order": 0.5, OTHER: 0.5}}
