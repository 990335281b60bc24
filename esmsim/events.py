"""The vocabulary the model and the observers share.

How invocations end, where they ran, why a request was throttled, and what became of a record.
These are the values written into the recorder's rows and shown (by name) in the public event
tables, so they live apart from both the model that produces them and the observers that read
them: neither side has to import the other to agree on what a number means.
"""

from __future__ import annotations

from enum import IntEnum


class Outcome(IntEnum):
    """How an invocation ended."""

    SUCCESS = 0  # every record processed
    PARTIAL = 1  # the handler reported batch item failures: a successful invocation to Lambda
    ERROR = 2  # the handler threw: a function error, the whole batch fails
    TIMEOUT = 3  # the handler ran past the function timeout: a function error

    @property
    def is_error(self) -> bool:
        """Whether CloudWatch counts it in ``Errors`` (thrown errors and timeouts)."""
        return self >= Outcome.ERROR


class EnvKind(IntEnum):
    """The execution environment an invocation ran in."""

    WARM = 0  # an idle, initialised on-demand environment, reused
    COLD = 1  # a new on-demand environment: Init runs first (a scaling-rate token)
    PROVISIONED = 2  # a provisioned-concurrency environment, initialised in advance
    REINIT = 3  # an on-demand environment reset by a timeout: Init runs again in it
    PROVISIONED_REINIT = 4  # a provisioned environment reset by a timeout: Init runs again

    @property
    def cold_start(self) -> bool:
        """Whether Init runs before the handler (a cold start in CloudWatch's sense)."""
        return self in (EnvKind.COLD, EnvKind.REINIT, EnvKind.PROVISIONED_REINIT)

    @property
    def provisioned(self) -> bool:
        """Whether the environment is provisioned concurrency (billed at the provisioned rate)."""
        return self in (EnvKind.PROVISIONED, EnvKind.PROVISIONED_REINIT)


#: Kinds whose invocation runs Init first, and kinds on provisioned concurrency (as plain ints).
COLD_KINDS = (int(EnvKind.COLD), int(EnvKind.REINIT), int(EnvKind.PROVISIONED_REINIT))
PROVISIONED_KINDS = (int(EnvKind.PROVISIONED), int(EnvKind.PROVISIONED_REINIT))


class ThrottleReason(IntEnum):
    """Why Lambda answered an invoke with a 429, in the order the limits are checked.

    The first three are the reasons AWS's Invoke API returns; ``SCALING_RATE`` is the per-function
    (or, before November 2023, account-wide) limit on how fast new execution environments may be
    added, which Lambda also answers with 429 TooManyRequestsException.
    """

    RESERVED_CONCURRENCY = 1
    ACCOUNT_CONCURRENCY = 2
    INVOCATION_RATE = 3
    SCALING_RATE = 4

    @property
    def aws_name(self) -> str:
        """The reason as AWS names it (``Reason`` of TooManyRequestsException)."""
        return THROTTLE_REASON_NAMES[self]


THROTTLE_REASON_NAMES: dict[ThrottleReason, str] = {
    ThrottleReason.RESERVED_CONCURRENCY: "ReservedFunctionConcurrentInvocationLimitExceeded",
    ThrottleReason.ACCOUNT_CONCURRENCY: "ConcurrentInvocationLimitExceeded",
    ThrottleReason.INVOCATION_RATE: "FunctionInvocationRateLimitExceeded",
    # Not one of the Invoke API's reason codes: AWS documents the limit (1,000 new environments
    # per function per 10 s) but not a reason string for it; this name says what was exceeded.
    ThrottleReason.SCALING_RATE: "ExecutionEnvironmentScalingRateExceeded",
}


class RecordState(IntEnum):
    """What became of a record, as one consumer (a queue, or a mapping reading a stream) sees it.

    A record ends in exactly one of SUCCEEDED, DLQ, DROPPED, EXPIRED, FILTERED, or is still WAITING /
    IN_FLIGHT when the run ends: that is the conservation law every run checks.
    """

    WAITING = 0  # in the source, not yet handed to a poller
    IN_FLIGHT = 1  # received, in a batch being formed or invoked
    SUCCEEDED = 2  # processed (deleted from the queue, or passed by the stream's checkpoint)
    DLQ = 3  # dead-lettered (SQS redrive) or sent to the on-failure destination
    DROPPED = 4  # discarded by a retry or age limit without a destination
    EXPIRED = 5  # lost to the source's retention
    FILTERED = 6  # did not match the mapping's filter: never sent to the function

    @property
    def final(self) -> bool:
        """Whether the record is done with."""
        return self >= RecordState.SUCCEEDED


#: Lambda's synchronous invocation payload limit, which caps every batch an event source mapping
#: sends (docs/model.md §5).
PAYLOAD_LIMIT_BYTES = 6 * 1024 * 1024
