"""Writing one section of benchmarks/RESULTS.md without touching the others."""

from __future__ import annotations

import re
from pathlib import Path

# bench_traversal.py keeps what stands before its heading and rewrites everything after it, so
# new sections go before it to survive its next run.
_TRAVERSAL = "## Graph traversal"


def write_section(path: Path, heading: str, lines: list[str]) -> None:
    """Replace the section `heading` (a `## ` line, up to the next `## ` line) with `lines`,
    or add it (before the traversal section, else at the end)."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    body = heading + "\n\n" + "\n".join(lines).strip("\n") + "\n\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: body, text, count=1)
    elif _TRAVERSAL in text:
        head, tail = text.split(_TRAVERSAL, 1)
        text = head.rstrip() + "\n\n" + body + _TRAVERSAL + tail
    else:
        text = text.rstrip() + "\n\n" + body
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip() + "\n")
