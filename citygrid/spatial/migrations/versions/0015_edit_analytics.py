"""Editing (#23) and analytics (#24): grid drafts with a revision and an edit log, and what the analysts'
statistics read.

Each section below belongs to one part of the work; each says what it adds and why.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from alembic import op

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
    # An edit checks that every supervision grid it touches stays contiguous: it reads that supervision grid's
    # unit grids, which without this index means every unit grid of the version.
    op.execute("CREATE INDEX unit_grids_supervision ON unit_grids (district_code, version_id, supervision_code)")

    # --- editing: history and tile warming ---
    # Tiles warmed after a publish, shared by every server process: the in-memory tile cache is per process,
    # so a tile made by the background warm of one process (or by `citygrid grids publish`) would otherwise
    # reach no other. Keyed like the memory cache, by the layer's revision (``spatial.tiles.revision``): a key
    # names what its tile was made from, so a stored tile is never stale, and tiles of older revisions are
    # deleted by the next warm of the layer. A cache, not the district's record: no district_code, no backup.
    op.execute("""
CREATE TABLE tile_store (
    layer     text NOT NULL,
    revision  text NOT NULL,
    z         smallint NOT NULL CHECK (z BETWEEN 0 AND 22),
    x         integer NOT NULL CHECK (x >= 0),
    y         integer NOT NULL CHECK (y >= 0),
    data      bytea NOT NULL,
    made_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (layer, revision, z, x, y)
)""")
    # As-of look-ups (`GET /api/v1/grids/at?date=`) pick the version whose validity holds a day.
    op.execute("CREATE INDEX grid_versions_validity ON grid_versions (district_code, effective_from) "
               "WHERE status <> 'draft'")

    # --- analytics ---
    # (A3 evaluation) The party a case is with when an event of its disposal is recorded (dispatch, hand-back,
    # feedback, check, close): the unit indicators (on-time disposal, rework, hand-back, closure) are counted per
    # party from the events alone, and a case's own ``attrs.dispatched_to`` names only its latest party. Filled
    # by a trigger from that attribute when the writer gives none, so every writer (service, imports, synthetic
    # timelines) records it; a bulk writer may give it itself. The evaluation reads one local month of a
    # district's events, hence the index on (district_code, at).
    op.execute("""
ALTER TABLE case_events ADD COLUMN party_code text;
CREATE FUNCTION case_event_party() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT c.attrs -> 'dispatched_to' ->> 'code' INTO NEW.party_code
      FROM cases c WHERE c.district_code = NEW.district_code AND c.case_id = NEW.case_id;
    RETURN NEW;
END $$;
CREATE TRIGGER case_events_party BEFORE INSERT ON case_events FOR EACH ROW
    WHEN (NEW.party_code IS NULL AND NEW.action IN ('dispatch', 'hand_back', 'feed_back', 'check_pass',
                                                     'check_fail', 'close'))
    EXECUTE FUNCTION case_event_party();
UPDATE case_events e SET party_code = c.attrs -> 'dispatched_to' ->> 'code'
  FROM cases c WHERE c.district_code = e.district_code AND c.case_id = e.case_id
   AND e.action IN ('dispatch', 'hand_back', 'feed_back', 'check_pass', 'check_fail', 'close');
CREATE INDEX case_events_month ON case_events (district_code, at);
""")


def downgrade() -> None:
    # --- analytics ---
    # (A3 evaluation)
    op.execute("DROP INDEX case_events_month; DROP TRIGGER case_events_party ON case_events; "
               "DROP FUNCTION case_event_party(); ALTER TABLE case_events DROP COLUMN party_code")

    # --- editing: history and tile warming ---
    op.execute("DROP INDEX grid_versions_validity")
    op.execute("DROP TABLE tile_store")

    # --- editing: drafts and the edit log ---
    op.execute("DROP INDEX unit_grids_supervision")
    op.execute("DROP TABLE grid_edits")
    op.execute("ALTER TABLE grid_versions DROP COLUMN revision")
