"""OGC API – Features at ``/ogc`` (#25) through the test client: every route and its documents, conformance,
Part 2 CRSs (a known point in CRS84, in EPSG:4490's lat/lon order and in the deployment CRS's northing/easting),
Part 3 queryables, paging and its links, datetime, HTML pages, hostile parameters, and who reads what."""

from __future__ import annotations

import json
import re

import pyproj
import pytest
import sqlalchemy as sa

from citygrid.interop import queries
from citygrid.interop.collections import KINDS
from citygrid.webmap.ogc_api import CONFORMANCE
from tests.conftest import assert_error, submitted_case

D = "110105"
UNIT = f"unit-grids-{D}"
COMPONENTS = f"components-{D}"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/"
LON, LAT = 116.48, 39.93


@pytest.fixture
def admin(client_as):
    return client_as("ogc-admin", ["admin"])


def unit_grid_count(bj) -> int:
    """The unit grids of the district's current (published) version."""
    return bj.execute(sa.text(
        """SELECT count(*) FROM unit_grids u JOIN grid_versions v USING (district_code, version_id)
            WHERE u.district_code = :d AND v.status = 'published'"""), {"d": D}).scalar_one()


def add_components(bj, n: int, *, lon0: float = 116.45, valid_from: str = "2025-01-01",
                   valid_to: str | None = None, prefix: str = "1101050118") -> list[str]:
    """``n`` street lamps (class 0118) on a line eastwards from (lon0, 39.93), in the test's transaction."""
    ids = [f"{prefix}{900000 + i:06d}" for i in range(n)]
    bj.execute(sa.text(
        """INSERT INTO components (district_code, obj_id, valid_from, valid_to, scheme, class_code, obj_name,
                                   obj_state, synthetic, geom)
           SELECT :d, o.obj_id, CAST(:f AS timestamptz), CAST(:t AS timestamptz), 'cjt214', '0118',
                  '<b>路灯</b>', '完好', true,
                  ST_Transform(ST_SetSRID(ST_MakePoint(:lon0 + o.i * 0.0002, 39.93), 4326), 4548)
             FROM unnest(CAST(:ids AS text[])) WITH ORDINALITY AS o(obj_id, i)"""),
        {"d": D, "ids": ids, "f": valid_from, "t": valid_to, "lon0": lon0})
    return ids


def features(answer) -> list[dict]:
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
    return json.loads(answer.get_data(as_text=True))["features"]


def link(doc: dict, rel: str, mime: str | None = None) -> dict | None:
    return next((lk for lk in doc["links"] if lk["rel"] == rel and (mime is None or lk["type"] == mime)), None)


def local(href: str) -> str:
    return re.sub(r"^https?://[^/]+", "", href)


# ---------------------------------------------------------------------------------------- landing, conformance, api
def test_the_landing_page_links_everything_a_client_needs(anonymous_client):
    answer = anonymous_client.get("/ogc")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    doc = answer.get_json()
    for rel, mime in (("self", "application/json"), ("alternate", "text/html"), ("conformance", "application/json"),
                      ("data", "application/json"), ("service-doc", "text/html"),
                      ("service-desc", "application/vnd.oai.openapi+json;version=3.0")):
        found = link(doc, rel, mime)
        assert found and found["title"] and found["href"].startswith("http"), (rel, doc["links"])
    assert local(link(doc, "service-desc")["href"]) == "/ogc/api"
    assert anonymous_client.get("/ogc/").get_json() == doc


def test_conformance_declares_exactly_what_is_implemented(anonymous_client):
    answer = anonymous_client.get("/ogc/conformance")
    assert answer.mimetype == "application/json"
    declared = set(answer.get_json()["conformsTo"])
    assert declared == set(CONFORMANCE)
    assert {c.rsplit("/", 1)[1] for c in declared} == {"core", "geojson", "html", "oas30", "crs", "queryables",
                                                        "queryables-query-parameters"}
    assert not any("filter" in c or "cql" in c for c in declared)  # no CQL: a client would send it


def test_the_api_definition_documents_every_route_and_the_page_size(anonymous_client, admin):
    answer = anonymous_client.get("/ogc/api")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/vnd.oai.openapi+json;version=3.0"
    doc = json.loads(answer.get_data(as_text=True))
    assert doc["openapi"].startswith("3.0") and doc["servers"][0]["url"].endswith("/ogc")
    limit = doc["components"]["parameters"]["limit"]["schema"]
    assert limit["default"] == queries.DEFAULT_LIMIT and limit["maximum"] == queries.MAX_LIMIT
    documented = {re.sub(r"{[^}]*}", "<>", "/ogc" + path).rstrip("/") for path in doc["paths"]}
    routes = {re.sub(r"<[^>]*>", "<>", str(rule)).rstrip("/") for rule in admin.application.url_map.iter_rules()
              if str(rule).startswith("/ogc")}
    assert routes and routes <= documented, routes - documented
    # each collection's own items path lists its queryables as query parameters (how GDAL finds them)
    own = doc["paths"][f"/collections/{UNIT}/items"]["get"]["parameters"]
    names = {p.get("name") for p in own}
    assert {f.name for f in KINDS["unit-grids"].queryables} <= names
    assert "code" in names and "area_m2" not in names
    # both ways a client may sign in are declared (QGIS 3.22 can send only Basic)
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "basic"}
    assert {"basic": []} in doc["security"] and {"bearer": []} in doc["security"]
    html = anonymous_client.get("/ogc/api?f=html")
    assert html.status_code == 200 and html.mimetype == "text/html" and f"/collections/{UNIT}/items" in html.text


def test_only_the_landing_conformance_and_api_are_public(anonymous_client):
    for path in ("/ogc/collections", f"/ogc/collections/{UNIT}", f"/ogc/collections/{UNIT}/items",
                 f"/ogc/collections/{UNIT}/queryables", f"/ogc/collections/{UNIT}/items/x"):
        assert_error(anonymous_client.get(path), 401, "unauthorized")
    bad = anonymous_client.get("/ogc/collections", headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401


def test_a_disabled_accounts_token_reads_nothing(client_as, bj):
    from citygrid.accounts import service as accounts

    gone = client_as("ogc-leaver", ["analyst"])
    assert gone.get(f"/ogc/collections/{UNIT}/items?limit=1").status_code == 200
    accounts.set_disabled(bj, "ogc-leaver")
    assert_error(gone.get(f"/ogc/collections/{UNIT}/items?limit=1"), 401, "unauthorized")
    assert_error(gone.get("/ogc/collections"), 401, "unauthorized")


# --------------------------------------------------------------------------------------------------- collections
def test_collections_list_each_kind_of_the_district_with_its_crs_and_links(admin):
    answer = admin.get("/ogc/collections")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    doc = answer.get_json()
    ids = {c["id"] for c in doc["collections"]}
    assert {f"{k}-{D}" for k in KINDS if k != "frontage-units"} <= ids
    unit = next(c for c in doc["collections"] if c["id"] == UNIT)
    assert unit["crs"] == [CRS84, f"{EPSG}4490", f"{EPSG}4548"] and unit["storageCrs"] == f"{EPSG}4548"
    x0, y0, x1, y1 = unit["extent"]["spatial"]["bbox"][0]
    assert 116 < x0 < LON < x1 < 117 and 39 < y0 < LAT < y1 < 41
    assert local(link(unit, "items", "application/geo+json")["href"]) == f"/ogc/collections/{UNIT}/items"
    queryables = link(unit, "http://www.opengis.net/def/rel/ogc/1.0/queryables", "application/schema+json")
    assert local(queryables["href"]) == f"/ogc/collections/{UNIT}/queryables"
    one = admin.get(f"/ogc/collections/{UNIT}").get_json()
    assert one["id"] == UNIT and one["crs"] == unit["crs"] and link(one, "self")["type"] == "application/json"
    assert_error(admin.get("/ogc/collections/no-such-thing"), 404, "not_found")
    assert_error(admin.get("/ogc/collections/unit-grids-999999"), 404, "not_found")


def test_queryables_are_a_json_schema_of_the_kinds_queryable_fields(admin):
    answer = admin.get(f"/ogc/collections/{COMPONENTS}/queryables")
    assert answer.status_code == 200 and answer.mimetype == "application/schema+json"
    schema = json.loads(answer.get_data(as_text=True))
    assert schema["$id"].endswith(f"/ogc/collections/{COMPONENTS}/queryables") and schema["type"] == "object"
    assert set(schema["properties"]) == {f.name for f in KINDS["components"].queryables}
    assert_error(admin.get(f"/ogc/collections/{COMPONENTS}/queryables?f=html"), 400, "invalid_input", field="f")


# --------------------------------------------------------------------------------------------------------- items
def test_items_are_paged_with_next_and_prev_links_and_exact_counts(admin, bj):
    total = unit_grid_count(bj)
    answer = admin.get(f"/ogc/collections/{UNIT}/items?limit=5")
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/geo+json"
    assert answer.headers["Content-Crs"] == f"<{CRS84}>"
    doc = json.loads(answer.get_data(as_text=True))
    assert doc["type"] == "FeatureCollection" and doc["numberReturned"] == 5 and doc["numberMatched"] == total
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["timeStamp"])
    first = [f["id"] for f in doc["features"]]
    assert first == sorted(first) and all(f["type"] == "Feature" and f["geometry"]["type"] == "Polygon"
                                          for f in doc["features"])
    assert link(doc, "prev") is None and link(doc, "self", "application/geo+json")
    following = json.loads(admin.get(local(link(doc, "next", "application/geo+json")["href"])).get_data(as_text=True))
    assert following["features"][0]["id"] > first[-1] and following["numberReturned"] == 5
    back = json.loads(admin.get(local(link(following, "prev")["href"])).get_data(as_text=True))
    assert [f["id"] for f in back["features"]] == first
    last = json.loads(admin.get(f"/ogc/collections/{UNIT}/items?limit=10&offset={total - 3}").get_data(as_text=True))
    assert last["numberReturned"] == 3 and link(last, "next") is None


def test_a_limit_past_the_maximum_is_taken_as_the_maximum(admin):
    doc = json.loads(admin.get(f"/ogc/collections/streets-{D}/items?limit=99999999").get_data(as_text=True))
    assert doc["numberReturned"] == doc["numberMatched"] > 0
    assert link(doc, "self")["href"].count("limit=99999999") == 1


def test_queryables_as_parameters_filter_on_the_server_and_are_recorded(admin, bj):
    code = bj.execute(sa.text("SELECT code FROM unit_grids WHERE district_code = :d ORDER BY code LIMIT 1 OFFSET 7"),
                      {"d": D}).scalar_one()
    found = features(admin.get(f"/ogc/collections/{UNIT}/items", query_string={"code": code}))
    assert [f["id"] for f in found] == [code] and found[0]["properties"]["code"] == code
    seen = admin.application.extensions["citygrid_ogc_seen"][-1]
    assert seen["cid"] == UNIT and seen["filters"] == {"code": code}
    team = found[0]["properties"]["team_code"]
    same_team = features(admin.get(f"/ogc/collections/{UNIT}/items", query_string={"team_code": team, "limit": 10000}))
    assert same_team and {f["properties"]["team_code"] for f in same_team} == {team}
    refused = assert_error(admin.get(f"/ogc/collections/{UNIT}/items?area_m2=5"), 400, "invalid_input",
                           field="area_m2")
    assert "code" in refused["message"] and "team_code" in refused["message"]  # says what is allowed


def test_one_item_by_its_id(admin, bj):
    code = bj.execute(sa.text("SELECT code FROM unit_grids WHERE district_code = :d ORDER BY code LIMIT 1"),
                      {"d": D}).scalar_one()
    answer = admin.get(f"/ogc/collections/{UNIT}/items/{code}")
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/geo+json"
    feature = json.loads(answer.get_data(as_text=True))
    assert feature["type"] == "Feature" and feature["id"] == code and feature["geometry"]["type"] == "Polygon"
    assert local(link(feature, "collection")["href"]) == f"/ogc/collections/{UNIT}"
    assert_error(admin.get(f"/ogc/collections/{UNIT}/items/{D}9999999999"), 404, "not_found")
    assert_error(admin.get(f"/ogc/collections/{UNIT}/items/{code}?limit=3"), 400, "invalid_input", field="limit")


def test_a_known_point_in_crs84_cgcs2000_and_the_deployment_crs(admin, bj):
    obj_id = add_components(bj, 1, lon0=LON - 0.0002)[0]  # at exactly (LON, LAT)
    url = f"/ogc/collections/{COMPONENTS}/items/{obj_id}"
    lonlat = json.loads(admin.get(url).get_data(as_text=True))["geometry"]["coordinates"]
    assert lonlat == pytest.approx([LON, LAT], abs=1e-7)
    answer = admin.get(url, query_string={"crs": f"{EPSG}4490"})
    assert answer.headers["Content-Crs"] == f"<{EPSG}4490>"
    assert json.loads(answer.get_data(as_text=True))["geometry"]["coordinates"] == pytest.approx([LAT, LON], abs=1e-6)
    northing, easting = pyproj.Transformer.from_crs(4326, 4548).transform(LAT, LON)  # EPSG axis order both sides
    answer = admin.get(url, query_string={"crs": f"{EPSG}4548"})
    assert answer.headers["Content-Crs"] == f"<{EPSG}4548>"
    assert json.loads(answer.get_data(as_text=True))["geometry"]["coordinates"] == pytest.approx(
        [northing, easting], abs=0.01)
    # bboxes in each CRS's own axis order find it; the same numbers in the other order do not
    items = f"/ogc/collections/{COMPONENTS}/items"
    for crs, box in ((CRS84, f"{LON - 1e-4},{LAT - 1e-4},{LON + 1e-4},{LAT + 1e-4}"),
                     (f"{EPSG}4490", f"{LAT - 1e-4},{LON - 1e-4},{LAT + 1e-4},{LON + 1e-4}"),
                     (f"{EPSG}4548", f"{northing - 5},{easting - 5},{northing + 5},{easting + 5}")):
        assert [f["id"] for f in features(admin.get(items, query_string={"bbox": box, "bbox-crs": crs}))] == [obj_id]
    swapped = f"{LAT - 1e-4},{LON - 1e-4},{LAT + 1e-4},{LON + 1e-4}"  # lat/lon sent as CRS84: latitude 116
    assert_error(admin.get(items, query_string={"bbox": swapped}), 400, "invalid_input", field="bbox")


def test_datetime_selects_the_census_valid_then(admin, bj):
    old = add_components(bj, 2, valid_from="2024-01-01", valid_to="2025-01-01", prefix="1101050118")
    new = add_components(bj, 2, lon0=116.46, valid_from="2025-01-01", prefix="1101050119")
    items = f"/ogc/collections/{COMPONENTS}/items"
    then = {f["id"] for f in features(admin.get(items, query_string={"datetime": "2024-06-01T00:00:00Z"}))}
    now = {f["id"] for f in features(admin.get(items))}
    assert set(old) <= then and not set(new) & then
    assert set(new) <= now and not set(old) & now
    day = {f["id"] for f in features(admin.get(items, query_string={"datetime": "2024-06-01"}))}
    assert day == then
    assert_error(admin.get(items, query_string={"datetime": "../.."}), 400, "invalid_input", field="datetime")
    assert_error(admin.get(items, query_string={"datetime": "yesterday"}), 400, "invalid_input", field="datetime")
    assert_error(admin.get(items, query_string={"datetime": "2025-01-01/2024-01-01"}), 400, "invalid_input",
                 field="datetime")


def test_grids_by_version_number_and_by_date(admin, bj):
    version = bj.execute(sa.text("SELECT max(version_id) FROM grid_versions WHERE district_code = :d "
                                 "AND status = 'published'"), {"d": D}).scalar_one()
    items = f"/ogc/collections/{UNIT}/items"
    found = features(admin.get(items, query_string={"version": version, "limit": 2}))
    assert len(found) == 2 and {f["properties"]["version"] for f in found} == {version}
    assert features(admin.get(items, query_string={"datetime": "1990-01-01T00:00:00Z"})) == []
    assert_error(admin.get(items, query_string={"version": 999_999}), 400, "invalid_input", field="version")
    assert_error(admin.get(items, query_string={"version": version, "datetime": "2026-01-01"}), 400,
                 "invalid_input", field="version")


def test_cases_follow_the_case_scope(client_as, bj, case_rules):
    from tests.conftest import other_team, team_of

    case = submitted_case(bj, case_rules, lon=LON, lat=LAT, description="ogc scope test")
    team = team_of(bj, case["supervision_code"])
    mine = client_as("ogc-sup-in", ["supervisor"], team=team)
    theirs = client_as("ogc-sup-out", ["supervisor"], team=other_team(bj, team))
    url = f"/ogc/collections/cases-{D}/items?limit=10000"
    assert case["case_id"] in {f["id"] for f in features(mine.get(url))}
    assert case["case_id"] not in {f["id"] for f in features(theirs.get(url))}
    assert_error(theirs.get(f"/ogc/collections/cases-{D}/items/{case['case_id']}"), 404, "not_found")
    planner = client_as("ogc-planner", ["planner"])
    assert f"cases-{D}" not in {c["id"] for c in planner.get("/ogc/collections").get_json()["collections"]}
    assert_error(planner.get(url), 403, "forbidden")
    assert features(planner.get(f"/ogc/collections/{UNIT}/items?limit=1"))


def test_an_account_of_another_district_reads_none_of_these_collections(client_as, bj):
    outsider = client_as("ogc-outsider", ["dispatcher"])
    bj.execute(sa.text("UPDATE users SET district_code = '410104' WHERE username = 'ogc-outsider'"))
    assert outsider.get("/ogc/collections").get_json()["collections"] == []
    for path in (f"/ogc/collections/{UNIT}", f"/ogc/collections/{UNIT}/items", f"/ogc/collections/cases-{D}/items",
                 f"/ogc/collections/{UNIT}/queryables"):
        assert_error(outsider.get(path), 403, "forbidden")


# ---------------------------------------------------------------------------------------------------------- HTML
def test_html_pages_for_browsers_without_any_script(admin, bj):
    add_components(bj, 3)
    pages = ("/ogc", "/ogc/collections", f"/ogc/collections/{COMPONENTS}", f"/ogc/collections/{COMPONENTS}/items")
    for path in pages:
        answer = admin.get(path, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
        assert answer.status_code == 200 and answer.mimetype == "text/html", path
        assert "<script" not in answer.text and "unsafe-inline" not in answer.headers["Content-Security-Policy"]
        assert answer.text == admin.get(path + "?f=html").text or path.endswith("items")
    listing = admin.get(f"/ogc/collections/{COMPONENTS}/items?f=html").text
    assert "&lt;b&gt;路灯&lt;/b&gt;" in listing and "<b>路灯</b>" not in listing  # stored text escaped
    assert admin.get("/ogc/collections", headers={"Accept": "*/*"}).mimetype == "application/json"


@pytest.mark.parametrize("estimate", [1, 10**6])
def test_html_pages_link_the_next_page_by_what_is_there_not_by_an_estimate(admin, bj, monkeypatch, estimate):
    # The planner's estimate of a selection can be far off either way (a tenth of a box's features, or more
    # than there are): with the count estimated, the HTML page asks for one row past the page, as GeoJSON does.
    add_components(bj, 3)
    monkeypatch.setattr(queries, "EXACT_COUNT_UP_TO", 0)
    monkeypatch.setattr(queries.store, "estimate_rows", lambda conn, sel: estimate)
    total = json.loads(admin.get(f"/ogc/collections/{COMPONENTS}/items?limit=1000").get_data(as_text=True))
    n = total["numberReturned"]
    assert n >= 3 and "numberMatched" not in total  # estimated: not shown

    def next_of(offset: int) -> bool:
        html = admin.get(f"/ogc/collections/{COMPONENTS}/items?f=html&limit=2&offset={offset}").text
        return 'rel="next"' in html

    assert next_of(0) and next_of(n - 3)
    assert not next_of(n - 2) and not next_of(n)


def test_a_page_resolves_its_collection_once_for_the_count_and_the_features(admin, bj, monkeypatch):
    # Resolved once, the count and the features are of the same grid version (a publish between two
    # resolutions could give the count of one and the features of the next), and two round trips are saved.
    calls = {"context": 0, "version": 0}
    context, version = queries.store.district_context, queries.store.current_version

    def counted(name, real):
        def call(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(queries.store, "district_context", counted("context", context))
    monkeypatch.setattr(queries.store, "current_version", counted("version", version))
    doc = json.loads(admin.get(f"/ogc/collections/{UNIT}/items?limit=3").get_data(as_text=True))
    assert doc["numberReturned"] == 3 and doc["numberMatched"] > 3 and link(doc, "next")
    assert calls == {"context": 1, "version": 1}
    matched, exact, rows = queries.page(bj, UNIT, queries.FeatureQuery(limit=3), queries.Reader(role=None),
                                        as_text=False)
    assert (matched, exact) == queries.number_matched(bj, UNIT, queries.FeatureQuery(limit=3),
                                                      queries.Reader(role=None))
    assert [r["id"] for r in rows] == [f["id"] for f in doc["features"]]


# ------------------------------------------------------------------------------------------------------- hostile
@pytest.mark.parametrize("params,field", [
    ({"limit": "0"}, "limit"), ({"limit": "-1"}, "limit"), ({"limit": "1e3"}, "limit"),
    ({"limit": "9" * 30}, "limit"), ({"offset": "-5"}, "offset"), ({"offset": str(10**12)}, "offset"),
    ({"bbox": "1,2,3"}, "bbox"), ({"bbox": "116,39,117,40,0,10"}, "bbox"), ({"bbox": "NaN,39,117,40"}, "bbox"),
    ({"bbox": "116,39,Infinity,40"}, "bbox"), ({"bbox": "117,39,116,40"}, "bbox"), ({"bbox": "a,b,c,d"}, "bbox"),
    ({"bbox": "116,-100,117,40"}, "bbox"), ({"bbox": ",".join(["1"] * 500)}, "bbox"),
    ({"crs": "EPSG:3857"}, "crs"), ({"crs": "http://www.opengis.net/def/crs/EPSG/0/4326x"}, "crs"),
    ({"bbox-crs": "urn:ogc:def:crs:EPSG::9999", "bbox": "1,2,3,4"}, "bbox-crs"),
    ({"datetime": "2026-13-45"}, "datetime"), ({"datetime": "x" * 500}, "datetime"),
    ({"version": "0"}, "version"), ({"version": "abc"}, "version"), ({"version": "99999999999"}, "version"),
    ({"f": "xml"}, "f"), ({"filter": "code = '1'"}, "filter"), ({"code": "x" * 300}, "code"),
    ({"sortby": "code"}, "sortby"),
])
def test_hostile_item_parameters_are_refused_plainly(admin, params, field):
    body = assert_error(admin.get(f"/ogc/collections/{UNIT}/items", query_string=params), 400, "invalid_input",
                        field=field)
    assert body["message"]


def test_control_characters_and_repeated_parameters_are_refused(admin):
    assert_error(admin.get(f"/ogc/collections/{UNIT}/items?code=a%00b"), 400, "invalid_input", field="code")
    assert_error(admin.get(f"/ogc/collections/{UNIT}/items?limit=1&limit=2"), 400, "invalid_input", field="limit")
    assert_error(admin.get(f"/ogc/collections/unit-grids-{D}%01/items"), 400, "invalid_input")
    assert admin.get("/ogc/collections/" + "x" * 5000).status_code == 404
    assert_error(admin.get(f"/ogc/collections/streets-{D}/items?version=1"), 400, "invalid_input", field="version")
    assert_error(admin.get(f"/ogc/collections/streets-{D}/items?datetime=2026-01-01"), 400, "invalid_input",
                 field="datetime")


def test_a_far_offset_is_an_empty_page_not_an_error(admin):
    doc = json.loads(admin.get(f"/ogc/collections/{UNIT}/items?offset=9000000").get_data(as_text=True))
    assert doc["numberReturned"] == 0 and doc["features"] == [] and link(doc, "next") is None


def test_a_big_page_is_streamed(admin, bj):
    add_components(bj, 1500)
    answer = admin.get(f"/ogc/collections/{COMPONENTS}/items?limit=1200")
    assert answer.is_streamed
    doc = json.loads(answer.get_data(as_text=True))
    assert doc["numberReturned"] == 1200 and doc["numberMatched"] >= 1500 and link(doc, "next")


def test_no_request_the_ogc_api_definition_allows_gets_a_server_error(admin):
    """Every operation of ``/ogc/api``, fuzzed by schemathesis (values that follow the schema and malformed
    ones), signed in and anonymous: never a 5xx."""
    from tests.conftest import server_errors

    operations, failures = server_errors(admin.application, "/ogc/api", admin.environ_base["HTTP_AUTHORIZATION"], 15)
    assert operations >= 8
    assert not failures, "\n".join(failures[:20])


def test_links_behind_a_tls_proxy_are_https(bj, beijing_db):
    """A client behind the trusted proxy's TLS follows next links as given: they must not be plain http."""
    from dataclasses import replace

    from citygrid.app import create_app
    from citygrid.config import Settings
    from tests.conftest import rollback_backend, signed_in, user_token

    settings = replace(Settings.from_env(), trusted_proxy="127.0.0.1")
    app = create_app({"CITYGRID_BACKEND": rollback_backend(bj, beijing_db.database or ""),
                      "CITYGRID_SETTINGS": settings, "TESTING": True})
    client = signed_in(app.test_client(), user_token(bj, "ogc-proxied", ["analyst"]))
    answer = client.get(f"/ogc/collections/{UNIT}/items?limit=2", headers={"X-Forwarded-Proto": "https"})
    doc = json.loads(answer.get_data(as_text=True))
    assert link(doc, "next")["href"].startswith("https://")
    plain = json.loads(client.get(f"/ogc/collections/{UNIT}/items?limit=2").get_data(as_text=True))
    assert link(plain, "next")["href"].startswith("http://")
    html = client.get(f"/ogc/collections/{UNIT}/items?f=html&limit=100000")
    assert html.status_code == 200 and html.text.count("<tr>") == 500 + 1  # at most 500 rows, and the head
