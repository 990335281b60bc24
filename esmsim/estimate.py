"""How big a run will be, before it runs: records, invocations, SimPy events, peak memory, wall time.

A pure function of a validated scenario (:func:`estimate`), so ``esmsim validate`` can print it and
``esmsim run``, ``esmsim sweep`` and :func:`esmsim.simulate` can refuse a run that would exhaust the
machine (:func:`refusal`) instead of ending in a ``MemoryError`` hours later.

The engine's memory is flat in the run's length except for what waits: messages in a queue (an
initial backlog, or arrivals above what the mappings can take), records a stream keeps for a
reader that has not finished them (up to the retention when a poison record stalls a shard), the
per-partition-key tables, the per-minute series, and, with ``trace``, one row per record and per
invocation. Each of those is a measured constant times a count here. The counts are upper-bound
flavoured (a backlog is assumed to grow whenever arrivals exceed capacity, and never to drain
between periods), so the estimate errs high: within a factor of about 2.5 of the measured peak on
the cases in tests/test_estimate.py.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass

from esmsim.errors import RunError
from esmsim.scenario.functions import Function
from esmsim.scenario.mappings import MqMapping, SqsMapping, StreamMapping
from esmsim.scenario.scenario import Scenario
from esmsim.scenario.sources import (
    MQ_ENGINES,
    DynamoDBSource,
    KafkaSource,
    KinesisSource,
    MqSource,
    PushSource,
    SqsSource,
    Traffic,
)

# Measured constants. Each came from runs in fresh processes, reading the peak resident set size
# (VmHWM of /proc/self/status; ru_maxrss would keep the forking parent's) of esmsim.simulate on
# CPython 3.11, numpy 2, Linux, and taking the slope between two sizes of the same case (so the
# interpreter cancels out):
#: Peak RSS of a tiny run: the interpreter, numpy, pandas and esmsim imported (123 MB measured).
BASE_BYTES = 130 * 2**20
#: A busy run's working set (traffic blocks, exact latencies kept while few, the tables at the end)
#: grows with its first records, then stays: 5,000/s for 20 min, 6 M records, peaked 182 MB above a
#: tiny run. Counted per record up to :data:`WORKING_SET_RECORDS`.
WORKING_SET_BYTES = 90.0
WORKING_SET_RECORDS = 2e6
#: Per message of an initial backlog (SQS initial_backlog 2 M and 8 M, mapping disabled: 95 B; the
#: first block is built in one piece, with temporaries), plus 8 B when poison draws are kept.
INITIAL_BACKLOG_BYTES = 96.0
#: Per message a queue accumulates while arrivals outrun its consumers (20,000/s against 2 concurrent
#: batches for 10 min, 11.8 M waiting: 41 B).
QUEUED_BYTES = 48.0
#: Per poison draw kept with a waiting record (8 M waiting with and without poison: 7.8 B).
DRAW_BYTES = 8.0
#: Per record a stream keeps for a reader (3,000/s into 4 shards, every invocation failing, 5 and
#: 20 min: 93 B; the shard's log and the reader's copy together).
STREAM_RECORD_BYTES = 96.0
#: Per partition key: the key-to-shard and key-to-lane tables (1e7 and 3e7 keys: 10 B), and the
#: Zipf popularity table with key_skew > 0 (14 B more, at 1e7 keys).
KEY_BYTES = 10.0
SKEWED_KEY_BYTES = 14.0
#: Per simulated minute: the per-minute series of the run, of each mapping and each shard. Not
#: measured: counted from the recorder's preallocated per-minute arrays (a few dozen float64 series
#: per mapping, a few per shard) and rounded up.
MINUTE_BYTES = 2_000.0
MINUTE_SHARD_BYTES = 100.0
#: With trace: per record row and per invocation row (kept as column chunks, then one table each).
#: SQS at 5,000/s in batches of 100 over 1 s windows for 5 and 10 min, traced: 220 B a record; at
#: 500/s in batches of 1 for 5 and 10 min: 558 B per record and invocation together, so about 340 B
#: an invocation. Raised to about 1.8x those slopes: the same traced run (5 min, batches of 1)
#: peaked at 257 MB in a CI run against 220 MB on a development machine, same package versions,
#: and the estimate must not fall below a run's peak.
TRACED_RECORD_BYTES = 400.0
TRACED_INVOCATION_BYTES = 600.0
#: Per breakpoint of a repeating rate profile (Python lists of floats, then numpy arrays); counted
#: from the object sizes, not measured.
PROFILE_POINT_BYTES = 120.0
#: Per event waiting in a function's asynchronous event queue (a Python list and its heap entry):
#: scenarios/s3-thumbnails.yaml holds 56,000 waiting events at its peak and peaked at 158 MB, 28 MB
#: above a tiny run, so at most 500 B an event (everything else of the run included).
ASYNC_EVENT_BYTES = 500.0
#: Traffic is generated 65,536 records a block; a few blocks are alive at once (counted, not measured).
BLOCK_BYTES = 4 * 65_536 * 40.0

#: SimPy events per invocation (invoke, poll or receive, release; measured 1.04 with a standing SQS
#: backlog, 2.0 for a steady SQS queue in batches of 1, 3.6 in batches of 100 over 1 s windows).
EVENTS_PER_INVOCATION = 3.0
#: Rough wall-time costs on a 2-core machine: per SimPy event, and per record of numpy work.
SECONDS_PER_EVENT = 2e-5
SECONDS_PER_RECORD = 1e-6

#: Events beyond which a run is refused without ``force``: hours of wall time.
MAX_EVENTS = 1e9
#: A periodic process stepping faster than this makes the run event-bound: warned about.
EVENT_BOUND_STEP_S = 1e-3
#: The SQS long-poll and the recorder's and reaper's periods (seconds).
_LONG_POLL_S = 20.0
_HOUSEKEEPING_S = 10.0
_MINUTE_S = 60.0


@dataclass(frozen=True)
class Estimate:
    """The size of one run, estimated before it runs (see the module docstring for how)."""

    records: float  #: records sent, initial backlogs included
    invocations: float  #: Lambda invocations, retries and throttled attempts' retries included
    events: float  #: SimPy events
    peak_memory: float  #: bytes of resident memory at the run's peak
    wall_time_s: float  #: a rough wall time on a 2-core machine
    event_bound: tuple[str, ...] = ()  #: settings that make the run spend its time on events

    def line(self) -> str:
        """``records 7.2e+05, invocations 5.2e+05, events 1.6e+06, peak memory 310 MB, about 20 s``."""
        return (
            f"records {_count(self.records)}, invocations {_count(self.invocations)}, "
            f"events {_count(self.events)}, "
            f"peak memory {format_bytes(self.peak_memory).removeprefix('about ')}, "
            f"about {_wall(self.wall_time_s)}"
        )


def machine_memory() -> float:
    """Physical memory of this machine in bytes (8 GiB when the system does not say)."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 8.0 * 2**30


def default_max_memory() -> float:
    """The default memory limit of a run: three quarters of the machine's memory."""
    return 0.75 * machine_memory()


def refusal(found: Estimate, max_memory: float | None = None, max_events: float = MAX_EVENTS) -> str | None:
    """Why a run of this size is refused (one line, with the estimate and the override), or None."""
    limit = default_max_memory() if max_memory is None else max_memory
    if found.peak_memory > limit:
        reason = f"needs {format_bytes(found.peak_memory)}, above the limit of {format_bytes(limit)}"
    elif found.events > max_events:
        reason = f"needs about {_count(found.events)} events ({_wall(found.wall_time_s)})"
    else:
        return None
    return (
        f"run refused: it {reason} ({found.line()}); raise the limit with --max-memory SIZE "
        "(Python: max_memory=bytes) or run anyway with --force (force=True)"
    )


def check(
    scenario: Scenario, *, trace: bool = False, max_memory: float | None = None, force: bool = False
) -> Estimate:
    """Estimate a run and raise :class:`~esmsim.errors.RunError` if it is refused (unless ``force``)."""
    found = estimate(scenario, trace=trace)
    reason = None if force else refusal(found, max_memory)
    if reason is not None:
        raise RunError(reason)
    return found


def estimate(scenario: Scenario, *, trace: bool = False) -> Estimate:
    """Records, invocations, SimPy events, peak memory and wall time of one run of ``scenario``.

    With live changes, each stage of the system is sized as if it held for the whole run, and each
    figure is the largest of them: an upper bound (a change that raises the traffic tenfold at the
    run's end counts as if it held throughout).
    """
    sized = [_estimate_stage(scenario, trace)]
    sized += [_estimate_stage(stage, trace) for _, stage in scenario.stages]
    return Estimate(
        records=max(e.records for e in sized),
        invocations=max(e.invocations for e in sized),
        events=max(e.events for e in sized),
        peak_memory=max(e.peak_memory for e in sized),
        wall_time_s=max(e.wall_time_s for e in sized),
        event_bound=tuple(dict.fromkeys(b for e in sized for b in e.event_bound)),
    )


def _estimate_stage(scenario: Scenario, trace: bool) -> Estimate:
    """:func:`estimate` of a system that holds for the whole run (its live changes left aside)."""
    duration = scenario.duration
    records = 0.0
    invocations = 0.0
    events = 0.0
    memory = BASE_BYTES + BLOCK_BYTES * len(scenario.sources)
    traced_rows = 0.0
    bound: list[str] = []
    minutes = math.ceil(duration / _MINUTE_S)
    shards = 0
    # The largest unreserved pool of any account: an upper bound on what a function may use.
    unreserved = max(
        account.concurrency_limit
        - sum(
            f.reserved_concurrency or 0
            for f in scenario.functions.values()
            if scenario.account_name(f.account) == name
        )
        for name, account in scenario.all_accounts.items()
    )
    fed = {t.queue: scenario.sources[t.source].traffic for t in scenario.triggers if t.queue is not None}
    for name, source in scenario.sources.items():
        traffic = fed.get(name, source.traffic)
        sent = arrivals(traffic, duration) + traffic.initial_backlog
        if isinstance(source, PushSource):
            paths = [t for t in scenario.triggers if t.source == name]
            copies = 1.0 + getattr(source, "duplicate_rate", 0.0)
            for t in paths:
                records += sent * copies
                if t.function is None:
                    continue  # counted again as the queue's traffic
                fn = scenario.functions[t.function]
                attempts = 1.0 + fn.async_.maximum_retry_attempts * _failure_rate(fn)
                invocations += sent * copies * attempts
                waiting = min(sent * copies, _peak_rate(traffic) * min(duration, fn.async_.maximum_event_age))
                memory += waiting * ASYNC_EVENT_BYTES
                # Throttled events retry on their own back-off: about log2(cap) tries each, then one
                # per cap until their age runs out (bounded by the run).
                events += waiting * (math.log2(fn.async_.throttle_backoff_maximum) + 1)
                traced_rows += sent * copies
            continue
        records += sent
        peak_rate = _peak_rate(traffic)
        readers = [(i, m) for i, m in enumerate(scenario.mappings) if m.source == name and m.enabled]
        if traffic.period is not None:
            points = math.ceil(duration / traffic.period) * (2 * len(traffic.schedule) + 2)
            memory += points * PROFILE_POINT_BYTES
            events += points  # built point by point in Python: as slow as events
        if isinstance(source, SqsSource):
            capacity = 0.0
            poison = 0.0
            for i, m in readers:
                assert isinstance(m, SqsMapping)
                fn = scenario.functions[m.function]
                cap, inv = _mapping_size(scenario, m, fn, sent / max(len(readers), 1), unreserved)
                capacity += cap
                invocations += inv
                if fn.errors.poison_record_rate and source.max_receive_count is None:
                    poison = max(poison, fn.errors.poison_record_rate)
                events += _mapping_events(scenario, i, m, fn, unreserved, bound)
            window = min(duration, source.retention)
            grown = min(excess(traffic, duration, capacity), peak_rate * window)
            grown += poison * min(sent, peak_rate * window)  # poison without a DLQ cycles until expiry
            draws = (
                DRAW_BYTES
                if any(scenario.functions[m.function].errors.poison_record_rate for _, m in readers)
                else 0.0
            )
            memory += traffic.initial_backlog * (INITIAL_BACKLOG_BYTES + draws) + grown * (
                QUEUED_BYTES + draws
            )
            traced_rows += sent
            continue
        if isinstance(source, MqSource):  # docs/model.md §17: a few consumers, one batch each
            for _, m in readers:
                assert isinstance(m, MqMapping)
                fn = scenario.functions[m.function]
                batch = float(m.batch_size)
                consumers = float(m.consumers or MQ_ENGINES[source.engine])
                cap = consumers * batch / _mean_run_s(fn, batch)
                tries = 1.0 + _failure_rate(fn) * max(source.redeliveries, 6)
                invocations += min(sent, sent / batch * 4 + duration) * tries
                events += consumers * duration / 5.0  # a gathering consumer looks at least every 5 s
                waiting = min(sent, excess(traffic, duration, cap) + traffic.initial_backlog)
                memory += waiting * (QUEUED_BYTES + DRAW_BYTES)
            traced_rows += sent
            continue
        assert isinstance(source, KinesisSource | DynamoDBSource | KafkaSource)
        shards += source.shards
        keys = source.traffic.partition_keys
        memory += keys * (KEY_BYTES + (SKEWED_KEY_BYTES if source.traffic.key_skew else 0.0))
        write = source.write_records_per_second if source.type == "kinesis" else None
        for i, m in readers:
            assert isinstance(m, StreamMapping)
            fn = scenario.functions[m.function]
            cap, inv = _mapping_size(scenario, m, fn, sent, unreserved)
            if write is not None:
                cap = min(cap, write * source.shards)
            invocations += inv
            events += _mapping_events(scenario, i, m, fn, unreserved, bound)
            age = (
                source.retention if m.maximum_record_age < 0 else min(m.maximum_record_age, source.retention)
            )
            if _stalls(m, fn):
                waiting = min(sent, peak_rate * min(age, duration) + traffic.initial_backlog)
            else:
                waiting = min(sent, excess(traffic, duration, cap) + traffic.initial_backlog)
            memory += waiting * STREAM_RECORD_BYTES
            traced_rows += sent
        if not readers:
            traced_rows += sent
    memory += min(records, WORKING_SET_RECORDS) * WORKING_SET_BYTES
    events += invocations * EVENTS_PER_INVOCATION
    housekeeping = duration / _HOUSEKEEPING_S
    events += housekeeping * (1 + len(scenario.functions))
    memory += minutes * (MINUTE_BYTES * (1 + len(scenario.mappings)) + MINUTE_SHARD_BYTES * shards)
    if trace:
        memory += traced_rows * TRACED_RECORD_BYTES + invocations * TRACED_INVOCATION_BYTES
    wall = events * SECONDS_PER_EVENT + records * SECONDS_PER_RECORD
    return Estimate(
        records=_sane(records),
        invocations=_sane(invocations),
        events=_sane(events),
        peak_memory=_sane(memory),
        wall_time_s=_sane(wall),
        event_bound=tuple(bound),
    )


def _peak_rate(traffic: Traffic) -> float:
    return max([traffic.rate, *(p.rate for p in traffic.schedule)])


def _failure_rate(fn: Function) -> float:
    """The chance that an invocation of one record fails (upper bound over incidents)."""
    e = fn.errors
    rate = max(e.invocation_error_rate, e.record_error_rate, e.poison_record_rate)
    for incident in fn.incidents:
        rate = max(rate, incident.invocation_error_rate or 0.0, incident.record_error_rate or 0.0)
    return min(1.0, rate)


def _mapping_size(
    scenario: Scenario, m: SqsMapping | StreamMapping, fn: Function, records: float, unreserved: int
) -> tuple[float, float]:
    """A mapping's capacity (records a second it can take) and its invocations over the run."""
    duration = scenario.duration
    if isinstance(m, SqsMapping):
        lanes = float(m.maximum_concurrency or m.poller_scaling.ceiling)
        floor = float(m.poller_scaling.min_pollers)
    else:
        source = scenario.sources[m.source]
        lanes = float(getattr(source, "shards", 1) * m.parallelization_factor)
        floor = lanes
    available = float(fn.reserved_concurrency if fn.reserved_concurrency is not None else unreserved)
    concurrency = min(lanes, available)
    batch = float(m.batch_size)
    per_invocation = _mean_run_s(fn, batch)
    capacity = concurrency * batch / per_invocation if concurrency > 0 else 0.0
    rate = records / duration
    # Arrivals: a window gathers rate x window per lane; without one a batch is what arrived
    # during an invocation (at least one record).
    gathered = rate * max(m.batching_window, _mean_run_s(fn, 1.0)) / max(floor, 1.0)
    batch_arrivals = min(batch, max(1.0, gathered))
    inv = records / batch_arrivals
    ceiling = concurrency * duration / _mean_run_s(fn, batch_arrivals) if concurrency > 0 else 0.0
    inv = max(records / batch, min(inv, ceiling))
    errors = fn.errors
    failing = max(errors.invocation_error_rate, errors.record_error_rate, errors.poison_record_rate)
    if isinstance(m, StreamMapping) and _stalls(m, fn):
        # A stalled lane retries its batch until the records age out: one invocation per cycle.
        cycle = _retry_floor(m) + per_invocation
        inv += lanes * duration / max(m.retry_backoff.maximum + per_invocation, cycle)
    elif failing:
        inv *= 1.0 + min(failing * batch, 1.0)
    return capacity, inv


def _mapping_events(
    scenario: Scenario,
    index: int,
    m: SqsMapping | StreamMapping,
    fn: Function,
    unreserved: int,
    bound: list[str],
) -> float:
    """Events a mapping spends regardless of its invocations: scaler ticks, polls, throttle retries."""
    duration = scenario.duration
    events = 0.0
    where = f"mappings[{index}]"
    if isinstance(m, SqsMapping):
        tick = m.poller_scaling.tick
        events += duration / tick
        events += m.poller_scaling.min_pollers * duration / _LONG_POLL_S
        if tick < EVENT_BOUND_STEP_S:
            bound.append(f"{where}.poller_scaling.tick: {tick:g} s: {duration / tick:.3g} scaler ticks")
        lanes = float(m.maximum_concurrency or m.poller_scaling.ceiling)
    else:
        source = scenario.sources[m.source]
        shards = getattr(source, "shards", 1)
        interval = getattr(source, "idle_poll_interval", 1.0)
        events += shards * duration / interval
        if interval < EVENT_BOUND_STEP_S:
            bound.append(
                f"sources.{m.source}.idle_poll_interval: {interval:g} s: "
                f"{shards * duration / interval:.3g} polls"
            )
        lanes = float(shards * m.parallelization_factor)
    # Throttled invokes wait and retry: count the lanes the function cannot serve at once.
    available = fn.reserved_concurrency if fn.reserved_concurrency is not None else unreserved
    waiting = max(0.0, lanes - available)
    retry = m.throttle_retry
    spacing = min(retry.initial, retry.maximum) if retry.multiplier <= 1 else retry.maximum
    if isinstance(m, SqsMapping):
        # A throttled SQS batch gives up when its visibility timeout passes and starts over.
        visibility = getattr(scenario.sources[m.source], "visibility_timeout", 30.0)
        spacing = visibility / max(
            _retries_within(retry.initial, retry.multiplier, retry.maximum, visibility), 1
        )
    if waiting:
        events += waiting * duration / spacing
    if min(retry.initial, retry.maximum) < EVENT_BOUND_STEP_S and retry.multiplier <= 1:
        bound.append(
            f"{where}.throttle_retry: a throttled batch retries every {min(retry.initial, retry.maximum):g} s"
        )
    return events


def _retries_within(initial: float, multiplier: float, maximum: float, span: float) -> float:
    """Throttle retries in ``span`` seconds, waits ``initial * multiplier**k`` capped at ``maximum``."""
    first = min(initial, maximum)
    if multiplier <= 1 or first >= maximum:
        return span / first
    growing = math.ceil(math.log(maximum / first) / math.log(multiplier))
    spent = first * (multiplier**growing - 1) / (multiplier - 1)
    if spent >= span:
        return math.log(span * (multiplier - 1) / first + 1) / math.log(multiplier)
    return growing + (span - spent) / maximum


def _stalls(m: SqsMapping | StreamMapping, fn: Function) -> bool:
    """Whether a stream mapping can stall a shard until its records age out (a record always fails)."""
    if not isinstance(m, StreamMapping) or m.maximum_retry_attempts >= 0:
        return False
    errors = fn.errors
    always = errors.poison_record_rate > 0 or errors.invocation_error_rate >= 1
    return always or any((i.invocation_error_rate or 0) >= 1 for i in fn.incidents)


def _retry_floor(m: StreamMapping) -> float:
    retry = m.retry_backoff
    return min(retry.initial, retry.maximum) * (1 - retry.jitter)


def _mean_run_s(fn: Function, records: float) -> float:
    """An invocation's mean busy time with ``records`` records (at least a microsecond)."""
    run = (fn.duration.mean() + fn.per_record * records) * fn.cpu_factor
    return max(min(run, fn.timeout), 1e-6)


# ------------------------------------------------------------------ traffic, without building it
def _profile(traffic: Traffic) -> list[tuple[float, float]]:
    """Breakpoints ``(t, rate)`` of one period (or of the whole run), rate linear between them."""
    points = [(0.0, traffic.rate)]
    current = traffic.rate
    for p in traffic.schedule:
        points += [(p.at, current), (p.at + p.ramp, p.rate)]
        current = p.rate
    points.append((math.inf, current))
    return points


def _integral(points: list[tuple[float, float]], end: float, floor: float = 0.0) -> float:
    """``∫ max(0, r(t) - floor) dt`` over [0, end] for a piecewise-linear r."""
    total = 0.0
    for (t0, r0), (t1, r1) in itertools.pairwise(points):
        if t0 >= end:
            break
        if t1 > end:
            r1 = r0 if math.isinf(t1) else r0 + (r1 - r0) * (end - t0) / (t1 - t0)
            t1 = end
        width = t1 - t0
        if width <= 0:
            continue
        a, b = r0 - floor, r1 - floor
        if a >= 0 and b >= 0:
            total += width * (a + b) / 2
        elif a > 0 or b > 0:  # crosses the floor: only the triangle above it
            high = max(a, b)
            total += width * high / (high - min(a, b)) * high / 2
    return total


def _over_run(traffic: Traffic, duration: float, floor: float) -> float:
    points = _profile(traffic)
    if traffic.period is None:
        return _integral(points, duration, floor)
    full = math.floor(duration / traffic.period)
    rest = duration - full * traffic.period
    return full * _integral(points, traffic.period, floor) + _integral(points, rest, floor)


def arrivals(traffic: Traffic, duration: float) -> float:
    """Expected records sent in [0, duration] (the initial backlog aside)."""
    return _over_run(traffic, duration, 0.0)


def excess(traffic: Traffic, duration: float, capacity: float) -> float:
    """Records arriving above ``capacity`` a second over the run: a bound on the backlog they build."""
    return _over_run(traffic, duration, capacity)


# ------------------------------------------------------------------ formatting
def _sane(x: float) -> float:
    """Overflowed arithmetic (inf - inf, 0 x inf) reads as unbounded, never as NaN (which compares False)."""
    return math.inf if math.isnan(x) else x


def format_bytes(n: float) -> str:
    """``about 310 MB``, ``about 2.4 GB`` (binary multiples, as AWS writes sizes)."""
    if math.isinf(n):
        return "unbounded memory"  # overflowed: more than any machine has
    for unit, scale in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            value = n / scale
            return f"about {value:.3g} {unit}" if value < 1e4 else f"about {value:.2e} {unit}"
    return f"about {n:.0f} B"


def _count(x: float) -> str:
    if math.isinf(x):
        return "unbounded"
    return f"{x:,.0f}" if x < 1e6 else f"{x:.2e}"


def _wall(seconds: float) -> str:
    if math.isinf(seconds):
        return "forever"
    for unit, scale in (("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= scale:
            value = seconds / scale
            return f"{value:.3g} {unit}" if value < 1e4 else f"{value:.2e} {unit}"
    return f"{seconds:.2g} s"


__all__ = [
    "Estimate",
    "check",
    "default_max_memory",
    "estimate",
    "machine_memory",
    "refusal",
]
