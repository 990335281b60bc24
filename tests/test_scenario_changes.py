"""One value per setting, changes that never invent entities, and a scenario validated once.

Reproducers of issue 8 (items 1, 2, 4, 13 and the control characters) and the scenario-layer parts
of issue 7: AWS spellings and snake_case keys are one setting in files, ``--set``, sweep keys and
``Scenario.with_changes``; a change to a function or source that does not exist is refused; booleans
are not numbers; a validated scenario carries its warnings.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pydantic
import pytest
from click.testing import CliRunner, Result

from esmsim.cli import main
from esmsim.errors import Issue, ScenarioError
from esmsim.scenario import Scenario
from esmsim.scenario.loader import load_scenario, load_scenario_with_warnings
from esmsim.scenario.mappings import SqsMapping
from esmsim.scenario.sources import SqsSource
from esmsim.sweep import plan

ROOT = Path(__file__).resolve().parents[1]

BASE = """\
name: orders
functions:
  orders:
    memory_mb: 1024
    timeout: 30s
    duration: {dist: lognormal, median: 40ms, p99: 250ms}
sources:
  orders-queue:
    type: sqs
    visibility_timeout: 3m
    max_receive_count: 5
    traffic: {rate: 200/s, record_size: 2KB}
mappings:
  - source: orders-queue
    function: orders
    batch_size: 10
    batching_window: 0s
    maximum_concurrency: 5
"""

RAW: dict[str, Any] = {
    "functions": {"orders": {"timeout": 30}},
    "sources": {"q": {"type": "sqs", "visibility_timeout": 180, "traffic": {"rate": "10/s"}}},
    "mappings": [{"source": "q", "function": "orders", "maximum_concurrency": 5}],
}


def write(tmp_path: Path, text: str, name: str = "orders.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def validate(path: str, *overrides: str) -> Result:
    args = ["validate", path]
    for text in overrides:
        args += ["--set", text]
    return CliRunner().invoke(main, args)


def assert_one_line(result: Result, expected: str) -> None:
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [expected]


# --------------------------------------------------------------------------------------------------
# Two spellings of one setting (issue 8 item 1)


@pytest.mark.parametrize(
    ("extra", "line", "message"),
    [
        (
            "    ScalingConfig: {MaximumConcurrency: 7}",
            19,
            "mappings[0].ScalingConfig: ScalingConfig.MaximumConcurrency repeats maximum_concurrency",
        ),
        (
            "    MaximumConcurrency: 7",
            19,
            "mappings[0].MaximumConcurrency: MaximumConcurrency repeats maximum_concurrency",
        ),
        (
            "    report_batch_item_failures: false\n    FunctionResponseTypes: [ReportBatchItemFailures]",
            20,
            "mappings[0].FunctionResponseTypes: FunctionResponseTypes repeats report_batch_item_failures",
        ),
    ],
    ids=["nested", "flat", "converted"],
)
def test_two_spellings_in_a_file_are_one_error(tmp_path: Path, extra: str, line: int, message: str) -> None:
    path = write(tmp_path, BASE + extra + "\n")
    assert_one_line(validate(path), f"{path}:{line}: {message}")


def test_nested_spellings_of_sources_and_functions_repeat_too(tmp_path: Path) -> None:
    text = BASE.replace(
        "    max_receive_count: 5", "    max_receive_count: 5\n    RedrivePolicy: {maxReceiveCount: 9}"
    )
    text = text.replace(
        "    memory_mb: 1024", "    memory_mb: 1024\n    architecture: arm64\n    Architectures: [x86_64]"
    )
    path = write(tmp_path, text)
    result = validate(path)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{path}:6: functions.orders.Architectures: Architectures repeats architecture",
        f"{path}:14: sources.orders-queue.RedrivePolicy: RedrivePolicy.maxReceiveCount repeats "
        "max_receive_count",
    ]


def test_an_aws_spelling_alone_sets_the_value_and_its_errors_find_its_line(tmp_path: Path) -> None:
    text = BASE.replace("    maximum_concurrency: 5", "    ScalingConfig:\n      MaximumConcurrency: 1")
    path = write(tmp_path, text)
    assert_one_line(validate(path), f"{path}:19: mappings[0].maximum_concurrency: 1 is below the minimum 2")
    scenario = load_scenario(write(tmp_path, text.replace("MaximumConcurrency: 1", "MaximumConcurrency: 7")))
    assert scenario.mappings[0].maximum_concurrency == 7  # type: ignore[union-attr]


def test_set_in_an_aws_spelling_replaces_the_value_and_is_validated(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    assert_one_line(
        validate(path, "mappings[0].ScalingConfig={MaximumConcurrency: -7}"),
        "--set mappings[0].ScalingConfig: mappings[0].maximum_concurrency: -7 is below the minimum 2",
    )
    scenario = load_scenario(path, ["mappings[0].ScalingConfig.MaximumConcurrency=700"])
    assert scenario.mappings[0].maximum_concurrency == 700  # type: ignore[union-attr]
    # ... and the other way round: snake_case over a file written in AWS's spelling.
    aws = write(
        tmp_path, BASE.replace("maximum_concurrency: 5", "ScalingConfig: {MaximumConcurrency: 5}"), "a.yaml"
    )
    assert load_scenario(aws, ["mappings[0].maximum_concurrency=9"]).mappings[0].maximum_concurrency == 9  # type: ignore[union-attr]
    assert load_scenario(aws, ["mappings[0].MaximumConcurrency=11"]).mappings[0].maximum_concurrency == 11  # type: ignore[union-attr]


def test_set_of_a_converted_spelling(tmp_path: Path) -> None:
    path = write(
        tmp_path, BASE.replace("    maximum_concurrency: 5", "    report_batch_item_failures: false")
    )
    scenario = load_scenario(path, ["mappings[0].FunctionResponseTypes=[ReportBatchItemFailures]"])
    assert scenario.mappings[0].report_batch_item_failures is True
    queue = load_scenario(path, ["sources.orders-queue.RedrivePolicy.maxReceiveCount=8"]).sources[
        "orders-queue"
    ]
    assert isinstance(queue, SqsSource)
    assert queue.max_receive_count == 8


def test_a_sweep_over_an_aws_spelling_changes_the_value(tmp_path: Path) -> None:
    raw = copy.deepcopy(RAW)
    raw["sweep"] = {"grid": {"mappings[0].ScalingConfig.MaximumConcurrency": [2, 1000]}}
    points = plan(raw).points
    caps = [Scenario.model_validate(p.raw).mappings[0].maximum_concurrency for p in points]  # type: ignore[union-attr]
    assert caps == [2, 1000]


def test_a_sweep_may_not_name_one_setting_twice() -> None:
    raw = copy.deepcopy(RAW)
    raw["sweep"] = {"grid": {"mappings[0].batch_size": [1, 2], "mappings[0].BatchSize": [3]}}
    with pytest.raises(ScenarioError) as caught:
        plan(raw)
    assert [i.format() for i in caught.value.issues] == [
        "sweep.grid.mappings[0].BatchSize: sets the same value as mappings[0].batch_size"
    ]


# --------------------------------------------------------------------------------------------------
# Changes never create functions or sources key by key (issue 8 item 2)


def test_set_does_not_create_a_misspelled_function(tmp_path: Path) -> None:
    assert_one_line(
        validate(write(tmp_path, BASE), "functions.order.memory_mb=3008"),
        "--set functions.order.memory_mb: functions.order: no function named 'order' (did you mean "
        "'orders'?); a change cannot create one key by key: to add a function, set it whole "
        "(functions.order={...})",
    )


def test_set_does_not_create_a_misspelled_source(tmp_path: Path) -> None:
    result = validate(write(tmp_path, BASE), "sources.orders-queu.traffic.rate=5/s")
    assert result.exit_code == 2
    assert "no source named 'orders-queu' (did you mean 'orders-queue'?)" in result.stderr


def test_a_whole_function_may_be_added_on_purpose(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    scenario, warnings = load_scenario_with_warnings(path, ["functions.new={memory_mb: 512, timeout: 10}"])
    assert scenario.functions["new"].memory_mb == 512
    assert [w.format() for w in warnings] == [
        "--set functions.new: warning: functions.new: no mapping or trigger invokes this function: it "
        "never runs"
    ]


def test_a_sweep_key_does_not_create_a_function(tmp_path: Path) -> None:
    text = BASE + "sweep:\n  grid:\n    functions.order.memory_mb: [512, 3008]\n"
    path = write(tmp_path, text)
    assert_one_line(
        validate(path),
        f"{path}:21: sweep.grid.functions.order.memory_mb: no function named 'order' (did you mean "
        "'orders'?); a change cannot create one key by key: to add a function, set it whole "
        "(functions.order={...})",
    )


def test_with_changes_does_not_create_a_function() -> None:
    scenario = Scenario.model_validate(RAW)
    with pytest.raises(ScenarioError, match=r"no function named 'order' \(did you mean 'orders'\?\)"):
        scenario.with_changes({"functions.order.memory_mb": 3008})


# --------------------------------------------------------------------------------------------------
# What a file may hold: unused functions, stream-only traffic, booleans, seeds, empirical values


def test_an_unused_function_is_a_warning(tmp_path: Path) -> None:
    text = BASE.replace("  orders:\n", "  spare: {timeout: 10}\n  orders:\n", 1)
    path = write(tmp_path, text)
    result = validate(path)
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        f"{path}:3: warning: functions.spare: no mapping or trigger invokes this function: it never runs"
    ]


@pytest.mark.parametrize("key", ["partition_keys: 50", "key_skew: 1.2"])
def test_queue_traffic_refuses_stream_keys(tmp_path: Path, key: str) -> None:
    text = BASE.replace("traffic: {rate: 200/s, record_size: 2KB}", f"traffic: {{rate: 200/s, {key}}}")
    path = write(tmp_path, text)
    assert_one_line(
        validate(path),
        f"{path}:12: sources.orders-queue.traffic.{key.split(':')[0]}: only for Kinesis and DynamoDB "
        "streams: an SQS queue's traffic has no partition keys",
    )


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        ("batch_size: 10", "batch_size: true", 16, "mappings[0].batch_size: true is not an integer"),
        (
            "    memory_mb: 1024",
            "    memory_mb: 1024\n    errors: {invocation_error_rate: true}",
            5,
            "functions.orders.errors.invocation_error_rate: true is not a number",
        ),
        (
            "max_receive_count: 5",
            "max_receive_count: false",
            11,
            "sources.orders-queue.max_receive_count: false is not an integer",
        ),
        ("name: orders", "name: orders\nseed: true", 2, "seed: true is not an integer"),
        (
            "name: orders",
            "name: orders\nseed: 18446744073709551616",
            2,
            "seed: must be less than 9223372036854775808 (got 18446744073709551616)",
        ),
        (
            "duration: {dist: lognormal, median: 40ms, p99: 250ms}",
            "duration: {dist: empirical, values: [40ms, -5ms]}",
            6,
            "functions.orders.duration.values[1]: -0.005 s (-5ms) is below the minimum 0 s",
        ),
        (
            "record_size: 2KB}",
            "record_size: {dist: empirical, values: [1KB, -2]}}",
            12,
            "sources.orders-queue.traffic.record_size.values[1]: -2 bytes is below the minimum 0 bytes",
        ),
    ],
    ids=[
        "bool-int",
        "bool-rate",
        "bool-optional-int",
        "bool-seed",
        "seed-2**64",
        "negative-duration",
        "negative-size",
    ],
)
def test_values_of_the_wrong_kind(tmp_path: Path, old: str, new: str, line: int, message: str) -> None:
    path = write(tmp_path, BASE.replace(old, new))
    assert_one_line(validate(path), f"{path}:{line}: {message}")


def test_the_largest_seed_is_accepted() -> None:
    assert Scenario.model_validate({**RAW, "seed": 2**63 - 1}).seed == 2**63 - 1


def test_control_characters_in_names_are_escaped(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("    function: orders", '    function: "ord\\e[2Jers\\n"'))
    result = validate(path)
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert "\x1b" not in line
    assert line == (
        f"{path}:15: mappings[0].function: unknown function 'ord\\x1b[2Jers\\n' (did you mean 'orders'?)"
    )
    assert Issue(("functions", "a\x1bb"), "x\ty\u2028").format() == "functions.a\\x1bb: x\\ty\\u2028"


# --------------------------------------------------------------------------------------------------
# Validated once: warnings on the object, with_changes, model_copy


def test_a_scenario_carries_its_warnings_outside_its_data(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("max_receive_count: 5", "max_receive_count: 2"))
    scenario, located = load_scenario_with_warnings(path)
    assert [w.message for w in scenario.warnings] == [w.message for w in located]
    assert [w.format() for w in scenario.warnings] == [
        "warning: sources.orders-queue.max_receive_count: 2 is under AWS's recommended 5: throttles and "
        "transient errors can dead-letter healthy messages"
    ]
    assert located[0].line == 11
    assert "warnings" not in scenario.model_dump()
    assert "_warnings" not in scenario.model_dump_json()
    fresh = Scenario.model_validate(scenario.model_dump(mode="json"))
    assert fresh == scenario
    assert fresh.warnings == scenario.warnings
    assert scenario != scenario.with_changes({"sources.orders-queue.max_receive_count": 5})
    assert scenario.with_changes({"sources.orders-queue.max_receive_count": 5}).warnings == ()


def test_with_changes_returns_a_validated_copy() -> None:
    scenario = Scenario.model_validate(RAW)
    changed = scenario.with_changes(
        {
            "mappings[0].batch_size": 5,
            "functions.orders.memory_mb": 2048,
            "functions.orders.duration": {"dist": "lognormal", "median": "40ms", "p99": "250ms"},
            "sources.q.traffic.rate": "500/s",
            "mappings[0].ScalingConfig.MaximumConcurrency": 20,
        }
    )
    mapping = changed.mappings[0]
    assert isinstance(mapping, SqsMapping)
    assert (mapping.batch_size, mapping.maximum_concurrency) == (5, 20)
    assert changed.functions["orders"].memory_mb == 2048
    assert changed.sources["q"].traffic.rate == 500.0
    assert scenario.mappings[0].batch_size == 10  # the original is unchanged
    assert scenario.with_changes({}) == scenario


def test_with_changes_keeps_what_was_not_changed() -> None:
    # The region warning depends on whether `pricing` was given: a copy must not give it.
    scenario = Scenario.model_validate({**RAW, "account": {"region": "eu-west-1"}})
    assert ("account", "region") in [w.path for w in scenario.with_changes({"seed": 3}).warnings]
    assert ("account", "region") not in [w.path for w in scenario.with_changes({"pricing": {}}).warnings]


def test_with_changes_errors_are_labelled_like_set() -> None:
    scenario = Scenario.model_validate(RAW)
    with pytest.raises(ScenarioError) as caught:
        scenario.with_changes({"mappings[0].batch_size": 20000, "mappings[0]batch": 1})
    assert [i.format() for i in caught.value.issues] == [
        "--set mappings[0]batch: 'mappings[0]batch' is not a key path (write e.g. mappings[0].batch_size=100 "
        "or functions.orders.memory_mb=2048; list indices are whole numbers in [])"
    ]
    with pytest.raises(ScenarioError) as caught:
        scenario.with_changes({"mappings[0].batch_size": 20000})
    assert [i.format() for i in caught.value.issues] == [
        "--set mappings[0].batch_size: mappings[0].batch_size: 20000 is above the maximum 10000"
    ]


@pytest.mark.parametrize("path", sorted((ROOT / "scenarios").glob("*.yaml")), ids=lambda p: p.name)
def test_bundled_scenarios_survive_an_empty_change(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.with_changes({}) == scenario
    assert scenario.model_copy(update={"seed": 1}) == scenario.with_changes({"seed": 1})


def test_model_copy_validates_types_and_rules() -> None:
    scenario = Scenario.model_validate(RAW)
    with pytest.raises(pydantic.ValidationError):
        scenario.model_copy(update={"duration": "soon"})
    with pytest.raises(ScenarioError, match="must be shorter than duration"):
        scenario.model_copy(update={"warmup": 7200})
    assert scenario.model_copy(update={"warmup": 60}).warmup == 60
