"""Attack pass over the analysts' new surface (#24): hot spots, emerging hot spots, recurrence, evaluation and the
public ranking. Hostile period and size parameters are a precise 400 (never a 500, never a request that holds the
server), a district-bound account reads no other district through any of them, CSV cells from stored names
cannot run as formulas, the public ranking is bounded and cacheable without private data, and the evaluation
month is the deployment's local month wherever the deployment is."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from citygrid.cases import synthetic
from citygrid.evaluation import queries
from citygrid.evaluation.scores import EvaluationRules
from tests.conftest import assert_error
from tests.test_evaluation import _case, _event

D = "110105"
ENDPOINTS = ("/api/v1/hotspots", "/api/v1/hotspots/emerging", "/api/v1/recurrence/components",
             "/api/v1/recurrence/places")


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("query", [
    "start=0001-01-01&end=9999-12-31", "start=0001-01-01", "end=9999-12-31", "start=2026-12-01&end=2026-01-01",
    "start=yesterday", "start=2026-13-01", "start=2026-01-01%00", "start=" + "2" * 5000, "end=NaN",
    "start=-2026-01-01", "start=+002026-01-01", "end=2026-01-01T99:00", "class_code=0102'%20OR%20'1'='1",
    "class_code=%3DHYPERLINK(%22x%22)", "class_code=0102%0A0103", "kind=event&kind=component%00",
    "format=xlsx", "district=" + "1" * 5000,
])
def test_hostile_periods_and_filters_are_400(client, path, query):
    full = f"{path}?{query}" if query.startswith("district=") else f"{path}?district={D}&{query}"
    answer = client.get(full)
    assert answer.status_code == 400, (query, answer.status_code, answer.get_data(as_text=True)[:300])
    assert answer.get_json()["error"] == "invalid_input"


@pytest.mark.parametrize("path, query", [
    ("/api/v1/hotspots", "permutations=1000000000"), ("/api/v1/hotspots", "permutations=-1"),
    ("/api/v1/hotspots", "permutations=1e3"), ("/api/v1/hotspots", "seed=99999999999999999999"),
    ("/api/v1/hotspots", "weights=distance&distance_m=1000000000"),
    ("/api/v1/hotspots", "weights=distance&distance_m=0"),
    ("/api/v1/hotspots", "weights=distance&distance_m=Infinity"),
    ("/api/v1/hotspots", "weights=distance&distance_m=1e308"),
    ("/api/v1/hotspots", "weights=distance&distance_m=20000"),  # the band would link every grid to thousands
    ("/api/v1/hotspots", "alpha=NaN"), ("/api/v1/hotspots", "level=people"),
    ("/api/v1/hotspots/emerging", "bin=week&start=1976-01-01&end=2026-01-01"),  # 50 years of weeks
    ("/api/v1/hotspots/emerging", "bin=day"), ("/api/v1/hotspots/emerging", "k=100000"),
    ("/api/v1/hotspots/emerging", "bins=100000"), ("/api/v1/hotspots/emerging", "permutations=99"),
    ("/api/v1/recurrence/places", "eps_m=1e9"), ("/api/v1/recurrence/places", "window_days=100000"),
    ("/api/v1/recurrence/components", "limit=100000000"), ("/api/v1/recurrence/components", "min_cases=0"),
])
def test_sizes_that_would_hold_the_server_are_400(client, path, query):
    answer = client.get(f"{path}?district={D}&{query}")
    assert answer.status_code == 400, (query, answer.status_code, answer.get_data(as_text=True)[:300])


def test_a_district_bound_analyst_reads_no_other_district_anywhere(client_as, bj):
    reader = client_as("attack-an-zz", ["analyst", "lead"])
    bj.execute(sa.text("UPDATE users SET district_code = '410104' WHERE username = 'attack-an-zz'"))
    for path in (*ENDPOINTS, "/api/v1/evaluation", "/api/v1/evaluation/report", "/api/v1/caseload",
                 "/api/v1/density.json"):
        for fmt in ("json", "csv", "geojson"):
            answer = reader.get(f"{path}?district={D}&month=2026-10&format={fmt}")
            assert answer.status_code == 403, (path, fmt, answer.status_code)
    for path in ("/api/v1/hotspots", "/api/v1/recurrence/places", "/api/v1/evaluation"):
        assert reader.get(f"{path}?month=2026-10").status_code == 400, path  # no default district to fall into
    for role in ("acceptor", "calltaker", "gis"):
        other = client_as(f"attack-an-{role}", [role])
        for path in ("/api/v1/hotspots", "/api/v1/evaluation", "/api/v1/evaluation/report"):
            assert other.get(f"{path}?district={D}&month=2026-10").status_code == 403, (role, path)
    anonymous = client_as("attack-an-x", ["analyst"]).application.test_client()
    for path in (*ENDPOINTS, "/api/v1/evaluation", "/api/v1/evaluation/report"):
        assert anonymous.get(f"{path}?district={D}&month=2026-10").status_code == 401, path


def test_stored_names_cannot_run_as_formulas_in_any_csv(client, bj):
    """Street, community and party names come from imports; a cell starting =, +, -, @ (or a tab/CR before
    one) is a formula to a spreadsheet."""
    synthetic.generate(bj, D, 200, seed=9)
    streets = bj.execute(sa.text("SELECT code FROM admin_areas WHERE district_code = :d AND level = 'street' "
                                 "ORDER BY code LIMIT 4"), {"d": D}).scalars().all()
    evil = ["=HYPERLINK(\"http://x\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)"]
    for code, name in zip(streets, evil, strict=True):
        bj.execute(sa.text("UPDATE admin_areas SET name = :n WHERE district_code = :d AND code = :c"),
                   {"n": name, "d": D, "c": code})
    text = client.get(f"/api/v1/hotspots?district={D}&level=street&permutations=0&format=csv").get_data(
        as_text=True)
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    assert any("HYPERLINK" in c for c in cells)
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r") or (c[:1] == "-" and "+" in c)]


def test_public_rankings_are_heavy_cacheable_and_hold_nothing_private(app_of, client, bj, case_rules):
    from tests.test_evaluation import make_month

    make_month(bj, case_rules)
    app_of.extensions["citygrid_heavy"] = type(app_of.extensions["citygrid_heavy"])(0, wait_s=0)
    anonymous = app_of.test_client()
    busy = anonymous.get(f"/api/v1/public/rankings?district={D}&month=2026-10")
    assert_error(busy, 503, "overloaded")  # one evaluation per anonymous request: bounded like the others
    app_of.extensions["citygrid_heavy"] = type(app_of.extensions["citygrid_heavy"])(2, wait_s=0.5)
    answer = app_of.test_client().get(f"/api/v1/public/rankings?district={D}&month=2026-10",
                                      environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert answer.status_code == 200
    policy = answer.headers.get("Cache-Control", "")
    assert "public" in policy and "max-age=" in policy and "private" not in policy
    body = answer.get_json()
    text = json.dumps(body, ensure_ascii=False)
    assert set(body["kinds"]) == {"units", "streets"} and body["synthetic"] is False
    assert "监督员甲" not in text and "sup-a" not in text and "calltaker-1" not in text
    signed = client.get(f"/api/v1/public/rankings?district={D}&month=2026-10").get_json()
    assert signed == body  # the same answer for everyone: safe in a shared cache
    for bad in ("month=2026-10&district=110105%27", "month=0001-01", "month=2026-10&district=410104"):
        assert app_of.test_client().get(f"/api/v1/public/rankings?{bad}",
                                        environ_base={"REMOTE_ADDR": "192.0.2.8"}).status_code in (400, 404), bad
    private = client.get(f"/api/v1/evaluation?district={D}&month=2026-10")
    assert "private" in private.headers.get("Cache-Control", "") or "no-store" in private.headers.get(
        "Cache-Control", "")


def test_the_evaluation_month_is_local_to_a_new_york_deployment(bj, case_rules):
    """At 23:30 on 31 October in New York it is already November in UTC (and in Beijing): the case belongs to
    October there."""
    bj.execute(sa.text("UPDATE deployment SET timezone = 'America/New_York'"))
    ny = ZoneInfo("America/New_York")
    late = _case(bj, case_rules, class_code="0102", source="supervisor", actor="ny-sup",
                 at=dt.datetime(2026, 10, 31, 23, 30, tzinfo=ny), lon=116.48)
    early = _case(bj, case_rules, class_code="0102", source="supervisor", actor="ny-sup",
                  at=dt.datetime(2026, 10, 1, 0, 10, tzinfo=ny), lon=116.49)
    _event(bj, late, "accept", dt.datetime(2026, 10, 31, 23, 45, tzinfo=ny))
    now = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)
    october = queries.evaluate(bj, EvaluationRules(), D, "2026-10", "supervisors", now=now)
    assert october["zone"] == "America/New_York" and october["start"].startswith("2026-10-01T00:00:00-04:00")
    november = queries.evaluate(bj, EvaluationRules(), D, "2026-11", "supervisors", now=now)
    counted = {r["code"]: r for r in october["rows"]}
    assert counted["ny-sup"]["reports"] == 2, counted.get("ny-sup")
    assert "ny-sup" not in {r["code"] for r in november["rows"]}
    assert early and late


def test_the_heaviest_requests_are_refused_or_answered_in_seconds(client, bj):
    """Permutations are bounded by the work they make (permutations x neighbour links), checked before a
    distance band is built; the rest of the parameter space answers within seconds on a district's unit
    grids."""
    synthetic.generate(bj, D, 3000, seed=3)
    for path, status, limit_s in (
            ("/api/v1/hotspots?level=unit&weights=distance&distance_m=1500&permutations=9999", 400, 5),
            ("/api/v1/hotspots?level=unit&permutations=9999", 400, 30),
            ("/api/v1/hotspots?level=unit&permutations=999&fdr=true", 200, 30),
            ("/api/v1/hotspots?level=unit&permutations=999&seed=5", 200, 15),  # the weights are kept
            ("/api/v1/hotspots/emerging?level=unit&bin=week&k=12", 200, 30),
            ("/api/v1/recurrence/places?eps_m=1000&window_days=730&min_cases=2", 200, 30),
            ("/api/v1/recurrence/components?min_cases=2&limit=5000", 200, 30)):
        began = time.monotonic()
        answer = client.get(f"{path}&district={D}")
        took = time.monotonic() - began
        print(f"{path}: {answer.status_code} in {took:.2f} s")
        assert answer.status_code == status, (path, answer.get_data(as_text=True)[:300])
        assert took < limit_s, (path, took)
    assert_error(client.get(f"/api/v1/hotspots?level=unit&permutations=9999&district={D}"), 400, "invalid_input",
                 field="permutations", reason="permutations here")
