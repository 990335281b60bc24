"""Several accounts: separate concurrency pools, the rules for crossing accounts, and their IAM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from esmsim.cli import main
from esmsim.iam import policies
from esmsim.run import simulate
from esmsim.scenario.scenario import Scenario
from tests.test_bad_input import assert_bad

PRODUCER, CONSUMER = "111111111111", "222222222222"


def two_accounts(**extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "duration": 120,
        "accounts": {
            "producer": {"id": PRODUCER, "concurrency_limit": 40, "unreserved_minimum": 0},
            "consumer": {"id": CONSUMER, "concurrency_limit": 20, "unreserved_minimum": 0},
        },
        "functions": {
            "a": {"account": "producer", "duration": "1s", "cold_start": "0s"},
            "b": {"account": "consumer", "duration": "1s", "cold_start": "0s"},
        },
        "sources": {
            "qa": {
                "type": "sqs",
                "account": "producer",
                "max_receive_count": 5,
                "traffic": {"rate": "500/s"},
            },
            "qb": {
                "type": "sqs",
                "account": "producer",
                "max_receive_count": 5,
                "traffic": {"rate": "500/s"},
            },
        },
        "mappings": [{"source": "qa", "function": "a"}, {"source": "qb", "function": "b"}],
    }
    raw.update(extra)
    return raw


def test_two_accounts_keep_separate_pools_each_overloaded_function_reaches_its_own_limit() -> None:
    result = simulate(Scenario.model_validate(two_accounts()))
    rows = result.resources.set_index("name")
    # Each function wants far more than its account allows (500 messages/s of 1 s work): each is held
    # at its own account's limit, and its throttles are the account limit's, not the other's.
    assert rows.loc["a", "concurrency_max"] == 40
    assert rows.loc["b", "concurrency_max"] == 20
    assert rows.loc["a", "throttles"] > 0
    assert rows.loc["b", "throttles"] > 0
    assert set(result.throttle_reasons) == {"ConcurrentInvocationLimitExceeded"}
    # One account of 60 would let either function past its share.
    merged = two_accounts()
    merged["accounts"] = {"only": {"id": PRODUCER, "concurrency_limit": 60, "unreserved_minimum": 0}}
    for fn in merged["functions"].values():
        fn["account"] = "only"
    for source in merged["sources"].values():
        source["account"] = "only"
    shared = simulate(Scenario.model_validate(merged)).resources.set_index("name")
    assert shared.loc["a", "concurrency_max"] + shared.loc["b", "concurrency_max"] > 40
    assert max(shared.loc["a", "concurrency_max"], shared.loc["b", "concurrency_max"]) > 20


def _errors(raw: dict[str, Any], tmp_path: Path) -> list[str]:
    import yaml

    path = tmp_path / "accounts.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    return [line.split(": ", 1)[1] for line in result.stderr.splitlines()]


def test_account_and_accounts_together_are_refused(tmp_path: Path) -> None:
    raw = two_accounts(account={"concurrency_limit": 10})
    assert _errors(raw, tmp_path) == [
        "account: give either account (one account) or accounts (several), not both"
    ]


def test_entities_name_a_known_account_when_there_are_several(tmp_path: Path) -> None:
    raw = two_accounts()
    raw["functions"]["a"]["account"] = "prodcer"
    del raw["functions"]["b"]["account"]
    assert _errors(raw, tmp_path) == [
        "functions.a.account: unknown account 'prodcer' (did you mean 'producer'?)",
        "functions.b: name its account (account: one of producer, consumer): there are several",
    ]


def test_a_dynamodb_stream_cannot_be_read_from_another_account(tmp_path: Path) -> None:
    raw = two_accounts()
    raw["sources"]["qb"] = {"type": "dynamodb", "account": "producer", "shards": 1, "traffic": {"rate": 1}}
    raw["mappings"][1] |= {
        "starting_position": "LATEST",
        "maximum_retry_attempts": 2,
        "on_failure": {"type": "sqs"},
    }
    assert _errors(raw, tmp_path) == [
        "mappings[1]: reads DynamoDB stream 'qb' from another account; AWS documents cross-account event "
        "source mappings for SQS, Kinesis and Kafka, not DynamoDB streams"
    ]


def test_a_source_in_another_region_is_refused(tmp_path: Path) -> None:
    raw = two_accounts(pricing={})
    raw["accounts"]["consumer"]["region"] = "eu-west-1"
    assert _errors(raw, tmp_path) == [
        "mappings[1]: reads 'qb' in us-east-1 from a function in eu-west-1; a mapping's source must be in "
        "the function's Region"
    ]


def test_reservations_are_limited_per_account(tmp_path: Path) -> None:
    raw = two_accounts()
    raw["functions"]["b"]["reserved_concurrency"] = 25  # the consumer account has 20
    (error,) = _errors(raw, tmp_path)
    assert error == (
        "functions.b.reserved_concurrency: reserved concurrency totals 25 across functions of account "
        "'consumer', but at most 20 of its 20 may be reserved (0 must stay unreserved)"
    )


@pytest.mark.parametrize("kind", ["sqs", "kinesis"])
def test_iam_grants_a_cross_account_consumer_on_the_source_and_names_its_arn(kind: str) -> None:
    raw = two_accounts()
    mapping: dict[str, Any] = {"source": "qb", "function": "b"}
    if kind == "kinesis":
        raw["sources"]["qb"] = {"type": "kinesis", "account": "producer", "shards": 1, "traffic": {"rate": 1}}
        mapping |= {"starting_position": "LATEST", "maximum_retry_attempts": 2, "on_failure": {"type": "sqs"}}
    raw["mappings"] = [raw["mappings"][0], mapping]
    found = policies(Scenario.model_validate(raw))
    source_arn = (
        f"arn:aws:sqs:us-east-1:{PRODUCER}:qb"
        if kind == "sqs"
        else f"arn:aws:kinesis:us-east-1:{PRODUCER}:stream/qb"
    )
    reads = [s for s in found["functions"]["b"]["Statement"] if s["Resource"] == source_arn]
    assert reads, "the consumer's role reads the producer's source"
    (grant,) = found["resource_policies"]["qb"]["Statement"]
    assert grant["Principal"] == {"AWS": f"arn:aws:iam::{CONSUMER}:role/b-role"}
    assert grant["Resource"] == source_arn
    assert set(grant["Action"]) == set(reads[0]["Action"])
    # The consumer's own logs stay in its account; a same-account mapping needs no grant.
    assert found["functions"]["b"]["Statement"][0]["Resource"].startswith(
        f"arn:aws:logs:us-east-1:{CONSUMER}:"
    )
    assert "qa" not in found["resource_policies"]


def test_a_single_account_scenario_may_still_name_it() -> None:
    raw = {
        "functions": {"f": {"account": "default"}},
        "sources": {
            "q": {"type": "sqs", "account": "default", "max_receive_count": 5, "traffic": {"rate": 1}}
        },
        "mappings": [{"source": "q", "function": "f"}],
    }
    assert Scenario.model_validate(raw).function_account("f").concurrency_limit == 1000
    raw["functions"]["f"]["account"] = "other"
    with pytest.raises(Exception, match="unknown account 'other'"):
        Scenario.model_validate(raw)


def test_bad_account_ids_and_regions_get_one_line(tmp_path: Path) -> None:
    raw = two_accounts()
    raw["accounts"]["producer"]["id"] = "12345"
    raw["accounts"]["consumer"]["region"] = "mars-1"
    path = tmp_path / "bad.yaml"
    import yaml

    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert_bad(
        result,
        f"{path}:4: accounts.producer.id: '12345' is not an account ID (12 digits, e.g. 123456789012)",
        f"{path}:11: accounts.consumer.region: 'mars-1' is not a Region name (e.g. us-east-1, eu-west-1)",
    )


def _warnings(raw: dict[str, Any], tmp_path: Path) -> list[str]:
    import yaml

    path = tmp_path / "accounts.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    return [line.split(": ", 1)[1] for line in result.stderr.splitlines() if "warning" in line]


def test_a_reader_in_another_account_is_warned_until_the_resource_policy_is_stated(tmp_path: Path) -> None:
    # Function b (consumer) reads queue qb (producer): AWS needs qb's queue policy to grant b's role.
    raw = two_accounts()
    assert [w for w in _warnings(raw, tmp_path) if "queue policy" in w] == [
        "warning: mappings[1]: function 'b' of account 'consumer' reads 'qb' of account 'producer': it "
        "needs a queue policy granting the function's role (`esmsim iam` prints it; say it is in place with "
        "sources.qb.read_grants: [consumer]) (https://docs.aws.amazon.com/lambda/latest/dg/"
        "with-sqs-cross-account-example.html)"
    ]
    raw["sources"]["qb"]["read_grants"] = ["consumer"]
    assert not [w for w in _warnings(raw, tmp_path) if "queue policy" in w]


def test_a_resource_policy_that_leaves_the_reader_out_is_refused(tmp_path: Path) -> None:
    raw = two_accounts()
    raw["sources"]["qb"]["read_grants"] = ["producer"]
    assert _errors(raw, tmp_path) == [
        "mappings[1]: function 'b' of account 'consumer' reads 'qb' of another account, whose read_grants "
        "(producer) leave it out: AWS refuses the mapping without a resource policy granting the function's "
        "role (`esmsim iam` prints it)"
    ]
    raw["sources"]["qb"]["read_grants"] = ["consmer"]
    assert (
        _errors(raw, tmp_path)[0]
        == "sources.qb.read_grants[0]: unknown account 'consmer' (did you mean 'consumer'?)"
    )
