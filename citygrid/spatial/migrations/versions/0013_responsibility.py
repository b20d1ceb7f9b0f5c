"""Responsibility (#22): the four subjects from real lists, frontage units with their areas, named people, and
supervisor rotation.

Each section below belongs to one part of #22; each says what it adds and why.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

import sqlalchemy as sa  # noqa: F401  (sections use it)
from alembic import op  # noqa: F401

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # --- ownership imports ---
    # --- frontage units ---
    # --- named people ---
    # --- rotation ---
    pass


def downgrade() -> None:
    # --- rotation ---
    # --- named people ---
    # --- frontage units ---
    # --- ownership imports ---
    pass
