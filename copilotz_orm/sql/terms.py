"""The vocabulary of a namespace's chunks (``search_terms``), and the correction of a short
query's misspelt words against it by trigram similarity (pg_trgm).

Full-text search finds a word only as written (after stemming): ``asynco`` finds nothing. A
trigram index over the chunks themselves would answer that, but a similarity scan over every
chunk took 2.6–3.3 s on the PEP corpus; the vocabulary is a few tens of thousands of words, and
its GiST trigram index gives the nearest word in a millisecond.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import ColumnElement, Insert, and_, exists, func, select, true
from sqlalchemy.dialects.postgresql import insert

from ..models import Node, SearchTerm

MIN_TERM_CHARS, MAX_TERM_CHARS = 3, 32
"""Words kept in the vocabulary: shorter ones have too few trigrams to be matched, longer ones
are identifiers and hashes nobody misspells."""
MIN_CORRECTED_CHARS = 4
"""Query words shorter than this are never corrected."""
SHORT_QUERY_WORDS = 4
"""A query of at most this many words has its unknown words corrected; in a longer query the
other words carry it."""


def is_short(query: str) -> bool:
    return len(re.findall(r"\w+", query)) <= SHORT_QUERY_WORDS


def _words(text) -> ColumnElement:
    """The words of `text` as 'simple' text search reads them: lower-cased, not stemmed, stop words kept."""
    return func.unnest(func.tsvector_to_array(func.to_tsvector("simple", text)))


def add_terms(chunk_ids: Sequence[str]) -> Insert:
    """Add the words of these chunk nodes to their namespace's vocabulary. Words go in sorted,
    so two ingests adding the same words wait for each other instead of deadlocking."""
    nodes = Node.__table__
    word = _words(nodes.c.content).table_valued("word").render_derived("w")
    rows = (select(nodes.c.namespace, word.c.word).distinct()
            .select_from(nodes).join(word, true())
            .where(nodes.c.id.in_(list(chunk_ids)),
                   func.length(word.c.word).between(MIN_TERM_CHARS, MAX_TERM_CHARS))
            .order_by(word.c.word, nodes.c.namespace))
    return (insert(SearchTerm.__table__).from_select(["namespace", "term"], rows)
            .on_conflict_do_nothing())


def corrected(query: ColumnElement, namespaces: ColumnElement | None) -> ColumnElement:
    """`query`'s words (an SQL expression; `namespaces` an expanding parameter or None), each word that is not in the vocabulary replaced by the most similar one
    that is (trigram similarity at least pg_trgm's threshold, 0.3) and still occurs in a chunk
    (the vocabulary keeps words of deleted or changed chunks; they are never offered). Order and stop words
    do not matter to the text leg, which reads this as a bag of words."""
    terms, nodes = SearchTerm.__table__, Node.__table__
    word = _words(query).table_valued("word").render_derived("q")
    in_scope = (lambda column: column.in_(namespaces)) if namespaces is not None else (lambda column: true())
    def occurs(term) -> ColumnElement:  # in a chunk in scope, through the GIN index
        return exists().where(nodes.c.type == "chunk", in_scope(nodes.c.namespace),
                              nodes.c.search_text.bool_op("@@")(
                                  func.to_tsquery("english", func.quote_literal(term))))

    # A word is known if the vocabulary has it or a chunk holds it (one written by other means
    # than ingestion, say), so a rare but real word is never "corrected" away.
    known = (exists().where(terms.c.term == word.c.word, in_scope(terms.c.namespace)).correlate(word)
             | occurs(word.c.word).correlate(word))
    live = occurs(terms.c.term)
    nearest = (select(terms.c.term)
               .where(terms.c.term.bool_op("%")(word.c.word), in_scope(terms.c.namespace), live)
               .order_by(terms.c.term.op("<->", return_type=terms.c.term.type)(word.c.word))
               .limit(1).correlate(word).scalar_subquery())
    fixed = func.coalesce(nearest, word.c.word)
    choice = select(func.string_agg(
        func.coalesce(
            select(fixed).where(and_(func.length(word.c.word) >= MIN_CORRECTED_CHARS, ~known))
            .correlate(word).scalar_subquery(),
            word.c.word), " ")).select_from(word)
    return func.coalesce(choice.scalar_subquery(), "")
