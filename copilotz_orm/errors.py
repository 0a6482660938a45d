"""Typed errors. Every error the package raises on purpose derives from :class:`CopilotzError`.

Database errors are classified by SQLSTATE (never by message text) in :func:`translate_db_errors`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError


class CopilotzError(Exception):
    """Root of every error raised by copilotz_orm."""


# -- configuration and server -------------------------------------------------------------------
class ConfigError(CopilotzError, ValueError):
    """The configuration is malformed (for example an unknown database URL form)."""


class DatabaseUnavailable(CopilotzError):
    """The PostgreSQL server could not be reached."""


class ExtensionMissing(CopilotzError):
    """A required PostgreSQL extension (pgvector) is not installed on the server."""


class EmbeddedServerError(CopilotzError):
    """The embedded PostgreSQL server could not be started or stopped."""


# -- input ----------------------------------------------------------------------------------------
class InvalidInput(CopilotzError, ValueError):
    """An argument was refused before anything was written."""


class InvalidSchemaName(InvalidInput):
    """A tenant schema name is not a safe PostgreSQL identifier."""


class EmbeddingMismatch(InvalidInput):
    """A vector does not belong to the schema's embedding space (wrong dimension or model)."""


class DocumentError(InvalidInput):
    """A document cannot be ingested (empty, binary, unreadable)."""


# -- state ----------------------------------------------------------------------------------------
class NotFound(CopilotzError, LookupError):
    """A referenced row does not exist."""


class NodeNotFound(NotFound):
    """A node referenced by id does not exist in this schema."""


class TenantNotFound(NotFound):
    """The tenant schema does not exist and auto-provisioning is off."""


class Conflict(CopilotzError):
    """A uniqueness rule was violated."""


class TransactionAborted(CopilotzError):
    """A statement failed inside a transaction whose block then ended normally: PostgreSQL rolled
    the whole transaction back, and nothing in it was stored."""


class MigrationError(CopilotzError):
    """A schema cannot be migrated (an unknown revision, a damaged version table)."""


class QueryCanceled(CopilotzError):
    """The statement was cancelled (statement timeout or cancellation)."""


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = exc.orig
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


@contextmanager
def translate_db_errors(context: str = "") -> Iterator[None]:
    """Re-raise driver errors we understand as typed errors; others pass through unchanged."""
    try:
        yield
    except DBAPIError as exc:
        state = _sqlstate(exc)
        where = f" ({context})" if context else ""
        detail = str(exc.orig).splitlines()[-1] if exc.orig else str(exc)
        if state == "23503":
            raise NodeNotFound(
                f"a referenced row does not exist{where}: {detail}. Create it first."
            ) from exc
        if state == "23505":
            raise Conflict(f"already exists{where}: {detail}") from exc
        if state in {"40P01", "40001"}:
            raise Conflict(
                f"a concurrent change got in the way{where}: {detail}. Nothing was written; try again."
            ) from exc
        if state == "57014":
            raise QueryCanceled(f"statement cancelled{where}: {detail}") from exc
        if state == "3F000":
            raise TenantNotFound(
                f"schema does not exist{where}: {detail}. It was dropped since this process first used it: "
                "provision it with db.provision_schema() (with auto_provision_schema on, the next call does)."
            ) from exc
        if state == "42P01":
            raise TenantNotFound(
                f"tables are missing{where}: {detail}. The schema was dropped or damaged since this "
                "process first used it: provision it with db.provision_schema() or 'copilotz-orm schema "
                "provision NAME' (with auto_provision_schema on, the next call does)."
            ) from exc
        if state in {"22P05", "22021"}:
            raise InvalidInput(
                f"text could not be stored{where}: {detail}. Remove NUL bytes and invalid characters."
            ) from exc
        raise
