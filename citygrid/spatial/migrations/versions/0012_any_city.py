"""Any city (#19): what a deployment outside the two demo districts needs recorded.

Each section below belongs to one part of #19; each says what it adds and why.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # --- time zone (deployment.timezone) ---
    # The city's IANA time zone (citygrid/spatial/timezones.py): times without an offset are read in it, a date
    # names one of its local days, answers carry its offset, and every session runs in it (db.make_engine),
    # whatever the server's TimeZone. `db init --timezone` gives it; otherwise, and for deployments made
    # before, it is derived from the storage CRS's area of use (Asia/Shanghai for Beijing's and Zhengzhou's).
    from citygrid.spatial.timezones import zone_for_srid, zone_named

    stored_srid = op.get_bind().execute(sa.text("SELECT srid FROM deployment")).scalar()
    zone = op.get_context().config.attributes.get("timezone") or (
        zone_for_srid(stored_srid)[0] if stored_srid else "UTC")
    zone_named(zone)
    if not op.get_bind().execute(sa.text("SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = :n)"),
                                 {"n": zone}).scalar_one():
        zone = "UTC"  # a derived zone the server's own zone database lacks (db init checks a given one)
    op.execute("ALTER TABLE deployment ADD COLUMN timezone text "
               "CHECK (timezone ~ '^[A-Za-z0-9_+-]{1,32}(/[A-Za-z0-9_+-]{1,32}){0,2}$')")
    op.get_bind().execute(sa.text("UPDATE deployment SET timezone = :tz"), {"tz": zone})
    op.execute("ALTER TABLE deployment ALTER COLUMN timezone SET NOT NULL")
    # --- code scheme (deployment.code_scheme) ---
    # Which district/street/community code formats the deployment accepts (citygrid/codes.py): the Chinese
    # administrative scheme (6-digit districts, 9/12-digit streets and communities), or 'alnum' (up to 12
    # upper-case letters, digits and inner hyphens) so a city outside China need not invent fake codes. The
    # columns' own checks widen to what either scheme allows (6 to 12 digits are alnum codes too); the
    # deployment's scheme is checked on the way in.
    op.execute("ALTER TABLE deployment ADD COLUMN code_scheme text NOT NULL DEFAULT 'cn-admin' "
               "CHECK (code_scheme IN ('cn-admin', 'alnum'))")
    op.execute("ALTER TABLE districts DROP CONSTRAINT districts_district_code_check")
    op.execute("ALTER TABLE districts ADD CONSTRAINT districts_district_code_check "
               "CHECK (district_code ~ '^[0-9A-Z]([0-9A-Z-]{0,10}[0-9A-Z])?$')")
    op.execute("ALTER TABLE admin_areas DROP CONSTRAINT admin_areas_code_check")
    op.execute("ALTER TABLE admin_areas ADD CONSTRAINT admin_areas_code_check "
               "CHECK (code ~ '^[0-9A-Z]([0-9A-Z-]{0,10}[0-9A-Z])?$')")
    # --- data sources (data_sources) ---
    # Where each district's data came from, and under what licence: every import records its source (district,
    # streets/communities and lines from their rows; a census job once committed; a case import; the demo's
    # SYNTHETIC census and history), and the page footer lists these instead of a fixed text about Chinese demo
    # data. A census row names its job: it counts once that job is committed.
    op.execute("""
        CREATE TABLE data_sources (
            district_code text NOT NULL REFERENCES districts ON DELETE CASCADE ON UPDATE CASCADE,
            source_id     bigint GENERATED ALWAYS AS IDENTITY,
            kind          text NOT NULL
                          CHECK (kind IN ('district', 'street', 'community', 'road', 'water', 'rail', 'census',
                                          'cases')),
            source        text NOT NULL CHECK (length(source) BETWEEN 1 AND 300 AND source !~ '[[:cntrl:]]'),
            licence       text NOT NULL DEFAULT '' CHECK (length(licence) <= 300 AND licence !~ '[[:cntrl:]]'),
            synthetic     boolean NOT NULL DEFAULT false,
            job_id        uuid,
            recorded_at   timestamptz NOT NULL DEFAULT now(),
            recorded_by   text NOT NULL DEFAULT '',
            PRIMARY KEY (district_code, source_id),
            FOREIGN KEY (district_code, job_id) REFERENCES import_jobs ON DELETE CASCADE
        )""")
    op.execute("CREATE UNIQUE INDEX data_sources_once ON data_sources (district_code, kind, source) "
               "WHERE job_id IS NULL")
    op.execute("CREATE UNIQUE INDEX data_sources_job ON data_sources (district_code, job_id) "
               "WHERE job_id IS NOT NULL")
    # Back-filled from what the rows already say (texts cleaned to what the table accepts), and the seeded
    # demo census and history as SYNTHETIC.
    clean = "left(btrim(regexp_replace({0}, '[[:cntrl:]]+', ' ', 'g')), 300)"
    for table, kind in (("districts", "'district'"), ("admin_areas", "level"), ("lines", "kind")):
        op.execute(f"""
            INSERT INTO data_sources (district_code, kind, source, licence, recorded_by)
            SELECT DISTINCT ON (district_code, kind, source) district_code, kind, source, licence, 'migration 0012'
              FROM (SELECT district_code, {kind} AS kind, {clean.format('source')} AS source,
                           {clean.format('licence')} AS licence FROM {table}) t
             WHERE source <> ''
             ORDER BY district_code, kind, source, licence
            ON CONFLICT DO NOTHING""")
    for table, kind in (("components", "census"), ("cases", "cases")):  # text: sources.SYNTHETIC_SOURCE
        op.execute(f"""
            INSERT INTO data_sources (district_code, kind, source, synthetic, recorded_by)
            SELECT DISTINCT district_code, '{kind}', 'seeded by citygrid, not real data', true,
                   'migration 0012'
              FROM {table} WHERE synthetic
            ON CONFLICT DO NOTHING""")
    # --- census native IDs ---
    # A city's own feature ID (`census import --id-field asset_id`), kept on every version: it keys the
    # reconciliation (a hash join, like the ObjID's, so no index) and gives a re-imported row its ObjID back.
    op.execute("ALTER TABLE components ADD COLUMN native_id text")
    # --- class schemes ---
    # A city loads its own class scheme (e.g. its 311 service list, in its language) with `citygrid taxonomy
    # import`: codes follow components_survey.taxonomy.CLASS_CODE (letters, digits, _ and -, up to 16; 4 digits
    # for the packaged CJ/T 214 scheme), the group code may be empty, and a class carries its keywords,
    # description and Open311 service code. The deployment records its active scheme (NULL: the packaged
    # cjt214); intake, the classifier and Open311 use it. A report the classifier cannot classify is stored
    # without a class (class_code NULL) and flagged for review instead of getting an unrelated class.
    op.execute("""
        ALTER TABLE taxonomy_classes
            DROP CONSTRAINT taxonomy_classes_code_check,
            DROP CONSTRAINT taxonomy_classes_major_code_check,
            ADD CONSTRAINT taxonomy_classes_code_check CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_-]{0,15}$'),
            ADD CONSTRAINT taxonomy_classes_major_code_check CHECK (major_code ~ '^[A-Za-z0-9_-]{0,16}$'),
            ADD COLUMN keywords text NOT NULL DEFAULT '' CHECK (length(keywords) <= 1000),
            ADD COLUMN description text NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
            ADD COLUMN service_code text CHECK (service_code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$'),
            ADD COLUMN open311 boolean NOT NULL DEFAULT true,
            ADD CONSTRAINT taxonomy_classes_service_code_key UNIQUE (scheme, service_code)
    """)
    op.execute("ALTER TABLE deployment ADD COLUMN class_scheme text REFERENCES taxonomy_schemes (scheme)")
    op.execute("ALTER TABLE cases ALTER COLUMN class_code DROP NOT NULL")
    # --- case imports ---
    # No schema change: dated steps are case_events rows, derived keys fit idempotency_key. Case attrs that
    # the bulk import once stored as JSON strings (Open311 answered 500) were repaired by 0011.


def downgrade() -> None:
    # --- case imports ---
    # --- class schemes ---
    op.execute("ALTER TABLE cases ALTER COLUMN class_code SET NOT NULL")  # fails while unclassified cases exist
    op.execute("ALTER TABLE deployment DROP COLUMN class_scheme")
    op.execute("""
        ALTER TABLE taxonomy_classes
            DROP CONSTRAINT taxonomy_classes_service_code_key,
            DROP COLUMN open311, DROP COLUMN service_code, DROP COLUMN description, DROP COLUMN keywords,
            DROP CONSTRAINT taxonomy_classes_code_check,
            DROP CONSTRAINT taxonomy_classes_major_code_check,
            ADD CONSTRAINT taxonomy_classes_code_check CHECK (code ~ '^[0-9]{4}$'),
            ADD CONSTRAINT taxonomy_classes_major_code_check CHECK (major_code ~ '^[0-9]{2}$')
    """)
    # --- census native IDs ---
    op.execute("ALTER TABLE components DROP COLUMN native_id")
    # --- data sources (data_sources) ---
    op.execute("DROP TABLE data_sources")
    # --- code scheme (deployment.code_scheme) ---
    # Fails, as it should, where codes the old checks cannot hold were stored.
    op.execute("ALTER TABLE admin_areas DROP CONSTRAINT admin_areas_code_check")
    op.execute("ALTER TABLE admin_areas ADD CONSTRAINT admin_areas_code_check CHECK (code ~ '^[0-9]{9,12}$')")
    op.execute("ALTER TABLE districts DROP CONSTRAINT districts_district_code_check")
    op.execute("ALTER TABLE districts ADD CONSTRAINT districts_district_code_check "
               "CHECK (district_code ~ '^[0-9]{6}$')")
    op.execute("ALTER TABLE deployment DROP COLUMN code_scheme")
    # --- time zone (deployment.timezone) ---
    op.execute("ALTER TABLE deployment DROP COLUMN timezone")
