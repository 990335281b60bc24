"""``esmsim iam``: least-privilege policies with ARN resources, audited by parliament."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from parliament import analyze_policy_string
from policy_sentry.querying.actions import get_action_data

import esmsim
from esmsim.cli import main
from esmsim.iam import arn_formats, policies
from esmsim.scenario.scenario import Scenario
from tests.test_bad_input import assert_bad

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT, REGION = "111122223333", "eu-west-1"


def system(sources: dict[str, Any], mappings: list[dict[str, Any]], **extra: Any) -> Scenario:
    raw = {
        "account": {"id": ACCOUNT, "region": REGION},
        "functions": {"f": {}, **extra.pop("functions", {})},
        "sources": sources,
        "mappings": mappings,
        **extra,
    }
    return Scenario.model_validate(raw)


def statements(policy: dict[str, Any]) -> dict[str, tuple[list[str], Any]]:
    """Statement ID -> (actions, resource)."""
    return {s["Sid"]: (list(s["Action"]), s["Resource"]) for s in policy["Statement"]}


def actions_on(policy: dict[str, Any]) -> dict[str, Any]:
    """Action -> resource."""
    return {action: s["Resource"] for s in policy["Statement"] for action in s["Action"]}


def test_an_sqs_mapping_needs_receive_delete_and_attributes_on_its_queue() -> None:
    s = system({"orders": {"type": "sqs", "traffic": {"rate": 1}}}, [{"source": "orders", "function": "f"}])
    got = actions_on(policies(s)["functions"]["f"])
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:orders"
    assert {
        a: got[a] for a in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
    } == dict.fromkeys(("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"), queue)
    assert got["logs:CreateLogGroup"] == f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/f"
    assert got["logs:PutLogEvents"] == f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/f:log-stream:*"


@pytest.mark.parametrize("efo", [False, True])
def test_a_kinesis_mapping_reads_its_stream_and_with_enhanced_fan_out_its_consumer(efo: bool) -> None:
    s = system(
        {"clicks": {"type": "kinesis", "shards": 2, "traffic": {"rate": 1}}},
        [{"source": "clicks", "function": "f", "starting_position": "LATEST", "enhanced_fan_out": efo}],
    )
    got = actions_on(policies(s)["functions"]["f"])
    stream = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/clicks"
    for action in (
        "kinesis:GetRecords",
        "kinesis:GetShardIterator",
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamSummary",
        "kinesis:ListShards",
    ):
        assert got[action] == stream
    efo_actions = {"kinesis:SubscribeToShard", "kinesis:DescribeStreamConsumer"}
    if efo:
        for action in efo_actions:
            assert got[action] == f"{stream}/consumer/f-efo:*"
    else:
        assert not efo_actions & set(got)


def test_a_dynamodb_mapping_reads_the_tables_stream_and_lists_streams_where_aws_allows_no_resource() -> None:
    s = system(
        {"orders": {"type": "dynamodb", "shards": 2, "traffic": {"rate": 1}}},
        [{"source": "orders", "function": "f", "starting_position": "LATEST", "on_failure": {"type": "sqs"}}],
    )
    got = actions_on(policies(s)["functions"]["f"])
    table_stream = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/orders/stream/*"
    for action in ("dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:DescribeStream"):
        assert got[action] == table_stream
    # ListStreams takes no resource (IAM's database: "*" only), so "*" is the least privilege.
    assert arn_formats("dynamodb:ListStreams") == ["*"]
    assert got["dynamodb:ListStreams"] == "*"
    assert got["sqs:SendMessage"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:f-on-failure"


@pytest.mark.parametrize(
    ("kind", "action", "arn"),
    [
        ("sqs", "sqs:SendMessage", "arn:aws:sqs:{r}:{a}:dest"),
        ("sns", "sns:Publish", "arn:aws:sns:{r}:{a}:dest"),
        ("eventbridge", "events:PutEvents", "arn:aws:events:{r}:{a}:event-bus/dest"),
        ("lambda", "lambda:InvokeFunction", "arn:aws:lambda:{r}:{a}:function:dest"),
        ("s3", "s3:PutObject", "arn:aws:s3:::dest/*"),
    ],
)
def test_asynchronous_destinations_are_granted_on_their_arns(kind: str, action: str, arn: str) -> None:
    s = system(
        {"b": {"type": "s3", "traffic": {"rate": 1}}},
        [],
        functions={"f": {"async": {"on_failure": {"type": kind, "name": "dest"}}}},
        triggers=[{"source": "b", "function": "f"}],
    )
    got = actions_on(policies(s)["functions"]["f"])
    assert got[action] == arn.format(r=REGION, a=ACCOUNT)


def test_triggers_get_lambda_permissions_and_queue_policies() -> None:
    s = Scenario.model_validate(
        {
            "account": {"id": ACCOUNT, "region": REGION},
            "functions": {"thumb": {}, "bill": {}},
            "sources": {
                "uploads": {"type": "s3", "traffic": {"rate": 1}},
                "orders": {"type": "sns", "traffic": {"rate": 1}},
                "billing": {"type": "sqs"},
            },
            "triggers": [
                {"source": "uploads", "function": "thumb"},
                {"source": "orders", "queue": "billing"},
            ],
            "mappings": [{"source": "billing", "function": "bill"}],
        }
    )
    found = policies(s)["resource_policies"]
    (permission,) = found["thumb"]["Statement"]
    assert permission["Principal"] == {"Service": "s3.amazonaws.com"}
    assert permission["Action"] == "lambda:InvokeFunction"
    assert permission["Resource"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:thumb"
    assert permission["Condition"] == {
        "ArnLike": {"aws:SourceArn": "arn:aws:s3:::uploads"},
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
    }
    (queue_policy,) = found["billing"]["Statement"]
    assert queue_policy["Principal"] == {"Service": "sns.amazonaws.com"}
    assert queue_policy["Action"] == "sqs:SendMessage"
    assert queue_policy["Resource"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:billing"
    assert queue_policy["Condition"] == {
        "ArnLike": {"aws:SourceArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:orders"}
    }


def _every_policy() -> list[tuple[str, dict[str, Any]]]:
    """The policies of every bundled scenario, of an enhanced fan-out reader and of every destination."""
    cases = {path.name: esmsim.load_scenario(path) for path in sorted((ROOT / "scenarios").glob("*.yaml"))}
    clicks = cases["kinesis-clickstream.yaml"]
    cases["efo"] = clicks.with_changes({"mappings[0].enhanced_fan_out": True})
    for kind in ("sqs", "sns", "eventbridge", "lambda", "s3"):
        dlq = {"type": "sns"} if kind == "s3" else {"type": "sqs"}
        cases[f"async-{kind}"] = system(
            {"b": {"type": "s3", "traffic": {"rate": 1}}},
            [],
            functions={"f": {"async": {"on_failure": {"type": kind}, "dead_letter_queue": dlq}}},
            triggers=[{"source": "b", "function": "f"}],
        )
    cases["encrypted"] = _encrypted()
    found = []
    for case, scenario in cases.items():
        result = policies(scenario)
        for group in ("functions", "resource_policies"):
            found += [(f"{case}:{group}:{name}", policy) for name, policy in result[group].items()]
    return found


def _encrypted() -> Scenario:
    """Every kind of KMS grant: by key ID, key ARN and alias, a key policy for a service and a reader."""
    key = "1234abcd-12ab-34cd-56ef-1234567890ab"
    return Scenario.model_validate(
        {
            "accounts": {
                "a": {"id": ACCOUNT, "region": REGION},
                "b": {"id": "444455556666", "region": REGION},
            },
            "functions": {"f": {"account": "a"}, "g": {"account": "b"}},
            "sources": {
                "t": {
                    "type": "sns",
                    "account": "a",
                    "encryption": "kms",
                    "kms_key": key,
                    "traffic": {"rate": 1},
                },
                "q": {
                    "type": "sqs",
                    "account": "a",
                    "encryption": "kms",
                    "kms_key": key,
                    "max_receive_count": 5,
                },
                "s": {
                    "type": "kinesis",
                    "account": "a",
                    "shards": 1,
                    "encryption": "kms",
                    "kms_key": "alias/clicks",
                    "traffic": {"rate": 1},
                },
                "d": {
                    "type": "dynamodb",
                    "account": "a",
                    "shards": 1,
                    "encryption": "kms",
                    "kms_key": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key}",
                    "traffic": {"rate": 1},
                },
            },
            "triggers": [{"source": "t", "queue": "q"}],
            "mappings": [
                {"source": "q", "function": "f"},
                {"source": "q", "function": "g"},
                {
                    "source": "s",
                    "function": "g",
                    "starting_position": "LATEST",
                    "on_failure": {"type": "sqs"},
                },
                {
                    "source": "d",
                    "function": "f",
                    "starting_position": "LATEST",
                    "on_failure": {"type": "sqs"},
                },
            ],
        }
    )


def _known_gap(label: str, issue: str, detail: Any) -> bool:
    """Findings parliament makes where AWS documents the policy as written (docs/model.md §12).

    parliament reads condition keys from an action's own entry, not from the resource type it acts on:
    ``kms:ResourceAliases`` belongs to the KMS ``key`` resource, and policy_sentry's database lists it for
    the action. In a key policy (listed under the key's ARN) ``Resource: *`` is the key itself.
    """
    if issue == "UNKNOWN_CONDITION_FOR_ACTION":
        key, action = str(detail).removeprefix("Unknown condition ").split(" for action ")
        service, name = action.split(":")
        return key in get_action_data(service, name)[service][0]["condition_keys"]
    return issue == "RESOURCE_STAR" and label.split(":", 2)[2].startswith("arn:aws:kms:")


@pytest.mark.parametrize(("label", "policy"), _every_policy(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_generated_policy_passes_parliament_and_names_real_actions(
    label: str, policy: dict[str, Any]
) -> None:
    findings = analyze_policy_string(json.dumps(policy)).findings
    assert [(f.issue, f.detail) for f in findings if not _known_gap(label, f.issue, f.detail)] == []
    key_policy = label.split(":", 2)[2].startswith("arn:aws:kms:")
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        for action in actions:
            service, name = action.split(":")
            assert get_action_data(service, name)[service], f"{action} is not an IAM action"
            # "*" only where IAM allows no resource for the action, or in a key policy (the key itself).
            if "*" in resources and not key_policy:
                assert arn_formats(action) == ["*"], f"{label}: {action} on * but it takes a resource"


def test_the_encrypted_case_covers_the_kms_grants_the_parliament_test_allows() -> None:
    found = policies(_encrypted())
    labels = set(found["resource_policies"])
    assert {label for label in labels if label.startswith("arn:aws:kms:")} == {
        f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",  # SNS in, g reading
        f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/clicks",  # g reading s from the other account
    }
    conditions = [s.get("Condition") for s in found["functions"]["g"]["Statement"] if s["Sid"] == "DecryptS"]
    assert conditions == [{"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/clicks"}}]


def test_the_cli_prints_json_and_refuses_a_bad_account_id(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["iam", str(ROOT / "scenarios" / "sns-order-fanout.yaml")])
    assert result.exit_code == 0
    printed = json.loads(result.stdout)
    assert set(printed) == {"functions", "resource_policies"}
    assert set(printed["functions"]) == {"billing", "shipping", "audit"}
    path = tmp_path / "bad.yaml"
    path.write_text(
        "account: {id: '12345'}\nfunctions: {f: {}}\nsources: {q: {type: sqs, traffic: {rate: 1}}}\n"
        "mappings: [{source: q, function: f}]\n",
        encoding="utf-8",
    )
    bad = CliRunner().invoke(main, ["iam", str(path)])
    assert_bad(bad, f"{path}:1: account.id: '12345' is not an account ID (12 digits, e.g. 123456789012)")


# ---------------------------------------------------------------------- reliability findings


def _warnings(raw: dict[str, Any]) -> list[str]:
    return [issue.format() for issue in Scenario.model_validate(raw).warnings]


def test_a_queue_without_redrive_is_a_finding_naming_the_sqs_docs() -> None:
    raw = {
        "functions": {"f": {}},
        "sources": {"q": {"type": "sqs", "traffic": {"rate": 1}}},
        "mappings": [{"source": "q", "function": "f"}],
    }
    (found,) = [w for w in _warnings(raw) if "redrive" in w]
    assert found.startswith("warning: sources.q: no redrive policy (max_receive_count)")
    assert "sqs-dead-letter-queues.html" in found
    raw["sources"]["q"]["max_receive_count"] = 5
    assert not [w for w in _warnings(raw) if "redrive" in w]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, "retries a failing batch until its records expire"),
        ({"maximum_retry_attempts": 3}, "no on_failure destination: batches discarded"),
        ({"maximum_retry_attempts": 3, "on_failure": {"type": "sqs"}}, None),
    ],
)
def test_stream_error_handling_findings(settings: dict[str, Any], expected: str | None) -> None:
    raw = {
        "functions": {"f": {}},
        "sources": {"s": {"type": "kinesis", "shards": 1, "traffic": {"rate": 1}}},
        "mappings": [{"source": "s", "function": "f", "starting_position": "LATEST", **settings}],
    }
    found = [w for w in _warnings(raw) if w.startswith("warning: mappings[0]:")]
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1
        assert expected in found[0]
        assert "kinesis-on-failure-destination.html" in found[0]


def test_asynchronous_events_without_a_destination_are_a_finding() -> None:
    raw = {
        "functions": {"f": {}},
        "sources": {"b": {"type": "s3", "traffic": {"rate": 1}}},
        "triggers": [{"source": "b", "function": "f"}],
    }
    (found,) = _warnings(raw)
    assert found.startswith("warning: functions.f.async: no on_failure destination or dead-letter queue")
    raw["functions"]["f"]["async"] = {"dead_letter_queue": {"type": "sqs"}}
    assert _warnings(raw) == []
