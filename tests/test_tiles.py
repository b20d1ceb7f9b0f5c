"""Vector tiles: content against an exact PostGIS selection, filters, cache keyed by revision (a new case is in
the next tile, committed for real), ETag/304, bad requests."""

from __future__ import annotations

import math

import mapbox_vector_tile
import pytest
import sqlalchemy as sa

from citygrid.spatial import tiles
from citygrid.spatial.db import deployment_srid
from tests.conftest import assert_error, signed_in

LON, LAT = 116.48, 39.93  # inside Chaoyang (WGS84)


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """XYZ tile containing a WGS84 point (web mercator tiling)."""
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def features(data: bytes, layer: str) -> list[dict]:
    return mapbox_vector_tile.decode(data)[layer]["features"] if data else []


def codes_touching(conn, z: int, x: int, y: int, margin: float) -> set[str]:
    """Exact path: current unit grids whose geometry meets the tile envelope (with a margin), in web mercator."""
    return set(conn.execute(sa.text(
        """SELECT u.code FROM unit_grids u
            WHERE u.version_id = (SELECT version_id FROM grid_versions v WHERE v.district_code = u.district_code
                                   ORDER BY (v.status = 'published') DESC, v.version_id DESC LIMIT 1)
              AND ST_Intersects(ST_Transform(u.geom, 3857), ST_TileEnvelope(:z, :x, :y, margin => :m))"""
    ), {"z": z, "x": x, "y": y, "m": margin}).scalars())


@pytest.mark.parametrize("z", [12, 14, 16])
def test_unit_grid_tile_holds_exactly_the_grids_it_touches(bj, z):
    x, y = tile_of(LON, LAT, z)
    data = tiles.make_tile(bj, tiles.layer("unit_grids"), z, x, y, deployment_srid(bj), {})
    got = {f["properties"]["code"] for f in features(data, "unit_grids")}
    exact = codes_touching(bj, z, x, y, 0.0)
    assert exact and exact <= got <= codes_touching(bj, z, x, y, tiles.BUFFER / tiles.EXTENT)
    props = features(data, "unit_grids")[0]["properties"]
    assert set(props) == set(tiles.layer("unit_grids").columns_at(z))


def test_a_district_wide_unit_grid_tile_carries_only_what_the_map_styles_by(bj):
    """Below the layer's detail zoom a unit-grid tile holds the codes the overview colours by, not the names;
    from it on, every column. A change to how a layer's tiles are made changes its revision: a tile stored by
    an earlier release is never served as this one's."""
    import dataclasses

    layer = tiles.layer("unit_grids")
    overview = features(tiles.make_tile(bj, layer, 12, *tile_of(LON, LAT, 12), deployment_srid(bj), {}),
                        "unit_grids")
    detailed = features(tiles.make_tile(bj, layer, 13, *tile_of(LON, LAT, 13), deployment_srid(bj), {}),
                        "unit_grids")
    assert {"management", "code", "supervision"} <= set(overview[0]["properties"]) <= set(layer.overview_columns)
    assert "management_name" not in overview[0]["properties"]
    assert "management_name" in detailed[0]["properties"] and "street" in detailed[0]["properties"]
    changed = dataclasses.replace(layer, overview_columns=("code",))
    assert tiles.revision(bj, changed) != tiles.revision(bj, layer) == tiles.revision(bj, layer)


def test_a_tile_outside_the_storage_zone_is_empty_not_an_error(client):
    """Found by schemathesis: projecting a tile near 27°E, 0°N into EPSG:4548 gave infinities (a 500)."""
    assert client.get("/tiles/cases/19/301368/260179.mvt").status_code == 204
    assert tiles.tile_lonlat_bounds(1, 1, 0)[0] == 0.0 and tiles.tile_lonlat_bounds(1, 1, 0)[3] > 85


def test_below_the_layer_minzoom_there_is_nothing(client):
    x, y = tile_of(LON, LAT, 12)
    assert client.get(f"/tiles/components/12/{x}/{y}.mvt").status_code == 204
    assert client.get(f"/tiles/unit_grids/12/{x}/{y}.mvt").status_code == 200


def test_component_tile_filters_by_class_and_shows_the_current_version_only(bj, client):
    srid = deployment_srid(bj)
    for obj_id, code, valid_to in (("1101050101000001", "0101", None), ("1101050118000001", "0118", None),
                                   ("1101050118000002", "0118", "2026-01-01")):
        bj.execute(sa.text(
            """INSERT INTO components (district_code, obj_id, valid_from, valid_to, scheme, class_code, obj_name,
                                       geom)
               VALUES ('110105', :o, '2025-01-01', CAST(:to AS timestamptz), 'cjt214', :c, '测试',
                       ST_Transform(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :srid))"""
        ), {"o": obj_id, "c": code, "to": valid_to, "lon": LON, "lat": LAT, "srid": srid})
    x, y = tile_of(LON, LAT, 16)
    every = features(client.get(f"/tiles/components/16/{x}/{y}.mvt").data, "components")
    assert {f["properties"]["obj_id"] for f in every} == {"1101050101000001", "1101050118000001"}
    lamps = features(client.get(f"/tiles/components/16/{x}/{y}.mvt?class_code=0118").data, "components")
    assert [f["properties"]["class_name"] for f in lamps] == ["路灯"]


def test_new_case_is_in_the_next_tile_and_the_etag_changes(beijing_db, beijing_engine, beijing_admin_token):
    """Real commits (the revision is raised at commit time), then the case is deleted again."""
    from citygrid.app import create_app

    client = signed_in(create_app({"CITYGRID_SETTINGS": beijing_db, "TESTING": True}).test_client(),
                       beijing_admin_token)
    lon, lat = LON + 0.031, LAT - 0.017
    z = 16
    x, y = tile_of(lon, lat, z)
    url = f"/tiles/cases/{z}/{x}/{y}.mvt"
    first = client.get(url)
    again = client.get(url)
    assert again.headers["X-Tile-Cache"] == "hit" and again.headers["ETag"] == first.headers["ETag"]
    assert client.get(url, headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    made = client.post("/api/v1/cases", json={"lon": lon, "lat": lat, "kind": "event", "class_code": "0505",
                                              "description": "新上报的乱停车", "source": "supervisor"})
    case_id = made.get_json()["case"]["case_id"]
    try:
        fresh = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
        assert fresh.status_code == 200 and fresh.headers["X-Tile-Cache"] == "miss"
        found = [f["properties"] for f in features(fresh.data, "cases") if f["properties"]["case_id"] == case_id]
        assert found and found[0]["status"] == "reported" and found[0]["class_code"] == "0505"
        client.post(f"/api/v1/cases/{case_id}/transitions", json={"action": "accept", "actor": "a",
                                                                  "role": "acceptor"})
        moved = [f["properties"] for f in features(client.get(url).data, "cases")
                 if f["properties"]["case_id"] == case_id]
        assert moved[0]["status"] == "accepted"
        open_only = features(client.get(url + "?open=true").data, "cases")
        assert all(f["properties"]["status"] not in ("closed", "evaluated", "rejected") for f in open_only)
    finally:
        with beijing_engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM cases WHERE case_id = :c"), {"c": case_id})


def test_case_tiles_follow_the_case_read_rules(client_as, bj):
    """403 for roles that may not read cases; a supervisor's tile holds their team's cases, a unit's the cases
    dispatched to its party; the scope is part of the cache key (an admin's cached tile is not served to them)."""
    tiles.CACHE.clear()  # tiles cached by earlier rolled-back tests may show cases that are gone
    lon, lat = LON + 0.011, LAT + 0.007
    dispatcher = client_as("tile-desk", ["dispatcher"])
    made = [dispatcher.post("/api/v1/cases", json={"lon": lon, "lat": lat, "kind": "event", "class_code": code,
                                                   "description": "测试", "source": "supervisor"}).get_json()["case"]
            for code in ("0102", "0505")]
    url = f"/api/v1/cases/{made[0]['case_id']}/transitions"
    assert dispatcher.post(url, json={"action": "accept"}).status_code == 200
    party = dispatcher.post(url, json={"action": "dispatch"}).get_json()["attrs"]["dispatched_to"]["code"]
    team = bj.execute(sa.text("SELECT team_code FROM supervision_grids WHERE code = :c"),
                      {"c": made[0]["supervision_code"]}).scalar_one()
    other_team = bj.execute(sa.text("SELECT code FROM supervision_teams WHERE code <> :t AND district_code = "
                                    "'110105' ORDER BY code LIMIT 1"), {"t": team}).scalar_one()
    other_party = bj.execute(sa.text("SELECT code FROM parties WHERE district_code = '110105' AND code <> :p "
                                     "AND kind = 'street_office' ORDER BY code LIMIT 1"), {"p": party}).scalar_one()
    x, y = tile_of(lon, lat, 16)
    tile_url = f"/tiles/cases/16/{x}/{y}.mvt"

    def seen(caller) -> set[int]:
        answer = caller.get(tile_url)
        assert answer.status_code in (200, 204), answer.get_json()
        return {f["properties"]["case_id"] for f in features(answer.data, "cases")} & {c["case_id"] for c in made}

    everything = {c["case_id"] for c in made}
    assert seen(client_as("tile-admin", ["admin"])) == everything
    assert seen(client_as("tile-analyst", ["analyst"])) == everything
    assert seen(client_as("tile-sup", ["supervisor"], team)) == everything  # both lie in the team's grids
    other_sup = client_as("tile-other-sup", ["supervisor"], other_team)
    assert seen(other_sup) == set()
    assert other_sup.get(tile_url).headers["X-Tile-Cache"] == "hit"  # cached under their own scope
    assert seen(client_as("tile-unit", ["unit"], party=party)) == {made[0]["case_id"]}
    assert seen(client_as("tile-other-unit", ["unit"], party=other_party)) == set()
    for role in ("planner", "gis"):
        caller = client_as(f"tile-{role}", [role])
        assert_error(caller.get(tile_url), 403, "forbidden", reason="may not read cases")
        assert_error(caller.get("/tiles/cases.json"), 403, "forbidden", reason="may not read cases")
        assert caller.get(f"/tiles/unit_grids/16/{x}/{y}.mvt").status_code == 200
    sup_etag = client_as("tile-sup-2", ["supervisor"], team).get(tile_url).headers["ETag"]
    assert sup_etag != other_sup.get(tile_url).headers["ETag"]


def test_a_scoped_tile_is_made_with_the_scope_condition(bj):
    srid = deployment_srid(bj)
    scope = {"scope_team": None, "scope_party": "no-such-party", "scope_district": "110105"}
    x, y = tile_of(LON, LAT, 13)
    assert tiles.make_tile(bj, tiles.layer("cases"), 13, x, y, srid, {}, scope) == b""
    with pytest.raises(ValueError, match="takes no scope"):
        tiles.make_tile(bj, tiles.layer("unit_grids"), 13, x, y, srid, {}, scope)


@pytest.mark.parametrize(("path", "status", "needle"), [
    ("/tiles/cases/23/0/0.mvt", 400, "zoom 23"),
    ("/tiles/cases/3/8/0.mvt", 400, "does not exist at zoom 3"),
    ("/tiles/cases/3/0/8.mvt", 400, "does not exist"),
    ("/tiles/roads/3/0/0.mvt", 404, "no tile layer"),
    ("/tiles/cases/14/1/1.mvt?colour=red", 400, "no parameter 'colour'"),
    ("/tiles/cases/14/1/1.mvt?class_code=01';--", 400, "must be 1–16 letters, digits, _ or -"),
    ("/tiles/cases/14/1/1.mvt?status=open' OR 1=1--", 400, "status must be one of"),
    ("/tiles/unit_grids/14/1/1.mvt?status=open", 400, "takes no parameter"),
    ("/tiles/cases/14/1/1.mvt?open=yes", 400, "open must be one of"),
    ("/tiles/nope.json", 404, "no tile layer"),
])
def test_bad_tile_requests(client, path, status, needle):
    assert_error(client.get(path), status, {400: "invalid_input", 404: "not_found"}[status], reason=needle)


def test_tilejson(client):
    doc = client.get("/tiles/components.json").get_json()
    assert doc["minzoom"] == 15 and doc["tiles"] == ["/tiles/components/{z}/{x}/{y}.mvt"]
    assert "obj_id" in doc["vector_layers"][0]["fields"] and "detail_zoom" not in doc
    grids = client.get("/tiles/unit_grids.json").get_json()
    assert grids["detail_zoom"] == 13 and "management_name" not in grids["overview_fields"]
    assert "management_name" in grids["vector_layers"][0]["fields"]


def test_tile_cache_is_bounded_and_least_recently_used_goes_first():
    cache = tiles.TileCache(max_bytes=10)
    cache.put(("a",), b"1234")
    cache.put(("b",), b"1234")
    assert cache.get(("a",)) == b"1234"  # a is now the most recently used
    cache.put(("c",), b"1234")
    assert cache.get(("b",)) is None and cache.get(("a",)) and cache.get(("c",))
    cache.put(("huge",), b"x" * 11)
    assert cache.get(("huge",)) is None
