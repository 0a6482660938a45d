"""Side by side with LlamaIndex's `PGVectorStore` (llama-index-vector-stores-postgres): one run,
one embedded server, the same PEP chunks and the same precomputed vectors.

* ours: `db.ops.ingest_text(text, title=, source_uri=)` per PEP, with an embedder that returns
  the precomputed hashing vectors (so neither side embeds anything): a document node, its
  chunk nodes and `chunks` rows, HAS_CHUNK and NEXT_CHUNK edges; chunking is inside our timing;
* LlamaIndex, twice (plain, and `hybrid_search=True`): `await store.async_add(nodes)` per PEP, the nodes (`TextNode` with the same
  text, vector, and title/position metadata, the document as SOURCE) built beforehand, outside
  the timing; HNSW index with the same parameters (m=16, ef_construction=64, ef_search=100 (ours: copilotz_orm.sql.search.HNSW_EF_SEARCH),
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
            # ours embeds "title > headings\n\nchunk": the same precomputed vector serves both
            v = self.vectors.get(t) or self.vectors.get(t.split("\n\n", 1)[-1])
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
        stores = {}
        for name, hybrid in (("llama", False), ("llama_hybrid", True)):
            stores[name] = PGVectorStore.from_params(
                connection_string=url.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False),
                async_connection_string=url.set(drivername="postgresql+asyncpg").render_as_string(
                    hide_password=False),
                schema_name=LLAMA_SCHEMA, table_name=name, embed_dim=384, hybrid_search=hybrid,
                hnsw_kwargs={"hnsw_m": 16, "hnsw_ef_construction": 64, "hnsw_ef_search": 100,
                             "hnsw_dist_method": "vector_cosine_ops"})
            stores[name]._initialize()  # tables and indexes before the timing (ours: provision_schema)
        prebuilt = [llama_nodes(*d) for d in docs]
        order = ["ours", *stores]

        ingest = dict.fromkeys(order, 0.0)
        for i, ((source, _, _), nodes) in enumerate(zip(docs, prebuilt)):
            for who in order[i % 3:] + order[:i % 3]:  # rotate who goes first
                t = time.perf_counter()
                if who == "ours":
                    result = await db.ops.ingest_text(source.text, namespace="peps", title=source.title,
                                                      source_uri=source.source_uri, schema=SCHEMA)
                    assert result.created and result.document.chunk_count == len(nodes)
                else:
                    await stores[who].async_add(nodes)
                ingest[who] += time.perf_counter() - t
        if embedder.misses:
            raise SystemExit(f"{embedder.misses} chunks were not the precomputed ones")
        print(f"ingest: {ingest}", file=sys.stderr)

        latency = {who: [] for who in order}
        overlap = []
        for j, vec in enumerate(query_vectors):
            got = {}
            for who in order[j % 3:] + order[:j % 3]:
                t = time.perf_counter()
                if who == "ours":
                    hits = await db.ops.search_chunks(embedding=vec, mode="vector", limit=10, schema=SCHEMA)
                    got[who] = [h.content for h in hits]
                else:
                    res = await stores[who].aquery(VectorStoreQuery(query_embedding=vec, similarity_top_k=10))
                    got[who] = [n.get_content() for n in res.nodes]
                latency[who].append(time.perf_counter() - t)
            overlap.append(len(set(got["ours"]) & set(got["llama"])) / 10)
        for store in stores.values():
            await store.close()

    rows_ours = len(docs) + 4 * n_chunks  # nodes + documents + chunks + edges
    p50 = {who: pct(v, 0.5) for who, v in latency.items()}
    p95 = {who: pct(v, 0.95) for who, v in latency.items()}
    lines = [
        f"`/tmp/bench-venv/bin/python -m benchmarks.bench_llamaindex` (llama-index-vector-stores-postgres "
        f"in its own venv), run {time.strftime('%Y-%m-%d %H:%M')}, 2 cores shared with other work; one embedded "
        f"server (PostgreSQL 18, fsync off) holding all three. {len(docs)} PEPs, {n_chunks:,} chunks (`fixed`, "
        f"160 tokens), the same precomputed hashing vectors everywhere; ingest interleaved document by "
        f"document, queries ({len(query_vectors)} PEP titles, embedded beforehand, top 10) interleaved "
        f"query by query, the order rotating. All use an HNSW cosine index with m=16, ef_construction=64, "
        f"ef_search=100. `hybrid_search=True` gives LlamaIndex's table a generated tsvector with a GIN "
        f"index, as ours always has.",
        "",
        "| | ours (`ingest_text` / `search_chunks`) | LlamaIndex | LlamaIndex, `hybrid_search=True` |",
        "|---|---|---|---|",
        f"| ingest, seconds | {ingest['ours']:.1f} | {ingest['llama']:.1f} | {ingest['llama_hybrid']:.1f} |",
        f"| ingest, chunks/s | {n_chunks / ingest['ours']:,.0f} | {n_chunks / ingest['llama']:,.0f} | "
        f"{n_chunks / ingest['llama_hybrid']:,.0f} |",
        f"| ingest, their time / ours (> 1: we are faster) | 1.00 | {ingest['llama'] / ingest['ours']:.2f} | "
        f"{ingest['llama_hybrid'] / ingest['ours']:.2f} |",
        f"| rows written | {rows_ours:,} (nodes, documents, chunks, HAS_CHUNK and NEXT_CHUNK edges) | "
        f"{n_chunks:,} | {n_chunks:,} |",
        f"| query p50, ms | {p50['ours']:.1f} | {p50['llama']:.1f} | {p50['llama_hybrid']:.1f} |",
        f"| query p95, ms | {p95['ours']:.1f} | {p95['llama']:.1f} | {p95['llama_hybrid']:.1f} |",
        f"| query p50, their time / ours (> 1: we are faster) | 1.00 | {p50['llama'] / p50['ours']:.2f} | "
        f"{p50['llama_hybrid'] / p50['ours']:.2f} |",
        "",
        f"Ours' ingest time includes chunking (LlamaIndex gets its nodes ready-made). Ours' and "
        f"LlamaIndex's top-10 lists share {statistics.mean(overlap):.2f} of their chunks on average (both "
        f"approximate). Network connections attempted: "
        f"{', '.join(sorted(set(NETWORK))) if NETWORK else 'none'}.",
    ]
    print("\n".join(lines), file=sys.stderr)
    if not args.no_write and args.limit is None:
        write_section(args.output, HEADING, lines)
        print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
