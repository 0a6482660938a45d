"""Traversal on the real SNAP graphs returns exactly networkx's breadth-first node sets."""

from __future__ import annotations

import random

import networkx as nx
import pytest

from tests.conftest import data_path


GRAPHS = {"wiki-vote": ("wiki-vote.txt", True), "facebook": ("facebook_combined.txt", False)}


def load(file: str) -> list[tuple[str, str]]:
    pairs = []
    for line in data_path("graphs", file).read_text().splitlines():
        fields = line.split()
        if fields and not fields[0].startswith("#"):
            pairs.append((fields[0], fields[1]))
    return pairs


@pytest.mark.parametrize("name", GRAPHS)
async def test_traversal_matches_networkx(db, tenant, name):
    file, directed = GRAPHS[name]
    pairs = load(file)
    await db.ops.import_edge_list(pairs, namespace=name, schema=tenant)
    graph = nx.DiGraph(pairs) if directed else nx.Graph(pairs)
    views = {"out": graph, "in": graph.reverse(copy=False), "both": graph.to_undirected(as_view=True)} \
        if directed else {"both": graph}
    rng = random.Random(7)
    starts = rng.sample(sorted(graph.nodes), 4)
    for direction, view in views.items():
        for start in starts:
            for depth in (1, 2, 3):
                expected = nx.single_source_shortest_path_length(view, start, cutoff=depth)
                walked = await db.ops.traverse_graph(f"{name}:{start}", max_depth=depth,
                                                     direction=direction, schema=tenant)
                got = {n.node.name: n.depth for n in walked.nodes}
                assert got == expected, (direction, start, depth)
                if depth == 3 and len(expected) > 1:  # a shortest path to the farthest node found
                    target = max(sorted(expected), key=expected.get)
                    path = await db.ops.shortest_path(f"{name}:{start}", f"{name}:{target}", max_depth=depth,
                                                      direction=direction, schema=tenant)
                    hops = [n.name for n in path.nodes]
                    assert len(hops) - 1 == expected[target] and hops[0] == start and hops[-1] == target
                    assert all(view.has_edge(u, v) for u, v in zip(hops, hops[1:]))
                # the edges walked are exactly the graph's edges from one level onto the next, once each
                deeper = {"out": lambda s, t: got.get(t) == got.get(s, -2) + 1,
                          "in": lambda s, t: got.get(s) == got.get(t, -2) + 1,
                          "both": lambda s, t: abs(got.get(s, -9) - got.get(t, -9)) == 1}[direction]
                want = {(f"{name}:{s}", f"{name}:{t}") for s, t in set(pairs) if deeper(s, t)}
                assert {(e.source_id, e.target_id) for e in walked.edges} == want
                assert len(walked.edges) == len(want)
                bare = await db.ops.traverse_graph(f"{name}:{start}", max_depth=depth, direction=direction,
                                                   include_edges=False, schema=tenant)
                assert [(n.node.id, n.depth) for n in bare.nodes] == [(n.node.id, n.depth) for n in walked.nodes]
                assert bare.edges == []
