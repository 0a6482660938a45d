"""Reading documents and cutting them into chunks (no database access here)."""

from .chunking import STRATEGIES, Span, chunk_text, chunk_words
from .reading import SourceDocument, read_file, read_text

__all__ = ["STRATEGIES", "Span", "chunk_text", "chunk_words", "SourceDocument", "read_file", "read_text"]
