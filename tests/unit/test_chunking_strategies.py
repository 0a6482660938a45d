"""Chunking strategies: invariants (property tests), each strategy's rules, bad input, real PEPs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from copilotz_orm.errors import InvalidInput
from copilotz_orm.rag.chunking import (
    _CJK,
    _rst_headings,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_OVERLAP,
    MAX_CHUNK_SIZE,
    MAX_TOKEN_CHARS,
    STRATEGIES,
    Span,
    chunk_text,
    chunk_words,
)

PEPS = Path(__file__).resolve().parents[3] / "shared" / "data" / "peps"
_IS_CJK = re.compile(f"[{_CJK}]")


def reference_tokens(text: str) -> int:
    """Token count by the documented rule, written independently of the module's regexes."""
    count = 0
    for run in text.split():
        length = 0  # length of the current non-CJK stretch
        for ch in run:
            if _IS_CJK.match(ch):
                count += 1 + -(-length // MAX_TOKEN_CHARS)
                length = 0
            else:
                length += 1
        count += -(-length // MAX_TOKEN_CHARS)
    return count


def check_invariants(text: str, spans: list[Span], size: int) -> None:
    covered = [0] * (len(text) + 1)
    previous = None
    for span in spans:
        assert text[span.start:span.end] == span.text
        assert span.text and not span.text[0].isspace() and not span.text[-1].isspace()
        assert 1 <= span.token_count <= size
        assert span.token_count == reference_tokens(span.text)
        if previous is not None:
            assert span.start > previous.start and span.end > previous.end
        previous = span
        covered[span.start] += 1
        covered[span.end] -= 1
    depth = 0
    for i, ch in enumerate(text):
        depth += covered[i]
        if not ch.isspace():
            assert depth > 0, f"character {i} ({ch!r}) is in no chunk"
    if not text.strip():
        assert spans == []


# -- property tests --------------------------------------------------------------------------------
FRAGMENTS = ["word", "Word.", "e.g.", "Dr.", "end!", "ask?", "漢字", "かな。", "x" * 70, "#", "##",
             "# Title", "Title", "=====", "-----", "~~~~", "```", "~~~", "    # code", "> # quote",
             ".. note::", "::", "", " ", "\t", "日本語のテキストです。", "🙂", "ß", "\u00a0"]
lines = st.lists(st.sampled_from(FRAGMENTS), min_size=0, max_size=4).map(" ".join)
structured = st.tuples(st.lists(lines, max_size=40), st.sampled_from(["\n", "\r\n", "\r"])).map(
    lambda parts: parts[1].join(parts[0]))
anything = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=300)
texts = st.one_of(structured, anything)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, strategy=st.sampled_from(STRATEGIES), size=st.integers(1, 12), data=st.data())
def test_invariants_hold_for_every_strategy(text, strategy, size, data):
    overlap = data.draw(st.integers(0, size - 1))
    check_invariants(text, chunk_text(text, strategy, size=size, overlap=overlap), size)


@settings(max_examples=200, deadline=None)
@given(text=texts, size=st.integers(1, 12), data=st.data())
def test_fixed_windows_share_exactly_overlap_tokens(text, size, data):
    overlap = data.draw(st.integers(0, size - 1))
    spans = chunk_text(text, "fixed", size=size, overlap=overlap)
    assert all(span.token_count == size for span in spans[:-1])
    for a, b in zip(spans, spans[1:]):
        shared = reference_tokens(text[b.start:a.end]) if b.start < a.end else 0
        assert shared == overlap


@settings(max_examples=100, deadline=None)
@given(text=texts, strategy=st.sampled_from(["paragraph", "sentence"]), size=st.integers(2, 12))
def test_without_overlap_units_are_never_repeated(text, strategy, size):
    spans = chunk_text(text, strategy, size=size, overlap=0)
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:]))


# -- arguments -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    ({"strategy": "semantic"}, "use one of fixed, paragraph, sentence, markdown, rst"),
    ({"strategy": None}, "unknown chunking strategy"),
    ({"size": 0}, "from 1 to 2000"),
    ({"size": MAX_CHUNK_SIZE + 1}, "from 1 to 2000"),
    ({"size": -5}, "from 1 to 2000"),
    ({"size": 10.0}, "whole number"),
    ({"size": True}, "whole number"),
    ({"size": 10, "overlap": 10}, "from 0 to 9"),
    ({"size": 10, "overlap": 11}, "lower the overlap"),
    ({"overlap": -1}, "from 0 to"),
    ({"overlap": "2"}, "whole number"),
])
def test_bad_arguments_are_refused_with_a_hint(kwargs, message):
    with pytest.raises(InvalidInput, match=re.escape(message)):
        chunk_text("some text", **kwargs)


def test_text_must_be_a_string():
    with pytest.raises(InvalidInput, match="must be a string"):
        chunk_text(b"bytes")  # type: ignore[arg-type]


def test_defaults_and_the_old_entry_point():
    text = " ".join(f"w{i}" for i in range(400))
    spans = chunk_text(text)
    assert [s.token_count for s in spans] == [DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_SIZE, 400 - 256]
    assert spans[1].text.split()[0] == f"w{DEFAULT_CHUNK_SIZE - DEFAULT_OVERLAP}"
    assert chunk_words(text) == spans
    assert all(s.metadata == {} for s in spans)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("text", ["", " ", "\n\r\n\t \u3000\u00a0"])
def test_nothing_to_chunk(strategy, text):
    assert chunk_text(text, strategy) == []


# -- tokens ----------------------------------------------------------------------------------------
def test_cjk_characters_are_tokens():
    text = "漢字かな交じり文。" * 50
    spans = chunk_text(text, "fixed", size=20, overlap=5)
    assert [s.token_count for s in spans[:-1]] == [20] * (len(spans) - 1)
    assert all(len(s.text) == s.token_count for s in spans)
    check_invariants(text, spans, 20)
    mixed = "Python是一种编程语言 with spaces"
    assert reference_tokens(mixed) == chunk_text(mixed, size=100, overlap=0)[0].token_count == 1 + 7 + 2


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_five_megabytes_without_whitespace_is_not_one_chunk(strategy):
    text = "abcdefghij" * 500_000
    spans = chunk_text(text, strategy, size=160, overlap=32)
    assert len(spans) == -(-(len(text) // MAX_TOKEN_CHARS - 160) // 128) + 1
    assert max(len(s.text) for s in spans) == 160 * MAX_TOKEN_CHARS
    assert spans[0].start == 0 and spans[-1].end == len(text)
    cjk = "中文文本没有空格" * 650_000
    spans = chunk_text(cjk, strategy, size=160, overlap=0)
    assert len(spans) == len(cjk) // 160 and {len(s.text) for s in spans} == {160}


# -- paragraph -------------------------------------------------------------------------------------
def test_paragraphs_are_packed_and_oversized_ones_cut():
    text = "a b c\n\nd e\r\n \r\nf g h i\n\t\n" + " ".join("x" * 9) + "\n\nlast one"
    spans = chunk_text(text, "paragraph", size=5, overlap=0)
    assert [s.text for s in spans] == ["a b c\n\nd e", "f g h i", "x x x x x", "x x x x", "last one"]
    with_overlap = chunk_text(text, "paragraph", size=5, overlap=2)
    assert [s.text for s in with_overlap][:2] == ["a b c\n\nd e", "f g h i"]  # "d e" + "f g h i" > 5
    short = chunk_text("one\n\ntwo three\n\nfour five six", "paragraph", size=5, overlap=2)
    assert [s.text for s in short] == ["one\n\ntwo three", "two three\n\nfour five six"]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_crlf_and_cr_chunk_like_lf(strategy, newline):
    text = MARKDOWN + RST + "Para one.\n \nPara two. Still two.\n\n\n\nThree."
    lf = chunk_text(text, strategy, size=7, overlap=2)
    other = chunk_text(text.replace("\n", newline), strategy, size=7, overlap=2)
    assert [(s.token_count, s.text.split()) for s in other] == [(s.token_count, s.text.split()) for s in lf]
    assert [s.metadata for s in other] == [s.metadata for s in lf]


# -- sentence --------------------------------------------------------------------------------------
def test_sentence_boundaries():
    text = ("Use a tool, e.g. Python. Dr. Smith agrees! Does J. Doe? \"Yes.\" Then version 3. "
            "Next 一句话。第二句话。")
    spans = chunk_text(text, "sentence", size=5, overlap=0)
    assert [s.text for s in spans] == [
        "Use a tool, e.g. Python.", "Dr. Smith agrees!", "Does J. Doe? \"Yes.\"", "Then version 3.",
        "Next 一句话。", "第二句话。"]
    # A sentence longer than the size is cut into fixed windows.
    assert [s.text for s in chunk_text(text, "sentence", size=4, overlap=0)][-4:] == [
        "Next 一句话", "。", "第二句话", "。"]


def test_sentences_overlap_by_whole_sentences():
    text = "One two. Three four. Five six. Seven eight."
    spans = chunk_text(text, "sentence", size=4, overlap=2)
    assert [s.text for s in spans] == ["One two. Three four.", "Three four. Five six.", "Five six. Seven eight."]


# -- markdown --------------------------------------------------------------------------------------
MARKDOWN = """Preamble text.

# Intro

Welcome.

## Install ##

Get it.

### On Linux

```sh
# not a heading
apt install thing
```

~~~
## nor this
~~~

    # indented code, not a heading

> # quoted heading is ignored

#hashtag is not a heading

Setext Title
============

Under setext.

Second Level
------------

Body.

#### Deep

Text.
"""


def _paths(spans):
    return [s.metadata["heading_path"] for s in spans]


def test_markdown_heading_paths():
    spans = chunk_text(MARKDOWN, "markdown", size=5, overlap=0)
    check_invariants(MARKDOWN, spans, 5)
    by_start = {s.text.splitlines()[0]: s.metadata["heading_path"] for s in spans}
    assert by_start["Preamble text."] == []
    assert by_start["# Intro"] == ["Intro"]
    assert by_start["## Install ##"] == ["Intro", "Install"]
    assert by_start["### On Linux"] == ["Intro", "Install", "On Linux"]
    assert by_start["Setext Title"] == ["Setext Title"]
    assert by_start["Second Level"] == ["Setext Title", "Second Level"]
    assert by_start["#### Deep"] == ["Setext Title", "Second Level", "Deep"]
    code = next(s for s in spans if "# not a heading" in s.text)
    assert code.metadata["heading_path"] == ["Intro", "Install", "On Linux"]
    assert all("quoted" not in p[-1] and "hashtag" not in p[-1] for p in _paths(spans) if p)


def test_markdown_nested_sections_share_a_chunk_when_they_fit_siblings_do_not():
    text = "# A\n\nalpha\n\n## B\n\nbeta\n\n## C\n\ngamma\n\n# D\n\ndelta"
    spans = chunk_text(text, "markdown", size=100, overlap=10)
    assert [(s.text, s.metadata["heading_path"]) for s in spans] == [
        ("# A\n\nalpha\n\n## B\n\nbeta\n\n## C\n\ngamma", ["A"]), ("# D\n\ndelta", ["D"])]
    spans = chunk_text(text, "markdown", size=8, overlap=0)
    assert [(s.text, s.metadata["heading_path"]) for s in spans] == [
        ("# A\n\nalpha\n\n## B\n\nbeta", ["A"]), ("## C\n\ngamma", ["A", "C"]), ("# D\n\ndelta", ["D"])]
    # Text before the first heading is never merged with a section.
    spans = chunk_text("intro\n\n# A\n\nalpha", "markdown", size=8, overlap=0)
    assert _paths(spans) == [[], ["A"]]


def test_markdown_large_section_is_split_by_paragraph_and_keeps_its_path():
    body = "\n\n".join(" ".join(["word"] * 7) for _ in range(6))
    text = f"# Top\n\n## Big\n\n{body}\n\n## Next\n\nend"
    spans = chunk_text(text, "markdown", size=10, overlap=0)
    check_invariants(text, spans, 10)
    assert _paths(spans) == [["Top"]] + [["Top", "Big"]] * 6 + [["Top", "Next"]]


def test_markdown_crlf_and_cr_give_the_same_paths():
    lf = chunk_text(MARKDOWN, "markdown", size=8, overlap=0)
    for newline in ("\r\n", "\r"):
        text = MARKDOWN.replace("\n", newline)
        spans = chunk_text(text, "markdown", size=8, overlap=0)
        check_invariants(text, spans, 8)
        assert _paths(spans) == _paths(lf)


def test_skipped_heading_levels():
    spans = chunk_text("# A\n\nx\n\n### C\n\ny\n\n## B\n\nz", "markdown", size=3, overlap=0)
    assert _paths(spans) == [["A"], ["A", "C"], ["A", "B"]]


# -- reStructuredText ------------------------------------------------------------------------------
RST = """PEP: 9999
Title: Example

==========
 Abstract
==========

Overlined and underlined.

Motivation
==========

Plain underline.

Details
-------

A literal block::

    Not a title
    ===========

Short
===

Tiny
--

Not a title either (underline too short) and a transition follows.

----------

More text.

Sub-detail
~~~~~~~~~~
Right after.

Rationale
=========

End.
"""


def test_rst_heading_paths():
    spans = chunk_text(RST, "rst", size=6, overlap=0)
    check_invariants(RST, spans, 6)
    paths = {s.text.splitlines()[0]: s.metadata["heading_path"] for s in spans}
    assert paths["PEP: 9999"] == []
    assert paths["=========="] == ["Abstract"]
    # Overlined "=" and underlined "=" are two styles, so Motivation is nested in Abstract.
    assert paths["Motivation"] == ["Abstract", "Motivation"]
    assert paths["Details"] == ["Abstract", "Motivation", "Details"]
    assert paths["Sub-detail"] == ["Abstract", "Motivation", "Details", "Sub-detail"]
    assert paths["Rationale"] == ["Abstract", "Rationale"]
    # Indented literal blocks, underlines shorter than the title and under 4 characters,
    # and transitions are not titles.
    assert not any(p and p[-1] in {"Not a title", "Short", "Tiny"} for p in _paths(spans))
    if _has_docutils():
        assert _rst_paths(RST) == _docutils_paths(RST)
    crlf = RST.replace("\n", "\r\n")
    assert _paths(chunk_text(crlf, "rst", size=6, overlap=0)) == _paths(spans)


# -- real input: PEPs read in place ----------------------------------------------------------------
needs_peps = pytest.mark.skipif(not PEPS.is_dir(), reason=f"the PEP corpus is not at {PEPS}")
SAMPLE = ["pep-0001.rst", "pep-0008.rst", "pep-0258.rst", "pep-0517.rst", "pep-0020.rst"]


@needs_peps
@pytest.mark.parametrize("name", SAMPLE)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_peps_keep_the_invariants(name, strategy):
    text = (PEPS / name).read_text(encoding="utf-8")
    spans = chunk_text(text, strategy)
    check_invariants(text, spans, DEFAULT_CHUNK_SIZE)


@needs_peps
def test_pep8_heading_paths_are_what_the_file_says():
    text = (PEPS / "pep-0008.rst").read_text(encoding="utf-8")
    spans = chunk_text(text, "rst")
    first_lines = {s.text.splitlines()[0]: s.metadata["heading_path"] for s in spans}
    assert first_lines["Introduction"] == ["Introduction"]
    assert first_lines["Tabs or Spaces?"] == ["Code Lay-out", "Tabs or Spaces?"]
    assert ["Naming Conventions", "Prescriptive: Naming Conventions", "Names to Avoid"] in _rst_paths(text)
    # A section with no text of its own shares a chunk with the subsections that fit with it.
    assert first_lines["Prescriptive: Naming Conventions"] == ["Naming Conventions",
                                                               "Prescriptive: Naming Conventions"]
    assert "\nNames to Avoid\n~~~" in next(s.text for s in spans if s.text.startswith("Prescriptive"))
    top = []
    for path in _paths(spans):
        if path and path[0] not in top:
            top.append(path[0])
    assert top == ["Introduction", "A Foolish Consistency is the Hobgoblin of Little Minds", "Code Lay-out",
                   "String Quotes", "Whitespace in Expressions and Statements", "When to Use Trailing Commas",
                   "Comments", "Naming Conventions", "Programming Recommendations", "References", "Copyright"]
    assert first_lines["PEP: 8"] == []
    # The markdown strategy is wrong for rst: "# comment" lines in rst code samples (indented by
    # three spaces) are Markdown headings. That is why rst has its own strategy.
    md = chunk_text(text, "markdown")
    assert ["Add some extra indentation on the conditional continuation line."] in _paths(md)


def _has_docutils() -> bool:
    try:
        import docutils  # noqa: F401
    except ImportError:
        return False
    return True


def _docutils_paths(text: str) -> list[list[str]]:
    from docutils import nodes
    from docutils.core import publish_doctree

    doc = publish_doctree(text, settings_overrides={
        "report_level": 5, "halt_level": 5, "doctitle_xform": False, "warning_stream": False})
    paths = []
    for section in doc.findall(nodes.section):
        path, node = [], section
        while node is not None:
            if isinstance(node, nodes.section):
                path.append(node[0].astext())
            node = node.parent
        paths.append(path[::-1])
    return paths


def _rst_paths(text: str) -> list[list[str]]:
    """The heading path at each rst section title the chunker finds, in order."""
    paths, stack = [], []
    for _, level, title in _rst_headings(text):
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        paths.append([t for _, t in stack])
    return paths


@needs_peps
@pytest.mark.parametrize("name", ["pep-0001.rst", "pep-0008.rst", "pep-0258.rst", "pep-0517.rst", "pep-0570.rst"])
def test_rst_sections_match_docutils(name):
    pytest.importorskip("docutils")
    text = (PEPS / name).read_text(encoding="utf-8")
    want = _docutils_paths(text)
    assert len(want) > 3

    def plain(paths):  # docutils renders inline markup (``x`` -> x)
        return [[" ".join(re.sub(r"[`*|\\]", "", t).split()) for t in path] for path in paths]
    assert plain(_rst_paths(text)) == plain(want)
