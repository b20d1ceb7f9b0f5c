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
    # A city's own feature ID (`census import --id-field asset_id`), kept on every version: it keys the
    # reconciliation (a hash join, like the ObjID's, so no index) and gives a re-imported row its ObjID back.
    op.execute("ALTER TABLE components ADD COLUMN native_id text")
    # --- class schemes ---
    # --- case imports ---
    pass


def downgrade() -> None:
    # --- case imports ---
    # --- class schemes ---
    # --- census native IDs ---
    op.execute("ALTER TABLE components DROP COLUMN native_id")
    # --- data sources (data_sources) ---
    # --- code scheme (deployment.code_scheme) ---
    # --- time zone (deployment.timezone) ---
    pass
