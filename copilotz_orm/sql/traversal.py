"""Graph traversal as one recursive CTE: a breadth-first search with a visited set.

``walk`` has one row per round: the frontier, the map of nodes seen so far (id -> depth) and the
edges walked that round. ``reached`` is the last map; ``best`` its (node, depth) rows; the result
is one JSON document in the shape of ``schemas.Traversal``. ``shortest_path`` walks back from the
target along the levels.
"""

from __future__ import annotations

from collections.abc import Sequence

from functools import lru_cache

from sqlalchemy import (
    JSON, BindParameter, Integer, Select, Subquery, Text, bindparam, cast, column, func, literal, null, select, true,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, aggregate_order_by

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
        if isinstance(edge_types, BindParameter):
            stmt = stmt.where(Edge.type.in_(edge_types))
        elif edge_types:
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


def _bfs(seed: Select, *, max_depth: int, direction: Direction, edge_types: Sequence[str] | None,
         namespace: str | None):
    """The walk as a recursive CTE: one row per breadth-first round, with ``depth``, the
    ``frontier`` (an array of node ids), ``seen`` (a JSONB object {node id: depth} of every node
    reached so far) and ``edges`` (a JSONB array of the edges walked in that round: from the
    frontier onto nodes not seen before; each also names the node it led to, ``walked_to``).

    Each round steps only onto unseen nodes, so every node is expanded once, as in an in-memory
    BFS, however many cycles lead back to it; and the edges come out of the same index scans."""
    seed_ids = seed.subquery("seed_ids").c[0]
    walk = select(
        literal(0, Integer).label("depth"),
        func.array_agg(seed_ids, type_=ARRAY(Text)).label("frontier"),
        func.jsonb_object_agg(seed_ids, 0, type_=JSONB).label("seen"),
        func.jsonb_build_array(type_=JSONB).label("edges"),
    ).cte("walk", recursive=True)
    prev = walk.alias("prev")
    steps = _steps(direction, edge_types, namespace)
    onto_new = (select(steps)
                .where(steps.c.a == func.any(prev.c.frontier), ~prev.c.seen.has_key(steps.c.b))
                .correlate(prev).lateral("onto_new"))
    edge = func.jsonb_build_object(
        "id", onto_new.c.id, "source_id", onto_new.c.source_id, "target_id", onto_new.c.target_id,
        "type", onto_new.c.type, "data", onto_new.c.data, "weight", onto_new.c.weight,
        "created_at", onto_new.c.created_at, "walked_to", onto_new.c.b)
    nxt = select(
        func.array_agg(onto_new.c.b.distinct(), type_=ARRAY(Text)).label("frontier"),
        func.jsonb_object_agg(onto_new.c.b, prev.c.depth + 1, type_=JSONB).label("added"),
        func.jsonb_agg(aggregate_order_by(edge, onto_new.c.b, onto_new.c.id), type_=JSONB).label("edges"),
    ).lateral("nxt")
    return walk.union_all(
        select(prev.c.depth + 1, nxt.c.frontier,
               prev.c.seen.op("||")(func.coalesce(nxt.c.added, func.jsonb_build_object())).label("seen"),
               func.coalesce(nxt.c.edges, func.jsonb_build_array()))
        .select_from(prev.join(nxt, true()))
        .where(prev.c.depth < max_depth, prev.c.frontier.is_not(None))
    )


def _reached(walk):
    """CTE with one column ``m``: the last round's map {node id: depth} of every node reached."""
    return (select(walk.c.seen.label("m")).order_by(walk.c.depth.desc()).limit(1)
            .cte("reached").prefix_with("MATERIALIZED"))


def _best_depths(reached):
    """(node_id, depth) rows from the map of :func:`_reached`."""
    pairs = func.jsonb_each_text(reached.c.m).table_valued("key", "value").render_derived()
    return (select(pairs.c.key.label("node_id"), pairs.c.value.cast(Integer).label("depth"))
            .select_from(reached.join(pairs, true())).cte("best"))


def _edge_json(steps):
    return func.json_build_object(
        "id", steps.c.id, "source_id", steps.c.source_id, "target_id", steps.c.target_id,
        "type", steps.c.type, "data", steps.c.data, "weight", steps.c.weight,
        "created_at", steps.c.created_at)


def start_ids(start: str, namespace: str | None = None) -> Select:
    seed = select(Node.id).where(Node.id == start)
    return seed.where(Node.namespace == namespace) if namespace is not None else seed


def _node_json(table):
    return func.json_build_object(*[x for c in NODE_COLUMNS for x in (c.key, table.c[c.key])])


@lru_cache(maxsize=128)
def traverse_by_id(direction: Direction, typed: bool, namespaced: bool, limited: bool) -> Select:
    """:func:`traverse` from one node, built once per shape and reused: building and keying a
    statement this size costs more than running it on a small graph. Parameters: ``start_id``,
    ``max_depth``, and ``edge_types`` (a list), ``namespace``, ``max_nodes`` when the shape says so."""
    return traverse(
        bindparam("start_id", type_=Text), max_depth=bindparam("max_depth", type_=Integer), direction=direction,
        edge_types=bindparam("edge_types", expanding=True) if typed else None,
        max_nodes=bindparam("max_nodes", type_=Integer) if limited else None,
        namespace=bindparam("namespace", type_=Text) if namespaced else None)


def traverse(start: str | Select, *, max_depth: int, direction: Direction = "both",
             edge_types: Sequence[str] | None = None, max_nodes: int | None = None,
             namespace: str | None = None) -> Select:
    """One row, one column ``result``: the walk as JSON in the shape of
    :class:`~copilotz_orm.schemas.Traversal` (nodes with their depth, in depth order, and the
    edges walked: each from a node at depth d-1 to one at depth d). PostgreSQL builds the JSON
    and pydantic parses it in one pass, which is much cheaper than a Python object per row.
    `start` is a node id, or a SELECT of node ids to start from together (depth 0)."""
    seed = start if isinstance(start, Select) else start_ids(start, namespace)
    walk = _bfs(seed, max_depth=max_depth, direction=direction, edge_types=edge_types, namespace=namespace)
    reached = _reached(walk)
    best = _best_depths(reached)
    walked = (select(*NODE_COLUMNS, best.c.depth)
              .join_from(best, Node.__table__, Node.id == best.c.node_id)
              .order_by(best.c.depth, Node.id))
    if namespace is not None:
        walked = walked.where(Node.namespace == namespace)
    if max_nodes is not None:
        walked = walked.limit(max_nodes)
    walked = walked.cte("walked")

    # The edges walked were collected round by round by the walk itself.
    round_edges = (func.jsonb_array_elements(walk.c.edges).table_valued(column("value", JSONB))
                   .render_derived("walked_edge"))
    edge_rows = select(func.coalesce(func.jsonb_agg(aggregate_order_by(
        round_edges.c.value, walk.c.depth, round_edges.c.value["walked_to"].astext,
        round_edges.c.value["id"].astext)), func.jsonb_build_array())).select_from(walk.join(round_edges, true()))
    if max_nodes is not None:  # only edges onto nodes that made the cut
        kept = select(func.jsonb_object_agg(walked.c.id, walked.c.depth)).scalar_subquery()
        edge_rows = edge_rows.where(kept.op("?")(round_edges.c.value["walked_to"].astext))
    edges = edge_rows.scalar_subquery()
    nodes = (select(func.coalesce(func.json_agg(aggregate_order_by(
                 func.json_build_object("node", _node_json(walked), "depth", walked.c.depth),
                 walked.c.depth, walked.c.id)), func.json_build_array()))
             .scalar_subquery())
    start_id = None if isinstance(start, Select) else start
    return select(func.json_build_object("start_id", cast(start_id, Text), "nodes", nodes, "edges", edges)
                  .cast(Text).label("result"))


def shortest_path(source_id: str, target_id: str, *, max_depth: int, direction: Direction = "both",
                  edge_types: Sequence[str] | None = None) -> Select:
    """Rows along one shortest path from `source_id` to `target_id` (none if there is none
    within `max_depth`): the node's columns, its ``depth`` (steps from the source) and ``next``,
    the edge taken from it towards the target (null on the target). Among equally short paths
    the one through the smallest ids is taken, so the answer is stable."""
    best = _best_depths(_reached(_bfs(start_ids(source_id), max_depth=max_depth, direction=direction,
                                      edge_types=edge_types, namespace=None)))
    back = (select(best.c.node_id, best.c.depth, null().cast(JSON).label("next"))
            .where(best.c.node_id == target_id).cte("back", recursive=True))
    here = back.alias("here")
    steps = _steps(direction, edge_types)
    parent = best.alias("parent")
    hop = (select(steps.c.a.label("node_id"), _edge_json(steps).label("next"))
           .join(parent, (parent.c.node_id == steps.c.a) & (parent.c.depth == here.c.depth - 1))
           .where(steps.c.b == here.c.node_id)
           .order_by(steps.c.a, steps.c.id).limit(1).lateral("hop"))
    back = back.union_all(
        select(hop.c.node_id, here.c.depth - 1, hop.c.next)
        .select_from(here.join(hop, true())).where(here.c.depth > 0))
    return (select(*NODE_COLUMNS, back.c.depth, back.c.next)
            .join_from(back, Node.__table__, Node.id == back.c.node_id)
            .order_by(back.c.depth))
