"""Pyflakes-class errors (unused imports and names, undefined names) fail the build."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_no_pyflakes_errors():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "F", "--no-cache",
                             "copilotz_orm", "tests", "benchmarks", "examples"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
