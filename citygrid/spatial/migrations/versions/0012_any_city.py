"""Any city (#19): what a deployment outside the two demo districts needs recorded.

Each section below belongs to one part of #19; each says what it adds and why.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # --- time zone (deployment.timezone) ---
    # --- code scheme (deployment.code_scheme) ---
    # --- data sources (data_sources) ---
    # --- census native IDs ---
    # --- class schemes ---
    # --- case imports ---
    pass


def downgrade() -> None:
    # --- case imports ---
    # --- class schemes ---
    # --- census native IDs ---
    # --- data sources (data_sources) ---
    # --- code scheme (deployment.code_scheme) ---
    # --- time zone (deployment.timezone) ---
    pass
