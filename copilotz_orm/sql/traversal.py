"""Graph traversal as one recursive CTE.

``walk`` holds (node, depth) pairs; UNION (not UNION ALL) keeps each pair once, so every level
holds each node at most once and cycles end at ``max_depth``. ``best`` keeps each node at its
shortest depth; ``via`` gathers the edges walked: those from a node at depth d-1 to one at
depth d (joins, so each lookup is a hash probe rather than a scan of ``best``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Integer, Select, Subquery, func, literal, select, true, union_all
from sqlalchemy.dialects.postgresql import JSONB

from ..models import Edge, Node
from ..schemas import Direction

MAX_DEPTH = 10
"""The deepest traversal allowed: beyond it a dense graph's frontier is the whole graph."""

NODE_COLUMNS = [c for c in Node.__table__.c if c.key not in ("embedding", "search_text")]


def _steps(direction: Direction, edge_types: Sequence[str] | None, namespace: str | None = None) -> Subquery:
    """Edges as (a -> b) steps in the walking direction, with the edge's own columns. With a
    namespace, only steps onto nodes of that namespace: the walk never passes through others."""

    def oriented(a, b):
        stmt = select(a.label("a"), b.label("b"), Edge.id, Edge.source_id, Edge.target_id,
                      Edge.type, Edge.data, Edge.weight, Edge.created_at)
        if edge_types:
            stmt = stmt.where(Edge.type.in_(list(edge_types)))
        if namespace is not None:
            stmt = stmt.join(Node.__table__, Node.id == b).where(Node.namespace == namespace)
        return stmt

    if direction == "out":
        return oriented(Edge.source_id, Edge.target_id).subquery("steps")
    if direction == "in":
        return oriented(Edge.target_id, Edge.source_id).subquery("steps")
    return union_all(oriented(Edge.source_id, Edge.target_id),
                     oriented(Edge.target_id, Edge.source_id)).subquery("steps")


def traverse(start_id: str, *, max_depth: int, direction: Direction = "both",
             edge_types: Sequence[str] | None = None, max_nodes: int | None = None,
             namespace: str | None = None) -> Select:
    """Rows: the node's columns, ``depth``, and ``via``: a JSON array of the edges walked to it."""
    seed = select(Node.id.label("node_id"), literal(0, Integer).label("depth")).where(Node.id == start_id)
    if namespace is not None:
        seed = seed.where(Node.namespace == namespace)
    walk = seed.cte("walk", recursive=True)
    prev = walk.alias("prev")
    steps = _steps(direction, edge_types, namespace)
    walk = walk.union(
        select(steps.c.b, prev.c.depth + 1)
        .select_from(prev.join(steps, steps.c.a == prev.c.node_id))
        .where(prev.c.depth < max_depth)
    )
    best = (select(walk.c.node_id, func.min(walk.c.depth).label("depth"))
            .group_by(walk.c.node_id).cte("best"))

    # The edges walked: from a node at depth d-1 to a node at depth d, grouped by the latter.
    # The parent's depth comes from a one-row map, not a second join with `best`: PostgreSQL
    # cannot estimate CTE sizes and would join the two copies of `best` first (a cross product).
    depths = select(func.jsonb_object_agg(best.c.node_id, best.c.depth, type_=JSONB).label("m")).cte("depths")
    into = _steps(direction, edge_types, namespace)
    child = best.alias("child")
    via = (
        select(into.c.b.label("node_id"), func.json_agg(func.json_build_object(
            "id", into.c.id, "source_id", into.c.source_id, "target_id", into.c.target_id,
            "type", into.c.type, "data", into.c.data, "weight", into.c.weight,
            "created_at", into.c.created_at)).label("edges"))
        .select_from(into.join(child, child.c.node_id == into.c.b).join(depths, true()))
        .where(depths.c.m[into.c.a].astext.cast(Integer) == child.c.depth - 1)
        .group_by(into.c.b)
        .cte("via")
    )
    stmt = (select(*NODE_COLUMNS, best.c.depth, func.coalesce(via.c.edges, func.json_build_array()).label("via"))
            .join_from(best, Node.__table__, Node.id == best.c.node_id)
            .outerjoin(via, via.c.node_id == best.c.node_id)
            .order_by(best.c.depth, Node.id))
    if namespace is not None:
        stmt = stmt.where(Node.namespace == namespace)
    if max_nodes is not None:
        stmt = stmt.limit(max_nodes)
    return stmt
