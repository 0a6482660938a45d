"""Hostile input found by attacking the package: each case is refused with a typed error before
anything is written, or handled."""

from __future__ import annotations

import asyncio
import os

import pytest
from sqlalchemy import func, select

from copilotz_orm import Node
from copilotz_orm.errors import DocumentError, EmbeddingMismatch, InvalidInput, InvalidSchemaName


async def node_count(db, ns):
    async with db.session() as s:
        return await s.scalar(select(func.count()).select_from(Node).where(Node.namespace.like(ns + "%")))


async def test_newline_schema_names_never_reach_sql(db, tenant):
    await db.ops.create_node(namespace="n", type="t", name="secret", schema=tenant)
    for bad in (tenant + "\n", "public\n"):
        with pytest.raises(InvalidSchemaName):
            await db.drop_schema(bad)
        with pytest.raises(InvalidSchemaName):
            await db.ops.get_node_by_id("x", schema=bad)
    assert len((await db.ops.get_nodes_by_namespace("n", schema=tenant)).items) == 1


async def test_concurrent_provisioning_does_not_deadlock(db, tenant):
    other = tenant + "_2"
    try:
        await asyncio.wait_for(asyncio.gather(db.provision_schema(tenant), db.provision_schema(other),
                                              db.ops.get_node_by_id("x", schema=tenant + "_3")), 60)
        assert {tenant, other, tenant + "_3"} <= set(await db.list_schemas())
    finally:
        await db.drop_schema(other)
        await db.drop_schema(tenant + "_3")


async def test_warm_cache_does_not_trust_another_embedding_space(db, tenant):
    from copilotz_orm import DbConfig, EmbeddingConfig, HashingEmbedder, create_database

    await db.provision_schema(tenant)  # hashing, 384

    class Other(HashingEmbedder):
        def __init__(self):
            super().__init__(384)
            self.name = "other-model"

    url = db.engine.url.render_as_string(hide_password=False)
    async with await create_database(DbConfig(url=url, auto_provision_schema=False,
                                              embedding=EmbeddingConfig(model="hashing")),
                                     embedder=Other()) as other:
        assert tenant not in await other.warm_cache()
        with pytest.raises(EmbeddingMismatch):
            await other.ops.ingest_text("words " * 20, namespace="n", schema=tenant)


@pytest.mark.parametrize("field, value", [
    ("name", "x" * 3000), ("namespace", "n" * 300), ("type", "t" * 300), ("id", "i" * 300),
    ("name", 5), ("content", 5), ("source_type", 5), ("data", [1]), ("data", "x"), ("type", "document"),
    ("type", "chunk"), ("name", "\x00"), ("namespace", "\x00 "),
])
async def test_bad_node_fields(db, ns, field, value):
    fields = {"namespace": ns, "type": "entity", "name": "n", field: value}
    with pytest.raises(InvalidInput):
        await db.ops.create_node(**fields)
    assert await node_count(db, ns) == 0


async def test_deeply_nested_data_is_refused(db, ns):
    data: dict = {}
    inner = data
    for _ in range(5000):
        inner["x"] = {}
        inner = inner["x"]
    with pytest.raises(InvalidInput, match="nested deeper"):
        await db.ops.create_node(namespace=ns, type="e", name="n", data=data)


@pytest.mark.parametrize("vector", [[1e39] * 384, [1e-46] * 384, {i: 1.0 for i in range(384)}, "0" * 384])
async def test_vectors_pgvector_cannot_hold(db, ns, vector):
    with pytest.raises(InvalidInput):
        await db.ops.create_node(namespace=ns, type="e", name="n", embedding=vector)


@pytest.mark.parametrize("kwargs", [
    {"threshold": 2}, {"threshold": -1.5}, {"threshold": float("nan")}, {"threshold": "0.5"},
    {"threshold": True}, {"limit": True}, {"namespace": ""}, {"namespace": 5},
])
async def test_bad_search_arguments(db, kwargs):
    with pytest.raises(InvalidInput):
        await db.ops.search_chunks("cats", **kwargs)


async def test_very_long_queries_still_search(db, ns):
    await db.ops.ingest_text("constants are written in capitals " * 10, namespace=ns)
    for mode in ("text", "hybrid"):
        hits = await db.ops.search_chunks("constants " * 20000, namespace=ns, mode=mode)
        assert hits


@pytest.mark.parametrize("kwargs", [{"max_depth": True}, {"max_nodes": 2**63}, {"max_nodes": 0},
                                    {"namespace": ""}, {"include_edges": "false"}, {"include_edges": None},
                                    {"edge_types": []}])
async def test_bad_traversal_arguments(db, kwargs):
    with pytest.raises(InvalidInput):
        await db.ops.traverse_graph("x", **kwargs)


@pytest.mark.parametrize("name", ["n\x00s", "n\ud800s"])
async def test_names_with_nul_or_lone_surrogates_are_refused_not_merged(db, name):
    """Cleaning would turn "n\x00s" into "ns": two namespaces (or ids) would become one."""
    for call in (lambda: db.ops.search_chunks("cats", namespace=name),
                 lambda: db.ops.get_node_by_id(name),
                 lambda: db.ops.traverse_graph(name),
                 lambda: db.ops.create_node(namespace=name, type="entity", name="x"),
                 lambda: db.ops.create_node(namespace="ns", type=name, name="x"),
                 lambda: db.ops.ingest_text("some text", namespace=name)):
        with pytest.raises(InvalidInput, match="NUL character or a lone surrogate"):
            await call()


@pytest.mark.parametrize("weight", [float("nan"), float("inf"), "heavy", True])
async def test_bad_edge_weights(db, ns, weight):
    a, b = await db.ops.create_nodes([{"namespace": ns, "type": "e", "name": x} for x in "ab"])
    with pytest.raises(InvalidInput):
        await db.ops.create_edge(source_id=a.id, target_id=b.id, type="R", weight=weight)


async def test_fifo_and_odd_paths_are_document_errors(db, ns, tmp_path):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path, None, "a\x00b", "/dev/null"):
        with pytest.raises(DocumentError):
            await asyncio.wait_for(db.ops.ingest_file(path, namespace=ns), 10)


async def test_long_titles_and_odd_file_names(db, ns, tmp_path):
    long_title = tmp_path / "t.rst"
    long_title.write_text("Title: " + "x" * 4000 + "\n\nbody text here\n")
    undecodable = tmp_path / os.fsdecode(b"caf\xe9.txt")
    undecodable.write_text("a file with an odd name")
    first = await db.ops.ingest_file(long_title, namespace=ns)
    second = await db.ops.ingest_file(undecodable, namespace=ns)
    assert first.created and len(first.document.title) == 4000
    assert second.created and second.document.source_uri.endswith("caf\\xe9.txt")
    # another undecodable byte is another file, not the same source (U+FFFD would merge them)
    other = tmp_path / os.fsdecode(b"caf\xe8.txt")
    other.write_text("another file with an odd name")
    third = await db.ops.ingest_file(other, namespace=ns)
    assert third.created and third.replaced == [] and third.document.source_uri.endswith("caf\\xe8.txt")


async def test_import_edge_list_checks_its_input(db, ns):
    with pytest.raises(InvalidInput):
        await db.ops.import_edge_list([("a", "b", "c")], namespace=ns)
    with pytest.raises(InvalidInput):
        await db.ops.import_edge_list([("a", "b")], namespace="a:b")
    result = await db.ops.import_edge_list([("a", "b"), ("a", "b"), ("b", "a")], namespace=ns)
    assert (result.nodes, result.edges, result.new_edges) == (2, 2, 2)


async def test_search_options_a_mode_does_not_use_are_refused(db, ns):
    await db.ops.ingest_text("alpha beta gamma " * 20, namespace=ns)
    with pytest.raises(InvalidInput, match="threshold"):
        await db.ops.search_chunks("alpha", namespace=ns, mode="text", threshold=0.5)
    for mode in ("text", "vector"):
        with pytest.raises(InvalidInput, match="weights"):
            await db.ops.search_chunks("alpha", namespace=ns, mode=mode, weights=(1, 0))
    assert await db.ops.search_chunks("alpha", namespace=ns, mode="hybrid", weights=(1, 0.5))


async def test_word_frequencies_are_counted_in_the_namespaces_searched(db, ns):
    """"python" is in every chunk of one namespace and "asyncio" in one: searching the other
    namespace, where "python" is rare, must still find its python chunk."""
    for i in range(30):
        await db.ops.ingest_text(f"python chunk number {i} about snakes", namespace=ns)
    await db.ops.ingest_text("asyncio event loops", namespace=ns)
    other = ns + "_b"
    await db.ops.ingest_text("python beginners guide", namespace=other)
    for query in ("python asyncio", "python asyncio tutorial for everyone today"):
        hits = await db.ops.search_chunks(query, namespace=other, mode="text")
        assert [h.content for h in hits] == ["python beginners guide"], query


async def test_documents_and_chunks_are_changed_through_ingestion_only(db, ns):
    doc = (await db.ops.ingest_text("first part. " * 30 + "\n\n" + "second part. " * 30, namespace=ns,
                                    chunk_size=20, chunk_overlap=0)).document
    [chunk, *_] = (await db.ops.traverse_graph(doc.id, ["HAS_CHUNK"], 1, direction="out")).nodes[1:]
    with pytest.raises(InvalidInput, match="chunk"):
        await db.ops.delete_node(chunk.node.id)
    with pytest.raises(InvalidInput, match="ingest"):
        await db.ops.update_node(chunk.node.id, content="changed")
    with pytest.raises(InvalidInput, match="document"):
        await db.ops.update_node(doc.id, content="changed", embed=True)
    with pytest.raises(InvalidInput, match="delete_document"):
        await db.ops.delete_nodes_by_source("document", doc.id)
    assert (await db.ops.get_document_by_id(doc.id)).chunk_count == doc.chunk_count
    assert await db.ops.delete_node(doc.id) is True  # a document node goes with its chunks
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Node).where(Node.source_id == doc.id)) == 0


@pytest.mark.parametrize("embed", ["false", 0, None])
async def test_embed_is_a_real_boolean(db, ns, embed):
    """A string "false" is truthy: taking it as a yes would embed (and call the model) unasked."""
    with pytest.raises(InvalidInput, match="embed must be True or False"):
        await db.ops.create_node(namespace=ns, type="entity", name="n", embed=embed)
    node = await db.ops.create_node(namespace=ns, type="entity", name="n")
    with pytest.raises(InvalidInput, match="embed must be True or False"):
        await db.ops.update_node(node.id, content="c", embed=embed)
    assert (await db.ops.get_node_by_id(node.id)).content is None
