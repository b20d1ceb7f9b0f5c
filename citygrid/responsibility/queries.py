"""Reads of responsibility for every front end (the web layer and the CLI), with plain filter objects."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from citygrid.errors import InvalidInput, NotFound
from citygrid.responsibility import store
from citygrid.spatial.db import deployment_zone


# --- ownership ---
def grid_owners(conn: Connection, code: str, day: dt.date | None = None, *, phones: bool = False) -> dict[str, Any]:
    """Who answered for unit grid ``code`` on the local day ``day`` (deployment's zone; default today), per
    role of ``ownership.ROLES``: the assignment in force last that day (the latest to begin among those
    overlapping it).

    Returns
    -------
    ``grid``, ``district``, ``date``, ``zone`` and ``owners``: per role ``party`` (kind, code, name, contact;
    None when nobody was listed), ``derived`` (citygrid derived it from administrative codes, not a city's
    list), ``valid_from``/``valid_to`` (instants; ``valid_to`` None while open), ``import_id`` (the ownership
    import it came from) and ``people`` (the named people of that role in force at the end of that day, as
    ``grid_people`` gives them; phones only when ``phones``). A city's list gives a party's ``contact`` (its
    phone, 联系电话) only when ``phones``: None otherwise; a derived party's contact is citygrid's own text.

    ``NotFound`` when ``code`` was never issued as a unit grid of its district (retired grids are answered: a
    past day may ask for them).
    """
    from citygrid import codes
    from citygrid.responsibility.ownership import ROLES
    from citygrid.spatial.timezones import day_start

    district = codes.deployment_scheme(conn).district_of("unit_grid", code)
    if not store.unit_grid_issued(conn, district, code):
        raise NotFound(f"no unit grid {code}")
    zone = deployment_zone(conn)
    day = day or dt.datetime.now(zone).date()
    if not dt.date(2, 1, 1) <= day < dt.date(9999, 1, 1):  # a day whose start is an instant in every zone
        raise InvalidInput(f"date {day.isoformat()} is out of range (years 2 to 9998)", field="date")
    rows = {r["role"]: r for r in store.owners_during(conn, district, code, day_start(day, zone),
                                                      day_start(day + dt.timedelta(days=1), zone))}
    end = day_start(day + dt.timedelta(days=1), zone) - dt.timedelta(microseconds=1)
    people = people_by_owner_role(grid_people(conn, district, code, end, phones=phones))
    owners = {}
    for role in ROLES:
        row = rows.get(role)
        owners[role] = {
            "party": {"kind": row["kind"], "code": row["code"], "name": row["name"],
                      "contact": row["contact"] if phones or row["derived"] else None} if row else None,
            "derived": bool(row["derived"]) if row else None,
            "valid_from": row["valid_from"] if row else None, "valid_to": row["valid_to"] if row else None,
            "import_id": row["import_id"] if row else None, "people": people.get(role, [])}
    return {"grid": code, "district": district, "date": day.isoformat(), "zone": zone.key, "owners": owners}


# --- frontage ---
@dataclass(frozen=True)
class FrontageFilter:
    """Which frontage units to list.

    Attributes
    ----------
    districts : the districts to read (None: every district; the web layer passes the caller's own).
    bbox : (min lon, min lat, max lon, max lat) in EPSG:4326, tested exactly.
    day : the local day the units must be valid on (None: today in the deployment's zone).
    current_only : False lists expired and future units too.
    party : only the unit of this party code (a ``unit`` account's own).
    phones : whether a unit's ``contact_phone`` is given: True, False, or per district (a predicate of the
        district code, as ``people.phones_visible`` answers it for the caller); left out otherwise.
    limit, offset : the page, in unit id order.
    """

    districts: tuple[str, ...] | None = None
    bbox: tuple[float, float, float, float] | None = None
    day: dt.date | None = None
    current_only: bool = True
    party: str | None = None
    phones: bool | Callable[[str], bool] = False
    limit: int = 500
    offset: int = 0


def local_today(conn: Connection) -> dt.date:
    """Today in the deployment's time zone (``db.deployment_zone``), the day validity ranges are read on."""
    return dt.datetime.now(deployment_zone(conn)).date()


def _feature(row: dict[str, Any], phones: bool | Callable[[str], bool]) -> dict[str, Any]:
    """A unit row as a GeoJSON Feature (geometry EPSG:4326), dates as ISO text; ``contact_phone`` only where
    ``phones`` (or ``phones(district)``) allows it."""
    shown = phones(row["district_code"]) if callable(phones) else phones
    props = {k: (v.isoformat() if isinstance(v, dt.date | dt.datetime) else v)
             for k, v in row.items() if k not in ("geometry", "party_id") and (shown or k != "contact_phone")}
    return {"type": "Feature", "id": row["unit_id"], "geometry": row["geometry"], "properties": props}


def frontage_units(conn: Connection, f: FrontageFilter) -> dict[str, Any]:
    """A page of frontage units as a GeoJSON FeatureCollection in EPSG:4326 (``limit``/``offset`` echoed)."""
    rows = store.frontage_units(conn, districts=list(f.districts) if f.districts is not None else None,
                                bbox=f.bbox, day=f.day or local_today(conn), current_only=f.current_only,
                                party=f.party, limit=f.limit, offset=f.offset)
    return {"type": "FeatureCollection", "features": [_feature(r, f.phones) for r in rows], "limit": f.limit,
            "offset": f.offset}


def frontage_unit(conn: Connection, unit_id: int, *, phones: bool | Callable[[str], bool] = False
                  ) -> dict[str, Any]:
    """Unit ``unit_id`` as a GeoJSON Feature (EPSG:4326) with ``district_code`` among its properties
    (``contact_phone`` as ``FrontageFilter.phones`` says); ``NotFound`` when there is none."""
    row = store.frontage_unit(conn, unit_id)
    if row is None:
        raise NotFound(f"no frontage unit {unit_id}")
    return _feature(row, phones)


def frontage_unit_at(conn: Connection, district: str, wkb: bytes, srid: int, at: Any = None) -> dict[str, Any] | None:
    """The responsibility unit whose frontage covers a point (WKB in EPSG ``srid``, the storage CRS) of
    ``district`` on the local day of instant ``at`` (None: now): ``unit_id``, ``name``, ``kind``, the party
    ``code``/``party_name``/``party_kind`` and ``synthetic``; None where no frontage covers it."""
    return store.frontage_unit_at(conn, district, wkb, srid, at)


def frontage_units_at_many(conn: Connection, points: list[tuple[str, bytes, Any]], srid: int
                           ) -> list[dict[str, Any] | None]:
    """``frontage_unit_at`` of each (district, point WKB in EPSG ``srid``, instant or None: now) of ``points``,
    in one query (a page of cases), in their order."""
    return store.frontage_units_at_many(conn, points, srid)


def frontage_units_in_grid(conn: Connection, district: str, version_id: int, grid_code: str, *,
                           phones: bool = False) -> list[dict[str, Any]]:
    """The units current today whose frontage meets unit grid ``grid_code`` of grid version ``version_id``:
    id, name, kind, credit code or registry id, contact person (and phone, when ``phones``), party code,
    ``synthetic``."""
    units = store.frontage_units_in_grid(conn, district, version_id, grid_code, local_today(conn))
    return units if phones else [{k: v for k, v in u.items() if k != "contact_phone"} for u in units]


# --- rotation ---
# The account roles that may read rotation plans (admins always may): planners and the command centre, in their
# own district. Supervisors do not read the plan that moves them ahead of its publication (seed 001: the centre
# carries it out), nor do units, analysts or GIS staff.
ROTATION_READERS: tuple[str, ...] = ("planner", "dispatcher")


@dataclass(frozen=True)
class RotationFilter:
    """Which stored rotation plan to read.

    Attributes
    ----------
    plan_id : the plan's id.
    districts : the districts the caller may read (None: every district); a plan elsewhere is not found.
    team : only this team's rows (a team code), or None for all.
    """

    plan_id: int
    districts: tuple[str, ...] | None = None
    team: str | None = None


def rotation_readable_districts(account_roles: tuple[str, ...], account_district: str | None
                                ) -> tuple[str, ...] | None:
    """The districts an account reads plans of: every one for admins and accounts without a district, else
    its own."""
    return None if "admin" in account_roles or account_district is None else (account_district,)


def rotation_plan(conn: Connection, f: RotationFilter) -> dict[str, Any]:
    """A stored plan: header (district, version, start, months, min_gap, params, summary, synthetic, created and
    published), ``periods`` (local days: ``from`` inclusive, ``until`` exclusive) and ``rows`` (period,
    person_id, person_name, team_code, supervision_code, leader). ``NotFound`` outside ``f.districts``."""
    from citygrid.responsibility import rotation_plans

    return rotation_plans.read_plan(conn, f.plan_id, f.districts, f.team)


def rotation_plan_list(conn: Connection, districts: tuple[str, ...] | None) -> list[dict[str, Any]]:
    """Headers of the stored plans of ``districts`` (None: all), newest first."""
    rows = store.rotation_plans(conn, districts)
    return [{**r, "start_date": r["start_date"].isoformat(), "created_at": r["created_at"].isoformat(),
             "published_at": r["published_at"].isoformat() if r["published_at"] else None} for r in rows]


def rotation_plan_csv(plan: dict[str, Any]) -> str:
    """A plan read by ``rotation_plan`` as CSV, every cell spreadsheet-safe (a name cannot start a formula)."""
    from citygrid.responsibility import rotation_plans

    return rotation_plans.plan_csv(plan)


# --- people ---
@dataclass(frozen=True)
class PeopleFilter:
    """Which named people to list.

    Attributes
    ----------
    district : district code (required).
    role : a person role (``people.PERSON_ROLES``), or None for all.
    phones : whether the caller may read phone numbers (``people.PHONE_READERS``); None in the answer otherwise.
    limit, offset : the page, in name order.
    """

    district: str
    role: str | None = None
    phones: bool = False
    limit: int = 1000
    offset: int = 0


def _phone_shown(row: dict[str, Any], phones: bool) -> dict[str, Any]:
    return {**row, "phone": row["phone"] if phones else None}


def list_people(conn: Connection, f: PeopleFilter) -> dict[str, Any]:
    """A page of ``f.district``'s people with the slots they hold now; phones only when ``f.phones``.
    SYNTHETIC people (a demo's roster) say so (``synthetic``)."""
    rows = store.people_page(conn, f.district, f.role, f.limit, f.offset)
    return {"district": f.district, "role": f.role, "limit": f.limit, "offset": f.offset,
            "people": [_phone_shown(r, f.phones) for r in rows]}


def grid_people(conn: Connection, district: str, grid_code: str, at: dt.datetime | None = None, *,
                phones: bool = False) -> list[dict[str, Any]]:
    """The named people answering for unit grid ``grid_code`` at instant ``at`` (default now): its supervision
    grid's supervisors and team leader, its community's enforcement officers (lead first) and responsible
    person, and the contact of its responsibility party; each ``role``, ``position``, ``code``, ``target``,
    ``since``, ``person_id``, ``name``, ``synthetic`` and ``phone`` (None unless ``phones``)."""
    rows = store.grid_people(conn, district, grid_code, at or dt.datetime.now(dt.UTC))
    return [_phone_shown(r, phones) for r in rows]


def people_by_owner_role(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """``grid_people``'s rows under the four subjects' roles (the owners answer): supervision (supervisors,
    team leader), enforcement (officers), management (the community's responsible person), responsibility
    (the responsibility party's contact)."""
    subject = {"supervisor": "supervision", "team_leader": "supervision", "enforcement_officer": "enforcement",
               "community_head": "management", "unit_contact": "responsibility"}
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(subject[row["role"]], []).append(row)
    return grouped


# --- parties ---
MAX_PARTY_QUERY = 100


def list_parties(conn: Connection, district: str, *, q: str | None = None, kind: str | None = None,
                 limit: int = 50) -> dict[str, Any]:
    """The active parties of ``district`` a dispatcher may send a case to instead of the rule's: ``code``,
    ``name``, ``kind``, filtered by ``q`` (part of the name or code, any case, taken literally) and ``kind``.

    Raises ``InvalidInput`` (field ``q``) for a query over ``MAX_PARTY_QUERY`` characters.
    """
    if q is not None and len(q) > MAX_PARTY_QUERY:
        raise InvalidInput(f"q is longer than {MAX_PARTY_QUERY} characters", field="q")
    rows = store.search_parties(conn, district, q or None, kind, limit)
    return {"district": district, "parties": rows, "count": len(rows), "limit": limit}
