"""Documents and chunks for retrieval: typed tables that are also graph nodes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship

from .base import Base, one_of
from .graph import CHUNK, DOCUMENT, Node

DOCUMENT_STATUSES = ("pending", "processing", "indexed", "failed")


class Document(Node):
    __tablename__ = "documents"

    id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True)
    # Also on the node row; repeated here so (namespace, content_hash) can be unique.
    namespace: Mapped[str] = column_property(mapped_column("namespace", Text, nullable=False), Node.namespace)
    source_uri: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    mime_type: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str | None] = mapped_column(Text)  # None: failed before it was read
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    chunk_count: Mapped[int] = mapped_column(Integer, server_default="0")
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)

    # Read-only: chunks are written by ingestion, with their nodes and edges, in one transaction.
    chunks: Mapped[list[Chunk]] = relationship(
        primaryjoin="Document.id == Chunk.document_id", foreign_keys="Chunk.document_id",
        order_by="Chunk.position", viewonly=True)

    __table_args__ = (
        CheckConstraint(one_of("status", DOCUMENT_STATUSES), name="status"),
        Index(None, "namespace", "content_hash", unique=True),
        Index(None, "namespace", "status"),
        Index(None, "namespace", "source_uri"),
    )
    __mapper_args__ = {"polymorphic_identity": DOCUMENT}

    def __init__(self, **kw: Any) -> None:
        kw.setdefault("type", DOCUMENT)
        super().__init__(**kw)


class Chunk(Node):
    __tablename__ = "chunks"

    id: Mapped[str] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    start_char: Mapped[int] = mapped_column(Integer)
    end_char: Mapped[int] = mapped_column(Integer)
    token_count: Mapped[int] = mapped_column(Integer)
    # Where the chunker found it (for example the heading path); added by revision 0002.
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, server_default=text("'{}'::jsonb"))

    __table_args__ = (
        Index(None, "document_id", "position", unique=True),
        Index(None, "metadata", postgresql_using="gin", postgresql_ops={"metadata": "jsonb_path_ops"}),
        CheckConstraint("start_char >= 0 AND end_char >= start_char", name="span"),
    )
    __mapper_args__ = {"polymorphic_identity": CHUNK}

    def __init__(self, **kw: Any) -> None:
        kw.setdefault("type", CHUNK)
        super().__init__(**kw)


class SearchTerm(Base):
    """A word found in the chunks of a namespace, as written (lower-cased, not stemmed): the
    vocabulary a misspelt word of a short query is corrected against, by trigram similarity."""

    __tablename__ = "search_terms"

    term: Mapped[str] = mapped_column(Text, primary_key=True)
    namespace: Mapped[str] = mapped_column(Text, primary_key=True)

    __table_args__ = (
        Index(None, "term", postgresql_using="gist", postgresql_ops={"term": "gist_trgm_ops"}),
    )
