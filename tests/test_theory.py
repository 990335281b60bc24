"""Layer 3 of the test plan: the simulator against closed forms from queueing theory.

Every check here compares a closed form (docs/validation.md §1–3) with the mean over
seeded, independent replications (``run_world(s, seed, replication)``) and asserts that the closed
form lies inside a Student-t confidence interval of that mean. No decimal from one seed is pinned.
Each test function makes ``k`` such comparisons at ``1 − 0.01/k`` each (Bonferroni), so a correct
simulator fails a test function with probability at most 1 %. The seeds are fixed, so a run is
reproducible; a change of the model or of its random streams draws new samples, and a check that
then fails only marginally is worth re-running with ``--stats full`` before calling it a bug.

Two sizes, chosen with the ``--stats`` option (``stats_level`` fixture): ``quick`` (the default, what
CI runs: the whole file in well under three minutes on two cores) and ``full`` (more and longer
replications, tighter intervals, about ten minutes, and the c = 100 row of the Erlang C table).
The oracles themselves (``erlang_c``, ``window_batching``) are first checked against the rounded
values of the tables (``test_*_oracle_reproduces_the_table``).

**M/M/c against Erlang C** (§1, ``test_mmc_matches_erlang_c``). Poisson arrivals at λ, batch size 1,
no batching window, exponential durations of mean 1/μ, no per-record time, no cold starts, no
errors, nothing throttled. The poller fleet is pinned to c (``maximum_concurrency: c`` and a
``poller_scaling`` whose initial size, ceiling and both floors are c, with no scale-down and no
error back-off), so each poller is one server: it takes the oldest waiting record the moment its
invocation ends, and an idle poller's long poll takes a record the moment it arrives (the model has
no poll latency). Visibility timeout (12 h) and function timeout (900 s) are far beyond any sampled
duration, warm environments live longer than the run, and the account quota is c + 1000: nothing
but the c pollers limits the system. It is then exactly an FCFS M/M/c queue, which
``test_mmc_sample_path_is_fcfs_with_c_servers`` verifies record by record (Kiefer–Wolfowitz
recursion on the run's own arrivals and durations). The queue starts empty; the warm-up (tens of
relaxation times 1/(cμ(1 − √ρ)²)) removes that transient. Checked: the mean latency W = W_q + 1/μ
(summary ``latency_mean_s``: arrival to the end of its invocation); P(wait), the fraction of records
whose invocation started after their arrival (each invocation carries one record: records are
matched to invocations by ``done_at == end_at``); L_q = λ·W_q (Little) from those waits; and L_q as
the time-weighted number of visible messages (``backlog_mean``).

**Little's law** (§2, ``test_littles_law``). A realistic mapping: Poisson λ = 50/s, batch size 10,
a 1 s batching window, lognormal durations plus 20 ms per record, cold starts, the default poller
fleet (it scales). After the warm-up, per replication: time-averaged concurrency minus
(invocation rate × mean invocation duration, both from the invocation log over the same window);
time-averaged messages in the queue (visible + in flight) minus λ × mean time in the queue (arrival
to deletion: ``latency_mean_s``); records processed per second minus λ. Each difference has mean
zero in steady state (the edge effects at the two ends of the window cancel in expectation; what
is left, e.g. the few records still in the queue at the end and so missing from the latency mean,
is O(1/duration) and far below the noise), so 0 must lie in its t-interval: a paired comparison,
much tighter than comparing the two sides separately.

**Batch formation, one poller** (§3, ``test_single_poller_batching_window``). ``single_poller_batching``
and a fleet pinned to one poller: the window opens at the first record that reaches an idle poller
and closes after W seconds or when B records are in, exactly the closed form's model. The function
takes 1 ms, so the poller is almost always waiting. The one difference from the closed form: a
record that arrives during that 1 ms is taken when the poller comes back, so its window opens up
to 1 ms after it arrived instead of at its arrival. That happens to a fraction λ·1 ms of batches
(at most 0.1 at λ = 100/s) and then lengthens the window by 0.5 ms on average: E[batch] grows by at
most (λ·1 ms)² ≤ 0.01 records (none at all in the λ = 100 row, whose batches are always full) and
the first record's delay by at most λ·1 ms × 0.5 ms ≤ 0.05 ms; both are far inside the intervals,
so no correction is applied. The test also checks this mechanism exactly on every batch:
a batch that is not full is invoked W after its window opened (the later of its first record's
arrival and the end of the previous invocation), a full one when its last record arrived. The
process regenerates at every window, so no warm-up is needed. Checked per row: E[batch] and
P(full batch) from the invocation log's ``records`` column, and E[delay of the first record]
(arrival to invocation start). The table's row λ = 10, W = 0.5 s is replaced by λ = 1, W = 5 s
(same λW, same E[batch] and P(full); AWS only accepts whole-second windows).

**Batch formation, several pollers** (``test_multi_poller_batches_are_smaller``). With the default
fleet (five pollers) dealing arrivals round-robin, the mean batch must be strictly smaller than
the single-poller closed form: the upper end of its interval lies below it. The λ = 100/s row is
left out: there every poller fills its batch of 10 either way.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from scipy import stats

from esmsim.metrics import observe
from esmsim.model.build import World
from esmsim.model.records import SUCCEEDED
from esmsim.scenario.scenario import Scenario
from tests.conftest import ONE_POLLER, invocations, run_world, scenario

pytestmark = pytest.mark.statistical

#: Family-wise confidence of each test function (split over its checks, Bonferroni).
FAMILY_CONFIDENCE = 0.99
#: A wait shorter than this is float rounding of "taken at arrival", not a wait.
EPS_S = 1e-9


# ---------------------------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class Interval:
    """A t-interval for the mean of replication values."""

    mean: float
    half: float
    n: int
    confidence: float

    def __contains__(self, value: float) -> bool:
        # The floor covers a degenerate sample (every replication the same, e.g. P(full) = 1).
        return abs(value - self.mean) <= self.half + 1e-9 * max(1.0, abs(value))

    def __str__(self) -> str:
        return f"{self.mean:.6g} ± {self.half:.3g} ({self.confidence:.2%} t-interval, {self.n} replications)"


def t_interval(values: list[float] | np.ndarray, checks: int = 1) -> Interval:
    """The t-interval of the mean of ``values`` at the per-check level of a family of ``checks``."""
    x = np.asarray(values, dtype=float)
    confidence = 1.0 - (1.0 - FAMILY_CONFIDENCE) / checks
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return Interval(float(x.mean()), half, x.size, confidence)


def check(name: str, expected: float, values: list[float] | np.ndarray, checks: int) -> None:
    """Assert that ``expected`` lies in the t-interval of ``values``; print both for the record."""
    ci = t_interval(values, checks)
    print(f"  {name}: theory {expected:.6g}, simulated {ci}")
    assert expected in ci, f"{name}: theory {expected:.6g} outside the simulated {ci}"


# ---------------------------------------------------------------------------------------- closed forms
def erlang_c(lam: float, mu: float, c: int) -> tuple[float, float]:
    """P(wait) and W_q of M/M/c, Erlang B by recursion (docs/validation.md §1)."""
    a = lam / mu
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    p_wait = c * b / (c - a * (1 - b))
    return p_wait, p_wait / (c * mu - lam)


def window_batching(lam: float, batch: int, window: float) -> tuple[float, float, float]:
    """E[batch], E[delay of the first record] and P(full) of one poller (docs/validation.md §3)."""
    tail = stats.poisson.sf(np.arange(batch - 1), lam * window)  # P(N(W) >= j), j = 1 .. B-1
    return 1.0 + float(tail.sum()), float(tail.sum()) / lam, float(tail[-1]) if batch > 1 else 1.0


@pytest.mark.parametrize(
    ("lam", "mu", "c", "p_wait", "w_q", "l_q"),
    [
        (0.2, 0.1, 3, 0.4444, 4.444, 0.889),
        (8, 1, 10, 0.4092, 0.2046, 1.637),
        (90, 1, 100, 0.2169, 0.02169, 1.952),
        (50, 10, 6, 0.5875, 0.05875, 2.938),
    ],
)
def test_erlang_c_oracle_reproduces_the_table(
    lam: float, mu: float, c: int, p_wait: float, w_q: float, l_q: float
) -> None:
    # The oracle itself, against the rounded values of docs/validation.md §1.
    got_p, got_w = erlang_c(lam, mu, c)
    assert got_p == pytest.approx(p_wait, abs=5e-5)
    assert got_w == pytest.approx(w_q, rel=5e-4)
    assert lam * got_w == pytest.approx(l_q, abs=5e-4)


@pytest.mark.parametrize(
    ("lam", "batch", "window", "e_batch", "e_delay", "p_full"),
    [
        (10, 10, 1, 9.207, 0.821, 0.667),
        (10, 10, 0.5, 5.946, 0.495, 0.068),
        (1, 10, 5, 5.946, 4.946, 0.068),
        (100, 10, 1, 10.000, 0.090, 1.000),
        (5, 100, 20, 96.50, 19.10, 0.553),
    ],
)
def test_batching_oracle_reproduces_the_table(
    lam: float, batch: int, window: float, e_batch: float, e_delay: float, p_full: float
) -> None:
    # The oracle itself, against the rounded values of docs/validation.md §3.
    got_batch, got_delay, got_full = window_batching(lam, batch, window)
    assert got_batch == pytest.approx(e_batch, abs=5e-3)
    assert got_delay == pytest.approx(e_delay, abs=5e-3)
    assert got_full == pytest.approx(p_full, abs=5e-4)


# ---------------------------------------------------------------------------------------- sizes
#: Replications and simulated seconds per level. Runs cost ~10 µs of wall time per record.
MMC_SIZES: dict[str, dict[tuple[float, float, int], tuple[int, float, float]]] = {
    # (λ, μ, c): (replications, duration s, warm-up s)
    "quick": {
        (0.2, 0.1, 3): (10, 200_000.0, 2_000.0),
        (8.0, 1.0, 10): (10, 20_000.0, 200.0),
        (50.0, 10.0, 6): (10, 4_000.0, 50.0),
        (90.0, 1.0, 100): (4, 2_500.0, 200.0),
    },
    "full": {
        (0.2, 0.1, 3): (20, 400_000.0, 4_000.0),
        (8.0, 1.0, 10): (20, 40_000.0, 400.0),
        (50.0, 10.0, 6): (20, 8_000.0, 100.0),
        (90.0, 1.0, 100): (10, 10_000.0, 200.0),
    },
}
LITTLE_SIZES = {"quick": (8, 3_600.0), "full": (20, 14_400.0)}  # replications, duration s
BATCH_SIZES = {"quick": (10, 1_500), "full": (20, 6_000)}  # replications, batches per replication
MULTI_SIZES = {"quick": (5, 600), "full": (10, 3_000)}


# ---------------------------------------------------------------------------------------- M/M/c
MMC_ROWS = [(0.2, 0.1, 3), (8.0, 1.0, 10), (50.0, 10.0, 6), (90.0, 1.0, 100)]


def mmc_scenario(lam: float, mu: float, c: int, duration: float, warmup: float) -> Scenario:
    """An SQS mapping that is an M/M/c queue: see the module docstring."""
    return scenario(
        {
            "name": f"mmc-{lam:g}-{mu:g}-{c}",
            "duration": duration,
            "warmup": warmup,
            "account": {"concurrency_limit": c + 1000},
            "functions": {
                "f": {
                    "timeout": 900,
                    "duration": {"dist": "exponential", "mean": 1.0 / mu},
                    "per_record": 0,
                    "cold_start": "0s",
                    "keep_alive": 10 * duration,
                }
            },
            "sources": {"q": {"visibility_timeout": 43200, "traffic": {"rate": lam, "pattern": "poisson"}}},
        },
        {
            "batch_size": 1,
            "batching_window": 0,
            "maximum_concurrency": c,
            "poller_scaling": {
                "initial": c,
                "ceiling": c,
                "min_pollers": c,
                "idle_min_pollers": c,
                "scale_down_per_minute": 0,
            },
            "error_backoff": {"enabled": False},
            "record_overhead": 0,
        },
    )


def record_waits(world: World) -> tuple[np.ndarray, np.ndarray]:
    """Per steady-state record, its wait (arrival to invocation start) and its run time.

    Batch size 1: every invocation carries one record, which finishes when the invocation ends.
    """
    inv = invocations(world)
    assert (inv["records"] == 1).all()
    order = np.argsort(inv["end_at"], kind="stable")
    end_at, start_at, run_s = inv["end_at"][order], inv["start_at"][order], inv["run_s"][order]
    rec = world.queues["q"].rec
    steady = (rec.state == SUCCEEDED) & (rec.arrival_at >= world.scenario.warmup)
    done_at = rec.done_at[steady]
    j = np.minimum(np.searchsorted(end_at, done_at), end_at.size - 1)
    assert np.array_equal(end_at[j], done_at), "a record finished when no invocation ended"
    assert np.unique(j).size == j.size, "two records matched to one invocation"
    wait = start_at[j] - rec.arrival_at[steady]
    assert wait.min() > -EPS_S
    return wait, run_s[j]


@pytest.mark.parametrize(
    ("lam", "mu", "c"), MMC_ROWS, ids=[f"lam{r[0]:g}-mu{r[1]:g}-c{r[2]}" for r in MMC_ROWS]
)
def test_mmc_matches_erlang_c(lam: float, mu: float, c: int, stats_level: str) -> None:
    # Quick mode keeps every row, the slowly converging c = 100 one on a short horizon (wider intervals).
    reps, duration, warmup = MMC_SIZES[stats_level][(lam, mu, c)]
    s = mmc_scenario(lam, mu, c, duration, warmup)
    p_wait, w_q = erlang_c(lam, mu, c)
    w, p, lq_little, lq_backlog = [], [], [], []
    for r in range(reps):
        world = run_world(s, 1000 + c, r)
        summary = observe(world).summary
        # The setup the theory assumes: c servers, nothing else limiting or failing.
        assert summary["pollers_max"] == c
        assert summary["pollers_mean"] == pytest.approx(c)
        assert summary["concurrency_max"] <= c
        assert summary["throttles"] == 0
        assert summary["invocation_errors"] == 0
        assert summary["records_dlq"] == 0
        assert summary["visibility_overruns"] == 0
        wait, _ = record_waits(world)
        w.append(summary["latency_mean_s"])
        p.append(float(np.mean(wait > EPS_S)))
        lq_little.append(lam * float(wait.mean()))
        lq_backlog.append(summary["backlog_mean"])
    print(f"\nM/M/c λ={lam:g} μ={mu:g} c={c}: {reps} × {duration:g} s, warm-up {warmup:g} s")
    check("W = W_q + 1/μ (s)", w_q + 1 / mu, w, 4)
    check("P(wait)", p_wait, p, 4)
    check("L_q = λ·W_q", lam * w_q, lq_little, 4)
    check("L_q = time-averaged backlog", lam * w_q, lq_backlog, 4)


def test_mmc_sample_path_is_fcfs_with_c_servers() -> None:
    # The M/M/c setup, replayed on the run's own inputs: record i (in arrival order) starts at the
    # later of its arrival and the earliest moment one of c servers is free, and runs for the i-th
    # sampled duration (Kiefer–Wolfowitz). Every invocation must start exactly then; so the
    # differences from Erlang C above can only be the sampling noise of arrivals and durations.
    lam, mu, c = 8.0, 1.0, 10
    world = run_world(mmc_scenario(lam, mu, c, 2_000.0, 0.0), 7, 0)
    inv = invocations(world)
    order = np.argsort(inv["start_at"], kind="stable")
    start_at, run_s = inv["start_at"][order], inv["run_s"][order]
    arrival_at = world.queues["q"].rec.arrival_at[: start_at.size]
    free = [0.0] * c
    expected = np.empty(start_at.size)
    for i in range(start_at.size):
        expected[i] = max(float(arrival_at[i]), heapq.heappop(free))
        heapq.heappush(free, expected[i] + float(run_s[i]))
    np.testing.assert_allclose(start_at, expected, rtol=0, atol=1e-9)


# ---------------------------------------------------------------------------------------- Little
LAMBDA_LITTLE = 50.0


def little_scenario(duration: float) -> Scenario:
    return scenario(
        {
            "name": "little",
            "duration": duration,
            "warmup": 300,
            "functions": {
                "f": {
                    "timeout": 30,
                    "memory_mb": 1024,
                    "duration": {"dist": "lognormal", "median": "200ms", "p99": "1.5s"},
                    "per_record": "20ms",
                }
            },
            "sources": {
                "q": {"visibility_timeout": 180, "traffic": {"rate": LAMBDA_LITTLE, "pattern": "poisson"}}
            },
        },
        {"batch_size": 10, "batching_window": 1},
    )


def test_littles_law(stats_level: str) -> None:
    reps, duration = LITTLE_SIZES[stats_level]
    s = little_scenario(duration)
    span = duration - s.warmup
    conc, queue, throughput = [], [], []
    for r in range(reps):
        world = run_world(s, 2000, r)
        summary = observe(world).summary
        assert summary["invocation_errors"] == 0
        assert summary["records_dlq"] == 0
        assert summary["visibility_overruns"] == 0
        inv = invocations(world)
        steady = inv["start_at"] >= s.warmup
        rate = np.count_nonzero(steady) / span
        mean_duration = float((inv["end_at"] - inv["start_at"])[steady].mean())
        conc.append(summary["concurrency_mean"] - rate * mean_duration)
        in_queue = summary["backlog_mean"] + summary["in_flight_mean"]
        queue.append(in_queue - LAMBDA_LITTLE * summary["latency_mean_s"])
        throughput.append(rate * float(inv["records"][steady].mean()) - LAMBDA_LITTLE)
        if r == 0:
            print(
                f"\nLittle (replication 0): concurrency {summary['concurrency_mean']:.4f} vs "
                f"{rate:.4f}/s × {mean_duration:.4f} s = {rate * mean_duration:.4f}; in queue "
                f"{in_queue:.4f} vs {LAMBDA_LITTLE:g}/s × {summary['latency_mean_s']:.4f} s; "
                f"mean batch {summary['batch_size_mean']:.3f}, pollers {summary['pollers_mean']:.2f}"
            )
    print(f"Little: {reps} × {duration:g} s, warm-up {s.warmup:g} s; paired differences")
    check("concurrency − invocation rate × mean duration", 0.0, conc, 3)
    check("(backlog + in flight) − λ × mean time in queue", 0.0, queue, 3)
    check("invocation rate × mean batch − λ (records/s)", 0.0, throughput, 3)


# ---------------------------------------------------------------------------------------- batching
BATCH_ROWS = [(1.0, 10, 5), (10.0, 10, 1), (100.0, 10, 1), (5.0, 100, 20)]
RUN_S = 0.001


def batching_scenario(lam: float, batch: int, window: int, duration: float, single: bool) -> Scenario:
    mapping: dict[str, Any] = {
        "batch_size": batch,
        "batching_window": window,
        "single_poller_batching": single,
        "error_backoff": {"enabled": False},
        "record_overhead": 0,
    }
    if single:
        mapping["poller_scaling"] = ONE_POLLER
    return scenario(
        {
            "name": f"window-{lam:g}-{batch}-{window}",
            "duration": duration,
            "functions": {
                "f": {
                    "duration": f"{RUN_S * 1000:g}ms",
                    "per_record": 0,
                    "cold_start": "0s",
                    "keep_alive": 1e7,
                }
            },
            "sources": {
                "q": {"visibility_timeout": 60 + 2 * window, "traffic": {"rate": lam, "pattern": "poisson"}}
            },
        },
        mapping,
    )


def batch_ids(lam: float, batch: int, window: int) -> str:
    return f"lam{lam:g}-B{batch}-W{window}"


@pytest.mark.parametrize(("lam", "batch", "window"), BATCH_ROWS, ids=[batch_ids(*r) for r in BATCH_ROWS])
def test_single_poller_batching_window(lam: float, batch: int, window: int, stats_level: str) -> None:
    reps, n_batches = BATCH_SIZES[stats_level]
    e_batch, e_delay, p_full = window_batching(lam, batch, window)
    cycle = 1 / lam + e_delay + RUN_S  # idle until a record, collect, invoke
    s = batching_scenario(lam, batch, window, n_batches * cycle, single=True)
    sizes, full, delays = [], [], []
    for r in range(reps):
        world = run_world(s, 3000 + batch, r)
        inv = invocations(world)
        rec = world.queues["q"].rec
        n = inv["records"].astype(np.int64)
        assert n.size > 0.9 * n_batches
        # One poller takes records in arrival order: batch k holds rows first[k] .. last[k].
        last = np.cumsum(n) - 1
        first = last - n + 1
        np.testing.assert_array_equal(rec.done_at[: n.sum()], np.repeat(inv["end_at"], n))
        arrival_at = rec.arrival_at
        # The mechanism the closed form assumes, batch by batch: the window opens when its first
        # record reaches the idle poller and the invocation starts W later, or when the batch fills.
        back_at = np.concatenate([[0.0], inv["end_at"][:-1]])
        opened = np.maximum(arrival_at[first], back_at)
        is_full = n == batch
        expected_start = np.where(is_full, np.maximum(arrival_at[last], back_at), opened + window)
        np.testing.assert_allclose(inv["start_at"], expected_start, rtol=0, atol=1e-9)
        sizes.append(float(n.mean()))
        full.append(float(is_full.mean()))
        delays.append(float((inv["start_at"] - arrival_at[first]).mean()))
    print(f"\nOne poller λ={lam:g}/s B={batch} W={window} s: {reps} × {s.duration:g} s")
    check("E[batch]", e_batch, sizes, 3)
    check("P(full batch)", p_full, full, 3)
    check("E[delay of the first record] (s)", e_delay, delays, 3)


MULTI_ROWS = [r for r in BATCH_ROWS if window_batching(*r)[0] < r[1] - 0.01]


@pytest.mark.parametrize(("lam", "batch", "window"), MULTI_ROWS, ids=[batch_ids(*r) for r in MULTI_ROWS])
def test_multi_poller_batches_are_smaller(lam: float, batch: int, window: int, stats_level: str) -> None:
    reps, n_batches = MULTI_SIZES[stats_level]
    e_batch, e_delay, _ = window_batching(lam, batch, window)
    s = batching_scenario(lam, batch, window, n_batches * (1 / lam + e_delay), single=False)
    means = []
    for r in range(reps):
        summary = observe(run_world(s, 4000 + batch, r)).summary
        assert summary["pollers_max"] > 1
        means.append(summary["batch_size_mean"])
    ci = t_interval(means)
    print(f"\nSeveral pollers λ={lam:g}/s B={batch} W={window} s: mean batch {ci}; one poller {e_batch:.4g}")
    assert ci.mean + ci.half < e_batch, f"multi-poller mean batch {ci} not below one poller's {e_batch:.4g}"
