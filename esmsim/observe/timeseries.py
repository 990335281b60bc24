"""One row per simulated minute: CloudWatch's metric names first, esmsim's own after.

``timeseries`` adds the run's mappings and sources up; ``mapping_timeseries`` keeps mappings
apart (a stalled mapping told from a healthy one reading the same stream); ``shard_timeseries``
has one row per stream mapping, shard and minute. Lambda metrics are binned by invocation start,
as CloudWatch timestamps them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from esmsim.events import RecordState
from esmsim.observe.outcomes import LATENCY_PARTS
from esmsim.observe.recorder import Observed
from esmsim.observe.summary import level
from esmsim.scenario.scenario import Scenario


def counter_series(observed: Observed, name: str, owner: str | None = None) -> np.ndarray:
    """A counter per minute, summed over its owners (or one owner's)."""
    nb = len(observed.edges) - 1
    total = np.zeros(nb)
    for (n, o), values in observed.counters.items():
        if n == name and (owner is None or o == owner):
            total = total + values
    return total


def _maximum(observed: Observed, name: str) -> np.ndarray:
    nb = len(observed.edges) - 1
    found = [v for (n, _), v in observed.maxima.items() if n == name]
    if not found:
        return np.full(nb, np.nan)
    with np.errstate(invalid="ignore"):
        return np.asarray(np.fmax.reduce(found))


def _per_minute_mean(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(total / count)


def shard_samples(observed: Observed, label: str) -> np.ndarray:
    """Each shard's unprocessed records at the end of every minute, as (minutes, shards)."""
    samples = observed.gauges.get(("shard_backlog", label))
    nb = len(observed.edges) - 1
    if samples is None or samples.size == 0:
        return np.zeros((nb, 0))
    return samples.reshape(nb, -1)


def timeseries(scenario: Scenario, observed: Observed) -> pd.DataFrame:
    """The run's minutes (see the module docstring)."""
    edges = observed.edges
    nb = len(edges) - 1
    series = observed.mapping_series
    invocations = series["Invocations"].sum(axis=0)
    out = observed.outcomes
    finished = out.per_minute.sum(axis=0)  # (states, minutes)
    oldest = np.zeros(nb)
    for (name, _), samples in observed.gauges.items():
        if name == "oldest_age":
            oldest = np.maximum(oldest, samples)
    shard_max = np.zeros(nb)
    destination = np.zeros(nb)
    for i, consumer in enumerate(out.consumers):
        if consumer.kind != "stream":
            continue
        samples = shard_samples(observed, consumer.label)
        if samples.size:
            shard_max = np.maximum(shard_max, samples.max(axis=1))
        if getattr(scenario.mappings[consumer.mapping], "on_failure", None) is not None:
            destination += out.per_minute[i, RecordState.DLQ]
    concurrency = level(observed, "concurrency")
    frame = pd.DataFrame(
        {
            "time_s": edges[:-1],
            "Invocations": invocations,
            "Errors": series["Errors"].sum(axis=0),
            "Throttles": series["Throttles"].sum(axis=0),
            "Duration": _per_minute_mean(series["DurationSum"].sum(axis=0), invocations),
            "ConcurrentExecutions": concurrency.bin_max,
            "IteratorAge": _nanmax_rows(observed.mapping_age_max, nb),
            "NumberOfMessagesSent": counter_series(observed, "NumberOfMessagesSent"),
            "NumberOfMessagesReceived": counter_series(observed, "NumberOfMessagesReceived"),
            "NumberOfMessagesDeleted": counter_series(observed, "NumberOfMessagesDeleted"),
            "NumberOfEmptyReceives": counter_series(observed, "NumberOfEmptyReceives"),
            "ApproximateNumberOfMessagesVisible": level(observed, "visible").bin_mean,
            "ApproximateNumberOfMessagesNotVisible": level(observed, "in_flight").bin_mean,
            "ApproximateAgeOfOldestMessage": oldest,
            "GetRecords.IteratorAgeMilliseconds": _maximum(observed, "GetRecords.IteratorAgeMilliseconds"),
            "ReadProvisionedThroughputExceeded": counter_series(
                observed, "ReadProvisionedThroughputExceeded", ""
            ),
            "WriteProvisionedThroughputExceeded": counter_series(
                observed, "WriteProvisionedThroughputExceeded"
            ),
            "DroppedEventCount": finished[RecordState.DROPPED],
            "OnFailureDestinationDeliveredEventCount": destination,
            "ColdStarts": series["ColdStarts"].sum(axis=0),
            "RecordsSucceeded": finished[RecordState.SUCCEEDED],
            "RecordsDLQ": finished[RecordState.DLQ],
            "RecordsDropped": finished[RecordState.DROPPED],
            "RecordsExpired": finished[RecordState.EXPIRED],
            "RecordsFiltered": finished[RecordState.FILTERED],
            "FilteredOutEventCount": finished[RecordState.FILTERED],
            "ConcurrencyMean": concurrency.bin_mean,
            "Environments": level(observed, "environments").bin_mean,
            "Pollers": level(observed, "pollers").bin_mean,
            "EventPollers": level(observed, "event_pollers").bin_mean,
            "OffsetLag": level(observed, "offset_lag").bin_max,
            "KafkaPollers": level(observed, "kafka_pollers").bin_mean,
            "BacklogMax": level(observed, "backlog").bin_max,
            "StreamBacklog": level(observed, "stream_backlog").bin_mean,
            # Amazon MQ's own names for a queue's size: ActiveMQ QueueSize, RabbitMQ MessageCount.
            "QueueSize": level(observed, "mq_queue_size:activemq").bin_mean,
            "MessageCount": level(observed, "mq_queue_size:rabbitmq").bin_mean,
            "ShardBacklogMax": shard_max,
            "BatchSize": _per_minute_mean(series["RecordsSum"].sum(axis=0), invocations),
            "AsyncEventsReceived": counter_series(observed, "AsyncEventsReceived"),
            "AsyncEventAge": _per_minute_mean(
                counter_series(observed, "AsyncEventAgeSum"), counter_series(observed, "AsyncEventAgeCount")
            ),
            "AsyncEventAgeMax": _maximum(observed, "AsyncEventAge"),
            "AsyncEventsDropped": counter_series(observed, "AsyncEventsDropped"),
            "DeadLetterErrors": counter_series(observed, "DeadLetterErrors"),
            "DestinationDeliveryFailures": counter_series(observed, "DestinationDeliveryFailures"),
            "AsyncQueued": level(observed, "async_queued").bin_mean,
            # Live changes taking effect in the minute (one at the very end of the run never does).
            "LiveChanges": np.histogram([t for t, _ in scenario.stages if t < edges[-1]], bins=edges)[0],
            "LatencyP50": out.minute_p50,
            "LatencyP99": out.minute_p99,
            **{
                f"Latency{part.capitalize()}": _per_minute_mean(out.minute_parts[k], out.minute_done)
                for k, part in enumerate(LATENCY_PARTS)
            },
        }
    )
    frame.index.name = "minute"
    return frame


def _nanmax_rows(values: np.ndarray, nb: int) -> np.ndarray:
    """Column-wise maximum ignoring NaN (NaN where every row is NaN)."""
    if values.size == 0:
        return np.full(nb, np.nan)
    with np.errstate(invalid="ignore"):
        return np.asarray(np.fmax.reduce(values, axis=0))


def mapping_timeseries(scenario: Scenario, observed: Observed) -> pd.DataFrame:
    """One row per mapping and minute: what CloudWatch reports per event source mapping."""
    edges = observed.edges
    nb = len(edges) - 1
    series = observed.mapping_series
    frames = []
    for i, label in enumerate(observed.layout.mappings):
        n = series["Invocations"][i]
        samples = shard_samples(observed, label)
        backlog = samples.max(axis=1) if samples.shape[1] else np.full(nb, np.nan)
        frames.append(
            pd.DataFrame(
                {
                    "minute": np.arange(nb),
                    "time_s": edges[:-1],
                    "mapping": label,
                    "Invocations": n,
                    "Errors": series["Errors"][i],
                    "Throttles": series["Throttles"][i],
                    "Duration": _per_minute_mean(series["DurationSum"][i], n),
                    "ConcurrentExecutions": observed.concurrency_by_mapping[i].bin_max,
                    "IteratorAge": observed.mapping_age_max[i],
                    "BatchSize": _per_minute_mean(series["RecordsSum"][i], n),
                    "ShardBacklogMax": backlog,
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def shard_timeseries(scenario: Scenario, observed: Observed) -> pd.DataFrame:
    """One row per stream mapping, shard and minute: its backlog at the minute's end, its refused calls."""
    edges = observed.edges
    nb = len(edges) - 1
    frames = []
    for consumer in observed.outcomes.consumers:
        if consumer.kind != "stream":
            continue
        samples = shard_samples(observed, consumer.label)
        for shard in range(samples.shape[1]):
            frames.append(
                pd.DataFrame(
                    {
                        "minute": np.arange(nb),
                        "time_s": edges[:-1],
                        "mapping": consumer.label,
                        "shard": shard,
                        "Backlog": samples[:, shard],
                        "ReadProvisionedThroughputExceeded": counter_series(
                            observed, "ReadProvisionedThroughputExceeded", f"{consumer.label}#{shard}"
                        ),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
