"""Initial schema: deployment, administrative areas, grid versions, parties and ownership, lines, taxonomy,
components, cases, import jobs, audit log.

Every large table carries ``district_code`` in its primary key so the schema can be distributed by district
(see docs/scaling.md). Geometry columns are typed, in the deployment SRID, checked valid and GiST-indexed.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from alembic import op

from citygrid.spatial.migrations.helpers import deployment_srid, geometry_column_ddl

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TABLES = """
CREATE TABLE deployment (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    name        text NOT NULL,
    srid        integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE districts (
    district_code text PRIMARY KEY CHECK (district_code ~ '^[0-9]{6}$'),
    name          text NOT NULL,
    source        text NOT NULL DEFAULT '',
    licence       text NOT NULL DEFAULT '',
    source_crs    text NOT NULL DEFAULT '',
    loaded_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE admin_areas (
    district_code text NOT NULL REFERENCES districts ON DELETE CASCADE,
    code          text NOT NULL CHECK (code ~ '^[0-9]{9,12}$'),
    level         text NOT NULL CHECK (level IN ('street', 'community')),
    parent_code   text,
    name          text NOT NULL,
    ur_code       text,
    geom_derived  boolean NOT NULL DEFAULT false,
    source        text NOT NULL DEFAULT '',
    licence       text NOT NULL DEFAULT '',
    PRIMARY KEY (district_code, code),
    FOREIGN KEY (district_code, parent_code) REFERENCES admin_areas (district_code, code)
        DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE grid_versions (
    district_code  text NOT NULL REFERENCES districts ON DELETE CASCADE,
    version_id     integer NOT NULL,
    status         text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'retired')),
    source         text NOT NULL DEFAULT '' CHECK (source IN ('', 'roads', 'derived', 'imported', 'edited')),
    parent_version integer,
    author         text NOT NULL DEFAULT '',
    note           text NOT NULL DEFAULT '',
    params         jsonb NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    effective_from timestamptz,
    effective_to   timestamptz,
    PRIMARY KEY (district_code, version_id),
    CHECK (effective_to IS NULL OR effective_from IS NULL OR effective_to > effective_from)
);

CREATE TABLE supervision_teams (
    district_code text NOT NULL,
    version_id    integer NOT NULL,
    code          text NOT NULL,
    name          text NOT NULL DEFAULT '',
    PRIMARY KEY (district_code, version_id, code),
    FOREIGN KEY (district_code, version_id) REFERENCES grid_versions ON DELETE CASCADE
);

CREATE TABLE supervision_grids (
    district_code text NOT NULL,
    version_id    integer NOT NULL,
    code          text NOT NULL,
    team_code     text,
    street_code   text,
    workload      double precision,
    PRIMARY KEY (district_code, version_id, code),
    FOREIGN KEY (district_code, version_id) REFERENCES grid_versions ON DELETE CASCADE,
    FOREIGN KEY (district_code, version_id, team_code) REFERENCES supervision_teams
);

CREATE TABLE unit_grids (
    district_code    text NOT NULL,
    version_id       integer NOT NULL,
    code             text NOT NULL,
    street_code      text,
    community_code   text,
    supervision_code text,
    area_m2          double precision,
    attrs            jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (district_code, version_id, code),
    FOREIGN KEY (district_code, version_id) REFERENCES grid_versions ON DELETE CASCADE,
    FOREIGN KEY (district_code, version_id, supervision_code) REFERENCES supervision_grids
);

-- Every unit-grid code ever issued in a district; retired codes are never reused.
CREATE TABLE grid_codes (
    district_code   text NOT NULL REFERENCES districts ON DELETE CASCADE,
    code            text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('unit', 'supervision', 'team')),
    first_version   integer NOT NULL,
    retired_version integer,
    PRIMARY KEY (district_code, kind, code)
);

CREATE TABLE parties (
    district_code text NOT NULL REFERENCES districts ON DELETE CASCADE,
    party_id      bigint GENERATED ALWAYS AS IDENTITY,
    kind          text NOT NULL CHECK (kind IN ('department', 'unit', 'street_office', 'community', 'team', 'person')),
    code          text NOT NULL,
    name          text NOT NULL,
    parent_id     bigint,
    contact       text NOT NULL DEFAULT '',
    active        boolean NOT NULL DEFAULT true,
    PRIMARY KEY (district_code, party_id),
    UNIQUE (district_code, kind, code)
);

-- Who answers for a grid in each of the four roles, over a validity range; never updated in place.
CREATE TABLE grid_ownership (
    district_code text NOT NULL,
    ownership_id  bigint GENERATED ALWAYS AS IDENTITY,
    grid_kind     text NOT NULL CHECK (grid_kind IN ('unit', 'supervision')),
    grid_code     text NOT NULL,
    role          text NOT NULL CHECK (role IN ('responsibility', 'management', 'enforcement', 'supervision')),
    party_id      bigint NOT NULL,
    valid         tstzrange NOT NULL CHECK (NOT isempty(valid)),
    PRIMARY KEY (district_code, ownership_id),
    FOREIGN KEY (district_code, party_id) REFERENCES parties,
    EXCLUDE USING gist (district_code WITH =, grid_kind WITH =, grid_code WITH =, role WITH =, valid WITH &&)
);

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

CREATE TABLE lines (
    district_code text NOT NULL REFERENCES districts ON DELETE CASCADE,
    line_id       bigint GENERATED ALWAYS AS IDENTITY,
    kind          text NOT NULL CHECK (kind IN ('road', 'water', 'rail')),
    class         text NOT NULL DEFAULT '',
    name          text NOT NULL DEFAULT '',
    source_id     text NOT NULL DEFAULT '',
    source        text NOT NULL DEFAULT '',
    licence       text NOT NULL DEFAULT '',
    PRIMARY KEY (district_code, line_id)
);

CREATE TABLE taxonomy_schemes (
    scheme      text PRIMARY KEY,
    title       text NOT NULL,
    source      text NOT NULL DEFAULT '',
    loaded_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE taxonomy_classes (
    scheme      text NOT NULL REFERENCES taxonomy_schemes ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('component', 'event')),
    code        text NOT NULL CHECK (code ~ '^[0-9]{4}$'),
    major_code  text NOT NULL CHECK (major_code ~ '^[0-9]{2}$'),
    major_name  text NOT NULL,
    name        text NOT NULL,
    sources     text NOT NULL DEFAULT '',
    verified    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (scheme, kind, code)
);

-- Components are versioned: a change closes the old row (valid_to) and adds a new one.
CREATE TABLE components (
    district_code text NOT NULL REFERENCES districts ON DELETE CASCADE,
    obj_id        text NOT NULL,
    valid_from    timestamptz NOT NULL DEFAULT now(),
    valid_to      timestamptz,
    scheme        text NOT NULL,
    class_kind    text NOT NULL DEFAULT 'component' CHECK (class_kind = 'component'),
    class_code    text NOT NULL,
    obj_name      text NOT NULL DEFAULT '',
    dept_code1    text, dept_name1 text,
    dept_code2    text, dept_name2 text,
    dept_code3    text, dept_name3 text,
    unit_grid_code text,
    obj_state     text,
    or_date       date,
    ch_date       date,
    data_source   text,
    note          text,
    attrs         jsonb NOT NULL DEFAULT '{}',
    import_job_id uuid,
    PRIMARY KEY (district_code, obj_id, valid_from),
    FOREIGN KEY (scheme, class_kind, class_code) REFERENCES taxonomy_classes (scheme, kind, code),
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);

CREATE TABLE cases (
    district_code     text NOT NULL REFERENCES districts ON DELETE CASCADE,
    case_id           bigint GENERATED ALWAYS AS IDENTITY,
    idempotency_key   text,
    kind              text NOT NULL CHECK (kind IN ('component', 'event')),
    scheme            text NOT NULL,
    class_code        text NOT NULL,
    description       text NOT NULL DEFAULT '',
    source            text NOT NULL DEFAULT 'supervisor',
    reported_at       timestamptz NOT NULL DEFAULT now(),
    status            text NOT NULL DEFAULT 'reported',
    unit_grid_code    text,
    supervision_code  text,
    community_code    text,
    street_code       text,
    component_obj_id  text,
    deadline_at       timestamptz,
    synthetic         boolean NOT NULL DEFAULT false,
    row_version       integer NOT NULL DEFAULT 1,
    attrs             jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (district_code, case_id),
    UNIQUE (district_code, idempotency_key),
    FOREIGN KEY (scheme, kind, class_code) REFERENCES taxonomy_classes (scheme, kind, code)
);

CREATE TABLE case_events (
    district_code text NOT NULL,
    case_id       bigint NOT NULL,
    seq           integer NOT NULL,
    at            timestamptz NOT NULL DEFAULT now(),
    action        text NOT NULL,
    from_status   text,
    to_status     text NOT NULL,
    actor         text NOT NULL DEFAULT '',
    role          text NOT NULL DEFAULT '',
    note          text NOT NULL DEFAULT '',
    PRIMARY KEY (district_code, case_id, seq),
    FOREIGN KEY (district_code, case_id) REFERENCES cases ON DELETE CASCADE
);

CREATE TABLE import_jobs (
    district_code text NOT NULL REFERENCES districts ON DELETE CASCADE,
    job_id        uuid NOT NULL,
    kind          text NOT NULL,
    filename      text NOT NULL DEFAULT '',
    state         text NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued', 'running', 'preview', 'committed', 'failed', 'rejected')),
    percent       real NOT NULL DEFAULT 0 CHECK (percent BETWEEN 0 AND 100),
    counts        jsonb NOT NULL DEFAULT '{}',
    params        jsonb NOT NULL DEFAULT '{}',
    message       text NOT NULL DEFAULT '',
    created_by    text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    PRIMARY KEY (district_code, job_id)
);

CREATE TABLE import_row_reports (
    district_code text NOT NULL,
    job_id        uuid NOT NULL,
    line_no       integer NOT NULL,
    seq           integer NOT NULL,
    obj_id        text,
    field         text NOT NULL DEFAULT '',
    reason        text NOT NULL,
    detail        text NOT NULL DEFAULT '',
    PRIMARY KEY (district_code, job_id, line_no, seq),
    FOREIGN KEY (district_code, job_id) REFERENCES import_jobs ON DELETE CASCADE
);

CREATE TABLE audit_log (
    audit_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    district_code text,
    at            timestamptz NOT NULL DEFAULT now(),
    actor         text NOT NULL,
    action        text NOT NULL,
    object_kind   text NOT NULL,
    object_id     text NOT NULL,
    before        jsonb,
    after         jsonb
);
CREATE INDEX audit_log_object ON audit_log (object_kind, object_id, at);
CREATE INDEX audit_log_actor ON audit_log (actor, at);
CREATE INDEX cases_status ON cases (district_code, status, reported_at);
CREATE INDEX components_current ON components (district_code, obj_id) WHERE valid_to IS NULL;
"""

# (table, column, type, nullable)
_GEOMETRIES = [
    ("districts", "geom", "MultiPolygon", False),
    ("admin_areas", "point", "Point", True),
    ("admin_areas", "geom", "MultiPolygon", True),
    ("supervision_grids", "geom", "MultiPolygon", False),
    ("unit_grids", "geom", "Polygon", False),
    ("lines", "geom", "LineString", False),
    ("components", "geom", "Point", False),
    ("cases", "geom", "Point", False),
]


def upgrade() -> None:
    srid = deployment_srid()
    name = op.get_context().config.attributes.get("deployment_name") or "citygrid"
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    for statement in _TABLES.split(";\n"):
        if statement.strip():
            op.execute(statement)
    for table, column, geom_type, nullable in _GEOMETRIES:
        for statement in geometry_column_ddl(table, column, geom_type, srid, nullable=nullable):
            op.execute(statement)
    op.get_bind().exec_driver_sql(
        "INSERT INTO deployment (name, srid) VALUES (%(name)s, %(srid)s)", {"name": name, "srid": srid}
    )


def downgrade() -> None:
    for table in (
        "audit_log", "import_row_reports", "import_jobs", "case_events", "cases", "components",
        "taxonomy_classes", "taxonomy_schemes", "lines", "supervisor_assignments", "grid_ownership", "parties",
        "grid_codes", "unit_grids", "supervision_grids", "supervision_teams", "grid_versions", "admin_areas",
        "districts", "deployment",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
