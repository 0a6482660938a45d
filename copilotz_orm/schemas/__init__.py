"""Pydantic models at the API boundary (outputs built from ORM rows with from_attributes)."""

from __future__ import annotations

import gc
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

Direction = Literal["out", "in", "both"]

_Model = TypeVar("_Model", bound=BaseModel)


def parse_large(model: type[_Model], raw: str | bytes) -> _Model:
    """``model.model_validate_json(raw)`` with the cyclic garbage collector paused. A large
    result is tens of thousands of new objects, none of them in a reference cycle, yet each
    few hundred allocations start a collection that walks every young object again: on a walk
    of 2,300 nodes and 13,000 edges that made the parse 4x slower (174 against 43 ms). The
    collector is restarted only if it was running before."""
    if not gc.isenabled():
        return model.model_validate_json(raw)
    gc.disable()
    try:
        return model.model_validate_json(raw)
    finally:
        gc.enable()


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class NodeOut(_Out):
    id: str
    namespace: str
    type: str
    name: str
    content: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    source_type: str | None = None
    source_id: str | None = None
    created_at: datetime
    updated_at: datetime


class NodePage(BaseModel):
    items: list[NodeOut]
    next_cursor: str | None = None


class EdgeOut(_Out):
    id: str
    source_id: str
    target_id: str
    type: str
    data: dict[str, Any] = Field(default_factory=dict)
    weight: float | None = None
    created_at: datetime


class NodeHit(BaseModel):
    node: NodeOut
    similarity: float


class TraversedNode(BaseModel):
    node: NodeOut
    depth: int


class Traversal(BaseModel):
    """Nodes reached (each once, at its shortest depth) and the edges walked to reach them.
    ``start_id`` is the start node; a search-seeded walk has ``seeds`` instead."""

    start_id: str | None
    seeds: list[str] = Field(default_factory=list)
    nodes: list[TraversedNode]
    edges: list[EdgeOut]
    truncated: bool = False
    """True when ``max_nodes`` cut the walk short: more nodes are within ``max_depth``."""

    def node_ids(self) -> set[str]:
        return {n.node.id for n in self.nodes}


class GraphPath(BaseModel):
    """A shortest path: its nodes in order from source to target, and the edges between them."""

    nodes: list[NodeOut]
    edges: list[EdgeOut]

    @property
    def length(self) -> int:
        return len(self.edges)


class DocumentOut(_Out):
    id: str
    namespace: str
    title: str | None = None
    source_uri: str | None = None
    mime_type: str | None = None
    content_hash: str | None = None  # None for a file that failed before its content was read
    status: str
    error: str | None = None
    chunk_count: int
    # The ORM attribute is metadata_ (declarative classes own `metadata`); rows carry "metadata".
    metadata: dict[str, Any] | None = Field(None, validation_alias=AliasChoices("metadata_", "metadata"))
    created_at: datetime
    updated_at: datetime


class ChunkPart(BaseModel):
    """A chunk next to a hit (``search_chunks(expand=n)``)."""

    chunk_id: str
    position: int
    content: str
    start_char: int
    end_char: int


class ChunkHit(BaseModel):
    chunk_id: str
    content: str
    position: int
    start_char: int
    end_char: int
    metadata: dict[str, Any] = Field(default_factory=dict)  # from the chunker, e.g. heading_path
    score: float  # reciprocal rank fusion over the search legs: higher is better
    similarity: float | None  # cosine similarity to the query vector (None in text mode)
    document: DocumentOut
    before: list[ChunkPart] = Field(default_factory=list)  # with expand=n: up to n chunks before, in order
    after: list[ChunkPart] = Field(default_factory=list)  # and up to n after


class IngestResult(BaseModel):
    document: DocumentOut
    created: bool  # indexed by this call; False: the same content was already indexed here (or force_reindex)
    replaced: list[str] = Field(default_factory=list)  # ids of earlier versions of the same source, removed


class ImportResult(BaseModel):
    nodes: int
    edges: int
    new_nodes: int
    new_edges: int


class DocumentPage(BaseModel):
    items: list[DocumentOut]
    next_cursor: str | None = None


class NamespaceStats(BaseModel):
    namespace: str
    document_count: int  # indexed documents
    failed_count: int = 0  # documents that failed (their error is on the row: list_documents(status="failed"))
    in_progress_count: int = 0  # pending or processing
    chunk_count: int
    last_updated: datetime | None = None
