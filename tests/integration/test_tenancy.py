"""Tenant schemas never see each other's rows; the default schema sees neither."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from copilotz_orm import Chunk, Document, Edge, Node
from copilotz_orm.errors import InvalidSchemaName



async def counts(db, schema, ns):
    async with db.session(schema) as s:
        return {model.__name__: await s.scalar(
            select(func.count()).select_from(model).where(model.namespace == ns)
            if model is not Edge else
            select(func.count()).select_from(Edge).join(Node, Node.id == Edge.source_id).where(Node.namespace == ns))
            for model in (Node, Edge, Document, Chunk)}


async def test_same_operations_in_two_tenants_stay_apart(db):
    ns = "shared_ns"  # the same namespace name in every schema
    tenants = [f"tenant_a_{uuid.uuid4().hex[:6]}", f"tenant_b_{uuid.uuid4().hex[:6]}"]
    try:
        base = await counts(db, None, ns)
        made = {}
        for i, schema in enumerate(tenants):
            a = await db.ops.create_node(id="same-id", namespace=ns, type="entity", name=f"a{i}",
                                         content="tenant data", embed=True, schema=schema)
            b = await db.ops.create_node(namespace=ns, type="entity", name=f"b{i}", schema=schema)
            await db.ops.create_edge(source_id=a.id, target_id=b.id, type="RELATED_TO", schema=schema)
            for k in range(i + 1):  # a different number of documents per tenant
                await db.ops.ingest_text(f"document {k} of tenant {i} " * 30, namespace=ns, schema=schema)
            made[schema] = i
        for i, schema in enumerate(tenants):
            c = await counts(db, schema, ns)
            assert c["Document"] == i + 1
            assert c["Node"] == 2 + (i + 1) * 2  # two nodes, plus a document and a chunk each
            node = await db.ops.get_node_by_id("same-id", schema=schema)
            assert node.name == f"a{i}"
            walked = await db.ops.traverse_graph("same-id", max_depth=2, schema=schema)
            assert {n.node.name for n in walked.nodes} == {f"a{i}", f"b{i}"}
            hits = await db.ops.search_nodes("tenant data", namespace=ns, type="entity", schema=schema)
            assert {h.node.name for h in hits} <= {f"a{i}", f"b{i}"}
            docs = await db.ops.search_chunks(f"tenant {i}", namespace=ns, schema=schema, limit=10)
            assert all(f"tenant {i}" in h.content for h in docs)
            stats = await db.ops.get_namespace_stats(schema=schema)
            assert [(s.namespace, s.document_count) for s in stats] == [(ns, i + 1)]
        assert await counts(db, None, ns) == base
        assert await db.ops.get_node_by_id("same-id") is None
        assert set(tenants) <= set(await db.list_schemas())
    finally:
        for schema in tenants:
            await db.drop_schema(schema)
    assert not set(tenants) & set(await db.list_schemas())


@pytest.mark.parametrize("name", ['x"; DROP SCHEMA public CASCADE; --', "pg_x", "a-b", "1a"])
async def test_bad_schema_names_are_refused_before_sql(db, name):
    db.metrics.reset()
    with pytest.raises(InvalidSchemaName):
        await db.ops.create_node(namespace="n", type="t", name="x", schema=name)
    with pytest.raises(InvalidSchemaName):
        await db.provision_schema(name)
    with pytest.raises(InvalidSchemaName):
        await db.drop_schema(name)
    assert db.metrics.statements == 0


async def test_schema_lifecycle(db, tenant):
    assert not await db.schema_exists(tenant)
    await db.provision_schema(tenant)
    await db.provision_schema(tenant)  # idempotent
    assert await db.schema_exists(tenant)
    assert tenant in await db.warm_cache()
    await db.drop_schema(tenant)
    assert not await db.schema_exists(tenant)
