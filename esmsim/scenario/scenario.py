"""The validated scenario: the schema's fields plus AWS's rules across them, validated once.

Validation runs the pydantic schema and then every rule of :mod:`esmsim.scenario.rules`: errors
raise, warnings stay on the object (``scenario.warnings``), so nothing downstream runs the rules again.
A scenario is frozen; :meth:`Scenario.with_changes` and ``model_copy(update=...)`` make validated copies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Self

from pydantic import PrivateAttr, ValidationError, model_validator

from esmsim.errors import Issue, ScenarioError
from esmsim.scenario.live import live_key_problem, managed_key_problem
from esmsim.scenario.messages import issues_from_validation_error
from esmsim.scenario.overrides import Change, apply_changes, parse_key
from esmsim.scenario.rules import check
from esmsim.scenario.shard_plan import ShardCountUpdates
from esmsim.scenario.system import System
from esmsim.scenario.where import Where

__all__ = ["Built", "Scenario", "build", "validate_scenario"]


class Scenario(System):
    """A system of sources, functions and mappings, and how to run it, checked against AWS's rules.

    ``warnings`` holds AWS's recommendations the scenario ignores, found while validating; they are not
    part of the scenario's data (not dumped, not compared).
    """

    _warnings: tuple[Issue, ...] = PrivateAttr(default=())
    _stages: tuple[tuple[float, Scenario], ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _aws_rules(self) -> Scenario:
        issues = check(self)
        if self.changes and not any(issue.severity == "error" for issue in issues):
            stages, found = self._live_stages()
            issues += found
            self._stages = stages
        errors = [issue for issue in issues if issue.severity == "error"]
        if errors:
            # Not a ValueError: pydantic lets it through with the exact key paths intact.
            raise ScenarioError(errors)
        self._warnings = tuple(issue for issue in issues if issue.severity == "warning")
        return self

    @property
    def stages(self) -> tuple[tuple[float, Scenario], ...]:
        """After each live change: when it takes effect, and the system from then on.

        A change takes effect ``update_delay`` after its time; the system is validated as AWS
        validates an update.
        """
        return self._stages

    def _missing(self, path: tuple[str | int, ...]) -> str | None:
        """Why a live change's key names no existing mapping, function or source, or None."""
        section, entity = path[0], path[1]
        if section == "mappings" and not (isinstance(entity, int) and 0 <= entity < len(self.mappings)):
            return f"no mappings[{entity}] (the scenario has {len(self.mappings)} mapping(s))"
        named: dict[str, Any] = {}
        if section == "functions":
            named = dict(self.functions)
        elif section == "sources":
            named = dict(self.sources)
        if section in ("functions", "sources") and entity not in named:
            return f"no {str(section)[:-1]} named {entity!r} ({section}: {', '.join(named)})"
        return None

    def _managed(self, path: tuple[str | int, ...]) -> str | None:
        """Why a live change's source key is one the source's service manages itself, or None."""
        if path[0] != "sources":
            return None
        return managed_key_problem(self.sources[str(path[1])].type, path)

    def _live_stages(self) -> tuple[tuple[tuple[float, Scenario], ...], list[Issue]]:
        """Validate every live change in order, each against the system with the earlier ones made."""
        issues: list[Issue] = []
        stages: list[tuple[float, Scenario]] = []
        data = self.data()
        data.pop("changes", None)
        previous = 0.0
        reshards = ShardCountUpdates()  # UpdateShardCount's limits, call after call
        for i, live in enumerate(self.changes):
            at = ("changes", i)
            if live.at < previous:
                issues.append(
                    Issue((*at, "at"), f"{live.at:g} s is before the change above it ({previous:g} s)")
                )
            previous = live.at
            if live.at >= self.duration:
                issues.append(
                    Issue((*at, "at"), f"{live.at:g} s is after the run ends: it never applies", "warning")
                )
            parsed: list[Change] = []
            for key, value in live.set.items():
                try:
                    path = parse_key(key)
                except ValueError as error:
                    issues.append(Issue((*at, "set", key), str(error)))
                    continue
                problem = live_key_problem(path, value) or self._missing(path) or self._managed(path)
                if problem is not None:
                    issues.append(Issue((*at, "set", key), problem))
                    continue
                parsed.append(Change(path, value, f"changes[{i}] {key}"))
            if len(parsed) < len(live.set):
                continue
            try:
                data, _ = apply_changes(data, Where(), parsed)
                stage = validate_scenario(data)
                if self._pin_reference_memory(stage, data):
                    stage = validate_scenario(data)
            except ScenarioError as error:
                issues += [
                    Issue((*at, "set"), f"at {live.at:g} s: {issue.format()}") for issue in error.issues
                ]
                continue
            problems = reshards.check(live.at, stages[-1][1] if stages else self, stage)
            if problems:
                issues += [Issue((*at, "set"), f"at {live.at:g} s: {problem}") for problem in problems]
                continue
            stages.append((live.at + self.update_delay, stage))
        return tuple(stages), issues

    def _pin_reference_memory(self, stage: Scenario, data: dict[str, Any]) -> bool:
        """Keep the memory a function's duration was measured at when a live change sets its memory.

        ``measured_at_memory_mb`` defaults to the configured memory; after a live change of the
        memory it stays the memory the run started with, so the handler runs faster or slower by
        the CPU share (docs/model.md §5). Pins it in ``data``; whether anything was pinned.
        """
        pinned = False
        for name, fn in stage.functions.items():
            start = self.functions[name]
            if fn.memory_mb != start.memory_mb and fn.measured_at_memory_mb is None:
                data["functions"][name]["measured_at_memory_mb"] = start.memory_mb
                pinned = True
        return pinned

    @property
    def warnings(self) -> tuple[Issue, ...]:
        """AWS's recommendations this scenario does not follow (severity ``"warning"``), unlocated."""
        return self._warnings

    def __eq__(self, other: object) -> bool:
        # The data only: warnings follow from it, and pydantic would also compare private attributes.
        return type(other) is type(self) and self.__dict__ == other.__dict__

    def data(self) -> dict[str, Any]:
        """The keys this scenario was given, as plain data (defaults left out, snake_case spellings)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)

    def with_changes(self, changes: Mapping[str, Any], *, label: str = "--set") -> Scenario:
        """A validated copy with some keys changed.

        Args:
            changes: Dotted key paths as ``--set`` takes them (``mappings[0].batch_size``,
                ``functions.orders.memory_mb``, AWS spellings such as
                ``mappings[0].ScalingConfig.MaximumConcurrency``), each to a plain value (``"500ms"``,
                ``{"dist": "lognormal", ...}``). A change never creates a function or source key by key.
            label: Put before each key in messages: an issue reads ``--set KEY: path: message``.

        Returns:
            The new scenario; this one is unchanged.

        Raises:
            ScenarioError: A key does not parse or apply, or the result is invalid; each issue at a
                changed key is labelled with it.
        """
        parsed: list[Change] = []
        problems: list[Issue] = []
        for key, value in changes.items():
            try:
                parsed.append(Change(parse_key(key), value, f"{label} {key}"))
            except ValueError as error:
                problems.append(Issue((), str(error), origin=f"{label} {key}"))
        if problems:
            raise ScenarioError(problems)
        return build(self.data(), changes=parsed).scenario

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; with ``update``, validated like any scenario (pydantic's own copy skips validation).

        Raises:
            pydantic.ValidationError: An updated value of the wrong type.
            ScenarioError: The copy breaks one of AWS's rules.
        """
        copied = super().model_copy(update=update, deep=deep)
        if not update:
            return copied
        return self.model_validate(copied.model_dump(by_alias=True, exclude_unset=True, warnings=False))


class Built(NamedTuple):
    """A scenario built from raw data and changes."""

    scenario: Scenario
    data: dict[str, Any]  # the raw data after the changes
    where: Where  # where each key of ``data`` came from


def build(raw: Mapping[str, Any], where: Where | None = None, changes: Iterable[Change] = ()) -> Built:
    """Apply changes to a raw scenario and validate it.

    The one path for files, ``--set``, sweep points and :meth:`Scenario.with_changes`.

    Args:
        raw: The scenario as plain data (not modified).
        where: Where its keys came from (a file's lines), to locate issues.
        changes: Changes to apply first, in order (later ones win).

    Returns:
        The validated scenario, the changed data and its origins (to locate the scenario's warnings).

    Raises:
        ScenarioError: Every problem found, each located at its line or change label.
    """
    data, where = apply_changes(dict(raw), where or Where(), changes)
    return Built(validate_scenario(data, where), data, where)


def validate_scenario(raw: Mapping[str, Any], where: Where | None = None) -> Scenario:
    """Validate a raw scenario, every problem located.

    Args:
        raw: The scenario as plain data (not modified).
        where: Where its keys came from.

    Returns:
        The validated scenario.

    Raises:
        ScenarioError: One located issue per problem (schema errors and AWS rule errors).
    """
    try:
        return Scenario.model_validate(raw)
    except ValidationError as error:
        issues = issues_from_validation_error(error)
    except ScenarioError as error:  # the AWS rules, raised by Scenario's after-validator
        issues = error.issues
    raise ScenarioError((where or Where()).place(issues)) from None
