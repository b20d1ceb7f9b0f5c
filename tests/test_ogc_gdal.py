"""OGC API – Features at ``/ogc`` read by GDAL as a real client (``ogrinfo``, ``ogr2ogr`` from gdal-bin, run in a
subprocess against a real HTTP server, signed in with a bearer token sent as a header): every collection listed,
unit grids and a page-spanning components collection copied to GeoPackages with exactly the database's counts,
and GDAL's bbox (``-spat``) and attribute filter (``-where`` on a queryable) applied by the server, as the
server's record of the requests shows. Fails, never skips, without gdal-bin."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

D = "110105"
N_COMPONENTS = 130  # three pages of 50
OBJ_PREFIX = "1101050118"


def gdal(tool: str, *args: str, token: str, timeout: float = 600) -> str:
    """Run GDAL's ``tool`` with the bearer token as an HTTP header; its stdout (the test fails on an error)."""
    exe = shutil.which(tool)
    assert exe, f"{tool} (gdal-bin) is required for the GDAL client tests (make setup installs it)"
    done = subprocess.run([exe, "--config", "GDAL_HTTP_HEADERS", f"Authorization: Bearer {token}", *args],
                          capture_output=True, text=True, timeout=timeout,
                          env={"PATH": "/usr/bin:/bin", "GDAL_HTTP_TIMEOUT": "120", "CPL_DEBUG": "OFF"})
    assert done.returncode == 0, f"{tool} {' '.join(args)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert "ERROR" not in done.stderr, done.stderr[-2000:]
    return done.stdout


def get_json(url: str, token: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)


def gpkg_count(path: Path, layer: str) -> int:
    import pyogrio

    return int(pyogrio.read_info(path, layer=layer)["features"])


@pytest.fixture(scope="module")
def components(beijing_engine):
    """``N_COMPONENTS`` committed street lamps in the test district (removed afterwards): more than one page."""
    ids = [f"{OBJ_PREFIX}{800000 + i:06d}" for i in range(N_COMPONENTS)]
    with beijing_engine.begin() as conn:
        conn.execute(sa.text(
            """INSERT INTO components (district_code, obj_id, valid_from, scheme, class_code, obj_name, obj_state,
                                       synthetic, geom)
               SELECT :d, o.obj_id, now() - interval '1 day', 'cjt214', '0118', '路灯', '完好', true,
                      ST_Transform(ST_SetSRID(ST_MakePoint(116.45 + o.i * 0.0002, 39.93), 4326), 4548)
                 FROM unnest(CAST(:ids AS text[])) WITH ORDINALITY AS o(obj_id, i)"""), {"d": D, "ids": ids})
    yield ids
    with beijing_engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM components WHERE obj_id = ANY(:ids)"), {"ids": ids})


def seen_since(live_server, mark: int) -> list[dict]:
    """The items requests the server recorded after the first ``mark`` ones (``ogc_api``'s record)."""
    return list(live_server.app.extensions["citygrid_ogc_seen"])[mark:]


def seen_count(live_server) -> int:
    return len(live_server.app.extensions["citygrid_ogc_seen"])


def test_the_live_server_answers_the_ogc_token(live_server, ogc_token):
    request = urllib.request.Request(f"{live_server}/api/v1/me", headers={"Authorization": f"Bearer {ogc_token}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert json.load(answer)["user"]["username"] == "ogc-reader"


def test_ogrinfo_lists_every_collection(live_server, ogc_token, components):
    listed = gdal("ogrinfo", "-ro", "-so", "-q", f"OAPIF:{live_server}/ogc", token=ogc_token)
    expected = {c["id"] for c in get_json(f"{live_server}/ogc/collections", ogc_token)["collections"]}
    assert f"unit-grids-{D}" in expected and f"cases-{D}" in expected and f"components-{D}" in expected
    names = {line.split(":", 1)[1].strip().split(" ")[0] for line in listed.splitlines() if ":" in line}
    assert expected <= names, (expected - names, listed)


def test_ogr2ogr_copies_the_unit_grids_with_the_databases_count(live_server, ogc_token, beijing_engine, tmp_path):
    with beijing_engine.connect() as conn:
        expected = conn.execute(sa.text(
            """SELECT count(*) FROM unit_grids u JOIN grid_versions v USING (district_code, version_id)
                WHERE u.district_code = :d AND v.status = 'published'"""), {"d": D}).scalar_one()
    out = tmp_path / "grids.gpkg"
    mark = seen_count(live_server)
    gdal("ogr2ogr", "-f", "GPKG", str(out), f"OAPIF:{live_server}/ogc", f"unit-grids-{D}", "-oo",
         "PAGE_SIZE=2000", token=ogc_token)
    assert gpkg_count(out, f"unit-grids-{D}") == expected > 1000
    pages = [s for s in seen_since(live_server, mark) if s["cid"] == f"unit-grids-{D}"]
    assert sorted({s["offset"] for s in pages if s["limit"] == 2000}) == list(range(0, expected, 2000))


def test_ogr2ogr_copies_a_collection_spanning_pages(live_server, ogc_token, beijing_engine, components, tmp_path):
    with beijing_engine.connect() as conn:
        expected = conn.execute(sa.text(
            "SELECT count(*) FROM components WHERE district_code = :d AND valid_from <= now() "
            "AND (valid_to IS NULL OR valid_to > now())"), {"d": D}).scalar_one()
    assert expected >= N_COMPONENTS
    out = tmp_path / "components.gpkg"
    mark = seen_count(live_server)
    gdal("ogr2ogr", "-f", "GPKG", str(out), f"OAPIF:{live_server}/ogc", f"components-{D}", "-oo", "PAGE_SIZE=50",
         token=ogc_token)
    assert gpkg_count(out, f"components-{D}") == expected
    offsets = sorted({s["offset"] for s in seen_since(live_server, mark)
                      if s["cid"] == f"components-{D}" and s["limit"] == 50})
    assert offsets[:3] == [0, 50, 100] and len(offsets) == -(-expected // 50)


def test_gdal_sends_its_bbox_and_attribute_filter_to_the_server(live_server, ogc_token, components, tmp_path):
    """``-spat`` becomes ``bbox`` and ``-where "class_code = '0118'"`` the queryable parameter ``class_code``
    (GDAL finds it among the items path's parameters in the OpenAPI document): the server filtered both."""
    box = (116.4595, 39.92, 116.4625, 39.94)  # components 48…62 of the line at 116.45 + i * 0.0002
    inside = [i for i in range(1, N_COMPONENTS + 1) if box[0] <= 116.45 + i * 0.0002 <= box[2]]
    out = tmp_path / "filtered.gpkg"
    mark = seen_count(live_server)
    gdal("ogr2ogr", "-f", "GPKG", str(out), f"OAPIF:{live_server}/ogc", f"components-{D}", "-oo", "PAGE_SIZE=50",
         "-spat", *map(str, box), "-where", "class_code = '0118'", token=ogc_token)
    assert gpkg_count(out, f"components-{D}") == len(inside) > 10
    filtered = [s for s in seen_since(live_server, mark) if s["cid"] == f"components-{D}" and s["bbox"]]
    assert filtered, seen_since(live_server, mark)
    assert all(s["filters"] == {"class_code": "0118"} for s in filtered)
    assert all(s["bbox"] == pytest.approx(box) and s["bbox_srid"] == 4326 for s in filtered)


def test_gdal_reads_a_unit_grid_by_its_code(live_server, ogc_token, beijing_engine, tmp_path):
    with beijing_engine.connect() as conn:
        code = conn.execute(sa.text("SELECT code FROM unit_grids WHERE district_code = :d ORDER BY code LIMIT 1"),
                            {"d": D}).scalar_one()
    out = tmp_path / "one.gpkg"
    mark = seen_count(live_server)
    gdal("ogr2ogr", "-f", "GPKG", str(out), f"OAPIF:{live_server}/ogc", f"unit-grids-{D}", "-oo", "PAGE_SIZE=100",
         "-where", f"code = '{code}'", token=ogc_token)
    assert gpkg_count(out, f"unit-grids-{D}") == 1
    asked = [s for s in seen_since(live_server, mark) if s["cid"] == f"unit-grids-{D}" and s["filters"]]
    assert asked and all(s["filters"] == {"code": code} for s in asked)


def test_a_client_that_goes_away_mid_page_gives_back_its_connection_and_slot(live_server, ogc_token):
    """A big page (a heavy slot and a database connection held while it streams) abandoned after its first
    bytes: the server closes the stream, so both are free again at once, not when the page would have ended."""
    import socket
    import time
    from urllib.parse import urlparse

    app = live_server.app
    pool, slots = app.extensions["citygrid"].engine.pool, app.extensions["citygrid_heavy"]
    before = pool.checkedout()
    where = urlparse(live_server)
    with socket.create_connection((where.hostname, where.port), timeout=30) as sock:
        sock.sendall((f"GET /ogc/collections/unit-grids-{D}/items?limit=10000 HTTP/1.1\r\nHost: {where.netloc}\r\n"
                      f"Authorization: Bearer {ogc_token}\r\nConnection: close\r\n\r\n").encode())
        head = sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 200") and b"application/geo+json" in head, head[:300]
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # reset
    deadline = time.monotonic() + 30
    while (pool.checkedout() > before or slots._semaphore._value < slots.slots) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pool.checkedout() <= before and slots._semaphore._value == slots.slots
