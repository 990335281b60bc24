"""Stream mappings against closed forms (docs/validation.md §4 and §5), over seeded replications.

§4: a shard read with parallelization factor 1 is a bulk-service queue. When an invocation ends,
the next batch takes min(K, waiting records); records arriving meanwhile wait for the next one; the
invocation lasts an exponential time of rate μ whatever the batch size. The setup removes what the
closed form ignores: no propagation delay, no per-shard call limit (the reader would otherwise pace
its calls 0.2 s apart), an idle shard polled every millisecond (a record reaching an idle shard
starts service at once), no cold starts, no per-record time. One shard with one partition key, so
how the engine draws partition keys does not matter. The oracle solves the continuous-time Markov
chain as a sparse system (``bulk_service``); ``test_bulk_oracle_reproduces_the_table`` checks it
against the table, asserts its truncation holds no probability, and that a chain cut at half the
length gives the same numbers. The summary suffices here (nothing is traced).

§5: a record reaching an idle shard waits for the next poll: uniform on [0, idle poll interval),
plus the propagation delay. Records are sparse (one every 40 s on average) and the function takes
1 ms, so every record finds the shard idle; the waits come from the traced records table.

As in ``tests/test_theory.py``, ``tests.stats.replicate`` runs replications until each sized
metric's 95 % t-interval is narrower than the test's target (at least ten), and ``tests.stats.check``
asserts that the closed form lies in the t-interval at the test function's family-wise level (1 %,
Bonferroni over its checks). The distribution of §5 is also checked by a Kolmogorov-Smirnov test at
the 1 % level on every replication's waits together. The default "quick" size is what CI runs;
``pytest --stats full`` runs longer replications to tighter targets.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
from scipy import stats as sps

from esmsim.run import simulate
from esmsim.scenario.scenario import Scenario
from tests.helpers import records_of, traced
from tests.stats import check, replicate

pytestmark = pytest.mark.statistical


def bulk_shard(lam: float, mu: float, k: int, duration: float, warmup: float = 200.0) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "bulk-service-shard",
            "duration": duration,
            "warmup": warmup,
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


#: docs/validation.md §4: (λ, μ, K) -> W, P(idle), E[batch | busy].
BULK_TABLE = [
    (5.0, 1.0, 10, 2.291, 0.0256, 5.131),
    (8.0, 1.0, 10, 3.907, 0.0051, 8.041),
    (2.0, 1.0, 3, 2.954, 0.0865, 2.189),
]
#: Waiting records the chain keeps (see ``bulk_service``).
Q_MAX = 2_000
#: Probability the truncated chain may leave in its last K states (an upper bound on what the
#: truncation changes in any of the oracle's numbers, relative to those numbers' own size).
TRUNCATION_MASS = 1e-12


def bulk_service(lam: float, mu: float, k: int, q_max: int = Q_MAX) -> tuple[float, float, float]:
    """W, P(idle) and E[batch] of the M/M^[K]/1 bulk-service queue, from its Markov chain.

    States: 0 is idle; 1 + q is busy with q records waiting, q = 0 .. ``q_max``. An arrival to an
    idle shard starts a batch of one; a completion with q waiting starts a batch of min(q, K). The
    generator is sparse (three entries per row), so the balance equations are solved as a sparse
    system in milliseconds. The chain is truncated at ``q_max`` waiting records (arrivals there are
    lost); the test asserts that the stationary mass near the cut is negligible, so the truncation
    changes nothing visible.
    """
    n = q_max + 2
    q = np.arange(q_max + 1)
    # Transitions (from, to, rate): the idle arrival, arrivals while busy, completions.
    src = np.concatenate([[0], 1 + q[:-1], 1 + q])
    dst = np.concatenate([[1], 2 + q[:-1], np.where(q == 0, 0, 1 + np.maximum(q - k, 0))])
    rate = np.concatenate([[lam], np.full(q_max, lam), np.full(q_max + 1, mu)])
    rates = scipy.sparse.coo_matrix((rate, (src, dst)), shape=(n, n)).tocsr()
    generator = rates - scipy.sparse.diags(np.asarray(rates.sum(axis=1)).ravel())
    # pi · Q = 0 with sum(pi) = 1: the transposed system, one balance equation replaced by the sum.
    balance = generator.T.tolil()
    balance[n - 1, :] = np.ones(n)
    target = np.zeros(n)
    target[-1] = 1.0
    pi = scipy.sparse.linalg.spsolve(balance.tocsc(), target)
    tail = float(pi[-k:].sum())
    assert tail < TRUNCATION_MASS, f"q_max={q_max} too small: the last {k} states hold {tail:.3g}"
    busy = pi[1:]
    w = float((busy * q).sum()) / lam + 1.0 / mu  # Little on the waiting line, then service
    starts = lam * pi[0] + mu * busy[1:].sum()
    batch = (lam * pi[0] + mu * float((busy[1:] * np.minimum(q[1:], k)).sum())) / starts
    return w, float(pi[0]), float(batch)


@pytest.mark.parametrize(("lam", "mu", "k", "w", "p_idle", "batch"), BULK_TABLE)
def test_bulk_oracle_reproduces_the_table(
    lam: float, mu: float, k: int, w: float, p_idle: float, batch: float
) -> None:
    # The oracle against the rounded values of the table; and against a chain cut at half the
    # length, which must agree to rounding (the truncation is invisible).
    got = bulk_service(lam, mu, k)
    assert got[0] == pytest.approx(w, abs=5e-4)
    assert got[1] == pytest.approx(p_idle, abs=5e-5)
    assert got[2] == pytest.approx(batch, abs=5e-4)
    assert bulk_service(lam, mu, k, Q_MAX // 2) == pytest.approx(got, rel=1e-9)


#: Per level and row (λ, μ, K): seconds per replication (after a 200 s warm-up).
#: Quick mode runs half the steady seconds it ran before (2,000, 5,000 and 4,000), so the SD of each
#: replication's mean grows by √2 and the quick targets below are √2 wider (they were 5 %, 10 %, 2 %
#: and 2 %): ten replications meet them as they met the old ones (measured: W's 95 % half-width
#: 2.8 %, 2.7 % and 4.4 % of the closed form, P(idle)'s 7.5 %, 7.9 % and 5.0 %, with ten
#: replications of the old lengths; √2 times each is within its new target).
BULK_PLAN: dict[str, dict[tuple[float, float, int], float]] = {
    "quick": {(5.0, 1.0, 10): 1_000.0, (8.0, 1.0, 10): 2_500.0, (2.0, 1.0, 3): 2_000.0},
    "full": {(5.0, 1.0, 10): 20_000.0, (8.0, 1.0, 10): 40_000.0, (2.0, 1.0, 3): 20_000.0},
}
#: 95 % half-widths wanted, relative to the closed form (Little's difference: to L = λW).
BULK_TARGETS: dict[str, dict[str, float]] = {
    "quick": {"W": 0.07, "P(idle)": 0.14, "E[batch]": 0.028, "L - λW": 0.028},
    "full": {"W": 0.015, "P(idle)": 0.03, "E[batch]": 0.006, "L - λW": 0.006},
}


def bulk_replication(s: Scenario, lam: float, r: int) -> dict[str, float]:
    summary = simulate(s, replication=r, tables=False).summary
    assert summary["read_throttles"] == 0
    assert summary["invocation_errors"] == 0
    return {
        "W": summary["latency_mean_s"],
        "P(idle)": 1.0 - summary["concurrency_mean"],  # one lane: busy fraction = mean concurrency
        # batch_size_mean averages every invocation, which is E[batch | busy] (identity of §4).
        "E[batch]": summary["batch_size_mean"],
        # Little's law, L = λW: records in the shard not yet processed, against λ × mean latency.
        "L - λW": summary["backlog_mean"] - lam * summary["latency_mean_s"],
    }


@pytest.mark.parametrize(("lam", "mu", "k", "w", "p_idle", "batch"), BULK_TABLE)
def test_shard_is_a_bulk_service_queue(
    lam: float, mu: float, k: int, w: float, p_idle: float, batch: float, stats_level: str
) -> None:
    w, p_idle, batch = bulk_service(lam, mu, k)  # the oracle's unrounded values
    s = bulk_shard(lam, mu, k, 200.0 + BULK_PLAN[stats_level][(lam, mu, k)])
    closed = {"W": w, "P(idle)": p_idle, "E[batch]": batch, "L - λW": lam * w}
    targets = {m: rel * closed[m] for m, rel in BULK_TARGETS[stats_level].items()}
    reps = replicate(lambda r: bulk_replication(s, lam, r), targets)
    print(f"\nBulk service λ={lam:g} μ={mu:g} K={k}: {s.duration:g} s each; {reps.describe()}")
    check("W (s)", w, reps["W"], 4)
    check("P(idle)", p_idle, reps["P(idle)"], 4)
    check("E[batch | busy]", batch, reps["E[batch]"], 4)
    check("L − λW", 0.0, reps["L - λW"], 4)


#: Per level: seconds per replication (a record every 40 s on average).
IDLE_PLAN = {"quick": 5_000.0, "full": 40_000.0}
#: 95 % half-width of the mean wait, relative to the closed form (half the poll interval).
IDLE_TARGET = {"quick": 0.04, "full": 0.015}


@pytest.mark.parametrize(
    ("kind", "interval_s", "propagation"), [("kinesis", 1.0, 0.2), ("dynamodb", 0.25, 0.05)]
)
def test_idle_shard_wait_is_uniform_up_to_the_poll_interval(
    kind: str, interval_s: float, propagation: float, stats_level: str
) -> None:
    s = sparse_stream(kind, propagation, IDLE_PLAN[stats_level])
    label = "mappings[0]: s -> f"
    waits: list[np.ndarray] = []

    def replication(r: int) -> dict[str, float]:
        rec = records_of(traced(s, replication=r, tables=False), label)
        done = rec[rec["state"] == "succeeded"]
        # latency = propagation + wait for the poll + 1 ms of function time
        wait = (done["done_s"] - done["sent_s"]).to_numpy() - propagation - 0.001
        waits.append(wait)
        return {"E[wait]": float(wait.mean())}

    reps = replicate(replication, {"E[wait]": IDLE_TARGET[stats_level] * interval_s / 2})
    print(f"\nIdle {kind} shard: {s.duration:g} s each; {reps.describe()}")
    wait = np.concatenate(waits)
    assert wait.size > 1000
    assert wait.min() >= -1e-9
    assert wait.max() <= interval_s + 1e-9
    # Uniform on [0, interval): the mean in its t-interval, and the distribution by a
    # Kolmogorov-Smirnov test at the 1 % level on every replication's waits together.
    check("E[wait] (s)", interval_s / 2, reps["E[wait]"], 2)
    ks = sps.kstest(wait / interval_s, "uniform")
    print(f"  Kolmogorov-Smirnov against U[0, {interval_s:g}): D = {ks.statistic:.4f}, p = {ks.pvalue:.3f}")
    assert ks.pvalue > 0.01, f"waits not uniform on [0, {interval_s:g}): {ks}"
