"""Reading a document from a file, a string or bytes into clean text (see .markup), with a title and a hash."""

from __future__ import annotations

import hashlib
from email.message import Message
import os
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import DocumentError, InvalidInput
from ..sanitize import clean_text
from .markup import html_to_text, markdown_to_text, rst_to_text

MAX_BYTES = 50 * 1024 * 1024
_RFC822_HEADER = re.compile(r"^([A-Za-z][A-Za-z-]*):[ \t]*(.*)$")


@dataclass(frozen=True)
class SourceDocument:
    text: str
    title: str
    source_uri: str | None
    mime_type: str
    header: dict[str, str]

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def _header(text: str) -> dict[str, str]:
    """An RFC-822 style header block at the top (as PEPs have), else {}."""
    fields: dict[str, str] = {}
    last = None
    for line in text.splitlines():
        if not line.strip():
            break
        if line[:1] in " \t" and last:
            fields[last] += " " + line.strip()
            continue
        match = _RFC822_HEADER.match(line)
        if not match:
            return {}
        last = match.group(1)
        fields[last] = match.group(2).strip()
    return fields


def _title(text: str, header: dict[str, str], fallback: str) -> str:
    if "Title" in header:
        return f"PEP {header['PEP']}: {header['Title']}" if "PEP" in header else header["Title"]
    for line in text.splitlines():
        stripped = line.strip().lstrip("#").strip()
        if stripped and not set(stripped) <= set("=-~*^#"):
            return stripped[:200]
    return fallback


def read_text(text: str, *, title: str | None = None, source_uri: str | None = None,
              mime_type: str = "text/plain") -> SourceDocument:
    """Clean text with a title and a content hash: HTML, Markdown and reStructuredText are
    reduced to what a reader sees (see :mod:`copilotz_orm.rag.markup`); the hash is of that
    clean text, so a change of markup alone is not a new version."""
    if not isinstance(text, str):
        raise DocumentError(f"document text must be a string, got {type(text).__name__}")
    if title is not None and not isinstance(title, str):
        raise InvalidInput(f"title must be a string or None, got {type(title).__name__}")
    if source_uri is not None and (not isinstance(source_uri, str) or not source_uri.strip()):
        raise InvalidInput(f"source_uri must be a non-empty string or None, got {source_uri!r}")
    text = clean_text(text)
    title = clean_text(title) if title is not None and title.strip() else None
    source_uri = clean_text(source_uri) if source_uri is not None else None
    if mime_type == "text/html":
        text, html_title = html_to_text(text)
        title = title or html_title or None
    elif mime_type == "text/markdown":
        text = markdown_to_text(text)
    elif mime_type == "text/x-rst":
        text = rst_to_text(text)
    if not any(ch.isprintable() and not ch.isspace() for ch in text):
        raise DocumentError(f"{source_uri or 'the text'} is empty or holds only invisible characters: "
                            "there is nothing to index")
    header = _header(text)
    return SourceDocument(text, title or _title(text, header, source_uri or "untitled"),
                          source_uri, mime_type, header)


TEXT_TYPES = ("text/plain", "text/markdown", "text/x-rst", "text/html")


def text_type(mime_type: object) -> tuple[str, str]:
    """(type, charset) of a MIME type we can ingest, e.g. ``text/HTML; charset="UTF-8"`` gives
    ("text/html", "utf-8"); parameters are parsed as e-mail headers parse them. Anything else
    raises DocumentError."""
    if not isinstance(mime_type, str) or "/" not in mime_type.partition(";")[0]:
        raise DocumentError(f"{mime_type!r} is not a MIME type: use one of {', '.join(TEXT_TYPES)}")
    header = Message()
    header["content-type"] = mime_type
    base = header.get_content_type()
    if base not in TEXT_TYPES:
        raise DocumentError(f"MIME type {mime_type!r} cannot be ingested: use one of {', '.join(TEXT_TYPES)} "
                            "(convert other formats to text first)")
    charset = header.get_param("charset")
    return base, (charset if isinstance(charset, str) else "utf-8").strip().lower()


def read_bytes(data: bytes, mime_type: str, *, title: str | None = None,
               source_uri: str | None = None) -> SourceDocument:
    """A document given as bytes with its MIME type (UTF-8 text of one of TEXT_TYPES; a
    `; charset=utf-8` parameter is accepted)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DocumentError(f"content bytes must be bytes, got {type(data).__name__}")
    if not isinstance(mime_type, str):
        raise DocumentError("give the MIME type of the bytes: mime_type='text/markdown', for example")
    base, charset = text_type(mime_type)
    if charset not in ("utf-8", "utf8"):
        raise DocumentError(f"charset {charset!r} is not supported: convert the bytes to UTF-8 first")
    return read_text(_decode(bytes(data), "the bytes"), title=title, source_uri=source_uri, mime_type=base)


def _decode(data: bytes, what: str) -> str:
    """UTF-8 text (a BOM allowed) from bytes of a file or a call; `what` names them in errors."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise DocumentError(f"{what} is UTF-16 text (it starts with a UTF-16 byte order mark); convert it to UTF-8 first")
    if b"\x00" in data[:8192]:
        raise DocumentError(f"{what} looks binary (it contains NUL bytes); only text can be ingested")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(
            f"{what} is not UTF-8 text (invalid byte at offset {exc.start}); convert it to UTF-8 first"
        ) from None


_OUR_TYPES = {".rst": "text/x-rst", ".rest": "text/x-rst", ".md": "text/markdown", ".markdown": "text/markdown",
              ".html": "text/html", ".htm": "text/html", ".txt": "text/plain"}


def read_file(path: str | Path) -> SourceDocument:
    """Read a UTF-8 text file. Empty, binary and unreadable files raise :class:`DocumentError`."""
    if not isinstance(path, (str, os.PathLike)) or "\x00" in str(path):
        raise DocumentError(f"not a file path: {path!r}")
    path = Path(path)
    try:
        if not path.is_file():
            raise DocumentError(f"{path} is not a regular file (a folder, device, pipe or missing)")
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise DocumentError(f"{path}: {size} bytes is over the {MAX_BYTES // (1024 * 1024)} MB limit")
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if not data.strip():
        raise DocumentError(f"{path} is empty: there is nothing to index")
    text = _decode(data, str(path))
    # Our own names for the formats we parse: the system's MIME table differs between machines
    # (.rst is text/prs.fallenstein.rst on Debian, unknown elsewhere).
    mime = (_OUR_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "text/plain")
    return read_text(text, source_uri=source_path(path), mime_type=mime)


def source_path(path: Path) -> str:
    """A file's absolute path as a source URI. Bytes of the name that are not UTF-8 are written
    as \\xNN escapes: replacing them with U+FFFD would give two files one source."""
    return os.fsencode(path.resolve()).decode("utf-8", "backslashreplace")
