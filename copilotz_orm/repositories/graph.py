"""Nodes and edges: writes, lookups, traversal and vector search over nodes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from ..errors import NodeNotFound, translate_db_errors
from ..models import Chunk, Edge, Node
from ..schemas import Direction, EdgeOut, GraphPath, NodeHit, NodeOut, Traversal, parse_large
from ..sql import search as search_sql
from ..sql import traversal as traversal_sql


INGESTED_TYPES = ("document", "chunk")
"""Node types that ingestion writes and keeps consistent (chunk counts, NEXT_CHUNK chains)."""


class GraphRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create_nodes(self, rows: list[dict[str, Any]]) -> list[NodeOut]:
        """One multi-row INSERT ... RETURNING for the whole batch."""
        with translate_db_errors("create_nodes"):
            result = await self.session.execute(
                insert(Node).values(rows).returning(*traversal_sql.NODE_COLUMNS))
        by_id = {row.id: NodeOut.model_validate(row._mapping) for row in result}
        return [by_id[row["id"]] for row in rows]

    async def insert_new_nodes(self, rows: list[dict[str, Any]]) -> int:
        """Insert nodes whose ids are new, leave the others untouched; returns how many were new."""
        if not rows:
            return 0
        with translate_db_errors("create_nodes"):
            result = await self.session.execute(
                insert(Node).on_conflict_do_nothing(index_elements=["id"]).returning(Node.id), rows)
        return len(result.all())

    async def get_node(self, node_id: str) -> NodeOut | None:
        row = (await self.session.execute(
            select(*traversal_sql.NODE_COLUMNS).where(Node.id == node_id))).first()
        return NodeOut.model_validate(row._mapping) if row else None

    async def find_node(self, namespace: str, name: str) -> NodeOut | None:
        row = (await self.session.execute(
            select(*traversal_sql.NODE_COLUMNS)
            .where(Node.namespace == namespace, Node.name == name).order_by(Node.id).limit(1))).first()
        return NodeOut.model_validate(row._mapping) if row else None

    async def list_nodes(self, namespace: str, types: Sequence[str] | None, limit: int,
                         after: str | None) -> list[NodeOut]:
        """Keyset pagination by id (ULIDs sort by creation time)."""
        stmt = select(*traversal_sql.NODE_COLUMNS).where(Node.namespace == namespace)
        if types:
            stmt = stmt.where(Node.type.in_(list(types)))
        if after is not None:
            stmt = stmt.where(Node.id > after)
        rows = (await self.session.execute(stmt.order_by(Node.id).limit(limit))).mappings()
        return [NodeOut.model_validate(r) for r in rows]

    async def update_node(self, node_id: str, values: dict[str, Any], merge: dict[str, Any] | None) -> NodeOut | None:
        """One UPDATE ... RETURNING; `merge` is folded into `data` with jsonb ``||`` (shallow)."""
        if merge is not None:
            values = {**values, "data": Node.data.op("||")(func.cast(merge, JSONB))}
        # Documents and chunks are written by ingestion only (see Ops.update_node).
        stmt = (update(Node).where(Node.id == node_id, Node.type.not_in(INGESTED_TYPES))
                .values(**values, updated_at=func.now())
                .returning(*traversal_sql.NODE_COLUMNS))
        with translate_db_errors("update_node"):
            row = (await self.session.execute(stmt)).first()
        return NodeOut.model_validate(row._mapping) if row else None

    async def node_type(self, node_id: str) -> str | None:
        return await self.session.scalar(select(Node.type).where(Node.id == node_id))

    async def delete_nodes(self, *conditions) -> int:
        """Delete matching nodes with their edges and, for documents, their chunk nodes."""
        doomed = select(Node.id).where(*conditions)
        chunk_table = Chunk.__table__
        stmt = delete(Node).where(or_(
            Node.id.in_(doomed.scalar_subquery()),
            Node.id.in_(select(chunk_table.c.id).where(chunk_table.c.document_id.in_(doomed.scalar_subquery()))),
        ))
        result = await self.session.execute(stmt.execution_options(synchronize_session=False))
        return result.rowcount

    async def create_edges(self, rows: list[dict[str, Any]]) -> list[EdgeOut]:
        """One INSERT for the batch; an existing (source, target, type) is returned, not repeated."""
        stmt = insert(Edge).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=["source_id", "target_id", "type"], set_={"type": stmt.excluded.type}
        ).returning(Edge)
        try:
            with translate_db_errors("create_edges"):
                edges = (await self.session.execute(stmt)).scalars().all()
        except NodeNotFound as exc:
            pairs = ", ".join(f"{r['source_id']!r} -> {r['target_id']!r}" for r in rows[:3])
            raise NodeNotFound(
                f"cannot create edge {pairs}{' …' if len(rows) > 3 else ''}: both nodes of every edge "
                "must exist in this schema; create them first"
            ) from exc
        by_key = {(e.source_id, e.target_id, e.type): EdgeOut.model_validate(e) for e in edges}
        return [by_key[(r["source_id"], r["target_id"], r["type"])] for r in rows]

    async def insert_new_edges(self, rows: list[dict[str, Any]]) -> int:
        """Insert edges not already present (by source, target, type); returns how many were new."""
        if not rows:
            return 0
        with translate_db_errors("create_edges"):
            result = await self.session.execute(
                insert(Edge).on_conflict_do_nothing(index_elements=["source_id", "target_id", "type"])
                .returning(Edge.id), rows)
        return len(result.all())

    async def delete_edges(self, *conditions) -> int:
        result = await self.session.execute(
            delete(Edge).where(*conditions).execution_options(synchronize_session=False))
        return result.rowcount

    @staticmethod
    def touching(node_id: str, direction: Direction, types: Sequence[str] | None) -> list:
        """Conditions for the edges of `node_id` in `direction`, of `types` (all when None)."""
        sides = {"out": [Edge.source_id == node_id], "in": [Edge.target_id == node_id],
                 "both": [Edge.source_id == node_id, Edge.target_id == node_id]}[direction]
        conditions = [or_(*sides)]
        if types:
            conditions.append(Edge.type.in_(list(types)))
        return conditions

    async def edges_for_node(self, node_id: str, direction: Direction,
                             types: Sequence[str] | None) -> list[EdgeOut]:
        stmt = select(Edge).where(*self.touching(node_id, direction, types))
        edges = (await self.session.execute(stmt.order_by(Edge.created_at, Edge.id))).scalars()
        return [EdgeOut.model_validate(e) for e in edges]

    async def traverse(self, start: str | Any, **options: Any) -> Traversal:
        """Walk from a node id, or from a SELECT of seed ids (then ``seeds`` lists the seeds)."""
        if isinstance(start, str):
            stmt = traversal_sql.traverse_by_id(options["direction"], bool(options.get("edge_types")),
                                                options.get("namespace") is not None,
                                                options.get("max_nodes") is not None, options.get("edges", True))
            params = {"start_id": start, "max_depth": options["max_depth"]}
            for key in ("edge_types", "namespace", "max_nodes"):
                if options.get(key):
                    params[key] = options[key]
            raw = (await self.session.execute(stmt, params)).scalar_one()
        else:
            raw = (await self.session.execute(traversal_sql.traverse(start, **options))).scalar_one()
        walk = parse_large(Traversal, raw)
        if not isinstance(start, str):
            walk.seeds = [n.node.id for n in walk.nodes if n.depth == 0]
        return walk

    async def shortest_path(self, source_id: str, target_id: str, **options: Any) -> GraphPath | None:
        rows = (await self.session.execute(
            traversal_sql.shortest_path(source_id, target_id, **options))).mappings().all()
        if not rows:
            return None
        return GraphPath(nodes=[NodeOut.model_validate(r) for r in rows],
                         edges=[EdgeOut.model_validate(r["next"]) for r in rows if r["next"] is not None])

    async def prepare_vector_scan(self, rows: int, filtered: bool, preset: bool = False) -> None:
        """Set ef_search (and iterative scans, when filtered) for the next vector scan, unless
        the connection started with settings that do (`preset`)."""
        if search_sql.needs_settings(rows, preset):
            await self.session.execute(search_sql.hnsw_settings(rows, filtered))

    async def nearest(self, vector: list[float], dimension: int, preset: bool = False, **filters: Any) -> list[NodeHit]:
        await self.prepare_vector_scan(filters["limit"], bool(filters.get("namespaces") or filters.get("types")),
                                       preset)
        rows = (await self.session.execute(search_sql.nearest_nodes(vector, dimension, **filters))).mappings()
        return [NodeHit(node=NodeOut.model_validate(r), similarity=r["similarity"]) for r in rows]
