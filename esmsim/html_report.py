"""A run's or a sweep's output directory as one self-contained page (``report.html``).

The page is what a planner shares: the scenario in words, the verdict, the numbers per mapping and
function, the figures, the warnings, what limited the run, and where it came from. It is built
only from the files ``esmsim run`` and ``esmsim sweep`` write, so ``esmsim report OUT_DIR`` can
rebuild it later; figures are embedded as base64 PNG and the style is inline, so the page opens
offline and survives being mailed.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from esmsim.errors import OutputError
from esmsim.observe.explain import NONE
from esmsim.report import OVERLOADED_SHARE, atomic_write, latency_split, limit_lines

REPORT = "report.html"

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #1a1a1a; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.verdict { font-size: 1.1em; padding: 0.8em 1em; border-left: 5px solid #2a7; background: #f3faf5; }
.verdict.bad { border-color: #c33; background: #fdf3f3; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f5f5f5; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.warning { color: #8a5a00; } code, pre { background: #f6f6f6; padding: 0.1em 0.3em; }
pre { padding: 0.8em; overflow-x: auto; } .muted { color: #666; font-size: 0.9em; }
"""


def write_report(out_dir: Path) -> Path:
    """Write ``report.html`` into a run's or a sweep's output directory and return its path.

    Raises:
        OutputError: ``out_dir`` holds neither a run's ``summary.json`` nor a sweep's
            ``manifest.json``, or the page cannot be written.
    """
    if (out_dir / "manifest.json").exists():
        page = sweep_page(out_dir)
    elif (out_dir / "summary.json").exists():
        page = run_page(out_dir)
    else:
        raise OutputError(f"{out_dir}: holds neither a run (summary.json) nor a sweep (manifest.json)")
    path = out_dir / REPORT
    try:
        with atomic_write(path) as handle:
            handle.write(page)
    except OSError as error:
        raise OutputError(f"{path}: cannot write the report ({error.strerror or error})") from None
    return path


# ---------------------------------------------------------------------------------------- pieces
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _section(ident: str, title: str, body: Iterable[str]) -> str:
    return f'<section id="{ident}"><h2>{_e(title)}</h2>\n' + "\n".join(body) + "\n</section>"


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}">'
        f'<figcaption class="muted">{_e(alt)}</figcaption></figure>'
    )


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def _table(frame: pd.DataFrame, columns: dict[str, str]) -> str:
    shown = [c for c in columns if c in frame.columns]
    head = "".join(f"<th>{_e(columns[c])}</th>" for c in shown)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_e(_number(row[c]))}</td>" for c in shown) + "</tr>"
        for row in frame.to_dict("records")
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _list(items: Sequence[str], cls: str = "") -> str:
    if not items:
        return '<p class="muted">none</p>'
    attr = f' class="{cls}"' if cls else ""
    return "<ul>" + "".join(f"<li{attr}>{_e(item)}</li>" for item in items) + "</ul>"


def _page(title: str, sections: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>\n"
        f"<h1>{_e(title)}</h1>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise OutputError(f"{path}: cannot be read as esmsim wrote it ({error})") from None
    if not isinstance(document, dict):
        raise OutputError(f"{path}: not a JSON object as esmsim writes it")
    return document


# ------------------------------------------------------------------------------ scenario in words
def scenario_words(raw: dict[str, Any]) -> list[str]:
    """The scenario as sentences: what feeds what, at what rate, under which limits."""
    from esmsim.scenario.scenario import Scenario
    from esmsim.units import format_duration

    scenario = Scenario.model_validate({k: v for k, v in raw.items() if k != "sweep"})
    lines = [
        f"{format_duration(scenario.duration)} simulated ({format_duration(scenario.warmup)} warm-up "
        f"left out of latency and throughput), seed {scenario.seed}."
    ]
    for name, source in scenario.sources.items():
        traffic = getattr(source, "traffic", None)
        rate = f"{traffic.rate:g} records/s" if traffic is not None else "no traffic of its own"
        if traffic is not None and traffic.schedule:
            peak = max(p.rate for p in traffic.schedule)
            rate += f", changing over time (peak {peak:g}/s)"
        extra = ""
        if getattr(source, "shards", None):
            extra = f", {source.shards} shard(s)"  # type: ignore[union-attr]
        if getattr(source, "partitions", None):
            extra = f", {source.partitions} partition(s)"  # type: ignore[union-attr]
        if getattr(source, "fifo", False):
            extra += ", FIFO"
        lines.append(f"Source {name} ({source.type}{extra}): {rate}.")
    for name, fn in scenario.functions.items():
        limits = []
        if fn.reserved_concurrency is not None:
            limits.append(f"reserved concurrency {fn.reserved_concurrency}")
        if fn.provisioned_concurrency:
            limits.append(f"provisioned concurrency {fn.provisioned_concurrency}")
        lines.append(
            f"Function {name}: {fn.memory_mb} MB, timeout {format_duration(fn.timeout)}"
            + (f", {', '.join(limits)}" if limits else "")
            + "."
        )
    for i, m in enumerate(scenario.mappings):
        knobs = [f"batch size {m.batch_size}"]
        window = getattr(m, "batching_window", 0)
        if window:
            knobs.append(f"batching window {format_duration(window)}")
        for key, label in (
            ("maximum_concurrency", "maximum concurrency"),
            ("parallelization_factor", "parallelization factor"),
        ):
            value = getattr(m, key, None)
            if value not in (None, 1):
                knobs.append(f"{label} {value}")
        state = "" if m.enabled else " (disabled)"
        lines.append(f"Mapping {i}: {m.source} -> {m.function}{state}: {', '.join(knobs)}.")
    if scenario.changes:
        lines.append(f"{len(scenario.changes)} live change(s) during the run.")
    return lines


def _words(raw: dict[str, Any]) -> list[str]:
    """:func:`scenario_words`, or a note when the scenario does not validate here."""
    try:
        return scenario_words(raw)
    except (ValueError, TypeError):  # pydantic's ValidationError is a ValueError
        return ["(this esmsim version cannot read the scenario back: its file or summary.json holds it)"]


# ------------------------------------------------------------------------------------------ a run
def run_verdict(summary: dict[str, Any], limits: dict[str, dict[str, Any]]) -> tuple[bool, str]:
    """Whether the run kept up, and one sentence saying so with the numbers that show it."""
    lost = summary["records_dlq"] + summary["records_dropped"] + summary["records_expired"]
    left = summary["records_in_flight_end"]
    share = left / summary["records_in"] if summary["records_in"] else 0.0
    p99 = summary["latency_p99_s"]
    bound = [
        f"{label}: {entry['advice']}" for label, entry in limits.items() if set(entry["binding"]) - {NONE}
    ]
    ok = share <= OVERLOADED_SHARE and lost == 0 and not bound
    head = (
        "Keeps up"
        if ok
        else "Does not keep up"
        if share > OVERLOADED_SHARE
        else "Keeps up with losses or limits"
    )
    text = (
        f"{head}: p99 latency {_number(p99)} s, {_number(summary['records_succeeded'])} of "
        f"{_number(summary['records_in'])} records processed, {_number(lost)} lost "
        f"(dead-lettered, dropped or expired), {_number(left)} still waiting at the end, "
        f"${_number(summary['cost_usd'])} for the run."
    )
    if bound:
        text += " Bound by " + "; ".join(bound)
    return ok, text


def run_page(out_dir: Path) -> str:
    """The page of a run's output directory."""
    document = _read_json(out_dir / "summary.json")
    try:
        summary, limits = document["summary"], document.get("limits", {})
        provenance, raw = document["provenance"], document["scenario"]
    except KeyError as missing:
        raise OutputError(
            f"{out_dir / 'summary.json'}: has no {missing} (not written by esmsim run)"
        ) from None
    ok, verdict = run_verdict(summary, limits)
    sections = [
        _section("scenario", "Scenario", [f"<p>{_e(raw.get('description', ''))}</p>", _list(_words(raw))]),
        _section("verdict", "Verdict", [f'<p class="verdict{"" if ok else " bad"}">{_e(verdict)}</p>']),
        _section(
            "summary", "Summary", [_table(_summary_rows(summary), {"metric": "metric", "value": "value"})]
        ),
    ]
    resources = out_dir / "resources.parquet"
    if resources.exists():
        table = pd.read_parquet(resources)
        columns = {
            "name": "name",
            "invocations": "invocations",
            "invocation_errors": "errors",
            "throttles": "throttles",
            "cold_starts": "cold starts",
            "concurrency_max": "concurrency max",
            "concurrency_mean": "concurrency mean",
            "limit": "limit",
            "iterator_age_max_s": "IteratorAge max (s)",
            "records_succeeded": "processed",
            "records_filtered": "filtered out",
            "records_in_flight_end": "waiting at end",
        }
        for kind, title, ident in (
            ("mapping", "Per mapping", "mappings"),
            ("function", "Per function", "functions"),
        ):
            rows = table[table["kind"] == kind]
            sections.append(_section(ident, title, [_table(rows, columns)]))
    figures = [
        _image(out_dir / name, alt)
        for name, alt in (("timeseries.png", "per-minute time series (CloudWatch names)"),)
        if (out_dir / name).exists()
    ]
    sections.append(
        _section("figures", "Figures", figures or ['<p class="muted">run without --no-plot to draw them</p>'])
    )
    sections.append(_section("warnings", "Warnings", [_list(document.get("warnings", []), "warning")]))
    explain = limit_lines(limits)
    if "latency_mean_queued_s" in summary:
        explain += [f"where the mean latency went: {line}" for line in latency_split(summary)]
    sections.append(_section("explain", "What limited the run", [_list(explain)]))
    sections.append(
        _section("provenance", "Provenance", [_table(_pairs(provenance), {"key": "key", "value": "value"})])
    )
    return _page(f"esmsim run: {provenance.get('scenario', '')}", sections)


def _summary_rows(summary: dict[str, Any]) -> pd.DataFrame:
    from esmsim.keys import SUMMARY_KEYS

    keys = [k for k in SUMMARY_KEYS if k in summary]
    keys += [k for k in ("throughput_per_s", "cost_per_month_usd", "batch_size_mean") if k in summary]
    return pd.DataFrame({"metric": keys, "value": [summary[k] for k in keys]})


def _pairs(mapping: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame({"key": list(mapping), "value": [str(v) for v in mapping.values()]})


# ---------------------------------------------------------------------------------------- a sweep
def sweep_page(out_dir: Path) -> str:
    """The page of a sweep's output directory."""
    import yaml

    manifest = _read_json(out_dir / "manifest.json")
    raw: dict[str, Any] = {}
    text = manifest.get("scenario_text")
    if text:
        loaded = yaml.safe_load(text)
        raw = loaded if isinstance(loaded, dict) else {}
    verdict = manifest.get("recommendation")
    if verdict:
        lines = [f'<p class="verdict{"" if verdict["met"] else " bad"}">{_e(verdict["message"])}</p>']
        runners = [
            f"{r['label']}: latency x{r['latency_ratio']:.2f}, cost x{r['value_ratio']:.2f}"
            + ("" if r["feasible"] else ", misses the objective")
            for r in verdict.get("runners_up", [])
        ]
        lines.append("<h3>Runners-up (the Pareto frontier)</h3>" + _list(runners))
        if verdict.get("warning"):
            lines.append(f'<p class="warning">{_e(verdict["warning"])}</p>')
        rejected = [f"point {k}: {v}" for k, v in verdict.get("rejected", {}).items()]
        lines.append("<h3>Rejected configurations</h3>" + _list(rejected))
    else:
        lines = ['<p class="muted">the sweep states no objective: no recommendation</p>']
    sections = []
    if raw:
        words = _words(raw)
        sections.append(
            _section(
                "scenario",
                "Scenario",
                [f"<p>{_e(raw.get('description', ''))}</p>", _list(words), f"<pre>{_e(text)}</pre>"],
            )
        )
    sections.append(_section("verdict", "Verdict", lines))
    aggregate = out_dir / "aggregate.parquet"
    if aggregate.exists():
        table = pd.read_parquet(aggregate)
        params = [p for p in (manifest.get("points") or [{}])[0].get("params", {})]
        columns = {"point": "point", **{p: p.split(".")[-1] for p in params}, "replications": "reps"}
        columns |= {
            "latency_p50_s": "p50 (s)",
            "latency_p99_s": "p99 (s)",
            "cost_per_million_records_usd": "$ per million",
            "cost_per_month_usd": "$ per month",
            "records_dlq": "DLQ",
            "throttles": "throttles",
            "backlog_max": "backlog max",
        }
        sections.append(_section("summary", "Configurations", [_table(table, columns)]))
    figures = [
        _image(out_dir / name, alt)
        for name, alt in (
            ("latency.png", "latency against the swept values"),
            ("cost.png", "cost against the swept values"),
            ("pareto.png", "cost against p99 latency: Pareto frontier and recommendation"),
        )
        if (out_dir / name).exists()
    ]
    sections.append(_section("figures", "Figures", figures or ['<p class="muted">no plots (--no-plot)</p>']))
    sections.append(_section("warnings", "Warnings", [_list(manifest.get("warnings", []), "warning")]))
    failed = [
        f"point {f['point']} replication {f['replication']}: {f['error']}"
        for f in manifest.get("failed_runs", [])
    ]
    sections.append(_section("failures", "Failed runs", [_list(failed)]))
    provenance = {
        k: manifest.get(k)
        for k in (
            "scenario",
            "scenario_hash",
            "seed",
            "replications",
            "esmsim_version",
            "executor",
            "started_at",
            "finished_at",
            "status",
        )
    }
    sections.append(
        _section("provenance", "Provenance", [_table(_pairs(provenance), {"key": "key", "value": "value"})])
    )
    return _page(f"esmsim sweep: {manifest.get('scenario', '')}", sections)
