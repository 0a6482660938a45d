"""Tenant scopes: which schema (and namespace) an operation runs in.

Three ways to pick a tenant, from the most explicit:

* ``schema=`` / ``namespace=`` on a call;
* a bound scope, ``db.tenant("acme", namespace="ws:1").ops`` or a transaction's ``tx.ops``,
  where a conflicting explicit argument is refused (one tenant per session);
* the ambient scope set by ``with db.tenant("acme"):`` for ``db.ops`` and ``db.session()`` calls
  in that block (a context variable, so each asyncio task sees its own).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from .errors import InvalidInput, TransactionAborted
from .sanitize import identifier, names
from .tenancy import validate_schema_name

if TYPE_CHECKING:
    from .database import Database
    from .ops import Ops


@dataclass(frozen=True)
class Scope:
    schema: str | None = None
    namespace: str | None = None
    strict: bool = True
    """Strict (bound) scopes refuse a call naming another schema or namespace; the ambient
    scope of a ``with db.tenant(...)`` block only supplies defaults."""

    @classmethod
    def of(cls, schema: str | None, namespace: str | None) -> Scope:
        """A scope with both names checked (before any SQL runs)."""
        return cls(None if schema is None else validate_schema_name(schema),
                   None if namespace is None else identifier(namespace, "namespace"))

    def schema_for(self, schema: str | None) -> str | None:
        """The schema a call runs in: its own `schema=`, which must agree with this scope's."""
        if schema is None:
            return self.schema
        schema = validate_schema_name(schema)
        if self.strict and self.schema is not None and schema != self.schema:
            raise InvalidInput(f"this scope is bound to schema {self.schema!r}; a call cannot use schema "
                               f"{schema!r} in it (use db.ops, or another db.tenant(...), for that schema)")
        return schema

    def namespace_for(self, namespace: str | None, *, needed: bool = False) -> str | None:
        """One namespace: the call's own, which must agree with this scope's, or this scope's."""
        if namespace is None:
            if needed and self.namespace is None:
                raise InvalidInput("namespace= is required (or bind one: db.tenant(schema, namespace=...))")
            return self.namespace
        namespace = identifier(namespace, "namespace")
        self._agrees(namespace)
        return namespace

    def namespaces_for(self, namespace: str | Sequence[str] | None) -> list[str] | None:
        """A namespace filter (one name or several); a bound namespace is the default filter."""
        given = names(namespace, "namespace")
        if given is None:
            return None if self.namespace is None else [self.namespace]
        if not given:
            raise InvalidInput("namespace= is an empty list: name at least one namespace, or pass None for "
                               + ("this scope's namespace" if self.namespace is not None else "all of them"))
        for name in given:
            self._agrees(name)
        return given

    def _agrees(self, namespace: str) -> None:
        if self.strict and self.namespace is not None and namespace != self.namespace:
            raise InvalidInput(f"this scope is bound to namespace {self.namespace!r}; a call cannot use "
                               f"namespace {namespace!r} in it")


ABORTED = "copilotz_aborted"
"""Connection info key: the last statement on the connection failed (its transaction is aborted)."""

_ambient: ContextVar[Scope] = ContextVar("copilotz_orm_scope", default=Scope(strict=False))
# The tokens of this context's open `with db.tenant(...)` blocks, innermost last: kept per context
# (not on the Tenant), so one Tenant can be entered by several tasks at once.
_entered: ContextVar[tuple[Token[Scope], ...]] = ContextVar("copilotz_orm_scope_tokens", default=())
# The db.transaction() block this task is in, if any (see Ops._session).
_open_transaction: ContextVar[Transaction | None] = ContextVar("copilotz_orm_transaction", default=None)


def ambient_scope() -> Scope:
    """The scope set by the innermost ``with db.tenant(...)`` block of this task, if any."""
    return _ambient.get()


class _Scoped:
    scope: Scope

    @property
    def schema(self) -> str:
        return self.scope.schema  # type: ignore[return-value]

    @property
    def namespace(self) -> str | None:
        return self.scope.namespace


class Tenant(_Scoped):
    """A schema (and optionally a namespace) to work in. ``tenant.ops`` runs every operation
    there; ``with tenant:`` (or ``async with``) makes it the ambient scope for ``db.ops``."""

    def __init__(self, db: Database, scope: Scope) -> None:
        self._db = db
        self.scope = scope
        self._ops: Ops | None = None

    @property
    def ops(self) -> Ops:
        if self._ops is None:
            from .ops import Ops

            self._ops = Ops(self._db, scope=self.scope)
        return self._ops

    def session(self):
        """An ORM session in this tenant's schema (see :meth:`Database.session`)."""
        return self._db.session(self.scope.schema)

    def transaction(self):
        """A transaction in this tenant (see :meth:`Database.transaction`)."""
        return self._db.transaction(schema=self.scope.schema, namespace=self.scope.namespace)

    def __enter__(self) -> Tenant:
        _entered.set((*_entered.get(), _ambient.set(replace(self.scope, strict=False))))
        return self

    def __exit__(self, *exc: object) -> None:
        entered = _entered.get()
        if not entered or entered[-1].var is not _ambient:
            raise InvalidInput("a `with db.tenant(...)` block must end in the task (context) that entered "
                               "it; where setup and teardown run apart (some request frameworks), use "
                               "db.tenant(...).ops instead")
        *outer, token = entered
        _entered.set(tuple(outer))
        _ambient.reset(token)

    async def __aenter__(self) -> Tenant:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)

    def __repr__(self) -> str:
        return f"Tenant(schema={self.scope.schema!r}, namespace={self.scope.namespace!r})"


CONNECTION_LOST = (
    "the connection was lost in the middle of a statement (an op cut off by a timeout or a cancelled task, or "
    "the server went away), and the transaction with it: nothing in it will be stored. Start a new "
    "db.transaction(). To bound an op's time and keep the transaction, let PostgreSQL stop it: after SET "
    "LOCAL statement_timeout in tx.session, a slow op raises QueryCanceled and only it is undone.")


class Transaction(_Scoped):
    """Several operations in one transaction: ``tx.ops`` composes ops, ``tx.session`` is the ORM
    session for your own queries on our models. It commits when the ``async with`` block ends
    and rolls back if the block raises. A failed op inside it is undone to its savepoint, so the
    transaction stays usable if you catch the error. Ops on one transaction run one at a time
    (``asyncio.gather`` of ``tx.ops`` calls queues them)."""

    def __init__(self, db: Database, scope: Scope, session) -> None:
        from .ops import Ops

        self.scope = scope
        self.session = session
        self.db = db
        self.open = True
        self.lock = asyncio.Lock()
        self.ops = Ops(db, scope=scope, transaction=self)

    def check_open(self) -> None:
        if not self.open:
            raise InvalidInput("this transaction has ended (its async with block is over); "
                               "open a new one with db.transaction()")
        if self.session.bind.invalidated:  # the driver dropped it: a cancelled statement, a lost server
            raise TransactionAborted(CONNECTION_LOST)
        if self.session.bind.info.get(ABORTED):
            raise TransactionAborted(
                "a statement of yours failed in this transaction and its error was caught: PostgreSQL has "
                "aborted the transaction, so nothing more can run in it and nothing in it will be stored. "
                "Run statements that may fail in a savepoint (async with tx.session.begin_nested(): ...).")


def refuse_second_connection(db: Database) -> None:
    """Inside ``db.transaction()``, a call through ``db.ops`` (or another scope, or a nested
    transaction) would use a second connection, which waits forever on the transaction's own row
    locks and can exhaust the pool: refuse it and say what to use."""
    tx = _open_transaction.get()
    if tx is not None and tx.open and tx.db is db:
        raise InvalidInput("this task is inside db.transaction(): use tx.ops (and tx.session) for the work "
                           "in it; another connection would wait on the transaction's own locks")
