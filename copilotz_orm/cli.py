"""The `copilotz-orm` command: a local knowledge base from a folder of documents, and a graph.

It only calls the public API. Default database: ``file:./.copilotz/db`` (an embedded server
whose data stays in the current directory), unless ``--db`` or ``COPILOTZ_DATABASE_URL`` says
otherwise.
"""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from . import MAX_DEPTH, CopilotzError, Database, DbConfig, EmbeddingConfig, create_database, export, validate_schema_name
from .config import ENV_URL, parse_url
from .errors import DocumentError, MigrationError
from .rag import DEFAULT_CHUNK_SIZE, DEFAULT_OVERLAP, MAX_CHUNK_SIZE, STRATEGIES

DEFAULT_CLI_URL = "file:./.copilotz/db"
DEFAULT_PATTERNS = ("*.rst", "*.md", "*.markdown", "*.txt", "*.text", "*.html", "*.htm")

# No markup: file names, titles and errors are user text, and "[/]" in a path is not a tag.
out = Console(soft_wrap=True, markup=False)
err = Console(stderr=True, soft_wrap=True, markup=False)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _plain(value: object) -> str:
    """User text made safe for a terminal: control characters (an ANSI escape, say) are shown
    as \\xNN instead of being obeyed."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def _named(values: tuple[str, ...], option: str) -> tuple[str, ...]:
    if any(not v.strip() for v in values):
        raise click.BadParameter("must not be empty", param_hint=option)
    return values


_EDGE_TYPES = click.option("--type", "types", multiple=True, callback=lambda ctx, param, values: _named(values, "--type"),
                           help="Only follow edges of this type (repeatable).")


def _steps(depth: int) -> str:
    return f"{depth} step" + ("" if depth == 1 else "s")


def _error(exc: object) -> None:
    err.print(Text("error: ", style="bold red") + Text(_plain(exc)), highlight=False, soft_wrap=True)


def _run(writes: bool):
    """Run an async command with an open database; a CopilotzError is one line and exit 1.

    Read-only commands (`writes=False`) neither create a database nor provision a schema: a
    typo in --db or --schema is an error, not a new empty store."""

    def decorate(coro_fn: Callable[..., Awaitable[Any]]):
        @functools.wraps(coro_fn)
        @click.pass_obj
        def wrapper(settings: dict[str, Any], *args: Any, **kwargs: Any) -> None:
            async def main() -> None:
                if not writes:
                    _require_existing(settings["url"])
                db = await create_database(DbConfig(
                    url=settings["url"], default_schema=settings["schema"], auto_provision_schema=writes,
                    embedding=EmbeddingConfig(model=settings["model"])))
                try:
                    await coro_fn(db, *args, **kwargs)
                finally:
                    await db.close()

            try:
                asyncio.run(main())
            except CopilotzError as exc:
                _error(exc)
                sys.exit(1)
            except KeyboardInterrupt:
                err.print("interrupted")
                sys.exit(130)

        return wrapper

    return decorate


def _require_existing(url: str) -> None:
    target = parse_url(url)
    if target.kind == "file" and not (target.path / "PG_VERSION").exists():
        raise CopilotzError(f"no database at {target.path}: run 'copilotz-orm ingest' or "
                            "'graph import-edges' first, or point --db at an existing one")


class _Reporter:
    """A live progress bar on a terminal; otherwise a line at the start, at every 10% and at
    least every LINE_SECONDS (logs, CI: a slow first 10% must not look like a hang)."""

    LINE_SECONDS = 30.0

    def __init__(self, description: str, total: int, unit: str) -> None:
        self.description, self.total, self.unit = description, total, unit
        self.done, self.started = 0, time.monotonic()
        self.next_line, self.last_line = 0.1, self.started
        self.bar = None
        if err.is_terminal:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                                TimeRemainingColumn(), console=err)
            self.task = self.bar.add_task(description, total=total, rate="")

    def __enter__(self) -> _Reporter:
        if self.bar:
            self.bar.start()
        elif self.total:
            err.print(f"{self.description}: 0/{self.total}", highlight=False)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar:
            self.bar.stop()

    def advance(self, n: int = 1) -> None:
        self.done += n
        rate = f"{self.done / max(time.monotonic() - self.started, 1e-9):.1f} {self.unit}/s"
        if self.bar:
            self.bar.update(self.task, advance=n, rate=rate)
        elif self.total and (self.done / self.total >= self.next_line or self.done == self.total
                             or time.monotonic() - self.last_line >= self.LINE_SECONDS):
            err.print(f"{self.description}: {self.done}/{self.total} ({rate})", highlight=False)
            self.last_line = time.monotonic()
            while self.next_line <= self.done / self.total:
                self.next_line += 0.1


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "url", envvar=ENV_URL, default=DEFAULT_CLI_URL, show_default=True,
              help=f"Database URL: file:PATH, :memory: or postgresql://… (env {ENV_URL}).")
@click.option("--schema", default="public", show_default=True, help="Tenant schema to work in.")
@click.option("--model", default=None,
              help="Embedding model: all-MiniLM-L6-v2 (default when installed) or hashing.")
@click.version_option(package_name="copilotz-orm")
@click.pass_context
def main(ctx: click.Context, url: str, schema: str, model: str | None) -> None:
    """copilotz-orm: threads, a knowledge graph and documents for search, in PostgreSQL."""
    _check_name(schema)
    ctx.obj = {"url": url, "schema": schema, "model": model}


# -- documents ---------------------------------------------------------------------------------
def _files(paths: tuple[Path, ...], patterns: tuple[str, ...], excludes: tuple[str, ...] = ()) -> Iterator[Path]:
    """Files named on the command line, and those matching `patterns` in folders (recursively)
    unless their path inside the folder matches one of `excludes` (e.g. 'drafts/*', '*.tmp')."""
    for pattern in (*patterns, *excludes):
        if not pattern.strip():
            raise click.BadParameter("a glob must not be empty: use a pattern like '*.md'",
                                     param_hint="--include/--exclude")
        if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            raise click.BadParameter(f"{pattern!r} must be a pattern inside the folder, like '*.md'",
                                     param_hint="--include/--exclude")
    for path in paths:
        if path.is_dir():
            # Not only regular files: a pipe or a broken link that matches is reported as failed,
            # not skipped in silence.
            try:
                found = {f for pattern in patterns for f in path.rglob(pattern) if not f.is_dir()}
            except ValueError as exc:  # e.g. '**' alone: rglob needs a file part
                raise click.BadParameter(f"{exc}: use a pattern like '*.md' or 'docs/**/*.md'",
                                         param_hint="--include") from None
            kept = sorted(f for f in found
                          if not any(f.relative_to(path).match(x) or fnmatch.fnmatch(f.relative_to(path).as_posix(), x)
                                     for x in excludes))
            if not kept:
                raise click.ClickException(f"no file in {path} matches --include {' '.join(patterns)}"
                                       + (f" outside --exclude {' '.join(excludes)}" if excludes else ""))
            yield from kept
        else:
            yield path


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--namespace", "-n", required=True, help="Namespace the documents go into.")
@click.option("--include", "patterns", multiple=True, default=DEFAULT_PATTERNS, show_default=True,
              help="Glob for files inside folders (repeatable).")
@click.option("--exclude", "excludes", multiple=True,
              help="Glob for files inside folders to skip, e.g. 'drafts/*' (repeatable).")
@click.option("--chunking", type=click.Choice(("auto", *STRATEGIES)), default="fixed", show_default=True,
              help="How documents are cut: auto picks rst/markdown by file type, paragraph otherwise.")
@click.option("--chunk-size", type=click.IntRange(1, MAX_CHUNK_SIZE), default=DEFAULT_CHUNK_SIZE,
              show_default=True, help="Tokens (words) per chunk at most.")
@click.option("--chunk-overlap", type=click.IntRange(0), default=None,
              help=f"Tokens shared with the previous chunk [default: {DEFAULT_OVERLAP}, or a fifth of a smaller size].")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@_run(writes=True)
async def ingest(db: Database, paths: tuple[Path, ...], namespace: str, patterns: tuple[str, ...],
                 excludes: tuple[str, ...], chunking: str, chunk_size: int, chunk_overlap: int | None, as_json: bool) -> None:
    """Chunk, embed and store text files (folders are searched recursively).

    A file that cannot be read is reported and skipped; the exit status is then 1."""
    files = list(_files(paths, patterns, excludes))
    new, updated, duplicate, failed = 0, 0, 0, []
    chunks = 0
    with _Reporter("ingesting", len(files), "docs") as progress:
        for path in files:
            try:
                result = await db.ops.ingest_file(path, namespace=namespace, chunking=chunking,
                                                  chunk_size=chunk_size, chunk_overlap=chunk_overlap)
            except DocumentError as exc:  # this file only; anything else stops the run
                failed.append({"path": str(path), "error": str(exc)})
            else:
                if result.created:
                    updated, new = (updated + 1, new) if result.replaced else (updated, new + 1)
                    chunks += result.document.chunk_count
                else:
                    duplicate += 1
            progress.advance()
    summary = {"files": len(files), "new": new, "updated": updated, "duplicate": duplicate, "failed": failed,
               "chunks": chunks}
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        out.print(f"{len(files)} files: {new} new, {updated} changed since last time ({chunks} chunks), "
                  f"{duplicate} already stored, {len(failed)} failed")
        for f in failed:
            out.print(f"  failed: {_plain(f['error'])}", highlight=False)
    if failed:
        sys.exit(1)  # the rest was ingested; scripts still learn that something was not


@main.command()
@click.argument("query")
@click.option("--namespace", "-n", multiple=True, help="Namespace to search (repeatable; default: all).")
@click.option("--limit", "-k", default=5, show_default=True, type=click.IntRange(1, 1000))
@click.option("--mode", type=click.Choice(["hybrid", "vector", "text"]), default="hybrid", show_default=True,
              help="Rank by vectors, by full-text search, or both fused.")
@click.option("--threshold", type=click.FloatRange(-1, 1), help="Minimum cosine similarity.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@_run(writes=False)
async def search(db: Database, query: str, namespace: tuple[str, ...], limit: int, mode: str,
                 threshold: float | None, as_json: bool) -> None:
    """Find the chunks that best answer QUERY."""
    hits = await db.ops.search_chunks(query, namespace=list(namespace) or None, limit=limit, mode=mode,
                                      threshold=threshold)
    if as_json:
        out.print_json(json.dumps([h.model_dump(mode="json") for h in hits]))
        return
    if not hits:
        out.print("no results")
        return
    for rank, hit in enumerate(hits, 1):
        similarity = f"  similarity {hit.similarity:.3f}" if hit.similarity is not None else ""
        heading = " > ".join(hit.metadata.get("heading_path") or [])
        line = Text.assemble((_plain(f"{rank}. {hit.document.title}"), "bold"),
                             (_plain(f"  score {hit.score:.4f}{similarity}  {hit.document.source_uri or hit.document.id}"
                                     + (f"  § {heading}" if heading else "")), "dim"))
        out.print(line, highlight=False)
        out.print(Text("   ") + _snippet(hit.content, query), highlight=False)


def _snippet(content: str, query: str, width: int = 240) -> Text:
    """About `width` characters of `content` around the first query word found, the query's
    words (and words they begin) highlighted. Chunk text is shown as text, never as markup."""
    flat = _plain(" ".join(content.split()))
    words = sorted({w.lower() for w in re.findall(r"\w{3,}", query)}, key=len, reverse=True)
    pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, words)) + r")\w*", re.I) if words else None
    first = pattern.search(flat) if pattern else None
    start = max(0, first.start() - width // 4) if first else 0
    if start:
        start = flat.find(" ", start) + 1 or start
    piece = flat[start:start + width]
    text = Text(("…" if start else "") + piece + ("…" if start + width < len(flat) else ""))
    if pattern:
        text.highlight_regex(pattern, style="bold yellow")
    return text


@main.command()
@click.option("--json", "as_json", is_flag=True)
@_run(writes=False)
async def stats(db: Database, as_json: bool) -> None:
    """Documents and chunks per namespace."""
    rows = await db.ops.get_namespace_stats()
    if as_json:
        out.print_json(json.dumps([r.model_dump(mode="json") for r in rows]))
        return
    table = Table("namespace", "documents", "failed", "in progress", "chunks", "last update")
    for r in rows:
        table.add_row(_plain(r.namespace), str(r.document_count), str(r.failed_count), str(r.in_progress_count),
                      str(r.chunk_count),
                      r.last_updated.isoformat(timespec="seconds") if r.last_updated else "")
    out.print(table)


# -- graph -------------------------------------------------------------------------------------
@main.group()
def graph() -> None:
    """Import and walk graphs."""


def _edge_pairs(path: Path) -> tuple[list[tuple[str, str]], int]:
    """The (source, target) pairs of an edge list, and how many lines had more columns (a
    weight, a timestamp), which are not imported."""
    pairs, extra = [], 0
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                fields = line.split()
                if not fields or fields[0].startswith("#"):
                    continue
                if len(fields) < 2:
                    raise CopilotzError(f"{_plain(path)}:{number}: expected 'source target', got {line.strip()!r}; "
                                        "nothing was imported")
                extra += len(fields) > 2
                pairs.append((fields[0], fields[1]))
    except UnicodeDecodeError as exc:
        raise CopilotzError(f"{_plain(path)} is not UTF-8 text (byte {exc.start}); an edge list is "
                            "one 'source target' pair per line") from None
    return pairs, extra


@graph.command("import-edges")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--namespace", "-n", help="Namespace of the nodes (default: the file name without suffix).")
@click.option("--type", "edge_type", default="RELATED_TO", show_default=True, help="Edge type.")
@_run(writes=True)
async def import_edges(db: Database, file: Path, namespace: str | None, edge_type: str) -> None:
    """Load an edge list (one 'source target' pair per line; '#' starts a comment).

    Node ids become NAMESPACE:TOKEN; edges are directed source -> target."""
    if namespace is not None and not namespace.strip():
        raise click.BadParameter("must not be empty", param_hint="--namespace")
    namespace = namespace or file.stem
    pairs, extra = _edge_pairs(file)
    if extra:
        err.print(f"{extra} lines have more than two columns: only the first two (source, target) "
                  "are imported", highlight=False)
    tokens = {t for pair in pairs for t in pair}
    with _Reporter(f"importing {file.name}", len(tokens) + len(pairs), "rows") as progress:
        result = await db.ops.import_edge_list(pairs, namespace=namespace, edge_type=edge_type,
                                               progress=progress.advance)
    out.print(f"{result.nodes} nodes and {result.edges} edges in namespace {namespace!r}: "
              f"{result.new_nodes} nodes and {result.new_edges} edges new "
              f"(node ids look like {namespace}:{pairs[0][0] if pairs else 'ID'})")


async def _resolve(db: Database, node: str, namespace: str | None):
    start = await db.ops.resolve_node(node, namespace=namespace)
    if start is None:
        hint = (f"no node has id {node!r}, id {namespace}:{node} or name {node!r} in namespace {namespace!r}"
                if namespace else f"no node has id {node!r}; add --namespace NS to look it up by name")
        raise CopilotzError(hint)
    return start


@graph.command()
@click.argument("node")
@click.option("--depth", "-d", default=2, show_default=True, type=click.IntRange(0, MAX_DEPTH))
@click.option("--direction", type=click.Choice(["out", "in", "both"]), default="both", show_default=True)
@_EDGE_TYPES
@click.option("--namespace", "-n", help="Resolve NODE as NAMESPACE:NODE or by name in this namespace.")
@click.option("--max-nodes", type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True)
@_run(writes=False)
async def traverse(db: Database, node: str, depth: int, direction: str, types: tuple[str, ...],
                   namespace: str | None, max_nodes: int | None, as_json: bool) -> None:
    """Nodes within DEPTH steps of NODE."""
    start = await _resolve(db, node, namespace)
    result = await db.ops.traverse_graph(start.id, list(types) or None, depth, direction=direction,
                                         max_nodes=max_nodes)
    if result.truncated:
        err.print(f"stopped at --max-nodes {max_nodes}: more nodes are within {_steps(depth)}", highlight=False)
    if as_json:
        out.print_json(result.model_dump_json())
        return
    per_depth: dict[int, int] = {}
    for n in result.nodes:
        per_depth[n.depth] = per_depth.get(n.depth, 0) + 1
    out.print(_plain(f"{len(result.nodes)} nodes from {start.id} ({start.name}), {len(result.edges)} edges walked"))
    for d in sorted(per_depth):
        out.print(f"  depth {d}: {per_depth[d]} nodes")
    shown = result.nodes[:20]
    out.print("  " + _plain(", ".join(f"{n.node.name}@{n.depth}" for n in shown))
              + (" …" if len(result.nodes) > len(shown) else ""), highlight=False)


@graph.command("export")
@click.argument("node")
@click.option("--depth", "-d", default=2, show_default=True, type=click.IntRange(0, MAX_DEPTH))
@click.option("--format", "fmt", type=click.Choice(["html", "mermaid", "dot", "json"]), default="html",
              show_default=True)
@click.option("--direction", type=click.Choice(["out", "in", "both"]), default="both", show_default=True)
@_EDGE_TYPES
@click.option("--namespace", "-n", help="Resolve NODE as NAMESPACE:NODE or by name in this namespace.")
@click.option("--max-nodes", type=click.IntRange(1), default=500, show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="File to write (default: subgraph.html for html, else standard output).")
@_run(writes=False)
async def export_graph(db: Database, node: str, depth: int, fmt: str, direction: str, types: tuple[str, ...],
                       namespace: str | None, max_nodes: int, output: Path | None) -> None:
    """Draw the subgraph around NODE (an HTML page by default; also Mermaid, DOT, JSON)."""
    start = await _resolve(db, node, namespace)
    walk = await db.ops.traverse_graph(start.id, list(types) or None, depth, direction=direction,
                                       max_nodes=max_nodes)
    text = export.render(walk, fmt, title=export.title(walk, depth, direction))
    if walk.truncated:
        err.print(f"drew the first {max_nodes} nodes (--max-nodes): more are within {_steps(depth)}; "
                  "raise --max-nodes or lower --depth to see them all", highlight=False)
    if output is None and fmt == "html":
        output = Path("subgraph.html")
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text, encoding="utf-8")
    err.print(f"wrote {output} ({len(text.encode('utf-8')):,} bytes)", highlight=False)


# -- schemas -----------------------------------------------------------------------------------
@main.group()
def schema() -> None:
    """Provision, list and drop tenant schemas."""


def _check_name(name: str) -> str:
    try:
        return validate_schema_name(name)
    except CopilotzError as exc:
        _error(exc)
        sys.exit(1)


@schema.command("provision")
@click.argument("name", callback=lambda ctx, param, value: _check_name(value))
@_run(writes=True)
async def schema_provision(db: Database, name: str) -> None:
    """Create schema NAME and migrate it to the latest revision."""
    await db.provision_schema(name)
    out.print(f"schema {name} is ready")


@schema.command("list")
@_run(writes=False)
async def schema_list(db: Database) -> None:
    """Schemas that hold copilotz tables."""
    for name in await db.list_schemas():
        out.print(name)


@schema.command("drop")
@click.argument("name", callback=lambda ctx, param, value: _check_name(value))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_run(writes=False)
async def schema_drop(db: Database, name: str, yes: bool) -> None:
    """Drop schema NAME and everything in it."""
    if not await db.schema_exists(name):
        raise CopilotzError(f"there is no schema {name!r} (see: copilotz-orm schema list)")
    if not yes and not click.confirm(f"drop schema {name} and all its data?"):
        raise click.Abort()
    await db.drop_schema(name)
    out.print(f"schema {name} dropped")


@main.command()
@click.option("--to", "--model", "model", required=True,
              help="The model to move to: all-MiniLM-L6-v2 or hashing (--model is the same option).")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=128, show_default=True)
@_run(writes=False)
async def reembed(db: Database, model: str, batch_size: int) -> None:
    """Re-embed every vector of the schema (--schema) with another model, then rebuild its index.
    Interrupted, it resumes where it stopped when run again with the same --to."""
    reporter: list[_Reporter] = []

    def progress(done: int, total: int) -> None:
        if not reporter:
            reporter.append(_Reporter("re-embedding", total, "rows").__enter__())
            reporter[0].advance(done)
        else:
            reporter[0].advance(done - reporter[0].done)

    try:
        result = await db.reembed(model, batch_size=batch_size, progress=progress)
    finally:
        if reporter:
            reporter[0].__exit__(None, None, None)
    out.print(f"schema {result.schema}: {result.rows} vectors now from {result.model} ({result.dimension} "
              f"dimensions), {result.embedded_now} embedded by this run; index rebuilt", highlight=False)


@main.command()
@click.argument("schemas", nargs=-1, callback=lambda ctx, param, value: tuple(_check_name(v) for v in value))
@click.option("--all", "every", is_flag=True, help="Every schema that holds copilotz tables.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_run(writes=False)
async def migrate(db: Database, schemas: tuple[str, ...], every: bool, as_json: bool) -> None:
    """Upgrade tenant schemas to the latest revision: SCHEMAS, or --all of them. Each schema is
    migrated in its own transaction under a lock, so several processes may run this at once."""
    if every == bool(schemas):
        raise CopilotzError("name the schemas to migrate, or pass --all (not both)")
    total = len(schemas) if schemas else len(await db.list_schemas())
    with _Reporter("migrating", total, "schemas") as progress:
        try:
            done = await db.migrate_all(list(schemas) or None, on_schema=lambda _: progress.advance())
            failed = False
        except MigrationError as exc:  # the others were migrated: report every schema, then fail
            done, failed = exc.results, True
    if as_json:
        out.print_json(data=[{"schema": m.schema, "before": m.before, "after": m.after,
                              "changed": m.changed, "error": m.error} for m in done])
    else:
        for m in done:
            out.print(f"{m.schema}: failed: {m.error}" if m.error
                      else f"{m.schema}: {m.before} -> {m.after}" if m.changed
                      else f"{m.schema}: already at {m.after}", highlight=False)
        out.print(f"{sum(m.changed for m in done)} of {len(done)} schemas upgraded"
                  + (f", {sum(bool(m.error) for m in done)} failed" if failed else ""), highlight=False)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
