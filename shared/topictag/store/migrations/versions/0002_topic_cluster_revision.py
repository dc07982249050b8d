"""topic clusters: revision, so taggers read the clusters others wrote since their last look

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 19:26:04.772319
"""

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('topic_clusters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revision', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_index(batch_op.f('ix_topic_clusters_revision'), ['revision'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('topic_clusters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_topic_clusters_revision'))
        batch_op.drop_column('revision')
