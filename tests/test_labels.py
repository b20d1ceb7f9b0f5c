"""Honest labels and operations (#19): recorded data sources in the footer, status counts, the demo sign-in,
``db url --libpq``, exact bounding boxes and inclusive one-day periods. The city outside China is a square of
Brooklyn stored in UTM 18N (EPSG:32618)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pyproj
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from citygrid import cli as cli_module
from citygrid import deploy
from citygrid.app import create_app
from citygrid.cli import cli
from citygrid.errors import InvalidInput
from citygrid.periods import period
from citygrid.spatial import db, store
from citygrid.spatial.sources import SYNTHETIC_SOURCE, attributions, source_text

from .conftest import RUN_ID, city_client, engine_on, fresh_database, signed_in, user_token

BROOKLYN = "360047"  # (a 6-digit code: the code scheme for other cities is another part of #19)
W, S, E, N = -73.96, 40.64, -73.94, 40.66  # the district's square, EPSG:4326


def _feature(geometry: dict, **props) -> dict:
    return {"type": "Feature", "properties": props, "geometry": geometry}


def _write(path: Path, features: list[dict]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def run(*args: str, code: int = 0):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output + result.stderr
    return result


@pytest.fixture(scope="module")
def city(server_settings, tmp_path_factory):
    """A Brooklyn deployment (EPSG:32618, no demo data): its boundary and roads imported by the CLI with their
    own sources and licences, and a small case history."""
    files = tmp_path_factory.mktemp("brooklyn")
    square = {"type": "Polygon", "coordinates": [[[W, S], [E, S], [E, N], [W, N], [W, S]]]}
    boundary = _write(files / "brooklyn.geojson", [_feature(square, name="Brooklyn square")])
    roads = _write(files / "roads.geojson", [
        _feature({"type": "LineString", "coordinates": [[W - 0.001, 40.65], [E + 0.001, 40.65]]},
                 highway="primary", name="Church Ave"),
        _feature({"type": "LineString", "coordinates": [[-73.95, S - 0.001], [-73.95, N + 0.001]]},
                 highway="secondary", name="Flatbush Ave"),
    ])
    with fresh_database(server_settings, f"citygrid_test_labels_{RUN_ID}", 32618, "Brooklyn test") as settings:
        name = settings.database
        run("--database", name, "districts", "import", str(boundary), "--code", BROOKLYN, "--name", "Brooklyn",
            "--source", "NYC Open Data <Borough Boundaries>", "--licence", "public domain (NYC Open Data)")
        run("--database", name, "lines", "import", str(roads), "--district", BROOKLYN, "--kind", "road",
            "--source", "OpenStreetMap, Brooklyn extract", "--licence", "ODbL 1.0")
        yield settings, files


# ------------------------------------------------------------------------------------------ data sources
def test_a_citys_footer_names_its_own_sources_not_chinese_demo_data(city):
    settings, _ = city
    with engine_on(settings) as engine, db.rolled_back(engine) as conn:
        client = city_client(conn, settings, "brooklyn-admin")
        page = client.get("/")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        footer = html[html.index("<footer>"):html.index("</footer>")]
        assert "district boundary: NYC Open Data &lt;Borough Boundaries&gt; (public domain (NYC Open Data))" in footer
        assert "roads: OpenStreetMap, Brooklyn extract (ODbL 1.0)" in footer
        for false_claim in ("Vonng", "Amap", "GCJ-02", "SYNTHETIC", "Demo", "demo"):
            assert false_claim not in footer
        listed = client.get("/api/v1/sources").get_json()
        assert {(s["kind"], s["source"]) for s in listed["sources"]} == {
            ("district", "NYC Open Data <Borough Boundaries>"), ("road", "OpenStreetMap, Brooklyn extract")}
        assert [a["what"] for a in listed["attributions"]] == ["district boundary", "roads"]


def test_demo_footer_says_what_the_demo_district_really_has(client, bj):
    """Chaoyang has no roads: the fixed footer's "Roads: © OpenStreetMap" was false there; its boundary and
    streets/communities come from Vonng/adcode, and its census/history are SYNTHETIC only once seeded."""
    footer = client.get("/").get_data(as_text=True).split("<footer>")[1].split("</footer>")[0]
    assert "district boundary, streets, communities: Vonng/adcode" in footer and "CC BY 4.0" in footer
    assert "OpenStreetMap" not in footer and "SYNTHETIC" not in footer
    store.record_source(bj, district="110105", kind="census", source=SYNTHETIC_SOURCE, synthetic=True)
    store.record_source(bj, district="110105", kind="cases", source=SYNTHETIC_SOURCE, synthetic=True)
    footer = client.get("/").get_data(as_text=True).split("<footer>")[1].split("</footer>")[0]
    assert f"component census, case history: SYNTHETIC — {SYNTHETIC_SOURCE}" in footer


def test_html_in_a_source_is_escaped_in_the_footer(client, bj):
    store.record_source(bj, district="110105", kind="cases", source='<script>alert("src")</script>',
                        licence="<img src=x onerror=alert(1)>")
    html = client.get("/").get_data(as_text=True)
    assert "<script>alert(" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;src&#34;)&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_reimport_from_another_source_replaces_the_recorded_one(bj):
    from citygrid.districts import import_district
    from citygrid.loaders.vector import read_vector

    before = {(s["kind"], s["source"]) for s in store.data_sources(bj, "110105")}
    assert ("district", "Vonng/adcode @ b755d6e (Amap fences, NBS 2016 codes)") in before
    demo = deploy.demo_district("chaoyang")
    boundary = read_vector(demo.path(deploy.Settings.from_env().demo_dir, demo.boundary), crs=demo.boundary_crs)
    import_district(bj, boundary, code="110105", name="朝阳区", source="Beijing survey 2026", licence="")
    after = {(s["kind"], s["source"]) for s in store.data_sources(bj, "110105")}
    assert ("district", "Beijing survey 2026") in after
    assert not any(kind == "district" and source != "Beijing survey 2026" for kind, source in after)
    assert {s for s in before if s[0] != "district"} <= after  # streets/communities keep theirs


def test_cli_census_and_case_imports_record_their_sources_and_status_counts_them(city):
    settings, files = city
    name = settings.database
    lamps = _write(files / "lamps.geojson", [
        _feature({"type": "Point", "coordinates": [-73.955 + i * 0.001, 40.645]}, ObjID="", class_code="0109")
        for i in range(3)])
    dry = run("--database", name, "census", "import", str(lamps), "--district", BROOKLYN, "--dry-run",
              "--source", "DOT street lights (dry run)")
    assert json.loads(dry.stdout)["state"] == "preview"
    committed = run("--database", name, "census", "import", str(lamps), "--district", BROOKLYN, "--source",
                    "DOT street lights", "--licence", "NYC Open Data terms")
    assert json.loads(committed.stdout)["state"] == "committed"
    cases_csv = files / "311.csv"
    cases_csv.write_text("lon,lat,kind,class_code,description,reported_at,status\n"
                         "-73.951,40.651,event,0102,Litter,2025-06-01T09:00:00-04:00,closed\n"
                         "-73.952,40.652,event,0102,Litter again,2025-06-02T09:00:00-04:00,closed\n")
    imported = json.loads(run("--database", name, "cases", "import", str(cases_csv), "--source",
                              "NYC 311 Service Requests", "--licence", "NYC Open Data terms").stdout)
    assert imported["imported"] == 2, imported
    status = json.loads(run("--database", name, "status", "--json").stdout)
    (district,) = status["districts"]
    assert (district["cases"], district["synthetic_cases"], district["components"]) == (2, 0, 3)
    sources = {(s["kind"], s["source"], s["licence"], s["synthetic"]) for s in district["sources"]}
    assert ("cases", "NYC 311 Service Requests", "NYC Open Data terms", False) in sources
    assert ("census", "DOT street lights", "NYC Open Data terms", False) in sources
    assert not any("dry run" in s[1] for s in sources)  # a dry run records nothing that counts
    text = run("--database", name, "status").stdout
    assert "3 components, 2 cases" in text and "cases: NYC 311 Service Requests (NYC Open Data terms)" in text


@pytest.mark.parametrize(("command", "text", "needle"), [
    ("districts", "Borough\x07Boundaries", "U+0007"),
    ("districts", "x" * 10_240, "10,240 characters long; at most 300"),
    ("districts", "left\u202eright", "U+202E"),
    ("census", "two\nlines", "U+000A"),
    ("cases", "x" * 10_240, "at most 300"),
])
def test_hostile_source_texts_are_refused_with_a_clear_message(city, command, text, needle):
    settings, files = city
    name = settings.database
    target = files / "brooklyn.geojson"
    args = {"districts": ["districts", "import", str(target), "--code", "360048", "--name", "Elsewhere"],
            "census": ["census", "import", str(target), "--district", BROOKLYN],
            "cases": ["cases", "import", str(files / "none.csv")]}[command]
    result = run("--database", name, *args, "--source", text, code=2)
    assert needle in result.stderr and "source" in result.stderr and "Traceback" not in result.output
    status = json.loads(run("--database", name, "status", "--json").stdout)
    assert [d["code"] for d in status["districts"]] == [BROOKLYN]  # nothing was imported


def test_hostile_licence_and_source_fields_of_an_upload_are_400(client_as):
    gis = client_as("labels-gis", ["gis"])
    for field, value, needle in (("source", "a\x00b", "U+0000"), ("licence", "é" * 10_000, "at most 300"),
                                 ("source", "\u2066isolated", "U+2066")):
        answer = gis.post("/api/v1/imports", data={"district": "110105", field: value,
                                                   "file": (io.BytesIO(b"ObjID,x,y\n"), "c.csv")},
                          content_type="multipart/form-data")
        assert answer.status_code == 400, answer.get_json()
        assert needle in answer.get_json()["message"] and answer.get_json()["details"][0]["field"] == field


def test_source_text_and_attributions_are_plain():
    assert source_text("  OSM  ") == "OSM"
    with pytest.raises(InvalidInput, match="empty"):
        source_text("   ")
    assert source_text("", "licence", required=False) == ""
    rows = [{"district_code": d, "kind": k, "source": s, "licence": "", "synthetic": y}
            for d, k, s, y in (("A", "road", "OSM", False), ("B", "road", "OSM", False),
                               ("A", "cases", SYNTHETIC_SOURCE, True), ("A", "district", "Survey", False))]
    lines = attributions(rows, n_districts=2)
    assert [(a["what"], a["source"], a["districts"], a["synthetic"]) for a in lines] == [
        ("district boundary", "Survey", ["A"], False), ("roads", "OSM", ["A", "B"], False),
        ("case history", SYNTHETIC_SOURCE, ["A"], True)]


def test_migration_backfills_sources_from_the_rows(server_settings):
    from alembic import command

    with (fresh_database(server_settings, f"citygrid_test_srcmig_{RUN_ID}", 4548) as settings,
          engine_on(settings) as engine):
        with engine.begin() as conn:
            command.downgrade(db.alembic_config(conn), "0011")
            conn.execute(sa.text(
                """INSERT INTO districts (district_code, name, source, licence, geom)
                   VALUES ('110105', 'x', 'Survey' || chr(7) || '2020', 'CC0',
                           ST_Multi(ST_Buffer(ST_SetSRID(ST_MakePoint(450000, 4420000), 4548), 1000)))"""))
            conn.execute(sa.text(
                """INSERT INTO lines (district_code, kind, source, licence, geom)
                   SELECT '110105', kind, source, licence,
                          ST_SetSRID(ST_MakeLine(ST_MakePoint(450000, y), ST_MakePoint(450100, y)), 4548)
                     FROM (VALUES ('road', 'OSM', 'ODbL', 4420000), ('road', 'OSM', 'ODbL', 4420100),
                                  ('water', '', '', 4420200)) v (kind, source, licence, y)"""))
            conn.execute(sa.text(
                """INSERT INTO cases (district_code, kind, scheme, class_code, synthetic, geom)
                   VALUES ('110105', 'event', 'cjt214', '0102', true,
                           ST_SetSRID(ST_MakePoint(450000, 4420000), 4548))"""))
        db.upgrade(engine, srid=4548, name="test")
        with engine.connect() as conn:
            rows = {(r["kind"], r["source"], r["licence"], r["synthetic"]) for r in store.data_sources(conn)}
    assert rows == {("district", "Survey 2020", "CC0", False), ("road", "OSM", "ODbL", False),
                    ("cases", SYNTHETIC_SOURCE, "", True)}


# ------------------------------------------------------------------------------------------ serve, status, db url
def test_serve_offers_the_demo_sign_in_only_where_the_demo_accounts_exist(city, beijing_db, capsys, monkeypatch,
                                                                        tmp_path):
    secret = tmp_path / "demo-password"
    secret.write_text("not shown\n")
    monkeypatch.setattr(deploy, "demo_password_file", lambda settings: secret)
    cli_module._echo_demo_sign_in(city[0])  # a city's own deployment: no demo accounts
    assert capsys.readouterr().out == ""
    cli_module._echo_demo_sign_in(beijing_db)  # load-demo made them there
    out = capsys.readouterr().out
    assert "'demo'" in out and "'demo-supervisor-110105'" in out and str(secret) in out and "not shown" not in out
    for role in ("acceptor", "dispatcher", "calltaker", "lead", "unit"):  # one per desk role (#21)
        assert f"'demo-{role}-110105'" in out
    assert deploy.demo_accounts(city[0]) == []


def test_db_url_libpq_is_accepted_by_psql(beijing_db):
    psql = shutil.which("psql") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))), None)
    assert psql, "psql (PostgreSQL's client) is installed with the server"
    url = run("--database", beijing_db.database, "db", "url", "--libpq").stdout.strip()
    assert url.startswith("postgresql://") and "+psycopg" not in url
    done = subprocess.run([str(psql), url, "-Atc", "select current_database()"], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == beijing_db.database
    plain = run("--database", beijing_db.database, "db", "url").stdout.strip()
    assert plain.startswith("postgresql+psycopg://")  # SQLAlchemy's form stays the default


@pytest.mark.parametrize("password", ["p@ss:w/rd#?%&=", "two words", "+plus", "caf\u00e9 %20", "a%40b"])
def test_db_url_libpq_keeps_a_password_and_paths_with_special_characters(password):
    """libpq decodes %XX but not '+' and refuses a raw space: a password or socket folder with a space, '+'
    or '%' must come out percent-encoded (SQLAlchemy's rendering left spaces raw and wrote a space as '+')."""
    from urllib.parse import quote

    from psycopg.conninfo import conninfo_to_dict  # libpq's own parser
    from sqlalchemy.engine import make_url

    url = make_url(f"postgresql+psycopg://the%20user:{quote(password, safe='')}@db.example:6543/city%20one"
                   "?host=%2Fsrv%2Fmy%20data%2Frun&application_name=a%2Bb%20c")
    parsed = conninfo_to_dict(db.libpq_url(url))
    assert parsed == {"user": "the user", "password": password, "host": "/srv/my data/run", "port": "6543",
                      "dbname": "city one", "application_name": "a+b c"}


# ------------------------------------------------------------------------------------------ bbox
def _outside_the_box_inside_its_extent(x0, y0, x1, y1, srid):
    """A point 5 m outside the WGS84 box, near a corner, that lies inside the box's extent in the storage CRS
    (what the old filter used): (lon, lat)."""
    fwd = pyproj.Transformer.from_crs(4326, srid, always_xy=True)
    xs, ys = fwd.transform([x0, x1, x1, x0], [y0, y0, y1, y1])
    d = 5 / 111_320
    for t in (0.02, 0.05, 0.1, 0.9, 0.95, 0.98):
        lon_t, lat_t = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
        for lon, lat in ((x0 - d, lat_t), (x1 + d, lat_t), (lon_t, y0 - d), (lon_t, y1 + d)):
            px, py = fwd.transform(lon, lat)
            if min(xs) <= px <= max(xs) and min(ys) <= py <= max(ys):
                return lon, lat
    raise AssertionError("no such point: the CRS does not rotate the box here")


def test_open311_bbox_is_exact_beyond_a_corner(client):
    x0, y0, x1, y1 = 116.50, 39.95, 116.52, 39.97
    lon, lat = _outside_the_box_inside_its_extent(x0, y0, x1, y1, 4548)
    made = {}
    for key, (service, p) in {"out": ("E0102", (lon, lat)), "in": ("E0201", (116.51, 39.96))}.items():
        answer = client.post("/open311/v2/requests.json", data={"service_code": service, "long": str(p[0]),
                                                                 "lat": str(p[1]), "description": "bbox " + key})
        assert answer.status_code == 201, answer.get_json()
        made[key] = answer.get_json()[0]["service_request_id"]
    listed = {r["service_request_id"] for r in client.get(
        f"/open311/v2/requests.json?bbox={x0},{y0},{x1},{y1}").get_json()}
    assert made["in"] in listed and made["out"] not in listed


def test_grids_bbox_is_exact_in_wgs84(client, bj):
    x0, y0, x1, y1 = 116.45, 39.90, 116.47, 39.92
    params = {"x0": x0, "y0": y0, "x1": x1, "y1": y1}
    version = client.get("/api/v1/grids?district=110105&limit=1").get_json()["features"][0]["properties"]["version"]
    codes = lambda where: set(bj.execute(sa.text(  # noqa: E731
        f"""SELECT code FROM unit_grids WHERE district_code = '110105' AND version_id = :v AND {where}"""),
        {**params, "v": version}).scalars())
    envelope = "ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)"
    exact = codes(f"ST_Intersects(ST_Transform(geom, 4326), {envelope})")
    extent_only = codes(f"geom && ST_Transform({envelope}, 4548)") - exact
    assert exact and extent_only  # grids outside the box inside its storage-CRS extent exist here
    boxed = client.get(f"/api/v1/grids?district=110105&bbox={x0},{y0},{x1},{y1}&limit=5000").get_json()
    listed = {f["id"] for f in boxed["features"]}
    assert listed == exact and boxed["total"] == len(exact)


# ------------------------------------------------------------------------------------------ periods
def _case_on(client, day: str, class_code: str = "0102") -> int:
    answer = client.post("/api/v1/cases", json={"lon": 116.48, "lat": 39.93, "kind": "event", "class_code": class_code,
                                                "description": "period test", "source": "supervisor",
                                                "reported_at": f"{day}T12:00:00+08:00"})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["case"]["case_id"]


def test_a_one_day_period_is_that_whole_day(client):
    case_id = _case_on(client, "2026-03-01")
    listed = client.get("/api/v1/cases?start=2026-03-01&end=2026-03-01&limit=1000")
    assert listed.status_code == 200 and case_id in {c["case_id"] for c in listed.get_json()["cases"]}
    assert case_id in {c["case_id"] for c in client.get("/api/v1/cases?end=2026-03-01&limit=1000")
                       .get_json()["cases"]}  # a date end includes its day
    assert case_id not in {c["case_id"] for c in client.get("/api/v1/cases?start=2026-03-02&limit=1000")
                           .get_json()["cases"]}
    caseload = client.get("/api/v1/caseload?district=110105&level=street&start=2026-03-01&end=2026-03-01")
    assert caseload.status_code == 200, caseload.get_json()
    assert caseload.get_json()["total_cases"] >= 1
    assert client.get("/api/v1/density.json?district=110105&start=2026-03-01&end=2026-03-01").status_code == 200
    assert client.get("/api/v1/audit?start=2026-03-01&end=2026-03-01").status_code == 200


def test_open311_end_date_includes_its_day(client):
    answer = client.post("/api/v1/cases", json={"lon": 116.48, "lat": 39.93, "kind": "event", "class_code": "0102",
                                                "description": "period test", "source": "open311",
                                                "reported_at": "2026-03-01T12:00:00+08:00"})
    assert answer.status_code == 201, answer.get_json()
    request_id = str(answer.get_json()["case"]["case_id"])
    listed = client.get("/open311/v2/requests.json?start_date=2026-03-01&end_date=2026-03-01")
    assert listed.status_code == 200 and request_id in {r["service_request_id"] for r in listed.get_json()}


@pytest.mark.parametrize("query", [
    "start=2026-03-02&end=2026-03-01", "start=2026-03-01T10:00:00&end=2026-03-01T10:00:00",
    "start=2026-03-01&end=9999-12-31", "end=2026-02-30", "start=2026-03-01&end=0x10"])
def test_empty_or_malformed_periods_are_400(client, query):
    answer = client.get(f"/api/v1/caseload?district=110105&{query}")
    assert answer.status_code == 400, answer.get_json()
    assert answer.get_json()["details"][0]["field"] in ("start", "end")


def test_period_rules():
    same = lambda text, field: text  # noqa: E731
    assert period("2026-03-01", "2026-03-01", same) == ("2026-03-01", "2026-03-02")
    assert period(None, "2026-12-31", same) == (None, "2027-01-01")
    assert period("2026-03-01T08:00:00+08:00", "2026-03-01T09:00:00+08:00", same)[1] == "2026-03-01T09:00:00+08:00"
    with pytest.raises(InvalidInput, match="must not be after"):
        period("2026-03-02", "2026-03-01", same)
    with pytest.raises(InvalidInput, match="must not be after"):
        period("2026-03-01T09:00:00+08:00", "2026-03-01T01:00:00Z", same)  # the same instant


def test_cli_audit_period_of_one_day(beijing_db):
    entries = json.loads(run("--database", beijing_db.database, "audit", "--limit", "1").stdout)
    assert entries  # load-demo's imports are audited
    day = str(entries[0]["at"])[:10]  # the day in the session's zone, which reads --since/--until too
    again = json.loads(run("--database", beijing_db.database, "audit", "--since", day, "--until", day,
                           "--limit", "1").stdout)
    assert again and again[0]["audit_id"] == entries[0]["audit_id"]
    refused = run("--database", beijing_db.database, "audit", "--since", "2026-03-02", "--until", "2026-03-01",
                  code=2)
    assert "--since must not be after --until" in refused.stderr


def test_an_uploaded_census_is_credited_once_its_previewed_import_is_committed(city, tmp_path):
    """The upload's ``source``/``licence`` fields are recorded with the job; a preview credits nothing, its
    commit (a new job) carries the same source."""
    import time

    settings, _ = city
    with engine_on(settings) as engine:
        with engine.begin() as conn:
            token = user_token(conn, "brooklyn-gis", ["gis"])
        app = create_app({"CITYGRID_SETTINGS": settings, "CITYGRID_IMPORTS_DIR": tmp_path / "uploads",
                          "TESTING": True})
        http = signed_in(app.test_client(), token)
        hydrants = [_feature({"type": "Point", "coordinates": [-73.957 + i * 0.0005, 40.655]}, class_code="0101")
                    for i in range(4)]
        body = json.dumps({"type": "FeatureCollection", "features": hydrants}).encode()

        def finished(job_id: str) -> dict:
            for _ in range(300):
                job = http.get(f"/api/v1/imports/{job_id}").get_json()
                if job["state"] not in ("queued", "running"):
                    return job
                time.sleep(0.2)
            raise AssertionError(f"job {job_id} did not finish")

        def credited() -> set[tuple[str, str]]:
            with engine.connect() as conn:
                return {(s["source"], s["licence"]) for s in store.data_sources(conn, BROOKLYN)
                        if s["kind"] == "census"}

        started = http.post("/api/v1/imports", data={
            "district": BROOKLYN, "dry_run": "true", "source": "FDNY hydrants <2025>", "licence": "NYC Open Data",
            "file": (io.BytesIO(body), "hydrants.geojson")}, content_type="multipart/form-data")
        assert started.status_code == 202, started.get_json()
        assert finished(started.get_json()["job_id"])["state"] == "preview"
        assert ("FDNY hydrants <2025>", "NYC Open Data") not in credited()
        committed = http.post(f"/api/v1/imports/{started.get_json()['job_id']}/commit")
        assert committed.status_code == 202
        assert finished(committed.get_json()["job_id"])["state"] == "committed"
        assert ("FDNY hydrants <2025>", "NYC Open Data") in credited()
