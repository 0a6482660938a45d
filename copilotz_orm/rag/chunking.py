"""Chunking with exact character offsets: ``text[span.start:span.end] == span.text``.

One entry point, :func:`chunk_text`, with five strategies (see :data:`STRATEGIES`).

**Tokens.** Sizes and overlaps are counted in *tokens*, defined on the text itself (no model
tokenizer is loaded):

- whitespace (anything ``str.isspace`` accepts) separates tokens and is never part of one;
- every CJK character (Han ideographs, kana, CJK symbols and punctuation, full-width forms) is a
  token by itself, as BERT-style tokenizers treat them, so Chinese or Japanese text without spaces
  still chunks into pieces of ``size`` characters;
- any other run of non-whitespace characters is one token, except that a run longer than
  :data:`MAX_TOKEN_CHARS` characters is cut every ``MAX_TOKEN_CHARS`` characters (so a 5 MB string
  without whitespace becomes many chunks of at most ``size * MAX_TOKEN_CHARS`` characters).

For ordinary text a token is therefore a whitespace-separated word, as before.

**Invariants** (for every strategy, tested): ``text[span.start:span.end] == span.text``; spans are
in order (starts non-decreasing and ends increasing); a span starts at the first character of a
token and ends after the last character of a token, so it never begins or ends with whitespace;
``span.token_count`` is the number of tokens in the span and never exceeds ``size``; every token
(so every non-whitespace character) is in at least one span; no span is empty; empty or
whitespace-only text gives no spans. Time is linear in the length of the text.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..errors import InvalidInput

DEFAULT_CHUNK_SIZE = 160
"""Tokens per chunk. all-MiniLM-L6-v2 reads at most 256 word pieces; 160 words stay under it."""
DEFAULT_OVERLAP = 32
"""Tokens shared by consecutive chunks (see each strategy for how overlap is applied)."""
MAX_CHUNK_SIZE = 2000
"""Largest accepted ``size``, in tokens (a chunk is at most ``2000 * MAX_TOKEN_CHARS`` characters)."""
MAX_TOKEN_CHARS = 32
"""Longest token, in characters: longer runs of non-whitespace are cut into tokens of this length."""

STRATEGIES = ("fixed", "paragraph", "sentence", "markdown", "rst")
"""Names accepted by :func:`chunk_text`."""


@dataclass(frozen=True)
class Span:
    """A chunk: ``text == document_text[start:end]`` and ``token_count`` tokens.

    ``metadata`` is a plain, JSON-serialisable dict (treat it as read-only). The ``markdown`` and
    ``rst`` strategies put the titles of the enclosing sections in ``metadata["heading_path"]``,
    outermost first (``[]`` before the first heading); other strategies leave it empty.
    """

    start: int
    end: int
    text: str
    token_count: int
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False)


# -- tokens ---------------------------------------------------------------------------------------
_CJK = ("\u2e80-\u2fdf\u3001-\u303f\u3040-\u30ff\u3100-\u312f\u3190-\u31ff\u3400-\u4dbf"
        "\u4e00-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef\U00020000-\U0003ffff")
# A match is either a run of CJK characters (one token per character) or one other token.
_PIECE = re.compile(rf"([{_CJK}]+)|[^\s{_CJK}]{{1,{MAX_TOKEN_CHARS}}}")


class _Tokens:
    """Token positions of a text, stored per *piece* (a CJK run holds one token per character)."""

    def __init__(self, text: str) -> None:
        starts: list[int] = []
        ends: list[int] = []
        cum: list[int] = [0]  # tokens before each piece
        cjk: set[int] = set()  # indices of CJK pieces
        count = 0
        if _HAS_CJK.search(text) is None:  # fast path: one token per piece
            spans = [m.span() for m in _PIECE.finditer(text)]
            starts = [s for s, _ in spans]
            ends = [e for _, e in spans]
            count = len(spans)
            self._simple = True
        else:
            self._simple = False
            for k, m in enumerate(_PIECE.finditer(text)):
                s, e = m.span()
                starts.append(s)
                ends.append(e)
                if m.lastindex:
                    cjk.add(k)
                    count += e - s
                else:
                    count += 1
                cum.append(count)
        self.starts, self.ends, self.cum, self.cjk = starts, ends, cum, cjk
        self.count = count

    def _piece(self, t: int) -> int:
        return t if self._simple else bisect_right(self.cum, t) - 1

    def start(self, t: int) -> int:
        """Offset of the first character of token ``t``."""
        k = self._piece(t)
        return self.starts[k] if k not in self.cjk else self.starts[k] + t - self.cum[k]

    def end(self, t: int) -> int:
        """Offset just after the last character of token ``t``."""
        k = self._piece(t)
        return self.ends[k] if k not in self.cjk else self.starts[k] + t - self.cum[k] + 1

    def at(self, pos: int) -> int:
        """Index of the first token that starts at or after character offset ``pos``."""
        k = bisect_right(self.ends, pos)  # first piece ending after pos
        if k == len(self.starts):
            return self.count
        first = k if self._simple else self.cum[k]
        if self.starts[k] >= pos:
            return first
        return first + (pos - self.starts[k] if k in self.cjk else 1)


_HAS_CJK = re.compile(f"[{_CJK}]")


# -- validation -----------------------------------------------------------------------------------
def _check(text: Any, strategy: Any, size: Any, overlap: Any) -> None:
    if not isinstance(text, str):
        raise InvalidInput(f"the text to chunk must be a string, got {type(text).__name__}")
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise InvalidInput(f"unknown chunking strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_CHUNK_SIZE:
        raise InvalidInput(f"chunk size must be a whole number of tokens from 1 to {MAX_CHUNK_SIZE}, "
                           f"got {size!r}: pass a size in that range")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < size:
        raise InvalidInput(f"chunk overlap must be a whole number of tokens from 0 to {size - 1} (below "
                           f"the chunk size {size}), got {overlap!r}: lower the overlap or raise the size")


# -- units and packing (all in token indices) -----------------------------------------------------
def _windows(lo: int, hi: int, size: int, overlap: int) -> Iterator[tuple[int, int]]:
    """Token ranges of ``size`` tokens over [lo, hi), each starting ``size - overlap`` after the last."""
    step = size - overlap
    for first in range(lo, hi, step):
        yield first, min(first + size, hi)
        if first + size >= hi:
            return


def _pack(bounds: list[int], size: int, overlap: int) -> Iterator[tuple[int, int]]:
    """Pack consecutive units ``[bounds[i], bounds[i+1])`` greedily up to ``size`` tokens.

    The next chunk starts with the trailing whole units of the previous one that total at most
    ``overlap`` tokens (possibly none). A unit longer than ``size`` is cut by :func:`_windows`
    into chunks of its own (no units carried into or out of it).
    """
    first = 0  # index of the first unit of the current chunk
    last = 0  # units [first, last) are in the current chunk
    fresh = False  # the current chunk holds a unit not emitted yet
    for i in range(len(bounds) - 1):
        lo, hi = bounds[i], bounds[i + 1]
        if hi - lo > size:
            if fresh:
                yield bounds[first], bounds[last]
            yield from _windows(lo, hi, size, overlap)
            first = last = i + 1
            fresh = False
            continue
        if hi - bounds[first] > size:
            if fresh:
                yield bounds[first], bounds[last]
            carried = last  # carry the trailing units that total at most `overlap` tokens
            while carried > first and bounds[last] - bounds[carried - 1] <= overlap:
                carried -= 1
            while carried < last and hi - bounds[carried] > size:  # they and this unit must fit
                carried += 1
            first = carried
        last = i + 1
        fresh = True
    if fresh:
        yield bounds[first], bounds[last]


def _bounds(tokens: _Tokens, positions: Iterator[int], lo: int = 0, hi: int | None = None) -> list[int]:
    """Sorted unit boundaries (token indices, from ``lo`` to ``hi``) at the given character offsets."""
    hi = tokens.count if hi is None else hi
    out = [lo]
    for pos in positions:
        t = tokens.at(pos)
        if out[-1] < t < hi:
            out.append(t)
    out.append(hi)
    return out


# Atomic groups: "\r\n" is one line break, never "\r" then "\n".
_BLANK_LINES = re.compile(r"(?>\r\n|\r|\n)(?:[^\S\r\n]*(?>\r\n|\r|\n))+")


def _paragraph_starts(text: str) -> Iterator[int]:
    return (m.end() for m in _BLANK_LINES.finditer(text))


# A sentence ends at . ! ? or an ellipsis followed by whitespace and not by a lower-case ASCII
# letter, or at a CJK full stop, exclamation or question mark; closing quotes and brackets stay
# with the sentence they close.
_SENTENCE_END = re.compile(
    r"(?:[.!?\u2026]+[\"'\u2019\u201d\u00bb)\]]*(?=\s+[^\sa-z])"
    r"|[\u3002\uff01\uff1f\uff0e]+[\"'\u2019\u201d\u300d\u300f\uff09\u3011]*)"
)
_ABBREVIATIONS = frozenset(
    "e.g i.e etc vs cf al mr mrs ms dr prof st jr sr no fig eq approx ca resp dept inc ltd co".split()
)
_WORD_BEFORE = re.compile(r"([\w.]+)$")


def _sentence_starts(text: str) -> Iterator[int]:
    for m in _SENTENCE_END.finditer(text):
        if text[m.start()] == ".":
            word = _WORD_BEFORE.search(text, max(0, m.start() - 12), m.start())
            if word and (word.group(1).lower() in _ABBREVIATIONS or (len(word.group(1)) == 1
                                                                    and word.group(1).isalpha())):
                continue  # "e.g. Python", "Dr. Smith", "J. Smith": not the end of a sentence
        yield m.end()


# -- headings -------------------------------------------------------------------------------------
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE_END = re.compile(r"[\r\n]")
# A Markdown heading line starts, after at most three spaces, with # (ATX) or = or - (setext).
_MAYBE_MD_HEADING = re.compile(r"(?:^|[\r\n]) {0,3}[#=-]")


@lru_cache(maxsize=1)
def _markdown_parser():  # noqa: ANN202
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark")
    parser.disable("inline")  # block structure is enough: heading text is kept raw
    return parser


def _markdown_headings(text: str) -> list[tuple[int, int, str]]:
    """(offset of the heading's first line, level 1-6, title) of top-level CommonMark headings."""
    if _MAYBE_MD_HEADING.search(text) is None:
        return []
    tokens = _markdown_parser().parse(text)
    wanted = [(tok.map[0], int(tok.tag[1]), " ".join(tokens[i + 1].content.split()))
              for i, tok in enumerate(tokens)
              if tok.type == "heading_open" and tok.level == 0 and tok.map]
    if not wanted:
        return []
    # markdown-it numbers lines after turning \r\n and \r into \n, the same breaks as _LINE_BREAK.
    line_starts = [0]
    line_starts += (m.end() for m in _LINE_BREAK.finditer(text))
    return [(line_starts[line], level, title) for line, level, title in wanted]


# reStructuredText section adornment: one punctuation character repeated, alone on its line.
_RST_ADORNMENT = re.compile(r"(?<![^\r\n])([!-/:-@\[-`{-~])\1*[ \t]*(?=[\r\n]|\Z)")


def _next_line(text: str, end: int) -> int:
    """Start of the line after the line ending at ``end`` (a line break or the end of the text)."""
    return end + (2 if text.startswith("\r\n", end) else 1 if end < len(text) else 0)


def _line_before(text: str, start: int) -> tuple[int, str] | None:
    """(start, content) of the line before the line starting at ``start``; None at the top."""
    if start == 0:
        return None
    end = start - 1
    if text[end] == "\n" and end > 0 and text[end - 1] == "\r":
        end -= 1
    newline = text.rfind("\n", 0, end)
    begin = max(newline, text.rfind("\r", newline + 1, end)) + 1
    return begin, text[begin:end]


def _rst_headings(text: str) -> list[tuple[int, int, str]]:
    """(offset of the title's first line, level, title) of reStructuredText section titles.

    A title is a single line of text at the start of a block (after a blank line, the top of the
    text or another title) underlined, and optionally overlined, with one repeated punctuation
    character; the underline is at least as long as the title or at least 4 characters (as
    docutils accepts). Levels follow the order in which adornment styles (character, with or
    without overline) first appear, as in docutils. Indented lines (literal blocks, quotes) are
    never titles. Line breaks may be LF, CRLF or CR.
    """
    adornments = {m.start(): m for m in _RST_ADORNMENT.finditer(text)}
    styles: dict[tuple[str, bool], int] = {}
    found: list[tuple[int, int, str]] = []
    title_ends: set[int] = set()  # line starts right after a title's last line

    def block_start(line_start: int) -> bool:
        before = _line_before(text, line_start)
        return before is None or not before[1].strip() or line_start in title_ends

    used: set[int] = set()
    for start, m in adornments.items():
        if start in used:
            continue
        char = m.group(1)
        width = len(m.group(0).rstrip())
        after_end = _next_line(text, m.end())
        # Overline, title, underline.
        line_end = _LINE_END.search(text, after_end)
        title_line = text[after_end:line_end.start() if line_end else len(text)]
        title_next = _next_line(text, after_end + len(title_line))
        under = adornments.get(title_next)
        if (under is not None and under.group(1) == char and title_line.strip()
                and after_end not in adornments and block_start(start)):
            level = styles.setdefault((char, True), len(styles) + 1)
            found.append((start, level, title_line.strip()))
            used.add(title_next)
            title_ends.add(_next_line(text, under.end()))
            continue
        # Title, underline.
        before = _line_before(text, start)
        if before is None:
            continue
        title_start, title = before
        stripped = title.rstrip()
        if (not stripped or stripped[0].isspace() or title_start in adornments
                or (width < len(stripped) and width < 4) or not block_start(title_start)):
            continue
        level = styles.setdefault((char, False), len(styles) + 1)
        found.append((title_start, level, stripped))
        title_ends.add(_next_line(text, m.end()))
    found.sort()
    return found


def _sections(tokens: _Tokens, headings: list[tuple[int, int, str]]) -> list[tuple[int, int, list[str]]]:
    """Token ranges of the sections that start at each heading, with their heading paths."""
    out: list[tuple[int, int, list[str]]] = []
    stack: list[tuple[int, str]] = []
    path: list[str] = []
    lo = 0
    for offset, level, title in headings:
        t = tokens.at(offset)
        if t > lo:
            out.append((lo, t, path))
            lo = t
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        path = [name for _, name in stack]
    if tokens.count > lo:
        out.append((lo, tokens.count, path))
    return out


def _by_sections(tokens: _Tokens, paragraph_bounds: list[int], sections, size: int,
                 overlap: int) -> Iterator[tuple[int, int, list[str]]]:
    """A section and the sections nested under it go in one chunk when they fit in ``size``;
    a section larger than ``size`` is packed by paragraphs (its chunks all carry its path)."""
    i = 0
    while i < len(sections):
        lo, hi, path = sections[i]
        if hi - lo > size:
            a = bisect_right(paragraph_bounds, lo)
            b = bisect_left(paragraph_bounds, hi)
            for x, y in _pack([lo, *paragraph_bounds[a:b], hi], size, overlap):
                yield x, y, path
            i += 1
            continue
        j = i + 1
        while (path and j < len(sections) and sections[j][1] - lo <= size
               and len(sections[j][2]) > len(path) and sections[j][2][:len(path)] == path):
            j += 1
        yield lo, sections[j - 1][1], path
        i = j


# -- entry points ---------------------------------------------------------------------------------
def chunk_text(text: str, strategy: str = "fixed", *, size: int = DEFAULT_CHUNK_SIZE,
               overlap: int = DEFAULT_OVERLAP) -> list[Span]:
    """Cut ``text`` into chunks of at most ``size`` tokens (see the module docstring for tokens).

    Strategies:

    ``fixed``
        Windows of ``size`` consecutive tokens, each starting ``size - overlap`` tokens after the
        previous one (so consecutive chunks share exactly ``overlap`` tokens); the last window
        ends at the last token.
    ``paragraph``
        Paragraphs are separated by blank lines (lines holding only whitespace; LF, CRLF or CR).
        Consecutive paragraphs are packed into a chunk while the total stays within ``size``; the
        next chunk starts with the previous chunk's trailing whole paragraphs totalling at most
        ``overlap`` tokens (often none). A paragraph longer than ``size`` is cut like ``fixed``.
    ``sentence``
        As ``paragraph``, with sentences as the units: a sentence ends at ``.``, ``!``, ``?`` or
        ``…`` (plus closing quotes or brackets) followed by whitespace and a character that is not
        a lower-case ASCII letter, unless the word before the period is a common abbreviation
        (``e.g.``, ``Dr.``, ...) or a single letter; or at a CJK ``。！？``; and at every paragraph
        break. Overlap carries whole trailing sentences (at most ``overlap`` tokens).
    ``markdown``
        Sections start at CommonMark headings (ATX ``#`` and setext ``===``/``---``, parsed with
        markdown-it-py, so ``#`` lines in fenced or indented code are not headings; headings
        inside lists or block quotes are ignored). Each chunk carries
        ``metadata["heading_path"]``: the titles of the enclosing headings, outermost first
        (heading text as written, whitespace collapsed). A section goes in one chunk together
        with the following sections nested under it as long as they fit in ``size`` (sibling
        sections are never merged, so paths stay exact; chunks never overlap across sections);
        a larger section is split as ``paragraph`` inside the section.
    ``rst``
        As ``markdown``, with reStructuredText section titles (underlined, or over- and
        underlined; levels in order of first appearance of each adornment style).

    Raises :class:`~copilotz_orm.errors.InvalidInput` (a ``ValueError``) for an unknown strategy,
    a size outside 1..MAX_CHUNK_SIZE or an overlap outside 0..size-1.
    """
    _check(text, strategy, size, overlap)
    tokens = _Tokens(text)
    if tokens.count == 0:
        return []
    empty: dict[str, Any] = {}

    def span(lo: int, hi: int, metadata: Mapping[str, Any]) -> Span:
        start, end = tokens.start(lo), tokens.end(hi - 1)
        return Span(start, end, text[start:end], hi - lo, dict(metadata))

    if strategy == "fixed":
        return [span(lo, hi, empty) for lo, hi in _windows(0, tokens.count, size, overlap)]
    if strategy == "paragraph":
        bounds = _bounds(tokens, _paragraph_starts(text))
        return [span(lo, hi, empty) for lo, hi in _pack(bounds, size, overlap)]
    if strategy == "sentence":
        positions = sorted({*_paragraph_starts(text), *_sentence_starts(text)})
        bounds = _bounds(tokens, iter(positions))
        return [span(lo, hi, empty) for lo, hi in _pack(bounds, size, overlap)]
    headings = _markdown_headings(text) if strategy == "markdown" else _rst_headings(text)
    sections = _sections(tokens, headings)
    paragraph_bounds = _bounds(tokens, _paragraph_starts(text))
    return [span(lo, hi, {"heading_path": list(path)})
            for lo, hi, path in _by_sections(tokens, paragraph_bounds, sections, size, overlap)]


def chunk_words(text: str, size: int = DEFAULT_CHUNK_SIZE, overlap: int = DEFAULT_OVERLAP) -> list[Span]:
    """Windows of `size` tokens, each sharing `overlap` tokens with the last (``chunk_text`` ``fixed``)."""
    return chunk_text(text, "fixed", size=size, overlap=overlap)
