"""Ingest benchmark: `ops.ingest_file` over the PEP corpus against the floor, measured in one run.

* ours: `db.ops.ingest_file(path)` for every file, one after the other, into a fresh embedded
  database (hashing embedder), the way an application or the CLI ingests a folder: one
  transaction per document;
* floor: the same rows (document nodes and `documents` rows, chunk nodes and `chunks` rows,
  HAS_CHUNK and NEXT_CHUNK edges, the same vectors, computed beforehand) loaded with raw asyncpg
  `copy_records_to_table` into an identical fresh schema (same migrations, so the same
  indexes: HNSW on the vectors, GIN on the generated tsvector, B-trees), in one transaction.

The floor gets its vectors precomputed, so two ratios are reported: end to end (ours as a user
sees it / floor) and storage only (ours minus the time its embedder took and minus reading and
chunking, measured separately on the same files / floor). Both databases must hold the same
rows (counts, and a digest of every chunk's text, position and vector); the script stops if not.

    python -m benchmarks.bench_ingest [--limit N] [--profile out.prof] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import sys
import time
from pathlib import Path

import asyncpg
from pgvector.asyncpg import register_vector

from copilotz_orm import DbConfig, EmbeddingConfig, create_database
from copilotz_orm.ddl import HNSW_INDEX
from copilotz_orm.embeddings import HashingEmbedder
from copilotz_orm.models import new_id
from copilotz_orm.document_ops import _embedding_text
from copilotz_orm.rag import chunk_text, read_file
from copilotz_orm.sanitize import NAME_BYTES, truncate_bytes

from ._results import write_section

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "peps"
SCHEMA = "bench_ingest"
NAMESPACE = "peps"
HEADING = "## Ingest throughput"


class TimedEmbedder:
    """The hashing embedder, with the time spent in it added up (it runs in a worker thread
    that the ingest awaits, so this time is part of ours, one call after another)."""

    def __init__(self) -> None:
        self.inner = HashingEmbedder(384)
        self.name, self.dimension = self.inner.name, self.inner.dimension
        self.seconds = self.cpu = 0.0

    def embed(self, texts: list[str]) -> list[list[float]]:
        t, c = time.perf_counter(), time.thread_time()
        try:
            return self.inner.embed(texts)
        finally:
            self.seconds += time.perf_counter() - t
            self.cpu += time.thread_time() - c


def prepare(files: list[Path]) -> tuple[list, dict[str, float]]:
    """Read, chunk and embed every file as ingest does, timing each step."""
    embedder = HashingEmbedder(384)
    times = {"read": 0.0, "chunk": 0.0, "embed": 0.0, "read_cpu": 0.0, "chunk_cpu": 0.0}
    docs = []
    for path in files:
        t, c = time.perf_counter(), time.process_time()
        source = read_file(path)
        t1, c1 = time.perf_counter(), time.process_time()
        spans = chunk_text(source.text, "fixed")
        t2, c2 = time.perf_counter(), time.process_time()
        vectors = embedder.embed([_embedding_text(source.title, s) for s in spans])
        t3 = time.perf_counter()
        times["read"] += t1 - t
        times["chunk"] += t2 - t1
        times["embed"] += t3 - t2
        times["read_cpu"] += c1 - c
        times["chunk_cpu"] += c2 - c1
        docs.append((source, spans, vectors))
    return docs, times


def floor_records(docs: list) -> dict[str, list[tuple]]:
    """The rows ingest_document writes, as tuples for COPY (JSON as text, vectors as lists)."""
    rows: dict[str, list[tuple]] = {"nodes": [], "documents": [], "chunks": [], "edges": []}
    for source, spans, vectors in docs:
        doc_id = new_id()
        header = json.dumps({"header": source.header} if source.header else {})
        rows["nodes"].append((doc_id, NAMESPACE, "document", truncate_bytes(source.title, NAME_BYTES), None, None,
                              header, "file", source.source_uri))
        rows["documents"].append((doc_id, NAMESPACE, source.source_uri, source.title, source.mime_type,
                                  source.content_hash, "indexed", len(spans)))
        chunk_ids = [new_id() for _ in spans]
        for i, (cid, span, vec) in enumerate(zip(chunk_ids, spans, vectors)):
            rows["nodes"].append((cid, NAMESPACE, "chunk", f"{source.title} #{i}", span.text, vec, "{}",
                                  "document", doc_id))
            rows["chunks"].append((cid, doc_id, i, span.start, span.end, span.token_count,
                                   json.dumps(dict(span.metadata))))
        rows["edges"] += [(new_id(), doc_id, cid, "HAS_CHUNK", "{}") for cid in chunk_ids]
        rows["edges"] += [(new_id(), a, b, "NEXT_CHUNK", "{}") for a, b in zip(chunk_ids, chunk_ids[1:])]
    return rows


COLUMNS = {
    "nodes": ("id", "namespace", "type", "name", "content", "embedding", "data", "source_type", "source_id"),
    "documents": ("id", "namespace", "source_uri", "title", "mime_type", "content_hash", "status", "chunk_count"),
    "chunks": ("id", "document_id", "position", "start_char", "end_char", "token_count", "metadata"),
    "edges": ("id", "source_id", "target_id", "type", "data"),
}

VOCABULARY_SQL = f"""
INSERT INTO {SCHEMA}.search_terms (namespace, term)
SELECT DISTINCT n.namespace, w.word FROM {SCHEMA}.nodes n,
       unnest(tsvector_to_array(to_tsvector('simple', n.content))) AS w(word)
WHERE n.type = 'chunk' AND length(w.word) BETWEEN 3 AND 32
"""

# What both databases must agree on: row counts, and every chunk's text, position and vector.
CHECK_SQL = f"""
SELECT (SELECT count(*) FROM {SCHEMA}.nodes) AS nodes, (SELECT count(*) FROM {SCHEMA}.documents) AS documents,
       (SELECT count(*) FROM {SCHEMA}.chunks) AS chunks,
       (SELECT count(*) FROM {SCHEMA}.edges WHERE type = 'HAS_CHUNK') AS has_chunk,
       (SELECT count(*) FROM {SCHEMA}.edges WHERE type = 'NEXT_CHUNK') AS next_chunk,
       (SELECT count(*) FROM {SCHEMA}.search_terms) AS search_terms,
       (SELECT md5(string_agg(md5(d.content_hash || c.position || n.content || n.embedding::text), ''
                              ORDER BY d.content_hash, c.position))
        FROM {SCHEMA}.chunks c JOIN {SCHEMA}.nodes n ON n.id = c.id
        JOIN {SCHEMA}.documents d ON d.id = c.document_id) AS digest
"""


def server_cpu() -> float:
    """CPU seconds used so far by this process's descendants: the embedded server's keeper,
    postmaster and backends (a backend that exited counts through its parent's cutime). On a
    machine shared with other work, CPU time moves less than wall time."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry)] = fields
            children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo = 0, list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        f = stats[pid]
        total += sum(int(x) for x in f[11:15])  # utime, stime, cutime, cstime
        todo += children.get(pid, [])
    return total / tick


def raw_url(db) -> str:
    return db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


async def run_ours(files: list[Path], profile: Path | None) -> dict:
    embedder = TimedEmbedder()
    config = DbConfig(url=":memory:", embedding=EmbeddingConfig(model="hashing"))
    async with await create_database(config, embedder=embedder) as db:
        await db.provision_schema(SCHEMA)
        db.metrics.reset()
        profiler = cProfile.Profile() if profile else None
        server, cpu, t = server_cpu(), time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        for path in files:
            result = await db.ops.ingest_file(path, namespace=NAMESPACE, schema=SCHEMA)
            assert result.created, path
        if profiler:
            profiler.disable()
        wall, cpu, server = time.perf_counter() - t, time.process_time() - cpu, server_cpu() - server
        statements = db.metrics.statements
        conn = await asyncpg.connect(raw_url(db))
        check = dict(await conn.fetchrow(CHECK_SQL))
        await conn.close()
    if profiler:
        profiler.dump_stats(profile)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(45)
        print(out.getvalue(), file=sys.stderr)
    return {"wall": wall, "cpu": cpu, "server": server, "embed": embedder.seconds, "embed_cpu": embedder.cpu,
            "statements": statements, "check": check}


async def run_floor(rows: dict[str, list[tuple]], index_after: bool = False) -> dict:
    """COPY every row in one transaction; with `index_after`, the HNSW index is dropped first
    and rebuilt (with its own definition) after the load, which a bulk load can do and a
    per-document ingest cannot."""
    config = DbConfig(url=":memory:", embedding=EmbeddingConfig(model="hashing"))
    async with await create_database(config) as db:
        await db.provision_schema(SCHEMA)
        conn = await asyncpg.connect(raw_url(db))
        await register_vector(conn, schema="public")
        indexdef = await conn.fetchval("SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = $2",
                                       SCHEMA, HNSW_INDEX)
        server, cpu, t = server_cpu(), time.process_time(), time.perf_counter()
        async with conn.transaction():
            if index_after:
                await conn.execute(f"DROP INDEX {SCHEMA}.{HNSW_INDEX}")
            for table in ("nodes", "documents", "chunks", "edges"):
                await conn.copy_records_to_table(table, schema_name=SCHEMA, columns=COLUMNS[table],
                                                 records=rows[table])
            # The vocabulary ingest fills (copilotz_orm.sql.terms.add_terms), derived in one statement.
            await conn.execute(VOCABULARY_SQL)
            if index_after:
                await conn.execute(indexdef)
        wall, cpu, server = time.perf_counter() - t, time.process_time() - cpu, server_cpu() - server
        check = dict(await conn.fetchrow(CHECK_SQL))
        await conn.close()
    return {"wall": wall, "cpu": cpu, "server": server, "check": check}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=None, help="only the first N files (a quick look)")
    parser.add_argument("--profile", type=Path, default=None, help="run ours under cProfile, dump stats here")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--no-write", action="store_true", help="print, do not write RESULTS.md")
    args = parser.parse_args()
    files = sorted(p for p in args.data.iterdir() if p.is_file())[: args.limit]

    docs, prep = prepare(files)
    rows = floor_records(docs)
    n_chunks = len(rows["chunks"])
    n_rows = sum(len(v) for v in rows.values())
    print(f"{len(files)} files, {n_chunks} chunks, {n_rows} rows; prepared in "
          f"{sum(prep.values()):.1f}s ({', '.join(f'{k} {v:.1f}s' for k, v in prep.items())})", file=sys.stderr)

    floor = await run_floor(rows)
    print(f"floor: {floor['wall']:.2f}s", file=sys.stderr)
    bulk = await run_floor(rows, index_after=True)
    print(f"floor, HNSW index built after the load: {bulk['wall']:.2f}s", file=sys.stderr)
    ours = await run_ours(files, args.profile)
    print(f"ours: {ours['wall']:.2f}s wall, {ours['cpu']:.2f}s client CPU, embedder {ours['embed']:.2f}s, "
          f"{ours['statements']} statements", file=sys.stderr)
    if not ours["check"] == floor["check"] == bulk["check"]:
        raise SystemExit(f"the databases differ:\n ours  {ours['check']}\n floor {floor['check']}\n"
                         f" floor, index after {bulk['check']}")

    storage = ours["wall"] - ours["embed"] - prep["read"] - prep["chunk"]
    ours_cpu = ours["cpu"] + ours["server"]
    storage_cpu = ours_cpu - ours["embed_cpu"] - prep["read_cpu"] - prep["chunk_cpu"]
    floor_cpu, bulk_cpu = floor["cpu"] + floor["server"], bulk["cpu"] + bulk["server"]
    e2e_ratio, storage_ratio = ours["wall"] / floor["wall"], storage / floor["wall"]

    def row(label: str, wall: float, cpu: float | None) -> str:
        cpu_cells = f"{cpu:.1f} | {cpu / floor_cpu:.2f}" if cpu is not None else " | "
        return (f"| {label} | {wall:.1f} | {len(files) / wall:.1f} | {n_rows / wall:,.0f} | "
                f"{wall / floor['wall']:.2f} | {cpu_cells} |")

    lines = [
        f"`python -m benchmarks.bench_ingest` on the embedded server (PostgreSQL 18, fsync off), run "
        f"{time.strftime('%Y-%m-%d %H:%M')}, 2 cores shared with other work. {len(files)} PEPs from "
        f"`../shared/data/peps` (`fixed` chunking, 160 tokens, overlap 32): {n_chunks:,} chunks, "
        f"{n_rows:,} rows in all (nodes, documents, chunks, edges). All three databases ended with the same "
        f"rows (counts, and an MD5 over every chunk's text, position and vector). CPU = this process "
        f"(all threads) plus the server's processes, which a busy machine distorts less than wall time.",
        "",
        "| | wall s | documents/s | rows/s | wall / floor | CPU s | CPU / floor |",
        "|---|---|---|---|---|---|---|",
        row("ours, end to end (`ingest_file` per file: read, chunk, embed, store)", ours["wall"], ours_cpu),
        f"| of which the hashing embedder (wall; CPU {ours['embed_cpu']:.1f} s) | {ours['embed']:.1f} | | | | | |",
        f"| of which reading and chunking (measured apart, same files) | {prep['read'] + prep['chunk']:.1f} | "
        f"| | | | |",
        row("**ours, storage only** (end to end minus the two above)", storage, storage_cpu),
        row("floor: raw asyncpg `copy_records_to_table`, precomputed rows, one transaction", floor["wall"], floor_cpu),
        row("(for reference) the same COPY, HNSW index dropped first and rebuilt after the load",
            bulk["wall"], bulk_cpu),
        "",
        f"Ours ran {ours['statements']:,} statements ({ours['statements'] / len(files):.1f} per document, in two "
        f"transactions: the duplicate check, then the writes). Of ours' CPU, {ours['cpu']:.1f} s were in this "
        f"process (embedder {ours['embed_cpu']:.1f} s) and {ours['server']:.1f} s in the server; the floor's "
        f"server used {floor['server']:.1f} s. Target (issue 5): ours / floor ≤ 3: end to end "
        f"{e2e_ratio:.2f}, storage only {storage_ratio:.2f} (wall).",
    ]
    print("\n".join(lines), file=sys.stderr)
    if not args.no_write and args.limit is None:
        write_section(args.output, HEADING, lines)
        print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
