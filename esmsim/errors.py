"""User-facing errors: a scenario problem is a list of located issues, printed one line each."""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

Path = tuple[str | int, ...]


def format_path(path: Path) -> str:
    """Render ``("mappings", 0, "batch_size")`` as ``mappings[0].batch_size``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass(frozen=True)
class Issue:
    """One problem (or warning) at one key of a scenario."""

    path: Path
    message: str
    severity: Literal["error", "warning"] = "error"
    file: str | None = None
    line: int | None = None
    origin: str | None = None  # e.g. "--set" when the value came from the command line

    def located(self, file: str | None, line: int | None, origin: str | None = None) -> Issue:
        """Return a copy pinned to a file and line."""
        return replace(self, file=file, line=line, origin=origin)

    def format(self) -> str:
        """``file:line: key.path: message`` (``warning:`` after the location for warnings)."""
        where = []
        if self.origin:
            where.append(self.origin)
        elif self.file:
            where.append(f"{self.file}:{self.line}" if self.line else self.file)
        if self.severity == "warning":
            where.append("warning")
        key = format_path(self.path)
        head = ": ".join([*where, key] if key else where)
        # Names and values come from the user's file: a control character printed raw could rewrite
        # the terminal line (an escape sequence) or fake a second message (a newline).
        return printable(f"{head}: {self.message}" if head else self.message)


class ScenarioError(Exception):
    """A scenario that cannot be run, with every problem found."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(issue.format() for issue in self.issues))

    @classmethod
    def one(cls, message: str) -> ScenarioError:
        """A problem with no place in the file (an option's value): one line, as given."""
        return cls([Issue((), message)])


class OutputError(ScenarioError):
    """An output directory or file esmsim cannot use (missing rights, a file in the way, corrupt)."""

    def __init__(self, message: str) -> None:
        super().__init__([Issue((), message)])


class EsmsimWarning(UserWarning):
    """Something esmsim repaired or doubts, printed as one ``warning:`` line; the work goes on."""


class RunError(Exception):
    """A run refused or stopped for a reason the user can act on; its message is one line."""


def locate(issue: Issue, file: str | None, lines: dict[Path, int], origin: dict[Path, str]) -> Issue:
    """Pin one issue to the longest prefix of its path that has a known origin or line.

    Args:
        issue: The issue to place.
        file: The scenario file's name as the user wrote it.
        lines: 1-based line of each key path in the file.
        origin: Label (``--set KEY``) of key paths whose value did not come from the file.

    Returns:
        A copy of ``issue`` with ``file``, ``line`` and ``origin`` set.
    """
    path = issue.path
    for cut in range(len(path), -1, -1):
        prefix = path[:cut]
        if prefix in origin:
            return issue.located(file, None, origin[prefix])
        if prefix in lines:
            return issue.located(file, lines[prefix])
    return issue.located(file, None)


def format_number(x: float) -> str:
    """A number as written in a scenario: integers without a decimal point, others to 10 digits."""
    if isinstance(x, int) or (x.is_integer() and abs(x) < 1e16):
        return str(int(x))
    return format(x, ".10g")


def show_value(value: Any) -> str:
    """A value as a user would recognise it from their file."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return format_number(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return one_line(repr(value))[:60]


def printable(text: str) -> str:
    r"""``text`` with control and other invisible characters escaped (``\x1b``, ``\u200b``)."""
    return "".join(_escape(c) if _invisible(c) else c for c in text)


def _invisible(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] == "C" or category in ("Zl", "Zp")  # controls, format marks, line breaks


def _escape(char: str) -> str:
    if char.isascii():
        return repr(char)[1:-1]
    return f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}"


def did_you_mean(word: str, choices: list[str]) -> str:
    """`` (did you mean 'x'?)`` when a close match exists, else the list of allowed values."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known: {', '.join(sorted(choices))})" if choices else ""


def one_line(text: str) -> str:
    """Fold a multi-line message into one line."""
    return re.sub(r"\s*\n\s*", "; ", text.strip())
