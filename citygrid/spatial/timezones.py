"""The deployment's time zone: naming it, deriving a default from the storage CRS, and reading local times.

A deployment is one city and records one IANA time zone (``deployment.timezone``, chosen at ``db init``).
Times are stored as ``timestamptz`` (absolute instants); the zone decides how a time *without* an offset is
read (a report's ``reported_at``, a query's ``start``/``end``), which local day a date names, and the offset
answers carry. Nothing here reads the machine's or the database server's own zone.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import math
import re
import zoneinfo
from typing import Any
from zoneinfo import ZoneInfo

from citygrid.errors import InvalidInput

# IANA names are ASCII letters, digits and ``/_+-`` ("America/Argentina/Buenos_Aires", "Etc/GMT+5").
_ZONE_NAME = re.compile(r"^[A-Za-z0-9_+\-]{1,32}(/[A-Za-z0-9_+\-]{1,32}){0,2}$")
# Names in the zone database that are no city's zone: the machine's own setting, and "no zone" ("-00").
_NOT_PLACES = frozenset({"localtime", "posixrules", "Factory"})
# How far (degrees) from the centre of a CRS's area of use to look for land when the centre is at sea.
_SEARCH_DEGREES = 6.0
_SEARCH_STEP = 0.25


@functools.cache
def _available() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def zone_named(name: object, field: str = "timezone") -> ZoneInfo:
    """The IANA time zone called ``name`` (e.g. ``America/New_York``); ``InvalidInput`` naming ``field``
    otherwise, with the closest known names as suggestions.

    Only names of the installed IANA database are accepted (no file paths, no POSIX TZ strings such as
    ``EST5EDT,M3.2.0,M11.1.0``, no ``localtime``)."""
    if not isinstance(name, str) or not _ZONE_NAME.match(name) or ".." in name:
        raise InvalidInput(f"time zone {str(name)[:80]!r} is not an IANA name such as Europe/Berlin or "
                           "America/New_York", field=field)
    if name not in _available() or name in _NOT_PLACES:
        close = difflib.get_close_matches(name, sorted(_available() - _NOT_PLACES), n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise InvalidInput(f"unknown time zone {name!r}{hint}: give an IANA name such as Europe/Berlin or "
                           "America/New_York", field=field)
    return ZoneInfo(name)


@functools.cache
def _finder() -> Any:  # a TimezoneFinder (loaded on first use: its data takes 0.1 s)
    from timezonefinder import TimezoneFinder

    return TimezoneFinder()


def _land_zone(lon: float, lat: float) -> str | None:
    """The zone of the land at ``lon``/``lat`` (WGS84), None at sea (ocean zones are ``Etc/GMT±N``)."""
    name = _finder().timezone_at(lng=lon, lat=lat)
    return None if name is None or name.startswith("Etc/") else name


def zone_at(lon: float, lat: float) -> str | None:
    """The IANA zone of the land at or nearest to ``lon``/``lat`` (EPSG:4326 degrees), looked for in rings up
    to ``_SEARCH_DEGREES`` away; None when there is only sea that far."""
    lon = (lon + 180.0) % 360.0 - 180.0
    lat = max(-89.9, min(89.9, lat))
    if (found := _land_zone(lon, lat)) is not None:
        return found
    steps = int(_SEARCH_DEGREES / _SEARCH_STEP)
    for ring in range(1, steps + 1):
        radius = ring * _SEARCH_STEP
        count = 8 * ring
        for k in range(count):
            angle = 2 * math.pi * k / count
            x = (lon + radius * math.cos(angle) + 180.0) % 360.0 - 180.0
            y = max(-89.9, min(89.9, lat + radius * math.sin(angle)))
            if (found := _land_zone(x, y)) is not None:
                return found
    return None


def zone_for_srid(srid: int) -> tuple[str, str]:
    """The default zone of a deployment storing geometry in EPSG:``srid``: the zone of the land at (or
    nearest to) the centre of the CRS's area of use; ``UTC`` when the CRS has none or it is all sea.

    Returns (zone name, how it was chosen) — e.g. ``("Asia/Shanghai", "the centre (117.0°E, 36.2°N) of the
    area of use of EPSG:4548 (China - onshore between 115°30'E and 118°30'E.)")``.
    """
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        area = CRS.from_epsg(int(srid)).area_of_use
    except (CRSError, ValueError, TypeError):
        area = None
    if area is None:
        return "UTC", f"EPSG:{srid} has no area of use; UTC"
    west, south, east, north = area.west, area.south, area.east, area.north
    if west > east:  # crosses the antimeridian
        east += 360.0
    lon, lat = (west + east) / 2.0, (south + north) / 2.0
    lon = (lon + 180.0) % 360.0 - 180.0
    name = area.name.rstrip(".")
    name = name if len(name) <= 60 else name[:59] + "…"
    where = f"the centre ({abs(lon):.1f}°{'E' if lon >= 0 else 'W'}, {abs(lat):.1f}°{'N' if lat >= 0 else 'S'})" \
            f" of the area of use of EPSG:{srid} ({name})"
    if east - west >= 180.0 and north - south >= 90.0:
        return "UTC", f"EPSG:{srid} covers the world; UTC"
    found = zone_at(lon, lat)
    if found is None:
        return "UTC", f"only sea near {where}; UTC"
    return found, where


def localize(moment: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """``moment`` as an aware datetime: a naive one is read as wall-clock time in ``zone`` (a time skipped or
    repeated by a daylight-saving change takes the offset before the change, ``fold=0``); an aware one is
    kept as the same instant, expressed in ``zone``."""
    if moment.tzinfo is None or moment.tzinfo.utcoffset(moment) is None:
        return moment.replace(tzinfo=zone)
    return moment.astimezone(zone)


def parse_datetime(text: str, zone: ZoneInfo) -> dt.datetime:
    """An ISO 8601 date-time (``Z`` or an offset, or none: then wall-clock time in ``zone``) as an aware
    datetime in ``zone``. ``ValueError`` when it is not ISO 8601."""
    return localize(dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00")), zone)


def day_start(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    """The first instant of the local day ``day`` in ``zone`` (midnight, or the first time after midnight on
    the rare days a daylight-saving change skips it)."""
    start = dt.datetime.combine(day, dt.time(), zone)
    # A skipped midnight (e.g. America/Havana, Asia/Beirut) reads as the instant after the gap.
    return start.astimezone(dt.UTC).astimezone(zone)


def instant(text: str, zone: ZoneInfo) -> dt.datetime:
    """A query's date or date-time as an instant in ``zone``: a date (``2026-03-01``) is the first instant of
    that local day, a date-time without an offset wall-clock time there, one with an offset that instant.
    ``ValueError`` (or ``OverflowError`` at the ends of the calendar) when ``text`` is neither. Inclusive
    periods (a date end covering its whole day) are ``citygrid.periods``'."""
    text = text.strip()
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        return day_start(dt.date.fromisoformat(text), zone)
    return parse_datetime(text, zone)
