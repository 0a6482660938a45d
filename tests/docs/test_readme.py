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
    """Each block runs, and prints what its ``# prints: TEXT`` comments say (TEXT in its output)."""
    for block in BLOCKS:
        expected = re.findall(r"# prints: (.+)$", block, re.M)
        assert expected, f"a README block says nothing about its output:\n{block[:200]}"
        result = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True,
                                cwd=ROOT, timeout=300)
        assert result.returncode == 0, result.stderr
        for text in expected:
            assert text.strip() in result.stdout, (text, result.stdout)
