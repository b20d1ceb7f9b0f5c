"""Open a user's vector file with GDAL only as the format its name says, and never let it reach other files or
the network.

GDAL picks a driver from a file's *content*: a ``.json`` upload holding OGR VRT XML
(``<OGRVRTDataSource>…<SrcDataSource>CSV:/etc/passwd``) is obeyed and reads server files; ``/vsicurl/`` names in
such a file make the server send requests. Three layers keep that out:

1. **Allow-list by name.** The file's suffix names the one driver that may open it (``DRIVERS``); anything
   else is refused before GDAL sees it.
2. **Content check.** The first bytes must be what that format starts with (``_looks_like``), so a file whose
   content lies about its type is refused with a message saying what it looks like.
3. **A locked-down GDAL.** ``harden()`` (run before every read) deregisters every driver of the process's GDAL
   that is not needed (VRT, GDALG pipelines, HTTP, WFS/OAPIF, SQLite, LIBKML, …), and sets configuration
   options that switch off network access and sidecar reads (``GDAL_CONFIG``). After opening, the driver GDAL
   reports must be the expected one (``check_driver``).

No database here.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import logging
import sqlite3
import threading
from pathlib import Path

import pyogrio

from citygrid.errors import InvalidInput

log = logging.getLogger(__name__)

# File suffix -> the only GDAL driver allowed to open it. CSV/TXT are read by pandas, never by GDAL.
DRIVERS: dict[str, str] = {
    ".shp": "ESRI Shapefile",
    ".gpkg": "GPKG",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".fgb": "FlatGeobuf",
    ".gml": "GML",
    ".kml": "KML",
    ".gdb": "OpenFileGDB",
}
# Drivers the process keeps: the readers above, plus what citygrid writes (exports) and GDAL's in-memory ones.
# (rasterio's own GDAL, loaded by the geocoder, rasterises with MEM and writes density GeoTIFFs.)
KEEP_DRIVERS = frozenset(DRIVERS.values()) | {"MEM", "Memory", "GTiff"}
# Configuration options set once for the whole process (it reads users' files; it never needs GDAL's network).
GDAL_CONFIG: dict[str, str] = {
    "GDAL_SKIP": "",  # filled by harden() with the deregistered drivers, for any later GDALAllRegister
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".citygrid-no-network",  # no /vsicurl/ name ends like this
    "GDAL_HTTP_MAX_RETRY": "0",
    "GDAL_HTTP_TIMEOUT": "1",
    "GDAL_HTTP_CONNECTTIMEOUT": "1",
    "GDAL_HTTP_PROXY": "127.0.0.1:9",  # should anything still try HTTP, it meets loopback's discard port
    "GDAL_DISABLE_READDIR_ON_OPEN": "TRUE",  # no directory listing beside the file (sidecars are probed by name)
    "GML_DOWNLOAD_SCHEMA": "NO",
    "GML_DOWNLOAD_WFS_SCHEMA": "NO",
    "GML_SKIP_RESOLVE_ELEMS": "ALL",  # no xlink:href resolution
    "GML_USE_SCHEMA_IMPORT": "NO",
    "OGR_SQLITE_ALLOW_EXTERNAL_ACCESS": "NO",  # GeoPackage views may not ATTACH or read other files
    "OGR_SQLITE_LOAD_EXTENSIONS": "",
    "LIBKML_RESOLVE_STYLE": "NO",
}
_HEAD = 64 * 1024
_lock = threading.Lock()
_hardened: list[str] | None = None


def driver_for(path: Path) -> str:
    """The one GDAL driver allowed to open ``path`` (by its suffix); ``InvalidInput`` for any other file."""
    suffix = path.suffix.lower()
    if path.is_dir() and suffix != ".gdb":
        return "ESRI Shapefile"  # a folder of Shapefiles
    if suffix not in DRIVERS:
        raise InvalidInput(f"{path.name}: {suffix or 'no suffix'} is not an accepted vector format "
                           f"({', '.join(sorted({*DRIVERS, '.csv', '.txt', '.zip'}))})", field="file")
    return DRIVERS[suffix]


def _libgdal_paths() -> list[str]:
    """Shared GDAL libraries this process has loaded (pyogrio's own wheel copy, or the system's)."""
    found: list[str] = []
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            for line in maps:
                name = line.rsplit(" ", 1)[-1].strip()
                if "libgdal" in Path(name).name and name not in found:
                    found.append(name)
    except OSError:
        pass
    if not found:  # not Linux: the copy shipped inside the pyogrio wheel
        found = glob.glob(str(Path(pyogrio.__file__).parent.parent / "pyogrio.libs" / "libgdal*"))
    return found


def _deregister(keep: frozenset[str]) -> list[str]:
    """Deregister every driver of each loaded GDAL that is not in ``keep``; returns the names removed."""
    removed: list[str] = []
    for path in _libgdal_paths():
        lib = ctypes.CDLL(path)  # the already-loaded library: dlopen returns the same handle
        lib.GDALGetDriverCount.restype = ctypes.c_int
        lib.GDALGetDriver.restype = ctypes.c_void_p
        lib.GDALGetDriver.argtypes = [ctypes.c_int]
        lib.GDALGetDriverShortName.restype = ctypes.c_char_p
        lib.GDALGetDriverShortName.argtypes = [ctypes.c_void_p]
        lib.GDALDeregisterDriver.argtypes = [ctypes.c_void_p]
        drivers = [lib.GDALGetDriver(i) for i in range(lib.GDALGetDriverCount())]
        for handle in drivers:
            name = lib.GDALGetDriverShortName(handle).decode()
            if name not in keep:
                lib.GDALDeregisterDriver(handle)
                removed.append(name)
    return removed


def harden() -> list[str]:
    """Lock the process's GDAL down for reading untrusted files (idempotent, thread-safe); returns the drivers
    deregistered. Call before any read of a user's file."""
    global _hardened
    with _lock:
        if _hardened is None:
            pyogrio.list_drivers()  # make sure pyogrio has registered its drivers before we remove some
            removed = _deregister(KEEP_DRIVERS)
            config = dict(GDAL_CONFIG, GDAL_SKIP=" ".join(sorted(set(removed))))
            pyogrio.set_gdal_config_options(config)
            _hardened = removed
            log.info("GDAL locked down: %d drivers deregistered", len(removed))
        return _hardened


def _looks_like(head: bytes) -> str:
    """What a file's first bytes say it is, for the error message."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if b"<OGRVRTDataSource" in head or b"<VRTDataset" in head:
        return "a GDAL VRT (a file that points GDAL at other files or URLs)"
    if b"gdal_streamed_alg" in head:
        return "a GDAL pipeline (GDALG)"
    if head.startswith(b"SQLite format 3\x00"):
        return "an SQLite/GeoPackage database"
    if head[:4] == b"\x00\x00\x27\x0a":
        return "a Shapefile"
    if head[:3] == b"fgb":
        return "a FlatGeobuf file"
    if text[:1] in (b"{", b"["):
        return "JSON"
    if text[:1] == b"<":
        return "XML"
    if head[:2] == b"PK":
        return "a zip archive"
    return "not a vector format citygrid reads"


def _content_ok(driver: str, head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    xml_ok = text[:1] == b"<" and b"<OGRVRTDataSource" not in head and b"<VRTDataset" not in head
    checks = {
        "ESRI Shapefile": head[:4] == b"\x00\x00\x27\x0a",
        "GPKG": head.startswith(b"SQLite format 3\x00"),
        "GeoJSON": text[:1] == b"{" and b"gdal_streamed_alg" not in head,
        "FlatGeobuf": head[:3] == b"fgb",
        "GML": xml_ok,
        "KML": xml_ok and b"<kml" in head,
    }
    return checks.get(driver, True)


def check_content(path: Path) -> str:
    """The driver for ``path`` after checking that its content is that format; ``InvalidInput`` naming what
    the content looks like otherwise. A folder (Shapefiles, a File Geodatabase) has each of its files checked
    by GDAL's own driver only."""
    driver = driver_for(path)
    if path.is_dir():
        return driver
    with path.open("rb") as handle:
        head = handle.read(_HEAD)
    if not _content_ok(driver, head):
        raise InvalidInput(f"{path.name}: the name says {driver} but the content is {_looks_like(head)}; "
                           "refused", field="file")
    if driver == "GPKG":
        _refuse_views(path)
    return driver


def _refuse_views(path: Path) -> None:
    """``InvalidInput`` for a GeoPackage whose layers include a view: a view is a query the file makes us run
    (a recursive one of 28 KB kept an import busy for 25 s), not data. Read with SQLite read-only, nothing
    run but the catalogue query."""
    uri = path.resolve().as_uri() + "?mode=ro&immutable=1"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            db.execute("PRAGMA trusted_schema = OFF")
            views = [row[0] for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'view' AND name IN "
                "(SELECT table_name FROM gpkg_contents)")]
    except sqlite3.DatabaseError as exc:
        raise InvalidInput(f"{path.name} is not a readable GeoPackage: {exc}", field="file") from exc
    if views:
        raise InvalidInput(f"{path.name}: layer {views[0]!r} is an SQL view, not a table; export it as a table "
                           "and upload that", field="file")


def check_driver(path: Path, expected: str, opened: str | None) -> None:
    """``InvalidInput`` unless GDAL opened ``path`` with the ``expected`` driver."""
    if opened != expected:
        raise InvalidInput(f"{path.name}: GDAL read it as {opened or 'an unknown format'}, not {expected}; "
                           "refused", field="file")


def safe_info(path: Path, **kwargs) -> dict:
    """``pyogrio.read_info`` of a user's file after ``harden`` and ``check_content``, with the driver checked.
    ``kwargs`` go to ``read_info`` (layer, encoding …)."""
    harden()
    expected = check_content(path)
    try:
        info = pyogrio.read_info(path, **kwargs)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise InvalidInput(f"{path.name}: GDAL cannot read it as {expected}: {exc}", field="file") from exc
    except IndexError as exc:  # pyogrio's way of saying the dataset has no layer at all
        raise InvalidInput(f"{path.name}: GDAL finds no layer in it (not a {expected} file, or an empty one)",
                           field="file") from exc
    check_driver(path, expected, info.get("driver"))
    return info
