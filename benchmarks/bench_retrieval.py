"""Retrieval-quality benchmark (issue 5): held-back questions on the PEP corpus.

`benchmarks/pep_questions.json` holds natural-language questions, each with the PEP number(s)
that answer it; they were written and committed before any search was run. The script ingests
`../shared/data/peps` with the local model into an embedded `file:` database (a database that
already holds the corpus is reused: re-ingesting stored content is a no-op), then asks every
question with `search_chunks` in hybrid, vector and text mode. Chunk hits are mapped to their
document's PEP number, documents deduplicated in rank order, and each mode scored over documents:

* recall@5: share of questions with an answer PEP among the first 5 documents;
* MRR: mean of 1 / rank of the first answer PEP among the first 10 documents (0 if none).

Experimental rows (clearly labelled, computed here from the same two legs, no library change):
the same chunk-level RRF recomputed in Python (a check that the experiments start from the
library's ranking), RRF over *documents* instead of chunks, and a third leg that ranks documents
by the cosine similarity of the question to the document's title (PEP titles appear only in the
first chunk's header, so most chunks do not carry them).

Results go to the `## Retrieval quality (PEP corpus)` section of benchmarks/RESULTS.md; the other
sections are kept.

    .venv/bin/python -m benchmarks.bench_retrieval [--db file:/tmp/pep-bench-db] [--questions ...]

The first ingest with the local model takes ~10 minutes on two cores; run it under `nice`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from copilotz_orm import DbConfig, EmbeddingConfig, create_database

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "peps"
HEADING = "## Retrieval quality (PEP corpus)"
NAMESPACE = "peps"
MODES = ("hybrid", "vector", "text")
RRF_K = 60          # as in copilotz_orm.sql.search
CANDIDATES = 100    # chunks per leg, as a hybrid search uses
DEPTH = 10          # documents scored for MRR
MIX_ALPHAS = (0.5,)  # experiment: weight of the document title's vector mixed into each chunk's
PEP_RE = re.compile(r"pep-(\d+)\.\w+$")


def pep_of(source_uri: str | None) -> int | None:
    match = PEP_RE.search(source_uri or "")
    return int(match.group(1)) if match else None


def dedupe(pairs: Sequence[int | None]) -> list[int]:
    """PEP numbers in rank order, each once."""
    seen: list[int] = []
    for pep in pairs:
        if pep is not None and pep not in seen:
            seen.append(pep)
    return seen


def rrf(rankings: Sequence[Sequence[str | int]], weights: Sequence[float] | None = None) -> list:
    """Reciprocal rank fusion (1-based ranks, k=RRF_K); ties broken by the key, like the SQL."""
    scores: dict = {}
    for i, ranking in enumerate(rankings):
        w = 1.0 if weights is None else weights[i]
        for rank, key in enumerate(ranking, 1):
            scores[key] = scores.get(key, 0.0) + w / (RRF_K + rank)
    return sorted(scores, key=lambda k: (-scores[k], str(k)))


def score(ranked: list[int], answers: set[int]) -> tuple[bool, float, int | None]:
    """(answer in top 5, reciprocal rank within DEPTH, rank or None)."""
    for rank, pep in enumerate(ranked[:DEPTH], 1):
        if pep in answers:
            return rank <= 5, 1.0 / rank, rank
    return False, 0.0, None


async def ingest(db, data: Path) -> dict[str, tuple[int, str]]:
    """Ingest every PEP (a no-op for stored content); {document id: (pep, title)}."""
    files = sorted(p for p in data.iterdir() if p.suffix in (".rst", ".txt"))
    docs: dict[str, tuple[int, str]] = {}
    start, created = time.perf_counter(), 0
    for i, path in enumerate(files, 1):
        result = await db.ops.ingest_file(path, namespace=NAMESPACE)
        created += result.created
        docs[result.document.id] = (pep_of(str(path)), result.document.title or "")
        if i % 100 == 0:
            print(f"  ingest {i}/{len(files)} ({created} new)", file=sys.stderr)
    print(f"ingest: {len(files)} files, {created} new, {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return docs


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default="file:/tmp/pep-bench-db",
                        help="embedded file: database (reused when it already holds the corpus)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--questions", type=Path, default=ROOT / "benchmarks" / "pep_questions.json")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="embedding model (hashing: a quick smoke test)")
    parser.add_argument("--prefix-cache", type=Path,
                        help="experiment: re-embed every chunk as 'title\\n\\nchunk' with the same model "
                             "(~10 min, cached in this .npz file) and search those vectors exactly")
    parser.add_argument("--details", type=Path, help="write every question's rankings as JSON here")
    args = parser.parse_args()
    questions = json.loads(args.questions.read_text())

    config = DbConfig(url=args.db, embedding=EmbeddingConfig(model=args.model))
    async with await create_database(config) as db:
        docs = await ingest(db, args.data)
        pep_title = {pep: title for pep, title in docs.values()}
        peps = sorted(pep_title)
        title_vectors = db.embedder.embed([pep_title[p] for p in peps])
        prefixed = await prefixed_vectors(db, docs, args.prefix_cache) if args.prefix_cache else None
        bm25 = await Bm25.load(db, docs)
        stored_ids, stored_docs, stored_matrix = await stored_vectors(db)
        title_of = {doc_id: i for i, doc_id in enumerate(sorted(docs))}
        doc_title_vectors = np.asarray(db.embedder.embed([docs[d][1] for d in sorted(docs)]), dtype=np.float32)
        mixed = {}
        for alpha in MIX_ALPHAS:
            m = stored_matrix + alpha * doc_title_vectors[[title_of[d] for d in stored_docs]]
            mixed[alpha] = m / np.linalg.norm(m, axis=1, keepdims=True)
        all_chunk_pep = {c: docs[d][0] for c, d in zip(stored_ids, stored_docs)}

        per_question, latency = [], {m: [] for m in MODES}
        for n, q in enumerate(questions, 1):
            text = q["question"]
            row = {"question": text, "answers": q["peps"], "topic": q.get("topic")}
            chunk_ids = {}
            for mode in MODES:
                t0 = time.perf_counter()
                hits = await db.ops.search_chunks(text, namespace=NAMESPACE, limit=CANDIDATES, mode=mode)
                latency[mode].append(time.perf_counter() - t0)
                row[mode] = dedupe([pep_of(h.document.source_uri) for h in hits])[:DEPTH]
                chunk_ids[mode] = [(h.chunk_id, pep_of(h.document.source_uri)) for h in hits]
            chunk_pep = dict(chunk_ids["vector"] + chunk_ids["text"])
            v_chunks = [c for c, _ in chunk_ids["vector"]]
            t_chunks = [c for c, _ in chunk_ids["text"]]
            v_docs = dedupe([p for _, p in chunk_ids["vector"]])
            t_docs = dedupe([p for _, p in chunk_ids["text"]])
            # Experiments: all from the same two legs of 100 chunks each.
            row["x_chunk_rrf"] = dedupe([chunk_pep[c] for c in rrf([v_chunks, t_chunks])[:CANDIDATES]])[:DEPTH]
            row["x_doc_rrf"] = rrf([v_docs, t_docs])[:DEPTH]
            qv = db.embedder.embed([text])[0]
            sims = [sum(a * b for a, b in zip(qv, tv)) / (math.hypot(*qv) * math.hypot(*tv) or 1.0)
                    for tv in title_vectors]
            title_rank = [p for _, p in sorted(zip(sims, peps), key=lambda x: -x[0])][:CANDIDATES]
            row["x_doc_rrf_title"] = rrf([v_docs, t_docs, title_rank])[:DEPTH]
            for w in (0.5, 0.25):
                fused = rrf([v_chunks, t_chunks], [1.0, w])[:CANDIDATES]
                row[f"x_text_weight_{w}"] = dedupe([chunk_pep[c] for c in fused])[:DEPTH]
            b_chunks = await bm25.search(db, text, CANDIDATES)
            chunk_pep.update((c, bm25.pep[c]) for c in b_chunks)
            row["x_bm25_text"] = dedupe([chunk_pep[c] for c in b_chunks])[:DEPTH]
            row["x_bm25_hybrid"] = dedupe([chunk_pep[c] for c in rrf([v_chunks, b_chunks])[:CANDIDATES]])[:DEPTH]
            q = np.asarray(qv, dtype=np.float32)
            for alpha, m in mixed.items():
                mv = [stored_ids[i] for i in np.argsort(-(m @ q))[:CANDIDATES]]
                row[f"x_mix_{alpha}_vector"] = dedupe([all_chunk_pep[c] for c in mv])[:DEPTH]
                row[f"x_mix_{alpha}_hybrid"] = dedupe(
                    [all_chunk_pep[c] for c in rrf([mv, t_chunks])[:CANDIDATES]])[:DEPTH]
                row[f"x_mix_{alpha}_bm25_hybrid"] = dedupe(
                    [all_chunk_pep[c] for c in rrf([mv, b_chunks])[:CANDIDATES]])[:DEPTH]
            if prefixed is not None:
                ids, peps_of_chunk, matrix, stored = prefixed
                q = np.asarray(qv, dtype=np.float32)
                exact = [ids[i] for i in np.argsort(-(stored @ q))[:CANDIDATES]]
                pv = [ids[i] for i in np.argsort(-(matrix @ q))[:CANDIDATES]]
                chunk_pep = dict(zip(ids, peps_of_chunk))
                row["x_exact_vector"] = dedupe([chunk_pep[c] for c in exact])[:DEPTH]
                row["x_prefix_vector"] = dedupe([chunk_pep[c] for c in pv])[:DEPTH]
                row["x_prefix_hybrid"] = dedupe([chunk_pep[c] for c in rrf([pv, t_chunks])[:CANDIDATES]])[:DEPTH]
                row["x_prefix_doc_rrf"] = rrf([dedupe([chunk_pep[c] for c in pv]), t_docs])[:DEPTH]
                row["x_prefix_bm25_hybrid"] = dedupe([chunk_pep[c] for c in rrf([pv, b_chunks])[:CANDIDATES]])[:DEPTH]
            per_question.append(row)
            if n % 20 == 0:
                print(f"  {n}/{len(questions)} questions", file=sys.stderr)

    rows: list[tuple[str, str]] = [
        ("hybrid", "hybrid (library: chunk-level RRF, k=60, 100 chunks per leg)"),
        ("vector", "vector only"),
        ("text", "text only"),
        ("x_chunk_rrf", "*experiment:* chunk-level RRF recomputed in Python (should equal hybrid)"),
        ("x_doc_rrf", "*experiment:* RRF over documents (each leg deduplicated to documents first)"),
        ("x_doc_rrf_title", "*experiment:* document RRF + a third leg ranking documents by title similarity"),
        ("x_text_weight_0.5", "*experiment:* chunk-level RRF, text leg weighted 0.5"),
        ("x_text_weight_0.25", "*experiment:* chunk-level RRF, text leg weighted 0.25"),
        ("x_bm25_text", "*experiment:* text only, BM25 (k1=1.2, b=0.75) over the same stemmed lexemes, in Python"),
        ("x_bm25_hybrid", "*experiment:* chunk-level RRF (k=60, equal weights) of the vector leg and the BM25 text leg"),
    ]
    for alpha in MIX_ALPHAS:
        rows += [
            (f"x_mix_{alpha}_vector", f"*experiment:* vector only, each chunk's stored vector + {alpha} × its document's "
                                      "title vector (renormalised; a cheap stand-in for a title prefix), exact"),
            (f"x_mix_{alpha}_hybrid", f"*experiment:* chunk-level RRF of those title-mixed vectors ({alpha}) and the library's text leg"),
            (f"x_mix_{alpha}_bm25_hybrid", f"*experiment:* chunk-level RRF of those title-mixed vectors ({alpha}) and the BM25 text leg"),
        ]
    if "x_exact_vector" in per_question[0]:
        rows += [
            ("x_exact_vector", "*experiment:* vector only, exact (brute force over the stored vectors, no HNSW)"),
            ("x_prefix_vector", "*experiment:* vector only, chunks re-embedded with their PEP title as a prefix (exact)"),
            ("x_prefix_hybrid", "*experiment:* chunk-level RRF of title-prefixed vectors and the library's text leg"),
            ("x_prefix_doc_rrf", "*experiment:* document-level RRF of title-prefixed vectors and the text leg"),
            ("x_prefix_bm25_hybrid", "*experiment:* chunk-level RRF of title-prefixed vectors and the BM25 text leg"),
        ]
    results = {}
    for key, _ in rows:
        scored = [score(r[key], set(r["answers"])) for r in per_question]
        results[key] = {
            "recall5": sum(s[0] for s in scored) / len(scored),
            "mrr": sum(s[1] for s in scored) / len(scored),
            "ranks": [s[2] for s in scored],
        }
    agree = sum(r["hybrid"] == r["x_chunk_rrf"] for r in per_question)

    report = [HEADING, "",
              f"`python -m benchmarks.bench_retrieval`, run {time.strftime('%Y-%m-%d')}: "
              f"{len(questions)} held-back questions (`benchmarks/pep_questions.json`, committed before the "
              f"first search) on the {len(docs)} PEP files in `{args.data}`, model {args.model}, "
              f"embedded server. Each search asks for {CANDIDATES} chunks; hits are mapped to their PEP and "
              f"documents deduplicated in rank order. recall@5 = share of questions with an answer PEP among the "
              f"first 5 documents; MRR = mean 1/rank of the first answer PEP within the first {DEPTH} documents "
              "(0 if none). A question may list several answer PEPs (e.g. a PEP and its successor); any one counts.",
              "",
              "| ranking | recall@5 | MRR | found in top 10 | median ms / query |",
              "|---|---|---|---|---|"]
    for key, label in rows:
        r = results[key]
        found = sum(x is not None for x in r["ranks"])
        ms = f"{statistics.median(latency[key]) * 1000:.0f}" if key in latency else "–"
        report.append(f"| {label} | {r['recall5']:.3f} | {r['mrr']:.3f} | {found}/{len(questions)} | {ms} |")
    report += ["", f"The chunk-level RRF recomputed in Python gives the library's document ranking for "
               f"{agree}/{len(questions)} questions (the legs come from separate calls, so chunks "
               "tied in one leg may be ordered differently).", ""]
    misses = [(r, rank) for r, rank in zip(per_question, results["hybrid"]["ranks"]) if rank is None or rank > 5]
    report += [f"Hybrid misses (answer not in the top 5): {len(misses)}", "",
               "| question | answer | hybrid rank | vector rank | text rank | hybrid top 3 |",
               "|---|---|---|---|---|---|"]
    idx = {id(r): i for i, r in enumerate(per_question)}
    for r, rank in misses:
        i = idx[id(r)]
        vr, tr = results["vector"]["ranks"][i], results["text"]["ranks"][i]
        report.append(f"| {r['question']} | {', '.join(map(str, r['answers']))} | {rank or '>10'} | "
                      f"{vr or '>10'} | {tr or '>10'} | {', '.join(map(str, r['hybrid'][:3]))} |")
    report.append("")
    for line in report:
        print(line, file=sys.stderr)

    if args.details:
        args.details.write_text(json.dumps(per_question, indent=1))
    write_section(args.output, report)
    print(f"wrote {args.output}", file=sys.stderr)


class Bm25:
    """BM25 over the chunks' own tsvectors (the lexemes the library's text leg matches on), so
    the only difference from the text leg is the ranking function: BM25 weighs each query term
    by its rarity (IDF), ts_rank_cd counts every matched term alike."""

    K1, B = 1.2, 0.75

    def __init__(self, postings, lengths, pep):
        self.postings, self.lengths, self.pep = postings, lengths, pep
        self.avg = sum(lengths.values()) / len(lengths)

    @classmethod
    async def load(cls, db, docs):
        from sqlalchemy import String, cast, select

        from copilotz_orm.models import Chunk

        async with db.session() as s:
            rows = (await s.execute(select(Chunk.id, Chunk.document_id, cast(Chunk.search_text, String))
                                    .where(Chunk.namespace == NAMESPACE))).all()
        postings: dict[str, dict[str, int]] = {}
        lengths, pep = {}, {}
        lexeme = re.compile(r"'((?:[^']|'')*)'(?::([0-9A-D,]+))?")
        for chunk_id, doc_id, vector in rows:
            total = 0
            for m in lexeme.finditer(vector or ""):
                tf = len(m.group(2).split(",")) if m.group(2) else 1
                postings.setdefault(m.group(1).replace("''", "'"), {})[chunk_id] = tf
                total += tf
            lengths[chunk_id], pep[chunk_id] = max(total, 1), docs[doc_id][0]
        return cls(postings, lengths, pep)

    async def search(self, db, query: str, limit: int) -> list[str]:
        from sqlalchemy import func, select

        async with db.session() as s:
            terms = (await s.execute(select(func.unnest(func.tsvector_to_array(
                func.to_tsvector("english", query)))))).scalars().all()
        n, scores = len(self.lengths), {}
        for term in terms:
            posting = self.postings.get(term, {})
            if not posting:
                continue
            idf = math.log(1 + (n - len(posting) + 0.5) / (len(posting) + 0.5))
            for chunk_id, tf in posting.items():
                norm = tf + self.K1 * (1 - self.B + self.B * self.lengths[chunk_id] / self.avg)
                scores[chunk_id] = scores.get(chunk_id, 0.0) + idf * tf * (self.K1 + 1) / norm
        return sorted(scores, key=lambda c: (-scores[c], c))[:limit]


async def stored_vectors(db):
    """(chunk ids, their document ids, the stored chunk vectors as a matrix) for the corpus."""
    from sqlalchemy import select

    from copilotz_orm.models import Chunk

    async with db.session() as s:
        rows = (await s.execute(select(Chunk.id, Chunk.document_id, Chunk.embedding)
                                .where(Chunk.namespace == NAMESPACE).order_by(Chunk.id))).all()
    return ([r[0] for r in rows], [r[1] for r in rows],
            np.asarray([np.asarray(r[2], dtype=np.float32) for r in rows]))


async def prefixed_vectors(db, docs: dict[str, tuple[int, str]], cache: Path):
    """Every chunk of the corpus: (ids, PEPs, title-prefixed vectors, stored vectors), the
    prefixed ones embedded once and cached in `cache` (an .npz file outside the repository)."""
    from sqlalchemy import select

    from copilotz_orm.models import Chunk

    async with db.session() as s:
        rows = (await s.execute(select(Chunk.id, Chunk.document_id, Chunk.content, Chunk.embedding)
                                .where(Chunk.namespace == NAMESPACE).order_by(Chunk.id))).all()
    ids = [r[0] for r in rows]
    peps = [docs[r[1]][0] for r in rows]
    stored = np.asarray([np.asarray(r[3], dtype=np.float32) for r in rows])
    texts = [f"{docs[r[1]][1]}\n\n{r[2]}" for r in rows]
    vectors: list = []
    if cache.exists():  # a finished or partial run: resume from it
        saved = np.load(cache, allow_pickle=False)
        done = list(saved["ids"])
        if done == ids[:len(done)]:
            vectors = list(saved["vectors"])
    start = time.perf_counter()
    if len(vectors) < len(texts):
        print(f"experiment: embedding {len(texts) - len(vectors)} title-prefixed chunks", file=sys.stderr)
    for i in range(len(vectors), len(texts), 256):
        vectors.extend(db.embedder.embed(texts[i:i + 256]))
        np.savez(cache, ids=np.asarray(ids[:len(vectors)]), vectors=np.asarray(vectors, dtype=np.float32))
        print(f"  {len(vectors)}/{len(texts)} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    matrix = np.asarray(vectors, dtype=np.float32)
    return ids, peps, matrix, stored


def write_section(path: Path, lines: list[str]) -> None:
    """Replace this benchmark's section of RESULTS.md (or add it before the first other section),
    leaving the other sections as they are."""
    existing = path.read_text() if path.exists() else "# Benchmark results\n"
    section = "\n".join(lines).rstrip() + "\n\n"
    if HEADING in existing:
        before, rest = existing.split(HEADING, 1)
        after = re.search(r"^## ", rest, re.M)
        reading = ""
        if after:
            rest_after = rest[after.start():]
        else:
            rest_after = ""
        # Keep a hand-written reading ("### Reading ...") that follows the generated table.
        own = rest[:after.start()] if after else rest
        keep = re.search(r"^### Reading.*", own, re.M | re.S)
        if keep:
            reading = keep.group(0).rstrip() + "\n\n"
        path.write_text(before + section + reading + rest_after)
    else:
        first = re.search(r"^## ", existing, re.M)
        if first:
            path.write_text(existing[:first.start()] + section + existing[first.start():])
        else:
            path.write_text(existing.rstrip() + "\n\n" + section)


if __name__ == "__main__":
    asyncio.run(main())
