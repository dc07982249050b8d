"""baseline: the schema of the releases before migrations

Revision ID: 0001
Revises: 
Create Date: 2026-11-30 18:01:47.532631
"""

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('adapter_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.Column('path', sa.String(), nullable=False),
    sa.Column('sha256', sa.String(), nullable=False),
    sa.Column('base_model', sa.String(), nullable=False),
    sa.Column('training_config', sa.String(), nullable=False),
    sa.Column('label_snapshot', sa.String(), nullable=False),
    sa.Column('metrics', sa.String(), nullable=False),
    sa.Column('status', sa.String(), nullable=False),
    sa.Column('reason', sa.String(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('promoted_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('version')
    )
    with op.batch_alter_table('adapter_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_adapter_versions_status'), ['status'], unique=False)

    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash'),
    sa.UniqueConstraint('name')
    )
    op.create_table('leases',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=100), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('paper_embeddings',
    sa.Column('arxiv_id', sa.String(length=64), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('arxiv_id')
    )
    op.create_table('papers',
    sa.Column('arxiv_id', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(), nullable=False),
    sa.Column('abstract', sa.String(), nullable=False),
    sa.Column('categories', sa.String(), nullable=False),
    sa.Column('published', sa.Date(), nullable=True),
    sa.Column('topic', sa.String(), nullable=True),
    sa.Column('adapter_version', sa.String(), nullable=True),
    sa.Column('model', sa.String(), nullable=True),
    sa.Column('tagged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ingested_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('arxiv_id')
    )
    with op.batch_alter_table('papers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_papers_adapter_version'), ['adapter_version'], unique=False)
        batch_op.create_index('ix_papers_feed', ['tagged_at', 'arxiv_id', 'topic', 'categories', 'adapter_version', 'published'], unique=False)
        batch_op.create_index(batch_op.f('ix_papers_published'), ['published'], unique=False)
        batch_op.create_index(batch_op.f('ix_papers_topic'), ['topic'], unique=False)

    op.create_table('parked_papers',
    sa.Column('arxiv_id', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.String(), nullable=False),
    sa.Column('reason', sa.String(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('parked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('arxiv_id')
    )
    op.create_table('teacher_labels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('arxiv_id', sa.String(length=64), nullable=False),
    sa.Column('abstract', sa.String(), nullable=False),
    sa.Column('title', sa.String(), nullable=False),
    sa.Column('topic', sa.String(), nullable=False),
    sa.Column('teacher_model', sa.String(length=200), nullable=False),
    sa.Column('labelled_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('arxiv_id', 'teacher_model', name='uq_label_paper_teacher')
    )
    with op.batch_alter_table('teacher_labels', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_teacher_labels_arxiv_id'), ['arxiv_id'], unique=False)

    op.create_table('topic_clusters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(), nullable=False),
    sa.Column('centroid', sa.LargeBinary(), nullable=False),
    sa.Column('topics', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('training_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(), nullable=False),
    sa.Column('version', sa.String(length=32), nullable=True),
    sa.Column('detail', sa.String(), nullable=False),
    sa.Column('n_train', sa.Integer(), nullable=False),
    sa.Column('n_eval', sa.Integer(), nullable=False),
    sa.Column('last_label_id', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('request_id')
    )
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_training_runs_status'), ['status'], unique=False)

    op.create_table('topic_assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('arxiv_id', sa.String(length=64), nullable=False),
    sa.Column('adapter_version', sa.String(length=64), nullable=False),
    sa.Column('topic', sa.String(), nullable=False),
    sa.Column('model', sa.String(), nullable=False),
    sa.Column('latency_ms', sa.Float(), nullable=False),
    sa.Column('tagged_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['arxiv_id'], ['papers.arxiv_id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('arxiv_id', 'adapter_version', name='uq_assignment_paper_version')
    )
    with op.batch_alter_table('topic_assignments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_topic_assignments_arxiv_id'), ['arxiv_id'], unique=False)

    op.create_table('topic_texts',
    sa.Column('topic', sa.String(), nullable=False),
    sa.Column('cluster_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['cluster_id'], ['topic_clusters.id'], ),
    sa.PrimaryKeyConstraint('topic')
    )
    with op.batch_alter_table('topic_texts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_topic_texts_cluster_id'), ['cluster_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('topic_texts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_topic_texts_cluster_id'))

    op.drop_table('topic_texts')
    with op.batch_alter_table('topic_assignments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_topic_assignments_arxiv_id'))

    op.drop_table('topic_assignments')
    with op.batch_alter_table('training_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_training_runs_status'))

    op.drop_table('training_runs')
    op.drop_table('topic_clusters')
    with op.batch_alter_table('teacher_labels', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_teacher_labels_arxiv_id'))

    op.drop_table('teacher_labels')
    op.drop_table('parked_papers')
    with op.batch_alter_table('papers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_papers_topic'))
        batch_op.drop_index(batch_op.f('ix_papers_published'))
        batch_op.drop_index('ix_papers_feed')
        batch_op.drop_index(batch_op.f('ix_papers_adapter_version'))

    op.drop_table('papers')
    op.drop_table('paper_embeddings')
    op.drop_table('leases')
    op.drop_table('api_keys')
    with op.batch_alter_table('adapter_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_adapter_versions_status'))

    op.drop_table('adapter_versions')
