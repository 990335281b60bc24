"""A template as plain data: cfn-lint decodes it, aws-sam-translator expands SAM into CloudFormation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from esmsim.errors import RunError

EXTRA = "esmsim import needs the aws extra: pip install 'esmsim[aws]' (cfn-lint, aws-sam-translator)"


def decode(path: Path) -> dict[str, Any]:
    """The template as plain data, with SAM expanded to CloudFormation.

    Raises:
        RunError: The libraries are missing, or the template does not decode or translate.
    """
    return decode_with_lines(path)[0]


def decode_with_lines(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """:func:`decode`, and the line (1-based) of each resource (``Rid``) and property (``Rid.Key``).

    The lines are the template's as written: resources SAM generates have none.
    """
    try:
        from cfnlint.decode import decode as cfn_decode
    except ImportError:  # pragma: no cover - the extra is installed wherever tests run
        raise RunError(EXTRA) from None
    template, problems = cfn_decode(str(path))
    if problems or template is None:
        first = problems[0] if problems else None
        where = f"{path}:{first.linenumber}" if first is not None else str(path)
        message = first.message if first is not None else "not a template"
        raise RunError(f"{where}: {message}")
    lines = _lines(template)
    data: dict[str, Any] = json.loads(json.dumps(template))  # plain dicts, no line-number nodes
    if "AWS::Serverless-2016-10-31" in _transforms(data):
        data = _expand_sam(data, path)
    if not isinstance(data.get("Resources"), dict):
        raise RunError(f"{path}: a template needs a Resources section")
    return data, lines


def _lines(template: Any) -> dict[str, int]:
    """Lines of the decoded template's resources and their properties (cfn-lint's node marks)."""
    found: dict[str, int] = {}
    resources = template.get("Resources") if isinstance(template, dict) else None
    if not isinstance(resources, dict):
        return found
    for rid, resource in resources.items():
        mark = getattr(rid, "start_mark", None)
        if mark is not None:
            found[str(rid)] = mark.line + 1
        props = resource.get("Properties") if isinstance(resource, dict) else None
        for key in props if isinstance(props, dict) else ():
            mark = getattr(key, "start_mark", None)
            if mark is not None:
                found[f"{rid}.{key}"] = mark.line + 1
    return found


def _transforms(data: dict[str, Any]) -> list[str]:
    found = data.get("Transform", [])
    return [found] if isinstance(found, str) else list(found)


def _expand_sam(data: dict[str, Any], path: Path) -> dict[str, Any]:
    try:
        import boto3
        from samtranslator.model.exceptions import InvalidDocumentException
        from samtranslator.parser.parser import Parser
        from samtranslator.translator.translator import Translator
    except ImportError:  # pragma: no cover
        raise RunError(EXTRA) from None
    for resource in data.get("Resources", {}).values():
        # `sam package` turns local code paths into S3 URIs; the translator insists on one.
        if isinstance(resource, dict) and resource.get("Type") == "AWS::Serverless::Function":
            props = resource.setdefault("Properties", {})
            if "InlineCode" not in props and "ImageUri" not in props:
                props["CodeUri"] = "s3://esmsim-import/code.zip"

    class AnyPolicy(dict[str, str]):
        """Managed policies by name: any name is an AWS managed policy here (no IAM look-up)."""

        def __missing__(self, name: str) -> str:
            return f"arn:aws:iam::aws:policy/{name}"

        def __contains__(self, name: object) -> bool:
            return True

    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name="us-east-1"))
    try:
        expanded: dict[str, Any] = translator.translate(
            data, parameter_values={}, get_managed_policy_map=AnyPolicy
        )
        return expanded
    except InvalidDocumentException as error:
        causes = "; ".join(str(cause) for cause in error.causes)
        raise RunError(f"{path}: SAM cannot expand this template: {causes}") from None
