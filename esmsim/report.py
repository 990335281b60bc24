"""Reporting a run: a readable summary on the terminal, and its files written atomically."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from esmsim.errors import OutputError, RunError
from esmsim.keys import LATENCY_PART_KEYS
from esmsim.result import RunResult
from esmsim.units import format_duration

#: Every file ``write_run`` can write: a run replaces all of them, so none is left from an earlier run.
RUN_FILES: tuple[str, ...] = (
    "summary.json",
    "timeseries.parquet",
    "mapping_timeseries.parquet",
    "shard_timeseries.parquet",
    "resources.parquet",
    "invocations.parquet",
    "throttles.parquet",
    "records.parquet",
    "timeseries.png",
    "report.html",  # written by esmsim.html_report after the run's files
)
#: With ``csv``, every table is also written as CSV beside its Parquet file.
RUN_FILES += tuple(name.replace(".parquet", ".csv") for name in RUN_FILES if name.endswith(".parquet"))


def prepare_out_dir(out_dir: Path, option: str = "--out") -> Path:
    """Create ``out_dir`` if needed and prove it writable, before any simulation time is spent.

    Raises:
        OutputError: ``out_dir`` is a file, lies under a file, or cannot be created or written.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out_dir, prefix=".esmsim-probe-")
        os.close(fd)
        os.unlink(probe)
    except FileExistsError:
        raise OutputError(f"{option} {out_dir}: is a file, not a directory") from None
    except NotADirectoryError:
        raise OutputError(f"{option} {out_dir}: a part of the path is a file, not a directory") from None
    except OSError as error:
        raise OutputError(f"{option} {out_dir}: cannot write there ({error.strerror or error})") from None
    return out_dir


@contextmanager
def atomic_write(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Write to a temporary file beside ``path`` and rename it into place only once complete.

    A crash or Ctrl-C mid-write leaves the previous file (or none), never a truncated one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_default(value: Any) -> Any:
    """``json.dump``'s fallback for numpy scalars."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean(value: Any) -> Any:
    """JSON has no NaN: missing numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def write_run(result: RunResult, out_dir: Path, *, plot: bool = True, csv: bool = False) -> list[Path]:
    """Write a run's files into ``out_dir``, replacing every file an earlier run left there.

    ``summary.json``, ``timeseries.parquet``, ``mapping_timeseries.parquet``,
    ``shard_timeseries.parquet`` (streams only), ``resources.parquet`` (per function, mapping and
    shard: invocations, errors, throttles, concurrency, limits), for a traced run ``invocations.parquet``,
    ``throttles.parquet`` and ``records.parquet``, and unless ``plot`` is False ``timeseries.png``;
    with ``csv`` a CSV copy of each table too (``timeseries.csv`` ...).

    Every file is written completely into a staging directory first and only then moved into place,
    so a failure while writing leaves the earlier run's files untouched. Files of an earlier run
    that this run does not write (a stream run's shard table after an SQS run, a plot after
    ``--no-plot``) are removed, and ``summary.json``, moved last, lists the files of its run.

    Raises:
        OutputError: ``out_dir`` cannot be created or written.
    """
    prepare_out_dir(out_dir)
    tables = {
        "timeseries.parquet": result.timeseries,
        "mapping_timeseries.parquet": result.mapping_timeseries,
        "shard_timeseries.parquet": result.shard_timeseries,
        "resources.parquet": result.resources,
    }
    if result.traced:
        tables |= {
            "invocations.parquet": result.invocations,
            "throttles.parquet": result.throttles,
            "records.parquet": result.records,
        }
    names = [n for n, t in tables.items() if not t.empty or n in ("timeseries.parquet", "throttles.parquet")]
    if csv:
        for name in list(names):
            tables[name.replace(".parquet", ".csv")] = tables[name]
            names.append(name.replace(".parquet", ".csv"))
    if plot:
        names.append("timeseries.png")
    try:
        staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".esmsim-run-"))
        try:
            for name in names:
                with (staging / name).open("wb") as handle:
                    if name == "timeseries.png":
                        from esmsim.plots import plot_run

                        plot_run(result).savefig(handle, format="png", dpi=110)
                    elif name.endswith(".csv"):
                        table = tables[name]  # a named index (minute) is a column of the CSV too
                        handle.write(table.to_csv(index=table.index.name is not None).encode("utf-8"))
                    else:
                        tables[name].to_parquet(handle, compression="zstd")
                    handle.flush()
                    os.fsync(handle.fileno())
            document = {**_clean(result.to_dict()), "files": ["summary.json", *names]}
            with (staging / "summary.json").open("w", encoding="utf-8") as handle:
                json.dump(document, handle, indent=2, default=json_default)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            for name in names:
                os.replace(staging / name, out_dir / name)
            for name in set(RUN_FILES) - {"summary.json", *names}:
                (out_dir / name).unlink(missing_ok=True)  # an earlier run's, not this one's
            os.replace(staging / "summary.json", out_dir / "summary.json")
        finally:
            for leftover in staging.iterdir():
                leftover.unlink()
            staging.rmdir()
    except OSError as error:
        raise OutputError(f"--out {out_dir}: cannot write the run's files ({error})") from None
    return [out_dir / name for name in ("summary.json", *names)]


def _num(value: float, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"


def _seconds(value: float) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value * 1000:,.0f} ms" if value < 10 else f"{value:,.1f} s"


def _usd(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"${value:,.2f}" if value >= 1 else f"${value:,.4f}"


def _reasons(reasons: dict[str, int]) -> str:
    """Throttle counts by AWS's reason, for the summary line."""
    if not reasons:
        return ""
    return "  (" + ", ".join(f"{name} {_num(n)}" for name, n in reasons.items()) + ")"


def _dlq_label(result: RunResult) -> str:
    """What ``records_dlq`` counts here: a queue's dead-letter queue, a stream's on-failure destination."""
    queues = result.scenario_has("sqs", "mq", "s3", "sns", "eventbridge")
    streams = any(m.source_type in ("kinesis", "dynamodb", "kafka") for m in result.scenario.mappings)
    if queues and streams:
        return "DLQ or on-failure"
    return "to on-failure dest." if streams else "dead-lettered (DLQ)"


#: A run that ends with more than this share of its records unprocessed did not keep up.
OVERLOADED_SHARE = 0.05


def _month_caveat(result: RunResult) -> list[str]:
    """Why ``cost_per_month_usd`` may not be a month of this run: it scales a run that is not steady."""
    s, scenario = result.summary, result.scenario
    reasons = []
    if s["records_in"] and s["records_in_flight_end"] > OVERLOADED_SHARE * s["records_in"]:
        share = s["records_in_flight_end"] / s["records_in"]
        reasons.append(f"{share:.0%} of the records were still unprocessed at the end (overloaded)")
    transient = scenario.stages or any(
        getattr(source, "traffic", None) is not None
        and (source.traffic.schedule or source.traffic.initial_backlog)
        and source.traffic.period is None
        for source in scenario.sources.values()
    )
    if transient:
        reasons.append("the traffic changes over the run without repeating (a transient, not a steady day)")
    if not reasons:
        return []
    return [f"caveat: per month scales this run's cost: {'; '.join(reasons)}"]


def summary_lines(result: RunResult) -> list[str]:
    """The summary as aligned lines of text."""
    s = result.summary
    lines = [
        f"{result.scenario.name}: {format_duration(s['duration_s'])} simulated in {result.wall_time_s:.1f} s "
        f"(seed {result.seed}, replication {result.replication}, esmsim {result.version})",
        "",
        "records",
        f"  in                  {_num(s['records_in'])}",
        f"  succeeded           {_num(s['records_succeeded'])}  "
        f"({_num(s['throughput_per_s'])}/s after warm-up)",
        f"  {_dlq_label(result):19s} {_num(s['records_dlq'])}",
        f"  dropped             {_num(s['records_dropped'])}",
        f"  expired             {_num(s['records_expired'])}",
        f"  filtered out        {_num(s['records_filtered'])}",
        f"  in flight at end    {_num(s['records_in_flight_end'])}",
        f"latency (arrival to processed, after {s['warmup_s']:g} s warm-up)",
        f"  p50 {_seconds(s['latency_p50_s'])}   p90 {_seconds(s['latency_p90_s'])}   "
        f"p99 {_seconds(s['latency_p99_s'])}   max {_seconds(s['latency_max_s'])}   "
        f"mean {_seconds(s['latency_mean_s'])}",
        *(f"  of the mean: {split}" for split in latency_split(s)),
        "invocations",
        f"  invocations         {_num(s['invocations'])}  (mean batch {_num(s['batch_size_mean'])} records, "
        f"mean duration {_num(s['duration_mean_ms'])} ms)",
        f"  errors              {_num(s['invocation_errors'])}",
        f"  throttles           {_num(s['throttles'])}" + _reasons(result.throttle_reasons),
        f"  cold starts         {_num(s['cold_starts'])}",
        "concurrency",
        f"  max {_num(s['concurrency_max'])}   mean {_num(s['concurrency_mean'])}   "
        f"warm environments {_num(s['environments_mean'])}"
        + (f"   pollers max {_num(s['pollers_max'])}" if result.scenario_has("sqs") else "")
        + (
            f"   event pollers max {_num(s['event_pollers_max'])} mean {_num(s['event_pollers_mean'])}"
            if s["event_pollers_max"]
            else ""
        ),
        "backlog (SQS messages visible + stream records not yet processed + events in async queues)",
        f"  max {_num(s['backlog_max'])}   mean {_num(s['backlog_mean'])}",
        "cost (us-east-1 list prices unless the scenario overrides them)",
        f"  this run            {_usd(s['cost_usd'])}  "
        f"(Lambda requests {_usd(s['cost_lambda_requests_usd'])}, "
        f"compute {_usd(s['cost_lambda_compute_usd'])}, source {_usd(s['cost_source_usd'])}"
        + (
            f", provisioned concurrency {_usd(s['cost_lambda_provisioned_usd'])}"
            if s["cost_lambda_provisioned_usd"]
            else ""
        )
        + (f", event pollers {_usd(s['cost_event_pollers_usd'])}" if s["cost_event_pollers_usd"] else "")
        + ")",
        f"  per million records {_usd(s['cost_per_million_records_usd'])}",
        f"  per month           {_usd(s['cost_per_month_usd'])}  "
        f"(this traffic for {result.scenario.pricing.month_hours:g} h)",
        *(f"  {line}" for line in _month_caveat(result)),
    ]
    if result.scenario_has("kinesis", "dynamodb"):
        streams = [
            "streams",
            f"  IteratorAge max {_seconds(s['iterator_age_max_s'])}   "
            f"mean {_seconds(s['iterator_age_mean_s'])}   read throttles {_num(s['read_throttles'])}   "
            f"write throttles {_num(s['write_throttles'])}",
        ]
        at = lines.index("cost (us-east-1 list prices unless the scenario overrides them)")
        lines[at:at] = streams
    if any(t.function is not None for t in result.scenario.triggers):
        pushed = [
            "asynchronous invocation (push sources through each function's event queue)",
            f"  events received {_num(s['async_events_received'])}   retries {_num(s['async_retries'])}   "
            f"discarded {_num(s['async_events_dropped'])}   queued max {_num(s['async_queued_max'])}",
            f"  AsyncEventAge max {_seconds(s['async_event_age_max_s'])}   "
            f"mean {_seconds(s['async_event_age_mean_s'])}   "
            f"DeadLetterErrors {_num(s['async_dead_letter_errors'])}   "
            f"DestinationDeliveryFailures {_num(s['async_destination_delivery_failures'])}",
        ]
        at = lines.index("cost (us-east-1 list prices unless the scenario overrides them)")
        lines[at:at] = pushed
    per = mapping_lines(result)
    if per:
        at = lines.index("cost (us-east-1 list prices unless the scenario overrides them)")
        lines[at:at] = per
    lines += limit_lines(result.limits)
    if result.warnings:
        lines += ["", "warnings", *(f"  {w}" for w in result.warnings)]
    return lines


def mapping_lines(result: RunResult) -> list[str]:
    """Per mapping, when there are several or one reads a stream.

    The run's totals merge mappings, and one stalled mapping (a poison record's shard) would hide
    behind the others' good numbers.
    """
    table = result.resources
    if table.empty or "kind" not in table:
        return []
    rows = table[table["kind"] == "mapping"].to_dict("records")
    streams = any(m.source_type in ("kinesis", "dynamodb", "kafka") for m in result.scenario.mappings)
    functions = table[table["kind"] == "function"].to_dict("records")
    lines = []
    if len(functions) > 1:
        lines.append("per function")
        for row in functions:
            lines.append(
                f"  {row['name']}: invocations {_num(row['invocations'])}   errors "
                f"{_num(row['invocation_errors'])}   throttles {_num(row['throttles'])}   cold starts "
                f"{_num(row['cold_starts'])}   concurrency max {_num(row['concurrency_max'])}"
            )
    if not rows or (len(rows) < 2 and not streams):
        return lines
    lines.append("per mapping")
    for row in rows:
        parts = [f"invocations {_num(row['invocations'])}", f"errors {_num(row['invocation_errors'])}"]
        if _known(row.get("records_succeeded")):
            parts.append(f"processed {_num(row['records_succeeded'])}")
        if _known(row.get("records_in_flight_end")):
            parts.append(f"waiting at end {_num(row['records_in_flight_end'])}")
        lost = sum(row.get(k, 0) or 0 for k in ("records_dlq", "records_dropped", "records_expired"))
        if _known(row.get("records_dlq")) and lost:
            parts.append(f"lost {_num(lost)}")
        parts.append(f"concurrency max {_num(row['concurrency_max'])}")
        if _known(row.get("iterator_age_max_s")):
            parts.append(f"IteratorAge max {_seconds(row['iterator_age_max_s'])}")
        lines.append(f"  {row['name']}")
        lines.append("    " + "   ".join(parts))
    return lines


def _known(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def latency_split(summary: dict[str, Any]) -> list[str]:
    """Where the mean latency went, as one line (none without a mean): parts with their shares.

    The parts (docs/model.md §7) sum to ``latency_mean_s``; those under 0.5 % of it are left out.
    """
    mean = summary.get("latency_mean_s", math.nan)
    if mean is None or math.isnan(mean):
        return []
    shown = []
    for key in LATENCY_PART_KEYS:
        value = summary[key]
        if value > 0.005 * mean:
            name = key[len("latency_mean_") : -len("_s")]
            shown.append(f"{name} {_seconds(value)} ({value / mean:.0%})")
    return ["   ".join(shown) or "nothing: every record was processed at once"]


def slowest_minute_lines(timeseries: Any, count: int = 3) -> list[str]:
    """The ``count`` minutes with the highest mean latency, each with where it went.

    Per minute the parts are over the records processed in it, warm-up included (timeseries.parquet's
    ``Latency*`` part columns, docs/model.md §7).
    """
    columns = {key[len("latency_mean_") : -len("_s")]: key for key in LATENCY_PART_KEYS}
    names = {name: f"Latency{name.capitalize()}" for name in columns}
    if not set(names.values()) <= set(timeseries.columns):
        return []
    means = timeseries[list(names.values())].sum(axis=1, min_count=1)
    slowest = means.dropna().sort_values(ascending=False).head(count)
    if slowest.empty:
        return []
    lines = ["slowest minutes (mean latency of the records processed in each)"]
    for minute, mean in slowest.items():
        split = {columns[name]: float(timeseries.at[minute, column]) for name, column in names.items()}
        start = float(timeseries.at[minute, "time_s"]) / 60.0
        (parts,) = latency_split({"latency_mean_s": float(mean), **split})
        lines.append(f"  minute {start:g}: mean {_seconds(float(mean))}: {parts}")
    return lines


def limit_lines(limits: dict[str, dict[str, Any]]) -> list[str]:
    """What limited each mapping and trigger: the limits' shares of minutes and one line of advice."""
    if not limits:
        return []
    lines = ["what limited the run (share of minutes)"]
    for name, found in limits.items():
        shares = ", ".join(f"{limit} {share:.0%}" for limit, share in found["binding"].items())
        lines += [f"  {name}: {shares}", f"    advice: {found['advice']}"]
    return lines


def explain_lines(out_dir: Path) -> list[str]:
    """What ``esmsim explain OUT_DIR`` prints: the limits, the latency's split, the slowest minutes.

    Reads OUT_DIR/summary.json and, for the slowest minutes, OUT_DIR/timeseries.parquet.

    Raises:
        RunError: summary.json is missing or was not written by ``esmsim run``.
    """
    path = out_dir / "summary.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        limits = document["limits"]
        summary = document["summary"]
    except (OSError, ValueError, KeyError, TypeError):
        raise RunError(f"{path}: not a summary.json written by esmsim run (it has no limits)") from None
    lines = limit_lines(limits) or ["no mappings or triggers"]
    if "latency_mean_queued_s" not in summary:
        return [*lines, f"{path}: written by an esmsim without the latency's parts; run it again to see them"]
    lines.append(f"where the mean latency went (mean {summary['latency_mean_s']:.4g} s, after the warm-up)")
    lines += [f"  {line}" for line in latency_split(summary)]
    series = out_dir / "timeseries.parquet"
    if series.exists():
        import pandas as pd

        lines += slowest_minute_lines(pd.read_parquet(series))
    return lines


def print_summary(result: RunResult, echo: Callable[[str], Any] = print) -> None:
    """Print the summary, one line at a time through ``echo``."""
    for line in summary_lines(result):
        echo(line)
