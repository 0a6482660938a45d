"""Batch, paging, update and delete ops on nodes and edges; one statement each."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, select

from copilotz_orm import Chunk, Edge, Node
from copilotz_orm.errors import Conflict, InvalidInput, NodeNotFound


async def statements(db, coro):
    db.metrics.reset()
    result = await coro
    return result, db.metrics.statements


async def test_create_nodes_is_one_statement_and_keeps_order(db, ns):
    await db.ops.get_node_by_id("warm-up")  # provisioned and cached: later counts are the op's own
    nodes, n = await statements(db, db.ops.create_nodes(
        [{"namespace": ns, "type": "entity", "name": f"n{i}", "data": {"i": i}} for i in range(50)]))
    assert n == 1
    assert [x.name for x in nodes] == [f"n{i}" for i in range(50)]
    assert nodes[7].data == {"i": 7}


async def test_create_nodes_is_all_or_nothing(db, ns):
    (first,) = await db.ops.create_nodes([{"namespace": ns, "type": "t", "name": "a", "id": f"{ns}-1"}])
    with pytest.raises(Conflict):
        await db.ops.create_nodes([{"namespace": ns, "type": "t", "name": "b", "id": f"{ns}-2"},
                                   {"namespace": ns, "type": "t", "name": "c", "id": first.id}])
    assert await db.ops.get_node_by_id(f"{ns}-2") is None
    with pytest.raises(InvalidInput):
        await db.ops.create_nodes([{"namespace": ns, "type": "t", "name": "x", "colour": "red"}])
    with pytest.raises(InvalidInput):
        await db.ops.create_nodes([{"namespace": ns, "type": "t", "name": "x", "id": "same"}] * 2)
    with pytest.raises(InvalidInput):
        await db.ops.create_nodes(["not a dict"])


async def test_paging_by_namespace_and_type(db, ns):
    await db.ops.create_nodes([{"namespace": ns, "type": "a" if i % 2 else "b", "name": str(i)}
                               for i in range(25)])
    seen, cursor = [], None
    while True:
        page = await db.ops.get_nodes_by_namespace(ns, limit=10, cursor=cursor)
        seen += [n.name for n in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [str(i) for i in range(25)]
    only_a = await db.ops.get_nodes_by_namespace(ns, "a", limit=100)
    assert len(only_a.items) == 12 and only_a.next_cursor is None
    assert (await db.ops.get_nodes_by_namespace(ns + "x")).items == []


async def test_namespaces_match_exactly(db):
    names = ["t1", "t1x", "t_1", "t%1"]
    for name in names:
        await db.ops.create_node(namespace=f"exact_{name}", type="e", name=name)
    for name in names:
        page = await db.ops.get_nodes_by_namespace(f"exact_{name}")
        assert [n.name for n in page.items][-1:] == [name] and {n.name for n in page.items} == {name}


async def test_update_merge_replace_and_missing(db, ns):
    node = await db.ops.create_node(namespace=ns, type="e", name="a", data={"x": 1, "y": {"z": 1}})
    merged, n = await statements(db, db.ops.update_node(node.id, data={"y": 2, "w": 3}, name="b"))
    assert n == 1
    assert merged.data == {"x": 1, "y": 2, "w": 3} and merged.name == "b"
    assert merged.updated_at >= node.updated_at
    replaced = await db.ops.update_node(node.id, data={"only": True}, data_mode="replace")
    assert replaced.data == {"only": True}
    with pytest.raises(NodeNotFound):
        await db.ops.update_node("missing", name="x")
    with pytest.raises(InvalidInput):
        await db.ops.update_node(node.id, data_mode="patch")
    with pytest.raises(InvalidInput):
        await db.ops.update_node(node.id, embedding=[1.0, 2.0])
    embedded = await db.ops.update_node(node.id, content="cats and dogs", embed=True)
    hits = await db.ops.search_nodes("cats and dogs", namespace=ns)
    assert hits[0].node.id == embedded.id


async def test_delete_node_takes_edges_and_document_chunks(db, ns):
    a, b = await db.ops.create_nodes([{"namespace": ns, "type": "e", "name": "a"},
                                      {"namespace": ns, "type": "e", "name": "b"}])
    await db.ops.create_edge(source_id=a.id, target_id=b.id, type="R")
    assert await db.ops.delete_node(a.id) is True
    assert await db.ops.delete_node(a.id) is False
    assert await db.ops.get_edges_for_node(b.id) == []

    doc = (await db.ops.ingest_text("words " * 500, namespace=ns, chunk_size=50)).document
    await db.ops.create_edge(source_id=b.id, target_id=doc.id, type="MENTIONS")
    assert await db.ops.delete_node(doc.id)
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Node).where(Node.namespace == ns)) == 1
        assert await s.scalar(select(func.count()).select_from(Chunk).where(Chunk.document_id == doc.id)) == 0
        assert await s.scalar(select(func.count()).select_from(Edge).where(Edge.target_id == doc.id)) == 0
    again = await db.ops.ingest_text("words " * 500, namespace=ns, chunk_size=50)
    assert again.created  # nothing of the old copy is left to deduplicate against


@pytest.mark.parametrize("how", ["orm", "core"])
@pytest.mark.filterwarnings("error")  # the ORM must not warn that its DELETE of the node row matched nothing
async def test_a_document_deleted_by_your_own_session_takes_its_chunk_nodes(db, tenant, ns, how):
    """session.delete(document), or a DELETE on the documents table (not delete_document): the
    chunks' node rows and their edges go too, so no search or walk finds them. (A DELETE on the
    documents table alone leaves the document's own node row, as for any joined-inheritance row.)"""
    from copilotz_orm import Document

    ops = db.tenant(tenant, namespace=ns).ops
    doc = (await ops.ingest_text("walrus tusks and whiskers " * 200, chunk_size=50)).document
    other = (await ops.ingest_text("penguins in the snow " * 200, chunk_size=50)).document
    async with db.tenant(tenant).session() as s:
        chunk_ids = list(await s.scalars(select(Chunk.id).where(Chunk.document_id == doc.id)))
        assert len(chunk_ids) > 2 and await s.scalar(
            select(func.count()).select_from(Edge).where(Edge.source_id.in_(chunk_ids))) > 0
    async with db.tenant(tenant).session() as s:
        if how == "orm":
            await s.delete(await s.get(Document, doc.id))
        else:
            await s.execute(delete(Document.__table__).where(Document.__table__.c.id == doc.id))
    gone = [doc.id, *chunk_ids] if how == "orm" else chunk_ids
    async with db.tenant(tenant).session() as s:
        assert await s.scalar(select(func.count()).select_from(Node).where(Node.id.in_(gone))) == 0
        assert await s.scalar(select(func.count()).select_from(Edge).where(
            Edge.source_id.in_(gone) | Edge.target_id.in_(gone))) == 0
        kinds = dict((await s.execute(select(Node.type, func.count()).where(Node.namespace == ns)
                                      .group_by(Node.type))).all())
        assert kinds == {"document": 1 if how == "orm" else 2, "chunk": other.chunk_count}
    assert await ops.search_chunks("walrus", mode="text") == []


async def test_delete_nodes_by_source(db, ns):
    await db.ops.create_nodes([{"namespace": ns, "type": "e", "name": str(i), "source_type": "mail",
                                "source_id": "m1" if i < 3 else "m2"} for i in range(5)])
    assert await db.ops.delete_nodes_by_source("mail", "m1", namespace=ns) == 3
    assert await db.ops.delete_nodes_by_source("mail", "m1", namespace=ns) == 0
    assert len((await db.ops.get_nodes_by_namespace(ns)).items) == 2


async def test_create_edges_batch(db, ns):
    a, b, c = await db.ops.create_nodes([{"namespace": ns, "type": "e", "name": x} for x in "abc"])
    batch = [{"source_id": a.id, "target_id": b.id, "type": "R"},
             {"source_id": b.id, "target_id": c.id, "type": "R", "weight": 0.5},
             {"source_id": a.id, "target_id": b.id, "type": "R"}]
    edges, n = await statements(db, db.ops.create_edges(batch))
    assert n == 1 and edges[0].id == edges[2].id and edges[1].weight == 0.5
    assert [e.id for e in await db.ops.create_edges(batch[:1])] == [edges[0].id]
    with pytest.raises(NodeNotFound):
        await db.ops.create_edges([{"source_id": a.id, "target_id": c.id, "type": "S"},
                                   {"source_id": a.id, "target_id": "ghost", "type": "S"}])
    assert await db.ops.get_edges_for_node(a.id, "out", ["S"]) == []
    with pytest.raises(InvalidInput):
        await db.ops.create_edges([{"source_id": a.id, "target_id": c.id, "type": "S", "weight": float("nan")}])


async def test_delete_edges(db, ns):
    a, b, c = await db.ops.create_nodes([{"namespace": ns, "type": "e", "name": x} for x in "abc"])
    ab, bc, ca = await db.ops.create_edges([{"source_id": a.id, "target_id": b.id, "type": "R"},
                                            {"source_id": b.id, "target_id": c.id, "type": "S"},
                                            {"source_id": c.id, "target_id": a.id, "type": "R"}])
    assert await db.ops.delete_edge(ab.id) and not await db.ops.delete_edge(ab.id)
    assert await db.ops.delete_edges_for_node(a.id, "out") == 0
    assert await db.ops.delete_edges_for_node(c.id, "both", ["S"]) == 1
    assert [e.id for e in await db.ops.get_edges_for_node(c.id)] == [ca.id]
    with pytest.raises(InvalidInput):
        await db.ops.delete_edges_for_node(c.id, "sideways")


async def test_find_related_nodes(db, ns):
    a, b, c = await db.ops.create_nodes([{"namespace": ns, "type": "e", "name": x} for x in "abc"])
    await db.ops.create_edges([{"source_id": a.id, "target_id": b.id, "type": "R"},
                               {"source_id": c.id, "target_id": b.id, "type": "R"}])
    assert {n.node.name for n in await db.ops.find_related_nodes(b.id)} == {"a", "c"}
    assert {(n.node.name, n.depth) for n in await db.ops.find_related_nodes(a.id, 2)} == {("b", 1), ("c", 2)}


async def test_export_subgraph(db, ns):
    a, b = await db.ops.create_nodes([{"namespace": ns, "type": "e", "name": 'say "hi" <b>'},
                                      {"namespace": ns, "type": "f", "name": "b"}])
    await db.ops.create_edge(source_id=a.id, target_id=b.id, type="R|S")
    html = await db.ops.export_subgraph(a.id, 1, "html")
    assert "&lt;b&gt;" in html and "<b>" not in html.split("<body", 1)[1].replace("<body", "")
    assert "#quot;" in await db.ops.export_subgraph(a.id, 1, "mermaid")
    assert '\\"hi\\"' in await db.ops.export_subgraph(a.id, 1, "dot")
    with pytest.raises(InvalidInput):
        await db.ops.export_subgraph(a.id, 1, "png")
    with pytest.raises(NodeNotFound):
        await db.ops.export_subgraph("missing", 1)
