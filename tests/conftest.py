"""Test-session options and fixtures (helpers live in tests/helpers.py)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--stats",
        choices=("quick", "full"),
        default="quick",
        help="statistical tests: 'quick' (bounded, the default and what CI runs) or 'full' (long runs)",
    )


@pytest.fixture
def stats_level(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--stats"))
