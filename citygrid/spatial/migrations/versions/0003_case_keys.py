"""Index the idempotency key alone: a retried report is looked up by its key before its district is known,
and without this index that lookup scanned every case (4.5 ms at 20,000 cases, growing with the table).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX cases_idempotency_key ON cases (idempotency_key) WHERE idempotency_key IS NOT NULL")


def downgrade() -> None:
    op.execute("DROP INDEX cases_idempotency_key")
