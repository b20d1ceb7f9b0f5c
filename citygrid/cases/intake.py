"""Validate an incoming report (supervisor app, hotline, citizen, Open311) into a ``Report``.

Every problem is collected and raised together as ``InvalidInput`` details (``errors.problem``: field and
reason), so a client learns everything wrong with its request at once. Coordinates are lon/lat in WGS84,
GCJ-02 or BD-09 as the client declares (default WGS84); nothing is written here.
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
from citygrid.errors import InvalidInput, RowProblem, problem
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
    # The complainant (hotline, citizen): {"name", "phone"}, kept apart from the case (``case_contacts``) and
    # never part of the report's digest, so the audit log's image of the case row cannot be used to guess a
    # phone number; None when not given.
    complainant: dict[str, str] | None = None
    # The sha256 of each photo file sent with the report (multipart), in order: part of the digest when there
    # are any, so a retry under the same idempotency key with other photos is another report (409), not a
    # replay that silently drops them; a report without photos keeps the digest it always had.
    uploads: tuple[str, ...] = ()


def _number(data: dict[str, Any], name: str) -> tuple[float | None, RowProblem | None]:
    """Field ``name`` as a finite number, or None and why not."""
    raw = data.get(name)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None, problem(name, "required")
    if isinstance(raw, bool):
        return None, problem(name, "must be a number")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None, problem(name, f"must be a number, not {raw!r}")
    if not math.isfinite(value):
        return None, problem(name, "must be a finite number (not NaN or infinity)")
    return value, None


def _text_problems(data: dict[str, Any]) -> list[RowProblem]:
    """A problem for each text field holding a control character (only the description may hold line breaks),
    or a value of the wrong JSON type."""
    problems = []
    for name in ("description", "address", "class_code", "kind", "source", "crs", "idempotency_key",
                 "component_obj_id", "reported_at"):
        value = data.get(name)
        if value is None or (isinstance(value, int | float) and not isinstance(value, bool) and name in (
                "class_code", "component_obj_id")):
            continue
        if not isinstance(value, str):
            problems.append(problem(name, "must be text"))
        elif (what := control_character(value, single_line=name != "description")) is not None:
            problems.append(problem(name, f"contains a control character ({what}); send plain text"))
    return problems


def _synthetic(data: dict[str, Any], allow: bool) -> tuple[bool, list[RowProblem]]:
    """The ``synthetic`` flag: a JSON boolean, and true only where the caller allows it (the seeded demo
    history), never from a reporter."""
    raw = data.get("synthetic", False)
    if not isinstance(raw, bool):
        return False, [problem("synthetic", "must be a JSON boolean (true or false), not text")]
    if raw and not allow:
        return False, [problem("synthetic", "reports may not mark themselves synthetic; only the seeded demo "
                                            "history (citygrid cases synthesize) is")]
    return raw, []


def _coordinates(data: dict[str, Any], default_crs: str
                 ) -> tuple[float | None, float | None, str, list[RowProblem]]:
    """``lon``, ``lat`` and the CRS they are in (wgs84 | gcj02 | bd09; ``default_crs`` when not given).

    Both None for a report without coordinates but with an ``address`` (located by the gazetteer later).
    Problems: a missing or non-numeric coordinate, an unknown CRS, a value out of range or lon/lat swapped.
    """
    by_address = data.get("lon") in (None, "") and data.get("lat") in (None, "") and bool(data.get("address"))
    lon, lon_problem = (None, None) if by_address else _number(data, "lon")
    lat, lat_problem = (None, None) if by_address else _number(data, "lat")
    problems = [p for p in (lon_problem, lat_problem) if p is not None]
    crs = str(data.get("crs") or default_crs).lower().replace("-", "")
    if crs not in INPUT_CRS:
        problems.append(problem("crs", f"must be one of {', '.join(INPUT_CRS)}"))
    if lon is not None and lat is not None and (out := _out_of_range(lon, lat)) is not None:
        problems.append(out)
    return lon, lat, crs, problems


def _out_of_range(lon: float, lat: float) -> RowProblem | None:
    """Why a lon/lat pair (degrees) cannot be a place, saying when they look swapped; None when it can."""
    if not -90 <= lat <= 90 and -90 <= lon <= 90 and -180 <= lat <= 180:
        return problem("lat", f"latitude {lat} is out of range; lon and lat look swapped")
    if not -90 <= lat <= 90:
        return problem("lat", f"latitude {lat} is outside -90…90")
    if not -180 <= lon <= 180:
        return problem("lon", f"longitude {lon} is outside -180…180")
    if 15 <= lon <= 55 and 70 <= lat <= 90:
        return problem("lat", "lon and lat look swapped (a point in China has lon ≈ 73–135)")
    return None


def _class_and_kind(data: dict[str, Any], description: str) -> tuple[str, str, list[RowProblem]]:
    """The report's ``kind`` (component | event) and ``class_code``; without a class code the description is
    classified at submission, and the kind then stays open ("") unless the client gives it.

    Problems: an unknown kind, a malformed class code, or neither a class code nor a description.
    """
    class_code = str(data.get("class_code") or "").strip()
    kind = str(data.get("kind") or ("event" if class_code or not description else ""))
    problems = []
    if kind not in ("component", "event", ""):
        problems.append(problem("kind", "must be component or event"))
    if class_code and (reason := codes.problem("class", class_code)):
        problems.append(problem("class_code", reason))
    elif not class_code and not description:
        problems.append(problem("class_code", "required unless a description is given to classify"))
    return kind, class_code, problems


def _source_and_text(data: dict[str, Any], description: str, default_source: str
                     ) -> tuple[str, tuple[str, ...], list[RowProblem]]:
    """The ``source`` (``default_source`` when not given) and the ``photos`` references.

    Problems: an unknown source, a description too long or missing from a public report, photos that are not
    a list of at most ``MAX_PHOTOS`` short references (then none are kept).
    """
    source = str(data.get("source") or default_source)
    problems = []
    if source not in SOURCES:
        problems.append(problem("source", f"must be one of {', '.join(SOURCES)}"))
    if len(description) > MAX_DESCRIPTION:
        problems.append(problem("description", f"longer than {MAX_DESCRIPTION} characters"))
    if not description and source in ("hotline", "citizen", "open311"):
        problems.append(problem("description", "required for public reports"))
    photos = data.get("photos") or []
    if not isinstance(photos, list) or len(photos) > MAX_PHOTOS or not all(
            isinstance(p, str) and 0 < len(p) <= 500 for p in photos):
        problems.append(problem("photos", f"a list of at most {MAX_PHOTOS} references (≤ 500 chars)"))
        photos = []
    return source, tuple(photos), problems


def _keys(data: dict[str, Any]) -> tuple[str | None, str | None, list[RowProblem]]:
    """The ``component_obj_id`` the report names (an ObjID of any code scheme: no deployment is at hand here)
    and the client's ``idempotency_key``; None where not given."""
    obj_id = data.get("component_obj_id") or None
    key = data.get("idempotency_key") or None
    problems = []
    if obj_id is not None and (reason := codes.problem("obj_id", str(obj_id))):
        problems.append(problem("component_obj_id", reason))
    if key is not None and not _KEY.match(str(key)):
        problems.append(problem("idempotency_key", "1–100 characters of A–Z a–z 0–9 _ . : -"))
    return (str(obj_id) if obj_id else None), (str(key) if key else None), problems


def _reported_at(data: dict[str, Any], zone: ZoneInfo | None) -> tuple[dt.datetime | None, list[RowProblem]]:
    """When the report was made, as an aware datetime (None when not given: the time of storing applies).

    A time without a UTC offset is wall-clock time of ``zone`` (the deployment's), a problem without one.
    Problems: not ISO 8601, no offset and no zone, in the future, before ``EARLIEST_REPORT``.
    """
    if not data.get("reported_at"):
        return None, []
    try:
        reported_at = dt.datetime.fromisoformat(str(data["reported_at"]).strip().replace("Z", "+00:00"))
        if reported_at.tzinfo is None and zone is not None:
            reported_at = localize(reported_at, zone)
    except (ValueError, OverflowError):
        return None, [problem("reported_at", "must be an ISO 8601 date-time")]
    if reported_at.tzinfo is None:
        return None, [problem("reported_at", "needs a UTC offset (e.g. 2026-03-01T09:00:00-05:00 or …Z)")]
    if reported_at > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5):
        return reported_at, [problem("reported_at", "is in the future")]
    if reported_at < EARLIEST_REPORT:
        return reported_at, [problem("reported_at", f"is before {EARLIEST_REPORT.date()}: no city kept such "
                                                    "records; check the year")]
    return reported_at, []


MAX_COMPLAINANT_NAME = 100
MAX_COMPLAINANT_PHONE = 40
# Digits, spaces, + - ( ) and an optional extension (ext. 12, x12, #12, 转12).
_PHONE = re.compile(r"\+?[0-9(][0-9 ()\-]*(?:\s*(?:ext\.?|x|#|转)\s*[0-9]{1,8})?", re.IGNORECASE)


def _complainant(data: dict[str, Any]) -> tuple[dict[str, str] | None, list[RowProblem]]:
    """The complainant's contact (``complainant: {"name", "phone"}``; None when not given): an object of those
    two text fields, at least one not empty; the name at most ``MAX_COMPLAINANT_NAME`` characters, the phone
    at most ``MAX_COMPLAINANT_PHONE`` of digits, spaces, + - ( ) and an extension; no control characters."""
    raw = data.get("complainant")
    if raw is None:
        return None, []
    if not isinstance(raw, dict) or set(raw) - {"name", "phone"}:
        return None, [problem("complainant", 'must be an object {"name": text, "phone": text} and nothing else')]
    problems = []
    values = {}
    for name, limit in (("name", MAX_COMPLAINANT_NAME), ("phone", MAX_COMPLAINANT_PHONE)):
        value = raw.get(name, "")
        if not isinstance(value, str):
            problems.append(problem(f"complainant.{name}", "must be text"))
        elif (what := control_character(value, single_line=True)) is not None:
            problems.append(problem(f"complainant.{name}", f"contains a control character ({what})"))
        elif len(value.strip()) > limit:
            problems.append(problem(f"complainant.{name}", f"longer than {limit} characters"))
        else:
            values[name] = value.strip()
    phone = values.get("phone", "")
    if phone and (not _PHONE.fullmatch(phone) or sum(c.isdigit() for c in phone) < 3):
        problems.append(problem("complainant.phone", "digits, spaces, + - ( ) and an extension (ext. 12) only"))
    if not problems and not any(values.values()):
        problems.append(problem("complainant", "give the name or the phone, or leave complainant out"))
    return (None if problems else {"name": values.get("name", ""), "phone": phone}), problems


def _address(data: dict[str, Any]) -> tuple[str | None, list[RowProblem]]:
    """The ``address`` to locate the report by (None when not given); at most 300 characters."""
    address = data.get("address") or None
    if address is not None and len(str(address)) > 300:
        return str(address), [problem("address", "longer than 300 characters")]
    return (str(address) if address else None), []


def parse_report(data: Any, *, default_source: str = "supervisor", default_crs: str = "wgs84",
                 allow_synthetic: bool = False, zone: ZoneInfo | None = None) -> Report:
    """Validate a report given as a mapping (parsed JSON or form fields), every field in its own step.

    Parameters
    ----------
    data : the report; coordinates are lon/lat in its ``crs`` (WGS84 unless ``default_crs`` or the report
        says GCJ-02 or BD-09), or absent with an ``address``.
    default_source, default_crs : what the caller's channel implies when the report does not say.
    allow_synthetic : the caller is the seeded synthetic history, which alone may set ``synthetic``.
    zone : the deployment's time zone (``db.deployment_zone``), in which a ``reported_at`` without a UTC
        offset is read (wall-clock time of the city); without it such a time is a problem, never guessed.

    Raises
    ------
    InvalidInput with every problem at once in ``details`` (``errors.problem``: field and reason).
    """
    if not isinstance(data, dict):
        raise InvalidInput("the report must be a JSON object", field="body")
    problems = _text_problems(data)
    synthetic, found = _synthetic(data, allow_synthetic)
    problems += found
    lon, lat, crs, found = _coordinates(data, default_crs)
    problems += found
    description = str(data.get("description") or "").strip()
    kind, class_code, found = _class_and_kind(data, description)
    problems += found
    source, photos, found = _source_and_text(data, description, default_source)
    problems += found
    obj_id, key, found = _keys(data)
    problems += found
    reported_at, found = _reported_at(data, zone)
    problems += found
    address, found = _address(data)
    problems += found
    complainant, found = _complainant(data)
    problems += found
    if problems:
        raise InvalidInput(f"{len(problems)} problem(s) with the report", details=list(problems))
    return Report(lon=lon, lat=lat, crs=crs, kind=kind, class_code=class_code, description=description,
                  source=source, photos=photos, component_obj_id=obj_id, reported_at=reported_at,
                  idempotency_key=key, address=address, synthetic=synthetic, complainant=complainant)


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
    if report.uploads:
        content["uploads"] = list(report.uploads)
    return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
