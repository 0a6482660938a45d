"""Graph traversal as one recursive CTE: a breadth-first search with a visited set.

``walk`` has one row per round: the round's ``depth``, its ``frontier`` (the nodes first reached
in that round), ``seen`` (every node reached so far) and the ids of the edges walked onto the
frontier. Only ids ride the recursion; node rows and edge rows are joined once, after it, and the
result is one JSON document in the shape of ``schemas.Traversal``. ``shortest_path`` walks back
from the target along the levels.
"""

from __future__ import annotations

from collections.abc import Sequence

from functools import lru_cache

from sqlalchemy import (
    JSON, BindParameter, Integer, Select, Subquery, Text, bindparam, cast, column, false, func, literal, null, select,
    true, union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, aggregate_order_by
from sqlalchemy.types import UserDefinedType

from ..models import Edge, Node
from ..schemas import Direction

MAX_DEPTH = 10
"""The deepest traversal allowed: beyond it a dense graph's frontier is the whole graph."""

NODE_COLUMNS = [c for c in Node.__table__.c if c.key not in ("embedding", "search_text")]
EDGE_COLUMNS = list(Edge.__table__.c)


class _Tid(UserDefinedType):
    """PostgreSQL's ``tid``: a row version's physical address (``ctid``)."""

    cache_ok = True

    def get_col_spec(self, **kw) -> str:
        return "TID"


def _ctid(table):
    """The ``ctid`` system column of `table` (or of an alias of it). Fetching the rows of one
    statement's own snapshot by ctid is a direct heap access, where a primary key costs an index
    descent per row."""
    return column("ctid", _Tid(), _selectable=table)


def _steps(direction: Direction, edge_types: Sequence[str] | None, namespace: str | None = None,
           *, carry: str = "address") -> Subquery:
    """Edges as (a -> b) steps in the walking direction, with, by `carry`: the edge's id and
    ``row`` (its ctid) ("address"), all its columns ("full"), or nothing more ("ends": then
    the edge indexes alone answer, with no heap access once the table is vacuumed). With a
    namespace, only steps onto nodes of that namespace: the walk never passes through others."""

    def oriented(a, b):
        columns = {"full": EDGE_COLUMNS, "ends": [],
                   "address": [Edge.id, _ctid(Edge.__table__).label("row")]}[carry]
        stmt = select(a.label("a"), b.label("b"), *columns)
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
         namespace: str | None, edges: bool = True):
    """The walk as a recursive CTE: one row per breadth-first round, with ``depth``, the
    ``frontier`` (an array of the node ids first reached in that round), ``seen`` (a JSONB object
    whose keys are every node reached so far: a key lookup is a binary search, where an array
    would be scanned) and, if `edges`, the edges walked onto the frontier as two parallel arrays,
    ``edge_rows`` (their ctids) and ``walked_to`` (the node each led to), ordered by
    (walked_to, edge id).

    Each round steps only onto unseen nodes, so every node is expanded once, as in an in-memory
    BFS, however many cycles lead back to it. Only ids are carried from round to round: building
    rows or JSON for every edge inside the recursion cost more than the walk itself, and the
    edges' rows are fetched once afterwards."""
    seed_ids = seed.subquery("seed_ids").c[0]
    first = [literal(0, Integer).label("depth"),
             func.array_agg(seed_ids, type_=ARRAY(Text)).label("frontier"),
             func.jsonb_object_agg(seed_ids, 0, type_=JSONB).label("seen")]
    if edges:
        first += [cast(null(), ARRAY(_Tid())).label("edge_rows"), cast(null(), ARRAY(Text)).label("walked_to")]
    walk = select(*first).cte("walk", recursive=True)
    prev = walk.alias("prev")
    steps = _steps(direction, edge_types, namespace, carry="address" if edges else "ends")
    onto_new = select(steps.c.b, *([steps.c.id, steps.c.row] if edges else []))
    onto_new = (onto_new.where(steps.c.a == func.any(prev.c.frontier), ~prev.c.seen.has_key(steps.c.b))
                .correlate(prev))
    if not edges:  # several frontier nodes may reach the same new node
        onto_new = onto_new.distinct()
    onto_new = onto_new.lateral("onto_new")
    aggregates = [func.array_agg(onto_new.c.b.distinct() if edges else onto_new.c.b, type_=ARRAY(Text)).label("frontier"),
                  func.jsonb_object_agg(onto_new.c.b, 0, type_=JSONB).label("added")]
    if edges:
        walked_order = (onto_new.c.b, onto_new.c.id)
        aggregates += [
            func.array_agg(aggregate_order_by(onto_new.c.row, *walked_order), type_=ARRAY(_Tid())).label("edge_rows"),
            func.array_agg(aggregate_order_by(onto_new.c.b, *walked_order), type_=ARRAY(Text)).label("walked_to")]
    nxt = select(*aggregates).lateral("nxt")
    carried = [nxt.c.edge_rows, nxt.c.walked_to] if edges else []
    return walk.union_all(
        select(prev.c.depth + 1, nxt.c.frontier, prev.c.seen.op("||")(nxt.c.added).label("seen"), *carried)
        .select_from(prev.join(nxt, true()))
        .where(prev.c.depth < max_depth, nxt.c.frontier.is_not(None))
    )


def _levels(walk):
    """CTE of (node_id, depth) rows: the nodes of each round's frontier at that round's depth,
    which is their shortest depth, since a node joins only the frontier of the round that first
    reaches it."""
    ids = func.unnest(walk.c.frontier).table_valued(column("node_id", Text)).render_derived("level")
    return select(ids.c.node_id, walk.c.depth).select_from(walk.join(ids, true())).cte("best")


def _edge_json(edges):
    return func.json_build_object(*[x for c in EDGE_COLUMNS for x in (c.key, edges.c[c.key])])


def start_ids(start: str, namespace: str | None = None) -> Select:
    seed = select(Node.id).where(Node.id == start)
    return seed.where(Node.namespace == namespace) if namespace is not None else seed


@lru_cache(maxsize=128)
def traverse_by_id(direction: Direction, typed: bool, namespaced: bool, limited: bool,
                   edges: bool = True) -> Select:
    """:func:`traverse` from one node, built once per shape and reused: building and keying a
    statement this size costs more than running it on a small graph. Parameters: ``start_id``,
    ``max_depth``, and ``edge_types`` (a list), ``namespace``, ``max_nodes`` when the shape says so."""
    return traverse(
        bindparam("start_id", type_=Text), max_depth=bindparam("max_depth", type_=Integer), direction=direction,
        edge_types=bindparam("edge_types", expanding=True) if typed else None,
        max_nodes=bindparam("max_nodes", type_=Integer) if limited else None,
        namespace=bindparam("namespace", type_=Text) if namespaced else None, edges=edges)


def traverse(start: str | Select, *, max_depth: int, direction: Direction = "both",
             edge_types: Sequence[str] | None = None, max_nodes: int | None = None,
             namespace: str | None = None, edges: bool = True) -> Select:
    """One row, one column ``result``: the walk as JSON in the shape of
    :class:`~copilotz_orm.schemas.Traversal` (nodes with their depth, in depth order, and the
    edges walked: each from a node at depth d-1 to one at depth d; none unless `edges`).
    PostgreSQL builds the JSON and pydantic parses it in one pass, which is much cheaper than a
    Python object per row. `start` is a node id, or a SELECT of node ids to start from together
    (depth 0)."""
    seed = start if isinstance(start, Select) else start_ids(start, namespace)
    walk = _bfs(seed, max_depth=max_depth, direction=direction, edge_types=edge_types, namespace=namespace,
                edges=edges)
    # One index scan per round for the whole frontier, not one per node. The lateral row has
    # exactly NodeOut's columns, so row_to_json turns it into JSON in one call (a
    # json_build_object of name/value pairs costs about twice as much per row).
    reached = select(*NODE_COLUMNS).where(Node.id == func.any(walk.c.frontier))
    if namespace is not None:
        reached = reached.where(Node.namespace == namespace)
    reached = reached.lateral("reached")
    walked = (select(func.row_to_json(reached.table_valued()).label("node"), reached.c.id, walk.c.depth)
              .select_from(walk.join(reached, true())))
    if max_nodes is not None:
        walked = walked.order_by(walk.c.depth, reached.c.id).limit(max_nodes)
    walked = walked.cte("walked")
    nodes = (select(func.coalesce(func.json_agg(aggregate_order_by(
                 func.json_build_object("node", walked.c.node, "depth", walked.c.depth),
                 walked.c.depth, walked.c.id)), func.json_build_array()))
             .scalar_subquery())
    start_id = cast(None if isinstance(start, Select) else start, Text)
    # The rounds' frontiers are disjoint, so their sizes add up to every node within reach.
    truncated = (select(func.coalesce(func.sum(func.cardinality(walk.c.frontier)), 0) > max_nodes).scalar_subquery()
                 if max_nodes is not None else false())
    if not edges:
        return select(func.json_build_object("start_id", start_id, "nodes", nodes, "edges", func.json_build_array(),
                                             "truncated", truncated).cast(Text).label("result"))

    # Each round's edges are already in (walked_to, id) order, so (depth, ordinality) keeps the
    # order (depth, walked_to, id) without sorting on text again.
    round_edges = (func.unnest(walk.c.edge_rows, walk.c.walked_to)
                   .table_valued(column("edge_row", _Tid()), column("walked_to", Text), with_ordinality="position")
                   .render_derived("round_edge"))
    edges_table = Edge.__table__
    edge_rows = (select(func.coalesce(func.json_agg(aggregate_order_by(
                     func.row_to_json(edges_table.table_valued()), walk.c.depth, round_edges.c.position)),
                     func.json_build_array()))
                 .select_from(walk.join(round_edges, true())
                              .join(edges_table, _ctid(edges_table) == round_edges.c.edge_row)))
    if max_nodes is not None:  # only edges onto nodes that made the cut
        edge_rows = edge_rows.where(round_edges.c.walked_to.in_(select(walked.c.id)))
    return select(func.json_build_object("start_id", start_id, "nodes", nodes, "edges", edge_rows.scalar_subquery(),
                                         "truncated", truncated).cast(Text).label("result"))


def shortest_path(source_id: str, target_id: str, *, max_depth: int, direction: Direction = "both",
                  edge_types: Sequence[str] | None = None) -> Select:
    """Rows along one shortest path from `source_id` to `target_id` (none if there is none
    within `max_depth`): the node's columns, its ``depth`` (steps from the source) and ``next``,
    the edge taken from it towards the target (null on the target). Among equally short paths
    the one through the smallest ids is taken, so the answer is stable."""
    best = _levels(_bfs(start_ids(source_id), max_depth=max_depth, direction=direction,
                        edge_types=edge_types, namespace=None, edges=False))
    back = (select(best.c.node_id, best.c.depth, null().cast(JSON).label("next"))
            .where(best.c.node_id == target_id).cte("back", recursive=True))
    here = back.alias("here")
    steps = _steps(direction, edge_types, carry="full")
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
