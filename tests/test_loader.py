"""Loading scenario files: YAML and TOML, AWS names, human units, defaults, overrides, line numbers."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from pydantic_core import InitErrorDetails

from esmsim.dists import ConstantSize, LognormalDuration
from esmsim.errors import Issue, ScenarioError
from esmsim.scenario import Scenario
from esmsim.scenario.loader import (
    issues_from_validation_error,
    load_scenario,
    load_scenario_with_warnings,
    parse_yaml,
    read_raw,
    scenario_from_dict,
)
from esmsim.scenario.mappings import SqsMapping
from esmsim.scenario.overrides import apply_override, parse_key, parse_override
from esmsim.scenario.sources import SqsSource

ORDERS_YAML = """\
name: orders-sqs
duration: 1h
warmup: 5m
seed: 42
functions:
  orders:
    memory_mb: 1024
    timeout: 30s
    duration: {dist: lognormal, median: 40ms, p99: 250ms}
    per_record: 2ms
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
"""

ORDERS_TOML = """\
name = "orders-sqs"
duration = "1h"
warmup = "5m"
seed = 42

[functions.orders]
memory_mb = 1024
timeout = "30s"
duration = {dist = "lognormal", median = "40ms", p99 = "250ms"}
per_record = "2ms"

[sources.orders-queue]
type = "sqs"
visibility_timeout = "3m"
max_receive_count = 5

[sources.orders-queue.traffic]
rate = "200/s"
record_size = "2KB"

[[mappings]]
source = "orders-queue"
function = "orders"
batch_size = 10
batching_window = "0s"
"""

AWS_YAML = """\
functions:
  orders:
    MemorySize: 2048
    Timeout: 60
    ReservedConcurrentExecutions: 50
    Architectures: [arm64]
sources:
  orders-queue:
    type: sqs
    VisibilityTimeout: 360
    MessageRetentionPeriod: 86400
    RedrivePolicy: {maxReceiveCount: 5}
    traffic: {rate: 100/s}
mappings:
  - source: orders-queue
    function: orders
    BatchSize: 100
    MaximumBatchingWindowInSeconds: 5
    ScalingConfig: {MaximumConcurrency: 5}
    FunctionResponseTypes: [ReportBatchItemFailures]
    Enabled: true
"""


def sqs_source(scenario: Scenario, name: str) -> SqsSource:
    """A source known to be a queue."""
    source = scenario.sources[name]
    assert isinstance(source, SqsSource)
    return source


def sqs_mapping(scenario: Scenario, index: int) -> SqsMapping:
    """A mapping known to read a queue."""
    mapping = scenario.mappings[index]
    assert isinstance(mapping, SqsMapping)
    return mapping


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture
def orders(tmp_path: Path) -> Scenario:
    return load_scenario(write(tmp_path, ORDERS_YAML))


# --------------------------------------------------------------------------------------------------
# Loading


def test_yaml_scenario_with_human_units(orders: Scenario) -> None:
    assert orders.name == "orders-sqs"
    assert (orders.duration, orders.warmup, orders.seed) == (3600.0, 300.0, 42)
    fn = orders.functions["orders"]
    assert (fn.memory_mb, fn.timeout, fn.per_record) == (1024, 30.0, 0.002)
    assert fn.duration == LognormalDuration(dist="lognormal", median=0.04, p99=0.25)
    queue = sqs_source(orders, "orders-queue")
    assert (queue.visibility_timeout, queue.max_receive_count) == (180.0, 5)
    assert queue.traffic.rate == 200.0
    assert queue.traffic.record_size == ConstantSize(value=2048.0)
    mapping = orders.mappings[0]
    assert (mapping.source, mapping.function, mapping.batch_size, mapping.batching_window) == (
        "orders-queue",
        "orders",
        10,
        0.0,
    )


def test_toml_gives_the_same_scenario(tmp_path: Path, orders: Scenario) -> None:
    assert load_scenario(write(tmp_path, ORDERS_TOML, "scenario.toml")) == orders


def test_yml_extension_and_pathlib_path(tmp_path: Path, orders: Scenario) -> None:
    assert load_scenario(Path(write(tmp_path, ORDERS_YAML, "scenario.yml"))) == orders


def test_defaults_are_filled_in(orders: Scenario) -> None:
    fn = orders.functions["orders"]
    assert fn.architecture == "x86_64"
    assert fn.reserved_concurrency is None
    assert fn.provisioned_concurrency == 0
    assert fn.errors.invocation_error_rate == 0.0
    queue = sqs_source(orders, "orders-queue")
    assert queue.retention == 345_600.0  # 4 days, SQS's default
    assert queue.traffic.pattern == "poisson"
    mapping = sqs_mapping(orders, 0)
    assert mapping.enabled is True
    assert mapping.maximum_concurrency is None
    assert mapping.report_batch_item_failures is False
    assert (mapping.poller_scaling.initial, mapping.poller_scaling.ceiling) == (5, 1250)
    assert orders.account.concurrency_limit == 1000
    assert orders.account.unreserved_minimum == 100
    assert orders.pricing.lambda_request_per_million_usd > 0
    assert orders.sweep is None


def test_scenario_is_frozen(orders: Scenario) -> None:
    with pytest.raises(ValidationError, match="frozen"):
        orders.name = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        orders.mappings[0].batch_size = 100  # type: ignore[misc]
    with pytest.raises(TypeError):
        orders.mappings[0] = orders.mappings[0]  # type: ignore[index]


def test_aws_camelcase_names(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, AWS_YAML))
    fn = scenario.functions["orders"]
    assert (fn.memory_mb, fn.timeout, fn.reserved_concurrency, fn.architecture) == (2048, 60.0, 50, "arm64")
    queue = sqs_source(scenario, "orders-queue")
    assert (queue.visibility_timeout, queue.retention, queue.max_receive_count) == (360.0, 86400.0, 5)
    mapping = sqs_mapping(scenario, 0)
    assert (mapping.batch_size, mapping.batching_window, mapping.maximum_concurrency) == (100, 5.0, 5)
    assert mapping.report_batch_item_failures is True
    assert mapping.enabled is True


def test_warnings_are_returned_located(tmp_path: Path) -> None:
    path = write(tmp_path, ORDERS_YAML.replace("max_receive_count: 5", "max_receive_count: 2"))
    scenario, warnings = load_scenario_with_warnings(path)
    assert sqs_source(scenario, "orders-queue").max_receive_count == 2
    assert [w.format() for w in warnings] == [
        f"{path}:15: warning: sources.orders-queue.max_receive_count: 2 is under AWS's recommended 5: "
        "throttles and transient errors can dead-letter healthy messages"
    ]
    assert load_scenario(path) == scenario


def test_a_warning_at_an_aws_name_points_to_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, AWS_YAML.replace("VisibilityTimeout: 360", "VisibilityTimeout: 120"))
    _, warnings = load_scenario_with_warnings(path)
    assert [(w.path, w.line) for w in warnings] == [(("sources", "orders-queue", "visibility_timeout"), 10)]


# --------------------------------------------------------------------------------------------------
# YAML 1.2 scalars and line numbers


def test_yaml_12_scalars() -> None:
    value, _ = parse_yaml(
        "no: no\nyes: yes\non: off\nt: true\nf: False\nsci: 1e3\nlead: 010\noct: 0o10\nhex: 0x1F\n"
        "date: 2024-01-01\nclock: 1:30\nnull1: ~\nnull2:\nneg: -5\nhalf: .5\n"
    )
    assert value == {
        "no": "no",
        "yes": "yes",
        "on": "off",
        "t": True,
        "f": False,
        "sci": 1000.0,
        "lead": 10,
        "oct": 8,
        "hex": 31,
        "date": "2024-01-01",
        "clock": "1:30",
        "null1": None,
        "null2": None,
        "neg": -5,
        "half": 0.5,
    }
    assert isinstance(value["sci"], float)


def test_yaml_duplicate_keys_are_errors() -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_yaml("a:\n  b: 1\n  c: 2\n  b: 3\n", "x.yaml")
    assert [i.format() for i in caught.value.issues] == ["x.yaml:4: a.b: duplicate key 'b' (first at line 2)"]


def test_yaml_merge_keys_are_not_duplicates() -> None:
    value, lines = parse_yaml("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n")
    assert value["other"] == {"x": 1, "y": 3}
    assert lines[("other", "y")] == 4
    assert lines[("other", "x")] == 1  # from the anchor


def test_line_numbers_of_keys_and_items(tmp_path: Path) -> None:
    _, lines = read_raw(write(tmp_path, ORDERS_YAML))
    assert lines[()] == 1
    assert lines[("name",)] == 1
    assert lines[("functions",)] == 5
    assert lines[("functions", "orders")] == 6
    assert lines[("functions", "orders", "timeout")] == 8
    assert lines[("functions", "orders", "duration", "p99")] == 9
    assert lines[("sources", "orders-queue", "traffic", "record_size")] == 16
    assert lines[("mappings",)] == 17
    assert lines[("mappings", 0)] == 18
    assert lines[("mappings", 0, "source")] == 18
    assert lines[("mappings", 0, "batch_size")] == 20
    assert lines[("mappings", 0, "batching_window")] == 21
    assert len(lines) == 28  # the root, 21 keys, 1 item and the 5 keys inside flow mappings


def test_line_numbers_of_sequence_items() -> None:
    _, lines = parse_yaml("a:\n  - 1\n  -\n    b: 2\n  - [x,\n     y]\n")
    assert (lines[("a", 0)], lines[("a", 1)], lines[("a", 1, "b")], lines[("a", 2)]) == (2, 4, 4, 5)
    assert lines[("a", 2, 1)] == 6


def test_toml_line_numbers(tmp_path: Path) -> None:
    text = (
        ORDERS_TOML
        + '\n[[mappings]]\nsource = "orders-queue"\nfunction = "other"\n\n[mappings.polling]\nwait_time = 5\n'
    )
    _, lines = read_raw(write(tmp_path, text, "s.toml"))
    assert lines[("name",)] == 1
    assert lines[("functions", "orders")] == 6
    assert lines[("functions", "orders", "timeout")] == 8
    assert lines[("sources", "orders-queue", "traffic", "rate")] == 18
    assert lines[("mappings", 0)] == 21
    assert lines[("mappings", 0, "batch_size")] == 24
    assert lines[("mappings", 1)] == 27
    assert lines[("mappings", 1, "function")] == 29
    assert lines[("mappings", 1, "polling", "wait_time")] == 32


def test_read_raw_returns_plain_data(tmp_path: Path) -> None:
    raw, _ = read_raw(write(tmp_path, ORDERS_YAML))
    assert raw["mappings"] == [
        {"source": "orders-queue", "function": "orders", "batch_size": 10, "batching_window": "0s"}
    ]


# --------------------------------------------------------------------------------------------------
# Overrides


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("mappings[0].batch_size=100", ("mappings", 0, "batch_size"), 100),
        ("functions.orders.memory_mb=2048", ("functions", "orders", "memory_mb"), 2048),
        ("sources.q.traffic.rate=500/s", ("sources", "q", "traffic", "rate"), "500/s"),
        (
            "functions.orders.duration={dist: lognormal, median: 40ms, p99: 250ms}",
            ("functions", "orders", "duration"),
            {"dist": "lognormal", "median": "40ms", "p99": "250ms"},
        ),
        ("mappings[0].enabled=true", ("mappings", 0, "enabled"), True),
        ("name=no", ("name",), "no"),
        ("name=a=b", ("name",), "a=b"),
        ("functions.orders.reserved_concurrency=", ("functions", "orders", "reserved_concurrency"), None),
        ('functions["my.fn"].timeout=5m', ("functions", "my.fn", "timeout"), "5m"),
        (" mappings[ 1 ].batch_size = 7", ("mappings", 1, "batch_size"), 7),
        ("sweep.grid.x=[1, 10, 100]", ("sweep", "grid", "x"), [1, 10, 100]),
    ],
)
def test_parse_override(text: str, path: tuple[str | int, ...], value: Any) -> None:
    assert parse_override(text) == (path, value)


@pytest.mark.parametrize("key", ["", "a..b", ".a", "a.", "a[0", "a[x]", "a]0[", "[0].a", "a[-1]", "a b"])
def test_parse_key_rejects(key: str) -> None:
    with pytest.raises(ValueError, match="key"):
        parse_key(key)


def test_apply_override_copies() -> None:
    raw: dict[str, Any] = {"mappings": [{"batch_size": 10}], "functions": {"f": {"timeout": 3}}}
    before = copy.deepcopy(raw)
    new = apply_override(raw, ("mappings", 0, "batch_size"), 100)
    assert raw == before
    assert new == {"mappings": [{"batch_size": 100}], "functions": {"f": {"timeout": 3}}}
    assert new["functions"] is raw["functions"]  # untouched branches are shared, not copied


def test_apply_override_creates_missing_mappings() -> None:
    new = apply_override({"functions": {"f": {}}}, ("functions", "f", "errors", "invocation_error_rate"), 0.1)
    assert new == {"functions": {"f": {"errors": {"invocation_error_rate": 0.1}}}}


def test_apply_override_replaces_the_aws_spelling() -> None:
    new = apply_override({"mappings": [{"BatchSize": 10}]}, ("mappings", 0, "batch_size"), 100)
    assert new == {"mappings": [{"batch_size": 100}]}


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (
            ("mappings", 3, "batch_size"),
            "--set mappings[3].batch_size: mappings[3]: index 3 is out of range (mappings has 1 item)",
        ),
        (("name", "x"), "--set name.x: name: 'orders' is a plain value, so it has no 'x' to set"),
        (
            ("mappings", "batch_size"),
            "--set mappings.batch_size: mappings: a list, not a mapping: write "
            "mappings[0].batch_size, not mappings.batch_size",
        ),
        (
            ("functions", 0),
            "--set functions[0]: functions: a mapping of names, not a list: write "
            "functions.NAME, not functions[0]",
        ),
    ],
)
def test_apply_override_errors(path: tuple[str | int, ...], line: str) -> None:
    raw = {"name": "orders", "functions": {"f": {}}, "mappings": [{}]}
    with pytest.raises(ScenarioError) as caught:
        apply_override(raw, path, 1)
    assert [i.format() for i in caught.value.issues] == [line]


def test_overrides_when_loading(tmp_path: Path) -> None:
    path = write(tmp_path, ORDERS_YAML)
    scenario = load_scenario(
        path,
        [
            "mappings[0].batch_size=100",
            "mappings[0].batching_window=2s",
            "functions.orders.duration={dist: exponential, mean: 50ms}",
            "sources.orders-queue.traffic.rate=500/s",
            "functions.orders.memory_mb=2048",
        ],
    )
    assert (scenario.mappings[0].batch_size, scenario.mappings[0].batching_window) == (100, 2.0)
    assert scenario.functions["orders"].duration.mean() == pytest.approx(0.05)
    assert scenario.functions["orders"].memory_mb == 2048
    assert scenario.sources["orders-queue"].traffic.rate == 500.0


def test_later_override_wins(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, ORDERS_YAML), ["seed=1", "seed=2"])
    assert scenario.seed == 2


def test_override_of_an_aws_named_key(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, AWS_YAML), ["mappings[0].batch_size=7"])
    assert scenario.mappings[0].batch_size == 7


def test_error_under_an_override_points_to_the_override(tmp_path: Path) -> None:
    path = write(tmp_path, ORDERS_YAML)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path, ["functions.orders.duration={dist: lognormal, median: 40ms, p99: x}"])
    assert [i.format() for i in caught.value.issues] == [
        "--set functions.orders.duration: functions.orders.duration.p99: 'x' is not a duration "
        "(write e.g. 500ms, 30s, 5m, 2h, 1d, or a number of seconds)"
    ]


# --------------------------------------------------------------------------------------------------
# Validating dicts (the sweep path) and the error formatter


def raw_orders(tmp_path: Path) -> dict[str, Any]:
    return read_raw(write(tmp_path, ORDERS_YAML))[0]


def test_scenario_from_dict_without_a_file(tmp_path: Path) -> None:
    raw = raw_orders(tmp_path)
    assert scenario_from_dict(raw) == load_scenario(write(tmp_path, ORDERS_YAML))
    raw["mappings"][0]["batch_size"] = 0
    with pytest.raises(ScenarioError) as caught:
        scenario_from_dict(raw)
    assert [i.format() for i in caught.value.issues] == ["mappings[0].batch_size: 0 is below the minimum 1"]


def test_scenario_from_dict_locates(tmp_path: Path) -> None:
    path = write(tmp_path, ORDERS_YAML)
    raw, lines = read_raw(path)
    raw = apply_override(raw, ("mappings", 0, "batch_size"), 50)  # > 10 with a window of 0: an AWS rule
    with pytest.raises(ScenarioError) as caught:
        scenario_from_dict(
            raw, file=path, lines=lines, origin={("mappings", 0, "batch_size"): "sweep point 3"}
        )
    (issue,) = caught.value.issues
    assert issue.format().startswith("sweep point 3: mappings[0].batch_size: 50 needs batching_window >= 1s")
    with pytest.raises(ScenarioError) as caught:
        scenario_from_dict(raw, file=path, lines=lines)
    assert caught.value.issues[0].format().startswith(f"{path}:20: mappings[0].batch_size: 50 needs")


def test_scenario_from_dict_is_fast_and_leaves_its_input_alone(tmp_path: Path) -> None:
    raw = raw_orders(tmp_path)
    before = copy.deepcopy(raw)
    start = time.perf_counter()
    for _ in range(200):
        scenario_from_dict(raw)
    assert raw == before
    assert (time.perf_counter() - start) / 200 < 0.01  # about 0.2 ms each; 10 ms is a loose ceiling


def test_formatter_drops_union_tags_and_pydantic_jargon(tmp_path: Path) -> None:
    raw = raw_orders(tmp_path)
    raw["functions"]["orders"]["duration"] = {"dist": "lognormal", "median": "40ms", "p99": -1, "mean": 2}
    raw["mappings"][0]["batching_window"] = "soon"
    try:
        Scenario.model_validate(raw)
    except ValidationError as error:
        issues = issues_from_validation_error(error)
    else:
        pytest.fail("expected a validation error")
    assert issues == [
        Issue(("functions", "orders", "duration", "p99"), "must be greater than 0 s (got -1 s)"),
        Issue(("functions", "orders", "duration", "mean"), "unknown key (did you mean 'median'?)"),
        Issue(
            ("mappings", 0, "batching_window"),
            "'soon' is not a duration (write e.g. 500ms, 30s, 5m, 2h, 1d, or a number of seconds)",
        ),
    ]
    for issue in issues:
        assert "Input should" not in issue.message
        assert "pydantic" not in issue.message
        assert "\n" not in issue.message


def test_formatter_drops_validator_steps_from_paths() -> None:
    # pydantic puts validator and constraint steps into some locs; build such errors directly.
    error = ValidationError.from_exception_data(
        "Scenario",
        [
            InitErrorDetails(
                type="greater_than_equal",
                loc=("functions", "f", "function-before[_aws_architectures(), model[Function]]", "memory_mb"),
                input=64,
                ctx={"ge": 128},
            ),
            InitErrorDetails(
                type="greater_than",
                loc=("functions", "f", "duration", "lognormal", "p99", "constrained-float"),
                input=-1.0,
                ctx={"gt": 0},
            ),
            InitErrorDetails(
                type="greater_than",
                loc=("sources", "q", "traffic", "period", "nullable[function-before[parse_duration()]]"),
                input=0.0,
                ctx={"gt": 0},
            ),
        ],
    )
    assert [i.format() for i in issues_from_validation_error(error)] == [
        "functions.f.memory_mb: 64 is below the minimum 128",
        "functions.f.duration.p99: must be greater than 0 s (got -1 s)",
        "sources.q.traffic.period: must be greater than 0 s (got 0 s)",
    ]


def test_starting_position_timestamp_by_its_aws_name(tmp_path: Path) -> None:
    # AWS's StartingPositionTimestamp is an accepted spelling: --set replaces it, and a rule about
    # it points at its own line.
    path = tmp_path / "s.yaml"
    path.write_text(
        "functions:\n  f: {timeout: 10}\nsources:\n  s: {type: kinesis, shards: 1}\nmappings:\n"
        "  - source: s\n    function: f\n    StartingPosition: AT_TIMESTAMP\n"
        "    StartingPositionTimestamp: -30\n"
    )
    s = load_scenario(path, ["mappings[0].starting_position_timestamp=7"])
    assert s.mappings[0].starting_position_timestamp == 7  # type: ignore[union-attr]
