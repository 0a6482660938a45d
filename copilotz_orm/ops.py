"""The ops facade: the original's operations in snake_case, composed from the repositories.

Every call validates its input before anything is written and runs in one transaction in the
schema it names (``schema=``, default: the database's default schema).
"""

from __future__ import annotations

import asyncio
import builtins
import math
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from . import export
from .errors import Conflict, EmbeddingMismatch, InvalidInput, NodeNotFound, translate_db_errors
from .models import Edge, Node, new_id
from .models.graph import CHUNK, DOCUMENT, ENTITY
from .repositories import GraphRepository
from .repositories.graph import INGESTED_TYPES
from .document_ops import MAX_QUERY_BYTES, DocumentOps
from .sanitize import (
    identifier, MAX_LIMIT, NAME_BYTES, check_vector, clean_json, names, optional, page_limit, required, similarity,
    whole_number, flag,
)
from .scopes import Scope, Transaction, ambient_scope, refuse_second_connection
from .schemas import (
    Direction, EdgeOut, GraphPath, ImportResult, NodeHit, NodeOut, NodePage, Traversal,
    TraversedNode,
)
from .sql import search as search_sql
from .sql.traversal import MAX_DEPTH

if TYPE_CHECKING:
    from .database import Database

_DIRECTIONS = ("out", "in", "both")
MAX_NODES = 1_000_000
IMPORT_BATCH = 5000


_NODE_FIELDS = ("namespace", "type", "name", "content", "embedding", "data", "source_type", "source_id", "id")
_EDGE_FIELDS = ("source_id", "target_id", "type", "data", "weight")


def _known_fields(item: dict, fields: tuple[str, ...], where: str) -> None:
    unknown = sorted(str(k) for k in set(item) - set(fields))
    missing = [f for f in fields[:3] if f not in item]
    if unknown or missing:
        raise InvalidInput(f"{where}: " + "; ".join(
            ([f"unknown field(s) {', '.join(unknown)}"] if unknown else [])
            + ([f"missing {', '.join(missing)}"] if missing else []))
            + f" (fields: {', '.join(fields)})")


def _direction(direction: str) -> None:
    if direction not in _DIRECTIONS:
        raise InvalidInput(f"direction must be one of {_DIRECTIONS}, got {direction!r}")


class Ops(DocumentOps):
    """The operations, in one tenant scope (see :mod:`copilotz_orm.scopes`): ``db.ops`` follows
    the ambient ``with db.tenant(...)`` block; ``db.tenant(...).ops`` and a transaction's
    ``tx.ops`` are bound to theirs."""

    def __init__(self, db: Database, *, scope: Scope | None = None, transaction: Transaction | None = None) -> None:
        self._db = db
        self._bound = scope
        self._tx = transaction

    @property
    def _scope(self) -> Scope:
        return self._bound if self._bound is not None else ambient_scope()

    def _scope_of(self, schema: str | None) -> Scope:
        """The scope a call naming `schema` runs in: the ambient tenant's namespace only applies
        in the ambient tenant's schema."""
        scope = self._scope
        if self._bound is None and schema is not None and scope.schema not in (None, schema):
            return Scope(strict=False)
        return scope

    def _namespace(self, namespace: str | None, schema: str | None = None) -> str:
        """The namespace a write goes to: the call's, else the scope's; one is needed."""
        return self._scope_of(schema).namespace_for(namespace, needed=True)  # type: ignore[return-value]

    def _namespaces(self, namespace: str | Sequence[str] | None, schema: str | None = None) -> list[str] | None:
        return self._scope_of(schema).namespaces_for(namespace)

    def _namespace_filter(self, namespace: str | None, schema: str | None = None) -> str | None:
        return self._scope_of(schema).namespace_for(namespace)

    @asynccontextmanager
    async def _session(self, schema: str | None, *, one_read: bool = False) -> AsyncIterator[AsyncSession]:
        """The session an op runs in: the transaction's (in a savepoint), or its own;
        ``one_read`` for an op that is one read-only statement (no BEGIN/COMMIT around it)."""
        schema = self._scope.schema_for(schema)
        if self._tx is not None:
            self._tx.check_open()
            # Inside db.transaction(): one op at a time, each in a savepoint, so a failed op
            # leaves nothing behind and the caller may catch its error and go on.
            async with self._tx.lock:
                self._tx.check_open()
                async with self._tx.session.begin_nested():
                    yield self._tx.session
            return
        refuse_second_connection(self._db)
        async with self._db.session(schema, one_read=one_read) as session:
            # Our own statements on our own tables: a missing table means the schema was dropped
            # or damaged behind our back (typed, and the schema is checked again next time).
            with translate_db_errors(f"schema {schema!r}" if schema else "default schema"):
                yield session

    async def _embed(self, texts: list[str]) -> list[list[float]]:
        await self._db.adopt_recorded_model()
        embedder = self._db.embedder
        vectors = await asyncio.to_thread(embedder.embed, texts)
        try:
            count = len(vectors)
        except TypeError:
            count = None
        if count != len(texts):
            got = f"{count} vectors" if count is not None else type(vectors).__name__
            raise EmbeddingMismatch(f"embedder {embedder.name!r} returned {got} for {len(texts)} texts: "
                                    "an embedder must return one vector per text, in order")
        return [check_vector(v, embedder.dimension, embedder.name) for v in vectors]

    def _vector(self, embedding: Sequence[float]) -> list[float]:
        return check_vector(embedding, self._db.embedder.dimension, self._db.embedder.name)

    async def _query_vector(self, query: str | None, embedding: Sequence[float] | None) -> list[float]:
        if (query is None) == (embedding is None):
            raise InvalidInput("give exactly one of query= (text) or embedding= (a vector)")
        if embedding is not None:
            return self._vector(embedding)
        return (await self._embed([required(query, "query", MAX_QUERY_BYTES)]))[0]

    # -- nodes and edges -----------------------------------------------------------------------
    def _node_values(self, namespace: str, type: str, name: str, content: str | None = None,
                     embedding: Sequence[float] | None = None, data: dict[str, Any] | None = None,
                     source_type: str | None = None, source_id: str | None = None,
                     id: str | None = None) -> dict[str, Any]:
        if type in (DOCUMENT, CHUNK):
            raise InvalidInput(f"nodes of type {type!r} are made by ingestion: use create_document()")
        if data is not None and not isinstance(data, dict):
            raise InvalidInput(f"data must be a dict, got {builtins.type(data).__name__}")
        values = {
            "id": identifier(id, "id") if id is not None else new_id(),
            "namespace": identifier(namespace, "namespace"),
            "type": identifier(type, "type"),
            "name": required(name, "name", NAME_BYTES),
            "content": optional(content, "content"),
            "data": clean_json(data or {}),
            "source_type": optional(source_type, "source_type", 255),
            "source_id": optional(source_id, "source_id", NAME_BYTES),
        }
        if embedding is not None:
            values["embedding"] = self._vector(embedding)
        return values

    async def _with_embeddings(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        missing = [r for r in rows if "embedding" not in r]
        if missing:
            vectors = await self._embed([r["content"] or r["name"] for r in missing])
            for row, vector in zip(missing, vectors):
                row["embedding"] = vector
        return rows

    async def create_node(self, *, type: str, name: str, namespace: str | None = None, content: str | None = None,
                          embedding: Sequence[float] | None = None, data: dict[str, Any] | None = None,
                          source_type: str | None = None, source_id: str | None = None,
                          id: str | None = None, embed: bool = False, schema: str | None = None) -> NodeOut:
        """Create a node. ``embed=True`` embeds ``content`` (or ``name``) with the schema's model."""
        node = dict(namespace=namespace, type=type, name=name, content=content, embedding=embedding,
                    data=data, source_type=source_type, source_id=source_id, id=id)
        return (await self.create_nodes([node], embed=embed, schema=schema))[0]

    async def create_nodes(self, nodes: Sequence[dict[str, Any]], *, embed: bool = False,
                           schema: str | None = None) -> list[NodeOut]:
        """Create many nodes in one statement; each dict takes :meth:`create_node`'s fields."""
        flag(embed, "embed")
        rows = []
        for i, node in enumerate(nodes):
            if not isinstance(node, dict):
                raise InvalidInput(f"nodes[{i}] must be a dict of node fields, got {builtins.type(node).__name__}")
            node = {**node, "namespace": self._namespace(node.get("namespace"), schema)}
            _known_fields(node, _NODE_FIELDS, f"nodes[{i}]")
            rows.append(self._node_values(**node))
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        if len(set(ids)) != len(ids):
            raise InvalidInput("node ids repeat within the batch")
        if embed:
            rows = await self._with_embeddings(rows)
        async with self._session(schema) as s:
            try:
                return await GraphRepository(s).create_nodes(rows)
            except Conflict as exc:
                raise Conflict(f"a node with one of these ids already exists: {ids[:5]}") from exc

    async def get_node_by_id(self, node_id: str, *, schema: str | None = None) -> NodeOut | None:
        node_id = identifier(node_id, "node_id")
        async with self._session(schema, one_read=True) as s:
            return await GraphRepository(s).get_node(node_id)

    async def get_nodes_by_namespace(self, namespace: str | None = None, type: str | Sequence[str] | None = None, *,
                                     limit: int = 100, cursor: str | None = None,
                                     schema: str | None = None) -> NodePage:
        """A page of a namespace's nodes in creation order; pass ``next_cursor`` back for more."""
        namespace = self._namespace(namespace, schema)
        if cursor is not None:
            cursor = required(cursor, "cursor")
        async with self._session(schema, one_read=True) as s:
            items = await GraphRepository(s).list_nodes(namespace, names(type, "type"), page_limit(limit) + 1, cursor)
        more = len(items) > limit
        items = items[:limit]
        return NodePage(items=items, next_cursor=items[-1].id if more else None)

    async def update_node(self, node_id: str, *, name: str | None = None, content: str | None = None,
                          data: dict[str, Any] | None = None, data_mode: str = "merge",
                          embedding: Sequence[float] | None = None, source_type: str | None = None,
                          source_id: str | None = None, embed: bool = False,
                          schema: str | None = None) -> NodeOut:
        """Change a node. ``data`` is merged into the stored object (``data_mode="merge"``, top-level
        keys) or replaces it (``"replace"``). ``embed=True`` re-embeds the new content or name."""
        if data_mode not in ("merge", "replace"):
            raise InvalidInput(f"data_mode must be 'merge' or 'replace', got {data_mode!r}")
        flag(embed, "embed")
        node_id = identifier(node_id, "node_id")
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = required(name, "name", NAME_BYTES)
        if content is not None:
            values["content"] = optional(content, "content")
        for key, value, limit in (("source_type", source_type, 255), ("source_id", source_id, NAME_BYTES)):
            if value is not None:
                values[key] = optional(value, key, limit)
        if embedding is not None:
            values["embedding"] = self._vector(embedding)
        elif embed:
            text = values.get("content") or values.get("name")
            if text is None:
                current = await self.get_node_by_id(node_id, schema=schema)
                if current is None:
                    raise NodeNotFound(f"no node {node_id!r} in this schema")
                text = current.content or current.name
            values["embedding"] = (await self._embed([text]))[0]
        merge = None
        if data is not None:
            if not isinstance(data, dict):
                raise InvalidInput(f"data must be a dict, got {type(data).__name__}")
            if data_mode == "replace":
                values["data"] = clean_json(data)
            else:
                merge = clean_json(data)
        async with self._session(schema) as s:
            graph = GraphRepository(s)
            node = await graph.update_node(node_id, values, merge)
            kind = await graph.node_type(node_id) if node is None else None
        if kind in INGESTED_TYPES:
            raise InvalidInput(f"node {node_id!r} is a {kind}, written by ingestion: change the document and "
                               "ingest it again (force_reindex=True re-chunks the same content)")
        if node is None:
            raise NodeNotFound(f"no node {node_id!r} in this schema")
        return node

    async def delete_node(self, node_id: str, *, schema: str | None = None) -> bool:
        """Delete a node and its edges (a document also takes its chunks). True if it existed."""
        node_id = identifier(node_id, "node_id")
        async with self._session(schema) as s:
            graph = GraphRepository(s)
            if await graph.delete_nodes(Node.id == node_id, Node.type != CHUNK) > 0:
                return True
            if await graph.node_type(node_id) == CHUNK:
                raise InvalidInput(f"node {node_id!r} is a chunk: chunks go with their document "
                                   "(delete_document), or change with it (ingest again)")
            return False

    async def delete_nodes_by_source(self, source_type: str, source_id: str, *,
                                     namespace: str | None = None, schema: str | None = None) -> int:
        """Delete the nodes derived from one source; returns how many nodes went."""
        if source_type == "document":
            raise InvalidInput("nodes with source_type 'document' are a document's chunks: delete the "
                               "document (delete_document) instead")
        conditions = [Node.source_type == identifier(source_type, "source_type"),
                      Node.source_id == required(source_id, "source_id", NAME_BYTES)]
        namespace = self._namespace_filter(namespace, schema)
        if namespace is not None:
            conditions.append(Node.namespace == namespace)
        async with self._session(schema) as s:
            return await GraphRepository(s).delete_nodes(*conditions)

    def _edge_values(self, source_id: str, target_id: str, type: str, data: dict[str, Any] | None = None,
                     weight: float | None = None) -> dict[str, Any]:
        if data is not None and not isinstance(data, dict):
            raise InvalidInput(f"edge data must be a dict, got {builtins.type(data).__name__}")
        if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float))
                                   or not math.isfinite(weight)):
            raise InvalidInput(f"weight must be a finite number, got {weight!r}")
        return {"id": new_id(), "source_id": identifier(source_id, "source_id"),
                "target_id": identifier(target_id, "target_id"), "type": identifier(type, "type"),
                "data": clean_json(data or {}), "weight": weight}

    async def create_edge(self, *, source_id: str, target_id: str, type: str,
                          data: dict[str, Any] | None = None, weight: float | None = None,
                          schema: str | None = None) -> EdgeOut:
        """Create an edge; the same (source, target, type) again returns the existing edge."""
        edge = dict(source_id=source_id, target_id=target_id, type=type, data=data, weight=weight)
        return (await self.create_edges([edge], schema=schema))[0]

    async def create_edges(self, edges: Sequence[dict[str, Any]], *, schema: str | None = None) -> list[EdgeOut]:
        """Create many edges in one statement (all or none); repeats are one edge."""
        rows: dict[tuple[str, str, str], dict[str, Any]] = {}
        keys = []  # per input edge, its (cleaned) key
        for i, edge in enumerate(edges):
            if not isinstance(edge, dict):
                raise InvalidInput(f"edges[{i}] must be a dict of edge fields, got {builtins.type(edge).__name__}")
            _known_fields(edge, _EDGE_FIELDS, f"edges[{i}]")
            row = self._edge_values(**edge)
            key = (row["source_id"], row["target_id"], row["type"])
            rows.setdefault(key, row)
            keys.append(key)
        if not rows:
            return []
        async with self._session(schema) as s:
            created = await GraphRepository(s).create_edges(list(rows.values()))
        by_key = {(e.source_id, e.target_id, e.type): e for e in created}
        return [by_key[key] for key in keys]

    async def delete_edge(self, edge_id: str, *, schema: str | None = None) -> bool:
        edge_id = identifier(edge_id, "edge_id")
        async with self._session(schema) as s:
            return await GraphRepository(s).delete_edges(Edge.id == edge_id) > 0

    async def delete_edges_for_node(self, node_id: str, direction: Direction = "both",
                                    types: Sequence[str] | None = None, *, schema: str | None = None) -> int:
        _direction(direction)
        node_id = identifier(node_id, "node_id")
        async with self._session(schema) as s:
            return await GraphRepository(s).delete_edges(
                *GraphRepository.touching(node_id, direction, names(types, "types")))

    async def get_edges_for_node(self, node_id: str, direction: Direction = "both",
                                 types: Sequence[str] | None = None, *, schema: str | None = None) -> list[EdgeOut]:
        _direction(direction)
        node_id = identifier(node_id, "node_id")
        async with self._session(schema, one_read=True) as s:
            return await GraphRepository(s).edges_for_node(node_id, direction, names(types, "types"))

    async def traverse_graph(self, node_id: str, edge_types: Sequence[str] | None = None,
                             max_depth: int = 2, *, direction: Direction = "both",
                             max_nodes: int | None = None, namespace: str | None = None,
                             include_edges: bool = True, schema: str | None = None) -> Traversal:
        """Nodes within `max_depth` steps of `node_id` (one recursive CTE, cycle-safe); an
        unknown start node gives an empty result. ``include_edges=False`` leaves out the edges
        walked (``edges`` is empty), for a cheaper walk when only the nodes matter."""
        node_id = identifier(node_id, "node_id")
        whole_number(max_depth, "max_depth", 0, MAX_DEPTH)
        _direction(direction)
        flag(include_edges, "include_edges")
        if max_nodes is not None:
            whole_number(max_nodes, "max_nodes", 1, MAX_NODES)
        namespace = self._namespace_filter(namespace, schema)
        async with self._session(schema, one_read=True) as s:
            return await GraphRepository(s).traverse(
                node_id, max_depth=max_depth, direction=direction,
                edge_types=names(edge_types, "edge_types"), max_nodes=max_nodes, namespace=namespace,
                edges=include_edges)

    async def shortest_path(self, source_id: str, target_id: str, edge_types: Sequence[str] | None = None,
                            max_depth: int = 6, *, direction: Direction = "both",
                            schema: str | None = None) -> GraphPath | None:
        """One shortest path from `source_id` to `target_id` within `max_depth` steps (one
        statement), or None. Among equally short paths, the one through the smallest ids."""
        source_id, target_id = identifier(source_id, "source_id"), identifier(target_id, "target_id")
        whole_number(max_depth, "max_depth", 0, MAX_DEPTH)
        _direction(direction)
        async with self._session(schema, one_read=True) as s:
            return await GraphRepository(s).shortest_path(
                source_id, target_id, max_depth=max_depth, direction=direction,
                edge_types=names(edge_types, "edge_types"))

    async def search_then_traverse(self, query: str | None = None, *, embedding: Sequence[float] | None = None,
                                   namespace: str | Sequence[str] | None = None,
                                   type: str | Sequence[str] | None = None, seeds: int = 3,
                                   max_depth: int = 1, edge_types: Sequence[str] | None = None,
                                   direction: Direction = "both", max_nodes: int | None = None,
                                   schema: str | None = None) -> Traversal:
        """Walk the graph from the `seeds` nodes nearest to a text or a vector: the search and
        the walk are one statement. Seeds are at depth 0."""
        vector = await self._query_vector(query, embedding)
        whole_number(seeds, "seeds", 1, MAX_LIMIT)
        whole_number(max_depth, "max_depth", 0, MAX_DEPTH)
        _direction(direction)
        if max_nodes is not None:
            whole_number(max_nodes, "max_nodes", 1, MAX_NODES)
        namespaces, types = self._namespaces(namespace, schema), names(type, "type")
        nearest = search_sql.nearest_nodes(vector, self._db.embedder.dimension, limit=seeds,
                                           namespaces=namespaces, types=types).subquery("nearest")
        async with self._session(schema) as s:
            repo = GraphRepository(s)
            await repo.prepare_vector_scan(seeds, bool(namespaces or types), self._db.vector_settings_preset)
            return await repo.traverse(select(nearest.c.id), max_depth=max_depth, direction=direction,
                                       edge_types=names(edge_types, "edge_types"), max_nodes=max_nodes)

    async def export_subgraph(self, node_id: str, depth: int = 2, format: str = "mermaid", *,
                              edge_types: Sequence[str] | None = None, direction: Direction = "both",
                              max_nodes: int | None = 500, schema: str | None = None) -> str:
        """The subgraph within `depth` steps of `node_id` as Mermaid, DOT, JSON or a
        self-contained HTML page (an inline SVG; it loads nothing)."""
        if format not in export.FORMATS:
            raise InvalidInput(f"format must be one of {export.FORMATS}, got {format!r}")
        walk = await self.traverse_graph(node_id, edge_types, depth, direction=direction,
                                         max_nodes=max_nodes, schema=schema)
        if not walk.nodes:
            raise NodeNotFound(f"no node {node_id!r} in this schema")
        return export.render(walk, format, title=export.title(walk, depth, direction))

    async def find_related_nodes(self, node_id: str, depth: int = 1, *,
                                 edge_types: Sequence[str] | None = None,
                                 schema: str | None = None) -> list[TraversedNode]:
        """Nodes within `depth` steps of `node_id` along edges in either direction (not itself)."""
        walked = await self.traverse_graph(node_id, edge_types, depth, direction="both", include_edges=False,
                                           schema=schema)
        return [n for n in walked.nodes if n.depth > 0]

    async def search_nodes(self, query: str | None = None, *, embedding: Sequence[float] | None = None,
                           namespace: str | Sequence[str] | None = None,
                           type: str | Sequence[str] | None = None, limit: int = 10,
                           min_similarity: float | None = None, schema: str | None = None) -> list[NodeHit]:
        """Nodes nearest to a text (embedded with the schema's model) or a vector, by cosine."""
        namespaces = self._namespaces(namespace, schema)
        vector = await self._query_vector(query, embedding)
        limit, preset = page_limit(limit), self._db.vector_settings_preset
        async with self._session(schema, one_read=not search_sql.needs_settings(limit, preset)) as s:
            return await GraphRepository(s).nearest(
                vector, self._db.embedder.dimension, preset, limit=limit,
                namespaces=namespaces, types=names(type, "type"),
                min_similarity=similarity(min_similarity, "min_similarity"))

    async def import_edge_list(self, pairs: Iterable[tuple[str, str]], *, namespace: str | None = None,
                               edge_type: str = "RELATED_TO", node_type: str = ENTITY,
                               progress: Callable[[int], None] | None = None,
                               schema: str | None = None) -> ImportResult:
        """Load an edge list: a node per distinct id (id ``<namespace>:<token>``, name
        ``<token>``) and a directed edge per distinct pair, in one transaction; rows already
        there are kept. Returns the counts, in all and new."""
        namespace = self._namespace(namespace, schema)
        if ":" in namespace:
            raise InvalidInput("an import namespace must not contain ':' (node ids are <namespace>:<token>)")
        edge_type = required(edge_type, "edge_type")
        node_type = required(node_type, "node_type")
        edges: list[tuple[str, str]] = []
        tokens: dict[str, None] = {}
        for pair in pairs:
            if isinstance(pair, (str, bytes)) or len(pair) != 2:
                raise InvalidInput(f"each edge must be a (source, target) pair, got {pair!r}")
            a, b = required(pair[0], "node id"), required(pair[1], "node id")
            edges.append((a, b))
            tokens.setdefault(a)
            tokens.setdefault(b)
        node_rows = [{"id": f"{namespace}:{t}", "namespace": namespace, "type": node_type, "name": t,
                      "data": {}} for t in tokens]
        edge_rows = [{"id": new_id(), "source_id": f"{namespace}:{a}", "target_id": f"{namespace}:{b}",
                      "type": edge_type, "data": {}} for a, b in dict.fromkeys(edges)]
        new_nodes = new_edges = 0
        async with self._session(schema) as s:
            repo = GraphRepository(s)
            for i in range(0, len(node_rows), IMPORT_BATCH):
                batch = node_rows[i:i + IMPORT_BATCH]
                new_nodes += await repo.insert_new_nodes(batch)
                if progress:
                    progress(len(batch))
            for i in range(0, len(edge_rows), IMPORT_BATCH):
                batch = edge_rows[i:i + IMPORT_BATCH]
                new_edges += await repo.insert_new_edges(batch)
                if progress:
                    progress(len(batch))
        return ImportResult(nodes=len(node_rows), edges=len(edge_rows), new_nodes=new_nodes, new_edges=new_edges)

    async def resolve_node(self, ref: str, *, namespace: str | None = None,
                           schema: str | None = None) -> NodeOut | None:
        """A node by id; with `namespace`, only a node of that namespace: by ``<namespace>:<ref>``,
        by id, or by name."""
        ref = required(ref, "node reference")
        namespace = self._namespace_filter(namespace, schema)
        async with self._session(schema) as s:
            repo = GraphRepository(s)
            if namespace is None:
                return await repo.get_node(ref)
            # Within a namespace: its imported id, then the id itself, then the name.
            for candidate in (await repo.get_node(f"{namespace}:{ref}"), await repo.get_node(ref)):
                if candidate is not None and candidate.namespace == namespace:
                    return candidate
            return await repo.find_node(namespace, ref)
