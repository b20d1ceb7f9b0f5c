"""Index cases by district and report time: period filters (caseload, lists, density) and the first and last
report of a district (the caseload page's month slider) no longer scan every case.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX cases_reported ON cases (district_code, reported_at)")


def downgrade() -> None:
    op.execute("DROP INDEX cases_reported")
