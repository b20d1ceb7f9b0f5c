"""Census import: supervision grid and the file's own BGID on components, import-job heartbeat and files.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE components ADD COLUMN supervision_code text")
    op.execute("ALTER TABLE components ADD COLUMN bgid_in_file text")
    op.execute("ALTER TABLE components ADD COLUMN synthetic boolean NOT NULL DEFAULT false")
    op.execute("CREATE INDEX components_unit_grid ON components (district_code, unit_grid_code) WHERE valid_to IS NULL")
    op.execute("ALTER TABLE import_jobs ADD COLUMN heartbeat_at timestamptz")
    op.execute("ALTER TABLE import_jobs ADD COLUMN work_dir text NOT NULL DEFAULT ''")
    op.execute("ALTER TABLE import_jobs ADD COLUMN preview jsonb NOT NULL DEFAULT '{}'")
    op.execute("ALTER TABLE import_row_reports ADD COLUMN geom_wkt text")
    op.execute("ALTER TABLE import_row_reports ADD COLUMN severity text NOT NULL DEFAULT 'error' "
               "CHECK (severity IN ('error', 'warning'))")


def downgrade() -> None:
    op.execute("ALTER TABLE import_row_reports DROP COLUMN severity")
    op.execute("ALTER TABLE import_row_reports DROP COLUMN geom_wkt")
    op.execute("ALTER TABLE import_jobs DROP COLUMN preview")
    op.execute("ALTER TABLE import_jobs DROP COLUMN work_dir")
    op.execute("ALTER TABLE import_jobs DROP COLUMN heartbeat_at")
    op.execute("DROP INDEX components_unit_grid")
    op.execute("ALTER TABLE components DROP COLUMN synthetic")
    op.execute("ALTER TABLE components DROP COLUMN bgid_in_file")
    op.execute("ALTER TABLE components DROP COLUMN supervision_code")
