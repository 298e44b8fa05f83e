"""idempotency records hold only completed responses

A write stores its Idempotency-Key record in its own transaction: no record is ever in flight.

Revision ID: da3f645b0509
Revises: d3d80954b425
Create Date: 2026-12-02 10:19:09.203509

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'da3f645b0509'
down_revision = 'd3d80954b425'
branch_labels = None
depends_on = None


def upgrade():
    # A marker left in flight by a request that never finished created nothing: its key is free.
    op.execute("DELETE FROM idempotency_records WHERE state <> 'completed' OR response_status IS NULL")
    with op.batch_alter_table('idempotency_records', schema=None) as batch_op:
        batch_op.alter_column('response_status',
               existing_type=sa.INTEGER(),
               nullable=False)
        batch_op.drop_column('state')


def downgrade():
    with op.batch_alter_table('idempotency_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state', sa.VARCHAR(length=20), nullable=False, server_default='completed'))
        batch_op.alter_column('response_status',
               existing_type=sa.INTEGER(),
               nullable=True)
