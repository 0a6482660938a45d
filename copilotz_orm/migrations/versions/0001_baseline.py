"""Baseline: threads, events, queue items, nodes, edges, documents, chunks, embedding space.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-12-03

Never name a schema here: search_path points at the tenant being migrated.
"""
from alembic import op
import sqlalchemy as sa
import pgvector.sqlalchemy
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('embedding_space',
    sa.Column('id', sa.SmallInteger(), server_default='1', nullable=False),
    sa.Column('model', sa.Text(), nullable=False),
    sa.Column('dimension', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('dimension > 0 AND dimension <= 16000', name=op.f('ck_embedding_space_dimension')),
    sa.CheckConstraint('id = 1', name=op.f('ck_embedding_space_single_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_embedding_space'))
    )
    op.create_table('nodes',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('namespace', sa.Text(), nullable=False),
    sa.Column('type', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('content', sa.Text(), nullable=True),
    sa.Column('embedding', pgvector.sqlalchemy.vector.VECTOR(), nullable=True),
    sa.Column('data', postgresql.JSONB(astext_type=Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('source_type', sa.Text(), nullable=True),
    sa.Column('source_id', sa.Text(), nullable=True),
    sa.Column('search_text', postgresql.TSVECTOR(), sa.Computed("to_tsvector('english'::regconfig, left(coalesce(content, name), 200000))", persisted=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_nodes'))
    )
    op.create_index(op.f('ix_nodes_search_text'), 'nodes', ['search_text'], unique=False, postgresql_using='gin')
    op.create_index(op.f('ix_nodes_namespace_type'), 'nodes', ['namespace', 'type'], unique=False)
    op.create_index(op.f('ix_nodes_source_type_source_id'), 'nodes', ['source_type', 'source_id'], unique=False)
    op.create_index(op.f('ix_nodes_type_name'), 'nodes', ['type', 'name'], unique=False)
    op.create_table('threads',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('external_id', sa.Text(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('participants', postgresql.JSONB(astext_type=Text()), nullable=True),
    sa.Column('mode', sa.Text(), server_default='immediate', nullable=False),
    sa.Column('status', sa.Text(), server_default='active', nullable=False),
    sa.Column('summary', sa.Text(), nullable=True),
    sa.Column('parent_thread_id', sa.Text(), nullable=True),
    sa.Column('namespace', sa.Text(), nullable=True),
    sa.Column('metadata', postgresql.JSONB(astext_type=Text()), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('active', 'archived')", name=op.f('ck_threads_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_threads'))
    )
    op.create_index(op.f('ix_threads_external_id'), 'threads', ['external_id'], unique=False, postgresql_where=sa.text("status = 'active'"))
    op.create_index(op.f('ix_threads_namespace'), 'threads', ['namespace'], unique=False)
    op.create_index(op.f('ix_threads_participants'), 'threads', ['participants'], unique=False, postgresql_using='gin')
    op.create_table('documents',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('namespace', sa.Text(), nullable=False),
    sa.Column('source_uri', sa.Text(), nullable=True),
    sa.Column('title', sa.Text(), nullable=True),
    sa.Column('mime_type', sa.Text(), nullable=True),
    sa.Column('content_hash', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), server_default='pending', nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('chunk_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('metadata', postgresql.JSONB(astext_type=Text()), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'processing', 'indexed', 'failed')", name=op.f('ck_documents_status')),
    sa.ForeignKeyConstraint(['id'], ['nodes.id'], name=op.f('fk_documents_id_nodes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_documents'))
    )
    op.create_index(op.f('ix_documents_namespace_content_hash'), 'documents', ['namespace', 'content_hash'], unique=True)
    op.create_index(op.f('ix_documents_namespace_status'), 'documents', ['namespace', 'status'], unique=False)
    op.create_table('edges',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('source_id', sa.Text(), nullable=False),
    sa.Column('target_id', sa.Text(), nullable=False),
    sa.Column('type', sa.Text(), nullable=False),
    sa.Column('data', postgresql.JSONB(astext_type=Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('weight', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['source_id'], ['nodes.id'], name=op.f('fk_edges_source_id_nodes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['target_id'], ['nodes.id'], name=op.f('fk_edges_target_id_nodes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_edges'))
    )
    op.create_index(op.f('ix_edges_source_id_target_id_type'), 'edges', ['source_id', 'target_id', 'type'], unique=True)
    op.create_index(op.f('ix_edges_target_id_type'), 'edges', ['target_id', 'type'], unique=False)
    op.create_table('events',
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('thread_id', sa.Text(), nullable=False),
    sa.Column('type', sa.Text(), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('namespace', sa.Text(), nullable=True),
    sa.Column('parent_event_id', sa.Text(), nullable=True),
    sa.Column('trace_id', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['thread_id'], ['threads.id'], name=op.f('fk_events_thread_id_threads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_events')),
    sa.UniqueConstraint('id', name=op.f('uq_events_id'))
    )
    op.create_index(op.f('ix_events_thread_id_seq'), 'events', ['thread_id', 'seq'], unique=False)
    op.create_table('queue_items',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('thread_id', sa.Text(), nullable=False),
    sa.Column('event_type', sa.Text(), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('priority', sa.Integer(), server_default='0', nullable=False),
    sa.Column('status', sa.Text(), server_default='pending', nullable=False),
    sa.Column('ttl_ms', sa.Integer(), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('lease_owner', sa.Text(), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dedupe_key', sa.Text(), nullable=True),
    sa.Column('namespace', sa.Text(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('metadata', postgresql.JSONB(astext_type=Text()), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('pending', 'processing', 'completed', 'failed', 'expired', 'overwritten', 'cancelled')", name=op.f('ck_queue_items_status')),
    sa.ForeignKeyConstraint(['thread_id'], ['threads.id'], name=op.f('fk_queue_items_thread_id_threads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_queue_items'))
    )
    op.create_index('ix_queue_items_pending_order', 'queue_items', ['thread_id', sa.literal_column('priority DESC'), 'created_at', 'id'], unique=False, postgresql_where=sa.text("status = 'pending'"))
    op.create_index(op.f('ix_queue_items_status_lease_expires_at'), 'queue_items', ['status', 'lease_expires_at'], unique=False)
    op.create_index(op.f('ix_queue_items_thread_id_dedupe_key'), 'queue_items', ['thread_id', 'dedupe_key'], unique=True, postgresql_where=sa.text("dedupe_key IS NOT NULL AND status IN ('pending', 'processing')"))
    op.create_table('chunks',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('document_id', sa.Text(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('start_char', sa.Integer(), nullable=False),
    sa.Column('end_char', sa.Integer(), nullable=False),
    sa.Column('token_count', sa.Integer(), nullable=False),
    sa.CheckConstraint('start_char >= 0 AND end_char >= start_char', name=op.f('ck_chunks_span')),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_chunks_document_id_documents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['id'], ['nodes.id'], name=op.f('fk_chunks_id_nodes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chunks'))
    )
    op.create_index(op.f('ix_chunks_document_id_position'), 'chunks', ['document_id', 'position'], unique=True)


def downgrade() -> None:
    op.drop_index(op.f('ix_chunks_document_id_position'), table_name='chunks')
    op.drop_table('chunks')
    op.drop_index(op.f('ix_queue_items_thread_id_dedupe_key'), table_name='queue_items', postgresql_where=sa.text("dedupe_key IS NOT NULL AND status IN ('pending', 'processing')"))
    op.drop_index(op.f('ix_queue_items_status_lease_expires_at'), table_name='queue_items')
    op.drop_index('ix_queue_items_pending_order', table_name='queue_items', postgresql_where=sa.text("status = 'pending'"))
    op.drop_table('queue_items')
    op.drop_index(op.f('ix_events_thread_id_seq'), table_name='events')
    op.drop_table('events')
    op.drop_index(op.f('ix_edges_target_id_type'), table_name='edges')
    op.drop_index(op.f('ix_edges_source_id_target_id_type'), table_name='edges')
    op.drop_table('edges')
    op.drop_index(op.f('ix_documents_namespace_status'), table_name='documents')
    op.drop_index(op.f('ix_documents_namespace_content_hash'), table_name='documents')
    op.drop_table('documents')
    op.drop_index(op.f('ix_threads_participants'), table_name='threads', postgresql_using='gin')
    op.drop_index(op.f('ix_threads_namespace'), table_name='threads')
    op.drop_index(op.f('ix_threads_external_id'), table_name='threads', postgresql_where=sa.text("status = 'active'"))
    op.drop_table('threads')
    op.drop_index(op.f('ix_nodes_type_name'), table_name='nodes')
    op.drop_index(op.f('ix_nodes_source_type_source_id'), table_name='nodes')
    op.drop_index(op.f('ix_nodes_namespace_type'), table_name='nodes')
    op.drop_index(op.f('ix_nodes_search_text'), table_name='nodes', postgresql_using='gin')
    op.drop_table('nodes')
    op.drop_table('embedding_space')
