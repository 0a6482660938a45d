"""copilotz_orm: threads, events, a knowledge graph, RAG and a work queue on PostgreSQL."""

from . import errors, export
from .config import DbConfig, EmbeddingConfig
from .database import Database, create_database
from .embedded import EmbeddedServer, embedded_server
from .embeddings import Embedder, HashingEmbedder, LocalEmbedder
from .errors import CopilotzError
from .models import Base, Chunk, Document, Edge, EmbeddingSpace, Event, Node, PendingEmbedding, QueueItem, Thread
from .ops import Ops
from .sql.traversal import MAX_DEPTH
from .migrations import migrate_all
from .scopes import Tenant, Transaction
from .tenancy import tenant_engine, validate_schema_name

__all__ = [
    "errors", "export", "CopilotzError", "DbConfig", "EmbeddingConfig", "Database", "create_database", "Ops",
    "Embedder", "HashingEmbedder", "LocalEmbedder", "MAX_DEPTH", "validate_schema_name",
    "tenant_engine", "Tenant", "Transaction", "migrate_all", "EmbeddedServer", "embedded_server",
    "Base", "Thread", "Event", "QueueItem", "Node", "Edge", "Document", "Chunk", "EmbeddingSpace", "PendingEmbedding",
]
