"""CRS choices for a Chinese city deployment, and the GCJ-02 / BD-09 web coordinates.

Vocabulary
----------
- Storage CRS: one projected CRS per deployment, for Chinese cities a CGCS2000 3-degree Gauss–Krüger zone
  (EPSG:4534–4554, central meridians 75°E…135°E; e.g. EPSG:4548 for Beijing, EPSG:4547 for Zhengzhou).
- Web CRS: EPSG:4326 (WGS84 lon/lat). CGCS2000 (EPSG:4490) and WGS84 agree to well under a metre, which
  pyproj's ballpark transformation between them reflects; we treat them as the same datum.
- GCJ-02 ("Mars coordinates") is the obfuscated lon/lat used by Amap/Tencent/DataV; BD-09 is Baidu's further
  offset. Neither is an EPSG CRS: PROJ cannot express them, so they are converted here.

The GCJ-02 functions are our own vectorised numpy code rather than a library call: the PyPI implementations
(``prcoords``, ``eviltransform``) work on one point at a time in pure Python, about two orders of magnitude
slower on a census of a million points (``make bench ONLY=gcj02_1m`` measures it). Tests check ours against
both of them.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError, ProjError

from citygrid.errors import InvalidInput

WEB_EPSG = 4326
CGCS2000_EPSG = 4490
_GK3_FIRST_EPSG, _GK3_FIRST_CM, _GK3_LAST_CM = 4534, 75, 135
# Half-width of a 3-degree zone plus the 0.0-degree slack the issue allows on top: 1.5 degrees.
MAX_DEGREES_FROM_CENTRAL_MERIDIAN = 1.5

# Krasovsky 1940 ellipsoid as used by the GCJ-02 algorithm.
_GCJ_A = 6378245.0
_GCJ_EE = 0.00669342162296594323
_BD_PI = np.pi * 3000.0 / 180.0

PSEUDO_CRS = {"gcj02", "bd09"}
_ALIASES = {
    "gcj02": "gcj02", "gcj-02": "gcj02", "gcj": "gcj02", "mars": "gcj02", "amap": "gcj02",
    "bd09": "bd09", "bd-09": "bd09", "bd09ll": "bd09", "baidu": "bd09",
    "wgs84": "EPSG:4326", "wgs-84": "EPSG:4326",
    "cgcs2000": "EPSG:4490",
}


@dataclass(frozen=True)
class InputCrs:
    """A CRS an input may arrive in: an EPSG/PROJ CRS or one of the pseudo-CRS ``gcj02`` / ``bd09``.

    ``crs`` is the pyproj CRS that the coordinates are in *after* the pseudo-CRS step (EPSG:4326 for
    GCJ-02/BD-09 input).
    """

    pseudo: str | None
    crs: CRS

    @property
    def label(self) -> str:
        if self.pseudo:
            return {"gcj02": "GCJ-02", "bd09": "BD-09"}[self.pseudo]
        epsg = self.crs.to_epsg()
        return f"EPSG:{epsg}" if epsg else self.crs.name


def parse_crs(text: str | int | CRS | None, *, field: str = "crs") -> InputCrs:
    """Parse a user's CRS: ``EPSG:4548``, ``4548``, a WKT/PROJ string, ``wgs84``, ``cgcs2000``, ``gcj02``, ``bd09``.

    Raises ``InvalidInput`` naming ``field`` for anything pyproj cannot read.
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        raise InvalidInput("a CRS is required", field=field)
    if isinstance(text, CRS):
        return InputCrs(None, text)
    key = str(text).strip()
    alias = _ALIASES.get(key.lower())
    if alias in PSEUDO_CRS:
        return InputCrs(alias, CRS.from_epsg(WEB_EPSG))
    key = alias or key
    if key.isdigit():
        key = f"EPSG:{key}"
    try:
        return InputCrs(None, CRS.from_user_input(key))
    except CRSError as exc:
        raise InvalidInput(f"unknown CRS {text!r}: {exc}", field=field) from exc


def gk3_epsg_for_longitude(lon: float) -> int:
    """EPSG code of the CGCS2000 3-degree Gauss–Krüger zone (no zone prefix) whose CM is nearest ``lon``."""
    cm = 3 * round(lon / 3)
    if not _GK3_FIRST_CM <= cm <= _GK3_LAST_CM:
        raise InvalidInput(f"longitude {lon:.4f} is outside the CGCS2000 3-degree zones (73.5–136.5°E)", field="lon")
    return _GK3_FIRST_EPSG + (cm - _GK3_FIRST_CM) // 3


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS84 UTM zone of a point."""
    zone = int((lon + 180) // 6) + 1
    return (32600 if lat >= 0 else 32700) + min(max(zone, 1), 60)


def in_china_box(lon: float, lat: float) -> bool:
    """Rough box used by the GCJ-02 algorithm itself to decide whether a point is offset."""
    return 72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271


def suggest_storage_epsg(lon: float, lat: float) -> int:
    """The storage CRS we recommend around (lon, lat) in EPSG:4326: a CGCS2000 GK zone in China, else UTM."""
    if in_china_box(lon, lat) and 73.5 <= lon <= 136.5:
        return gk3_epsg_for_longitude(lon)
    return utm_epsg(lon, lat)


def require_storage_crs(epsg: int) -> CRS:
    """Return the CRS for ``epsg`` if it can be a storage CRS (projected, metres), else raise ``InvalidInput``."""
    try:
        crs = CRS.from_epsg(int(epsg))
    except (CRSError, ValueError) as exc:
        raise InvalidInput(f"EPSG:{epsg} is not a known CRS", field="srid") from exc
    if not crs.is_projected:
        raise InvalidInput(
            f"EPSG:{epsg} ({crs.name}) is not projected; the storage CRS must be projected in metres, "
            "e.g. EPSG:4548 (CGCS2000 / 3-degree Gauss-Kruger CM 117E) for Beijing",
            field="srid",
        )
    unit = crs.axis_info[0].unit_name if crs.axis_info else ""
    if unit not in ("metre", "meter"):
        raise InvalidInput(f"EPSG:{epsg} uses {unit!r} units; the storage CRS must be in metres", field="srid")
    return crs


def central_meridian(crs: CRS) -> float | None:
    """Longitude of the natural origin of a transverse Mercator CRS, else None."""
    conversion = crs.coordinate_operation
    if conversion is None or "transverse mercator" not in conversion.method_name.lower():
        return None
    for param in conversion.params:
        if param.name.lower() == "longitude of natural origin":
            return float(param.value)
    return None


def check_extent_fits(epsg: int, bounds_lonlat: tuple[float, float, float, float]) -> None:
    """Raise ``InvalidInput`` when an area does not belong in the storage CRS ``epsg``.

    Parameters
    ----------
    epsg : the deployment's storage CRS.
    bounds_lonlat : (min_lon, min_lat, max_lon, max_lat) in EPSG:4326.

    The area must lie inside the CRS's area of use and, for a transverse Mercator (Gauss–Krüger, UTM) CRS,
    within 1.5 degrees of longitude of its central meridian. The message names a suitable CRS.
    """
    crs = require_storage_crs(epsg)
    min_lon, min_lat, max_lon, max_lat = bounds_lonlat
    centre_lon, centre_lat = (min_lon + max_lon) / 2, (min_lat + max_lat) / 2
    suggestion = suggest_storage_epsg(centre_lon, centre_lat)
    hint = f"use a database whose storage CRS is EPSG:{suggestion} ({CRS.from_epsg(suggestion).name})"
    aou = crs.area_of_use
    slack = 0.01
    if aou is not None and not (
        aou.west - slack <= min_lon and max_lon <= aou.east + slack
        and aou.south - slack <= min_lat and max_lat <= aou.north + slack
    ):
        raise InvalidInput(
            f"the area ({min_lon:.3f}–{max_lon:.3f}°E, {min_lat:.3f}–{max_lat:.3f}°N) lies outside the area of use "
            f"of EPSG:{epsg} ({aou.west:.2f}–{aou.east:.2f}°E, {aou.south:.2f}–{aou.north:.2f}°N); {hint}",
            field="srid",
        )
    cm = central_meridian(crs)
    if cm is not None:
        worst = max(abs(min_lon - cm), abs(max_lon - cm))
        if worst > MAX_DEGREES_FROM_CENTRAL_MERIDIAN:
            raise InvalidInput(
                f"the area reaches {worst:.2f}° of longitude from the central meridian {cm:g}°E of EPSG:{epsg} "
                f"(at most {MAX_DEGREES_FROM_CENTRAL_MERIDIAN}° allowed); {hint}",
                field="srid",
            )


# ------------------------------------------------------------------------------------------ GCJ-02 / BD-09
def _gcj_delta(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 offset (dlon, dlat) in degrees at WGS84 positions (lon, lat)."""
    x, y = lon - 105.0, lat - 35.0
    sqrt_abs_x = np.sqrt(np.abs(x))
    common = 20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x
    dlat += common * 2.0 / 3.0
    dlat += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x
    dlon += common * 2.0 / 3.0
    dlon += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    rad_lat = lat / 180.0 * np.pi
    magic = 1.0 - _GCJ_EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_GCJ_A * (1.0 - _GCJ_EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_GCJ_A / sqrt_magic * np.cos(rad_lat) * np.pi)
    return dlon, dlat


def _china_mask(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    return (lon >= 72.004) & (lon <= 137.8347) & (lat >= 0.8293) & (lat <= 55.8271)


def wgs84_to_gcj02(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 lon/lat (EPSG:4326) -> GCJ-02 lon/lat. Points outside China are returned unchanged."""
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    dlon, dlat = _gcj_delta(lon, lat)
    inside = _china_mask(lon, lat)
    return np.where(inside, lon + dlon, lon), np.where(inside, lat + dlat, lat)


def _invert(forward, lon: np.ndarray, lat: np.ndarray, start_lon: np.ndarray, start_lat: np.ndarray,
            tol_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``forward(x, y) = (lon, lat)`` by fixed-point iteration from (start_lon, start_lat).

    The offsets of GCJ-02 and BD-09 vary slowly (≈1e-5 per metre), so each step gains ~5 digits; stops when
    every point moves less than ``tol_deg`` (1e-10° ≈ 0.01 mm).
    """
    x, y = start_lon.copy(), start_lat.copy()
    for _ in range(30):
        f_lon, f_lat = forward(x, y)
        step_lon, step_lat = lon - f_lon, lat - f_lat
        x, y = x + step_lon, y + step_lat
        if step_lon.size == 0 or max(np.nanmax(np.abs(step_lon)), np.nanmax(np.abs(step_lat))) < tol_deg:
            break
    return x, y


def gcj02_to_wgs84(lon: np.ndarray, lat: np.ndarray, tol_deg: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 lon/lat -> WGS84 lon/lat (EPSG:4326), exact inverse of ``wgs84_to_gcj02`` by iteration."""
    g_lon, g_lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    return _invert(wgs84_to_gcj02, g_lon, g_lat, g_lon, g_lat, tol_deg)


def gcj02_to_bd09(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 lon/lat -> BD-09 lon/lat."""
    x, y = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _BD_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _BD_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def bd09_to_gcj02(lon: np.ndarray, lat: np.ndarray, tol_deg: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """BD-09 lon/lat -> GCJ-02 lon/lat (exact inverse of ``gcj02_to_bd09`` by iteration)."""
    b_lon, b_lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    return _invert(gcj02_to_bd09, b_lon, b_lat, b_lon - 0.0065, b_lat - 0.006, tol_deg)


def pseudo_to_wgs84(pseudo: str, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in ``gcj02`` or ``bd09`` -> WGS84 lon/lat (EPSG:4326)."""
    if pseudo == "gcj02":
        return gcj02_to_wgs84(lon, lat)
    if pseudo == "bd09":
        return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))
    raise InvalidInput(f"unknown pseudo-CRS {pseudo!r}", field="crs")


# ------------------------------------------------------------------------------------------ geometries
_TRANSFORMERS: dict[tuple[str, str], Transformer] = {}
_TRANSFORMERS_LOCK = threading.Lock()


def transformer(source: CRS, target: CRS) -> Transformer:
    """A cached always_xy ``Transformer`` from ``source`` to ``target``.

    ``Transformer.from_crs`` searches PROJ's database (~50 ms) and a pyproj Transformer repeats that search
    the first time each new thread uses it; a web server handling each request on a new thread paid it per
    request. So the operation is found once and kept as a pipeline, which a thread sets up in ~0.2 ms.
    Where PROJ has several operations and picks one per coordinate by its area of use (MGI / Austria GK
    East, EPSG:31256, to UTM 33N), there is no single pipeline: that ``Transformer`` is kept as it is.
    """
    key = (source.to_wkt(), target.to_wkt())
    found = _TRANSFORMERS.get(key)
    if found is None:
        with _TRANSFORMERS_LOCK:
            found = _TRANSFORMERS.get(key)
            if found is None:
                found = Transformer.from_crs(source, target, always_xy=True)
                with contextlib.suppress(ProjError):  # "unavailable until proj_trans is called"
                    found = Transformer.from_pipeline(found.definition)
                _TRANSFORMERS[key] = found
    return found


@functools.lru_cache(maxsize=64)
def _epsg(code: int) -> CRS:
    return CRS.from_epsg(code)


def _transform_xy(geoms: np.ndarray, func) -> np.ndarray:
    return shapely.transform(geoms, lambda xy: np.column_stack(func(xy[:, 0], xy[:, 1])))


def to_storage(geoms: np.ndarray, source: InputCrs, storage_epsg: int) -> np.ndarray:
    """Reproject shapely geometries from ``source`` (any EPSG CRS, GCJ-02 or BD-09) to ``storage_epsg``.

    Parameters
    ----------
    geoms : array of shapely geometries in ``source``.
    source : parsed input CRS (``parse_crs``).
    storage_epsg : the deployment CRS, e.g. 4548.

    Returns
    -------
    array of geometries in EPSG:``storage_epsg``.
    """
    geoms = np.asarray(geoms, dtype=object)
    if source.pseudo:
        geoms = _transform_xy(geoms, lambda x, y: pseudo_to_wgs84(source.pseudo, x, y))
    return _transform_xy(geoms, transformer(source.crs, _epsg(storage_epsg)).transform)


def storage_point(lon: float, lat: float, source: InputCrs, storage_epsg: int) -> shapely.Point:
    """One point given as lon/lat in ``source`` (WGS84, GCJ-02 or BD-09), in EPSG:``storage_epsg``.

    Raises ``InvalidInput`` (field ``lon``) when the point is so far from the deployment's projection zone that
    it cannot be projected (PROJ answers infinity): it is then certainly outside every district."""
    point = to_storage(np.array([shapely.Point(lon, lat)], dtype=object), source, storage_epsg)[0]
    if point.is_empty or not (math.isfinite(point.x) and math.isfinite(point.y)):
        raise InvalidInput(f"the point {lon:g}, {lat:g} is too far from this deployment's area "
                           f"(EPSG:{storage_epsg}) to be placed", field="lon")
    return point


def to_lonlat(geoms: np.ndarray, from_epsg: int) -> np.ndarray:
    """Reproject shapely geometries from EPSG:``from_epsg`` to EPSG:4326 (lon/lat order)."""
    return _transform_xy(np.asarray(geoms, dtype=object), transformer(_epsg(from_epsg), _epsg(WEB_EPSG)).transform)


def lonlat_bounds(geoms: np.ndarray, source: InputCrs) -> tuple[float, float, float, float]:
    """Bounds (min_lon, min_lat, max_lon, max_lat) in EPSG:4326 of geometries given in ``source``."""
    geoms = np.asarray(geoms, dtype=object)
    if source.pseudo:
        geoms = _transform_xy(geoms, lambda x, y: pseudo_to_wgs84(source.pseudo, x, y))
    if source.crs.to_epsg() != WEB_EPSG:
        geoms = _transform_xy(geoms, transformer(source.crs, _epsg(WEB_EPSG)).transform)
    return tuple(float(v) for v in shapely.total_bounds(geoms))  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------ diagnosis
LEGACY_DATUMS = ("Beijing 1954", "Xian 1980", "Xi'an 1980")
INSIDE_SHARE = 0.8


def datum_warning(source: InputCrs) -> str | None:
    """A warning for Beijing 1954 / Xi'an 1980 input, which PROJ converts without a grid (ballpark)."""
    datum = source.crs.geodetic_crs.datum.name if source.crs.geodetic_crs else ""
    if any(name.lower() in datum.lower() for name in LEGACY_DATUMS):
        return (f"{source.label} uses the {datum} datum; PROJ has no transformation grid for it here, so positions "
                "may be off by tens of metres — survey-grade data should be delivered in CGCS2000")
    return None


def _gk_candidates(lon: float) -> list[tuple[int, str]]:
    """CGCS2000 Gauss–Krüger CRSs a file about ``lon`` may really be in: the 3° and 6° zones at ``lon`` and
    their neighbours (a wrong zone is a classic mistake), each with and without the zone-number prefix."""
    home3, home6 = 3 * round(lon / 3), 6 * int(lon // 6) + 3
    out = []
    for cm3 in (home3, home3 - 3, home3 + 3):
        if 75 <= cm3 <= 135:
            out += [(4534 + (cm3 - 75) // 3, f"CGCS2000 3° Gauss–Krüger CM {cm3}°E"),
                    (4513 + (cm3 - 75) // 3,
                     f"CGCS2000 3° Gauss–Krüger zone {cm3 // 3} with the zone number prefixed")]
    for cm6 in (home6, home6 - 6, home6 + 6):
        if 75 <= cm6 <= 135:
            out += [(4502 + (cm6 - 75) // 6, f"CGCS2000 6° Gauss–Krüger CM {cm6}°E"),
                    (4491 + (cm6 - 75) // 6,
                     f"CGCS2000 6° Gauss–Krüger zone {(cm6 + 3) // 6} with the zone number prefixed")]
    return out


def diagnose_placement(x: np.ndarray, y: np.ndarray, source: InputCrs, district, storage_epsg: int,
                       district_lon: float, margin_m: float = 5000.0) -> str | None:
    """None when most points land on the district; else a message saying what the coordinates look like.

    Parameters
    ----------
    x, y : raw coordinates as read from the file (in ``source``).
    district : district polygon in the storage CRS; ``district_lon`` its central longitude.

    Tried in turn: swapped axes, degrees read as metres (or the reverse), GCJ-02 web coordinates, and the
    Gauss–Krüger 3°/6° zones around the district with and without the zone number prefixed to the easting.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok][:2000], y[ok][:2000]
    if len(x) == 0:
        return None
    near = district.buffer(margin_m)

    def share(xs: np.ndarray, ys: np.ndarray, crs_in: InputCrs) -> float:
        try:
            pts = to_storage(shapely.points(xs, ys), crs_in, storage_epsg)
        except Exception:  # a candidate CRS that cannot even take these numbers is simply not the answer
            return 0.0
        good = ~shapely.is_empty(pts) & np.isfinite(shapely.get_x(pts))
        return float(np.mean(shapely.contains_xy(near, shapely.get_x(pts[good]), shapely.get_y(pts[good])))) \
            if good.any() else 0.0

    if share(x, y, source) >= 0.5:
        return None
    placed = to_storage(shapely.points(x[:200], y[:200]), source, storage_epsg)
    finite = [p for p in placed if not p.is_empty and np.isfinite(p.x)]
    where = (f"they land {np.median([district.distance(p) for p in finite]) / 1000:.0f} km from the district"
             if finite else "they cannot be placed at all")
    looks_like_degrees = bool(np.all(np.abs(x) <= 180) and np.all(np.abs(y) <= 90))
    candidates: list[tuple[str, np.ndarray, np.ndarray, InputCrs]] = [
        ("the x and y columns swapped", y, x, source)]
    if looks_like_degrees:
        candidates += [("degrees (EPSG:4490 CGCS2000 / EPSG:4326), not metres", x, y, parse_crs(CGCS2000_EPSG)),
                       ("degrees with x and y swapped", y, x, parse_crs(CGCS2000_EPSG)),
                       ("GCJ-02 web coordinates (declare --crs gcj02)", x, y, parse_crs("gcj02"))]
    for epsg, label in _gk_candidates(district_lon):
        candidates += [(f"EPSG:{epsg} ({label})", x, y, parse_crs(epsg)),
                       (f"EPSG:{epsg} ({label}) with x and y swapped", y, x, parse_crs(epsg))]
    for label, xs, ys, crs_in in candidates:
        if share(xs, ys, crs_in) >= INSIDE_SHARE:
            return f"read as {source.label}, {where}; they look like {label}"
    return f"read as {source.label}, {where}; check the file's CRS (pass --crs)"
