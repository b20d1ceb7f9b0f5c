"""Rules that live in one place (#20): which grid version is a district's current one, and which case states
count as closed. Each test goes through every query that applies the rule, so a query that drifted from it
(an ORDER BY or a list of states written out again) fails here."""

from __future__ import annotations

import math

import mapbox_vector_tile
import pytest
import sqlalchemy as sa

from citygrid.cases import store as case_store
from citygrid.cases.workflow import CLOSED_STATES, STATES
from citygrid.gridding import store as grid_store
from citygrid.spatial import store as spatial_store
from citygrid.spatial import tiles
from citygrid.spatial.db import deployment_srid

SPARE = "990001"  # a district of its own, so its versions are only the ones a test writes


def _spare_district(conn) -> None:
    """District ``SPARE`` with Chaoyang's boundary (EPSG:4548 like the rest of the Beijing test database)."""
    wkb = conn.execute(sa.text("SELECT ST_AsBinary(geom) FROM districts ORDER BY district_code LIMIT 1")).scalar_one()
    spatial_store.upsert_district(conn, code=SPARE, name="spare", wkb=bytes(wkb), srid=deployment_srid(conn),
                                  source="test", licence="test", source_crs="EPSG:4548")


@pytest.mark.parametrize("versions,current", [
    ([(1, "published"), (2, "draft")], 1),                    # the published version over a newer draft
    ([(1, "draft"), (2, "draft")], 2),                        # nothing published: the newest draft
    ([(1, "published"), (2, "published"), (3, "draft")], 2),  # the newest of the published ones
    ([(1, "retired"), (2, "draft")], 2),
    ([], None),
])
def test_the_current_grid_version_is_the_newest_published_else_the_newest(bj, versions, current):
    _spare_district(bj)
    for version_id, status in versions:
        bj.execute(sa.text("INSERT INTO grid_versions (district_code, version_id, status) VALUES (:d, :v, :s)"),
                   {"d": SPARE, "v": version_id, "s": status})
    piece = bj.execute(sa.text(f"SELECT {spatial_store.current_version_sql(':d')}"), {"d": SPARE}).scalar()
    assert piece == current
    # The queries built on the piece agree with it.
    assert spatial_store.current_unit_grids(bj, SPARE)[0] == current
    assert spatial_store.grid_revision(bj, SPARE)[0] == current


def _cases_in_every_state(conn) -> tuple[str, str]:
    """One event case in each workflow state, all in one unit grid of Chaoyang's current version; returns
    (district, unit grid)."""
    grid = conn.execute(sa.text(
        f"""SELECT u.district_code, u.code, ST_PointOnSurface(u.geom) AS point FROM unit_grids u
             WHERE u.version_id = {spatial_store.current_version_sql("u.district_code")}
             ORDER BY u.code LIMIT 1""")).mappings().one()
    scheme, code = conn.execute(sa.text(
        "SELECT scheme, code FROM taxonomy_classes WHERE kind = 'event' ORDER BY scheme, code LIMIT 1")).one()
    for status in STATES:
        conn.execute(sa.text(
            """INSERT INTO cases (district_code, kind, scheme, class_code, status, unit_grid_code, geom)
               VALUES (:d, 'event', :scheme, :code, :status, :g, :point)"""),
            {"d": grid["district_code"], "scheme": scheme, "code": code, "status": status, "g": grid["code"],
             "point": grid["point"]})
    return grid["district_code"], grid["code"]


def test_open_cases_are_those_in_no_closed_state_in_every_query(bj):
    """The case list, the grid card and the cases tile layer all count as open exactly the cases whose state
    is not in ``workflow.CLOSED_STATES``."""
    district, grid = _cases_in_every_state(bj)
    every = bj.execute(sa.text("SELECT status FROM cases WHERE district_code = :d AND unit_grid_code = :g"),
                       {"d": district, "g": grid}).scalars().all()
    expected = sorted(s for s in every if s not in CLOSED_STATES)
    assert set(expected) == set(STATES) - set(CLOSED_STATES) and expected != sorted(every)

    srid = deployment_srid(bj)
    listed = case_store.list_cases(bj, district=district, status=None, kind=None, class_code=None, start=None,
                                   end=None, bbox=None, unit_grid=grid, supervision_grid=None, srid=srid,
                                   limit=100, offset=0, open_only=True)
    assert sorted(c["status"] for c in listed) == expected

    version = bj.execute(sa.text(f"SELECT {spatial_store.current_version_sql(':d')}"), {"d": district}).scalar()
    card = grid_store.grid_card(bj, district, version, grid)
    assert card["open_cases"] == len(expected) and card["all_cases"] == len(every)

    lon, lat = bj.execute(sa.text(
        "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform(geom, 4326) AS p FROM cases"
        " WHERE district_code = :d AND unit_grid_code = :g LIMIT 1) q"), {"d": district, "g": grid}).one()
    z = 16
    x = int((lon + 180) / 360 * 2 ** z)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2 ** z)
    layer = tiles.layer("cases")
    shown = {}
    for label, filters in (("all", {}), ("open", {"open": CLOSED_STATES})):
        data = tiles.make_tile(bj, layer, z, x, y, srid, filters)
        found = mapbox_vector_tile.decode(data)["cases"]["features"] if data else []
        shown[label] = sorted(f["properties"]["status"] for f in found if f["properties"]["unit_grid"] == grid)
    assert shown == {"all": sorted(every), "open": expected}
