"""Chunk metadata: a JSONB column on chunks (heading path, page, anything a chunker knows about
where a chunk came from) and a GIN index so searches can filter on it.

Revision ID: 0002_chunk_metadata
Revises: 0001_baseline
Create Date: 2026-12-03

Never name a schema here: search_path points at the tenant being migrated.
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0002_chunk_metadata"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing chunks get '{}' from the server default: no rewrite of the table's rows is needed
    # (a constant default is stored in the catalog since PostgreSQL 11).
    op.add_column("chunks", sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()),
                                      server_default=sa.text("'{}'::jsonb"), nullable=False))
    op.create_index(op.f("ix_chunks_metadata"), "chunks", ["metadata"], unique=False,
                    postgresql_using="gin", postgresql_ops={"metadata": "jsonb_path_ops"})


def downgrade() -> None:
    op.drop_index(op.f("ix_chunks_metadata"), table_name="chunks")
    op.drop_column("chunks", "metadata")
