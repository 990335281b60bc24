"""Reliability and security findings: failures that would go unrecorded, and keys that would not serve.

Reliability: failures that would go unrecorded or block a source. Security: a source left unencrypted
beside encrypted ones, and an AWS managed key that cannot serve a queue's senders or readers.

Warnings, not errors: AWS accepts these configurations but advises against them; each names the
AWS page its advice comes from (docs/model.md §12).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from esmsim.errors import Issue
from esmsim.scenario.encryption import aws_managed_kms_key
from esmsim.scenario.mappings import SqsMapping, StreamMapping
from esmsim.scenario.sources import PUSH_TYPES, SqsSource
from esmsim.scenario.system import System

#: Where AWS documents the error handling each finding below recommends.
DOC_SQS_DLQ = (
    "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html"
)
DOC_STREAM_ERRORS = "https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html"
DOC_ASYNC_DESTINATIONS = "https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html"
#: Where AWS advises encryption at rest, by source type: Security Hub's controls SQS.1 and Kinesis.1, and
#: for SNS (whose control SNS.1 left AWS's foundational best practices in 2024) its encryption guide.
DOC_ENCRYPT_AT_REST = {
    "sqs": "https://docs.aws.amazon.com/securityhub/latest/userguide/sqs-controls.html#sqs-1",
    "kinesis": "https://docs.aws.amazon.com/securityhub/latest/userguide/kinesis-controls.html#kinesis-1",
    "sns": "https://docs.aws.amazon.com/sns/latest/dg/sns-server-side-encryption.html",
}
#: AWS services that send to an encrypted queue need a customer managed key (SQS key management).
DOC_SQS_SERVICE_KEYS = (
    "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/"
    "sqs-key-management.html#compatibility-with-aws-services"
)
#: A queue under the AWS managed key cannot invoke a function of another account.
DOC_SQS_LAMBDA_TRIGGER = (
    "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/"
    "sqs-configure-lambda-function-trigger.html"
)


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


def _encrypted_by_choice(source: Any) -> bool:
    """``encryption`` written (in the file, by ``--set`` or by import) and not ``none``.

    AWS's defaults (SSE-SQS on a new queue, the AWS owned key of every DynamoDB table) say nothing about
    what the scenario's owner wants; a written choice does.
    """
    return "encryption" in source.model_fields_set and source.encryption != "none"


#: Reading a queue or a stream of another account needs its resource policy to grant the reader.
DOC_CROSS_ACCOUNT = {
    "sqs": "https://docs.aws.amazon.com/lambda/latest/dg/with-sqs-cross-account-example.html",
    "kinesis": "https://docs.aws.amazon.com/streams/latest/dev/resource-based-policy-examples.html",
}


def cross_account_findings(s: System) -> Iterator[Issue]:
    """Readers in another account where the source's resource policy is not stated (``read_grants``)."""
    for i, m in enumerate(s.mappings):
        source = s.sources.get(m.source)
        function = s.functions.get(m.function)
        if source is None or function is None or source.type not in DOC_CROSS_ACCOUNT:
            continue
        owner, reader = s.account_name(source.account), s.account_name(function.account)
        if owner == reader or getattr(source, "read_grants", None) is not None:
            continue
        kind = "queue policy" if source.type == "sqs" else "stream resource policy"
        yield Issue(
            ("mappings", i),
            f"function {m.function!r} of account {reader!r} reads {m.source!r} of account {owner!r}: it "
            f"needs a {kind} granting the function's role (`esmsim iam` prints it; say it is in place "
            f"with sources.{m.source}.read_grants: [{reader}]) ({DOC_CROSS_ACCOUNT[source.type]})",
            "warning",
        )


def encryption_findings(s: System) -> Iterator[Issue]:
    """Sources left unencrypted beside encrypted ones, and AWS managed keys that cannot serve a reader."""
    chosen = [name for name, source in s.sources.items() if _encrypted_by_choice(source)]
    for name, source in s.sources.items():
        others = [other for other in chosen if other != name]
        if getattr(source, "encryption", None) != "none" or not others:
            continue
        shown = ", ".join(repr(other) for other in others[:3]) + (", ..." if len(others) > 3 else "")
        at = ("sources", name, "encryption") if "encryption" in source.model_fields_set else ("sources", name)
        yield Issue(
            at,
            f"not encrypted at rest while {shown} {'is' if len(others) == 1 else 'are'}: AWS advises "
            f"encryption at rest ({DOC_ENCRYPT_AT_REST[source.type]})",
            "warning",
        )
    for i, t in enumerate(s.triggers):
        queue = s.sources.get(t.queue) if t.queue is not None else None
        pusher = s.sources.get(t.source)
        if isinstance(queue, SqsSource) and pusher is not None and aws_managed_kms_key(queue):
            yield Issue(
                ("triggers", i),
                f"{PUSH_TYPES.get(pusher.type, pusher.type)} cannot send to queue {t.queue!r}: it is "
                f"encrypted with the AWS managed key {queue.kms_key}, whose key policy cannot allow the "
                f"service; AWS: use a customer managed key ({DOC_SQS_SERVICE_KEYS})",
                "warning",
            )
    for i, m in enumerate(s.mappings):
        read = s.sources.get(m.source)
        if not isinstance(read, SqsSource) or m.function not in s.functions or not aws_managed_kms_key(read):
            continue
        # Account names, not accounts: an unknown name is account_rules' error, not a crash here.
        if s.account_name(read.account) != s.account_name(s.functions[m.function].account):
            yield Issue(
                ("mappings", i),
                f"queue {m.source!r} is encrypted with the AWS managed key {read.kms_key}, which serves only "
                "its own account: AWS documents that such a queue cannot invoke a function in another "
                f"account; a customer managed key's policy can grant it ({DOC_SQS_LAMBDA_TRIGGER})",
                "warning",
            )
