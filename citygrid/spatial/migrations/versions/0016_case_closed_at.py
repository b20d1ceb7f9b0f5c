"""When each case was last closed (``cases.closed_at``), kept by the database from the case's events, the
callback queue's index on it, and an index per supervisor's queue (#21).

The callback queue (``desk``) lists the closed public reports newest closing first, and the case exports
(``interop``) name each case's closing time. Both found it in the events: the queue walked the district's closing
events newest first and looked each case up, and most of them belonged to cases called back since (evaluated) or
reported by a supervisor, neither of which the queue holds (148 events and 840 buffers for a page of 20 on the
desk_queue bench, 200,000 cases). Kept on the case, the page is the first 20 entries of one partial index.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The latest time of an event moving the case to ``closed`` (a close, an investigation closed, a history
    # imported as closed): NULL for a case never closed. Kept by a trigger on the events, so every writer
    # (the workflow, history imports, synthetic timelines, restores) keeps it, and never written by the
    # application. A derived column: the row audit leaves it out (its change is the close event's, which the
    # case's status change and the event itself record), so filling it writes no audit row. Events are written,
    # never changed: only a history import replaces its own events (``cases.timeline_store``), which end no
    # later than the closing events they stand beside, so a trigger on inserts is all it needs.
    op.execute("""
ALTER TABLE cases ADD COLUMN closed_at timestamptz;
DROP TRIGGER cases_audit ON cases;
CREATE TRIGGER cases_audit AFTER INSERT OR UPDATE OR DELETE ON cases
    FOR EACH ROW EXECUTE FUNCTION audit_row('case_id', 'closed_at');
CREATE FUNCTION case_event_closed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE cases SET closed_at = NEW.at
     WHERE district_code = NEW.district_code AND case_id = NEW.case_id
       AND (closed_at IS NULL OR closed_at < NEW.at);
    RETURN NULL;
END $$;
CREATE TRIGGER case_events_closed AFTER INSERT ON case_events FOR EACH ROW
    WHEN (NEW.to_status = 'closed') EXECUTE FUNCTION case_event_closed();
""")
    # callback: the closed public reports (desk.queues.CALLBACK_SOURCES) newest closing first, the queue's
    # order: its page is the index's first entries and its count stops after COUNT_CAP + 1 of them; one index
    # per district, one across them (an account of the whole city asking without a district). They replace the
    # queue's count index and the closing events' index, which nothing else reads.
    op.execute("""
CREATE INDEX cases_desk_closed ON cases (district_code, closed_at DESC, case_id DESC) INCLUDE (row_version)
    WHERE status = 'closed' AND source IN ('hotline', 'citizen', 'open311');
CREATE INDEX cases_desk_closed_all ON cases (closed_at DESC, case_id DESC) INCLUDE (district_code, row_version)
    WHERE status = 'closed' AND source IN ('hotline', 'citizen', 'open311');
DROP INDEX cases_desk_callback;
DROP INDEX case_events_closing;
""")
    # verify, check: a supervisor's queues read the tasks of their team's grids, grid by grid: one index per
    # queue, holding that queue's tasks only. The index both shared (every report and fed-back case of a grid)
    # had each lookup fetch the other queue's cases from the table and drop them (verify: 112 cases read for
    # the team's 45 tasks, 1.5 ms instead of 0.5 ms on the desk_queue bench).
    op.execute("""
CREATE INDEX cases_desk_verify_grid ON cases (district_code, supervision_code)
    WHERE status = 'reported' AND verify_due_at IS NOT NULL;
CREATE INDEX cases_desk_check_grid ON cases (district_code, supervision_code) WHERE status = 'fed_back';
DROP INDEX cases_desk_grid;
""")
    # The cases closed so far, last: the update queues the cases' deferred revision trigger (cases_revision),
    # and no table with pending trigger events may be altered or indexed in the same transaction. Derived, not
    # anyone's change: the row audit skips it outright (it would compare every closed case's row twice).
    op.execute("SELECT set_config('citygrid.bulk', 'on', true)")
    op.execute("""
UPDATE cases c SET closed_at = e.at
  FROM (SELECT district_code, case_id, max(at) AS at FROM case_events WHERE to_status = 'closed'
         GROUP BY district_code, case_id) e
 WHERE c.district_code = e.district_code AND c.case_id = e.case_id;
""")
    op.execute("SELECT set_config('citygrid.bulk', 'off', true)")
    # Fire the revision trigger's queued events now rather than at commit: a later migration in the same run
    # could not alter or index the cases table while they wait.
    op.execute("SET CONSTRAINTS cases_revision IMMEDIATE")
    op.execute("SET CONSTRAINTS cases_revision DEFERRED")


def downgrade() -> None:
    op.execute("""
CREATE INDEX cases_desk_grid ON cases (district_code, supervision_code) WHERE status IN ('reported', 'fed_back');
DROP INDEX cases_desk_check_grid;
DROP INDEX cases_desk_verify_grid;
CREATE INDEX case_events_closing ON case_events (at DESC) WHERE to_status = 'closed';
DROP INDEX cases_desk_closed_all;
CREATE INDEX cases_desk_callback ON cases (district_code) INCLUDE (case_id, row_version)
    WHERE status = 'closed' AND source IN ('hotline', 'citizen', 'open311');
DROP INDEX cases_desk_closed;
DROP TRIGGER case_events_closed ON case_events;
DROP FUNCTION case_event_closed();
DROP TRIGGER cases_audit ON cases;
CREATE TRIGGER cases_audit AFTER INSERT OR UPDATE OR DELETE ON cases
    FOR EACH ROW EXECUTE FUNCTION audit_row('case_id', '');
ALTER TABLE cases DROP COLUMN closed_at;
""")
