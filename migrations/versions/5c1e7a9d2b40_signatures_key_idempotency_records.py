"""a write's signature keys an idempotency record (seen_signatures goes); jobs take the
platform's own idempotency key

A write sent again with the same signature is answered from the record its first sending
stored (keyed by the signature) instead of being refused: the table of bare digests is not
needed any more. A job submitted with an `idempotency_key` (a batch item) keeps it, unique per
tenant; the index holds only keyed jobs.

Revision ID: 5c1e7a9d2b40
Revises: bd2095bfbf9d
Create Date: 2026-12-07 10:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5c1e7a9d2b40'
down_revision = 'bd2095bfbf9d'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('seen_signatures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_seen_signatures_seen_at'))
    op.drop_table('seen_signatures')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idempotency_key', sa.String(length=255), nullable=True))
        batch_op.create_index('uq_jobs_tenant_idempotency_key', ['tenant_id', 'idempotency_key'], unique=True,
                              sqlite_where=sa.text('idempotency_key IS NOT NULL'),
                              postgresql_where=sa.text('idempotency_key IS NOT NULL'))


def downgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('uq_jobs_tenant_idempotency_key')
        batch_op.drop_column('idempotency_key')
    op.create_table('seen_signatures',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_seen_signatures'))
    )
    with op.batch_alter_table('seen_signatures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_seen_signatures_seen_at'), ['seen_at'], unique=False)
