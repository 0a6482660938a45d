"""`DbConfig` (the original's `dbConfig`) and the parsing of its URL forms."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from .errors import ConfigError

ENV_URL = "COPILOTZ_DATABASE_URL"
MEMORY = ":memory:"
DEFAULT_MODEL = "all-MiniLM-L6-v2"
HASHING_MODEL = "hashing"


class EmbeddingConfig(BaseModel):
    """The embedding space of a store: which model produces vectors, and their dimension.

    `model=None` means: the local all-MiniLM-L6-v2 model when the `embeddings` extra is
    installed, otherwise the deterministic hashing embedder.
    """

    model_config = ConfigDict(frozen=True)

    model: str | None = None
    dimension: int = Field(default=384, ge=1, le=16000)


class DbConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    default_schema: str = "public"
    auto_provision_schema: bool = True
    sync_url: str | None = None
    extensions: list[str] = Field(default_factory=lambda: ["vector", "pg_trgm", "uuid-ossp"])
    schema_sql: list[str] = Field(default_factory=list)
    use_worker: bool = False
    log_metrics: bool = False
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)

    @field_validator("schema_sql", mode="before")
    @classmethod
    def _one_string_is_one_statement(cls, value: object) -> object:
        # The original spread a string into characters; a single string is one statement here.
        return [value] if isinstance(value, str) else value

    def resolved_url(self) -> str:
        if self.url is not None:
            return self.url  # an empty string is a mistake, reported by parse_url
        return os.environ.get(ENV_URL) or MEMORY


@dataclass(frozen=True)
class Target:
    """Where the database lives: a server URL, or an embedded server (ephemeral or at a path)."""

    kind: Literal["server", "memory", "file"]
    url: URL | None = None
    path: Path | None = None
    connect_args: dict = field(default_factory=dict)


_SERVER_SCHEMES = {"postgres", "postgresql", "postgresql+asyncpg"}
_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def parse_url(raw: str) -> Target:
    """Turn a `DbConfig.url` into a :class:`Target`, or raise :class:`ConfigError`."""
    text = raw.strip()
    if not text:
        raise ConfigError("the database URL is empty; use ':memory:', 'file:PATH' or 'postgresql://…'")
    if text == MEMORY:
        return Target("memory")
    if text.startswith("file:"):
        rest = text[len("file:"):]
        if rest.startswith("//"):
            rest = rest[2:]
            if rest and not rest.startswith("/"):
                raise ConfigError(
                    f"{raw!r}: a file URL with a host is not supported; use 'file:///abs/path' or 'file:./relative'"
                )
        if not rest or "\x00" in rest:
            raise ConfigError(f"{raw!r}: give a data directory, e.g. 'file:./.copilotz/db'")
        return Target("file", path=Path(rest).expanduser().resolve())
    scheme = text.split("://", 1)[0] if "://" in text else ""
    shown = _redact(text)
    if scheme not in _SERVER_SCHEMES:
        raise ConfigError(
            f"unsupported database URL {shown!r}: use ':memory:', 'file:PATH', "
            "'postgres://…', 'postgresql://…' or 'postgresql+asyncpg://…'"
        )
    try:
        url = make_url(text)
        url.port  # noqa: B018 - parses the port
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"malformed database URL {shown!r}: {_redact(str(exc))}") from None
    query = dict(url.query)
    connect_args: dict[str, object] = {}
    if "sslmode" in query:
        sslmode = query.pop("sslmode")
        if sslmode not in _SSLMODES:
            raise ConfigError(f"sslmode in {shown!r} must be one of {', '.join(_SSLMODES)}")
        connect_args["ssl"] = sslmode  # asyncpg takes libpq's sslmode values
    if "port" in query and not str(query["port"]).isdigit():
        raise ConfigError(f"port in {shown!r} must be a number")
    if "connect_timeout" in query:
        try:
            connect_args["timeout"] = float(query.pop("connect_timeout"))
        except ValueError:
            raise ConfigError(f"connect_timeout in {shown!r} must be a number of seconds") from None
    if "application_name" in query:
        connect_args["server_settings"] = {"application_name": query.pop("application_name")}
    unknown = sorted(set(query) - {"host", "port"})
    if unknown:
        raise ConfigError(
            f"unsupported URL parameter(s) {', '.join(unknown)} in {shown!r}: supported are host, port, "
            "sslmode, connect_timeout and application_name"
        )
    url = url.set(drivername="postgresql+asyncpg", query=query)
    return Target("server", url=url, connect_args=connect_args)


def _redact(text: str) -> str:
    """The URL with any password replaced, for error messages."""
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)
