"""Revision 0002 on populated tenants, and migrating every tenant at once from two processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import func, inspect, select, table

from copilotz_orm import Chunk, DbConfig, EmbeddingConfig, create_database, migrations
from copilotz_orm.errors import MigrationError, TenantNotFound
from tests.conftest import ROOT
from tests.integration.test_migrations import alembic, server_url

pytestmark = pytest.mark.asyncio(loop_scope="session")

BASELINE = "0001_baseline"


async def chunk_columns(db, schema) -> tuple[set[str], set[str]]:
    async with db.engine.connect() as conn:
        def look(c):
            insp = inspect(c)
            return ({col["name"] for col in insp.get_columns("chunks", schema=schema)},
                    {ix["name"] for ix in insp.get_indexes("chunks", schema=schema)})
        return await conn.run_sync(look)


async def revision(db, schema) -> str | None:
    async with db.engine.connect() as conn:
        return await conn.run_sync(migrations.current_revision, schema)


async def populate(db, schema) -> dict[str, int]:
    ops = db.tenant(schema, namespace="docs").ops
    a = await ops.create_node(type="entity", name="a")
    b = await ops.create_node(type="entity", name="b")
    await ops.create_edge(source_id=a.id, target_id=b.id, type="RELATED_TO")
    for i in range(3):
        await ops.ingest_text(f"populated tenant document number {i} " * 60)
    return await row_counts(db, schema)


async def row_counts(db, schema) -> dict[str, int]:
    async with db.engine.connect() as conn:
        def count(c):
            tables = inspect(c).get_table_names(schema=schema)
            return {t: c.execute(select(func.count()).select_from(table(t, schema=schema))).scalar_one()
                    for t in sorted(tables)}
        return await conn.run_sync(count)


async def test_down_and_up_on_a_populated_tenant_with_the_alembic_command(db, tenant):
    counts = await populate(db, tenant)
    assert counts["chunks"] > 3 and counts["edges"] > 1
    columns, indexes = await chunk_columns(db, tenant)
    assert "metadata" in columns and "ix_chunks_metadata" in indexes

    assert counts["search_terms"] == 4  # populated, tenant, document, number: the words ingestion added
    kept = dict(counts)
    steps = [("0005_search_terms", None), ("0004_reembedding", "search_terms"), ("0003_document_lifecycle", "pending_embeddings"),
             ("0002_chunk_metadata", None), (BASELINE, None)]
    for expected, dropped in steps:  # one revision at a time; each drops only its own table
        down = alembic(db, "-x", f"tenant={tenant}", "downgrade", "-1")
        assert down.returncode == 0, down.stderr
        assert await revision(db, tenant) == expected
        kept.pop(dropped, None)
        assert await row_counts(db, tenant) == kept
    db._ready.discard(tenant)  # changed behind the cache's back
    columns, indexes = await chunk_columns(db, tenant)
    assert "metadata" not in columns and "ix_chunks_metadata" not in indexes

    up = alembic(db, "-x", f"tenant={tenant}", "upgrade", "head")
    assert up.returncode == 0, up.stderr
    assert await revision(db, tenant) == migrations.head_revision()
    assert await row_counts(db, tenant) == counts  # 0005 fills the vocabulary ingestion had filled
    async with db.tenant(tenant).session() as s:  # old rows got the column's default
        assert list(await s.scalars(select(Chunk.metadata_).distinct())) == [{}]
    # and the tenant works as before: search and ingest
    hits = await db.tenant(tenant, namespace="docs").ops.search_chunks("populated tenant", mode="text")
    assert hits
    assert await db.tenant(tenant, namespace="docs").ops.search_chunks("populatd", mode="text")


async def test_old_tenant_without_auto_provision_says_to_migrate(db, tenant):
    await db.provision_schema(tenant)
    async with db.engine.begin() as conn:
        await conn.run_sync(migrations.downgrade, tenant, BASELINE)
    strict = await create_database(DbConfig(url=server_url(db), auto_provision_schema=False,
                                            embedding=EmbeddingConfig(model="hashing")))
    try:
        with pytest.raises(TenantNotFound, match="migrate --all"):
            await strict.ops.get_node_by_id("x", schema=tenant)
        [done] = await strict.migrate_all([tenant])
        assert (done.before, done.after, done.changed) == (BASELINE, migrations.head_revision(), True)
        assert await strict.ops.get_node_by_id("x", schema=tenant) is None
        [again] = await strict.migrate_all([tenant])
        assert not again.changed
    finally:
        await strict.close()


async def test_migrate_a_missing_schema_is_a_typed_error(db):
    with pytest.raises(MigrationError, match="no schema") as caught:
        await db.migrate_all([f"missing_{uuid.uuid4().hex[:6]}"])
    assert [r.error is not None for r in caught.value.results] == [True]


async def test_two_processes_migrate_all_twenty_tenants_at_once(db):
    tenants = [f"mig_{uuid.uuid4().hex[:6]}_{i}" for i in range(20)]
    try:
        for schema in tenants:
            await db.provision_schema(schema)
        await db.tenant(tenants[0], namespace="n").ops.ingest_text("one populated tenant " * 40)
        async with db.engine.begin() as conn:
            for schema in tenants:
                await conn.run_sync(migrations.downgrade, schema, BASELINE)
        for schema in tenants:
            db._ready.discard(schema)

        env = {**os.environ, "COPILOTZ_DATABASE_URL": server_url(db)}
        command = [sys.executable, "-m", "copilotz_orm.cli", "--model", "hashing", "migrate", "--all", "--json"]
        runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 cwd=ROOT, env=env) for _ in range(2)]
        results = [run.communicate(timeout=300) + (run.returncode,) for run in runs]
        for out, err, code in results:
            assert code == 0, err
        changed: dict[str, int] = {}
        for out, _, _ in results:
            for m in json.loads(out):
                changed[m["schema"]] = changed.get(m["schema"], 0) + m["changed"]
        for schema in tenants:
            assert changed[schema] == 1  # upgraded by exactly one of the two processes
            assert await revision(db, schema) == migrations.head_revision()
            assert (await row_counts(db, schema))[migrations.VERSION_TABLE] == 1
    finally:
        for schema in tenants:
            await db.drop_schema(schema)
