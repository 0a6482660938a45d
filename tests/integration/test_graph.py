"""Nodes, edges and traversal against a real PostgreSQL, default schema and tenant schema."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from copilotz_orm import Edge, Node
from copilotz_orm.errors import InvalidInput, NodeNotFound



async def count(db, model, schema=None, **where):
    async with db.session(schema) as s:
        stmt = select(func.count()).select_from(model)
        for key, value in where.items():
            stmt = stmt.where(getattr(model, key) == value)
        return await s.scalar(stmt)


async def chain(db, ns, names, schema=None, edge_type="RELATED_TO"):
    nodes = [await db.ops.create_node(namespace=ns, type="entity", name=n, schema=schema) for n in names]
    for a, b in zip(nodes, nodes[1:]):
        await db.ops.create_edge(source_id=a.id, target_id=b.id, type=edge_type, schema=schema)
    return nodes


@pytest.mark.parametrize("where", ["default", "tenant"])
async def test_create_and_walk(db, ns, tenant, where):
    schema = tenant if where == "tenant" else None
    a, b, c = await chain(db, ns, ["a", "b", "c"], schema)
    walked = await db.ops.traverse_graph(a.id, max_depth=5, direction="out", schema=schema)
    assert [(n.node.name, n.depth) for n in walked.nodes] == [("a", 0), ("b", 1), ("c", 2)]
    assert {(e.source_id, e.target_id) for e in walked.edges} == {(a.id, b.id), (b.id, c.id)}
    back = await db.ops.traverse_graph(c.id, max_depth=5, direction="in", schema=schema)
    assert [n.node.name for n in back.nodes] == ["c", "b", "a"]
    assert (await db.ops.traverse_graph(c.id, max_depth=5, direction="out", schema=schema)).node_ids() == {c.id}
    out = await db.ops.get_edges_for_node(b.id, "out", schema=schema)
    both = await db.ops.get_edges_for_node(b.id, "both", schema=schema)
    assert [e.target_id for e in out] == [c.id] and len(both) == 2


async def test_duplicate_edge_is_one_edge(db, ns):
    a, b = await chain(db, ns, ["a", "b"])
    first = await db.ops.create_edge(source_id=a.id, target_id=b.id, type="RELATED_TO")
    again = await db.ops.create_edge(source_id=a.id, target_id=b.id, type="RELATED_TO")
    other = await db.ops.create_edge(source_id=a.id, target_id=b.id, type="MENTIONS")
    assert first.id == again.id != other.id
    assert await count(db, Edge, source_id=a.id) == 2


async def test_edge_to_missing_node_is_typed_and_writes_nothing(db, ns):
    (a,) = await chain(db, ns, ["a"])
    before = await count(db, Edge)
    with pytest.raises(NodeNotFound, match="create them first"):
        await db.ops.create_edge(source_id=a.id, target_id="no-such-node", type="RELATED_TO")
    assert await count(db, Edge) == before


async def test_cycles_and_self_loops_terminate(db, ns):
    a, b = await chain(db, ns, ["a", "b"])
    await db.ops.create_edge(source_id=b.id, target_id=a.id, type="RELATED_TO")
    await db.ops.create_edge(source_id=a.id, target_id=a.id, type="RELATED_TO")
    walked = await db.ops.traverse_graph(a.id, max_depth=10, direction="both")
    assert sorted((n.node.name, n.depth) for n in walked.nodes) == [("a", 0), ("b", 1)]


async def test_edge_type_filter_and_depth(db, ns):
    a, b, c = await chain(db, ns, ["a", "b", "c"])
    d = await db.ops.create_node(namespace=ns, type="entity", name="d")
    await db.ops.create_edge(source_id=a.id, target_id=d.id, type="MENTIONS")
    only = await db.ops.traverse_graph(a.id, ["MENTIONS"], 3)
    assert only.node_ids() == {a.id, d.id}
    one = await db.ops.traverse_graph(a.id, None, 1)
    assert one.node_ids() == {a.id, b.id, d.id}
    zero = await db.ops.traverse_graph(a.id, None, 0)
    assert zero.node_ids() == {a.id} and zero.edges == []


async def test_unknown_start_is_empty_not_an_error(db):
    walked = await db.ops.traverse_graph("nobody", max_depth=2)
    assert walked.nodes == [] and walked.edges == []


@pytest.mark.parametrize("depth", [-1, 11, "2", 2.5])
async def test_bad_depth_is_typed(db, depth):
    with pytest.raises(InvalidInput):
        await db.ops.traverse_graph("x", max_depth=depth)


async def test_hub_with_max_nodes(db, ns):
    hub = await db.ops.create_node(namespace=ns, type="entity", name="hub")
    await db.ops.import_edge_list([("hub", str(i)) for i in range(1200)], namespace=ns)
    walked = await db.ops.traverse_graph(f"{ns}:hub", max_depth=1, max_nodes=100)
    assert len(walked.nodes) == 100 and walked.nodes[0].depth == 0
    assert hub.id != f"{ns}:hub"  # a node created by name is a different node from the imported one
    full = await db.ops.traverse_graph(f"{ns}:hub", max_depth=2)
    assert len(full.nodes) == 1201
    bare = await db.ops.traverse_graph(f"{ns}:hub", max_depth=1, max_nodes=100, include_edges=False)
    assert bare.nodes == walked.nodes and bare.edges == [] and len(walked.edges) == 99
    assert walked.truncated and bare.truncated and not full.truncated
    exact = await db.ops.traverse_graph(f"{ns}:hub", max_depth=1, max_nodes=1201)
    assert len(exact.nodes) == 1201 and not exact.truncated  # all of them fit: nothing was cut
    assert (await db.ops.traverse_graph(f"{ns}:hub", max_depth=1, max_nodes=1200)).truncated
    html = await db.ops.export_subgraph(f"{ns}:hub", 1, "html", max_nodes=10)
    assert html.count("<circle") == 10 and "Capped by max_nodes" in html
    assert "%% capped by max_nodes" in await db.ops.export_subgraph(f"{ns}:hub", 1, "mermaid", max_nodes=10)
    assert "// capped by max_nodes" in await db.ops.export_subgraph(f"{ns}:hub", 1, "dot", max_nodes=10)
    assert "capped" not in await db.ops.export_subgraph(f"{ns}:hub", 1, "dot", max_nodes=None)


async def test_walk_without_edges_keeps_every_option(db, ns):
    """include_edges=False changes what comes back, not which nodes: with edge types, a
    namespace, a direction and a cap, the nodes are the full walk's, in the same order."""
    other = ns + "-other"
    await db.ops.import_edge_list([("a", "b"), ("b", "c"), ("c", "a"), ("a", "d")], namespace=ns, edge_type="R")
    await db.ops.import_edge_list([("x", "y")], namespace=other, edge_type="R")
    await db.ops.create_edge(source_id=f"{ns}:d", target_id=f"{other}:x", type="R")
    await db.ops.import_edge_list([("b", "e")], namespace=ns, edge_type="S")
    for options in ({}, {"edge_types": ["R"]}, {"namespace": ns}, {"direction": "out"}, {"max_nodes": 3},
                    {"edge_types": ["S", "R"], "namespace": ns, "direction": "in", "max_nodes": 2}):
        full = await db.ops.traverse_graph(f"{ns}:a", max_depth=3, **options)
        bare = await db.ops.traverse_graph(f"{ns}:a", max_depth=3, include_edges=False, **options)
        assert bare.nodes == full.nodes and bare.edges == [], options
        assert full.edges or len(full.nodes) == 1, options


async def test_traverse_is_one_statement(db, ns):
    a, _, _ = await chain(db, ns, ["a", "b", "c"])
    await db.ops.traverse_graph(a.id, max_depth=2)  # schema already provisioned and cached
    db.metrics.reset()
    await db.ops.traverse_graph(a.id, max_depth=3, direction="out")
    assert db.metrics.statements == 1


async def test_nul_in_text_and_data_is_removed(db, ns):
    node = await db.ops.create_node(namespace=ns, type="entity", name="a\x00b", content="c\x00d",
                                    data={"k\x00": ["v\x00", {"x": "\ud800"}]})
    assert node.name == "ab" and node.content == "cd"
    assert node.data == {"k": ["v", {"x": "\ufffd"}]}


@pytest.mark.parametrize("bad", [{"namespace": ""}, {"type": None}, {"name": "  "}])
async def test_missing_fields_are_typed(db, ns, bad):
    values = {"namespace": ns, "type": "entity", "name": "n", **bad}
    with pytest.raises(InvalidInput):
        await db.ops.create_node(**values)


async def test_hybrid_property_collection_matches_in_python_and_sql(db, ns):
    await db.ops.create_node(namespace=ns, type="collection:books", name="b1")
    await db.ops.create_node(namespace=ns, type="entity", name="e1")
    async with db.session() as s:
        rows = (await s.execute(select(Node).where(Node.namespace == ns))).scalars().all()
        in_sql = dict((await s.execute(select(Node.name, Node.collection).where(Node.namespace == ns))).all())
        only_books = (await s.execute(select(Node.name).where(Node.namespace == ns,
                                                               Node.collection == "books"))).scalars().all()
    assert {n.name: n.collection for n in rows} == in_sql == {"b1": "books", "e1": None}
    assert only_books == ["b1"]


async def test_namespace_confines_the_walk(db, ns):
    other = ns + "_other"
    a, b = await chain(db, ns, ["a", "b"])
    o = await db.ops.create_node(namespace=other, type="entity", name="o")
    c = await db.ops.create_node(namespace=ns, type="entity", name="c")
    await db.ops.create_edges([{"source_id": b.id, "target_id": o.id, "type": "RELATED_TO"},
                               {"source_id": o.id, "target_id": c.id, "type": "RELATED_TO"}])
    inside = await db.ops.traverse_graph(a.id, max_depth=5, direction="out", namespace=ns)
    assert inside.node_ids() == {a.id, b.id}
    assert all(e.target_id in inside.node_ids() for e in inside.edges)
    anywhere = await db.ops.traverse_graph(a.id, max_depth=5, direction="out")
    assert anywhere.node_ids() == {a.id, b.id, o.id, c.id}


async def test_shortest_path(db, ns):
    names_ = ["a", "b", "c", "d", "e"]
    a, b, c, d, e = await chain(db, ns, names_)  # a->b->c->d->e
    await db.ops.create_edge(source_id=a.id, target_id=d.id, type="SHORTCUT")
    path = await db.ops.shortest_path(a.id, e.id, direction="out")
    assert [n.name for n in path.nodes] == ["a", "d", "e"] and path.length == 2
    assert [(x.source_id, x.target_id) for x in path.edges] == [(a.id, d.id), (d.id, e.id)]
    only_related = await db.ops.shortest_path(a.id, e.id, ["RELATED_TO"], direction="out")
    assert [n.name for n in only_related.nodes] == names_
    assert await db.ops.shortest_path(e.id, a.id, direction="out") is None  # edges point the other way
    back = await db.ops.shortest_path(e.id, a.id, direction="in")
    assert [n.name for n in back.nodes] == ["e", "d", "a"]
    assert await db.ops.shortest_path(a.id, e.id, ["RELATED_TO"], max_depth=3, direction="out") is None
    same = await db.ops.shortest_path(a.id, a.id)
    assert [n.name for n in same.nodes] == ["a"] and same.edges == []
    assert await db.ops.shortest_path(a.id, "nowhere") is None
    db.metrics.reset()
    await db.ops.shortest_path(a.id, e.id)
    assert db.metrics.statements == 1


async def test_search_then_traverse_is_one_walk_from_the_nearest_nodes(db, ns):
    cat = await db.ops.create_node(namespace=ns, type="entity", name="cat", content="a small cat", embed=True)
    toy = await db.ops.create_node(namespace=ns, type="entity", name="toy")
    far = await db.ops.create_node(namespace=ns, type="entity", name="far")
    await db.ops.create_node(namespace=ns, type="entity", name="stock", content="stock market", embed=True)
    await db.ops.create_edges([{"source_id": cat.id, "target_id": toy.id, "type": "LIKES"},
                               {"source_id": toy.id, "target_id": far.id, "type": "NEAR"}])
    db.metrics.reset()
    walked = await db.ops.search_then_traverse("cat", namespace=ns, seeds=1, max_depth=1)
    # Our connections start with the HNSW scan settings (ef_search 100, iterative scans), so the
    # search and the walk are one statement; on a host's engine a settings statement comes first.
    assert db.metrics.statements == 1
    db.metrics.reset()
    await db.ops.search_then_traverse("cat", seeds=1, max_depth=1)
    assert db.metrics.statements == 1
    assert walked.seeds == [cat.id]
    assert {(n.node.name, n.depth) for n in walked.nodes} == {("cat", 0), ("toy", 1)}
    deeper = await db.ops.search_then_traverse("cat", namespace=ns, seeds=1, max_depth=2)
    assert {n.node.name for n in deeper.nodes} == {"cat", "toy", "far"}


async def test_walked_edges_are_every_edge_onto_a_new_node_in_depth_then_node_order(db, ns):
    # a reaches d through b and through c: both edges are walked (d is new to both), the edge
    # between b and c is not (c was no deeper than b), nor the one back to a.
    await db.ops.import_edge_list([("a", "c"), ("a", "b"), ("c", "d"), ("b", "d"), ("b", "c"), ("d", "a")],
                                  namespace=ns)
    walked = await db.ops.traverse_graph(f"{ns}:a", max_depth=3, direction="out")
    depth = {n.node.id: n.depth for n in walked.nodes}
    assert [(n.node.name, n.depth) for n in walked.nodes] == [("a", 0), ("b", 1), ("c", 1), ("d", 2)]
    assert sorted((e.source_id[-1], e.target_id[-1]) for e in walked.edges) == [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]
    assert walked.edges == sorted(walked.edges, key=lambda e: (depth[e.target_id], e.target_id, e.id))
    both = await db.ops.traverse_graph(f"{ns}:d", max_depth=1, direction="both")
    assert sorted((e.source_id[-1], e.target_id[-1]) for e in both.edges) == [("b", "d"), ("c", "d"), ("d", "a")]
    assert [e.target_id if e.source_id == f"{ns}:d" else e.source_id for e in both.edges] == \
        [f"{ns}:a", f"{ns}:b", f"{ns}:c"]


@pytest.mark.parametrize("direction", ["out", "in", "both"])
async def test_the_walk_reads_edges_through_their_indexes(db, ns, direction):
    """Each round looks up the frontier's edges in an index on the side it walks from, never by
    reading the whole edges table, on a table big enough for the planner to choose."""
    from copilotz_orm.sql.explain import explain
    from copilotz_orm.sql.traversal import traverse_by_id

    await db.ops.import_edge_list([(str(i), str((i * 7 + k) % 4000)) for i in range(4000) for k in (1, 2, 3)],
                                  namespace=ns)
    params = {"start_id": f"{ns}:1", "max_depth": 3}
    async with db.session() as s:
        plan = "\n".join((await s.execute(explain(traverse_by_id(direction, False, False, False)), params)).scalars())
    assert "Seq Scan on edges" not in plan, plan
    if direction in ("out", "both"):
        assert "ix_edges_source_id_target_id_type" in plan, plan
    if direction in ("in", "both"):
        assert "ix_edges_target_id_type" in plan, plan


async def test_a_read_outside_a_transaction_leaves_the_pool_transactional(db, ns):
    """traverse_graph runs on an autocommit connection; the pooled connection must come back
    to transactions, so a later unit of work that fails still writes nothing."""
    (a,) = await chain(db, ns, ["a"])
    for _ in range(3):
        await db.ops.traverse_graph(a.id, max_depth=1)
        await db.ops.shortest_path(a.id, a.id)
        with pytest.raises(RuntimeError):
            async with db.session() as s:
                s.add(Node(id=f"{ns}:ghost", namespace=ns, type="entity", name="ghost"))
                await s.flush()
                raise RuntimeError("abandon the unit of work")
        assert await count(db, Node, id=f"{ns}:ghost") == 0
