"""The document and retrieval operations of the ops facade (mixed into :class:`copilotz_orm.ops.Ops`).

A document goes ``processing`` (committed, so other sessions can see the work in progress) →
``indexed`` (its chunk nodes, embeddings and edges stored in one transaction) or ``failed`` (the
error kept on the row). ``pending`` is for documents created but not yet processed, e.g. by a
caller's queue (:meth:`DocumentOps.update_document_status`).
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select

from .errors import Conflict, DocumentError, InvalidInput, NotFound
from .models import Chunk, Document, Node, new_id
from .models.documents import DOCUMENT_STATUSES
from .models.graph import CHUNK, HAS_CHUNK, NEXT_CHUNK
from .rag import SourceDocument, chunk_text, read_file, read_text
from .rag.reading import read_bytes, source_path, text_type
from .rag.chunking import DEFAULT_CHUNK_SIZE, DEFAULT_OVERLAP, STRATEGIES
from .repositories import DocumentRepository, GraphRepository
from .sanitize import (
    identifier, NAME_BYTES, clean_json, flag, clean_text, names, optional, page_limit, required, similarity, truncate_bytes, whole_number,
)
from .schemas import ChunkHit, DocumentOut, DocumentPage, IngestResult, NamespaceStats
from .sql import search as search_sql
from .sql.search import DOCUMENT_FILTERS, SEARCH_MODES, TEXT_WEIGHT, VECTOR_WEIGHT

if TYPE_CHECKING:
    from .ops import Ops

_AUTO_CHUNKING = {"text/x-rst": "rst", "text/markdown": "markdown"}
MAX_QUERY_WORDS = 256
"""Words of a query the full-text leg reads; longer queries would exhaust the tsquery parser."""
MAX_QUERY_BYTES = 1_000_000
MAX_ERROR_CHARS = 4000
MAX_EXPAND = 10


class DocumentOps:
    """Documents: ingest, look up, list, re-index, delete; chunk search and statistics."""

    # -- ingest --------------------------------------------------------------------------------
    async def create_document(self: Ops, source: str | Path | None = None, *, namespace: str | None = None,
                              content: str | bytes | None = None, mime_type: str | None = None,
                              title: str | None = None, schema: str | None = None,
                              **options: Any) -> IngestResult:
        """Store and index a document: `source` is a file path (or ``text:...`` for raw text),
        or pass the text as `content=` (bytes with their `mime_type=`, e.g. ``text/html``).
        Options as for :meth:`ingest_document`."""
        if (source is None) == (content is None):
            raise InvalidInput("give exactly one of source= (a path, or 'text:...') or content=")
        if isinstance(source, str) and source.startswith("text:"):
            content, source = source[len("text:"):], None
        if isinstance(content, (bytes, bytearray, memoryview)):
            if mime_type is None:
                raise InvalidInput("content is bytes: give its mime_type= (text/plain, text/markdown, "
                                   "text/x-rst or text/html)")
            return await self.ingest_document(read_bytes(content, mime_type, title=title), namespace=namespace,
                                              schema=schema, **options)
        if mime_type is not None and content is not None:
            mime_type, _ = text_type(mime_type)  # str content: its charset is moot
            return await self.ingest_document(read_text(content, title=title, mime_type=mime_type),
                                              namespace=namespace, schema=schema, **options)
        if content is not None:
            return await self.ingest_text(content, namespace=namespace, title=title, schema=schema, **options)
        return await self.ingest_file(source, namespace=namespace, schema=schema, **options)

    async def ingest_file(self: Ops, path: str | Path, *, namespace: str | None = None,
                          schema: str | None = None, **options: Any) -> IngestResult:
        """Read, chunk, embed and store a text file (see :meth:`ingest_document`). A file that
        exists but cannot be ingested (empty, binary, not UTF-8, unreadable) is recorded as a
        ``failed`` document with the reason, and :class:`DocumentError` is raised."""
        namespace = self._namespace(namespace, schema)
        try:
            source = await asyncio.to_thread(read_file, path)  # file reads must not stall the event loop
        except DocumentError as exc:
            if isinstance(path, (str, Path)) and await asyncio.to_thread(os.path.isfile, path):
                await self._record_failure(Path(path), namespace, schema, str(exc))
            raise
        return await self.ingest_document(source, namespace=namespace, schema=schema, **options)

    async def ingest_text(self: Ops, text: str, *, namespace: str | None = None, title: str | None = None,
                          source_uri: str | None = None, schema: str | None = None,
                          **options: Any) -> IngestResult:
        return await self.ingest_document(read_text(text, title=title, source_uri=source_uri),
                                          namespace=namespace, schema=schema, **options)

    async def ingest_document(self: Ops, source: SourceDocument, *, namespace: str | None = None,
                              schema: str | None = None, chunking: str = "fixed",
                              chunk_size: int = DEFAULT_CHUNK_SIZE, chunk_overlap: int | None = None,
                              force_reindex: bool = False, metadata: dict[str, Any] | None = None) -> IngestResult:
        """Store a document node, its chunk nodes (embedded) and their HAS_CHUNK and NEXT_CHUNK
        edges. The same content in the same namespace is indexed once (``created=False`` after
        that) unless ``force_reindex=True``, which replaces its chunks. A new version of the same
        source (a file that changed) replaces the earlier ones (``replaced``). `chunking` is a
        strategy of :func:`copilotz_orm.rag.chunk_text`, or ``auto`` (``rst`` for
        reStructuredText, ``markdown`` for Markdown, ``paragraph`` otherwise)."""
        namespace = self._namespace(namespace, schema)
        strategy = _AUTO_CHUNKING.get(source.mime_type, "paragraph") if chunking == "auto" else chunking
        if strategy not in STRATEGIES:
            raise InvalidInput(f"chunking must be 'auto' or one of {STRATEGIES}, got {chunking!r}")
        flag(force_reindex, "force_reindex")
        if metadata is not None and not isinstance(metadata, dict):
            raise InvalidInput(f"metadata must be a dict (JSON object) or None, got {type(metadata).__name__}")
        metadata = clean_json(metadata, "metadata") if metadata is not None else None
        if chunk_overlap is None:  # the default, shrunk for small chunks
            chunk_overlap = min(DEFAULT_OVERLAP, chunk_size // 5) if isinstance(chunk_size, int) else DEFAULT_OVERLAP
        spans = chunk_text(source.text, strategy, size=chunk_size, overlap=chunk_overlap)
        if source.source_uri is not None and len(source.source_uri.encode()) > NAME_BYTES:
            raise DocumentError(f"the source path is longer than {NAME_BYTES} bytes")

        # 1. Claim the document: a row in `processing`, committed, so the work is visible.
        async with self._session(schema) as s:
            repo = DocumentRepository(s)
            existing = await repo.by_hash(namespace, source.content_hash)
            if existing is not None and existing.status == "indexed" and not force_reindex:
                released = []
                if source.source_uri and source.source_uri != existing.source_uri:
                    # Another file with this content: the document is its too, and what this
                    # file held before (if anything) is let go.
                    if await repo.lock([existing.id]):
                        await repo.add_source(existing.id, source.source_uri)
                    released = await _release(s, namespace, source.source_uri, keep=existing.id)
                return IngestResult(document=existing, created=False, replaced=released)
            earlier = ([i for i, _, _ in await repo.holders(namespace, source.source_uri)]
                       if source.source_uri else [])
            if existing is None:
                doc_id = new_id()
                try:
                    await repo.add_document(Document(
                        id=doc_id, namespace=namespace, name=truncate_bytes(source.title, NAME_BYTES),
                        title=source.title, source_type="file" if source.source_uri else "text",
                        source_id=source.source_uri, source_uri=source.source_uri, mime_type=source.mime_type,
                        content_hash=source.content_hash, status="processing", chunk_count=0,
                        metadata_=metadata, data={"header": source.header} if source.header else {}))
                except Conflict:
                    existing = None  # stored by another process meanwhile: see below
                    doc_id = None
            else:
                doc_id = existing.id
                status = await repo.locked_statuses([doc_id])  # waits for a call storing its chunks now
                if status.get(doc_id) == "indexed" and not force_reindex:
                    return IngestResult(document=await repo.get(doc_id), created=False)
                if not status:
                    raise Conflict(f"document {doc_id} was deleted while this call looked it up; ingest it again")
                await repo.set_status(doc_id, "processing", None, locked=True)
        if doc_id is None:
            async with self._session(schema) as s:
                winner = await DocumentRepository(s).by_hash(namespace, source.content_hash)
            if winner is None:
                raise Conflict("the same document was stored and removed concurrently; ingest it again")
            return IngestResult(document=winner, created=False)
        earlier = [i for i in earlier if i != doc_id]

        # 2. Embed, then store the chunks and finish the row in one transaction.
        try:
            vectors = await self._embed([_embedding_text(source.title, span) for span in spans])
            chunk_ids = [new_id() for _ in spans]
            chunks = [
                {"id": cid, "namespace": namespace, "type": CHUNK, "name": f"{source.title} #{i}",
                 "content": span.text, "embedding": vec, "data": {}, "source_type": "document",
                 "source_id": doc_id, "document_id": doc_id, "position": i, "start_char": span.start,
                 "end_char": span.end, "token_count": span.token_count, "metadata_": dict(span.metadata)}
                for i, (cid, span, vec) in enumerate(zip(chunk_ids, spans, vectors))
            ]
            edges = [{"id": new_id(), "source_id": doc_id, "target_id": cid, "type": HAS_CHUNK, "data": {}}
                     for cid in chunk_ids]
            edges += [{"id": new_id(), "source_id": a, "target_id": b, "type": NEXT_CHUNK, "data": {}}
                      for a, b in zip(chunk_ids, chunk_ids[1:])]
            async with self._session(schema) as s:
                repo, graph = DocumentRepository(s), GraphRepository(s)
                # Locked, another call on the same document (or deleting it) waits for this one.
                status = await repo.locked_statuses([doc_id, *earlier])
                if doc_id not in status:
                    raise Conflict(f"document {doc_id} was deleted while it was being ingested; ingest it again")
                if status[doc_id] == "indexed" and not force_reindex:
                    # Another call indexed the same content while this one was embedding.
                    return IngestResult(document=await repo.get(doc_id), created=False)
                # Earlier versions of this source go, with their chunks and edges, unless another
                # source has the same content: then they only stop being this source's.
                earlier = await _release(s, namespace, source.source_uri, keep=doc_id) if earlier else []
                if existing is not None:  # re-indexing: its old chunks go
                    await graph.delete_nodes(Node.id.in_(_chunk_ids_of(doc_id)))
                stored = await repo.finish(doc_id, chunks, edges, metadata)
        except Exception as exc:
            await self._mark_failed(doc_id, schema, exc)
            raise
        # created: indexed by this call (a retried failure counts); a forced re-index is not new
        return IngestResult(document=stored, created=existing is None or existing.status != "indexed",
                            replaced=earlier)

    async def _mark_failed(self: Ops, doc_id: str, schema: str | None, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        try:
            async with self._session(schema) as s:
                await DocumentRepository(s).set_status(doc_id, "failed", clean_text(reason))
        except Exception:  # the original error matters more than this bookkeeping
            pass

    async def _record_failure(self: Ops, path: Path, namespace: str, schema: str | None, reason: str) -> None:
        """Keep a `failed` document for a file that could not be read, unless the source already
        has a document (an indexed earlier version stays searchable; a failed one gets the new reason)."""
        source_uri = source_path(path)
        if len(source_uri.encode()) > NAME_BYTES:
            return
        reason = clean_text(reason)[:MAX_ERROR_CHARS]
        async with self._session(schema) as s:
            repo = DocumentRepository(s)
            known = await repo.by_source(namespace, source_uri)
            if any(d.status != "failed" for d in known):
                return
            if known:
                await repo.set_status(known[-1].id, "failed", reason)
                return
            title = truncate_bytes(clean_text(path.name) or source_uri, NAME_BYTES)
            await repo.add_document(Document(
                id=new_id(), namespace=namespace, name=title, title=title, source_type="file",
                source_id=source_uri, source_uri=source_uri, content_hash=None, status="failed",
                error=reason, chunk_count=0, data={}))

    # -- look up, list, change, delete ----------------------------------------------------------
    async def get_document_by_id(self: Ops, document_id: str, *, schema: str | None = None) -> DocumentOut | None:
        document_id = identifier(document_id, "document_id")
        async with self._session(schema) as s:
            return await DocumentRepository(s).get(document_id)

    async def get_document_by_hash(self: Ops, content_hash: str, *, namespace: str | None = None,
                                   schema: str | None = None) -> DocumentOut | None:
        """The document of a namespace whose processed text has this SHA-256 (hex)."""
        content_hash = required(content_hash, "content_hash").lower()
        namespace = self._namespace(namespace, schema)
        async with self._session(schema) as s:
            return await DocumentRepository(s).by_hash(namespace, content_hash)

    async def list_documents(self: Ops, namespace: str | None = None, status: str | Sequence[str] | None = None,
                             *, limit: int = 100, cursor: str | None = None,
                             schema: str | None = None) -> DocumentPage:
        """A page of documents (all namespaces unless one is given or bound), optionally only
        those in `status`; pass ``next_cursor`` back for more."""
        namespace = self._namespace_filter(namespace, schema)
        statuses = names(status, "status")
        for value in statuses or ():
            if value not in DOCUMENT_STATUSES:
                raise InvalidInput(f"status must be one of {DOCUMENT_STATUSES}, got {value!r}")
        if cursor is not None:
            cursor = required(cursor, "cursor")
        limit = page_limit(limit)
        async with self._session(schema) as s:
            items = await DocumentRepository(s).list(namespace, statuses, limit + 1, cursor)
        more = len(items) > limit
        items = items[:limit]
        return DocumentPage(items=items, next_cursor=items[-1].id if more else None)

    async def update_document_status(self: Ops, document_id: str, status: str, *, error: str | None = None,
                                     schema: str | None = None) -> DocumentOut:
        """Set a document's status (and error, which is cleared unless given)."""
        document_id = identifier(document_id, "document_id")
        if status not in DOCUMENT_STATUSES:
            raise InvalidInput(f"status must be one of {DOCUMENT_STATUSES}, got {status!r}")
        error = None if error is None else optional(error, "error")
        async with self._session(schema) as s:
            doc = await DocumentRepository(s).set_status(document_id, status, error)
        if doc is None:
            raise NotFound(f"no document {document_id!r} in this schema")
        return doc

    async def delete_document(self: Ops, document_id: str, *, schema: str | None = None) -> bool:
        """Delete a document, its chunks, their nodes and every edge touching them (one
        statement, after locking the document). True if it existed."""
        document_id = identifier(document_id, "document_id")
        async with self._session(schema) as s:
            # Locked first, so an ingest of this document in progress finishes (or waits) and
            # the delete below sees every chunk it stored.
            if not await DocumentRepository(s).lock([document_id]):
                return False
            return await GraphRepository(s).delete_nodes(
                Node.id == document_id, Node.id.in_(_document_ids())) > 0

    # -- search --------------------------------------------------------------------------------
    async def search_chunks(self: Ops, query: str | None = None, *, embedding: Sequence[float] | None = None,
                            namespace: str | Sequence[str] | None = None, limit: int = 5,
                            threshold: float | None = None, mode: str = "hybrid",
                            document_filters: dict[str, Any] | None = None, expand: int = 0,
                            weights: tuple[float, float] | None = None,
                            schema: str | None = None) -> list[ChunkHit]:
        """Chunks for a question, each with its document. ``mode``: ``hybrid`` (default: vector
        and full-text rankings fused), ``vector`` or ``text``. ``threshold`` is a minimum cosine
        similarity. ``document_filters`` narrows the search (keys: ``document_ids``,
        ``mime_types``, ``source_uri_prefix``, ``metadata``, ``chunk_metadata``, see
        :data:`copilotz_orm.sql.search.DOCUMENT_FILTERS`). ``expand=n`` adds the n chunks before
        and after each hit (``hit.before``, ``hit.after``). ``weights=(vector, text)`` weighs the
        legs in the hybrid fusion (default equal)."""
        filters = _document_filters(document_filters)
        fusion = _weights(weights)
        expand = whole_number(expand, "expand", 0, MAX_EXPAND)
        if mode not in SEARCH_MODES:
            raise InvalidInput(f"mode must be one of {SEARCH_MODES}, got {mode!r}")
        namespaces = self._namespaces(namespace, schema)
        if mode != "vector" and query is None:
            raise InvalidInput(f"mode {mode!r} needs query= text; use mode='vector' to search by embedding alone")
        if weights is not None and mode != "hybrid":
            raise InvalidInput(f"weights= weigh the two legs of a hybrid search; mode {mode!r} has one leg")
        if mode == "text":
            if embedding is not None:
                raise InvalidInput("mode 'text' takes no embedding")
            if threshold is not None:
                raise InvalidInput("threshold= is a minimum cosine similarity, which text mode does not "
                                   "compute: use mode='vector' or 'hybrid', or drop the threshold")
            vector = None
        else:
            vector = await self._query_vector(query if embedding is None else None, embedding)
        if query is not None:
            query = " ".join(required(query, "query", MAX_QUERY_BYTES).split()[:MAX_QUERY_WORDS])
        limit = page_limit(limit)
        preset = self._db.vector_settings_preset
        # With the scan settings already on our connections, the search is one read-only
        # statement (two with expand): no transaction around it.
        one_read = not search_sql.needs_settings(search_sql.candidates(mode, limit), preset)
        async with self._session(schema, one_read=one_read) as s:
            return await DocumentRepository(s).search_chunks(
                preset=preset,
                mode=mode, vector=vector, query=query, dimension=self._db.embedder.dimension,
                limit=limit, namespaces=namespaces,
                min_similarity=similarity(threshold, "threshold"), document_filters=filters, expand=expand,
                weights=fusion)

    async def get_namespace_stats(self: Ops, *, schema: str | None = None) -> list[NamespaceStats]:
        """Per namespace (only the scope's, when one is bound): documents, chunks, last update."""
        async with self._session(schema) as s:
            return await DocumentRepository(s).namespace_stats(self._scope_of(schema).namespace)


def _weights(weights: Any) -> tuple[float, float]:
    if weights is None:
        return (VECTOR_WEIGHT, TEXT_WEIGHT)
    if (not isinstance(weights, (tuple, list)) or len(weights) != 2
            or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w >= 0
                       for w in weights) or not any(weights)):
        raise InvalidInput(f"weights must be (vector, text): two numbers >= 0, not both 0; got {weights!r}")
    return float(weights[0]), float(weights[1])


def _embedding_text(title: str, span) -> str:
    """What a chunk's vector is made from: the chunk, after its document's title and its heading
    path. Most chunks never name what they belong to ("Constants are usually defined on a module
    level..." is PEP 8's, which only its first chunk says); the stored content stays the span."""
    context = " > ".join([title, *span.metadata.get("heading_path", ())])
    return f"{context}\n\n{span.text}"


def _document_filters(filters: Any) -> dict[str, Any] | None:
    """`document_filters`, checked (unknown keys and wrong types are refused, not ignored)."""
    if filters is None:
        return None
    if not isinstance(filters, dict):
        raise InvalidInput(f"document_filters must be a dict, got {type(filters).__name__}")
    unknown = sorted(str(k) for k in filters if k not in DOCUMENT_FILTERS)
    if unknown:
        raise InvalidInput(f"unknown document_filters key(s) {', '.join(unknown)}; use {', '.join(DOCUMENT_FILTERS)}")
    checked: dict[str, Any] = {}
    for key, value in filters.items():
        if key in ("document_ids", "mime_types"):
            checked[key] = names(value, key)
            if not checked[key]:
                raise InvalidInput(f"document_filters[{key!r}] is empty: name at least one, or leave the key out")
        elif key == "source_uri_prefix":
            checked[key] = required(value, key, NAME_BYTES)
        else:
            if not isinstance(value, dict):
                raise InvalidInput(f"document_filters[{key!r}] must be a dict (JSON the metadata must contain)")
            checked[key] = clean_json(value)
    return checked


async def _release(session, namespace: str, source_uri: str, keep: str) -> list[str]:
    """Let go of what `source_uri` held before, other than document `keep`: documents held for
    it alone are deleted (their ids returned); documents other sources share lose it only."""
    repo = DocumentRepository(session)
    holders = [h for h in await repo.holders(namespace, source_uri) if h[0] != keep]
    if not holders:
        return []
    locked = await repo.lock([h[0] for h in holders])
    doomed = []
    for doc_id, primary, others in holders:
        if doc_id not in locked:
            continue
        if {primary, *others} - {source_uri, None}:
            await repo.drop_source(doc_id, source_uri, primary, others)
        else:
            doomed.append(doc_id)
    if doomed:
        await GraphRepository(session).delete_nodes(Node.id.in_(doomed))
    return doomed


def _chunk_ids_of(document_id: str) -> Select:
    return select(Chunk.__table__.c.id).where(Chunk.__table__.c.document_id == document_id)


def _document_ids() -> Select:
    return select(Document.__table__.c.id)
