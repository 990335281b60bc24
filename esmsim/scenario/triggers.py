"""Schema of triggers: a push source (S3, SNS, EventBridge) delivering to a function or to a queue.

Push sources are not event source mappings: the producing service invokes Lambda asynchronously, and
the trigger lives in that service (a bucket notification, a topic subscription, a rule target).
docs/model.md §11 describes what follows.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from esmsim.scenario.base import Frozen


class Trigger(Frozen):
    """One delivery path: ``source`` pushes to ``function`` (asynchronously) or into ``queue``."""

    source: str = Field(description="Name of an S3, SNS or EventBridge source under `sources`.")
    function: str | None = Field(
        None, description="A function invoked asynchronously with each event (through its event queue)."
    )
    queue: str | None = Field(
        None,
        description="An SQS queue under `sources` the events go into (an SNS subscription, an S3 "
        "notification or an EventBridge target); a mapping then reads it.",
    )

    @model_validator(mode="after")
    def _one_target(self) -> Trigger:
        if (self.function is None) == (self.queue is None):
            raise ValueError("give exactly one of function (an asynchronous invoke) or queue (into SQS)")
        return self

    @property
    def target(self) -> str:
        """The function's or the queue's name."""
        return self.function if self.function is not None else str(self.queue)
