"""copilotz_orm: threads, events, a knowledge graph, RAG and a work queue on PostgreSQL."""

from . import errors
from .config import DbConfig, EmbeddingConfig
from .database import Database, create_database
from .embeddings import Embedder, HashingEmbedder, LocalEmbedder
from .errors import CopilotzError
from .models import Base, Chunk, Document, Edge, EmbeddingSpace, Event, Node, QueueItem, Thread
from .ops import Ops
from .sql.traversal import MAX_DEPTH
from .tenancy import validate_schema_name

__all__ = [
    "errors", "CopilotzError", "DbConfig", "EmbeddingConfig", "Database", "create_database", "Ops",
    "Embedder", "HashingEmbedder", "LocalEmbedder", "MAX_DEPTH", "validate_schema_name",
    "Base", "Thread", "Event", "QueueItem", "Node", "Edge", "Document", "Chunk", "EmbeddingSpace",
]
