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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from . import export
from .errors import Conflict, DocumentError, InvalidInput, NodeNotFound
from .models import Document, Edge, Node, new_id
from .models.graph import CHUNK, DOCUMENT, ENTITY, HAS_CHUNK, NEXT_CHUNK
from .rag import SourceDocument, chunk_words, read_file, read_text
from .rag.chunking import DEFAULT_CHUNK_SIZE, DEFAULT_OVERLAP, MAX_CHUNK_SIZE
from .repositories import DocumentRepository, GraphRepository
from .sanitize import (
    NAME_BYTES, check_vector, clean_json, names, optional, required, similarity, truncate_bytes,
    whole_number,
)
from .schemas import (
    ChunkHit, Direction, DocumentOut, EdgeOut, GraphPath, ImportResult, IngestResult, NamespaceStats, NodeHit, NodeOut, NodePage, Traversal,
    TraversedNode,
)
from .sql import search as search_sql
from .sql.search import SEARCH_MODES
from .sql.traversal import MAX_DEPTH

if TYPE_CHECKING:
    from .database import Database

_DIRECTIONS = ("out", "in", "both")
MAX_LIMIT = 1000
MAX_NODES = 1_000_000
MAX_QUERY_WORDS = 256
"""Words of a query the full-text leg reads; longer queries would exhaust the tsquery parser."""
MAX_QUERY_BYTES = 1_000_000
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


def _limit(limit: int) -> int:
    return whole_number(limit, "limit", 1, MAX_LIMIT)


class Ops:
    def __init__(self, db: Database) -> None:
        self._db = db

    @asynccontextmanager
    async def _session(self, schema: str | None) -> AsyncIterator[AsyncSession]:
        async with self._db.session(schema) as session:
            yield session

    @asynccontextmanager
    async def _read(self, schema: str | None) -> AsyncIterator[AsyncSession]:
        """For an op that is one read-only statement (see :meth:`Database.read_session`)."""
        async with self._db.read_session(schema) as session:
            yield session

    async def _embed(self, texts: list[str]) -> list[list[float]]:
        embedder = self._db.embedder
        vectors = await asyncio.to_thread(embedder.embed, texts)
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
            "id": required(id, "id") if id is not None else new_id(),
            "namespace": required(namespace, "namespace"),
            "type": required(type, "type"),
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

    async def create_node(self, *, namespace: str, type: str, name: str, content: str | None = None,
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
        rows = []
        for i, node in enumerate(nodes):
            if not isinstance(node, dict):
                raise InvalidInput(f"nodes[{i}] must be a dict of node fields, got {builtins.type(node).__name__}")
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
        node_id = required(node_id, "node_id")
        async with self._session(schema) as s:
            return await GraphRepository(s).get_node(node_id)

    async def get_nodes_by_namespace(self, namespace: str, type: str | Sequence[str] | None = None, *,
                                     limit: int = 100, cursor: str | None = None,
                                     schema: str | None = None) -> NodePage:
        """A page of a namespace's nodes in creation order; pass ``next_cursor`` back for more."""
        namespace = required(namespace, "namespace")
        if cursor is not None:
            cursor = required(cursor, "cursor")
        async with self._session(schema) as s:
            items = await GraphRepository(s).list_nodes(namespace, names(type, "type"), _limit(limit) + 1, cursor)
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
        node_id = required(node_id, "node_id")
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
            node = await GraphRepository(s).update_node(node_id, values, merge)
        if node is None:
            raise NodeNotFound(f"no node {node_id!r} in this schema")
        return node

    async def delete_node(self, node_id: str, *, schema: str | None = None) -> bool:
        """Delete a node and its edges (a document also takes its chunks). True if it existed."""
        node_id = required(node_id, "node_id")
        async with self._session(schema) as s:
            return await GraphRepository(s).delete_nodes(Node.id == node_id) > 0

    async def delete_nodes_by_source(self, source_type: str, source_id: str, *,
                                     namespace: str | None = None, schema: str | None = None) -> int:
        """Delete the nodes derived from one source; returns how many nodes went."""
        conditions = [Node.source_type == required(source_type, "source_type"),
                      Node.source_id == required(source_id, "source_id", NAME_BYTES)]
        if namespace is not None:
            conditions.append(Node.namespace == required(namespace, "namespace"))
        async with self._session(schema) as s:
            return await GraphRepository(s).delete_nodes(*conditions)

    def _edge_values(self, source_id: str, target_id: str, type: str, data: dict[str, Any] | None = None,
                     weight: float | None = None) -> dict[str, Any]:
        if data is not None and not isinstance(data, dict):
            raise InvalidInput(f"edge data must be a dict, got {builtins.type(data).__name__}")
        if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float))
                                   or not math.isfinite(weight)):
            raise InvalidInput(f"weight must be a finite number, got {weight!r}")
        return {"id": new_id(), "source_id": required(source_id, "source_id"),
                "target_id": required(target_id, "target_id"), "type": required(type, "type"),
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
        edge_id = required(edge_id, "edge_id")
        async with self._session(schema) as s:
            return await GraphRepository(s).delete_edges(Edge.id == edge_id) > 0

    async def delete_edges_for_node(self, node_id: str, direction: Direction = "both",
                                    types: Sequence[str] | None = None, *, schema: str | None = None) -> int:
        _direction(direction)
        node_id = required(node_id, "node_id")
        async with self._session(schema) as s:
            return await GraphRepository(s).delete_edges(
                *GraphRepository.touching(node_id, direction, names(types, "types")))

    async def get_edges_for_node(self, node_id: str, direction: Direction = "both",
                                 types: Sequence[str] | None = None, *, schema: str | None = None) -> list[EdgeOut]:
        _direction(direction)
        node_id = required(node_id, "node_id")
        async with self._session(schema) as s:
            return await GraphRepository(s).edges_for_node(node_id, direction, names(types, "types"))

    async def traverse_graph(self, node_id: str, edge_types: Sequence[str] | None = None,
                             max_depth: int = 2, *, direction: Direction = "both",
                             max_nodes: int | None = None, namespace: str | None = None,
                             schema: str | None = None) -> Traversal:
        """Nodes within `max_depth` steps of `node_id` (one recursive CTE, cycle-safe); an
        unknown start node gives an empty result."""
        node_id = required(node_id, "node_id")
        whole_number(max_depth, "max_depth", 0, MAX_DEPTH)
        _direction(direction)
        if max_nodes is not None:
            whole_number(max_nodes, "max_nodes", 1, MAX_NODES)
        if namespace is not None:
            namespace = required(namespace, "namespace")
        async with self._read(schema) as s:
            return await GraphRepository(s).traverse(
                node_id, max_depth=max_depth, direction=direction,
                edge_types=names(edge_types, "edge_types"), max_nodes=max_nodes, namespace=namespace)

    async def shortest_path(self, source_id: str, target_id: str, edge_types: Sequence[str] | None = None,
                            max_depth: int = 6, *, direction: Direction = "both",
                            schema: str | None = None) -> GraphPath | None:
        """One shortest path from `source_id` to `target_id` within `max_depth` steps (one
        statement), or None. Among equally short paths, the one through the smallest ids."""
        source_id, target_id = required(source_id, "source_id"), required(target_id, "target_id")
        whole_number(max_depth, "max_depth", 0, MAX_DEPTH)
        _direction(direction)
        async with self._read(schema) as s:
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
        namespaces, types = names(namespace, "namespace"), names(type, "type")
        nearest = search_sql.nearest_nodes(vector, self._db.embedder.dimension, limit=seeds,
                                           namespaces=namespaces, types=types).subquery("nearest")
        async with self._session(schema) as s:
            repo = GraphRepository(s)
            await repo.prepare_vector_scan(seeds, bool(namespaces or types))
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
        start = walk.nodes[0].node
        return export.render(walk, format, title=f"{start.name} ({start.type}): {depth} steps {direction}")

    async def find_related_nodes(self, node_id: str, depth: int = 1, *,
                                 edge_types: Sequence[str] | None = None,
                                 schema: str | None = None) -> list[TraversedNode]:
        """Nodes within `depth` steps of `node_id` along edges in either direction (not itself)."""
        walked = await self.traverse_graph(node_id, edge_types, depth, direction="both", schema=schema)
        return [n for n in walked.nodes if n.depth > 0]

    async def search_nodes(self, query: str | None = None, *, embedding: Sequence[float] | None = None,
                           namespace: str | Sequence[str] | None = None,
                           type: str | Sequence[str] | None = None, limit: int = 10,
                           min_similarity: float | None = None, schema: str | None = None) -> list[NodeHit]:
        """Nodes nearest to a text (embedded with the schema's model) or a vector, by cosine."""
        vector = await self._query_vector(query, embedding)
        async with self._session(schema) as s:
            return await GraphRepository(s).nearest(
                vector, self._db.embedder.dimension, limit=_limit(limit),
                namespaces=names(namespace, "namespace"), types=names(type, "type"),
                min_similarity=similarity(min_similarity, "min_similarity"))

    async def import_edge_list(self, pairs: Iterable[tuple[str, str]], *, namespace: str,
                               edge_type: str = "RELATED_TO", node_type: str = ENTITY,
                               progress: Callable[[int], None] | None = None,
                               schema: str | None = None) -> ImportResult:
        """Load an edge list: a node per distinct id (id ``<namespace>:<token>``, name
        ``<token>``) and a directed edge per distinct pair, in one transaction; rows already
        there are kept. Returns the counts, in all and new."""
        namespace = required(namespace, "namespace")
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
        if namespace is not None:
            namespace = required(namespace, "namespace")
        async with self._session(schema) as s:
            repo = GraphRepository(s)
            if namespace is None:
                return await repo.get_node(ref)
            # Within a namespace: its imported id, then the id itself, then the name.
            for candidate in (await repo.get_node(f"{namespace}:{ref}"), await repo.get_node(ref)):
                if candidate is not None and candidate.namespace == namespace:
                    return candidate
            return await repo.find_node(namespace, ref)

    # -- documents -----------------------------------------------------------------------------
    async def create_document(self, source: str | Path | None = None, *, namespace: str,
                              content: str | None = None, title: str | None = None,
                              schema: str | None = None, **chunking: int) -> IngestResult:
        """Store and index a document: `source` is a file path (or ``text:...`` for raw text),
        or pass the text as `content=`."""
        if (source is None) == (content is None):
            raise InvalidInput("give exactly one of source= (a path, or 'text:...') or content=")
        if isinstance(source, str) and source.startswith("text:"):
            content, source = source[len("text:"):], None
        if content is not None:
            return await self.ingest_text(content, namespace=namespace, title=title, schema=schema, **chunking)
        return await self.ingest_file(source, namespace=namespace, schema=schema, **chunking)

    async def ingest_file(self, path: str | Path, *, namespace: str, schema: str | None = None,
                          **chunking: int) -> IngestResult:
        """Read, chunk, embed and store a text file (see :meth:`ingest_document`)."""
        source = await asyncio.to_thread(read_file, path)  # file reads must not stall the event loop
        return await self.ingest_document(source, namespace=namespace, schema=schema, **chunking)

    async def ingest_text(self, text: str, *, namespace: str, title: str | None = None,
                          source_uri: str | None = None, schema: str | None = None,
                          **chunking: int) -> IngestResult:
        return await self.ingest_document(read_text(text, title=title, source_uri=source_uri),
                                          namespace=namespace, schema=schema, **chunking)

    async def ingest_document(self, source: SourceDocument, *, namespace: str, schema: str | None = None,
                              chunk_size: int = DEFAULT_CHUNK_SIZE,
                              chunk_overlap: int = DEFAULT_OVERLAP) -> IngestResult:
        """Store a document node, its chunk nodes (embedded) and their HAS_CHUNK and NEXT_CHUNK
        edges in one transaction. The same content in the same namespace is stored once."""
        namespace = required(namespace, "namespace")
        whole_number(chunk_size, "chunk_size", 1, MAX_CHUNK_SIZE)
        whole_number(chunk_overlap, "chunk_overlap", 0, chunk_size - 1)
        try:
            spans = chunk_words(source.text, chunk_size, chunk_overlap)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        if source.source_uri is not None and len(source.source_uri.encode()) > NAME_BYTES:
            raise DocumentError(f"the source path is longer than {NAME_BYTES} bytes")
        content_hash = source.content_hash
        async with self._session(schema) as s:
            existing = await DocumentRepository(s).by_hash(namespace, content_hash)
        if existing is not None:
            return IngestResult(document=existing, created=False)

        vectors = await self._embed([span.text for span in spans])
        doc_id = new_id()
        document = Document(
            id=doc_id, namespace=namespace, name=truncate_bytes(source.title, NAME_BYTES), title=source.title,
            source_type="file" if source.source_uri else "text", source_id=source.source_uri,
            source_uri=source.source_uri, mime_type=source.mime_type, content_hash=content_hash,
            status="indexed", chunk_count=len(spans), data={"header": source.header} if source.header else {},
        )
        chunk_ids = [new_id() for _ in spans]
        chunks = [
            {"id": cid, "namespace": namespace, "type": CHUNK, "name": f"{source.title} #{i}",
             "content": span.text, "embedding": vec, "data": {}, "source_type": "document",
             "source_id": doc_id, "document_id": doc_id, "position": i, "start_char": span.start,
             "end_char": span.end, "token_count": span.token_count}
            for i, (cid, span, vec) in enumerate(zip(chunk_ids, spans, vectors))
        ]
        edges = [{"id": new_id(), "source_id": doc_id, "target_id": cid, "type": HAS_CHUNK, "data": {}}
                 for cid in chunk_ids]
        edges += [{"id": new_id(), "source_id": a, "target_id": b, "type": NEXT_CHUNK, "data": {}}
                  for a, b in zip(chunk_ids, chunk_ids[1:])]
        try:
            async with self._session(schema) as s:
                stored = await DocumentRepository(s).add(document, chunks, edges)
        except Conflict:
            # Another process stored the same content meanwhile: that copy is the document.
            async with self._session(schema) as s:
                existing = await DocumentRepository(s).by_hash(namespace, content_hash)
            if existing is None:
                raise
            return IngestResult(document=existing, created=False)
        return IngestResult(document=stored, created=True)

    async def get_document_by_id(self, document_id: str, *, schema: str | None = None) -> DocumentOut | None:
        document_id = required(document_id, "document_id")
        async with self._session(schema) as s:
            return await DocumentRepository(s).get(document_id)

    async def search_chunks(self, query: str | None = None, *, embedding: Sequence[float] | None = None,
                            namespace: str | Sequence[str] | None = None, limit: int = 5,
                            threshold: float | None = None, mode: str = "hybrid",
                            schema: str | None = None) -> list[ChunkHit]:
        """Chunks for a question, each with its document. ``mode``: ``hybrid`` (default: vector
        and full-text rankings fused), ``vector`` or ``text``. ``threshold`` is a minimum cosine
        similarity."""
        if mode not in SEARCH_MODES:
            raise InvalidInput(f"mode must be one of {SEARCH_MODES}, got {mode!r}")
        if mode != "vector" and query is None:
            raise InvalidInput(f"mode {mode!r} needs query= text; use mode='vector' to search by embedding alone")
        if mode == "text":
            if embedding is not None:
                raise InvalidInput("mode 'text' takes no embedding")
            vector = None
        else:
            vector = await self._query_vector(query if embedding is None else None, embedding)
        if query is not None:
            query = " ".join(required(query, "query", MAX_QUERY_BYTES).split()[:MAX_QUERY_WORDS])
        async with self._session(schema) as s:
            return await DocumentRepository(s).search_chunks(
                mode=mode, vector=vector, query=query, dimension=self._db.embedder.dimension,
                limit=_limit(limit), namespaces=names(namespace, "namespace"),
                min_similarity=similarity(threshold, "threshold"))

    async def get_namespace_stats(self, *, schema: str | None = None) -> list[NamespaceStats]:
        async with self._session(schema) as s:
            return await DocumentRepository(s).namespace_stats()
