"""As-of history of the grids (#23): which unit grid, supervision grid, team and owners a place had on a day,
and what changed between two versions.

Versions are never edited once published; each has its validity ``[effective_from, effective_to)``
(``service.publish``), so "which grid was this point in on 2025-03-01, and who owned it" reads the version in
force that local day (the deployment's zone) and the ownership in force that day (``responsibility.queries``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import shapely
from sqlalchemy.engine import Connection

from citygrid.errors import InvalidInput, NotFound
from citygrid.gridding import store
from citygrid.responsibility import queries as responsibility
from citygrid.spatial import crs
from citygrid.spatial.db import deployment_srid, deployment_zone
from citygrid.spatial.timezones import day_start


def _day_bounds(conn: Connection, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The first instant of local day ``day`` and of the next (deployment's zone)."""
    if not dt.date(2, 1, 1) <= day < dt.date(9999, 1, 1):
        raise InvalidInput(f"date {day.isoformat()} is out of range (years 2 to 9998)", field="date")
    zone = deployment_zone(conn)
    return day_start(day, zone), day_start(day + dt.timedelta(days=1), zone)


def version_on(conn: Connection, district: str, day: dt.date) -> dict[str, Any]:
    """The version of ``district`` in force on local day ``day`` (the latest to begin among those in force
    during it). ``NotFound`` before the first published version, naming the day it took effect."""
    start, end = _day_bounds(conn, day)
    found = store.version_during(conn, district, start, end)
    if found is None:
        first = store.first_effective(conn, district)
        if first is None:
            raise NotFound(f"district {district} has no published grid version")
        local_first = first.astimezone(deployment_zone(conn)).date()
        raise NotFound(f"district {district} has no grid version on {day.isoformat()}: its first took effect on "
                       f"{local_first.isoformat()}")
    return found


def grid_at(conn: Connection, lon: float, lat: float, day: dt.date, *,
            phones: bool | Callable[[str], bool] = False) -> dict[str, Any]:
    """The unit grid covering a point on local day ``day``, with what answered for it that day.

    Parameters
    ----------
    lon, lat : the point in EPSG:4326 (WGS84).
    day : a local day of the deployment's zone.
    phones : whether the people's phones may be given (``responsibility.people.PHONE_READERS``), or that per
        district code.

    Returns
    -------
    ``district``, ``date``, ``zone``, ``version`` (id, status, ``effective_from``/``effective_to``), ``code``,
    ``unit_grid`` (code, street, community, area), ``supervision_grid``, ``team`` (code, name), ``owners`` per
    role as ``responsibility.queries.grid_owners`` gives them for that day, and ``frontage_unit`` (the
    门前三包 unit whose frontage covered the point that day). ``code`` None (and no version) when the point lies
    in no district; ``NotFound`` when its district had no version yet that day (the message names the first).
    """
    srid = deployment_srid(conn)
    point = crs.storage_point(lon, lat, crs.parse_crs("EPSG:4326"), srid)
    wkb = shapely.to_wkb(point)
    zone = deployment_zone(conn)
    answer: dict[str, Any] = {"district": None, "date": day.isoformat(), "zone": zone.key, "version": None,
                              "code": None, "unit_grid": None, "supervision_grid": None, "team": None,
                              "owners": None, "frontage_unit": None}
    districts = store.districts_covering(conn, wkb, srid)
    if not districts:
        return {**answer, "message": f"no district covers {lon:.6f}, {lat:.6f}"}
    district = districts[0]
    version = version_on(conn, district, day)
    grid = store.unit_grid_covering(conn, district, version["version_id"], wkb, srid)
    answer.update(district=district, version={
        "version": version["version_id"], "status": version["status"],
        "effective_from": version["effective_from"].isoformat(),
        "effective_to": version["effective_to"].isoformat() if version["effective_to"] else None})
    if grid is None:
        return {**answer, "message": f"no unit grid of version {version['version_id']} covers the point"}
    shown = phones(district) if callable(phones) else phones
    owners = responsibility.grid_owners(conn, grid["code"], day, phones=shown)["owners"]
    _, end = _day_bounds(conn, day)
    unit = responsibility.frontage_unit_at(conn, district, wkb, srid, end - dt.timedelta(microseconds=1))
    answer.update(code=grid["code"], supervision_grid=grid["supervision_code"],
                  team={"code": grid["team_code"], "name": grid["team_name"]} if grid["team_code"] else None,
                  unit_grid={k: grid[k] for k in ("code", "street_code", "community_code", "area_m2")},
                  owners=owners, frontage_unit=unit)
    return answer


def differences(conn: Connection, district: str, version_a: int, version_b: int
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(unit grids that differ, supervision grids that differ) from version a to b: ``store.grid_differences``'
    rows with each one's team before and after (``team_before``, ``team_after``), and
    ``store.supervision_differences``' rows. Reads only the rows that differ, besides the two versions' codes."""
    supervision = store.supervision_differences(conn, district, version_a, version_b)
    moved = [r["code"] for r in supervision if r["team_before"] and r["team_after"]
             and r["team_before"] != r["team_after"]]
    rows = store.grid_differences(conn, district, version_a, version_b, moved)
    teams_a = store.teams_of_supervision(conn, district, version_a)
    teams_b = store.teams_of_supervision(conn, district, version_b)
    for row in rows:
        row["team_before"] = teams_a.get(row["supervision_before"]) if row["supervision_before"] else None
        row["team_after"] = teams_b.get(row["supervision_after"]) if row["supervision_after"] else None
    return rows, supervision


def _area(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


def diff(conn: Connection, district: str, version_a: int, version_b: int) -> dict[str, Any]:
    """What changed from version ``version_a`` to ``version_b`` of ``district``.

    Returns
    -------
    ``district``, ``from``, ``to``, ``counts`` (added, removed, changed, reassigned) and ``features``: a
    GeoJSON FeatureCollection (EPSG:4326) of the unit grids that differ, each with ``code``, ``change``
    (``added``, ``removed``, ``changed`` geometry, or ``reassigned`` to another supervision grid or team),
    ``area_before_m2``/``area_after_m2``/``area_delta_m2`` and the supervision grid and team before and
    after; ``supervision_grids``: those whose outline or team differ. ``NotFound`` for a version the district
    does not have.
    """
    for vid in (version_a, version_b):
        if store.version_row(conn, district, vid) is None:
            raise NotFound(f"district {district} has no grid version {vid}")
    rows, supervision_rows = differences(conn, district, version_a, version_b)
    features = []
    counts = {"added": 0, "removed": 0, "changed": 0, "reassigned": 0}
    for row in rows:
        counts[row["change"]] += 1
        before, after = _area(row["area_before"]), _area(row["area_after"])
        features.append({"type": "Feature", "id": row["code"], "geometry": json.loads(row["geometry"]),
                         "properties": {
                             "code": row["code"], "change": row["change"], "area_before_m2": before,
                             "area_after_m2": after, "area_delta_m2": round((after or 0.0) - (before or 0.0), 1),
                             "supervision_before": row["supervision_before"],
                             "supervision_after": row["supervision_after"],
                             "team_before": row["team_before"], "team_after": row["team_after"]}})
    supervision = [{"code": r["code"], "team_before": r["team_before"], "team_after": r["team_after"],
                    "area_before_m2": _area(r["area_before"]), "area_after_m2": _area(r["area_after"])}
                   for r in supervision_rows]
    return {"district": district, "from": version_a, "to": version_b, "counts": counts,
            "supervision_grids": supervision, "features": {"type": "FeatureCollection", "features": features}}
