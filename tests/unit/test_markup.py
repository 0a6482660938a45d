"""Markup to clean text (copilotz_orm.rag.markup): what goes, what stays, and that the chunkers
still find the same sections in the clean text."""

from __future__ import annotations

from pathlib import Path

import pytest

from copilotz_orm.rag import chunk_text, read_file, read_text
from copilotz_orm.rag.chunking import _markdown_headings, _rst_headings
from copilotz_orm.rag.markup import markdown_to_text, rst_to_text

PEPS = Path(__file__).resolve().parents[3] / "shared" / "data" / "peps"

RST = """\
Abstract
========

See :pep:`8` and :pep:`the style guide <8#naming>`, :func:`~os.path.join`, :class:`!Foo`,
``*args`` and ``**kwargs``, *emphasis*, **strong**, `a link <https://x.org>`__, `Ref`_ and
a footnote [#note]_ or [1]_ or a citation [Aho86]_; |sub| stays a word.

.. _Ref: https://example.org
.. |sub| replace:: substituted

.. comment that goes
   with its indented lines

Example::

    def f(*args, **kwargs):  # ``not markup`` in code
        return `x`

.. code-block:: python
   :linenos:

   # a comment in code, *not* emphasis
   y = 2 ** 3

.. note:: Read this.

   Body of the note with ``code``.

.. image:: picture.png
   :alt: gone

- An item whose literal block follows::

      literal *inside* item

  Back in the item with ``x``.

.. [#note] The note's text.

..
   Local Variables:
   mode: indented-text
   End:
"""


def test_rst_inline_markup_is_reduced_to_its_text():
    clean = rst_to_text(RST)
    assert "See PEP 8 and the style guide, join, Foo,\n*args and **kwargs, emphasis, strong, a link, Ref and" in clean
    assert "a footnote or or a citation; sub stays a word." in clean
    assert "Back in the item with x." in clean
    assert "Read this.\n\n   Body of the note with code." in clean
    assert "[#note] The note's text." in clean


def test_rst_code_stays_verbatim_and_markup_only_blocks_go():
    clean = rst_to_text(RST)
    assert "Example:\n\n    def f(*args, **kwargs):  # ``not markup`` in code\n        return `x`" in clean
    assert "   # a comment in code, *not* emphasis\n   y = 2 ** 3" in clean
    assert "      literal *inside* item" in clean
    for gone in ("https://example.org", "replace::", "comment that goes", "indented lines", "picture.png",
                 ":alt:", ":linenos:", "code-block", "Local Variables", "mode: indented-text", ".. "):
        assert gone not in clean
    assert clean.startswith("Abstract\n========\n")


def test_rst_sections_survive_cleaning():
    raw = "Top\n===\n\nIntro ``x``.\n\n.. _target:\n\n``Sub`` one\n-----------\n\nText::\n\n  # code\n\nTwo\n===\n\nEnd.\n"
    clean = rst_to_text(raw)
    assert [(level, title) for _, level, title in _rst_headings(clean)] == [(1, "Top"), (2, "Sub one"), (1, "Two")]
    paths = [s.metadata["heading_path"] for s in chunk_text(clean, "rst", size=6, overlap=0)]
    assert paths[0] == ["Top"] and ["Top", "Sub one"] in paths and paths[-1] == ["Two"]


@pytest.mark.skipif(not PEPS.is_dir(), reason="the PEP corpus is not beside the repository")
def test_every_pep_keeps_its_section_structure():
    """Section levels in the clean text equal those of the raw file for every PEP but one: PEP
    617 titles a section with a lone ``~``, which cleaned is an adornment line."""
    changed = []
    for path in sorted(PEPS.glob("*.rst")):
        raw = path.read_text(encoding="utf-8")
        clean = read_file(path).text
        if [lvl for _, lvl, _ in _rst_headings(raw)] != [lvl for _, lvl, _ in _rst_headings(clean)]:
            changed.append(path.name)
        assert ":pep:`" not in clean.split("\n\n", 1)[0], path.name  # the header block is clean too
    assert changed == ["pep-0617.rst"]


MARKDOWN = """\
# Title

Intro with **bold**, *em*, `code`, a [link](http://x.y "t"), ![alt text](img.png) and <b>tags</b>.
\\# not a heading
<!-- a comment -->

## Install

1. First step
2. Second with `pip install x`
   - nested *item*

```python
# a comment, not a heading
x = 1
```

| a | b |
|---|---|
| 1 | **2** |

<div>Some <b>html</b> block</div>

[ref]: http://example.com

Setext
------
After ~~strike~~.
"""


def test_markdown_is_reduced_to_clean_text_with_its_headings():
    clean = markdown_to_text(MARKDOWN)
    assert "Intro with bold, em, code, a link, alt text and tags.\n\\# not a heading" in clean
    assert "1. First step\n\n2. Second with pip install x\n  - nested item" in clean
    assert "```python\n# a comment, not a heading\nx = 1\n```" in clean
    assert "a | b\n\n1 | 2" in clean and "Some html block" in clean and "After strike." in clean
    for gone in ("http://", "img.png", "a comment -->", "<b>", "**", "~~"):
        assert gone not in clean
    assert [(lvl, t) for _, lvl, t in _markdown_headings(clean)] == [(1, "Title"), (2, "Install"), (2, "Setext")]


def test_the_hash_is_of_the_clean_text():
    one = read_text("# T\n\nSome **bold** words.\n", mime_type="text/markdown")
    two = read_text("T\n=\n\nSome __bold__ words.\n", mime_type="text/markdown")
    assert one.text == two.text == "# T\n\nSome bold words."
    assert one.content_hash == two.content_hash
    rst = read_text("Some ``literal`` and *emphasis*.\n", mime_type="text/x-rst")
    assert rst.text == "Some literal and emphasis."


def test_html_without_optional_end_tags_keeps_its_body():
    from copilotz_orm.rag.markup import html_to_text

    assert html_to_text("<html><head><title>Guide</title><body><p>Visible body text</p></body></html>") == (
        "Visible body text", "Guide")
    assert html_to_text("<title>Open title<p>Body after it</p>") == ("Body after it", "Open title")
    text, title = html_to_text("<title>Real</title><svg><title>icon</title><text>drawn</text></svg><p>x</p>")
    assert title == "Real" and "x" in text


def test_markdown_nested_past_the_parser_is_kept_as_written():
    deep = "Intro.\n\n" + "> " * 120 + "quoted text\n\nOutro."
    assert "quoted text" in markdown_to_text(deep)
    assert markdown_to_text("Intro.\n\n" + "> " * 20 + "quoted text\n\nOutro.") == "Intro.\n\nquoted text\n\nOutro."
    nested = "".join("  " * i + f"- item {i}\n" for i in range(25))
    assert markdown_to_text(nested).count("item") == 25


@pytest.mark.parametrize("mime, expected", [
    ("text/html; charset=utf-8", ("text/html", "utf-8")), ("TEXT/HTML", ("text/html", "utf-8")),
    ('text/html ; charset = "UTF-8"; foo=bar', ("text/html", "utf-8")), ("text/html; boundary=x", ("text/html", "utf-8")),
    ("text/x-rst;charset=latin-1", ("text/x-rst", "latin-1")),
])
def test_mime_types_are_parsed_as_headers(mime, expected):
    from copilotz_orm.rag.reading import text_type

    assert text_type(mime) == expected


@pytest.mark.parametrize("mime", ["bogus", "application/pdf", 5, None, ""])
def test_other_mime_types_are_refused(mime):
    from copilotz_orm.errors import DocumentError
    from copilotz_orm.rag.reading import text_type

    with pytest.raises(DocumentError):
        text_type(mime)


def test_reading_refuses_what_it_cannot_use():
    from copilotz_orm.errors import DocumentError, InvalidInput
    from copilotz_orm.rag.reading import read_bytes

    for invisible in ("\ufeff", "\u200b\u200b", "\x01\x02\x03", " \n\t"):
        with pytest.raises(DocumentError, match="nothing to index"):
            read_text(invisible)
    for title in (123, b"abc"):
        with pytest.raises(InvalidInput, match="title"):
            read_text("text", title=title)
    for uri in (5, "", "  "):
        with pytest.raises(InvalidInput, match="source_uri"):
            read_text("text", source_uri=uri)
    with pytest.raises(DocumentError, match="UTF-16"):
        read_bytes("some text".encode("utf-16"), "text/plain")


def test_a_utf16_file_is_told_to_convert(tmp_path):
    from copilotz_orm.errors import DocumentError

    path = tmp_path / "wide.txt"
    path.write_bytes("some text".encode("utf-16"))
    with pytest.raises(DocumentError, match="UTF-16"):
        read_file(path)
