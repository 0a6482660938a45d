"""The local all-MiniLM-L6-v2 model, loaded offline from the installed package, on real PEPs."""

from __future__ import annotations

import pytest

from copilotz_orm import DbConfig, EmbeddingConfig, LocalEmbedder, create_database
from tests.conftest import data_path

pytestmark = pytest.mark.skipif(not LocalEmbedder.available(),
                                reason="the 'embeddings' extra is not installed")

DISTRACTORS = ["pep-0007.rst", "pep-0257.rst", "pep-0591.rst", "pep-0484.rst"]


async def test_pep8_answers_how_constants_are_named():
    peps = data_path("peps")
    files = sorted(set(sorted(peps.glob("pep-0*.rst"))[:30]) | {peps / name for name in DISTRACTORS})
    assert peps / "pep-0008.rst" in files
    async with await create_database(DbConfig(url=":memory:",
                                              embedding=EmbeddingConfig(model="all-MiniLM-L6-v2"))) as db:
        for path in files:
            await db.ops.ingest_file(path, namespace="peps")
        hits = await db.ops.search_chunks("how should constants be named", namespace="peps", limit=3)
        assert "PEP 8:" in " ".join(h.document.title for h in hits), [h.document.title for h in hits]
        # the schema records the model it was built with
        stats = await db.ops.get_namespace_stats()
        assert stats[0].document_count == len(files)
    vectors = LocalEmbedder().embed(["a cat", "a kitten", "stock prices"])
    cat, kitten, stocks = vectors
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731 - vectors are normalised
    assert dot(cat, kitten) > dot(cat, stocks)
