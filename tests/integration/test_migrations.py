"""Alembic: one head, per-tenant version tables, the command line, downgrade and upgrade."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from sqlalchemy import inspect

from copilotz_orm import migrations
from tests.conftest import ROOT



def test_single_head():
    assert migrations.head_revision() == "0006_orphan_nodes"


def server_url(db) -> str:
    return db.engine.url.render_as_string(hide_password=False)


def alembic(db, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), *args],
        capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, "COPILOTZ_DATABASE_URL": server_url(db)},
    )


async def tables(db, schema):
    async with db.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names(schema=schema)))


async def test_alembic_command_line_per_tenant(db):
    tenant = f"cli_{uuid.uuid4().hex[:8]}"
    public_before = await tables(db, "public")
    try:
        up = alembic(db, "-x", f"tenant={tenant}", "upgrade", "head")
        assert up.returncode == 0, up.stderr
        assert {"nodes", "edges", "documents", "chunks", "threads", "events", "queue_items",
                migrations.VERSION_TABLE} <= await tables(db, tenant)
        await db.ops.create_node(namespace="n", type="entity", name="x", schema=tenant)

        down = alembic(db, "-x", f"tenant={tenant}", "downgrade", "base")
        assert down.returncode == 0, down.stderr
        assert await tables(db, tenant) == {migrations.VERSION_TABLE}
        db._ready.discard(tenant)  # we changed it behind the cache's back

        again = alembic(db, "-x", f"tenant={tenant}", "upgrade", "head")
        assert again.returncode == 0, again.stderr
        assert "nodes" in await tables(db, tenant)
        # the default schema was not touched by any of this
        assert await tables(db, "public") == public_before
    finally:
        await db.drop_schema(tenant)


async def test_alembic_refuses_bad_tenant_names(db):
    await db.provision_schema("public")
    bad = alembic(db, "-x", 'tenant=x"; DROP SCHEMA public CASCADE; --', "upgrade", "head")
    assert bad.returncode != 0 and "invalid schema name" in bad.stderr
    assert "nodes" in await tables(db, "public")


async def test_version_table_lives_in_each_schema(db, tenant):
    await db.provision_schema("public")
    await db.provision_schema(tenant)
    for schema in ("public", tenant):
        async with db.engine.connect() as conn:
            assert await conn.run_sync(migrations.current_revision, schema) == migrations.head_revision()
    assert "alembic_version" not in await tables(db, tenant)  # never the host app's table name


async def test_migrations_build_what_the_models_declare(db):
    """Autogenerate finds nothing to change between a migrated schema and the models: a model
    change without a migration (or the reverse) fails here."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import MetaData

    from copilotz_orm import Base
    from copilotz_orm.ddl import HNSW_INDEX

    plain = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(plain, schema=None)  # as the migrations see them: on search_path

    def diff(conn):
        ctx = MigrationContext.configure(conn, opts={
            "compare_type": True, "version_table": migrations.VERSION_TABLE,
            # made per schema at provisioning, for the schema's embedding dimension
            "include_object": lambda obj, name, type_, reflected, compare_to: name != HNSW_INDEX})
        return compare_metadata(ctx, plain)

    async with db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_alembic_command_line_reads_without_creating_and_says_what_it_did(db):
    typo = f"typo_{uuid.uuid4().hex[:6]}"
    current = alembic(db, "-x", f"tenant={typo}", "current")
    assert current.returncode != 0 and "there is no schema" in current.stderr
    assert not await db.schema_exists(typo)
    tenant = f"cli_{uuid.uuid4().hex[:8]}"
    try:
        up = alembic(db, "-x", f"tenant={tenant}", "upgrade", "head")
        assert up.returncode == 0 and "Running upgrade  -> 0001_baseline" in up.stderr, up.stderr
    finally:
        await db.drop_schema(tenant)
