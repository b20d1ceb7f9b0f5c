"""Attack pass on #25 Interop (part A): ``/ogc``, the exports and the QGIS project, read by accounts that must
not see everything (a disposal unit, a supervisor, a district-bound account, nobody), with hostile parameters,
and with clients that ask for the most or go away mid-answer. Real database, real HTTP where it matters."""

from __future__ import annotations

import csv
import io
import json
import socket
import time
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pyogrio
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from citygrid.cli import cli
from citygrid.interop import qgis_project
from tests.conftest import assert_error, rollback_backend, submitted_case, team_grid_points, user_token

D = "110105"
UNIT = f"unit-grids-{D}"
CASES = f"cases-{D}"
SECRET_NAME, SECRET_PHONE = "张秘密人", "13911112222"


def _parties(bj) -> tuple[str, str]:
    mine, theirs = bj.execute(sa.text("SELECT code FROM parties WHERE district_code = :d ORDER BY code LIMIT 2"),
                              {"d": D}).scalars().all()
    return mine, theirs


@pytest.fixture
def scoped_cases(bj, case_rules):
    """Four hotline cases with a caller's name and phone in grids of four teams; the first two dispatched to
    party ``mine``, the last two to ``theirs``. Returns (mine ids, theirs ids, mine party, theirs party,
    teams)."""
    mine_party, theirs_party = _parties(bj)
    mine, theirs, teams = [], [], []
    for i, (_grid, team, lon, lat) in enumerate(team_grid_points(bj, 4, D)):
        case = submitted_case(bj, case_rules, lon=lon, lat=lat, class_code="0102", source="hotline",
                              complainant={"name": SECRET_NAME, "phone": SECRET_PHONE})
        party = mine_party if i < 2 else theirs_party
        bj.execute(sa.text("""UPDATE cases SET attrs = attrs || jsonb_build_object('dispatched_to',
                                  jsonb_build_object('code', CAST(:p AS text), 'name', 'party ' || CAST(:p AS text)))
                               WHERE case_id = :id"""), {"id": case["case_id"], "p": party})
        (mine if i < 2 else theirs).append(case["case_id"])
        teams.append(team)
    return mine, theirs, mine_party, theirs_party, teams


def _doc(answer) -> dict:
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
    return json.loads(answer.get_data(as_text=True))


def _ids(answer) -> set:
    return {f["id"] for f in _doc(answer)["features"]}


# ------------------------------------------------------------------------------------------------ who reads what
def test_a_unit_reads_only_its_partys_cases_through_every_ogc_route(client_as, bj, scoped_cases):
    mine, theirs, mine_party, theirs_party, _ = scoped_cases
    unit = client_as("attack-unit", ["unit"], party=mine_party)
    items = f"/ogc/collections/{CASES}/items"
    doc = _doc(unit.get(items, query_string={"limit": 10000}))
    assert {f["id"] for f in doc["features"]} == set(mine)
    assert doc.get("numberMatched") == len(mine)  # the count is the scope's, not the district's
    # a filter naming the other party, or one of its cases, finds nothing and counts nothing
    for params in ({"party_code": theirs_party}, {"case_id": str(theirs[0])},
                   {"owner_responsibility": theirs_party}, {"offset": "1", "limit": "1"},
                   {"offset": "2"}, {"datetime": "../9999-01-01T00:00:00Z"}):
        found = _doc(unit.get(items, query_string=params))
        assert not {f["id"] for f in found["features"]} & set(theirs), params
        assert found.get("numberMatched", 0) <= len(mine), params
    for fid in theirs:
        assert_error(unit.get(f"{items}/{fid}"), 404, "not_found")
        assert unit.get(f"{items}/{fid}?f=html").status_code == 404
    assert unit.get(f"{items}/{mine[0]}").status_code == 200
    html = unit.get(items, query_string={"f": "html", "limit": 10000}).get_data(as_text=True)
    assert all(f">{fid}<" not in html for fid in theirs) and all(f">{fid}<" in html for fid in mine)


def test_a_supervisor_reads_only_its_teams_cases(client_as, bj, scoped_cases):
    mine, theirs, *_, teams = scoped_cases
    supervisor = client_as("attack-sup", ["supervisor"], team=teams[0])
    items = f"/ogc/collections/{CASES}/items"
    doc = _doc(supervisor.get(items, query_string={"limit": 10000}))
    assert {f["id"] for f in doc["features"]} == {mine[0]} and doc["numberMatched"] == 1
    assert _ids(supervisor.get(items, query_string={"supervision_code": "x"})) == set()
    for fid in (mine[1], *theirs):
        assert_error(supervisor.get(f"{items}/{fid}"), 404, "not_found")


def test_a_scoped_reader_is_not_told_the_districts_first_and_last_report_times(client, client_as, scoped_cases):
    """The collection's temporal extent spans every case of the district: a team's or party's reader gets none."""
    *_, teams = scoped_cases
    whole = _doc(client.get(f"/ogc/collections/{CASES}"))
    assert whole["extent"]["temporal"]["interval"][0][0] is not None
    supervisor = client_as("attack-sup-extent", ["supervisor"], team=teams[0])
    for answer in (supervisor.get(f"/ogc/collections/{CASES}"), supervisor.get("/ogc/collections")):
        doc = _doc(answer)
        described = [doc] if "id" in doc else [c for c in doc["collections"] if c["id"] == CASES]
        assert described and all("temporal" not in c.get("extent", {}) for c in described)


def test_no_output_carries_the_callers_name_or_phone(client, bj, scoped_cases, tmp_path):
    items = f"/ogc/collections/{CASES}/items"
    outputs = [client.get(items, query_string={"limit": 100}).get_data(),
               client.get(items, query_string={"limit": 100, "f": "html"}).get_data(),
               client.get(f"{items}/{scoped_cases[0][0]}").get_data(),
               client.get(f"{items}/{scoped_cases[0][0]}?f=html").get_data(),
               client.get(f"/ogc/collections/{CASES}/queryables").get_data()]
    for fmt in ("csv", "geojson", "gpkg", "shp"):
        answer = client.get(f"/api/v1/exports/cases?district={D}&format={fmt}")
        assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
        data = answer.get_data()
        if fmt == "shp":
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                data = b"".join(archive.read(n) for n in archive.namelist())
        outputs.append(data)
    for data in outputs:
        for secret in (SECRET_NAME, SECRET_PHONE):
            assert secret.encode() not in data and secret.encode("gbk") not in data


def test_exports_of_cases_follow_the_units_scope_in_every_format(client_as, bj, scoped_cases, tmp_path):
    mine, _theirs, mine_party, *_ = scoped_cases
    unit = client_as("attack-unit-export", ["unit"], party=mine_party)
    for fmt in ("csv", "gpkg", "geojson"):
        answer = unit.get(f"/api/v1/exports/cases?district={D}&format={fmt}")
        assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
        assert answer.headers["X-Feature-Count"] == str(len(mine))
        path = tmp_path / f"cases.{fmt}"
        path.write_bytes(answer.get_data())
        if fmt == "csv":
            ids = {int(r["case_id"]) for r in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig")))}
        else:
            ids = {int(v) for v in pyogrio.read_dataframe(path, layer=0)["case_id"]}
        assert ids == set(mine), fmt


def test_a_district_bound_account_reads_no_other_district_through_html_pages_either(client_as, bj):
    outsider = client_as("attack-outsider", ["analyst"])
    bj.execute(sa.text("UPDATE users SET district_code = '410104' WHERE username = 'attack-outsider'"))
    assert f">{UNIT}<" not in outsider.get("/ogc/collections?f=html").get_data(as_text=True)
    for path in (f"/ogc/collections/{UNIT}?f=html", f"/ogc/collections/{UNIT}/items?f=html",
                 f"/ogc/collections/{UNIT}/items/x?f=html", f"/ogc/collections/{CASES}/items?f=html"):
        assert outsider.get(path).status_code == 403, path
    assert outsider.get(f"/api/v1/exports/cases?district={D}&format=csv").status_code == 403


def test_anonymous_callers_read_no_features_through_any_format(anonymous_client):
    for path in (f"/ogc/collections/{CASES}/items?f=html", f"/ogc/collections/{CASES}/items/1?f=html",
                 "/ogc/collections?f=html", f"/api/v1/exports/cases?district={D}&format=csv"):
        assert anonymous_client.get(path).status_code == 401, path
    api = anonymous_client.get("/ogc/api").get_data(as_text=True)
    assert SECRET_PHONE not in api


# ------------------------------------------------------------------------------------------------------- hostile
HOSTILE = [
    {"bbox": "1e400,39,117,40"}, {"bbox": "116,39,117,1e309"}, {"bbox": "-1e308,-1e308,1e308,1e308"},
    {"bbox": "170,39,-170,40"}, {"bbox": "116,39,117,40", "bbox-crs": f"http://www.opengis.net/def/crs/EPSG/0/{4548}"},
    {"bbox": "0x10,39,117,40"}, {"bbox": "116,39,117,40,"}, {"bbox": "116;39;117;40"},
    {"crs": "http://www.opengis.net/def/crs/EPSG/0/99999"}, {"crs": "../../../etc/passwd"}, {"crs": "x" * 10000},
    {"crs": "[EPSG:4490"}, {"crs": "EPSG:4490]"}, {"bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/0"},
    {"datetime": "../.."}, {"datetime": ".."}, {"datetime": "/"}, {"datetime": "2026-01-01/2025-01-01"},
    {"datetime": "9999-12-31T23:59:59-12:00"}, {"datetime": "0001-01-01T00:00:00+14:00"},
    {"datetime": "9999-12-31"}, {"datetime": "0001-01-01"}, {"datetime": "2026-02-30"}, {"datetime": "now"},
    {"datetime": "+002026-01-01"}, {"datetime": "2026-01-01T00:00:00Z/.."}, {"datetime": "2026-01-01T24:00:00Z"},
    {"code": "' OR 1=1 --"}, {"code": "\u2028\u2029"}, {"code": "a" * 200}, {"code": "a" * 10000},
    {"code": "\x1b[31m"}, {"code": "%"}, {"code": "\\"}, {"street_code": "１１０１０５"},
    {"limit": "١٠"}, {"limit": "10.0"}, {"limit": " 10"}, {"offset": "9" * 19}, {"offset": "+1"},
    {"f": "GEOJSON"}, {"f": ""}, {"f": "html\x00"}, {"version": "1e2"}, {"version": "-0"},
]


@pytest.mark.parametrize("params", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_items_parameters_never_break_the_server(client, params):
    answer = client.get(f"/ogc/collections/{UNIT}/items", query_string=params)
    assert answer.status_code in (200, 400), (params, answer.status_code, answer.get_data(as_text=True)[:300])
    text = answer.get_data(as_text=True)
    if answer.status_code == 200:
        json.loads(text)
    else:
        assert "Traceback" not in text and json.loads(text)["error"] == "invalid_input"


@pytest.mark.parametrize("path", [
    f"/ogc/collections/unit-grids-{D}%0A/items", "/ogc/collections/unit-grids-１１０１０５/items",
    "/ogc/collections/unit-grids-..%2F..%2Fetc/items", "/ogc/collections/unit-grids-/items",
    "/ogc/collections/cases-110105%27%20OR%201=1/items", f"/ogc/collections/{CASES}/items/1%20OR%201=1",
    f"/ogc/collections/{CASES}/items/99999999999999999999", f"/ogc/collections/{CASES}/items/-9223372036854775809",
    f"/ogc/collections/{UNIT}/items/%E2%80%AE", f"/ogc/collections/{UNIT}/items/{'x' * 5000}",
    "/ogc/collections/unit-grids-110105%C2%A0/queryables", "/ogc/collections/%F0%9F%92%A9",
])
def test_hostile_collection_and_feature_ids_are_not_found_or_refused(client, path):
    answer = client.get(path)
    assert answer.status_code in (400, 404), (path, answer.status_code, answer.get_data(as_text=True)[:300])


@pytest.mark.parametrize("headers", [{"Accept": "text/html;q=0.1, application/json;q=0.9"},
                                     {"Accept": "*/*;q=0.0"}, {"Accept": "x" * 5000},
                                     {"Accept": "application/geo+json;q=NaN"}, {"Accept": ",,,;;;"}])
def test_accept_header_tricks_give_a_document_not_an_error(client, headers):
    answer = client.get(f"/ogc/collections/{UNIT}/items?limit=1", headers=headers)
    assert answer.status_code == 200 and answer.mimetype in ("application/geo+json", "text/html")


# -------------------------------------------------------------------------------------------- resource exhaustion
def _app(bj, beijing_db, **config):
    from citygrid.app import create_app

    return create_app({"CITYGRID_BACKEND": rollback_backend(bj, beijing_db.database or ""), "TESTING": True,
                       **config})


def test_an_html_items_page_is_bounded_like_a_geojson_page(bj, beijing_db):
    """The largest GeoJSON page holds a heavy slot (503 when none is free); the HTML page of the same size,
    built whole in memory and rendered, must not bypass that bound."""
    app = _app(bj, beijing_db, CITYGRID_HEAVY_REQUESTS=0)
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + user_token(bj, "attack-heavy", ["analyst"])
    big = f"/ogc/collections/{UNIT}/items?limit=10000"
    assert_error(client.get(big), 503, "overloaded")
    answer = client.get(big + "&f=html")
    if answer.status_code == 200:  # answered: then it was cut to a page the server builds without a slot
        rows = answer.get_data(as_text=True).count("<tr><td><a ")
        assert rows <= 2000, f"an HTML page of {rows} features built in memory without a heavy slot"
    else:
        assert_error(answer, 503, "overloaded")
    assert client.get(f"/ogc/collections/{UNIT}/items?limit=100&f=html").status_code == 200


def _backends(url: str, database: str) -> list[tuple[str, str]]:
    """(state, query) of the live server's database connections other than this one."""
    from citygrid.spatial import db

    engine = db.make_engine(db.database_url(url.settings), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(
                """SELECT state, query FROM pg_stat_activity
                    WHERE datname = :d AND pid <> pg_backend_pid() AND backend_type = 'client backend'
                      AND (state <> 'idle' OR query ILIKE '%json_build_object%')"""), {"d": database}).all()]
    finally:
        engine.dispose()


def test_a_client_that_goes_away_mid_stream_releases_its_database_connection(live_server, ogc_token):
    """Ask for the largest page of unit grids over real HTTP, read a little, hang up: the server must stop
    reading its cursor and give the connection back (no backend left active or idle in transaction)."""
    database = live_server.settings.database
    parts = urlsplit(live_server)
    for _ in range(3):
        sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall((f"GET /ogc/collections/{UNIT}/items?limit=10000&crs=http://www.opengis.net/def/crs/EPSG/0/"
                      f"4548 HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {ogc_token}\r\n"
                      "Connection: close\r\n\r\n").encode())
        head = sock.recv(2048)
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST: the server's next writes fail
    deadline = time.monotonic() + 20
    left = _backends(live_server, database)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = _backends(live_server, database)
    assert not [s for s, _ in left if s in ("active", "idle in transaction")], left


# ---------------------------------------------------------------------------------------------------- exports
def _export(beijing_db, *args: str):
    return CliRunner().invoke(cli, ["--database", beijing_db.database, "export", *args])


@pytest.mark.parametrize("encoding", ["latin1", "GB18030", "utf-16", "gbk\x00", "", "ascii", "../gbk"])
def test_export_encodings_other_than_utf8_and_gbk_are_refused(beijing_db, tmp_path, encoding):
    result = _export(beijing_db, "streets", "--district", D, "--format", "csv", "-o", str(tmp_path / "s.csv"),
                     "--encoding", encoding)
    assert result.exit_code == 2, result.output
    assert "encoding" in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_gbk_export_of_a_name_gbk_cannot_hold_leaves_the_old_file_and_nothing_else(beijing_engine, beijing_db,
                                                                                      tmp_path):
    """A committed street named with an emoji; a GBK CSV and a Shapefile to an existing path: refused, the old
    file untouched, no temporary file beside it."""
    with beijing_engine.begin() as conn:
        conn.execute(sa.text("UPDATE admin_areas SET name = name || '🚧' WHERE district_code = :d AND code = "
                             "(SELECT min(code) FROM admin_areas WHERE district_code = :d AND level = 'street')"),
                     {"d": D})
    try:
        for fmt, name in (("csv", "s.csv"), ("shp", "s.shp"), ("shp", "s.zip")):
            target = tmp_path / name
            target.write_text("old", encoding="utf-8")
            result = _export(beijing_db, "streets", "--district", D, "--format", fmt, "-o", str(target),
                             "--encoding", "gbk")
            assert result.exit_code == 2 and "GBK" in result.output, result.output
            assert target.read_text(encoding="utf-8") == "old"
            assert sorted(p.name for p in tmp_path.iterdir()) == [name], list(tmp_path.iterdir())
            target.unlink()
    finally:
        with beijing_engine.begin() as conn:
            conn.execute(sa.text("UPDATE admin_areas SET name = replace(name, '🚧', '') WHERE district_code = :d"),
                         {"d": D})


@pytest.mark.parametrize("output", ["/nonexistent-dir/x.gpkg", ".", "/", "/proc/self/x.gpkg", "LONG"])
def test_export_outputs_that_cannot_be_written_are_refused_plainly(beijing_db, tmp_path, output):
    """An output the exporter cannot stage beside (a folder it may not write, a name of 255 bytes) is an
    ``error: …`` and exit 2, not a traceback; a long name that can be written is written."""
    if output == "LONG":
        output = str(tmp_path / ("长" * 80 + ".gpkg"))  # 245 bytes: a valid name
        result = _export(beijing_db, "streets", "--district", D, "--format", "gpkg", "-o", output)
        assert result.exit_code == 0, result.output
        assert [p.name for p in tmp_path.iterdir()] == [Path(output).name]
        return
    result = _export(beijing_db, "streets", "--district", D, "--format", "gpkg", "-o", output)
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


def test_csv_exports_defuse_formula_names(client, bj):
    bj.execute(sa.text("UPDATE admin_areas SET name = :n WHERE district_code = :d AND code = "
                       "(SELECT min(code) FROM admin_areas WHERE district_code = :d AND level = 'street')"),
               {"d": D, "n": '=HYPERLINK("http://evil","x")'})
    for encoding in ("UTF-8", "GBK"):
        answer = client.get(f"/api/v1/exports/streets?district={D}&format=csv&encoding={encoding}")
        assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
        text = answer.get_data().decode("utf-8-sig" if encoding == "UTF-8" else "gbk")
        rows = list(csv.reader(io.StringIO(text)))
        assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows[1:] for cell in row[:-1]
                       if cell and not cell.lstrip("-").replace(".", "").isdigit()), rows[:3]


# ------------------------------------------------------------------------------------------------- QGIS project
@pytest.mark.parametrize("url", [
    "postgresql://reader:s3cr3t-PW@db.example:5432/citygrid?sslmode=require",
    "postgresql+psycopg://reader:s3cr3t-PW@/citygrid?host=/run/pg&password=s3cr3t-PW",
    "postgresql://reader@db.example/citygrid?password=s3cr3t-PW&passfile=/tmp/s3cr3t-PW",
    "postgresql://reader:s3cr3t-PW@db.example/citygrid?options=-c%20password%3Ds3cr3t-PW",
])
def test_a_qgis_project_never_carries_the_database_password(bj, url):
    pg = qgis_project.pg_from_url(make_url(url))
    assert "s3cr3t-PW" not in pg.uri()
    text = qgis_project.project_xml(bj, D, pg=pg)
    assert "s3cr3t-PW" not in text


def test_the_qgis_command_writes_no_password_from_database_url(beijing_db, tmp_path, monkeypatch):
    from citygrid.spatial import db

    url = db.database_url(beijing_db)
    # Over TCP (make test's second pass) the URL's own password is the secret; over the socket, whose trust
    # ignores a password, a made-up one stands in for it.
    secret = url.password or "s3cr3t-PW"
    url = url.set(password=secret)
    monkeypatch.setenv("DATABASE_URL", url.render_as_string(hide_password=False))
    out = tmp_path / "p.qgs"
    result = CliRunner().invoke(cli, ["--database", beijing_db.database, "qgis-project", "--district", D,
                                      "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert secret not in out.read_text(encoding="utf-8") and secret not in result.output
    assert not [p for p in Path(tmp_path).iterdir() if p.name != "p.qgs"]


def _slow_reader(url: str, path: str, token: str) -> socket.socket:
    """A client that asks for ``path``, reads the head of the answer and then nothing (a tiny receive window):
    the server's writes block once the socket buffers are full."""
    parts = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.settimeout(30)
    sock.connect((parts.hostname, parts.port))
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {token}\r\n"
                  "Connection: close\r\n\r\n").encode())
    head = sock.recv(1024)
    assert head.startswith(b"HTTP/1.1 200"), head[:300]
    return sock


def test_clients_that_stop_reading_the_largest_pages_do_not_hold_every_heavy_slot(live_server, ogc_token):
    """Two clients ask for the largest page and stop reading after its first bytes (a phone in a tunnel, or on
    purpose). The page's database work is done in well under a second; what is left is sending it to a client
    that does not read. That must not keep the process's heavy slots (webmap.heavy, 2 by default): an export or
    another big page asked meanwhile must be served, not refused with 503 for as long as the two wait."""
    import requests

    page = f"/ogc/collections/{UNIT}/items?limit=10000"
    stuck = [_slow_reader(live_server, page, ogc_token) for _ in range(2)]
    try:
        time.sleep(3)  # the server has long read its cursor; it is blocked writing to the two
        headers = {"Authorization": f"Bearer {ogc_token}"}
        export = requests.get(f"{live_server}/api/v1/exports/streets?district={D}&format=csv", headers=headers,
                              timeout=60)
        assert export.status_code == 200, (export.status_code, export.text[:300])
        big = requests.get(f"{live_server}{page}", headers=headers, timeout=60)
        assert big.status_code == 200, (big.status_code, big.text[:300])
    finally:
        for sock in stuck:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.close()


@pytest.mark.parametrize("bbox", ["-180,-90,180,90", "0,0,180,90", "-180,-90,116.6,40.2", "100,-90,180,90"])
def test_a_bbox_far_beyond_the_deployment_crs_selects_what_it_covers(client, bj, bbox):
    """GDAL's and QGIS's full extent is the whole world in CRS84. Transformed as it is into the deployment's
    transverse Mercator, such a box folds (the whole world selected no grid) or cannot be transformed at all
    (PostGIS: "Point outside of projection domain", a 500). Each box here covers the district's north-east
    corner, so it selects unit grids, and the whole world selects every one."""
    answer = client.get(f"/ogc/collections/{UNIT}/items", query_string={"bbox": bbox, "limit": 1})
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    matched = json.loads(answer.get_data(as_text=True))["numberMatched"]
    everything = json.loads(client.get(f"/ogc/collections/{UNIT}/items?limit=1").get_data(as_text=True))
    assert 0 < matched <= everything["numberMatched"]
    if bbox == "-180,-90,180,90":
        assert matched == everything["numberMatched"]
    far = client.get(f"/ogc/collections/{UNIT}/items", query_string={"bbox": "-80,-60,-10,-10"})
    assert far.status_code == 200 and json.loads(far.get_data(as_text=True))["numberMatched"] == 0


def test_a_draft_is_read_only_by_planners_of_its_district_through_ogc_and_exports(client_as, bj):
    """A draft's grids (and the new codes an edit gives them) are the planners': an analyst, or a planner bound
    to another district, gets 403 for version=<draft> on items, one item and an export; no datetime selects a
    draft; without a version everyone reads the published one."""
    from citygrid.gridding import drafts

    draft = drafts.create(bj, D, None, author="attack", note="", max_open=50)["version"]
    published = bj.execute(sa.text("SELECT max(version_id) FROM grid_versions WHERE district_code = :d "
                                   "AND status = 'published'"), {"d": D}).scalar_one()
    code = bj.execute(sa.text("SELECT min(code) FROM unit_grids WHERE district_code = :d AND version_id = :v"),
                      {"d": D, "v": draft}).scalar_one()
    analyst = client_as("attack-draft-analyst", ["analyst", "supervisor"], team=team_grid_points(bj, 1, D)[0][1])
    planner = client_as("attack-draft-planner", ["planner"])
    elsewhere = client_as("attack-draft-elsewhere", ["planner"])
    bj.execute(sa.text("UPDATE users SET district_code = '410104' WHERE username = 'attack-draft-elsewhere'"))
    for kind in ("unit-grids", "supervision-grids", "teams"):
        items = f"/ogc/collections/{kind}-{D}/items"
        assert_error(analyst.get(items, query_string={"version": draft}), 403, "forbidden")
        assert elsewhere.get(items, query_string={"version": draft}).status_code == 403
        assert_error(analyst.get(f"/api/v1/exports/{kind}?district={D}&version={draft}&format=csv"), 403,
                     "forbidden")
        assert planner.get(items, query_string={"version": draft, "limit": 1}).status_code == 200
    assert_error(analyst.get(f"/ogc/collections/{UNIT}/items/{code}", query_string={"version": draft}), 403,
                 "forbidden")
    for when in ("2100-01-01T00:00:00Z", "../2100-01-01T00:00:00Z", "2000-01-01T00:00:00Z/.."):
        doc = _doc(analyst.get(f"/ogc/collections/{UNIT}/items", query_string={"datetime": when, "limit": 1}))
        assert all(f["properties"]["version"] != draft for f in doc["features"]), when
    doc = _doc(analyst.get(f"/ogc/collections/{UNIT}/items?limit=1"))
    assert doc["features"][0]["properties"]["version"] == published


def test_a_folder_in_the_way_of_a_shapefiles_set_leaves_the_old_set_whole(beijing_db, tmp_path):
    """``-o x.shp`` where ``x.dbf`` is a folder: refused (exit 2) before any file of the set is replaced."""
    old = {name: "old" for name in ("s.shp", "s.shx", "s.prj")}
    for name, text in old.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "s.dbf").mkdir()
    result = _export(beijing_db, "streets", "--district", D, "--format", "shp", "-o", str(tmp_path / "s.shp"))
    assert result.exit_code == 2 and "s.dbf" in result.output, result.output
    assert {p.name: p.read_text(encoding="utf-8") for p in tmp_path.iterdir() if p.is_file()} == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.dbf", "s.prj", "s.shp", "s.shx"]


@pytest.mark.parametrize("name", ["/proc/self/p.qgs", "LONG"])
def test_a_qgis_project_that_cannot_be_written_is_refused_plainly(beijing_db, tmp_path, name):
    """An unwritable folder: ``error: …`` and exit 2, not a traceback. A valid name of 250 bytes (its
    ``.partial`` sibling, named after it, could not exist: a traceback) is written, nothing beside it."""
    output = str(tmp_path / ("长" * 82 + ".qgs")) if name == "LONG" else name  # 250 bytes
    result = CliRunner().invoke(cli, ["--database", beijing_db.database, "qgis-project", "--district", D,
                                      "-o", output])
    if name == "LONG":
        assert result.exit_code == 0, (result.output, repr(result.exception))
        assert [p.name for p in tmp_path.iterdir()] == [Path(output).name]
        return
    assert result.exit_code == 2, (result.output, repr(result.exception))
    assert "output" in result.output or "cannot write" in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_deep_offset_takes_a_heavy_slot_like_a_big_page(client):
    """An OFFSET walks that many entries before the page: a deep one is bounded like a big page (a 503 when
    every heavy slot is taken), a shallow one is not."""
    from citygrid.webmap.ogc_api import HEAVY_OFFSET

    items = f"/ogc/collections/unit-grids-{D}/items"
    extensions = client.application.extensions
    limiter = extensions["citygrid_heavy"]
    extensions["citygrid_heavy"] = type(limiter)(0, wait_s=0)
    try:
        assert_error(client.get(items, query_string={"offset": HEAVY_OFFSET + 1, "limit": 10}), 503, "overloaded")
        assert client.get(items, query_string={"offset": HEAVY_OFFSET, "limit": 10}).status_code == 200
        # the HTML table too: at most 500 rows, but its OFFSET walks as deep as asked
        assert client.get(items, query_string={"offset": HEAVY_OFFSET + 1, "f": "html"}).status_code == 503
        assert client.get(items, query_string={"offset": 10, "f": "html"}).status_code == 200
    finally:
        extensions["citygrid_heavy"] = limiter
    deep = client.get(items, query_string={"offset": HEAVY_OFFSET + 1, "limit": 10})
    assert deep.status_code == 200 and json.loads(deep.get_data(as_text=True))["features"] == []
