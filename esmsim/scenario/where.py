"""Where each key of a raw scenario came from, so every issue can be printed at its origin.

A key written in the file has a line; a key set by ``--set`` or a sweep point has a label
(``--set mappings[0].batch_size``). Issues found later (by pydantic or by the AWS rules) carry only a
key path; :meth:`Where.place` pins each to the most specific place known.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from esmsim.errors import Issue, Path, locate
from esmsim.scenario.aws_names import with_settings


@dataclass(frozen=True)
class Where:
    """The origin of a raw scenario's keys.

    Attributes:
        file: The scenario file's name as the user wrote it (None: not from a file).
        lines: 1-based line of each key path in the file.
        labels: Label of each key path set outside the file (``--set KEY``).
    """

    file: str | None = None
    lines: Mapping[Path, int] = field(default_factory=dict)
    labels: Mapping[Path, str] = field(default_factory=dict)

    def place(self, issues: Iterable[Issue]) -> list[Issue]:
        """Pin issues to their lines or labels, file order first, then the command line's."""
        # Rules speak of snake_case keys: give them the place of the AWS spelling they were written as.
        lines, labels = with_settings(self.lines), with_settings(self.labels)
        placed = [locate(issue, self.file, lines, labels) for issue in issues]
        return sorted(placed, key=lambda issue: (issue.origin is not None, issue.line or 0))

    def changed(self, path: Path, label: str, replaced: Iterable[Path]) -> Where:
        """The origins after ``path`` was set from ``label``, replacing the values at ``replaced``."""
        gone = [path, *replaced]

        def kept(key: Path) -> bool:
            return not any(key[: len(old)] == old for old in gone)

        lines = {key: line for key, line in self.lines.items() if kept(key)}
        labels = {key: text for key, text in self.labels.items() if kept(key)}
        labels[path] = label
        return Where(self.file, lines, labels)
