"""Tenant scopes: db.tenant(), db.transaction(), the ambient tenant, exact namespaces."""

from __future__ import annotations

import asyncio
import contextvars

import pytest
from sqlalchemy import MetaData, Table, func, select
from sqlalchemy.orm import joinedload, selectinload, with_polymorphic
from sqlalchemy.schema import DropSchema, DropTable

from copilotz_orm import Chunk, DbConfig, Document, Edge, EmbeddingConfig, Event, Node, Thread, create_database
from copilotz_orm.errors import Conflict, InvalidInput, InvalidSchemaName, TenantNotFound

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def node_count(db, schema, namespace=None) -> int:
    async with db.session(schema) as s:
        stmt = select(func.count()).select_from(Node)
        if namespace is not None:
            stmt = stmt.where(Node.namespace == namespace)
        return await s.scalar(stmt)


async def test_tenant_ops_write_to_their_schema_only(db, tenant, ns):
    before = await node_count(db, None, ns)
    acme = db.tenant(tenant, namespace=ns)
    made = await acme.ops.create_node(type="entity", name="alice")  # namespace from the scope
    assert made.namespace == ns
    assert await acme.ops.get_node_by_id(made.id) is not None
    assert await db.ops.get_node_by_id(made.id) is None  # not in the default schema
    assert await node_count(db, tenant, ns) == 1
    assert await node_count(db, None, ns) == before


async def test_bound_scope_refuses_another_schema_or_namespace_before_any_sql(db, tenant, ns):
    acme = db.tenant(tenant, namespace=ns)
    db.metrics.reset()
    with pytest.raises(InvalidInput, match="bound to schema"):
        await acme.ops.create_node(type="entity", name="x", schema="public")
    with pytest.raises(InvalidInput, match="bound to namespace"):
        await acme.ops.create_node(type="entity", name="x", namespace=ns + "x")
    with pytest.raises(InvalidInput, match="bound to namespace"):
        await acme.ops.search_chunks("q", namespace=[ns, "other"], mode="text")
    assert db.metrics.statements == 0


async def test_namespace_is_required_without_a_bound_one(db):
    with pytest.raises(InvalidInput, match="namespace= is required"):
        await db.ops.create_node(type="entity", name="x")


async def test_ambient_tenant_applies_to_db_ops_and_sessions_per_task(db, tenant, ns):
    async def write(schema, name):
        with db.tenant(schema):
            await asyncio.sleep(0)  # let the other task run inside its own block
            node = await db.ops.create_node(type="entity", name=name, namespace=ns)
            async with db.session() as s:
                return node.id, await s.scalar(select(Node.name).where(Node.id == node.id))

    (in_tenant, name_t), (in_default, name_d) = await asyncio.gather(write(tenant, "t"), write("public", "d"))
    assert (name_t, name_d) == ("t", "d")
    assert await db.ops.get_node_by_id(in_tenant, schema=tenant) is not None
    assert await db.ops.get_node_by_id(in_tenant) is None
    assert await db.ops.get_node_by_id(in_default) is not None
    # Outside the block the default schema is back; inside, an explicit schema= still wins.
    with db.tenant(tenant):
        assert await db.ops.get_node_by_id(in_default, schema="public") is not None


async def test_transaction_commits_all_ops_together(db, tenant, ns):
    async with db.transaction(schema=tenant, namespace=ns) as tx:
        a = await tx.ops.create_node(type="entity", name="a")
        b = await tx.ops.create_node(type="entity", name="b")
        await tx.ops.create_edge(source_id=a.id, target_id=b.id, type="RELATED_TO")
        doc = await tx.ops.ingest_text("a document written in the same transaction " * 20)
        # The caller's own query sees the uncommitted rows, in the tenant schema.
        assert await tx.session.scalar(select(func.count()).select_from(Node).where(Node.namespace == ns)) \
            == 2 + 1 + doc.document.chunk_count
        outside = asyncio.create_task(db.ops.get_node_by_id(a.id, schema=tenant), context=contextvars.Context())
        assert await outside is None  # another connection does not see it yet
        with pytest.raises(InvalidInput, match="use tx.ops"):  # this task would wait on its own locks
            await db.ops.get_node_by_id(a.id, schema=tenant)
    walk = await db.ops.traverse_graph(a.id, schema=tenant)
    assert {n.node.id for n in walk.nodes} == {a.id, b.id}
    assert await node_count(db, "public", ns) == 0


async def test_transaction_rolls_back_everything_when_the_block_raises(db, tenant, ns):
    with pytest.raises(RuntimeError):
        async with db.transaction(schema=tenant, namespace=ns) as tx:
            await tx.ops.create_node(type="entity", name="a")
            await tx.ops.ingest_text("never stored " * 50)
            raise RuntimeError("caller's failure")
    assert await node_count(db, tenant, ns) == 0


async def test_a_failed_op_inside_a_transaction_is_undone_and_the_rest_commits(db, tenant, ns):
    async with db.transaction(schema=tenant, namespace=ns) as tx:
        keep = await tx.ops.create_node(type="entity", name="keep", id="n1")
        with pytest.raises(Conflict):
            await tx.ops.create_nodes([{"type": "entity", "name": "new", "id": "n2"},
                                       {"type": "entity", "name": "dup", "id": "n1"}])
        after = await tx.ops.create_node(type="entity", name="after")
    ids = {n.id for n in (await db.ops.get_nodes_by_namespace(ns, schema=tenant)).items}
    assert ids == {keep.id, after.id}


async def test_orm_flushes_and_polymorphic_loads_land_in_the_tenant(db, tenant, ns):
    async with db.transaction(schema=tenant, namespace=ns) as tx:
        tx.session.add(Node(id="own-1", namespace=ns, type="entity", name="added by the caller"))
        await tx.ops.ingest_text("polymorphic loading in a tenant schema " * 10, title="T")
    async with db.tenant(tenant).session() as s:
        poly = with_polymorphic(Node, [Document, Chunk])
        rows = (await s.scalars(select(poly).where(poly.namespace == ns))).all()
        kinds = sorted(type(r).__name__ for r in rows)
        assert kinds[0] == "Chunk" and kinds[-2:] == ["Document", "Node"]
        doc = next(r for r in rows if isinstance(r, Document))
        assert doc.title == "T"
    assert await node_count(db, "public", ns) == 0


async def test_namespaces_match_exactly(db, tenant):
    spaces = ["t1", "t1x", "t_1", "t%1"]
    ops = db.tenant(tenant).ops
    for name in spaces:
        await ops.create_node(namespace=name, type="entity", name=f"node of {name}", source_type="s", source_id="1")
        await ops.ingest_text(f"document in namespace {name} about exact matching", namespace=name)
    for name in spaces:
        page = await ops.get_nodes_by_namespace(name)
        assert {n.namespace for n in page.items} == {name} and len(page.items) == 3
        hits = await ops.search_chunks("exact matching", namespace=name, mode="text", limit=10)
        assert [h.document.namespace for h in hits] == [name]
    stats = {s.namespace: s.document_count for s in await ops.get_namespace_stats()}
    assert stats == dict.fromkeys(spaces, 1)
    assert await ops.delete_nodes_by_source("s", "1", namespace="t_1") == 1
    assert [len((await ops.get_nodes_by_namespace(n)).items) for n in spaces] == [3, 3, 2, 3]


HOSTILE = 'x"; DROP SCHEMA public CASCADE; --'


async def test_hostile_schema_names_are_refused_before_any_sql(db):
    db.metrics.reset()
    calls = [
        lambda: db.ops.create_node(namespace="n", type="entity", name="x", schema=HOSTILE),
        lambda: db.ops.get_node_by_id("x", schema=HOSTILE),
        lambda: db.provision_schema(HOSTILE),
        lambda: db.drop_schema(HOSTILE),
        lambda: db.schema_exists(HOSTILE),
    ]
    for call in calls:
        with pytest.raises(InvalidSchemaName):
            await call()
    with pytest.raises(InvalidSchemaName):
        db.tenant(HOSTILE)
    with pytest.raises(InvalidSchemaName):
        async with db.transaction(schema=HOSTILE):
            pass
    assert db.metrics.statements == 0
    assert await db.schema_exists("public")


async def test_edges_follow_the_transaction_schema(db, tenant, ns):
    async with db.transaction(schema=tenant, namespace=ns) as tx:
        a = await tx.ops.create_node(type="entity", name="a")
        b = await tx.ops.create_node(type="entity", name="b")
        await tx.ops.create_edges([{"source_id": a.id, "target_id": b.id, "type": "X"}])
        count = await tx.session.scalar(select(func.count()).select_from(Edge).where(Edge.source_id == a.id))
    assert count == 1
    assert await db.ops.get_edges_for_node(a.id) == []
    assert len(await db.ops.get_edges_for_node(a.id, schema=tenant)) == 1


async def test_a_schema_dropped_behind_our_back_is_a_typed_error_then_comes_back(db, tenant, ns):
    ops = db.tenant(tenant, namespace=ns).ops
    await ops.create_node(type="entity", name="before")
    async with db.engine.begin() as conn:  # another process drops it; our cache still says ready
        await conn.execute(DropSchema(tenant, cascade=True))
    with pytest.raises(TenantNotFound, match="dropped or damaged since"):
        await ops.create_node(type="entity", name="lost")
    again = await ops.create_node(type="entity", name="after")  # auto-provisioned again
    assert [n.id for n in (await ops.get_nodes_by_namespace()).items] == [again.id]


@pytest.mark.parametrize("read", [
    lambda ops, node: ops.get_node_by_id(node), lambda ops, node: ops.get_nodes_by_namespace(),
    lambda ops, node: ops.get_edges_for_node(node), lambda ops, node: ops.traverse_graph(node),
    lambda ops, node: ops.find_related_nodes(node), lambda ops, node: ops.shortest_path(node, node),
])
async def test_a_read_on_a_dropped_schema_is_typed_too(db, tenant, ns, read):
    """Reads run no BEGIN of their own: the missing tables must still be a TenantNotFound, and
    the schema checked (here: provisioned) again on the next call, as for writes."""
    ops = db.tenant(tenant, namespace=ns).ops
    node = await ops.create_node(type="entity", name="before")
    async with db.engine.begin() as conn:
        await conn.execute(DropSchema(tenant, cascade=True))
    with pytest.raises(TenantNotFound, match="dropped or damaged since"):
        await read(ops, node.id)
    assert await ops.get_node_by_id(node.id) is None  # provisioned again, empty


async def test_warm_cache_skips_a_schema_missing_a_table(db, tenant):
    await db.provision_schema(tenant)
    async with db.engine.begin() as conn:
        await conn.execute(DropTable(Table("queue_items", MetaData(), schema=tenant)))
    fresh = await create_database(DbConfig(url=db.engine.url.render_as_string(hide_password=False),
                                           embedding=EmbeddingConfig(model="hashing")))
    try:
        ready = await fresh.warm_cache()
        assert "public" in ready and tenant not in ready
    finally:
        await fresh.close()


async def test_eager_loaders_read_the_tenant_schema(db, tenant, ns):
    ops = db.tenant(tenant, namespace=ns).ops
    doc = (await ops.ingest_text("eager loading of chunks in a tenant " * 60, title="Eager")).document
    a = await ops.create_node(type="entity", name="a")
    b = await ops.create_node(type="entity", name="b")
    await ops.create_edge(source_id=a.id, target_id=b.id, type="RELATED_TO")
    async with db.tenant(tenant).session() as s:
        thread = Thread(name="t", namespace=ns)
        s.add(thread)
        await s.flush()
        s.add_all([Event(thread_id=thread.id, type="message", payload={"n": i}) for i in range(3)])
        await s.flush()
        loaded = await s.scalar(select(Document).where(Document.id == doc.id).options(selectinload(Document.chunks)))
        assert [c.position for c in loaded.chunks] == list(range(doc.chunk_count))
        edge = await s.scalar(select(Edge).where(Edge.source_id == a.id)
                              .options(joinedload(Edge.source), joinedload(Edge.target)))
        assert (edge.source.name, edge.target.name) == ("a", "b")
        s.expunge_all()
        loaded_thread = await s.scalar(select(Thread).where(Thread.id == thread.id).options(selectinload(Thread.events)))
        assert [e.payload["n"] for e in loaded_thread.events] == [0, 1, 2]
    async with db.session("public") as s:  # none of it is in the default schema
        assert await s.scalar(select(func.count()).select_from(Document).where(Document.id == doc.id)) == 0
        assert await s.scalar(select(func.count()).select_from(Thread).where(Thread.namespace == ns)) == 0
