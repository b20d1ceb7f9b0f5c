"""Desk (#21): the closed loop in the browser — roles for the acceptor, call-taker and district lead, the
time limits of verification and check, the complainant's contact, photos, and what the work queues read.

Each section below belongs to one part of #21; each says what it adds and why.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

ROLES_BEFORE = "'planner', 'supervisor', 'dispatcher', 'unit', 'analyst', 'gis', 'admin'"
# acceptor (受理员) files reports; calltaker (话务员) takes hotline calls and records callbacks (回访); lead
# (区级领导) is the district-level role that closes an investigation (调研).
ROLES_AFTER = ROLES_BEFORE + ", 'acceptor', 'calltaker', 'lead'"


def upgrade() -> None:
    # --- roles ---
    op.execute("ALTER TABLE users DROP CONSTRAINT IF EXISTS users_roles_check")
    op.execute(f"ALTER TABLE users ADD CONSTRAINT users_roles_check "
               f"CHECK (cardinality(roles) > 0 AND roles <@ ARRAY[{ROLES_AFTER}])")

    # --- workflow: task time limits and the complainant ---
    # Verification (核实) and check (核查) have their own time limits on the working calendar, so the queues
    # show overdue tasks and the timely verification / check rates can be computed later; columns (not attrs)
    # because the queues sort and filter on them.
    op.execute("ALTER TABLE cases ADD COLUMN verify_due_at timestamptz")
    op.execute("ALTER TABLE cases ADD COLUMN check_due_at timestamptz")
    # The due time of the task an event completes (verify: the verification's; check_pass / check_fail: the
    # check's; feed_back: the disposal deadline), kept on the event because the case's own columns are cleared
    # when the task is done: the timely verification / check / disposal rates are computed from the events.
    op.execute("ALTER TABLE case_events ADD COLUMN due_at timestamptz")
    # The complainant's contact (hotline and citizen cases) lives apart from the case row, so no read of cases
    # (lists, tiles, Open311, exports, audit of cases) can carry it; only acceptors and dispatchers read it.
    op.execute("""
CREATE TABLE case_contacts (
    district_code text NOT NULL,
    case_id       bigint NOT NULL,
    name          text NOT NULL DEFAULT '' CHECK (length(name) <= 100),
    phone         text NOT NULL DEFAULT '' CHECK (length(phone) <= 40),
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (district_code, case_id),
    FOREIGN KEY (district_code, case_id) REFERENCES cases ON DELETE CASCADE
)""")

    # --- photos ---
    # Evidence photos: the file is stored by its content hash under the deployment's photo directory (never a
    # client-supplied name); the row says which case and event it belongs to, who sent it, its size and the
    # GPS position its EXIF carried (WGS84), which is stripped from the stored file.
    op.execute("""
CREATE TABLE case_photos (
    district_code  text NOT NULL,
    case_id        bigint NOT NULL,
    photo_id       bigint GENERATED ALWAYS AS IDENTITY,
    event_seq      integer,
    sha256         text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    thumb_sha256   text NOT NULL CHECK (thumb_sha256 ~ '^[0-9a-f]{64}$'),
    content_type   text NOT NULL CHECK (content_type IN ('image/jpeg', 'image/png', 'image/webp')),
    width          integer NOT NULL CHECK (width > 0),
    height         integer NOT NULL CHECK (height > 0),
    bytes          integer NOT NULL CHECK (bytes > 0),
    gps_lon        double precision,
    gps_lat        double precision,
    gps_distance_m double precision,
    uploaded_by    text NOT NULL DEFAULT '',
    uploaded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (district_code, photo_id),
    FOREIGN KEY (district_code, case_id) REFERENCES cases ON DELETE CASCADE
)""")
    op.execute("CREATE INDEX case_photos_case ON case_photos (district_code, case_id, event_seq)")

    # --- desk queues ---
    # The work queues (citygrid/desk) read a few open cases among a district's whole history, oldest or soonest
    # due first, and poll every few seconds. Each index below keeps one queue's read to its own rows, measured
    # with EXPLAIN on the desk_queue bench (200,000 cases, 20,000 open): without them the accept queue walked the
    # district's reports oldest first through its closed history, the unit's queue read every case ever sent to
    # its party, and the callback queue found the closing time of every closed case to sort them.
    # accept: new reports (reported, verified) oldest first.
    op.execute("CREATE INDEX cases_desk_accept ON cases (district_code, reported_at) "
               "WHERE status IN ('reported', 'verified')")
    # dispose: a unit's dispatched cases, soonest deadline first.
    op.execute("CREATE INDEX cases_desk_dispose ON cases (district_code, (attrs -> 'dispatched_to' ->> 'code'), "
               "deadline_at) WHERE status = 'dispatched'")
    # callback: closed public reports (desk.queues.CALLBACK_SOURCES) counted from the index alone (the queue's
    # change marker reads case_id and row_version).
    op.execute("CREATE INDEX cases_desk_callback ON cases (district_code) INCLUDE (case_id, row_version) "
               "WHERE status = 'closed' AND source IN ('hotline', 'citizen', 'open311')")
    # callback: the closing events, newest first (the queue's order, walked until its page is full).
    op.execute("CREATE INDEX case_events_closing ON case_events (at DESC) WHERE to_status = 'closed'")
    # The queues' due counts (overdue, due soon) read a range of their due column instead of filtering every
    # case of the queue: accept and verify count verification tasks (verify_due_at), check counts check tasks.
    op.execute("CREATE INDEX cases_desk_verify_due ON cases (district_code, verify_due_at) "
               "WHERE status IN ('reported', 'verified') AND verify_due_at IS NOT NULL")
    op.execute("CREATE INDEX cases_desk_check_due ON cases (district_code, check_due_at) WHERE status = 'fed_back'")
    # verify, check: a supervisor's queues read the cases of their team's grids (a few of the district's).
    op.execute("CREATE INDEX cases_desk_grid ON cases (district_code, supervision_code) "
               "WHERE status IN ('reported', 'fed_back')")


def downgrade() -> None:
    # --- desk queues ---
    for index in ("cases_desk_grid", "cases_desk_check_due", "cases_desk_verify_due", "case_events_closing",
                  "cases_desk_callback", "cases_desk_dispose", "cases_desk_accept"):
        op.execute(f"DROP INDEX {index}")

    # --- photos ---
    op.execute("DROP TABLE case_photos")

    # --- workflow: task time limits and the complainant ---
    op.execute("DROP TABLE case_contacts")
    op.execute("ALTER TABLE case_events DROP COLUMN due_at")
    op.execute("ALTER TABLE cases DROP COLUMN check_due_at")
    op.execute("ALTER TABLE cases DROP COLUMN verify_due_at")

    # --- roles ---
    # Refuse rather than drop or silently demote accounts that hold a role the older schema does not know.
    held = op.get_bind().execute(sa.text(f"SELECT string_agg(username, ', ') FROM users "
                                         f"WHERE NOT roles <@ ARRAY[{ROLES_BEFORE}]")).scalar()
    if held:
        raise RuntimeError(f"accounts {held} hold the acceptor, calltaker or lead role: change their roles "
                           "(citygrid users roles) before downgrading below 0014")
    op.execute("ALTER TABLE users DROP CONSTRAINT IF EXISTS users_roles_check")
    op.execute(f"ALTER TABLE users ADD CONSTRAINT users_roles_check "
               f"CHECK (cardinality(roles) > 0 AND roles <@ ARRAY[{ROLES_BEFORE}])")
