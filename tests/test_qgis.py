"""QGIS as a real client (#25): the styles (``interop.styles``), the project file (``interop.qgis_project``,
``citygrid qgis-project``), QGIS's OAPIF provider on ``/ogc`` and a styled GeoPackage export.

QGIS is Debian's ``python3-qgis`` run by ``/usr/bin/python3`` (not the venv) in a subprocess, headless
(``QT_QPA_PLATFORM=offscreen``); each script prints one ``RESULT {json}`` line. A machine without QGIS fails
these tests (``scripts/ensure_system.sh`` installs it), it never skips them.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.engine import URL, make_url

from citygrid.cli import cli
from citygrid.errors import InvalidInput, NotFound
from citygrid.interop import qgis_project, queries, styles
from citygrid.interop.collections import KINDS, collection_id
from citygrid.spatial import db
from tests.conftest import user_token

DISTRICT = "110105"
QGIS_PYTHON = "/usr/bin/python3"
AUTHCFG = "cg25qgs"  # the QGIS authentication configuration the tests store (7 characters, as QGIS makes them)
_PRELUDE = textwrap.dedent("""
    import json, os, sys
    from qgis.core import *
    ARGS = json.loads(sys.argv[1])
    APP = QgsApplication([], False)
    APP.initQgis()
    OUT = {}
""")
_EPILOGUE = textwrap.dedent("""
    print("RESULT " + json.dumps(OUT), flush=True)
    os._exit(0)  # QGIS's own teardown may crash a headless process after the answer is out
""")
# Store a Basic authentication configuration: the account's name and an API token as the password (how QGIS
# 3.22's OAPIF provider signs in; it sends no other header).
_BASIC_AUTHCFG = textwrap.dedent("""
    auth = QgsApplication.authManager()
    assert auth.setMasterPassword("qgis-test-master", True)
    config = QgsAuthMethodConfig("Basic")
    config.setId(ARGS["authcfg"]); config.setName("citygrid test")
    config.setConfig("username", ARGS["username"]); config.setConfig("password", ARGS["token"])
    assert auth.storeAuthenticationConfig(config), "the authentication configuration was not stored"
""")
# What QGIS made of a layer: valid, provider, CRS, features counted by iterating them, renderer, categories,
# labels, and how many features the renderer gives no symbol (a categorized style must draw every feature).
_DESCRIBE = textwrap.dedent("""
    def describe(layer):
        info = {"valid": layer.isValid(), "provider": layer.providerType(), "crs": layer.crs().authid(),
                "name": layer.name()}
        if not layer.isValid():
            return info
        renderer = layer.renderer()
        context = QgsRenderContext()
        renderer.startRender(context, layer.fields())
        count = unsymbolled = 0
        for feature in layer.getFeatures():
            count += 1
            unsymbolled += renderer.symbolForFeature(feature, context) is None
        renderer.stopRender(context)
        labeling = layer.labeling()
        info.update(count=count, unsymbolled=unsymbolled, renderer=renderer.type(),
                    attribute=getattr(renderer, "classAttribute", lambda: None)(),
                    categories=len(renderer.categories()) if renderer.type() == "categorizedSymbol" else None,
                    labels=layer.labelsEnabled(), label_field=labeling.settings().fieldName if labeling else None,
                    fields=[f.name() for f in layer.fields()])
        return info
""")


def run_qgis(script: str, args: dict, tmp_path: Path, *, env: dict[str, str] | None = None,
             timeout: int = 900) -> dict:
    """Run ``script`` under Debian's QGIS Python, headless, with ``ARGS`` = ``args``; its ``OUT`` dict."""
    home = tmp_path / "qgis-home"
    home.mkdir(exist_ok=True)
    environment = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(home), "XDG_RUNTIME_DIR": str(home),
                   "QGIS_AUTH_DB_DIR_PATH": str(home), **(env or {})}
    environment.pop("PYTHONPATH", None)
    done = subprocess.run([QGIS_PYTHON, "-c", _PRELUDE + _DESCRIBE + script + _EPILOGUE, json.dumps(args)],
                          env=environment, capture_output=True, text=True, timeout=timeout, check=False)
    results = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and results, f"QGIS failed (exit {done.returncode}):\n{done.stderr[-4000:]}"
    return json.loads(results[-1].removeprefix("RESULT "))


def test_qgis_is_installed_and_runs_headless(tmp_path):
    out = run_qgis("OUT['version'] = Qgis.QGIS_VERSION\nOUT['providers'] = QgsProviderRegistry.instance()"
                   ".providerList()", {}, tmp_path, timeout=120)
    assert out["version"].startswith("3.")
    assert {"postgres", "OAPIF", "ogr"} <= set(out["providers"])


# ------------------------------------------------------------------------------------------ styles, no QGIS
def _cid(kind: str) -> str:
    return collection_id(kind, DISTRICT)


def test_unit_grids_are_coloured_by_the_owners_of_the_chosen_role(bj):
    for role in ("responsibility", "management", "enforcement", "supervision"):
        root = ET.fromstring(styles.qml(bj, _cid("unit-grids"), role=role).split("\n", 1)[1])
        renderer = root.find("renderer-v2")
        assert renderer.get("type") == "categorizedSymbol" and renderer.get("attr") == f"owner_{role}"
        owners = bj.execute(sa.text(
            """SELECT DISTINCT p.code FROM grid_ownership o JOIN parties p USING (district_code, party_id)
                WHERE o.district_code = :d AND o.role = :r AND o.grid_kind = 'unit' AND o.valid @> now()"""),
            {"d": DISTRICT, "r": role}).scalars().all()
        values = [c.get("value") for c in renderer.iter("category")]
        assert sorted(values[:-1]) == sorted(owners) and values[-1] == ""  # the last: every other value
        assert len(renderer.find("symbols")) == len(values)
        assert root.find("labeling/settings/text-style").get("fieldName") == "code"


def test_the_default_role_is_responsibility_and_colours_are_stable(bj):
    first = styles.style_for(bj, _cid("unit-grids"))
    assert first.attribute == "owner_responsibility"
    again = styles.style_for(bj, _cid("unit-grids"), role="responsibility")
    assert first.categories == again.categories
    colours = {c.value: c.colour for c in first.categories}
    assert colours[first.categories[0].value] == styles.seeded_colour(first.categories[0].value)
    assert all(max(c) - min(c) > 20 and 60 < sum(c) / 3 < 230 for c in colours.values())  # neither grey nor extreme


def test_each_kind_has_its_renderer_and_labels_on_its_id(bj):
    expected = {"unit-grids": ("categorizedSymbol", "owner_responsibility"),
                "supervision-grids": ("categorizedSymbol", "team_code"),
                "components": ("categorizedSymbol", "class_code"), "cases": ("categorizedSymbol", "status"),
                "teams": ("singleSymbol", None), "communities": ("singleSymbol", None),
                "streets": ("singleSymbol", None)}
    for kind, (renderer_type, attribute) in expected.items():
        text = styles.qml(bj, _cid(kind))
        assert text.startswith("<!DOCTYPE qgis")
        root = ET.fromstring(text.split("\n", 1)[1])
        assert root.tag == "qgis" and root.get("labelsEnabled") == "1"
        renderer = root.find("renderer-v2")
        assert (renderer.get("type"), renderer.get("attr")) == (renderer_type, attribute), kind
        id_field = KINDS[kind].id_field
        assert root.find("labeling/settings/text-style").get("fieldName") == id_field
    teams = bj.execute(sa.text("SELECT count(*) FROM supervision_teams WHERE district_code = :d AND version_id = "
                               "(SELECT max(version_id) FROM grid_versions WHERE district_code = :d "
                               "AND status = 'published')"), {"d": DISTRICT}).scalar()
    assert len(styles.style_for(bj, _cid("supervision-grids")).categories) == teams
    statuses = [c.value for c in styles.style_for(bj, _cid("cases")).categories]
    assert "reported" in statuses and "closed" in statuses


def test_layer_styles_row_has_the_geopackage_columns(bj):
    row = styles.layer_styles_row(bj, _cid("supervision-grids"), "supervision_grids", "geom")
    assert set(row) == {"f_table_name", "f_geometry_column", "styleName", "styleQML", "styleSLD", "useAsDefault",
                        "description", "owner", "ui", "update_time"}
    assert row["useAsDefault"] is True and row["update_time"].tzinfo is not None
    assert ET.fromstring(row["styleQML"].split("\n", 1)[1]).find("renderer-v2").get("attr") == "team_code"


@pytest.mark.parametrize("role", ["owner", "", "responsibility; DROP TABLE", "x" * 10_000, "Responsibility"])
def test_an_unknown_role_is_refused(bj, role):
    with pytest.raises(InvalidInput) as refused:
        styles.qml(bj, _cid("unit-grids"), role=role)
    assert refused.value.field == "role"


@pytest.mark.parametrize("cid", ["unit-grids", "unit-grids-", "parcels-110105", "unit-grids-110105'--",
                                 "unit-grids-1101\x0005", "unit-grids-" + "1" * 100])
def test_an_unknown_collection_has_no_style(bj, cid):
    with pytest.raises(NotFound):
        styles.qml(bj, cid)


# ------------------------------------------------------------------------------------------ the project, no QGIS
def test_a_url_connection_never_carries_the_password():
    url = make_url("postgresql+psycopg://gis:s3cret-pw@db.example.org:5433/citygrid?sslmode=require")
    pg = qgis_project.pg_from_url(url)
    assert pg.uri() == "dbname='citygrid' host='db.example.org' port='5433' user='gis' sslmode='require'"
    socket = URL.create("postgresql+psycopg", username="citygrid", password="pw", database="city",
                        query={"host": "/srv/run dir", "port": "55432"})
    assert qgis_project.pg_from_url(socket).uri() == "dbname='city' host='/srv/run dir' port='55432' user='citygrid'"
    assert qgis_project.pg_from_service("citygrid_ro").uri() == "service='citygrid_ro'"


def test_the_project_names_no_password_and_both_groups(bj):
    url = make_url("postgresql+psycopg://gis:s3cret-pw@db.example.org/citygrid")
    text = qgis_project.project_xml(bj, DISTRICT, pg=qgis_project.pg_from_url(url),
                                    ogc_url="https://gis.example.org/ogc/", ogc_authcfg="abc1234")
    assert "s3cret" not in text and "password" not in text
    root = ET.fromstring(text.split("\n", 1)[1])
    groups = root.findall("layer-tree-group/layer-tree-group")
    assert len(groups) == 2 and groups[1].get("checked") == "Qt::Unchecked"
    sources = [m.findtext("datasource") for m in root.iter("maplayer")]
    kinds = [c["kind"] for c in qgis_project.district_collections(bj, DISTRICT)]
    assert len(sources) == 2 * len(kinds) and kinds[-1] == "unit-grids"
    assert all("url='https://gis.example.org/ogc'" in s and "authcfg=abc1234" in s for s in sources[len(kinds):])
    assert root.find("projectCrs/spatialrefsys/authid").text == f"EPSG:{db.deployment_srid(bj)}"


@pytest.mark.parametrize("url", ["ftp://host/ogc", "http://user:pw@host/ogc", "http://host/ogc?token=x",
                                 "http://host/o'gc", "http://host/o gc", "http://host/ogc\n", "javascript:alert(1)",
                                 "http:///ogc", "http://host/" + "a" * 600, 'http://host/"ogc'])
def test_a_bad_ogc_url_is_refused(bj, url):
    with pytest.raises(InvalidInput) as refused:
        qgis_project.project_xml(bj, DISTRICT, pg=qgis_project.pg_from_service("x"), ogc_url=url)
    assert refused.value.field == "ogc_url"


@pytest.mark.parametrize("name", ["", "a b", "x'y", "s\x00", "é", "x" * 64, "a=b"])
def test_a_bad_service_name_is_refused(name):
    with pytest.raises(InvalidInput) as refused:
        qgis_project.pg_from_service(name)
    assert refused.value.field == "service"


def test_a_bad_authcfg_or_district_is_refused(bj):
    pg = qgis_project.pg_from_service("x")
    with pytest.raises(InvalidInput):
        qgis_project.project_xml(bj, DISTRICT, pg=pg, ogc_url="http://h/ogc", ogc_authcfg="a' b")
    for district in ("999999", "110105' OR 1=1 --", "", "x" * 1000):
        with pytest.raises(NotFound):
            qgis_project.project_xml(bj, district, pg=pg)


def test_the_cli_refuses_bad_options(beijing_db, tmp_path):
    base = ["--database", beijing_db.database, "qgis-project", "--district", DISTRICT]
    runner = CliRunner()
    cases = [(["-o", str(tmp_path / "p.qgs"), "--service", "s", "--url-without-password"], 2),
             (["-o", str(tmp_path / "p.txt")], 2), (["-o", str(tmp_path / "missing" / "p.qgs")], 2),
             (["-o", str(tmp_path / "p.qgs"), "--role", "boss"], 2),
             (["-o", str(tmp_path / "p.qgs"), "--ogc-url", "http://u:p@h/ogc"], 2)]
    for options, code in cases:
        answer = runner.invoke(cli, base + options)
        assert answer.exit_code == code, (options, answer.output)
        assert "Traceback" not in answer.output
    answer = runner.invoke(cli, ["--database", beijing_db.database, "qgis-project", "--district", "999999",
                                 "-o", str(tmp_path / "p.qgs")])
    assert answer.exit_code == 3
    assert not list(tmp_path.glob("*.qgs*"))


# ------------------------------------------------------------------------------------------ Basic credentials
def _basic(username: str, token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{token}".encode()).decode()}


def test_reads_take_basic_credentials_with_an_api_token(bj, anonymous_client):
    token = user_token(bj, "qgis-basic", ["analyst"])
    other = user_token(bj, "qgis-other", ["analyst"])
    assert anonymous_client.get("/api/v1/districts", headers=_basic("qgis-basic", token)).status_code == 200
    refused = anonymous_client.get("/api/v1/districts", headers=_basic("qgis-basic", other))
    assert refused.status_code == 401 and "not that user's" in refused.get_json()["message"]
    # Writes never take Basic credentials (a browser may resend them on its own).
    posted = anonymous_client.post("/api/v1/cases", json={}, headers=_basic("qgis-basic", token))
    assert posted.status_code == 401 and "Bearer" in posted.get_json()["message"]
    for bad in ("Basic ", "Basic %%%", "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
                "Basic " + base64.b64encode(b":" + token.encode()).decode()):
        assert anonymous_client.get("/api/v1/districts", headers={"Authorization": bad}).status_code == 401


# ------------------------------------------------------------------------------------------ QGIS reads them
@pytest.fixture(scope="module")
def census_and_cases(beijing_engine, case_rules):
    """A few components (two classes) and cases committed in the Beijing test database for QGIS (which reads
    through its own connection) and removed afterwards."""
    from citygrid.cases import service
    from citygrid.cases.intake import parse_report

    points = [(116.45, 39.92), (116.47, 39.93), (116.49, 39.95), (116.51, 39.97)]
    with beijing_engine.begin() as conn:
        srid = db.deployment_srid(conn)
        for n, ((lon, lat), code) in enumerate(zip(points, ("0101", "0101", "0118", "0118"), strict=True)):
            conn.execute(sa.text(
                """INSERT INTO components (district_code, obj_id, valid_from, scheme, class_code, obj_name, geom)
                   VALUES (:d, :o, '2025-01-01', 'cjt214', :c, '测试', ST_Transform(ST_SetSRID(
                           ST_MakePoint(:lon, :lat), 4326), :srid))"""),
                {"d": DISTRICT, "o": f"11010501{code[2:]}9{n:05d}", "c": code, "lon": lon, "lat": lat, "srid": srid})
        cases = []
        for n, (lon, lat) in enumerate(points):
            body = {"lon": lon, "lat": lat, "kind": "event", "class_code": ("0102", "0103")[n % 2],
                    "description": f"qgis test case {n}", "source": "supervisor"}
            cases.append(service.submit(conn, case_rules, parse_report(body))[0]["case_id"])
    try:
        yield
    finally:
        with beijing_engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM cases WHERE district_code = :d AND case_id = ANY(:ids)"),
                         {"d": DISTRICT, "ids": cases})
            conn.execute(sa.text("DELETE FROM components WHERE district_code = :d AND obj_name = '测试' "
                                 "AND obj_id LIKE '11010501__9%'"), {"d": DISTRICT})


def _expected_counts(engine) -> dict[str, int]:
    """Each collection's number of features as ``/ogc`` counts them (exact)."""
    counts = {}
    with engine.connect() as conn:
        for collection in qgis_project.district_collections(conn, DISTRICT):
            query = queries.FeatureQuery(limit=1)
            count, exact = queries.number_matched(conn, collection["id"], query, queries.OPERATOR)
            assert exact, collection["id"]
            counts[collection["kind"]] = count
        counts["unit-grids (SQL)"] = conn.execute(sa.text(
            """SELECT count(*) FROM unit_grids WHERE district_code = :d AND version_id =
                 (SELECT max(version_id) FROM grid_versions WHERE district_code = :d AND status = 'published')"""),
            {"d": DISTRICT}).scalar()
    return counts


def _password_env(settings) -> dict[str, str]:
    """PGPASSWORD for QGIS when the test database's URL has one (the project never does)."""
    password = db.database_url(settings).password
    return {"PGPASSWORD": password} if password else {}


def test_the_project_opens_in_qgis_with_the_database_counts(beijing_db, beijing_engine, census_and_cases,
                                                            live_server, ogc_token, tmp_path):
    path = tmp_path / "city.qgs"
    answer = CliRunner().invoke(cli, ["--database", beijing_db.database, "qgis-project", "--district", DISTRICT,
                                      "-o", str(path), "--role", "management", "--ogc-url", f"{live_server}/ogc",
                                      "--ogc-authcfg", AUTHCFG])
    assert answer.exit_code == 0, answer.output
    password = db.database_url(beijing_db).password
    assert password is None or password not in path.read_text(encoding="utf-8")
    script = _BASIC_AUTHCFG + textwrap.dedent("""
        project = QgsProject.instance()
        OUT["read"] = project.read(ARGS["path"])
        OUT["crs"] = project.crs().authid()
        OUT["layers"] = {layer_id: describe(layer) for layer_id, layer in project.mapLayers().items()
                         if layer.providerType() == "postgres" or layer_id.startswith("unit_grids")}
    """)
    out = run_qgis(script, {"path": str(path), "authcfg": AUTHCFG, "username": "ogc-reader", "token": ogc_token},
                   tmp_path, env=_password_env(beijing_db))
    assert out["read"] is True and out["crs"] == "EPSG:4548"
    expected = _expected_counts(beijing_engine)
    assert expected["components"] >= 4 and expected["cases"] >= 4
    with beijing_engine.connect() as conn:
        collections = qgis_project.district_collections(conn, DISTRICT)
        wanted = {c["kind"]: styles.style_for(conn, c["id"], role="management") for c in collections}
    for kind, style in wanted.items():
        layer = out["layers"][f"{collection_id(kind, DISTRICT).replace('-', '_')}_postgis"]
        assert layer["valid"] and layer["crs"] == "EPSG:4548", (kind, layer)
        assert layer["count"] == expected[kind], (kind, layer["count"], expected[kind])
        assert layer["unsymbolled"] == 0 and layer["labels"] and layer["label_field"] == style.label_field
        assert {f.name for f in KINDS[kind].fields} <= set(layer["fields"]), kind
        if style.attribute:
            assert (layer["renderer"], layer["attribute"]) == ("categorizedSymbol", style.attribute), kind
            assert layer["categories"] == len(style.categories) + 1, kind
        else:
            assert layer["renderer"] == "singleSymbol", kind
    assert expected["unit-grids"] == expected["unit-grids (SQL)"] > 0
    # QGIS's own OAPIF provider reads the unit grids from the live server, signed in with Basic credentials.
    ogc = out["layers"]["unit_grids_110105_ogc"]
    assert ogc["valid"] and ogc["provider"] == "OAPIF", ogc
    assert ogc["count"] == expected["unit-grids"] and ogc["unsymbolled"] == 0
    assert ogc["attribute"] == "owner_management"


def test_qgis_oapif_reads_the_unit_grids_and_refuses_without_an_account(beijing_engine, live_server, ogc_token,
                                                                        tmp_path):
    script = _BASIC_AUTHCFG + textwrap.dedent("""
        base = f"url='{ARGS['url']}' typename='{ARGS['cid']}' restrictToRequestBBOX='0'"
        signed = QgsVectorLayer(base + f" authcfg={ARGS['authcfg']}", "signed", "OAPIF")
        OUT["signed"] = describe(signed)
        OUT["anonymous"] = QgsVectorLayer(base, "anonymous", "OAPIF").isValid()
    """)
    out = run_qgis(script, {"url": f"{live_server}/ogc", "cid": _cid("unit-grids"), "authcfg": AUTHCFG,
                            "username": "ogc-reader", "token": ogc_token}, tmp_path)
    expected = _expected_counts(beijing_engine)["unit-grids"]
    assert out["signed"]["valid"] and out["signed"]["count"] == expected
    assert {"code", "owner_responsibility", "team_code"} <= set(out["signed"]["fields"])
    assert out["anonymous"] is False


def test_a_geopackage_export_opens_in_qgis_with_its_style(bj, beijing_db, tmp_path):
    from citygrid.interop import exports

    path = tmp_path / "supervision.gpkg"
    exports.export(bj, exports.ExportRequest(kind="supervision-grids", district=DISTRICT, fmt="gpkg"), path,
                   queries.OPERATOR)
    style = styles.style_for(bj, _cid("supervision-grids"))
    script = textwrap.dedent("""
        layer = QgsVectorLayer(ARGS["path"], "export", "ogr")
        OUT["layer"] = describe(layer)
        OUT["styles"] = layer.listStylesInDatabase()[0] if layer.isValid() else None
    """)
    out = run_qgis(script, {"path": str(path)}, tmp_path)
    layer = out["layer"]
    assert layer["valid"] and layer["count"] == bj.execute(sa.text(
        """SELECT count(*) FROM supervision_grids WHERE district_code = :d AND version_id =
             (SELECT max(version_id) FROM grid_versions WHERE district_code = :d AND status = 'published')"""),
        {"d": DISTRICT}).scalar()
    assert out["styles"] >= 1
    assert (layer["renderer"], layer["attribute"]) == ("categorizedSymbol", "team_code")
    assert layer["categories"] == len(style.categories) + 1 and layer["unsymbolled"] == 0
    assert layer["labels"] and layer["label_field"] == "code"


def test_a_project_by_service_name_opens_through_the_service_file(beijing_db, beijing_engine, tmp_path):
    url = db.database_url(beijing_db)
    service = tmp_path / "pg_service.conf"
    params = dict(qgis_project.pg_from_url(url).params)
    service.write_text("[citygrid_test]\n" + "".join(f"{k}={v}\n" for k, v in params.items()), encoding="utf-8")
    path = tmp_path / "service.qgs"
    answer = CliRunner().invoke(cli, ["--database", beijing_db.database, "qgis-project", "--district", DISTRICT,
                                      "-o", str(path), "--service", "citygrid_test"])
    assert answer.exit_code == 0, answer.output
    assert "service='citygrid_test'" in path.read_text(encoding="utf-8") and "dbname=" not in path.read_text()
    script = textwrap.dedent("""
        project = QgsProject.instance()
        OUT["read"] = project.read(ARGS["path"])
        layer = project.mapLayer("unit_grids_110105_postgis")
        OUT["layer"] = describe(layer)
        OUT["valid"] = sorted(l.isValid() for l in project.mapLayers().values())
    """)
    out = run_qgis(script, {"path": str(path)}, tmp_path,
                   env={"PGSERVICEFILE": str(service), **_password_env(beijing_db)})
    assert out["read"] and set(out["valid"]) == {True}
    assert out["layer"]["count"] == _expected_counts(beijing_engine)["unit-grids"]
    assert out["layer"]["attribute"] == "owner_responsibility"
