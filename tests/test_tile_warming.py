"""Publishing warms the grid tiles (#23 part E3): the plan counts the tiles meeting the district per zoom and
bounds them; warmed tiles land in ``tile_store`` under the layer's revision and every process reads them on a
memory miss (the same bytes ``make_tile`` makes); a change of revision leaves them unread; the background warm
commits on its own connections without holding up its caller; ``POST …/publish`` answers at once with what it
will warm, refuses what it must (roles, district, dates, replays) and keeps past cases in their grids."""

from __future__ import annotations

import datetime as dt
import time
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from citygrid.gridding import drafts
from citygrid.spatial import tiles, tilewarm
from citygrid.spatial.db import deployment_srid
from tests.conftest import assert_error, submitted_case
from tests.test_grid_history import DISTRICT, inside, merged_draft

# Publish dates after the test database's version (published when it was built) and at most a year ahead
SOON = (dt.date.today() + dt.timedelta(days=30)).isoformat()
LATER = (dt.date.today() + dt.timedelta(days=60)).isoformat()


def savepoints(conn):
    """A ``connect`` for ``tilewarm.warm`` whose transactions are savepoints of the test's connection."""

    @contextmanager
    def connect():
        with conn.begin_nested():
            yield conn
    return connect


def test_the_plan_counts_the_tiles_meeting_the_district_and_leaves_out_the_deepest_zooms_over_the_bound(bj):
    full = tilewarm.plan(bj, DISTRICT)
    counts = full.summary()["per_zoom"]
    assert list(counts) == ["10", "11", "12", "13", "14", "15"] and full.left_out == {}
    assert all(counts[str(z)] <= counts[str(z + 1)] for z in range(10, 15))
    assert 500 < counts["15"] < 1000  # Chaoyang: about 470 km², tiles of about 0.9 × 1.2 km at z15
    x, y = next(iter(full.tiles[15]))
    west, south, _, _ = tiles.tile_lonlat_bounds(15, x, y)
    assert 116.2 < west < 116.8 and 39.7 < south < 40.2
    small = tilewarm.plan(bj, DISTRICT, max_tiles=100)
    assert sorted(small.tiles) == [10, 11, 12, 13] and set(small.left_out) == {14, 15}
    assert small.left_out[15] == counts["15"] and small.count() <= 100


def test_warmed_tiles_are_stored_under_the_revision_and_read_by_a_process_whose_memory_is_cold(bj):
    plan = tilewarm.plan(bj, DISTRICT, zooms=(12, 13))
    report = tilewarm.warm(savepoints(bj), plan, database="t")
    assert report["unit_grids"]["stored"] > 0 and report["supervision_grids"]["stored"] > 0
    assert report["unit_grids"]["stored"] + report["unit_grids"]["empty"] == plan.count()
    rev = tiles.revision(bj, tiles.layer("unit_grids"))
    z, (x, y) = 13, plan.tiles[13][len(plan.tiles[13]) // 2]
    stored = tiles.stored_tile(bj, "unit_grids", rev, z, x, y)
    made = tiles.make_tile(bj, tiles.layer("unit_grids"), z, x, y, deployment_srid(bj), {})
    assert stored == made and made
    other_process = tiles.TileCache()  # another worker: nothing in memory
    data, _, hit = tiles.cached_tile(bj, "t", "unit_grids", z, x, y, deployment_srid(bj), {}, cache=other_process)
    assert hit and data == made
    # A change of the layer (here: ownership) is a new revision: the stored tile is no longer read.
    bj.execute(sa.text("UPDATE layer_revisions SET revision = revision + 1 WHERE layer = 'ownership'"))
    bj.execute(sa.text("INSERT INTO layer_revisions (district_code, layer) SELECT :d, 'ownership' "
                       "WHERE NOT EXISTS (SELECT 1 FROM layer_revisions WHERE layer = 'ownership')"), {"d": DISTRICT})
    _, _, hit = tiles.cached_tile(bj, "t", "unit_grids", z, x, y, deployment_srid(bj), {}, cache=tiles.TileCache())
    assert not hit
    # The next warm of the layer drops the tiles no key names any more.
    tilewarm.warm(savepoints(bj), tilewarm.plan(bj, DISTRICT, zooms=(10,)), database="t")
    left = bj.execute(sa.text("SELECT count(DISTINCT revision) FROM tile_store WHERE layer = 'unit_grids'"))
    assert left.scalar_one() == 1


def test_a_tile_with_a_reader_scope_or_filters_never_comes_from_the_store(bj):
    assert "cases" not in tiles.STORED_LAYERS and "components" not in tiles.STORED_LAYERS
    plan = tilewarm.plan(bj, DISTRICT, zooms=(10,))
    assert plan.layers == ("unit_grids", "supervision_grids")


def test_the_background_warm_commits_on_its_own_connections_and_does_not_hold_up_its_caller(beijing_engine):
    with beijing_engine.connect() as conn:
        plan = tilewarm.plan(conn, DISTRICT, zooms=(10, 11, 12, 13))
        rev = tiles.revision(conn, tiles.layer("supervision_grids"))
    try:
        t0 = time.perf_counter()
        thread = tilewarm.start_in_background(beijing_engine, plan, database="bg")
        returned = time.perf_counter() - t0
        report = tilewarm.wait(DISTRICT, timeout=120)
        assert not thread.is_alive() and "error" not in report, report
        assert returned < report["unit_grids"]["seconds"] + report["supervision_grids"]["seconds"]
        with beijing_engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT count(*) FROM tile_store WHERE layer = 'supervision_grids' "
                                          "AND revision = :r"), {"r": rev}).scalar_one()
        assert stored == report["supervision_grids"]["stored"] > 0
    finally:
        with beijing_engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM tile_store"))


def test_publish_over_http_answers_at_once_with_what_it_will_warm_and_keeps_past_cases_in_their_grids(
        bj, case_rules, account):
    version, _, b, base = merged_draft(bj)
    lon, lat = inside(bj, base, b)
    before = submitted_case(bj, case_rules, lon=lon, lat=lat)
    planner = account("planner-p", ["planner"])
    url = f"/api/v1/grids/versions/{version}/publish?district={DISTRICT}"
    answer = planner.post(url, json={"effective_from": SOON})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["status"] == "published" and body["version"] == version
    warming = body["tile_warming"]
    assert warming["zooms"] == [10, 11, 12, 13, 14, 15] and warming["tiles_per_layer"] > 500
    assert warming["layers"] == ["unit_grids", "supervision_grids"]
    assert warming["started"] is False and "engine" in warming["reason"]  # the tests' app has no engine
    kept = bj.execute(sa.text("SELECT unit_grid_code FROM cases WHERE case_id = :c"), {"c": before["case_id"]})
    assert kept.scalar_one() == b
    assert_error(planner.post(url, json={"effective_from": LATER}), 409, "conflict")  # a replay


@pytest.mark.parametrize("body, field", [
    ({}, "effective_from"), ({"effective_from": None}, "effective_from"), ({"effective_from": 20260101}, None),
    ({"effective_from": "2026-02-30"}, "effective_from"), ({"effective_from": "tomorrow"}, "effective_from"),
    ({"effective_from": "2026-01-01T25:00"}, "effective_from"), ({"effective_from": "9" * 100}, "effective_from"),
    ({"effective_from": "NaN"}, "effective_from"), ({"effective_from": "2026-01-01", "status": "x"}, "status"),
    ({"effective_from": "1999-01-01"}, "effective_from")])
def test_publish_refuses_what_is_not_a_date_after_the_current_version(bj, account, body, field):
    version = drafts.create(bj, DISTRICT, author="test")["version"]
    admin = account("admin-p", ["admin"])
    got = admin.post(f"/api/v1/grids/versions/{version}/publish?district={DISTRICT}", json=body)
    assert_error(got, 400, "invalid_input", field=field)


def test_publish_is_for_planners_and_admins_of_the_district_and_only_of_a_draft(bj, account):
    version = drafts.create(bj, DISTRICT, author="test")["version"]
    url = f"/api/v1/grids/versions/{version}/publish?district={DISTRICT}"
    body = {"effective_from": SOON}
    assert_error(account("sup-p", ["supervisor"], team="110105T01").post(url, json=body), 403, "forbidden")
    assert_error(account("gis-p", ["gis"]).post(url, json=body), 403, "forbidden")
    outsider = account("planner-x", ["planner"])
    bj.execute(sa.text("UPDATE users SET district_code = '110106' WHERE username = 'planner-x'"))
    assert_error(outsider.post(url, json=body), 403, "forbidden", reason="110106")
    admin = account("admin-q", ["admin"])
    assert_error(admin.post(f"/api/v1/grids/versions/1/publish?district={DISTRICT}", json=body), 409, "conflict")
    assert_error(admin.post(f"/api/v1/grids/versions/4242/publish?district={DISTRICT}", json=body), 404,
                 "not_found")
    assert_error(admin.post(url, data=f"effective_from={SOON}"), 400, "invalid_input")
    assert_error(admin.post(url, json=[SOON]), 400, "invalid_input", field="body")
    assert_error(admin.post(url, json={"effective_from": SOON + "\u0000"}), 400, "invalid_input")
