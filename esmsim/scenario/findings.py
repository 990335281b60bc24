"""Reliability findings: where a scenario's failures would go unrecorded or block a source.

Warnings, not errors: AWS accepts these configurations but advises against them; each names the
AWS page its advice comes from (docs/model.md §12).
"""

from __future__ import annotations

from collections.abc import Iterator

from esmsim.errors import Issue
from esmsim.scenario.mappings import SqsMapping, StreamMapping
from esmsim.scenario.sources import SqsSource
from esmsim.scenario.system import System

#: Where AWS documents the error handling each finding below recommends.
DOC_SQS_DLQ = (
    "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html"
)
DOC_STREAM_ERRORS = "https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html"
DOC_ASYNC_DESTINATIONS = "https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html"


def reliability_findings(s: System) -> Iterator[Issue]:
    """Failures that would go unrecorded or block a source (AWS's error-handling advice, as warnings)."""
    queues = {m.source for m in s.mappings if isinstance(m, SqsMapping) and m.enabled}
    for name in queues:
        queue = s.sources.get(name)
        if isinstance(queue, SqsSource) and queue.max_receive_count is None:
            yield Issue(
                ("sources", name),
                "no redrive policy (max_receive_count): a message that keeps failing is retried until the "
                "queue's retention deletes it, unrecorded; AWS recommends a dead-letter queue "
                f"({DOC_SQS_DLQ})",
                "warning",
            )
    for i, m in enumerate(s.mappings):
        if not isinstance(m, StreamMapping) or m.on_failure is not None:
            continue
        if m.maximum_retry_attempts == -1 and m.maximum_record_age == -1:
            yield Issue(
                ("mappings", i),
                "retries a failing batch until its records expire: one poison record blocks its shard for "
                "the stream's whole retention; AWS recommends maximum_retry_attempts or maximum_record_age, "
                f"bisect_batch_on_function_error and an on_failure destination ({DOC_STREAM_ERRORS})",
                "warning",
            )
        else:
            yield Issue(
                ("mappings", i),
                "no on_failure destination: batches discarded after their retries or age are dropped "
                f"without a record (AWS: configure an on-failure destination, {DOC_STREAM_ERRORS})",
                "warning",
            )
    invoked = dict.fromkeys(
        t.function for t in s.triggers if t.function is not None and t.function in s.functions
    )
    for name in invoked:
        config = s.functions[str(name)].async_
        if config.on_failure is None and config.dead_letter_queue is None:
            yield Issue(
                ("functions", str(name), "async"),
                "no on_failure destination or dead-letter queue: asynchronous events that run out of retries "
                f"or age are dropped without a record (AWS: {DOC_ASYNC_DESTINATIONS})",
                "warning",
            )
