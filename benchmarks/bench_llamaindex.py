"""Side by side with LlamaIndex's `PGVectorStore` (llama-index-vector-stores-postgres): one run,
one embedded server, the same PEP chunks and the same precomputed vectors.

* ours: `db.ops.ingest_text(text, title=, source_uri=)` per PEP, with an embedder that returns
  the precomputed hashing vectors (so neither side embeds anything): a document node, its
  chunk nodes and `chunks` rows, HAS_CHUNK and NEXT_CHUNK edges; chunking is inside our timing;
* LlamaIndex: `await store.async_add(nodes)` per PEP, the nodes (`TextNode` with the same
  text, vector, and title/position metadata, the document as SOURCE) built beforehand, outside
  the timing; HNSW index with the same parameters (m=16, ef_construction=64, ef_search=40,
  cosine);
* the two are interleaved document by document (and query by query), so the load of a shared
  machine falls on both alike; queries are `search_chunks(embedding=, mode="vector", limit=10)`
  against `await store.aquery(VectorStoreQuery(query_embedding=, similarity_top_k=10))`.

It runs in a separate environment holding llama-index (never a dependency of this package):

    python3 -m venv /tmp/bench-venv
    /tmp/bench-venv/bin/pip install llama-index-vector-stores-postgres -e . -c constraints.txt
    /tmp/bench-venv/bin/python -m benchmarks.bench_llamaindex [--limit N] [--queries 100]

Every attempt to open a network connection (not a unix socket) is recorded with an audit hook
and reported: there is no network here but package registries.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

NETWORK: list[str] = []


def _audit(event: str, args: tuple) -> None:
    if event == "socket.connect" and isinstance(args[1], tuple):
        NETWORK.append(f"connect {args[1]}")
    elif event == "socket.getaddrinfo":
        NETWORK.append(f"getaddrinfo {args[0]}:{args[1]}")
    elif event == "urllib.Request":
        NETWORK.append(f"urllib {args[0]}")


sys.addaudithook(_audit)

from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery
from llama_index.vector_stores.postgres import PGVectorStore

from copilotz_orm import DbConfig, EmbeddingConfig, create_database
from copilotz_orm.embeddings import HashingEmbedder

from ._results import write_section
from .bench_ingest import DATA, prepare

ROOT = Path(__file__).resolve().parent.parent
SCHEMA, LLAMA_SCHEMA = "bench_ours", "bench_llama"
HEADING = "## Side by side with LlamaIndex PGVectorStore"


class Precomputed:
    """Returns the vectors computed beforehand (the hashing embedder's), counting misses."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors, self.name, self.dimension, self.misses = vectors, "hashing", 384, 0
        self.fallback = HashingEmbedder(384)

    def embed(self, texts: list[str]) -> list[list[float]]:
        out = []
        for t in texts:
            v = self.vectors.get(t)
            if v is None:
                self.misses += 1
                v = self.fallback.embed([t])[0]
            out.append(v)
        return out


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))] * 1000


def llama_nodes(source, spans, vectors) -> list[TextNode]:
    doc_id = str(uuid.uuid4())
    return [TextNode(id_=str(uuid.uuid4()), text=span.text, embedding=vec,
                     metadata={"title": source.title, "position": i, "start_char": span.start,
                               "end_char": span.end},
                     relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc_id)})
            for i, (span, vec) in enumerate(zip(spans, vectors))]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    files = sorted(p for p in args.data.iterdir() if p.is_file())[: args.limit]
    docs, _ = prepare(files)
    vectors = {s.text: v for _, spans, vecs in docs for s, v in zip(spans, vecs)}
    embedder = Precomputed(vectors)
    n_chunks = sum(len(spans) for _, spans, _ in docs)
    rng = random.Random(11)
    questions = [d[0].title for d in rng.sample(docs, min(args.queries, len(docs)))]
    query_vectors = HashingEmbedder(384).embed(questions)

    config = DbConfig(url=":memory:", embedding=EmbeddingConfig(model="hashing"))
    async with await create_database(config, embedder=embedder) as db:
        await db.provision_schema(SCHEMA)
        url = db.engine.url
        store = PGVectorStore.from_params(
            connection_string=url.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False),
            async_connection_string=url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False),
            schema_name=LLAMA_SCHEMA, table_name="peps", embed_dim=384,
            hnsw_kwargs={"hnsw_m": 16, "hnsw_ef_construction": 64, "hnsw_ef_search": 40,
                         "hnsw_dist_method": "vector_cosine_ops"})
        store._initialize()  # its tables and index, before the timing (ours: provision_schema above)
        prebuilt = [llama_nodes(*d) for d in docs]

        ours_t, llama_t = 0.0, 0.0
        for i, ((source, _, _), nodes) in enumerate(zip(docs, prebuilt)):
            first = i % 2 == 0  # alternate who goes first
            for who in (("ours", "llama") if first else ("llama", "ours")):
                t = time.perf_counter()
                if who == "ours":
                    result = await db.ops.ingest_text(source.text, namespace="peps", title=source.title,
                                                      source_uri=source.source_uri, schema=SCHEMA)
                    assert result.created and result.document.chunk_count == len(nodes)
                    ours_t += time.perf_counter() - t
                else:
                    await store.async_add(nodes)
                    llama_t += time.perf_counter() - t
        if embedder.misses:
            raise SystemExit(f"{embedder.misses} chunks were not the precomputed ones")
        print(f"ingest: ours {ours_t:.1f}s, llama {llama_t:.1f}s", file=sys.stderr)

        ours_q, llama_q, overlap = [], [], []
        for j, vec in enumerate(query_vectors):
            got = {}
            for who in (("ours", "llama") if j % 2 == 0 else ("llama", "ours")):
                t = time.perf_counter()
                if who == "ours":
                    hits = await db.ops.search_chunks(embedding=vec, mode="vector", limit=10, schema=SCHEMA)
                    ours_q.append(time.perf_counter() - t)
                    got[who] = [h.content for h in hits]
                else:
                    res = await store.aquery(VectorStoreQuery(query_embedding=vec, similarity_top_k=10))
                    llama_q.append(time.perf_counter() - t)
                    got[who] = [n.get_content() for n in res.nodes]
            overlap.append(len(set(got["ours"]) & set(got["llama"])) / 10)
        await store.close()

    rows_ours = len(docs) + 4 * n_chunks - len(docs)  # nodes + documents + chunks + edges
    lines = [
        f"`/tmp/bench-venv/bin/python -m benchmarks.bench_llamaindex` (llama-index-vector-stores-postgres "
        f"in its own venv), run {time.strftime('%Y-%m-%d')}, 2 shared cores; one embedded server "
        f"(PostgreSQL 18, fsync off) holding both. {len(docs)} PEPs, {n_chunks:,} chunks (`fixed`, 160 "
        f"tokens), the same precomputed hashing vectors on both sides; ingest interleaved document by "
        f"document, queries ({len(query_vectors)} PEP titles, embedded beforehand, top 10) interleaved "
        f"query by query. Both use an HNSW cosine index with m=16, ef_construction=64, ef_search=40.",
        "",
        "| | ours (`ingest_text` / `search_chunks`) | LlamaIndex `PGVectorStore` (`async_add` / `aquery`) | "
        "LlamaIndex / ours |",
        "|---|---|---|---|",
        f"| ingest, seconds | {ours_t:.1f} | {llama_t:.1f} | {llama_t / ours_t:.2f} |",
        f"| ingest, chunks/s | {n_chunks / ours_t:,.0f} | {n_chunks / llama_t:,.0f} | |",
        "| rows written per chunk | 4 (node, chunks row, HAS_CHUNK and NEXT_CHUNK edges) + 2 per document | "
        "1 (text, JSON metadata with the node serialised, vector) | |",
        f"| query p50, ms | {pct(ours_q, 0.5):.1f} | {pct(llama_q, 0.5):.1f} | "
        f"{pct(llama_q, 0.5) / pct(ours_q, 0.5):.2f} |",
        f"| query p95, ms | {pct(ours_q, 0.95):.1f} | {pct(llama_q, 0.95):.1f} | "
        f"{pct(llama_q, 0.95) / pct(ours_q, 0.95):.2f} |",
        "",
        f"A ratio above 1 means we are faster. Ours' ingest time includes chunking (LlamaIndex gets its "
        f"nodes ready-made) and writes {rows_ours / n_chunks:.1f} rows per chunk against LlamaIndex's 1. "
        f"The two top-10 lists share {statistics.mean(overlap):.2f} of their chunks on average "
        f"(both approximate). Network connections attempted by either: "
        f"{', '.join(sorted(set(NETWORK))) if NETWORK else 'none'}.",
    ]
    print("\n".join(lines), file=sys.stderr)
    if not args.no_write and args.limit is None:
        write_section(args.output, HEADING, lines)
        print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
