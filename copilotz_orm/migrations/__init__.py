"""Alembic migrations shipped in the package, run per tenant schema.

Each schema keeps its own version table, ``copilotz_alembic_version``, so it never collides with
a host application's ``alembic_version``. Scripts never name a schema: ``search_path`` is set to
the tenant inside the migration transaction.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from ..tenancy import validate_schema_name

VERSION_TABLE = "copilotz_alembic_version"
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


def upgrade(connection: Connection, schema: str, revision: str = "head") -> None:
    """Upgrade `schema` on `connection`, inside the caller's transaction."""
    with _alembic_lock:
        command.upgrade(alembic_config(connection, schema), revision)


def downgrade(connection: Connection, schema: str, revision: str) -> None:
    with _alembic_lock:
        command.downgrade(alembic_config(connection, schema), revision)
