"""copilotz_orm: threads, events, a knowledge graph, RAG and a work queue on PostgreSQL."""

from .config import DbConfig, EmbeddingConfig
from .database import Database, create_database
from .embeddings import Embedder, HashingEmbedder, LocalEmbedder
from .models import Base, Chunk, Document, Edge, EmbeddingSpace, Event, Node, QueueItem, Thread
from .ops import Ops
from .sql.traversal import MAX_DEPTH

__all__ = [
    "DbConfig", "EmbeddingConfig", "Database", "create_database", "Ops",
    "Embedder", "HashingEmbedder", "LocalEmbedder", "MAX_DEPTH",
    "Base", "Thread", "Event", "QueueItem", "Node", "Edge", "Document", "Chunk", "EmbeddingSpace",
]
