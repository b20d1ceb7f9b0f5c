"""SQL of the gridding package: grid versions, unit and supervision grids, teams, the code registry.

Geometry crosses as WKB in the deployment CRS, or as GeoJSON in EPSG:4326 for the web. Bound parameters only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely
from sqlalchemy.engine import Connection

from citygrid.cases.workflow import CLOSED_STATES
from citygrid.gridding.areas import AreaInput
from citygrid.gridding.codes import parse_code
from citygrid.spatial.db import statement
from citygrid.spatial.store import CURRENT_VERSION_ORDER, current_version_sql


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


# ------------------------------------------------------------------------------------------ inputs
def load_areas(conn: Connection, district: str) -> list[AreaInput]:
    """Streets and communities of a district with point/polygon in the deployment CRS."""
    rows = conn.execute(statement(
        """SELECT code, level, name, parent_code, ST_AsBinary(point) AS point, ST_AsBinary(geom) AS geom,
                  geom_derived FROM admin_areas WHERE district_code = :d ORDER BY code"""
    ), {"d": district}).mappings()
    return [AreaInput(code=r["code"], level=r["level"], name=r["name"], parent_code=r["parent_code"],
                      point=shapely.from_wkb(r["point"]) if r["point"] else None,
                      polygon=shapely.from_wkb(r["geom"]) if r["geom"] else None, derived=r["geom_derived"])
            for r in rows]


def load_roads(conn: Connection, district: str) -> tuple[np.ndarray, np.ndarray]:
    """Road LineStrings (deployment CRS) and their classes."""
    rows = conn.execute(statement(
        "SELECT ST_AsBinary(geom), class FROM lines WHERE district_code = :d AND kind = 'road' ORDER BY line_id"
    ), {"d": district}).all()
    geoms = np.array([shapely.from_wkb(r[0]) for r in rows], dtype=object)
    return geoms, np.array([r[1] for r in rows], dtype=object)


def save_derived_areas(conn: Connection, district: str, shapes: dict[str, Any], srid: int) -> None:
    """Store derived street/community polygons (``geom_derived``), never over a real polygon."""
    conn.execute(statement(
        "UPDATE admin_areas SET geom = NULL WHERE district_code = :d AND geom_derived"), {"d": district})
    rows = [{"d": district, "code": code, "wkb": shapely.to_wkb(geom), "srid": srid}
            for code, geom in shapes.items() if geom is not None and not geom.is_empty]
    if rows:
        conn.execute(statement(
            """UPDATE admin_areas
                  SET geom = ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_GeomFromWKB(:wkb, :srid)), 3)),
                      geom_derived = true
                WHERE district_code = :d AND code = :code AND (geom IS NULL OR geom_derived)"""
        ), rows)


# ------------------------------------------------------------------------------------------ versions
def next_version_id(conn: Connection, district: str) -> int:
    """The number of a district's next version: after every version there is, every version the code registry
    names and every draft dropped (``drafts.drop`` audits it as ``<district>/<version>``): a number is never
    given twice, so the audit log and the registry's ``first_version`` / ``retired_version`` name one version."""
    return conn.execute(statement(
        """SELECT greatest((SELECT coalesce(max(version_id), 0) FROM grid_versions WHERE district_code = :d),
                           (SELECT coalesce(max(greatest(first_version, retired_version)), 0) FROM grid_codes
                             WHERE district_code = :d),
                           (SELECT coalesce(max(CAST(split_part(object_id, '/', 2) AS integer)), 0) FROM audit_log
                             WHERE district_code = :d AND object_kind = 'grid_version' AND action = 'drop_draft'
                               AND object_id ~ '^[^/]+/[0-9]{1,9}$')) + 1"""), {"d": district}
    ).scalar_one()


def create_version(conn: Connection, *, district: str, version_id: int, source: str, author: str,
                   params: dict[str, Any], note: str, parent_version: int | None) -> None:
    conn.execute(statement(
        """INSERT INTO grid_versions (district_code, version_id, status, source, parent_version, author, note, params)
           VALUES (:d, :v, 'draft', :source, :parent, :author, :note, CAST(:params AS jsonb))"""
    ), {"d": district, "v": version_id, "source": source, "parent": parent_version, "author": author,
        "note": note, "params": _json(params)})


def merge_version_params(conn: Connection, district: str, version_id: int, extra: dict[str, Any]) -> None:
    conn.execute(statement(
        """UPDATE grid_versions SET params = params || CAST(:extra AS jsonb)
            WHERE district_code = :d AND version_id = :v"""
    ), {"d": district, "v": version_id, "extra": _json(extra)})


def versions(conn: Connection, district: str) -> list[dict[str, Any]]:
    rows = conn.execute(statement(
        """SELECT v.version_id, v.status, v.source, v.parent_version, v.author, v.note, v.created_at,
                  v.effective_from, v.effective_to, v.params, v.revision,
                  (SELECT count(*) FROM unit_grids u WHERE u.district_code = v.district_code
                      AND u.version_id = v.version_id) AS unit_grids,
                  (SELECT count(*) FROM supervision_grids s WHERE s.district_code = v.district_code
                      AND s.version_id = v.version_id) AS supervision_grids,
                  (SELECT count(*) FROM supervision_teams t WHERE t.district_code = v.district_code
                      AND t.version_id = v.version_id) AS teams
             FROM grid_versions v WHERE v.district_code = :d ORDER BY v.version_id"""
    ), {"d": district}).mappings()
    return [dict(r) for r in rows]


def version_row(conn: Connection, district: str, version_id: int | None) -> dict[str, Any] | None:
    """One version; ``None`` picks the newest published one, else the newest of any status."""
    rows = versions(conn, district)
    if version_id is not None:
        return next((r for r in rows if r["version_id"] == version_id), None)
    published = [r for r in rows if r["status"] == "published"]
    return (published or rows or [None])[-1]


def publish(conn: Connection, district: str, version_id: int, effective_from: Any) -> None:
    """Publish a draft: the current published version ends where this one starts."""
    conn.execute(statement(
        """UPDATE grid_versions SET status = 'retired', effective_to = :start
            WHERE district_code = :d AND status = 'published' AND version_id <> :v"""
    ), {"d": district, "v": version_id, "start": effective_from})
    conn.execute(statement(
        """UPDATE grid_versions SET status = 'published', effective_from = :start
            WHERE district_code = :d AND version_id = :v"""
    ), {"d": district, "v": version_id, "start": effective_from})


# ------------------------------------------------------------------------------------------ unit grids
def insert_unit_grids(conn: Connection, district: str, version_id: int, rows: Sequence[dict[str, Any]],
                      srid: int) -> None:
    """Rows: code, street_code, community_code, area_m2, wkb (Polygon in EPSG:``srid``), attrs (dict)."""
    conn.execute(statement(
        """INSERT INTO unit_grids (district_code, version_id, code, street_code, community_code, area_m2, attrs, geom)
           VALUES (:d, :v, :code, :street_code, :community_code, :area_m2, CAST(:attrs AS jsonb),
                   ST_GeomFromWKB(:wkb, :srid))"""
    ), [{**r, "d": district, "v": version_id, "srid": srid, "attrs": _json(r.get("attrs", {}))} for r in rows])


def unit_grids(conn: Connection, district: str, version_id: int) -> list[dict[str, Any]]:
    """Unit grids of a version with shapely geometry (deployment CRS), ordered by code."""
    rows = conn.execute(statement(
        """SELECT code, street_code, community_code, supervision_code, area_m2, ST_AsBinary(geom) AS wkb
             FROM unit_grids WHERE district_code = :d AND version_id = :v ORDER BY code"""
    ), {"d": district, "v": version_id}).mappings()
    return [{**{k: r[k] for k in r if k != "wkb"}, "geom": shapely.from_wkb(r["wkb"])} for r in rows]


# The workload terms of a version's unit grids (the measure the partition balances); callers add an order or a
# filter on the codes.
_WORKLOAD_TERMS = """SELECT u.code, u.supervision_code, ST_Area(u.geom) AS area,
       (SELECT count(*) FROM components c WHERE c.district_code = u.district_code
           AND c.valid_to IS NULL AND ST_Intersects(c.geom, u.geom)) AS components,
       (SELECT count(*) FROM cases k WHERE k.district_code = u.district_code
           AND ST_Intersects(k.geom, u.geom)) AS cases,
       (SELECT coalesce(sum(ST_Length(ST_Intersection(l.geom, ST_Buffer(u.geom, 15)))), 0)
          FROM lines l WHERE l.district_code = u.district_code AND l.kind = 'road'
           AND ST_DWithin(l.geom, u.geom, 15)) AS roads
  FROM unit_grids u WHERE u.district_code = :d AND u.version_id = :v"""


def workload_terms(conn: Connection, district: str, version_id: int) -> dict[str, np.ndarray]:
    """Per unit grid (ordered by code): current components, cases, road metres within 15 m, area m²."""
    rows = conn.execute(statement(_WORKLOAD_TERMS + " ORDER BY u.code"),
                        {"d": district, "v": version_id}).mappings().all()
    return {name: np.array([float(r[name]) for r in rows]) for name in ("components", "cases", "roads", "area")}


# ------------------------------------------------------------------------------------------ supervision
def replace_supervision(conn: Connection, district: str, version_id: int, teams: Sequence[dict[str, Any]],
                        groups: Sequence[dict[str, Any]], assignment: dict[str, str], srid: int) -> None:
    """Replace the supervision grids and teams of a draft version and point its unit grids at them.

    teams: code, name; groups: code, team_code, street_code, workload, wkb; assignment: unit code -> group code.
    """
    params = {"d": district, "v": version_id}
    conn.execute(statement(
        "UPDATE unit_grids SET supervision_code = NULL WHERE district_code = :d AND version_id = :v"), params)
    conn.execute(statement("DELETE FROM supervision_grids WHERE district_code = :d AND version_id = :v"), params)
    conn.execute(statement("DELETE FROM supervision_teams WHERE district_code = :d AND version_id = :v"), params)
    if teams:
        conn.execute(statement(
            "INSERT INTO supervision_teams (district_code, version_id, code, name) VALUES (:d, :v, :code, :name)"
        ), [{**t, **params} for t in teams])
    conn.execute(statement(
        """INSERT INTO supervision_grids (district_code, version_id, code, team_code, street_code, workload, geom)
           VALUES (:d, :v, :code, :team_code, :street_code, :workload,
                   ST_Multi(ST_GeomFromWKB(:wkb, :srid)))"""
    ), [{**g, **params, "srid": srid} for g in groups])
    conn.execute(statement(
        """UPDATE unit_grids u SET supervision_code = a.sup
             FROM (SELECT unnest(CAST(:units AS text[])) AS unit, unnest(CAST(:sups AS text[])) AS sup) a
            WHERE u.district_code = :d AND u.version_id = :v AND u.code = a.unit"""
    ), {**params, "units": list(assignment), "sups": list(assignment.values())})


def count_rows(conn: Connection, table: str, district: str, version_id: int) -> int:
    """Rows of one version in ``unit_grids``, ``supervision_grids`` or ``supervision_teams``."""
    if table not in ("unit_grids", "supervision_grids", "supervision_teams"):
        raise ValueError(table)
    return conn.execute(statement(f"SELECT count(*) FROM {table} WHERE district_code = :d AND version_id = :v"),
                        {"d": district, "v": version_id}).scalar_one()


def ungrouped_unit_grids(conn: Connection, district: str, version_id: int) -> int:
    """Unit grids of a version in no supervision grid (all of them before ``partition``)."""
    return conn.execute(statement(
        """SELECT count(*) FROM unit_grids
            WHERE district_code = :d AND version_id = :v AND supervision_code IS NULL"""
    ), {"d": district, "v": version_id}).scalar_one()


# ------------------------------------------------------------------------------------------ code registry
def issued_serials(conn: Connection, district: str) -> dict[str, int]:
    """Highest running number ever issued per prefix (retired codes included); see ``codes.parse_code``."""
    codes = conn.execute(statement(
        "SELECT code FROM grid_codes WHERE district_code = :d AND kind = 'unit'"), {"d": district}).scalars()
    issued: dict[str, int] = {}
    for code in codes:
        prefix, number = parse_code(code)
        issued[prefix] = max(issued.get(prefix, 0), number)
    return issued


# Registering codes (``:codes``, of kind ``:kind``, first issued by version ``:v``): a code issued again is in use
# again. Also a CTE of ``log_edit``.
_REGISTER_CODES = """INSERT INTO grid_codes (district_code, code, kind, first_version)
                     SELECT DISTINCT :d, c, :kind, :v FROM unnest(CAST(:codes AS text[])) AS c
                     ON CONFLICT (district_code, kind, code) DO UPDATE SET retired_version = NULL"""


def register_codes(conn: Connection, district: str, version_id: int, codes: Sequence[str],
                   retired: Sequence[str], kind: str = "unit") -> None:
    """Record newly issued codes and retire the ones the new version dropped."""
    if codes:
        conn.execute(statement(_REGISTER_CODES), {"d": district, "v": version_id, "kind": kind, "codes": list(codes)})
    if retired:
        conn.execute(statement(
            """UPDATE grid_codes SET retired_version = :v
                WHERE district_code = :d AND kind = :kind AND code = ANY(CAST(:codes AS text[]))"""
        ), {"d": district, "v": version_id, "kind": kind, "codes": list(retired)})


# ------------------------------------------------------------------------------------------ web
def grids_geojson(conn: Connection, *, district: str, version_id: int, kind: str,
                  bbox: tuple[float, float, float, float] | None, limit: int, offset: int,
                  srid: int) -> dict[str, Any]:
    """A page of unit or supervision grids as a GeoJSON FeatureCollection in EPSG:4326.

    ``bbox`` is (min_lon, min_lat, max_lon, max_lat) in EPSG:4326.
    """
    table = {"unit": "unit_grids", "supervision": "supervision_grids"}[kind]
    props = ("'street_code', street_code, 'community_code', community_code, 'supervision_code', supervision_code, "
             "'area_m2', round(area_m2::numeric, 1)") if kind == "unit" else (
             "'team_code', team_code, 'street_code', street_code, 'workload', round(workload::numeric, 3), "
             "'area_m2', round(ST_Area(geom)::numeric, 1)")
    where = "district_code = :d AND version_id = :v"
    params: dict[str, Any] = {"d": district, "v": version_id, "limit": limit, "offset": offset, "srid": srid}
    if bbox is not None:  # as the cases' bbox: candidates by the index, the exact test in EPSG:4326
        where += (" AND geom && ST_Transform(ST_Segmentize(ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326), 0.001), :srid)"
                  " AND ST_Intersects(ST_Transform(geom, 4326), ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))")
        params.update(x0=bbox[0], y0=bbox[1], x1=bbox[2], y1=bbox[3])
    total = conn.execute(statement(f"SELECT count(*) FROM {table} WHERE {where}"), params).scalar_one()
    features = conn.execute(statement(
        f"""SELECT coalesce(json_agg(json_build_object(
                   'type', 'Feature', 'id', code,
                   'properties', json_build_object('code', code, 'version', version_id, {props}),
                   'geometry', ST_AsGeoJSON(ST_Transform(geom, 4326), 7)::json) ORDER BY code), '[]'::json)
              FROM (SELECT * FROM {table} WHERE {where} ORDER BY code LIMIT :limit OFFSET :offset) page"""
    ), params).scalar_one()
    return {"type": "FeatureCollection", "features": features, "total": total, "limit": limit, "offset": offset}


def find_grid(conn: Connection, code: str) -> dict[str, Any] | None:
    """A unit or supervision grid by code, in its newest published version (else newest version), as a
    GeoJSON Feature in EPSG:4326."""
    row = conn.execute(statement(
        f"""WITH hits AS (
               SELECT 'unit' AS kind, u.district_code, u.version_id, u.code, u.geom,
                      json_build_object('street_code', u.street_code, 'community_code', u.community_code,
                                        'supervision_code', u.supervision_code, 'area_m2', u.area_m2) AS extra
                 FROM unit_grids u WHERE u.code = :code
               UNION ALL
               SELECT 'supervision', s.district_code, s.version_id, s.code, s.geom,
                      json_build_object('team_code', s.team_code, 'street_code', s.street_code,
                                        'workload', s.workload, 'area_m2', ST_Area(s.geom))
                 FROM supervision_grids s WHERE s.code = :code)
           SELECT h.kind, h.district_code, h.version_id, h.code, h.extra, v.status,
                  ST_AsGeoJSON(ST_Transform(h.geom, 4326), 7) AS geometry
             FROM hits h JOIN grid_versions v USING (district_code, version_id)
            -- a draft only where it is its district's current version (nothing published yet): a planner's
            -- draft is not for every reader (#23)
            WHERE v.status <> 'draft' OR v.version_id = {current_version_sql("h.district_code")}
            ORDER BY {CURRENT_VERSION_ORDER} LIMIT 1"""
    ), {"code": code}).mappings().first()
    if row is None:
        return None
    props = {"code": row["code"], "kind": row["kind"], "district_code": row["district_code"],
             "version": row["version_id"], "version_status": row["status"], **row["extra"]}
    return {"type": "Feature", "id": row["code"], "properties": props, "geometry": json.loads(row["geometry"])}


def grid_card(conn: Connection, district: str, version_id: int, code: str) -> dict[str, Any] | None:
    """A unit grid's card: codes, street/community names, supervision grid and team, owners per role now,
    open and total cases (the web map's click-through)."""
    row = conn.execute(statement(
        """SELECT u.code, u.street_code, s_a.name AS street_name, u.community_code, c_a.name AS community_name,
                  u.supervision_code, sg.team_code, round(CAST(u.area_m2 AS numeric), 1)::float AS area_m2,
                  (SELECT count(*) FROM cases k WHERE k.district_code = u.district_code
                      AND k.unit_grid_code = u.code
                      AND k.status <> ALL(CAST(:closed AS text[]))) AS open_cases,
                  (SELECT count(*) FROM cases k WHERE k.district_code = u.district_code
                      AND k.unit_grid_code = u.code) AS all_cases,
                  (SELECT count(*) FROM components m WHERE m.district_code = u.district_code
                      AND m.valid_to IS NULL AND ST_Intersects(m.geom, u.geom)) AS components
             FROM unit_grids u
             LEFT JOIN admin_areas s_a ON s_a.district_code = u.district_code AND s_a.code = u.street_code
             LEFT JOIN admin_areas c_a ON c_a.district_code = u.district_code AND c_a.code = u.community_code
             LEFT JOIN supervision_grids sg ON sg.district_code = u.district_code AND sg.version_id = u.version_id
                                           AND sg.code = u.supervision_code
            WHERE u.district_code = :d AND u.version_id = :v AND u.code = :code"""
    ), {"d": district, "v": version_id, "code": code, "closed": list(CLOSED_STATES)}).mappings().first()
    if row is None:
        return None
    owners = conn.execute(statement(
        """SELECT o.role, p.code, p.name, p.kind, lower(o.valid) AS since FROM grid_ownership o
             JOIN parties p ON p.district_code = o.district_code AND p.party_id = o.party_id
            WHERE o.district_code = :d AND o.grid_kind = 'unit' AND o.grid_code = :code AND o.valid @> now()
            ORDER BY o.role"""
    ), {"d": district, "code": code}).mappings()
    by_role = {r["role"]: {k: r[k] for k in ("code", "name", "kind", "since")} for r in owners}
    return {**dict(row), "version": version_id, "owners": by_role}


def owner_counts(conn: Connection, district: str, version_id: int, role: str) -> list[dict[str, Any]]:
    """The parties that own the version's unit grids in ``role`` now, with how many grids each (most first)."""
    rows = conn.execute(statement(
        """SELECT p.code, p.name, p.kind, count(*) AS grids
             FROM unit_grids u
             JOIN grid_ownership o ON o.district_code = u.district_code AND o.grid_kind = 'unit'
                                  AND o.grid_code = u.code AND o.role = :role AND o.valid @> now()
             JOIN parties p ON p.district_code = o.district_code AND p.party_id = o.party_id
            WHERE u.district_code = :d AND u.version_id = :v
            GROUP BY p.code, p.name, p.kind ORDER BY grids DESC, p.code"""
    ), {"d": district, "v": version_id, "role": role}).mappings()
    return [dict(r) for r in rows]


def teams(conn: Connection, district: str, version_id: int) -> list[dict[str, Any]]:
    """Supervision teams of a version with their supervision-grid count."""
    rows = conn.execute(statement(
        """SELECT t.code, t.name, count(s.code) AS supervision_grids FROM supervision_teams t
             LEFT JOIN supervision_grids s ON s.district_code = t.district_code AND s.version_id = t.version_id
                                          AND s.team_code = t.code
            WHERE t.district_code = :d AND t.version_id = :v GROUP BY t.code, t.name ORDER BY t.code"""
    ), {"d": district, "v": version_id}).mappings()
    return [dict(r) for r in rows]


# ------------------------------------------------------------------------------------------ drafts and edits (#23)
# Unit and supervision rows cross as dicts with their geometry as WKB (``wkb``, bytes) in the deployment CRS,
# read with ST_AsBinary and written back with ST_GeomFromWKB: exact, so an undo restores the very same geometry.
_UNIT_COLUMNS = "code, street_code, community_code, supervision_code, area_m2, attrs, ST_AsBinary(geom) AS wkb"
_SUPERVISION_COLUMNS = ("code, team_code, street_code, workload, supervisors_required, "
                        "ST_AsBinary(geom) AS wkb")


def lock_district_versions(conn: Connection, district: str) -> None:
    """Serialise the numbering of a district's new versions until the transaction ends (two drafts made at
    once would otherwise take the same number)."""
    conn.execute(statement("SELECT pg_advisory_xact_lock(hashtext('grid_versions:' || :d))"), {"d": district})


def lock_code_registry(conn: Connection, district: str) -> None:
    """Serialise the issuing of a district's new unit-grid codes until the transaction ends (two drafts
    edited at once would otherwise issue the same code)."""
    conn.execute(statement("SELECT pg_advisory_xact_lock(hashtext('grid_codes:' || :d))"), {"d": district})


def lock_version(conn: Connection, district: str, version_id: int) -> dict[str, Any] | None:
    """The version row (status, source, parent_version, revision, params), locked for update until the
    transaction ends; None when there is no such version. A second editor of the same draft waits here and
    then reads the revision the first one left."""
    row = conn.execute(statement(
        """SELECT version_id, status, source, parent_version, revision, params FROM grid_versions
            WHERE district_code = :d AND version_id = :v FOR UPDATE"""
    ), {"d": district, "v": version_id}).mappings().first()
    return dict(row) if row else None


def lock_version_for_edit(conn: Connection, district: str, version_id: int) -> dict[str, Any] | None:
    """``lock_version``'s row with what an edit needs besides, read in the same round trip: ``srid`` (the
    deployment's storage CRS) and ``edge_wkb`` (the district's boundary as WKB in that CRS; None for a district
    never imported); None when there is no such version."""
    row = conn.execute(statement(
        """SELECT v.version_id, v.status, v.source, v.parent_version, v.revision, v.params,
                  (SELECT srid FROM deployment LIMIT 1) AS srid,
                  (SELECT ST_AsBinary(geom) FROM districts WHERE district_code = :d) AS edge_wkb
             FROM grid_versions v
            WHERE v.district_code = :d AND v.version_id = :v FOR UPDATE OF v"""
    ), {"d": district, "v": version_id}).mappings().first()
    return {**row, "edge_wkb": None if row["edge_wkb"] is None else bytes(row["edge_wkb"])} if row else None


def open_drafts(conn: Connection, district: str) -> list[dict[str, Any]]:
    """The district's drafts (version_id, author, created_at, revision, parent_version), oldest first."""
    rows = conn.execute(statement(
        """SELECT version_id, author, created_at, revision, parent_version FROM grid_versions
            WHERE district_code = :d AND status = 'draft' ORDER BY version_id"""
    ), {"d": district}).mappings()
    return [dict(r) for r in rows]


def versions_based_on(conn: Connection, district: str, version_id: int) -> list[int]:
    """The versions of a district made from version ``version_id`` (their ``parent_version``)."""
    return list(conn.execute(statement(
        "SELECT version_id FROM grid_versions WHERE district_code = :d AND parent_version = :v ORDER BY 1"
    ), {"d": district, "v": version_id}).scalars())


def drop_draft_codes(conn: Connection, district: str, version_id: int) -> dict[str, int]:
    """Before a draft is dropped, its marks in the code registry: the codes it issued stay registered and are
    retired by it (never reused), the codes it retired that it did not issue are in use again. Returns how many
    of each (``issued``, ``restored``)."""
    row = conn.execute(statement(
        """WITH issued AS (UPDATE grid_codes SET retired_version = :v
                            WHERE district_code = :d AND kind = 'unit' AND first_version = :v RETURNING 1),
                restored AS (UPDATE grid_codes SET retired_version = NULL
                              WHERE district_code = :d AND kind = 'unit' AND retired_version = :v
                                AND first_version IS DISTINCT FROM :v RETURNING 1)
           SELECT (SELECT count(*) FROM issued) AS issued, (SELECT count(*) FROM restored) AS restored"""
    ), {"d": district, "v": version_id}).mappings().one()
    return dict(row)


def delete_version(conn: Connection, district: str, version_id: int) -> None:
    """Delete a version with its teams, supervision grids, unit grids and edit log (the foreign keys cascade)."""
    conn.execute(statement("DELETE FROM grid_versions WHERE district_code = :d AND version_id = :v"),
                 {"d": district, "v": version_id})


def set_revision(conn: Connection, district: str, version_id: int, revision: int) -> None:
    conn.execute(statement("UPDATE grid_versions SET revision = :r WHERE district_code = :d AND version_id = :v"),
                 {"d": district, "v": version_id, "r": revision})


def copy_version_grids(conn: Connection, district: str, source: int, target: int) -> None:
    """Copy the teams, supervision grids and unit grids of version ``source`` into version ``target``."""
    params = {"d": district, "s": source, "t": target}
    conn.execute(statement(
        """INSERT INTO supervision_teams (district_code, version_id, code, name)
           SELECT district_code, :t, code, name FROM supervision_teams WHERE district_code = :d AND version_id = :s"""
    ), params)
    conn.execute(statement(
        """INSERT INTO supervision_grids (district_code, version_id, code, team_code, street_code, workload,
                                          supervisors_required, geom)
           SELECT district_code, :t, code, team_code, street_code, workload, supervisors_required, geom
             FROM supervision_grids WHERE district_code = :d AND version_id = :s"""
    ), params)
    conn.execute(statement(
        """INSERT INTO unit_grids (district_code, version_id, code, street_code, community_code, supervision_code,
                                   area_m2, attrs, geom)
           SELECT district_code, :t, code, street_code, community_code, supervision_code, area_m2, attrs, geom
             FROM unit_grids WHERE district_code = :d AND version_id = :s"""
    ), params)


def analyze_grids(conn: Connection) -> None:
    """Refresh the planner's statistics of the grid tables (in the caller's transaction). A new draft's
    thousands of rows are otherwise unknown to the planner (autovacuum's threshold is a share of the whole
    table, which one district's draft may not reach), which then takes the draft for one row and reads every
    grid of it by the primary key for each look-up of an edit instead of using the code or the spatial index."""
    conn.execute(statement("ANALYZE unit_grids"))
    conn.execute(statement("ANALYZE supervision_grids"))


def unit_rows(conn: Connection, district: str, version_id: int, codes: Sequence[str]) -> list[dict[str, Any]]:
    """The unit grids ``codes`` of a version (those that exist), ordered by code."""
    rows = conn.execute(statement(
        f"""SELECT {_UNIT_COLUMNS} FROM unit_grids
             WHERE district_code = :d AND version_id = :v AND code = ANY(CAST(:codes AS text[])) ORDER BY code"""
    ), {"d": district, "v": version_id, "codes": list(codes)}).mappings()
    return [{**r, "wkb": bytes(r["wkb"])} for r in rows]


def unit_rows_near(conn: Connection, district: str, version_id: int, wkb: bytes, srid: int,
                   distance: float = 0.0) -> list[dict[str, Any]]:
    """The unit grids of a version within ``distance`` metres of a geometry (WKB in EPSG:``srid``; 0: that
    intersect it), found by the spatial index, ordered by code."""
    rows = conn.execute(statement(
        f"""SELECT {_UNIT_COLUMNS} FROM unit_grids
             WHERE district_code = :d AND version_id = :v AND ST_DWithin(geom, ST_GeomFromWKB(:g, :srid), :dist)
             ORDER BY code"""
    ), {"d": district, "v": version_id, "g": wkb, "srid": srid, "dist": distance}).mappings()
    return [{**r, "wkb": bytes(r["wkb"])} for r in rows]


def unit_rows_around(conn: Connection, district: str, version_id: int, codes: Sequence[str],
                     distance: float) -> list[dict[str, Any]]:
    """The unit grids of a version within ``distance`` metres of any of the unit grids ``codes`` (those among
    them that exist included), found by the spatial index, ordered by code: an edit's grids and the candidates
    for their ring of neighbours in one round trip."""
    rows = conn.execute(statement(
        f"""SELECT {_UNIT_COLUMNS} FROM unit_grids
             WHERE district_code = :d AND version_id = :v
               AND ST_DWithin(geom, (SELECT ST_Collect(geom) FROM unit_grids
                                      WHERE district_code = :d AND version_id = :v
                                        AND code = ANY(CAST(:codes AS text[]))), :dist)
             ORDER BY code"""
    ), {"d": district, "v": version_id, "codes": list(codes), "dist": distance}).mappings()
    return [{**r, "wkb": bytes(r["wkb"])} for r in rows]


def unit_rows_near_grid(conn: Connection, district: str, version_id: int, code: str, wkb: bytes, srid: int,
                        distance: float) -> list[dict[str, Any]]:
    """The unit grids of a version within ``distance`` metres of unit grid ``code`` or of a geometry (WKB in
    EPSG:``srid``; ``hood`` true, ``code`` itself among them when it exists), and every grid within ``distance``
    of those (``hood`` false), found by the spatial index, ordered by code: a reshape's grid, its neighbourhood
    and the candidates for its ring of neighbours in one round trip."""
    rows = conn.execute(statement(
        f"""WITH hood AS MATERIALIZED (
                SELECT code, geom FROM unit_grids
                 WHERE district_code = :d AND version_id = :v
                   AND ST_DWithin(geom, ST_Collect(ST_GeomFromWKB(:g, :srid),
                                                   (SELECT geom FROM unit_grids
                                                     WHERE district_code = :d AND version_id = :v AND code = :code)),
                                  :dist))
            SELECT {_UNIT_COLUMNS}, code IN (SELECT code FROM hood) AS hood FROM unit_grids
             WHERE district_code = :d AND version_id = :v
               AND ST_DWithin(geom, (SELECT ST_Collect(geom) FROM hood), :dist)
             ORDER BY code"""
    ), {"d": district, "v": version_id, "code": code, "g": wkb, "srid": srid, "dist": distance}).mappings()
    return [{**r, "wkb": bytes(r["wkb"])} for r in rows]


def unit_rows_of_supervision(conn: Connection, district: str, version_id: int,
                             supervision_codes: Sequence[str]) -> list[dict[str, Any]]:
    """The unit grids of a version that belong to the supervision grids ``supervision_codes``."""
    rows = conn.execute(statement(
        f"""SELECT {_UNIT_COLUMNS} FROM unit_grids
             WHERE district_code = :d AND version_id = :v AND supervision_code = ANY(CAST(:s AS text[]))
             ORDER BY code"""
    ), {"d": district, "v": version_id, "s": list(supervision_codes)}).mappings()
    return [{**r, "wkb": bytes(r["wkb"])} for r in rows]


def supervision_rows(conn: Connection, district: str, version_id: int,
                     codes: Sequence[str]) -> list[dict[str, Any]]:
    """The supervision grids ``codes`` of a version (those that exist), ordered by code."""
    rows = conn.execute(statement(
        f"""SELECT {_SUPERVISION_COLUMNS} FROM supervision_grids
             WHERE district_code = :d AND version_id = :v AND code = ANY(CAST(:codes AS text[])) ORDER BY code"""
    ), {"d": district, "v": version_id, "codes": list(codes)}).mappings()
    return [{**r, "wkb": bytes(r["wkb"])} for r in rows]


def team_exists(conn: Connection, district: str, version_id: int, team_code: str) -> bool:
    return conn.execute(statement(
        "SELECT EXISTS (SELECT 1 FROM supervision_teams WHERE district_code = :d AND version_id = :v AND code = :t)"
    ), {"d": district, "v": version_id, "t": team_code}).scalar_one()


def replace_unit_rows(conn: Connection, district: str, version_id: int, remove: Sequence[str],
                      rows: Sequence[dict[str, Any]], srid: int) -> None:
    """Delete the unit grids ``remove`` of a version, then insert ``rows`` (code, street_code, community_code,
    supervision_code, area_m2, attrs, wkb: a Polygon in EPSG:``srid``), in one statement (one round trip: an
    edit's latency is mostly its round trips). The insert reads the delete's count first, so the deleted rows
    are gone before a row with the same code goes in."""
    conn.execute(statement(
        """WITH gone AS (DELETE FROM unit_grids WHERE district_code = :d AND version_id = :v
                                                AND code = ANY(CAST(:remove AS text[])) RETURNING 1)
           INSERT INTO unit_grids (district_code, version_id, code, street_code, community_code,
                                   supervision_code, area_m2, attrs, geom)
           SELECT :d, :v, r.code, r.street, r.community, r.supervision, r.area, r.attrs, ST_GeomFromWKB(r.wkb, :srid)
             FROM unnest(CAST(:codes AS text[]), CAST(:streets AS text[]), CAST(:communities AS text[]),
                         CAST(:supervisions AS text[]), CAST(:areas AS float8[]), CAST(:attrs AS jsonb[]),
                         CAST(:wkbs AS bytea[])) AS r(code, street, community, supervision, area, attrs, wkb)
            WHERE (SELECT count(*) FROM gone) >= 0"""
    ), {"d": district, "v": version_id, "srid": srid, "remove": list(remove),
        "codes": [r["code"] for r in rows], "streets": [r["street_code"] for r in rows],
        "communities": [r["community_code"] for r in rows], "supervisions": [r["supervision_code"] for r in rows],
        "areas": [float(r["area_m2"]) for r in rows], "attrs": [_json(r.get("attrs") or {}) for r in rows],
        "wkbs": [bytes(r["wkb"]) for r in rows]})


# Setting the team, geometry (WKB in EPSG:``:srid``, stored as a MultiPolygon) and workload (NULL: kept) of
# existing supervision grids, given as arrays (``_supervision_arrays``). Also a CTE of ``log_edit``.
_UPDATE_SUPERVISION = """UPDATE supervision_grids s
                            SET team_code = r.team_code, geom = ST_Multi(ST_GeomFromWKB(r.wkb, :srid)),
                                workload = coalesce(r.workload, s.workload)
                           FROM unnest(CAST(:s_codes AS text[]), CAST(:s_teams AS text[]), CAST(:s_wkbs AS bytea[]),
                                       CAST(:s_loads AS float8[])) AS r(code, team_code, wkb, workload)
                          WHERE s.district_code = :d AND s.version_id = :v AND s.code = r.code"""


def _supervision_arrays(rows: Sequence[dict[str, Any]], srid: int | None) -> dict[str, Any]:
    """The parameters of ``_UPDATE_SUPERVISION`` for ``rows`` (code, team_code, wkb, optional workload)."""
    if rows and srid is None:
        raise ValueError("supervision rows need the storage srid")
    return {"srid": srid or 0, "s_codes": [r["code"] for r in rows], "s_teams": [r["team_code"] for r in rows],
            "s_wkbs": [bytes(r["wkb"]) for r in rows],
            "s_loads": [None if r.get("workload") is None else float(r["workload"]) for r in rows]}


def update_supervision_rows(conn: Connection, district: str, version_id: int, rows: Sequence[dict[str, Any]],
                            srid: int) -> None:
    """Set the team, workload and geometry (``wkb``: a Polygon or MultiPolygon in EPSG:``srid``, stored as a
    MultiPolygon) of existing supervision grids (a row without ``workload`` keeps the stored one)."""
    if rows:
        conn.execute(statement(_UPDATE_SUPERVISION), {"d": district, "v": version_id,
                                                      **_supervision_arrays(rows, srid)})


def issued_serial(conn: Connection, district: str, prefix: str) -> int:
    """The highest running number ever issued under a unit-grid code ``prefix`` (0 when none; retired codes
    count: they are never reused); see ``codes.parse_code``."""
    if not prefix or not prefix.isascii():
        raise ValueError(f"not a code prefix: {prefix!r}")  # codes are ASCII (``codes``), so is every prefix
    # The codes from the prefix up to (not including) the prefix with its last character raised, in byte order
    # (index ``grid_codes_prefix``, migration 0017): every code that starts with the prefix, and a few others
    # that the exact test drops.
    following = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    codes = conn.execute(statement(
        """SELECT code FROM grid_codes WHERE district_code = :d AND kind = 'unit'
              AND code ~>=~ :p AND code ~<~ :following AND left(code, length(:p)) = :p"""
    ), {"d": district, "p": prefix, "following": following}).scalars()
    numbers = [number for code in codes for p, number in [parse_code(code)] if p == prefix]
    return max(numbers, default=0)


def retire_replaced_codes(conn: Connection, district: str, replaced: int | None, published: int) -> int:
    """On publishing version ``published`` in place of version ``replaced`` (None: the first): the unit-grid
    codes ``replaced`` had and ``published`` has not are retired by ``published``, and any of ``published``'s
    codes marked retired is in use again (a draft of an older version). Returns how many were retired."""
    conn.execute(statement(
        """UPDATE grid_codes SET retired_version = NULL
            WHERE district_code = :d AND kind = 'unit' AND retired_version IS NOT NULL
              AND code IN (SELECT code FROM unit_grids WHERE district_code = :d AND version_id = :new)"""
    ), {"d": district, "new": published})
    if replaced is None:
        return 0
    return conn.execute(statement(
        """UPDATE grid_codes SET retired_version = :new
            WHERE district_code = :d AND kind = 'unit' AND retired_version IS NULL
              AND code IN (SELECT code FROM unit_grids WHERE district_code = :d AND version_id = :old
                           EXCEPT SELECT code FROM unit_grids WHERE district_code = :d AND version_id = :new)"""
    ), {"d": district, "old": replaced, "new": published}).rowcount


def set_code_retirements(conn: Connection, district: str, retired: dict[str, int | None]) -> None:
    """Set (a version) or clear (None) the retirement of registered unit-grid codes."""
    if retired:
        conn.execute(statement(
            """UPDATE grid_codes SET retired_version = :r
                WHERE district_code = :d AND kind = 'unit' AND code = :code"""
        ), [{"d": district, "code": code, "r": version} for code, version in retired.items()])


def insert_edit(conn: Connection, district: str, version_id: int, seq: int, *, op: str, params: dict[str, Any],
                before: dict[str, Any], after: dict[str, Any], summary: dict[str, Any], author: str) -> Any:
    """Record one revision of a draft in its edit log; returns when it was recorded (timestamptz)."""
    return conn.execute(statement(
        """INSERT INTO grid_edits (district_code, version_id, seq, op, params, before, after, summary, author)
           VALUES (:d, :v, :seq, :op, CAST(:params AS jsonb), CAST(:before AS jsonb), CAST(:after AS jsonb),
                   CAST(:summary AS jsonb), :author)
           RETURNING at"""
    ), {"d": district, "v": version_id, "seq": seq, "op": op, "params": _json(params), "before": _json(before),
        "after": _json(after), "summary": _json(summary), "author": author}).scalar_one()


def log_edit(conn: Connection, district: str, version_id: int, seq: int, *, op: str, params: dict[str, Any],
             before: dict[str, Any], after: dict[str, Any], summary: dict[str, Any], author: str,
             supervision: Sequence[dict[str, Any]] = (), issued: Sequence[str] = (), srid: int | None = None) -> Any:
    """The rest of an edit's writes in one statement (an edit's latency is mostly its round trips):
    ``update_supervision_rows`` of ``supervision`` (geometry in EPSG:``srid``), ``register_codes`` of the unit
    codes ``issued``, ``set_revision`` (to ``seq``) and ``insert_edit``; returns when the edit was recorded.
    (Data-modifying CTEs all run, on different tables, whether the statement reads them or not.)"""
    return conn.execute(statement(
        f"""WITH raised AS (UPDATE grid_versions SET revision = :seq WHERE district_code = :d AND version_id = :v),
                 regrouped AS ({_UPDATE_SUPERVISION}),
                 registered AS ({_REGISTER_CODES})
            INSERT INTO grid_edits (district_code, version_id, seq, op, params, before, after, summary, author)
            VALUES (:d, :v, :seq, :op, CAST(:params AS jsonb), CAST(:before AS jsonb), CAST(:after AS jsonb),
                    CAST(:summary AS jsonb), :author)
            RETURNING at"""
    ), {"d": district, "v": version_id, "seq": seq, "op": op, "params": _json(params), "before": _json(before),
        "after": _json(after), "summary": _json(summary), "author": author, "kind": "unit", "codes": list(issued),
        **_supervision_arrays(supervision, srid)}).scalar_one()


def edit_log(conn: Connection, district: str, version_id: int, since: int = 0, limit: int | None = None,
             newest: bool = False) -> list[dict[str, Any]]:
    """The edit log of a version after revision ``since``, oldest first: seq, op, params, summary, author,
    at, undone_at, undone_by (no before/after rows); at most ``limit`` rows (None: all), the oldest ones, or
    with ``newest`` the newest ones (still oldest first), read by the primary key."""
    order = "DESC" if newest else "ASC"
    rows = conn.execute(statement(
        f"""SELECT * FROM (SELECT seq, op, params, summary, author, at, undone_at, undone_by FROM grid_edits
                            WHERE district_code = :d AND version_id = :v AND seq > :since
                            ORDER BY seq {order} LIMIT :limit) page ORDER BY seq"""
    ), {"d": district, "v": version_id, "since": since, "limit": limit}).mappings()
    return [dict(r) for r in rows]


def last_undoable_edit(conn: Connection, district: str, version_id: int) -> dict[str, Any] | None:
    """The newest edit of a version that is not an undo and was not undone, with its before/after rows."""
    row = conn.execute(statement(
        """SELECT seq, op, params, before, after, summary, author, at FROM grid_edits
            WHERE district_code = :d AND version_id = :v AND op <> 'undo' AND undone_at IS NULL
            ORDER BY seq DESC LIMIT 1"""
    ), {"d": district, "v": version_id}).mappings().first()
    return dict(row) if row else None


def mark_undone(conn: Connection, district: str, version_id: int, seq: int, by: int) -> None:
    conn.execute(statement(
        """UPDATE grid_edits SET undone_at = now(), undone_by = :by
            WHERE district_code = :d AND version_id = :v AND seq = :seq"""
    ), {"d": district, "v": version_id, "seq": seq, "by": by})


def unit_grid_features(conn: Connection, district: str, version_id: int, codes: Sequence[str]) -> dict[str, Any]:
    """The stored unit grids ``codes`` of a version as a GeoJSON FeatureCollection in EPSG:4326 (the
    properties of ``grids_geojson``)."""
    features = conn.execute(statement(
        """SELECT coalesce(json_agg(json_build_object(
                   'type', 'Feature', 'id', code,
                   'properties', json_build_object('code', code, 'version', version_id, 'street_code', street_code,
                                                   'community_code', community_code,
                                                   'supervision_code', supervision_code,
                                                   'area_m2', round(area_m2::numeric, 1)),
                   'geometry', ST_AsGeoJSON(ST_Transform(geom, 4326), 7)::json) ORDER BY code), '[]'::json)
              FROM unit_grids WHERE district_code = :d AND version_id = :v AND code = ANY(CAST(:codes AS text[]))"""
    ), {"d": district, "v": version_id, "codes": list(codes)}).scalar_one()
    return {"type": "FeatureCollection", "features": features}


# ------------------------------------------------------------------------------------------ history, diff, impact
# (#23 part E3: as-of look-ups, version diffs and a draft's impact preview; geometry compared by its WKB, so only
# the grids an edit touched are read.)
def version_during(conn: Connection, district: str, start: Any, end: Any) -> dict[str, Any] | None:
    """The published or retired version of ``district`` in force during [``start``, ``end``) (instants): the
    latest to begin among those overlapping it; None when none does."""
    row = conn.execute(statement(
        """SELECT version_id, status, effective_from, effective_to FROM grid_versions
            WHERE district_code = :d AND status <> 'draft' AND effective_from < :end
              AND (effective_to IS NULL OR effective_to > :start)
            ORDER BY effective_from DESC LIMIT 1"""
    ), {"d": district, "start": start, "end": end}).mappings().first()
    return dict(row) if row else None


def first_effective(conn: Connection, district: str) -> Any:
    """When the district's first published version took effect (None: never published)."""
    return conn.execute(statement(
        "SELECT min(effective_from) FROM grid_versions WHERE district_code = :d AND status <> 'draft'"
    ), {"d": district}).scalar_one()


def districts_covering(conn: Connection, wkb: bytes, srid: int) -> list[str]:
    """Codes of the districts whose outline covers a point (WKB in EPSG ``srid``, the storage CRS)."""
    return list(conn.execute(statement(
        """SELECT district_code FROM districts WHERE ST_Covers(geom, ST_GeomFromWKB(:p, :srid))
            ORDER BY district_code"""), {"p": wkb, "srid": srid}).scalars())


def unit_grid_covering(conn: Connection, district: str, version_id: int, wkb: bytes, srid: int
                       ) -> dict[str, Any] | None:
    """The unit grid of a version covering a point (WKB in the storage CRS), by the geocoder's boundary rule
    (the smallest code among those it lies on), with its supervision grid's team and the team's name."""
    row = conn.execute(statement(
        """SELECT u.code, u.street_code, u.community_code, u.supervision_code,
                  round(CAST(u.area_m2 AS numeric), 1)::float AS area_m2, s.team_code, t.name AS team_name
             FROM unit_grids u
             LEFT JOIN supervision_grids s ON s.district_code = u.district_code AND s.version_id = u.version_id
                                          AND s.code = u.supervision_code
             LEFT JOIN supervision_teams t ON t.district_code = s.district_code AND t.version_id = s.version_id
                                          AND t.code = s.team_code
            WHERE u.district_code = :d AND u.version_id = :v AND ST_Covers(u.geom, ST_GeomFromWKB(:p, :srid))
            ORDER BY u.code LIMIT 1"""
    ), {"d": district, "v": version_id, "p": wkb, "srid": srid}).mappings().first()
    return dict(row) if row else None


_GRID_DIFF = """
    WITH a AS (SELECT code, geom, area_m2, supervision_code FROM unit_grids
                WHERE district_code = :d AND version_id = :a),
         b AS (SELECT code, geom, area_m2, supervision_code FROM unit_grids
                WHERE district_code = :d AND version_id = :b)
    SELECT coalesce(a.code, b.code) AS code,
           CASE WHEN a.code IS NULL THEN 'added' WHEN b.code IS NULL THEN 'removed'
                WHEN ST_AsBinary(a.geom) <> ST_AsBinary(b.geom) THEN 'changed' ELSE 'reassigned' END AS change,
           a.area_m2 AS area_before, b.area_m2 AS area_after,
           a.supervision_code AS supervision_before, b.supervision_code AS supervision_after,
           ST_AsGeoJSON(ST_Transform(coalesce(b.geom, a.geom), 4326), 7) AS geometry
      FROM a FULL JOIN b ON a.code = b.code
     WHERE a.code IS NULL OR b.code IS NULL OR ST_AsBinary(a.geom) <> ST_AsBinary(b.geom)
        OR a.supervision_code IS DISTINCT FROM b.supervision_code OR b.supervision_code = ANY(CAST(:moved AS text[]))
     ORDER BY 1"""


def grid_differences(conn: Connection, district: str, version_a: int, version_b: int,
                     team_moved: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The unit grids that differ between two versions of ``district`` (by code): ``change`` is ``added``
    (only in b), ``removed`` (only in a), ``changed`` (another geometry) or ``reassigned`` (same geometry,
    another supervision grid, or one of ``team_moved``: supervision grids that changed team); with areas and
    supervision grids before (a) and after (b) and ``geometry`` as GeoJSON (EPSG:4326; b's where it has the
    grid, else a's). No join to the supervision grids here: a new draft's rows have no statistics yet, and the
    planner's guess of one row made that join a nested loop of seconds."""
    rows = conn.execute(statement(_GRID_DIFF), {"d": district, "a": version_a, "b": version_b,
                                              "moved": list(team_moved)}).mappings()
    return [dict(r) for r in rows]


def teams_of_supervision(conn: Connection, district: str, version_id: int) -> dict[str, str | None]:
    """Supervision grid code -> its team's code, in a version."""
    return dict(conn.execute(statement(
        "SELECT code, team_code FROM supervision_grids WHERE district_code = :d AND version_id = :v"),
        {"d": district, "v": version_id}).all())


def supervision_differences(conn: Connection, district: str, version_a: int, version_b: int
                            ) -> list[dict[str, Any]]:
    """Supervision grids that differ between two versions (geometry or team), with their team and workload
    before and after (None where the version lacks the grid)."""
    rows = conn.execute(statement(
        """WITH a AS (SELECT code, team_code, workload, geom FROM supervision_grids
                       WHERE district_code = :d AND version_id = :a),
                b AS (SELECT code, team_code, workload, geom FROM supervision_grids
                       WHERE district_code = :d AND version_id = :b)
           SELECT coalesce(a.code, b.code) AS code, a.team_code AS team_before, b.team_code AS team_after,
                  a.workload AS workload_before, b.workload AS workload_after,
                  ST_Area(a.geom) AS area_before, ST_Area(b.geom) AS area_after
             FROM a FULL JOIN b ON a.code = b.code
            WHERE a.code IS NULL OR b.code IS NULL OR a.team_code IS DISTINCT FROM b.team_code
               OR ST_AsBinary(a.geom) <> ST_AsBinary(b.geom)
            ORDER BY 1"""
    ), {"d": district, "a": version_a, "b": version_b}).mappings()
    return [dict(r) for r in rows]


def points_in_grids(conn: Connection, district: str, version_a: int, version_b: int, codes: Sequence[str],
                    since: Any, closed: Sequence[str]) -> list[dict[str, Any]]:
    """Current components, open cases and cases reported since ``since`` lying in the unit grids ``codes`` of
    either version, each with the unit and supervision grid covering it in version a and in version b (the
    geocoder's boundary rule); only those whose unit or supervision grid differs, in kind and id order.
    ``open`` says whether a case is in none of the ``closed`` states."""
    rows = conn.execute(statement(
        """WITH area AS (SELECT ST_Union(geom) AS geom FROM unit_grids
                          WHERE district_code = :d AND version_id IN (:a, :b)
                            AND code = ANY(CAST(:codes AS text[]))),
                pts AS (
                  SELECT 'component' AS kind, c.obj_id AS id, c.geom, NULL::boolean AS open,
                         NULL::timestamptz AS reported_at
                    FROM components c, area WHERE c.district_code = :d AND c.valid_to IS NULL
                     AND ST_Intersects(c.geom, area.geom)
                  UNION ALL
                  SELECT 'case', k.case_id::text, k.geom, k.status <> ALL(CAST(:closed AS text[])), k.reported_at
                    FROM cases k, area WHERE k.district_code = :d
                     AND (k.status <> ALL(CAST(:closed AS text[])) OR k.reported_at >= :since)
                     AND ST_Intersects(k.geom, area.geom))
           SELECT p.kind, p.id, p.open, p.reported_at,
                  ga.code AS unit_before, ga.supervision_code AS supervision_before,
                  gb.code AS unit_after, gb.supervision_code AS supervision_after
             FROM pts p
             LEFT JOIN LATERAL (SELECT code, supervision_code FROM unit_grids
                                 WHERE district_code = :d AND version_id = :a AND ST_Covers(geom, p.geom)
                                 ORDER BY code LIMIT 1) ga ON true
             LEFT JOIN LATERAL (SELECT code, supervision_code FROM unit_grids
                                 WHERE district_code = :d AND version_id = :b AND ST_Covers(geom, p.geom)
                                 ORDER BY code LIMIT 1) gb ON true
            WHERE ga.code IS DISTINCT FROM gb.code OR ga.supervision_code IS DISTINCT FROM gb.supervision_code
            ORDER BY p.kind, CASE WHEN p.kind = 'case' THEN lpad(p.id, 20, '0') ELSE p.id END"""
    ), {"d": district, "a": version_a, "b": version_b, "codes": list(codes), "since": since,
        "closed": list(closed)}).mappings()
    return [dict(r) for r in rows]


def unit_owners_now(conn: Connection, district: str, codes: Sequence[str]) -> list[dict[str, Any]]:
    """Per unit grid of ``codes`` and role, the party owning it now (code, name, kind)."""
    rows = conn.execute(statement(
        """SELECT o.grid_code, o.role, p.code, p.name, p.kind FROM grid_ownership o
             JOIN parties p ON p.district_code = o.district_code AND p.party_id = o.party_id
            WHERE o.district_code = :d AND o.grid_kind = 'unit' AND o.grid_code = ANY(CAST(:codes AS text[]))
              AND o.valid @> now() ORDER BY o.grid_code, o.role"""
    ), {"d": district, "codes": list(codes)}).mappings()
    return [dict(r) for r in rows]


def land_moves(conn: Connection, district: str, version_a: int, version_b: int, codes: Sequence[str],
               min_area_m2: float) -> list[dict[str, Any]]:
    """Land that passes from one unit grid (version a) to another (version b) among ``codes``: (from, to,
    area m²) for every pair of different codes overlapping by at least ``min_area_m2``."""
    rows = conn.execute(statement(
        """SELECT a.code AS from_code, b.code AS to_code, ST_Area(ST_Intersection(a.geom, b.geom)) AS area_m2
             FROM unit_grids a JOIN unit_grids b ON b.district_code = a.district_code AND b.version_id = :b
                  AND b.code = ANY(CAST(:codes AS text[])) AND a.geom && b.geom AND b.code <> a.code
            WHERE a.district_code = :d AND a.version_id = :a AND a.code = ANY(CAST(:codes AS text[]))
              AND ST_Area(ST_Intersection(a.geom, b.geom)) >= :min
            ORDER BY 1, 2"""
    ), {"d": district, "a": version_a, "b": version_b, "codes": list(codes), "min": min_area_m2}).mappings()
    return [dict(r) for r in rows]


def supervisors_now(conn: Connection, district: str, targets: Sequence[str]) -> list[dict[str, Any]]:
    """The people holding a supervisor or team-leader slot of ``targets`` (supervision grid or team codes) now."""
    rows = conn.execute(statement(
        """SELECT a.role, a.target_code, p.person_id, p.name, p.synthetic FROM person_assignments a
             JOIN people p ON p.district_code = a.district_code AND p.person_id = a.person_id
            WHERE a.district_code = :d AND a.role IN ('supervisor', 'team_leader')
              AND a.target_code = ANY(CAST(:t AS text[])) AND a.valid @> now()
            ORDER BY a.target_code, a.role, p.name"""
    ), {"d": district, "t": list(targets)}).mappings()
    return [dict(r) for r in rows]


def workload_terms_of(conn: Connection, district: str, version_id: int, codes: Sequence[str]
                      ) -> dict[str, dict[str, float]]:
    """``workload_terms`` for the unit grids ``codes`` of a version only: per code, its components, cases,
    road metres within 15 m and area m²."""
    rows = conn.execute(statement(_WORKLOAD_TERMS + " AND u.code = ANY(CAST(:codes AS text[]))"),
                        {"d": district, "v": version_id, "codes": list(codes)}).mappings()
    return {r["code"]: {k: float(r[k]) for k in ("components", "cases", "roads", "area")} for r in rows}


def workload_terms_of_supervision(conn: Connection, district: str, version_id: int,
                                  supervision_codes: Sequence[str]
                                  ) -> tuple[dict[str, dict[str, float]], dict[str, list[str]]]:
    """``workload_terms`` for the unit grids of a version in the supervision grids ``supervision_codes``: per
    unit-grid code its terms, and per supervision-grid code its unit grids (one statement)."""
    rows = conn.execute(statement(_WORKLOAD_TERMS + " AND u.supervision_code = ANY(CAST(:s AS text[]))"),
                        {"d": district, "v": version_id, "s": list(supervision_codes)}).mappings()
    terms: dict[str, dict[str, float]] = {}
    members: dict[str, list[str]] = {code: [] for code in supervision_codes}
    for r in rows:
        terms[r["code"]] = {k: float(r[k]) for k in ("components", "cases", "roads", "area")}
        members[r["supervision_code"]].append(r["code"])
    return terms, members


def workload_means(conn: Connection, district: str, version_id: int) -> dict[str, float]:
    """The district-wide mean per unit grid of each workload term, from the district's totals (a point on a
    shared edge, counted by both grids in ``workload_terms``, counts once here): what ``partition.workload``
    divides each term by."""
    row = conn.execute(statement(
        """WITH g AS (SELECT count(*) AS n, coalesce(sum(ST_Area(geom)), 0) AS area FROM unit_grids
                       WHERE district_code = :d AND version_id = :v)
           SELECT g.n, g.area,
                  (SELECT count(*) FROM components WHERE district_code = :d AND valid_to IS NULL) AS components,
                  (SELECT count(*) FROM cases WHERE district_code = :d) AS cases,
                  (SELECT coalesce(sum(ST_Length(geom)), 0) FROM lines WHERE district_code = :d
                      AND kind = 'road') AS roads
             FROM g"""
    ), {"d": district, "v": version_id}).mappings().one()
    n = max(int(row["n"]), 1)
    return {k: float(row[k]) / n for k in ("components", "cases", "roads", "area")}


def supervision_workloads(conn: Connection, district: str, version_id: int) -> dict[str, float]:
    """The stored workload of every supervision grid of a version (the partition's figure)."""
    rows = conn.execute(statement(
        "SELECT code, workload FROM supervision_grids WHERE district_code = :d AND version_id = :v"),
        {"d": district, "v": version_id}).all()
    return {code: float(w or 0.0) for code, w in rows}


def unit_supervision(conn: Connection, district: str, version_id: int, supervision_codes: Sequence[str]
                     ) -> list[tuple[str, str]]:
    """(unit grid, supervision grid) of a version's unit grids in ``supervision_codes``."""
    return [tuple(r) for r in conn.execute(statement(
        """SELECT code, supervision_code FROM unit_grids WHERE district_code = :d AND version_id = :v
              AND supervision_code = ANY(CAST(:s AS text[]))"""
    ), {"d": district, "v": version_id, "s": list(supervision_codes)}).all()]
