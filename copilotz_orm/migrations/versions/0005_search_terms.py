"""Search terms: each namespace's vocabulary (the words of its chunks, lower-cased, not stemmed)
with a GiST trigram index, so a misspelt word of a short query can be corrected to the nearest
word that exists. Filled from the chunks already stored.

Revision ID: 0005_search_terms
Revises: 0004_reembedding
Create Date: 2026-12-04

Never name a schema here: search_path points at the tenant being migrated (pg_trgm's operator
classes live in public, which stays on the path after it).
"""
from alembic import op
import sqlalchemy as sa

revision = "0005_search_terms"
down_revision = "0004_reembedding"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
    op.create_table(
        "search_terms",
        sa.Column("term", sa.Text(), nullable=False),
        sa.Column("namespace", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("term", "namespace", name=op.f("pk_search_terms")),
    )
    op.create_index(op.f("ix_search_terms_term"), "search_terms", ["term"], unique=False,
                    postgresql_using="gist", postgresql_ops={"term": "gist_trgm_ops"})
    # The same words ingestion adds (copilotz_orm.sql.terms.add_terms: 3 to 32 characters).
    op.execute(
        "INSERT INTO search_terms (namespace, term) "
        "SELECT DISTINCT n.namespace, w.word FROM nodes n, "
        "unnest(tsvector_to_array(to_tsvector('simple', n.content))) AS w(word) "
        "WHERE n.type = 'chunk' AND length(w.word) BETWEEN 3 AND 32 ON CONFLICT DO NOTHING"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_search_terms_term"), table_name="search_terms")
    op.drop_table("search_terms")
