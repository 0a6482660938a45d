"""Alembic environment for copilotz_orm, one tenant schema per run.

Programmatic use passes ``connection`` and ``schema`` in ``config.attributes`` (see
``copilotz_orm.migrations.upgrade``). From the command line::

    alembic -x tenant=acme [-x url=postgresql://…] upgrade head

The URL defaults to ``COPILOTZ_DATABASE_URL``, then ``sqlalchemy.url`` in alembic.ini.
"""

from __future__ import annotations

import asyncio
import os

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
    from copilotz_orm.config import ENV_URL, DbConfig
    from copilotz_orm.database import create_database

    url = (context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
           or os.environ.get(ENV_URL))
    if not url:
        raise SystemExit(f"no database given: use -x url=postgresql://… or file:PATH, or set {ENV_URL}")
    db = await create_database(DbConfig(url=url, auto_provision_schema=False))
    try:
        async with db.engine.begin() as conn:
            await conn.execute(CreateSchema(schema, if_not_exists=True))
            await conn.run_sync(run_on, schema)
    finally:
        await db.close()


if context.is_offline_mode():
    raise SystemExit("copilotz_orm migrations run online only: drop --sql")

_connection = config.attributes.get("connection")
if _connection is not None:
    run_on(_connection, _schema())
else:
    asyncio.run(_run_from_command_line(_schema()))
