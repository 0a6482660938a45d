"""Moving a schema to another embedding model: every vector re-made, the index rebuilt, resumable."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from copilotz_orm import EmbeddingSpace, HashingEmbedder, Node, PendingEmbedding
from copilotz_orm.ddl import HNSW_INDEX
from copilotz_orm.errors import EmbeddingMismatch

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Flaky(HashingEmbedder):
    """The target model, failing after `calls` batches (a crash in the middle of a move)."""

    def __init__(self, dimension: int, calls: int) -> None:
        super().__init__(dimension)
        self.calls = calls

    def embed(self, texts):
        if self.calls == 0:
            raise RuntimeError("killed in the middle of the move")
        self.calls -= 1
        return super().embed(texts)


async def dims(db, schema) -> set[int]:
    async with db.session(schema) as s:
        return set(await s.scalars(select(func.vector_dims(Node.embedding)).where(Node.embedding.is_not(None))
                                   .distinct()))


async def test_reembed_moves_every_vector_resumes_and_rebuilds_the_index(db, tenant, ns):
    ops = db.tenant(tenant, namespace=ns).ops
    for i in range(3):
        await ops.ingest_text(f"document {i} about walruses and their tusks " * 40, title=f"D{i}", chunk_size=20,
                              chunk_overlap=0)
    await ops.create_node(type="entity", name="walrus", content="a large flippered marine mammal", embed=True)
    await ops.create_node(type="entity", name="no vector")
    async with db.session(tenant) as s:
        total = await s.scalar(select(func.count()).select_from(Node).where(Node.embedding.is_not(None)))
    assert await dims(db, tenant) == {384}

    with pytest.raises(RuntimeError, match="killed"):
        await db.reembed(Flaky(64, calls=2), tenant, batch_size=5)
    async with db.session(tenant) as s:
        assert await s.scalar(select(func.count()).select_from(PendingEmbedding)) == 10
        space = (await s.execute(select(EmbeddingSpace))).scalar_one()
        assert (space.model, space.dimension, space.next_dimension) == ("hashing", 384, 64)
    assert await dims(db, tenant) == {384}  # the old vectors still serve searches meanwhile
    assert await ops.search_chunks("walrus tusks", mode="vector", limit=3)

    seen = []
    result = await db.reembed(HashingEmbedder(64), tenant, batch_size=5, progress=lambda d, t: seen.append((d, t)))
    assert (result.rows, result.embedded_now, result.dimension) == (total, total - 10, 64)
    assert seen[0] == (10, total) and seen[-1] == (total, total)
    assert await dims(db, tenant) == {64}
    async with db.session(tenant) as s:
        space = (await s.execute(select(EmbeddingSpace))).scalar_one()
        assert (space.dimension, space.next_model) == (64, None)
        assert await s.scalar(select(func.count()).select_from(PendingEmbedding)) == 0
        plan = "\n".join(await s.scalars(select(func.pg_catalog.pg_get_indexdef(
            select(func.to_regclass(f"{tenant}.{HNSW_INDEX}")).scalar_subquery()))))
    assert "vector(64)" in plan and "hnsw" in plan
    hits = await ops.search_chunks("walrus tusks", mode="vector", limit=3)  # the db now embeds with 64
    assert len(hits) == 3 and all(h.similarity > 0 for h in hits)
    with pytest.raises(EmbeddingMismatch):  # a 384-dimension vector no longer fits
        await ops.create_node(type="entity", name="old", embedding=[0.1] * 384)
    db.embedder = HashingEmbedder(384)  # the session fixture's other tests use the 384 space
