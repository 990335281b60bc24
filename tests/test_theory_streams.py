"""Stream mappings against closed forms (docs/validation.md §4 and §5), over seeded replications.

§4: a shard read with parallelization factor 1 is a bulk-service queue. When an invocation ends,
the next batch takes min(K, waiting records); records arriving meanwhile wait for the next one; the
invocation lasts an exponential time of rate μ whatever the batch size. The setup removes what the
closed form ignores: no propagation delay, no per-shard call limit (the reader would otherwise pace
its calls 0.2 s apart), an idle shard polled every millisecond (a record reaching an idle shard
starts service at once), no cold starts, no per-record time.

§5: a record reaching an idle shard waits for the next poll: uniform on [0, idle poll interval),
plus the propagation delay. Records are sparse (one every 40 s on average) and the function takes
1 ms, so every record finds the shard idle.

Each test runs R independent replications and checks that a 99 % t-interval of the replication
means contains the closed-form value (or, for the distribution, a Kolmogorov-Smirnov test). The
default "quick" size is what CI runs; ``pytest --stats full`` runs longer, tighter ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats

from esmsim.model.records import SUCCEEDED
from esmsim.run import simulate
from esmsim.scenario.scenario import Scenario
from tests.conftest import run_world

pytestmark = pytest.mark.statistical


def interval(samples: list[float], confidence: float = 0.99) -> tuple[float, float]:
    """A t-interval for the mean of independent replication results."""
    values = np.asarray(samples, dtype=float)
    half = stats.t.ppf((1 + confidence) / 2, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size)
    return float(values.mean() - half), float(values.mean() + half)


def bulk_shard(lam: float, mu: float, k: int, duration: float) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "bulk-service-shard",
            "duration": duration,
            "warmup": 200,
            "seed": 100,
            "functions": {
                "f": {
                    "timeout": 900,
                    "duration": {"dist": "exponential", "mean": 1 / mu},
                    "cold_start": "0s",
                    "keep_alive": "1d",
                }
            },
            "sources": {
                "s": {
                    "type": "kinesis",
                    "shards": 1,
                    "propagation_delay": 0,
                    "idle_poll_interval": 0.001,
                    "read_calls_per_second": None,
                    "read_bytes_per_second": None,
                    "write_records_per_second": None,
                    "write_bytes_per_second": None,
                    "traffic": {"rate": lam, "record_size": "100B", "partition_keys": 1},
                }
            },
            "mappings": [
                {"source": "s", "function": "f", "starting_position": "TRIM_HORIZON", "batch_size": k}
            ],
        }
    )


#: docs/validation.md §4: (λ, μ, K) -> W, P(idle), E[batch | busy].
BULK_TABLE = [
    (5.0, 1.0, 10, 2.291, 0.0256, 5.131),
    (8.0, 1.0, 10, 3.907, 0.0051, 8.041),
    (2.0, 1.0, 3, 2.954, 0.0865, 2.189),
]


def bulk_service(lam: float, mu: float, k: int, q_max: int = 2000) -> tuple[float, float, float]:
    """W, P(idle) and E[batch] of the M/M^[K]/1 bulk-service queue, from its Markov chain.

    States: 0 is idle; 1 + q is busy with q records waiting (truncated at ``q_max``, far beyond
    any state with noticeable probability at these loads). An arrival to an idle shard starts a
    batch of one; a completion with q waiting starts a batch of min(q, K).
    """
    n = q_max + 2
    rates = np.zeros((n, n))
    rates[0, 1] = lam
    for q in range(q_max + 1):
        if q < q_max:
            rates[1 + q, 2 + q] += lam
        rates[1 + q, 0 if q == 0 else 1 + max(q - k, 0)] += mu
    np.fill_diagonal(rates, -rates.sum(axis=1))
    balance = np.vstack([rates.T, np.ones(n)])
    target = np.zeros(n + 1)
    target[-1] = 1.0
    pi = np.linalg.lstsq(balance, target, rcond=None)[0]
    waiting = np.arange(q_max + 1)
    busy = pi[1:]
    w = float((busy * waiting).sum()) / lam + 1.0 / mu  # Little on the waiting line, then service
    starts = lam * pi[0] + mu * busy[1:].sum()
    batch = (lam * pi[0] + mu * float((busy[1:] * np.minimum(waiting[1:], k)).sum())) / starts
    return w, float(pi[0]), float(batch)


@pytest.mark.parametrize(("lam", "mu", "k", "w", "p_idle", "batch"), BULK_TABLE)
def test_bulk_oracle_reproduces_the_table(
    lam: float, mu: float, k: int, w: float, p_idle: float, batch: float
) -> None:
    # The oracle against the rounded values of the table.
    got_w, got_idle, got_batch = bulk_service(lam, mu, k)
    assert got_w == pytest.approx(w, abs=5e-4)
    assert got_idle == pytest.approx(p_idle, abs=5e-5)
    assert got_batch == pytest.approx(batch, abs=5e-4)


@pytest.mark.parametrize(("lam", "mu", "k", "w", "p_idle", "batch"), BULK_TABLE)
def test_shard_is_a_bulk_service_queue(
    lam: float, mu: float, k: int, w: float, p_idle: float, batch: float, stats_level: str
) -> None:
    replications, duration = (8, 6000.0) if stats_level == "quick" else (20, 40000.0)
    latency, idle, batches, little = [], [], [], []
    for r in range(replications):
        summary = simulate(bulk_shard(lam, mu, k, duration), replication=r).summary
        latency.append(summary["latency_mean_s"])
        idle.append(1.0 - summary["concurrency_mean"])  # one lane: busy fraction = mean concurrency
        batches.append(summary["batch_size_mean"])
        # Little's law, L = λW: records in the shard not yet processed, against λ × mean latency.
        little.append(summary["backlog_mean"] - lam * summary["latency_mean_s"])
    confidence = 1 - 0.01 / 4  # four checks, 1 % for the family (Bonferroni)
    lo, hi = interval(latency, confidence)
    assert lo <= w <= hi, f"W={w} outside the interval [{lo:.3f}, {hi:.3f}]"
    lo, hi = interval(idle, confidence)
    assert lo <= p_idle <= hi, f"P(idle)={p_idle} outside [{lo:.4f}, {hi:.4f}]"
    lo, hi = interval(batches, confidence)
    # batch_size_mean averages every invocation, which is E[batch | busy] (identity of §4).
    assert lo <= batch <= hi, f"E[batch|busy]={batch} outside [{lo:.3f}, {hi:.3f}]"
    lo, hi = interval(little, confidence)
    assert lo <= 0.0 <= hi, f"L - λW outside [{lo:.3f}, {hi:.3f}]"


def sparse_stream(kind: str, propagation: float, duration: float) -> Scenario:
    source: dict[str, Any] = {
        "type": kind,
        "shards": 1,
        "propagation_delay": propagation,
        "traffic": {"rate": 1 / 40, "record_size": "100B", "partition_keys": 1},
    }
    return Scenario.model_validate(
        {
            "name": "idle-shard",
            "duration": duration,
            "seed": 200,
            "functions": {"f": {"timeout": 10, "duration": "1ms", "cold_start": "0s", "keep_alive": "1d"}},
            "sources": {"s": source},
            "mappings": [
                {"source": "s", "function": "f", "starting_position": "TRIM_HORIZON", "batch_size": 10}
            ],
        }
    )


@pytest.mark.parametrize(
    ("kind", "interval_s", "propagation"), [("kinesis", 1.0, 0.2), ("dynamodb", 0.25, 0.05)]
)
def test_idle_shard_wait_is_uniform_up_to_the_poll_interval(
    kind: str, interval_s: float, propagation: float, stats_level: str
) -> None:
    duration = 20000.0 if stats_level == "quick" else 100000.0
    waits: list[np.ndarray] = []
    for r in range(3):
        world = run_world(sparse_stream(kind, propagation, duration), replication=r)
        m = world.stream_mappings[0]
        done = m.state == SUCCEEDED
        # latency = propagation + wait for the poll + 1 ms of function time
        waits.append(m.done_at[done] - world.streams["s"].table.arrival_at[done] - propagation - 0.001)
    wait = np.concatenate(waits)
    assert wait.size > 1000
    assert wait.min() >= -1e-9
    assert wait.max() <= interval_s + 1e-9
    # Uniform on [0, interval): Kolmogorov-Smirnov at the 1 % level, and the mean within 3 sigma.
    assert stats.kstest(wait / interval_s, "uniform").pvalue > 0.01
    sigma = interval_s / np.sqrt(12 * wait.size)
    assert abs(wait.mean() - interval_s / 2) < 3 * sigma
