"""Markup to clean text: what a reader sees, with the section structure chunking follows.

Each function keeps the lines that make a section title (a Markdown ``#`` heading, a
reStructuredText underlined title), so the ``markdown`` and ``rst`` chunkers still find the
sections and their heading paths in the clean text; code stays verbatim (fenced in Markdown,
indented in reStructuredText, so no line of code is read as a heading). Everything else that is
only markup goes: emphasis markers, link targets, roles, comments, directive lines.
"""

from __future__ import annotations

import re
from functools import lru_cache
from html.parser import HTMLParser


# -- HTML ----------------------------------------------------------------------------------------
class _HTMLText(HTMLParser):
    """Visible text of an HTML page, and its <title>."""

    # Not "head": without its optional end tag, the body would be skipped with it.
    _SKIP = {"script", "style", "noscript", "template"}
    _BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section",
              "article", "pre", "blockquote", "table", "ul", "ol", "dd", "dt"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skipping = 0
        self._in_title = False
        self._svg = 0  # inside <svg>: its <title> is a tooltip, not the page's

    def handle_starttag(self, tag, attrs):  # noqa: ARG002
        if tag == "svg":
            self._svg += 1
        if self._in_title and (tag == "body" or tag in self._BLOCK):
            self._in_title = False  # a <title> left open ends where the body starts
        if tag == "title" and not self._svg:
            self._in_title = True
        elif tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag):
        if tag == "svg" and self._svg:
            self._svg -= 1
        if tag in ("title", "head"):
            self._in_title = False
        elif tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        elif not self._skipping:
            self.parts.append(data)


def html_to_text(markup: str) -> tuple[str, str]:
    """(visible text, title) of an HTML document."""
    parser = _HTMLText()
    parser.feed(markup)
    parser.close()
    text = re.sub(r"[ \t]+", " ", "".join(parser.parts))
    text = re.sub(r"\n\s*\n\s*", "\n\n", text).strip()
    return text, " ".join(parser.title.split())


# -- Markdown ------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _markdown():  # noqa: ANN202
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"maxNesting": MAX_NESTING}).enable(["table", "strikethrough"])


MAX_NESTING = 100
"""Block nesting markdown-it follows (its default is 20); deeper blocks it would drop, so a text
that reaches this depth is kept as written (see markdown_to_text)."""


def _inline_text(children) -> str:
    out = []
    for tok in children or ():
        if tok.type in ("text", "code_inline"):
            out.append(tok.content)
        elif tok.type in ("softbreak", "hardbreak"):
            out.append("\n")
        elif tok.type == "image":
            out.append(_inline_text(tok.children))  # its alt text
        elif tok.type == "html_inline":
            continue  # a tag, not text
    return "".join(out)


def _fence(content: str, info: str = "") -> str:
    ticks = "`" * max(3, max((len(m) for m in re.findall(r"`+", content)), default=0) + 1)
    return f"{ticks}{info}\n{content.rstrip(chr(10))}\n{ticks}"


_LEADING_HASH = re.compile(r"^( {0,3})(#)", re.M)


def markdown_to_text(markup: str) -> str:
    """Markdown (CommonMark with tables) as clean text: ATX headings (``## Title``), paragraphs
    and list items without inline markup (a link is its text, an image its alt text, code spans
    their code), code blocks fenced, tables as ``cell | cell`` rows, HTML blocks as their visible
    text, comments and link reference definitions dropped. A text nested deeper than MAX_NESTING
    blocks is returned as written rather than lose its innermost blocks."""
    blocks: list[str] = []
    line: list[str] = []  # the block being built
    lists: list[list] = []  # open lists: [ordered, next number]
    row: list[str] = []
    prefix = ""
    tokens = _markdown().parse(markup)
    if any(tok.level >= MAX_NESTING - 1 for tok in tokens):
        return markup  # nested past what the parser follows: its markup stays, its text is all kept
    for tok in tokens:
        kind = tok.type
        if kind == "heading_open":
            prefix = "#" * int(tok.tag[1]) + " "
        elif kind in ("bullet_list_open", "ordered_list_open"):
            lists.append([kind == "ordered_list_open", int(tok.attrGet("start") or 1)])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif kind == "list_item_open":
            ordered, number = lists[-1]
            marker = f"{number}. " if ordered else "- "
            lists[-1][1] += 1
            prefix = "  " * (len(lists) - 1) + marker
        elif kind == "inline":
            text = _inline_text(tok.children)
            if not prefix.startswith("#"):  # a paragraph's "#" is text, not a heading
                text = _LEADING_HASH.sub(r"\1\\\2", text)
            line.append(prefix + text)
            prefix = ""
        elif kind in ("fence", "code_block"):
            blocks.append(_fence(tok.content, tok.info.strip() if kind == "fence" else ""))
        elif kind == "html_block":
            text, _ = html_to_text(tok.content)
            if text:
                blocks.append(text)
        if kind in ("heading_close", "paragraph_close") and line and not (kind == "paragraph_close" and tok.hidden):
            blocks.append("\n".join(line))
            line = []
        elif kind in ("th_close", "td_close"):
            row.append(line.pop() if line else "")
        elif kind == "tr_close":
            blocks.append(" | ".join(row))
            row = []
        elif kind == "list_item_close" and line:
            blocks.append("\n".join(line))
            line = []
    if line:
        blocks.append("\n".join(line))
    return "\n\n".join(b for b in blocks if b.strip())


# -- reStructuredText ------------------------------------------------------------------------------
_CODE_DIRECTIVES = {"code", "code-block", "sourcecode", "literalinclude", "highlight", "doctest"}
_DROPPED_DIRECTIVES = {"image", "figure", "raw", "include", "contents", "sectnum", "toctree", "highlight",
                       "literalinclude", "index", "meta", "target-notes"}
_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+(?:\|[^|]+\|\s+)?([\w:+-]+)::(.*)$")
_EXPLICIT = re.compile(r"^(\s*)\.\.(?:\s|$)")
_FOOTNOTE = re.compile(r"^(\s*)\.\.\s+(\[[^\]]+\])\s?(.*)$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+\u2022]|\(?(?:\d+|[a-zA-Z#])[.)])\s+")
_OPTION = re.compile(r"^\s*:[\w -]+:(\s|$)")

# One pass over the inline markup, leftmost match first, so text inside ``literals`` is kept
# as it is (``*args`` is not emphasis).
_INLINE = re.compile(
    r"``(?P<literal>\S.*?)(?<!\s)``"
    r"|:(?P<role>[\w.+-]+(?::[\w.+-]+)?):`(?P<role_text>[^`]+)`"
    r"|`(?P<ref>[^`]+)`__?"
    r"|`(?P<interpreted>[^`]+)`(?::[\w.+-]+:)?"
    r"|(?<![\w*\\])\*\*(?P<strong>\S.*?)(?<!\s)\*\*(?![\w*])"
    r"|(?<![\w*\\])\*(?P<emphasis>[^\s*](?:[^*]*?[^\s*\\])?)\*(?![\w*])"
    r"|\s?\[(?:#[\w.-]*|\*|[\w.-]+)\]_"
    r"|\|(?P<substitution>[^|\s][^|]*)\|_?_?(?=[\s.,;:!?)\]]|$)",
    re.S,
)
_ADORNMENT = re.compile(r"^([!-/:-@\[-`{-~])\1+\s*$")
_TARGET = re.compile(r"^(?P<title>.*?)\s*<[^<>]+>$", re.S)


def _role_text(role: str, text: str) -> str:
    target = _TARGET.match(text)
    if target and target.group("title"):
        return target.group("title")
    text = text.lstrip("!")
    if role == "pep":
        return "PEP " + text.split("#")[0]
    if role == "rfc":
        return "RFC " + text.split("#")[0]
    if text.startswith("~"):
        return text[1:].rsplit(".", 1)[-1]
    return text


def _inline(match: re.Match) -> str:
    group = match.lastgroup
    if group is None:  # a footnote reference
        return ""
    if group == "role_text":
        return _role_text(match.group("role").split(":")[-1], match.group("role_text"))
    value = match.group(group)
    if group == "ref":
        target = _TARGET.match(value)
        return target.group("title") if target and target.group("title") else value
    return value


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def rst_to_text(markup: str) -> str:
    """reStructuredText as clean text: inline markup reduced to its text (roles, literals,
    emphasis, references; ``:pep:`8``` becomes ``PEP 8``), comments, targets, substitution
    definitions and directive lines dropped (a directive's body stays as text; code directives'
    and literal blocks' bodies stay verbatim), ``::`` ending a paragraph becomes ``:``. Section
    titles and their adornment lines stay, for the ``rst`` chunker."""
    out: list[tuple[str, bool]] = []  # (line, verbatim)
    literal_at: int | None = None  # indentation a literal block is deeper than
    expect_literal: int | None = None  # the last paragraph ended with '::' at this indentation
    skip_at: int | None = None  # dropping an explicit markup block deeper than this
    options_at: int | None = None  # dropping a directive's :option: lines deeper than this
    skipped_blank = False
    for line in markup.splitlines():
        blank = not line.strip()
        indent = _indent(line)
        if skip_at is not None:
            if blank or indent > skip_at:
                skipped_blank = blank
                continue
            skip_at = None
            if skipped_blank:  # the blank line that ended the dropped block still separates
                out.append(("", True))
        if literal_at is not None:
            if blank or indent > literal_at:
                out.append((line, True))
                continue
            literal_at = None
        if options_at is not None:
            if not blank and indent > options_at and _OPTION.match(line):
                continue
            options_at = None
        if expect_literal is not None and not blank:
            if indent > expect_literal:
                literal_at, expect_literal = expect_literal, None
                out.append((line, True))
                continue
            expect_literal = None
        directive = _DIRECTIVE.match(line)
        if directive:
            base, name, argument = len(directive.group(1)), directive.group(2).lower(), directive.group(3).strip()
            name = name.rsplit(":", 1)[-1]
            if name in _CODE_DIRECTIVES and name != "highlight":
                expect_literal, options_at = base, base
            elif name in _DROPPED_DIRECTIVES or line.lstrip().startswith(".. |"):
                skip_at = base
            else:
                options_at = base
                if argument:  # e.g. ".. note:: text" or ".. admonition:: Title"
                    out.append((" " * base + argument, False))
            continue
        footnote = _FOOTNOTE.match(line)
        if footnote:
            out.append((footnote.group(1) + footnote.group(2) + " " + footnote.group(3), False))
            continue
        if _EXPLICIT.match(line):  # a comment or a hyperlink target, with what is indented under it
            skip_at = indent
            continue
        adornment = _ADORNMENT.match(line) is not None
        if line.rstrip().endswith("::") and not adornment:
            item = _LIST_ITEM.match(line)  # a list item's text is indented past its marker
            expect_literal = len(item.group(0)) if item else indent
            head = line.rstrip()[:-2]
            line = head.rstrip() if not head.strip() or head[-1].isspace() else head + ":"
            if not line.strip():
                continue
        out.append((line, blank or adornment))
    # Inline markup may run over several lines of a paragraph, never past one.
    lines: list[str] = []
    prose: list[str] = []
    for line, verbatim in out + [("", True)]:
        if not verbatim:
            prose.append(line)
            continue
        if prose:
            lines.append(_INLINE.sub(_inline, "\n".join(prose)))
            prose = []
        lines.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
