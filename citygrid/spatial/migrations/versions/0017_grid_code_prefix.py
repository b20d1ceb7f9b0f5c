"""Unit-grid codes found by their prefix through an index (#23).

A split or a merge issues new unit-grid codes: the next running number under the source grid's street and
community (``gridding.store.issued_serial``). Finding the highest number ever issued under a prefix read every
code of the district (8,237 in Chaoyang: 2-3 ms of each such edit on the grid_edit bench); this index, in the
byte order of ``text_pattern_ops`` (whatever the database's collation), reads only the codes under the prefix.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX grid_codes_prefix ON grid_codes (district_code, kind, code text_pattern_ops)")


def downgrade() -> None:
    op.execute("DROP INDEX grid_codes_prefix")
