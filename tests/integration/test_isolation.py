"""Randomized isolation: seeded random sequences of every public op against three tenants and the
default schema, through every way of naming a tenant. Reads only ever return the schema's own
rows, and afterwards every schema holds exactly the rows its own ops made (counted per table)."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from sqlalchemy import func, select

from copilotz_orm import Chunk, Document, Edge, Event, Node, QueueItem, Thread

pytestmark = pytest.mark.asyncio(loop_scope="session")

TABLES = (Node, Edge, Document, Chunk, Thread, Event, QueueItem)


@dataclass
class Shadow:
    """What one schema should hold, as far as this test made it."""

    nodes: dict[str, tuple[str, str]] = field(default_factory=dict)  # plain node id -> (namespace, source)
    edges: dict[tuple[str, str, str], str] = field(default_factory=dict)  # (source, target, type) -> id
    documents: dict[str, int] = field(default_factory=dict)  # document id -> chunk count

    def counts(self) -> dict[str, int]:
        chunks = sum(self.documents.values())
        return {"Node": len(self.nodes) + len(self.documents) + chunks,
                "Edge": len(self.edges) + sum(2 * k - 1 for k in self.documents.values() if k),
                "Document": len(self.documents), "Chunk": chunks, "Thread": 0, "Event": 0, "QueueItem": 0}

    def drop_node(self, node_id: str) -> None:
        self.nodes.pop(node_id, None)
        self.edges = {k: v for k, v in self.edges.items() if node_id not in k[:2]}


async def table_counts(db, schema) -> dict[str, int]:
    async with db.session(schema) as s:
        return {m.__name__: await s.scalar(select(func.count()).select_from(m)) for m in TABLES}


@asynccontextmanager
async def ops_for(db, schema: str, route: str) -> AsyncIterator:
    """The same ops, reached four ways."""
    if route == "argument":
        class Explicit:  # every call gets schema= explicitly
            def __getattr__(self, name):
                method = getattr(db.ops, name)
                return lambda *a, **kw: method(*a, schema=schema, **kw)
        yield Explicit()
    elif route == "tenant":
        yield db.tenant(schema).ops
    elif route == "ambient":
        with db.tenant(schema):
            yield db.ops
    else:
        async with db.transaction(schema=schema) as tx:
            yield tx.ops


async def step(rng: random.Random, ops, shadow: Shadow, others: set[str], ns: str) -> None:
    plain = sorted(shadow.nodes)
    kind = rng.choice(["create_node", "create_nodes", "update_node", "delete_node", "create_edge",
                       "create_edges", "delete_edge", "delete_edges_for_node", "delete_nodes_by_source",
                       "ingest_text", "delete_document", "import_edge_list", "reads", "reads"])
    if kind == "create_node" or (not plain and kind not in ("ingest_text", "import_edge_list")):
        source = rng.choice(["s1", "s2"])
        node = await ops.create_node(namespace=ns, type="entity", name=f"n{rng.random()}", content="graph words",
                                     source_type="test", source_id=source, embed=rng.random() < 0.5)
        shadow.nodes[node.id] = (ns, source)
    elif kind == "create_nodes":
        made = await ops.create_nodes([{"namespace": ns, "type": "entity", "name": f"m{i}", "source_type": "test",
                                        "source_id": "s3"} for i in range(rng.randint(1, 4))], embed=True)
        shadow.nodes.update({n.id: (ns, "s3") for n in made})
    elif kind == "update_node":
        node = await ops.update_node(rng.choice(plain), data={"touched": True}, content="updated graph words",
                                     embed=True)
        assert node.id in shadow.nodes
    elif kind == "delete_node":
        victim = rng.choice(plain)
        assert await ops.delete_node(victim)
        shadow.drop_node(victim)
    elif kind in ("create_edge", "create_edges"):
        pairs = [(rng.choice(plain), rng.choice(plain), rng.choice(["A", "B"])) for _ in range(rng.randint(1, 3))]
        made = await ops.create_edges([{"source_id": a, "target_id": b, "type": t} for a, b, t in pairs])
        for edge in made:
            shadow.edges.setdefault((edge.source_id, edge.target_id, edge.type), edge.id)
    elif kind == "delete_edge" and shadow.edges:
        key = rng.choice(sorted(shadow.edges))
        assert await ops.delete_edge(shadow.edges.pop(key))
    elif kind == "delete_edges_for_node":
        node = rng.choice(plain)
        gone = {k for k in shadow.edges if node in k[:2]}
        assert await ops.delete_edges_for_node(node) == len(gone)
        for k in gone:
            del shadow.edges[k]
    elif kind == "delete_nodes_by_source":
        source = rng.choice(["s1", "s2", "s3"])
        victims = [n for n, (space, src) in shadow.nodes.items() if src == source and space == ns]
        assert await ops.delete_nodes_by_source("test", source, namespace=ns) == len(victims)
        for victim in victims:
            shadow.drop_node(victim)
    elif kind == "ingest_text":
        text = " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "graph", "words"]) for _ in range(300))
        result = await ops.ingest_text(text + f" {uuid.uuid4().hex}", namespace=ns, title="doc")
        assert result.created
        shadow.documents[result.document.id] = result.document.chunk_count
    elif kind == "delete_document" and shadow.documents:
        doc = rng.choice(sorted(shadow.documents))
        assert await ops.delete_node(doc)
        del shadow.documents[doc]
    elif kind == "import_edge_list":
        pairs = [(str(rng.randint(1, 6)), str(rng.randint(1, 6))) for _ in range(4)]
        imp = f"{ns}_imp"
        await ops.import_edge_list(pairs, namespace=imp)
        for a, b in pairs:
            for token in (a, b):
                shadow.nodes.setdefault(f"{imp}:{token}", (imp, "import"))
        for a, b in pairs:
            shadow.edges.setdefault((f"{imp}:{a}", f"{imp}:{b}", "RELATED_TO"), "?")
        # ids of imported edges are only known to the database: fetch them
        for key, edge_id in list(shadow.edges.items()):
            if edge_id == "?":
                [edge] = [e for e in await ops.get_edges_for_node(key[0], "out", [key[2]]) if e.target_id == key[1]]
                shadow.edges[key] = edge.id
    else:
        await check_reads(rng, ops, shadow, others, ns)


async def check_reads(rng, ops, shadow: Shadow, others: set[str], ns: str) -> None:
    """Every read returns rows of this schema only; ids that live in other schemas are not found."""
    mine = set(shadow.nodes) | set(shadow.documents)
    for foreign in rng.sample(sorted(others - mine), min(3, len(others - mine))):
        assert await ops.get_node_by_id(foreign) is None
        assert (await ops.traverse_graph(foreign)).nodes == []
        assert await ops.get_edges_for_node(foreign) == []
    if shadow.nodes:
        start = rng.choice(sorted(shadow.nodes))
        walk = await ops.traverse_graph(start, max_depth=3)
        assert {n.node.id for n in walk.nodes} <= mine
        assert {e.id for e in walk.edges} <= set(shadow.edges.values())
        related = await ops.find_related_nodes(start, 2)
        assert {n.node.id for n in related} <= mine
        assert {e.id for e in await ops.get_edges_for_node(start)} <= set(shadow.edges.values())
    page = await ops.get_nodes_by_namespace(ns, limit=1000)
    assert {n.id for n in page.items if n.type == "entity"} == {i for i, (space, _) in shadow.nodes.items()
                                                                if space == ns}
    # The same namespace is used in every schema: rows from another schema would show up here.
    hits = await ops.search_nodes("graph words", namespace=[ns, f"{ns}_imp"], limit=50)
    assert all(h.node.id in mine or (h.node.type == "chunk" and h.node.source_id in shadow.documents)
               for h in hits)
    chunks = await ops.search_chunks("graph words alpha", namespace=ns, limit=20)
    assert {h.document.id for h in chunks} <= set(shadow.documents)
    stats = {s.namespace: s.document_count for s in await ops.get_namespace_stats()}
    assert stats.get(ns, 0) == len(shadow.documents)


async def test_randomized_ops_never_cross_schemas(db):
    rng = random.Random(20261203)
    tenants = [f"iso_{uuid.uuid4().hex[:6]}_{i}" for i in range(3)]
    ns = f"iso_{uuid.uuid4().hex[:8]}"
    schemas = ["public", *tenants]
    before = {s: await table_counts(db, s) for s in schemas}
    shadows = {s: Shadow() for s in schemas}
    try:
        for _ in range(60):
            schema = rng.choice(schemas)
            route = rng.choice(["argument", "tenant", "ambient", "transaction"])
            others = set().union(*(set(sh.nodes) | set(sh.documents) for s, sh in shadows.items() if s != schema))
            async with ops_for(db, schema, route) as ops:
                for _ in range(rng.randint(1, 4)):
                    await step(rng, ops, shadows[schema], others, ns)
        for schema in schemas:
            after = await table_counts(db, schema)
            made = {table: after[table] - before[schema].get(table, 0) for table in after}
            assert made == shadows[schema].counts(), schema
        assert sum(len(sh.nodes) for sh in shadows.values()) > 20  # the run did real work
    finally:
        for tenant in tenants:
            await db.drop_schema(tenant)
