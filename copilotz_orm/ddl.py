"""DDL constructs SQLAlchemy lacks, compiled with dialect quoting (never string formatting)."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, Index, MetaData, Table, cast, func, literal_column
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import AddConstraint, CreateIndex, DropConstraint, DropIndex, ExecutableDDLElement
from sqlalchemy.sql.compiler import DDLCompiler

from pgvector.sqlalchemy import Vector

from .models.base import PLACEHOLDER_SCHEMA


class CreateExtension(ExecutableDDLElement):
    def __init__(self, name: str) -> None:
        self.name = name


@compiles(CreateExtension)
def _create_extension(element: CreateExtension, compiler: DDLCompiler, **kw) -> str:
    return f"CREATE EXTENSION IF NOT EXISTS {compiler.preparer.quote_identifier(element.name)}"


# uuid-ossp is not built into the embedded server; the core gen_random_uuid() stands in for it.
UUID_SHIM = (
    "CREATE OR REPLACE FUNCTION public.uuid_generate_v4() RETURNS uuid "
    "LANGUAGE sql VOLATILE PARALLEL SAFE AS 'SELECT gen_random_uuid()'"
)

HNSW_INDEX = "ix_nodes_embedding_hnsw"
DIMENSION_CHECK = "ck_nodes_embedding_dimension"


def _nodes_embedding() -> tuple[Table, Column]:
    # A detached copy: the dimension is per schema, so it is not part of the shared metadata.
    table = Table("nodes", MetaData(), Column("embedding", Vector()), schema=PLACEHOLDER_SCHEMA)
    return table, table.c.embedding


def embedding_space_ddl(dimension: int) -> list[ExecutableDDLElement]:
    """A CHECK on the vector dimension and an HNSW cosine index on the dimensioned expression."""
    check, index = _embedding_space_objects(dimension)
    return [AddConstraint(check), CreateIndex(index)]


def drop_embedding_space_ddl(dimension: int) -> list[ExecutableDDLElement]:
    """Undo :func:`embedding_space_ddl` (before the vectors move to another dimension)."""
    check, index = _embedding_space_objects(dimension)
    return [DropIndex(index, if_exists=True), DropConstraint(check, if_exists=True)]


def _embedding_space_objects(dimension: int) -> tuple[CheckConstraint, Index]:
    table, embedding = _nodes_embedding()
    check = CheckConstraint(
        embedding.is_(None) | (func.vector_dims(embedding) == dimension),
        name=DIMENSION_CHECK,
        table=table,
    )
    index = Index(
        HNSW_INDEX,
        cast(embedding, Vector(dimension)).label("embedding_dim"),
        postgresql_using="hnsw",
        postgresql_ops={"embedding_dim": "vector_cosine_ops"},
        # Partial on the dimension: building the index also reads row versions that are dead
        # to us but not yet gone (after a re-embedding swap, of the old dimension), and the
        # cast would fail on them. Queries repeat this predicate (sql.search.in_space).
        postgresql_where=in_space(embedding, dimension),
    )
    return check, index


def in_space(embedding, dimension: int):
    """`embedding` has the schema's dimension; inlined (a constant the planner can match against
    the partial HNSW index even under a generic plan; it is an int we chose, never user text)."""
    return func.vector_dims(embedding) == literal_column(str(int(dimension)))
