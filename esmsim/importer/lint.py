"""cfn-lint's findings on a template being imported (``esmsim import --lint``).

esmsim validates what it imports against AWS's rules for the settings it models; cfn-lint checks
the whole template against the CloudFormation resource specification (properties esmsim does not
read, types, intrinsic functions). Its findings are reported, not acted on: the import goes on.
"""

from __future__ import annotations

from pathlib import Path

from esmsim.errors import RunError, printable
from esmsim.importer.decode import EXTRA

#: The Region the template is linted for: esmsim's prices and quotas are us-east-1's.
LINT_REGION = "us-east-1"


def lint_lines(template: Path) -> list[str]:
    """One line per cfn-lint finding: ``FILE:LINE: lint error E3034: message``."""
    try:
        from cfnlint.api import ManualArgs, lint_file
    except ImportError:  # pragma: no cover - the extra is installed wherever tests run
        raise RunError(EXTRA) from None
    matches = lint_file(template, config=ManualArgs(regions=[LINT_REGION]))
    return [
        printable(f"{template}:{m.linenumber}: lint {m.rule.severity} {m.rule.id}: {m.message}")
        for m in sorted(matches, key=lambda m: (m.linenumber, m.rule.id))
    ]
