"""A run's summary: one flat dict of numbers, keyed exactly as :mod:`esmsim.keys` defines.

Record counts obey the conservation law
``records_in == records_succeeded + records_dlq + records_dropped + records_expired + records_filtered
+ records_in_flight_end``
(checked when the recorder closes). A queue's records count once; a stream's once per mapping
reading it (each consumer processes every record), or once if no mapping reads it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from esmsim import histogram
from esmsim.cost import CostBreakdown, Usage, run_cost
from esmsim.events import RecordState
from esmsim.keys import ALL_SUMMARY_KEYS, LATENCY_PART_KEYS
from esmsim.observe.levels import LevelStats
from esmsim.observe.recorder import Observed
from esmsim.scenario.scenario import Scenario


def level(observed: Observed, name: str) -> LevelStats:
    """A level's statistics (all zero for one the run never wrote: no queue, no poller)."""
    found = observed.levels.get(name)
    if found is not None:
        return found
    nb = len(observed.edges) - 1
    return LevelStats(0.0, 0.0, np.zeros(nb), np.zeros(nb), np.zeros(nb))


def counter_total(observed: Observed, name: str) -> float:
    """A counter's total over the run, summed over its owners."""
    return float(sum(v for (n, _), v in observed.counter_totals.items() if n == name))


def totals_by(observed: Observed, prefix: str) -> dict[str, float]:
    """Named totals written per owner (``prefix:owner``: a mapping's index, a target type ...)."""
    out: dict[str, float] = {}
    for name, value in observed.totals.items():
        head, _, owner = name.partition(":")
        if head == prefix and owner:
            out[owner] = value
    return out


def totals_by_mapping(observed: Observed, prefix: str) -> dict[int, float]:
    """Named totals written per mapping (``prefix:index``)."""
    return {int(k): v for k, v in totals_by(observed, prefix).items() if k.isdigit()}


def _kafka(observed: Observed) -> dict[str, Any]:
    """Kafka mappings: the topic-level offset lag, the pollers, provisioned mode's EPU-hours."""
    lag = level(observed, "offset_lag")
    pollers = level(observed, "kafka_pollers")
    return {
        "offset_lag_max": lag.maximum,
        "offset_lag_mean": max(0.0, lag.mean),
        "kafka_pollers_max": pollers.maximum,
        "kafka_pollers_mean": max(0.0, pollers.mean),
        "kafka_epu_hours": sum(totals_by(observed, "kafka_epu_s").values()) / 3600.0,
    }


def usage(observed: Observed) -> Usage:
    """What the run used, as cost.run_cost needs it."""
    fn = observed.function_totals
    sqs = sum(counter_total(observed, n) for n in ("receive_units", "delete_calls"))
    fifo_queues = totals_by(observed, "fifo_queue")  # their requests are priced as FIFO requests
    fifo = sum(
        v
        for (n, owner), v in observed.counter_totals.items()
        if owner in fifo_queues and n in ("receive_units", "delete_calls")
    )
    return Usage(
        invocations=observed.invocations,
        billed_gb_s=fn["billed_gb_s"],
        billed_init_gb_s=fn["billed_init_gb_s"],
        billed_provisioned_gb_s=fn["billed_provisioned_gb_s"],
        billed_provisioned_init_gb_s=fn["billed_provisioned_init_gb_s"],
        sqs_requests=sqs,
        sqs_send_units=observed.totals.get("sqs_send_units", 0.0),
        sqs_fifo_requests=fifo,
        sqs_fifo_send_units=observed.totals.get("sqs_fifo_send_units", 0.0),
        kinesis_put_units=observed.totals.get("kinesis_put_units", 0.0),
        efo_bytes=totals_by_mapping(observed, "bytes_delivered"),
        async_extra_requests=observed.totals.get("async_extra_requests", 0.0),
        async_deliveries={k: int(v) for k, v in totals_by(observed, "async_deliveries").items()},
        on_failure_deliveries={k: int(v) for k, v in totals_by(observed, "on_failure_deliveries").items()},
        event_poller_s=sum(totals_by(observed, "event_poller_s").values()),
        kafka_epu_s=sum(totals_by(observed, "kafka_epu_s").values()),
        publish_units=totals_by(observed, "publish_units"),
    )


def latency_method(observed: Observed) -> str:
    """How the summary's latency percentiles were computed."""
    if observed.outcomes.steady_exact is not None:
        return "exact: numpy percentiles over every steady-state record"
    return "histogram: 1 % log buckets over every steady-state record, within 0.5 % of exact"


def _latency(observed: Observed) -> dict[str, float]:
    out = observed.outcomes
    keys = ("latency_p50_s", "latency_p90_s", "latency_p99_s")
    if out.steady_count == 0:
        return dict.fromkeys((*keys, "latency_max_s", "latency_mean_s"), math.nan)
    if out.steady_exact is not None:
        values = np.percentile(out.steady_exact, [50, 90, 99])
    else:
        values = histogram.percentiles(out.steady_histogram, [50, 90, 99])
    result = {k: float(v) for k, v in zip(keys, values, strict=True)}
    result["latency_max_s"] = float(out.steady_max)
    result["latency_mean_s"] = out.steady_sum / out.steady_count
    return result


def _latency_parts(observed: Observed) -> dict[str, float]:
    """Where the mean latency went: over the same steady-state records, parts summing to the mean."""
    out = observed.outcomes
    if out.steady_count == 0:
        return dict.fromkeys(LATENCY_PART_KEYS, math.nan)
    # A part is a sum of differences of event times; where those times coincide, float rounding can
    # leave a total like -4e-19 s. Such a part is zero, not negative.
    return {
        key: max(0.0, total / out.steady_count) if total > -1e-9 else total / out.steady_count
        for key, total in zip(LATENCY_PART_KEYS, out.steady_parts.tolist(), strict=True)
    }


def _duration_p99_ms(observed: Observed) -> float:
    if observed.invocations == 0:
        return math.nan
    if observed.durations is not None:
        return float(np.percentile(observed.durations, 99) * 1000)
    return float(histogram.percentiles(observed.duration_histogram, [99])[0] * 1000)


def _async(observed: Observed) -> dict[str, Any]:
    """What the functions' asynchronous event queues and the push sources' deliveries did."""
    totals = observed.totals
    age_sum = counter_total(observed, "AsyncEventAgeSum")
    age_count = counter_total(observed, "AsyncEventAgeCount")
    ages = [v for (name, _), v in observed.maxima.items() if name == "AsyncEventAge"]
    age_max = max((float(np.nanmax(a)) for a in ages if a.size and not np.isnan(a).all()), default=math.nan)
    return {
        "async_events_received": int(totals.get("async_received", 0)),
        "async_retries": int(totals.get("async_retries", 0)),
        "async_event_age_max_s": age_max,
        "async_event_age_mean_s": age_sum / age_count if age_count else math.nan,
        "async_events_dropped": int(totals.get("async_dropped", 0)),
        "async_queued_max": level(observed, "async_queued").maximum,
        "async_dead_letter_errors": int(totals.get("async_dead_letter_errors", 0)),
        "async_destination_delivery_failures": int(totals.get("async_destination_failures", 0)),
        "push_duplicates": int(totals.get("push_duplicates", 0)),
        "push_handoff_retries": int(totals.get("push_handoff_retries", 0)),
    }


def summary(scenario: Scenario, observed: Observed) -> tuple[dict[str, Any], CostBreakdown]:
    """The summary contract, and the cost it was computed from."""
    end, warmup = scenario.duration, scenario.warmup
    by_state = observed.outcomes.by_state.sum(axis=0)
    succeeded = int(by_state[RecordState.SUCCEEDED])
    cost = run_cost(scenario, usage(observed))
    invocations = observed.invocations
    concurrency = level(observed, "concurrency")
    environments = level(observed, "environments")
    backlog = level(observed, "backlog")
    pollers = level(observed, "pollers")
    event_pollers = level(observed, "event_pollers")
    out: dict[str, Any] = {
        "records_in": int(observed.outcomes.arrived.sum()),
        "records_succeeded": succeeded,
        "records_dlq": int(by_state[RecordState.DLQ]),
        "records_dropped": int(by_state[RecordState.DROPPED]),
        "records_expired": int(by_state[RecordState.EXPIRED]),
        "records_filtered": int(by_state[RecordState.FILTERED]),
        "records_in_flight_end": int(by_state[RecordState.WAITING] + by_state[RecordState.IN_FLIGHT]),
        **_latency(observed),
        "invocations": invocations,
        "invocation_errors": observed.errors,
        "throttles": int(observed.function_totals["throttles"].sum()),
        "cold_starts": observed.cold_starts,
        "concurrency_max": concurrency.maximum,
        "concurrency_mean": concurrency.mean,
        "environments_mean": environments.mean,
        "backlog_max": backlog.maximum,
        "iterator_age_max_s": observed.age_max,
        "cost_usd": cost.total_usd,
        "cost_lambda_requests_usd": cost.lambda_requests_usd,
        "cost_lambda_compute_usd": cost.lambda_compute_usd,
        "cost_source_usd": cost.source_usd,
        "cost_per_million_records_usd": cost.per_million(succeeded),
        # ---- beyond the contract
        **_latency_parts(observed),
        "cost_lambda_provisioned_usd": cost.lambda_provisioned_usd,
        "cost_event_pollers_usd": cost.event_pollers_usd,
        "cost_per_month_usd": cost.per_month(end, scenario.pricing),
        "cost_producer_usd": cost.producer_usd,
        "cost_total_usd": cost.total_usd + cost.producer_usd,
        "throughput_per_s": observed.outcomes.steady_done / (end - warmup),
        "backlog_mean": backlog.mean,
        "in_flight_mean": level(observed, "in_flight").mean,
        "in_flight_max": level(observed, "in_flight").maximum,
        "environments_max": environments.maximum,
        "pollers_max": pollers.maximum,
        "pollers_mean": pollers.mean,
        "event_pollers_max": event_pollers.maximum,
        "event_pollers_mean": max(0.0, event_pollers.mean),
        "batch_size_mean": observed.records_invoked / invocations if invocations else math.nan,
        "duration_mean_ms": observed.run_s_sum / invocations * 1000 if invocations else math.nan,
        "duration_p99_ms": _duration_p99_ms(observed),
        "provisioned_invocations": observed.provisioned_invocations,
        "sqs_requests": round(usage(observed).sqs_requests),
        "sqs_empty_receives": int(counter_total(observed, "NumberOfEmptyReceives")),
        "visibility_overruns": int(observed.totals.get("visibility_overruns", 0)),
        "sqs_over_limit_receives": int(observed.totals.get("sqs_over_limit_receives", 0)),
        "fifo_duplicates_dropped": int(observed.totals.get("fifo_duplicates_dropped", 0)),
        "fifo_sends_throttled": int(observed.totals.get("fifo_sends_throttled", 0)),
        "fifo_send_delay_max_s": observed.totals.get("fifo_send_delay_max_s", 0.0),
        "fifo_groups_busy_max": int(observed.totals.get("fifo_groups_busy_max", 0)),
        **_kafka(observed),
        "iterator_age_mean_s": observed.age_sum / observed.age_count if observed.age_count else math.nan,
        "getrecords_calls": int(observed.totals.get("getrecords_calls", 0)),
        "read_throttles": int(observed.totals.get("read_throttles", 0)),
        "write_throttles": int(counter_total(observed, "WriteProvisionedThroughputExceeded")),
        "discarded_batches": int(sum(totals_by_mapping(observed, "discarded_batches").values())),
        # Amazon MQ queues: messages waiting or delivered and not yet acknowledged (docs/model.md §17).
        "mq_queue_size_max": level(observed, "mq_queue_size").maximum,
        "mq_queue_size_mean": max(0.0, level(observed, "mq_queue_size").mean),
        **_async(observed),
        "duration_s": end,
        "warmup_s": warmup,
    }
    # Time-weighted means of whole counts are exact up to rounding: never print -1.6e-16.
    for key in ("backlog_mean", "in_flight_mean", "concurrency_mean", "environments_mean", "pollers_mean"):
        out[key] = max(0.0, out[key])
    assert tuple(out) == ALL_SUMMARY_KEYS, "the summary's keys are defined once, in esmsim.keys"
    return out, cost
