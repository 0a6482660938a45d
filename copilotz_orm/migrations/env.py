"""Alembic environment for copilotz_orm, one tenant schema per run.

Programmatic use passes ``connection`` and ``schema`` in ``config.attributes`` (see
``copilotz_orm.migrations.upgrade``). From the command line::

    alembic -x tenant=acme [-x url=postgresql://…] upgrade head

The URL is ``-x url=``, else ``COPILOTZ_DATABASE_URL``, else ``sqlalchemy.url`` in alembic.ini.
Only ``upgrade`` creates a missing schema (or ``file:`` database).
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, func, select
from sqlalchemy.schema import CreateSchema

from copilotz_orm.migrations import VERSION_TABLE
from copilotz_orm.models import Base
from copilotz_orm.tenancy import validate_schema_name

config = context.config


def _schema() -> str:
    schema = config.attributes.get("schema") or context.get_x_argument(as_dictionary=True).get("tenant")
    return validate_schema_name(schema or "public")


def _include_object(obj, name, type_, reflected, compare_to):  # noqa: ARG001
    # Autogenerate compares our tables only; a host application's tables are not ours to drop.
    if type_ == "table":
        return name in Base.metadata.tables or f"copilotz.{name}" in Base.metadata.tables
    return True


def run_on(connection: Connection, schema: str) -> None:
    quoted = connection.dialect.identifier_preparer.quote_identifier(schema)
    # The extension types (vector) live in public; keep it on the path after the tenant.
    path = quoted if schema == "public" else f"{quoted}, public"
    connection.execute(select(func.set_config("search_path", path, True)))
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        version_table_schema=schema,
        include_object=_include_object,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_command_line(schema: str) -> None:
    from copilotz_orm.config import ENV_URL, DbConfig, parse_url
    from copilotz_orm.database import create_database
    from copilotz_orm.migrations import upgrading

    url = (context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(ENV_URL)
           or config.get_main_option("sqlalchemy.url"))
    if not url:
        raise SystemExit(f"no database given: use -x url=postgresql://… or file:PATH, or set {ENV_URL}")
    # Only `upgrade` may create things: `current`, `downgrade`, `history` on a mistyped name must not.
    creating = upgrading()
    target = parse_url(url)
    if target.kind == "file" and not (target.path / "PG_VERSION").exists() and not creating:
        raise SystemExit(f"no database at {target.path}")
    db = await create_database(DbConfig(url=url, auto_provision_schema=False))
    try:
        async with db.engine.begin() as conn:
            if creating:
                await conn.execute(CreateSchema(schema, if_not_exists=True))
            elif not await db.schema_exists(schema):
                raise SystemExit(f"there is no schema {schema!r} in this database (copilotz-orm schema list)")
            await conn.run_sync(run_on, schema)
    finally:
        await db.close()


if context.is_offline_mode():
    raise SystemExit("copilotz_orm migrations run online only: drop --sql")

_connection = config.attributes.get("connection")
if _connection is not None:
    run_on(_connection, _schema())
else:
    if config.config_file_name:  # the command line: alembic.ini's logging says what ran
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    asyncio.run(_run_from_command_line(_schema()))
