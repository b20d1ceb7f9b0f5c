"""Editing (#23) and analytics (#24): grid drafts with a revision and an edit log, and what the analysts'
statistics read.

Each section below belongs to one part of the work; each says what it adds and why.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from alembic import op  # noqa: F401  (used by the sections as they fill in)

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # --- editing: drafts and the edit log ---
    pass

    # --- editing: history and tile warming ---
    pass

    # --- analytics ---
    pass


def downgrade() -> None:
    # --- analytics ---
    pass

    # --- editing: history and tile warming ---
    pass

    # --- editing: drafts and the edit log ---
    pass
