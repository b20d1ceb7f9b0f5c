"""Accounts and row-level audit.

Users with roles (planner, supervisor, dispatcher, unit, analyst, gis, admin), API tokens and web sessions (both
stored as SHA-256 digests of high-entropy random secrets: a stolen table gives no usable credential), passwords
as Argon2id hashes.

Every insert, update and delete of the records people change one at a time — cases, grid versions' status,
parties, ownership, supervisor assignments, supervision teams, districts, taxonomy classes, users and tokens — is
written to ``audit_log`` by a trigger with the row before and after (secret columns left out) and the actor from
the transaction's ``citygrid.actor`` setting (the web layer sets the signed-in user; the CLI ``cli:<os user>``).
A trigger cannot be bypassed by a code path that forgets to log. Bulk, versioned records (components, unit and
supervision grids, lines) are never changed in place — a change adds a version — and their import or edit is
audited once per operation by the code that does it; so are bulk loads of cases (a historic caseload import,
a restore), which set ``citygrid.bulk`` for their transaction.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ROLES = "'planner', 'supervisor', 'dispatcher', 'unit', 'analyst', 'gis', 'admin'"

# table -> (key columns joined with '/' into object_id, columns left out of before/after)
AUDITED = {
    "cases": ("case_id", ""),
    "grid_versions": ("version_id", "params"),
    "parties": ("party_id", ""),
    "grid_ownership": ("ownership_id", ""),
    "supervisor_assignments": ("assignment_id", ""),
    "supervision_teams": ("version_id,code", ""),
    "districts": ("district_code", ""),
    "taxonomy_classes": ("scheme,kind,code", ""),
    "users": ("username", "password_hash"),
    "api_tokens": ("token_id", "token_hash"),
}


def upgrade() -> None:
    op.execute(f"""
CREATE TABLE users (
    user_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._-]{{1,62}}$'),
    display_name  text NOT NULL DEFAULT '',
    roles         text[] NOT NULL CHECK (cardinality(roles) > 0 AND roles <@ ARRAY[{ROLES}]),
    district_code text,  -- no foreign key: replacing a district from a backup must not unscope its users
    team_code     text,
    password_hash text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz
);
CREATE TABLE api_tokens (
    token_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    token_hash   bytea NOT NULL UNIQUE,
    label        text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    revoked_at   timestamptz
);
CREATE TABLE user_sessions (
    session_hash bytea PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    csrf_token   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    ended_at     timestamptz
);
CREATE INDEX user_sessions_user ON user_sessions (user_id);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    before_row jsonb;
    after_row  jsonb;
    row_data   jsonb;
    secret     text;
BEGIN
    IF current_setting('citygrid.bulk', true) = 'on' THEN
        RETURN NULL;  -- a bulk load (history import, restore) audited once by the code that runs it
    END IF;
    IF TG_OP <> 'INSERT' THEN before_row := to_jsonb(OLD); END IF;
    IF TG_OP <> 'DELETE' THEN after_row := to_jsonb(NEW); END IF;
    IF TG_ARGV[1] <> '' THEN
        FOREACH secret IN ARRAY string_to_array(TG_ARGV[1], ',') LOOP
            before_row := before_row - secret;
            after_row := after_row - secret;
        END LOOP;
    END IF;
    IF TG_OP = 'UPDATE' AND before_row = after_row THEN
        RETURN NULL;
    END IF;
    row_data := coalesce(after_row, before_row);
    INSERT INTO audit_log (district_code, actor, action, object_kind, object_id, before, after)
    VALUES (row_data ->> 'district_code',
            coalesce(nullif(current_setting('citygrid.actor', true), ''), 'db:' || session_user),
            lower(TG_OP), TG_TABLE_NAME,
            (SELECT string_agg(row_data ->> key, '/') FROM unnest(string_to_array(TG_ARGV[0], ',')) AS key),
            before_row, after_row);
    RETURN NULL;
END $$;
""")
    for table, (keys, secrets) in AUDITED.items():
        op.execute(f"CREATE TRIGGER {table}_audit AFTER INSERT OR UPDATE OR DELETE ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION audit_row('{keys}', '{secrets}')")


def downgrade() -> None:
    for table in AUDITED:
        op.execute(f"DROP TRIGGER {table}_audit ON {table}")
    op.execute("DROP FUNCTION audit_row(); DROP INDEX audit_log_at; "
               "DROP TABLE user_sessions; DROP TABLE api_tokens; DROP TABLE users")
