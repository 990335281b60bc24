"""A sweep's output directory: written as runs finish, readable at any moment, resumable.

* ``runs.jsonl`` is the journal: one line per finished run, appended and flushed as it arrives. A
  run killed mid-write leaves at most a partial last line, which reading skips.
* ``runs.parquet`` (one row per run), ``aggregate.parquet`` (one row per configuration) and
  ``manifest.json`` are rewritten from the journal atomically (a temporary file renamed into place),
  every few seconds and at the end, so they are never half written.
* Re-running the same sweep into the same directory skips the runs the journal holds; a directory
  holding a sweep of a different scenario is refused rather than mixed in.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from esmsim.errors import Issue, ScenarioError
from esmsim.keys import ALL_SUMMARY_KEYS
from esmsim.report import atomic_write, json_default
from esmsim.sweep.spec import Point, run_id

MANIFEST = "manifest.json"
JOURNAL = "runs.jsonl"
RUNS = "runs.parquet"
AGGREGATE = "aggregate.parquet"
#: The tables and manifest a sweep writes, in the order they are reported.
OUTPUT_FILES = (RUNS, AGGREGATE, MANIFEST)


def now_iso() -> str:
    """The current time, ISO 8601 in UTC."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_journal(path: Path) -> dict[str, dict[str, Any]]:
    """Finished runs by run id (a later line for the same run replaces an earlier one)."""
    records: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return records
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
            if isinstance(record, dict) and "run_id" in record:
                records[record["run_id"]] = record
    return records


@dataclass
class SweepStore:
    """The output directory of one sweep."""

    out: Path
    manifest: dict[str, Any]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    _journal: Any = None
    _last_write: float = 0.0

    @classmethod
    def open(cls, out: Path, manifest: dict[str, Any]) -> SweepStore:
        """Open (or create) ``out`` for a sweep of the scenario with ``manifest["scenario_hash"]``.

        Raises:
            ScenarioError: ``out`` holds a sweep of a different scenario.
        """
        out.mkdir(parents=True, exist_ok=True)
        scenario_hash = manifest["scenario_hash"]
        previous = out / MANIFEST
        if previous.exists():
            try:
                old = json.loads(previous.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                old = {}
            if old.get("scenario_hash") not in (None, scenario_hash):
                raise ScenarioError(
                    [
                        Issue(
                            (),
                            f"{out} holds a sweep of a different scenario (hash {old.get('scenario_hash')}, "
                            f"this one is {scenario_hash}): use another --out, or delete it to start over",
                        )
                    ]
                )
            manifest = {**manifest, "started_at": old.get("started_at", manifest["started_at"])}
        store = cls(out, manifest, read_journal(out / JOURNAL))
        store._journal = (out / JOURNAL).open("a", encoding="utf-8")
        return store

    def completed(self) -> set[str]:
        """Runs that finished without an error (runs that failed are run again)."""
        return {rid for rid, r in self.records.items() if r.get("error") is None}

    def append(self, record: dict[str, Any]) -> None:
        """Journal one finished run."""
        self.records[record["run_id"]] = record
        self._journal.write(json.dumps(record, default=json_default) + "\n")
        self._journal.flush()
        os.fsync(self._journal.fileno())

    def due(self, every_s: float = 10.0) -> bool:
        """Whether the tables are older than ``every_s`` seconds."""
        return time.monotonic() - self._last_write >= every_s

    def write(
        self, points: list[Point], replications: int, status: str, *, csv: bool = False
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Rewrite runs.parquet, aggregate.parquet and manifest.json from the journal."""
        from esmsim.sweep.aggregate import aggregate

        runs = runs_frame(self.records, points, replications)
        table = aggregate(runs, points, self.records)
        _write_frame(runs, self.out / RUNS, csv)
        _write_frame(table, self.out / AGGREGATE, csv)
        failed = [r for r in runs.to_dict("records") if isinstance(r["error"], str)]
        self.manifest.update(
            status=status,
            updated_at=now_iso(),
            runs_total=len(points) * replications,
            runs_done=int(runs["error"].isna().sum()),
            failed_runs=[
                {
                    "point": int(row["point"]),
                    "replication": int(row["replication"]),
                    "params": points[int(row["point"])].params,
                    "error": row["error"],
                }
                for row in failed
            ],
        )
        if status != "running":
            self.manifest["finished_at"] = now_iso()
        with atomic_write(self.out / MANIFEST) as handle:
            json.dump(self.manifest, handle, indent=2, default=json_default)
            handle.write("\n")
        self._last_write = time.monotonic()
        return runs, table

    def close(self) -> None:
        """Close the journal."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None


def runs_frame(records: dict[str, dict[str, Any]], points: list[Point], replications: int) -> pd.DataFrame:
    """One row per run of the current sweep: point, replication, seed, parameters, metrics."""
    rows = []
    for point in points:
        for replication in range(replications):
            record = records.get(run_id(point, replication))
            if record is None:
                continue
            summary = record.get("summary") or {}
            row: dict[str, Any] = {
                "point": point.index,
                "replication": replication,
                "seed": record.get("seed"),
                "run_id": record["run_id"],
                **point.cells(),
                **{key: summary.get(key, math.nan) for key in ALL_SUMMARY_KEYS},
                "wall_time_s": record.get("wall_time_s"),
                "error": record.get("error"),
            }
            rows.append(row)
    columns = [
        "point",
        "replication",
        "seed",
        "run_id",
        *(points[0].params if points else []),
        *ALL_SUMMARY_KEYS,
        "wall_time_s",
        "error",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    for key in ALL_SUMMARY_KEYS:
        frame[key] = pd.to_numeric(frame[key], errors="coerce")
    return frame


def export_csv(out: Path) -> list[Path]:
    """CSV copies of a sweep directory's runs and aggregate tables (written atomically)."""
    written = []
    for name in (RUNS, AGGREGATE):
        path = (out / name).with_suffix(".csv")
        with atomic_write(path) as handle:
            _uniform_columns(pd.read_parquet(out / name)).to_csv(handle, index=False)
        written.append(path)
    return written


def _write_frame(frame: pd.DataFrame, path: Path, csv: bool) -> None:
    frame = _uniform_columns(frame)
    with atomic_write(path, "wb") as handle:
        frame.to_parquet(handle, compression="zstd", index=False)
    if csv:
        with atomic_write(path.with_suffix(".csv")) as handle:
            frame.to_csv(handle, index=False)


def _uniform_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet wants one type per column: a parameter mixing numbers and text becomes text."""
    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == object:
            kinds = {type(v) for v in frame[column].dropna()}
            if len(kinds) > 1:
                frame[column] = frame[column].map(lambda v: None if v is None else str(v))
    return frame
