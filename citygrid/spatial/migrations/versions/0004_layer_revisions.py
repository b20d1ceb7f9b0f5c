"""Layer revisions: a counter per district and layer (cases, components) that every committed change raises,
so a map tile cached under a revision can never be served after an edit.

Cases change one row per transaction at high rates, so their counter is raised by a deferred constraint
trigger — at commit, once per transaction — and the row lock is held only while the commit completes.
Components and grid ownership change in bulk (a census commit, a derived ownership), so theirs are raised once
per statement from the statement's transition table.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
CREATE TABLE layer_revisions (
    district_code text NOT NULL REFERENCES districts ON DELETE CASCADE,
    layer         text NOT NULL,
    revision      bigint NOT NULL DEFAULT 1,
    changed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (district_code, layer)
);

CREATE FUNCTION bump_layer_revision(p_district text, p_layer text) RETURNS void LANGUAGE sql AS $$
    INSERT INTO layer_revisions (district_code, layer) VALUES (p_district, p_layer)
    ON CONFLICT (district_code, layer)
    DO UPDATE SET revision = layer_revisions.revision + 1, changed_at = now();
$$;

-- Once per transaction and district: the guard is a transaction-local setting naming what was bumped.
CREATE FUNCTION cases_bump_revision() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    row_district text := CASE WHEN TG_OP = 'DELETE' THEN OLD.district_code ELSE NEW.district_code END;
    done text := coalesce(current_setting('citygrid.cases_bumped', true), '');
BEGIN
    IF position('|' || row_district || '|' IN done) = 0 THEN
        PERFORM bump_layer_revision(row_district, 'cases');
        PERFORM set_config('citygrid.cases_bumped', done || '|' || row_district || '|', true);
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER cases_revision AFTER INSERT OR UPDATE OR DELETE ON cases
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cases_bump_revision();

-- Bulk tables: once per statement and district, from the transition table; the layer is the trigger argument.
CREATE FUNCTION bulk_bump_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM bump_layer_revision(d, TG_ARGV[0]) FROM (SELECT DISTINCT district_code AS d FROM old_rows) s;
    ELSE
        PERFORM bump_layer_revision(d, TG_ARGV[0]) FROM (SELECT DISTINCT district_code AS d FROM new_rows) s;
    END IF;
    RETURN NULL;
END $$;

""")
    for table, layer in (("components", "components"), ("grid_ownership", "ownership")):
        op.execute(f"""
CREATE TRIGGER {table}_revision_ins AFTER INSERT ON {table}
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bulk_bump_revision('{layer}');
CREATE TRIGGER {table}_revision_upd AFTER UPDATE ON {table}
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION bulk_bump_revision('{layer}');
CREATE TRIGGER {table}_revision_del AFTER DELETE ON {table}
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION bulk_bump_revision('{layer}');
""")


def downgrade() -> None:
    for table in ("components", "grid_ownership"):
        op.execute(f"DROP TRIGGER {table}_revision_ins ON {table}; DROP TRIGGER {table}_revision_upd ON {table};"
                   f" DROP TRIGGER {table}_revision_del ON {table};")
    op.execute("""
DROP FUNCTION bulk_bump_revision();
DROP TRIGGER cases_revision ON cases;
DROP FUNCTION cases_bump_revision();
DROP FUNCTION bump_layer_revision(text, text);
DROP TABLE layer_revisions;
""")
