"""Vector search statements, ordered by cosine distance ascending with a LIMIT so that the
schema's HNSW expression index (on ``embedding::vector(dim)``) serves them."""

from __future__ import annotations

from collections.abc import Sequence

from pgvector.sqlalchemy import Vector
from sqlalchemy import Select, bindparam, cast, select
from sqlalchemy.orm import aliased

from ..models import Chunk, Document, Node
from .traversal import NODE_COLUMNS


def _distance(dimension: int, vector: list[float]):
    column = cast(Node.embedding, Vector(dimension))
    return column.cosine_distance(bindparam("query_vector", vector, type_=Vector(dimension)))


def nearest_nodes(vector: list[float], dimension: int, *, limit: int,
                  namespaces: Sequence[str] | None = None, types: Sequence[str] | None = None,
                  min_similarity: float | None = None) -> Select:
    distance = _distance(dimension, vector)
    stmt = select(*NODE_COLUMNS, (1 - distance).label("similarity")).where(Node.embedding.is_not(None))
    if namespaces:
        stmt = stmt.where(Node.namespace.in_(list(namespaces)))
    if types:
        stmt = stmt.where(Node.type.in_(list(types)))
    if min_similarity is not None:
        stmt = stmt.where(distance <= 1 - min_similarity)
    return stmt.order_by(distance).limit(limit)


DOCUMENT_FIELDS = ("id", "namespace", "title", "source_uri", "mime_type", "content_hash", "status",
                   "error", "chunk_count")


def nearest_chunks(vector: list[float], dimension: int, *, limit: int,
                   namespaces: Sequence[str] | None = None,
                   min_similarity: float | None = None) -> Select:
    distance = _distance(dimension, vector)
    chunk, document = Chunk.__table__, Document.__table__
    stmt = (
        select(Node.id.label("chunk_id"), Node.content, chunk.c.position, chunk.c.start_char,
               chunk.c.end_char, chunk.c.document_id, (1 - distance).label("similarity"))
        .join_from(Node.__table__, chunk, chunk.c.id == Node.id)
        .where(Node.embedding.is_not(None))
    )
    if namespaces:
        stmt = stmt.where(Node.namespace.in_(list(namespaces)))
    if min_similarity is not None:
        stmt = stmt.where(distance <= 1 - min_similarity)
    # Nearest chunks first (index scan), then their documents: the join stays out of the scan.
    hits = stmt.order_by(distance).limit(limit).subquery("hits")
    doc_node = aliased(Node, name="doc_node")
    return (
        select(hits, *(document.c[f].label(f"doc_{f}") for f in DOCUMENT_FIELDS),
               doc_node.created_at.label("doc_created_at"), doc_node.updated_at.label("doc_updated_at"))
        .join_from(hits, document, document.c.id == hits.c.document_id)
        .join(doc_node, doc_node.id == document.c.id)
        .order_by(hits.c.similarity.desc(), hits.c.chunk_id)
    )
