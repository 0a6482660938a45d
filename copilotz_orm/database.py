"""`Database`: one async engine (and the embedded server, if any), tenant sessions, metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy import DDL, event, func, inspect, select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.schema import CreateSchema, DropSchema

from . import migrations
from .config import DbConfig, EmbeddingConfig, parse_url
from .ddl import UUID_SHIM, CreateExtension, embedding_space_ddl
from .embedded import EmbeddedServer
from .embeddings import Embedder, embedder_for
from .errors import (
    ConfigError,
    DatabaseUnavailable,
    EmbeddingMismatch,
    ExtensionMissing,
    InvalidInput,
    TenantNotFound,
    TransactionAborted,
    translate_db_errors,
)
from .models import Base, EmbeddingSpace
from .sql import search as search_sql
from .scopes import ABORTED, CONNECTION_LOST, Scope, Tenant, Transaction, _open_transaction, ambient_scope, refuse_second_connection
from .tenancy import translate_map, validate_schema_name

# Advisory lock key (first half of the two-int form) for database bootstrap; the per-schema one
# is migrations.LOCK_SCHEMA.
_LOCK_BOOTSTRAP = 0x0C0F1


@dataclass
class Metrics:
    """Statements run through this database's engine, and their total time."""

    statements: int = 0
    seconds: float = 0.0
    by_statement: dict[str, int] = field(default_factory=dict)

    def reset(self) -> None:
        self.statements = 0
        self.seconds = 0.0
        self.by_statement.clear()


class Database:
    """Owns an async engine and, for embedded URLs, the server. Close it when done."""

    def __init__(self, config: DbConfig, engine: AsyncEngine, server: EmbeddedServer | None,
                 embedder: Embedder, owns_engine: bool) -> None:
        self.config = config
        self.engine = engine
        self.server = server
        self.embedder = embedder
        self.metrics = Metrics()
        self._owns_engine = owns_engine
        self._embedder_given = False  # set by create_database when the caller passed one
        self._ready: set[str] = set()
        self.vector_settings_preset = False
        self._schema_lock = asyncio.Lock()
        self._closed = False
        event.listen(engine.sync_engine, "before_cursor_execute", self._before)
        event.listen(engine.sync_engine, "after_cursor_execute", self._after)
        event.listen(engine.sync_engine, "handle_error", self._on_error)
        from .ops import Ops

        self.ops = Ops(self)

    # -- metrics ---------------------------------------------------------------------------------
    def _before(self, conn, cursor, statement, params, context, executemany) -> None:  # noqa: ARG002
        conn.info.setdefault("copilotz_t0", []).append(time.perf_counter())

    def _after(self, conn, cursor, statement, params, context, executemany) -> None:  # noqa: ARG002
        # In a failed transaction only a ROLLBACK (TO SAVEPOINT) succeeds: any success means usable.
        conn.info[ABORTED] = False
        started = conn.info["copilotz_t0"].pop()
        self.metrics.statements += 1
        self.metrics.seconds += time.perf_counter() - started
        if self.config.log_metrics:
            key = statement.split(None, 1)[0].upper() if statement else "?"
            self.metrics.by_statement[key] = self.metrics.by_statement.get(key, 0) + 1

    def _on_error(self, context) -> None:
        if context.connection is not None:
            context.connection.info[ABORTED] = True
            started = context.connection.info.get("copilotz_t0")
            if started and context.statement is not None:  # _before ran; _after never will
                started.pop()

    # -- sessions --------------------------------------------------------------------------------
    @asynccontextmanager
    async def connection(self, schema: str | None = None, *, one_read: bool = False
                         ) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction, its placeholder schema mapped to `schema`; commits on exit.
        ``one_read=True``: no transaction, for a block that runs one read-only statement (one
        statement is atomic and sees one snapshot on its own; BEGIN and COMMIT would be two more
        round trips, most of the cost of a small read)."""
        schema = await self.ensure_schema(schema)
        try:
            async with self.engine.connect() as conn:
                await conn.execution_options(schema_translate_map=translate_map(schema))
                if one_read:
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                    yield conn
                    return
                async with conn.begin():
                    conn.info[ABORTED] = False
                    yield conn
                    if conn.info.get(ABORTED):
                        # PostgreSQL would answer COMMIT with ROLLBACK, silently: say so instead.
                        raise TransactionAborted(
                            "a statement in this transaction failed and its error was caught, so "
                            "PostgreSQL rolled back the whole transaction: nothing in it was stored. "
                            "Let the error propagate, or run the failing statement in a savepoint "
                            "(async with session.begin_nested(): ...); ops already do.")
        except TenantNotFound:
            # Dropped or damaged behind our back (another process, a DBA): forget it was ready,
            # so the next use checks it again (and re-provisions it when auto-provisioning).
            self._ready.discard(schema)
            raise
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == "3F000":
                self._ready.discard(schema)
                with translate_db_errors(f"schema {schema!r}"):
                    raise
            raise

    @asynccontextmanager
    async def session(self, schema: str | None = None, *, one_read: bool = False) -> AsyncIterator[AsyncSession]:
        """An ORM session for one tenant schema, in a transaction that commits on exit (see
        :meth:`connection` for ``one_read``)."""
        async with self.connection(schema, one_read=one_read) as conn:
            # The connection's transaction is the unit of work: the session joins it, and
            # the `connection()` block commits it (or rolls it back on an exception).
            session = AsyncSession(bind=conn, expire_on_commit=False)
            try:
                yield session
                if not one_read:  # a read has nothing to flush; each await here is a greenlet switch
                    await session.flush()
            finally:
                await session.close()

    def tenant(self, schema: str, namespace: str | None = None) -> Tenant:
        """A tenant scope: ``db.tenant("acme").ops`` runs ops in schema ``acme``; ``with
        db.tenant("acme"):`` makes it the default for ``db.ops`` and ``db.session()`` inside."""
        return Tenant(self, Scope.of(validate_schema_name(schema), namespace))

    @asynccontextmanager
    async def transaction(self, schema: str | None = None, namespace: str | None = None
                          ) -> AsyncIterator[Transaction]:
        """One transaction for several ops: ``async with db.transaction(schema="acme") as tx:``
        then ``await tx.ops.create_node(...)``, or your own queries in ``tx.session``."""
        scope = Scope.of(schema, namespace)
        refuse_second_connection(self)
        ambient = ambient_scope()
        schema = await self.ensure_schema(scope.schema)
        scope = Scope(schema, scope.namespace if scope.namespace is not None
                      else (ambient.namespace if ambient.schema in (None, schema) else None))
        async with self.session(schema) as session:
            tx = Transaction(self, scope, session)
            token = _open_transaction.set(tx)
            try:
                yield tx
                if session.bind.invalidated:  # the block caught the error and went on: nothing can commit
                    raise TransactionAborted(CONNECTION_LOST)
            finally:
                tx.open = False
                _open_transaction.reset(token)

    # -- tenancy ---------------------------------------------------------------------------------
    async def ensure_schema(self, schema: str | None = None) -> str:
        """Validate `schema` (default: the ambient tenant's, else the configured default) and
        make sure it is provisioned (or raise :class:`TenantNotFound`)."""
        if schema is None:  # "" is a (bad) name, not "the default"
            schema = ambient_scope().schema or self.config.default_schema
        schema = validate_schema_name(schema)
        if schema in self._ready:
            return schema
        async with self._schema_lock:
            if schema in self._ready:
                return schema
            if self.config.auto_provision_schema:
                await self.provision_schema(schema)
            elif (revision := await self._revision(schema)) != migrations.head_revision():
                if revision is None:
                    raise TenantNotFound(
                        f"schema {schema!r} is not provisioned; call db.provision_schema({schema!r}) "
                        "or run: copilotz-orm schema provision " + schema
                    )
                raise TenantNotFound(
                    f"schema {schema!r} is at revision {revision}, but this copilotz_orm needs "
                    f"{migrations.head_revision()}: run 'copilotz-orm migrate --all' (or await db.migrate_all())"
                )
            else:
                # Migrated (perhaps by the alembic command): its embedding space must match ours,
                # and is set up here if the schema has none yet.
                async with self.engine.begin() as conn:
                    await conn.execution_options(schema_translate_map=translate_map(schema))
                    await self._ensure_embedding_space(conn, schema)
                self._ready.add(schema)
        return schema

    async def provision_schema(self, schema: str) -> None:
        """Create `schema` if needed, migrate it to head and set up its embedding space."""
        schema = validate_schema_name(schema)
        with translate_db_errors(f"provisioning schema {schema!r}"):
            async with migrations.run_alone(), self.engine.begin() as conn:
                await conn.run_sync(migrations.lock_schema, schema)
                await conn.execute(CreateSchema(schema, if_not_exists=True))
                before = await conn.run_sync(migrations.current_revision, schema)
                if before is None:
                    await conn.run_sync(_refuse_foreign_tables, schema)
                await conn.run_sync(migrations.upgrade, schema)
                await conn.execution_options(schema_translate_map=translate_map(schema))
                await self._ensure_embedding_space(conn, schema)
                if before is None and self.config.schema_sql:
                    await self._run_schema_sql(conn, schema)
        self._ready.add(schema)

    async def _run_schema_sql(self, conn: AsyncConnection, schema: str) -> None:
        quoted = conn.dialect.identifier_preparer.quote_identifier(schema)
        await conn.execute(select(func.set_config("search_path", f"{quoted}, public", True)))
        for statement in self.config.schema_sql:
            # The caller's own SQL, run once per new schema with search_path on that schema.
            await conn.execute(DDL(statement.replace("%", "%%")))
        await conn.execute(select(func.set_config("search_path", '"$user", public', True)))

    async def _ensure_embedding_space(self, conn: AsyncConnection, schema: str) -> None:
        space = (await conn.execute(select(EmbeddingSpace.model, EmbeddingSpace.dimension))).first()
        wanted = (self.embedder.name, self.embedder.dimension)
        if space is None:
            await conn.execute(EmbeddingSpace.__table__.insert().values(
                id=1, model=wanted[0], dimension=wanted[1]))
            for ddl in embedding_space_ddl(wanted[1]):
                await conn.execute(ddl)
        elif tuple(space) != wanted and self._adopts_recorded_model(schema):
            # No model was configured: use the one this schema's vectors were made with.
            self.embedder = embedder_for(EmbeddingConfig(model=space[0], dimension=space[1]))
        elif tuple(space) != wanted:
            raise EmbeddingMismatch(
                f"schema {schema!r} holds vectors of model {space[0]!r} ({space[1]} dimensions), but "
                f"this database is configured for {wanted[0]!r} ({wanted[1]} dimensions). Use that model "
                f"(library: embedding=EmbeddingConfig(model={space[0]!r}, dimension={space[1]}); command "
                f"line: --model {space[0]} or no --model), or another schema."
            )

    async def adopt_recorded_model(self) -> None:
        """Before the first embedding of a process with no model configured: if the default
        schema already exists, take the model its vectors were made with (as its first use
        would), so a first query is never embedded with another model of the same dimension."""
        schema = self.config.default_schema
        if self._adopts_recorded_model(schema) and await self._revision(schema) is not None:
            await self.ensure_schema(schema)

    def _adopts_recorded_model(self, schema: str) -> bool:
        return (self.config.embedding.model is None and not self._embedder_given
                and schema == self.config.default_schema and not self._ready)

    async def _revision(self, schema: str) -> str | None:
        async with self.engine.connect() as conn:
            if not await self._schema_exists(conn, schema):
                return None
            return await conn.run_sync(migrations.current_revision, schema)

    @staticmethod
    async def _schema_exists(conn: AsyncConnection, schema: str) -> bool:
        names = await conn.run_sync(lambda c: c.dialect.get_schema_names(c))
        return schema in names

    async def schema_exists(self, schema: str) -> bool:
        schema = validate_schema_name(schema)
        async with self.engine.connect() as conn:
            return await self._schema_exists(conn, schema)

    async def list_schemas(self) -> list[str]:
        """Schemas that hold copilotz tables (a copilotz version table)."""
        async with self.engine.connect() as conn:
            return await conn.run_sync(migrations.tenant_schemas)

    async def migrate_all(self, schemas: Sequence[str] | None = None,
                          on_schema: Callable[[migrations.SchemaMigration], None] | None = None,
                          ) -> list[migrations.SchemaMigration]:
        """Upgrade every copilotz schema (or `schemas`) to the latest revision: see
        :func:`copilotz_orm.migrations.migrate_all`."""
        return await migrations.migrate_all(self.engine, schemas, on_schema=on_schema)

    async def reembed(self, model: str | EmbeddingConfig | Embedder, schema: str | None = None, *,
                      batch_size: int = 128, progress: Callable[[int, int], None] | None = None):
        """Move a schema's vectors to another embedding model (or re-embed them with the same
        one): every row that has a vector is embedded again, in committed batches, so an
        interrupted run resumes; then one transaction swaps the vectors in and rebuilds the
        dimension CHECK and the HNSW index. Afterwards this database embeds with the new model.
        `progress(done, total)` is called after each batch. Returns a ReembedResult."""
        from . import reembedding
        from .sanitize import whole_number

        schema = validate_schema_name(schema if schema is not None else
                                      (ambient_scope().schema or self.config.default_schema))
        whole_number(batch_size, "batch_size", 1, 10_000)
        if isinstance(model, str):
            target = embedder_for(EmbeddingConfig(model=model))
        elif isinstance(model, EmbeddingConfig):
            target = embedder_for(model)
        else:
            target = model
        revision = await self._revision(schema)
        if revision != migrations.head_revision():
            raise TenantNotFound(f"schema {schema!r} is not provisioned at the latest revision ({revision}); "
                                 "provision or migrate it first")
        # The move is what reconciles the schema with the model: skip the check on opening it.
        self._ready.add(schema)
        try:
            result = await reembedding.reembed(self, target, schema, batch_size, progress)
        finally:
            self._ready.discard(schema)
        self.embedder = target
        self._embedder_given = True
        return result

    async def warm_cache(self) -> list[str]:
        """Mark every schema that holds all our tables at the head revision, with an embedding
        space matching this database's embedder, as ready (no check on first use); returns them.
        Any other schema is checked (and migrated, or refused) on first use as usual."""
        head = migrations.head_revision()
        wanted = (self.embedder.name, self.embedder.dimension)
        ready = []
        ours = {table.name for table in Base.metadata.tables.values()}
        async with self.engine.connect() as conn:
            for schema in await self.list_schemas():
                if await conn.run_sync(migrations.current_revision_or_none, schema) != head:
                    continue  # older, or a damaged version table: checked on first use
                # The version table alone proves little: a table may have been dropped by hand.
                tables = await conn.run_sync(lambda c, s=schema: set(inspect(c).get_table_names(schema=s)))
                if not ours <= tables:
                    continue
                await conn.execution_options(schema_translate_map=translate_map(schema))
                space = (await conn.execute(select(EmbeddingSpace.model, EmbeddingSpace.dimension))).first()
                if space is not None and tuple(space) == wanted:
                    ready.append(schema)  # others are checked (and refused) on first use
        self._ready.update(ready)
        return ready

    async def drop_schema(self, schema: str) -> bool:
        """Drop a tenant schema and everything in it; False if there was no such schema."""
        schema = validate_schema_name(schema)
        if schema.lower() == "public":
            raise ConfigError("refusing to drop the public schema")
        self._ready.discard(schema)
        async with self.engine.begin() as conn:
            if not await self._schema_exists(conn, schema):
                return False
            if await conn.run_sync(migrations.current_revision_or_none, schema) is None:
                raise InvalidInput(f"schema {schema!r} holds no copilotz tables, so it is not ours to drop "
                                   "(it may be your application's); drop it yourself if you mean to")
            await conn.execute(DropSchema(schema, cascade=True))
        return True

    # -- lifecycle -------------------------------------------------------------------------------
    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_engine:
            await self.engine.dispose()
        if self.server is not None:
            await asyncio.to_thread(self.server.close)

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


async def create_database(config: DbConfig | None = None, *, engine: AsyncEngine | None = None,
                          embedder: Embedder | None = None, **kwargs) -> Database:
    """Open a database: start the embedded server if the URL asks for one, check the server,
    create the extensions, and provision the default schema (when auto-provisioning)."""
    config = config or DbConfig(**kwargs)
    validate_schema_name(config.default_schema)  # before any server is started or SQL runs
    embedder_given = embedder is not None
    embedder = embedder or embedder_for(config.embedding)
    server = None
    owns_engine = engine is None
    if engine is None:
        target = parse_url(config.resolved_url())
        if target.kind == "server":
            url = target.url.render_as_string(hide_password=False)
        else:
            server = await asyncio.to_thread(EmbeddedServer.start, target.kind, target.path)
            url = server.url
        connect_args = {**target.connect_args, "server_settings": {
            **target.connect_args.get("server_settings", {}), **search_sql.SESSION_VECTOR_SETTINGS}}
        engine = create_async_engine(url, pool_size=5, max_overflow=10, connect_args=connect_args)
    db = Database(config, engine, server, embedder, owns_engine=owns_engine)
    db._embedder_given = embedder_given
    # Our own connections start with the vector-scan settings; a host's engine gets them per query.
    db.vector_settings_preset = owns_engine
    try:
        # Schemas, the default one included, are provisioned on first use, not here: opening a
        # database writes nothing but the extensions.
        await _bootstrap(db)
    except BaseException:
        await db.close()
        raise
    return db


def _refuse_foreign_tables(conn, schema: str) -> None:
    """Before our first migration of a schema: tables with our names that are not ours (your
    application's `events`, say) would make it fail halfway. Say so, and what to do."""
    ours = {table.name for table in Base.metadata.tables.values()}
    clash = sorted(ours & set(inspect(conn).get_table_names(schema=schema)))
    if clash:
        raise ConfigError(
            f"schema {schema!r} already has tables named {', '.join(clash)} that are not copilotz tables "
            f"(your application's?). Keep copilotz in a schema of its own: DbConfig(default_schema="
            f"'copilotz_data') or db.tenant('<name>'), or --schema on the command line.")


async def _bootstrap(db: Database) -> None:
    try:
        async with db.engine.begin() as conn:
            await conn.execute(select(func.pg_advisory_xact_lock(_LOCK_BOOTSTRAP, 0)))
            available = set((await conn.execute(
                select(func.pg_available_extensions().table_valued("name").c.name))).scalars())
            if "vector" not in available:
                raise ExtensionMissing(
                    "the server has no pgvector extension: install it (https://github.com/pgvector/pgvector, "
                    "package postgresql-NN-pgvector), or use the embedded server (url ':memory:' or 'file:PATH')"
                )
            # pgvector and pg_trgm (typo-tolerant text search) are needed whatever the config says.
            for name in dict.fromkeys(["vector", "pg_trgm", *db.config.extensions]):
                if name in available:
                    await conn.execute(CreateExtension(name))
                elif name == "uuid-ossp":
                    await conn.execute(DDL(UUID_SHIM))
                else:
                    raise ExtensionMissing(f"the server has no {name!r} extension; install it or remove it "
                                           "from DbConfig.extensions")
    except (OSError, InterfaceError, OperationalError, ConnectionError) as exc:
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {db.engine.url.render_as_string(hide_password=True)}: "
            f"{_reason(exc)}. Check that the server is running and the URL is right."
        ) from exc
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) in {"28000", "28P01", "3D000"}:
            raise DatabaseUnavailable(f"cannot use the database: {_reason(exc)}") from exc
        raise


def _reason(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    return str(inner).strip().splitlines()[0] if str(inner).strip() else type(inner).__name__
