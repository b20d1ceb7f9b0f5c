"""Hostile input to the grid editing endpoints (#23, part E1): control characters, huge and nested values, huge
geometries, NaN and Infinity, other districts' drafts, replays. Every answer is a precise 4xx, never a 500, and
nothing changes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import shapely
import sqlalchemy as sa

from citygrid.gridding import drafts
from citygrid.spatial import crs
from tests.conftest import assert_error

D = "110105"
SRID = 4548


@pytest.fixture
def draft(bj) -> int:
    return drafts.create(bj, D, author="attack-planner")["version"]


@pytest.fixture
def planner(client_as):
    return client_as("attack-planner", ["planner"])


def a_grid(bj, version: int) -> tuple[str, shapely.Polygon]:
    code, wkb = bj.execute(sa.text(
        """SELECT u.code, ST_AsBinary(u.geom) FROM unit_grids u JOIN districts d USING (district_code)
            WHERE u.district_code = :d AND u.version_id = :v AND u.area_m2 > 50000
              AND ST_Within(ST_Buffer(u.geom, 50), d.geom) ORDER BY u.code LIMIT 1"""), {"d": D, "v": version}).one()
    return code, shapely.from_wkb(bytes(wkb))


def lonlat(geom) -> dict:
    return shapely.geometry.mapping(crs.to_lonlat(np.array([geom], dtype=object), SRID)[0])


def url(version: int, what: str = "edits", district: str = D) -> str:
    return f"/api/v1/grids/versions/{version}/{what}?district={district}"


def revision(bj, version: int) -> int:
    return bj.execute(sa.text("SELECT revision FROM grid_versions WHERE district_code = :d AND version_id = :v"),
                      {"d": D, "v": version}).scalar_one()


def test_control_characters_anywhere_are_refused(planner, draft, bj):
    code, _ = a_grid(bj, draft)
    for body in ({"op": "merge", "codes": [code, "110105\x00001001001"], "expected_revision": 0},
                 {"op": "merge\x1b", "codes": [code], "expected_revision": 0},
                 {"op": "merge", "codes": [code], "expected_revision": 0, "no\x07te": 1}):
        answer = planner.post(url(draft), json=body)
        assert answer.status_code == 400, answer.get_json()
    assert planner.post(url(draft).replace("district=", "district=1101\x0005"), json={}).status_code == 400
    assert_error(planner.post("/api/v1/grids/versions", json={"district": D, "note": "a\x00b"}), 400, "invalid_input")
    assert revision(bj, draft) == 0


def test_wrong_types_and_huge_values_are_400(planner, draft, bj):
    code, poly = a_grid(bj, draft)
    for body, field in [
        ({"op": ["split"], "expected_revision": 0}, "op"),
        ({"op": "merge", "codes": {"a": 1}, "expected_revision": 0}, "codes"),
        ({"op": "merge", "codes": [1, 2], "expected_revision": 0}, "codes"),
        ({"op": "merge", "codes": [code] * 51, "expected_revision": 0}, "codes"),
        ({"op": "split", "code": 110105001001001, "line": lonlat(poly.exterior), "expected_revision": 0}, "code"),
        ({"op": "merge", "codes": [code, code], "expected_revision": "0"}, "expected_revision"),
        ({"op": "merge", "codes": [code, code], "expected_revision": True}, "expected_revision"),
        ({"op": "merge", "codes": [code, code], "expected_revision": 10**30}, "expected_revision"),
        ({"op": "merge", "codes": [code, code], "expected_revision": -1}, "expected_revision"),
        ({"op": "merge", "codes": ["x" * 100_000, code], "expected_revision": 0}, "codes"),
    ]:
        assert_error(planner.post(url(draft), json=body), 400, "invalid_input", field=field)
    assert_error(planner.post("/api/v1/grids/versions", json={"district": D, "from": 10**20}), 400,
                 "invalid_input", field="from")
    assert_error(planner.post("/api/v1/grids/versions", json={"district": ["110105"]}), 400, "invalid_input",
                 field="district")
    assert_error(planner.post("/api/v1/grids/versions", json=[1, 2]), 400, "invalid_input")
    assert planner.post(f"/api/v1/grids/versions/99999999999/edits?district={D}", json={}).status_code == 404
    assert planner.get(f"/api/v1/grids/versions/-1?district={D}").status_code == 404
    assert revision(bj, draft) == 0


def test_nested_values_and_huge_geometries_are_refused(planner, draft, bj):
    code, poly = a_grid(bj, draft)
    nested: object = [116.4, 39.9]
    for _ in range(40):
        nested = [nested]
    answer = planner.post(url(draft), json={"op": "split", "code": code, "expected_revision": 0,
                                            "line": {"type": "LineString", "coordinates": nested}})
    assert answer.status_code == 400
    minx, _, maxx, _ = poly.bounds
    xs = np.linspace(minx - 5, maxx + 5, 10_001)
    long_line = shapely.LineString(np.column_stack([xs, np.full_like(xs, poly.centroid.y)]))
    assert_error(planner.post(url(draft), json={"op": "split", "code": code, "line": lonlat(long_line),
                                                "expected_revision": 0}), 400, "invalid_input", reason="10,000")
    ring = shapely.Point(poly.centroid).buffer(120, 1250)  # 5,000 vertices: allowed, and answered in time
    answer = planner.post(url(draft), json={"op": "reshape", "code": code, "geometry": lonlat(ring),
                                            "expected_revision": 0})
    assert answer.status_code in (200, 422), answer.get_json()


def test_nan_infinity_and_out_of_range_coordinates_are_400(planner, draft, bj):
    for raw in ('{"op": "move-vertex", "from": [NaN, 39.9], "to": [116.4, 39.9], "expected_revision": 0}',
                '{"op": "move-vertex", "from": [116.4, 39.9], "to": [Infinity, 39.9], "expected_revision": 0}',
                '{"op": "move-vertex", "from": [116.4, 39.9], "to": [1e999, 39.9], "expected_revision": 0}',
                '{"op": "move-vertex", "from": [116.4, 95], "to": [116.4, 39.9], "expected_revision": 0}',
                '{"op": "move-vertex", "from": [116.4, 39.9], "to": [%s, 39.9], "expected_revision": 0}'
                % ("1" + "0" * 400)):
        answer = planner.post(url(draft), data=raw, content_type="application/json")
        assert answer.status_code == 400, (raw, answer.get_json())
    far = planner.post(url(draft), json={"op": "move-vertex", "from": [-70.0, -40.0], "to": [-70.0, -40.1],
                                         "expected_revision": 0})
    assert far.status_code in (400, 422) and far.get_json()["error"] in ("invalid_input", "rejected")
    assert revision(bj, draft) == 0


def test_a_self_crossing_boundary_is_rejected_with_its_geometry(planner, draft, bj):
    code, poly = a_grid(bj, draft)
    minx, miny, maxx, maxy = poly.bounds
    bowtie = shapely.Polygon([(minx, miny), (maxx, maxy), (maxx, miny), (minx, maxy), (minx, miny)])
    answer = planner.post(url(draft), json={"op": "reshape", "code": code, "geometry": lonlat(bowtie),
                                            "expected_revision": 0})
    assert answer.status_code == 422, answer.get_json()
    body = answer.get_json()
    assert body["reason"] == "invalid" and body["geometry"] is not None
    assert all(math.isfinite(v) for v in np.ravel(body["geometry"]["coordinates"]))
    open_ring = json.loads(json.dumps(lonlat(poly)))
    open_ring["coordinates"][0] = open_ring["coordinates"][0][:-1]
    assert_error(planner.post(url(draft), json={"op": "reshape", "code": code, "geometry": open_ring,
                                                "expected_revision": 0}), 400, "invalid_input", field="geometry")


def test_other_districts_and_other_users_drafts(planner, client_as, draft, bj):
    code, _ = a_grid(bj, draft)
    other = "110105001001001" if code != "110105001001001" else "110105001001002"
    body = {"op": "merge", "codes": [code, other], "expected_revision": 0}
    assert_error(planner.post(url(draft, district="410104"), json=body), 404, "not_found")  # no such version there
    outsider = client_as("attack-outsider", ["planner"])
    bj.execute(sa.text("UPDATE users SET district_code = '410104' WHERE username = 'attack-outsider'"))
    assert_error(outsider.get(f"/api/v1/grids/versions/{draft}?district={D}"), 403, "forbidden")
    assert_error(outsider.get(url(draft)), 403, "forbidden")
    assert_error(outsider.post(url(draft, "undo"), json={"expected_revision": 0}), 403, "forbidden")
    team = bj.execute(sa.text("SELECT code FROM supervision_teams WHERE district_code = :d ORDER BY code LIMIT 1"),
                      {"d": D}).scalar_one()
    party = bj.execute(sa.text("SELECT code FROM parties WHERE district_code = :d ORDER BY code LIMIT 1"),
                       {"d": D}).scalar_one()
    for role in ("supervisor", "dispatcher", "unit", "gis", "acceptor", "calltaker", "lead", "analyst"):
        other = client_as(f"attack-{role}", [role], team=team if role == "supervisor" else None,
                          party=party if role == "unit" else None)
        assert other.post(url(draft), json=body).status_code == 403, role
        assert other.get(f"/api/v1/grids?district={D}&version={draft}").status_code == 403, role
    anonymous = planner.application.test_client()
    assert anonymous.post(url(draft), json=body).status_code == 401


def test_replays_change_nothing_the_second_time(planner, draft, bj):
    code, poly = a_grid(bj, draft)
    line = shapely.LineString([(poly.bounds[0] - 5, poly.centroid.y), (poly.bounds[2] + 5, poly.centroid.y)])
    body = {"op": "split", "code": code, "line": lonlat(line), "expected_revision": 0}
    first = planner.post(url(draft), json=body)
    assert first.status_code in (200, 422), first.get_json()
    if first.status_code == 200:
        assert planner.post(url(draft), json=body).status_code == 409
        assert planner.post(url(draft, "undo"), json={"expected_revision": 1}).status_code == 200
        assert planner.post(url(draft, "undo"), json={"expected_revision": 1}).status_code == 409
        assert revision(bj, draft) == 2
    assert_error(planner.post(url(draft, "undo"), json={"expected_revision": 0, "force": True}), 400,
                 "invalid_input", field="force")


# ------------------------------------------------------------------------------ attack pass (part X, #23)
def _published_start(bj):
    return bj.execute(sa.text("SELECT effective_from FROM grid_versions WHERE district_code = :d "
                              "AND status = 'published'"), {"d": D}).scalar_one()


def test_publish_refuses_a_date_far_in_the_future_another_district_and_the_past(planner, client_as, draft, bj):
    """A publish makes the draft current at once, so an effective date years ahead would leave the replaced
    version 'valid' until then and block every later publish (9999-12-31: for good)."""
    for day in ("9999-12-31", "2200-01-01", "9999-12-31T23:59:59+14:00"):
        assert_error(planner.post(url(draft, "publish"), json={"effective_from": day}), 400, "invalid_input",
                     field="effective_from")
    before = _published_start(bj)
    assert_error(planner.post(url(draft, "publish"), json={"effective_from": "2000-01-01"}), 400, "invalid_input",
                 field="effective_from")
    for raw in ("0000-01-01", "2026-02-30", "NaN", "2026-01-01T25:00", "\u0662\u0660\u0662\u0666-01-01"):
        assert_error(planner.post(url(draft, "publish"), json={"effective_from": raw}), 400, "invalid_input",
                     field="effective_from")
    outsider = client_as("attack-pub-outsider", ["planner"])
    bj.execute(sa.text("UPDATE users SET district_code = '410104' WHERE username = 'attack-pub-outsider'"))
    assert_error(outsider.post(url(draft, "publish"), json={"effective_from": "2026-12-31"}), 403, "forbidden")
    for role in ("analyst", "dispatcher", "gis", "lead"):
        assert client_as(f"attack-pub-{role}", [role]).post(
            url(draft, "publish"), json={"effective_from": "2026-12-31"}).status_code == 403, role
    assert _published_start(bj) == before
    assert bj.execute(sa.text("SELECT status FROM grid_versions WHERE district_code = :d AND version_id = :v"),
                      {"d": D, "v": draft}).scalar_one() == "draft"


def test_draft_grids_are_read_by_no_other_route(planner, client_as, draft, bj):
    """A split issues a new code in the draft; no route shows it (or the draft's geometry) to a reader who may
    not read drafts: grid by code, search, card, grid-at, tiles, stats, pages, impact, diff, the editor."""
    code, poly = a_grid(bj, draft)
    line = shapely.LineString([(poly.bounds[0] - 5, poly.centroid.y), (poly.bounds[2] + 5, poly.centroid.y)])
    done = planner.post(url(draft), json={"op": "split", "code": code, "line": lonlat(line),
                                          "expected_revision": 0})
    assert done.status_code == 200, done.get_json()
    new_code = done.get_json()["edit"]["added"][0]
    published = bj.execute(sa.text("SELECT version_id FROM grid_versions WHERE district_code = :d "
                                   "AND status = 'published'"), {"d": D}).scalar_one()
    analyst = client_as("attack-read-analyst", ["analyst"])
    assert analyst.get(f"/api/v1/grids/{new_code}").status_code == 404
    assert analyst.get(f"/api/v1/grids/{new_code}/card").status_code == 404
    assert analyst.get(f"/api/v1/search?q={new_code}").get_json()["results"] == []
    shown = analyst.get(f"/api/v1/grids/{code}").get_json()
    assert shown["properties"]["version"] == published
    assert analyst.get(f"/api/v1/search?q={code}").get_json()["results"][0]["geometry"] == shown["geometry"]
    for half in (shapely.box(poly.bounds[0] - 1, poly.bounds[1] - 1, poly.bounds[2] + 1, poly.centroid.y),
                 shapely.box(poly.bounds[0] - 1, poly.centroid.y, poly.bounds[2] + 1, poly.bounds[3] + 1)):
        inner = crs.to_lonlat(np.array([poly.intersection(half).representative_point()], dtype=object), SRID)[0]
        at = analyst.get(f"/api/v1/grids/at?lon={inner.x}&lat={inner.y}").get_json()
        assert at["code"] == code  # the published grid, on both sides of the draft's cut
    for path in (f"/api/v1/grids?district={D}&version={draft}", f"/api/v1/grids/stats?district={D}&version={draft}",
                 f"/api/v1/grids/versions/{draft}?district={D}", url(draft, "impact"), url(draft),
                 f"/api/v1/grids/versions/{published}/diff/{draft}?district={D}",
                 f"/api/v1/grids/versions/{draft}/diff/{published}?district={D}", "/editor"):
        assert analyst.get(path).status_code == 403, path
    for path in (url(draft, "impact"), f"/api/v1/grids/versions/{published}/diff/{draft}?district={D}",
                 f"/api/v1/grids?district={D}&version={draft}"):
        assert planner.application.test_client().get(path).status_code == 401, path
    for layer in ("unit_grids", "supervision_grids"):
        for z, x, y in ((13, 6743, 3103), (10, 842, 387)):
            tile = analyst.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt")
            assert tile.status_code in (200, 204) and new_code.encode() not in tile.data
