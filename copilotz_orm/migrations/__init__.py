"""Alembic migrations shipped in the package, run per tenant schema.

Each schema keeps its own version table, ``copilotz_alembic_version``, so it never collides with
a host application's ``alembic_version``. Scripts never name a schema: ``search_path`` is set to
the tenant inside the migration transaction.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import alembic.context
import alembic.op
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, func, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..errors import TenantNotFound
from ..models import Base
from ..tenancy import validate_schema_name

VERSION_TABLE = "copilotz_alembic_version"
_OUR_TABLES = frozenset({table.name for table in Base.metadata.tables.values()} | {VERSION_TABLE})
LOCK_SCHEMA = 0x0C0F2
"""First key of the per-schema advisory lock (the second is hashtext(schema)) that provisioning
and migrating take, so two processes never migrate one schema at once."""
SCRIPT_LOCATION = str(Path(__file__).parent)
# Alembic keeps its running context in module globals, so one migration runs at a time per
# process. Threads wait on the threading lock; coroutines of one event loop must not (a blocked
# loop never lets the holder finish), so they queue on an asyncio lock first: see run_alone().
_alembic_lock = threading.Lock()
_loop_locks: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]" = weakref.WeakKeyDictionary()


def run_alone() -> asyncio.Lock:
    """The asyncio lock every coroutine of the running loop holds around a migration."""
    loop = asyncio.get_running_loop()
    lock = _loop_locks.get(loop)
    if lock is None:
        lock = _loop_locks[loop] = asyncio.Lock()
    return lock


def alembic_config(connection: Connection | None = None, schema: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        cfg.attributes["connection"] = connection
    if schema is not None:
        cfg.attributes["schema"] = validate_schema_name(schema)
    return cfg


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations must have exactly one head, found {heads}")
    return heads[0]


def current_revision(connection: Connection, schema: str) -> str | None:
    """The revision a schema is at, or None when it was never migrated."""
    ctx = MigrationContext.configure(
        connection, opts={"version_table": VERSION_TABLE, "version_table_schema": schema}
    )
    return ctx.get_current_revision()


@contextmanager
def _nested_safely(connection: Connection) -> Iterator[None]:
    """Run one of our migrations inside whatever the caller is doing, even a host application's
    own Alembic env.py: Alembic's module-level proxies (`alembic.context`, `alembic.op`) and the
    transaction's search_path are put back afterwards."""
    proxies = [(module, getattr(module, "_proxy", None)) for module in (alembic.context, alembic.op)]
    path = connection.execute(select(func.current_setting("search_path"))).scalar_one()
    with _alembic_lock:
        try:
            yield
        finally:
            for _module, proxy in proxies:
                if proxy is not None:
                    proxy._install_proxy()
    connection.execute(select(func.set_config("search_path", path, True)))


def upgrade(connection: Connection, schema: str, revision: str = "head") -> None:
    """Upgrade `schema` on `connection`, inside the caller's transaction."""
    with _nested_safely(connection):
        command.upgrade(alembic_config(connection, schema), revision)


def downgrade(connection: Connection, schema: str, revision: str) -> None:
    with _nested_safely(connection):
        command.downgrade(alembic_config(connection, schema), revision)


def include_object(obj, name, type_, reflected, compare_to) -> bool:  # noqa: ARG001
    """For your application's Alembic env.py (``context.configure(include_object=...)``):
    autogenerate ignores copilotz tables it finds in the database, in any schema, so it never
    proposes to drop them; copilotz_orm migrates them itself. Tables of your metadata still
    compare as usual, even one with the same name as ours."""
    return not (type_ == "table" and reflected and compare_to is None and name in _OUR_TABLES)


def lock_schema(connection: Connection, schema: str) -> None:
    """Take the schema's advisory lock until the end of the connection's transaction."""
    connection.execute(select(func.pg_advisory_xact_lock(LOCK_SCHEMA, func.hashtext(schema))))


def tenant_schemas(connection: Connection) -> list[str]:
    """Schemas that hold copilotz tables (a copilotz version table), sorted."""
    insp = inspect(connection)
    return sorted(s for s in insp.get_schema_names() if VERSION_TABLE in insp.get_table_names(schema=s))


@dataclass(frozen=True)
class SchemaMigration:
    """What migrating one schema did."""

    schema: str
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


def upgrade_schema(connection: Connection, schema: str, revision: str = "head") -> SchemaMigration:
    """Upgrade one existing schema under its advisory lock, in the caller's transaction. The
    revision is read after the lock is held, so a schema another process has just migrated is
    left alone."""
    schema = validate_schema_name(schema)
    if schema not in inspect(connection).get_schema_names():
        raise TenantNotFound(f"there is no schema {schema!r} to migrate (create it with "
                             f"db.provision_schema({schema!r}) or: copilotz-orm schema provision {schema})")
    lock_schema(connection, schema)
    before = current_revision(connection, schema)
    upgrade(connection, schema, revision)
    return SchemaMigration(schema, before, current_revision(connection, schema))


def upgrade_all(connection: Connection, schemas: Sequence[str] | None = None,
                revision: str = "head") -> list[SchemaMigration]:
    """Upgrade every copilotz schema (or `schemas`) on one connection, in its transaction: for a
    host application's Alembic env.py. Prefer :func:`migrate_all`, a transaction per schema."""
    names = tenant_schemas(connection) if schemas is None else [validate_schema_name(s) for s in schemas]
    return [upgrade_schema(connection, schema, revision) for schema in names]


async def migrate_all(engine: AsyncEngine, schemas: Sequence[str] | None = None, revision: str = "head",
                      on_schema: Callable[[SchemaMigration], None] | None = None) -> list[SchemaMigration]:
    """Upgrade every schema holding copilotz tables (or just `schemas`), each in its own
    transaction under its advisory lock: processes migrating at once neither fail nor apply a
    revision twice. `on_schema` is called after each schema (for progress)."""
    names = [validate_schema_name(s) for s in schemas] if schemas is not None else None
    if names is None:
        async with engine.connect() as conn:
            names = await conn.run_sync(tenant_schemas)
    results = []
    for schema in names:
        async with run_alone(), engine.begin() as conn:
            result = await conn.run_sync(upgrade_schema, schema, revision)
        results.append(result)
        if on_schema is not None:
            on_schema(result)
    return results
