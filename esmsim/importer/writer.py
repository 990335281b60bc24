"""An imported scenario written as YAML: placeholders and what was not imported marked in comments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from esmsim.importer.reader import Imported, import_template

#: The comment that marks them in the written file.
PLACEHOLDER_NOTE = "PLACEHOLDER: not in the template, set it from your measurements"


class _Plain(yaml.SafeDumper):
    """YAML without anchors and aliases (``&id001``): a shared list is written out each time."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(imported: Imported, template: Path) -> str:
    """The scenario as YAML, placeholders and what was not imported marked in comments."""
    text = yaml.dump(imported.data, Dumper=_Plain, sort_keys=False, default_flow_style=None, width=100)
    marks = set(imported.placeholders)
    marked: list[str] = []
    trail: list[str] = []  # the keys of the lines above at each indentation (two spaces a level)
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        depth = (len(line) - len(stripped)) // 2
        key = stripped.split(":", 1)[0]
        trail = [*trail[:depth], key]
        path = ".".join(trail)
        inside = sorted(m[len(path) + 1 :] for m in marks if m.startswith(path + "."))
        if path in marks:
            line = f"{line}  # {PLACEHOLDER_NOTE}"
        elif inside and line.rstrip().endswith("}"):  # a mapping written on one line
            line = f"{line}  # {', '.join(inside)}: {PLACEHOLDER_NOTE}"
        marked.append(line)
    head = [f"# Imported from {template.name} by esmsim import. Values marked PLACEHOLDER are not in it."]
    head += [f"# note: {note}" for note in imported.notes]
    head += [f"# not imported: {item}" for item in imported.skipped]
    return "\n".join(head + marked) + "\n"


def write_scenario(template: Path, out: Path) -> Imported:
    """Import ``template``, check the scenario validates, and write it to ``out`` atomically.

    Raises:
        RunError: The template cannot be read (or the libraries are missing).
        esmsim.errors.ScenarioError: The imported scenario breaks one of AWS's rules (the template's
            own mistake, e.g. a function timeout above its queue's visibility timeout).
    """
    from esmsim.report import atomic_write
    from esmsim.scenario.scenario import validate_scenario

    imported = import_template(template)
    validate_scenario(imported.data)
    with atomic_write(out) as handle:
        handle.write(render(imported, template))
    return imported
