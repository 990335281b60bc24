"""Several filter patterns on one mapping (``filter.patterns``): a record passes when any matches.

AWS's FilterCriteria holds up to 5 filters a mapping by default (10 with a raised quota), OR-ed
(docs/model.md §15). A record has one value per attribute, so two patterns on one attribute
agree on it.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from esmsim import simulate
from esmsim.cli import main
from esmsim.model.filtering import RecordFilter
from esmsim.rng import Streams
from esmsim.scenario.filter_rules import match_share
from esmsim.scenario.mappings import EventFilter
from esmsim.scenario.scenario import Scenario
from tests.helpers import assert_conserved
from tests.test_filtering import BAD_BASE

ATTRIBUTES = {"kind": {"a": 0.3, "b": 0.5, "c": 0.2}, "region": {"eu": 0.4, "us": 0.6}}


def decide(spec: dict[str, Any], keys: np.ndarray) -> np.ndarray:
    flt = RecordFilter(
        EventFilter.model_validate(spec), ATTRIBUTES, source="s", mapping=0, streams=Streams(3)
    )
    return flt.matches(keys)


def test_a_record_passes_when_any_pattern_matches_it() -> None:
    keys = np.arange(20_000)
    one = decide({"pattern": {"kind": ["a"]}}, keys)
    other = decide({"pattern": {"region": ["eu"], "kind": ["b", "c"]}}, keys)
    both = decide({"patterns": [{"kind": ["a"]}, {"region": ["eu"], "kind": ["b", "c"]}]}, keys)
    np.testing.assert_array_equal(both, one | other)
    # The same attribute in two patterns is the record's one value: kind a or kind b is kind a|b.
    np.testing.assert_array_equal(
        decide({"patterns": [{"kind": ["a"]}, {"kind": ["b"]}]}, keys),
        decide({"pattern": {"kind": ["a", "b"]}}, keys),
    )
    # With a match rate as well, a record must pass both.
    rated = decide({"match_rate": 0.5, "patterns": [{"kind": ["a"]}, {"region": ["eu"]}]}, keys)
    np.testing.assert_array_equal(
        rated,
        decide({"match_rate": 0.5}, keys) & decide({"patterns": [{"kind": ["a"]}, {"region": ["eu"]}]}, keys),
    )


patterns_strategy = st.lists(
    st.dictionaries(
        st.sampled_from(sorted(ATTRIBUTES)),
        st.sampled_from(["a", "b", "c", "eu", "us"]).map(lambda v: (v,)),
        min_size=1,
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=60, deadline=None)
@given(patterns=patterns_strategy, rate=st.one_of(st.none(), st.floats(0, 1)))
def test_match_share_is_the_probability_the_draws_give(
    patterns: list[dict[str, tuple[str, ...]]], rate: float | None
) -> None:
    # Patterns naming values an attribute lacks simply never match on it.
    spec = EventFilter.model_validate({"match_rate": rate, "patterns": patterns})
    # By enumeration of the attribute values (independent per record).
    exact = 0.0
    names = sorted(ATTRIBUTES)
    for values in itertools.product(*(ATTRIBUTES[n].items() for n in names)):
        record = {n: v for n, (v, _) in zip(names, values, strict=True)}
        p = math.prod(share for _, share in values)
        if any(all(record[n] in vs for n, vs in pattern.items()) for pattern in patterns):
            exact += p
    exact *= 1.0 if rate is None else rate
    assert match_share(spec, ATTRIBUTES) == pytest.approx(exact, abs=1e-12)


def test_an_sqs_run_filters_the_share_the_patterns_give() -> None:
    patterns = [{"kind": ["a"]}, {"region": ["eu"]}]
    s = Scenario.model_validate(
        {
            "name": "patterns",
            "duration": 600,
            "seed": 5,
            "functions": {"f": {"timeout": 10, "duration": "50ms", "cold_start": "0s"}},
            "sources": {"q": {"type": "sqs", "traffic": {"rate": "20/s", "attributes": ATTRIBUTES}}},
            "mappings": [{"source": "q", "function": "f", "filter": {"patterns": patterns}}],
        }
    )
    result = simulate(s, trace=True)
    summary = result.summary
    share = match_share(s.mappings[0].filter, ATTRIBUTES)  # type: ignore[arg-type]
    assert share == pytest.approx(0.3 + 0.4 - 0.3 * 0.4)
    decided = summary["records_filtered"] + summary["records_succeeded"]
    passed = summary["records_succeeded"] / decided
    assert abs(passed - share) < 4 * math.sqrt(share * (1 - share) / decided)  # ~12,000 draws
    assert_conserved(result)


# --------------------------------------------------------------------------------- bad input
BASE = BAD_BASE.replace("EXTRA", "mappings:\n  - source: q\n    function: f\n    filter: FILTER")


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        (
            "{patterns: [{kind: [a]}, {kinds: [b]}]}",
            "mappings[0].filter.patterns[1].kinds: 'kinds' is not an attribute of the traffic of source 'q' "
            "(allowed: its traffic.attributes: kind) (did you mean 'kind'?)",
        ),
        (
            "{pattern: {kind: [a]}, patterns: [{kind: [b]}]}",
            "mappings[0].filter: give pattern (one) or patterns (several, any of which matches), not both",
        ),
        ("{patterns: [{kind: [a]}, {}]}", "mappings[0].filter: patterns[1] names no attribute"),
        (
            "{patterns: [" + ", ".join(["{kind: [a]}"] * 11) + "]}",
            "mappings[0].filter: patterns lists 11 (allowed: at most 10 filters a mapping",
        ),
    ],
)
def test_bad_patterns_get_one_line(tmp_path: Path, flt: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BASE.replace("FILTER", flt), encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{path}:13: ")
    assert message in line


def test_more_than_five_patterns_warn_of_the_quota(tmp_path: Path) -> None:
    path = tmp_path / "six.yaml"
    path.write_text(
        BASE.replace("FILTER", "{patterns: [" + ", ".join(["{kind: [a]}"] * 6) + "]}"), encoding="utf-8"
    )
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert (
        "warning: mappings[0].filter.patterns: 6 filters: AWS allows 5 a mapping unless the account's "
        "quota is raised (Service Quotas, up to 10)"
    ) in result.stderr


def test_filtered_messages_expire_like_the_others_while_nobody_receives() -> None:
    # The mapping is disabled until t=100 (enabled once the update takes effect) and the queue
    # keeps messages 60 s: every message sent 60 s or more before that, matching or not, expires
    # 60 s after it was sent; a non-matching one sent later is received and deleted (filtered) by
    # the mapping's first receives, not while it was disabled; at the end (t=200) none waits.
    s = Scenario.model_validate(
        {
            "name": "expiry",
            "duration": 200,
            "seed": 2,
            "functions": {"f": {"timeout": 10, "duration": "50ms", "cold_start": "0s"}},
            "sources": {
                "q": {
                    "type": "sqs",
                    "retention": 60,
                    "traffic": {"rate": "1/s", "pattern": "constant", "attributes": ATTRIBUTES},
                }
            },
            "mappings": [
                {"source": "q", "function": "f", "enabled": False, "filter": {"pattern": {"kind": ["a"]}}}
            ],
            "changes": [{"at": 100, "set": {"mappings[0].enabled": True}}],
        }
    )
    enabled_at = s.stages[0][0]  # 100 s plus the update's delay
    result = simulate(s, trace=True)
    rec = result.records
    states = rec["state"].astype(str).to_numpy()
    expired = rec[states == "expired"]
    assert len(expired) == math.floor(enabled_at - 60)  # sent at t = 1, 2, ... up to enabled_at - 60
    np.testing.assert_allclose(expired["done_s"], expired["sent_s"] + 60)
    filtered = rec[states == "filtered"]
    assert (filtered["done_s"] >= enabled_at).all()  # nobody received them while it was disabled
    assert {"filtered", "succeeded"} <= set(states)
    assert "waiting" not in set(states)
    assert_conserved(result)
