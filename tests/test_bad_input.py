"""A user's mistake gives one located line on stderr and exit code 2, never a traceback.

Every case edits numbered lines of one valid scenario, runs ``esmsim validate`` and compares stderr with
the exact expected line, so a change of wording or of line attribution is a visible test change.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from esmsim.cli import main

BASE = [
    "name: orders",  # 1
    "functions:",  # 2
    "  orders:",  # 3
    "    memory_mb: 1024",  # 4
    "    timeout: 30s",  # 5
    "    duration: {dist: lognormal, median: 40ms, p99: 250ms}",  # 6
    "sources:",  # 7
    "  orders-queue:",  # 8
    "    type: sqs",  # 9
    "    visibility_timeout: 3m",  # 10
    "    max_receive_count: 5",  # 11
    "    traffic: {rate: 200/s, record_size: 2KB}",  # 12
    "mappings:",  # 13
    "  - source: orders-queue",  # 14
    "    function: orders",  # 15
    "    batch_size: 10",  # 16
    "    batching_window: 0s",  # 17
]


def scenario(edits: dict[int, str | None] | None = None) -> str:
    """BASE with line N replaced by edits[N] (which may hold several lines; None deletes the line)."""
    lines: list[str | None] = list(BASE)
    for number, text in (edits or {}).items():
        lines[number - 1] = text
    return "\n".join(line for line in lines if line is not None) + "\n"


def validate(path: Path | str, *overrides: str) -> Result:
    args = ["validate", str(path)]
    for override in overrides:
        args += ["--set", override]
    return CliRunner().invoke(main, args)


def run_file(tmp_path: Path, text: str, *overrides: str, name: str = "orders.yaml") -> tuple[str, Result]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path), validate(path, *overrides)


def assert_bad(result: Result, *lines: str) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.stderr.splitlines() == list(lines)
    assert result.exit_code == 2
    assert result.stdout == ""


def check(tmp_path: Path, edits: dict[int, str | None], expected: str, *overrides: str) -> None:
    path, result = run_file(tmp_path, scenario(edits), *overrides)
    assert_bad(result, expected.format(path=path))


# --------------------------------------------------------------------------------------------------
# A valid file


def test_valid_file(tmp_path: Path) -> None:
    path, result = run_file(tmp_path, scenario())
    assert result.exit_code == 0
    assert result.stderr == ""
    ok, estimate = result.stdout.splitlines(keepends=True)
    assert ok == f"{path}: ok: 'orders', 1 source(s), 1 function(s), 1 mapping(s)\n"
    assert estimate.startswith("estimate: records ")


def test_no_is_not_false(tmp_path: Path) -> None:
    path, result = run_file(tmp_path, scenario({1: "name: no"}))
    assert result.exit_code == 0
    ok, estimate = result.stdout.splitlines(keepends=True)
    assert ok == f"{path}: ok: 'no', 1 source(s), 1 function(s), 1 mapping(s)\n"
    assert estimate.startswith("estimate: records ")


def test_toml_file(tmp_path: Path) -> None:
    text = (
        'name = "orders"\n[functions.orders]\ntimeout = "30s"\n[sources.q]\ntype = "sqs"\n'
        'visibility_timeout = "3m"\ntraffic = {rate = "5/s"}\n[[mappings]]\nsource = "q"\n'
        'function = "orders"\nbatch_size = 20000\n'
    )
    path, result = run_file(tmp_path, text, name="orders.toml")
    assert_bad(result, f"{path}:11: mappings[0].batch_size: 20000 is above the maximum 10000")


# --------------------------------------------------------------------------------------------------
# AWS ranges of single keys


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        ({16: "    batch_size: 0"}, "{path}:16: mappings[0].batch_size: 0 is below the minimum 1"),
        (
            {16: "    batch_size: 20000"},
            "{path}:16: mappings[0].batch_size: 20000 is above the maximum 10000",
        ),
        (
            {17: "    batching_window: 301"},
            "{path}:17: mappings[0].batching_window: 301 s is above the maximum 300 s (5m)",
        ),
        (
            {17: "    batching_window: 0.5"},
            "{path}:17: mappings[0].batching_window: 0.5 s is not a whole number of seconds "
            "(AWS takes integer seconds here)",
        ),
        (
            # A message and its metadata must fit Lambda's 6 MB payload, or it is received forever.
            {17: "    batching_window: 0s\n    record_overhead: 5.5MB"},
            "{path}:18: mappings[0].record_overhead: 5767168 bytes (5632KB) is above the maximum "
            "5242880 bytes (5MB)",
        ),
        (
            {17: "    batching_window: 0s\n    maximum_concurrency: 1"},
            "{path}:18: mappings[0].maximum_concurrency: 1 is below the minimum 2",
        ),
        (
            {17: "    batching_window: 0s\n    maximum_concurrency: 1001"},
            "{path}:18: mappings[0].maximum_concurrency: 1001 is above the maximum 1000",
        ),
        ({4: "    memory_mb: 64"}, "{path}:4: functions.orders.memory_mb: 64 is below the minimum 128"),
        (
            {5: "    timeout: 901"},
            "{path}:5: functions.orders.timeout: 901 s is above the maximum 900 s (15m)",
        ),
        (
            {10: "    visibility_timeout: 13h"},
            "{path}:10: sources.orders-queue.visibility_timeout: 46800 s (13h) is above the maximum "
            "43200 s (12h)",
        ),
        (
            {11: "    retention: 30s"},
            "{path}:11: sources.orders-queue.retention: 30 s is below the minimum 60 s (1m)",
        ),
        (
            {11: "    retention: 15d"},
            "{path}:11: sources.orders-queue.retention: 1296000 s (15d) is above the maximum 1209600 s (14d)",
        ),
        (
            {11: "    max_receive_count: 0"},
            "{path}:11: sources.orders-queue.max_receive_count: 0 is below the minimum 1",
        ),
        (
            {11: "    max_receive_count: 1001"},
            "{path}:11: sources.orders-queue.max_receive_count: 1001 is above the maximum 1000",
        ),
    ],
    ids=[
        "batch_size-0",
        "batch_size-20000",
        "window-301",
        "window-0.5",
        "record_overhead-5.5MB",
        "max_concurrency-1",
        "max_concurrency-1001",
        "memory-64",
        "timeout-901",
        "visibility-13h",
        "retention-30s",
        "retention-15d",
        "max_receive-0",
        "max_receive-1001",
    ],
)
def test_aws_ranges(tmp_path: Path, edits: dict[int, str | None], expected: str) -> None:
    check(tmp_path, edits, expected)


# --------------------------------------------------------------------------------------------------
# AWS rules across keys


def test_sqs_batch_above_10_needs_a_window(tmp_path: Path) -> None:
    check(
        tmp_path,
        {16: "    batch_size: 100"},
        "{path}:16: mappings[0].batch_size: 100 needs batching_window >= 1s: AWS rejects SQS batch sizes "
        "above 10 with a window of 0 (Maximum batch window in seconds must be greater than 0 if maximum "
        "batch size is greater than 10)",
    )


def test_sqs_batch_above_10_with_aws_names(tmp_path: Path) -> None:
    check(
        tmp_path,
        {16: "    BatchSize: 100", 17: "    MaximumBatchingWindowInSeconds: 0"},
        "{path}:16: mappings[0].batch_size: 100 needs batching_window >= 1s: AWS rejects SQS batch sizes "
        "above 10 with a window of 0 (Maximum batch window in seconds must be greater than 0 if maximum "
        "batch size is greater than 10)",
    )


def test_function_timeout_above_visibility_timeout(tmp_path: Path) -> None:
    check(
        tmp_path,
        {5: "    timeout: 5m"},
        "{path}:14: mappings[0]: function 'orders' timeout 300 s exceeds the visibility timeout of queue "
        "'orders-queue' (180 s): AWS rejects this mapping",
    )


def test_duplicate_mapping(tmp_path: Path) -> None:
    check(
        tmp_path,
        {17: "    batching_window: 0s\n  - source: orders-queue\n    function: orders"},
        "{path}:18: mappings[1]: a mapping from 'orders-queue' to 'orders' already exists (mappings[0]); AWS "
        "rejects a second one with ResourceConflictException",
    )


def test_reserved_concurrency_must_leave_100_unreserved(tmp_path: Path) -> None:
    check(
        tmp_path,
        {4: "    memory_mb: 1024\n    reserved_concurrency: 950"},
        "{path}:5: functions.orders.reserved_concurrency: reserved concurrency totals 950 across functions, "
        "but at most 900 of the account's 1000 may be reserved (100 must stay unreserved)",
    )


def test_provisioned_above_reserved(tmp_path: Path) -> None:
    check(
        tmp_path,
        {4: "    memory_mb: 1024\n    ReservedConcurrentExecutions: 10\n    provisioned_concurrency: 20"},
        "{path}:6: functions.orders.provisioned_concurrency: 20 exceeds the function's reserved "
        "concurrency (10)",
    )


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        (
            {14: "  - source: orders-queu"},
            "{path}:14: mappings[0].source: unknown source 'orders-queu' (did you mean 'orders-queue'?)",
        ),
        (
            {15: "    function: order"},
            "{path}:15: mappings[0].function: unknown function 'order' (did you mean 'orders'?)",
        ),
        (
            {15: "    function: payments"},
            "{path}:15: mappings[0].function: unknown function 'payments' (known: orders)",
        ),
    ],
)
def test_unknown_references(tmp_path: Path, edits: dict[int, str | None], expected: str) -> None:
    check(tmp_path, edits, expected)


# --------------------------------------------------------------------------------------------------
# Unknown keys


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        ({1: "nmae: orders"}, "{path}:1: nmae: unknown key (did you mean 'name'?)"),
        (
            {4: "    memroy_mb: 1024"},
            "{path}:4: functions.orders.memroy_mb: unknown key (did you mean 'memory_mb'?)",
        ),
        (
            {4: "    MemorySise: 1024"},
            "{path}:4: functions.orders.MemorySise: unknown key (did you mean 'MemorySize'?)",
        ),
        (
            {16: "    bach_size: 10"},
            "{path}:16: mappings[0].bach_size: unknown key (did you mean 'batch_size'?)",
        ),
        (
            {9: "    type: sqs\n    colour: blue"},
            "{path}:10: sources.orders-queue.colour: unknown key (allowed: account, delivery_delay, "
            "encryption, fifo, high_throughput, in_flight_limit, kms_key, max_message_size, "
            "max_receive_count, read_grants, retention, traffic, type, visibility_timeout)",
        ),
        (
            {11: "    rate: 5/s"},
            "{path}:11: sources.orders-queue.rate: unknown key here (rate belongs under "
            "sources.NAME.traffic)",
        ),
        (
            {6: "    duration: {dist: lognormal, median: 40ms, p99: 250ms, mean: 1s}"},
            "{path}:6: functions.orders.duration.mean: unknown key (did you mean 'median'?)",
        ),
        (
            {16: "    batch_size: 10\n    BatchSize: 10"},
            "{path}:17: mappings[0].BatchSize: BatchSize repeats batch_size",
        ),
    ],
    ids=["top", "function", "function-aws", "mapping", "no-suggestion", "misplaced", "dist", "aws-repeat"],
)
def test_unknown_keys(tmp_path: Path, edits: dict[int, str | None], expected: str) -> None:
    check(tmp_path, edits, expected)


@pytest.mark.parametrize(
    ("key", "aws"),
    [
        ("starting_position: LATEST", "StartingPosition"),
        ("parallelization_factor: 2", "ParallelizationFactor"),
        ("MaximumRetryAttempts: 3", "MaximumRetryAttempts"),
        ("bisect_batch_on_function_error: true", "BisectBatchOnFunctionError"),
    ],
)
def test_stream_only_keys_on_an_sqs_mapping(tmp_path: Path, key: str, aws: str) -> None:
    name = key.split(":")[0]
    check(
        tmp_path,
        {17: f"    batching_window: 0s\n    {key}"},
        f"{{path}}:18: mappings[0].{name}: not valid for SQS event sources (AWS: {aws} is not valid for SQS "
        "event sources)",
    )


@pytest.mark.parametrize("key", ["retry_backoff: {initial: 2s}", "enhanced_fan_out: true"])
def test_esmsim_stream_knobs_on_an_sqs_mapping(tmp_path: Path, key: str) -> None:
    # esmsim's own stream knobs (no AWS name) are named as stream-only too, not "did you mean".
    check(
        tmp_path,
        {17: f"    batching_window: 0s\n    {key}"},
        f"{{path}}:18: mappings[0].{key.split(':')[0]}: only for Kinesis and DynamoDB mappings, not valid "
        "for SQS event sources",
    )


def test_source_type_comes_from_the_source() -> None:
    # An internal tag: whatever a file writes, the mapping takes its type from the source it reads.
    from esmsim.scenario.mappings import SqsMapping
    from esmsim.scenario.scenario import Scenario

    s = Scenario.model_validate(
        {
            "functions": {"f": {"timeout": 10}},
            "sources": {"q": {"type": "sqs", "visibility_timeout": 60}},
            "mappings": [{"source": "q", "function": "f", "source_type": "kinesis"}],
        }
    )
    assert isinstance(s.mappings[0], SqsMapping)


def test_huge_numbers_written_as_text_are_not_infinite(tmp_path: Path) -> None:
    check(
        tmp_path,
        {5: "    timeout: 1e400s"},
        "{path}:5: functions.orders.timeout: expected a finite duration, got '1e400s'",
    )


def test_on_failure_destination_on_an_sqs_mapping(tmp_path: Path) -> None:
    check(
        tmp_path,
        {17: "    batching_window: 0s\n    on_failure: {type: sqs}"},
        "{path}:18: mappings[0].on_failure: not valid for SQS event sources (AWS: DestinationConfig is not "
        "valid for SQS event sources; failed messages go to the queue's dead-letter queue after "
        "max_receive_count receives)",
    )


# --------------------------------------------------------------------------------------------------
# YAML traps and values of the wrong kind


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    check(
        tmp_path,
        {16: "    batch_size: 10\n    batch_size: 100"},
        "{path}:17: mappings[0].batch_size: duplicate key 'batch_size' (first at line 16)",
    )


def test_duplicate_top_level_key(tmp_path: Path) -> None:
    check(tmp_path, {13: "name: again\nmappings:"}, "{path}:13: name: duplicate key 'name' (first at line 1)")


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        (
            {5: "    timeout: 5 parsecs"},
            "{path}:5: functions.orders.timeout: '5 parsecs' is not a duration (write e.g. 500ms, 30s, 5m, "
            "2h, 1d, or a number of seconds)",
        ),
        (
            {12: "    traffic: {rate: fast, record_size: 2KB}"},
            "{path}:12: sources.orders-queue.traffic.rate: 'fast' is not a rate (write e.g. 200/s, "
            "12000/min, 1e6/h, or a number per second)",
        ),
        (
            {12: "    traffic: {rate: 200/s, record_size: 2 furlongs}"},
            "{path}:12: sources.orders-queue.traffic.record_size.value: '2 furlongs' is not a size (write "
            "e.g. 512B, 2KB, 256KB, 1MB, or a number of bytes)",
        ),
        (
            {4: "    memory_mb: 1024\n    architecture: x86"},
            "{path}:5: functions.orders.architecture: 'x86' is not allowed (allowed: x86_64, arm64)",
        ),
        (
            {6: "    duration: {dist: normal, mean: 40ms}"},
            "{path}:6: functions.orders.duration.dist: 'normal' is not a distribution (allowed: constant, "
            "exponential, lognormal, uniform, empirical)",
        ),
        (
            {6: "    duration: {dist: lognormal, median: 40ms}"},
            "{path}:6: functions.orders.duration.p99: required",
        ),
        (
            {6: "    duration: true"},
            "{path}:6: functions.orders.duration: expected a distribution (a value such as 50ms, or e.g. "
            "{{dist: lognormal, median: 40ms, p99: 250ms}}), got true",
        ),
        (
            {4: None, 5: None, 6: None},
            "{path}:3: functions.orders: expected a mapping, got nothing (write {{}} to take every default)",
        ),
        ({4: "    memory_mb: big"}, "{path}:4: functions.orders.memory_mb: 'big' is not an integer"),
        ({4: "    memory_mb: 1024.5"}, "{path}:4: functions.orders.memory_mb: 1024.5 is not an integer"),
        ({1: "name: [a, b]"}, "{path}:1: name: expected a string, got a list"),
        (
            {16: "    batch_size: 10\n    enabled: maybe"},
            "{path}:17: mappings[0].enabled: 'maybe' is not true or false",
        ),
        (
            {13: "mappings: []", 14: None, 15: None, 16: None, 17: None},
            "{path}:13: mappings: give at least one mapping (or a trigger, for a push source)",
        ),
        (
            {14: "  - function: orders", 15: None},
            "{path}:14: mappings[0].source: required",
        ),
        (
            {9: "    type: documentdb"},
            "{path}:9: sources.orders-queue.type: 'documentdb' is not a known type "
            "(allowed: sqs, kinesis, dynamodb, kafka, mq, s3, sns, eventbridge)",
        ),
    ],
    ids=[
        "duration-unit",
        "rate-unit",
        "size-unit",
        "literal",
        "dist-name",
        "dist-missing-key",
        "dist-bool",
        "null-function",
        "int-text",
        "int-float",
        "string-list",
        "bool-text",
        "empty-list",
        "missing-source",
        "source-type",
    ],
)
def test_bad_values(tmp_path: Path, edits: dict[int, str | None], expected: str) -> None:
    check(tmp_path, edits, expected)


def test_several_errors_one_line_each_in_file_order(tmp_path: Path) -> None:
    path, result = run_file(tmp_path, scenario({16: "    batch_size: 0", 4: "    memory_mb: 64"}))
    assert_bad(
        result,
        f"{path}:4: functions.orders.memory_mb: 64 is below the minimum 128",
        f"{path}:16: mappings[0].batch_size: 0 is below the minimum 1",
    )


# --------------------------------------------------------------------------------------------------
# Files that cannot be read


def test_yaml_syntax_error(tmp_path: Path) -> None:
    check(
        tmp_path,
        {12: "    traffic: {rate: 200/s, record_size: 2KB"},
        "{path}:13: invalid YAML: expected ',' or '}}', but got ':' "
        "(while parsing a flow mapping at line 12)",
    )


def test_two_yaml_documents(tmp_path: Path) -> None:
    path, result = run_file(tmp_path, scenario() + "---\nname: other\n")
    assert_bad(
        result,
        f"{path}:18: invalid YAML: expected a single document in the stream, but found another document",
    )


def test_toml_syntax_error(tmp_path: Path) -> None:
    path, result = run_file(tmp_path, 'name = "x"\n[functions.f\n', name="orders.toml")
    assert_bad(result, f"{path}:2: invalid TOML: Expected ']' at the end of a table declaration")


def test_empty_file(tmp_path: Path) -> None:
    path, result = run_file(tmp_path, "# nothing yet\n")
    assert_bad(
        result, f"{path}: the file is empty (a scenario needs at least functions, sources and mappings)"
    )


def test_top_level_list(tmp_path: Path) -> None:
    path, result = run_file(tmp_path, "- functions\n- sources\n")
    assert_bad(
        result, f"{path}:1: the top level must be a mapping of keys (name, functions, ...), not a list"
    )


def test_nonexistent_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert_bad(validate(path), f"{path}: no such file")


def test_unknown_extension(tmp_path: Path) -> None:
    path, result = run_file(tmp_path, scenario(), name="orders.json")
    assert_bad(result, f"{path}: unknown file type '.json' (a scenario file ends in .yaml, .yml or .toml)")


# --------------------------------------------------------------------------------------------------
# --set


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "mappings[0].bach_size=5",
            "--set mappings[0].bach_size: mappings[0].bach_size: unknown key (did you mean 'batch_size'?)",
        ),
        (
            "mappings[0].batch_size=20000",
            "--set mappings[0].batch_size: mappings[0].batch_size: 20000 is above the maximum 10000",
        ),
        (
            "mappings[0].batch_size=50",
            "--set mappings[0].batch_size: mappings[0].batch_size: 50 needs "
            "batching_window >= 1s: AWS rejects SQS batch sizes above 10 with a window of 0 (Maximum batch "
            "window in seconds must be greater than 0 if maximum batch size is greater than 10)",
        ),
        (
            "mappings[3].batch_size=5",
            "--set mappings[3].batch_size: mappings[3]: index 3 is out of range (mappings has 1 item)",
        ),
        (
            "mappings[0]batch_size=5",
            "--set mappings[0]batch_size=5: 'mappings[0]batch_size' is not a key path (write "
            "e.g. mappings[0].batch_size=100 or functions.orders.memory_mb=2048; list indices are whole "
            "numbers in [])",
        ),
        (
            "batch_size",
            "--set batch_size: expected KEY=VALUE (write e.g. mappings[0].batch_size=100 or "
            "functions.orders.memory_mb=2048)",
        ),
        (
            "=5",
            "--set =5: the key before '=' is empty (write e.g. mappings[0].batch_size=100 or "
            "functions.orders.memory_mb=2048)",
        ),
        (
            "functions.orders.duration={dist: lognormal",
            "--set functions.orders.duration={dist: lognormal: invalid "
            "YAML: expected ',' or '}', but got '<stream end>' (while parsing a flow mapping at line 1)",
        ),
        ("name.first=x", "--set name.first: name: 'orders' is a plain value, so it has no 'first' to set"),
    ],
    ids=[
        "unknown-key",
        "range",
        "rule",
        "index",
        "syntax",
        "no-equals",
        "empty-key",
        "bad-yaml",
        "into-scalar",
    ],
)
def test_bad_set(tmp_path: Path, override: str, expected: str) -> None:
    _, result = run_file(tmp_path, scenario(), override)
    assert_bad(result, expected)


def test_set_fixes_a_bad_file(tmp_path: Path) -> None:
    path, result = run_file(tmp_path, scenario({16: "    batch_size: 0"}), "mappings[0].batch_size=5")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{path}: ok:")


# --------------------------------------------------------------------------------------------------
# Warnings: printed, but the scenario is valid


def test_warnings_do_not_fail_validation(tmp_path: Path) -> None:
    path, result = run_file(
        tmp_path, scenario({10: "    visibility_timeout: 2m", 11: "    max_receive_count: 2"})
    )
    assert "Traceback" not in result.output
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        f"{path}:10: warning: sources.orders-queue.visibility_timeout: 120 s is under AWS's recommended 6 x "
        "function timeout + batching window (180 s for mappings[0]); throttled or slow batches may be "
        "retried or dead-lettered early",
        f"{path}:11: warning: sources.orders-queue.max_receive_count: 2 is under AWS's recommended 5: "
        "throttles and transient errors can dead-letter healthy messages",
    ]
    ok, estimate = result.stdout.splitlines(keepends=True)
    assert ok == f"{path}: ok: 'orders', 1 source(s), 1 function(s), 1 mapping(s)\n"
    assert estimate.startswith("estimate: records ")


def test_a_model_copy_is_validated() -> None:
    # pydantic's ``model_copy(update=...)`` skips validation; a scenario's validates, so a copy AWS
    # would refuse (batch size 20 without a batching window) or a wrong type never reaches a run.
    import pydantic

    from esmsim import load_scenario
    from esmsim.errors import ScenarioError

    base = load_scenario(Path(__file__).parents[1] / "scenarios" / "sqs-orders.yaml")
    mapping = base.mappings[0]
    with pytest.raises(ScenarioError, match="batch"):
        base.model_copy(update={"mappings": [mapping.model_copy(update={"batch_size": 20})]})
    with pytest.raises(pydantic.ValidationError, match=r"batch_size|BatchSize"):
        base.model_copy(update={"mappings": [mapping.model_copy(update={"batch_size": "abc"})]})
    copied = base.model_copy(update={"mappings": [mapping.model_copy(update={"batch_size": 5})]})
    assert copied.mappings[0].batch_size == 5
    assert copied.warnings == base.warnings
    assert base.model_copy() == base
