"""The copilotz-orm command, run as a user would: a persistent embedded database in a folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import data_path

CLI = [sys.executable, "-m", "copilotz_orm.cli"]


@pytest.fixture
def workdir():
    path = Path(tempfile.mkdtemp(prefix="copilotz-cli-"))
    path.chmod(0o755)  # reachable by the server's system user when run as root
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run(workdir: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "COPILOTZ_DATABASE_URL"}
    result = subprocess.run([*CLI, "--model", "hashing", *args], capture_output=True, text=True,
                            cwd=workdir, env=env, timeout=600)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def test_ingest_search_stats_and_reingest(workdir):
    peps = data_path("peps")
    folder = workdir / "docs"
    folder.mkdir()
    for name in ("pep-0008.rst", "pep-0020.rst", "pep-0257.rst"):
        shutil.copy(peps / name, folder / name)
    (folder / "empty.txt").write_text("")
    (folder / "blob.txt").write_bytes(b"\x00\x01\x02binary")
    partly = run(workdir, "ingest", str(folder), "-n", "peps", "--json", ok=False)
    assert partly.returncode == 1  # two files failed; the rest went in
    first = json.loads(partly.stdout)
    assert first["new"] == 3 and first["duplicate"] == 0
    assert sorted(Path(f["path"]).name for f in first["failed"]) == ["blob.txt", "empty.txt"]
    assert (workdir / ".copilotz" / "db" / "PG_VERSION").exists()

    again = json.loads(run(workdir, "ingest", str(folder), "-n", "peps", "--json", ok=False).stdout)
    assert again["new"] == 0 and again["duplicate"] == 3

    (folder / "pep-0257.rst").write_text((folder / "pep-0257.rst").read_text() + "\nA new last line.\n")
    changed = json.loads(run(workdir, "ingest", str(folder), "-n", "peps", "--json", "--exclude", "*.txt").stdout)
    assert (changed["files"], changed["new"], changed["updated"], changed["duplicate"]) == (3, 0, 1, 2)

    hits = json.loads(run(workdir, "search", "Beautiful is better than ugly", "-n", "peps", "--json").stdout)
    assert hits[0]["document"]["title"].startswith("PEP 20")
    text = run(workdir, "search", "Beautiful is better than ugly", "-n", "peps").stdout
    assert "PEP 20" in text and "Beautiful is better than ugly" in text

    stats = json.loads(run(workdir, "stats", "--json").stdout)
    assert [(s["namespace"], s["document_count"], s["failed_count"]) for s in stats] == [("peps", 3, 2)]
    assert stats[0]["chunk_count"] == first["chunks"]


def test_graph_import_and_traverse(workdir):
    edges = workdir / "g.txt"
    edges.write_text("# a comment\n1 2\n2 3\n3 1\n3 4\n")
    out = run(workdir, "graph", "import-edges", str(edges)).stdout
    assert "4 nodes and 4 edges in namespace 'g': 4 nodes and 4 edges new" in out
    again = run(workdir, "graph", "import-edges", str(edges))
    assert "0 nodes and 0 edges new" in again.stdout
    assert "importing g.txt: 8/8" in again.stderr  # progress lines when not on a terminal
    walked = json.loads(run(workdir, "graph", "traverse", "1", "-n", "g", "--depth", "2",
                            "--direction", "out", "--json").stdout)
    assert {n["node"]["name"]: n["depth"] for n in walked["nodes"]} == {"1": 0, "2": 1, "3": 2}
    missing = run(workdir, "graph", "traverse", "99", "-n", "g", ok=False)
    assert missing.returncode == 1 and "no node has id '99', id g:99 or name '99'" in missing.stderr
    too_deep = run(workdir, "graph", "traverse", "1", "-n", "g", "--depth", "11", ok=False)
    assert too_deep.returncode == 2 and "--depth" in too_deep.stderr
    blank = run(workdir, "graph", "traverse", "1", "-n", "g", "--type", " ", ok=False)
    assert blank.returncode == 2 and "--type" in blank.stderr
    assert "importing g.txt: 0/8" in again.stderr.splitlines()[0]  # a first line before any work

    (workdir / "w.txt").write_text("a b 0.5\nb c\nc d 2 2026\n")
    weighted = run(workdir, "graph", "import-edges", str(workdir / "w.txt"))
    assert "3 edges" in weighted.stdout
    assert "2 lines have more than two columns: only the first two (source, target) are imported" in weighted.stderr
    (workdir / "bad.txt").write_text("a b\nlonely\n")
    bad = run(workdir, "graph", "import-edges", str(workdir / "bad.txt"), ok=False)
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and "bad.txt:2: expected 'source target'" in bad.stderr
    assert run(workdir, "graph", "traverse", "a", "-n", "bad", ok=False).returncode == 1  # nothing was imported


def test_schema_commands(workdir):
    run(workdir, "schema", "provision", "acme")
    assert run(workdir, "schema", "list").stdout.split() == ["acme"]  # public is not touched
    bad = run(workdir, "schema", "provision", 'x"; DROP SCHEMA public CASCADE; --', ok=False)
    assert bad.returncode == 1 and "invalid schema name" in bad.stderr
    assert bad.stderr.count("\n") == 1  # one clear line, no traceback
    run(workdir, "schema", "drop", "acme", "--yes")
    assert run(workdir, "schema", "list").stdout.split() == []
    gone = run(workdir, "schema", "drop", "acme", "--yes", ok=False)
    assert gone.returncode == 1 and "there is no schema 'acme'" in gone.stderr


def test_read_only_commands_create_nothing(workdir):
    fresh = run(workdir, "stats", ok=False)
    assert fresh.returncode == 1 and "no database at" in fresh.stderr
    assert not (workdir / ".copilotz").exists()
    run(workdir, "schema", "provision", "acme")
    typo = run(workdir, "--schema", "acmee", "stats", ok=False)
    assert typo.returncode == 1 and "not provisioned" in typo.stderr
    assert "acmee" not in run(workdir, "schema", "list").stdout.split()


@pytest.mark.parametrize("url, message", [
    ("mysql://x", "unsupported database URL"),
    ("postgresql://postgres@127.0.0.1:1/x", "cannot connect"),
])
def test_bad_database_is_one_line(workdir, url, message):
    result = run(workdir, "--db", url, "stats", ok=False)
    assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_graph_export_formats(workdir):
    edges = workdir / "g.txt"
    edges.write_text("1 2\n2 3\n3 1\n3 4\n")
    run(workdir, "graph", "import-edges", str(edges))
    page = run(workdir, "graph", "export", "1", "-n", "g", "--depth", "2")
    html = (workdir / "subgraph.html").read_text()
    size = (workdir / "subgraph.html").stat().st_size
    assert f"wrote subgraph.html ({size:,} bytes)" in page.stderr and size > len(html)  # '·' is two bytes
    assert html.startswith("<!doctype html>") and html.count("<circle") == 4 and "http" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    mermaid = run(workdir, "graph", "export", "1", "-n", "g", "--format", "mermaid", "--direction", "out").stdout
    assert mermaid.startswith("graph LR") and mermaid.count("-->") == 2
    dot = run(workdir, "graph", "export", "1", "-n", "g", "--format", "dot", "-o", "g.dot")
    assert (workdir / "g.dot").read_text().startswith("digraph") and dot.returncode == 0
    data = json.loads(run(workdir, "graph", "export", "1", "-n", "g", "--format", "json", "--depth", "3").stdout)
    assert {n["node"]["name"] for n in data["nodes"]} == {"1", "2", "3", "4"} and data["truncated"] is False
    capped = run(workdir, "graph", "export", "1", "-n", "g", "--max-nodes", "2", "--format", "json")
    assert len(json.loads(capped.stdout)["nodes"]) == 2 and json.loads(capped.stdout)["truncated"] is True
    assert "drew the first 2 nodes (--max-nodes): more are within 2 steps" in capped.stderr
    assert capped.stdout.endswith("}\n")
    one = run(workdir, "graph", "export", "1", "-n", "g", "--depth", "1", "--max-nodes", "1", "--format", "json")
    assert "more are within 1 step;" in one.stderr
    assert "stopped at --max-nodes 1" in run(workdir, "graph", "traverse", "1", "-n", "g", "--max-nodes", "1",
                                             "--json").stderr
    walked = run(workdir, "graph", "traverse", "1", "-n", "g", "--max-nodes", "3")
    assert "stopped at --max-nodes 3" in walked.stderr
    assert "--max-nodes" not in run(workdir, "graph", "traverse", "1", "-n", "g", "--max-nodes", "4").stderr


def test_reembed_command(workdir):
    (workdir / "note.txt").write_text("walruses have tusks and whiskers " * 30)
    run(workdir, "ingest", str(workdir / "note.txt"), "-n", "notes")
    done = run(workdir, "reembed", "--to", "hashing", "--batch-size", "2")
    assert "vectors now from hashing (384 dimensions)" in done.stdout
    assert "re-embedding: " in done.stderr  # progress lines when not on a terminal
    hits = json.loads(run(workdir, "search", "walrus tusks", "-n", "notes", "--json").stdout)
    assert hits and hits[0]["similarity"] > 0
    again = run(workdir, "reembed", "--model", "hashing")  # the spelling of --to
    assert "vectors now from hashing" in again.stdout
    unknown = run(workdir, "reembed", "--to", "gpt-9", ok=False)
    assert unknown.returncode == 1 and "unknown embedding model" in unknown.stderr


def test_user_text_is_shown_as_text_and_nothing_is_skipped_in_silence(workdir):
    folder = workdir / "docs"
    (folder / "d[").mkdir(parents=True)
    (folder / "d[" / "].txt").write_text("")  # the path d[/].txt looks like rich markup
    (folder / "[bold]loud.txt").write_text("")
    (folder / "ok.txt").write_text("Plain \x1b[31mred\x1b[0m text about herons.")
    os.mkfifo(folder / "pipe.txt")
    (folder / "broken.txt").symlink_to(workdir / "missing")
    done = run(workdir, "ingest", str(folder), "-n", "t", ok=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "5 files: 1 new" in done.stdout
    for name in ("d[/].txt", "[bold]loud.txt", "pipe.txt", "broken.txt"):
        assert name in done.stdout, name
    found = run(workdir, "search", "herons", "-n", "t")
    assert "\x1b" not in found.stdout and "\\x1b[31mred" in found.stdout
    for pattern in ("", "*.zzz"):
        bad = run(workdir, "ingest", str(folder), "-n", "t", "--include", pattern, ok=False)
        assert (bad.returncode, pattern and "no file in" in bad.stderr or "must not be empty" in bad.stderr) in {
            (1, True), (2, True)}
    odd_schema = run(workdir, "--schema", "bad[/]", "stats", ok=False)
    assert odd_schema.returncode == 1 and "invalid schema name 'bad[/]'" in odd_schema.stderr
