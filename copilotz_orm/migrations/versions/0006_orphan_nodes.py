"""Deleting a document's row, by any path, deletes its chunks' node rows.

Documents and chunks are nodes (joined-table inheritance: a ``nodes`` row plus a ``documents``
or ``chunks`` row with the same id). ``chunks.document_id`` cascades, so deleting a document's
row deleted its chunks' rows, but not their ``nodes`` rows: a host application's
``session.delete(document)`` left the chunk nodes behind, still searchable and still walked. A
row trigger before each delete on ``documents`` deletes those node rows (their ``chunks`` rows
and edges follow by cascade). It deletes only the chunks' nodes, never the document's own node
row, which the ORM deletes itself right after (deleting it here would make that DELETE match
nothing and the ORM warn). When the chunks went first (``delete_document``), it finds none.

Revision ID: 0006_orphan_nodes
Revises: 0005_search_terms
Create Date: 2026-12-04

Never name a schema here: search_path points at the tenant being migrated. The function finds
the schema of the table that fired it (TG_TABLE_SCHEMA), so it never follows the search_path of
whoever deletes.
"""
from alembic import op

revision = "0006_orphan_nodes"
down_revision = "0005_search_terms"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE FUNCTION delete_document_chunk_nodes() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "BEGIN\n"
        "  EXECUTE format('DELETE FROM %1$I.nodes n USING %1$I.chunks c WHERE c.document_id = $1 AND n.id = c.id',\n"
        "                 TG_TABLE_SCHEMA) USING OLD.id;\n"
        "  RETURN OLD;\n"
        "END $$"
    )
    op.execute("CREATE TRIGGER tr_documents_delete_chunk_nodes BEFORE DELETE ON documents "
               "FOR EACH ROW EXECUTE FUNCTION delete_document_chunk_nodes()")


def downgrade() -> None:
    op.execute("DROP TRIGGER tr_documents_delete_chunk_nodes ON documents")
    op.execute("DROP FUNCTION delete_document_chunk_nodes()")
