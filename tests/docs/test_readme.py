"""Every Python block in the README runs as written."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT

BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_readme_has_examples():
    assert BLOCKS


def test_readme_python_blocks_run():
    for block in BLOCKS:
        result = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True,
                                cwd=ROOT, timeout=300)
        assert result.returncode == 0, result.stderr
        assert "[('Ada', 0), ('Analytical Engine', 1)]" in result.stdout
        assert "True Naming" in result.stdout
