"""A sweep on the terminal: progress lines for piped output, and the configurations' table."""

from __future__ import annotations

import time
from typing import Any

#: The aggregate table's columns the console shows, with their headings.
COLUMNS = {
    "latency_p50_s": "p50 s",
    "latency_p99_s": "p99 s",
    "cost_per_million_records_usd": "$/M records",
    "cost_per_month_usd": "$/month",
    "records_dlq": "DLQ",
    "throttles": "throttles",
}


class Progress:
    """Progress as plain lines, for output that is not a terminal (no progress bar there)."""

    def __init__(self, total: int, done: int) -> None:
        self.total, self.done = total, done
        self.started = self.last = time.monotonic()
        self.every = max(1, total // 10)

    def step(self, failed: int) -> str | None:
        """One more run done: a line every tenth of the runs, every 30 s and at the end, else None."""
        self.done += 1
        now = time.monotonic()
        if self.done % self.every and self.done != self.total and now - self.last < 30:
            return None
        self.last = now
        return (
            f"progress: {self.done}/{self.total} runs done ({failed} failed), "
            f"{now - self.started:.0f} s elapsed"
        )


def table_lines(table: Any, keys: list[str], rejected: dict[int, str]) -> list[str]:
    """The configurations, one line each: parameters, latency, cost, losses, what the objective missed."""
    names = [k.split(".")[-1] for k in keys]
    header = "  ".join(f"{n:>14s}" for n in [*names, *COLUMNS.values()])
    lines = [header + ("  misses the objective" if rejected else "")]
    for row in table.to_dict("records"):
        # A key swept to null (standard mode, no cap ...) is NaN in the table: show it as written.
        cells = [f"{'null' if row[k] != row[k] or row[k] is None else row[k]!s:>14s}" for k in keys]
        cells += [f"{row[c]:>14.4g}" if row[c] == row[c] else f"{'n/a':>14s}" for c in COLUMNS]
        cells += [rejected[int(row["point"])]] if int(row["point"]) in rejected else []
        lines.append("  ".join(cells))
    return lines
