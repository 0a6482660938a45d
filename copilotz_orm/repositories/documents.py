"""Documents and their chunks (which are graph nodes), chunk search and namespace statistics."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from ..errors import translate_db_errors
from ..models import Chunk, Document, Edge, Node
from ..schemas import ChunkHit, ChunkPart, DocumentOut, NamespaceStats
from ..sql import search as search_sql
from ..sql import terms as terms_sql


def _columns(table, row: dict[str, Any]) -> dict[str, Any]:
    """The entries of `row` (keyed by ORM attribute name) that are columns of `table`."""
    out = {k: v for k, v in row.items() if k in table.c}
    if "metadata_" in row and "metadata" in table.c:
        out["metadata"] = row["metadata_"]
    return out


class DocumentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_hash(self, namespace: str, content_hash: str) -> DocumentOut | None:
        doc = (await self.session.execute(
            select(Document).where(Document.namespace == namespace,
                                   Document.content_hash == content_hash))).scalar_one_or_none()
        return DocumentOut.model_validate(doc) if doc else None

    async def by_source(self, namespace: str, source_uri: str) -> list[DocumentOut]:
        docs = (await self.session.scalars(
            select(Document).where(Document.namespace == namespace, Document.source_uri == source_uri)
            .order_by(Document.created_at))).all()
        return [DocumentOut.model_validate(d) for d in docs]

    async def holders(self, namespace: str, source_uri: str) -> list[tuple[str, str | None, list[str]]]:
        """Documents holding this source's content: (id, source_uri, the other sources whose
        content turned out the same, kept in the node's ``data["sources"]``)."""
        nodes, docs = Node.__table__, Document.__table__
        sources = nodes.c.data["sources"]
        rows = await self.session.execute(
            select(docs.c.id, docs.c.source_uri, sources).join_from(docs, nodes, nodes.c.id == docs.c.id)
            .where(docs.c.namespace == namespace,
                   or_(docs.c.source_uri == source_uri, sources.contains([source_uri])))
            .order_by(docs.c.id))
        return [(i, uri, list(more or [])) for i, uri, more in rows.all()]

    async def add_source(self, document_id: str, source_uri: str) -> None:
        """Record that `source_uri` has the same content as this document."""
        nodes = Node.__table__
        known = func.coalesce(nodes.c.data["sources"], func.cast([], JSONB))
        await self.session.execute(
            update(nodes).where(nodes.c.id == document_id, ~known.contains([source_uri]))
            .values(data=func.jsonb_set(nodes.c.data, ["sources"], known.op("||")(func.cast([source_uri], JSONB)))))

    async def drop_source(self, document_id: str, source_uri: str, primary: str | None, others: list[str]) -> None:
        """This document no longer holds `source_uri`'s content (that file changed); another
        source with the same content becomes its source if `source_uri` was."""
        nodes, docs = Node.__table__, Document.__table__
        others = [o for o in others if o != source_uri]
        if primary == source_uri:
            primary = others.pop(0)
            await self.session.execute(update(docs).where(docs.c.id == document_id).values(source_uri=primary))
        await self.session.execute(
            update(nodes).where(nodes.c.id == document_id)
            .values(source_id=primary, updated_at=func.now(),
                    data=func.jsonb_set(nodes.c.data, ["sources"], func.cast(others, JSONB))))

    async def list(self, namespace: str | None, statuses: list[str] | None, limit: int,
                   cursor: str | None) -> list[DocumentOut]:
        stmt = select(Document).order_by(Document.id).limit(limit)
        if namespace is not None:
            stmt = stmt.where(Document.namespace == namespace)
        if statuses:
            stmt = stmt.where(Document.status.in_(statuses))
        if cursor is not None:
            stmt = stmt.where(Document.id > cursor)
        return [DocumentOut.model_validate(d) for d in (await self.session.scalars(stmt)).all()]

    async def lock(self, ids: list[str]) -> set[str]:
        """Lock these documents' node rows until the transaction ends; the ids still there (a
        document deleted meanwhile is missing). Ingest, status changes and deletion all lock the
        node row first, so they wait for one another instead of deadlocking."""
        nodes = Node.__table__
        rows = await self.session.scalars(
            select(nodes.c.id).where(nodes.c.id.in_(sorted(ids)), nodes.c.type == "document")
            .order_by(nodes.c.id).with_for_update())
        return set(rows.all())

    async def locked_statuses(self, ids: list[str]) -> dict[str, str]:
        """:meth:`lock`, then the statuses as they are now: a separate statement, because a row
        read in the locking statement after a wait can be older than the lock."""
        locked = await self.lock(ids)
        if not locked:
            return {}
        docs = Document.__table__
        return dict((await self.session.execute(
            select(docs.c.id, docs.c.status).where(docs.c.id.in_(sorted(locked))))).all())

    async def set_status(self, document_id: str, status: str, error: str | None,
                         *, locked: bool = False) -> DocumentOut | None:
        """One UPDATE of the status (and the error, cleared unless given), the document locked
        first unless the caller has (`locked`); None if no such document."""
        if not locked and not await self.lock([document_id]):
            return None
        table = Document.__table__
        row = (await self.session.execute(
            update(table).where(table.c.id == document_id).values(status=status, error=error)
            .returning(table.c.id))).first()
        if row is None:
            return None
        await self.session.execute(update(Node).where(Node.id == document_id).values(updated_at=func.now()))
        return await self.get(document_id)

    async def get(self, document_id: str) -> DocumentOut | None:
        doc = await self.session.get(Document, document_id)
        return DocumentOut.model_validate(doc) if doc else None

    async def add_document(self, document: Document) -> None:
        """Insert the document in a savepoint: a duplicate (the same content stored by another
        call meanwhile) raises Conflict and leaves the transaction usable."""
        with translate_db_errors("create_document"):
            async with self.session.begin_nested():
                self.session.add(document)
                await self.session.flush()

    async def finish(self, document_id: str, chunks: list[dict[str, Any]], edges: list[dict[str, Any]],
                     metadata: dict[str, Any] | None = None) -> DocumentOut:
        """Store a document's chunks and edges and mark it indexed. Core INSERTs on the tables
        (sqlalchemy.insert: the PostgreSQL dialect's Insert has no cache key, so it was compiled
        anew for every document), rows split by hand from the ORM attribute names; the finished
        row comes back through RETURNING, no SELECT follows."""
        nodes, docs, chunk_rows, edge_rows = Node.__table__, Document.__table__, Chunk.__table__, Edge.__table__
        with translate_db_errors("create_document"):
            if chunks:
                await self.session.execute(insert(nodes), [_columns(nodes, c) for c in chunks])
                await self.session.execute(insert(chunk_rows), [_columns(chunk_rows, c) for c in chunks])
                await self.session.execute(terms_sql.add_terms([c["id"] for c in chunks]))
            if edges:
                await self.session.execute(insert(edge_rows), [_columns(edge_rows, e) for e in edges])
            stored = (await self.session.execute(
                update(docs).where(docs.c.id == document_id)
                .values(status="indexed", error=None, chunk_count=len(chunks),
                        **({"metadata": metadata} if metadata is not None else {}))
                .returning(*(docs.c[f] for f in search_sql.DOCUMENT_FIELDS)))).one()
            stamps = (await self.session.execute(
                update(nodes).where(nodes.c.id == document_id).values(updated_at=func.now())
                .returning(nodes.c.created_at, nodes.c.updated_at))).one()
        return DocumentOut.model_validate({**stored._mapping, **stamps._mapping})

    async def search_chunks(self, expand: int = 0, preset: bool = False, **options: Any) -> list[ChunkHit]:
        rows = search_sql.candidates(options["mode"], options["limit"])
        if options["mode"] != "text" and search_sql.needs_settings(rows, preset):
            # Always filtered: only nodes that are chunks count, whatever else has embeddings.
            await self.session.execute(search_sql.hnsw_settings(rows, True))
        stmt, params = search_sql.chunk_search(**options)
        rows = (await self.session.execute(stmt, params)).mappings()
        hits = []
        for r in rows:
            doc = {k[4:]: v for k, v in r.items() if k.startswith("doc_")}
            hits.append(ChunkHit(chunk_id=r["chunk_id"], content=r["content"], position=r["position"],
                                 start_char=r["start_char"], end_char=r["end_char"],
                                 metadata=r["metadata"], score=r["score"],
                                 similarity=r["similarity"], document=DocumentOut.model_validate(doc)))
        if expand and hits:
            wanted = {(h.document.id, h.position + step) for h in hits
                      for step in range(-expand, expand + 1) if step and h.position + step >= 0}
            found = {(r.document_id, r.position): ChunkPart(chunk_id=r.id, position=r.position, content=r.content,
                                                          start_char=r.start_char, end_char=r.end_char)
                     for r in await self.session.execute(search_sql.neighbours(sorted(wanted)))}
            for h in hits:
                h.before = [found[k] for k in ((h.document.id, h.position - d) for d in range(expand, 0, -1))
                            if k in found]
                h.after = [found[k] for k in ((h.document.id, h.position + d) for d in range(1, expand + 1))
                           if k in found]
        return hits

    async def namespace_stats(self, namespace: str | None = None) -> list[NamespaceStats]:
        stmt = (
            select(Document.__table__.c.namespace,
                   func.count().filter(Document.__table__.c.status == "indexed").label("document_count"),
                   func.count().filter(Document.__table__.c.status == "failed").label("failed_count"),
                   func.count().filter(Document.__table__.c.status.in_(("pending", "processing")))
                   .label("in_progress_count"),
                   func.coalesce(func.sum(Document.__table__.c.chunk_count), 0).label("chunk_count"),
                   func.max(Node.updated_at).label("last_updated"))
            .join_from(Document.__table__, Node.__table__, Node.id == Document.__table__.c.id)
            .group_by(Document.__table__.c.namespace)
            .order_by(Document.__table__.c.namespace)
        )
        if namespace is not None:
            stmt = stmt.where(Document.__table__.c.namespace == namespace)
        rows = (await self.session.execute(stmt)).mappings()
        return [NamespaceStats.model_validate(dict(r)) for r in rows]
