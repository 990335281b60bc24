"""Names of the summary metrics a run reports (kept apart so validation needs no simulator import)."""

from __future__ import annotations

#: The summary keys every run reports (README.md's summary table).
SUMMARY_KEYS = (
    "records_in",
    "records_succeeded",
    "records_dlq",
    "records_dropped",
    "records_expired",
    "records_filtered",
    "records_in_flight_end",
    "latency_p50_s",
    "latency_p90_s",
    "latency_p99_s",
    "latency_max_s",
    "latency_mean_s",
    "invocations",
    "invocation_errors",
    "throttles",
    "cold_starts",
    "concurrency_max",
    "concurrency_mean",
    "environments_mean",
    "backlog_max",
    "iterator_age_max_s",
    "cost_usd",
    "cost_lambda_requests_usd",
    "cost_lambda_compute_usd",
    "cost_source_usd",
    "cost_per_million_records_usd",
)

#: Where the mean latency went, in the order of the latency's parts (outcomes.LATENCY_PARTS): they sum
#: to ``latency_mean_s``.
LATENCY_PART_KEYS = (
    "latency_mean_queued_s",
    "latency_mean_retry_s",
    "latency_mean_batching_s",
    "latency_mean_throttled_s",
    "latency_mean_init_s",
    "latency_mean_handler_s",
)

#: Further keys every summary has, after the contract's.
EXTRA_SUMMARY_KEYS = (
    *LATENCY_PART_KEYS,
    "cost_lambda_provisioned_usd",
    "cost_event_pollers_usd",
    "cost_per_month_usd",
    "cost_producer_usd",
    "cost_total_usd",
    "throughput_per_s",
    "backlog_mean",
    "in_flight_mean",
    "in_flight_max",
    "environments_max",
    "pollers_max",
    "pollers_mean",
    "event_pollers_max",
    "event_pollers_mean",
    "batch_size_mean",
    "duration_mean_ms",
    "duration_p99_ms",
    "provisioned_invocations",
    "sqs_requests",
    "sqs_empty_receives",
    "visibility_overruns",
    "sqs_over_limit_receives",
    "fifo_duplicates_dropped",
    "fifo_sends_throttled",
    "fifo_send_delay_max_s",
    "fifo_groups_busy_max",
    "iterator_age_mean_s",
    "getrecords_calls",
    "read_throttles",
    "write_throttles",
    "discarded_batches",
    "async_events_received",
    "async_retries",
    "async_event_age_max_s",
    "async_event_age_mean_s",
    "async_events_dropped",
    "async_queued_max",
    "async_dead_letter_errors",
    "async_destination_delivery_failures",
    "push_duplicates",
    "push_handoff_retries",
    "duration_s",
    "warmup_s",
)

ALL_SUMMARY_KEYS = SUMMARY_KEYS + EXTRA_SUMMARY_KEYS
