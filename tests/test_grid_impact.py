"""The impact preview of a draft (#23 part E3): against the current version, the components, open cases and
cases of the last 12 months whose point changes unit or supervision grid, the owners that change for land
passing between grids, new codes without owners, supervision grids and teams with their workload before and
after and the imbalance, area deltas; read only over the grids that differ. HTTP (planners, admins of the
district) and CLI; hostile input refused."""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from citygrid.cli import cli
from citygrid.errors import Conflict, NotFound
from citygrid.gridding import drafts, impact
from tests.conftest import assert_error, submitted_case
from tests.test_grid_history import DISTRICT, inside, merged_draft, neighbours, own


def add_component(bj, lon: float, lat: float, obj_id: str = "1101050101990001") -> None:
    bj.execute(sa.text(
        """INSERT INTO components (district_code, obj_id, scheme, class_code, obj_name, geom)
           VALUES (:d, :o, 'cjt214', '0101', '测试', ST_Transform(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 4548))"""
    ), {"d": DISTRICT, "o": obj_id, "lon": lon, "lat": lat})


def test_a_merge_moves_the_points_of_the_retired_grid_and_its_land_to_the_kept_grid(bj, case_rules):
    version, a, b, base = merged_draft(bj)
    lon, lat = inside(bj, base, b)
    add_component(bj, lon, lat)
    open_case = submitted_case(bj, case_rules, lon=lon, lat=lat)
    old_closed = submitted_case(bj, case_rules, lon=lon, lat=lat, class_code="0101")
    bj.execute(sa.text("UPDATE cases SET status = 'closed', reported_at = now() - interval '2 years' "
                       "WHERE case_id = :c"), {"c": old_closed["case_id"]})
    own(bj, b, "PARTY-B", "2020-01-01T00:00:00+08:00")
    own(bj, a, "PARTY-A", "2020-01-01T00:00:00+08:00")

    found = impact.of_draft(bj, DISTRICT, version)
    assert found["base_version"] == base and found["version"] == version
    grids = {g["code"]: g for g in found["grids"]}
    assert set(grids) == {a, b}
    assert grids[b]["change"] == "removed" and grids[a]["change"] == "changed"
    assert grids[a]["area_delta_m2"] == pytest.approx(-grids[b]["area_delta_m2"], abs=0.2)
    components = found["points"]["components"]
    assert components["count"] == 1 and components["items"][0]["unit_before"] == b
    assert components["items"][0]["unit_after"] == a
    open_ids = [c["case_id"] for c in found["points"]["open_cases"]["items"]]
    recent_ids = [c["case_id"] for c in found["points"]["recent_cases"]["items"]]
    assert open_case["case_id"] in open_ids and open_case["case_id"] in recent_ids
    assert old_closed["case_id"] not in open_ids + recent_ids  # closed and older than 12 months
    changes = [c for c in found["owners"]["changes"] if c["role"] == "management"]
    assert changes == [{"role": "management", "from_grid": b, "to_grid": a, "area_m2": changes[0]["area_m2"],
                        "owner_before": {"code": "PARTY-B", "name": "PARTY-B", "kind": "unit"},
                        "owner_after": {"code": "PARTY-A", "name": "PARTY-A", "kind": "unit"}}]
    assert changes[0]["area_m2"] == pytest.approx(grids[b]["area_before_m2"], rel=1e-3)
    assert found["owners"]["new_codes"] == [] and found["owners"]["note"] is None


def test_a_new_code_has_no_owners_until_assigned_and_the_answer_says_so(bj):
    version = drafts.create(bj, DISTRICT, author="test")["version"]
    code = bj.execute(sa.text("SELECT min(code) FROM unit_grids WHERE version_id = :v"), {"v": version}).scalar()
    new = code[:-3] + "999"
    bj.execute(sa.text("UPDATE unit_grids SET code = :n WHERE version_id = :v AND code = :c"),
               {"n": new, "v": version, "c": code})
    found = impact.of_draft(bj, DISTRICT, version)
    assert {g["code"]: g["change"] for g in found["grids"]} == {code: "removed", new: "added"}
    assert found["owners"]["new_codes"] == [new] and "no owners until" in found["owners"]["note"]
    assert found["owners"]["grids"][new] == {}


def test_a_reassignment_gives_both_supervision_grids_workload_before_and_after_and_the_imbalance(bj):
    version = drafts.create(bj, DISTRICT, author="test")["version"]
    c, d = neighbours(bj, version, same_supervision=False)
    sup_c, sup_d = (bj.execute(sa.text("SELECT supervision_code FROM unit_grids WHERE version_id = :v AND code = :c"),
                               {"v": version, "c": code}).scalar_one() for code in (c, d))
    bj.execute(sa.text("UPDATE unit_grids SET supervision_code = :s WHERE version_id = :v AND code = :c"),
               {"s": sup_d, "v": version, "c": c})
    found = impact.of_draft(bj, DISTRICT, version)
    assert [(g["code"], g["change"]) for g in found["grids"]] == [(c, "reassigned")]
    assert found["grids"][0]["area_delta_m2"] == 0
    sups = {s["code"]: s for s in found["supervision_grids"]}
    assert set(sups) == {sup_c, sup_d}
    assert sups[sup_c]["unit_grids_after"] == sups[sup_c]["unit_grids_before"] - 1
    assert sups[sup_d]["unit_grids_after"] == sups[sup_d]["unit_grids_before"] + 1
    assert sups[sup_c]["workload_after"] < sups[sup_c]["workload_before"]
    assert sups[sup_d]["workload_after"] > sups[sup_d]["workload_before"]
    moved = sups[sup_c]["workload_before"] - sups[sup_c]["workload_after"]
    assert sups[sup_d]["workload_after"] - sups[sup_d]["workload_before"] == pytest.approx(moved, abs=2e-3)
    assert found["imbalance"]["before"] is not None and found["imbalance"]["after"] is not None
    assert found["owners"]["changes"] == []  # owners go by unit grid: a reassignment changes none


def test_an_unchanged_draft_has_no_impact_and_is_read_fast(bj):
    version = drafts.create(bj, DISTRICT, author="test")["version"]
    t0 = time.perf_counter()
    found = impact.of_draft(bj, DISTRICT, version)
    elapsed = time.perf_counter() - t0
    assert found["grids"] == [] and found["supervision_grids"] == [] and found["points"]["components"]["count"] == 0
    assert elapsed < 5.0  # the whole district is never read (a full workload pass takes far longer)


def test_what_is_not_a_draft_of_the_district_is_refused(bj):
    with pytest.raises(Conflict, match="not a draft"):
        impact.of_draft(bj, DISTRICT, 1)
    with pytest.raises(NotFound):
        impact.of_draft(bj, DISTRICT, 4242)


def test_impact_over_http_is_for_planners_and_admins_of_the_district(bj, account):
    version, a, b, _ = merged_draft(bj)
    url = f"/api/v1/grids/versions/{version}/impact?district={DISTRICT}"
    body = account("planner-i", ["planner"]).get(url).get_json()
    assert {g["code"] for g in body["grids"]} == {a, b}
    assert_error(account("sup-i", ["supervisor"], team="110105T01").get(url), 403, "forbidden")
    assert_error(account("analyst-i", ["analyst"]).get(url), 403, "forbidden")
    outsider = account("planner-o", ["planner"])
    bj.execute(sa.text("UPDATE users SET district_code = '110106' WHERE username = 'planner-o'"))
    assert_error(outsider.get(url), 403, "forbidden", reason="110106")
    admin = account("admin-i", ["admin"])
    assert_error(admin.get(f"/api/v1/grids/versions/1/impact?district={DISTRICT}"), 409, "conflict")
    assert_error(admin.get(f"/api/v1/grids/versions/4242/impact?district={DISTRICT}"), 404, "not_found")
    assert_error(admin.get(f"/api/v1/grids/versions/{version}/impact"), 400, "invalid_input", field="district")
    assert_error(admin.get(f"/api/v1/grids/versions/0/impact?district={DISTRICT}"), 400, "invalid_input",
                 field="version")
    assert_error(admin.get(f"/api/v1/grids/versions/{version}/impact?district=%1b110105"), 400, "invalid_input")
    assert admin.get(f"/api/v1/grids/versions/99999999999999999999/impact?district={DISTRICT}").status_code in (
        400, 404)


def test_impact_cli_answers_json_and_exits_3_for_an_unknown_version(beijing_db, beijing_engine):
    base = ["--database", beijing_db.database, "grids", "impact", "--district", DISTRICT]
    with beijing_engine.begin() as conn:  # committed (the CLI runs its own transaction), removed below
        version = drafts.create(conn, DISTRICT, author="test")["version"]
    try:
        made = CliRunner().invoke(cli, [*base, "--version", str(version)])
        assert made.exit_code == 0, made.output + made.stderr
        assert json.loads(made.output)["grids"] == []
    finally:
        with beijing_engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM grid_versions WHERE district_code = :d AND version_id = :v"),
                         {"d": DISTRICT, "v": version})
    missing = CliRunner().invoke(cli, [*base, "--version", "4242"])
    assert missing.exit_code == 3 and "4242" in missing.stderr
    published = CliRunner().invoke(cli, [*base, "--version", "1"])
    assert published.exit_code == 4 and "not a draft" in published.stderr
    with pytest.raises(json.JSONDecodeError):
        json.loads(published.output or "x")
