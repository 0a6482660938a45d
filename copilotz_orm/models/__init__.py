"""Declarative models. They do no I/O."""

from .base import NAMING_CONVENTION, PLACEHOLDER_SCHEMA, Base, new_id
from .documents import DOCUMENT_STATUSES, Chunk, Document, SearchTerm
from .graph import Edge, EmbeddingSpace, Node, PendingEmbedding
from .threads import QUEUE_STATUSES, THREAD_STATUSES, Event, QueueItem, Thread

__all__ = [
    "NAMING_CONVENTION", "PLACEHOLDER_SCHEMA", "Base", "new_id",
    "Thread", "Event", "QueueItem", "THREAD_STATUSES", "QUEUE_STATUSES",
    "Node", "Edge", "EmbeddingSpace", "PendingEmbedding", "Document", "Chunk", "SearchTerm", "DOCUMENT_STATUSES",
]
