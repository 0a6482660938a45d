"""Vector search statements, ordered by cosine distance ascending with a LIMIT so that the
schema's HNSW expression index (on ``embedding::vector(dim)``) serves them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    Float, Integer, Select, Text, bindparam, cast, func, literal_column, null, select, true, tuple_, union_all,
)
from sqlalchemy.dialects.postgresql import JSONB

from ..ddl import in_space
from ..models import Chunk, Document, Node
from . import terms
from .traversal import NODE_COLUMNS


def _distance(dimension: int, vector: list[float] | None = None):
    column = cast(Node.__table__.c.embedding, Vector(dimension))
    return column.cosine_distance(bindparam("query_vector", vector, type_=Vector(dimension)))


def nearest_nodes(vector: list[float], dimension: int, *, limit: int,
                  namespaces: Sequence[str] | None = None, types: Sequence[str] | None = None,
                  min_similarity: float | None = None) -> Select:
    distance = _distance(dimension, vector)
    stmt = select(*NODE_COLUMNS, (1 - distance).label("similarity")).where(in_space(Node.embedding, dimension))
    if namespaces:
        stmt = stmt.where(Node.namespace.in_(list(namespaces)))
    if types:
        stmt = stmt.where(Node.type.in_(list(types)))
    if min_similarity is not None:
        stmt = stmt.where(distance <= 1 - min_similarity)
    return stmt.order_by(distance).limit(limit)


DOCUMENT_FIELDS = ("id", "namespace", "title", "source_uri", "mime_type", "content_hash", "status",
                   "error", "chunk_count", "metadata")
SEARCH_MODES = ("hybrid", "vector", "text")
RRF_K = 60
VECTOR_WEIGHT, TEXT_WEIGHT = 1.0, 1.0
"""Default weights of the legs in the fusion: score = Σ weight / (RRF_K + rank)."""
"""Reciprocal rank fusion constant: a result's score is the sum over legs of 1 / (RRF_K + rank)."""
HYBRID_CANDIDATES = 100
"""Rows each leg of a hybrid search contributes: fixed, so that a larger `limit` extends the
ranking rather than reshuffling its head."""
HNSW_EF_SEARCH = 100
"""Candidates an HNSW scan keeps (pgvector's default is 40): on the PEP chunks' vectors, recall@10
against exact search is 0.877 at 40 and 0.976 at 100, for 0.2 ms more (benchmarks/bench_vector.py)."""


def candidates(mode: str, limit: int) -> int:
    return max(HYBRID_CANDIDATES, limit) if mode == "hybrid" else limit


SESSION_VECTOR_SETTINGS = {"hnsw.ef_search": str(HNSW_EF_SEARCH), "hnsw.iterative_scan": "strict_order"}
"""Set when our own connections start, so a search of up to HNSW_EF_SEARCH rows needs no
settings statement (and no transaction to scope one)."""


def needs_settings(rows: int, preset: bool) -> bool:
    return not preset or rows > HNSW_EF_SEARCH


def hnsw_settings(rows: int, filtered: bool) -> Select:
    """Settings for the next vector scan in this transaction.

    An HNSW scan yields at most ``hnsw.ef_search`` rows, so it is raised to the rows wanted; with
    filters, iterative scanning keeps going until enough rows pass them (pgvector >= 0.8)."""
    settings = [func.set_config("hnsw.ef_search", str(min(max(rows, HNSW_EF_SEARCH), 1000)), True)]
    if filtered:
        settings.append(func.set_config("hnsw.iterative_scan", "strict_order", True))
    return select(*settings)


BM25_K1, BM25_B = 1.2, 0.75
COMMON_SHARE = 0.2
"""A query word found in more than this share of the chunks does not pick candidates (it is in
most of them); it still counts, with its small IDF, in the score."""
TEXT_CANDIDATES = 1000
"""Chunks the text leg scores with BM25: those that best match the query's telling words."""


def _bm25_leg(query, leg_base, rows: int):
    """The text leg: chunks holding the query's words, ranked by BM25 over the same stemmed
    lexemes as PostgreSQL's full-text search. ts_rank has no IDF: a word found in most chunks
    ('use', 'function') would count as much as a telling one ('asyncio', 'pool'). One
    statement: document frequencies are counted per query word through the GIN index (capped,
    so a common word costs little), candidates are the chunks that best match the telling words
    (GIN again), and only those are scored."""
    chunk = Chunk.__table__
    words = (func.unnest(func.to_tsvector("english", query))
             .table_valued("lexeme", "positions", "weights").render_derived("q"))
    # Frequencies are counted among the chunks searched (namespaces, filters): a word common
    # elsewhere in the schema must not pick the candidates here.
    total = select(func.count()).select_from(leg_base(chunk.c.id).subquery("scope")).scalar_subquery()
    one_word = func.to_tsquery("simple", func.quote_literal(words.c.lexeme))
    cap = func.greatest(1, func.ceil(total * COMMON_SHARE) + 1)
    matching = (leg_base(literal_column("1"))
                .where(Node.__table__.c.search_text.bool_op("@@")(one_word))
                .limit(cap).correlate(words).subquery("matching"))
    terms = select(words.c.lexeme.label("lexeme"), select(func.count()).select_from(matching)
                   .scalar_subquery().label("df")).distinct().cte("query_terms")
    idf = func.ln(1 + (total - terms.c.df + 0.5) / (terms.c.df + 0.5))
    # Words no chunk holds pick nothing: a misspelt word must not leave the real ones unpicked.
    telling = select(terms.c.lexeme).where(terms.c.df > 0, terms.c.df <= total * COMMON_SHARE)
    picked = select(func.coalesce(
        select(func.string_agg(func.quote_literal(terms.c.lexeme), " | ")).where(terms.c.lexeme.in_(telling))
        .scalar_subquery(),
        select(func.string_agg(func.quote_literal(terms.c.lexeme), " | ")).where(terms.c.df > 0)
        .scalar_subquery()))
    candidate_query = func.to_tsquery("simple", func.coalesce(picked.scalar_subquery(), ""))
    candidates = (leg_base(Node.id.label("id"), Node.search_text.label("search_text"),
                           func.length(Node.search_text).label("dl"))
                  .where(Node.search_text.bool_op("@@")(candidate_query))
                  .order_by(func.ts_rank(Node.search_text, candidate_query).desc(), Node.id)
                  .limit(TEXT_CANDIDATES).cte("text_candidates"))
    avgdl = select(func.greatest(func.avg(candidates.c.dl), 1)).scalar_subquery()
    lexemes = (func.unnest(candidates.c.search_text).table_valued("lexeme", "positions", "weights")
               .render_derived("u").lateral())
    tf = func.coalesce(func.array_length(lexemes.c.positions, 1), 1)
    bm25 = func.sum(idf * tf * (BM25_K1 + 1)
                    / (tf + BM25_K1 * (1 - BM25_B + BM25_B * candidates.c.dl / avgdl)))
    return (select(candidates.c.id, bm25.label("text_rank"))
            .select_from(candidates).join(lexemes, true()).join(terms, terms.c.lexeme == lexemes.c.lexeme)
            .group_by(candidates.c.id).order_by(bm25.desc(), candidates.c.id).limit(rows).subquery("text_hits"))


def text_query(query: str):
    """The words of `query` (stemmed, stop words dropped) joined with OR: long or loose
    queries still match, and ts_rank_cd rewards chunks that hold more of them, closer together."""
    words = func.plainto_tsquery("english", query).cast(Text)
    return func.to_tsquery("english", func.replace(words, " & ", " | "))


DOCUMENT_FILTERS = ("document_ids", "mime_types", "source_uri_prefix", "metadata", "chunk_metadata")
"""Keys of `document_filters`: documents by id, by MIME type, by where they came from (a prefix
of the source URI), by JSON their metadata contains, and chunks by JSON their metadata contains
(e.g. ``{"heading_path": ["Installation"]}``)."""


def _filter_conditions(keys: tuple[str, ...]) -> list:
    """Conditions for the `document_filters` keys given, their values left as parameters
    (see :func:`_filter_params`)."""
    chunk, document = Chunk.__table__, Document.__table__
    conditions = []
    if "document_ids" in keys:
        conditions.append(chunk.c.document_id.in_(bindparam("document_ids", expanding=True)))
    if "mime_types" in keys:
        conditions.append(document.c.mime_type.in_(bindparam("mime_types", expanding=True)))
    if "source_uri_prefix" in keys:
        conditions.append(document.c.source_uri.like(bindparam("source_uri_like", type_=Text), escape="/"))
    if "metadata" in keys:
        conditions.append(document.c.metadata.contains(bindparam("document_metadata", type_=JSONB)))
    if "chunk_metadata" in keys:
        conditions.append(chunk.c.metadata.contains(bindparam("chunk_metadata", type_=JSONB)))
    return conditions


def _filter_params(filters: dict[str, Any]) -> dict[str, Any]:
    params = {k: list(filters[k]) for k in ("document_ids", "mime_types") if k in filters}
    if "source_uri_prefix" in filters:
        prefix = filters["source_uri_prefix"]
        params["source_uri_like"] = re.sub(r"([/%_])", r"/\1", prefix) + "%"
    if "metadata" in filters:
        params["document_metadata"] = filters["metadata"]
    if "chunk_metadata" in filters:
        params["chunk_metadata"] = filters["chunk_metadata"]
    return params


@lru_cache(maxsize=256)
def _search_statement(mode: str, dimension: int, scoped: bool, thresholded: bool, corrected: bool,
                      filter_keys: tuple[str, ...]) -> Select:
    """The search statement of one shape, every value a parameter: built and given its cache key
    once, so a search costs SQLAlchemy a cache lookup rather than a few milliseconds of building."""
    chunk, document, nodes = Chunk.__table__, Document.__table__, Node.__table__
    conditions = _filter_conditions(filter_keys)
    namespaces = bindparam("namespaces", expanding=True)

    def leg_base(*columns):
        stmt = select(*columns).join_from(nodes, chunk, chunk.c.id == nodes.c.id)
        if conditions:
            stmt = stmt.join(document, document.c.id == chunk.c.document_id).where(*conditions)
        return stmt.where(nodes.c.namespace.in_(namespaces)) if scoped else stmt

    leg_rows = bindparam("leg_rows", type_=Integer)
    legs = []
    if mode in ("vector", "hybrid"):
        distance = _distance(dimension)
        hits = leg_base(nodes.c.id, distance.label("distance")).where(in_space(nodes.c.embedding, dimension))
        if thresholded:
            hits = hits.where(distance <= 1 - bindparam("min_similarity", type_=Float))
        hits = hits.order_by(distance).limit(leg_rows).subquery("vector_hits")
        legs.append(select(hits.c.id, func.row_number().over(order_by=hits.c.distance).label("rank"),
                           bindparam("vector_weight", type_=Float).label("weight")))
    if mode in ("text", "hybrid"):
        text = (terms.corrected(bindparam("text_query", type_=Text), namespaces if scoped else None) if corrected
                else bindparam("text_query", type_=Text))
        hits = _bm25_leg(text, leg_base, leg_rows)
        legs.append(select(hits.c.id, func.row_number().over(
            order_by=(hits.c.text_rank.desc(), hits.c.id)).label("rank"),
            bindparam("text_weight", type_=Float).label("weight")))
    ranked = (union_all(*legs) if len(legs) > 1 else legs[0]).subquery("ranked")
    fused = (select(ranked.c.id, func.sum(ranked.c.weight / (RRF_K + ranked.c.rank)).label("score"))
             .group_by(ranked.c.id).order_by(literal_column("score").desc(), ranked.c.id)
             .limit(bindparam("limit", type_=Integer)).subquery("fused"))

    similarity = (1 - _distance(dimension)) if mode != "text" else null()
    doc_node = nodes.alias("doc_node")
    stmt = (
        select(fused.c.id.label("chunk_id"), nodes.c.content, chunk.c.position, chunk.c.start_char,
               chunk.c.end_char, chunk.c.metadata, fused.c.score, similarity.label("similarity"),
               *(document.c[f].label(f"doc_{f}") for f in DOCUMENT_FIELDS),
               doc_node.c.created_at.label("doc_created_at"), doc_node.c.updated_at.label("doc_updated_at"))
        .join_from(fused, nodes, nodes.c.id == fused.c.id)
        .join(chunk, chunk.c.id == fused.c.id)
        .join(document, document.c.id == chunk.c.document_id)
        .join(doc_node, doc_node.c.id == document.c.id)
        .order_by(fused.c.score.desc(), fused.c.id)
    )
    if thresholded and mode != "text":
        stmt = stmt.where(similarity >= bindparam("min_similarity", type_=Float))
    return stmt


def chunk_search(*, mode: str, limit: int, dimension: int, vector: list[float] | None = None,
                 query: str | None = None, namespaces: Sequence[str] | None = None,
                 min_similarity: float | None = None, document_filters: dict[str, Any] | None = None,
                 weights: tuple[float, float] = (VECTOR_WEIGHT, TEXT_WEIGHT)) -> tuple[Select, dict[str, Any]]:
    """(statement, parameters) of a chunk search: chunks ranked by vector distance, by BM25
    over the full-text lexemes, or by both fused with reciprocal rank fusion. Each leg is an
    ordered, limited scan (HNSW index, GIN index); the fusion and the joins to documents happen
    on the few rows the legs return."""
    filters = document_filters or {}
    corrected = mode != "vector" and terms.is_short(query or "")
    stmt = _search_statement(mode, dimension, bool(namespaces), min_similarity is not None, corrected,
                             tuple(k for k in DOCUMENT_FILTERS if k in filters))
    params: dict[str, Any] = {"limit": limit, "leg_rows": candidates(mode, limit),
                              "vector_weight": float(weights[0]), "text_weight": float(weights[1]),
                              **_filter_params(filters)}
    if namespaces:
        params["namespaces"] = list(namespaces)
    if mode != "text":
        params["query_vector"] = vector
    if mode != "vector":
        params["text_query"] = query
    if min_similarity is not None:
        params["min_similarity"] = min_similarity
    return stmt, params


def search_chunks(**options: Any) -> Select:
    """The statement of :func:`chunk_search` with its parameters bound (for EXPLAIN, say)."""
    stmt, params = chunk_search(**options)
    return stmt.params(params)


def neighbours(pairs: Sequence[tuple[str, int]]) -> Select:
    """The chunks at these (document id, position) places: a hit's neighbours along NEXT_CHUNK
    (consecutive positions are exactly the NEXT_CHUNK edges), through the unique index on them."""
    chunk = Chunk.__table__
    return (select(chunk.c.document_id, chunk.c.position, chunk.c.id, Node.content, chunk.c.start_char,
                   chunk.c.end_char)
            .join_from(chunk, Node.__table__, Node.id == chunk.c.id)
            .where(tuple_(chunk.c.document_id, chunk.c.position).in_(list(pairs))))
