"""Idempotency keys of reports linked to an open duplicate: such a report adds an event to the existing case
instead of a case, so its key is kept on that event. A retry then finds it and nothing is added twice.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE case_events ADD COLUMN idempotency_key text")
    op.execute("CREATE UNIQUE INDEX case_events_idempotency_key ON case_events (district_code, idempotency_key) "
               "WHERE idempotency_key IS NOT NULL")
    op.execute("CREATE INDEX case_events_key_lookup ON case_events (idempotency_key) "
               "WHERE idempotency_key IS NOT NULL")


def downgrade() -> None:
    op.execute("DROP INDEX case_events_key_lookup")
    op.execute("DROP INDEX case_events_idempotency_key")
    op.execute("ALTER TABLE case_events DROP COLUMN idempotency_key")
