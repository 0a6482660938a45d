"""The memoised hashing embedder gives the same floats as the plain algorithm it replaced."""

import hashlib
import math
import random
import re

from copilotz_orm.embeddings import HashingEmbedder


def reference(text: str, dimension: int = 384) -> list[float]:
    """The hashing embedder as first written: every feature hashed where it occurs."""
    words = re.findall(r"\w+", text.lower())
    features = []
    for w in words:
        features.append(("w:" + w, 1.0))
        padded = f"#{w}#"
        features += [("c:" + padded[i:i + 3], 0.5) for i in range(len(padded) - 2)]
    features += [(f"b:{a} {b}", 0.7) for a, b in zip(words, words[1:])]
    vec = [0.0] * dimension
    for feature, weight in features:
        digest = hashlib.blake2b(feature.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        vec[int.from_bytes(digest[:4], "little") % dimension] += (1.0 if digest[4] & 1 else -1.0) * weight
    norm = math.sqrt(sum(v * v for v in vec))
    if norm == 0.0:
        vec[0], norm = 1.0, 1.0
    return [v / norm for v in vec]


def texts() -> list[str]:
    rng = random.Random(3)
    vocab = ["the", "cat", "sat", "on", "mat", "PEP", "8", "naming", "constants", "Straße", "東京", "x" * 40,
             "lone\ud800surrogate", "a_b", "écrire"]
    out = ["", "   ", "!!!", "The cat sat", "the the the the"]
    out += [" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 300))) for _ in range(40)]
    return out


def test_same_floats_as_the_plain_algorithm_with_and_without_numpy(monkeypatch):
    embedder = HashingEmbedder(384)
    want = [reference(t) for t in texts()]
    assert embedder.embed(texts()) == want
    assert embedder.embed(texts()) == want  # from the memo this time
    monkeypatch.setattr(HashingEmbedder, "_MEMO_SIZE", 3)  # the memo keeps being emptied
    assert HashingEmbedder(384).embed(texts()) == want
    import copilotz_orm.embeddings as module
    monkeypatch.setattr(module, "np", None)  # without numpy
    assert HashingEmbedder(384).embed(texts()) == want
    assert HashingEmbedder(97).embed(texts()[:10]) == [reference(t, 97) for t in texts()[:10]]
