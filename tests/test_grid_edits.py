"""Grid editing (#23, part E1): drafts, every edit op end to end through HTTP and the CLI on Chaoyang's grids,
every rejection, optimistic concurrency, the edit log, exact undo, codes never reused, and what a draft edit must
not touch (the published version's geocoding and tiles)."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import shapely
import shapely.ops
import sqlalchemy as sa
from click.testing import CliRunner

from citygrid.cli import cli
from citygrid.errors import Conflict
from citygrid.gridding import drafts, edits
from citygrid.gridding.codes import parse_code
from citygrid.spatial import crs
from citygrid.spatial.geocode import GridIndex
from tests.conftest import assert_error

D = "110105"
SRID = 4548


# ------------------------------------------------------------------------------------------ helpers
def lonlat(geom):
    """A geometry in EPSG:4548 as GeoJSON in EPSG:4326."""
    return shapely.geometry.mapping(crs.to_lonlat(np.array([geom], dtype=object), SRID)[0])


def geom_of(bj, version: int, code: str):
    wkb = bj.execute(sa.text("SELECT ST_AsBinary(geom) FROM unit_grids WHERE district_code = :d AND version_id = :v "
                             "AND code = :c"), {"d": D, "v": version, "c": code}).scalar()
    return None if wkb is None else shapely.from_wkb(bytes(wkb))


def wkb_of(bj, version: int, code: str) -> bytes | None:
    wkb = bj.execute(sa.text("SELECT ST_AsBinary(geom) FROM unit_grids WHERE district_code = :d AND version_id = :v "
                             "AND code = :c"), {"d": D, "v": version, "c": code}).scalar()
    return None if wkb is None else bytes(wkb)


def interior_grids(bj, version: int, limit: int = 60) -> list[tuple[str, str]]:
    """(code, supervision code) of large unit grids well inside the district."""
    rows = bj.execute(sa.text(
        """SELECT u.code, u.supervision_code FROM unit_grids u JOIN districts d USING (district_code)
            WHERE u.district_code = :d AND u.version_id = :v AND u.area_m2 > 50000
              AND ST_Within(ST_Buffer(u.geom, 50), d.geom) ORDER BY u.code LIMIT :n"""
    ), {"d": D, "v": version, "n": limit}).all()
    return [tuple(r) for r in rows]


def halving_line(poly):
    """A horizontal line through the centroid overshooting the polygon by 5 m (EPSG:4548), when it cuts the
    polygon into two parts of 15,000 m² or more; else None."""
    minx, _, maxx, _ = poly.bounds
    y = poly.centroid.y
    line = shapely.LineString([(minx - 5, y), (maxx + 5, y)])
    parts = shapely.get_parts(shapely.ops.split(poly, line))
    return line if len(parts) == 2 and min(p.area for p in parts) >= 15_000 else None


def splittable(bj, version: int):
    """(code, line in EPSG:4548) of an interior grid a horizontal line halves."""
    for code, _ in interior_grids(bj, version):
        line = halving_line(geom_of(bj, version, code))
        if line is not None:
            return code, line
    raise AssertionError("no splittable grid")


def neighbour(bj, version: int, code: str, same_supervision: bool = True) -> str:
    """A unit grid sharing more than 10 m of edge with ``code`` (in its supervision grid, or in another)."""
    op = "=" if same_supervision else "<>"
    return bj.execute(sa.text(
        f"""SELECT n.code FROM unit_grids u JOIN unit_grids n
              ON n.district_code = u.district_code AND n.version_id = u.version_id AND n.code <> u.code
             AND ST_Intersects(n.geom, u.geom) AND n.supervision_code {op} u.supervision_code
           WHERE u.district_code = :d AND u.version_id = :v AND u.code = :c
             AND ST_Length(ST_CollectionExtract(ST_Intersection(ST_Boundary(n.geom), ST_Boundary(u.geom)), 2)) > 10
           ORDER BY n.code LIMIT 1"""), {"d": D, "v": version, "c": code}).scalar_one()


def revision(bj, version: int) -> int:
    return bj.execute(sa.text("SELECT revision FROM grid_versions WHERE district_code = :d AND version_id = :v"),
                      {"d": D, "v": version}).scalar_one()


def published(bj) -> int:
    return bj.execute(sa.text("SELECT version_id FROM grid_versions WHERE district_code = :d AND status = "
                              "'published'"), {"d": D}).scalar_one()


@pytest.fixture
def draft(bj) -> int:
    """A new draft of Chaoyang's published grids (rolled back with the test)."""
    made = drafts.create(bj, D, author="test-planner")
    assert made == {"district": D, "version": made["version"], "base_version": published(bj), "status": "draft",
                    "revision": 0}
    return made["version"]


@pytest.fixture
def planner(client_as):
    return client_as("edit-planner", ["planner"])


def edit(client, version: int, body: dict, expected: int):
    return client.post(f"/api/v1/grids/versions/{version}/edits?district={D}",
                       json={**body, "expected_revision": expected})


# ------------------------------------------------------------------------------------------ drafts
def test_a_draft_copies_the_published_grids_supervision_grids_and_teams(bj, draft):
    base = published(bj)
    counts = {}
    for table in ("unit_grids", "supervision_grids", "supervision_teams"):
        counts[table] = [bj.execute(sa.text(f"SELECT count(*) FROM {table} WHERE district_code = :d "
                                            "AND version_id = :v"), {"d": D, "v": v}).scalar_one()
                         for v in (base, draft)]
        assert counts[table][0] == counts[table][1] > 0, table
    same = bj.execute(sa.text(
        """SELECT count(*) FROM unit_grids a JOIN unit_grids b USING (district_code, code)
            WHERE a.district_code = :d AND a.version_id = :a AND b.version_id = :b
              AND ST_AsBinary(a.geom) = ST_AsBinary(b.geom) AND a.supervision_code = b.supervision_code"""
    ), {"d": D, "a": base, "b": draft}).scalar_one()
    assert same == counts["unit_grids"][0]
    summary = drafts.summary(bj, D, draft)
    assert (summary["source"], summary["base_version"], summary["revision"]) == ("edited", base, 0)


def test_drafts_over_http_for_planners_only(planner, client_as, bj):
    made = planner.post("/api/v1/grids/versions", json={"district": D})
    assert made.status_code == 201, made.get_json()
    version = made.get_json()["version"]
    second = planner.post("/api/v1/grids/versions", json={"district": D, "from": published(bj)}).get_json()
    assert second["version"] == version + 1  # several drafts at once
    shown = planner.get(f"/api/v1/grids/versions/{version}?district={D}").get_json()
    assert (shown["status"], shown["revision"], shown["base_version"]) == ("draft", 0, published(bj))
    page = planner.get(f"/api/v1/grids?district={D}&version={version}&limit=1").get_json()
    assert page["version_status"] == "draft" and page["total"] > 8000
    analyst = client_as("edit-analyst", ["analyst"])
    assert_error(analyst.post("/api/v1/grids/versions", json={"district": D}), 403, "forbidden")
    assert_error(analyst.get(f"/api/v1/grids?district={D}&version={version}"), 403, "forbidden")
    assert_error(analyst.get(f"/api/v1/grids/stats?district={D}&version={version}"), 403, "forbidden")
    assert_error(analyst.get(f"/api/v1/grids/versions/{version}?district={D}"), 403, "forbidden")
    assert analyst.get(f"/api/v1/grids?district={D}&version={published(bj)}&limit=1").status_code == 200
    assert_error(planner.post("/api/v1/grids/versions", json={"district": D, "from": 999}), 404, "not_found")


def test_a_new_code_of_a_draft_is_not_found_by_other_readers(planner, client_as, bj, draft):
    code, line = splittable(bj, draft)
    added = edit(planner, draft, {"op": "split", "code": code, "line": lonlat(line)}, 0).get_json()["edit"]["added"]
    anyone = client_as("edit-supervisor-reader", ["analyst"])
    assert_error(anyone.get(f"/api/v1/grids/{added[0]}"), 404, "not_found")


# ------------------------------------------------------------------------------------------ the ops
def test_split_keeps_the_code_on_the_largest_part_and_issues_a_new_one(planner, bj, draft):
    code, line = splittable(bj, draft)
    old = geom_of(bj, draft, code)
    answer = edit(planner, draft, {"op": "split", "code": code, "line": lonlat(line)}, 0)
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["revision"] == 1 and revision(bj, draft) == 1
    new = body["edit"]["added"]
    assert body["edit"]["op"] == "split" and body["edit"]["changed"] == [code] and len(new) == 1
    assert body["edit"]["author"] == "edit-planner" and not body["edit"]["removed"]
    kept, cut = geom_of(bj, draft, code), geom_of(bj, draft, new[0])
    assert kept.area >= cut.area and abs(kept.area + cut.area - old.area) < 0.01
    assert {f["id"] for f in body["features"]["features"]} == {code, new[0]}
    assert parse_code(new[0])[0] == parse_code(code)[0]  # same street and community
    assert new[0] not in {r[0] for r in bj.execute(sa.text(
        "SELECT code FROM unit_grids WHERE district_code = :d AND version_id = :v"), {"d": D, "v": published(bj)})}
    rows = bj.execute(sa.text("SELECT code, supervision_code, area_m2 FROM unit_grids WHERE district_code = :d "
                              "AND version_id = :v AND code = ANY(:c)"), {"d": D, "v": draft, "c": [code, *new]}).all()
    assert len({r[1] for r in rows}) == 1  # the new part stays in the split grid's supervision grid
    assert bj.execute(sa.text("SELECT first_version FROM grid_codes WHERE district_code = :d AND code = :c"),
                      {"d": D, "c": new[0]}).scalar_one() == draft


def test_merge_keeps_the_largest_grids_code_and_retires_the_others(planner, bj, draft):
    code, _ = interior_grids(bj, draft)[0]
    other = neighbour(bj, draft, code)
    areas = {c: geom_of(bj, draft, c).area for c in (code, other)}
    keeper = max(areas, key=areas.get)
    answer = edit(planner, draft, {"op": "merge", "codes": [code, other]}, 0)
    assert answer.status_code == 200, answer.get_json()
    summary = answer.get_json()["edit"]
    assert summary["changed"] == [keeper] and summary["removed"] == [min(areas, key=areas.get)]
    assert abs(geom_of(bj, draft, keeper).area - sum(areas.values())) < 0.01
    assert geom_of(bj, draft, summary["removed"][0]) is None
    # retired when the draft is published (test_grid_drafts): the published version still has it
    assert bj.execute(sa.text("SELECT retired_version FROM grid_codes WHERE district_code = :d AND code = :c"),
                      {"d": D, "c": summary["removed"][0]}).scalar_one() is None


def test_reshape_moves_the_shared_edges_of_the_neighbours(planner, bj, draft):
    code, _ = interior_grids(bj, draft)[0]
    old = geom_of(bj, draft, code)
    grown = old.buffer(5, join_style="mitre")
    answer = edit(planner, draft, {"op": "reshape", "code": code, "geometry": lonlat(grown)}, 0)
    assert answer.status_code == 200, answer.get_json()
    summary = answer.get_json()["edit"]
    assert code in summary["changed"] and len(summary["changed"]) >= 3 and not summary["added"]
    assert geom_of(bj, draft, code).area > old.area + 100
    changed = [geom_of(bj, draft, c) for c in summary["changed"]]
    assert shapely.coverage_is_valid(np.array(changed, dtype=object), gap_width=0.0)


def test_move_vertex_moves_it_in_every_grid_that_shares_it(planner, bj, draft):
    code, _ = interior_grids(bj, draft)[0]
    poly = geom_of(bj, draft, code)
    other = geom_of(bj, draft, neighbour(bj, draft, code))
    shared = [xy for xy in shapely.get_coordinates(poly) if other.distance(shapely.Point(xy)) < 0.001]
    x, y = shared[0]
    c = poly.centroid
    step = np.hypot(c.x - x, c.y - y)
    to = (x + (c.x - x) * 2 / step, y + (c.y - y) * 2 / step)
    points = crs.to_lonlat(np.array([shapely.Point(x, y), shapely.Point(to)], dtype=object), SRID)
    answer = edit(planner, draft, {"op": "move-vertex", "from": [points[0].x, points[0].y],
                                   "to": [points[1].x, points[1].y]}, 0)
    assert answer.status_code == 200, answer.get_json()
    changed = answer.get_json()["edit"]["changed"]
    assert code in changed and len(changed) >= 2
    for moved in changed:
        assert geom_of(bj, draft, moved).distance(shapely.Point(to)) < 0.01


def border_pairs(bj, version: int) -> list[tuple[str, str, str]]:
    """(unit grid, its supervision grid, a neighbouring supervision grid) along supervision-grid borders."""
    return [tuple(r) for r in bj.execute(sa.text(
        """SELECT u.code, u.supervision_code, min(n.supervision_code) FROM unit_grids u JOIN unit_grids n
              ON n.district_code = u.district_code AND n.version_id = u.version_id
             AND n.supervision_code <> u.supervision_code AND ST_Intersects(n.geom, u.geom)
           WHERE u.district_code = :d AND u.version_id = :v
             AND ST_Length(ST_CollectionExtract(ST_Intersection(ST_Boundary(n.geom), ST_Boundary(u.geom)), 2)) > 50
           GROUP BY u.code, u.supervision_code ORDER BY u.code LIMIT 30"""), {"d": D, "v": version})]


def test_reassign_and_set_team(planner, bj, draft):
    for code, supervision, target in border_pairs(bj, draft):  # noqa: B007  (read after the loop)
        answer = edit(planner, draft, {"op": "reassign", "codes": [code], "supervision_code": target}, 0)
        if answer.status_code == 200:
            break
        assert answer.status_code == 422 and answer.get_json()["reason"] == "not_contiguous", answer.get_json()
    else:
        raise AssertionError("no unit grid could move to a neighbouring supervision grid")
    assert answer.get_json()["edit"]["supervision"] == sorted({supervision, target})
    assert bj.execute(sa.text("SELECT supervision_code FROM unit_grids WHERE district_code = :d AND version_id = :v "
                              "AND code = :c"), {"d": D, "v": draft, "c": code}).scalar_one() == target
    holds = bj.execute(sa.text(
        """SELECT ST_Covers(ST_Buffer(s.geom, 0.01), ST_PointOnSurface(u.geom)) FROM supervision_grids s, unit_grids u
            WHERE s.district_code = :d AND s.version_id = :v AND s.code = :s
              AND u.district_code = :d AND u.version_id = :v AND u.code = :c"""),
        {"d": D, "v": draft, "s": target, "c": code}).scalar_one()
    assert holds  # the supervision grid's outline now holds the grid
    team = bj.execute(sa.text("SELECT team_code FROM supervision_grids WHERE district_code = :d AND version_id = :v "
                              "AND code = :s"), {"d": D, "v": draft, "s": target}).scalar_one()
    other_team = bj.execute(sa.text("SELECT code FROM supervision_teams WHERE district_code = :d AND version_id = :v "
                                    "AND code <> :t ORDER BY code LIMIT 1"),
                            {"d": D, "v": draft, "t": team}).scalar_one()
    moved = edit(planner, draft, {"op": "set-team", "supervision_code": target, "team_code": other_team}, 1)
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["edit"]["supervision"] == [target] and moved.get_json()["revision"] == 2
    assert bj.execute(sa.text("SELECT team_code FROM supervision_grids WHERE district_code = :d AND version_id = :v "
                              "AND code = :s"), {"d": D, "v": draft, "s": target}).scalar_one() == other_team


def test_issued_serial_by_the_prefix_index_equals_the_count_over_every_code(bj):
    """``store.issued_serial`` (one prefix's codes through index ``grid_codes_prefix``) gives what the slow exact
    path gives (``store.issued_serials``: every code of the district parsed), for every prefix in use and for
    prefixes in use by no code; a prefix that is not ASCII is a programming error."""
    from citygrid.gridding import store

    exact = store.issued_serials(bj, D)
    assert len(exact) > 20
    for prefix in sorted(exact)[:: max(1, len(exact) // 40)]:
        assert store.issued_serial(bj, D, prefix) == exact[prefix], prefix
    assert store.issued_serial(bj, D, "999999999999") == 0
    some = sorted(exact)[0]
    assert store.issued_serial(bj, D, some[:-1] + chr(ord(some[-1]) + 1)) == exact.get(
        some[:-1] + chr(ord(some[-1]) + 1), 0)
    with pytest.raises(ValueError):
        store.issued_serial(bj, D, "１１０")


def test_a_draft_records_whether_its_supervision_grids_are_contiguous(bj, draft):
    """A draft of a version grouped into contiguous supervision grids says so (its edits then check contiguity
    around the change, ``topology.joined_around``); its own grouping, when it has one, decides; unknown is
    False (every touched supervision grid checked whole)."""
    params = bj.execute(sa.text("SELECT params FROM grid_versions WHERE district_code = :d AND version_id = :v"),
                        {"d": D, "v": draft}).scalar_one()
    assert params["draft"]["supervision_contiguous"] is True and drafts.supervision_contiguous(params)
    assert not drafts.supervision_contiguous({"partition": {"contiguous": False},
                                              "draft": {"supervision_contiguous": True}})
    assert drafts.supervision_contiguous({"partition": {"contiguous": True}})
    assert not drafts.supervision_contiguous({}) and not drafts.supervision_contiguous({"draft": {}})
    # a draft not known contiguous is edited the same way, each touched supervision grid checked whole
    bj.execute(sa.text("""UPDATE grid_versions SET params = jsonb_set(params, '{draft,supervision_contiguous}',
                                                                    'false') WHERE district_code = :d
                          AND version_id = :v"""), {"d": D, "v": draft})
    code, supervision, target = border_pairs(bj, draft)[0]
    answer = edits.apply(bj, D, draft, {"op": "reassign", "codes": [code], "supervision_code": target}, 0, "t")
    assert answer["edit"]["supervision"] == sorted({supervision, target})


def test_the_ring_picked_from_the_grids_an_edit_loaded_is_the_one_the_database_gives(bj, draft, monkeypatch):
    """A split, a merge and a reshape (growing into its neighbours, or giving ground to them) pick their ring of
    untouched neighbours from the grids they loaded with their own (``Change.around``: no second query); it is
    the ring the database gives (``edits._ring`` without them, by the spatial index: the slow exact path)."""
    import dataclasses

    from citygrid.codes import deployment_scheme
    from citygrid.gridding import store

    place = edits._place(D, draft, edits._lock_draft(bj, D, draft, None, store.lock_version_for_edit),
                         deployment_scheme(bj))
    code, line = splittable(bj, draft)
    shaped = next(c for c, _ in interior_grids(bj, draft) if c != code)
    old = geom_of(bj, draft, shaped)
    ops = [{"op": "split", "code": code, "line": lonlat(line)},
           {"op": "merge", "codes": [code, neighbour(bj, draft, code)]},
           {"op": "reshape", "code": shaped, "geometry": lonlat(old.buffer(5, join_style="mitre"))},
           {"op": "reshape", "code": shaped, "geometry": lonlat(old.buffer(-5, join_style="mitre"))}]
    checked, seen = edits._checked, []

    def checking(conn, place, change):  # the change as its ring is found (before its vertices are matched)
        seen.append(dataclasses.replace(change))
        return checked(conn, place, change)

    for op in ops:
        request = edits.parse(op, place.scheme)
        with monkeypatch.context() as m:  # the ring must come from what the edit loaded
            m.setattr(edits, "_near", lambda *a, name=op['op'], **k: pytest.fail(f"{name} read its ring again"))
            m.setattr(edits, "_checked", checking)
            change = edits._COMPUTE[request.op](bj, place, request)
        assert change.around is not None
        exact = edits._ring(bj, place, dataclasses.replace(seen[-1], around=None))
        assert sorted(change.ring) == sorted(exact) and len(exact) >= 3, op["op"]


def test_grids_of_a_draft_not_yet_grouped_are_edited_too(bj, draft):
    bj.execute(sa.text("UPDATE unit_grids SET supervision_code = NULL WHERE district_code = :d AND version_id = :v"),
               {"d": D, "v": draft})
    code, line = splittable(bj, draft)
    answer = edits.apply(bj, D, draft, {"op": "split", "code": code, "line": lonlat(line)}, 0, "test-planner")
    assert answer["revision"] == 1 and len(answer["edit"]["added"]) == 1 and answer["edit"]["supervision"] == []


# ------------------------------------------------------------------------------------------ rejections
def rejected(answer, reason: str) -> dict:
    assert answer.status_code == 422, answer.get_json()
    body = answer.get_json()
    assert body["error"] == "rejected" and body["reason"] == reason and body["message"], body
    return body


def test_every_rejection_answers_422_with_reason_and_geometry_and_changes_nothing(planner, bj, draft):
    code, _ = splittable(bj, draft)
    poly = geom_of(bj, draft, code)
    before = wkb_of(bj, draft, code)
    minx, miny, maxx, maxy = poly.bounds
    away = shapely.LineString([(maxx + 200, miny), (maxx + 200, maxy)])
    body = rejected(edit(planner, draft, {"op": "split", "code": code, "line": lonlat(away)}, 0), "not_crossing")
    assert body["geometry"]["type"] == "LineString"
    corner = shapely.LineString([(minx - 1, maxy - 30), (minx + 30, maxy + 1)])
    if len(shapely.get_parts(shapely.ops.split(poly, corner))) >= 2:
        rejected(edit(planner, draft, {"op": "split", "code": code, "line": lonlat(corner)}, 0), "too_small")
    far = interior_grids(bj, draft)[-1][0]
    body = rejected(edit(planner, draft, {"op": "merge", "codes": [code, far]}, 0), "not_adjacent")
    assert body["geometry"]["type"] in ("Polygon", "MultiPolygon")
    outside = shapely.box(minx + 80_000, miny, maxx + 80_000, maxy)
    rejected(edit(planner, draft, {"op": "reshape", "code": code, "geometry": lonlat(outside)}, 0), "outside")
    far_supervision = bj.execute(sa.text(
        """SELECT s.code FROM supervision_grids s, unit_grids u WHERE s.district_code = :d AND s.version_id = :v
              AND u.district_code = :d AND u.version_id = :v AND u.code = :c AND NOT ST_DWithin(s.geom, u.geom, 500)
            ORDER BY s.code LIMIT 1"""), {"d": D, "v": draft, "c": code}).scalar_one()
    rejected(edit(planner, draft, {"op": "reassign", "codes": [code], "supervision_code": far_supervision}, 0),
             "not_contiguous")
    assert wkb_of(bj, draft, code) == before and revision(bj, draft) == 0
    assert edits.log(bj, D, draft)["edits"] == []


def test_bad_requests_are_400_naming_the_field(planner, draft, bj):
    code, line = splittable(bj, draft)
    good_line = lonlat(line)
    cases = [
        ({"op": "explode", "code": code}, "op"),
        ({"op": "split", "code": code}, "line"),
        ({"op": "split", "code": code, "line": good_line, "colour": "red"}, "colour"),
        ({"op": "split", "code": "x' OR 1=1", "line": good_line}, "code"),
        ({"op": "split", "code": code, "line": {"type": "Polygon", "coordinates": []}}, "line"),
        ({"op": "split", "code": code, "line": {"type": "LineString", "coordinates": [[116.4, 39.9]]}}, "line"),
        ({"op": "split", "code": code, "line": {"type": "LineString", "coordinates": [[200, 39.9], [116, 39]]}},
         "line"),
        ({"op": "merge", "codes": [code]}, "codes"),
        ({"op": "merge", "codes": [code, code]}, "codes"),
        ({"op": "move-vertex", "from": [116.4, 39.9], "to": [116.4, 39.9]}, "to"),
        ({"op": "move-vertex", "from": [116.4, True], "to": [116.4, 39.9]}, "from"),
    ]
    for body, field in cases:
        assert_error(edit(planner, draft, body, 0), 400, "invalid_input", field=field)
    assert_error(planner.post(f"/api/v1/grids/versions/{draft}/edits?district={D}",
                              json={"op": "merge", "codes": [code, code]}), 400, "invalid_input",
                 field="expected_revision")
    assert_error(edit(planner, draft, {"op": "merge", "codes": [code, "110105001001999"]}, 0), 404, "not_found")


def test_a_stale_revision_is_409_with_the_edits_since(planner, bj, draft):
    code, line = splittable(bj, draft)
    assert edit(planner, draft, {"op": "split", "code": code, "line": lonlat(line)}, 0).status_code == 200
    stale = edit(planner, draft, {"op": "split", "code": code, "line": lonlat(line)}, 0)
    assert stale.status_code == 409
    body = stale.get_json()
    assert body["error"] == "conflict" and body["revision"] == 1
    assert [(e["seq"], e["op"], e["changed"]) for e in body["edits_since"]] == [(1, "split", [code])]


def test_a_published_version_is_not_edited(planner, bj):
    assert_error(edit(planner, published(bj), {"op": "merge", "codes": ["110105001001001", "110105001001002"]}, 0),
                 409, "conflict", reason="only a draft")


def test_a_planner_of_another_district_and_an_analyst_may_not_edit(client_as, bj, draft):
    outsider = client_as("edit-outsider", ["planner"])
    bj.execute(sa.text("UPDATE users SET district_code = '410104' WHERE username = 'edit-outsider'"))
    assert_error(edit(outsider, draft, {"op": "merge", "codes": ["110105001001001", "110105001001002"]}, 0), 403,
                 "forbidden", reason="410104")
    assert_error(outsider.post("/api/v1/grids/versions", json={"district": D}), 403, "forbidden")
    assert_error(outsider.get(f"/api/v1/grids?district={D}&version={draft}"), 403, "forbidden")
    analyst = client_as("edit-analyst2", ["analyst"])
    assert_error(edit(analyst, draft, {"op": "merge", "codes": ["110105001001001", "110105001001002"]}, 0), 403,
                 "forbidden")
    assert_error(analyst.post(f"/api/v1/grids/versions/{draft}/undo?district={D}", json={"expected_revision": 0}),
                 403, "forbidden")
    assert_error(analyst.get(f"/api/v1/grids/versions/{draft}/edits?district={D}"), 403, "forbidden")


# ------------------------------------------------------------------------------------------ undo and the log
def test_undo_restores_the_exact_geometry_and_codes_are_never_reused(planner, bj, draft):
    code, line = splittable(bj, draft)
    original = wkb_of(bj, draft, code)
    first = edit(planner, draft, {"op": "split", "code": code, "line": lonlat(line)}, 0).get_json()["edit"]["added"]
    undone = planner.post(f"/api/v1/grids/versions/{draft}/undo?district={D}", json={"expected_revision": 1})
    assert undone.status_code == 200, undone.get_json()
    body = undone.get_json()
    assert body["revision"] == 2 and body["edit"]["op"] == "undo" and body["edit"]["undoes"] == 1
    assert body["edit"]["removed"] == first and body["edit"]["changed"] == [code]
    assert wkb_of(bj, draft, code) == original and geom_of(bj, draft, first[0]) is None
    assert shapely.equals_exact(geom_of(bj, draft, code), shapely.from_wkb(original), 0)
    second = edit(planner, draft, {"op": "split", "code": code, "line": lonlat(line)}, 2).get_json()["edit"]["added"]
    assert second != first and parse_code(second[0])[1] > parse_code(first[0])[1]
    assert bj.execute(sa.text("SELECT retired_version FROM grid_codes WHERE district_code = :d AND code = :c"),
                      {"d": D, "c": first[0]}).scalar_one() == draft
    log = planner.get(f"/api/v1/grids/versions/{draft}/edits?district={D}").get_json()
    assert [(e["seq"], e["op"], e["undone_by"]) for e in log["edits"]] == [(1, "split", 2), (2, "undo", None),
                                                                          (3, "split", None)]
    assert log["revision"] == 3 and log["edits"][0]["params"]["code"] == code


def test_edits_before_a_draft_is_grouped_again_cannot_be_undone(planner, bj, draft):
    """Grouping a draft again (``service.partition``) replaces its supervision grids: an edit made before that
    names the old ones, so its undo answers 409 and changes nothing; an edit made after it is undone as ever."""
    from citygrid.gridding import service

    code, line = splittable(bj, draft)
    assert edit(planner, draft, {"op": "split", "code": code, "line": lonlat(line)}, 0).status_code == 200
    service.partition(bj, D, 237, 35, version_id=draft)
    params = bj.execute(sa.text("SELECT params FROM grid_versions WHERE district_code = :d AND version_id = :v"),
                        {"d": D, "v": draft}).scalar_one()
    assert params["partition"]["revision"] == 1
    before = wkb_of(bj, draft, code)
    refused = planner.post(f"/api/v1/grids/versions/{draft}/undo?district={D}", json={"expected_revision": 1})
    assert_error(refused, 409, "conflict", reason="grouped again")
    assert wkb_of(bj, draft, code) == before and revision(bj, draft) == 1
    other, other_line = splittable(bj, draft)
    assert edit(planner, draft, {"op": "split", "code": other, "line": lonlat(other_line)}, 1).status_code == 200
    undone = planner.post(f"/api/v1/grids/versions/{draft}/undo?district={D}", json={"expected_revision": 2})
    assert undone.status_code == 200 and undone.get_json()["edit"]["undoes"] == 2


def test_repeated_undo_walks_back_a_merge_and_a_split(planner, bj, draft):
    code, _ = splittable(bj, draft)
    other = neighbour(bj, draft, code)
    originals = {c: wkb_of(bj, draft, c) for c in (code, other)}
    assert edit(planner, draft, {"op": "merge", "codes": [code, other]}, 0).status_code == 200
    keeper = max(originals, key=lambda c: shapely.from_wkb(originals[c]).area)
    merged = geom_of(bj, draft, keeper)
    split_line = shapely.LineString([(merged.bounds[0] - 5, merged.centroid.y), (merged.bounds[2] + 5,
                                                                                  merged.centroid.y)])
    edit(planner, draft, {"op": "split", "code": keeper, "line": lonlat(split_line)}, 1)
    for expected in (2, 3):
        assert planner.post(f"/api/v1/grids/versions/{draft}/undo?district={D}",
                            json={"expected_revision": expected}).status_code == 200
    assert {c: wkb_of(bj, draft, c) for c in originals} == originals
    retired = bj.execute(sa.text("SELECT retired_version FROM grid_codes WHERE district_code = :d AND code = ANY(:c)"),
                         {"d": D, "c": list(originals)}).scalars().all()
    assert retired == [None, None]
    nothing = planner.post(f"/api/v1/grids/versions/{draft}/undo?district={D}", json={"expected_revision": 4})
    assert_error(nothing, 409, "conflict", reason="no edit to undo")


# ------------------------------------------------------------------------------------------ what a draft must not touch
def test_editing_a_draft_leaves_the_published_geocoding_and_tiles_alone(planner, client, bj, draft):
    index = GridIndex.for_district(bj, D)
    assert index.version == published(bj)
    code, line = splittable(bj, draft)
    point = geom_of(bj, draft, code).representative_point()
    lon, lat = crs.to_lonlat(np.array([point], dtype=object), SRID)[0].coords[0]
    tile = "/api/v1/tiles/unit_grids/14/{}/{}.mvt"
    n = 1 << 14
    x = int((lon + 180) / 360 * n)
    y = int((1 - np.arcsinh(np.tan(np.radians(lat))) / np.pi) / 2 * n)
    before = client.get(tile.format(x, y)).get_data()
    assert edit(planner, draft, {"op": "split", "code": code, "line": lonlat(line)}, 0).status_code == 200
    after = GridIndex.for_district(bj, D)
    assert after.version == index.version and after.digest == index.digest
    hit = int(after.assign(np.array([point.x]), np.array([point.y]))[0])
    assert after.codes[hit] == code
    assert client.get(tile.format(x, y)).get_data() == before


# ------------------------------------------------------------------------------------------ two planners, the CLI
@pytest.fixture
def committed_draft(beijing_engine):
    """A draft committed to the Beijing test database (for two connections and the CLI), dropped afterwards with
    the codes it registered."""
    with beijing_engine.begin() as conn:
        version = drafts.create(conn, D, author="test-committed")["version"]
    try:
        yield version
    finally:
        with beijing_engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM grid_codes WHERE district_code = :d AND first_version = :v"),
                         {"d": D, "v": version})
            conn.execute(sa.text("UPDATE grid_codes SET retired_version = NULL WHERE district_code = :d "
                                 "AND retired_version = :v"), {"d": D, "v": version})
            conn.execute(sa.text("DELETE FROM grid_versions WHERE district_code = :d AND version_id = :v"),
                         {"d": D, "v": version})


def test_two_planners_editing_one_draft_at_the_same_revision_get_exactly_one_409(beijing_engine, committed_draft):
    with beijing_engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT s.code, t.code FROM supervision_grids s JOIN supervision_teams t "
                                    "ON t.district_code = s.district_code AND t.version_id = s.version_id "
                                    "AND t.code <> s.team_code WHERE s.district_code = :d AND s.version_id = :v "
                                    "ORDER BY s.code, t.code LIMIT 400"), {"d": D, "v": committed_draft}).all()
    ops = [{"op": "set-team", "supervision_code": rows[0][0], "team_code": rows[0][1]},
           {"op": "set-team", "supervision_code": rows[-1][0], "team_code": rows[-1][1]}]
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def planner(op: dict) -> None:
        start.wait()
        try:
            with beijing_engine.begin() as conn:
                edits.apply(conn, D, committed_draft, op, 0, "two-planners")
            outcomes.append("ok")
        except Conflict as exc:
            outcomes.append(f"409 at {exc.extra['revision']}")

    threads = [threading.Thread(target=planner, args=(op,)) for op in ops]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["409 at 1", "ok"]


def run(*args: str, code: int = 0):
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, result.output + result.stderr
    return result


def test_the_cli_edits_logs_and_undoes(beijing_db, bj, committed_draft):
    db = ("--database", beijing_db.database)
    where = ("--district", D, "--version", str(committed_draft))
    code, line = splittable(bj, committed_draft)
    split = json.loads(run(*db, "grids", "edit", "split", *where, "--code", code, "--line",
                           json.dumps(lonlat(line))).output)
    assert split["revision"] == 1 and len(split["edit"]["added"]) == 1
    stale = run(*db, "grids", "edit", "merge", *where, "--codes", f"{code},{split['edit']['added'][0]}",
                "--expected-revision", "0", code=4)
    assert "revision 1, not 0" in stale.stderr
    far = interior_grids(bj, committed_draft)[-1][0]
    refused = run(*db, "grids", "edit", "merge", *where, "--codes", f"{code},{far}", "--json", code=8)
    assert "not_adjacent" in refused.stderr and json.loads(refused.stdout)["geometry"]["type"]
    run(*db, "grids", "edit", "merge", *where, "--codes", code, "--line", "{}", code=2)
    log = json.loads(run(*db, "grids", "edits", *where, "--json").output)
    assert [e["op"] for e in log["edits"]] == ["split"] and log["edits"][0]["author"].startswith("cli:")
    assert "split" in run(*db, "grids", "edits", *where).output
    undone = json.loads(run(*db, "grids", "undo", *where).output)
    assert undone["edit"]["removed"] == split["edit"]["added"] and undone["revision"] == 2
    made = json.loads(run(*db, "grids", "draft", "--district", D).output)
    assert made["status"] == "draft" and made["base_version"] == published(bj)
    run(*db, "grids", "edit", "split", "--district", D, "--version", str(published(bj)), "--code", code,
        "--line", json.dumps(lonlat(line)), code=4)
    _drop(beijing_db, made["version"])


def _drop(settings, version: int) -> None:
    from tests.conftest import engine_on

    with engine_on(settings) as engine, engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM grid_versions WHERE district_code = :d AND version_id = :v"),
                     {"d": D, "v": version})
