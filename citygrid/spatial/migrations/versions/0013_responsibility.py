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
    # Named people (实名制) and their dated assignments per slot: the supervisors of a supervision grid (several
    # at once: a supervisor's slot is the person, one grid at a time), a team's leader, a community's enforcement
    # officers (one lead, one assisting: seed 000) and its responsible person, a party's (frontage unit's)
    # contact. A slot holds one person at a time (a new assignment closes the previous one). This replaces the
    # never-written supervisor_assignments (people were parties of kind 'person' there, with no role or
    # phone). An account is named by username (no foreign key: accounts are deployment-wide and not part of a
    # district's backup). Each case event records the acting account's person (NULL where it has none).
    op.execute("""
CREATE TABLE people (
    district_code text NOT NULL REFERENCES districts ON DELETE CASCADE,
    person_id     bigint GENERATED ALWAYS AS IDENTITY,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100 AND name !~ '[[:cntrl:]]'),
    role          text NOT NULL
                  CHECK (role IN ('supervisor', 'enforcement_officer', 'community_head', 'unit_contact')),
    phone         text NOT NULL DEFAULT '' CHECK (phone ~ '^[0-9+() -]{0,32}$'),
    username      text CHECK (username ~ '^[a-z0-9][a-z0-9._-]{1,62}$'),
    source        text NOT NULL DEFAULT '' CHECK (length(source) <= 300 AND source !~ '[[:cntrl:]]'),
    synthetic     boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (district_code, person_id),
    UNIQUE (district_code, username),
    UNIQUE (district_code, name, phone)
);
CREATE TABLE person_assignments (
    district_code text NOT NULL,
    assignment_id bigint GENERATED ALWAYS AS IDENTITY,
    person_id     bigint NOT NULL,
    role          text NOT NULL CHECK (role IN ('supervisor', 'team_leader', 'enforcement_officer',
                                                'community_head', 'unit_contact')),
    target_code   text NOT NULL CHECK (length(target_code) BETWEEN 1 AND 100),
    position      text NOT NULL DEFAULT '' CHECK (position IN ('', 'lead', 'assisting')),
    valid         tstzrange NOT NULL CHECK (NOT isempty(valid)),
    source        text NOT NULL DEFAULT '' CHECK (length(source) <= 300),
    PRIMARY KEY (district_code, assignment_id),
    FOREIGN KEY (district_code, person_id) REFERENCES people ON DELETE CASCADE,
    CHECK ((role = 'enforcement_officer') = (position <> '')),
    EXCLUDE USING gist (district_code WITH =, role WITH =, target_code WITH =, position WITH =, valid WITH &&)
        WHERE (role <> 'supervisor'),
    EXCLUDE USING gist (district_code WITH =, person_id WITH =, valid WITH &&) WHERE (role = 'supervisor')
);
CREATE INDEX person_assignments_person ON person_assignments (district_code, person_id);
CREATE INDEX person_assignments_target ON person_assignments USING gist (district_code, target_code, valid);
CREATE TRIGGER people_audit AFTER INSERT OR UPDATE OR DELETE ON people
    FOR EACH ROW EXECUTE FUNCTION audit_row('person_id', '');
CREATE TRIGGER person_assignments_audit AFTER INSERT OR UPDATE OR DELETE ON person_assignments
    FOR EACH ROW EXECUTE FUNCTION audit_row('assignment_id', '');
DROP TABLE supervisor_assignments;
ALTER TABLE case_events ADD COLUMN person_id bigint;
ALTER TABLE case_events ADD CONSTRAINT case_events_person_fkey FOREIGN KEY (district_code, person_id)
    REFERENCES people ON DELETE SET NULL (person_id);
""")
    # --- rotation ---
    pass


def downgrade() -> None:
    # --- rotation ---
    # --- named people ---
    op.execute("""
ALTER TABLE case_events DROP COLUMN person_id;
CREATE TABLE supervisor_assignments (
    district_code    text NOT NULL,
    assignment_id    bigint GENERATED ALWAYS AS IDENTITY,
    party_id         bigint NOT NULL,
    supervision_code text NOT NULL,
    valid            tstzrange NOT NULL CHECK (NOT isempty(valid)),
    PRIMARY KEY (district_code, assignment_id),
    FOREIGN KEY (district_code, party_id) REFERENCES parties,
    EXCLUDE USING gist (district_code WITH =, party_id WITH =, valid WITH &&)
);
CREATE TRIGGER supervisor_assignments_audit AFTER INSERT OR UPDATE OR DELETE ON supervisor_assignments
    FOR EACH ROW EXECUTE FUNCTION audit_row('assignment_id', '');
DROP TABLE person_assignments;
DROP TABLE people;
""")
    # --- frontage units ---
    # --- ownership imports ---
    pass
