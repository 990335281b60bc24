"""Sources encrypted at rest: kms:Decrypt and key policies, the findings, import and bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from esmsim import load_scenario
from esmsim.cli import main
from esmsim.iam import policies
from esmsim.importer import import_template
from esmsim.scenario.encryption import parse_kms_key
from esmsim.scenario.scenario import Scenario
from esmsim.scenario.sources import SqsSource
from tests.test_bad_input import assert_bad, check
from tests.test_iam import ACCOUNT, REGION, actions_on, system

TEMPLATES = Path(__file__).resolve().parent / "templates"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{KEY_ID}"


def source(kind: str, **settings: Any) -> dict[str, Any]:
    made: dict[str, Any] = {"type": kind, "traffic": {"rate": 1}, **settings}
    if kind in ("kinesis", "dynamodb"):
        made["shards"] = 1
    return made


def reader_role(kind: str, **settings: Any) -> dict[str, Any]:
    """The execution role of a function reading one source of ``kind``."""
    mapping: dict[str, Any] = {"source": "s", "function": "f"}
    if kind != "sqs":
        mapping["starting_position"] = "LATEST"
    found: dict[str, Any] = policies(system({"s": source(kind, **settings)}, [mapping]))["functions"]["f"]
    return found


def decrypts(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in role["Statement"] if "kms:Decrypt" in s["Action"]]


# ---------------------------------------------------------------------- the execution role


@pytest.mark.parametrize("kind", ["sqs", "kinesis", "dynamodb"])
def test_a_reader_of_a_source_under_a_customer_managed_key_may_decrypt_with_that_key_only(kind: str) -> None:
    role = reader_role(kind, encryption="kms", kms_key=KEY_ID)
    (statement,) = decrypts(role)
    assert statement["Action"] == ["kms:Decrypt"]
    assert statement["Resource"] == KEY_ARN
    assert "Condition" not in statement
    # A key ARN is taken as written (its account and Region may differ from the source's).
    other = "arn:aws:kms:us-west-2:444455556666:key/" + KEY_ID
    (statement,) = decrypts(reader_role(kind, encryption="kms", kms_key=other))
    assert statement["Resource"] == other


@pytest.mark.parametrize(
    ("kind", "settings"),
    [
        ("sqs", {}),  # SSE-SQS by default
        ("sqs", {"encryption": "managed"}),
        ("sqs", {"encryption": "none"}),
        ("sqs", {"encryption": "kms", "kms_key": "alias/aws/sqs"}),
        ("kinesis", {}),
        ("kinesis", {"encryption": "managed"}),
        ("kinesis", {"encryption": "kms", "kms_key": "alias/aws/kinesis"}),
        ("dynamodb", {}),  # the AWS owned key
        ("dynamodb", {"encryption": "kms", "kms_key": "alias/aws/dynamodb"}),
    ],
)
def test_keys_aws_manages_need_no_grant(kind: str, settings: dict[str, Any]) -> None:
    role = reader_role(kind, **settings)
    assert not [a for s in role["Statement"] for a in s["Action"] if a.startswith("kms:")]


def test_a_key_named_by_alias_is_granted_on_the_keys_carrying_the_alias() -> None:
    # An alias ARN in Resource would name the alias, not the key: AWS KMS's kms:ResourceAliases instead.
    (statement,) = decrypts(reader_role("kinesis", encryption="kms", kms_key="alias/clicks"))
    assert statement["Resource"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:key/*"
    assert statement["Condition"] == {"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/clicks"}}


def test_a_topic_under_a_key_asks_nothing_of_the_function_it_invokes() -> None:
    s = system(
        {"t": source("sns", encryption="kms", kms_key=KEY_ID)},
        [],
        functions={"f": {"async": {"on_failure": {"type": "sqs"}}}},
        triggers=[{"source": "t", "function": "f"}],
    )
    found = policies(s)
    assert not [a for a in actions_on(found["functions"]["f"]) if a.startswith("kms:")]
    assert set(found["resource_policies"]) == {"f"}  # the Lambda permission only


# ---------------------------------------------------------------------- key policies


def test_a_service_sending_into_a_queue_under_a_customer_managed_key_is_named_in_the_key_policy() -> None:
    s = system(
        {
            "t": source("sns"),
            "q": {"type": "sqs", "encryption": "kms", "kms_key": KEY_ID, "max_receive_count": 5},
        },
        [{"source": "q", "function": "f"}],
        triggers=[{"source": "t", "queue": "q"}],
    )
    found = policies(s)["resource_policies"]
    (statement,) = found[KEY_ARN]["Statement"]
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
    assert statement["Action"] == ["kms:GenerateDataKey", "kms:Decrypt"]
    assert statement["Resource"] == "*"  # in a key policy: the key it is attached to
    assert statement["Condition"] == {"ArnLike": {"aws:SourceArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:t"}}
    assert [x["Action"] for x in found["q"]["Statement"]] == ["sqs:SendMessage"]


def test_a_reader_in_another_account_is_named_in_the_key_policy_and_decrypts_with_the_owners_key() -> None:
    producer, consumer = "111111111111", "222222222222"
    s = Scenario.model_validate(
        {
            "accounts": {"producer": {"id": producer}, "consumer": {"id": consumer}},
            "functions": {"f": {"account": "consumer"}},
            "sources": {"s": source("kinesis", account="producer", encryption="kms", kms_key=KEY_ID)},
            "mappings": [{"source": "s", "function": "f", "starting_position": "LATEST"}],
        }
    )
    found = policies(s)
    key = f"arn:aws:kms:us-east-1:{producer}:key/{KEY_ID}"
    (statement,) = decrypts(found["functions"]["f"])
    assert statement["Resource"] == key
    (grant,) = found["resource_policies"][key]["Statement"]
    assert grant["Principal"] == {"AWS": f"arn:aws:iam::{consumer}:role/f-role"}
    assert (grant["Action"], grant["Resource"]) == ("kms:Decrypt", "*")


# ---------------------------------------------------------------------- findings


def warnings(raw: dict[str, Any]) -> list[str]:
    return [w.format() for w in Scenario.model_validate(raw).warnings]


def fanout(**topic: Any) -> dict[str, Any]:
    """An SNS topic feeding two queues that one function reads."""
    return {
        "functions": {"f": {}},
        "sources": {
            "t": source("sns", **topic),
            "a": {"type": "sqs", "max_receive_count": 5},
            "b": {"type": "sqs", "max_receive_count": 5},
        },
        "triggers": [{"source": "t", "queue": "a"}, {"source": "t", "queue": "b"}],
        "mappings": [{"source": "a", "function": "f"}, {"source": "b", "function": "f"}],
    }


def test_an_unencrypted_source_beside_encrypted_ones_is_a_finding_naming_the_aws_page() -> None:
    raw = fanout()
    raw["sources"]["a"]["encryption"] = "managed"
    (found,) = [w for w in warnings(raw) if "encrypted at rest" in w]
    assert found == (
        "warning: sources.t: not encrypted at rest while 'a' is: AWS advises encryption at rest "
        "(https://docs.aws.amazon.com/sns/latest/dg/sns-server-side-encryption.html)"
    )
    # A queue written unencrypted is named at its encryption key, with Security Hub's SQS.1.
    raw["sources"]["b"]["encryption"] = "none"
    found_b = [w for w in warnings(raw) if w.startswith("warning: sources.b.encryption:")]
    assert len(found_b) == 1
    assert "securityhub/latest/userguide/sqs-controls.html#sqs-1" in found_b[0]


@pytest.mark.parametrize(
    "topic",
    [
        {},  # AWS's defaults (SSE-SQS queues, an unencrypted topic) are no choice: no finding
        {"encryption": "managed"},  # everything encrypted
        {"encryption": "kms", "kms_key": KEY_ID},
    ],
)
def test_no_encryption_finding_without_an_unencrypted_source_beside_a_chosen_encryption(
    topic: dict[str, Any],
) -> None:
    assert not [w for w in warnings(fanout(**topic)) if "encrypted at rest" in w]


def test_a_kinesis_stream_left_unencrypted_cites_security_hub_kinesis_1() -> None:
    raw = {
        "functions": {"f": {}},
        "sources": {
            "q": {"type": "sqs", "max_receive_count": 5, "encryption": "kms", "kms_key": "alias/orders"},
            "s": source("kinesis"),
        },
        "mappings": [
            {"source": "q", "function": "f"},
            {"source": "s", "function": "f", "starting_position": "LATEST", "on_failure": {"type": "sqs"}},
        ],
    }
    (found,) = [w for w in warnings(raw) if "encrypted at rest" in w]
    assert found.startswith("warning: sources.s: not encrypted at rest while 'q' is")
    assert "kinesis-controls.html#kinesis-1" in found


def test_a_trigger_into_a_queue_under_the_aws_managed_key_is_a_finding() -> None:
    raw = fanout(encryption="managed")
    raw["sources"]["a"] |= {"encryption": "kms", "kms_key": "alias/aws/sqs"}
    (found,) = [w for w in warnings(raw) if w.startswith("warning: triggers[0]:")]
    assert "cannot send to queue 'a': it is encrypted with the AWS managed key alias/aws/sqs" in found
    assert "sqs-key-management.html#compatibility-with-aws-services" in found
    raw["sources"]["a"]["kms_key"] = KEY_ID  # a customer managed key: the key policy iam prints
    assert not [w for w in warnings(raw) if w.startswith("warning: triggers[0]:")]


def test_a_queue_under_the_aws_managed_key_read_from_another_account_is_a_finding() -> None:
    raw: dict[str, Any] = {
        "accounts": {"producer": {"id": "111111111111"}, "consumer": {"id": "222222222222"}},
        "functions": {"f": {"account": "consumer"}},
        "sources": {
            "q": source(
                "sqs", account="producer", max_receive_count=5, encryption="kms", kms_key="alias/aws/sqs"
            )
        },
        "mappings": [{"source": "q", "function": "f"}],
    }
    raw["sources"]["q"]["read_grants"] = ["consumer"]  # the queue policy is in place: only the key is wrong
    (found,) = [w for w in warnings(raw) if w.startswith("warning: mappings[0]:")]
    assert "cannot invoke a function in another account" in found
    assert "sqs-configure-lambda-function-trigger.html" in found
    raw["functions"]["f"]["account"] = "producer"
    assert not [w for w in warnings(raw) if w.startswith("warning: mappings[0]:")]


# ---------------------------------------------------------------------- import


def test_import_carries_each_services_encryption_over() -> None:
    imported = import_template(TEMPLATES / "encrypted.yaml")
    got = {name: (s.get("encryption"), s.get("kms_key")) for name, s in imported.data["sources"].items()}
    assert got == {
        "Orders": ("kms", "alias/orders"),  # KmsMasterKeyId: !Ref of an AWS::KMS::Alias: its name
        "Plain": ("none", None),  # SqsManagedSseEnabled: false
        "Clicks": ("kms", "OrdersKey"),  # a key of the template: its logical ID, noted
        "Audit": ("managed", None),  # alias/aws/kinesis
        "Table": ("kms", "alias/aws/dynamodb"),  # SSEEnabled without a key
        "Topic": ("kms", f"arn:aws:kms:us-east-1:123456789012:key/{KEY_ID}"),
    }
    (note,) = [n for n in imported.notes if n.startswith("Clicks:")]
    assert "sources.Clicks.kms_key is its logical ID" in note
    assert not [s for s in imported.skipped if "KMS" in s]  # keys and aliases are read, not listed


def test_a_key_import_cannot_resolve_gets_a_named_stand_in_and_a_note(tmp_path: Path) -> None:
    template = {
        "Parameters": {"QueueKeyArn": {"Type": "String"}},
        "Resources": {
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Timeout": 10}},
            "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"KmsMasterKeyId": {"Ref": "QueueKeyArn"}}},
            "Managed": {"Type": "AWS::SQS::Queue", "Properties": {"SqsManagedSseEnabled": "true"}},
            "Read": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "EventSourceArn": {"Fn::GetAtt": ["Queue", "Arn"]},
                    "FunctionName": {"Ref": "Fn"},
                },
            },
            "ReadManaged": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "EventSourceArn": {"Fn::GetAtt": ["Managed", "Arn"]},
                    "FunctionName": {"Ref": "Fn"},
                },
            },
        },
    }
    path = tmp_path / "t.json"
    path.write_text(json.dumps(template), encoding="utf-8")
    imported = import_template(path)
    assert imported.data["sources"]["Queue"] | {"traffic": None} == {
        "type": "sqs",
        "traffic": None,
        "encryption": "kms",
        "kms_key": "QueueKey",
    }
    assert imported.data["sources"]["Managed"]["encryption"] == "managed"
    (note,) = [n for n in imported.notes if n.startswith("Queue:")]
    assert note == (
        'Queue: encrypted with a key esmsim cannot resolve ({"Ref": "QueueKeyArn"}): sources.Queue.kms_key '
        "is 'QueueKey'; set the key ID or ARN before `esmsim iam`"
    )


def test_an_imported_encrypted_scenario_validates_and_gets_its_policies(tmp_path: Path) -> None:
    out = tmp_path / "s.yaml"
    result = CliRunner().invoke(main, ["import", str(TEMPLATES / "encrypted.yaml"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    s = load_scenario(out)
    orders = s.sources["Orders"]
    assert isinstance(orders, SqsSource)
    assert orders.encryption == "kms"
    role = policies(s)["functions"]["Worker"]
    assert {x["Sid"] for x in decrypts(role)} == {"DecryptOrders", "DecryptClicks"}


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        (
            {11: "    max_receive_count: 5\n    encryption: foo"},
            "{path}:12: sources.orders-queue.encryption: 'foo' is not allowed (allowed: none, managed, kms)",
        ),
        (
            {11: "    max_receive_count: 5\n    encryption: kms"},
            "{path}:12: sources.orders-queue.encryption: kms needs kms_key (a key ID, a key ARN, alias/NAME "
            "or an alias ARN)",
        ),
        (
            {11: "    max_receive_count: 5\n    kms_key: alias/orders"},
            "{path}:12: sources.orders-queue.kms_key: only used with encryption: kms (this source's "
            "encryption is managed)",
        ),
        (
            {11: "    max_receive_count: 5\n    encryption: kms\n    kms_key: my key"},
            "{path}:13: sources.orders-queue.kms_key: 'my key' is not a KMS key: write a key ID, a key ARN, "
            "alias/NAME or an alias ARN",
        ),
    ],
    ids=["unknown-value", "kms-without-key", "key-without-kms", "not-a-key"],
)
def test_bad_encryption_gives_one_located_line(
    tmp_path: Path, edits: dict[int, str | None], expected: str
) -> None:
    check(tmp_path, edits, expected)


def test_a_dynamodb_table_cannot_be_unencrypted(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "functions: {f: {}}\n"
        "sources:\n"
        "  t: {type: dynamodb, shards: 1, encryption: none, traffic: {rate: 1}}\n"
        "mappings: [{source: t, function: f, starting_position: LATEST}]\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert_bad(result, f"{path}:3: sources.t.encryption: 'none' is not allowed (allowed: managed, kms)")


def test_a_bucket_has_no_encryption_setting_and_says_why(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(
        "functions: {f: {}}\n"
        "sources:\n"
        "  b:\n"
        "    type: s3\n"
        "    encryption: kms\n"
        "    traffic: {rate: 1}\n"
        "triggers: [{source: b, function: f}]\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert_bad(
        result,
        f"{path}:5: sources.b.encryption: esmsim has no encryption setting here: an S3 notification names "
        "the object, it does not carry it, so the key changes nothing the function's role needs "
        "(docs/model.md §12)",
    )


@pytest.mark.parametrize(
    ("text", "key_id", "alias", "aws_managed"),
    [
        (KEY_ID, KEY_ID, None, False),
        ("mrk-1234abcd12ab34cd56ef1234567890ab", "mrk-1234abcd12ab34cd56ef1234567890ab", None, False),
        (KEY_ARN, KEY_ID, None, False),
        ("alias/orders", None, "alias/orders", False),
        (f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/aws/sqs", None, "alias/aws/sqs", True),
    ],
)
def test_key_forms(text: str, key_id: str | None, alias: str | None, aws_managed: bool) -> None:
    key = parse_kms_key(text)
    assert (key.key_id, key.alias, key.aws_managed) == (key_id, alias, aws_managed)
