"""The ``ogc_items`` bench's own pieces (#25): the anchor's view serves exactly our components collection's
features (so pygeoapi, reading it, is compared on the same rows and properties), and the ``identical`` check
notices what it must notice. pygeoapi itself runs only in ``make bench`` (its own venv, ``.venv-bench``)."""

from __future__ import annotations

import copy
import json

import sqlalchemy as sa

from bench.ogc_items import VIEW, compare, feature_difference, items_path, make_anchor_view, pygeoapi_config
from citygrid.interop import queries

BOX = (116.44, 39.90, 116.50, 39.95)  # lon/lat, central Chaoyang


def _synthetic_components(conn, n: int = 4000) -> None:
    """``n`` SYNTHETIC current components inside Chaoyang (seeded), in the test's rolled-back transaction."""
    conn.execute(sa.text(
        """WITH points AS (SELECT row_number() OVER () AS g, d.geom
                             FROM (SELECT (ST_Dump(ST_GeneratePoints(geom, :n, 2026))).geom AS geom FROM districts
                                    WHERE district_code = '110105') d),
                classes AS (SELECT row_number() OVER (ORDER BY code) - 1 AS i, code FROM taxonomy_classes
                             WHERE kind = 'component' AND scheme = 'cjt214'),
                n AS (SELECT count(*) AS k FROM classes)
           INSERT INTO components (district_code, obj_id, scheme, class_code, obj_name, dept_name1, or_date,
                                   synthetic, geom)
           SELECT '110105', '110105' || c.code || lpad(p.g::text, 6, '0'), 'cjt214', c.code, '合成部件', '主管',
                  DATE '2024-06-01', true, p.geom
             FROM points p, n JOIN classes c ON true WHERE c.i = (p.g * 7919) % n.k"""), {"n": n})


def _anchor_features(conn, box) -> list[dict]:
    """The view's rows in the box as pygeoapi's PostgreSQL provider turns them into features: the id field as
    ``id``, every other column (the id included) a property, the geometry as GeoJSON, ordered by the id."""
    rows = conn.execute(sa.text(
        f"""SELECT obj_id, to_jsonb(v) - 'geom' AS properties, ST_AsGeoJSON(geom, 15) AS geometry FROM {VIEW} v
             WHERE ST_Intersects(ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326), geom) ORDER BY obj_id"""),
        dict(zip(("x0", "y0", "x1", "y1"), box, strict=True))).all()
    return [{"type": "Feature", "id": r.obj_id, "properties": r.properties, "geometry": json.loads(r.geometry)}
            for r in rows]


def test_anchor_view_serves_our_components_features(bj):
    _synthetic_components(bj)
    make_anchor_view(bj)
    reader = queries.Reader(role=None, home=None, cases=None)
    ours = [json.loads(t) for t in queries.features_geojson_text(
        bj, "components-110105", queries.FeatureQuery(limit=5000, bbox=BOX), reader)]
    anchor = _anchor_features(bj, BOX)
    assert len(ours) > 100
    identical, problems = compare([[ours]], [[anchor]])
    assert identical, problems


def test_identical_check_notices_ids_properties_and_coordinates():
    feature = {"type": "Feature", "id": "1101050101000001",
               "properties": {"obj_id": "1101050101000001", "or_date": "2024-06-01", "dept_code1": None,
                              "valid_from": "2026-12-07T20:34:44.662938+08:00"},
               "geometry": {"type": "Point", "coordinates": [116.4812345678, 39.9312345678]}}
    same_instant = copy.deepcopy(feature)
    same_instant["properties"]["valid_from"] = "2026-12-07T12:34:44.662938Z"
    same_instant["geometry"]["coordinates"][0] += 4e-10
    assert feature_difference(feature, same_instant) is None
    for change in (lambda f: f.update(id="1101050101000002"),
                   lambda f: f["properties"].update(or_date="2024-06-02"),
                   lambda f: f["properties"].update(dept_code1=""),
                   lambda f: f["properties"].pop("valid_from"),
                   lambda f: f["properties"].update(valid_from="2026-12-07T20:34:44.662938Z"),
                   lambda f: f["geometry"]["coordinates"].__setitem__(1, 39.9312345678 + 2e-9)):
        other = copy.deepcopy(feature)
        change(other)
        assert feature_difference(feature, other), other
    assert compare([[[feature]]], [[[feature]]]) == (True, [])
    assert not compare([[[feature], []]], [[[feature]]])[0]  # a page more on one side
    second = copy.deepcopy(feature)
    second["id"] = second["properties"]["obj_id"] = "1101050101000002"
    assert not compare([[[feature, second]]], [[[second, feature]]])[0]  # the same features in another order


def test_same_request_for_both_servers_and_pygeoapi_reads_the_view():
    box = (116.4, 39.9, 116.41, 39.91)
    assert items_path("/ogc", box, 1000) == ("/ogc/collections/components-110105/items?bbox=116.400000%2C39.900000"
                                             "%2C116.410000%2C39.910000&limit=1000&offset=1000")
    assert items_path("", box, 0).startswith("/collections/components-110105/items?")
    from citygrid.config import Settings

    config = pygeoapi_config(Settings.from_env("citygrid_bench_ogc"), 8080, [116.3, 39.8, 116.6, 40.1])
    provider = config["resources"]["components-110105"]["providers"][0]
    assert provider["name"] == "PostgreSQL" and provider["table"] == VIEW and provider["id_field"] == "obj_id"
    assert config["server"]["limits"]["max_items"] >= 1000
