"""An imported scenario written as YAML: placeholders and what was not imported marked in comments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from esmsim.errors import Issue, ScenarioError
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
    lines = text.splitlines()
    starts: dict[str, int] = {}  # each key's dotted path (`mappings[0].filter`) -> its line
    root = yaml.compose(text)
    if root is not None:
        _key_lines(root, "", starts)
    marked: dict[int, list[str]] = {}
    for mark in imported.placeholders:
        if mark in starts:
            marked.setdefault(starts[mark], []).append(mark)
    owners: dict[int, str] = {}  # each line -> the outermost key it starts
    for path, line in starts.items():
        if line not in owners or len(path) < len(owners[line]):
            owners[line] = path
    for line, marks in marked.items():
        owner = owners[line]
        inside = sorted(m[len(owner) + 1 :] for m in marks if m != owner)
        note = PLACEHOLDER_NOTE if owner in marks else f"{', '.join(inside)}: {PLACEHOLDER_NOTE}"
        lines[line] = f"{lines[line]}  # {note}"
    head = [f"# Imported from {template.name} by esmsim import. Values marked PLACEHOLDER are not in it."]
    head += [f"# note: {note}" for note in imported.notes]
    head += [f"# not imported: {item}" for item in imported.skipped]
    return "\n".join(head + lines) + "\n"


def _key_lines(node: yaml.Node, path: str, out: dict[str, int]) -> None:
    """The line each key (or list item) of ``node`` starts on, by its dotted path."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            inner = f"{path}.{key.value}" if path else str(key.value)
            out[inner] = key.start_mark.line
            _key_lines(value, inner, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            inner = f"{path}[{i}]"
            out[inner] = value.start_mark.line
            _key_lines(value, inner, out)


def located(issue: Issue, imported: Imported, template: Path) -> Issue:
    """``issue`` (at a key of the imported scenario) pinned to the template's line it came from.

    A function or source is named by its resource's logical ID, a mapping by the resource recorded
    for it, a trigger by its source; a resource SAM generated points at the SAM resource it came
    from (the longest logical ID of the template it starts with). The key's own property line when
    the template wrote it, else the resource's line, else the file alone.
    """
    path = issue.path
    rid: str | None = None
    if len(path) >= 2 and path[0] in ("functions", "sources"):
        rid = str(path[1])
    elif len(path) >= 2 and path[0] == "mappings":
        rid = imported.origins.get(f"mappings[{path[1]}]")
    elif len(path) >= 2 and path[0] == "triggers" and isinstance(path[1], int):
        triggers = imported.data.get("triggers", [])
        rid = triggers[path[1]]["source"] if path[1] < len(triggers) else None
    lines = imported.lines
    if rid is not None and rid not in lines:
        written = [r for r in lines if "." not in r and rid.startswith(r)]
        rid = max(written, key=len) if written else None
    line = None
    if rid is not None:
        prop = f"{rid}.{path[2]}" if len(path) > 2 and isinstance(path[2], str) else None
        line = lines.get(prop, lines.get(rid)) if prop is not None else lines.get(rid)
    return issue.located(str(template), line)


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
    try:
        validate_scenario(imported.data)
    except ScenarioError as error:  # the template's own mistake: point at its lines
        raise ScenarioError([located(issue, imported, template) for issue in error.issues]) from None
    with atomic_write(out) as handle:
        handle.write(render(imported, template))
    return imported
