"""Reading documents and cutting them into chunks (no database access here)."""

from .chunking import DEFAULT_CHUNK_SIZE, DEFAULT_OVERLAP, MAX_CHUNK_SIZE, STRATEGIES, Span, chunk_text, chunk_words
from .reading import SourceDocument, read_file, read_text

__all__ = ["DEFAULT_CHUNK_SIZE", "DEFAULT_OVERLAP", "MAX_CHUNK_SIZE", "STRATEGIES", "Span", "chunk_text", "chunk_words", "SourceDocument", "read_file", "read_text"]
