"""Documents and their chunks (which are graph nodes), chunk search and namespace statistics."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..errors import translate_db_errors
from ..models import Chunk, Document, Edge, Node
from ..schemas import ChunkHit, DocumentOut, NamespaceStats
from ..sql import search as search_sql


_DOCUMENT_OUT = ("id", "namespace", "title", "source_uri", "mime_type", "content_hash", "status", "error",
                 "chunk_count")


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

    async def get(self, document_id: str) -> DocumentOut | None:
        doc = await self.session.get(Document, document_id)
        return DocumentOut.model_validate(doc) if doc else None

    async def add(self, document: Document, chunks: list[dict[str, Any]], edges: list[dict[str, Any]]) -> DocumentOut:
        # Core INSERTs (sqlalchemy.insert: the PostgreSQL dialect's Insert has no cache key, so
        # each statement was compiled anew for every document) on the tables, the rows split by
        # hand from the ORM attribute names, without the ORM's bulk machinery. The document's rows
        # come back with the server's defaults (timestamps) through RETURNING: no SELECT follows.
        nodes, docs, chunk_rows, edge_rows = (Node.__table__, Document.__table__, Chunk.__table__,
                                              Edge.__table__)
        values = {k: v for k, v in inspect(document).dict.items() if not k.startswith("_")}
        with translate_db_errors("create_document"):
            stamps = (await self.session.execute(
                insert(nodes).returning(nodes.c.created_at, nodes.c.updated_at), _columns(nodes, values))).one()
            stored = (await self.session.execute(
                insert(docs).returning(*(docs.c[f] for f in _DOCUMENT_OUT)), _columns(docs, values))).one()
            if chunks:
                await self.session.execute(insert(nodes), [_columns(nodes, c) for c in chunks])
                await self.session.execute(insert(chunk_rows), [_columns(chunk_rows, c) for c in chunks])
            if edges:
                await self.session.execute(insert(edge_rows), [_columns(edge_rows, e) for e in edges])
        return DocumentOut.model_validate({**stored._mapping, "created_at": stamps.created_at,
                                           "updated_at": stamps.updated_at})

    async def search_chunks(self, **options: Any) -> list[ChunkHit]:
        if options["mode"] != "text":
            # Always filtered: only nodes that are chunks count, whatever else has embeddings.
            settings = search_sql.hnsw_settings(search_sql.candidates(options["mode"], options["limit"]), True)
            await self.session.execute(settings)
        rows = (await self.session.execute(search_sql.search_chunks(**options))).mappings()
        hits = []
        for r in rows:
            doc = {k[4:]: v for k, v in r.items() if k.startswith("doc_")}
            hits.append(ChunkHit(chunk_id=r["chunk_id"], content=r["content"], position=r["position"],
                                 start_char=r["start_char"], end_char=r["end_char"],
                                 metadata=r["metadata"], score=r["score"],
                                 similarity=r["similarity"], document=DocumentOut.model_validate(doc)))
        return hits

    async def namespace_stats(self, namespace: str | None = None) -> list[NamespaceStats]:
        stmt = (
            select(Document.__table__.c.namespace, func.count().label("document_count"),
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
