"""Security fixes of #18: idempotency keys scoped to their caller with a digest of the request, unit accounts
bound to their party, and case ``attrs`` that a bulk import stored as a JSON string repaired.

- ``cases.idempotency_digest`` / ``case_events.idempotency_digest``: SHA-256 of the report a key was first used
  with, so a retry with another body under the same key is told apart (409) from a true retry. Keys themselves
  are stored prefixed with their caller's scope (``user:<id>:``, ``open311:<client>:``); rows stored before this
  revision keep their bare keys, which no caller's scoped key can match any more.
- ``users.party_code``: the party (``parties.code``) a ``unit`` account acts for; ``cases_dispatched_to`` indexes
  the party a case is dispatched to (``attrs->'dispatched_to'->>'code'``), which is what such an account reads.
- ``cases.attrs`` of type string (encoded twice by ``citygrid cases import`` before this revision) are decoded
  back into objects.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE cases ADD COLUMN idempotency_digest text")
    op.execute("ALTER TABLE case_events ADD COLUMN idempotency_digest text")
    op.execute("ALTER TABLE users ADD COLUMN party_code text")
    # Failed sign-ins counted per address and per account in the database, so every server process (five
    # gunicorn workers counted five times the limit with buckets of their own) sees one bucket.
    op.execute("""CREATE TABLE login_limits (
                      key        text PRIMARY KEY CHECK (length(key) <= 200),
                      tokens     double precision NOT NULL,
                      updated_at timestamptz NOT NULL DEFAULT now())""")
    op.execute("CREATE INDEX login_limits_updated ON login_limits (updated_at)")
    # A unit account reads the cases dispatched to its party (cases.scope): found by this index, not a scan.
    # Built before the repair below: an index cannot be built on a table with pending trigger events.
    op.execute("CREATE INDEX cases_dispatched_to ON cases (district_code, (attrs -> 'dispatched_to' ->> 'code'))")
    # A repair of stored form, not anyone's change: the cases trigger does not audit it row by row.
    op.execute("SELECT set_config('citygrid.bulk', 'on', true)")
    op.execute("""
        UPDATE cases SET attrs = CAST(attrs #>> '{}' AS jsonb)
         WHERE jsonb_typeof(attrs) = 'string' AND left(ltrim(attrs #>> '{}'), 1) = '{'""")
    op.execute("SELECT set_config('citygrid.bulk', 'off', true)")


def downgrade() -> None:
    op.execute("DROP INDEX cases_dispatched_to")
    op.execute("DROP TABLE login_limits")
    op.execute("ALTER TABLE users DROP COLUMN party_code")
    op.execute("ALTER TABLE case_events DROP COLUMN idempotency_digest")
    op.execute("ALTER TABLE cases DROP COLUMN idempotency_digest")
