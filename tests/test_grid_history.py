"""As-of history and version diffs (#23 part E3): a report placed before and after a published change keeps its
own grid, and ``GET /api/v1/grids/at?date=`` answers the grid and owners valid at each report's time; a day
before the first version is a 404 naming the first; ``diff`` lists added, removed, changed and reassigned grids
with area deltas (GeoJSON, EPSG:4326), over HTTP and the CLI; hostile parameters are refused."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import shapely
import sqlalchemy as sa
from click.testing import CliRunner

from citygrid.cli import cli
from citygrid.errors import NotFound
from citygrid.gridding import drafts, history, service
from citygrid.spatial import crs
from tests.conftest import assert_error, submitted_case

DISTRICT = "110105"


def neighbours(bj, version: int, same_supervision: bool = True) -> tuple[str, str]:
    """Two unit grids of ``version`` sharing more than 100 m of edge (in one supervision grid, or in two)."""
    return tuple(bj.execute(sa.text(
        f"""SELECT a.code, b.code FROM unit_grids a JOIN unit_grids b ON b.district_code = a.district_code
               AND b.version_id = a.version_id AND b.code > a.code AND a.geom && b.geom
               AND a.supervision_code {'=' if same_supervision else '<>'} b.supervision_code
             WHERE a.district_code = :d AND a.version_id = :v
               AND ST_Length(ST_Intersection(ST_Boundary(a.geom), ST_Boundary(b.geom))) > 100
             ORDER BY a.code LIMIT 1"""), {"d": DISTRICT, "v": version}).one())


def merged_draft(bj) -> tuple[int, str, str, int]:
    """A draft of the published version in which grid ``b`` is merged into its neighbour ``a`` (same
    supervision grid), written directly (the edit operations are part E1's and tested there).

    Returns ``(draft version, a, b, base version)``: version numbers are not consecutive (a dropped draft's
    number is never given again), so the base is returned rather than taken as ``version - 1``."""
    made = drafts.create(bj, DISTRICT, author="test")
    version = made["version"]
    a, b = neighbours(bj, version)
    bj.execute(sa.text(
        """UPDATE unit_grids a SET geom = ST_Union(a.geom, b.geom), area_m2 = ST_Area(ST_Union(a.geom, b.geom))
             FROM unit_grids b WHERE a.district_code = :d AND a.version_id = :v AND a.code = :a
              AND b.district_code = :d AND b.version_id = :v AND b.code = :b"""),
        {"d": DISTRICT, "v": version, "a": a, "b": b})
    bj.execute(sa.text("DELETE FROM unit_grids WHERE district_code = :d AND version_id = :v AND code = :b"),
               {"d": DISTRICT, "v": version, "b": b})
    return version, a, b, made["base_version"]


def inside(bj, version: int, code: str) -> tuple[float, float]:
    """A point inside grid ``code`` of ``version`` (lon, lat in EPSG:4326)."""
    wkb = bj.execute(sa.text("SELECT ST_AsBinary(ST_PointOnSurface(geom)) FROM unit_grids WHERE district_code = :d "
                             "AND version_id = :v AND code = :c"), {"d": DISTRICT, "v": version, "c": code}).scalar()
    point = crs.to_lonlat([shapely.from_wkb(bytes(wkb))], 4548)[0]
    return point.x, point.y


def backdate_first_version(bj, day: str = "2025-01-01") -> None:
    bj.execute(sa.text("UPDATE grid_versions SET effective_from = CAST(:t AS timestamptz) WHERE district_code = :d "
                       "AND status = 'published'"), {"t": f"{day}T00:00:00+08:00", "d": DISTRICT})


def own(bj, code: str, party: str, since: str, until: str | None = None) -> None:
    """Party ``party`` (made here) owns unit grid ``code`` in the management role from ``since`` to ``until``."""
    party_id = bj.execute(sa.text(
        """INSERT INTO parties (district_code, kind, code, name) VALUES (:d, 'unit', :p, :p)
           ON CONFLICT (district_code, kind, code) DO UPDATE SET name = EXCLUDED.name RETURNING party_id"""),
        {"d": DISTRICT, "p": party}).scalar_one()
    bj.execute(sa.text("DELETE FROM grid_ownership WHERE district_code = :d AND grid_code = :c "
                       "AND role = 'management'"), {"d": DISTRICT, "c": code})
    bj.execute(sa.text(
        """INSERT INTO grid_ownership (district_code, grid_kind, grid_code, role, party_id, valid)
           VALUES (:d, 'unit', :c, 'management', :p, tstzrange(CAST(:s AS timestamptz), CAST(:u AS timestamptz)))"""),
        {"d": DISTRICT, "c": code, "p": party_id, "s": since, "u": until})


def test_a_report_keeps_its_grid_and_each_gets_the_grid_and_owners_of_its_own_time(bj, case_rules, client):
    backdate_first_version(bj)
    version, a, b, base = merged_draft(bj)
    lon, lat = inside(bj, base, b)
    own(bj, b, "OLD-B", "2025-01-01T00:00:00+08:00")
    before = submitted_case(bj, case_rules, lon=lon, lat=lat, description="before the change")
    assert before["unit_grid_code"] == b
    bj.execute(sa.text("UPDATE cases SET reported_at = '2026-03-01T10:00:00+08:00' WHERE case_id = :c"),
               {"c": before["case_id"]})
    service.publish(bj, DISTRICT, version, dt.date(2026, 6, 1), author="test")
    own(bj, a, "NEW-A", "2026-06-01T00:00:00+08:00")
    after = submitted_case(bj, case_rules, lon=lon, lat=lat, class_code="0101", description="after the change")
    assert after["unit_grid_code"] == a
    kept = bj.execute(sa.text("SELECT unit_grid_code FROM cases WHERE case_id = :c"), {"c": before["case_id"]})
    assert kept.scalar_one() == b  # past cases keep the grid they were placed in

    then = client.get(f"/api/v1/grids/at?lon={lon}&lat={lat}&date=2026-03-01").get_json()
    assert then["code"] == b and then["version"]["version"] == base
    assert then["version"]["effective_to"].startswith("2026-06-01T00:00:00")
    assert then["owners"]["management"]["party"]["code"] == "OLD-B"
    assert then["supervision_grid"] and then["team"]["code"]
    now = client.get(f"/api/v1/grids/at?lon={lon}&lat={lat}&date={dt.date.today().isoformat()}").get_json()
    assert now["code"] == a and now["version"]["version"] == version
    assert now["owners"]["management"]["party"]["code"] == "NEW-A"
    # The day of the change itself: the version that began that day.
    assert client.get(f"/api/v1/grids/at?lon={lon}&lat={lat}&date=2026-06-01").get_json()["code"] == a
    # Without a date: today's grid, as before (the card).
    assert client.get(f"/api/v1/grids/at?lon={lon}&lat={lat}").get_json()["code"] == a


def test_a_day_before_the_first_version_is_a_404_naming_the_first_day(bj, client):
    backdate_first_version(bj, "2025-01-01")
    body = assert_error(client.get("/api/v1/grids/at?lon=116.48&lat=39.93&date=2024-12-31"), 404, "not_found")
    assert "2025-01-01" in body["message"]
    with pytest.raises(NotFound, match="2025-01-01"):
        history.grid_at(bj, 116.48, 39.93, dt.date(2000, 1, 1))
    assert client.get("/api/v1/grids/at?lon=116.48&lat=39.93&date=2025-01-01").get_json()["code"]


def test_a_point_in_no_district_is_an_answer_not_an_error(client):
    body = client.get("/api/v1/grids/at?lon=2.35&lat=48.85&date=2026-01-01").get_json()
    assert body["code"] is None and body["district"] is None and "no district" in body["message"]


@pytest.mark.parametrize("query, field", [
    ("lon=116.48&lat=39.93&date=2026-13-01", "date"), ("lon=116.48&lat=39.93&date=yesterday", "date"),
    ("lon=116.48&lat=39.93&date=2026-01-01T00:00", "date"), ("lon=116.48&lat=39.93&date=" + "9" * 5000, "date"),
    ("lon=116.48&lat=39.93&date=0001-01-01", "date"), ("lon=116.48&lat=39.93&date=2026-01-01%00", None),
    ("lon=NaN&lat=39.93&date=2026-01-01", "lon"), ("lon=116.48&lat=Infinity&date=2026-01-01", "lat"),
    ("lat=39.93&date=2026-01-01", "lon")])
def test_grid_at_date_refuses_what_is_not_a_day_or_a_point(client, query, field):
    assert_error(client.get(f"/api/v1/grids/at?{query}"), 400, "invalid_input", field=field)


def test_diff_lists_added_removed_changed_and_reassigned_grids_with_area_deltas(bj, client):
    version, a, b, base = merged_draft(bj)
    c, d = neighbours(bj, version, same_supervision=False)
    sup_d = bj.execute(sa.text("SELECT supervision_code FROM unit_grids WHERE version_id = :v AND code = :d"),
                       {"v": version, "d": d}).scalar_one()
    bj.execute(sa.text("UPDATE unit_grids SET supervision_code = :s WHERE version_id = :v AND code = :c"),
               {"s": sup_d, "v": version, "c": c})
    found = history.diff(bj, DISTRICT, base, version)
    by_code = {f["properties"]["code"]: f["properties"] for f in found["features"]["features"]}
    assert by_code[a]["change"] == "changed" and by_code[b]["change"] == "removed"
    assert by_code[c]["change"] == "reassigned" and by_code[c]["supervision_after"] == sup_d
    assert by_code[a]["area_delta_m2"] == pytest.approx(by_code[b]["area_before_m2"], abs=0.2)
    assert by_code[b]["area_after_m2"] is None and by_code[b]["area_delta_m2"] < 0
    assert found["counts"] == {"added": 0, "removed": 1, "changed": 1, "reassigned": 1}
    assert all(-180 <= f["geometry"]["coordinates"][0][0][0] <= 180 for f in found["features"]["features"])
    backwards = history.diff(bj, DISTRICT, version, base)
    assert backwards["counts"] == {"added": 1, "removed": 0, "changed": 1, "reassigned": 1}
    http = client.get(f"/api/v1/grids/versions/{base}/diff/{version}?district={DISTRICT}").get_json()
    assert http["counts"] == found["counts"] and http["features"]["type"] == "FeatureCollection"


def test_diff_of_a_draft_is_for_planners_and_admins_of_the_district(bj, account):
    version, _, _, base = merged_draft(bj)
    url = f"/api/v1/grids/versions/{base}/diff/{version}?district={DISTRICT}"
    assert account("planner1", ["planner"]).get(url).status_code == 200
    assert_error(account("sup1", ["supervisor"], team="110105T01").get(url), 403, "forbidden")
    same = f"/api/v1/grids/versions/{base}/diff/{base}?district={DISTRICT}"
    assert account("sup2", ["supervisor"], team="110105T01").get(same).get_json()["counts"]["changed"] == 0
    outsider = account("planner2", ["planner"])
    bj.execute(sa.text("UPDATE users SET district_code = '110106' WHERE username = 'planner2'"))
    assert_error(outsider.get(same), 403, "forbidden", reason="110106")
    assert_error(account("admin1", ["admin"]).get(f"/api/v1/grids/versions/{version}/diff/99999?district={DISTRICT}"),
                 404, "not_found")
    assert_error(account("admin2", ["admin"]).get(f"/api/v1/grids/versions/0/diff/1?district={DISTRICT}"), 400,
                 "invalid_input", field="a")
    assert_error(account("admin3", ["admin"]).get("/api/v1/grids/versions/1/diff/1"), 400, "invalid_input",
                 field="district")
    assert_error(account("admin4", ["admin"]).get("/api/v1/grids/versions/1/diff/1?district=11010%01"), 400,
                 "invalid_input")


def test_diff_cli_prints_the_changes_and_refuses_an_unknown_version(beijing_db):
    base = ["--database", beijing_db.database, "grids", "diff", "--district", DISTRICT]
    same = CliRunner().invoke(cli, [*base, "1", "1"])
    assert same.exit_code == 0, same.output + same.stderr
    assert "0 added, 0 removed, 0 changed, 0 reassigned" in same.output
    as_json = CliRunner().invoke(cli, [*base, "1", "1", "--json"])
    assert json.loads(as_json.output)["features"]["features"] == []
    missing = CliRunner().invoke(cli, [*base, "1", "4242"])
    assert missing.exit_code == 3 and "4242" in missing.stderr
    assert CliRunner().invoke(cli, [*base, "0", "1"]).exit_code == 2
