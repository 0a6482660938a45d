"""Regressions for what an attacker found in tenant scopes, transactions and migrations."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from copilotz_orm import migrations, tenant_engine
from copilotz_orm.errors import (
    ConfigError, InvalidInput, InvalidSchemaName, MigrationError, QueryCanceled, TransactionAborted,
)
from copilotz_orm.scopes import ambient_scope

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_caught_sql_error_makes_the_transaction_fail_loudly(db, tenant, ns):
    with pytest.raises(TransactionAborted, match="nothing in it was stored"):
        async with db.transaction(schema=tenant, namespace=ns) as tx:
            await tx.ops.create_node(type="t", name="written before")
            try:
                await tx.session.execute(text("SELECT 1/0"))
            except DBAPIError:
                pass
    assert (await db.tenant(tenant).ops.get_nodes_by_namespace(ns)).items == []
    # a failed op (in its savepoint) is not such an error: the rest commits
    async with db.transaction(schema=tenant, namespace=ns) as tx:
        await tx.ops.create_node(type="t", name="kept", id="k1")
        with pytest.raises(Exception):
            await tx.ops.create_node(type="t", name="dup", id="k1")
    assert [n.name for n in (await db.tenant(tenant).ops.get_nodes_by_namespace(ns)).items] == ["kept"]


async def test_an_empty_namespace_list_is_refused_not_unfiltered(db, tenant, ns):
    bound = db.tenant(tenant, namespace=ns)
    for call in (lambda: bound.ops.search_nodes("alpha", namespace=[]),
                 lambda: bound.ops.search_chunks("alpha", namespace=(), mode="text"),
                 lambda: db.ops.search_chunks("alpha", namespace=[], mode="text")):
        with pytest.raises(InvalidInput, match="empty list"):
            await call()


async def test_tenant_engine_keeps_the_hosts_own_translate_map(db):
    host = db.engine.execution_options(schema_translate_map={None: "host_t1"})
    bound = tenant_engine(host, "acme")
    assert bound.get_execution_options()["schema_translate_map"] == {None: "host_t1", "copilotz": "acme"}


async def test_one_tenant_entered_by_many_tasks_at_once(db, tenant):
    shared = db.tenant(tenant)

    async def handler(hold):
        async with shared:
            await asyncio.sleep(hold)
            inside = ambient_scope().schema
        return inside, ambient_scope().schema

    assert await asyncio.gather(handler(0.02), handler(0.04)) == [(tenant, None)] * 2


async def test_an_empty_schema_name_is_refused_everywhere(db):
    with pytest.raises(InvalidSchemaName):
        async with db.session(""):
            pass
    with pytest.raises(InvalidSchemaName):
        await db.ensure_schema("")


async def test_db_ops_inside_a_transaction_is_refused_and_tx_ops_queue(db, tenant, ns):
    node = await db.tenant(tenant, namespace=ns).ops.create_node(type="t", name="n0")
    async with db.transaction(schema=tenant, namespace=ns) as tx:
        await tx.ops.update_node(node.id, name="tx")
        with pytest.raises(InvalidInput, match="use tx.ops"):
            await db.ops.update_node(node.id, name="outside", schema=tenant)  # would wait on itself
        with pytest.raises(InvalidInput, match="use tx.ops"):
            async with db.transaction(schema=tenant):
                pass
        made = await asyncio.gather(*(tx.ops.create_node(type="t", name=f"g{i}") for i in range(5)))
        assert len({n.id for n in made}) == 5
    with pytest.raises(InvalidInput, match="transaction has ended"):
        await tx.ops.create_node(type="t", name="late")
    names = {n.name for n in (await db.tenant(tenant).ops.get_nodes_by_namespace(ns)).items}
    assert names == {"tx", "g0", "g1", "g2", "g3", "g4"}


async def test_the_ambient_namespace_stays_in_the_ambient_schema(db, tenant, ns):
    with db.tenant(tenant, namespace=ns):
        with pytest.raises(InvalidInput, match="namespace= is required"):
            await db.ops.create_node(type="t", name="x", schema="public")
        here = await db.ops.create_node(type="t", name="y")
    assert here.namespace == ns


async def test_migrations_refuse_schemas_that_are_not_ours(db):
    name = f"billing_{uuid.uuid4().hex[:6]}"
    async with db.engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {name}"))
        await conn.execute(text(f"CREATE TABLE {name}.invoices (id int)"))
    try:
        with pytest.raises(MigrationError, match="holds no copilotz tables"):
            await db.migrate_all([name])
        assert name not in await db.list_schemas()
        with pytest.raises(InvalidInput, match="not ours to drop"):
            await db.drop_schema(name)
    finally:
        async with db.engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {name} CASCADE"))


async def test_an_unknown_revision_is_typed_and_does_not_stop_the_others(db):
    future, fine = f"future_{uuid.uuid4().hex[:6]}", f"fine_{uuid.uuid4().hex[:6]}"
    try:
        for schema in (future, fine):
            await db.provision_schema(schema)
        async with db.engine.begin() as conn:
            await conn.execute(text(f"UPDATE {future}.{migrations.VERSION_TABLE} SET version_num = '0099_future'"))
        db._ready.discard(future)
        with pytest.raises(MigrationError) as caught:
            await db.migrate_all([future, fine])
        by_schema = {r.schema: r for r in caught.value.results}
        assert "0099_future" in by_schema[future].error and by_schema[fine].error is None
        assert future not in await db.warm_cache()
        with pytest.raises(MigrationError, match="does not know"):
            await db.ops.get_node_by_id("x", schema=future)
    finally:
        for schema in (future, fine):
            await db.drop_schema(schema)


async def test_a_migration_racing_provisioning_in_one_loop_does_not_hang(db):
    name = f"race_{uuid.uuid4().hex[:6]}"
    await db.provision_schema("public")

    async def host_upgrade():
        await asyncio.sleep(0.01)
        async with db.engine.begin() as conn:
            return await conn.run_sync(migrations.upgrade_all, ["public"])
    try:
        results = await asyncio.wait_for(
            asyncio.gather(db.provision_schema(name), host_upgrade(), return_exceptions=True), 60)
        assert all(r is None or isinstance(r, (list, MigrationError)) for r in results), results
    finally:
        await db.drop_schema(name)


async def test_the_callers_own_missing_table_is_not_a_dropped_schema(db, tenant):
    await db.provision_schema(tenant)
    with pytest.raises(DBAPIError):
        async with db.session(tenant) as s:
            await s.execute(text("SELECT * FROM my_missing_table"))
    assert tenant in db._ready


async def test_host_tables_named_like_ours_in_a_schema_of_theirs_still_compare(db, tenant):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    class HostBase(DeclarativeBase):
        pass

    class Customer(HostBase):
        __tablename__ = "customers_" + uuid.uuid4().hex[:6]
        id: Mapped[int] = mapped_column(primary_key=True)

    host_schema = f"hostapp_{uuid.uuid4().hex[:6]}"
    async with db.engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {host_schema}"))
        await conn.execute(text(f"CREATE TABLE {host_schema}.events (id int)"))  # theirs, since dropped from their models
    try:
        async with db.engine.connect() as conn:
            def diff(c):
                ctx = MigrationContext.configure(c, opts={
                    "include_schemas": True, "include_object": migrations.skip_copilotz_tables(c),
                    "include_name": lambda name, type_, parent: type_ != "schema" or name in (None, host_schema)})
                return compare_metadata(ctx, HostBase.metadata)
            diffs = await conn.run_sync(diff)
        removed = {(d[1].schema, d[1].name) for d in diffs if d[0] == "remove_table"}
        assert (host_schema, "events") in removed  # theirs: proposed for removal as it should be
        assert not any(name == "nodes" for _, name in removed)
    finally:
        async with db.engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {host_schema} CASCADE"))


async def test_an_op_after_a_caught_error_of_yours_says_the_transaction_is_aborted(db, tenant, ns):
    with pytest.raises(TransactionAborted):
        async with db.transaction(schema=tenant, namespace=ns) as tx:
            await tx.ops.create_node(type="t", name="a")
            try:
                await tx.session.execute(text("SELECT no_such_function()"))
            except DBAPIError:
                pass
            with pytest.raises(TransactionAborted, match="begin_nested"):
                await tx.ops.create_node(type="t", name="b")
    # in a savepoint of your own, a failure is harmless
    async with db.transaction(schema=tenant, namespace=ns) as tx:
        await tx.ops.create_node(type="t", name="c")
        try:
            async with tx.session.begin_nested():
                await tx.session.execute(text("SELECT no_such_function()"))
        except DBAPIError:
            pass
        await tx.ops.create_node(type="t", name="d")
    assert sorted(n.name for n in (await db.tenant(tenant).ops.get_nodes_by_namespace(ns)).items) == ["c", "d"]


async def test_a_tenant_block_left_in_another_task_is_a_typed_error(db, tenant):
    shared = db.tenant(tenant)

    async def enter():
        shared.__enter__()

    async def leave():
        shared.__exit__(None, None, None)

    await asyncio.create_task(enter())
    with pytest.raises(InvalidInput, match="must end in the task"):
        await asyncio.create_task(leave())
    assert ambient_scope().schema is None


async def test_provisioning_refuses_a_schema_holding_tables_with_our_names(db):
    name = f"appschema_{uuid.uuid4().hex[:6]}"
    async with db.engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {name}"))
        await conn.execute(text(f"CREATE TABLE {name}.events (id int)"))
    try:
        with pytest.raises(ConfigError, match="already has tables named events"):
            await db.ops.create_node(namespace="n", type="t", name="x", schema=name)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(migrations.current_revision, name) is None  # nothing half-made
    finally:
        async with db.engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {name} CASCADE"))


async def test_an_op_cancelled_mid_statement_ends_the_transaction_loudly(db, tenant, ns):
    """asyncio.wait_for cutting an op off mid-statement resets the connection: later ops and the
    end of the block say so (typed), and nothing is stored. A statement_timeout instead lets
    PostgreSQL stop the op, and only that op is undone."""
    ops = db.tenant(tenant, namespace=ns).ops
    node = await ops.create_node(type="t", name="locked")
    async with db.engine.connect() as other:  # holds the node's row lock, so an update waits
        await other.execute(text(f'SELECT 1 FROM "{tenant}".nodes WHERE id = :id FOR UPDATE'), {"id": node.id})
        with pytest.raises(TransactionAborted, match="lost in the middle of a statement"):
            async with db.transaction(schema=tenant, namespace=ns) as tx:
                await tx.ops.create_node(type="t", name="lost")
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(tx.ops.update_node(node.id, name="renamed"), 0.3)
                with pytest.raises(TransactionAborted, match="lost in the middle of a statement"):
                    await tx.ops.get_node_by_id(node.id)
        async with db.transaction(schema=tenant, namespace=ns) as tx:
            await tx.session.execute(text("SET LOCAL statement_timeout = '300ms'"))
            with pytest.raises(QueryCanceled):
                await tx.ops.update_node(node.id, name="renamed")
            await tx.ops.create_node(type="t", name="kept")
        await other.rollback()
    assert sorted(n.name for n in (await ops.get_nodes_by_namespace()).items) == ["kept", "locked"]
