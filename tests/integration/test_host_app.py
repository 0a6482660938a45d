"""An existing SQLAlchemy + Alembic application with copilotz_orm beside it (examples/host_app)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import pytest_asyncio
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, func, inspect, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

from copilotz_orm import EmbeddingConfig, Node, create_database, embedded_server, migrations, tenant_engine
from tests.conftest import ROOT

pytestmark = pytest.mark.asyncio(loop_scope="session")

sys.path.insert(0, str(ROOT / "examples" / "host_app"))
from models import AppBase, Customer  # noqa: E402  (the example's own models)


@pytest_asyncio.fixture(loop_scope="session")
async def host():
    """A fresh server with the host app's engine and copilotz_orm on it (our tables in public)."""
    with embedded_server() as server:
        engine = create_async_engine(server.url)
        db = await create_database(engine=engine, embedding=EmbeddingConfig(model="hashing"))
        try:
            yield engine, db
        finally:
            await db.close()
            await engine.dispose()


def sync_url(engine) -> str:
    return engine.url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def app_alembic(app, engine, *args):
    return subprocess.run([sys.executable, "-m", "alembic", "-c", str(app / "alembic.ini"), *args],
                          capture_output=True, text=True, cwd=app,
                          env={**os.environ, "APP_DATABASE_URL": sync_url(engine)})


async def test_host_alembic_runs_our_migrations_and_autogenerate_leaves_our_tables(host, tmp_path):
    engine, db = host
    app = tmp_path / "app"
    shutil.copytree(ROOT / "examples" / "host_app", app, ignore=shutil.ignore_patterns("__pycache__"))
    ada = await db.tenant("acme", namespace="crm").ops.create_node(type="user", name="Ada")
    async with engine.begin() as conn:  # acme is a tenant from an older copilotz_orm
        await conn.run_sync(migrations.downgrade, "acme", "0001_baseline")

    up = app_alembic(app, engine, "upgrade", "head")
    assert up.returncode == 0, up.stderr
    head = migrations.head_revision()
    assert f"copilotz schema acme: 0001_baseline -> {head}" in up.stdout
    assert "copilotz schema public" not in up.stdout  # never used: nothing of ours in public
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert {"customers", "alembic_version"} <= tables and "nodes" not in tables
        assert await conn.run_sync(migrations.current_revision, "acme") == head
    assert await db.ops.get_node_by_id(ada.id, schema="acme") is not None

    check = app_alembic(app, engine, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    # `check` and `downgrade` leave our schemas alone; `upgrade` from Python (no command line) does not
    async with engine.begin() as conn:
        await conn.run_sync(migrations.downgrade, "acme", "0001_baseline")
    assert app_alembic(app, engine, "check").returncode == 0
    async with engine.connect() as conn:
        assert await conn.run_sync(migrations.current_revision, "acme") == "0001_baseline"
    from_python = subprocess.run(
        [sys.executable, "-c", "from alembic import command; from alembic.config import Config; "
         f"command.upgrade(Config({str(app / 'alembic.ini')!r}), 'head')"],
        capture_output=True, text=True, cwd=app, env={**os.environ, "APP_DATABASE_URL": sync_url(engine)})
    assert from_python.returncode == 0, from_python.stderr
    async with engine.connect() as conn:
        assert await conn.run_sync(migrations.current_revision, "acme") == head

    probe = app_alembic(app, engine, "revision", "--autogenerate", "-m", "probe")
    assert probe.returncode == 0, probe.stderr
    [script] = (app / "migrations" / "versions").glob("*probe*.py")
    text = script.read_text()
    assert "drop_table" not in text and "drop_index" not in text and "create_table" not in text


async def test_autogenerate_across_all_schemas_proposes_nothing_of_ours(host):
    engine, db = host
    await db.provision_schema("acme")
    async with engine.begin() as conn:
        await conn.run_sync(AppBase.metadata.create_all)

        def diff(c):
            ctx = MigrationContext.configure(c, opts={"include_schemas": True,
                                                      "include_object": migrations.skip_copilotz_tables(c)})
            return compare_metadata(ctx, AppBase.metadata)
        assert await conn.run_sync(diff) == []
        # Without the hook, autogenerate would drop our tables: the hook is what protects them.
        def unprotected(c):
            return compare_metadata(MigrationContext.configure(c, opts={"include_schemas": True}), AppBase.metadata)
        assert any(d[0] == "remove_table" and d[1].name == "nodes" for d in await conn.run_sync(unprotected))


async def test_host_sessions_async_and_sync_read_and_write_our_models(host):
    engine, db = host
    async with engine.begin() as conn:
        await conn.run_sync(AppBase.metadata.create_all)
    await db.tenant("acme", namespace="crm").ops.create_node(type="user", name="Ada")

    async with async_sessionmaker(engine)() as s:  # the app's own session and table
        s.add(Customer(name="Ada", tenant="acme"))
        await s.commit()
    async with async_sessionmaker(tenant_engine(engine, "acme"))() as s:
        customer = await s.scalar(select(Customer))  # its table is not rewritten
        node = await s.scalar(select(Node).where(Node.namespace == "crm", Node.name == customer.name))
        assert node.type == "user"
        assert await s.scalar(select(func.count()).select_from(Node)) == 1  # acme's, not public's

    sync = create_engine(sync_url(engine))
    try:
        with Session(tenant_engine(sync, "acme")) as s:  # psycopg 3, synchronous
            s.add(Node(namespace="crm", type="entity", name="Order 42", data={"total": 12}))
            s.commit()
            names = sorted(s.scalars(select(Node.name).where(Node.namespace == "crm")))
            assert names == ["Ada", "Order 42"]
    finally:
        sync.dispose()
    page = await db.tenant("acme").ops.get_nodes_by_namespace("crm")
    assert [n.name for n in page.items] == ["Ada", "Order 42"]
    assert (await db.ops.get_nodes_by_namespace("crm")).items == []  # nothing leaked to public
