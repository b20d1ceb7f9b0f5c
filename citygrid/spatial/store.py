"""SQL of the spatial package: districts, administrative areas, linear features, deployment status.

Every statement uses bound parameters. Geometries cross the boundary as WKB in the deployment SRID
(``srid`` arguments) or, for the web, as GeoJSON in EPSG:4326.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

# ------------------------------------------------------------------------------- the current grid version
# A district's current grid version is its newest published one, else (nothing published yet) its newest
# draft. Every query that reads "the current grids" orders ``grid_versions v`` rows this way.
CURRENT_VERSION_ORDER = "(v.status = 'published') DESC, v.version_id DESC"


def current_version_sql(district_expr: str, columns: str = "v.version_id") -> str:
    """A parenthesised subquery giving ``columns`` of the current grid version (see ``CURRENT_VERSION_ORDER``)
    of the district ``district_expr`` names (an SQL expression: ``:d``, ``g.district_code``), or no row.

    The subquery names ``grid_versions`` ``v``; ``columns`` may use ``v.``. With the default column it is a
    scalar subquery (NULL for a district with no version); with several, use it in ``JOIN LATERAL (…) v``.
    """
    return (f"(SELECT {columns} FROM grid_versions v WHERE v.district_code = {district_expr}"
            f" ORDER BY {CURRENT_VERSION_ORDER} LIMIT 1)")


# What identifies the content of grid version ``v`` (a row with district_code, version_id, status): id and
# status, and for a draft its parameters, edit revision (#23: an edit changes geometry, not the count) and grid
# count (a published version is never edited, and hashing the parameters, which hold the quality report, would
# be paid on every read).
VERSION_REVISION_COLUMNS = """v.version_id, v.status,
       CASE WHEN v.status <> 'published' THEN
            (SELECT md5(p.params::text) || '/' || p.revision || '/' FROM grid_versions p
              WHERE p.district_code = v.district_code AND p.version_id = v.version_id)
            || (SELECT count(*) FROM unit_grids u
                 WHERE u.district_code = v.district_code AND u.version_id = v.version_id) END"""


# ------------------------------------------------------------------------------------------ districts
_UPSERT_DISTRICT = sa.text(
    """
    INSERT INTO districts (district_code, name, source, licence, source_crs, geom, loaded_at)
    VALUES (:code, :name, :source, :licence, :source_crs, ST_Multi(ST_GeomFromWKB(:wkb, :srid)), now())
    ON CONFLICT (district_code) DO UPDATE
       SET name = EXCLUDED.name, source = EXCLUDED.source, licence = EXCLUDED.licence,
           source_crs = EXCLUDED.source_crs, geom = EXCLUDED.geom, loaded_at = now()
    """
)


def upsert_district(
    conn: Connection, *, code: str, name: str, wkb: bytes, srid: int, source: str, licence: str, source_crs: str
) -> None:
    """Insert or replace a district; ``wkb`` is a (Multi)Polygon in EPSG:``srid``."""
    conn.execute(
        _UPSERT_DISTRICT,
        {"code": code, "name": name, "wkb": wkb, "srid": srid, "source": source, "licence": licence,
         "source_crs": source_crs},
    )
    record_source(conn, district=code, kind="district", source=source, licence=licence)
    prune_sources(conn, code, ("district",))


def district_row(conn: Connection, code: str) -> dict[str, Any] | None:
    """Name, provenance and area (m², in the storage CRS) of one district, or None."""
    row = conn.execute(
        sa.text(
            "SELECT district_code AS code, name, source, licence, source_crs, loaded_at, ST_Area(geom) AS area_m2 "
            "FROM districts WHERE district_code = :code"
        ),
        {"code": code},
    ).mappings().first()
    return dict(row) if row else None


def district_wkb(conn: Connection, code: str) -> bytes | None:
    """Boundary of a district as WKB in the storage CRS."""
    return conn.execute(
        sa.text("SELECT ST_AsBinary(geom) FROM districts WHERE district_code = :code"), {"code": code}
    ).scalar()


def district_codes(conn: Connection) -> list[str]:
    """The codes of every imported district, in order."""
    return list(conn.execute(sa.text("SELECT district_code FROM districts ORDER BY district_code")).scalars())


def district_summaries(conn: Connection) -> list[dict[str, Any]]:
    """Per district: code, name, area_km2, streets, communities, roads, road_km (storage-CRS measures)."""
    rows = conn.execute(
        sa.text(
            """
            SELECT d.district_code AS code, d.name,
                   round((ST_Area(d.geom) / 1e6)::numeric, 3)::float AS area_km2,
                   (SELECT count(*) FROM admin_areas a
                     WHERE a.district_code = d.district_code AND a.level = 'street') AS streets,
                   (SELECT count(*) FROM admin_areas a
                     WHERE a.district_code = d.district_code AND a.level = 'community') AS communities,
                   (SELECT count(*) FROM lines l
                     WHERE l.district_code = d.district_code AND l.kind = 'road') AS roads,
                   (SELECT round((coalesce(sum(ST_Length(l.geom)), 0) / 1e3)::numeric, 3)::float FROM lines l
                     WHERE l.district_code = d.district_code AND l.kind = 'road') AS road_km
              FROM districts d
             ORDER BY d.district_code
            """
        )
    ).mappings()
    return [dict(r) for r in rows]


def district_extents(conn: Connection) -> dict[str, list[float]]:
    """Per district code: its boundary's ``[west, south, east, north]`` in EPSG:4326 (under a millisecond for
    Chaoyang's 1,354 vertices), so a page can fit the view before the boundary itself arrives."""
    rows = conn.execute(sa.text(
        """SELECT district_code, ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)
             FROM (SELECT district_code, Box2D(ST_Transform(geom, 4326)) AS b FROM districts) d"""))
    return {row[0]: [round(float(v), 7) for v in row[1:]] for row in rows}


def district_geojson(conn: Connection, code: str, simplify_m: float = 0.0) -> dict[str, Any] | None:
    """One district as a GeoJSON Feature in EPSG:4326 (optionally simplified by ``simplify_m`` metres first)."""
    row = conn.execute(
        sa.text(
            """
            SELECT d.district_code AS code, d.name, d.source, d.licence, d.source_crs,
                   round((ST_Area(d.geom) / 1e6)::numeric, 3)::float AS area_km2,
                   ST_AsGeoJSON(ST_Transform(
                       CASE WHEN :tol > 0 THEN ST_SimplifyPreserveTopology(d.geom, :tol) ELSE d.geom END,
                       4326), 7) AS geometry
              FROM districts d WHERE d.district_code = :code
            """
        ),
        {"code": code, "tol": simplify_m},
    ).mappings().first()
    if row is None:
        return None
    props = {k: row[k] for k in ("code", "name", "source", "licence", "source_crs", "area_km2")}
    return {"type": "Feature", "id": row["code"], "properties": props, "geometry": json.loads(row["geometry"])}


# ------------------------------------------------------------------------------------------ admin areas
_UPSERT_AREA = sa.text(
    """
    INSERT INTO admin_areas (district_code, code, level, parent_code, name, ur_code, point, geom,
                             geom_derived, source, licence)
    VALUES (:district, :code, :level, :parent, :name, :ur_code,
            ST_GeomFromWKB(:point_wkb, :srid), ST_Multi(ST_GeomFromWKB(:geom_wkb, :srid)),
            false, :source, :licence)
    ON CONFLICT (district_code, code) DO UPDATE
       SET level = EXCLUDED.level, parent_code = EXCLUDED.parent_code, name = EXCLUDED.name,
           ur_code = EXCLUDED.ur_code, point = EXCLUDED.point, geom = EXCLUDED.geom,
           geom_derived = false, source = EXCLUDED.source, licence = EXCLUDED.licence
    """
)


def upsert_areas(conn: Connection, rows: Sequence[dict[str, Any]], srid: int) -> None:
    """Insert or replace administrative areas. Each row: district, code, level, parent, name, ur_code,
    point_wkb (Point or None), geom_wkb (Polygon/MultiPolygon or None), source, licence; geometry in ``srid``."""
    if rows:
        conn.execute(_UPSERT_AREA, [{**r, "srid": srid} for r in rows])
    for district, level, source, licence in sorted({(r["district"], r["level"], r["source"], r["licence"])
                                                    for r in rows}):
        record_source(conn, district=district, kind=level, source=source, licence=licence)
    for district in sorted({r["district"] for r in rows}):
        prune_sources(conn, district, ("street", "community"))


def area_codes(conn: Connection, district: str, level: str) -> set[str]:
    rows = conn.execute(
        sa.text("SELECT code FROM admin_areas WHERE district_code = :d AND level = :level"),
        {"d": district, "level": level},
    )
    return {r[0] for r in rows}


def areas(conn: Connection, district: str, level: str | None = None) -> list[dict[str, Any]]:
    """Administrative areas with their point as lon/lat (EPSG:4326), None where the area has no location."""
    rows = conn.execute(
        sa.text(
            """
            SELECT code, level, parent_code, name, ur_code, geom_derived,
                   ST_X(ST_Transform(point, 4326)) AS lon, ST_Y(ST_Transform(point, 4326)) AS lat,
                   geom IS NOT NULL AS has_polygon
              FROM admin_areas
             WHERE district_code = :d AND (CAST(:level AS text) IS NULL OR level = :level)
             ORDER BY level DESC, code
            """
        ),
        {"d": district, "level": level},
    ).mappings()
    return [dict(r) for r in rows]


# ------------------------------------------------------------------------------------------ lines
def delete_lines(conn: Connection, district: str, kind: str, source: str) -> int:
    """Remove the lines of one kind that came from one source (before re-importing that source)."""
    removed = conn.execute(
        sa.text("DELETE FROM lines WHERE district_code = :d AND kind = :k AND source = :s"),
        {"d": district, "k": kind, "s": source},
    ).rowcount
    prune_sources(conn, district, (kind,))
    return removed


def insert_lines(conn: Connection, rows: Iterable[dict[str, Any]], srid: int) -> None:
    """Insert LineStrings (WKB in EPSG:``srid``): district, kind, class, name, source_id, source, licence, wkb."""
    batch = [{**r, "srid": srid} for r in rows]
    if batch:
        conn.execute(
            sa.text(
                """
                INSERT INTO lines (district_code, kind, class, name, source_id, source, licence, geom)
                VALUES (:district, :kind, :class, :name, :source_id, :source, :licence, ST_GeomFromWKB(:wkb, :srid))
                """
            ),
            batch,
        )
    for district, kind, source, licence in sorted({(r["district"], r["kind"], r["source"], r["licence"])
                                                   for r in batch}):
        record_source(conn, district=district, kind=kind, source=source, licence=licence)


# ------------------------------------------------------------------------------------------ gazetteer
def gazetteer_places(conn: Connection, district: str) -> list[dict[str, Any]]:
    """The district's named places for ``gazetteer.Gazetteer``: every street and community (``kind`` its level,
    its own code, its point or None) and every named road (``kind`` 'road', code its first line's id, one point
    on the road nearest the centre of its lines); ``x``/``y`` in the deployment CRS."""
    rows = conn.execute(sa.text(
        """SELECT name, level AS kind, code, ST_X(point) AS x, ST_Y(point) AS y FROM admin_areas
            WHERE district_code = :d
           UNION ALL
           SELECT name, 'road', min(CAST(line_id AS text)), ST_X(p), ST_Y(p)
             FROM (SELECT name, min(line_id) AS line_id,
                          ST_ClosestPoint(ST_Collect(geom), ST_Centroid(ST_Collect(geom))) AS p
                     FROM lines WHERE district_code = :d AND kind = 'road' AND name <> '' GROUP BY name) r
            GROUP BY name, p"""
    ), {"d": district}).mappings()
    return [dict(r) for r in rows]


# ------------------------------------------------------------------------------------------ data sources
def record_source(conn: Connection, *, district: str, kind: str, source: str, licence: str = "",
                  synthetic: bool = False, job_id: str | None = None) -> None:
    """Record (or refresh) where ``kind`` data of ``district`` came from, in the caller's transaction. A row
    with ``job_id`` (a census import job) counts once that job is committed. An empty ``source`` records
    nothing (nothing was said). Texts as ``sources.source_text`` accepts them."""
    if not source:
        return
    if job_id is None:
        conn.execute(sa.text(
            """INSERT INTO data_sources (district_code, kind, source, licence, synthetic, recorded_by)
               VALUES (:d, :kind, :source, :licence, :synthetic,
                       coalesce(nullif(current_setting('citygrid.actor', true), ''), 'db:' || session_user))
               ON CONFLICT (district_code, kind, source) WHERE job_id IS NULL DO UPDATE
                  SET licence = EXCLUDED.licence, synthetic = EXCLUDED.synthetic, recorded_at = now(),
                      recorded_by = EXCLUDED.recorded_by"""),
            {"d": district, "kind": kind, "source": source, "licence": licence or "", "synthetic": synthetic})
        return
    conn.execute(sa.text(
        """INSERT INTO data_sources (district_code, kind, source, licence, synthetic, job_id, recorded_by)
           VALUES (:d, :kind, :source, :licence, :synthetic, CAST(:job AS uuid),
                   coalesce(nullif(current_setting('citygrid.actor', true), ''), 'db:' || session_user))
           ON CONFLICT (district_code, job_id) WHERE job_id IS NOT NULL DO UPDATE
              SET kind = EXCLUDED.kind, source = EXCLUDED.source, licence = EXCLUDED.licence,
                  synthetic = EXCLUDED.synthetic, recorded_at = now()"""),
        {"d": district, "kind": kind, "source": source, "licence": licence or "", "synthetic": synthetic,
         "job": job_id})


def job_source(conn: Connection, district: str, job_id: str) -> dict[str, Any] | None:
    """The source recorded for an import job (kind, source, licence, synthetic), or None."""
    row = conn.execute(sa.text(
        """SELECT kind, source, licence, synthetic FROM data_sources
            WHERE district_code = :d AND job_id = CAST(:job AS uuid)"""), {"d": district, "job": job_id}
    ).mappings().first()
    return dict(row) if row else None


def prune_sources(conn: Connection, district: str, kinds: Sequence[str]) -> int:
    """Forget the sources of ``kinds`` (district, street, community, road, water, rail) that no stored row of
    ``district`` names any more (a boundary or lines re-imported from another source). Returns how many."""
    return conn.execute(sa.text(
        """DELETE FROM data_sources s
            WHERE s.district_code = :d AND s.job_id IS NULL AND s.kind = ANY(CAST(:kinds AS text[]))
              AND NOT CASE
                  WHEN s.kind = 'district' THEN EXISTS (
                       SELECT 1 FROM districts x WHERE x.district_code = s.district_code AND x.source = s.source)
                  WHEN s.kind IN ('street', 'community') THEN EXISTS (
                       SELECT 1 FROM admin_areas a WHERE a.district_code = s.district_code AND a.level = s.kind
                                                     AND a.source = s.source)
                  WHEN s.kind IN ('road', 'water', 'rail') THEN EXISTS (
                       SELECT 1 FROM lines l WHERE l.district_code = s.district_code AND l.kind = s.kind
                                               AND l.source = s.source)
                  ELSE true END"""),
        {"d": district, "kinds": list(kinds)}).rowcount


def data_sources(conn: Connection, district: str | None = None) -> list[dict[str, Any]]:
    """The recorded sources in force (a census job's only once committed), oldest first: district_code, kind,
    source, licence, synthetic, recorded_at; of one ``district`` or of all."""
    rows = conn.execute(sa.text(
        """SELECT s.district_code, s.kind, s.source, s.licence, s.synthetic, s.recorded_at
             FROM data_sources s
             LEFT JOIN import_jobs j ON j.district_code = s.district_code AND j.job_id = s.job_id
            WHERE (CAST(:d AS text) IS NULL OR s.district_code = :d)
              AND (s.job_id IS NULL OR j.state = 'committed')
            ORDER BY s.recorded_at, s.district_code, s.source_id"""), {"d": district}).mappings()
    return [dict(r) for r in rows]


def district_record_counts(conn: Connection) -> dict[str, dict[str, int]]:
    """Per district code: current components, cases and synthetic cases (for ``citygrid status``; counts
    whole tables, so not for pages)."""
    rows = conn.execute(sa.text(
        """SELECT d.district_code,
                  (SELECT count(*) FROM components c
                    WHERE c.district_code = d.district_code AND c.valid_to IS NULL) AS components,
                  (SELECT count(*) FROM cases k WHERE k.district_code = d.district_code) AS cases,
                  (SELECT count(*) FROM cases k WHERE k.district_code = d.district_code AND k.synthetic)
                      AS synthetic_cases
             FROM districts d""")).mappings()
    return {r["district_code"]: {k: r[k] for k in ("components", "cases", "synthetic_cases")} for r in rows}


def last_case_id(conn: Connection) -> int:
    """The highest case id stored (0 with none): taken before a case import to find what it added."""
    return conn.execute(sa.text("SELECT coalesce(max(case_id), 0) FROM cases")).scalar_one()


def districts_with_cases_after(conn: Connection, case_id: int) -> list[str]:
    """Districts with cases numbered above ``case_id`` that this transaction wrote (rows another transaction
    committed meanwhile are left out when the import ran without savepoints; otherwise they count too)."""
    mine = conn.execute(sa.text(
        """SELECT DISTINCT district_code FROM cases WHERE case_id > :id AND xmin = pg_current_xact_id()::xid
            ORDER BY 1"""), {"id": case_id}).scalars().all()
    if mine:
        return list(mine)
    return list(conn.execute(sa.text(
        "SELECT DISTINCT district_code FROM cases WHERE case_id > :id ORDER BY 1"), {"id": case_id}).scalars())


# ------------------------------------------------------------------------------------------ audit
def audit(
    conn: Connection, *, actor: str | None = None, action: str, object_kind: str, object_id: str,
    district: str | None = None, before: Any = None, after: Any = None,
) -> None:
    """Append one row to the audit log in the caller's transaction; ``actor`` defaults to the transaction's
    ``citygrid.actor`` (``db.set_actor``: the signed-in user, or ``cli:<os user>``)."""
    conn.execute(
        sa.text(
            """
            INSERT INTO audit_log (district_code, actor, action, object_kind, object_id, before, after)
            VALUES (:district,
                    coalesce(CAST(:actor AS text), nullif(current_setting('citygrid.actor', true), ''),
                             'db:' || session_user),
                    :action, :kind, :oid, CAST(:before AS jsonb), CAST(:after AS jsonb))
            """
        ),
        {"district": district, "actor": actor, "action": action, "kind": object_kind, "oid": object_id,
         "before": None if before is None else json.dumps(before, ensure_ascii=False, default=str),
         "after": None if after is None else json.dumps(after, ensure_ascii=False, default=str)},
    )


def lines_geojson(conn: Connection, district: str, kind: str | None, simplify_m: float = 0.0) -> dict[str, Any]:
    """Linear features of a district as a GeoJSON FeatureCollection in EPSG:4326 (built by PostGIS)."""
    row = conn.execute(
        sa.text(
            """
            SELECT json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg(json_build_object(
                       'type', 'Feature', 'id', line_id,
                       'properties', json_build_object('kind', kind, 'class', class, 'name', name,
                                                       'source_id', source_id),
                       'geometry', ST_AsGeoJSON(ST_Transform(
                           CASE WHEN :tol > 0 THEN ST_Simplify(geom, :tol) ELSE geom END, 4326), 6)::json
                   ) ORDER BY line_id), '[]'::json))
              FROM lines
             WHERE district_code = :d AND (CAST(:kind AS text) IS NULL OR kind = :kind)
            """
        ),
        {"d": district, "kind": kind, "tol": simplify_m},
    ).scalar_one()
    return row


def road_lines_wkb(conn: Connection, district: str) -> list[bytes]:
    """The district's road lines as WKB (deployment CRS)."""
    rows = conn.execute(sa.text("SELECT ST_AsBinary(geom) FROM lines WHERE district_code = :d AND kind = 'road'"),
                        {"d": district}).scalars()
    return [bytes(r) for r in rows]


def supervision_boundaries_wkb(conn: Connection, district: str) -> bytes | None:
    """The boundaries of the supervision grids of the district's current grid version, merged into lines, as
    WKB (deployment CRS); None when it has no grid version."""
    row = conn.execute(sa.text(
        f"""SELECT ST_AsBinary(ST_LineMerge(ST_Union(ST_Boundary(s.geom)))) FROM supervision_grids s
             WHERE s.district_code = :d AND s.version_id = {current_version_sql(':d')}"""), {"d": district}).scalar()
    return bytes(row) if row is not None else None


def current_unit_grids(conn: Connection, district: str) -> tuple[int | None, list[dict[str, Any]]]:
    """The unit grids (WKB, deployment CRS) of the district's newest published version, else its newest."""
    version = conn.execute(sa.text(f"SELECT {current_version_sql(':d')}"), {"d": district}).scalar()
    if version is None:
        return None, []
    rows = conn.execute(
        sa.text(
            """SELECT code, supervision_code, street_code, community_code, ST_AsBinary(geom) AS wkb
                 FROM unit_grids WHERE district_code = :d AND version_id = :v"""
        ),
        {"d": district, "v": version},
    ).mappings()
    return version, [dict(r) for r in rows]


def grid_revision(conn: Connection, district: str) -> tuple:
    """What identifies the content of the district's current grid version (``VERSION_REVISION_COLUMNS``)."""
    row = conn.execute(
        sa.text(
            f"""SELECT {VERSION_REVISION_COLUMNS}
                 FROM {current_version_sql(":d", "v.district_code, v.version_id, v.status")} v"""
        ),
        {"d": district},
    ).first()
    return tuple(row) if row else (None,)


CELL_TABLES_KEPT = 3


def stored_cell_table(conn: Connection, district: str, digest: str, size: float) -> dict[str, Any] | None:
    """The stored cell table of the grids with ``digest`` (see migration 0010), or None."""
    row = conn.execute(sa.text(
        """SELECT x0, y0, n_rows, n_cols, cells FROM grid_cell_tables
            WHERE district_code = :d AND grids_digest = :g AND cell_size = :s"""
    ), {"d": district, "g": digest, "s": size}).mappings().first()
    return dict(row) if row else None


def save_cell_table(conn: Connection, district: str, digest: str, size: float, x0: float, y0: float,
                    n_rows: int, n_cols: int, cells: bytes) -> None:
    """Store a cell table (replacing one stored for the same grids and size) and keep only the district's
    ``CELL_TABLES_KEPT`` newest."""
    conn.execute(sa.text(
        """INSERT INTO grid_cell_tables (district_code, grids_digest, cell_size, x0, y0, n_rows, n_cols, cells,
                                         created_at)
           VALUES (:d, :g, :s, :x0, :y0, :r, :c, :cells, clock_timestamp())
           ON CONFLICT (district_code, grids_digest, cell_size) DO UPDATE
              SET x0 = EXCLUDED.x0, y0 = EXCLUDED.y0, n_rows = EXCLUDED.n_rows, n_cols = EXCLUDED.n_cols,
                  cells = EXCLUDED.cells, created_at = EXCLUDED.created_at"""
    ), {"d": district, "g": digest, "s": size, "x0": x0, "y0": y0, "r": n_rows, "c": n_cols, "cells": cells})
    conn.execute(sa.text(
        """DELETE FROM grid_cell_tables WHERE district_code = :d AND (grids_digest, cell_size) NOT IN (
               SELECT grids_digest, cell_size FROM grid_cell_tables WHERE district_code = :d
                ORDER BY created_at DESC, grids_digest LIMIT :keep)"""
    ), {"d": district, "keep": CELL_TABLES_KEPT})
