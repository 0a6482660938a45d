"""Typed errors for servers we cannot use: unreachable, or without pgvector."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from copilotz_orm import DbConfig, EmbeddingConfig, QueueItem, Thread, create_database
from copilotz_orm.embedded import PG_SYSTEM_USER
from copilotz_orm.errors import DatabaseUnavailable, ExtensionMissing, TenantNotFound


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_unreachable_server_is_typed():
    with pytest.raises(DatabaseUnavailable, match="Check that the server is running"):
        await create_database(DbConfig(url=f"postgresql://postgres@127.0.0.1:{free_port()}/x",
                                       embedding=EmbeddingConfig(model="hashing")))


async def test_unknown_extension_is_typed(db):
    url = db.engine.url.render_as_string(hide_password=False)
    with pytest.raises(ExtensionMissing, match="no_such_extension"):
        await create_database(DbConfig(url=url, extensions=["vector", "no_such_extension"],
                                       embedding=EmbeddingConfig(model="hashing")))


async def test_unprovisioned_schema_without_auto_provision(db):
    url = db.engine.url.render_as_string(hide_password=False)
    async with await create_database(DbConfig(url=url, auto_provision_schema=False,
                                              embedding=EmbeddingConfig(model="hashing"))) as strict:
        with pytest.raises(TenantNotFound, match="not provisioned"):
            await strict.ops.get_node_by_id("x", schema="never_made")
        assert not await strict.schema_exists("never_made")


def _system_postgres() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


@pytest.mark.skipif(_system_postgres() is None, reason="no system PostgreSQL (without pgvector) here")
async def test_server_without_pgvector_is_typed():
    bindir = _system_postgres()
    datadir = Path(tempfile.mkdtemp(prefix="copilotz-nopgvector-"))
    datadir.chmod(0o755)
    run_as = {}
    if os.geteuid() == 0:
        entry = pwd.getpwnam(PG_SYSTEM_USER) if _has_user(PG_SYSTEM_USER) else None
        if entry is None:
            pytest.skip(f"user {PG_SYSTEM_USER} does not exist yet")
        run_as = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        os.chown(datadir, entry.pw_uid, entry.pw_gid)
    data = datadir / "data"
    port = free_port()
    subprocess.run([bindir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync"],
                   check=True, capture_output=True, **run_as)
    subprocess.run([bindir / "pg_ctl", "-D", data, "-w", "-l", data / "log", "-o",
                    f"-h 127.0.0.1 -p {port} -k {data}", "start"], check=True, capture_output=True, **run_as)
    try:
        if Path("/usr/share/postgresql", bindir.parent.name, "extension", "vector.control").exists():
            pytest.skip("this system PostgreSQL has pgvector")
        with pytest.raises(ExtensionMissing, match="pgvector"):
            await create_database(DbConfig(url=f"postgresql://postgres@127.0.0.1:{port}/postgres",
                                           embedding=EmbeddingConfig(model="hashing")))
    finally:
        subprocess.run([bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"], capture_output=True, **run_as)
        shutil.rmtree(datadir, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


async def test_hybrid_is_expired_matches_in_python_and_sql(db, ns):
    now = datetime.now(UTC)
    async with db.session() as s:
        thread = Thread(name="t", namespace=ns)
        s.add(thread)
        await s.flush()
        items = [QueueItem(thread_id=thread.id, event_type="E", namespace=ns, expires_at=when)
                 for when in (now - timedelta(minutes=1), now + timedelta(hours=1), None)]
        s.add_all(items)
        await s.flush()
        in_sql = dict((await s.execute(select(QueueItem.id, QueueItem.is_expired)
                                       .where(QueueItem.namespace == ns))).all())
        expired = set((await s.execute(select(QueueItem.id).where(QueueItem.namespace == ns,
                                                                   QueueItem.is_expired))).scalars())
        active = (await s.execute(select(Thread.id).where(Thread.namespace == ns, Thread.is_active))).scalars().all()
    assert {i.id: i.is_expired for i in items} == in_sql
    assert expired == {items[0].id}
    assert thread.is_active and active == [thread.id]


async def test_bring_your_own_engine_is_used_and_left_open(db, ns):
    from sqlalchemy import func
    from sqlalchemy.ext.asyncio import create_async_engine

    from copilotz_orm import Node
    from copilotz_orm.tenancy import translate_map

    host_engine = create_async_engine(db.engine.url)
    try:
        mine = await create_database(DbConfig(embedding=EmbeddingConfig(model="hashing")), engine=host_engine)
        assert mine.server is None and mine.engine is host_engine
        node = await mine.ops.create_node(namespace=ns, type="entity", name="from host engine")
        await mine.close()
        async with host_engine.connect() as conn:  # still open: it is the host's to dispose
            await conn.execution_options(schema_translate_map=translate_map("public"))
            assert await conn.scalar(select(func.count()).select_from(Node).where(Node.id == node.id)) == 1
    finally:
        await host_engine.dispose()
