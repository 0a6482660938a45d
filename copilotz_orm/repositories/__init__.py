"""One thin repository per aggregate. They run statements and flush; they never commit."""

from .documents import DocumentRepository
from .graph import GraphRepository

__all__ = ["DocumentRepository", "GraphRepository"]
