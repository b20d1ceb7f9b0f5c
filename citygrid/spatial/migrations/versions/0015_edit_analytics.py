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
    # A draft's revision rises with every edit and undo: a planner's edit names the revision it was made
    # against (optimistic concurrency), and a stale one is refused with the edits made since.
    op.execute("ALTER TABLE grid_versions ADD COLUMN revision integer NOT NULL DEFAULT 0 CHECK (revision >= 0)")
    # The edit log of a draft: one row per revision (seq = the revision it produced), an edit or an undo, with
    # the rows it replaced (``before``) and wrote (``after``): unit and supervision grids with their geometry
    # as WKB hex in the deployment CRS, so an undo restores the exact geometry, and the codes it issued or
    # retired. ``undone_by`` is the seq of the undo that reverted an edit. Dropped with its draft.
    op.execute("""
CREATE TABLE grid_edits (
    district_code text NOT NULL,
    version_id    integer NOT NULL,
    seq           integer NOT NULL CHECK (seq > 0),
    op            text NOT NULL CHECK (op IN ('split', 'merge', 'reshape', 'move-vertex', 'reassign', 'set-team',
                                                'undo')),
    params        jsonb NOT NULL DEFAULT '{}',
    before        jsonb NOT NULL DEFAULT '{}',
    after         jsonb NOT NULL DEFAULT '{}',
    summary       jsonb NOT NULL DEFAULT '{}',
    author        text NOT NULL,
    at            timestamptz NOT NULL DEFAULT now(),
    undone_at     timestamptz,
    undone_by     integer,
    PRIMARY KEY (district_code, version_id, seq),
    FOREIGN KEY (district_code, version_id) REFERENCES grid_versions ON DELETE CASCADE
)""")

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
    op.execute("DROP TABLE grid_edits")
    op.execute("ALTER TABLE grid_versions DROP COLUMN revision")
