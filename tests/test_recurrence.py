"""Recurrence (#24): chronic components and recurring places (ST-DBSCAN), through the domain functions, the API
(JSON, GeoJSON, CSV; roles and districts; hostile parameters) and the CLI; and the planted demo patterns found."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
import shapely
from click.testing import CliRunner

from citygrid.cases import synthetic_events
from citygrid.cases.synthetic_events import PLANTED, planted_key_prefix
from citygrid.cli import cli
from citygrid.errors import InvalidInput
from citygrid.recurrence import components, places, queries
from citygrid.recurrence.places import PlaceParams
from tests.conftest import assert_error
from tests.test_browser import ARTIFACTS, browser, open_page, server  # noqa: F401 (fixtures used here)
from tests.test_synthetic_timelines import insert_planted_components

DISTRICT = "110105"
UTC = dt.UTC
PERIOD = "start=2025-11-01&end=2026-11-01"


def _at(day: float) -> dt.datetime:
    return dt.datetime(2026, 1, 1, tzinfo=UTC) + dt.timedelta(days=day)


# ------------------------------------------------------------------------------------------ pure functions
def test_component_intervals_and_ranking():
    cases = [{"obj_id": "B", "case_id": i, "reported_at": _at(d), "synthetic": False} for i, d in
             enumerate((0, 10, 12, 40))] + \
            [{"obj_id": "A", "case_id": 10 + i, "reported_at": _at(d), "synthetic": True} for i, d in
             enumerate((50, 5, 20, 35))] + [{"obj_id": "C", "case_id": 30, "reported_at": _at(3), "synthetic": False}]
    summaries = {s["obj_id"]: s for s in components.per_component(cases)}
    assert summaries["A"]["case_ids"] == [11, 12, 13, 10]  # by report time
    assert summaries["A"]["median_interval_days"] == 15.0 and summaries["A"]["min_interval_days"] == 15.0
    assert summaries["B"]["median_interval_days"] == 10.0 and summaries["B"]["min_interval_days"] == 2.0
    assert summaries["C"]["median_interval_days"] is None and summaries["C"]["cases"] == 1
    ranked = components.chronic(list(summaries.values()), 3)
    # Same count: the more recent last case first (A's 50 days against B's 40).
    assert [(r["rank"], r["obj_id"]) for r in ranked] == [(1, "A"), (2, "B")] and ranked[0]["synthetic"]
    assert components.chronic(list(summaries.values()), 5) == []


def test_st_dbscan_needs_space_and_time_neighbours():
    params = PlaceParams(eps_m=50, window_days=30, min_cases=3)
    # Three reports within 20 m and 10 days: a cluster; the same three spread over 100 days: none.
    x, y = np.array([0.0, 10, 20]), np.zeros(3)
    assert list(places.st_dbscan(x, y, np.array([0.0, 5, 10]), params)) == [0, 0, 0]
    assert list(places.st_dbscan(x, y, np.array([0.0, 50, 100]), params)) == [-1, -1, -1]
    # Reports repeated every 20 days for a year chain into one place; 60 m away is another place.
    t = np.arange(0, 360, 20.0)
    x2 = np.concatenate([np.zeros(len(t)), np.full(len(t), 60.0)])
    labels = places.st_dbscan(x2, np.zeros(2 * len(t)), np.concatenate([t, t]), params)
    assert len(set(labels[: len(t)])) == 1 and len(set(labels[len(t):])) == 1 and labels[0] != labels[-1]
    # Reports at exactly one point (distance 0) are neighbours.
    assert list(places.st_dbscan(np.zeros(3), np.zeros(3), np.zeros(3), params)) == [0, 0, 0]
    assert len(places.st_dbscan(np.zeros(0), np.zeros(0), np.zeros(0), params)) == 0


def test_clusters_keep_classes_apart_and_rank_by_size_then_recency():
    def case(i: int, code: str, x: float, day: float) -> dict:
        return {"case_id": i, "kind": "event", "class_code": code, "class_name": code, "x": x, "y": 0.0,
                "reported_at": _at(day), "unit_grid_code": f"G{int(x) // 100}", "synthetic": False}

    cases = [case(1, "0102", 0, 0), case(2, "0201", 5, 1), case(3, "0102", 10, 2), case(4, "0201", 8, 3),
             case(5, "0102", 20, 3), case(6, "0201", 3, 4)]
    cases += [case(10 + i, "0505", 1000 + i, 100 + i) for i in range(3)]  # as large, more recent
    cases += [case(20 + i, "0506", 2000 + 10 * i, 50 + i) for i in range(4)]  # the largest
    found = places.clusters(cases, PlaceParams(eps_m=30, window_days=10, min_cases=3))
    assert [(c["rank"], c["cluster_id"], c["case_ids"]) for c in found] == [
        (1, "event/0506-1", [20, 21, 22, 23]), (2, "event/0505-1", [10, 11, 12]), (3, "event/0201-1", [2, 4, 6]),
        (4, "event/0102-1", [1, 3, 5])]
    first = found[-1]
    assert first["unit_grids"] == ["G0"] and first["span_days"] == 3.0
    assert first["hull"].contains(shapely.Point(10, 0)) and first["hull"].distance(shapely.Point(20, 14.9)) == 0


def test_parameters_are_bounded():
    for name, value in (("eps_m", 4.9), ("eps_m", 1001), ("eps_m", float("nan")), ("window_days", 0),
                        ("window_days", float("inf")), ("min_cases", 1), ("limit", 0), ("limit", True)):
        with pytest.raises(InvalidInput) as refused:
            queries.check_number(name, value)
        assert refused.value.details[0]["field"] == name
    with pytest.raises(InvalidInput, match="before"):
        queries.filters(_at(5), _at(5))
    with pytest.raises(InvalidInput, match="3660"):
        queries.filters(_at(-4000), _at(0))
    with pytest.raises(InvalidInput, match="kind"):
        queries.filters(None, None, kind="other")
    default = queries.filters(None, _at(365))
    assert default.start == _at(0)


# ------------------------------------------------------------------------------------------ planted demo patterns
@pytest.fixture
def planted(bj):
    """The ``PLANTED`` patterns of the test district (components, chronic cases, places, hot spot), rolled back."""
    insert_planted_components(bj)
    stored = synthetic_events.plant(bj, DISTRICT)
    assert stored["stored"] > 200
    return PLANTED[DISTRICT]


def _planted_ids(bj, planted_id: str) -> set[int]:
    import sqlalchemy as sa

    return set(bj.execute(sa.text("SELECT case_id FROM cases WHERE idempotency_key LIKE :k"),
                          {"k": planted_key_prefix(DISTRICT, planted_id) + "%"}).scalars())


def test_the_planted_chronic_components_are_found_first(planted, bj):
    answer = queries.chronic_components(bj, DISTRICT, queries.filters(_at(-70), _at(310)))
    top = {r["obj_id"]: r for r in answer["rows"][:len(planted["chronic_components"])]}
    for item in planted["chronic_components"]:
        row = top[item["obj_id"]]
        assert row["cases"] == item["cases"] and set(row["case_ids"]) == _planted_ids(bj, item["id"])
        assert row["class_code"] == item["class_code"] and row["dept_name"] == "测试养护所（合成）"
        assert abs(row["lon"] - item["lon"]) < 1e-6 and abs(row["lat"] - item["lat"]) < 1e-6
        assert 0 < row["min_interval_days"] <= row["median_interval_days"]
    assert [r["rank"] for r in answer["rows"]] == list(range(1, len(answer["rows"]) + 1))
    assert answer["synthetic"] is True and answer["min_cases"] == 3
    # A class filter keeps that class's component only.
    only = queries.chronic_components(bj, DISTRICT, queries.filters(_at(-70), _at(310), class_code="0305"))
    assert [r["obj_id"] for r in only["rows"]] == ["1101050305001572"]


def test_the_planted_recurring_places_are_found(planted, bj):
    answer = queries.recurring_places(bj, DISTRICT, queries.filters(_at(-70), _at(310)), PlaceParams())
    for item in planted["recurring_places"]:
        ids = _planted_ids(bj, item["id"])
        holding = [r for r in answer["rows"] if ids & set(r["case_ids"])]
        assert len(holding) == 1, (item, holding)  # one place, not several
        row = holding[0]
        assert ids <= set(row["case_ids"]) and row["class_code"] == item["class_code"]
        assert shapely.geometry.shape(row["geometry"]).contains(shapely.Point(item["lon"], item["lat"]))
        assert abs(row["lon"] - item["lon"]) < 0.0005 and abs(row["lat"] - item["lat"]) < 0.0005
        assert row["unit_grids"] and row["span_days"] > 60
    # A window shorter than the planted spacing splits no place into clusters of fewer than min_cases: it finds
    # none of the every-14-days place with a window of 5 days.
    short = queries.recurring_places(bj, DISTRICT, queries.filters(_at(-70), _at(310), class_code="0102"),
                                     PlaceParams(window_days=5))
    assert not _planted_ids(bj, "place-1") & {i for r in short["rows"] for i in r["case_ids"]}


# ------------------------------------------------------------------------------------------ HTTP
def test_components_api_json_geojson_csv(planted, client):
    body = client.get(f"/api/v1/recurrence/components?district={DISTRICT}&{PERIOD}&min_cases=6").get_json()
    assert body["district"] == DISTRICT and body["min_cases"] == 6 and body["synthetic"] is True
    assert body["start"].startswith("2025-11-01T00:00:00+08:00") and body["end"].startswith("2026-11-02")
    assert {r["obj_id"] for r in body["rows"]} == {i["obj_id"] for i in planted["chronic_components"]}
    features = client.get(f"/api/v1/recurrence/components?district={DISTRICT}&{PERIOD}&format=geojson").get_json()
    assert features["type"] == "FeatureCollection" and features["features"][0]["geometry"]["type"] == "Point"
    assert features["features"][0]["id"] == features["features"][0]["properties"]["obj_id"]
    csv = client.get(f"/api/v1/recurrence/components?district={DISTRICT}&{PERIOD}&format=csv")
    assert csv.mimetype == "text/csv" and "attachment" in csv.headers["Content-Disposition"]
    text = csv.get_data(as_text=True)
    assert text.splitlines()[0].startswith("rank,obj_id,class_code") and "'=planted chronic-1" in text


def test_places_api_answers_clusters_with_polygons(planted, client):
    answer = client.get(f"/api/v1/recurrence/places?district={DISTRICT}&{PERIOD}&eps_m=60&window_days=45"
                        "&format=geojson").get_json()
    assert answer["eps_m"] == 60 and answer["window_days"] == 45 and answer["min_cases"] == 3
    assert answer["synthetic"] is True and "ST-DBSCAN" in answer["method"]
    shapes = {f["id"]: f["geometry"]["type"] for f in answer["features"]}
    assert shapes and set(shapes.values()) == {"Polygon"}
    limited = client.get(f"/api/v1/recurrence/places?district={DISTRICT}&{PERIOD}&limit=2").get_json()
    assert len(limited["rows"]) == 2 and limited["clusters"] >= 3 and "geometry" not in limited["rows"][0]


def test_recurrence_readers_and_districts(planted, client_as, bj):
    import sqlalchemy as sa

    for roles in (["analyst"], ["lead"], ["planner"], ["dispatcher"]):
        assert client_as(f"r-{roles[0]}", roles).get(
            f"/api/v1/recurrence/components?district={DISTRICT}").status_code == 200
    team = bj.execute(sa.text("SELECT code FROM supervision_teams ORDER BY code LIMIT 1")).scalar_one()
    assert_error(client_as("n-supervisor", ["supervisor"], team=team).get(
        f"/api/v1/recurrence/places?district={DISTRICT}"), 403, "forbidden")
    for roles in (["acceptor"], ["calltaker"], ["gis"]):
        assert_error(client_as(f"n-{roles[0]}", roles).get(
            f"/api/v1/recurrence/places?district={DISTRICT}"), 403, "forbidden")


def test_an_account_of_one_district_reads_only_that_district(planted, bj, beijing_db):
    from citygrid.accounts import service as accounts
    from tests.conftest import rolled_back_app, signed_in

    accounts.add_user(bj, "analyst-here", ["analyst"], district=DISTRICT, password="correct horse battery")
    token = accounts.issue_token(bj, "analyst-here", label="test")["token"]
    here = signed_in(rolled_back_app(bj, beijing_db).test_client(), token)
    assert here.get(f"/api/v1/recurrence/components?district={DISTRICT}").status_code == 200
    for path in ("components", "places"):
        assert_error(here.get(f"/api/v1/recurrence/{path}?district=110101"), 403, "forbidden", reason="110105")


@pytest.mark.parametrize("query,field", [
    ("", "district"), ("district=11010%00", "district"), ("district=" + "1" * 5000, "district"),
    ("district=110105&eps_m=NaN", "eps_m"), ("district=110105&eps_m=Infinity", "eps_m"),
    ("district=110105&eps_m=4", "eps_m"), ("district=110105&eps_m=1e308", "eps_m"),
    ("district=110105&window_days=-1", "window_days"), ("district=110105&window_days=731", "window_days"),
    ("district=110105&min_cases=1", "min_cases"), ("district=110105&min_cases=99999999999", "min_cases"),
    ("district=110105&limit=0", "limit"), ("district=110105&limit=abc", "limit"),
    ("district=110105&kind=people", "kind"), ("district=110105&class_code=01%0A02", "class_code"),
    ("district=110105&class_code=" + "9" * 300, "class_code"), ("district=110105&format=xml", "format"),
    ("district=110105&start=2026-02-30", "start"), ("district=110105&start=2026-03-01&end=2026-02-01", "start"),
    ("district=110105&start=2000-01-01&end=2026-01-01", "start"), ("district=110105&end=99999-01-01", "end"),
    ("district=110105&end=0001-01-01", "end"), ("district=110105&start=9999-12-30", "start"),
])
def test_hostile_parameters_are_refused(client, query, field):
    response = client.get(f"/api/v1/recurrence/places?{query}")
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert_error(response, 400, response.get_json()["error"], field=field)


def test_signed_out_callers_are_refused(anonymous_client):
    assert_error(anonymous_client.get(f"/api/v1/recurrence/components?district={DISTRICT}"), 401, "unauthorized")


def test_an_empty_district_answers_no_rows(client):
    body = client.get(f"/api/v1/recurrence/places?district={DISTRICT}&start=2001-01-01&end=2001-12-31").get_json()
    assert body["rows"] == [] and body["clusters"] == 0 and body["synthetic"] is False


# ------------------------------------------------------------------------------------------ CLI
def test_cli_recurrence(beijing_db, tmp_path):
    runner = CliRunner()
    base = ["--database", beijing_db.database, "recurrence"]
    done = runner.invoke(cli, [*base, "components", "--district", DISTRICT, "--start", "2025-01-01"])
    assert done.exit_code == 0, done.output
    answer = json.loads(done.output)
    assert answer["start"].startswith("2025-01-01") and isinstance(answer["rows"], list)
    out = tmp_path / "places.csv"
    done = runner.invoke(cli, [*base, "places", "--district", DISTRICT, "--eps-m", "80", "--format", "csv",
                               "--output", str(out)])
    assert done.exit_code == 0 and out.read_text().startswith("rank,cluster_id")
    for args in (["places", "--district", DISTRICT, "--eps-m", "2"], ["places", "--district", "bad"],
                 ["components", "--district", DISTRICT, "--start", "yesterday"],
                 ["components", "--district", DISTRICT, "--class-code", "0\x01"]):
        refused = runner.invoke(cli, [*base, *args])
        assert refused.exit_code == 2, (args, refused.output)


# ------------------------------------------------------------------------------------------ the caseload page
@pytest.fixture(scope="module")
def committed_patterns(beijing_engine):
    """The planted patterns committed for the browser (removed after; the last tests of this module)."""
    from tests.test_synthetic_timelines import remove_synthetic

    with beijing_engine.begin() as conn:
        insert_planted_components(conn)
        synthetic_events.plant(conn, DISTRICT)
    yield PLANTED[DISTRICT]
    with beijing_engine.begin() as conn:
        remove_synthetic(conn)


def test_caseload_page_shows_the_recurrence_layers(browser, server, committed_patterns):  # noqa: F811
    with open_page(browser, server + "/caseload", viewport={"width": 1280, "height": 900}) as (page, errors, outside):
        page.wait_for_function("() => window.citygrid.recurrenceReady", timeout=30_000)
        chronic = page.evaluate("() => window.citygrid.layers.chronic.getLayers().length")
        places_drawn = page.evaluate("() => window.citygrid.layers.places.getLayers().length")
        assert chronic == len(committed_patterns["chronic_components"]) and places_drawn >= 3
        legend = page.inner_text(".cg-recurrence-legend")
        assert "4 chronic components" in legend and "recurring places" in legend and "SYNTHETIC" in legend
        assert "50 m and 90 days" in legend
        page.screenshot(path=str(ARTIFACTS / "caseload-recurrence.png"))
        # The layer control turns a layer off (and its legend row), and on again.
        page.evaluate("() => { window.citygrid.map.removeLayer(window.citygrid.layers.places); }")
        assert "recurring places" not in page.inner_text(".cg-recurrence-legend")
        page.evaluate("() => { window.citygrid.map.addLayer(window.citygrid.layers.places); }")
        assert "recurring places" in page.inner_text(".cg-recurrence-legend")
        # A chronic component's popup names it and its owner, as text.
        page.evaluate("() => { window.citygrid.layers.chronic.getLayers()[0].openPopup(); }")
        popup = page.inner_text(".leaflet-popup-content")
        assert "测试养护所（合成）" in popup and "=planted" in popup
        # A class filter narrows the layers to that class.
        page.select_option("#class", "component/0305")
        page.wait_for_function("() => window.citygrid.recurrenceReady && "
                               "window.citygrid.layers.chronic.getLayers().length === 1", timeout=30_000)
        assert errors == [] and outside == []
    with open_page(browser, server + "/caseload", viewport={"width": 390, "height": 844}) as (page, errors, outside):
        page.wait_for_function("() => window.citygrid.recurrenceReady", timeout=30_000)
        assert page.locator(".cg-recurrence-legend").is_visible() and errors == []
        page.screenshot(path=str(ARTIFACTS / "caseload-recurrence-phone.png"))
