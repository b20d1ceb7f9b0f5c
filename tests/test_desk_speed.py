"""The desk's fast paths (#21) against their exact slow paths: counts that stop at a cap are exact below it
and say "at least" at it; the counts and page read in one statement equal the queue's exact counts; a page's
owners read at once equal the per-case lookup, and so do the dispatch previews built on them."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa

from citygrid.cases import service
from citygrid.cases import store as case_store
from citygrid.cases.queries import CaseFilter
from citygrid.cases.scope import CaseScope
from citygrid.desk import queries, store
from citygrid.desk.queues import CALLBACK_SOURCES, QUEUES
from citygrid.spatial.db import deployment_srid
from tests.test_desk import app, as_user, event, parties, report, set_case  # noqa: F401  (fixtures)
from tests.test_frontage import lonlat, placed_unit, spot, uncovered, zz_client  # noqa: F401  (fixtures)


def _query(name: str) -> store.QueueQuery:
    q = QUEUES[name]
    return store.QueueQuery(statuses=q.statuses, condition=q.condition, order=q.order, due=q.due, photos=q.photos,
                            filters={k: None for k in queries.FILTERS} | {"district": "110105"}, scope=CaseScope(),
                            callback_sources=CALLBACK_SOURCES)


def _exact(bj, name: str) -> dict[str, int]:
    """The accept queue's counts by plain SQL over every case (the slow path)."""
    return dict(bj.execute(sa.text(
        """SELECT count(*) AS total, count(*) FILTER (WHERE verify_due_at < now()) AS overdue,
                  count(*) FILTER (WHERE verify_due_at >= now() AND verify_due_at < now() + interval '4 hours')
                      AS due_soon
             FROM cases WHERE district_code = '110105' AND status IN ('reported', 'verified')""")).mappings().one())


def test_capped_counts_are_exact_below_the_cap_and_cap_plus_one_above(bj, case_rules):
    made = [report(bj, case_rules, class_code=c) for c in ("0101", "0103", "0104", "0201")]
    set_case(bj, made[0]["case_id"], verify_due_at="2020-01-01T00:00:00Z")
    set_case(bj, made[1]["case_id"], verify_due_at="2020-01-02T00:00:00Z")
    bj.execute(sa.text("UPDATE cases SET verify_due_at = now() + interval '1 hour' WHERE case_id = :id"),
               {"id": made[2]["case_id"]})
    exact = _exact(bj, "accept")
    srid = deployment_srid(bj)
    assert store.counts(bj, _query("accept"), srid, 4 * 3600, cap=10_000) == exact
    capped = store.counts(bj, _query("accept"), srid, 4 * 3600, cap=1)
    assert capped == {k: min(v, 2) for k, v in exact.items()} and capped["total"] == 2 and capped["overdue"] == 2
    # the one-statement read gives the same counts and the same page as the counts alone and a plain page
    counted, rows = store.read(bj, _query("accept"), srid, 2, 0, 4 * 3600, cap=10_000)
    assert counted == exact and len(rows) == min(2, exact["total"])
    oldest = bj.execute(sa.text("""SELECT case_id FROM cases WHERE district_code = '110105'
                                     AND status IN ('reported', 'verified') ORDER BY reported_at, case_id LIMIT 2"""))
    assert [r["case_id"] for r in rows] == list(oldest.scalars())
    counted, rows = store.read(bj, _query("accept"), srid, 5, 10_000_000, 4 * 3600, cap=10_000)
    assert rows == [] and counted == exact  # a page past the end still has its counts


def test_counts_read_in_due_order_equal_the_capped_counts_at_every_cap(bj, case_rules):
    """The verify, check and dispose queues count one window of their cases in due order (the fast path); at
    every cap its counts equal the three capped counts (the slow path), also when the window is full of overdue
    and due-soon cases (due_soon is then counted the long way)."""
    made = [report(bj, case_rules, class_code=c) for c in ("0101", "0103", "0104", "0201", "0102")]
    dues = ("now() - interval '2 days'", "now() - interval '1 day'", "now() + interval '1 hour'",
            "now() + interval '2 hours'", "now() + interval '3 days'")
    for case, due in zip(made, dues, strict=True):
        bj.execute(sa.text(f"""UPDATE cases SET verify_due_at = {due}, check_due_at = {due}, deadline_at = {due}
                                WHERE case_id = :id"""), {"id": case["case_id"]})
    srid = deployment_srid(bj)
    for name, status in (("verify", "reported"), ("check", "fed_back"), ("dispose", "dispatched")):
        for case in made:
            set_case(bj, case["case_id"], status=status)
        assert store._due_window(_query(name))
        for cap in range(7):
            slow = store.counts(bj, _query(name), srid, 4 * 3600, cap=cap)
            counted, rows = store.read(bj, _query(name), srid, 3, 0, 4 * 3600, cap=cap)
            assert counted == slow, (name, cap)
            assert len(rows) == 3
        assert store.counts(bj, _query(name), srid, 4 * 3600, cap=100) == {"total": 5, "overdue": 2, "due_soon": 2}
    assert not store._due_window(_query("accept"))  # oldest first: its three capped counts


def test_api_says_which_counts_reached_the_limit(as_user, bj, case_rules):  # noqa: F811
    report(bj, case_rules)
    body = as_user("acc", ["acceptor"]).get("/api/v1/desk/accept?district=110105").get_json()
    assert body["count_limit"] == queries.COUNT_CAP and body["counts_at_least"] == []
    assert body["counts"]["total"] == _exact(bj, "accept")["total"] < queries.COUNT_CAP
    bj.execute(sa.text(
        """INSERT INTO cases (district_code, idempotency_key, kind, scheme, class_code, description, source,
                              reported_at, status, unit_grid_code, supervision_code, community_code, street_code,
                              synthetic, attrs, geom)
           SELECT district_code, 'speed-' || i, kind, scheme, class_code, description, source, reported_at, status,
                  unit_grid_code, supervision_code, community_code, street_code, true, attrs, geom
             FROM cases, generate_series(1, :n) i
            WHERE case_id = (SELECT max(case_id) FROM cases WHERE status = 'reported')"""),
        {"n": queries.COUNT_CAP + 1})
    body = as_user("acc2", ["acceptor"]).get("/api/v1/desk/accept?district=110105").get_json()
    assert body["counts"]["total"] == queries.COUNT_CAP and body["counts_at_least"] == ["total"]
    listed = {q["queue"]: q for q in as_user("acc3", ["acceptor"]).get("/api/v1/desk?district=110105")
              .get_json()["queues"]}
    assert listed["accept"]["total"] == queries.COUNT_CAP and listed["accept"]["at_least"] == ["total"]
    assert "at_least" not in listed["callback"] or listed["callback"]["total"] == queries.COUNT_CAP


def test_owners_of_a_page_at_once_equal_each_cases_own(bj, case_rules):
    made = [report(bj, case_rules, class_code=c) for c in ("0101", "0103")]
    made.append(report(bj, case_rules, class_code="0201", lon=116.55, lat=39.98))
    cases = [case_store.get_case(bj, c["case_id"]) for c in made]
    asked = [(c["district_code"], c["unit_grid_code"], c["reported_at"]) for c in cases]
    asked += [("110105", None, None), ("110105", "no-such-grid", None)]
    batch = case_store.owners_at_many(bj, asked)
    assert batch == [case_store.owners_at(bj, d, g, at) for d, g, at in asked]
    assert any(batch[:3]) and batch[3:] == [{}, {}]
    for case in cases:
        set_case(bj, case["case_id"], status="accepted")
    cases = [case_store.get_case(bj, c["case_id"]) for c in made]
    previews = service.dispatch_previews(bj, case_rules, cases)
    assert previews == [service.dispatch_preview(bj, case_rules, c) for c in cases]
    assert all(p["party"] for p in previews)


def test_frontage_units_of_a_page_at_once_equal_each_cases_own(zz_client, zz, placed_unit, case_rules):  # noqa: F811
    """A dispatch page's frontage lookups (one query) give the previews the per-case lookup gives: the covering
    unit for a frontage class reported without one recorded, the grid's party where no frontage covers it."""
    client = zz_client("fr-speed", ("dispatcher",))
    made = []
    bare = spot(zz, 13)  # covered by no frontage (tests/test_frontage.py)
    assert uncovered(zz, *bare)
    for x, y in ((placed_unit["x"], placed_unit["y"]), bare):
        lon, lat = lonlat(x, y)
        answer = client.post("/api/v1/cases", json={"lon": lon, "lat": lat, "kind": "event", "class_code": "0102",
                                                    "description": "门前暴露垃圾", "source": "supervisor"})
        made.append(answer.get_json()["case"]["case_id"])
    zz.execute(sa.text("UPDATE cases SET status = 'accepted', attrs = attrs - 'frontage_unit' "
                       "WHERE case_id = ANY(:ids)"), {"ids": made})
    cases = [case_store.get_case(zz, i) for i in made]
    previews = service.dispatch_previews(zz, case_rules, cases)
    assert previews == [service.dispatch_preview(zz, case_rules, c) for c in cases]
    assert previews[0]["party"]["rule"] == "frontage_unit" and previews[0]["party"]["code"] == placed_unit["code"]
    assert previews[1]["party"]["rule"] == "grid management"
    # the desk's dispatch queue reads the same inputs with its rows (one statement): the same previews
    assert _queue_previews(zz, case_rules, "410104", made) == dict(zip(made, previews, strict=True))


def test_queue_previews_read_only_what_other_rules_may_choose(zz_client, zz, placed_unit, case_rules):  # noqa: F811
    """Rows read only the owners in the roles the rules name (and the fallbacks) and the frontage units of the
    classes with a frontage key, yet give the previews of the exact slow path under rules other than the
    default: a frontage rule on a major key (``event/01``), a class of it sent to another role (``event/0102``:
    responsibility) and a kind sent to enforcement."""
    from dataclasses import replace

    from citygrid.cases.rules import DispatchRules

    rules = replace(case_rules, dispatch=DispatchRules(
        rules={"event": "enforcement", "event/01": "frontage_unit", "event/0102": "responsibility"}))
    assert rules.dispatch.roles_named() == ("enforcement", "frontage_unit", "management", "responsibility")
    assert rules.dispatch.keys_ruled("frontage_unit") == ("event/01",)
    client = zz_client("fr-rules", ("dispatcher",))
    lon, lat = lonlat(placed_unit["x"], placed_unit["y"])
    made = []
    for code in ("0101", "0102", "0201", "0103"):
        answer = client.post("/api/v1/cases", json={"lon": lon, "lat": lat, "kind": "event", "class_code": code,
                                                    "description": "门前", "source": "supervisor"})
        made.append(answer.get_json()["case"]["case_id"])
    zz.execute(sa.text("UPDATE cases SET status = 'accepted', attrs = attrs - 'frontage_unit' "
                       "WHERE case_id = ANY(:ids)"), {"ids": made})
    slow = {i: service.dispatch_preview(zz, rules, case_store.get_case(zz, i)) for i in made}
    assert [slow[i]["party"]["rule"] for i in made] == ["frontage_unit", "grid responsibility",
                                                        "grid enforcement", "frontage_unit"]
    assert _queue_previews(zz, rules, "410104", made) == slow
    # and the rows read only that: the owners in the roles the rules name (no supervision), the frontage unit
    # only of the classes with a frontage key (event/01: 0101, 0102, 0103; not 0201)
    first = zz.execute(sa.text("SELECT min(reported_at) FROM cases WHERE case_id = ANY(:ids)"), {"ids": made}).scalar()
    read = queries.read_queue(zz, QUEUES["dispatch"], CaseScope(), queries.DeskFilter(
        CaseFilter(district="410104", start=first), limit=200), dispatch=rules.dispatch)
    rows = {r["case_id"]: r for r in read.rows if r["case_id"] in made}
    assert {role for r in rows.values() for role, *_ in r["preview_owners"]} == {"enforcement", "management",
                                                                                 "responsibility"}
    assert [rows[i]["preview_frontage"] is not None for i in made] == [True, True, False, True]
    # a queue with previews read without the rules they need is a programming error, not a silent default
    with pytest.raises(ValueError, match="dispatch rules"):
        queries.read_queue(zz, QUEUES["dispatch"], CaseScope(), queries.DeskFilter(CaseFilter(district="410104")))


def _queue_previews(conn, case_rules, district: str, ids: list[int]) -> dict[int, dict]:
    """The dispatch queue's suggestions (read with the page's rows) of cases ``ids``, by case number."""
    queue = QUEUES["dispatch"]
    first = conn.execute(sa.text("SELECT min(reported_at) FROM cases WHERE case_id = ANY(:ids)"), {"ids": ids}).scalar()
    read = queries.read_queue(conn, queue, CaseScope(),
                              queries.DeskFilter(CaseFilter(district=district, start=first), limit=200),
                              dispatch=case_rules.dispatch)
    assert all("preview_owners" in r and "preview_frontage" in r for r in read.rows)
    rows = queries.queue_page(conn, case_rules, queue, read.rows)
    return {r["case_id"]: r["suggestion"] for r in rows if r["case_id"] in ids}


def test_dispatch_queue_previews_read_with_the_page_equal_each_cases_own(bj, case_rules):
    """Owners, frontage and clock read in the queue's own statement give every row the preview the per-case
    lookup gives (the exact slow path): grids with owners, a case in no grid, one with no class."""
    made = [report(bj, case_rules, class_code=c) for c in ("0101", "0103", "0201")]
    made.append(report(bj, case_rules, class_code="0102", lon=116.55, lat=39.98))
    ids = [c["case_id"] for c in made]
    bj.execute(sa.text("UPDATE cases SET status = 'accepted' WHERE case_id = ANY(:ids)"), {"ids": ids})
    bj.execute(sa.text("UPDATE cases SET unit_grid_code = NULL WHERE case_id = :id"), {"id": ids[1]})
    bj.execute(sa.text("UPDATE cases SET class_code = NULL WHERE case_id = :id"), {"id": ids[2]})
    fast = _queue_previews(bj, case_rules, "110105", ids)
    slow = {i: service.dispatch_preview(bj, case_rules, case_store.get_case(bj, i)) for i in ids}
    assert fast == slow and len(fast) == 4
    assert fast[ids[0]]["party"] and fast[ids[1]]["party"] is None and fast[ids[2]]["party"] is None


# Filters and scopes whose conditions the desk writes compactly (``case_conditions(compact=True)``).
_FILTERS = ({}, {"district": "110105"}, {"status": "reported", "kind": "event"}, {"class_code": "0101"},
            {"start": "2020-01-01T00:00:00+08:00", "end": "2100-01-01T00:00:00+08:00"}, {"open_only": True},
            {"district": "110105", "unit_grid": "no-such-grid"})


def test_compact_conditions_select_what_the_full_conditions_select(bj, case_rules):
    """Each condition decided in Python (a filter not given, the parts of a scope that do not apply) leaves the
    same cases as the full list of conditions (the exact slow path), for every kind of scope."""
    made = [report(bj, case_rules, class_code=c) for c in ("0101", "0103", "0201")]
    team = bj.execute(sa.text("SELECT s.team_code FROM supervision_grids s JOIN cases c ON c.supervision_code = s.code "
                              "AND c.district_code = s.district_code WHERE c.case_id = :id LIMIT 1"),
                      {"id": made[0]["case_id"]}).scalar()
    bj.execute(sa.text("""UPDATE cases SET attrs = attrs || '{"dispatched_to": {"code": "P1"}}'
                           WHERE case_id = :id"""), {"id": made[1]["case_id"]})
    scopes = (CaseScope(), CaseScope(home="110105"), CaseScope(home="110101"), CaseScope(team=team),
              CaseScope(party="P1", district="110105"), CaseScope(team=team, party="P1", district="110105"),
              CaseScope(readable=False), CaseScope(party="P1"))
    srid = deployment_srid(bj)
    selected = {}
    for scope in scopes:
        for given in (*_FILTERS, {"team": team}):
            found = []
            for compact in (False, True):
                where, params = case_store.case_conditions(**{"district": None, **given}, srid=srid, scope=scope,
                                                           compact=compact)
                found.append(bj.execute(sa.text(f"SELECT c.case_id FROM cases c WHERE {' AND '.join(where)} "
                                                "ORDER BY 1"), params).scalars().all())
            assert found[0] == found[1], (scope, given)
            selected[scope, str(given)] = set(found[0])
    # the conditions did select: the team's case in its scope, the party's in its, none for the unreadable
    assert made[0]["case_id"] in selected[CaseScope(team=team), "{}"]
    assert selected[CaseScope(party="P1", district="110105"), "{}"] == {made[1]["case_id"]}
    assert selected[CaseScope(readable=False), "{}"] == set() < selected[CaseScope(), "{}"]


def _closed_at_disagreements(bj) -> int:
    """Cases whose ``closed_at`` (kept by the database) is not the latest time of their events to ``closed``
    (the slow exact path), over the whole database: the demo's synthetic timelines among them."""
    return bj.execute(sa.text(
        """SELECT count(*) FROM cases c
            WHERE c.closed_at IS DISTINCT FROM (SELECT max(e.at) FROM case_events e
                                                 WHERE e.district_code = c.district_code AND e.case_id = c.case_id
                                                   AND e.to_status = 'closed')""")).scalar_one()


def test_closed_at_is_the_latest_closing_event_whoever_writes_it_and_is_not_audited(bj, case_rules):
    """``cases.closed_at`` (the callback queue's order, migration 0016) equals the latest closing event's time
    after every writer: an event of the workflow's shape, a bulk history import, an older closing event
    written later (which leaves it alone), a case reopened and closed again; filling it writes no audit row."""
    assert _closed_at_disagreements(bj) == 0
    one, two = (report(bj, case_rules, source="hotline", class_code=c) for c in ("0501", "0505"))
    audited = bj.execute(sa.text("SELECT count(*) FROM audit_log WHERE object_kind = 'cases'")).scalar_one()
    set_case(bj, one["case_id"], status="closed")
    event(bj, one["case_id"], "close", "now() - interval '2 hours'")
    assert bj.execute(sa.text("SELECT count(*) FROM audit_log WHERE object_kind = 'cases'")).scalar_one() == audited + 1
    event(bj, one["case_id"], "close", "now() - interval '3 days'")  # older, written later: no change
    case_store.insert_events_bulk(bj, [
        {"district": "110105", "case_id": two["case_id"], "seq": 2, "action": "close", "from_status": "checked",
         "to_status": "closed", "at": "2026-01-02T03:04:05+08:00"},
        {"district": "110105", "case_id": two["case_id"], "seq": 3, "action": "close", "from_status": "checked",
         "to_status": "closed", "at": "2026-03-04T05:06:07+08:00"}])
    assert _closed_at_disagreements(bj) == 0
    closed = dict(bj.execute(sa.text("SELECT case_id, closed_at FROM cases WHERE case_id IN (:a, :b)"),
                             {"a": one["case_id"], "b": two["case_id"]}).all())
    assert closed[two["case_id"]] == datetime.fromisoformat("2026-03-04T05:06:07+08:00")
    # reopened and closed again: the new closing time, and the queue's first row
    set_case(bj, one["case_id"], status="accepted")
    set_case(bj, one["case_id"], status="closed")
    event(bj, one["case_id"], "close")
    assert _closed_at_disagreements(bj) == 0
    _, rows = store.read(bj, _query("callback"), deployment_srid(bj), 1, 0, 4 * 3600, cap=10_000)
    assert rows[0]["case_id"] == one["case_id"] and rows[0]["closed_at"] > closed[one["case_id"]]


def test_row_limits_are_written_in_as_whole_numbers_only():
    """The queue statements' row limits go in as integer literals (so a poll reuses its plan); nothing but an
    int goes in that way, and the rest of the statement keeps its bound parameters."""
    sql = "SELECT 1 FROM cases c WHERE c.district_code = :district LIMIT :cap + 1 OFFSET :offset -- :capped"
    assert store._with_row_limits(sql, cap=100, offset=0) == (
        "SELECT 1 FROM cases c WHERE c.district_code = :district LIMIT 100 + 1 OFFSET 0 -- :capped")
    for bad in ("1; DROP TABLE cases", 1.5, True, None):
        with pytest.raises(TypeError):
            store._with_row_limits(sql, cap=bad, offset=0)
    with pytest.raises(ValueError):
        store._sources(("hotline", "x') OR true --"))
