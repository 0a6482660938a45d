"""Short misspelt queries on the PEP corpus: what the trigram correction of short queries buys.

`benchmarks/fuzzy_queries.json` holds 40 short queries (2-4 words) with a typo each, their
correct spelling and the PEP(s) that answer them, committed before any fuzzy search was run.
Every query is asked, in text and hybrid mode, three ways in one run on the same database:
spelt correctly (the ceiling), misspelt (the library), and misspelt with the correction turned
off (the baseline: `copilotz_orm.sql.terms.SHORT_QUERY_WORDS` set to 0 for those calls only).
Scores as in bench_retrieval (recall@5 and MRR over documents), plus the median latency of the
text leg with and without the correction.

Reuses the database bench_retrieval fills (its first run ingests the corpus, ~15 minutes):

    .venv/bin/python -m benchmarks.bench_fuzzy [--db file:/tmp/pep-bench-db]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

from copilotz_orm import DbConfig, EmbeddingConfig, create_database
from copilotz_orm.sql import terms

from ._results import write_section
from .bench_retrieval import DATA, DEPTH, NAMESPACE, ROOT, dedupe, ingest, pep_of, score

HEADING = "## Misspelt short queries (PEP corpus)"
VARIANTS = ("correct", "misspelt", "uncorrected")


async def ask(db, query: str, mode: str, correct: bool) -> tuple[list[int], float]:
    saved = terms.SHORT_QUERY_WORDS
    if not correct:
        terms.SHORT_QUERY_WORDS = 0
    try:
        start = time.perf_counter()
        hits = await db.ops.search_chunks(query, namespace=NAMESPACE, limit=100, mode=mode)
        elapsed = time.perf_counter() - start
    finally:
        terms.SHORT_QUERY_WORDS = saved
    return dedupe([pep_of(h.document.source_uri) for h in hits])[:DEPTH], elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default="file:/tmp/pep-bench-db")
    parser.add_argument("--queries", type=Path, default=ROOT / "benchmarks" / "fuzzy_queries.json")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    queries = json.loads(args.queries.read_text())

    results = {(m, v): [] for m in ("text", "hybrid") for v in VARIANTS}
    latency = {True: [], False: []}
    rows = []
    async with await create_database(DbConfig(url=args.db, embedding=EmbeddingConfig())) as db:
        await ingest(db, DATA)
        for q in queries:
            answers = set(q["peps"])
            row = [q["query"]]
            for mode in ("text", "hybrid"):
                for variant in VARIANTS:
                    text = q["correct"] if variant == "correct" else q["query"]
                    ranked, elapsed = await ask(db, text, mode, variant != "uncorrected")
                    results[mode, variant].append(score(ranked, answers))
                    if mode == "text" and variant != "correct":
                        latency[variant == "misspelt"].append(elapsed)
                    if mode == "text":
                        row.append(next((str(i) for i, p in enumerate(ranked, 1) if p in answers), ">10"))
            rows.append(row)

    def cell(mode: str, variant: str) -> str:
        scored = results[mode, variant]
        recall = sum(s[0] for s in scored) / len(scored)
        mrr = sum(s[1] for s in scored) / len(scored)
        return f"{recall:.3f} / {mrr:.3f}"

    lines = [
        f"`python -m benchmarks.bench_fuzzy`, run {time.strftime('%Y-%m-%d')}: {len(queries)} short queries with "
        "one typo each (`benchmarks/fuzzy_queries.json`, committed before the first fuzzy search), on the "
        "PEP corpus ingested by bench_retrieval (all-MiniLM-L6-v2). Each is asked spelt correctly, "
        "misspelt (the library: unknown words of a query of at most "
        f"{terms.SHORT_QUERY_WORDS} words replaced by the nearest word of the namespace's vocabulary by "
        "trigram similarity), and misspelt with the correction off, in one run. recall@5 / MRR over "
        "documents, as in the retrieval section.",
        "",
        "| mode | spelt correctly | misspelt, corrected (library) | misspelt, not corrected |",
        "|---|---|---|---|",
        *(f"| {mode} | {cell(mode, 'correct')} | {cell(mode, 'misspelt')} | {cell(mode, 'uncorrected')} |"
          for mode in ("text", "hybrid")),
        "",
        f"Text-mode latency, median of {len(latency[True])}: {statistics.median(latency[True]) * 1000:.1f} ms "
        f"with the correction, {statistics.median(latency[False]) * 1000:.1f} ms without "
        f"(ratio {statistics.median(latency[True]) / statistics.median(latency[False]):.2f}).",
        "",
        "| query | text rank: correct | misspelt, corrected | not corrected |",
        "|---|---|---|---|",
        *(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} |" for r in rows),
    ]
    print("\n".join(lines))
    if not args.no_write:
        write_section(args.output, HEADING, lines)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
