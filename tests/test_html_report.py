"""report.html: one self-contained page per run or sweep, parsed back and checked section by section."""

from __future__ import annotations

import base64
import copy
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from esmsim.cli import main

RUN: dict[str, Any] = {
    "name": "report-run",
    "description": "a queue, a function, a mapping",
    "duration": "3m",
    "warmup": "30s",
    "functions": {"f": {"duration": "50ms", "cold_start": "0s", "timeout": 10, "reserved_concurrency": 2}},
    "sources": {"q": {"type": "sqs", "visibility_timeout": "2m", "traffic": {"rate": "100/s"}}},
    "mappings": [{"source": "q", "function": "f", "batch_size": 1}],
}
SWEEP = {
    **copy.deepcopy(RUN),
    "sweep": {
        "grid": {"mappings[0].batch_size": [1, 10]},
        "replications": 2,
        "objective": {"minimize": "cost_usd", "constraints": {"latency_p99_s": {"max": 5}}},
    },
}


class Page(HTMLParser):
    """The sections (by id), the images' sources and every link-like attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "section":
            self.sections.append(str(found.get("id")))
        if tag == "img":
            self.images.append(str(found.get("src")))
        for key in ("href", "src"):
            if found.get(key) and not str(found[key]).startswith("data:"):
                self.links.append(str(found[key]))
        if tag in ("script", "link"):
            self.links.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def assert_embedded_pngs(page: Page, count: int) -> None:
    assert len(page.images) == count
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    assert page.links == []  # nothing fetched from the network or another file


def test_a_run_writes_its_report_with_every_section(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(RUN), encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out / 'report.html'}" in result.stdout
    page = parse(out / "report.html")
    assert page.sections == [
        "scenario",
        "verdict",
        "summary",
        "mappings",
        "functions",
        "figures",
        "warnings",
        "explain",
        "provenance",
    ]
    assert_embedded_pngs(page, 1)
    text = " ".join(page.text)
    # 100 messages/s of 50 ms single-record batches need 5 environments; 2 are reserved: it falls behind.
    assert "Does not keep up" in text
    assert "reserved concurrency" in text
    assert "report-run" in text
    assert "reserved concurrency 2" in text  # the scenario in words


def test_a_sweep_writes_its_report_with_verdict_and_figures(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(SWEEP), encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["sweep", str(path), "--executor", "serial", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out / 'report.html'}" in result.stdout
    page = parse(out / "report.html")
    assert page.sections == [
        "scenario",
        "verdict",
        "summary",
        "figures",
        "warnings",
        "failures",
        "provenance",
    ]
    assert_embedded_pngs(page, 3)
    text = " ".join(page.text)
    assert "meeting the objective" in text


def test_report_rebuilds_the_page_and_refuses_other_directories(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(RUN), encoding="utf-8")
    out = tmp_path / "out"
    assert CliRunner().invoke(main, ["run", str(path), "--out", str(out), "--no-plot"]).exit_code == 0
    (out / "report.html").unlink()
    again = CliRunner().invoke(main, ["report", str(out)])
    assert again.exit_code == 0, again.output
    page = parse(out / "report.html")
    assert_embedded_pngs(page, 0)  # run with --no-plot: the page says so instead
    assert "run without --no-plot" in " ".join(page.text)
    bad = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert bad.exit_code == 2
    assert bad.stderr.strip() == f"{tmp_path}: holds neither a run (summary.json) nor a sweep (manifest.json)"
