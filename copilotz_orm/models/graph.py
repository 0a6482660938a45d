"""The knowledge graph: nodes, typed edges, and the embedding space of a schema.

Documents and chunks are nodes too (joined-table inheritance, see ``documents.py``): a chunk is
a node row plus a ``chunks`` row, so it is found by traversal and by search, written once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import CheckConstraint, Computed, Float, ForeignKey, Index, Integer, SmallInteger, Text, case, func, text
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, Timestamps, new_id

# Node types of the original. Any string is allowed; these are the ones the package writes.
USER, MESSAGE, DOCUMENT, CHUNK, ENTITY = "user", "message", "document", "chunk", "entity"
COLLECTION_PREFIX = "collection:"

TEXT_SEARCH_CHARS = 200_000
"""Full-text search reads the first this-many characters of a node's content."""

# Edge types of the original, plus HAS_CHUNK (document -> chunk).
SENT_BY, MENTIONS, NEXT_CHUNK, RELATED_TO = "SENT_BY", "MENTIONS", "NEXT_CHUNK", "RELATED_TO"
REPLIED_BY, BELONGS_TO, HAS_MANY, HAS_CHUNK = "REPLIED_BY", "BELONGS_TO", "HAS_MANY", "HAS_CHUNK"


class Node(Timestamps, Base):
    __tablename__ = "nodes"

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    namespace: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    content: Mapped[str | None] = mapped_column(Text)
    # Dimensionless on purpose: the dimension belongs to the schema's embedding space, which
    # adds a CHECK and an HNSW expression index with the recorded dimension.
    embedding: Mapped[list[float] | None] = mapped_column(Vector())
    data: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"), default=dict)
    source_type: Mapped[str | None] = mapped_column(Text)
    source_id: Mapped[str | None] = mapped_column(Text)
    # Full-text search over the content (or the name when there is none). Capped so that one
    # huge node cannot overflow tsvector's 1 MB limit and fail its insert.
    search_text: Mapped[str | None] = mapped_column(
        TSVECTOR, Computed(f"to_tsvector('english'::regconfig, left(coalesce(content, name), {TEXT_SEARCH_CHARS}))",
                           persisted=True))

    __table_args__ = (
        Index(None, "search_text", postgresql_using="gin"),
        Index(None, "namespace", "type"),
        Index(None, "source_type", "source_id"),
        Index(None, "type", "name"),
    )
    # Only documents and chunks have subclasses; every other type loads as a plain Node.
    __mapper_args__ = {
        "polymorphic_on": case((type == DOCUMENT, DOCUMENT), (type == CHUNK, CHUNK), else_="node"),
        "polymorphic_identity": "node",
    }

    @hybrid_property
    def collection(self) -> str | None:
        """The collection name of a ``collection:<name>`` node, else None (Python and SQL)."""
        if self.type.startswith(COLLECTION_PREFIX):
            return self.type[len(COLLECTION_PREFIX):]
        return None

    @collection.inplace.expression
    @classmethod
    def _collection_expression(cls):
        return case(
            (cls.type.startswith(COLLECTION_PREFIX, autoescape=True),
             func.substr(cls.type, len(COLLECTION_PREFIX) + 1)),
            else_=None,
        )


class Edge(Base):
    __tablename__ = "edges"

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    source_id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    target_id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"), default=dict)
    weight: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    # Read-only: edges are written through the ops, which keep (source, target, type) unique.
    source: Mapped[Node] = relationship(foreign_keys=[source_id], viewonly=True)
    target: Mapped[Node] = relationship(foreign_keys=[target_id], viewonly=True)

    __table_args__ = (
        Index(None, "source_id", "target_id", "type", unique=True),
        Index(None, "target_id", "type"),
    )


class EmbeddingSpace(Base):
    """The one embedding model and dimension a schema's vectors belong to."""

    __tablename__ = "embedding_space"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default="1")
    model: Mapped[str] = mapped_column(Text)
    dimension: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Set while the schema is being re-embedded with another model (see Database.reembed).
    next_model: Mapped[str | None] = mapped_column(Text)
    next_dimension: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("dimension > 0 AND dimension <= 16000", name="dimension"),
    )


class PendingEmbedding(Base):
    """A node's vector from the model a schema is moving to, kept until every row has one."""

    __tablename__ = "pending_embeddings"

    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True)
    embedding: Mapped[list[float]] = mapped_column(Vector())
