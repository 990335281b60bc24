"""Scenario file formats: YAML (1.2 scalars, no duplicate keys) and TOML, each with a line map.

Reading returns the raw mapping and a map from key paths (``("mappings", 0, "batch_size")``) to the
1-based line where each key or list item is written, so every problem found later can be located.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Hashable
from typing import Any

import yaml

from esmsim.errors import Issue, Path, ScenarioError, one_line, show_value

# --------------------------------------------------------------------------------------------------
# YAML


#: Most levels of nesting a scenario file may have; a real one has under 10. PyYAML composes nodes
#: recursively, so a deeper document would end in a RecursionError instead of a message.
MAX_DEPTH = 64
#: Most values a document may expand to. YAML aliases repeat their anchor's whole contents, so a few
#: hundred bytes can expand to billions of values ("billion laughs"); a real scenario has hundreds.
MAX_NODES = 1_000_000


class _TooLarge(Exception):
    """A document nested too deep, expanding too far or containing itself."""

    def __init__(self, message: str, where: yaml.Node | Any) -> None:
        super().__init__(message)
        mark = where.start_mark if isinstance(where, yaml.Node) else where  # a node or a mark
        self.line: int | None = mark.line + 1 if mark is not None else None


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 core-schema scalars (see the module docstring)."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        """Compose one node, refusing nesting deeper than :data:`MAX_DEPTH` before Python's stack does."""
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                event: yaml.Event = self.peek_event()  # type: ignore[no-untyped-call]
                raise _TooLarge(_too_deep(), event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    assert isinstance(node, yaml.ScalarNode)
    text = str(loader.construct_scalar(node))
    sign, digits = (-1, text[1:]) if text.startswith("-") else (1, text.lstrip("+"))
    try:
        if digits.startswith("0o"):
            return sign * int(digits[2:], 8)
        if digits.startswith("0x"):
            return sign * int(digits[2:], 16)
        return sign * int(digits, 10)
    except ValueError:
        raise yaml.constructor.ConstructorError(
            None, None, f"{text!r} is not an integer", node.start_mark
        ) from None


_Yaml12Loader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+.0123456789",
    ),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("merge", r"^(?:<<)$", "<"),
):
    _Yaml12Loader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(_pattern), list(_first))
_Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)

_MERGE_TAG = "tag:yaml.org,2002:merge"


def parse_yaml(text: str, file: str | None = None) -> tuple[Any, dict[Path, int]]:
    """Parse one YAML document with YAML 1.2 scalars, rejecting duplicate keys.

    Args:
        text: The document.
        file: Name to put on issues.

    Returns:
        The value (``None`` for an empty document) and the line of every mapping key and sequence item.

    Raises:
        ScenarioError: A syntax error (one issue at the parser's line) or duplicate keys (one each).
    """
    loader = _Yaml12Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        _measure(node)
        lines: dict[Path, int] = {(): node.start_mark.line + 1}
        duplicates: list[Issue] = []
        _NodeWalker(loader, lines, duplicates, file).walk(node, ())
        if duplicates:
            raise ScenarioError(duplicates)
        return loader.construct_document(node), lines
    except _TooLarge as error:
        raise ScenarioError([Issue((), str(error), file=file, line=error.line)]) from None
    except yaml.MarkedYAMLError as error:
        raise ScenarioError([_yaml_issue(error, file)]) from None
    except yaml.YAMLError as error:
        raise ScenarioError([Issue((), f"invalid YAML: {one_line(str(error))}", file=file)]) from None
    finally:
        loader.dispose()


def _yaml_issue(error: yaml.MarkedYAMLError, file: str | None) -> Issue:
    mark = error.problem_mark or error.context_mark
    problem, context = error.problem, error.context
    message = f"invalid YAML: {problem or context or 'syntax error'}"
    if problem and context and problem.startswith("but "):  # "expected one document, but found another"
        message = f"invalid YAML: {context}, {problem}"
    elif problem and context:
        where = f" at line {error.context_mark.line + 1}" if error.context_mark else ""
        message += f" ({context}{where})"
    return Issue((), one_line(message), file=file, line=mark.line + 1 if mark else None)


def _too_deep() -> str:
    return f"nested more than {MAX_DEPTH} levels deep (a scenario needs fewer than 10)"


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _measure(root: yaml.Node) -> None:
    """Refuse a document that contains itself, or too big once its aliases are expanded.

    Too big: past :data:`MAX_NODES` values or :data:`MAX_DEPTH` levels. Each node is visited once, so
    measuring an alias bomb costs no more than its text.
    """
    done: dict[int, tuple[int, int]] = {}  # node -> (values, levels) of its expansion
    open_: set[int] = set()  # the nodes on the path from the root to the current one
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            sizes = [done[id(child)] for child in _children(node)]
            values = 1 + sum(size for size, _ in sizes)
            levels = 1 + max((depth for _, depth in sizes), default=0)
            if values > MAX_NODES:
                raise _TooLarge(
                    f"the document expands to more than {MAX_NODES:,} values through YAML aliases "
                    "(each *alias repeats its anchor's contents); a scenario needs a few hundred",
                    node,
                )
            if levels > MAX_DEPTH:
                raise _TooLarge(_too_deep() + " once its aliases are expanded", node)
            done[id(node)] = (values, levels)
            open_.discard(id(node))
            continue
        if id(node) in done:
            continue
        if id(node) in open_:
            raise _TooLarge(
                "an alias refers to a node that contains it: a scenario cannot be recursive", node
            )
        open_.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in done)


class _NodeWalker:
    """Records the line of every key and item, and reports repeated keys, before construction.

    Each node's contents are walked once: a node reached again through an alias gets the line of the
    alias (keys under it fall back to that line), so an alias bomb costs no more than its text.
    """

    def __init__(
        self, loader: yaml.SafeLoader, lines: dict[Path, int], issues: list[Issue], file: str | None
    ):
        self.loader, self.lines, self.issues, self.file = loader, lines, issues, file
        self.walked: set[int] = set()  # nodes whose contents have been walked (anchors are shared)

    def walk(self, node: yaml.Node, path: Path, fill: bool = False) -> None:
        if id(node) in self.walked:
            return
        self.walked.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._mark((*path, i), item, fill)
                self.walk(item, (*path, i), fill)
        elif isinstance(node, yaml.MappingNode):
            seen: dict[Hashable, int] = {}
            merged: list[yaml.Node] = []
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    values = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                    merged.extend(values)
                    continue
                key = self.loader.construct_object(key_node, deep=True)
                if not isinstance(key, Hashable):
                    continue  # the constructor reports unhashable keys with their line
                part = _key_part(key)
                line = key_node.start_mark.line + 1
                if key in seen:
                    self.issues.append(
                        Issue(
                            (*path, part),
                            f"duplicate key {show_value(key)} (first at line {seen[key]})",
                            file=self.file,
                            line=line,
                        )
                    )
                    continue
                seen[key] = line
                self._mark((*path, part), key_node, fill)
                self.walk(value_node, (*path, part), fill)
            for source in merged:  # merged keys count only where not given explicitly
                self._merged_keys(source, path, set())
                self.walk(source, path, fill=True)

    def _merged_keys(self, source: yaml.Node, path: Path, seen: set[int]) -> None:
        """The lines of a merged mapping's own keys, also when its contents were walked elsewhere."""
        if not isinstance(source, yaml.MappingNode) or id(source) in seen:
            return
        seen.add(id(source))
        for key_node, value_node in source.value:
            if key_node.tag == _MERGE_TAG:
                for inner in value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]:
                    self._merged_keys(inner, path, seen)
                continue
            key = self.loader.construct_object(key_node, deep=True)
            if isinstance(key, Hashable):
                self._mark((*path, _key_part(key)), key_node, fill=True)

    def _mark(self, path: Path, node: yaml.Node, fill: bool) -> None:
        if not fill or path not in self.lines:
            self.lines[path] = node.start_mark.line + 1


def _key_part(key: Any) -> str | int:
    if isinstance(key, str) or (isinstance(key, int) and not isinstance(key, bool)):
        return key
    return show_value(key) if isinstance(key, bool) or key is None else str(key)


# --------------------------------------------------------------------------------------------------
# TOML

_TOML_KEY = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_TOML_DOTTED = rf"{_TOML_KEY}(?:\s*\.\s*{_TOML_KEY})*"
_TOML_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_TOML_DOTTED})\s*\]\]?\s*(?:#.*)?$")
_TOML_ASSIGN = re.compile(rf"^\s*({_TOML_DOTTED})\s*=")
_TOML_POSITION = re.compile(r"\s*\(at (?:line (\d+), column \d+|end of document)\)$")


def read_toml(text: str, file: str) -> tuple[dict[str, Any], dict[Path, int]]:
    """Parse TOML text into a mapping and a line map (lines found by matching keys to table headers)."""
    try:
        data = tomllib.loads(text)
        _check_depth(data)
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise ScenarioError([Issue((), _too_deep(), file=file)]) from None
    except tomllib.TOMLDecodeError as error:
        _, duplicates = _toml_lines(text, file)
        if duplicates and "overwrite" in str(error):
            raise ScenarioError(duplicates) from None
        message = str(error)
        match = _TOML_POSITION.search(message)
        line = None
        if match:
            message = message[: match.start()]
            line = (
                int(match.group(1))
                if match.group(1)
                else max(1, text.count("\n") + (not text.endswith("\n")))
            )
        raise ScenarioError([Issue((), f"invalid TOML: {one_line(message)}", file=file, line=line)]) from None
    return data, _toml_lines(text, file)[0]


def _check_depth(data: Any) -> None:
    """Refuse data nested deeper than :data:`MAX_DEPTH` levels (checked without recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise RecursionError
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((child, depth + 1) for child in children)


def _toml_keys(dotted: str) -> list[str]:
    keys = []
    for part in re.findall(_TOML_KEY, dotted):
        keys.append(part[1:-1] if part[0] in "\"'" else part)
    return keys


def _toml_lines(text: str, file: str) -> tuple[dict[Path, int], list[Issue]]:
    """Line of each key by scanning ``[table]`` headers and ``key =`` lines (a heuristic, not a parser).

    Keys inside inline tables and multi-line arrays fall back to the line of the key holding them.
    """
    lines: dict[Path, int] = {(): 1}
    duplicates: list[Issue] = []
    counts: dict[tuple[str, ...], int] = {}  # array-of-tables path -> items so far
    table: Path = ()
    in_string: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if in_string:
            if line.count(in_string) % 2:
                in_string = None
            continue
        header = _TOML_HEADER.match(line)
        if header:
            keys = _toml_keys(header.group(2))
            if header.group(1) == "[[":
                counts[tuple(keys)] = counts.get(tuple(keys), 0) + 1
                for other in [k for k in counts if len(k) > len(keys) and k[: len(keys)] == tuple(keys)]:
                    del counts[other]
            table = _toml_table_path(keys, counts)
            lines.setdefault(table, number)
            lines.setdefault(table[:-1], number)
            continue
        assign = _TOML_ASSIGN.match(line)
        if assign:
            path = table + tuple(_toml_keys(assign.group(1)))
            if path in lines and len(path) > len(table):
                duplicates.append(
                    Issue(
                        path,
                        f"duplicate key {path[-1]!r} (first at line {lines[path]})",
                        file=file,
                        line=number,
                    )
                )
            lines.setdefault(path, number)
            rest = line[assign.end() :]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2:
                    in_string = quote
    return lines, duplicates


def _toml_table_path(keys: list[str], counts: dict[tuple[str, ...], int]) -> Path:
    path: list[str | int] = []
    for i, key in enumerate(keys):
        path.append(key)
        count = counts.get(tuple(keys[: i + 1]))
        if count:
            path.append(count - 1)
    return tuple(path)
