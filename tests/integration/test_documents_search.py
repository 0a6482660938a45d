"""Documents as graph nodes, chunk search, vectors checked against the embedding space."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from copilotz_orm import Chunk, Document, Edge, Node
from copilotz_orm.models import SearchTerm
from copilotz_orm.errors import Conflict, DocumentError, EmbeddingMismatch, InvalidInput
from copilotz_orm.rag import chunk_text
from copilotz_orm.ddl import HNSW_INDEX
from tests.conftest import data_path


TEXT = "\n\n".join(
    f"Paragraph {i}. " + ("Constants are written in capital letters with underscores. " if i == 7 else
                          "The quick brown fox jumps over the lazy dog again and again. ") * 8
    for i in range(20)
)


@pytest.mark.parametrize("where", ["default", "tenant"])
async def test_ingest_builds_document_chunks_and_edges(db, ns, tenant, where):
    schema = tenant if where == "tenant" else None
    result = await db.ops.ingest_text(TEXT, namespace=ns, title="Foxes", schema=schema,
                                      chunk_size=40, chunk_overlap=8)
    doc = result.document
    assert result.created and doc.status == "indexed" and doc.chunk_count > 5
    async with db.session(schema) as s:
        chunks = (await s.execute(select(Chunk).where(Chunk.document_id == doc.id)
                                  .order_by(Chunk.position))).scalars().all()
        edges = (await s.execute(select(Edge.type, func.count()).where(Edge.source_id.in_(
            [doc.id, *[c.id for c in chunks]])).group_by(Edge.type))).all()
        doc_node = await s.get(Node, doc.id)
    assert len(chunks) == doc.chunk_count
    assert all(TEXT[c.start_char:c.end_char] == c.content for c in chunks)
    assert dict(edges) == {"HAS_CHUNK": len(chunks), "NEXT_CHUNK": len(chunks) - 1}
    assert isinstance(doc_node, Document) and doc_node.type == "document"
    walked = await db.ops.traverse_graph(doc.id, ["HAS_CHUNK"], 1, direction="out", schema=schema)
    assert len(walked.nodes) == len(chunks) + 1

    hits = await db.ops.search_chunks("capital letters constants", namespace=ns, schema=schema)
    assert "capital letters" in hits[0].content
    assert hits[0].document.id == doc.id and hits[0].document.title == "Foxes"
    assert hits[0].similarity >= hits[-1].similarity


async def test_same_content_is_stored_once(db, ns):
    first = await db.ops.ingest_text(TEXT, namespace=ns)
    again = await db.ops.ingest_text(TEXT, namespace=ns)
    other_ns = await db.ops.ingest_text(TEXT, namespace=ns + "_other")
    assert first.created and not again.created and other_ns.created
    assert again.document.id == first.document.id
    stats = {s.namespace: s for s in await db.ops.get_namespace_stats()}
    assert stats[ns].document_count == 1 and stats[ns].chunk_count == first.document.chunk_count


async def test_stats_count_documents_and_chunks(db, ns):
    a = await db.ops.ingest_text("alpha " * 500, namespace=ns)
    b = await db.ops.ingest_text("beta " * 50, namespace=ns)
    (stats,) = [s for s in await db.ops.get_namespace_stats() if s.namespace == ns]
    assert stats.document_count == 2
    assert stats.chunk_count == a.document.chunk_count + b.document.chunk_count
    assert stats.last_updated.tzinfo is not None


async def test_bad_files_are_typed_and_recorded_as_failed_with_the_reason(db, ns, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    binary = tmp_path / "image.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    for path in (empty, binary, latin, tmp_path / "missing.txt"):
        with pytest.raises(DocumentError):
            await db.ops.ingest_file(path, namespace=ns)
    (stats,) = [s for s in await db.ops.get_namespace_stats() if s.namespace == ns]
    assert (stats.document_count, stats.failed_count, stats.chunk_count) == (0, 3, 0)
    failed = {Path(d.source_uri).name: d for d in (await db.ops.list_documents(ns, status="failed")).items}
    assert sorted(failed) == ["empty.txt", "image.png", "latin.txt"]  # a missing path is not a document
    assert "empty" in failed["empty.txt"].error and "binary" in failed["image.png"].error
    assert "UTF-8" in failed["latin.txt"].error and failed["latin.txt"].content_hash is None
    # Fixed, the file is ingested and its failed record replaced: no orphans.
    latin.write_text("café, now in UTF-8 " * 20)
    fixed = await db.ops.ingest_file(latin, namespace=ns)
    assert fixed.created and fixed.replaced == [failed["latin.txt"].id]
    assert await db.ops.get_document_by_id(failed["latin.txt"].id) is None


async def test_a_changed_file_replaces_its_earlier_version(db, ns, tmp_path):
    path = tmp_path / "notes.md"
    path.write_text("# Notes\n\nThe first version talks about apples. " * 30)
    first = await db.ops.ingest_file(path, namespace=ns)
    path.write_text("# Notes\n\nThe second version talks about pears. " * 30)
    second = await db.ops.ingest_file(path, namespace=ns)
    assert second.created and second.replaced == [first.document.id]
    assert await db.ops.get_document_by_id(first.document.id) is None
    async with db.session() as s:  # nothing of the first version is left
        assert await s.scalar(select(func.count()).select_from(Node).where(
            Node.source_id == first.document.id)) == 0
        assert await s.scalar(select(func.count()).select_from(Edge).where(
            Edge.source_id == first.document.id)) == 0
    hits = await db.ops.search_chunks("apples", namespace=ns, mode="text")
    assert hits == []
    assert (await db.ops.ingest_file(path, namespace=ns)).created is False  # unchanged: a no-op


async def test_force_reindex_replaces_chunks_never_duplicates(db, ns):
    text = "Reindexing keeps one copy of every chunk. " * 80
    first = await db.ops.ingest_text(text, namespace=ns, title="R")
    again = await db.ops.ingest_text(text, namespace=ns, title="R", force_reindex=True, chunk_size=50,
                                     chunk_overlap=0)
    assert again.document.id == first.document.id and not again.created
    assert again.document.status == "indexed" and again.document.chunk_count != first.document.chunk_count
    async with db.session() as s:
        chunks = await s.scalar(select(func.count()).select_from(Chunk).where(Chunk.document_id == first.document.id))
        nodes = await s.scalar(select(func.count()).select_from(Node).where(Node.source_id == first.document.id))
    assert chunks == nodes == again.document.chunk_count


async def test_document_lookup_listing_status_and_delete(db, ns):
    a = (await db.ops.ingest_text("alpha document " * 40, namespace=ns, title="A")).document
    b = (await db.ops.ingest_text("beta document " * 40, namespace=ns, title="B")).document
    assert (await db.ops.get_document_by_hash(a.content_hash, namespace=ns)).id == a.id
    assert await db.ops.get_document_by_hash(a.content_hash, namespace=ns + "x") is None
    page = await db.ops.list_documents(ns, limit=1)
    rest = await db.ops.list_documents(ns, cursor=page.next_cursor)
    assert {d.id for d in page.items + rest.items} == {a.id, b.id} and rest.next_cursor is None
    pending = await db.ops.update_document_status(b.id, "pending")
    assert pending.status == "pending"
    assert [d.id for d in (await db.ops.list_documents(ns, status=["pending"])).items] == [b.id]
    with pytest.raises(InvalidInput, match="status must be one of"):
        await db.ops.update_document_status(b.id, "done")
    with pytest.raises(InvalidInput, match="status must be one of"):
        await db.ops.list_documents(ns, status="done")

    node = await db.ops.create_node(namespace=ns, type="entity", name="cites A")
    await db.ops.create_edge(source_id=node.id, target_id=a.id, type="MENTIONS")
    db.metrics.reset()
    assert await db.ops.delete_document(a.id) is True
    assert db.metrics.statements == 2  # lock the document, then one DELETE
    assert await db.ops.delete_document(a.id) is False
    assert await db.ops.delete_document(node.id) is False  # not a document: left alone
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Node).where(Node.source_id == a.id)) == 0
        assert await s.scalar(select(func.count()).select_from(Edge).where(Edge.target_id == a.id)) == 0
    assert await db.ops.get_node_by_id(node.id) is not None


async def test_a_failure_while_embedding_marks_the_document_failed(db, ns):
    class Broken:
        name, dimension = db.embedder.name, db.embedder.dimension

        def embed(self, texts):
            raise RuntimeError("the model ran out of memory")

    working, db.embedder = db.embedder, Broken()
    try:
        with pytest.raises(RuntimeError):
            await db.ops.ingest_text("this will fail to embed " * 30, namespace=ns, title="F")
    finally:
        db.embedder = working
    [doc] = (await db.ops.list_documents(ns)).items
    assert doc.status == "failed" and "ran out of memory" in doc.error and doc.chunk_count == 0
    retried = await db.ops.ingest_text("this will fail to embed " * 30, namespace=ns, title="F")
    assert retried.created and retried.document.id == doc.id
    assert retried.document.status == "indexed" and retried.document.error is None


async def test_nul_in_document_text_is_removed(db, ns, tmp_path):
    result = await db.ops.ingest_text("hello\x00 world " * 10, namespace=ns)
    hits = await db.ops.search_chunks("hello world", namespace=ns)
    assert "\x00" not in hits[0].content and result.created


@pytest.mark.parametrize("vector, error", [
    ([0.1] * 383, EmbeddingMismatch),
    ([0.1] * 385, EmbeddingMismatch),
    ([math.nan] + [0.1] * 383, InvalidInput),
    ([math.inf] + [0.1] * 383, InvalidInput),
    ([0.0] * 384, InvalidInput),
    (["a"] * 384, InvalidInput),
])
async def test_bad_vectors_are_refused_before_writing(db, ns, vector, error):
    with pytest.raises(error):
        await db.ops.create_node(namespace=ns, type="entity", name="v", embedding=vector)
    with pytest.raises(error):
        await db.ops.search_nodes(embedding=vector, namespace=ns)
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Node).where(Node.namespace == ns)) == 0


async def test_dimension_check_holds_even_for_direct_sql_writers(db, ns):
    # A host application writing our table directly still cannot store a wrong-sized vector.
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        async with db.session() as s:
            s.add(Node(namespace=ns, type="entity", name="x", embedding=[0.5] * 3))


async def test_search_nodes_ranks_by_cosine(db, ns):
    for name, content in [("cat", "the cat sat on the mat"), ("dog", "a dog barked loudly"),
                          ("stock", "stock markets fell sharply")]:
        await db.ops.create_node(namespace=ns, type="entity", name=name, content=content, embed=True)
    hits = await db.ops.search_nodes("cat on a mat", namespace=ns, limit=3)
    assert [h.node.name for h in hits][0] == "cat"
    assert hits[0].similarity > hits[1].similarity
    typed = await db.ops.search_nodes("cat", namespace=ns, type="nothing")
    assert typed == []
    with pytest.raises(InvalidInput):
        await db.ops.search_nodes("cat", embedding=[0.1] * 384)
    with pytest.raises(InvalidInput):
        await db.ops.search_nodes(namespace=ns)


async def test_search_plans_use_the_hnsw_and_gin_indexes(db, ns):
    from copilotz_orm.sql.explain import explain
    from copilotz_orm.sql.search import nearest_nodes, search_chunks

    await db.ops.ingest_text("x marks the spot " * 20, namespace=ns)
    vector = db.embedder.embed(["x"])[0]
    async with db.session() as s:
        # Tiny tables favour a sequential scan; the point is that the indexes can serve these.
        await s.execute(select(func.set_config("enable_seqscan", "off", True)))
        plans = {}
        for name, stmt in {
            "nodes": nearest_nodes(vector, 384, limit=5),
            "hybrid": search_chunks(mode="hybrid", vector=vector, query="spot", dimension=384, limit=5),
        }.items():
            plans[name] = "\n".join((await s.execute(explain(stmt))).scalars())
    assert HNSW_INDEX in plans["nodes"], plans["nodes"]
    assert HNSW_INDEX in plans["hybrid"] and "ix_nodes_search_text" in plans["hybrid"], plans["hybrid"]


async def test_search_modes(db, ns):
    await db.ops.ingest_text("Turtles sleep in the winter mud. " * 30, namespace=ns, title="Turtles")
    await db.ops.ingest_text("Rockets reach orbit with staged engines. " * 30, namespace=ns, title="Rockets")
    for mode in ("hybrid", "vector", "text"):
        hits = await db.ops.search_chunks("where do turtles sleep", namespace=ns, mode=mode)
        assert hits and hits[0].document.title == "Turtles", mode
        assert hits == sorted(hits, key=lambda h: -h.score)
        assert (hits[0].similarity is None) == (mode == "text")
    by_vector = await db.ops.search_chunks(embedding=db.embedder.embed(["rockets orbit"])[0],
                                           namespace=ns, mode="vector")
    assert by_vector[0].document.title == "Rockets"
    assert await db.ops.search_chunks("zebra", namespace=ns, mode="text") == []
    long_query = " ".join(["turtles"] + ["word%d" % i for i in range(499)])
    assert (await db.ops.search_chunks(long_query, namespace=ns))[0].document.title == "Turtles"
    with pytest.raises(InvalidInput):
        await db.ops.search_chunks("x", namespace=ns, mode="fuzzy")
    with pytest.raises(InvalidInput):
        await db.ops.search_chunks(embedding=[0.1] * 384, namespace=ns)  # hybrid needs text


async def test_create_document_from_path_text_prefix_or_content(db, ns, tmp_path):
    path = tmp_path / "note.md"
    path.write_text("# Heading\n\nSome words about gardens and trees.\n")
    from_path = await db.ops.create_document(path, namespace=ns)
    from_prefix = await db.ops.create_document("text:other words entirely", namespace=ns, title="T")
    from_content = await db.ops.create_document(namespace=ns, content="other words entirely")
    assert from_path.created and from_path.document.title == "Heading"
    assert from_path.document.source_uri == str(path.resolve())
    assert from_prefix.created and not from_content.created  # same text: stored once
    with pytest.raises(InvalidInput):
        await db.ops.create_document(path, namespace=ns, content="both")


async def test_large_filtered_searches_return_every_row_asked_for(db, ns):
    # An HNSW scan yields at most hnsw.ef_search (40) rows, and a namespace filter thins them
    # further. Sessions that must use the index (no sequential or bitmap scans) show whether
    # the op raises ef_search and turns on iterative scans.
    from sqlalchemy.ext.asyncio import create_async_engine

    from copilotz_orm import DbConfig, EmbeddingConfig, create_database

    other = ns + "_noise"
    await db.ops.create_nodes([{"namespace": ns if i % 3 == 0 else other, "type": "entity",
                                "name": f"item {i}", "content": f"item number {i} in a list"}
                               for i in range(450)], embed=True)
    engine = create_async_engine(db.engine.url, connect_args={"server_settings": {
        "enable_seqscan": "off", "enable_bitmapscan": "off"}})
    forced = await create_database(DbConfig(embedding=EmbeddingConfig(model="hashing")), engine=engine)
    try:
        hits = await forced.ops.search_nodes("item number", namespace=ns, limit=120)
        assert len(hits) == 120 and {h.node.namespace for h in hits} == {ns}
        sims = [h.similarity for h in hits]
        # in order (up to float rounding: the index and the reported similarity compute apart)
        assert all(a >= b - 1e-6 for a, b in zip(sims, sims[1:]))
        unfiltered = await forced.ops.search_nodes("item number", limit=100)
        assert len(unfiltered) == 100
    finally:
        await forced.close()
        await engine.dispose()


async def test_hybrid_head_does_not_change_with_limit(db, ns):
    for i in range(30):
        await db.ops.ingest_text(f"note {i}: " + ("apples and pears " if i % 4 == 0 else "rain and wind ") * 20,
                                 namespace=ns)
    top3 = [h.chunk_id for h in await db.ops.search_chunks("apples", namespace=ns, limit=3)]
    top20 = [h.chunk_id for h in await db.ops.search_chunks("apples", namespace=ns, limit=20)]
    assert top20[:3] == top3


async def test_rst_chunking_keeps_heading_paths_in_chunk_metadata(db, ns):
    pep8 = data_path("peps", "pep-0008.rst")
    result = await db.ops.ingest_file(pep8, namespace=ns, chunking="auto")
    assert result.document.mime_type == "text/x-rst" and result.created
    hits = await db.ops.search_chunks("tabs or spaces indentation", namespace=ns, mode="text", limit=3)
    paths = [h.metadata["heading_path"] for h in hits]
    assert ["Code Lay-out", "Tabs or Spaces?"] in paths and all(p[0] == "Code Lay-out" for p in paths), paths
    async with db.session() as s:
        stored = (await s.execute(select(Chunk.metadata_, Chunk.start_char, Chunk.end_char)
                                  .where(Chunk.document_id == result.document.id).order_by(Chunk.position))).all()
    assert len(stored) == result.document.chunk_count
    assert all("heading_path" in meta for meta, _, _ in stored)


async def test_unknown_chunking_is_refused_before_anything_is_written(db, ns):
    db.metrics.reset()
    with pytest.raises(InvalidInput, match="chunking must be"):
        await db.ops.ingest_text("some text " * 20, namespace=ns, chunking="semantic")
    assert db.metrics.statements == 0


async def test_document_filters_narrow_the_search(db, ns, tmp_path):
    md = tmp_path / "guide.md"
    md.write_text("# Install\n\nInstall the walrus with pip.\n\n# Usage\n\nFeed the walrus fish daily.\n")
    txt = tmp_path / "notes.txt"
    txt.write_text("Notes about the walrus and its habits. " * 10)
    guide = (await db.ops.ingest_file(md, namespace=ns, chunking="markdown", chunk_size=8, chunk_overlap=0)).document
    notes = (await db.ops.ingest_file(txt, namespace=ns)).document
    for mode in ("hybrid", "text", "vector"):
        hits = await db.ops.search_chunks("walrus", namespace=ns, mode=mode, limit=10,
                                          document_filters={"mime_types": ["text/markdown"]})
        assert hits and {h.document.id for h in hits} == {guide.id}, mode
    hits = await db.ops.search_chunks("walrus", namespace=ns, mode="text", limit=10,
                                      document_filters={"chunk_metadata": {"heading_path": ["Usage"]}})
    assert [h.metadata["heading_path"] for h in hits] == [["Usage"]]
    hits = await db.ops.search_chunks("walrus", namespace=ns, mode="text", limit=10,
                                      document_filters={"document_ids": [notes.id]})
    assert {h.document.id for h in hits} == {notes.id}
    prefix = str(tmp_path.resolve()) + "/guide"
    hits = await db.ops.search_chunks("walrus", namespace=ns, mode="text",
                                      document_filters={"source_uri_prefix": prefix})
    assert {h.document.id for h in hits} == {guide.id}
    hits = await db.ops.search_chunks("walrus", namespace=ns, mode="text",
                                      document_filters={"source_uri_prefix": str(tmp_path.resolve()) + "/g%"})
    assert hits == []  # a prefix, not a LIKE pattern
    db.metrics.reset()
    for bad in ({"kind": "md"}, {"mime_types": []}, {"metadata": ["x"]}, "mime"):
        with pytest.raises(InvalidInput):
            await db.ops.search_chunks("walrus", namespace=ns, mode="text", document_filters=bad)
    assert db.metrics.statements == 0


async def test_expand_returns_the_neighbouring_chunks(db, ns):
    text = " ".join(f"word{i}" for i in range(100))
    doc = (await db.ops.ingest_text(text, namespace=ns, chunk_size=10, chunk_overlap=0)).document
    assert doc.chunk_count == 10
    [hit] = await db.ops.search_chunks("word55", namespace=ns, mode="text", limit=1, expand=2)
    assert hit.position == 5
    assert [p.position for p in hit.before] == [3, 4] and [p.position for p in hit.after] == [6, 7]
    assert all(text[p.start_char:p.end_char] == p.content for p in hit.before + hit.after)
    [edge] = await db.ops.search_chunks("word95", namespace=ns, mode="text", limit=1, expand=3)
    assert [p.position for p in edge.before] == [6, 7, 8] and edge.after == []
    with pytest.raises(InvalidInput):
        await db.ops.search_chunks("word1", namespace=ns, mode="text", expand=11)


async def test_fusion_weights_change_the_hybrid_ranking(db, ns):
    await db.ops.ingest_text("zebra crossing rules for pedestrians " * 20, namespace=ns, title="Z")
    await db.ops.ingest_text("animal stripes camouflage savanna " * 20, namespace=ns, title="A")
    text_heavy = await db.ops.search_chunks("zebra", namespace=ns, weights=(0.0, 1.0), limit=2)
    assert text_heavy[0].document.title == "Z"
    only_vector = await db.ops.search_chunks("zebra", namespace=ns, weights=(1.0, 0.0), limit=2)
    vector = await db.ops.search_chunks("zebra", namespace=ns, mode="vector", limit=2)
    assert [h.chunk_id for h in only_vector] == [h.chunk_id for h in vector]
    for bad in ((0, 0), (1,), (-1, 1), (1, float("nan")), "11"):
        with pytest.raises(InvalidInput, match="weights"):
            await db.ops.search_chunks("zebra", namespace=ns, weights=bad)


async def test_searches_are_one_statement_on_our_connections_and_set_up_on_a_hosts(db, ns):
    from sqlalchemy.ext.asyncio import create_async_engine

    from copilotz_orm import DbConfig, EmbeddingConfig, create_database

    await db.ops.ingest_text("one statement searches " * 30, namespace=ns)
    db.metrics.reset()
    await db.ops.search_chunks("statement", namespace=ns)
    await db.ops.search_nodes("statement", namespace=ns)
    assert db.metrics.statements == 2  # no BEGIN/COMMIT (not counted anyway), no settings statement
    host_engine = create_async_engine(db.engine.url)
    host = await create_database(DbConfig(embedding=EmbeddingConfig(model="hashing")), engine=host_engine)
    try:
        async with host.session() as s:
            assert await s.scalar(select(func.current_setting("hnsw.ef_search", True))) in (None, "", "40")
        host.metrics.reset()
        hits = await host.ops.search_chunks("statement", namespace=ns)
        assert hits and host.metrics.statements == 2  # the settings (in its transaction), then the search
    finally:
        await host.close()
        await host_engine.dispose()


async def test_create_document_from_bytes_with_a_mime_type(db, ns):
    html = (b"<html><head><title>Walrus facts</title></head><body>" + b"<p>Walruses have <b>tusks</b>.</p>" * 3
            + b"</body></html>")
    result = await db.ops.create_document(content=html, mime_type="text/html; charset=utf-8", namespace=ns)
    assert result.document.title == "Walrus facts" and result.document.mime_type == "text/html"
    [hit] = await db.ops.search_chunks("tusks", namespace=ns, mode="text", limit=1)
    assert "<b>" not in hit.content and "tusks" in hit.content
    md = "# Care\n\nFeed them clams.\n".encode()
    doc = (await db.ops.create_document(content=md, mime_type="text/markdown", namespace=ns,
                                        chunking="auto")).document
    assert doc.mime_type == "text/markdown"
    db.metrics.reset()
    for bad, kind in (((b"x" * 10, None), InvalidInput), ((b"%PDF-1.7\x00\x01", "application/pdf"), DocumentError),
                      ((b"caf\xe9", "text/plain"), DocumentError), ((b"abc", "text/plain; charset=latin-1"), DocumentError),
                      ((b"\x00\x01binary", "text/plain"), DocumentError)):
        with pytest.raises(kind):
            await db.ops.create_document(content=bad[0], mime_type=bad[1], namespace=ns)
    assert db.metrics.statements == 0


async def test_short_queries_forgive_misspelt_words(db, ns):
    """A word of a short query that no chunk holds is read as the nearest word (by trigrams) of
    the namespace's chunks; known words, long queries and other namespaces' words are left alone."""
    await db.ops.ingest_text("The asyncio event loop runs coroutines concurrently. " * 10, namespace=ns,
                             title="Loops")
    await db.ops.ingest_text("Kubernetes schedules containers onto nodes. " * 10, namespace=ns + "_k8s",
                             title="Clusters")
    async def titles(query, namespace=ns, **kw):
        return {h.document.title for h in await db.ops.search_chunks(query, namespace=namespace, mode="text", **kw)}

    assert await titles("asyncio") == {"Loops"}
    assert await titles("asynco") == {"Loops"}            # one letter missing
    assert await titles("asyncoi evnet loop") == {"Loops"}
    assert await titles("coroutnes") == {"Loops"}
    assert await titles("kubernets") == set()             # only in another namespace
    assert await titles("kubernets", namespace=ns + "_k8s") == {"Clusters"}
    assert await titles("zebra") == set()                 # nothing near enough
    # five words: not a short query, nothing is corrected
    assert await titles("asynco zebra yak gnu emu") == set()
    hybrid = await db.ops.search_chunks("asynco", namespace=ns)
    assert hybrid and hybrid[0].document.title == "Loops"


async def test_words_of_deleted_documents_are_never_offered(db, ns):
    gone = await db.ops.ingest_text("A xylophone solo. " * 10, namespace=ns, title="Music")
    await db.ops.ingest_text("Plain words about gardens. " * 10, namespace=ns, title="Garden")
    assert {h.document.title for h in await db.ops.search_chunks("xylophne", namespace=ns, mode="text")} == {"Music"}
    await db.ops.delete_document(gone.document.id)
    async with db.session() as s:  # the vocabulary keeps the word ...
        assert await s.scalar(select(func.count()).select_from(SearchTerm).where(
            SearchTerm.namespace == ns, SearchTerm.term == "xylophone")) == 1
    # ... but no chunk holds it any more, so it is not offered
    assert await db.ops.search_chunks("xylophne", namespace=ns, mode="text") == []
    again = await db.ops.ingest_text("A xylophone again. " * 10, namespace=ns, title="Music 2")
    hits = await db.ops.search_chunks("xylophne", namespace=ns, mode="text")
    assert [h.document.id for h in hits][:1] == [again.document.id]


async def test_the_correction_uses_the_trigram_index(db, ns):
    from copilotz_orm.sql.explain import explain
    from copilotz_orm.sql.search import search_chunks

    await db.ops.ingest_text("asyncio event loops " * 20, namespace=ns)
    async with db.session() as s:
        await s.execute(select(func.set_config("enable_seqscan", "off", True)))
        plan = "\n".join((await s.execute(explain(
            search_chunks(mode="text", query="asynco", dimension=384, limit=5, namespaces=[ns])))).scalars())
    assert "ix_search_terms_term" in plan, plan


async def _orphans(db) -> tuple[int, int]:
    """(chunk nodes without a chunks row, documents whose chunk_count is not their chunks' count)"""
    async with db.session() as s:
        orphans = await s.scalar(select(func.count()).select_from(Node).where(
            Node.type == "chunk", ~Node.id.in_(select(Chunk.id))))
        wrong = await s.scalar(select(func.count()).select_from(Document).where(
            Document.chunk_count != select(func.count()).where(Chunk.document_id == Document.id).scalar_subquery()))
    return orphans, wrong


async def test_concurrent_ingests_of_the_same_content_store_it_once(db, ns):
    text = "the same text about dugongs and manatees " * 40
    results = await asyncio.gather(*[db.ops.ingest_text(text, namespace=ns, chunk_size=30, chunk_overlap=0)
                                     for _ in range(8)])
    assert sum(r.created for r in results) == 1
    assert len({r.document.id for r in results}) == 1
    forced = await asyncio.gather(*[db.ops.ingest_text(text, namespace=ns, chunk_size=20, chunk_overlap=0,
                                                       force_reindex=True) for _ in range(4)])
    assert {r.document.id for r in forced} == {results[0].document.id}
    [doc] = (await db.ops.list_documents(ns)).items
    assert doc.status == "indexed" and doc.chunk_count == len(chunk_text(text, "fixed", size=20, overlap=0))
    assert await _orphans(db) == (0, 0)


async def test_a_second_ingest_while_the_first_is_embedding_waits_for_it(db, ns):
    class Slow:
        def __init__(self, inner):
            self.inner, self.name, self.dimension = inner, inner.name, inner.dimension

        def embed(self, texts):
            time.sleep(0.4)
            return self.inner.embed(texts)

    original = db.embedder
    db.embedder = Slow(original)
    try:
        async def later():
            await asyncio.sleep(0.1)
            return await db.ops.ingest_text("slow text " * 200, namespace=ns)
        first, second = await asyncio.gather(db.ops.ingest_text("slow text " * 200, namespace=ns), later())
    finally:
        db.embedder = original
    assert (first.created, second.created) in {(True, False), (False, True)}
    [doc] = (await db.ops.list_documents(ns)).items
    assert doc.status == "indexed" and doc.error is None
    assert await _orphans(db) == (0, 0)


async def test_deleting_a_document_while_it_is_reindexed_leaves_nothing_half_done(db, ns):
    body = "race body words " * 200
    for _ in range(5):
        doc = (await db.ops.ingest_text(body, namespace=ns, chunk_size=20, chunk_overlap=0)).document
        deleted, reindexed = await asyncio.gather(
            db.ops.delete_document(doc.id),
            db.ops.ingest_text(body, namespace=ns, chunk_size=25, chunk_overlap=0, force_reindex=True),
            return_exceptions=True)
        assert deleted is True
        assert isinstance(reindexed, Conflict) or reindexed.document.status == "indexed", reindexed
        assert await _orphans(db) == (0, 0)
        for d in (await db.ops.list_documents(ns)).items:
            await db.ops.delete_document(d.id)


async def test_document_metadata_is_kept_and_filterable(db, ns):
    a = await db.ops.create_document(content="Otters hold hands while sleeping. " * 10, namespace=ns,
                                     metadata={"team": "mammals", "year": 2026})
    await db.ops.create_document(content="Otters use stones as tools. " * 10, namespace=ns, metadata={"team": "tools"})
    assert (await db.ops.get_document_by_id(a.document.id)).metadata == {"team": "mammals", "year": 2026}
    hits = await db.ops.search_chunks("otters", namespace=ns, document_filters={"metadata": {"team": "mammals"}})
    assert {h.document.id for h in hits} == {a.document.id}
    everything = await db.ops.search_chunks("otters", namespace=ns, document_filters={"metadata": {}})
    assert len({h.document.id for h in everything}) == 2
    for bad in ("team", ["a"], {"k": float("nan")}):
        with pytest.raises(InvalidInput):
            await db.ops.create_document(content="x y z", namespace=ns, metadata=bad)


async def test_files_with_the_same_content_share_a_document_and_changes_release_it(db, ns, tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("shared words about herons " * 20)
    b.write_text("shared words about herons " * 20)
    first = await db.ops.ingest_file(a, namespace=ns)
    second = await db.ops.ingest_file(b, namespace=ns)
    assert first.created and not second.created and second.document.id == first.document.id

    async def sources(query):
        return [h.document.source_uri for h in await db.ops.search_chunks(query, namespace=ns, mode="text")]

    a.write_text("a changed to talk about owls " * 20)
    changed = await db.ops.ingest_file(a, namespace=ns)
    assert changed.created and changed.replaced == []  # b still holds the herons
    assert set(await sources("herons")) == {str(b)} and set(await sources("owls")) == {str(a)}
    b.write_text("a changed to talk about owls " * 20)  # now b has a's new content
    same = await db.ops.ingest_file(b, namespace=ns)
    assert not same.created and same.replaced == [first.document.id]  # the herons had nobody left
    assert await sources("herons") == []
    [doc] = (await db.ops.list_documents(ns)).items
    assert doc.source_uri == str(a) and await _orphans(db) == (0, 0)


async def test_the_first_query_of_a_process_uses_the_schemas_recorded_model():
    """No model configured: the default schema's recorded model is adopted before the first
    query is embedded (both models have 384 dimensions, so a wrong one would not be noticed)."""
    import shutil
    import tempfile


    folder = Path(tempfile.mkdtemp(prefix="copilotz-adopt-"))
    folder.chmod(0o755)  # reachable by the server's system user when run as root
    url = f"file:{folder / 'db'}"
    try:
        await _first_query(url)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def _first_query(url: str) -> None:
    from copilotz_orm import DbConfig, EmbeddingConfig, create_database

    async with await create_database(DbConfig(url=url, embedding=EmbeddingConfig(model="hashing"))) as db:
        await db.ops.ingest_text("widgets widgets gears " * 20, namespace="h", title="Widget Guide")
        await db.ops.ingest_text("gadget manual calibration " * 20, namespace="h", title="Gadget Manual")
    async with await create_database(DbConfig(url=url)) as db:
        [hit] = await db.ops.search_chunks("widgets", namespace="h", mode="vector", limit=1)
        assert db.embedder.name == "hashing" and hit.document.title == "Widget Guide"
