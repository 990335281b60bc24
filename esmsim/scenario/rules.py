"""AWS's create-time rules (errors) and recommendations (warnings) that span several keys.

Single-key ranges live in the schema; this module holds the rules that need the whole scenario:
references between mappings, sources and functions, AWS's rejections at create time and AWS's
recommendations (docs/model.md lists them with their sources). Each rule is a small pure function
of the scenario.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from esmsim.dists import (
    ConstantDuration,
    EmpiricalDuration,
    ExponentialDuration,
    LognormalDuration,
    LognormalSize,
    UniformDuration,
)
from esmsim.errors import Issue, did_you_mean
from esmsim.scenario.account_rules import account_rules, concurrency_rules
from esmsim.scenario.filter_rules import filter_rules
from esmsim.scenario.findings import cross_account_findings, encryption_findings, reliability_findings
from esmsim.scenario.functions import Function
from esmsim.scenario.mappings import KafkaMapping, MqMapping, SqsMapping, StreamMapping
from esmsim.scenario.sources import (
    DYNAMODB_RETENTION_S,
    PUSH_TYPES,
    SNS_MAX_MESSAGE_BYTES,
    DynamoDBSource,
    KinesisSource,
    MqSource,
    SnsSource,
    SqsSource,
    Traffic,
)
from esmsim.scenario.system import System

__all__ = ["RULES", "check", "did_you_mean"]

#: Kinesis retention beyond this is long-term retention, billed per GB-month (not modelled).
LONG_TERM_RETENTION_S = 7 * 86400.0
#: Lambda's on-demand init phase limit (docs/model.md §5).
INIT_LIMIT_S = 10.0
#: The shortest step a loop of the model may take. Below it a clock near the end of a long run
#: (float seconds) may not advance at all, and a loop that repeats without advancing never ends.
MIN_STEP_S = 1e-6


#: ARN prefixes of the push services, for a mapping that names one instead of a source.
_PUSH_ARNS = {"arn:aws:s3:": "s3", "arn:aws:sns:": "sns", "arn:aws:events:": "eventbridge"}


def _not_a_mapping(name: str, kind: str, function: str) -> str:
    """Why a push source cannot be a mapping's source, and what to write instead."""
    service = {"s3": "S3", "sns": "SNS", "eventbridge": "EventBridge"}[kind]
    return (
        f"{name!r} is {PUSH_TYPES[kind]}: {service} invokes Lambda asynchronously through a trigger, not an "
        "event source mapping, and AWS rejects CreateEventSourceMapping for it; write it under triggers: "
        f"- {{source: {name}, function: {function}}}"
    )


def _references(s: System) -> Iterator[Issue]:
    for i, m in enumerate(s.mappings):
        source = s.sources.get(m.source)
        arn = next((kind for prefix, kind in _PUSH_ARNS.items() if m.source.startswith(prefix)), None)
        if source is not None and source.type in PUSH_TYPES:
            yield Issue(("mappings", i, "source"), _not_a_mapping(m.source, source.type, m.function))
        elif source is None and arn is not None:
            yield Issue(("mappings", i, "source"), _not_a_mapping(m.source, arn, m.function))
        elif m.source not in s.sources:
            yield Issue(
                ("mappings", i, "source"),
                f"unknown source {m.source!r}" + did_you_mean(m.source, list(s.sources)),
            )
        if m.function not in s.functions:
            yield Issue(
                ("mappings", i, "function"),
                f"unknown function {m.function!r}" + did_you_mean(m.function, list(s.functions)),
            )


def _trigger_rules(s: System) -> Iterator[Issue]:
    """Triggers name a push source and a function, or a queue it feeds; each path once."""
    seen: dict[tuple[str, str, str], int] = {}
    fed: dict[str, int] = {}
    for i, t in enumerate(s.triggers):
        source = s.sources.get(t.source)
        if source is None:
            yield Issue(
                ("triggers", i, "source"),
                f"unknown source {t.source!r}" + did_you_mean(t.source, list(s.sources)),
            )
        elif source.type not in PUSH_TYPES:
            yield Issue(
                ("triggers", i, "source"),
                f"{t.source!r} is a {source.type} source, read by an event source mapping: write it under "
                f"mappings, not triggers (triggers are for {', '.join(PUSH_TYPES)})",
            )
        if t.function is not None and t.function not in s.functions:
            yield Issue(
                ("triggers", i, "function"),
                f"unknown function {t.function!r}" + did_you_mean(t.function, list(s.functions)),
            )
        if t.queue is not None:
            queue = s.sources.get(t.queue)
            if queue is None:
                yield Issue(
                    ("triggers", i, "queue"),
                    f"unknown queue {t.queue!r}" + did_you_mean(t.queue, list(s.sources)),
                )
            elif not isinstance(queue, SqsSource):
                yield Issue(("triggers", i, "queue"), f"{t.queue!r} is not an SQS queue (type: {queue.type})")
            else:
                if t.queue in fed:
                    yield Issue(
                        ("triggers", i, "queue"),
                        f"queue {t.queue!r} is already fed by triggers[{fed[t.queue]}]; esmsim models one "
                        "push source per queue",
                    )
                fed.setdefault(t.queue, i)
                if _has_traffic(queue.traffic):
                    yield Issue(
                        ("sources", t.queue, "traffic"),
                        f"queue {t.queue!r} is fed by triggers[{i}] ({t.source}); esmsim does not mix it "
                        "with traffic of its own: remove the traffic key",
                    )
        key = (t.source, "queue" if t.queue is not None else "function", t.target)
        if key in seen:
            yield Issue(
                ("triggers", i),
                f"{t.source!r} already delivers to {t.target!r} (triggers[{seen[key]}]); a subscription or "
                "notification exists once",
            )
        seen.setdefault(key, i)
    for name, source in s.sources.items():
        if isinstance(source, SnsSource):
            largest = "SNS's largest message"
            yield from _size_limit(name, source.traffic, SNS_MAX_MESSAGE_BYTES, largest, largest)


def _size_limit(name: str, traffic: Traffic, limit: float, exceeds: str, above: str) -> Iterator[Issue]:
    """Record sizes past a source's message size limit: an error if always, a warning for a long tail."""
    size = traffic.record_size
    bound = size.upper_bound()
    if math.isfinite(bound) and bound > limit:
        yield Issue(
            ("sources", name, "traffic", "record_size"),
            f"records of up to {bound:g} bytes exceed {exceeds} ({limit:g} bytes)",
        )
    elif not math.isfinite(bound) and _tail_above(size, limit):
        yield Issue(
            ("sources", name, "traffic", "record_size"),
            f"over 0.1 % of sizes fall above {above} ({limit:g} bytes) and are cut to it",
            "warning",
        )


def _has_traffic(t: Traffic) -> bool:
    return t.rate > 0 or any(p.rate > 0 for p in t.schedule) or t.initial_backlog > 0


def _duplicate_mappings(s: System) -> Iterator[Issue]:
    seen: dict[tuple[str, str], int] = {}
    for i, m in enumerate(s.mappings):
        key = (m.source, m.function)
        if key in seen:
            yield Issue(
                ("mappings", i),
                f"a mapping from {m.source!r} to {m.function!r} already exists (mappings[{seen[key]}]); "
                "AWS rejects a second one with ResourceConflictException",
            )
        seen.setdefault(key, i)


def _sqs_mapping_rules(s: System) -> Iterator[Issue]:
    for i, m in enumerate(s.mappings):
        if m.source not in s.sources or m.function not in s.functions:
            continue
        queue, fn = s.sources[m.source], s.functions[m.function]
        if not isinstance(m, SqsMapping) or not isinstance(queue, SqsSource):
            continue
        if queue.fifo:  # AWS: FIFO queues take batch sizes 1-10 and no batching window
            if m.batch_size > 10:
                yield Issue(
                    ("mappings", i, "batch_size"),
                    f"{m.batch_size} is above 10, the most a mapping of FIFO queue {m.source!r} takes "
                    "(allowed: 1-10)",
                )
            if m.batching_window > 0:
                yield Issue(
                    ("mappings", i, "batching_window"),
                    f"{m.batching_window:g} s: a mapping of FIFO queue {m.source!r} has no batching window "
                    "(allowed: 0)",
                )
        elif m.batch_size > 10 and m.batching_window < 1:
            yield Issue(
                ("mappings", i, "batch_size"),
                f"{m.batch_size} needs batching_window >= 1s: AWS rejects SQS batch sizes above 10 with a "
                "window of 0 (Maximum batch window in seconds must be greater than 0 if maximum batch size "
                "is greater than 10)",
            )
        if fn.timeout > queue.visibility_timeout:
            yield Issue(
                ("mappings", i),
                f"function {m.function!r} timeout {fn.timeout:g} s exceeds the visibility timeout of queue "
                f"{m.source!r} ({queue.visibility_timeout:g} s): AWS rejects this mapping",
            )
        elif queue.visibility_timeout < 6 * fn.timeout + m.batching_window:
            yield Issue(
                ("sources", m.source, "visibility_timeout"),
                f"{queue.visibility_timeout:g} s is under AWS's recommended 6 x function timeout + batching "
                f"window ({6 * fn.timeout + m.batching_window:g} s for mappings[{i}]); throttled or slow "
                "batches may be retried or dead-lettered early",
                "warning",
            )
        reserved = fn.reserved_concurrency
        if reserved is not None and m.maximum_concurrency is not None and m.maximum_concurrency > reserved:
            yield Issue(
                ("mappings", i, "maximum_concurrency"),
                f"{m.maximum_concurrency} is above the reserved concurrency of function {m.function!r} "
                f"({reserved}); AWS advises against it: the mapping will be throttled",
                "warning",
            )


def _shared_caps(s: System) -> Iterator[Issue]:
    """AWS: the maximum concurrency of all SQS mappings of a function should not exceed its reservation."""
    for name, fn in s.functions.items():
        capped = [
            (i, m.maximum_concurrency)
            for i, m in enumerate(s.mappings)
            if isinstance(m, SqsMapping) and m.function == name and m.maximum_concurrency
        ]
        if fn.reserved_concurrency is None or len(capped) < 2:
            continue
        total = sum(cap for _, cap in capped)
        if total > fn.reserved_concurrency:
            yield Issue(
                ("mappings", capped[-1][0], "maximum_concurrency"),
                f"the maximum concurrency of the mappings to {name!r} adds up to {total}, above its reserved "
                f"concurrency ({fn.reserved_concurrency}); AWS advises against it: they will be throttled",
                "warning",
            )


def _queue_rules(s: System) -> Iterator[Issue]:
    """AWS's rules and recommendations for SQS queues."""
    for name, queue in s.sources.items():
        if not isinstance(queue, SqsSource):
            continue
        if queue.max_receive_count is not None and queue.max_receive_count < 5:
            yield Issue(
                ("sources", name, "max_receive_count"),
                f"{queue.max_receive_count} is under AWS's recommended 5: throttles and transient errors can "
                "dead-letter healthy messages",
                "warning",
            )
        yield from _size_limit(
            name,
            queue.traffic,
            queue.max_message_size,
            "the queue's maximum message size",
            "max_message_size",
        )
        if queue.fifo:
            yield from _fifo_send_quota(name, queue)


def _fifo_send_quota(name: str, queue: SqsSource) -> Iterator[Issue]:
    """FIFO send quotas (docs/model.md §2): 300 a second, or per group in high throughput mode."""
    t = queue.traffic
    peak = max([t.rate, *(p.rate for p in t.schedule)])
    if not queue.high_throughput and peak > 300:
        yield Issue(
            ("sources", name, "traffic", "rate"),
            f"{peak:g}/s is above a FIFO queue's 300 sends a second: sends are throttled and retried "
            "(delayed, fifo_send_delay_max_s); high_throughput: true raises the quota",
            "warning",
        )
    elif queue.high_throughput:
        groups = t.message_groups or 1
        weights = [k**-t.group_skew for k in range(1, groups + 1)]
        hottest = peak * weights[0] / sum(weights)
        if hottest > 300:
            yield Issue(
                ("sources", name, "traffic", "message_groups"),
                f"the hottest group gets about {hottest:g} sends a second, above the 300 a message group "
                "takes in high throughput mode (esmsim does not delay them); use more groups",
                "warning",
            )


def _source_rules(s: System) -> Iterator[Issue]:
    """Every source: it has traffic and a mapping reading it (a push source: a trigger)."""
    mapped = {m.source for m in s.mappings}
    fed = {t.queue for t in s.triggers if t.queue is not None}
    pushed = {t.source for t in s.triggers}
    for name, source in s.sources.items():
        if name not in fed and not _has_traffic(source.traffic):
            yield Issue(
                ("sources", name, "traffic"),
                "no traffic: rate is 0, no schedule and no initial backlog",
                "warning",
            )
        if source.type in PUSH_TYPES:
            if name not in pushed:
                yield Issue(
                    ("sources", name), "no trigger delivers this source's events: they go nowhere", "warning"
                )
        elif name not in mapped:
            yield Issue(
                ("sources", name), "no mapping reads this source: its records only accumulate", "warning"
            )
        if isinstance(source, KinesisSource) and source.retention > LONG_TERM_RETENTION_S:
            yield Issue(
                ("sources", name, "retention"),
                "retention beyond 7 days is billed per GB-month stored, which esmsim does not count: "
                "cost_source_usd is understated",
                "warning",
            )


def _unused_functions(s: System) -> Iterator[Issue]:
    invoked = {m.function for m in s.mappings} | {t.function for t in s.triggers}
    for name in s.functions:
        if name not in invoked:
            yield Issue(
                ("functions", name), "no mapping or trigger invokes this function: it never runs", "warning"
            )


def _stream_rules(s: System) -> Iterator[Issue]:
    """AWS's rules for Kinesis and DynamoDB stream mappings."""
    readers: dict[str, list[int]] = {}
    for i, m in enumerate(s.mappings):
        source = s.sources.get(m.source)
        if not isinstance(m, StreamMapping) or source is None or isinstance(source, SqsSource):
            continue
        readers.setdefault(m.source, []).append(i)
        ddb = isinstance(source, DynamoDBSource)
        if m.starting_position == "AT_TIMESTAMP":
            if ddb:
                yield Issue(
                    ("mappings", i, "starting_position"),
                    "AT_TIMESTAMP is not valid for DynamoDB streams (allowed: LATEST, TRIM_HORIZON)",
                )
            elif m.starting_position_timestamp is None:
                yield Issue(("mappings", i, "starting_position_timestamp"), "required with AT_TIMESTAMP")
        elif m.starting_position_timestamp is not None:
            yield Issue(
                ("mappings", i, "starting_position_timestamp"),
                f"only valid with starting_position AT_TIMESTAMP (got {m.starting_position})",
            )
        if ddb and m.enhanced_fan_out:
            yield Issue(("mappings", i, "enhanced_fan_out"), "enhanced fan-out is for Kinesis streams only")
        if ddb and m.maximum_record_age > DYNAMODB_RETENTION_S:
            yield Issue(
                ("mappings", i, "maximum_record_age"),
                f"{m.maximum_record_age:g} s is longer than a DynamoDB stream keeps records (24 h): "
                "it never applies",
                "warning",
            )
    for name, indices in readers.items():
        source = s.sources[name]
        polling = [i for i in indices if not getattr(s.mappings[i], "enhanced_fan_out", False)]
        if isinstance(source, DynamoDBSource) and len(indices) > 2:
            yield Issue(
                ("mappings", indices[-1]),
                f"{len(indices)} mappings read DynamoDB stream {name!r}: AWS advises at most 2 readers per "
                "shard (reads will be throttled; https://docs.aws.amazon.com/amazondynamodb/latest/"
                "developerguide/ServiceQuotas.html#limits-dynamodb-streams)",
                "warning",
            )
        elif isinstance(source, KinesisSource) and len(polling) > 5:
            yield Issue(
                ("mappings", polling[-1]),
                f"{len(polling)} standard consumers share stream {name!r}'s 5 reads a second per shard; "
                "consider enhanced fan-out",
                "warning",
            )


def _tail_above(size: object, limit: float) -> bool:
    """Whether an unbounded size distribution puts visible mass (over 0.1 %) above ``limit``."""
    if isinstance(size, LognormalSize):
        return size.median * math.exp(3.09 * size.sigma) > limit
    mean = getattr(size, "mean_", None)
    return mean is not None and mean * 6.9 > limit


def _function_rules(s: System) -> Iterator[Issue]:
    for name, fn in s.functions.items():
        if _p99(fn) > INIT_LIMIT_S:
            yield Issue(
                ("functions", name, "cold_start"),
                f"init durations reach past Lambda's {INIT_LIMIT_S:g} s init limit; esmsim does not model "
                "init timeouts and runs them to completion",
                "warning",
            )
        for k, incident in enumerate(fn.incidents):
            if incident.start >= s.duration:
                yield Issue(
                    ("functions", name, "incidents", k, "start"), "starts after the run ends", "warning"
                )


def _p99(fn: Function) -> float:
    dist = fn.cold_start
    if isinstance(dist, LognormalDuration):
        return dist.p99
    return dist.upper_bound() if math.isfinite(dist.upper_bound()) else dist.mean() * 4.6


def _zero_time_loops(s: System) -> Iterator[Issue]:
    """Refuse loops that could repeat without the simulated clock advancing (the run would hang)."""
    step = "1us"  # MIN_STEP_S as a scenario writes it
    for i, m in enumerate(s.mappings):
        for key in ("initial", "maximum"):
            value = getattr(m.throttle_retry, key)
            if value < MIN_STEP_S:
                yield Issue(
                    ("mappings", i, "throttle_retry", key),
                    f"{value:g} s is below {step}: throttled invokes would retry without time passing "
                    f"(allowed: at least {step}; AWS gives no spacing, esmsim assumes 1s doubling to 30s)",
                )
        if isinstance(m, SqsMapping) and m.poller_scaling.tick < MIN_STEP_S:
            yield Issue(
                ("mappings", i, "poller_scaling", "tick"),
                f"{m.poller_scaling.tick:g} s is below {step}: the scaler would tick without time passing "
                f"(allowed: at least {step}; default 1s)",
            )
        fn = s.functions.get(m.function)
        if not isinstance(m, StreamMapping) or fn is None or not _can_fail(fn):
            continue
        retry = m.retry_backoff
        wait = min(retry.initial, retry.maximum) * (1 - retry.jitter)
        busy = _shortest_run(fn)
        if wait + busy < MIN_STEP_S:
            key = "initial" if retry.initial <= retry.maximum else "maximum"
            yield Issue(
                ("mappings", i, "retry_backoff", key),
                f"a failing batch would be retried every {wait + busy:g} s (back-off {wait:g} s, function "
                f"{m.function!r} busy {busy:g} s): the simulated clock would stop; "
                f"give retry_backoff initial and maximum of at least {step}, or the function a duration "
                f"of at least {step}",
            )
    for name in {t.function for t in s.triggers if t.function in s.functions}:
        config = s.functions[str(name)].async_
        for key in ("throttle_backoff_initial", "throttle_backoff_maximum"):
            value = getattr(config, key)
            if value < MIN_STEP_S:
                yield Issue(
                    ("functions", str(name), "async", key),
                    f"{value:g} s is below {step}: throttled events would retry without time passing "
                    f"(allowed: at least {step}; AWS: 1 s doubling to 5 minutes)",
                )
    for name, source in s.sources.items():
        period = source.traffic.period
        if period is not None and period < MIN_STEP_S:
            yield Issue(
                ("sources", name, "traffic", "period"),
                f"{period:g} s is below {step}: the schedule could not repeat (allowed: at least {step})",
            )
        interval = getattr(source, "idle_poll_interval", None)
        if interval is not None and interval < MIN_STEP_S:
            yield Issue(
                ("sources", name, "idle_poll_interval"),
                f"{interval:g} s is below {step}: idle shards would be polled without time passing "
                f"(allowed: at least {step})",
            )


def _can_fail(fn: Function) -> bool:
    """Whether an invocation of ``fn`` can fail (and so be retried)."""
    e = fn.errors
    if e.invocation_error_rate or e.record_error_rate or e.poison_record_rate:
        return True
    return any(i.invocation_error_rate or i.record_error_rate for i in fn.incidents)


def _shortest_run(fn: Function) -> float:
    """A handler time that 1 % of warm invocations of one record reach or undercut (its 1st percentile).

    Continuous distributions reach 0 only with probability 0, so their 1st percentile stands for
    "how short a retry cycle typically gets"; a constant or empirical duration of 0 is 0.
    """
    d = fn.duration
    if isinstance(d, ConstantDuration):
        low = d.value
    elif isinstance(d, EmpiricalDuration):
        low = min(d.values)
    elif isinstance(d, UniformDuration):
        low = d.low + 0.01 * (d.high - d.low)
    elif isinstance(d, ExponentialDuration):
        low = d.mean_ * -math.log(0.99)
    elif isinstance(d, LognormalDuration):
        low = d.median * math.exp(-2.3263478740408408 * d.sigma)
    else:
        low = 0.0
    shrink = math.prod(min(1.0, i.duration_multiplier) for i in fn.incidents)
    return min((low + fn.per_record) * fn.cpu_factor * shrink, fn.timeout)


def _run_rules(s: System) -> Iterator[Issue]:
    if s.warmup >= s.duration:
        yield Issue(("warmup",), f"{s.warmup:g} s must be shorter than duration ({s.duration:g} s)")
    regions = {(name, a.region) for name, a in s.all_accounts.items() if a.region != "us-east-1"}
    if regions and "pricing" not in s.model_fields_set:
        name, region = sorted(regions)[0]
        at = ("accounts", name, "region") if s.accounts else ("account", "region")
        yield Issue(
            at, f"{region}: costs use the us-east-1 price table unless `pricing:` overrides it", "warning"
        )


#: Longest function timeout an Amazon MQ (or Kafka) mapping may invoke: 14 minutes (docs/model.md §17).
MQ_FUNCTION_TIMEOUT_S = 14 * 60.0


def _mq_rules(s: System) -> Iterator[Issue]:
    """AWS's rules for Amazon MQ mappings (docs/model.md §17)."""
    readers: dict[str, int] = {}
    for i, m in enumerate(s.mappings):
        source, fn = s.sources.get(m.source), s.functions.get(m.function)
        if not isinstance(m, MqMapping) or not isinstance(source, MqSource) or fn is None:
            continue
        if fn.timeout > MQ_FUNCTION_TIMEOUT_S:
            yield Issue(
                ("functions", m.function, "timeout"),
                f"{fn.timeout:g} s is above 14 minutes, the longest timeout of a function an Amazon MQ "
                f"mapping invokes (mappings[{i}] reads {m.source!r}; allowed: up to 840s)",
            )
        if s.account_name(fn.account) != s.account_name(source.account):
            yield Issue(
                ("mappings", i, "function"),
                f"{m.function!r} is in account {s.account_name(fn.account)!r} and broker queue {m.source!r} "
                f"in {s.account_name(source.account)!r}: Lambda does not read Amazon MQ brokers of another "
                "account (put both in one account)",
            )
        if m.source in readers:
            yield Issue(
                ("mappings", i, "source"),
                f"{m.source!r} is already read by mappings[{readers[m.source]}]: esmsim models one mapping "
                "per Amazon MQ queue",
            )
        readers.setdefault(m.source, i)
        if fn.errors.poison_record_rate and source.redeliveries < 0 and source.message_ttl is None:
            yield Issue(
                ("sources", m.source),
                f"{m.function!r} meets poison messages and broker queue {m.source!r} redelivers without "
                "limit nor expiry: a poison batch holds its consumer for the rest of the run (set "
                "max_redeliveries, as a quorum queue's delivery-limit, or message_ttl)",
                "warning",
            )
        if _can_fail(fn) and m.redelivery_delay + _shortest_run(fn) < MIN_STEP_S:
            yield Issue(
                ("mappings", i, "redelivery_delay"),
                f"a failing batch would be delivered again every {m.redelivery_delay + _shortest_run(fn):g} "
                f"s: the simulated clock would stop (allowed: at least {MIN_STEP_S:g}s; default 1s)",
            )


def _kafka_rules(s: System) -> Iterator[Issue]:
    """AWS's rules for Kafka mappings (docs/model.md §16)."""
    for i, m in enumerate(s.mappings):
        fn = s.functions.get(m.function)
        if not isinstance(m, KafkaMapping) or fn is None:
            continue
        if fn.timeout > MQ_FUNCTION_TIMEOUT_S:
            yield Issue(
                ("functions", m.function, "timeout"),
                f"{fn.timeout:g} s is above 14 minutes, the longest timeout of a function a Kafka mapping "
                f"invokes (mappings[{i}] reads {m.source!r}; allowed: up to 840s)",
            )


RULES: tuple[Callable[[System], Iterator[Issue]], ...] = (
    _references,
    _trigger_rules,
    _duplicate_mappings,
    _sqs_mapping_rules,
    _stream_rules,
    _mq_rules,
    _kafka_rules,
    _shared_caps,
    filter_rules,
    _queue_rules,
    _source_rules,
    _unused_functions,
    account_rules,
    reliability_findings,
    encryption_findings,
    cross_account_findings,
    concurrency_rules,
    _function_rules,
    _zero_time_loops,
    _run_rules,
)


def check(scenario: System) -> list[Issue]:
    """Every rule's findings, errors and warnings, in a stable order."""
    return [issue for rule in RULES for issue in rule(scenario)]
