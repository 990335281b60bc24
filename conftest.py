"""Test-session settings shared by tests/ and the notebooks nbmake runs."""

import os

# Notebooks read ESMSIM_QUICK to shorten their simulated horizons; the test suite runs them quick.
os.environ.setdefault("ESMSIM_QUICK", "1")
