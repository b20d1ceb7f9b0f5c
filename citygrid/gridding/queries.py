"""Reads of grids for every front end: pages of grids, one grid, a grid's card, versions, owners, teams.

"Current" is a district's newest published grid version, else its newest draft (``spatial.store``'s one
rule). A page of grids is asked for with one plain filter object, ``GridFilter``; a version that does not
exist is a ``NotFound`` saying so, the same for every route. Geometry comes back as GeoJSON in EPSG:4326.

Examples
--------
>>> GridFilter(district="110105", kind="supervision").limit
1000
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.engine import Connection

from citygrid.errors import NotFound
from citygrid.gridding import store
from citygrid.gridding.store import find_grid, versions
from citygrid.responsibility import queries as responsibility
from citygrid.responsibility.queries import grid_people
from citygrid.spatial import crs
from citygrid.spatial.db import deployment_srid
from citygrid.spatial.geocode import GridIndex
from citygrid.spatial.store import district_codes

# What front ends call: the functions defined here, and the store's reads that already have the shape a
# front end needs, under their domain names.
__all__ = ["GridFilter", "current_card", "current_owners", "current_teams", "find_grid", "grid_at", "grid_page",
           "version", "versions"]


@dataclass(frozen=True)
class GridFilter:
    """Which grids to page through.

    Attributes
    ----------
    district : district code (required).
    kind : ``unit`` or ``supervision``.
    version : grid version id; None for the district's current version.
    bbox : (min lon, min lat, max lon, max lat) in EPSG:4326, tested exactly in EPSG:4326.
    limit, offset : the page, in code order.
    """

    district: str
    kind: str = "unit"
    version: int | None = None
    bbox: tuple[float, float, float, float] | None = None
    limit: int = 1000
    offset: int = 0


def version(conn: Connection, district: str, version_id: int | None = None) -> dict[str, Any]:
    """Grid version ``version_id`` of ``district`` (None: the current one), with its grid and team counts;
    ``NotFound`` when the district has no such version."""
    row = store.version_row(conn, district, version_id)
    if row is None:
        raise NotFound(f"district {district} has no grid version" + (f" {version_id}" if version_id else ""))
    return row


def grid_page(conn: Connection, f: GridFilter) -> dict[str, Any]:
    """A page of the grids ``f`` asks for as a GeoJSON FeatureCollection in EPSG:4326, with ``total``,
    ``limit``, ``offset``, the ``version`` read and its ``version_status``; ``NotFound`` without that version.
    """
    found = version(conn, f.district, f.version)
    page = store.grids_geojson(conn, district=f.district, version_id=found["version_id"], kind=f.kind,
                               bbox=f.bbox, limit=f.limit, offset=f.offset, srid=deployment_srid(conn))
    return {**page, "version": found["version_id"], "version_status": found["status"]}


def current_card(conn: Connection, district: str, code: str, *, phones: bool = False) -> dict[str, Any] | None:
    """Unit grid ``code``'s card in ``district``'s current version (names, supervision grid and team, owners
    per role now, the named people answering for it now with their roles (``people``; phones only when
    ``phones``: ``responsibility.people.PHONE_READERS``), open and total cases, components); None when the
    grid is not in it."""
    row = store.version_row(conn, district, None)
    card = store.grid_card(conn, district, row["version_id"], code) if row else None
    if card is not None:
        card["people"] = grid_people(conn, district, code, phones=phones)
        # The frontage units (门前三包) and property companies whose frontage meets the grid, valid today.
        card["frontage_units"] = responsibility.frontage_units_in_grid(conn, district, row["version_id"], code,
                                                                       phones=phones)
    return card


def current_owners(conn: Connection, district: str, role: str) -> tuple[int, list[dict[str, Any]]]:
    """(current version id, the parties owning its unit grids in ``role`` now with their grid counts, most
    first); ``NotFound`` when the district has no grid version."""
    version_id = version(conn, district)["version_id"]
    return version_id, store.owner_counts(conn, district, version_id, role)


def current_teams(conn: Connection, district: str) -> list[dict[str, Any]]:
    """The supervision teams of ``district``'s current version with their supervision-grid counts (none when
    the district has no grid version)."""
    row = store.version_row(conn, district, None)
    return store.teams(conn, district, row["version_id"]) if row else []


def grid_at(conn: Connection, lon: float, lat: float, *,
            phones: Callable[[str], bool] = lambda district: False) -> dict[str, Any] | None:
    """The current unit grid covering a point, by the geocoder's boundary rule (``spatial.geocode``).

    Parameters
    ----------
    lon, lat : the point in EPSG:4326 (WGS84).
    phones : whether the caller may read the phones of a district's people (the card's ``people``).

    Returns
    -------
    ``district``, ``code`` and ``card`` (see ``current_card``) of the grid, and ``frontage_unit``: the
    responsibility unit (门前三包) whose frontage covers the point today, the point's responsibility subject
    (``responsibility.queries.frontage_unit_at``; None where no frontage covers it); None outside every grid.
    """
    srid = deployment_srid(conn)
    point = crs.storage_point(lon, lat, crs.parse_crs("EPSG:4326"), srid)
    for district in district_codes(conn):
        index = GridIndex.cached(conn, district)
        hit = int(index.assign(np.array([point.x]), np.array([point.y]))[0])
        if hit >= 0:
            card = store.grid_card(conn, district, index.version, index.codes[hit])
            if card is not None:
                card["people"] = grid_people(conn, district, index.codes[hit], phones=phones(district))
            unit = responsibility.frontage_unit_at(conn, district, point.wkb, srid)
            return {"district": district, "code": index.codes[hit], "card": card, "frontage_unit": unit}
    return None
