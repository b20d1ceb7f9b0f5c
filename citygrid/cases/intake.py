"""Validate an incoming report (supervisor app, hotline, citizen, Open311) into a ``Report``.

Every problem is collected and raised together as ``InvalidInput`` details (field + reason), so a client
learns everything wrong with its request at once. Coordinates are lon/lat in WGS84, GCJ-02 or BD-09 as the
client declares (default WGS84); nothing is written here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from citygrid import codes
from citygrid.components_survey.taxonomy import DEFAULT_SCHEME
from citygrid.errors import InvalidInput
from citygrid.loaders.plaintext import control_character
from citygrid.spatial.timezones import localize

SOURCES = ("supervisor", "hotline", "citizen", "open311", "camera", "import")
INPUT_CRS = ("wgs84", "gcj02", "bd09")
MAX_DESCRIPTION = 2000
MAX_PHOTOS = 10
# Gridded management began in 2004 and the oldest 311 records date from the late 1990s; a year 0001 report
# is a typo or an attack (it made every page's month slider overflow).
EARLIEST_REPORT = dt.datetime(1990, 1, 1, tzinfo=dt.UTC)
_KEY = re.compile(r"^[A-Za-z0-9_.:\-]{1,100}$")


@dataclass(frozen=True)
class Report:
    """A validated report. ``lon``/``lat`` are in ``crs`` (wgs84 | gcj02 | bd09); both None when the report
    is to be located by its ``address`` through the gazetteer. ``class_code`` is empty when the description
    is to be classified (``kind`` empty too unless the client named it)."""

    lon: float | None
    lat: float | None
    crs: str
    kind: str
    class_code: str
    description: str
    source: str
    scheme: str = DEFAULT_SCHEME
    photos: tuple[str, ...] = ()
    component_obj_id: str | None = None
    reported_at: dt.datetime | None = None
    idempotency_key: str | None = None
    address: str | None = None
    synthetic: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _number(data: dict[str, Any], name: str, problems: list[dict[str, str]]) -> float | None:
    raw = data.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        problems.append({"field": name, "reason": "required"})
        return None
    if isinstance(raw, bool):
        problems.append({"field": name, "reason": "must be a number"})
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        problems.append({"field": name, "reason": f"must be a number, not {raw!r}"})
        return None
    if not math.isfinite(value):
        problems.append({"field": name, "reason": "must be a finite number (not NaN or infinity)"})
        return None
    return value


def _text_problems(data: dict[str, Any], problems: list[dict[str, str]]) -> None:
    """A problem for each text field holding a control character (only the description may hold line breaks),
    or a value of the wrong JSON type."""
    for name in ("description", "address", "class_code", "kind", "source", "crs", "idempotency_key",
                 "component_obj_id", "reported_at"):
        value = data.get(name)
        if value is None or (isinstance(value, int | float) and not isinstance(value, bool) and name in (
                "class_code", "component_obj_id")):
            continue
        if not isinstance(value, str):
            problems.append({"field": name, "reason": "must be text"})
            continue
        if (what := control_character(value, single_line=name != "description")) is not None:
            problems.append({"field": name, "reason": f"contains a control character ({what}); send plain text"})


def _synthetic(data: dict[str, Any], allow: bool, problems: list[dict[str, str]]) -> bool:
    """The ``synthetic`` flag: a JSON boolean, and true only where the caller allows it (the seeded demo
    history), never from a reporter."""
    raw = data.get("synthetic", False)
    if not isinstance(raw, bool):
        problems.append({"field": "synthetic", "reason": "must be a JSON boolean (true or false), not text"})
        return False
    if raw and not allow:
        problems.append({"field": "synthetic", "reason": "reports may not mark themselves synthetic; only the "
                                                         "seeded demo history (citygrid cases synthesize) is"})
        return False
    return raw


def parse_report(data: Any, *, default_source: str = "supervisor", default_crs: str = "wgs84",
                 allow_synthetic: bool = False, zone: ZoneInfo | None = None) -> Report:
    """Validate a report given as a mapping (parsed JSON or form fields). ``allow_synthetic``: the caller is
    the seeded synthetic history, which alone may set ``synthetic``. ``zone``: the deployment's time zone
    (``db.deployment_zone``), in which a ``reported_at`` without a UTC offset is read (wall-clock time of the
    city); without it such a time is a problem, never guessed."""
    if not isinstance(data, dict):
        raise InvalidInput("the report must be a JSON object", field="body")
    problems: list[dict[str, str]] = []
    _text_problems(data, problems)
    synthetic = _synthetic(data, allow_synthetic, problems)
    by_address = data.get("lon") in (None, "") and data.get("lat") in (None, "") and bool(data.get("address"))
    lon = None if by_address else _number(data, "lon", problems)
    lat = None if by_address else _number(data, "lat", problems)
    crs = str(data.get("crs") or default_crs).lower().replace("-", "")
    if crs not in INPUT_CRS:
        problems.append({"field": "crs", "reason": f"must be one of {', '.join(INPUT_CRS)}"})
    if lon is not None and lat is not None:
        if not -90 <= lat <= 90 and -90 <= lon <= 90 and -180 <= lat <= 180:
            problems.append({"field": "lat", "reason": f"latitude {lat} is out of range; lon and lat look swapped"})
        elif not -90 <= lat <= 90:
            problems.append({"field": "lat", "reason": f"latitude {lat} is outside -90…90"})
        elif not -180 <= lon <= 180:
            problems.append({"field": "lon", "reason": f"longitude {lon} is outside -180…180"})
        elif 15 <= lon <= 55 and 70 <= lat <= 90:
            problems.append({"field": "lat", "reason": "lon and lat look swapped (a point in China has lon ≈ 73–135)"})
    class_code = str(data.get("class_code") or "").strip()
    description = str(data.get("description") or "").strip()
    # Without a class code the description is classified at submission; the kind then stays open ("")
    # unless the client gives it.
    kind = str(data.get("kind") or ("event" if class_code or not description else ""))
    if kind not in ("component", "event", ""):
        problems.append({"field": "kind", "reason": "must be component or event"})
    if class_code and (reason := codes.problem("class", class_code)):
        problems.append({"field": "class_code", "reason": reason})
    elif not class_code and not description:
        problems.append({"field": "class_code", "reason": "required unless a description is given to classify"})
    source = str(data.get("source") or default_source)
    if source not in SOURCES:
        problems.append({"field": "source", "reason": f"must be one of {', '.join(SOURCES)}"})
    if len(description) > MAX_DESCRIPTION:
        problems.append({"field": "description", "reason": f"longer than {MAX_DESCRIPTION} characters"})
    if not description and source in ("hotline", "citizen", "open311"):
        problems.append({"field": "description", "reason": "required for public reports"})
    photos = data.get("photos") or []
    if not isinstance(photos, list) or len(photos) > MAX_PHOTOS or not all(
            isinstance(p, str) and 0 < len(p) <= 500 for p in photos):
        problems.append({"field": "photos", "reason": f"a list of at most {MAX_PHOTOS} references (≤ 500 chars)"})
        photos = []
    obj_id = data.get("component_obj_id") or None
    if obj_id is not None and (reason := codes.problem("obj_id", str(obj_id))):  # of any scheme: no deployment here
        problems.append({"field": "component_obj_id", "reason": reason})
    key = data.get("idempotency_key") or None
    if key is not None and not _KEY.match(str(key)):
        problems.append({"field": "idempotency_key", "reason": "1–100 characters of A–Z a–z 0–9 _ . : -"})
    reported_at = None
    if data.get("reported_at"):
        try:
            reported_at = dt.datetime.fromisoformat(str(data["reported_at"]).strip().replace("Z", "+00:00"))
            if reported_at.tzinfo is None and zone is not None:
                reported_at = localize(reported_at, zone)
            if reported_at.tzinfo is None:
                reported_at = None
                problems.append({"field": "reported_at", "reason": "needs a UTC offset (e.g. 2026-03-01T09:00:00"
                                                                   "-05:00 or …Z)"})
            elif reported_at > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5):
                problems.append({"field": "reported_at", "reason": "is in the future"})
            elif reported_at < EARLIEST_REPORT:
                problems.append({"field": "reported_at", "reason": f"is before {EARLIEST_REPORT.date()}: no city kept "
                                                                   "such records; check the year"})
        except (ValueError, OverflowError):
            reported_at = None
            problems.append({"field": "reported_at", "reason": "must be an ISO 8601 date-time"})
    address = data.get("address") or None
    if address is not None and len(str(address)) > 300:
        problems.append({"field": "address", "reason": "longer than 300 characters"})
    if problems:
        raise InvalidInput(f"{len(problems)} problem(s) with the report", details=problems)
    return Report(lon=lon, lat=lat, crs=crs, kind=kind, class_code=class_code, description=description,
                  source=source, photos=tuple(photos), component_obj_id=str(obj_id) if obj_id else None,
                  reported_at=reported_at, idempotency_key=str(key) if key else None,
                  address=str(address) if address else None, synthetic=synthetic)


def scoped_key(scope: str, key: str) -> str:
    """The idempotency key as stored: the caller's scope (``user:<id>``, ``open311:<client>``, ``cli``) and the
    key the client sent, so one caller's key never finds another caller's case."""
    return f"{scope}|{key}"


def report_digest(report: Report) -> str:
    """SHA-256 of what a report says (not when it arrived): a retry under the same key must say the same."""
    content = {"lon": report.lon, "lat": report.lat, "crs": report.crs, "kind": report.kind,
               "class_code": report.class_code, "description": report.description, "source": report.source,
               "scheme": report.scheme, "photos": list(report.photos), "obj": report.component_obj_id,
               "reported_at": report.reported_at.isoformat() if report.reported_at else None,
               "address": report.address, "synthetic": report.synthetic}
    return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
