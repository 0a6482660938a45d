"""Threads, their append-only event log, and their work queue."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Identity, Index, Integer, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, Timestamps, new_id, one_of

THREAD_STATUSES = ("active", "archived")
QUEUE_STATUSES = ("pending", "processing", "completed", "failed", "expired", "overwritten", "cancelled")


class Thread(Timestamps, Base):
    __tablename__ = "threads"

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    participants: Mapped[list[str] | None] = mapped_column(JSONB)
    mode: Mapped[str] = mapped_column(Text, server_default="immediate")
    status: Mapped[str] = mapped_column(Text, server_default="active")
    summary: Mapped[str | None] = mapped_column(Text)
    parent_thread_id: Mapped[str | None] = mapped_column(Text)
    namespace: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")

    __table_args__ = (
        CheckConstraint(one_of("status", THREAD_STATUSES), name="status"),
        Index(None, "external_id", postgresql_where=text("status = 'active'")),
        Index(None, "participants", postgresql_using="gin"),
        Index(None, "namespace"),
    )

    # Read-only: the event log is appended to, never edited through a collection.
    events: Mapped[list[Event]] = relationship(order_by="Event.seq", viewonly=True)

    @hybrid_property
    def is_active(self) -> bool:
        return self.status == "active"


class Event(Base):
    """What happened in a thread; rows are appended and never updated."""

    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    id: Mapped[str] = mapped_column(Text, default=new_id, unique=True)
    thread_id: Mapped[str] = mapped_column(ForeignKey("threads.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    namespace: Mapped[str | None] = mapped_column(Text)
    parent_event_id: Mapped[str | None] = mapped_column(Text)
    trace_id: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (Index(None, "thread_id", "seq"),)


class QueueItem(Timestamps, Base):
    """Work for a thread; claimed with FOR UPDATE SKIP LOCKED, one in flight per thread."""

    __tablename__ = "queue_items"

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    thread_id: Mapped[str] = mapped_column(ForeignKey("threads.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    priority: Mapped[int] = mapped_column(Integer, server_default="0")
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    ttl_ms: Mapped[int | None] = mapped_column(Integer)
    expires_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    lease_owner: Mapped[str | None] = mapped_column(Text)
    lease_expires_at: Mapped[datetime | None]
    dedupe_key: Mapped[str | None] = mapped_column(Text)
    namespace: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")

    __table_args__ = (
        CheckConstraint(one_of("status", QUEUE_STATUSES), name="status"),
        Index(None, "thread_id", "dedupe_key", unique=True,
              postgresql_where=text("dedupe_key IS NOT NULL AND status IN ('pending', 'processing')")),
        Index(None, "status", "lease_expires_at"),
    )

    @hybrid_property
    def is_expired(self) -> bool:
        """Pending work whose time to live has run out (the same rule in Python and in SQL)."""
        return self.expires_at is not None and self.expires_at <= _now()

    @is_expired.inplace.expression
    @classmethod
    def _is_expired_expression(cls):
        return cls.expires_at.is_not(None) & (cls.expires_at <= func.now())


# The claim order: highest priority first, then oldest (NULL priorities cannot exist: default 0).
Index("ix_queue_items_pending_order", QueueItem.thread_id, QueueItem.priority.desc(),
      QueueItem.created_at, QueueItem.id, postgresql_where=text("status = 'pending'"))


def _now() -> datetime:
    return datetime.now(UTC)
