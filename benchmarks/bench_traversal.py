"""Traversal benchmark: `traverse_graph` against three baselines measured in the same run.

* floor: the same recursive CTE, written by hand as SQL text and run with raw asyncpg, its JSON
  result decoded with json.loads (ours is decoded into pydantic models);
* original: the original Copilotz algorithm, level by level (re-implemented here with raw
  asyncpg, as fast as that algorithm can be: per level one query for the frontier's edges with
  `= ANY($1)` and one for the new nodes' rows), returning the same nodes and walked edges;
* networkx: breadth-first search on the same graph held in memory.

Every method must return the same node set for every (start, depth); the script stops if not.
Results go to benchmarks/RESULTS.md (medians and ratios; machines here are noisy, so read the
ratios, not the seconds).

    .venv/bin/python -m benchmarks.bench_traversal [--starts 50] [--graphs wiki-vote facebook powerlaw]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import asyncpg
import networkx as nx

from copilotz_orm import DbConfig, EmbeddingConfig, create_database
from copilotz_orm.schemas import EdgeOut, NodeOut, Traversal, TraversedNode, parse_large

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "graphs"
SCHEMA = "bench_traversal"

def floor_sql(direction: str) -> str:
    """The statement traverse_graph builds, written by hand (schema-qualified, no ORM)."""
    one = "SELECT e.{a} AS a, e.{b} AS b, e.id, e.ctid AS row FROM {s}.edges e"
    steps = one.format(a="source_id", b="target_id", s=SCHEMA)
    if direction == "both":
        steps += " UNION ALL " + one.format(a="target_id", b="source_id", s=SCHEMA)

    return f"""
WITH RECURSIVE walk(depth, frontier, seen, edge_rows, walked_to) AS (
    SELECT 0, array_agg(id), jsonb_object_agg(id, 0), NULL::tid[], NULL::text[] FROM {SCHEMA}.nodes WHERE id = $1
  UNION ALL
    SELECT prev.depth + 1, nxt.frontier, prev.seen || nxt.added, nxt.edge_rows, nxt.walked_to
    FROM walk prev CROSS JOIN LATERAL (
        SELECT array_agg(DISTINCT o.b) AS frontier, jsonb_object_agg(o.b, 0) AS added,
               array_agg(o.row ORDER BY o.b, o.id) AS edge_rows, array_agg(o.b ORDER BY o.b, o.id) AS walked_to
        FROM ({steps}) o
        WHERE o.a = ANY(prev.frontier) AND NOT prev.seen ? o.b) nxt
    WHERE prev.depth < $2 AND nxt.frontier IS NOT NULL
),
walked AS (
    SELECT row_to_json(n) AS node, n.id, walk.depth
    FROM walk CROSS JOIN LATERAL (
        SELECT n.id, n.namespace, n.type, n.name, n.content, n.data, n.source_type, n.source_id,
               n.created_at, n.updated_at
        FROM {SCHEMA}.nodes n WHERE n.id = ANY(walk.frontier)) n
)
SELECT json_build_object(
  'start_id', $1::text,
  'nodes', (SELECT coalesce(json_agg(json_build_object('node', w.node, 'depth', w.depth)
        ORDER BY w.depth, w.id), json_build_array()) FROM walked w),
  'edges', (SELECT coalesce(json_agg(row_to_json(e) ORDER BY walk.depth, r.position), json_build_array())
            FROM walk, unnest(walk.edge_rows, walk.walked_to) WITH ORDINALITY AS r(edge_row, walked_to, position)
            JOIN {SCHEMA}.edges e ON e.ctid = r.edge_row)
)::text AS result"""


async def original_bfs(conn: asyncpg.Connection, start: str, depth: int, direction: str
                       ) -> tuple[dict[str, tuple[asyncpg.Record, int]], list[asyncpg.Record]]:
    """The original's traverseGraph, one level at a time: fetch the frontier's edges, keep
    those leading to new nodes (or to nodes first reached on this level), then fetch the new
    nodes' rows. Same content as traverse_graph: node rows with depths and the edges walked.
    Returns ({node id: (row, depth)}, walked edge rows)."""
    node_sql = (f"SELECT id, namespace, type, name, content, data, source_type, source_id, created_at, "
                f"updated_at FROM {SCHEMA}.nodes WHERE id = ANY($1)")
    cols = "id, source_id, target_id, type, data, weight, created_at"
    edge_sql = f"SELECT {cols} FROM {SCHEMA}.edges WHERE source_id = ANY($1)"
    if direction == "both":
        edge_sql += f" UNION ALL SELECT {cols} FROM {SCHEMA}.edges WHERE target_id = ANY($1)"
    nodes = {r["id"]: (r, 0) for r in await conn.fetch(node_sql, [start])}
    walked: list[asyncpg.Record] = []
    if not nodes:
        return nodes, walked
    frontier = {start}
    for level in range(1, depth + 1):
        if not frontier:
            break
        reached: set[str] = set()
        for edge in await conn.fetch(edge_sql, list(frontier)):
            ends = [(edge["source_id"], edge["target_id"])]
            if direction == "both":
                ends.append((edge["target_id"], edge["source_id"]))
            for a, b in ends:
                if a in frontier and (b not in nodes or b in reached):
                    reached.add(b)
                    walked.append(edge)
        for row in await conn.fetch(node_sql, list(reached - set(nodes))):
            nodes[row["id"]] = (row, level)
        frontier = reached
    return nodes, walked


def as_traversal(start: str, nodes: dict[str, tuple[asyncpg.Record, int]], walked: list[asyncpg.Record]) -> Traversal:
    """The original's rows turned into what traverse_graph returns, in the same order, with the
    garbage collector paused as traverse_graph pauses it for its parse."""
    ordered = sorted(nodes.values(), key=lambda item: (item[1], item[0]["id"]))
    gc.disable()
    try:
        # asyncpg hands JSONB over as text: decoded here for the rows kept, not for every row fetched.
        return Traversal(start_id=start,
                         nodes=[TraversedNode(node=NodeOut.model_validate({**row, "data": json.loads(row["data"])}),
                                              depth=level) for row, level in ordered],
                         edges=[EdgeOut.model_validate({**edge, "data": json.loads(edge["data"])}) for edge in walked])
    finally:
        gc.enable()


async def run_ours(db, node_id: str, depth: int, direction: str):
    """traverse_graph's result and the number of statements it ran."""
    db.metrics.reset()
    walked = await db.ops.traverse_graph(node_id, max_depth=depth, direction=direction, schema=SCHEMA)
    return walked, db.metrics.statements


async def run_bare(db, node_id: str, depth: int, direction: str) -> set[str]:
    """traverse_graph(include_edges=False): the same nodes, no edges."""
    walked = await db.ops.traverse_graph(node_id, max_depth=depth, direction=direction, include_edges=False,
                                         schema=SCHEMA)
    return walked.node_ids()


async def run_floor(floor: asyncpg.prepared_stmt.PreparedStatement, node_id: str, depth: int):
    """The floor's decoded result, its JSON text and the seconds json.loads took."""
    raw = await floor.fetchval(node_id, depth)
    t = time.perf_counter()
    result = json.loads(raw)
    return result, raw, time.perf_counter() - t


def load_pairs(name: str) -> tuple[list[tuple[str, str]], bool]:
    if name == "wiki-vote":
        return [tuple(l.split()[:2]) for l in (DATA / "wiki-vote.txt").read_text().splitlines()
                if l and not l.startswith("#")], True
    if name == "facebook":
        return [tuple(l.split()[:2]) for l in (DATA / "facebook_combined.txt").read_text().splitlines()
                if l and not l.startswith("#")], False
    graph = nx.barabasi_albert_graph(200_000, 5, seed=42)  # power law: 999,975 edges
    return [(str(a), str(b)) for a, b in graph.edges()], False


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def bench_graph(db, name: str, starts: int, depths: list[int], report: list[str]) -> None:
    pairs, directed = load_pairs(name)
    t0 = time.perf_counter()
    await db.ops.import_edge_list(pairs, namespace=name, schema=SCHEMA)
    load_s = time.perf_counter() - t0
    graph = nx.DiGraph(pairs) if directed else nx.Graph(pairs)
    # The in-memory graph is millions of objects; without this every garbage collection would
    # scan them, and that pause would land on whichever method allocates most (ours).
    gc.collect()
    gc.freeze()
    direction = "out" if directed else "both"
    rng = random.Random(7)
    chosen = rng.sample(sorted(graph.nodes), starts)
    conn = await asyncpg.connect(db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False))
    # What autovacuum does soon after a bulk load anyway: set the rows' hint bits (with data
    # checksums on, the first reader of each page after the load writes a full-page image to
    # the WAL) and the statistics. Otherwise whichever method touches a page first pays that.
    await conn.execute(f"VACUUM (ANALYZE) {SCHEMA}.nodes, {SCHEMA}.edges")
    floor = await conn.prepare(floor_sql(direction))
    print(f"{name}: {graph.number_of_nodes()} nodes, {graph.number_of_edges()} edges, imported in {load_s:.1f}s",
          file=sys.stderr)
    report.append(f"\n### {name} ({graph.number_of_nodes():,} nodes, {graph.number_of_edges():,} edges, "
                  f"direction `{direction}`, {starts} starts)\n")
    report.append("| depth | nodes (median) | traverse_graph ms | floor ms | original ms | original + models ms | "
                  "nodes only ms | networkx ms | ours / floor | original / ours | original + models / ours | "
                  "original + models / nodes only | ours / networkx | statements per call | pydantic parse ms | "
                  "json.loads ms |")
    report.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for depth in depths:
        times = {"ours": [], "floor": [], "original": [], "original_models": [], "bare": [], "networkx": [],
                 "pydantic": [], "loads": []}
        sizes, statements = [], set()
        for i, start in enumerate(chosen):
            node_id = f"{name}:{start}"
            calls = {"ours": partial(run_ours, db, node_id, depth, direction),
                     "floor": partial(run_floor, floor, node_id, depth),
                     "original": partial(original_bfs, conn, node_id, depth, direction),
                     "bare": partial(run_bare, db, node_id, depth, direction)}
            # Rotated, so that no method is always the one to find the caches cold.
            order = list(calls)[i % len(calls):] + list(calls)[:i % len(calls)]
            out = {}
            for key in order:
                t = time.perf_counter()
                out[key] = await calls[key]()
                times[key].append(time.perf_counter() - t)
            (walked, count), (result, raw, loads_s), (orig, orig_edges) = out["ours"], out["floor"], out["original"]
            statements.add(count)
            times["loads"].append(loads_s)
            # The original's rows made into traverse_graph's result: what a caller of that
            # algorithm pays to get the same objects.
            t = time.perf_counter()
            as_traversal(node_id, orig, orig_edges)
            times["original_models"].append(times["original"][-1] + time.perf_counter() - t)
            # Our extra cost above the floor's json.loads: the same text parsed into the models.
            t = time.perf_counter()
            parse_large(Traversal, raw)
            times["pydantic"].append(time.perf_counter() - t)
            t = time.perf_counter()
            expected = nx.single_source_shortest_path_length(graph, start, cutoff=depth)
            times["networkx"].append(time.perf_counter() - t)
            ours = walked.node_ids()
            want = {f"{name}:{k}" for k in expected}
            if not (ours == {n["node"]["id"] for n in result["nodes"]} == set(orig) == want == out["bare"]):
                raise SystemExit(f"node sets differ: {name} start {start} depth {depth}")
            if not ({e.id for e in walked.edges} == {e["id"] for e in result["edges"]}
                    == {e["id"] for e in orig_edges}) or len(walked.edges) != len(orig_edges):
                raise SystemExit(f"edges walked differ: {name} start {start} depth {depth}: "
                                 f"{len(walked.edges)} {len(result['edges'])} {len(orig_edges)}")
            sizes.append(len(ours))
        m = {k: median_ms(v) for k, v in times.items()}
        report.append(
            f"| {depth} | {statistics.median(sizes):.0f} | {m['ours']:.1f} | {m['floor']:.1f} | "
            f"{m['original']:.1f} | {m['original_models']:.1f} | {m['bare']:.1f} | {m['networkx']:.2f} | "
            f"{m['ours'] / m['floor']:.2f} | {m['original'] / m['ours']:.2f} | {m['original_models'] / m['ours']:.2f} | "
            f"{m['original_models'] / m['bare']:.2f} | {m['ours'] / m['networkx']:.0f} | "
            f"{', '.join(map(str, sorted(statements)))} | {m['pydantic']:.1f} | {m['loads']:.1f} |")
        print(report[-1], file=sys.stderr)
    await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=50)
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--graphs", nargs="+", default=["wiki-vote", "facebook", "powerlaw"])
    parser.add_argument("--powerlaw-starts", type=int, default=10,
                        help="starts on the 1M-edge graph, whose deep walks cover most of it")
    parser.add_argument("--powerlaw-depths", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()
    report = ["## Graph traversal", "",
              f"`python -m benchmarks.bench_traversal --starts {args.starts}` on the embedded server "
              f"(PostgreSQL 18, fsync off), run {time.strftime('%Y-%m-%d')}. Medians over the starts; "
              "every method returned the same node set (and ours, the floor and the original the same edges walked) for every start and depth.",
              "floor = the same CTE as SQL text on raw asyncpg, decoded with json.loads; original = the "
              "original's algorithm, level by level on raw asyncpg (a query for the frontier's edges and one "
              "for the new nodes per level, same nodes and edges walked as ours, left as asyncpg records); "
              "original + models = the same plus turning its records into the `Traversal` that traverse_graph "
              "returns (what a caller of that algorithm pays for the same objects); nodes only = "
              "traverse_graph(include_edges=False), what find_related_nodes runs; "
              "networkx = in-memory BFS (node ids only). Each graph is VACUUMed after its load, and the "
              "four database methods take turns going first. The last two columns time the floor's JSON text "
              "parsed into the `Traversal` models as traverse_graph does (`parse_large`) and with json.loads (what the "
              "floor does), outside the timings."]
    async with await create_database(DbConfig(url=":memory:", embedding=EmbeddingConfig(model="hashing"))) as db:
        await db.provision_schema(SCHEMA)
        for name in args.graphs:
            if name == "powerlaw":
                await bench_graph(db, name, args.powerlaw_starts, args.powerlaw_depths, report)
            else:
                await bench_graph(db, name, args.starts, args.depths, report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    existing = args.output.read_text() if args.output.exists() else "# Benchmark results\n"
    head = existing.split("## Graph traversal")[0].rstrip() + "\n\n"
    args.output.write_text(head + "\n".join(report) + "\n")
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
