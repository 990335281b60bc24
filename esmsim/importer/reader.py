"""CloudFormation resources read into scenario data: functions, sources, mappings and triggers.

Resources are named by their logical IDs. What a template cannot say (traffic, handler durations,
a table's shards) becomes a placeholder that validates; what esmsim does not model is listed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esmsim.importer.decode import decode_with_lines
from esmsim.importer.filters import ImportedFilter, placeholder_shares, read_filter_criteria

#: What a template cannot say, written into the scenario for the user to replace.
PLACEHOLDER_TRAFFIC = {"rate": "10/s", "record_size": "1KB"}
PLACEHOLDER_DURATION = "100ms"
PLACEHOLDER_SHARDS = 4
PLACEHOLDER_GROUPS = 10  # a FIFO queue's message groups

#: EventSourceMapping properties esmsim reads (AWS's names, which the scenario schema accepts).
MAPPING_KEYS = (
    "BatchSize",
    "MaximumBatchingWindowInSeconds",
    "Enabled",
    "FunctionResponseTypes",
    "ScalingConfig",
    "StartingPosition",
    "StartingPositionTimestamp",
    "ParallelizationFactor",
    "MaximumRetryAttempts",
    "MaximumRecordAgeInSeconds",
    "BisectBatchOnFunctionError",
    "ProvisionedPollerConfig",  # SQS and Kafka provisioned mode
)
#: EventSourceMapping properties that only locate things (read through references), not settings.
MAPPING_WIRING = (
    "EventSourceArn",
    "FunctionName",
    "DestinationConfig",
    "Queues",  # an Amazon MQ mapping's queue on its broker: esmsim's source is the queue
    "SourceAccessConfigurations",  # the broker's credentials (a secret): see esmsim iam
    "Topics",  # a Kafka mapping's topic on its cluster: esmsim's source is the topic
    "SelfManagedEventSource",  # a self-managed Kafka cluster's brokers (no EventSourceArn)
)
#: Services of an ARN that a destination may be, by esmsim's target type.
ARN_SERVICES = {"sqs": "sqs", "sns": "sns", "s3": "s3", "events": "eventbridge", "lambda": "lambda"}


@dataclass
class Imported:
    """A scenario read from a template: its data, and what the reader should know."""

    data: dict[str, Any]
    skipped: list[str] = field(default_factory=list)  # resources or settings not imported, and why
    notes: list[str] = field(default_factory=list)  # things the template does that AWS would reject
    placeholders: list[str] = field(default_factory=list)  # keys holding placeholders
    #: The template's line of each resource (``Rid``) and property (``Rid.Key``), as written.
    lines: dict[str, int] = field(default_factory=dict)
    #: The resource each mapping came from (``mappings[0]`` -> its logical ID).
    origins: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ references


def _ref(value: Any) -> str | None:
    """The logical ID a ``Ref`` or ``Fn::GetAtt`` points at, or None."""
    if isinstance(value, dict):
        if "Ref" in value and isinstance(value["Ref"], str):
            return value["Ref"]
        att = value.get("Fn::GetAtt")
        if isinstance(att, list) and att and isinstance(att[0], str):
            return att[0]
        if isinstance(att, str):
            return att.split(".")[0]
        sub = value.get("Fn::Sub")
        if isinstance(sub, str) and sub.startswith("${") and "}" in sub:
            return sub[2 : sub.index("}")].split(".")[0]
    return None


def _arn_service(value: Any) -> tuple[str, str] | None:
    """``(service, name)`` of a literal ARN (``arn:aws:sqs:us-east-1:1:q`` -> ``("sqs", "q")``)."""
    if not isinstance(value, str) or not value.startswith("arn:"):
        return None
    parts = value.split(":")
    if len(parts) < 6:
        return None
    name = parts[-1].split("/")[-1] if parts[2] != "lambda" else parts[6] if len(parts) > 6 else parts[-1]
    if parts[2] == "mq" and len(parts) > 7:  # arn:aws:mq:REGION:ACCOUNT:broker:NAME:ID
        name = parts[6]
    if parts[2] == "dynamodb" and "/stream/" in value:
        name = value.split("table/")[1].split("/")[0]
    return parts[2], name or parts[-1]


# ------------------------------------------------------------------------------------------ the reader


#: Amazon MQ's engines (EngineType, any case).
MQ_ENGINES = ("activemq", "rabbitmq")
#: Resource types a source is made from, and the source type.
SOURCE_TYPES = {
    "AWS::SQS::Queue": "sqs",
    "AWS::Kinesis::Stream": "kinesis",
    "AWS::DynamoDB::Table": "dynamodb",
    "AWS::S3::Bucket": "s3",
    "AWS::SNS::Topic": "sns",
    "AWS::AmazonMQ::Broker": "mq",
    "AWS::MSK::Cluster": "kafka",
}
#: ARN services a source outside the template may be.
ARN_SOURCES = {
    "sqs": "sqs",
    "kinesis": "kinesis",
    "dynamodb": "dynamodb",
    "s3": "s3",
    "sns": "sns",
    "mq": "mq",
    "kafka": "kafka",
}
#: Resource types read here, and those that only wire things together (permissions, roles, policies).
READ_TYPES = {
    *SOURCE_TYPES,
    "AWS::Lambda::Function",
    "AWS::Lambda::EventSourceMapping",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::Lambda::Alias",
    "AWS::Lambda::Version",
    "AWS::Kinesis::StreamConsumer",
    "AWS::SNS::Subscription",
    "AWS::Events::Rule",
}
WIRING_TYPES = {
    "AWS::KMS::Key",  # read through the sources it encrypts
    "AWS::KMS::Alias",
    "AWS::IAM::Role",
    "AWS::IAM::Policy",
    "AWS::Lambda::Permission",
    "AWS::SQS::QueuePolicy",
    "AWS::SNS::TopicPolicy",
}


def import_template(path: Path) -> Imported:
    """Read a template into scenario data (not validated: :func:`write_scenario` validates it)."""
    data, lines = decode_with_lines(path)
    imported = _Reader(data, path).read()
    imported.lines = lines
    return imported


class _Reader:
    """One template's resources, read into a scenario's functions, sources, mappings and triggers."""

    def __init__(self, template: dict[str, Any], path: Path) -> None:
        self.resources: dict[str, dict[str, Any]] = {
            k: v for k, v in template["Resources"].items() if isinstance(v, dict) and "Type" in v
        }
        self.out = Imported(
            {"name": path.stem, "description": f"Imported from {path.name} by esmsim import."}
        )
        self.functions: dict[str, dict[str, Any]] = {}
        self.sources: dict[str, dict[str, Any]] = {}
        self.mappings: list[dict[str, Any]] = []
        self.triggers: list[dict[str, Any]] = []
        self.dead_letter_targets: set[str] = set()
        self.destinations: set[str] = set()  # named as destinations: imported as their targets
        self.filters: dict[int, tuple[str, ImportedFilter]] = {}  # mapping index -> (resource, its filter)

    def read(self) -> Imported:
        """Every resource esmsim models, in dependency order; the rest listed."""
        self._functions()
        self._function_settings()
        self._mappings()
        self._pushes()
        self._queues()
        self._streams()
        self._brokers()
        self._encryption()
        self._filtered_sources()
        for rid, res in self.resources.items():
            if res["Type"] not in READ_TYPES | WIRING_TYPES:
                self.out.skipped.append(f"{rid}: {res['Type']} (not modelled by esmsim)")
        self.out.data.update({"functions": self.functions, "sources": self.sources})
        if self.mappings:
            self.out.data["mappings"] = self.mappings
        if self.triggers:
            self.out.data["triggers"] = self.triggers
        return self.out

    # -------------------------------------------------------------- helpers
    def props(self, rid: str) -> dict[str, Any]:
        found = self.resources[rid].get("Properties", {})
        return found if isinstance(found, dict) else {}

    def of_type(self, *types: str) -> list[str]:
        return [rid for rid, res in self.resources.items() if res["Type"] in types]

    def is_fifo(self, rid: str) -> bool:
        fifo = self.props(rid).get("FifoQueue")
        return self.resources[rid]["Type"] == "AWS::SQS::Queue" and fifo in (True, "true", "True")

    def source(self, rid: str, kind: str) -> str:
        """Make (once) the source named ``rid``, with placeholders for what no template says."""
        if rid not in self.sources:
            made: dict[str, Any] = {"type": kind}
            if kind in ("kinesis", "dynamodb"):
                made["shards"] = PLACEHOLDER_SHARDS
                self.out.placeholders.append(f"sources.{rid}.shards")
            if kind == "kafka":  # a template gives a cluster, never its topic's partition count
                made["partitions"] = PLACEHOLDER_SHARDS
                self.out.placeholders.append(f"sources.{rid}.partitions")
            if kind == "mq":  # the broker's EngineType, when the template has it (_brokers)
                made["engine"] = "activemq"
                self.out.placeholders.append(f"sources.{rid}.engine")
            made["traffic"] = dict(PLACEHOLDER_TRAFFIC)
            self.out.placeholders.append(f"sources.{rid}.traffic")
            if kind == "sqs" and rid not in self.resources and rid.endswith(".fifo"):  # an ARN's queue
                made["fifo"] = True
                made["traffic"]["message_groups"] = PLACEHOLDER_GROUPS
            self.sources[rid] = made
        return rid

    def function_of(self, value: Any, where: str) -> str | None:
        """The function a reference or ARN names (through an alias or version to its function)."""
        rid = _ref(value)
        if rid in self.resources and self.resources[rid]["Type"] in (
            "AWS::Lambda::Alias",
            "AWS::Lambda::Version",
        ):
            rid = _ref(self.props(rid).get("FunctionName"))
        if rid in self.functions:
            return rid
        arn = _arn_service(value)
        outside = arn is not None and arn[0] == "lambda"
        if outside or (isinstance(value, str) and not value.startswith("arn:")):
            name = arn[1] if arn is not None else str(value)
            self.functions.setdefault(name, {"duration": PLACEHOLDER_DURATION})
            self.out.placeholders.append(f"functions.{name}.duration")
            self.out.notes.append(f"{where}: function {name!r} is not in the template; added with defaults")
            return name
        self.out.skipped.append(f"{where}: cannot tell which function {json.dumps(value)} is")
        return None

    def source_of(self, value: Any, where: str) -> tuple[str, str] | None:
        """``(name, type)`` of the source an event source ARN points at, or None (listed)."""
        rid = _ref(value)
        if rid is not None and rid in self.resources:
            rtype = self.resources[rid]["Type"]
            if rtype == "AWS::Kinesis::StreamConsumer":  # enhanced fan-out reads its stream
                rid = _ref(self.props(rid).get("StreamARN")) or rid
                rtype = self.resources.get(rid, {}).get("Type", rtype)
            if rtype in SOURCE_TYPES:
                return rid, SOURCE_TYPES[rtype]
            self.out.skipped.append(f"{where}: {rtype} is not a source esmsim models")
            return None
        arn = _arn_service(value)
        if arn is not None:
            service, name = arn
            if service in ARN_SOURCES:
                self.out.notes.append(f"{where}: {name!r} is not in the template; imported with placeholders")
                return name, ARN_SOURCES[service]
            self.out.skipped.append(f"{where}: a {service} source (not modelled by esmsim)")
            return None
        self.out.skipped.append(f"{where}: cannot tell which source {json.dumps(value)} is")
        return None

    # -------------------------------------------------------------- resource families
    def _functions(self) -> None:
        for rid in self.of_type("AWS::Lambda::Function"):
            p = self.props(rid)
            fn: dict[str, Any] = {"duration": PLACEHOLDER_DURATION}
            self.out.placeholders.append(f"functions.{rid}.duration")
            for key in ("MemorySize", "Timeout", "ReservedConcurrentExecutions", "Architectures"):
                if key in p and not isinstance(p[key], dict):
                    fn[key] = p[key]
                elif key in p:
                    self.out.skipped.append(f"{rid}.{key}: an expression ({json.dumps(p[key])}), not a value")
            self.functions[rid] = fn

    def _function_settings(self) -> None:
        """Event invoke configs, provisioned concurrency, and which queues are dead-letter queues."""
        for rid in self.of_type("AWS::SQS::Queue"):
            target = _ref(_redrive(self.props(rid)).get("deadLetterTargetArn"))
            if target:
                self.dead_letter_targets.add(target)
        for rid in self.of_type("AWS::Lambda::EventInvokeConfig"):
            p = self.props(rid)
            name = self.function_of(p.get("FunctionName"), f"{rid}.FunctionName")
            if name is not None:
                config = _invoke_config(rid, p, self.resources, self.out)
                self.functions[name]["async"] = config
                self.destinations.update(t["name"] for t in config.values() if isinstance(t, dict))
        for rid in self.of_type("AWS::Lambda::Alias", "AWS::Lambda::Version"):
            p = self.props(rid)
            pc = p.get("ProvisionedConcurrencyConfig", {}).get("ProvisionedConcurrentExecutions")
            if pc is not None:
                name = self.function_of(p.get("FunctionName"), f"{rid}.FunctionName")
                if name is not None:
                    self.functions[name]["provisioned_concurrency"] = pc

    def _mappings(self) -> None:
        for rid in self.of_type("AWS::Lambda::EventSourceMapping"):
            p = self.props(rid)
            self_managed = "SelfManagedEventSource" in p and "EventSourceArn" not in p
            if self_managed:  # a Kafka cluster outside AWS: named after its topic
                topics = p.get("Topics") or [f"{rid}-topic"]
                found: tuple[str, str] | None = (str(topics[0]), "kafka")
            else:
                found = self.source_of(p.get("EventSourceArn"), f"{rid}.EventSourceArn")
            name = self.function_of(p.get("FunctionName"), f"{rid}.FunctionName")
            if found is None or name is None:
                continue
            src, kind = found
            if kind in ("s3", "sns"):
                # The guide's mistake: AWS rejects a mapping on a push source. Import what was meant.
                service = kind.upper()
                self.out.notes.append(
                    f"{rid}: an event source mapping on {service} source {src!r}: AWS rejects it "
                    "(CreateEventSourceMapping accepts SQS, Kinesis, DynamoDB, Kafka, MQ and DocumentDB); "
                    f"{service} invokes Lambda through a trigger, imported as triggers: "
                    f"- {{source: {src}, function: {name}}}"
                )
                self.source(src, kind)
                self.triggers.append({"source": src, "function": name})
                self.out.skipped += [
                    f"{rid}.{key}: a trigger has no such setting" for key in p if key not in MAPPING_WIRING
                ]
                continue
            self.source(src, kind)
            if self_managed:
                self.sources[src]["flavor"] = "self_managed"
            mapping: dict[str, Any] = {"source": src, "function": name}
            for key, value in p.items():
                if key in MAPPING_KEYS:
                    mapping[key] = value
                elif key == "FilterCriteria":
                    self._filter(rid, mapping, value)
                elif key not in MAPPING_WIRING:
                    self.out.skipped.append(f"{rid}.{key}: not modelled by esmsim")
            destination = p.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
            if destination is not None:
                target = _target(destination, self.resources)
                if target is not None:
                    mapping["on_failure"] = target
                    self.destinations.add(target["name"])
                else:
                    self.out.skipped.append(
                        f"{rid}.DestinationConfig: cannot tell what {json.dumps(destination)} is"
                    )
            self.out.origins[f"mappings[{len(self.mappings)}]"] = rid
            self.mappings.append(mapping)

    def _filter(self, rid: str, mapping: dict[str, Any], criteria: Any) -> None:
        """A mapping's FilterCriteria: a pattern on placeholder traffic attributes, or a placeholder share."""
        at = f"mappings[{len(self.mappings)}].filter"
        read = read_filter_criteria(criteria)
        if isinstance(read, str):
            self.out.skipped.append(
                f"{rid}.FilterCriteria: {read}; state the share of records it matches as {at}.match_rate"
            )
            return
        mapping["filter"] = read.filter
        self.filters[len(self.mappings)] = (rid, read)

    def _filtered_sources(self) -> None:
        """Filters on the sources' attributes (placeholder shares); none on a queue several mappings read."""
        listed: dict[str, dict[str, list[str]]] = {}  # source -> attribute -> the values patterns list
        for i, (rid, read) in self.filters.items():
            mapping = self.mappings[i]
            src, at = mapping["source"], f"mappings[{i}].filter"
            readers = sum(other["source"] == src for other in self.mappings)
            if self.sources.get(src, {}).get("type") == "sqs" and readers > 1:
                del mapping["filter"]
                self.out.skipped.append(
                    f"{rid}.FilterCriteria: queue {src!r} is read by {readers} mappings; which one receives "
                    "a message decides whether it is filtered, which esmsim does not model"
                )
            elif read.why_rate is not None:
                self.out.placeholders.append(f"{at}.match_rate")
                self.out.notes.append(
                    f"{rid}.FilterCriteria: {read.why_rate}; imported as {at}.match_rate "
                    f"{read.filter['match_rate']}"
                )
            else:
                attributes = listed.setdefault(src, {})
                for name, values in read.values.items():
                    attributes[name] = list(dict.fromkeys([*attributes.get(name, []), *values]))
                fields = ", ".join(f"{name} is {'.'.join(path)}" for name, path in read.fields.items())
                self.out.notes.append(
                    f"{rid}.FilterCriteria: imported as {at}.{next(iter(read.filter))} on "
                    f"sources.{src}.traffic.attributes "
                    f"({fields})"
                )
        for src, attributes in listed.items():
            traffic = self.sources[src].setdefault("traffic", {"rate": 0})
            traffic["attributes"] = {name: placeholder_shares(values) for name, values in attributes.items()}
            self.out.placeholders.append(f"sources.{src}.traffic.attributes")

    def _pushes(self) -> None:
        """Bucket notifications, topic subscriptions and rule targets: triggers."""
        for rid in self.of_type("AWS::S3::Bucket"):
            notify = self.props(rid).get("NotificationConfiguration", {})
            for config in notify.get("LambdaConfigurations", []):
                name = self.function_of(config.get("Function"), f"{rid}.LambdaConfigurations")
                if name is not None:
                    self.triggers.append({"source": self.source(rid, "s3"), "function": name})
            for config in notify.get("QueueConfigurations", []):
                queue = _ref(config.get("Queue"))
                if queue in self.resources:
                    self.triggers.append({"source": self.source(rid, "s3"), "queue": queue})
        subscriptions = [(rid, self.props(rid)) for rid in self.of_type("AWS::SNS::Subscription")]
        for rid in self.of_type("AWS::SNS::Topic"):
            subscriptions += [
                (rid, {**sub, "TopicArn": {"Ref": rid}}) for sub in self.props(rid).get("Subscription", [])
            ]
        for rid, sub in subscriptions:
            self._subscription(rid, sub)
        for rid in self.of_type("AWS::Events::Rule"):
            self._rule(rid)

    def _subscription(self, rid: str, sub: dict[str, Any]) -> None:
        topic = _ref(sub.get("TopicArn"))
        if topic is None or topic not in self.resources:
            self.out.skipped.append(f"{rid}: a subscription to a topic outside the template")
            return
        protocol, endpoint = sub.get("Protocol"), sub.get("Endpoint")
        if protocol == "lambda":
            name = self.function_of(endpoint, f"{rid}.Endpoint")
            if name is not None:
                self.triggers.append({"source": self.source(topic, "sns"), "function": name})
        elif protocol == "sqs" and _ref(endpoint) in self.resources:
            self.triggers.append({"source": self.source(topic, "sns"), "queue": _ref(endpoint)})
        else:
            self.out.skipped.append(f"{rid}: an SNS subscription by {protocol} (not modelled)")

    def _rule(self, rid: str) -> None:
        p = self.props(rid)
        for target in p.get("Targets", []):
            name = _ref(target.get("Arn"))
            if name in self.functions:
                self.triggers.append({"source": self.source(rid, "eventbridge"), "function": name})
            elif name in self.resources and self.resources[name]["Type"] == "AWS::SQS::Queue":
                self.triggers.append({"source": self.source(rid, "eventbridge"), "queue": name})
            else:
                self.out.skipped.append(
                    f"{rid}: a rule target that is not a function or queue of the template"
                )
                continue
            schedule = p.get("ScheduleExpression")
            rate = _schedule_rate(schedule)
            if rate is not None and f"sources.{rid}.traffic" in self.out.placeholders:
                self.sources[rid]["traffic"] = {"rate": rate, "pattern": "constant", "record_size": "1KB"}
                self.out.placeholders.remove(f"sources.{rid}.traffic")
            elif schedule is not None and rate is None:
                self.out.notes.append(f"{rid}: schedule {schedule!r} imported as placeholder traffic")

    def _queues(self) -> None:
        """Queues something reads or feeds.

        A queue used only as a dead-letter queue or a destination is its source's redrive
        (max_receive_count) or the target that names it, not a source of its own.
        """
        fed = {t["queue"] for t in self.triggers if "queue" in t}
        for rid in self.of_type("AWS::SQS::Queue"):
            if rid not in self.sources and rid not in fed:
                if rid in self.destinations:
                    continue
                why = (
                    "a dead-letter queue (its source queue's max_receive_count)"
                    if rid in self.dead_letter_targets
                    else "no mapping reads it"
                )
                self.out.skipped.append(f"{rid}: {why}")
                continue
            queue = self.sources.setdefault(rid, {"type": "sqs"})
            if rid in fed:  # its messages come from the trigger
                queue.pop("traffic", None)
                if f"sources.{rid}.traffic" in self.out.placeholders:
                    self.out.placeholders.remove(f"sources.{rid}.traffic")
            p = self.props(rid)
            for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "MaximumMessageSize"):
                if key in p:
                    queue[key] = p[key]
            redrive = _redrive(p)
            if "maxReceiveCount" in redrive:
                queue["max_receive_count"] = int(redrive["maxReceiveCount"])
            if self.is_fifo(rid):
                self._fifo(rid, queue, p)

    def _fifo(self, rid: str, queue: dict[str, Any], p: dict[str, Any]) -> None:
        """A FIFO queue: its throughput mode; its producers' message groups, a placeholder."""
        queue["fifo"] = True
        if p.get("FifoThroughputLimit") == "perMessageGroupId":
            queue["high_throughput"] = True
        elif p.get("DeduplicationScope") == "messageGroup":  # AWS wants both for high throughput
            self.out.notes.append(
                f"{rid}: DeduplicationScope messageGroup without FifoThroughputLimit perMessageGroupId "
                "is not high throughput mode; imported as a FIFO queue in its normal mode"
            )
        if "traffic" in queue:  # no template says how many message groups its producers use
            queue["traffic"]["message_groups"] = PLACEHOLDER_GROUPS

    def _streams(self) -> None:
        for rid in self.of_type("AWS::Kinesis::Stream"):
            stream = self.sources.get(rid)
            if stream is None:
                continue
            p = self.props(rid)
            if "ShardCount" in p:
                stream["shards"] = p["ShardCount"]
                self.out.placeholders.remove(f"sources.{rid}.shards")
            if "RetentionPeriodHours" in p:
                stream["retention"] = f"{p['RetentionPeriodHours']}h"
            if p.get("StreamModeDetails", {}).get("StreamMode") == "ON_DEMAND":
                self.out.notes.append(
                    f"{rid}: an on-demand stream, imported as provisioned with placeholder shards"
                )

    def _brokers(self) -> None:
        """An Amazon MQ broker a mapping reads: its engine (docs/model.md §17)."""
        for rid in self.of_type("AWS::AmazonMQ::Broker"):
            broker = self.sources.get(rid)
            engine = self.props(rid).get("EngineType")
            if broker is None or not isinstance(engine, str) or engine.lower() not in MQ_ENGINES:
                continue
            broker["engine"] = engine.lower()
            self.out.placeholders.remove(f"sources.{rid}.engine")

    def _encryption(self) -> None:
        """Each source's encryption at rest, from its own properties (docs/model.md §13).

        Only what the template says is written: a queue without encryption properties keeps the default
        (SSE-SQS, as CloudFormation creates it), a stream or topic without them stays unencrypted.
        """
        for rid, source in self.sources.items():
            if rid not in self.resources:
                continue
            p = self.props(rid)
            found: tuple[str, Any] | None = None
            if source["type"] == "sqs":
                if "KmsMasterKeyId" in p:
                    found = "kms", p["KmsMasterKeyId"]
                elif _flag(p.get("SqsManagedSseEnabled")) is not None:
                    found = ("managed" if _flag(p["SqsManagedSseEnabled"]) else "none"), None
            elif source["type"] == "kinesis" and isinstance(p.get("StreamEncryption"), dict):
                found = "kms", p["StreamEncryption"].get("KeyId")
            elif source["type"] == "dynamodb" and isinstance(p.get("SSESpecification"), dict):
                sse = p["SSESpecification"]
                # SSEEnabled false or absent: the AWS owned key; true without a key: alias/aws/dynamodb.
                if _flag(sse.get("SSEEnabled")):
                    found = "kms", sse.get("KMSMasterKeyId", "alias/aws/dynamodb")
                else:
                    found = "managed", None
            elif source["type"] == "sns" and "KmsMasterKeyId" in p:
                found = "kms", p["KmsMasterKeyId"]
            if found is None:
                continue
            encryption, value = found
            key = self.kms_key(value, rid) if encryption == "kms" else None
            if source["type"] in ("kinesis", "sns") and key == f"alias/aws/{source['type']}":
                encryption, key = "managed", None  # esmsim's name for the service's AWS managed key
            source["encryption"] = encryption
            if key is not None:
                source["kms_key"] = key

    def kms_key(self, value: Any, rid: str) -> str:
        """The key a source names: as written, an alias of the template, or a key's logical ID (noted).

        A key the template creates has no ID before it is deployed; its logical ID stands in for it, and a
        note says to replace it before ``esmsim iam`` writes policies with it.
        """
        if isinstance(value, str):
            return value
        target = _ref(value)
        kind = self.resources.get(target or "", {}).get("Type")
        if kind == "AWS::KMS::Alias" and isinstance(self.props(str(target)).get("AliasName"), str):
            return str(self.props(str(target))["AliasName"])
        if kind == "AWS::KMS::Key":
            self.out.notes.append(
                f"{rid}: encrypted with key {target!r} of the template, whose ID exists once it is deployed: "
                f"sources.{rid}.kms_key is its logical ID; set the key ID or ARN before `esmsim iam`"
            )
            return str(target)
        stand_in = f"{rid}Key"
        self.out.notes.append(
            f"{rid}: encrypted with a key esmsim cannot resolve ({json.dumps(value)}): sources.{rid}.kms_key "
            f"is {stand_in!r}; set the key ID or ARN before `esmsim iam`"
        )
        return stand_in


def _flag(value: Any) -> bool | None:
    """A CloudFormation boolean (``true`` or ``"true"``), or None when it is not one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _redrive(queue: dict[str, Any]) -> dict[str, Any]:
    """A queue's RedrivePolicy (CloudFormation takes it as an object or a JSON string)."""
    redrive = queue.get("RedrivePolicy", {})
    if isinstance(redrive, str):
        redrive = json.loads(redrive)
    return redrive if isinstance(redrive, dict) else {}


def _schedule_rate(expression: Any) -> str | None:
    """``rate(5 minutes)`` as a constant rate (``1/300s`` per second), or None for cron and the rest."""
    if not isinstance(expression, str) or not expression.startswith("rate("):
        return None
    amount, _, unit = expression[5:-1].strip().partition(" ")
    seconds = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}.get(
        unit
    )
    if seconds is None or not amount.isdigit():
        return None
    per_hour = 3600 / (int(amount) * seconds)
    return f"{per_hour:g}/h" if per_hour >= 1 else f"{per_hour * 24:g}/d" if per_hour * 24 >= 1 else None


def _target(value: Any, resources: dict[str, dict[str, Any]]) -> dict[str, str] | None:
    """A destination as esmsim writes it (``{type, name}``), from a reference, an ARN or ``kafka://``."""
    if isinstance(value, str) and value.startswith("kafka://") and len(value) > len("kafka://"):
        return {"type": "kafka", "name": value[len("kafka://") :]}
    rid = _ref(value)
    if rid is not None and rid in resources:
        kinds = {
            "AWS::SQS::Queue": "sqs",
            "AWS::SNS::Topic": "sns",
            "AWS::S3::Bucket": "s3",
            "AWS::Events::EventBus": "eventbridge",
            "AWS::Lambda::Function": "lambda",
        }
        kind = kinds.get(resources[rid]["Type"])
        return {"type": kind, "name": rid} if kind else None
    arn = _arn_service(value)
    if arn is not None and arn[0] in ARN_SERVICES:
        return {"type": ARN_SERVICES[arn[0]], "name": arn[1]}
    return None


def _invoke_config(
    rid: str, p: dict[str, Any], resources: dict[str, dict[str, Any]], out: Imported
) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds"):
        if key in p:
            config[key] = p[key]
    destinations = p.get("DestinationConfig", {})
    for aws_key, key in (("OnSuccess", "on_success"), ("OnFailure", "on_failure")):
        destination = destinations.get(aws_key, {}).get("Destination")
        if destination is None:
            continue
        target = _target(destination, resources)
        if target is None:
            out.skipped.append(
                f"{rid}.DestinationConfig.{aws_key}: cannot tell what {json.dumps(destination)} is"
            )
        else:
            config[key] = target
    return config


# ------------------------------------------------------------------------------------------ the writer
