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
