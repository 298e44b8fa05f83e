"""jobs: trigram indexes for the admin's text search (last error, payload)

On PostgreSQL, GIN pg_trgm indexes on the two expressions the jobs search matches with ILIKE
(app/admin/jobs.py, text_match): coalesce(error, '') and payload::text. They need the pg_trgm
extension; where the database role may not create it, the migration leaves the indexes out
and logs why (the search still works, as a scan; a superuser can run
`CREATE EXTENSION pg_trgm` and this migration's statements later). SQLite: nothing to do.

The models declare them too (app/models/jobs.py), so a schema made by `create_all` (the tests)
has them; Alembic cannot compare expression indexes with an operator class, so the
migrations-match-the-models test does not see them either way.

Revision ID: 7a1c3e5b9d20
Revises: 865b0bfff60c
Create Date: 2026-12-07 13:10:00

"""

import logging

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "7a1c3e5b9d20"
down_revision = "865b0bfff60c"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

INDEXES = {
    "ix_jobs_error_trgm": "coalesce(error, '')",
    "ix_jobs_payload_trgm": "(payload::text)",
}


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    savepoint = bind.begin_nested()
    try:
        bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        savepoint.commit()
    except sa.exc.DBAPIError as err:
        savepoint.rollback()
        log.warning("pg_trgm not available (%s): the jobs text search runs without its indexes", err)
        return
    for name, expression in INDEXES.items():
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON jobs USING gin ({expression} gin_trgm_ops)")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
