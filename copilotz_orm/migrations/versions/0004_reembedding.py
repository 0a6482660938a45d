"""Re-embedding a schema with another model, resumably: the new vectors wait in
`pending_embeddings` until every row has one, then replace the old ones in one transaction.

Revision ID: 0004_reembedding
Revises: 0003_document_lifecycle
Create Date: 2026-12-03

Never name a schema here: search_path points at the tenant being migrated.
"""
from alembic import op
import sqlalchemy as sa
import pgvector.sqlalchemy

revision = "0004_reembedding"
down_revision = "0003_document_lifecycle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("embedding_space", sa.Column("next_model", sa.Text(), nullable=True))
    op.add_column("embedding_space", sa.Column("next_dimension", sa.Integer(), nullable=True))
    op.create_table(
        "pending_embeddings",
        sa.Column("node_id", sa.Text(), nullable=False),
        sa.Column("embedding", pgvector.sqlalchemy.vector.VECTOR(), nullable=False),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.id"], name=op.f("fk_pending_embeddings_node_id_nodes"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_pending_embeddings")),
    )


def downgrade() -> None:
    op.drop_table("pending_embeddings")
    op.drop_column("embedding_space", "next_dimension")
    op.drop_column("embedding_space", "next_model")
