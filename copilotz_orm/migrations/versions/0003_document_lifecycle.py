"""Document lifecycle: a document that failed before its content was read has no content hash,
and documents are found by their source (a changed file replaces its previous version).

Revision ID: 0003_document_lifecycle
Revises: 0002_chunk_metadata
Create Date: 2026-12-03

Never name a schema here: search_path points at the tenant being migrated.
"""
from alembic import op

revision = "0003_document_lifecycle"
down_revision = "0002_chunk_metadata"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("documents", "content_hash", nullable=True)
    op.create_index(op.f("ix_documents_namespace_source_uri"), "documents", ["namespace", "source_uri"],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_documents_namespace_source_uri"), table_name="documents")
    # Failed documents without content cannot be kept under NOT NULL: they go (nodes cascade).
    op.execute("DELETE FROM nodes WHERE id IN (SELECT id FROM documents WHERE content_hash IS NULL)")
    op.alter_column("documents", "content_hash", nullable=False)
