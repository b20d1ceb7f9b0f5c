"""The interop domain core (#25 part O1): the collections, their reads and their validation, against the real
PostGIS of the Beijing test database (the Chaoyang demo's grids, teams, streets and communities; a small census
and a few cases added per test and rolled back)."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from pyproj import Transformer

from citygrid.accounts.service import Principal
from citygrid.cases.scope import CaseScope
from citygrid.errors import Forbidden, InvalidInput, NotFound
from citygrid.gridding import drafts
from citygrid.interop import queries as q
from citygrid.interop import store
from citygrid.interop.collections import FIELD_TYPES, KINDS, TEMPORAL, collection_id, parse_collection_id
from tests.conftest import submitted_case, team_grid_points

D = "110105"
UNIT, SUP, TEAMS, COMP, CASES = (collection_id(k, D) for k in ("unit-grids", "supervision-grids", "teams",
                                                                "components", "cases"))
OP = q.OPERATOR
ANALYST = q.Reader(role="analyst", home=D, cases=CaseScope(home=D))


def _all(conn, cid, reader=OP, **query):
    return list(q.features(conn, cid, q.FeatureQuery(limit=query.pop("limit", q.MAX_LIMIT), **query), reader))


def _ids(conn, cid, reader=OP, **query):
    return [f["id"] for f in _all(conn, cid, reader, **query)]


def _scalar(conn, sql, **params):
    return conn.execute(sa.text(sql), params).scalar_one()


@pytest.fixture
def census(bj):
    """A census of 24 components in grids of 8 teams (valid from 2026-01-01) and 3 retired before it
    (2025-01-01 … 2025-12-01); returns the current ObjIDs."""
    current = []
    for i, (grid, _team, lon, lat) in enumerate(team_grid_points(bj, 8) * 3):
        obj_id = f"1101050118{900000 + i:06d}"
        dates = ("2026-01-01", None) if i < 24 else ("2025-01-01", "2025-12-01")
        bj.execute(sa.text(
            """INSERT INTO components (district_code, obj_id, valid_from, valid_to, scheme, class_code, obj_name,
                                       unit_grid_code, or_date, geom)
               VALUES (:d, :o, CAST(:f AS timestamptz), CAST(:t AS timestamptz), 'cjt214', :c, 'test', :g,
                       DATE '2025-05-04', ST_Transform(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 4548))"""),
            {"d": D, "o": obj_id, "f": dates[0], "t": dates[1], "c": "0118" if i % 2 else "0101", "g": grid,
             "lon": lon + 1e-5 * (i // 8), "lat": lat})
        current.append(obj_id)
    for i, (_grid, _team, lon, lat) in enumerate(team_grid_points(bj, 3)):
        bj.execute(sa.text(
            """INSERT INTO components (district_code, obj_id, valid_from, valid_to, scheme, class_code, obj_name, geom)
               VALUES (:d, :o, '2025-01-01', '2025-12-01', 'cjt214', '0118', 'retired',
                       ST_Transform(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 4548))"""),
            {"d": D, "o": f"1101050118{800000 + i:06d}", "lon": lon, "lat": lat})
    return current


@pytest.fixture
def cases(bj, case_rules):
    """Four cases in grids of four teams, reported by the hotline with a caller's name and phone; the first
    two dispatched to a party. Returns (case, team) pairs."""
    made = []
    for i, (_grid, team, lon, lat) in enumerate(team_grid_points(bj, 4)):
        case = submitted_case(bj, case_rules, lon=lon, lat=lat, class_code="0102", source="hotline",
                              complainant={"name": "张秘密", "phone": "13900001234"})
        made.append((case, team))
        if i < 2:
            bj.execute(sa.text("""UPDATE cases SET attrs = attrs || '{"dispatched_to": {"code": "P-test",
                                  "name": "test party"}}' WHERE case_id = :id"""), {"id": case["case_id"]})
    return made


# ------------------------------------------------------------------------------------------------- collections
def test_collection_ids_and_field_names():
    for kind in KINDS.values():
        shorts = [f.short for f in kind.fields]
        assert all(len(s) <= 10 and s.isascii() for s in shorts) and len(set(shorts)) == len(shorts), kind.key
        assert len({f.name for f in kind.fields}) == len(kind.fields) and kind.field(kind.id_field)
        assert parse_collection_id(collection_id(kind.key, D)) == (kind, D)
        assert all(f.type in FIELD_TYPES for f in kind.fields) and kind.temporal in (*TEMPORAL, None), kind.key
        # the store's column per field and the kind's fields are two tables keyed by name: the same names, in order
        assert list(store._COLUMNS[kind.key]) == [f.name for f in kind.fields], kind.key
    for bad in ("unit-grids", "unit-grids-", "grids-110105", "unit-grids-110105\x00", "unit-grids-" + "1" * 40,
                "cases-1101 05", "", "unit-grids-../etc"):
        with pytest.raises(NotFound):
            parse_collection_id(bad)
    schema = q.queryables(UNIT)
    assert schema["properties"]["team_code"]["type"] == "string" and "area_m2" not in schema["properties"]
    assert q.queryables(COMP)["properties"]["obj_id"] == {"title": "component ObjID", "type": "string"}


def test_collections_per_district_and_reader(bj):
    everything = q.list_collections(bj, OP)
    assert {c["id"] for c in everything} == {collection_id(k, D) for k in KINDS if k != "frontage-units"}
    unit = q.collection_info(bj, UNIT, OP)
    assert unit == next(c for c in everything if c["id"] == UNIT)
    x0, y0, x1, y1 = unit["extent"]
    assert 116 < x0 < x1 < 117 and 39.5 < y0 < y1 < 40.5 and unit["storage_srid"] == 4548
    assert unit["interval"][0] is not None and unit["interval"][1] is None
    planner = q.Reader(role="planner", home=None)
    assert CASES not in {c["id"] for c in q.list_collections(bj, planner)}
    with pytest.raises(Forbidden):
        q.collection_info(bj, CASES, planner)
    unbound_unit = q.Reader(role="unit", home=D, cases=CaseScope(readable=False, why_not="bound to no party"))
    assert CASES not in {c["id"] for c in q.list_collections(bj, unbound_unit)}
    elsewhere = q.Reader(role="analyst", home="440106", cases=CaseScope(home="440106"))
    assert q.list_collections(bj, elsewhere) == []
    for cid in (UNIT, CASES):
        with pytest.raises(Forbidden):
            q.collection_info(bj, cid, elsewhere)
        with pytest.raises(Forbidden):
            _all(bj, cid, elsewhere)
    with pytest.raises(NotFound):
        q.collection_info(bj, collection_id("unit-grids", "999999"), OP)
    with pytest.raises(NotFound):
        _all(bj, collection_id("unit-grids", "999999"))
    with pytest.raises(NotFound):  # no frontage units in force in the test district
        q.collection_info(bj, collection_id("frontage-units", D), OP)


# ---------------------------------------------------------------------------------------------- counts and pages
def test_counts_equal_the_tables(bj, census, cases):
    version = _scalar(bj, "SELECT max(version_id) FROM grid_versions WHERE district_code = :d AND status = "
                          "'published'", d=D)
    expected = {
        UNIT: _scalar(bj, "SELECT count(*) FROM unit_grids WHERE district_code = :d AND version_id = :v",
                      d=D, v=version),
        SUP: _scalar(bj, "SELECT count(*) FROM supervision_grids WHERE district_code = :d AND version_id = :v",
                     d=D, v=version),
        TEAMS: _scalar(bj, "SELECT count(*) FROM supervision_teams WHERE district_code = :d AND version_id = :v",
                       d=D, v=version),
        collection_id("communities", D): _scalar(
            bj, "SELECT count(*) FROM admin_areas WHERE district_code = :d AND level = 'community'", d=D),
        collection_id("streets", D): _scalar(
            bj, "SELECT count(*) FROM admin_areas WHERE district_code = :d AND level = 'street'", d=D),
        COMP: 24, CASES: 4}
    for cid, count in expected.items():
        assert q.number_matched(bj, cid, q.FeatureQuery(limit=10), OP) == (count, True), cid
        assert len(_ids(bj, cid)) == count, cid
    assert sorted(_ids(bj, COMP)) == sorted(census)


def test_pages_are_stable_and_complete(bj):
    whole = _ids(bj, SUP)
    assert whole == sorted(whole) and len(set(whole)) == len(whole) > 100
    paged = [i for offset in range(0, len(whole), 37) for i in _ids(bj, SUP, limit=37, offset=offset)]
    assert paged == whole
    assert _ids(bj, SUP, offset=len(whole)) == [] and _ids(bj, SUP, offset=q.MAX_OFFSET) == []


def test_an_export_streams_more_than_a_page(bj):
    everything = list(q.features(bj, UNIT, q.FeatureQuery(limit=50_000), OP, max_limit=1_000_000))
    assert len(everything) == q.number_matched(bj, UNIT, q.FeatureQuery(limit=1), OP)[0] > q.MAX_LIMIT // 2
    with pytest.raises(InvalidInput):
        _all(bj, UNIT, limit=50_000)


def test_frontage_units_when_the_district_has_some(bj):
    party = _scalar(bj, "SELECT party_id FROM parties WHERE district_code = :d ORDER BY party_id LIMIT 1", d=D)
    bj.execute(sa.text(
        """INSERT INTO frontage_units (district_code, party_id, name, kind, registry_id, contact_person, contact_phone,
                                       valid_from, geom)
           VALUES (:d, :p, '测试商户', 'shop', 'R-1', '王秘密', '13800009999', '2025-01-01',
                   ST_Multi(ST_Buffer(ST_Transform(ST_SetSRID(ST_MakePoint(116.48, 39.93), 4326), 4548), 10)))"""),
        {"d": D, "p": party})
    cid = collection_id("frontage-units", D)
    assert cid in {c["id"] for c in q.list_collections(bj, ANALYST)}
    (unit,) = _all(bj, cid)
    assert unit["properties"]["name"] == "测试商户" and unit["properties"]["party_code"]
    text = "".join(q.features_geojson_text(bj, cid, q.FeatureQuery(limit=5), ANALYST))
    assert json.loads(text)["properties"]["valid_from"] == "2025-01-01"
    assert "王秘密" not in text and "13800009999" not in text and "contact" not in json.dumps(unit, default=str)


def test_number_matched_estimates_large_selections(bj, monkeypatch):
    monkeypatch.setattr(q, "EXACT_COUNT_UP_TO", 100)  # the test district is small
    count, exact = q.number_matched(bj, UNIT, q.FeatureQuery(limit=10), OP)
    assert not exact and count > 100
    team = _scalar(bj, "SELECT team_code FROM supervision_grids ORDER BY code LIMIT 1")
    assert q.number_matched(bj, SUP, q.FeatureQuery(limit=10, filters={"team_code": team}), OP)[1]


# ------------------------------------------------------------------------------------------- bbox and filters
def test_bbox_selects_what_intersects_it(bj):
    box = (116.45, 39.90, 116.47, 39.92)
    expected = bj.execute(sa.text(
        """SELECT code FROM unit_grids WHERE district_code = :d AND version_id = 1
              AND ST_Intersects(geom, ST_Transform(ST_Segmentize(ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326),
                                                                  0.001), 4548)) ORDER BY code"""),
        dict(zip(("x0", "y0", "x1", "y1"), box, strict=True), d=D)).scalars().all()
    assert 0 < len(expected) < 200
    assert _ids(bj, UNIT, bbox=box) == expected
    assert q.number_matched(bj, UNIT, q.FeatureQuery(limit=1, bbox=box), OP) == (len(expected), True)
    to_gk = Transformer.from_crs(4326, 4548, always_xy=True)
    (gx0, gx1), (gy0, gy1) = to_gk.transform([box[0], box[2]], [box[1], box[3]])
    in_gk = _ids(bj, UNIT, bbox=(min(gx0, gx1), min(gy0, gy1), max(gx0, gx1), max(gy0, gy1)), bbox_srid=4548)
    assert len(set(in_gk) ^ set(expected)) <= len(expected) // 5  # the same place, its edges straight in GK
    assert _ids(bj, UNIT, bbox=(10.0, 10.0, 11.0, 11.0)) == []


def test_filters_on_queryables(bj, census):
    team = _scalar(bj, "SELECT team_code FROM supervision_grids ORDER BY code LIMIT 1")
    expected = bj.execute(sa.text(
        """SELECT u.code FROM unit_grids u JOIN supervision_grids s ON s.district_code = u.district_code
              AND s.version_id = u.version_id AND s.code = u.supervision_code
            WHERE u.district_code = :d AND s.team_code = :t ORDER BY u.code"""), {"d": D, "t": team}).scalars().all()
    found = _all(bj, UNIT, filters={"team_code": team})
    assert [f["id"] for f in found] == expected and {f["properties"]["team_code"] for f in found} == {team}
    assert len(_ids(bj, COMP, filters={"class_code": "0118"})) == 12
    assert _ids(bj, COMP, filters={"class_code": "0118", "obj_id": census[1]}) == [census[1]]
    assert _ids(bj, SUP, filters={"team_code": "no such team"}) == []
    grids = _all(bj, UNIT)
    owner = grids[100]["properties"]["owner_management"]
    owned = [f["id"] for f in grids if f["properties"]["owner_management"] == owner]
    assert owner and _ids(bj, UNIT, filters={"owner_management": owner}) == owned
    assert q.number_matched(bj, UNIT, q.FeatureQuery(limit=1, filters={"owner_management": owner}), OP) == \
        (len(owned), True)
    assert [f["id"] for f in grids[len(grids) - 40:]] == _ids(bj, UNIT, limit=100, offset=len(grids) - 40)


def test_properties_of_grids_and_components(bj, census):
    grid = _all(bj, UNIT, limit=1)[0]["properties"]
    assert grid["street_name"] and grid["community_name"] and grid["team_code"] and grid["version"] == 1
    assert grid["area_m2"] > 0 and set(grid) == {f.name for f in KINDS["unit-grids"].fields}
    team = _all(bj, TEAMS, limit=1)[0]
    assert team["properties"]["supervision_grids"] > 0 and json.loads(team["geometry"])["type"] == "MultiPolygon"
    component = q.feature(bj, COMP, census[1], q.FeatureQuery(limit=1), OP)
    assert component["properties"]["class_name"] == "路灯" and component["properties"]["or_date"] == date(2025, 5, 4)


# ------------------------------------------------------------------------------------------- version and time
def test_versions_drafts_and_datetime(bj):
    draft = drafts.create(bj, D, author="test")["version"]
    bj.execute(sa.text("DELETE FROM unit_grids WHERE district_code = :d AND version_id = :v AND code IN "
                       "(SELECT code FROM unit_grids WHERE district_code = :d AND version_id = :v "
                       "ORDER BY code LIMIT 5)"), {"d": D, "v": draft})
    published = _ids(bj, UNIT)
    assert len(_ids(bj, UNIT, version=draft)) == len(published) - 5  # the operator reads drafts
    planner = q.Reader(role="planner", home=D)
    assert len(_ids(bj, UNIT, planner, version=draft)) == len(published) - 5
    assert _ids(bj, UNIT, ANALYST) == published  # the current version is never a draft for a non-planner
    with pytest.raises(Forbidden):
        _all(bj, UNIT, ANALYST, version=draft)
    for bad in (999, 0, -1, True, "1", 10**12):
        with pytest.raises(InvalidInput) as e:
            _all(bj, UNIT, version=bad)
        assert e.value.field == "version"
    with pytest.raises(InvalidInput):
        _all(bj, COMP, version=1)
    first = _scalar(bj, "SELECT effective_from FROM grid_versions WHERE district_code = :d AND version_id = 1", d=D)
    now = datetime.now(UTC)
    assert _ids(bj, UNIT, interval=(now, now)) == published
    assert _ids(bj, UNIT, interval=(None, first - timedelta(days=1))) == []
    assert len(_ids(bj, TEAMS, interval=(first, None))) > 0
    with pytest.raises(InvalidInput) as e:
        _all(bj, UNIT, version=1, interval=(now, now))
    assert e.value.field == "version"


def test_census_valid_then(bj, census):
    then = datetime(2025, 6, 1, tzinfo=UTC)
    assert sorted(_ids(bj, COMP, interval=(then, then))) == [f"1101050118{800000 + i:06d}" for i in range(3)]
    assert sorted(_ids(bj, COMP)) == sorted(census)
    assert sorted(_ids(bj, COMP, interval=(then, datetime(2026, 2, 1, tzinfo=UTC)))) == sorted(census)
    with pytest.raises(InvalidInput) as e:
        _all(bj, collection_id("streets", D), interval=(then, then))
    assert e.value.field == "datetime"


# ------------------------------------------------------------------------------------------------------- CRS
def test_crs_outputs_round_trip(bj, census):
    obj_id = census[0]
    lonlat = json.loads(q.feature(bj, COMP, obj_id, q.FeatureQuery(limit=1), OP)["geometry"])["coordinates"]
    gk = json.loads(q.feature(bj, COMP, obj_id, q.FeatureQuery(limit=1, out_srid=4548), OP)["geometry"])
    cgcs = json.loads(q.feature(bj, COMP, obj_id, q.FeatureQuery(limit=1, out_srid=4490), OP)["geometry"])
    flipped = json.loads(q.feature(bj, COMP, obj_id, q.FeatureQuery(limit=1, latlon=True), OP)["geometry"])
    assert 116 < lonlat[0] < 117 and 39 < lonlat[1] < 41
    x, y = Transformer.from_crs(4548, 4326, always_xy=True).transform(*gk["coordinates"])
    assert math.dist((x, y), lonlat) < 1e-7 and gk["coordinates"][0] > 400_000
    assert math.dist(cgcs["coordinates"], lonlat) < 1e-4
    assert flipped["coordinates"] == lonlat[::-1]
    for bad, name in ((3857, "crs"), (4547, "crs"), (0, "crs"), (True, "crs")):
        with pytest.raises(InvalidInput) as e:
            _all(bj, COMP, out_srid=bad)
        assert e.value.field == name and "EPSG:4326" in e.value.message
    with pytest.raises(InvalidInput) as e:
        _all(bj, COMP, bbox=(0, 0, 1, 1), bbox_srid=3857)
    assert e.value.field == "bbox-crs"


# ------------------------------------------------------------------------------------------------------ cases
def test_case_scope_and_no_caller_contact(bj, cases):
    (first, team), *_ = cases
    assert len(_ids(bj, CASES, ANALYST)) == 4
    supervisor = q.Reader(role="supervisor", home=D, cases=CaseScope(team=team, home=D))
    assert _ids(bj, CASES, supervisor) == [first["case_id"]]
    assert q.number_matched(bj, CASES, q.FeatureQuery(limit=10), supervisor) == (1, True)
    with pytest.raises(NotFound):
        q.feature(bj, CASES, str(cases[1][0]["case_id"]), q.FeatureQuery(limit=1), supervisor)
    unit = q.Reader(role="unit", home=D, cases=CaseScope(party="P-test", district=D, home=D))
    assert _ids(bj, CASES, unit) == sorted(c["case_id"] for c, _ in cases[:2])
    for refused in (q.Reader(role="unit", home=D, cases=CaseScope(readable=False, why_not="no party")),
                    q.Reader(role="dispatcher", home=D), q.Reader(role="gis", home=D)):
        with pytest.raises(Forbidden):
            _all(bj, CASES, refused)
    texts = "".join(q.features_geojson_text(bj, CASES, q.FeatureQuery(limit=10), OP))
    rows = json.dumps(_all(bj, CASES), default=str)
    for secret in ("张秘密", "13900001234"):
        assert secret not in texts and secret not in rows
    props = _all(bj, CASES, limit=1)[0]["properties"]
    assert props["team_code"] == team and props["reported_at"].tzinfo is not None
    assert props["grid_version"] == 1 and props["unit_grid_code"]
    day = props["reported_at"]
    assert len(_ids(bj, CASES, interval=(day - timedelta(hours=1), None))) == 4
    assert _ids(bj, CASES, interval=(None, day - timedelta(hours=1))) == []
    assert _ids(bj, CASES, filters={"party_code": "P-test", "case_id": str(first["case_id"])}) == [first["case_id"]]


def test_reader_of_a_principal():
    supervisor = Principal(user_id=1, username="s", roles=("supervisor",), district_code=D, team_code="T1",
                           via="token")
    reader = q.Reader.of(supervisor)
    assert reader.home == D and reader.cases == CaseScope(team="T1", home=D) and reader.may_read(KINDS["cases"])
    admin = q.Reader.of(Principal(user_id=2, username="a", roles=("admin",), district_code=D, team_code=None,
                                  via="token"))
    assert admin.home is None and admin.may_read_drafts("440106") and not reader.may_read_drafts(D)
    planner = q.Reader.of(Principal(user_id=3, username="p", roles=("planner", "gis"), district_code=None,
                                    team_code=None, via="token"))
    assert not planner.may_read(KINDS["cases"]) and planner.may_read(KINDS["unit-grids"])


# ---------------------------------------------------------------------------------------------- hostile input
@pytest.mark.parametrize("query,field", [
    ({"limit": 0}, "limit"), ({"limit": q.MAX_LIMIT + 1}, "limit"), ({"limit": True}, "limit"),
    ({"limit": 2**70}, "limit"), ({"offset": -1}, "offset"), ({"offset": 10**9}, "offset"),
    ({"bbox": (math.nan, 39, 117, 40)}, "bbox"), ({"bbox": (116, 39, math.inf, 40)}, "bbox"),
    ({"bbox": (117, 39, 116, 40)}, "bbox"), ({"bbox": (116, 40, 117, 39)}, "bbox"),
    ({"bbox": (116, 39, 117, 91)}, "bbox"), ({"bbox": (116, 39, 117)}, "bbox"), ({"bbox": ("a", 1, 2, 3)}, "bbox"),
    ({"interval": (datetime(2026, 1, 1), None)}, "datetime"),
    ({"interval": (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))}, "datetime"),
    ({"interval": "2026"}, "datetime"),
    ({"filters": {"area_m2": "5"}}, "area_m2"), ({"filters": {"nope": "x"}}, "nope"),
    ({"filters": {"code": "x\x00y"}}, "code"), ({"filters": {"code": "a" * 201}}, "code"),
    ({"filters": {"code": 5}}, "code"), ({"filters": ["code"]}, "filters"),
    ({"filters": {"code\u202e": "x"}}, "code\u202e"),
])
def test_hostile_queries_are_refused(bj, query, field):
    with pytest.raises(InvalidInput) as e:
        _all(bj, UNIT, **query)
    assert e.value.field == field, e.value.message
    assert len(e.value.message) < 600


@pytest.mark.parametrize("value", ["1.5", "1e999", "NaN", "-", "", "99999999999999999999", "Infinity", "0x10"])
def test_typed_filter_values(bj, cases, value):
    with pytest.raises(InvalidInput) as e:
        _all(bj, CASES, filters={"case_id": value})
    assert e.value.field == "case_id"


def test_hostile_feature_ids(bj, cases, census):
    for cid, fid in ((CASES, "1.5"), (CASES, "99999999999999999999999"), (CASES, "-1"), (CASES, "x\x00"),
                     (UNIT, "no such grid"), (UNIT, "a" * 5000), (COMP, "'; DROP TABLE cases; --")):
        with pytest.raises(NotFound):
            q.feature(bj, cid, fid, q.FeatureQuery(limit=1), OP)
    assert q.feature(bj, CASES, str(cases[0][0]["case_id"]), q.FeatureQuery(limit=1), OP)["id"] == \
        cases[0][0]["case_id"]


# ---------------------------------------------------------------------------------------- fast path == exact
def _same(a, b) -> bool:
    if isinstance(b, datetime):
        return datetime.fromisoformat(a) == b
    if isinstance(b, date):
        return date.fromisoformat(a) == b
    if isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12)
    return a == b


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "frontage-units"])
def test_the_fast_path_writes_the_exact_paths_features(bj, census, cases, kind):
    cid = collection_id(kind, D)
    for query in (q.FeatureQuery(limit=60), q.FeatureQuery(limit=30, offset=1, out_srid=4548),
                  q.FeatureQuery(limit=30, bbox=(116.40, 39.85, 116.55, 40.0), latlon=True)):
        exact = list(q.features(bj, cid, query, OP))
        fast = [json.loads(text) for text in q.features_geojson_text(bj, cid, query, OP)]
        assert len(fast) == len(exact) and (exact or query.bbox), cid
        for f, e in zip(fast, exact, strict=True):
            assert f["type"] == "Feature" and f["id"] == e["id"]
            assert f["geometry"] == (None if e["geometry"] is None else json.loads(e["geometry"]))
            assert f["properties"].keys() == e["properties"].keys()
            assert all(_same(f["properties"][k], v) for k, v in e["properties"].items() if v is not None), f
            assert all(f["properties"][k] is None for k, v in e["properties"].items() if v is None)
