"""Frontage units (门前三包) and property companies: the registry of responsibility units with their frontage areas.

A responsibility unit (a shop, an institution, a property company, a market…) keeps the pavement in front of its
premises clean and orderly (seed 000; DOMAIN.md "门前三包"). Each unit has a name, a kind, the unified social
credit code (统一社会信用代码, GB 32100-2015) it is registered under — or, outside China, another registry's
number (``registry_id``) — a contact person and phone, a dated validity (local days of the deployment's zone,
``valid_to`` exclusive) and one or more frontage polygons (one MultiPolygon in the storage CRS).

Each unit is also a party (``parties.kind`` ``frontage_unit``, or ``property_company`` for a property company)
whose code is its credit code (else its registry id), so dispatch rules and ``unit`` accounts
(``citygrid users add --party <code>``) reach it the way they reach any party.

This module holds the checks (pure functions) and the writes of single units; a file import is
``frontage_import``; SQL is in ``store``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import shapely
import shapely.geometry
from shapely.geometry.base import BaseGeometry
from sqlalchemy.engine import Connection

from citygrid.errors import Conflict, InvalidInput, NotFound, RowProblem, problem
from citygrid.loaders.plaintext import control_character
from citygrid.responsibility import store
from citygrid.responsibility.queries import local_today
from citygrid.spatial import crs
from citygrid.spatial.boundaries import district_boundary
from citygrid.spatial.db import deployment_srid

KINDS = ("shop", "institution", "property_company", "market", "other")
PARTY_KINDS = ("frontage_unit", "property_company")
# GB 32100-2015: the 31 characters a code is written in (no I, O, S, V, Z) and the weights of the first 17.
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
REGISTRY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ./:_-]{0,63}$")
MAX_NAME = 200
MAX_TEXT = 200
MAX_PHONE = 40
PHONE = re.compile(r"^[0-9+()\- ]{3,40}$")
# A frontage area is the pavement in front of premises: a polygon larger than this is a mistake (a whole block).
MAX_AREA_M2 = 50_000.0
MIN_AREA_M2 = 0.5
MAX_VERTICES = 10_000  # a frontage is a strip of pavement: more vertices is a digitising accident or an attack
FIELDS = ("name", "kind", "credit_code", "registry_id", "contact_person", "contact_phone", "address", "valid_from",
          "valid_to")


def party_kind(kind: str) -> str:
    """The ``parties.kind`` of a unit of ``kind``: ``property_company`` for one, ``frontage_unit`` otherwise.

    >>> party_kind("shop"), party_kind("property_company")
    ('frontage_unit', 'property_company')
    """
    return "property_company" if kind == "property_company" else "frontage_unit"


# ------------------------------------------------------------------------------------------ credit codes
def credit_check_character(first17: str) -> str:
    """The check character (18th) of a unified social credit code whose first 17 characters are ``first17``
    (GB 32100-2015: the weighted sum of the characters' values mod 31, subtracted from 31; 31 is written 0).

    >>> credit_check_character("91440300708461136")
    'T'
    """
    total = sum(USCC_CHARS.index(char) * weight for char, weight in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_CHARS[(31 - total % 31) % 31]


def credit_code_problem(code: str) -> str | None:
    """Why ``code`` is not a unified social credit code (length, a character outside the standard's set, the
    check character), or None when it is one.

    >>> credit_code_problem("91440300708461136T") is None
    True
    >>> credit_code_problem("91440300708461136A")
    'check character is A, the code computes T (GB 32100-2015)'
    """
    if len(code) != 18:
        return f"a unified social credit code has 18 characters, not {len(code)}"
    bad = next((i for i, char in enumerate(code) if char not in USCC_CHARS), None)
    if bad is not None:
        return (f"character {bad + 1} ({code[bad]!r}) is not one a credit code is written in "
                "(0-9 and upper-case A-Y without I, O, S, V, Z)")
    expected = credit_check_character(code[:17])
    if code[17] != expected:
        return f"check character is {code[17]}, the code computes {expected} (GB 32100-2015)"
    return None


# ------------------------------------------------------------------------------------------ one unit's fields
@dataclass(frozen=True)
class UnitFields:
    """A unit's attributes as given (import row or API body), already text-checked by ``unit_fields``.

    ``geom`` is the frontage (Multi)Polygon in the storage CRS (EPSG ``deployment.srid``), None when not given
    (an edit that keeps the geometry).
    """

    name: str | None = None
    kind: str | None = None
    credit_code: str | None = None
    registry_id: str | None = None
    contact_person: str | None = None
    contact_phone: str | None = None
    address: str | None = None
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None
    geom: BaseGeometry | None = None

    def given(self) -> dict[str, Any]:
        """The fields that were given (not None), geometry as WKB."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        if "geom" in out:
            out["geom"] = shapely.to_wkb(out["geom"])
        return out


def _text(value: Any, name: str, limit: int, line: int | None, problems: list[RowProblem]) -> str | None:
    """``value`` as stripped one-line text (None for missing/empty); a problem when it is not text, too long or
    holds a control character."""
    if value is None:
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        problems.append(problem(name, f"{name} must be text", line=line))
        return None
    text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value).strip()
    if not text:
        return None
    where = control_character(text, single_line=True)
    if where:
        problems.append(problem(name, f"{name} holds a control character ({where})", line=line))
        return None
    if len(text) > limit:
        problems.append(problem(name, f"{name} is {len(text)} characters long; at most {limit}", line=line))
        return None
    return text


def _day(value: Any, name: str, line: int | None, problems: list[RowProblem]) -> dt.date | None:
    """An ISO date (YYYY-MM-DD) or None; a problem otherwise."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    text = str(value).strip()
    try:
        if len(text) != 10:
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        problems.append(problem(name, f"{name} {text[:40]!r} is not a date (YYYY-MM-DD)", line=line))
        return None


def unit_fields(record: dict[str, Any], *, line: int | None = None, partial: bool = False
                ) -> tuple[UnitFields, list[RowProblem]]:
    """Check a unit's attributes (not its geometry) as one row or one request gives them.

    Parameters
    ----------
    record : ``name``, ``kind``, ``credit_code``, ``registry_id``, ``contact_person``, ``contact_phone``,
        ``address``, ``valid_from``, ``valid_to`` (missing keys are None).
    line : the file line, for the problems.
    partial : an edit: only what is given is checked; else ``name`` and a credit code or registry id are
        required and ``kind`` defaults to ``other``.

    Returns
    -------
    (fields, problems in the ``errors.problem`` shape).
    """
    problems: list[RowProblem] = []
    name = _text(record.get("name"), "name", MAX_NAME, line, problems)
    kind = _text(record.get("kind"), "kind", 40, line, problems)
    if kind is not None and kind not in KINDS:
        problems.append(problem("kind", f"kind {kind[:40]!r} is not one of {', '.join(KINDS)}", line=line))
    credit = _text(record.get("credit_code"), "credit_code", 40, line, problems)
    if credit is not None and (reason := credit_code_problem(credit.upper())):
        problems.append(problem("credit_code", reason, line=line, key=credit))
    registry = _text(record.get("registry_id"), "registry_id", 64, line, problems)
    if registry is not None and not REGISTRY_ID.match(registry):
        problems.append(problem("registry_id", "a registry id is 1-64 letters, digits, spaces and . / : _ -",
                                line=line))
    phone = _text(record.get("contact_phone"), "contact_phone", MAX_PHONE, line, problems)
    if phone is not None and not PHONE.match(phone):
        problems.append(problem("contact_phone", "a phone number is 3-40 digits, spaces and + ( ) -", line=line))
    valid_from = _day(record.get("valid_from"), "valid_from", line, problems)
    valid_to = _day(record.get("valid_to"), "valid_to", line, problems)
    if valid_from and valid_to and valid_to <= valid_from:
        problems.append(problem("valid_to", f"valid_to {valid_to} is not after valid_from {valid_from}", line=line))
    if not partial:
        if name is None and not any(p["field"] == "name" for p in problems):
            problems.append(problem("name", "a unit needs a name", line=line))
        if credit is None and registry is None and not any(
                p["field"] in ("credit_code", "registry_id") for p in problems):
            problems.append(problem("credit_code", "a unit needs a unified social credit code or, outside China, "
                                    "a registry_id", line=line))
        kind = kind or "other"
    return UnitFields(name=name, kind=kind, credit_code=credit.upper() if credit else None, registry_id=registry,
                      contact_person=_text(record.get("contact_person"), "contact_person", MAX_TEXT, line, problems),
                      contact_phone=phone,
                      address=_text(record.get("address"), "address", MAX_TEXT, line, problems),
                      valid_from=valid_from, valid_to=valid_to), problems


def frontage_geometry(geom: BaseGeometry | None, boundary: BaseGeometry, *, line: int | None = None
                      ) -> tuple[BaseGeometry | None, list[RowProblem]]:
    """A frontage area as a MultiPolygon in the storage CRS, checked: polygonal, valid (never repaired: a
    self-intersecting frontage is sent back to be drawn again, with where it crosses), of a plausible size
    (``MIN_AREA_M2``..``MAX_AREA_M2``) and inside the district.

    Parameters
    ----------
    geom : the geometry in the storage CRS (EPSG ``deployment.srid``), or None.
    boundary : the district's (Multi)Polygon in the same CRS.

    Returns
    -------
    (MultiPolygon or None, problems).
    """
    if geom is None or geom.is_empty:
        return None, [problem("geometry", "a frontage unit needs its frontage polygon(s)", line=line)]
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        return None, [problem("geometry", f"a frontage area is a polygon, not a {geom.geom_type}", line=line)]
    if not shapely.is_valid(geom):
        return None, [problem("geometry", f"the polygon is not valid ({shapely.is_valid_reason(geom)}); draw it "
                              "again", line=line)]
    area = float(geom.area)
    if not MIN_AREA_M2 <= area <= MAX_AREA_M2:
        return None, [problem("geometry", f"the frontage area is {area:,.1f} m²; a frontage is "
                              f"{MIN_AREA_M2}-{MAX_AREA_M2:,.0f} m² (the pavement in front of premises)", line=line)]
    if not boundary.intersects(geom):
        return None, [problem("geometry", "the frontage lies outside the district (is the CRS right?)", line=line)]
    if geom.geom_type == "Polygon":
        geom = shapely.MultiPolygon([geom])
    return geom, []


# ------------------------------------------------------------------------------------------ writes
def save_unit(conn: Connection, district: str, unit: UnitFields, *, today: dt.date, synthetic: bool = False,
              source: str = "", licence: str = "") -> tuple[int, str]:
    """Insert unit ``unit`` of ``district``, or update the one with its credit code (else registry id): its
    party (created or renamed) and its row. ``unit.geom`` in the storage CRS. Returns (unit_id, ``created`` or
    ``updated``). Nothing else is removed or changed."""
    key = unit.credit_code or unit.registry_id or ""
    kind = unit.kind or "other"
    existing = store.frontage_unit_by_key(conn, district, unit.credit_code, unit.registry_id)
    values = {"name": unit.name, "kind": kind, "credit_code": unit.credit_code, "registry_id": unit.registry_id,
              "contact_person": unit.contact_person or "", "contact_phone": unit.contact_phone or "",
              "address": unit.address or "", "valid_from": unit.valid_from or today, "valid_to": unit.valid_to,
              "geom": shapely.to_wkb(unit.geom), "synthetic": synthetic, "source": source, "licence": licence}
    contact = " ".join(x for x in (unit.contact_person, unit.contact_phone) if x)
    if existing is None:
        party_id = store.insert_frontage_party(conn, district, party_kind(kind), key, unit.name or key, contact)
        return store.insert_frontage_unit(conn, district, party_id, values), "created"
    store.update_frontage_party(conn, district, existing["party_id"], party_kind(kind), unit.name or key, contact)
    store.update_frontage_unit(conn, district, existing["unit_id"], values)
    return existing["unit_id"], "updated"


def edit_unit(conn: Connection, unit_id: int, changes: UnitFields) -> dict[str, Any]:
    """Change the given fields of unit ``unit_id`` (``changes.geom`` in the storage CRS, checked by the
    caller with ``frontage_geometry``). The credit code and registry id identify the unit and its party and
    cannot be changed here. Returns the stored row (``store.frontage_unit``); ``NotFound`` for an unknown id,
    ``InvalidInput`` for a range that ends before it starts."""
    row = store.frontage_unit(conn, unit_id)
    if row is None:
        raise NotFound(f"no frontage unit {unit_id}")
    given = changes.given()
    for fixed in ("credit_code", "registry_id"):
        if fixed in given and given[fixed] != row[fixed]:
            raise InvalidInput(f"{fixed} identifies the unit and cannot be changed; add a new unit instead",
                               field=fixed)
    start, end = given.get("valid_from", row["valid_from"]), given.get("valid_to", row["valid_to"])
    if end is not None and end <= start:
        raise InvalidInput(f"valid_to {end} is not after valid_from {start}", field="valid_to")
    store.update_frontage_unit(conn, row["district_code"], unit_id, given)
    if "name" in given or "kind" in given:
        store.update_frontage_party(conn, row["district_code"], row["party_id"],
                                    party_kind(given.get("kind", row["kind"])), given.get("name", row["name"]),
                                    None)
    return store.frontage_unit(conn, unit_id) or {}


# ------------------------------------------------------------------------------------------ one unit from JSON
def _json_parts(data: Any) -> tuple[dict[str, Any], Any]:
    """(attributes, GeoJSON geometry or None) of a request body: a GeoJSON Feature, or a flat object with the
    attributes and ``geometry``; ``InvalidInput`` for anything else or a key that is not a unit's."""
    if not isinstance(data, dict):
        raise InvalidInput("send a JSON object (a GeoJSON Feature or the unit's fields)", field="body")
    if data.get("type") == "Feature":
        props = data.get("properties") or {}
        if not isinstance(props, dict):
            raise InvalidInput("properties must be an object", field="properties")
        extra = sorted(set(data) - {"type", "properties", "geometry", "id"})
        attrs, geometry = props, data.get("geometry")
    else:
        attrs, geometry = {k: v for k, v in data.items() if k != "geometry"}, data.get("geometry")
        extra = []
    extra += sorted(set(attrs) - set(FIELDS))
    if extra:
        raise InvalidInput(f"a frontage unit has no field {str(extra[0])[:40]!r}; its fields: {', '.join(FIELDS)}, "
                           "geometry", field=str(extra[0])[:40])
    return attrs, geometry


def geometry_from_geojson(conn: Connection, district: str, geometry: Any) -> BaseGeometry:
    """A GeoJSON (Multi)Polygon in EPSG:4326 as the checked frontage MultiPolygon of ``district`` in the storage
    CRS (``frontage_geometry``); ``InvalidInput`` (field ``geometry``) saying what is wrong."""
    if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
        raise InvalidInput("geometry must be a GeoJSON Polygon or MultiPolygon in EPSG:4326 (lon/lat)",
                           field="geometry")
    try:
        shape = shapely.geometry.shape(geometry)
    except (ValueError, TypeError, AttributeError, IndexError, KeyError, OverflowError, RecursionError,
            shapely.errors.ShapelyError):  # Overflow: a coordinate like 1e400 written as a whole number
        raise InvalidInput("geometry is not a readable GeoJSON polygon", field="geometry") from None
    coords = shapely.get_coordinates(shape)
    if len(coords) > MAX_VERTICES:
        raise InvalidInput(f"geometry has {len(coords):,} vertices; at most {MAX_VERTICES:,}", field="geometry")
    if len(coords) == 0 or not np.isfinite(coords).all() or (np.abs(coords[:, 0]) > 180).any() \
            or (np.abs(coords[:, 1]) > 90).any():
        raise InvalidInput("geometry coordinates must be lon/lat (EPSG:4326) numbers", field="geometry")
    stored = crs.to_storage(np.array([shape], dtype=object), crs.parse_crs("EPSG:4326"), deployment_srid(conn))[0]
    geom, problems = frontage_geometry(stored, district_boundary(conn, district))
    if problems:
        raise InvalidInput(problems[0]["reason"], details=list(problems))
    return geom


def create_unit(conn: Connection, district: str, data: Any) -> int:
    """Add one unit to ``district`` from a request body (``_json_parts``: its fields and a GeoJSON geometry in
    EPSG:4326). Returns its id. ``InvalidInput`` with every field's problem; ``Conflict`` when the district has
    a unit with that credit code (or registry id) already (edit that one)."""
    attrs, geometry = _json_parts(data)
    fields_, problems = unit_fields(attrs)
    if problems:
        raise InvalidInput(f"{len(problems)} problem(s) with the unit", details=list(problems))
    if store.frontage_unit_by_key(conn, district, fields_.credit_code, fields_.registry_id) is not None:
        raise Conflict(f"district {district} has a unit with {fields_.credit_code or fields_.registry_id} already; "
                       "edit it (PATCH) instead")
    unit = UnitFields(**{**fields_.__dict__, "geom": geometry_from_geojson(conn, district, geometry)})
    unit_id, _ = save_unit(conn, district, unit, today=local_today(conn))
    return unit_id


def change_unit(conn: Connection, unit_id: int, data: Any) -> dict[str, Any]:
    """Change the fields a request body gives of unit ``unit_id`` (geometry as GeoJSON in EPSG:4326); see
    ``edit_unit``. ``NotFound`` for an unknown unit, ``InvalidInput`` with every field's problem."""
    row = store.frontage_unit(conn, unit_id)
    if row is None:
        raise NotFound(f"no frontage unit {unit_id}")
    attrs, geometry = _json_parts(data)
    for name in ("name", "kind"):
        if name in attrs and attrs[name] in (None, ""):
            raise InvalidInput(f"{name} cannot be emptied", field=name)
    fields_, problems = unit_fields(attrs, partial=True)
    if problems:
        raise InvalidInput(f"{len(problems)} problem(s) with the change", details=list(problems))
    geom = geometry_from_geojson(conn, row["district_code"], geometry) if geometry is not None else None
    return edit_unit(conn, unit_id, UnitFields(**{**fields_.__dict__, "geom": geom}))
