"""jobs: the (status, next_attempt_at) index also holds the queue

The dashboard's and /metrics' per-queue counts of live and dead jobs group by queue: with the
queue in the index they read it alone instead of visiting every counted row (a fourfold
difference at 1,000,000 jobs). The relay's scans use the same leading columns as before.

Revision ID: b3d5f7a9c1e2
Revises: 7a1c3e5b9d20
Create Date: 2026-12-07 14:12:00

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "b3d5f7a9c1e2"
down_revision = "7a1c3e5b9d20"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_jobs_status_next_attempt_queue", "jobs", ["status", "next_attempt_at", "queue"])
    op.drop_index("ix_jobs_status_next_attempt", table_name="jobs")


def downgrade():
    op.create_index("ix_jobs_status_next_attempt", "jobs", ["status", "next_attempt_at"])
    op.drop_index("ix_jobs_status_next_attempt_queue", table_name="jobs")
