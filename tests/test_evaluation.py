"""Monthly evaluation (#24 A3): indicators from case events of one local month, scores and grades from
evaluation.yaml, rankings per kind with ties ranked equal, the API (JSON, GeoJSON, CSV), the public ranking and
the CLI, with hostile input."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from citygrid.cases import service
from citygrid.cases.intake import parse_report
from citygrid.errors import InvalidInput, NotFound
from citygrid.evaluation import queries
from citygrid.evaluation.indicators import month_bounds
from citygrid.evaluation.scores import DEFAULT_WEIGHTS, EvaluationRules, rank, score
from tests.conftest import assert_error

LON, LAT = 116.48, 39.93  # Chaoyang, WGS84
ZONE = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)
DATA_DIR = Path(__file__).resolve().parents[1] / "data"


def T(day: int, hour: int = 10, month: int = 10) -> dt.datetime:  # noqa: N802
    """A local time of 2026 in the deployment's zone (Beijing)."""
    return dt.datetime(2026, month, day, hour, 30, tzinfo=ZONE)


def _case(bj, case_rules, *, class_code: str, source: str, actor: str, at: dt.datetime, lon: float) -> int:
    body = {"lon": lon, "lat": LAT, "kind": "event", "class_code": class_code, "description": "考核测试",
            "source": source}
    case, outcome = service.submit(bj, case_rules, parse_report(body), actor=actor, role=source)
    assert outcome == "created"
    bj.execute(sa.text("UPDATE cases SET reported_at = :t WHERE case_id = :c"), {"t": at, "c": case["case_id"]})
    bj.execute(sa.text("UPDATE case_events SET at = :t WHERE case_id = :c"), {"t": at, "c": case["case_id"]})
    return case["case_id"]


def _event(bj, case_id: int, action: str, at: dt.datetime, *, actor: str = "someone", role: str = "acceptor",
           due: dt.datetime | None = None, to_status: str = "accepted", party: str | None = None) -> None:
    bj.execute(sa.text(
        """INSERT INTO case_events (district_code, case_id, seq, at, action, from_status, to_status, actor, role,
                                    due_at, party_code)
           SELECT district_code, case_id, (SELECT max(seq) + 1 FROM case_events WHERE case_id = :c), :at, :a,
                  status, :to, :actor, :role, :due, :p FROM cases WHERE case_id = :c"""),
        {"c": case_id, "at": at, "a": action, "to": to_status, "actor": actor, "role": role, "due": due,
         "p": party})


@pytest.fixture
def month(bj, case_rules):
    """October 2026 in Chaoyang (``make_month``), rolled back with the test."""
    return make_month(bj, case_rules)


def make_month(bj, case_rules) -> dict:
    """October 2026 in Chaoyang on connection ``bj``: supervisors sup-a (a named person holding the grid of the
    cases) and sup-b, parties P1 and P2, one street; see each test for the counts it expects."""
    a = _case(bj, case_rules, class_code="0102", source="supervisor", actor="sup-a", at=T(3), lon=LON)
    grid, street = bj.execute(sa.text("SELECT supervision_code, street_code FROM cases WHERE case_id = :c"),
                              {"c": a}).one()
    street = street or bj.execute(sa.text("SELECT code FROM admin_areas WHERE district_code = '110105' "
                                          "AND level = 'street' ORDER BY code LIMIT 1")).scalar_one()
    b = _case(bj, case_rules, class_code="0201", source="supervisor", actor="sup-a", at=T(1, 0), lon=LON + 0.01)
    c = _case(bj, case_rules, class_code="0505", source="hotline", actor="calltaker-1", at=T(4), lon=LON + 0.02)
    d = _case(bj, case_rules, class_code="0504", source="supervisor", actor="sup-a", at=T(1, 0, month=11),
              lon=LON + 0.03)
    bj.execute(sa.text("UPDATE cases SET supervision_code = :g, street_code = :s WHERE case_id IN (:a, :b, :c, :d)"),
               {"g": grid, "s": street, "a": a, "b": b, "c": c, "d": d})
    person = bj.execute(sa.text("INSERT INTO people (district_code, name, role, username) VALUES ('110105', "
                                "'监督员甲', 'supervisor', 'sup-a') RETURNING person_id")).scalar_one()
    bj.execute(sa.text("INSERT INTO person_assignments (district_code, person_id, role, target_code, valid) "
                       "VALUES ('110105', :p, 'supervisor', :g, tstzrange(:s, :e))"),
               {"p": person, "g": grid, "s": T(1, 0, month=9), "e": T(1, 0, month=12)})
    # Case A: accepted, dispatched to P1 twice (feedback on time, then late), checked by sup-b (fail on time,
    # pass late), closed, callback satisfied.
    _event(bj, a, "accept", T(3, 11))
    _event(bj, a, "dispatch", T(3, 12), party="P1", role="dispatcher")
    _event(bj, a, "feed_back", T(5), due=T(6), party="P1", role="unit")
    _event(bj, a, "check_fail", T(6), due=T(6, 12), actor="sup-b", role="supervisor", party="P1")
    _event(bj, a, "dispatch", T(7), party="P1", role="dispatcher")
    _event(bj, a, "feed_back", T(9), due=T(8), party="P1", role="unit")
    _event(bj, a, "check_pass", T(10), due=T(9), actor="sup-b", role="supervisor", party="P1")
    _event(bj, a, "close", T(10, 12), party="P1", to_status="closed")
    _event(bj, a, "callback", T(11), to_status="evaluated", role="calltaker")
    # Case B: reported at 00:30 local on 1 October (30 September in UTC: still October here), rejected.
    _event(bj, b, "reject", T(2), to_status="rejected")
    # Case C: a hotline report in sup-a's grid (missed), verified by sup-a on time, accepted, dispatched to P2
    # (the party recorded by the trigger from the case's dispatched_to), handed back.
    _event(bj, c, "verify", T(4, 12), due=T(5), actor="sup-a", role="supervisor", to_status="verified")
    _event(bj, c, "accept", T(4, 13))
    bj.execute(sa.text("""UPDATE cases SET attrs = attrs || '{"dispatched_to": {"code": "P2"}}' WHERE case_id = :c"""),
               {"c": c})
    _event(bj, c, "dispatch", T(5), role="dispatcher")
    _event(bj, c, "hand_back", T(6), role="unit")
    # Case D: November (00:30 local on 1 November is 31 October in UTC): not counted in October.
    _event(bj, d, "verify", T(1, 0, month=11), due=T(2, 0, month=11), actor="sup-a", role="supervisor")
    return {"a": a, "b": b, "c": c, "d": d, "grid": grid, "street": street}


def _rows(bj, kind: str, rules: EvaluationRules | None = None) -> dict[str, dict]:
    answer = queries.evaluate(bj, rules or EvaluationRules(), "110105", "2026-10", kind, now=NOW)
    return {r["code"]: r for r in answer["rows"]}


def test_supervisor_indicators_count_the_local_month(bj, month):
    rows = _rows(bj, "supervisors")
    a, b = rows["sup-a"], rows["sup-b"]
    assert (a["reports"], a["valid_reports"], a["grid_cases"], a["missed_cases"]) == (2, 1, 3, 1)
    assert (a["verifies_due"], a["verifies_timely"], a["checks_due"]) == (1, 1, 0)
    assert a["valid_report_rate"] == 0.5 and a["missed_report_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert a["timely_verification_rate"] == 1.0 and a["timely_check_rate"] is None
    assert a["name"] == "监督员甲"
    # valid 0.5×40 + (1 − 1/3)×20 + 1×20, check missing: over the 80 points present.
    assert a["score"] == pytest.approx((20 + 40 / 3 + 20) / 80 * 100, abs=0.01) and a["grade"] == "C"
    assert a["inputs"]["timely_check_rate"]["points"] is None
    assert a["inputs"]["valid_report_rate"]["weight_used"] == 50.0
    assert (b["checks_due"], b["checks_timely"], b["reports"], b["grid_cases"]) == (2, 1, 0, 0)
    assert b["score"] == 50.0 and b["grade"] == "D"
    assert (a["rank"], b["rank"]) == (1, 2)


def test_team_indicators_cover_the_team_grids(bj, month):
    team = bj.execute(sa.text("SELECT team_code FROM supervision_grids WHERE code = :g ORDER BY version_id DESC "
                              "LIMIT 1"), {"g": month["grid"]}).scalar_one()
    row = _rows(bj, "teams")[team]
    assert (row["reports"], row["valid_reports"], row["grid_cases"], row["missed_cases"]) == (2, 1, 3, 1)
    assert (row["verifies_due"], row["verifies_timely"], row["checks_due"], row["checks_timely"]) == (1, 1, 2, 1)
    assert row["score"] == pytest.approx(20 + 40 / 3 + 20 + 10, abs=0.01)


def test_unit_indicators_follow_the_party_of_each_event(bj, month):
    rows = _rows(bj, "units")
    p1, p2 = rows["P1"], rows["P2"]
    assert (p1["dispatches"], p1["feed_backs_due"], p1["feed_backs_on_time"], p1["checks"], p1["check_fails"],
            p1["hand_backs"], p1["dispatched_cases"], p1["closed_cases"]) == (2, 2, 1, 2, 1, 0, 1, 1)
    assert p1["score"] == 70.0 and p1["grade"] == "C"
    assert (p2["dispatches"], p2["hand_backs"], p2["dispatched_cases"], p2["closed_cases"]) == (1, 1, 1, 0)
    assert p2["hand_back_rate"] == 1.0 and p2["on_time_disposal_rate"] is None
    assert p2["score"] == 0.0 and p2["grade"] == "E"
    # The trigger recorded P2 on the events written without a party.
    parties = bj.execute(sa.text("SELECT action, party_code FROM case_events WHERE case_id = :c AND action IN "
                                 "('dispatch', 'hand_back') ORDER BY seq"), {"c": month["c"]}).all()
    assert [tuple(p) for p in parties] == [("dispatch", "P2"), ("hand_back", "P2")]


def test_self_initiated_fix_is_a_case_a_unit_account_reported_and_closed(bj, month):
    bj.execute(sa.text("INSERT INTO users (username, roles, party_code) VALUES ('p1-officer', '{unit}', 'P1')"))
    bj.execute(sa.text("UPDATE case_events SET actor = 'p1-officer' WHERE case_id = :c AND action = 'report'"),
               {"c": month["a"]})
    assert _rows(bj, "units")["P1"]["self_initiated_fixes"] == 1
    assert _rows(bj, "units")["P2"]["self_initiated_fixes"] == 0


def test_street_indicators(bj, month):
    row = _rows(bj, "streets")[month["street"]]
    assert (row["caseload"], row["filed_cases"], row["closed_cases"]) == (3, 2, 1)
    assert (row["feed_backs_due"], row["feed_backs_on_time"], row["callbacks"], row["satisfied_callbacks"]) \
        == (2, 1, 1, 1)
    assert row["score"] == 60.0 and row["grade"] == "C"
    assert row["area_km2"] and row["cases_per_km2"] == pytest.approx(3 / row["area_km2"], rel=1e-3)


def test_answer_carries_parameters_definitions_and_synthetic(bj, month):
    answer = queries.evaluate(bj, EvaluationRules(), "110105", "2026-10", "units", now=NOW)
    assert answer["start"] == "2026-10-01T00:00:00+08:00" and answer["end"] == "2026-11-01T00:00:00+08:00"
    assert answer["zone"] == "Asia/Shanghai" and answer["synthetic"] is False
    assert answer["definitions"]["rework_rate"]["denominator"] == "checks"
    assert "not the standard" in answer["scoring"]["note"]
    bj.execute(sa.text("UPDATE cases SET synthetic = true WHERE case_id = :c"), {"c": month["c"]})
    assert queries.evaluate(bj, EvaluationRules(), "110105", "2026-10", "units", now=NOW)["synthetic"] is True


def test_an_empty_month_has_no_rows(bj, month):
    assert queries.evaluate(bj, EvaluationRules(), "110105", "2026-08", "supervisors", now=NOW)["rows"] == []


def test_ties_rank_equal_and_unscored_rows_come_last():
    rows = [{"code": c, "score": s} for c, s in (("a", 80.0), ("b", 90.0), ("c", 80.0), ("d", None), ("e", 70.0))]
    assert [(r["code"], r["rank"]) for r in rank(rows)] == [("b", 1), ("a", 2), ("c", 2), ("e", 4), ("d", None)]


def test_lower_is_better_indicators_score_as_one_minus_rate():
    total, inputs = score(EvaluationRules(), "units", {"on_time_disposal_rate": 1.0, "rework_rate": 0.25,
                                                        "hand_back_rate": 0.0, "closure_rate": 1.0})
    assert total == 95.0 and inputs["rework_rate"]["scored"] == 0.75
    assert score(EvaluationRules(), "units", {})[0] is None


def test_grades():
    rules = EvaluationRules()
    assert [rules.grade(s) for s in (100, 90, 89.99, 75, 60, 40, 39.9, 0, None)] == \
        ["A", "A", "B", "B", "C", "D", "E", "E", None]


def test_the_shipped_file_is_the_documented_default():
    rules = EvaluationRules.load(DATA_DIR)
    assert rules.weights == {k: {n: float(w) for n, w in v.items()} for k, v in DEFAULT_WEIGHTS.items()}
    assert rules.grades == (("A", 90.0), ("B", 75.0), ("C", 60.0), ("D", 40.0)) and rules.fallback_grade == "E"
    assert rules.public_kinds == ("units", "streets") and rules.show_person_names is False


@pytest.mark.parametrize(("data", "words"), [
    ({"weights": {"units": {"on_time_disposal_rate": 40, "rework_rate": 20, "hand_back_rate": 20,
                            "closure_rate": 15}}}, "weights.units: weights must sum to 100, not 95"),
    ({"weights": {"units": {"valid_report_rate": 100}}}, "weights.units.valid_report_rate: unknown indicator"),
    ({"weights": {"persons": {}}}, "weights.persons: unknown kind"),
    ({"weights": {"units": {"on_time_disposal_rate": float("nan")}}}, "weights.units.on_time_disposal_rate"),
    ({"weights": {"units": {"on_time_disposal_rate": 120, "rework_rate": -20}}}, "rework_rate: must be a number"),
    ({"grades": {"A": 90, "B": 95}}, "grades.B: thresholds must descend"),
    ({"grades": {"A": 190}}, "grades.A: must be a score between 0 and 100"),
    ({"grades": ["A"]}, "grades: must map"),
    ({"public": {"kinds": ["supervisors"]}}, "public.kinds"),
    ({"public": {"show_person_names": "yes"}}, "public.show_person_names"),
    ({"weight": {}}, "weight: unknown key"),
    ([1, 2], "must be a mapping"),
])
def test_a_bad_file_is_refused_naming_the_key(data, words):
    with pytest.raises(InvalidInput) as refused:
        EvaluationRules.from_mapping(data, "data/evaluation.yaml")
    assert words in str(refused.value) and "data/evaluation.yaml" in str(refused.value)


def test_a_bad_file_stops_the_app(tmp_path, bj, beijing_db):
    from dataclasses import replace

    from citygrid.app import create_app
    from tests.conftest import rollback_backend

    (tmp_path / "evaluation.yaml").write_text("grades: {A: 50, B: 60}\n", encoding="utf-8")
    settings = replace(beijing_db, data_dir=tmp_path)
    with pytest.raises(InvalidInput, match=r"grades\.B"):
        create_app({"CITYGRID_SETTINGS": settings, "CITYGRID_BACKEND": rollback_backend(bj, "x")})


@pytest.mark.parametrize(("month", "words"), [
    ("2026-13", "months are 01–12"), ("2026-00", "months are 01–12"), ("9999-01", "current month"),
    ("1999-12", "between 2000-01"), ("2026-1", "YYYY-MM"), ("2026-10-01", "YYYY-MM"), ("", "YYYY-MM"),
    (None, "YYYY-MM"), ("２０２６-10", "YYYY-MM"), ("2026-10\n", "YYYY-MM"), ("2027-01", "current month"),
])
def test_month_is_checked(month, words):
    with pytest.raises(InvalidInput, match=words):
        month_bounds(month, ZONE, NOW)


def test_month_bounds_follow_the_zone_across_daylight_saving():
    start, end = month_bounds("2026-03", ZoneInfo("Europe/Vienna"), NOW)
    assert (start.utcoffset(), end.utcoffset()) == (dt.timedelta(hours=1), dt.timedelta(hours=2))


def test_unknown_district_is_not_found(bj):
    with pytest.raises(NotFound):
        queries.evaluate(bj, EvaluationRules(), "999999", "2026-10", "units", now=NOW)


# --- HTTP ---

def test_api_json_csv_geojson(client_as, month):
    analyst = client_as("eva-analyst", ["analyst"])
    body = analyst.get("/api/v1/evaluation?district=110105&month=2026-10&kind=units").get_json()
    assert body["kind"] == "units" and body["month"] == "2026-10" and body["district"] == "110105"
    assert {r["code"] for r in body["rows"]} == {"P1", "P2"} and "inputs" in body["rows"][0]
    csv = analyst.get("/api/v1/evaluation?district=110105&month=2026-10&kind=supervisors&format=csv")
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    header, *lines = csv.get_data(as_text=True).splitlines()
    assert header.startswith("code,name,rank,score,grade,valid_report_rate") and len(lines) == 2
    geo = analyst.get("/api/v1/evaluation?district=110105&month=2026-10&kind=streets&format=geojson").get_json()
    assert geo["type"] == "FeatureCollection" and geo["features"][0]["properties"]["caseload"] == 3


def test_api_csv_neutralises_formula_names(client_as, bj, month):
    bj.execute(sa.text("UPDATE people SET name = '=HYPERLINK(1)' WHERE username = 'sup-a'"))
    csv = client_as("eva-analyst", ["analyst"]).get(
        "/api/v1/evaluation?district=110105&month=2026-10&kind=supervisors&format=csv").get_data(as_text=True)
    assert "'=HYPERLINK(1)" in csv


@pytest.mark.parametrize("roles", [["lead"], ["analyst"]])
def test_readers(client_as, roles):
    response = client_as("eva-reader", roles).get("/api/v1/evaluation?district=110105&month=2026-10")
    assert response.status_code == 200


@pytest.mark.parametrize("roles", [["acceptor"], ["calltaker"], ["planner"], ["dispatcher"]])
def test_other_roles_may_not_read(client_as, roles):
    response = client_as("eva-other", roles).get("/api/v1/evaluation?district=110105&month=2026-10")
    assert_error(response, 403, "forbidden")


def test_not_signed_in(anonymous_client):
    assert anonymous_client.get("/api/v1/evaluation?district=110105&month=2026-10").status_code == 401
    assert anonymous_client.get("/api/v1/evaluation/report?district=110105&month=2026-10").status_code == 401


def test_a_district_bound_account_reads_only_its_district(client_as, bj):
    reader = client_as("eva-zz", ["analyst"])
    bj.execute(sa.text("UPDATE users SET district_code = '410104' WHERE username = 'eva-zz'"))
    for path in ("/api/v1/evaluation", "/api/v1/evaluation/report"):
        assert_error(reader.get(f"{path}?district=110105&month=2026-10"), 403, "forbidden")
    assert reader.get("/api/v1/evaluation?district=410104&month=2026-10").status_code == 404  # not in this db


@pytest.mark.parametrize(("query", "field"), [
    ("month=2026-13", "month"), ("month=9999-01", "month"), ("month=2026-1%00", None), ("month=%1b[31m", None),
    ("month=2026-10&kind=persons", "kind"), ("month=2026-10&format=xlsx", "format"),
    ("month=2026-10&district=11010", "district"), ("month=" + "9" * 5000, None), ("month=NaN", "month"),
    ("month=2026-10&district=110105%0a", None),
])
def test_hostile_queries_are_refused(client, query, field):
    path = "/api/v1/evaluation?" + ("" if "district=" in query else "district=110105&") + query
    response = client.get(path)
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    if field:
        assert_error(response, 400, "invalid_input", field=field)


def test_report_is_html_with_its_own_policy(client, month):
    response = client.get("/api/v1/evaluation/report?district=110105&month=2026-10")
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert html.count('<section class="page"') == 5 and "监督员甲" in html and "<script" not in html
    assert "style-src 'self' 'sha256-" in response.headers["Content-Security-Policy"]


def test_public_rankings_show_units_and_streets_only(app_of, bj, month):
    bj.execute(sa.text("INSERT INTO parties (district_code, kind, code, name) VALUES ('110105', 'person', 'P2', "
                       "'张三')"))
    body = app_of.test_client().get("/api/v1/public/rankings?district=110105&month=2026-10").get_json()
    assert set(body["kinds"]) == {"units", "streets"} and body["persons_named"] is False
    units = {r["name"]: r for r in body["kinds"]["units"]["rows"]}
    assert "张三" not in json.dumps(body, ensure_ascii=False) and units["个人 1"]["code"] is None
    assert "inputs" not in units["P1"] and "sup-a" not in json.dumps(body)


def test_public_rankings_are_rate_limited(app_of):
    anonymous = app_of.test_client()
    statuses = [anonymous.get("/api/v1/public/rankings?district=110105&month=2026-10").status_code
                for _ in range(12)]
    assert statuses[0] == 200 and statuses[-1] == 429


def test_public_rankings_refuse_bad_input(app_of):
    anonymous = app_of.test_client()
    assert_error(anonymous.get("/api/v1/public/rankings?district=110105&month=2026-13"), 400, "invalid_input",
                 field="month")
    assert_error(anonymous.get("/api/v1/public/rankings?month=2026-10"), 400, "invalid_input", field="district")


# --- CLI ---

def test_cli_evaluate(beijing_db, tmp_path):
    from citygrid.cli import cli

    db = ["--database", beijing_db.database]
    out = tmp_path / "units.csv"
    result = CliRunner().invoke(cli, [*db, "evaluate", "--district", "110105", "--month", "2026-10", "--kind", "units",
                                       "--format", "csv", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").startswith("kind,code,name,rank,score,grade")
    result = CliRunner().invoke(cli, [*db, "evaluate", "--district", "110105", "--month", "2026-10"])
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.output)["kinds"]) == {"supervisors", "teams", "units", "streets", "communities"}
    result = CliRunner().invoke(cli, [*db, "evaluate", "--district", "110105", "--month", "2026-10", "--format", "html",
                                       "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 0 and "@page" in (tmp_path / "r.html").read_text(encoding="utf-8")
    bad = CliRunner().invoke(cli, [*db, "evaluate", "--district", "110105", "--month", "2026-13"])
    assert bad.exit_code == 2 and "months are 01–12" in bad.output and "Traceback" not in bad.output


def test_a_supervisor_may_not_read(client_as, bj):
    team = bj.execute(sa.text("SELECT code FROM supervision_teams ORDER BY code LIMIT 1")).scalar_one()
    reader = client_as("eva-sup", ["supervisor"], team=team)
    assert_error(reader.get("/api/v1/evaluation?district=110105&month=2026-10"), 403, "forbidden")


# --- pages ---

@pytest.mark.parametrize(("who", "path"), [("admin", "/evaluation"), ("anonymous", "/rankings")])
def test_pages_run_no_inline_code(client, anonymous_client, who, path):
    from bs4 import BeautifulSoup

    answer = (client if who == "admin" else anonymous_client).get(path)
    assert answer.status_code == 200 and answer.mimetype == "text/html"
    policy = dict((p.split()[0], p.split()[1:]) for p in answer.headers["Content-Security-Policy"].split("; "))
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    soup = BeautifulSoup(answer.get_data(as_text=True), "html.parser")
    assert all(s.get("src") or s.get("type") == "application/json" for s in soup.find_all("script"))
    assert not soup.find_all("style") and not soup.find_all(style=True)
    data = json.loads(soup.find("script", id="cg-data").string)
    assert data["public"] is (path == "/rankings") and len(data["month"]) == 7


def test_the_evaluation_page_needs_a_reader(anonymous_client, client_as):
    assert anonymous_client.get("/evaluation").status_code == 302
    assert client_as("eva-planner", ["planner"]).get("/evaluation").status_code == 403
    assert client_as("eva-lead", ["lead"]).get("/evaluation").status_code == 200


def test_the_bench_reference_counts_what_the_sql_counts(bj):
    """evaluation_month's pandas reference and the evaluation's SQL agree on a small caseload of the bench."""
    from bench import bench_evaluation as bench

    start, end, month = bench._window(ZONE, NOW)
    made = bench.build(bj, 3000, start, end)
    assert made["events"] > 3000 * 5
    mine = bench.ours(bj, month, NOW)
    first, last = month_bounds(month, ZONE, NOW)
    assert all(mine[k] for k in ("supervisors", "teams", "units", "streets"))
    assert bench.identical(mine, bench.reference(bj, first, last))
    mine["units"][0]["dispatches"] += 1  # the comparison notices a difference
    assert not bench.identical(mine, bench.reference(bj, first, last))
