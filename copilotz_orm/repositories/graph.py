"""Nodes and edges: writes, lookups, traversal and vector search over nodes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ..errors import NodeNotFound, translate_db_errors
from ..models import Edge, Node
from ..schemas import Direction, EdgeOut, NodeHit, NodeOut, Traversal, TraversedNode
from ..sql import search as search_sql
from ..sql import traversal as traversal_sql


class GraphRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create_node(self, values: dict[str, Any]) -> NodeOut:
        with translate_db_errors("create_node"):
            row = (await self.session.execute(
                insert(Node).values(**values).returning(*traversal_sql.NODE_COLUMNS))).one()
        return NodeOut.model_validate(row._mapping)

    async def upsert_nodes(self, rows: list[dict[str, Any]]) -> None:
        """Insert nodes, keeping existing ids untouched (for bulk imports)."""
        if rows:
            with translate_db_errors("create_nodes"):
                await self.session.execute(insert(Node).on_conflict_do_nothing(index_elements=["id"]), rows)

    async def get_node(self, node_id: str) -> NodeOut | None:
        row = (await self.session.execute(
            select(*traversal_sql.NODE_COLUMNS).where(Node.id == node_id))).first()
        return NodeOut.model_validate(row._mapping) if row else None

    async def find_node(self, namespace: str, name: str) -> NodeOut | None:
        row = (await self.session.execute(
            select(*traversal_sql.NODE_COLUMNS)
            .where(Node.namespace == namespace, Node.name == name).order_by(Node.id).limit(1))).first()
        return NodeOut.model_validate(row._mapping) if row else None

    async def create_edge(self, values: dict[str, Any]) -> EdgeOut:
        stmt = insert(Edge).values(**values)
        # The same (source, target, type) twice is one edge: return the existing one.
        stmt = stmt.on_conflict_do_update(
            index_elements=["source_id", "target_id", "type"], set_={"type": stmt.excluded.type}
        ).returning(Edge)
        try:
            with translate_db_errors("create_edge"):
                edge = (await self.session.execute(stmt)).scalar_one()
        except NodeNotFound as exc:
            raise NodeNotFound(
                f"cannot create edge {values['source_id']!r} -> {values['target_id']!r}: "
                "both nodes must exist in this schema; create them first"
            ) from exc
        return EdgeOut.model_validate(edge)

    async def insert_edges(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            with translate_db_errors("create_edges"):
                await self.session.execute(
                    insert(Edge).on_conflict_do_nothing(index_elements=["source_id", "target_id", "type"]),
                    rows)

    async def edges_for_node(self, node_id: str, direction: Direction,
                             types: Sequence[str] | None) -> list[EdgeOut]:
        sides = {"out": [Edge.source_id == node_id], "in": [Edge.target_id == node_id],
                 "both": [Edge.source_id == node_id, Edge.target_id == node_id]}[direction]
        stmt = select(Edge).where(or_(*sides))
        if types:
            stmt = stmt.where(Edge.type.in_(list(types)))
        edges = (await self.session.execute(stmt.order_by(Edge.created_at, Edge.id))).scalars()
        return [EdgeOut.model_validate(e) for e in edges]

    async def traverse(self, start_id: str, **options: Any) -> Traversal:
        rows = (await self.session.execute(traversal_sql.traverse(start_id, **options))).mappings()
        nodes, edges = [], []
        for row in rows:
            nodes.append(TraversedNode(node=NodeOut.model_validate(row), depth=row["depth"]))
            edges.extend(EdgeOut.model_validate(e) for e in row["via"])
        return Traversal(start_id=start_id, nodes=nodes, edges=edges)

    async def nearest(self, vector: list[float], dimension: int, **filters: Any) -> list[NodeHit]:
        rows = (await self.session.execute(search_sql.nearest_nodes(vector, dimension, **filters))).mappings()
        return [NodeHit(node=NodeOut.model_validate(r), similarity=r["similarity"]) for r in rows]
