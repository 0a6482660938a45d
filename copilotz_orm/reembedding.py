"""Moving a schema's vectors to another embedding model, resumably.

Every row that has a vector gets a new one, in batches, each batch committed into
``pending_embeddings``; an interrupted run picks up where it stopped (the target model is
recorded in ``embedding_space.next_model``). When every row has its new vector, one transaction
drops the dimension CHECK and the HNSW index, swaps the vectors in, records the new model and
dimension, and builds the CHECK and the index again. Until then searches keep using the old
vectors, so the schema stays usable during the move.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from .ddl import drop_embedding_space_ddl, embedding_space_ddl
from .embeddings import Embedder
from .errors import InvalidInput
from .models import Chunk, Document, EmbeddingSpace, Node, PendingEmbedding
from .sanitize import check_vector

if TYPE_CHECKING:
    from .database import Database

DEFAULT_BATCH = 128


@dataclass(frozen=True)
class ReembedResult:
    schema: str
    model: str
    dimension: int
    rows: int  # rows that have a vector of the new model
    embedded_now: int  # of which this run embedded (the rest were done by an interrupted run)


def _texts():
    """Each vector-bearing node with the text its vector is made from: a chunk's document title,
    heading path and content (as ingestion embeds it), else the node's content or name."""
    chunk, document = Chunk.__table__, Document.__table__
    return (select(Node.id, Node.content, Node.name, document.c.title, chunk.c.metadata)
            .outerjoin(chunk, chunk.c.id == Node.id)
            .outerjoin(document, document.c.id == chunk.c.document_id)
            .where(Node.embedding.is_not(None))
            .where(~select(PendingEmbedding.node_id).where(PendingEmbedding.node_id == Node.id).exists()))


def _text(row) -> str:
    if row.title is not None:  # a chunk
        context = " > ".join([row.title, *(row.metadata or {}).get("heading_path", ())])
        return f"{context}\n\n{row.content}"
    return row.content or row.name


async def _start(conn: AsyncConnection, target: Embedder) -> tuple[int, int]:
    """Record the target (a different earlier target's pending vectors are discarded); returns
    (rows with vectors, rows already re-embedded)."""
    space = (await conn.execute(select(EmbeddingSpace))).scalar_one_or_none()
    if space is None:
        raise InvalidInput("this schema has no embedding space yet: nothing to re-embed")
    nxt = (await conn.execute(select(EmbeddingSpace.next_model, EmbeddingSpace.next_dimension))).one()
    if tuple(nxt) != (target.name, target.dimension):
        await conn.execute(delete(PendingEmbedding))
        await conn.execute(update(EmbeddingSpace).values(next_model=target.name, next_dimension=target.dimension))
    total = (await conn.execute(select(func.count()).select_from(Node).where(Node.embedding.is_not(None)))).scalar_one()
    done = (await conn.execute(select(func.count()).select_from(PendingEmbedding))).scalar_one()
    return total, done


async def _batch(db: Database, schema: str, target: Embedder, size: int, in_conn: AsyncConnection | None = None) -> int:
    """Embed and store one batch of rows still lacking a new vector; returns how many."""
    async def run(conn: AsyncConnection) -> int:
        rows = (await conn.execute(_texts().order_by(Node.id).limit(size))).all()
        if not rows:
            return 0
        vectors = await asyncio.to_thread(target.embed, [_text(r) for r in rows])
        checked = [check_vector(v, target.dimension, target.name) for v in vectors]
        await conn.execute(insert(PendingEmbedding).on_conflict_do_nothing(),
                           [{"node_id": r.id, "embedding": v} for r, v in zip(rows, checked)])
        return len(rows)

    if in_conn is not None:
        return await run(in_conn)
    async with db.connection(schema) as conn:
        return await run(conn)


async def _swap(conn: AsyncConnection, old_dimension: int, target: Embedder) -> int:
    for ddl in drop_embedding_space_ddl(old_dimension):
        await conn.execute(ddl)
    pending = PendingEmbedding.__table__
    moved = (await conn.execute(update(Node).where(Node.id == pending.c.node_id)
                                .values(embedding=pending.c.embedding)
                                .execution_options(synchronize_session=False))).rowcount
    await conn.execute(delete(PendingEmbedding))
    await conn.execute(update(EmbeddingSpace).values(model=target.name, dimension=target.dimension,
                                                     next_model=None, next_dimension=None))
    for ddl in embedding_space_ddl(target.dimension):
        await conn.execute(ddl)
    return moved


async def reembed(db: Database, target: Embedder, schema: str, batch_size: int = DEFAULT_BATCH,
                  progress: Callable[[int, int], None] | None = None) -> ReembedResult:
    async with db.connection(schema) as conn:
        old_dimension = (await conn.execute(select(EmbeddingSpace.dimension))).scalar_one_or_none()
        total, done = await _start(conn, target)
    if old_dimension is None:
        raise InvalidInput("this schema has no embedding space yet: nothing to re-embed")
    resumed = done
    if progress:
        progress(done, total)
    while n := await _batch(db, schema, target, batch_size):
        done += n
        if progress:
            progress(done, max(total, done))
    async with db.connection(schema) as conn:
        # Rows given a vector while we worked are embedded here, in the transaction that swaps.
        while await _batch(db, schema, target, batch_size, in_conn=conn):
            pass
        moved = await _swap(conn, old_dimension, target)
    return ReembedResult(schema, target.name, target.dimension, moved, moved - resumed)
