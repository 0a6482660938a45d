"""Chunking with exact character offsets: ``text[span.start:span.end] == span.text``."""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(r"\S+")

DEFAULT_CHUNK_SIZE = 160
"""Words per chunk. all-MiniLM-L6-v2 reads at most 256 word pieces; 160 words stay under it."""
DEFAULT_OVERLAP = 32
MAX_CHUNK_SIZE = 2000


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    text: str
    token_count: int


def chunk_words(text: str, size: int = DEFAULT_CHUNK_SIZE, overlap: int = DEFAULT_OVERLAP) -> list[Span]:
    """Windows of `size` whitespace-separated words, each sharing `overlap` words with the last."""
    if not 1 <= size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk size must be between 1 and {MAX_CHUNK_SIZE} words, got {size}")
    if not 0 <= overlap < size:
        raise ValueError(f"overlap must be at least 0 and below the chunk size ({size}), got {overlap}")
    tokens = [(m.start(), m.end()) for m in _TOKEN.finditer(text)]
    spans: list[Span] = []
    step = size - overlap
    for first in range(0, len(tokens), step):
        window = tokens[first:first + size]
        start, end = window[0][0], window[-1][1]
        spans.append(Span(start, end, text[start:end], len(window)))
        if first + size >= len(tokens):
            break
    return spans
