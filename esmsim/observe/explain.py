"""What limited a run: for each mapping and trigger, the binding limit minute by minute, and advice.

Read from a finished run's observations only (docs/model.md §7). A minute is limited when work
waited longer than the mapping's normal cycle (a queue's oldest message, a stream's IteratorAge, an
asynchronous event's age); the limit is then the first of these that holds in that minute:

1. throttles: the most frequent reason (reserved concurrency, account concurrency, the invoke-rate
   quota, the function scaling rate);
2. a stream's read throttles (read throughput);
3. the mapping's concurrency at its cap: ``maximum_concurrency`` (SQS), the message groups (SQS
   FIFO), the event pollers' invokes (SQS provisioned mode), shards x parallelization factor (streams);
4. function errors: the SQS error back-off, a FIFO message group held by a failing message, or a
   stream shard blocked by retries;
5. otherwise the SQS poller fleet (its ceiling, or still growing), the event pollers still scaling
   (provisioned mode), the order within message groups (FIFO: one batch per group at a time), or
   for a stream a hot key's lane (its records are never processed in parallel);

and "none (keeps up)" when nothing waited. A disabled mapping is "disabled" throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from esmsim.events import ThrottleReason
from esmsim.observe.recorder import Observed
from esmsim.scenario.filter_rules import match_share
from esmsim.scenario.mappings import KafkaMapping, MqMapping, SqsMapping, StreamMapping
from esmsim.scenario.scenario import Scenario
from esmsim.scenario.sources import MQ_ENGINES

NONE = "none (keeps up)"
DISABLED = "disabled mapping"
RESERVED = "reserved concurrency"
ACCOUNT = "account concurrency"
RATE = "invoke-rate quota"
SCALING = "function scaling rate"
MAX_CONCURRENCY = "maximum_concurrency"
POLLERS = "poller ceiling or scaling rate"
BACKOFF = "error back-off"
LANES = "shards x parallelization factor"
READS = "read throughput"
BLOCKED = "a blocked shard (retrying a failing batch)"
GROUPS = "message groups (one batch per group at a time)"
HOT_KEY = "a hot key's lane (one batch at a time per key)"
PARTITIONS = "partitions (one batch per partition)"
KAFKA_POLLERS = "Kafka pollers (5 invokes each, scaled on OffsetLag)"
HOT_PARTITION = "a hot partition (one batch at a time)"
GROUP_BLOCKED = "a blocked message group (retrying a failing message)"
EVENT_POLLERS = "event pollers (provisioned mode)"
CONSUMERS = "Amazon MQ consumers (5 ActiveMQ, 1 RabbitMQ by default)"
MQ_RETRY = "a consumer redelivering a failing batch"
#: Throttle reasons as limits.
BY_REASON = {
    ThrottleReason.RESERVED_CONCURRENCY: RESERVED,
    ThrottleReason.ACCOUNT_CONCURRENCY: ACCOUNT,
    ThrottleReason.INVOCATION_RATE: RATE,
    ThrottleReason.SCALING_RATE: SCALING,
}
#: Slack on top of a mapping's normal cycle before waiting work counts as a limit.
SLACK_S = 1.0


@dataclass(frozen=True)
class Limits:
    """One mapping's or trigger's binding limits over a run."""

    name: str
    shares: dict[str, float]  # limit -> share of the run's minutes it bound
    advice: str

    def as_dict(self) -> dict[str, Any]:
        """As ``summary.json`` holds it."""
        return {"binding": self.shares, "advice": self.advice}


def explain(scenario: Scenario, observed: Observed) -> list[Limits]:
    """The binding limits of every mapping and invoking trigger (observed.layout.mappings order)."""
    found = []
    nm = len(scenario.mappings)
    for i, label in enumerate(observed.layout.mappings):
        minutes = _minutes(scenario, observed, i) if i < nm else _trigger_minutes(scenario, observed, i)
        values, counts = np.unique(np.asarray(minutes, dtype=object), return_counts=True)
        total = max(1, len(minutes))
        ranked = sorted(zip(values, counts, strict=True), key=lambda pair: -pair[1])
        shares = {str(limit): round(float(count) / total, 4) for limit, count in ranked}
        found.append(Limits(label, shares, _advice(scenario, i, shares)))
    return found


def _minutes(scenario: Scenario, observed: Observed, i: int) -> list[str]:
    """The limit in each minute of mapping ``i``."""
    m = scenario.mappings[i]
    nb = len(observed.edges) - 1
    # The mapping as it stood in each minute (live changes may enable, disable or cap it).
    middles = (observed.edges[:-1] + observed.edges[1:]) / 2
    systems = [_in_effect(scenario, float(t)) for t in middles]
    specs = [system.mappings[i] for system in systems]
    reasons = observed.mapping_throttle_reasons[i]
    errors = observed.mapping_series["Errors"][i]
    busiest = observed.concurrency_by_mapping[i].bin_max
    if isinstance(m, SqsMapping):
        oldest = observed.gauges.get(("oldest_age", m.source), np.zeros(nb))
        waited = oldest > m.batching_window + m.polling.wait_time + SLACK_S
    elif isinstance(m, MqMapping):
        oldest = observed.gauges.get(("mq_oldest_age", m.source), np.zeros(nb))
        waited = oldest > m.batching_window + SLACK_S
    else:
        source = scenario.sources[m.source]
        ages = observed.mapping_age_max[i] / 1000.0  # IteratorAge, ms
        normal = m.batching_window + getattr(source, "idle_poll_interval", 1.0) + SLACK_S
        waited = np.nan_to_num(ages, nan=0.0) > normal
    read_throttles = _read_throttles(observed, i, nb) if isinstance(m, StreamMapping) else np.zeros(nb)
    fifo = bool(getattr(scenario.sources[m.source], "fifo", False))
    # A Kafka mapping's pollers (the most in each minute) run at most invokes_per_poller batches each.
    kafka_pollers = observed.levels[f"kafka_pollers:{i}"].bin_max if isinstance(m, KafkaMapping) else None
    out = []
    for b in range(nb):
        spec = specs[b]
        cap: float | None
        if isinstance(spec, SqsMapping):
            cap, capped = _sqs_cap(spec, systems[b].sources[m.source].traffic)
        elif isinstance(spec, MqMapping):
            engine = getattr(systems[b].sources[m.source], "engine", "activemq")
            cap, capped = spec.consumers or MQ_ENGINES[engine], CONSUMERS
        elif isinstance(spec, KafkaMapping) and kafka_pollers is not None:
            partitions = getattr(systems[b].sources[m.source], "partitions", 1)
            by_pollers = kafka_pollers[b] * spec.kafka_scaling.invokes_per_poller
            cap, capped = (
                (partitions, PARTITIONS) if partitions <= by_pollers else (by_pollers, KAFKA_POLLERS)
            )
        else:
            cap = getattr(systems[b].sources[m.source], "shards", 1) * spec.parallelization_factor
            capped = LANES
        if not spec.enabled:
            out.append(DISABLED)
        elif not waited[b]:
            out.append(NONE)
        elif reasons[:, b].sum():
            out.append(BY_REASON[ThrottleReason(int(np.argmax(reasons[:, b])))])
        elif read_throttles[b]:
            out.append(READS)
        elif cap is not None and busiest[b] >= cap:
            out.append(capped)
        elif errors[b] and isinstance(spec, MqMapping):
            out.append(MQ_RETRY)
        elif errors[b]:
            out.append((GROUP_BLOCKED if fifo else BACKOFF) if isinstance(m, SqsMapping) else BLOCKED)
        elif isinstance(spec, SqsMapping):
            # Below every cap with work waiting: a FIFO queue is held by its groups' order (a hot
            # group runs one batch at a time), provisioned mode by its pollers' scaling.
            out.append(GROUPS if fifo else EVENT_POLLERS if spec.provisioned_pollers else POLLERS)
        elif isinstance(spec, MqMapping):  # below its consumers: messages waited for a batching window
            out.append(NONE)
        elif isinstance(spec, KafkaMapping):  # below every cap: one partition's batches fall behind
            out.append(HOT_PARTITION)
        else:
            # Records waited below the mapping's cap: a hot shard (factor 1: its one lane is the
            # shard) or, with more lanes, the lane of a busy key (its records are never processed
            # in parallel) is behind while the other lanes keep up.
            out.append(HOT_KEY if spec.parallelization_factor > 1 else LANES)
    return out


def _sqs_cap(spec: SqsMapping, traffic: object) -> tuple[float | None, str]:
    """The concurrency an SQS mapping cannot pass, and which limit sets it (the smallest).

    ``maximum_concurrency`` (standard mode), the event pollers' invokes (provisioned mode) and a
    FIFO queue's message groups (one batch per group at a time).
    """
    caps: list[tuple[float, str]] = []
    if spec.provisioned_pollers is not None:
        p = spec.provisioned_pollers
        caps.append((p.maximum * p.invokes_per_poller, EVENT_POLLERS))
    elif spec.maximum_concurrency is not None:
        caps.append((spec.maximum_concurrency, MAX_CONCURRENCY))
    groups = getattr(traffic, "message_groups", None)
    if groups is not None:
        caps.append((groups, GROUPS))
    return min(caps) if caps else (None, MAX_CONCURRENCY)


def _in_effect(scenario: Scenario, t: float) -> Scenario:
    """The system at time ``t``: the scenario with the live changes in effect by then."""
    found = scenario
    for effective_at, stage in scenario.stages:
        if effective_at <= t:
            found = stage
    return found


def _trigger_minutes(scenario: Scenario, observed: Observed, i: int) -> list[str]:
    """The limit in each minute of an invoking trigger: throttles while events waited."""
    nb = len(observed.edges) - 1
    function = observed.layout.functions[observed.layout.mapping_function[i]]
    ages = observed.maxima.get(("AsyncEventAge", function), np.full(nb, np.nan))
    waited = np.nan_to_num(ages, nan=0.0) > SLACK_S
    reasons = observed.mapping_throttle_reasons[i]
    return [
        BY_REASON[ThrottleReason(int(np.argmax(reasons[:, b])))]
        if waited[b] and reasons[:, b].sum()
        else NONE
        for b in range(nb)
    ]


def _read_throttles(observed: Observed, i: int, nb: int) -> np.ndarray:
    label = observed.layout.mappings[i]
    total = np.zeros(nb)
    for (name, owner), values in observed.counters.items():
        if name == "ReadProvisionedThroughputExceeded" and owner.startswith(f"{label}#"):
            total = total + values
    return total


def _advice(scenario: Scenario, i: int, shares: dict[str, float]) -> str:
    """One line naming the knob to turn for the limit that bound most."""
    binding = next((limit for limit in shares if limit != NONE), None)
    if binding is None:
        return "keeps up: nothing limited it"
    nm = len(scenario.mappings)
    if i < nm:
        m = scenario.mappings[i]
        where, function = f"mappings[{i}]", m.function
    else:
        trigger = [t for t in scenario.triggers if t.function is not None][i - nm]
        m, where, function = None, f"the trigger from {trigger.source}", str(trigger.function)
    fn = scenario.functions[function]
    share = f"{shares[binding]:.0%} of minutes"
    lines = {
        RESERVED: f"raise functions.{function}.reserved_concurrency (now {fn.reserved_concurrency})"
        + (f", or cap {where}.maximum_concurrency below it" if isinstance(m, SqsMapping) else ""),
        ACCOUNT: f"raise the account's concurrency_limit, or reserve concurrency for {function}",
        RATE: "the account's invoke-rate quota (10 x its concurrency limit a second) binds: larger batches "
        "or a higher concurrency limit",
        SCALING: f"bursts outpace new environments (1,000 per 10 s): provisioned concurrency for {function}",
        MAX_CONCURRENCY: f"raise {where}.maximum_concurrency (now {getattr(m, 'maximum_concurrency', None)})",
        HOT_KEY: f"records of one partition key are processed one batch at a time, whatever "
        f"{where}.parallelization_factor: a larger batch_size (now {getattr(m, 'batch_size', None)}) or a "
        "faster handler raises one lane's throughput; spreading the key (a suffix) splits it",
        PARTITIONS: f"{where} runs one batch per partition: more partitions on the topic, larger "
        "batches or a faster handler",
        KAFKA_POLLERS: f"{where}'s pollers are all busy: provisioned_pollers with a minimum that covers "
        "the peak (on demand, pollers follow OffsetLag a minute or more late)",
        HOT_PARTITION: f"one partition of {where} receives more than one batch at a time can process: "
        "a larger batch_size, a faster handler, or keys spread over more partitions",
        GROUPS: f"{where} runs one batch per message group at a time: more message groups (or a less "
        "skewed group key), or shorter invocations",
        GROUP_BLOCKED: f"a failing message holds its group until it succeeds or is dead-lettered: "
        f"report_batch_item_failures and a lower max_receive_count on {m.source if m else 'the queue'}",
        EVENT_POLLERS: f"raise {where}.provisioned_pollers (minimum pollers start at once; maximum "
        "x invokes_per_poller caps concurrency)",
        POLLERS: f"{where}'s poller fleet is at its ceiling or still growing: larger batches or a batching "
        "window take more per poller (poller_scaling)",
        BACKOFF: f"function errors shrink {where}'s poller fleet (error_backoff): "
        "report_batch_item_failures, or fewer errors",
        LANES: f"raise {where}.parallelization_factor (now {getattr(m, 'parallelization_factor', None)}) "
        "or add shards",
        READS: f"reads of {where}'s stream are throttled: enhanced_fan_out, or fewer consumers",
        BLOCKED: f"a failing batch blocks its shard: {where}.maximum_retry_attempts, "
        "bisect_batch_on_function_error and an on_failure destination",
        DISABLED: f"{where} is disabled (enabled: false)",
        CONSUMERS: f"{where}'s consumers all run (AWS raises the limit per mapping on request: "
        f"{where}.consumers); larger batches or shorter invocations carry more per consumer",
        MQ_RETRY: f"a consumer of {where} redelivers a failing batch whole: fewer errors, or a lower "
        "max_redeliveries on the broker queue",
    }
    return f"{binding} ({share}): {lines[binding]}" + _filter_note(scenario, m)


def _filter_note(scenario: Scenario, m: object) -> str:
    """What a mapping's filter lets through (the limit binds on those records only; docs/model.md §15)."""
    spec = getattr(m, "filter", None)
    if spec is None:
        return ""
    traffic = getattr(scenario.sources.get(getattr(m, "source", "")), "traffic", None)
    attributes = {} if traffic is None else traffic.attributes
    share = match_share(spec, attributes)
    return f" (its filter passes about {share:.0%} of records: the limit applies to those)"
