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
from alembic.util.exc import CommandError
from sqlalchemy import Connection, func, inspect, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..errors import CopilotzError, MigrationError, TenantNotFound, translate_db_errors
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
    try:
        return ctx.get_current_revision()
    except CommandError as exc:
        raise MigrationError(f"schema {schema!r}: {exc} (its {VERSION_TABLE} table has been edited)") from exc


@contextmanager
def _nested_safely(connection: Connection) -> Iterator[None]:
    """Run one of our migrations inside whatever the caller is doing, even a host application's
    own Alembic env.py: Alembic's module-level proxies (`alembic.context`, `alembic.op`) and the
    transaction's search_path are put back afterwards."""
    proxies = [(module, getattr(module, "_proxy", None)) for module in (alembic.context, alembic.op)]
    path = connection.execute(select(func.current_setting("search_path"))).scalar_one()
    # On an event loop's thread, blocking here would block the loop, and with it the coroutine
    # holding the lock: refuse instead (await migrate_all() queues its schemas properly).
    if not _alembic_lock.acquire(blocking=asyncio._get_running_loop() is None):
        raise MigrationError("another copilotz migration is running in this event loop; run them one at a "
                             "time (await copilotz_orm.migrate_all(engine) migrates many schemas in turn)")
    try:
        yield
    except CommandError as exc:
        raise MigrationError(f"{exc}. The schema's version table ({VERSION_TABLE}) names a revision this "
                             "copilotz_orm does not know (a newer release?) or more than one") from exc
    finally:
        for _module, proxy in proxies:
            if proxy is not None:
                proxy._install_proxy()
        _alembic_lock.release()
    connection.execute(select(func.set_config("search_path", path, True)))


def current_revision_or_none(connection: Connection, schema: str) -> str | None:
    """Like :func:`current_revision`, but None for a damaged version table too."""
    try:
        return current_revision(connection, schema)
    except MigrationError:
        return None


def upgrade(connection: Connection, schema: str, revision: str = "head") -> None:
    """Upgrade `schema` on `connection`, inside the caller's transaction."""
    with _nested_safely(connection):
        command.upgrade(alembic_config(connection, schema), revision)


def downgrade(connection: Connection, schema: str, revision: str) -> None:
    with _nested_safely(connection):
        command.downgrade(alembic_config(connection, schema), revision)


def upgrading() -> bool:
    """For your application's Alembic env.py: True while Alembic runs ``upgrade`` (from the
    command line or ``command.upgrade()``), False for ``downgrade``, ``check``, ``revision
    --autogenerate``, ``current`` and the rest, so our schemas are only upgraded alongside yours."""
    environment = getattr(alembic.context, "_proxy", None)
    step = environment.context_opts.get("fn") if environment is not None else None
    return getattr(step, "__name__", None) == "upgrade" and not environment.is_offline_mode()


def skip_copilotz_tables(connection: Connection) -> Callable[..., bool]:
    """An ``include_object`` hook for your application's Alembic env.py
    (``context.configure(include_object=skip_copilotz_tables(connection))``): autogenerate
    ignores our tables in the schemas that hold copilotz tables, so it never proposes to drop
    them (copilotz_orm migrates them itself). Your own tables compare as usual, even one named
    like ours in a schema of yours."""
    began = not connection.in_transaction()
    ours = set(tenant_schemas(connection))
    default = connection.dialect.default_schema_name
    if began:
        # Reading began a transaction; Alembic would then take it for the caller's and never
        # commit the migrations. End it, so Alembic begins (and commits) its own.
        connection.commit()

    def include_object(obj, name, type_, reflected, compare_to) -> bool:
        if type_ == "table" and reflected and compare_to is None and name in _OUR_TABLES:
            return (obj.schema or default) not in ours
        return True

    return include_object


def lock_schema(connection: Connection, schema: str) -> None:
    """Take the schema's advisory lock until the end of the connection's transaction."""
    connection.execute(select(func.pg_advisory_xact_lock(LOCK_SCHEMA, func.hashtext(schema))))


def tenant_schemas(connection: Connection) -> list[str]:
    """Schemas that hold copilotz tables (a copilotz version table), sorted."""
    insp = inspect(connection)
    return sorted(s for s in insp.get_schema_names() if VERSION_TABLE in insp.get_table_names(schema=s))


@dataclass(frozen=True)
class SchemaMigration:
    """What migrating one schema did (`error` says why it was not migrated)."""

    schema: str
    before: str | None
    after: str | None
    error: str | None = None

    @property
    def changed(self) -> bool:
        return self.error is None and self.before != self.after


def upgrade_schema(connection: Connection, schema: str, revision: str = "head") -> SchemaMigration:
    """Upgrade one copilotz schema under its advisory lock, in the caller's transaction. The
    schema and its revision are read once the lock is held, so a schema another process has just
    migrated (or dropped) is seen as it now is."""
    schema = validate_schema_name(schema)
    lock_schema(connection, schema)
    if schema not in inspect(connection).get_schema_names():
        raise TenantNotFound(f"there is no schema {schema!r} to migrate (create it with "
                             f"db.provision_schema({schema!r}) or: copilotz-orm schema provision {schema})")
    before = current_revision(connection, schema)
    if before is None:
        raise TenantNotFound(f"schema {schema!r} holds no copilotz tables, so there is nothing to migrate; "
                             f"to add them, provision it: db.provision_schema({schema!r})")
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
    revision twice. A schema that cannot be migrated does not stop the others: they are all
    tried, then :class:`MigrationError` lists the failures (its ``results`` has every schema).
    With `schemas` omitted, a schema dropped meanwhile is skipped. `on_schema` is called after
    each schema (for progress)."""
    listed = schemas is None
    names = [validate_schema_name(s) for s in schemas] if schemas is not None else None
    if names is None:
        async with engine.connect() as conn:
            names = await conn.run_sync(tenant_schemas)
    results = []
    for schema in names:
        try:
            async with run_alone(), engine.begin() as conn:
                with translate_db_errors(f"migrating schema {schema!r}"):
                    result = await conn.run_sync(upgrade_schema, schema, revision)
        except TenantNotFound as exc:
            if listed:
                continue  # dropped since we listed it: nothing to migrate
            result = SchemaMigration(schema, None, None, error=str(exc))
        except (CopilotzError, DBAPIError) as exc:
            result = SchemaMigration(schema, None, None, error=str(exc).splitlines()[0])
        results.append(result)
        if on_schema is not None:
            on_schema(result)
    failed = [r for r in results if r.error]
    if failed:
        error = MigrationError(f"{len(failed)} of {len(results)} schemas could not be migrated: "
                               + "; ".join(f"{r.schema}: {r.error}" for r in failed))
        error.results = results
        raise error
    return results
