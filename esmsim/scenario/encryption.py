"""The KMS key of an encrypted source: what ``kms_key`` names, and who holds its policy (docs/model.md §12).

A key is written as AWS takes it: a key ID, a key ARN, ``alias/NAME`` or an alias ARN. An alias
``alias/aws/SERVICE`` is that service's AWS managed key: AWS writes its key policy, which lets the
principals of its own account use it through the service and cannot be changed, so it needs no grant
from esmsim and serves no other account. Any other key is a customer managed key: whoever reads
through it needs ``kms:Decrypt`` on it.

This module imports no scenario model, so the source models can validate with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: A key ID: a UUID, a multi-Region ``mrk-...`` ID, or (in an imported scenario) a template's logical ID.
_KEY_ID = r"[A-Za-z0-9][A-Za-z0-9-]*"
#: An alias name: ``alias/`` and letters, digits, ``/``, ``_``, ``-`` (AWS's CreateAlias rule).
_ALIAS = r"alias/[A-Za-z0-9/_-]+"
_ARN = re.compile(
    rf"arn:aws[a-z-]*:kms:(?P<region>[a-z0-9-]+):(?P<account>\d{{12}}):(?P<name>key/{_KEY_ID}|{_ALIAS})"
)

#: What a bad ``kms_key`` is told to look like.
KEY_FORMS = "a key ID, a key ARN, alias/NAME or an alias ARN"


@dataclass(frozen=True)
class KmsKey:
    """A KMS key as a scenario names it.

    Attributes:
        written: The key as the scenario writes it.
        key_id: The key's ID, when named by ID or key ARN (None when named by an alias).
        alias: ``alias/NAME``, when named by an alias or alias ARN.
        region: The Region of an ARN (None: the source's Region).
        account: The account of an ARN (None: the source's account).
        arn: The key ARN as written, when it was a key ARN.
    """

    written: str
    key_id: str | None
    alias: str | None
    region: str | None = None
    account: str | None = None
    arn: str | None = None

    @property
    def aws_managed(self) -> bool:
        """An AWS managed key (``alias/aws/sqs``, ``alias/aws/kinesis``, ...): AWS keeps its policy."""
        return self.alias is not None and self.alias.startswith("alias/aws/")


def parse_kms_key(text: str) -> KmsKey:
    """What ``text`` names.

    Raises:
        ValueError: ``text`` is none of a key ID, a key ARN, ``alias/NAME`` or an alias ARN.
    """
    found = _ARN.fullmatch(text)
    if found is not None:
        name = found["name"]
        if name.startswith("alias/"):
            return KmsKey(text, None, name, found["region"], found["account"])
        return KmsKey(text, name.removeprefix("key/"), None, found["region"], found["account"], text)
    if re.fullmatch(_ALIAS, text):
        return KmsKey(text, None, text)
    if re.fullmatch(_KEY_ID, text):
        return KmsKey(text, text, None)
    raise ValueError(f"{text!r} is not a KMS key: write {KEY_FORMS}")


def customer_key(source: Any) -> KmsKey | None:
    """The customer managed key a source is encrypted with, or None (unencrypted, or a key AWS manages).

    ``source`` is any source model; those without an ``encryption`` key (S3, EventBridge) have none.
    """
    if getattr(source, "encryption", "none") != "kms" or source.kms_key is None:
        return None
    key = parse_kms_key(source.kms_key)
    return None if key.aws_managed else key


def aws_managed_kms_key(source: Any) -> bool:
    """The source is encrypted with its service's AWS managed KMS key (whose policy AWS keeps).

    ``managed`` is that key for Kinesis and SNS; for SQS it is SSE-SQS and for DynamoDB the AWS owned
    key, neither of them a KMS key in the account.
    """
    encryption = getattr(source, "encryption", "none")
    if encryption == "managed":
        return source.type in ("kinesis", "sns")
    return encryption == "kms" and source.kms_key is not None and parse_kms_key(source.kms_key).aws_managed
