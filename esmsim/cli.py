"""Command line: ``esmsim validate``, ``esmsim run``.

Heavy imports (pandas, matplotlib, the model) happen inside commands so ``esmsim --help`` stays fast.
A scenario problem prints one line per issue (``file:line: key.path: message``) and exits with 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from esmsim._version import __version__
from esmsim.errors import ScenarioError

F = TypeVar("F", bound=Callable[..., Any])

#: Exit code for a user's input mistake (a bad scenario, a bad --set).
EXIT_BAD_INPUT = 2


def _user_errors(func: F) -> F:
    """Turn scenario problems into located one-line messages and exit code 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ScenarioError as error:
            for issue in error.issues:
                click.echo(issue.format(), err=True)
            sys.exit(EXIT_BAD_INPUT)

    return wrapper  # type: ignore[return-value]


def _load(path: str, overrides: Sequence[str]) -> Any:
    from esmsim.scenario.loader import load_scenario_with_warnings

    scenario, warnings = load_scenario_with_warnings(path, overrides)
    for issue in warnings:
        click.echo(issue.format(), err=True)
    return scenario


scenario_argument = click.argument("scenario_file", type=click.Path(dir_okay=False))
set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a scenario key, e.g. --set mappings[0].batch_size=100 (repeatable; VALUE is YAML).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="esmsim")
def main() -> None:
    """Simulate AWS Lambda event source mappings for capacity planning."""


@main.command()
@scenario_argument
@set_option
@_user_errors
def validate(scenario_file: str, overrides: tuple[str, ...]) -> None:
    """Check a scenario file without running it."""
    scenario = _load(scenario_file, overrides)
    click.echo(
        f"{scenario_file}: ok: {scenario.name!r}, {len(scenario.sources)} source(s), "
        f"{len(scenario.functions)} function(s), {len(scenario.mappings)} mapping(s)"
    )


@main.command()
@scenario_argument
@set_option
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Seed (default: the scenario's).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="out",
    show_default=True,
    help="Directory for summary.json, timeseries.parquet and timeseries.png.",
)
@click.option("--no-plot", is_flag=True, help="Skip the PNG.")
@_user_errors
def run(
    scenario_file: str, overrides: tuple[str, ...], seed: int | None, out_dir: str, no_plot: bool
) -> None:
    """Run one scenario and write its summary, time series and plot."""
    from esmsim.report import print_summary, write_run
    from esmsim.run import simulate

    scenario = _load(scenario_file, overrides)
    result = simulate(scenario, seed=seed)
    print_summary(result, click.echo)
    written = write_run(result, Path(out_dir), plot=not no_plot)
    for path in written:
        click.echo(f"wrote {path}")
