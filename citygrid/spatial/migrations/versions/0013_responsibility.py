"""Responsibility (#22): the four subjects from real lists, frontage units with their areas, named people, and
supervisor rotation.

Each section below belongs to one part of #22; each says what it adds and why.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

import sqlalchemy as sa  # noqa: F401  (sections use it)
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # --- ownership imports ---
    # A city's own lists of the four subjects (citygrid ownership import): each import is recorded with its role,
    # the local day it takes effect, the file and its source/licence and counts; an assignment names the import
    # it came from. ``derived`` marks assignments citygrid derived from administrative codes (ownership.py), so
    # the API says so without reading a party's contact text; existing derived rows are marked by that text.
    op.execute("""
CREATE TABLE ownership_imports (
    district_code text NOT NULL REFERENCES districts ON DELETE CASCADE,
    import_id     bigint GENERATED ALWAYS AS IDENTITY,
    role          text NOT NULL CHECK (role IN ('responsibility', 'management', 'enforcement', 'supervision')),
    valid_from    timestamptz NOT NULL,
    file_name     text NOT NULL DEFAULT '' CHECK (length(file_name) <= 300 AND file_name !~ '[[:cntrl:]]'),
    source        text NOT NULL DEFAULT '' CHECK (length(source) <= 300 AND source !~ '[[:cntrl:]]'),
    licence       text NOT NULL DEFAULT '' CHECK (length(licence) <= 300 AND licence !~ '[[:cntrl:]]'),
    counts        jsonb NOT NULL DEFAULT '{}',
    imported_at   timestamptz NOT NULL DEFAULT now(),
    imported_by   text NOT NULL DEFAULT '',
    PRIMARY KEY (district_code, import_id)
);
CREATE TRIGGER ownership_imports_audit AFTER INSERT OR UPDATE OR DELETE ON ownership_imports
    FOR EACH ROW EXECUTE FUNCTION audit_row('import_id', '');
ALTER TABLE grid_ownership ADD COLUMN derived boolean NOT NULL DEFAULT false,
                           ADD COLUMN import_id bigint,
                           ADD CONSTRAINT grid_ownership_import_fkey FOREIGN KEY (district_code, import_id)
                               REFERENCES ownership_imports;
UPDATE grid_ownership o SET derived = true
  FROM parties p WHERE p.district_code = o.district_code AND p.party_id = o.party_id AND p.contact LIKE 'derived%';
""")
    # --- frontage units ---
    # Responsibility units (门前三包 shops and institutions, property companies, markets) with their frontage
    # polygons, dated; each is also a party (kinds frontage_unit / property_company) so dispatch and unit accounts
    # reuse parties. Audited like parties; the frontage tile layer's revision is raised per statement.
    from citygrid.spatial.migrations.helpers import deployment_srid, geometry_column_ddl

    op.execute("ALTER TABLE parties DROP CONSTRAINT IF EXISTS parties_kind_check")
    op.execute("ALTER TABLE parties ADD CONSTRAINT parties_kind_check CHECK (kind IN ('department', 'unit', "
               "'street_office', 'community', 'team', 'person', 'frontage_unit', 'property_company'))")
    op.execute("""
CREATE TABLE frontage_units (
    district_code  text NOT NULL REFERENCES districts ON DELETE CASCADE,
    unit_id        bigint GENERATED ALWAYS AS IDENTITY,
    party_id       bigint NOT NULL,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind           text NOT NULL CHECK (kind IN ('shop', 'institution', 'property_company', 'market', 'other')),
    credit_code    text CHECK (credit_code ~ '^[0-9A-HJ-NPQRTUWXY]{18}$'),
    registry_id    text CHECK (length(registry_id) BETWEEN 1 AND 64),
    contact_person text NOT NULL DEFAULT '',
    contact_phone  text NOT NULL DEFAULT '',
    address        text NOT NULL DEFAULT '',
    valid_from     date NOT NULL,
    valid_to       date,
    synthetic      boolean NOT NULL DEFAULT false,
    source         text NOT NULL DEFAULT '',
    licence        text NOT NULL DEFAULT '',
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (district_code, unit_id),
    UNIQUE (district_code, party_id),
    FOREIGN KEY (district_code, party_id) REFERENCES parties,
    CHECK (credit_code IS NOT NULL OR registry_id IS NOT NULL),
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);
CREATE UNIQUE INDEX frontage_units_credit_code ON frontage_units (district_code, credit_code)
    WHERE credit_code IS NOT NULL;
CREATE UNIQUE INDEX frontage_units_registry_id ON frontage_units (district_code, registry_id)
    WHERE registry_id IS NOT NULL;
CREATE TRIGGER frontage_units_audit AFTER INSERT OR UPDATE OR DELETE ON frontage_units
    FOR EACH ROW EXECUTE FUNCTION audit_row('unit_id', '');
CREATE TRIGGER frontage_units_revision_ins AFTER INSERT ON frontage_units
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bulk_bump_revision('frontage');
CREATE TRIGGER frontage_units_revision_upd AFTER UPDATE ON frontage_units
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bulk_bump_revision('frontage');
CREATE TRIGGER frontage_units_revision_del AFTER DELETE ON frontage_units
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION bulk_bump_revision('frontage');
""")
    for ddl in geometry_column_ddl("frontage_units", "geom", "MultiPolygon", deployment_srid(), nullable=False):
        op.execute(ddl)
    # A frontage import records its source like every import (kind 'frontage'), and so does an ownership list
    # (kind 'ownership'), so the pages' footer names both.
    op.execute("ALTER TABLE data_sources DROP CONSTRAINT IF EXISTS data_sources_kind_check")
    op.execute("ALTER TABLE data_sources ADD CONSTRAINT data_sources_kind_check CHECK (kind IN ('district', "
               "'street', 'community', 'road', 'water', 'rail', 'census', 'cases', 'frontage', 'ownership'))")
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
    # Supervisor rotation plans (citygrid rotation plan|publish): a plan's request, summary (workload spread,
    # violations, solver figures) and publication, and its rows (who holds which supervision grid in which
    # two-month period, and who leads each team). ``person_id`` is the named person's id (people, #22); rows keep
    # the name as planned so a plan reads the same after people change. A grid's required number of supervisors
    # per period is data on the supervision grid (NULL: the roster spread evenly). Plans are audited one row per
    # plan (created, published); their rows are written once with the plan.
    op.execute("""
ALTER TABLE supervision_grids ADD COLUMN supervisors_required integer
    CHECK (supervisors_required BETWEEN 1 AND 1000);
CREATE TABLE rotation_plans (
    district_code text NOT NULL REFERENCES districts ON DELETE CASCADE,
    plan_id       bigint GENERATED ALWAYS AS IDENTITY,
    version_id    integer NOT NULL,
    start_date    date NOT NULL,
    months        integer NOT NULL CHECK (months BETWEEN 2 AND 36 AND months % 2 = 0),
    min_gap       integer NOT NULL CHECK (min_gap BETWEEN 1 AND 12),
    params        jsonb NOT NULL DEFAULT '{}',
    summary       jsonb NOT NULL DEFAULT '{}',
    synthetic     boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text NOT NULL DEFAULT '',
    published_at  timestamptz,
    published_by  text,
    PRIMARY KEY (district_code, plan_id),
    UNIQUE (plan_id)
);
CREATE TABLE rotation_plan_rows (
    district_code    text NOT NULL,
    plan_id          bigint NOT NULL,
    period           smallint NOT NULL CHECK (period >= 0),
    person_id        bigint NOT NULL,
    person_name      text NOT NULL,
    team_code        text NOT NULL,
    supervision_code text NOT NULL,
    leader           boolean NOT NULL DEFAULT false,
    PRIMARY KEY (district_code, plan_id, period, person_id),
    FOREIGN KEY (district_code, plan_id) REFERENCES rotation_plans ON DELETE CASCADE
);
CREATE TRIGGER rotation_plans_audit AFTER INSERT OR UPDATE OR DELETE ON rotation_plans
    FOR EACH ROW EXECUTE FUNCTION audit_row('plan_id', '');
""")
    pass


def downgrade() -> None:
    # --- rotation ---
    op.execute("DROP TABLE rotation_plan_rows; DROP TABLE rotation_plans; "
               "ALTER TABLE supervision_grids DROP COLUMN supervisors_required")
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
    op.execute("DELETE FROM data_sources WHERE kind IN ('frontage', 'ownership')")
    op.execute("ALTER TABLE data_sources DROP CONSTRAINT IF EXISTS data_sources_kind_check")
    op.execute("ALTER TABLE data_sources ADD CONSTRAINT data_sources_kind_check CHECK (kind IN ('district', "
               "'street', 'community', 'road', 'water', 'rail', 'census', 'cases'))")
    op.execute("DROP TABLE frontage_units")
    op.execute("DELETE FROM parties WHERE kind IN ('frontage_unit', 'property_company')")
    op.execute("ALTER TABLE parties DROP CONSTRAINT IF EXISTS parties_kind_check")
    op.execute("ALTER TABLE parties ADD CONSTRAINT parties_kind_check CHECK (kind IN ('department', 'unit', "
               "'street_office', 'community', 'team', 'person'))")
    # --- ownership imports ---
    op.execute("ALTER TABLE grid_ownership DROP COLUMN import_id, DROP COLUMN derived")
    op.execute("DROP TABLE ownership_imports")
    pass
