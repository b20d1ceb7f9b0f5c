"""Hostile files (#18): uploads and CLI imports whose content lies about their type, OGR VRT and GDAL pipeline
payloads that point GDAL at server files or URLs, zip bombs spread over many entries, corrupt zips, YAML
alias bombs. Each would have read /etc/passwd, sent a request, or eaten memory before the fix."""

from __future__ import annotations

import http.server as httpserver
import io
import threading
import zipfile
from pathlib import Path
from typing import ClassVar

import pyogrio
import pytest

from citygrid.components_survey import jobs
from citygrid.components_survey.census import CensusOptions, import_file
from citygrid.components_survey.mapping import load_mapping_file
from citygrid.errors import InvalidInput
from citygrid.loaders import gdalsafe, safeyaml
from citygrid.loaders.archive import safe_extract
from citygrid.loaders.vector import read_vector
from tests.conftest import assert_error
from tests.test_census import DISTRICT, census_frame, english, http, job_engine, points, wait_for  # noqa: F401  (fixtures)

SECRET = Path(__file__).resolve().parent.parent / "data" / "secrets" / "demo-password"


def vrt(source: str, layer: str = "passwd") -> bytes:
    return (f'<OGRVRTDataSource><OGRVRTLayer name="{layer}"><SrcDataSource>{source}</SrcDataSource>'
            "</OGRVRTLayer></OGRVRTDataSource>\n").encode()


GDALG = b'{"type": "gdal_streamed_alg", "command_line": "gdal vector read /etc/passwd ! write --of stream out"}'
SUFFIXES = [".json", ".geojson", ".kml", ".gml", ".shp", ".gpkg", ".fgb"]
PAYLOADS = {"vrt-passwd": vrt("CSV:/etc/passwd"), "vrt-secret": vrt(f"CSV:{SECRET}", "demo-password"),
            "vrt-kml": b"<?xml version='1.0'?>\n<kml>" + vrt("CSV:/etc/passwd") + b"</kml>", "gdalg": GDALG}


class Counter(httpserver.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self):
        Counter.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"a,b\n1,2\n")

    do_HEAD = do_GET  # noqa: N815

    def log_message(self, *args):
        pass


@pytest.fixture
def listener():
    """A loopback HTTP server that counts the requests it gets (none may arrive)."""
    Counter.hits = []
    server = httpserver.ThreadingHTTPServer(("127.0.0.1", 0), Counter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_unhardened_gdal_would_obey_a_vrt(tmp_path):
    """The threat is real: without the checks GDAL opens a .json holding VRT XML with the VRT driver."""
    path = tmp_path / "x.json"
    path.write_bytes(vrt("CSV:/etc/passwd"))
    assert gdalsafe.DRIVERS[".json"] == "GeoJSON"
    assert gdalsafe._looks_like(path.read_bytes()).startswith("a GDAL VRT")


def test_harden_removes_every_driver_that_reaches_other_files_or_the_network():
    gdalsafe.harden()
    drivers = set(pyogrio.list_drivers())
    assert drivers <= gdalsafe.KEEP_DRIVERS
    for dangerous in ("OGR_VRT", "GDALG", "HTTP", "WFS", "OAPIF", "SQLite", "LIBKML", "CSV", "GPSBabel"):
        assert dangerous not in drivers
    assert pyogrio.get_gdal_config_option("GML_DOWNLOAD_SCHEMA") in ("NO", False)


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_cli_readers_refuse_lying_files(bj, tmp_path, suffix, payload):
    path = tmp_path / f"evil{suffix}"
    path.write_bytes(PAYLOADS[payload])
    with pytest.raises(InvalidInput) as caught:
        read_vector(path, crs="EPSG:4548")
    assert "refused" in caught.value.message or "cannot read" in caught.value.message
    with pytest.raises(InvalidInput) as census_error:
        import_file(bj, path, CensusOptions(district=DISTRICT, crs="EPSG:4548"))
    assert "root:" not in census_error.value.message


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_vsicurl_payloads_send_no_request(bj, tmp_path, listener, suffix):
    path = tmp_path / f"ssrf{suffix}"
    path.write_bytes(vrt(f"CSV:/vsicurl/{listener}/x.csv", "x"))
    with pytest.raises(InvalidInput):
        read_vector(path, crs="EPSG:4548")
    with pytest.raises(InvalidInput):
        import_file(bj, path, CensusOptions(district=DISTRICT, crs="EPSG:4548"))
    assert Counter.hits == []


def test_vsicurl_is_off_even_when_named_directly(listener):
    gdalsafe.harden()
    with pytest.raises(pyogrio.errors.DataSourceError):
        pyogrio.read_info(f"/vsicurl/{listener}/x.geojson")
    assert Counter.hits == []


def test_a_vrt_inside_a_zip_is_refused(bj, tmp_path):
    archive = tmp_path / "census.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("census.geojson", vrt("CSV:/etc/passwd"))
    with pytest.raises(InvalidInput, match="VRT"):
        import_file(bj, archive, CensusOptions(district=DISTRICT, crs="EPSG:4548"))
    with pytest.raises(InvalidInput, match="VRT"):
        read_vector(archive, crs="EPSG:4548")


def test_unknown_suffixes_never_reach_gdal(bj, tmp_path):
    path = tmp_path / "evil.vrt"
    path.write_bytes(vrt("CSV:/etc/passwd"))
    with pytest.raises(InvalidInput, match="not an accepted vector format"):
        read_vector(path, crs="EPSG:4548")
    with pytest.raises(InvalidInput, match="not an accepted vector format"):
        import_file(bj, path, CensusOptions(district=DISTRICT, crs="EPSG:4548"))


def test_honest_files_of_every_format_still_read(points, tmp_path):  # noqa: F811
    frame = english(census_frame(points, n=5))  # a UTF-8 DBF cuts Chinese field names
    for name, driver in (("a.gpkg", "GPKG"), ("a.geojson", "GeoJSON"), ("a.json", "GeoJSON"),
                         ("a.fgb", "FlatGeobuf"), ("a.gml", "GML"), ("a.shp", "ESRI Shapefile")):
        frame.to_file(tmp_path / name, driver=driver)
        assert len(read_vector(tmp_path / name).frame) == 5, name
    frame.to_crs(4326).to_file(tmp_path / "a.kml", driver="KML")
    assert len(read_vector(tmp_path / "a.kml").frame) == 5


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("payload", ["vrt-passwd", "vrt-secret", "gdalg"])
def test_uploads_of_lying_files_are_400(http, suffix, payload):  # noqa: F811
    response = http.post("/api/v1/imports", data={"district": DISTRICT, "crs": "EPSG:4548",
                                                  "file": (io.BytesIO(PAYLOADS[payload]), f"census{suffix}")},
                         content_type="multipart/form-data")
    assert response.status_code == 400, response.get_json()
    assert "refused" in response.get_json()["message"] and "root" not in response.get_data(as_text=True)


def test_zipped_vrt_upload_fails_its_job_without_leaking(http, tmp_path):  # noqa: F811
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("census.json", vrt("CSV:/etc/passwd"))
    buffer.seek(0)
    response = http.post("/api/v1/imports", data={"district": DISTRICT, "file": (buffer, "census.zip")},
                         content_type="multipart/form-data")
    job = wait_for(http, response.get_json()["job_id"])
    assert job["state"] == "failed" and "VRT" in job["message"]
    assert str(tmp_path) not in job["message"] and "/tmp" not in job["message"]  # no server folders named
    report = http.get(job["links"]["report"]).get_data(as_text=True)
    assert "root" not in report and "daemon" not in report


# ------------------------------------------------------------------------------------------ zips
def _zip(tmp_path, entries: int, size: int, name="bomb.zip") -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i in range(entries):
            zf.writestr(f"part{i}.csv", b"0" * size)
    return path


def test_many_small_entries_that_expand_hugely_are_a_bomb(tmp_path):
    """500 entries of 0.9 MB each (under the per-entry size the old check looked at) unpack to 450 MB."""
    archive = _zip(tmp_path, 500, 900_000)
    assert archive.stat().st_size < 2_000_000
    with pytest.raises(InvalidInput, match="zip bomb"):
        safe_extract(archive, tmp_path / "out")
    assert not any((tmp_path / "out").glob("*"))


def test_total_unpacked_size_is_capped(tmp_path):
    archive = _zip(tmp_path, 3, 1000)
    with pytest.raises(InvalidInput, match="unpacks to"):
        safe_extract(archive, tmp_path / "out", max_total_bytes=2000)


def test_a_corrupt_zip_crc_is_a_clear_error(tmp_path):
    archive = _zip(tmp_path, 1, 5000, "crc.zip")
    data = bytearray(archive.read_bytes())
    header = data.index(b"PK\x03\x04")
    data[header + 14] ^= 0xFF  # the CRC-32 field of the local header
    central = data.index(b"PK\x01\x02")
    data[central + 16] ^= 0xFF  # and of the central directory
    archive.write_bytes(bytes(data))
    with pytest.raises(InvalidInput, match="corrupt"):
        safe_extract(archive, tmp_path / "out")


def test_a_truncated_zip_is_a_clear_error(tmp_path):
    archive = _zip(tmp_path, 2, 5000, "cut.zip")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInput):
        safe_extract(archive, tmp_path / "out")


def test_corrupt_zip_upload_is_a_failed_job_with_the_reason(http, tmp_path):  # noqa: F811
    archive = _zip(tmp_path, 1, 5000, "crc.zip")
    data = bytearray(archive.read_bytes())
    data[data.index(b"PK\x03\x04") + 14] ^= 0xFF
    data[data.index(b"PK\x01\x02") + 16] ^= 0xFF
    response = http.post("/api/v1/imports", data={"district": DISTRICT, "file": (io.BytesIO(bytes(data)), "c.zip")},
                         content_type="multipart/form-data")
    assert response.status_code == 400 and "corrupt" in response.get_json()["message"]


def test_upload_folders_are_removed_once_the_job_is_done(http, points, tmp_path):  # noqa: F811
    census_frame(points, n=3).to_file(tmp_path / "done.gpkg")
    with (tmp_path / "done.gpkg").open("rb") as fh:
        response = http.post("/api/v1/imports", data={"district": DISTRICT, "file": (fh, "done.gpkg")},
                             content_type="multipart/form-data")
    job = wait_for(http, response.get_json()["job_id"])
    assert job["state"] == "committed"
    uploads = tmp_path / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []


def test_a_preview_keeps_its_upload_until_committed(http, points, tmp_path):  # noqa: F811
    census_frame(points, n=3).to_file(tmp_path / "pv.gpkg")
    with (tmp_path / "pv.gpkg").open("rb") as fh:
        job_id = http.post("/api/v1/imports", data={"district": DISTRICT, "dry_run": "true", "file": (fh, "pv.gpkg")},
                           content_type="multipart/form-data").get_json()["job_id"]
    assert wait_for(http, job_id)["state"] == "preview"
    assert len(list((tmp_path / "uploads").iterdir())) == 1
    committed = http.post(f"/api/v1/imports/{job_id}/commit").get_json()["job_id"]
    assert wait_for(http, committed)["state"] == "committed"
    assert list((tmp_path / "uploads").iterdir()) == []


# ------------------------------------------------------------------------------------------ YAML
BOMB = """a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
columns: {ObjID: *h}
"""


def test_yaml_aliases_are_refused_before_they_expand():
    assert len(BOMB) < 600
    with pytest.raises(InvalidInput, match="aliases"):
        jobs.parse_mapping_text(BOMB)
    with pytest.raises(InvalidInput, match="aliases"):
        safeyaml.load("a: &x 1\nb: *x\n", what="mapping")


def test_yaml_anchor_alone_is_refused_too():
    with pytest.raises(InvalidInput, match="aliases"):
        safeyaml.load("columns: &x {ObjID: id}\n", what="mapping")


def test_yaml_too_deep_or_too_big():
    with pytest.raises(InvalidInput, match="deep"):
        safeyaml.load("a: " + "[" * 100 + "]" * 100, what="mapping")
    with pytest.raises(InvalidInput, match="larger than"):
        safeyaml.load("a: " + "x" * (safeyaml.MAX_BYTES + 1), what="mapping")


def test_yaml_mapping_file_bomb_refused(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(BOMB, encoding="utf-8")
    with pytest.raises(InvalidInput, match="aliases"):
        load_mapping_file(path)


def test_mapping_values_must_be_text():
    with pytest.raises(InvalidInput, match="text"):
        jobs.parse_mapping_text('{"ObjID": {"nested": [1, 2]}}')
    assert jobs.parse_mapping_text("columns: {ObjID: 编号}") == {"ObjID": "编号"}


def test_yaml_bomb_upload_is_400_quickly(http):  # noqa: F811
    response = http.post("/api/v1/imports", data={"district": DISTRICT, "mapping": BOMB,
                                                  "file": (io.BytesIO(b"x"), "a.gpkg")},
                         content_type="multipart/form-data")
    assert response.status_code == 400 and "aliases" in response.get_json()["message"]


# ------------------------------------------------------------------------------------------ found by attacking
def test_yaml_escapes_cannot_smuggle_control_characters():
    for text in ('{"名称": "a\\0b"}', '{"a\\ud800": "b"}', 'columns: {ObjID: "x\\x01"}'):
        with pytest.raises(InvalidInput, match="control character"):
            jobs.parse_mapping_text(text)


def test_a_geopackage_layer_that_is_a_view_is_refused(points, tmp_path):  # noqa: F811
    import sqlite3

    path = tmp_path / "loop.gpkg"
    census_frame(points, n=3).to_file(path, driver="GPKG", layer="real")
    with sqlite3.connect(path) as db:
        db.execute("CREATE VIEW loop AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                   "WHERE x < 30000000) SELECT x AS fid, NULL AS geom FROM c")
        db.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, srs_id) "
                   "VALUES ('loop', 'features', 'loop', 4548)")
    with pytest.raises(InvalidInput, match="SQL view"):
        gdalsafe.check_content(path)


def test_a_failed_upload_leaves_no_folder(http, tmp_path):  # noqa: F811
    files = [(io.BytesIO(b"{}" * 1000), "a.geojson"), (io.BytesIO(b"MZ"), "b.exe")]
    answer = http.post("/api/v1/imports", data={"district": DISTRICT, "file": files},
                       content_type="multipart/form-data")
    assert_error(answer, 400, "invalid_input", field="file", reason="'b.exe' is not an accepted dataset file")
    long_name = http.post("/api/v1/imports", content_type="multipart/form-data",
                          data={"district": DISTRICT, "file": (io.BytesIO(b"x"), "a" * 300 + ".csv")})
    assert long_name.status_code == 400 and "at most 200" in long_name.get_json()["message"]
    lying = http.post("/api/v1/imports", data={"district": DISTRICT, "file": (io.BytesIO(vrt("CSV:/etc/passwd")),
                                                                              "a.gml")},
                      content_type="multipart/form-data")
    assert_error(lying, 400, "invalid_input", field="file",
                 reason="a.gml: the name says GML but the content is a GDAL VRT")
    uploads = tmp_path / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []


@pytest.mark.parametrize("entry", ["../../etc/cron.d/x.csv", "/abs/x.csv"])
def test_a_traversing_zip_upload_is_400_at_once(http, entry):  # noqa: F811
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(entry, "a,b\n")
    buffer.seek(0)
    answer = http.post("/api/v1/imports", data={"district": DISTRICT, "file": (buffer, "t.zip")},
                       content_type="multipart/form-data")
    assert answer.status_code == 400 and "outside the archive" in answer.get_json()["message"]


def test_a_flatgeobuf_header_over_junk_is_a_clear_error(bj, tmp_path):
    path = tmp_path / "junk.fgb"
    path.write_bytes(b"fgb\x03fgb\x00" + vrt("CSV:/etc/passwd"))
    with pytest.raises(InvalidInput, match=r"junk\.fgb"):
        import_file(bj, path, CensusOptions(district=DISTRICT, crs="EPSG:4548"))
