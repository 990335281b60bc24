"""Command line: ``esmsim validate``, ``run``, ``sweep``, ``plot``, ``iam`` and ``import``.

Heavy imports (pandas, matplotlib, the model) happen inside commands so ``esmsim --help`` stays fast.
A scenario problem prints one line per issue (``file:line: key.path: message``) and exits with 2.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from esmsim._version import __version__
from esmsim.errors import EsmsimWarning, RunError, ScenarioError, printable

F = TypeVar("F", bound=Callable[..., Any])

#: The largest seed (``esmsim.scenario.system.SEED_LIMIT - 1``), written out so that the CLI's
#: import (and ``esmsim --version``) does not load the scenario schema; a test keeps them equal.
SEED_MAX = 2**63 - 1

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
        except RunError as error:  # refused by its estimate, or stopped: one line, never a traceback
            click.echo(printable(str(error)), err=True)
            sys.exit(EXIT_BAD_INPUT)

    return wrapper  # type: ignore[return-value]


def _load(path: str, overrides: Sequence[str]) -> Any:
    from esmsim.scenario.loader import load_scenario_with_warnings

    scenario, warnings = load_scenario_with_warnings(path, overrides)
    for issue in warnings:
        click.echo(issue.format(), err=True)
    return scenario


def _size(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    from esmsim.units import parse_size

    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def _estimate(scenario_file: str, scenario: Any, *, trace: bool = False) -> Any:
    """The run's estimate; its event-bound settings printed as warnings, one line each."""
    from esmsim.estimate import estimate

    found = estimate(scenario, trace=trace)
    for text in found.event_bound:
        click.echo(printable(f"{scenario_file}: warning: {text}"), err=True)
    return found


def _refuse(found: Any, max_memory: float | None, force: bool) -> None:
    from esmsim.estimate import refusal

    reason = None if force else refusal(found, max_memory)
    if reason is not None:
        raise RunError(reason)


max_memory_option = click.option(
    "--max-memory",
    callback=_size,
    metavar="SIZE",
    default=None,
    help="Refuse a run whose estimated peak memory is above SIZE (e.g. 4GB; default: three quarters "
    "of this machine's memory).",
)
#: ``--format``: Parquet always, CSV copies on request (runs and sweeps alike).
format_option = click.option(
    "--format",
    "formats",
    type=click.Choice(["parquet", "csv"]),
    multiple=True,
    default=("parquet",),
    show_default=True,
    help="Table formats (parquet is always written; csv adds CSV copies).",
)
force_option = click.option(
    "--force", is_flag=True, help="Run even when the estimate is beyond the memory or event limits."
)

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
    warnings.showwarning = _show_warning


_python_show_warning = warnings.showwarning


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """Show the simulator's own warnings as one line on stderr; anything else as Python shows it."""
    if issubclass(category, EsmsimWarning):
        click.echo(f"warning: {printable(str(message))}", err=True)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


@main.command()
@scenario_argument
@set_option
@_user_errors
def validate(scenario_file: str, overrides: tuple[str, ...]) -> None:
    """Check a scenario file without running it (its sweep section and every sweep point too)."""
    scenario = _load(scenario_file, overrides)
    summary = (
        f"{scenario_file}: ok: {scenario.name!r}, {len(scenario.sources)} source(s), "
        f"{len(scenario.functions)} function(s), {len(scenario.mappings)} mapping(s)"
    )
    if scenario.sweep is None:
        found = _estimate(scenario_file, scenario)
        click.echo(summary)
        click.echo(f"estimate: {found.line()}")
        return
    from esmsim.sweep import plan
    from esmsim.sweep.runner import largest_point

    the_plan = plan(scenario_file, overrides=overrides)
    keys = list(the_plan.points[0].params) if the_plan.points else []
    click.echo(summary)
    click.echo(
        f"sweep: {len(the_plan.points)} configuration(s) x {the_plan.replications} replication(s) = "
        f"{the_plan.runs} runs over {', '.join(keys) or 'no swept keys'}"
    )
    biggest = largest_point(the_plan)
    if biggest is not None:
        point, found = biggest
        for text in found.event_bound:
            click.echo(printable(f"{scenario_file}: warning: point {point.index}: {text}"), err=True)
        click.echo(f"estimate of the largest run (point {point.index}): {found.line()}")


@main.command()
@scenario_argument
@set_option
@click.option(
    "--seed", type=click.IntRange(0, SEED_MAX), default=None, help="Seed (default: the scenario's)."
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(),  # checked by esmsim itself: one line, before any simulation
    default="out",
    show_default=True,
    help="Directory for summary.json, timeseries.parquet, mapping_timeseries.parquet, "
    "shard_timeseries.parquet (streams) and timeseries.png.",
)
@click.option(
    "--replication",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Replication number: its own random streams (a sweep's replication N, with --seed and --set).",
)
@click.option(
    "--point",
    type=click.IntRange(min=0),
    default=None,
    help="Run configuration N of the scenario's sweep (the `point` column of its tables).",
)
@format_option
@click.option("--no-plot", is_flag=True, help="Skip the PNG.")
@click.option(
    "--trace",
    is_flag=True,
    help="Also write every invocation, throttle (with AWS's reason) and record outcome as "
    "invocations.parquet, throttles.parquet and records.parquet (memory and files grow with the run).",
)
@max_memory_option
@force_option
@_user_errors
def run(
    scenario_file: str,
    overrides: tuple[str, ...],
    seed: int | None,
    out_dir: str,
    replication: int,
    point: int | None,
    formats: tuple[str, ...],
    no_plot: bool,
    trace: bool,
    max_memory: float | None,
    force: bool,
) -> None:
    """Run one scenario and write its summary, time series and plot.

    ``--point N --replication R`` reproduces one row of the scenario's sweep exactly.
    """
    from esmsim.report import prepare_out_dir, print_summary, write_run
    from esmsim.run import simulate

    scenario = _load(scenario_file, overrides)
    if scenario.sweep is not None:  # not run, but a broken sweep section is not silently carried along
        from esmsim.sweep import plan

        the_plan = plan(scenario_file, overrides=overrides)
        if point is not None:
            if point >= len(the_plan.points):
                raise ScenarioError.one(
                    f"--point {point}: the sweep has {len(the_plan.points)} configuration(s) (0 to "
                    f"{len(the_plan.points) - 1})"
                )
            chosen = the_plan.points[point]
            click.echo(f"point {point}: {chosen.label()}")
            scenario = type(scenario).model_validate(chosen.raw)
    elif point is not None:
        raise ScenarioError.one(f"--point {point}: {scenario_file} has no sweep section")
    _refuse(_estimate(scenario_file, scenario, trace=trace), max_memory, force)
    prepare_out_dir(Path(out_dir))  # before the simulation: a long run is never lost at write time
    result = simulate(scenario, seed=seed, replication=replication, trace=trace, force=True)  # checked above
    print_summary(result, click.echo)
    written = write_run(result, Path(out_dir), plot=not no_plot, csv="csv" in formats)
    from esmsim.html_report import write_report

    for path in [*written, write_report(Path(out_dir))]:
        click.echo(f"wrote {path}")


@main.command()
@scenario_argument
@set_option
@click.option(
    "--executor",
    default="local",
    show_default=True,
    help="serial, local[:N] (process pool), dask-local:N (Dask LocalCluster) or dask://host:port.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(),  # checked by esmsim itself: one line, before any simulation
    default="out/sweep",
    show_default=True,
    help="Directory for runs.parquet, aggregate.parquet, manifest.json and the plots; rerun to resume.",
)
@click.option(
    "--replications", type=click.IntRange(min=1), default=None, help="Override the sweep's replications."
)
@format_option
@click.option("--no-plot", is_flag=True, help="Skip the PNG plots.")
@click.option(
    "--allow-version-change",
    is_flag=True,
    help="Resume a sweep directory whose runs another esmsim version made (mixing their results).",
)
@max_memory_option
@force_option
@_user_errors
def sweep(
    scenario_file: str,
    overrides: tuple[str, ...],
    executor: str,
    out_dir: str,
    replications: int | None,
    formats: tuple[str, ...],
    no_plot: bool,
    allow_version_change: bool,
    max_memory: float | None,
    force: bool,
) -> None:
    """Run a scenario's sweep: every configuration x replication, curves and a recommendation."""
    from tqdm.auto import tqdm

    from esmsim.sweep import analyse, iter_sweep, plan
    from esmsim.sweep.console import Progress, table_lines
    from esmsim.sweep.plots import PLOT_FILES
    from esmsim.sweep.runner import largest_point
    from esmsim.sweep.spec import run_id
    from esmsim.sweep.store import JOURNAL, OUTPUT_FILES, read_journal

    the_plan = plan(scenario_file, overrides=overrides, replications=replications)
    for text in the_plan.warnings:
        click.echo(printable(text), err=True)
    biggest = largest_point(the_plan)
    if biggest is not None:
        point, found = biggest
        for text in found.event_bound:
            click.echo(printable(f"{scenario_file}: warning: point {point.index}: {text}"), err=True)
        _refuse(found, max_memory, force)
    keys = list(the_plan.points[0].params) if the_plan.points else []
    click.echo(
        f"{the_plan.name}: {len(the_plan.points)} configuration(s) x {the_plan.replications} replication(s) "
        f"= {the_plan.runs} runs over {', '.join(keys) or 'no swept keys'}; "
        f"executor {executor}; out {out_dir}"
    )
    out = Path(out_dir)
    journal = read_journal(out / JOURNAL)
    wanted = {run_id(p, r) for p in the_plan.points for r in range(the_plan.replications)}
    done_before = sum(1 for rid, record in journal.items() if rid in wanted and record.get("error") is None)
    failed: list[dict[str, Any]] = []
    ran = 0
    bar = tqdm(total=the_plan.runs, initial=done_before, unit="run", disable=None, dynamic_ncols=True)
    # Piped output (CI, tee) gets no bar: a plain line every tenth of the runs or half-minute instead.
    progress = Progress(the_plan.runs, done_before) if bar.disable else None
    try:
        for record in iter_sweep(
            the_plan,
            executor=executor,
            out=out,
            csv="csv" in formats,
            plots=not no_plot,
            allow_version_change=allow_version_change,
            force=True,  # the largest point was checked above
        ):
            ran += 1
            bar.update(1)
            if record["error"] is not None:
                failed.append(record)
            line = progress.step(len(failed)) if progress is not None else None
            if line:  # where the bar would have been: stdout stays the tables and the verdict
                click.echo(line, err=True)
    except KeyboardInterrupt:
        bar.close()
        click.echo(
            f"interrupted: {out_dir} holds every finished run; run the same command again to resume", err=True
        )
        sys.exit(130)
    bar.close()
    runs = analyse(the_plan, read_journal(out / JOURNAL))
    skipped = the_plan.runs - ran
    if done_before and skipped > 0:
        click.echo(f"resumed: {skipped} run(s) were already done in {out_dir}")
    verdict = runs.attrs["recommendation"]
    for line in table_lines(runs.attrs["aggregate"], keys, verdict.rejected if verdict is not None else {}):
        click.echo(line)
    if verdict is not None:
        click.echo(verdict.message)
        objective = the_plan.sweep.objective
        for line in verdict.context(objective.minimize if objective else ""):
            click.echo(line)
    for name in (*OUTPUT_FILES, *PLOT_FILES, "report.html"):
        if (out / name).exists():
            click.echo(f"wrote {out / name}")
    if failed:
        click.echo(f"{len(failed)} run(s) failed:", err=True)
        for record in failed:
            params = ", ".join(f"{k}={v}" for k, v in record["params"].items())
            click.echo(
                f"  point {record['point']} ({params}) "
                f"replication {record['replication']}: {record['error']}",
                err=True,
            )
        sys.exit(1)


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, exists=True))
@_user_errors
def report(out_dir: str) -> None:
    """Write OUT_DIR/report.html: one self-contained page of a run's or a sweep's results.

    The scenario in words, the verdict, the numbers per mapping and function, the figures
    (embedded), the warnings, what limited the run, and provenance; it opens offline.
    """
    from esmsim.html_report import write_report

    click.echo(f"wrote {write_report(Path(out_dir))}")


@main.command()
@click.argument("sweep_dir", type=click.Path(file_okay=False, exists=True))
@click.option(
    "--format",
    "formats",
    type=click.Choice(["png", "csv"]),
    multiple=True,
    default=("png",),
    show_default=True,
    help="png redraws the plots; csv also exports the tables as CSV.",
)
@_user_errors
def plot(sweep_dir: str, formats: tuple[str, ...]) -> None:
    """Redraw a sweep's plots (and export CSV) from its output directory."""
    from esmsim.sweep.plots import write_plots
    from esmsim.sweep.store import export_csv, read_sweep_dir

    out = Path(sweep_dir)
    found = read_sweep_dir(out)
    if "png" in formats:
        for path in write_plots(found.table, found.sweep, found.points, out):
            click.echo(f"wrote {path}")
    if "csv" in formats:
        for path in export_csv(out):
            click.echo(f"wrote {path}")


@main.command()
@scenario_argument
@set_option
@_user_errors
def iam(scenario_file: str, overrides: tuple[str, ...]) -> None:
    """Print the least-privilege IAM policies a scenario needs, as JSON.

    Each function's execution-role policy (reading its mappings' sources, writing logs, sending to its
    destinations) and the resource policies its triggers need (Lambda permissions, queue policies).
    ARNs use the scenario's account.id and account.region. Needs the aws extra (policy_sentry).
    """
    import json

    from esmsim.iam import policies

    scenario = _load(scenario_file, overrides)
    click.echo(json.dumps(policies(scenario), indent=2))


@main.command(name="import")
@click.argument("template", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--out",
    "out_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="The scenario file to write (YAML).",
)
@click.option(
    "--lint",
    is_flag=True,
    help="Also check the template with cfn-lint and print its findings (the import goes on).",
)
@_user_errors
def import_(template: str, out_file: str, lint: bool) -> None:
    """Turn a CloudFormation or SAM template into a scenario file.

    Functions, queues, streams, tables' streams, topics and their subscriptions, bucket
    notifications, EventBridge rules, event source mappings and event invoke configs are carried
    over; traffic and handler durations become marked placeholders. What cannot be imported is
    listed. Needs the aws extra (cfn-lint, aws-sam-translator).
    """
    from esmsim.importer import write_scenario

    if lint:
        from esmsim.importer.lint import lint_lines

        for line in lint_lines(Path(template)):
            click.echo(line, err=True)
    imported = write_scenario(Path(template), Path(out_file))
    for note in imported.notes:
        click.echo(f"{template}: note: {printable(note)}", err=True)
    for item in imported.skipped:
        click.echo(f"{template}: not imported: {printable(item)}", err=True)
    click.echo(
        f"wrote {out_file} ({len(imported.placeholders)} placeholder(s) to set: "
        f"{', '.join(imported.placeholders) or 'none'})"
    )


@main.command()
@click.argument("out_dir", type=click.Path(exists=True, file_okay=False))
@_user_errors
def explain(out_dir: str) -> None:
    """Print what limited a finished run and where its latency went (OUT_DIR as `esmsim run` wrote it).

    Reads OUT_DIR/summary.json and, for the slowest minutes, OUT_DIR/timeseries.parquet.
    """
    from esmsim.report import explain_lines

    for line in explain_lines(Path(out_dir)):
        click.echo(line)
