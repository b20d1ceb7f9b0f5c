"""Drafts and their edit log at scale (#23, part E leftovers): the edit log read in pages (hostile paging
arguments refused), a stale edit's 409 naming only the newest edits since with their count, a limit on the open
drafts of a district (from configuration; the 409 names them), dropping a draft over HTTP and the CLI (codes it
issued stay registered and are never issued again, nor its version number), and the stored workload of the
supervision grids an edit touches measured again in the edit's transaction (and put back by undo)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
import sqlalchemy as sa

from citygrid.gridding import drafts, edits, impact
from citygrid.gridding import partition as part
from citygrid.gridding import store as grid_store
from tests.conftest import assert_error, signed_in, user_token
from tests.test_grid_edits import D, border_pairs, edit, lonlat, neighbour, published, run, splittable


@pytest.fixture
def draft(bj) -> int:
    return drafts.create(bj, D, author="test-planner")["version"]


@pytest.fixture
def planner(client_as):
    return client_as("drafts-planner", ["planner"])


def url(version: int, tail: str = "") -> str:
    return f"/api/v1/grids/versions/{version}{tail}?district={D}"


def set_team_pair(bj, version: int) -> tuple[str, str, str]:
    """(supervision grid, its team, another team) of a draft."""
    code, team = bj.execute(sa.text("SELECT code, team_code FROM supervision_grids WHERE district_code = :d "
                                    "AND version_id = :v ORDER BY code LIMIT 1"), {"d": D, "v": version}).one()
    other = bj.execute(sa.text("SELECT code FROM supervision_teams WHERE district_code = :d AND version_id = :v "
                               "AND code <> :t ORDER BY code LIMIT 1"), {"d": D, "v": version, "t": team}).scalar_one()
    return code, team, other


def conflict(response) -> dict:
    """A 409 with its extra members (``assert_error`` wants none): the body."""
    assert response.status_code == 409, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert body["error"] == "conflict" and body["message"], body
    return body


def toggle_teams(planner, bj, version: int, n: int) -> None:
    """``n`` set-team edits (cheap: no geometry), moving one supervision grid between two teams."""
    code, team, other = set_team_pair(bj, version)
    for i in range(n):
        answer = edit(planner, version, {"op": "set-team", "supervision_code": code,
                                         "team_code": other if i % 2 == 0 else team}, i)
        assert answer.status_code == 200, answer.get_json()


# ------------------------------------------------------------------------------------------ the edit log in pages
def test_the_edit_log_is_read_in_pages(planner, bj, draft):
    toggle_teams(planner, bj, draft, 23)
    first = planner.get(url(draft, "/edits") + "&limit=10").get_json()
    assert [e["seq"] for e in first["edits"]] == list(range(1, 11))
    assert (first["total"], first["next_after"], first["after"], first["limit"]) == (23, 10, 0, 10)
    middle = planner.get(url(draft, "/edits") + f"&after={first['next_after']}&limit=10").get_json()
    assert [e["seq"] for e in middle["edits"]] == list(range(11, 21)) and middle["next_after"] == 20
    last = planner.get(url(draft, "/edits") + "&after=20&limit=10").get_json()
    assert [e["seq"] for e in last["edits"]] == [21, 22, 23] and last["next_after"] is None
    whole = planner.get(url(draft, "/edits")).get_json()  # the default page holds them all
    assert len(whole["edits"]) == 23 and whole["limit"] == edits.LOG_PAGE and whole["next_after"] is None
    beyond = planner.get(url(draft, "/edits") + "&after=500").get_json()
    assert beyond["edits"] == [] and beyond["total"] == 23 and beyond["next_after"] is None
    assert edits.log(bj, D, draft, limit=None)["edits"][-1]["seq"] == 23  # the CLI's: all of it


@pytest.mark.parametrize("query, field", [
    ("limit=0", "limit"), ("limit=-1", "limit"), ("limit=501", "limit"), ("limit=abc", "limit"),
    ("limit=1e3", "limit"), ("limit=NaN", "limit"), ("limit=Infinity", "limit"), ("limit=" + "9" * 40, "limit"),
    ("limit=%00", "limit"), ("limit=1%0A", "limit"), ("limit=10.5", "limit"), ("after=-1", "after"),
    ("after=" + "9" * 400, "after"), ("after=0x10", "after"), ("after=%E2%80%AE1", "after"), ("after=", None),
])
def test_hostile_paging_arguments_are_refused(planner, draft, query, field):
    answer = planner.get(url(draft, "/edits") + "&" + query)
    if field is None:  # empty: the default
        assert answer.status_code == 200 and answer.get_json()["after"] == 0
        return
    assert_error(answer, 400, "invalid_input", field=field)


def test_a_stale_edit_names_only_the_newest_edits_since_and_counts_them_all(planner, bj, draft):
    toggle_teams(planner, bj, draft, 25)
    code, _, other = set_team_pair(bj, draft)
    stale = edit(planner, draft, {"op": "set-team", "supervision_code": code, "team_code": other}, 2)
    body = conflict(stale)
    assert body["revision"] == 25 and body["edits_since_count"] == 23
    assert [e["seq"] for e in body["edits_since"]] == list(range(6, 26))  # the newest 20, oldest first
    assert len(body["edits_since"]) == edits.EDITS_SINCE_MAX
    ahead = conflict(edit(planner, draft, {"op": "set-team", "supervision_code": code, "team_code": other},
                          10**6))  # a revision the draft never had: nothing since it
    assert ahead["edits_since"] == [] and ahead["edits_since_count"] == 0


# ------------------------------------------------------------------------------------------ how many drafts
def open_drafts(bj) -> int:
    return len(grid_store.open_drafts(bj, D))


def test_a_district_has_at_most_the_configured_open_drafts(bj, app_of):
    allowed = open_drafts(bj) + 2
    app_of.config["CITYGRID_SETTINGS"] = dataclasses.replace(app_of.config["CITYGRID_SETTINGS"],
                                                             max_open_drafts=allowed)
    planner = signed_in(app_of.test_client(), user_token(bj, "drafts-limit-planner", ["planner"]))
    made = [planner.post("/api/v1/grids/versions", json={"district": D}) for _ in range(2)]
    assert [m.status_code for m in made] == [201, 201]
    refused = conflict(planner.post("/api/v1/grids/versions", json={"district": D}))
    versions = [m.get_json()["version"] for m in made]
    assert [d["version"] for d in refused["open_drafts"]][-2:] == versions
    assert all(str(v) in refused["message"] for v in versions) and "drop" in refused["message"]
    assert open_drafts(bj) == allowed  # nothing made by the refused one
    assert planner.delete(url(versions[0])).status_code == 200  # room again
    assert planner.post("/api/v1/grids/versions", json={"district": D}).status_code == 201
    with pytest.raises(Exception, match="open drafts"):
        drafts.create(bj, D, author="test", max_open=open_drafts(bj))


def test_the_default_limit_is_five():
    from citygrid.config import Settings

    assert Settings().max_open_drafts == 5
    assert drafts.create.__defaults__[-1] == 5


@pytest.mark.parametrize(("value", "expected"), [("3", 3), (" 12 ", 12), ("0.5", 5), ("inf", 5), ("0", 5),
                                                 ("-2", 5), ("", 5), ("1e3", 5), ("五", 5)])
def test_the_limit_from_the_environment_is_a_whole_number_of_at_least_one(monkeypatch, value, expected):
    """CITYGRID_MAX_OPEN_DRAFTS: "0.5" once made the limit 0 (every draft refused) and "inf" a crash."""
    from citygrid.config import Settings

    monkeypatch.setenv("CITYGRID_MAX_OPEN_DRAFTS", value)
    assert Settings.from_env("citygrid").max_open_drafts == expected


# ------------------------------------------------------------------------------------------ dropping a draft
def codes_row(bj, code: str) -> tuple:
    return bj.execute(sa.text("SELECT first_version, retired_version FROM grid_codes WHERE district_code = :d "
                              "AND kind = 'unit' AND code = :c"), {"d": D, "c": code}).one()


def test_dropping_a_draft_keeps_its_codes_and_its_number(planner, bj, draft):
    code, _ = splittable(bj, draft)
    other = neighbour(bj, draft, code)
    merged = edit(planner, draft, {"op": "merge", "codes": [code, other]}, 0).get_json()
    gone = merged["edit"]["removed"][0]
    assert codes_row(bj, gone)[1] is None  # the published version still has it: retired when the draft is
    code, line = splittable(bj, draft)
    split = edit(planner, draft, {"op": "split", "code": code, "line": lonlat(line)}, 1).get_json()
    new = split["edit"]["added"][0]
    assert codes_row(bj, new) == (draft, None)

    dropped = planner.delete(url(draft))
    assert dropped.status_code == 200, dropped.get_json()
    assert dropped.get_json() == {"district": D, "version": draft, "dropped": True, "codes_issued": 1,
                                  "codes_restored": 0}
    for table in ("unit_grids", "supervision_grids", "supervision_teams", "grid_edits", "grid_versions"):
        assert bj.execute(sa.text(f"SELECT count(*) FROM {table} WHERE district_code = :d AND version_id = :v"),
                          {"d": D, "v": draft}).scalar_one() == 0, table
    assert codes_row(bj, new) == (draft, draft)  # issued by the dropped draft: registered, retired
    assert codes_row(bj, gone)[1] is None  # the published version still has it: in use
    assert_error(planner.get(url(draft)), 404, "not_found")
    again = drafts.create(bj, D, author="test-planner")["version"]
    assert again > draft  # the dropped number is not given again (its code names it)
    code, line = splittable(bj, again)
    resplit = edit(planner, again, {"op": "split", "code": code, "line": lonlat(line)}, 0).get_json()
    assert len(resplit["edit"]["added"]) == 1 and resplit["edit"]["added"] != [new]  # never issued again


def test_a_generated_draft_dropped_puts_back_the_codes_it_retired(bj):
    """``generate`` retires the codes its draft drops at once (an edit leaves that to publishing): dropping the
    draft puts them back in use."""
    old = published(bj)
    made = drafts.create(bj, D, author="test-planner")["version"]
    some = bj.execute(sa.text("SELECT code FROM unit_grids WHERE district_code = :d AND version_id = :v ORDER BY code "
                              "LIMIT 3"), {"d": D, "v": old}).scalars().all()
    grid_store.register_codes(bj, D, made, [], some)  # as generate marks them
    assert {codes_row(bj, c)[1] for c in some} == {made}
    assert drafts.drop(bj, D, made, author="test")["codes_restored"] == 3
    assert {codes_row(bj, c)[1] for c in some} == {None}


def test_codes_an_edit_removes_are_retired_when_the_draft_is_published(planner, bj, draft):
    from citygrid.gridding import service

    code, _ = splittable(bj, draft)
    other = neighbour(bj, draft, code)
    merged = edit(planner, draft, {"op": "merge", "codes": [code, other]}, 0).get_json()["edit"]
    gone = merged["removed"][0]
    assert codes_row(bj, gone)[1] is None
    assert planner.post(url(draft, "/undo"), json={"expected_revision": 1}).status_code == 200
    assert codes_row(bj, gone)[1] is None  # an undo before publishing: never retired
    again = edit(planner, draft, {"op": "merge", "codes": [code, other]}, 2).get_json()["edit"]
    assert codes_row(bj, again["removed"][0])[1] is None
    old = published(bj)
    service.publish(bj, D, draft, dt.date.today() + dt.timedelta(days=30), author="test")
    assert codes_row(bj, again["removed"][0])[1] == draft  # retired by the version that dropped it
    kept = again["changed"][0]
    assert codes_row(bj, kept)[1] is None
    retired_now = bj.execute(sa.text("SELECT count(*) FROM grid_codes WHERE district_code = :d "
                                     "AND retired_version = :v"), {"d": D, "v": draft}).scalar_one()
    assert retired_now == 1 and old != draft


def test_who_may_drop_what(planner, bj, client_as, draft):
    assert_error(planner.delete(url(published(bj))), 409, "conflict")  # not a draft
    assert_error(planner.delete(url(4242)), 404, "not_found")
    assert_error(planner.delete(f"/api/v1/grids/versions/{draft}"), 400, "invalid_input", field="district")
    child = drafts.create(bj, D, draft, author="test-planner")["version"]
    blocked = conflict(planner.delete(url(draft)))
    assert blocked["based_on_it"] == [child]
    for roles, kwargs in ((["analyst"], {}), (["dispatcher"], {}), (["supervisor"], {"team": "110105T26"})):
        assert_error(client_as(f"drop-{roles[0]}", roles, **kwargs).delete(url(child)), 403, "forbidden")
    elsewhere = client_as("drop-planner-elsewhere", ["planner"])
    bj.execute(sa.text("UPDATE users SET district_code = '110106' WHERE username = 'drop-planner-elsewhere'"))
    assert_error(elsewhere.delete(url(child)), 403, "forbidden")
    assert planner.delete(url(child)).status_code == 200
    assert planner.delete(url(draft)).status_code == 200
    assert_error(planner.delete(url(draft)), 404, "not_found")  # a replay


def test_the_cli_drops_a_draft(beijing_db, beijing_engine):
    db = ("--database", beijing_db.database)
    made = json.loads(run(*db, "grids", "draft", "--district", D).output)
    dropped = json.loads(run(*db, "grids", "drop-draft", "--district", D, "--version", str(made["version"])).output)
    assert dropped["dropped"] is True and dropped["version"] == made["version"]
    with beijing_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM grid_versions WHERE district_code = :d AND version_id = :v"),
                            {"d": D, "v": made["version"]}).scalar_one() == 0
    run(*db, "grids", "drop-draft", "--district", D, "--version", str(made["version"]), code=3)  # not found
    after = json.loads(run(*db, "grids", "draft", "--district", D).output)  # no code named it: still not reused
    assert after["version"] > made["version"]
    run(*db, "grids", "drop-draft", "--district", D, "--version", str(after["version"]))
    run(*db, "grids", "drop-draft", "--district", D, "--version", "0", code=2)


# ------------------------------------------------------------------------------------------ workloads
def workloads(bj, version: int) -> dict[str, float]:
    return grid_store.supervision_workloads(bj, D, version)


def expected_load(bj, version: int, supervision: str) -> float:
    """The partition's measure of one supervision grid from its unit grids as stored, with the draft's basis."""
    basis = grid_store.version_row(bj, D, version)["params"]["draft"]["workload"]
    terms = grid_store.workload_terms_of(bj, D, version, [
        c for c, s in grid_store.unit_supervision(bj, D, version, [supervision])])
    return part.group_loads(terms, {supervision: list(terms)}, basis["means"], basis["weights"])[supervision]


def test_an_edit_measures_the_workload_of_the_supervision_grids_it_touches(planner, bj, draft):
    # The district has moved on since the draft was made (its mean area per grid is not the recorded one any
    # more): the edits and the impact preview both measure with the draft's recorded basis, not today's means.
    bj.execute(sa.text(
        """UPDATE grid_versions SET params = jsonb_set(params, '{draft,workload,means,area}',
                  to_jsonb(CAST(params #>> '{draft,workload,means,area}' AS float8) / 2))
            WHERE district_code = :d AND version_id = :v"""), {"d": D, "v": draft})
    before = workloads(bj, draft)
    for code, supervision, target in border_pairs(bj, draft):  # noqa: B007  (read after the loop)
        answer = edit(planner, draft, {"op": "reassign", "codes": [code], "supervision_code": target}, 0)
        if answer.status_code == 200:
            break
    else:
        raise AssertionError("no unit grid could move to a neighbouring supervision grid")
    after = workloads(bj, draft)
    for touched in (supervision, target):
        assert after[touched] == pytest.approx(expected_load(bj, draft, touched), rel=1e-6)
    assert after[supervision] < before[supervision] or after[target] > before[target]
    assert {c: w for c, w in after.items() if c not in (supervision, target)} == {
        c: w for c, w in before.items() if c not in (supervision, target)}  # the others as they were
    preview = {g["code"]: g["workload_after"] for g in impact.of_draft(bj, D, draft)["supervision_grids"]}
    assert preview[target] == pytest.approx(after[target], abs=1e-3)  # the preview's figure is the stored one

    code2, line = splittable(bj, draft)  # a split inside one supervision grid measures that one again
    inside = bj.execute(sa.text("SELECT supervision_code FROM unit_grids WHERE district_code = :d AND version_id = :v "
                                "AND code = :c"), {"d": D, "v": draft, "c": code2}).scalar_one()
    assert edit(planner, draft, {"op": "split", "code": code2, "line": lonlat(line)}, 1).status_code == 200
    assert workloads(bj, draft)[inside] == pytest.approx(expected_load(bj, draft, inside), rel=1e-6)

    assert planner.post(url(draft, "/undo"), json={"expected_revision": 2}).status_code == 200
    assert planner.post(url(draft, "/undo"), json={"expected_revision": 3}).status_code == 200
    assert workloads(bj, draft) == before  # undo puts the stored figures back exactly
