"""A sweep's output directory: written as runs finish, readable at any moment, resumable, guarded.

* ``runs.jsonl`` is the journal: one line per finished run, appended and flushed as it arrives,
  each stamped with the scenario's hash and the esmsim version that ran it. A run killed mid-write
  leaves at most a partial last line: the next sweep into the directory keeps it if it is a whole
  record, else moves it to ``runs.jsonl.broken`` (that run is run again), and appends on a fresh line.
* ``runs.parquet`` (one row per run), ``aggregate.parquet`` (one row per configuration) and
  ``manifest.json`` are rewritten from the journal atomically (a temporary file renamed into place)
  when the sweep opens the directory, every few seconds and at the end, so they are never half
  written.
* A sweep holds ``.esmsim.lock`` (an advisory ``flock``, released when its process ends, even by
  ``kill -9``): a second sweep into the same directory is refused rather than interleaved.
* Re-running the same sweep into the same directory skips the runs the journal holds. A directory
  holding runs of a different scenario is refused rather than mixed in, whether the manifest or
  only the journal says so; runs made by another esmsim version are refused unless the user allows
  it; a corrupt manifest or journal line is refused with its file and line named.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pandas as pd

from esmsim._version import __version__
from esmsim.errors import EsmsimWarning, OutputError, printable
from esmsim.histogram import BUCKETS
from esmsim.keys import ALL_SUMMARY_KEYS
from esmsim.report import atomic_write, json_default, prepare_out_dir
from esmsim.sweep.spec import Point, Sweep, run_id

MANIFEST = "manifest.json"
JOURNAL = "runs.jsonl"
BROKEN = "runs.jsonl.broken"
LOCK = ".esmsim.lock"
RUNS = "runs.parquet"
AGGREGATE = "aggregate.parquet"
#: The tables and manifest a sweep writes, in the order they are reported.
OUTPUT_FILES = (RUNS, AGGREGATE, MANIFEST)

_START_OVER = "use another --out, or delete the directory to start over"


def now_iso() -> str:
    """The current time, ISO 8601 in UTC."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_manifest(out: Path) -> dict[str, Any] | None:
    """The manifest of a sweep directory, or None when it has none.

    Raises:
        OutputError: the manifest is unreadable or not a sweep manifest.
    """
    path = out / MANIFEST
    if not path.exists() and not path.is_symlink():
        return None
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise OutputError(
            f"{path}: not a readable sweep manifest ({_reason(error)}); {_START_OVER}"
        ) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("scenario_hash"), str):
        raise OutputError(f"{path}: not a sweep manifest (no scenario_hash); {_START_OVER}")
    return manifest


def read_journal(
    path: Path, *, scenario_hash: str | None = None, version: str | None = None
) -> dict[str, dict[str, Any]]:
    """Finished runs by run id (a later line for the same run replaces an earlier one).

    A partial last line (a run cut off by a crash) is skipped. With ``scenario_hash`` (and
    ``version``), a line stamped with another scenario (or another esmsim version) is refused.

    Raises:
        OutputError: the journal is unreadable, or a line is not a run record of this sweep.
    """
    records: dict[str, dict[str, Any]] = {}
    lines, _ = _journal_lines(path)
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        record = _parse_record(path, number, raw)
        if scenario_hash is not None and record["scenario_hash"] != scenario_hash:
            raise OutputError(
                f"{path}:{number}: a run of a different scenario (hash {printable(record['scenario_hash'])}, "
                f"this one is {scenario_hash}); {_START_OVER}"
            )
        if version is not None and record["esmsim_version"] != version:
            raise OutputError(_version_refusal(path, number, record["esmsim_version"]))
        records[record["run_id"]] = record
    return records


def _journal_lines(path: Path) -> tuple[list[bytes], bytes]:
    """The journal's whole lines and its partial last line (empty when the file ends cleanly)."""
    if not path.exists() and not path.is_symlink():
        return [], b""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise OutputError(f"{path}: cannot read the journal ({_reason(error)}); {_START_OVER}") from None
    *lines, tail = data.split(b"\n")
    return lines, tail


#: The fields of a journal line and the types each may hold.
_FIELDS: dict[str, tuple[type, ...]] = {
    "run_id": (str,),
    "point": (int,),
    "replication": (int,),
    "seed": (int, type(None)),
    "summary": (dict, type(None)),
    "histogram": (list, type(None)),
    "wall_time_s": (int, float, type(None)),
    "error": (str, type(None)),
    "scenario_hash": (str,),
    "esmsim_version": (str,),
}


def _parse_record(path: Path, number: int, raw: bytes) -> dict[str, Any]:
    """One journal line as a run record, or a located refusal saying what is wrong with it."""

    def refuse(problem: str) -> OutputError:
        return OutputError(
            f"{path}:{number}: not a run record ({problem}); "
            f"delete that line to run it again, or {_START_OVER}"
        )

    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise refuse("not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise refuse(f"not JSON: {error.msg}") from None
    if not isinstance(record, dict):
        raise refuse("not a JSON object")
    for key, kinds in _FIELDS.items():
        if key not in record:
            if key in ("scenario_hash", "esmsim_version"):
                raise refuse(f"no {key}: written by an esmsim that did not stamp its runs")
            raise refuse(f"no {key}")
        value = record[key]
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise refuse(f"{key} is {type(value).__name__}")
    summary = record["summary"] or {}
    for key, value in summary.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise refuse(f"summary.{printable(str(key))} is {type(value).__name__}, not a number")
    if record["histogram"] is not None and not _valid_histogram(record["histogram"]):
        raise refuse("histogram is not [buckets, counts]")
    return record


def _valid_histogram(hist: list[Any]) -> bool:
    if len(hist) != 2 or not all(isinstance(part, list) for part in hist) or len(hist[0]) != len(hist[1]):
        return False
    buckets_ok = all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b < BUCKETS for b in hist[0])
    counts_ok = all(isinstance(c, int | float) and not isinstance(c, bool) and c >= 0 for c in hist[1])
    return buckets_ok and counts_ok


def _version_refusal(path: Path, number: int | None, theirs: str) -> str:
    where = f"{path}:{number}" if number else str(path)
    return (
        f"{where}: runs made by esmsim {printable(theirs)}, this is {__version__} (results may differ); "
        f"pass --allow-version-change to resume anyway, or {_START_OVER}"
    )


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if isinstance(error, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(error, json.JSONDecodeError):
        return f"not JSON: {error.msg}"
    return printable(str(error)) or type(error).__name__


@dataclass
class SweepStore:
    """The output directory of one sweep, locked for as long as the store is open."""

    out: Path
    manifest: dict[str, Any]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    _journal: IO[str] | None = None
    _lock: IO[str] | None = None
    _last_write: float = 0.0

    @classmethod
    def open(cls, out: Path, manifest: dict[str, Any], *, allow_version_change: bool = False) -> SweepStore:
        """Open (or create) ``out`` for a sweep of the scenario with ``manifest["scenario_hash"]``.

        Raises:
            OutputError: ``out`` cannot be written, another sweep holds it, it holds runs of a
                different scenario (or, unless allowed, of another esmsim version), or its manifest
                or journal is corrupt.
        """
        prepare_out_dir(out)
        lock = _acquire(out)
        try:
            store = cls._open_locked(out, manifest, allow_version_change)
        except BaseException:
            lock.close()
            raise
        store._lock = lock
        return store

    @classmethod
    def _open_locked(cls, out: Path, manifest: dict[str, Any], allow_version_change: bool) -> SweepStore:
        scenario_hash = manifest["scenario_hash"]
        old = read_manifest(out)
        if old is not None:
            if old["scenario_hash"] != scenario_hash:
                raise OutputError(
                    f"{out} holds a sweep of a different scenario (hash {printable(old['scenario_hash'])}, "
                    f"this one is {scenario_hash}): {_START_OVER}"
                )
            old_version = str(old.get("esmsim_version"))
            if old_version != __version__ and not allow_version_change:
                raise OutputError(_version_refusal(out / MANIFEST, None, old_version))
            versions = {*old.get("resumed_versions", []), old_version} - {__version__}
            manifest = {**manifest, "started_at": old.get("started_at", manifest["started_at"])}
            if versions:
                manifest["resumed_versions"] = sorted(versions)
        path = out / JOURNAL
        _repair_partial_line(path)
        records = read_journal(
            path, scenario_hash=scenario_hash, version=None if allow_version_change else __version__
        )
        try:
            journal = path.open("a", encoding="utf-8")
        except OSError as error:
            raise OutputError(f"{path}: cannot append to the journal ({_reason(error)})") from None
        return cls(out, manifest, records, journal)

    def completed(self) -> set[str]:
        """Runs that finished without an error (runs that failed are run again)."""
        return {rid for rid, r in self.records.items() if r.get("error") is None}

    def append(self, record: dict[str, Any]) -> None:
        """Journal one finished run, stamped with the scenario's hash and this esmsim's version."""
        assert self._journal is not None, "the store is closed"
        record = {**record, "scenario_hash": self.manifest["scenario_hash"], "esmsim_version": __version__}
        self.records[record["run_id"]] = record
        try:
            self._journal.write(json.dumps(record, default=json_default) + "\n")
            self._journal.flush()
            os.fsync(self._journal.fileno())
        except OSError as error:
            raise OutputError(
                f"{self.out / JOURNAL}: cannot append to the journal ({_reason(error)})"
            ) from None

    def due(self, every_s: float = 10.0) -> bool:
        """Whether the tables are older than ``every_s`` seconds."""
        return time.monotonic() - self._last_write >= every_s

    def write(
        self,
        points: list[Point],
        replications: int,
        status: str,
        *,
        csv: bool = False,
        verdict: Callable[[pd.DataFrame], dict[str, Any]] | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Rewrite runs.parquet, aggregate.parquet and manifest.json from the journal.

        ``verdict`` turns the aggregate table into the manifest's ``recommendation``.
        """
        from esmsim.sweep.aggregate import aggregate

        runs = runs_frame(self.records, points, replications)
        table = aggregate(runs, points, self.records)
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
        if verdict is not None and not table.empty:
            self.manifest["recommendation"] = verdict(table)
        try:
            _write_frame(runs, self.out / RUNS, csv)
            _write_frame(table, self.out / AGGREGATE, csv)
            with atomic_write(self.out / MANIFEST) as handle:
                json.dump(self.manifest, handle, indent=2, default=json_default)
                handle.write("\n")
        except OSError as error:
            raise OutputError(f"{self.out}: cannot write the sweep's tables ({_reason(error)})") from None
        self._last_write = time.monotonic()
        return runs, table

    def close(self) -> None:
        """Close the journal and release the directory."""
        for handle in (self._journal, self._lock):
            if handle is not None:
                handle.close()
        self._journal = self._lock = None


def _acquire(out: Path) -> IO[str]:
    """Hold ``out``'s lock file, or refuse naming the sweep that holds it."""
    path = out / LOCK
    try:
        handle = path.open("a+", encoding="utf-8")
    except OSError as error:
        raise OutputError(f"{path}: cannot create the lock file ({_reason(error)})") from None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = printable(handle.read().strip()) or "another process"
        handle.close()
        raise OutputError(
            f"{out}: another sweep is writing here ({holder}); wait for it to finish, or use another --out"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {now_iso()}\n")
    handle.flush()
    return handle


def _repair_partial_line(path: Path) -> None:
    """End the journal on a whole line: keep a complete last record, set a broken one aside."""
    lines, tail = _journal_lines(path)
    if not tail:
        return
    keep = sum(len(line) + 1 for line in lines)  # the whole lines and their newlines
    try:
        record: Any = json.loads(tail.decode("utf-8"))
        whole = isinstance(record, dict) and "run_id" in record
    except (UnicodeDecodeError, json.JSONDecodeError):
        whole = False
    try:
        if whole:  # the crash came between the record and its newline
            with path.open("ab") as handle:
                handle.write(b"\n")
            return
        with (path.parent / BROKEN).open("ab") as handle:
            handle.write(tail + b"\n")
        with path.open("r+b") as handle:
            handle.truncate(keep)
    except OSError as error:
        raise OutputError(
            f"{path}: cannot repair the journal's partial last line ({_reason(error)})"
        ) from None
    warnings.warn(
        f"{path}:{len(lines) + 1}: a partial line (a run cut off by a crash) was moved to {BROKEN}; "
        "that run is run again",
        EsmsimWarning,
        stacklevel=2,
    )


@dataclass(frozen=True)
class SweepDir:
    """What a sweep directory holds for redrawing: its sweep, points and aggregate table."""

    manifest: dict[str, Any]
    sweep: Sweep
    points: list[Point]
    table: pd.DataFrame


def read_sweep_dir(out: Path) -> SweepDir:
    """A finished (or interrupted) sweep directory's manifest, sweep and aggregate table.

    Raises:
        OutputError: ``out`` is not a sweep directory, or its manifest or table is corrupt.
    """
    from pydantic import ValidationError

    manifest = read_manifest(out)
    if manifest is None:
        raise OutputError(f"{out}: not a sweep output directory (no {MANIFEST})")
    try:
        sweep = Sweep.model_validate(manifest.get("sweep"))
        points = [Point(int(p["point"]), dict(p["params"]), {}) for p in manifest["points"]]
    except (ValidationError, KeyError, TypeError, ValueError):
        problem = "not a sweep manifest (bad sweep or points)"
        raise OutputError(f"{out / MANIFEST}: {problem}; {_START_OVER}") from None
    table = _read_table(out / AGGREGATE)
    missing = [c for c in ("point", "replications", *(points[0].params if points else ())) if c not in table]
    if missing:
        raise OutputError(
            f"{out / AGGREGATE}: not this sweep's table (no column {printable(missing[0])}); "
            f"run the sweep again into {out} to rewrite it"
        )
    return SweepDir(manifest, sweep, points, table)


def _read_table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as error:  # pyarrow raises its own types for a damaged file
        raise OutputError(
            f"{path}: unreadable ({_reason(error)}); run the sweep again into {path.parent} to rewrite it"
        ) from None


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
        table = _read_table(out / name)
        try:
            with atomic_write(path) as handle:
                _uniform_columns(table).to_csv(handle, index=False)
        except OSError as error:
            raise OutputError(f"{path}: cannot write ({_reason(error)})") from None
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
