"""Hostile or broken files end in one clear line, fast: alias bombs, deep nesting, recursive aliases.

Reproducers of issue 8 items 7 (a 700-byte "billion laughs" document hung ``validate`` for 49 s and
2.8 GB) and 10 (1,000 levels of nesting raised ``RecursionError``). Each is timed with a generous
bound: the point is "seconds, not minutes".
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from esmsim.cli import main
from esmsim.errors import ScenarioError
from esmsim.scenario.formats import MAX_DEPTH, MAX_NODES, parse_yaml

#: Wall-clock bound for refusing each hostile file (a real refusal takes well under a second).
BOUND_S = 10.0


def billion_laughs() -> str:
    """About 700 bytes that expand to 10**7 strings (seven levels of ten aliases each)."""
    lines = ['lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 8):
        refs = ", ".join([f"*lol{level - 1}"] * 10)
        lines.append(f"lol{level}: &lol{level} [{refs}]")
    return "\n".join(lines) + "\n"


def validate(
    tmp_path: Path, text: str, name: str = "hostile.yaml", *overrides: str
) -> tuple[str, Result, float]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    args = ["validate", str(path)]
    for override in overrides:
        args += ["--set", override]
    started = time.perf_counter()
    result = CliRunner().invoke(main, args)
    return str(path), result, time.perf_counter() - started


def assert_refused(result: Result, expected: str, seconds: float) -> None:
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [expected]
    assert seconds < BOUND_S


def test_billion_laughs_is_refused_fast(tmp_path: Path) -> None:
    text = billion_laughs()
    assert 600 <= len(text.encode()) <= 800
    path, result, seconds = validate(tmp_path, text)
    assert_refused(
        result,
        f"{path}:6: the document expands to more than {MAX_NODES:,} values through YAML aliases (each "
        "*alias repeats its anchor's contents); a scenario needs a few hundred",
        seconds,
    )


def test_an_alias_bomb_in_a_set_value_is_refused_fast(tmp_path: Path) -> None:
    value = "{" + billion_laughs().replace("\n", ", ").rstrip(", ") + "}"
    _, result, seconds = validate(tmp_path, "name: x\n", "ok.yaml", f"description={value}")
    assert result.exit_code == 2
    assert "expands to more than" in result.stderr
    assert seconds < BOUND_S


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("name: " + "[" * 1000 + "]" * 1000 + "\n", 1),
        ("".join("  " * i + f"k{i}:\n" for i in range(1000)) + "  " * 1000 + "v: 1\n", MAX_DEPTH),
        ("name: " + "{a: " * 1000 + "1" + "}" * 1000 + "\n", 1),
    ],
    ids=["flow-lists", "block-mappings", "flow-mappings"],
)
def test_deep_nesting_is_one_line(tmp_path: Path, text: str, line: int) -> None:
    path, result, seconds = validate(tmp_path, text)
    assert_refused(
        result,
        f"{path}:{line}: nested more than {MAX_DEPTH} levels deep (a scenario needs fewer than 10)",
        seconds,
    )


def test_deep_toml_is_one_line(tmp_path: Path) -> None:
    path, result, seconds = validate(tmp_path, "name = " + "[" * 1000 + "]" * 1000 + "\n", "deep.toml")
    assert_refused(
        result, f"{path}: nested more than {MAX_DEPTH} levels deep (a scenario needs fewer than 10)", seconds
    )


def test_nesting_through_aliases_counts(tmp_path: Path) -> None:
    # Each anchor is 40 levels deep; using one inside the other makes 80 once expanded.
    inner = "[" * 40 + "]" * 40
    text = f"a: &a {inner}\nb: {'[' * 40}*a{']' * 40}\n"
    path, result, seconds = validate(tmp_path, text)
    assert_refused(
        result,
        f"{path}:2: nested more than {MAX_DEPTH} levels deep (a scenario needs fewer than 10) once its "
        "aliases are expanded",
        seconds,
    )


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    path, result, seconds = validate(tmp_path, "name: x\nfunctions: &f {f: *f}\n")
    assert_refused(
        result,
        f"{path}:2: an alias refers to a node that contains it: a scenario cannot be recursive",
        seconds,
    )


def test_aliases_still_work_and_point_to_their_line() -> None:
    value, lines = parse_yaml(
        "base: &b {timeout: 10, errors: {invocation_error_rate: 0.1}}\n"
        "functions:\n  f: *b\n  g:\n    <<: *b\n    timeout: 20\n"
    )
    assert value["functions"]["f"] == {"timeout": 10, "errors": {"invocation_error_rate": 0.1}}
    assert value["functions"]["g"]["timeout"] == 20
    assert lines[("functions", "f")] == 3  # the alias: its contents were walked at the anchor
    assert ("functions", "f", "timeout") not in lines
    assert lines[("functions", "g", "errors")] == 1  # a merged key: the anchor's line
    assert lines[("functions", "g", "timeout")] == 6


def test_many_aliases_below_the_limit_are_fine() -> None:
    text = "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n" + "".join(f"b{i}: *a\n" for i in range(1000))
    value, _ = parse_yaml(text)
    assert len(value) == 1001


def test_limits_raise_scenario_errors() -> None:
    with pytest.raises(ScenarioError, match="expands to more than"):
        parse_yaml(billion_laughs())
