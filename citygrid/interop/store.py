"""SQL of the interop collections (#25): one statement per request, built from small named pieces (as tipg
builds its queries from table metadata), with bound parameters only.

A request is a ``Selection`` already validated and resolved by ``interop.queries`` (the district, the grid
version, the instant, the bbox, typed filter values, the case scope). Each kind has a FROM piece whose main
table is aliased ``g`` (cases: ``c``, as ``cases.store``'s scope conditions name it), a mapping field -> SQL
expression, and its own WHERE pieces; the generic pieces add the bbox, the filters, the id, the order and the
page. Geometries are stored in the deployment CRS and written as GeoJSON in ``Selection.out_srid``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from citygrid.cases import store as case_store
from citygrid.cases.scope import CaseScope
from citygrid.interop.collections import KINDS
from citygrid.responsibility.ownership import ROLES as OWNER_ROLES
from citygrid.spatial.store import CURRENT_VERSION_ORDER, current_version_sql

# Rows fetched per round trip of a streamed (server-side cursor) read.
YIELD_PER = 1000
_SQL_TYPES = {"string": "text", "integer": "bigint", "number": "double precision", "boolean": "boolean",
              "date": "date", "date-time": "timestamptz"}


@dataclass(frozen=True)
class Selection:
    """One validated read of a collection, in the terms of the SQL.

    ``version``: the grid version (versioned kinds; None: no version, so no feature); ``at``: the instant owners
    (unit grids) and the census (components) are read at, None for now; ``reported``: (start, end) instants of
    the cases' report time, either None for open; ``bbox``: (x0, y0, x1, y1) in EPSG ``bbox_srid``; ``filters``:
    field name -> typed value; ``scope``: the case scope (cases); ``out_srid``: the CRS of the written geometry,
    ``latlon``: its axes swapped (lat/lon), ``digits``: its decimals; ``storage_srid``: the deployment CRS;
    ``bbox_domain``: (x0, y0, x1, y1) in EPSG ``bbox_srid``, where the bbox is cut before it is transformed to
    the storage CRS (None: not cut).
    """

    kind: str
    district: str
    storage_srid: int
    version: int | None = None
    at: Any = None
    reported: tuple[Any, Any] | None = None
    bbox: tuple[float, float, float, float] | None = None
    bbox_srid: int = 4326
    filters: dict[str, Any] = field(default_factory=dict)
    scope: CaseScope | None = None
    out_srid: int = 4326
    latlon: bool = False
    digits: int = 9
    limit: int = 100
    offset: int = 0
    fid: Any = None
    bbox_domain: tuple[float, float, float, float] | None = None


# ------------------------------------------------------------------------------------------- the pieces per kind
def _owners_joins(grid: str, at: str) -> dict[str, str]:
    """The joins naming the party that owns unit grid ``grid`` at ``at`` (SQL expressions) in each role of
    ``responsibility.ownership.ROLES``: a LATERAL ``ow`` finding the owners' party ids in one index probe,
    then the party of each role (``p_<role>``) by its key."""
    ids = ", ".join(f"max(o.party_id) FILTER (WHERE o.role = '{role}') AS {role}" for role in OWNER_ROLES)
    district = f"{grid.split('.')[0]}.district_code"
    joins = {"ow": f"""LEFT JOIN LATERAL (SELECT {ids} FROM grid_ownership o
                 WHERE o.district_code = {district} AND o.grid_kind = 'unit' AND o.grid_code = {grid}
                   AND o.valid @> {at}) ow ON true"""}
    for role in OWNER_ROLES:
        joins[f"p_{role}"] = (f"LEFT JOIN parties p_{role} ON p_{role}.district_code = {district} "
                              f"AND p_{role}.party_id = ow.{role}")
    return joins


def _owner_columns() -> dict[str, str]:
    columns = {}
    for role in OWNER_ROLES:
        columns[f"owner_{role}"] = f"p_{role}.code"
        columns[f"owner_{role}_name"] = f"p_{role}.name"
    return columns


_AT = "coalesce(CAST(:q_at AS timestamptz), now())"
_AREA_COLUMNS = {"code": "g.code", "name": "g.name", "level": "g.level", "parent_code": "g.parent_code",
                 "ur_code": "g.ur_code"}
# The grid version in force when case c was reported (none before the district's first publication).
_VERSION_AT_REPORT = """(SELECT v.version_id FROM grid_versions v
                          WHERE v.district_code = c.district_code AND v.status <> 'draft'
                            AND v.effective_from <= c.reported_at
                            AND (v.effective_to IS NULL OR v.effective_to > c.reported_at)
                          ORDER BY v.effective_from DESC LIMIT 1)"""
_TEAM_AT_REPORT = f"""(SELECT s.team_code FROM supervision_grids s
                        WHERE s.district_code = c.district_code AND s.code = c.supervision_code
                          AND s.version_id = coalesce({_VERSION_AT_REPORT},
                                                      {current_version_sql("c.district_code")}))"""

_COLUMNS: dict[str, dict[str, str]] = {
    "unit-grids": {"code": "g.code", "street_code": "g.street_code", "street_name": "st.name",
                   "community_code": "g.community_code", "community_name": "cm.name",
                   "supervision_code": "g.supervision_code", "team_code": "s.team_code", "area_m2": "g.area_m2",
                   "version": "g.version_id", **_owner_columns()},
    "supervision-grids": {"code": "g.code", "team_code": "g.team_code", "team_name": "t.name",
                          "street_code": "g.street_code", "workload": "g.workload",
                          "supervisors_required": "g.supervisors_required", "version": "g.version_id"},
    "teams": {"code": "g.code", "name": "g.name", "supervision_grids": "g.grids", "workload": "g.workload",
              "version": "g.version_id"},
    "communities": _AREA_COLUMNS,
    "streets": _AREA_COLUMNS,
    "components": {"obj_id": "g.obj_id", "class_code": "g.class_code", "class_name": "t.name",
                   "major_code": "t.major_code", "major_name": "t.major_name", "obj_name": "g.obj_name",
                   "dept_code1": "g.dept_code1", "dept_name1": "g.dept_name1", "dept_code2": "g.dept_code2",
                   "dept_name2": "g.dept_name2", "dept_code3": "g.dept_code3", "dept_name3": "g.dept_name3",
                   "unit_grid_code": "g.unit_grid_code", "supervision_code": "g.supervision_code",
                   "obj_state": "g.obj_state", "or_date": "g.or_date", "ch_date": "g.ch_date",
                   "data_source": "g.data_source", "valid_from": "g.valid_from", "valid_to": "g.valid_to"},
    "cases": {"case_id": "c.case_id", "status": "c.status", "kind": "c.kind", "class_code": "c.class_code",
              "class_name": "t.name", "source": "c.source", "reported_at": "c.reported_at",
              "closed_at": "c.closed_at",
              "deadline_at": "c.deadline_at", "unit_grid_code": "c.unit_grid_code",
              "grid_version": _VERSION_AT_REPORT, "supervision_code": "c.supervision_code",
              "team_code": _TEAM_AT_REPORT, "community_code": "c.community_code", "street_code": "c.street_code",
              **_owner_columns(),
              "party_code": "c.attrs -> 'dispatched_to' ->> 'code'",
              "party_name": "c.attrs -> 'dispatched_to' ->> 'name'"},
    "frontage-units": {"unit_id": "g.unit_id", "name": "g.name", "kind": "g.kind", "party_code": "p.code",
                       "party_name": "p.name", "credit_code": "g.credit_code", "address": "g.address",
                       "valid_from": "g.valid_from", "valid_to": "g.valid_to"},
}

# Each kind's main table (aliased ``g``; cases ``c``) and the tables joined to it for names (alias -> LEFT JOIN,
# at most one row each): the page is chosen on the main table (with a join only when a filter reads it), then
# the joins name the page's rows.
_MAIN: dict[str, str] = {
    "unit-grids": "unit_grids g",
    "supervision-grids": "supervision_grids g",
    # A team's geometry: its supervision grids dissolved (none: no geometry).
    "teams": """(SELECT t.district_code, t.version_id, t.code, t.name, count(s.code) AS grids,
                        sum(s.workload) AS workload, ST_Multi(ST_Union(s.geom)) AS geom
                   FROM supervision_teams t
                   LEFT JOIN supervision_grids s ON s.district_code = t.district_code
                                                AND s.version_id = t.version_id AND s.team_code = t.code
                  WHERE t.district_code = :q_district AND t.version_id = CAST(:q_version AS int)
                  GROUP BY t.district_code, t.version_id, t.code, t.name) g""",
    "communities": "admin_areas g",
    "streets": "admin_areas g",
    "components": "components g",
    "cases": "cases c",
    "frontage-units": "frontage_units g",
}
_JOINS: dict[str, dict[str, str]] = {
    "unit-grids": {
        "s": """LEFT JOIN supervision_grids s ON s.district_code = g.district_code AND s.version_id = g.version_id
                                     AND s.code = g.supervision_code""",
        "st": "LEFT JOIN admin_areas st ON st.district_code = g.district_code AND st.code = g.street_code",
        "cm": "LEFT JOIN admin_areas cm ON cm.district_code = g.district_code AND cm.code = g.community_code",
        **_owners_joins("g.code", _AT)},
    "supervision-grids": {
        "t": """LEFT JOIN supervision_teams t ON t.district_code = g.district_code AND t.version_id = g.version_id
                                     AND t.code = g.team_code"""},
    "components": {
        "t": "LEFT JOIN taxonomy_classes t ON t.scheme = g.scheme AND t.kind = g.class_kind AND t.code = g.class_code"},
    "cases": {
        "t": "LEFT JOIN taxonomy_classes t ON t.scheme = c.scheme AND t.kind = c.kind AND t.code = c.class_code",
        **_owners_joins("c.unit_grid_code", "c.reported_at")},
    "frontage-units": {
        "p": "LEFT JOIN parties p ON p.district_code = g.district_code AND p.party_id = g.party_id"},
}
# The whole FROM of each kind (the QGIS project's layers read it as one subquery).
_FROM: dict[str, str] = {k: "\n        ".join([main, *_JOINS.get(k, {}).values()]) for k, main in _MAIN.items()}

_VERSION_WHERE = "g.version_id = CAST(:q_version AS int)"
def _frontage_in_force(alias: str) -> str:
    """Frontage unit ``alias`` is in force today (the deployment's day: sessions run in its time zone)."""
    return f"{alias}.valid_from <= current_date AND ({alias}.valid_to IS NULL OR {alias}.valid_to > current_date)"


# The kind's own conditions besides the district (the census and the cases' report time are added per request).
_KIND_WHERE: dict[str, list[str]] = {
    "unit-grids": [_VERSION_WHERE], "supervision-grids": [_VERSION_WHERE], "teams": [_VERSION_WHERE],
    "communities": ["g.level = 'community'"], "streets": ["g.level = 'street'"], "components": [], "cases": [],
    "frontage-units": [_frontage_in_force("g")],
}
_CENSUS_NOW = "g.valid_to IS NULL"
_CENSUS_AT = ("g.valid_from <= CAST(:q_at AS timestamptz) "
              "AND (g.valid_to IS NULL OR g.valid_to > CAST(:q_at AS timestamptz))")


def _alias(kind: str) -> str:
    return "c" if kind == "cases" else "g"


def _where(sel: Selection) -> tuple[list[str], dict[str, Any]]:
    """The WHERE conditions (joined with AND) and bound parameters of ``sel``, without order or page."""
    a = _alias(sel.kind)
    where = [f"{a}.district_code = :q_district", *_KIND_WHERE[sel.kind]]
    params: dict[str, Any] = {"q_district": sel.district, "q_version": sel.version, "q_at": sel.at}
    if KINDS[sel.kind].versioned and sel.version is None:
        where.append("false")
    if sel.kind == "components":
        where.append(_CENSUS_NOW if sel.at is None else _CENSUS_AT)
    if sel.kind == "cases":
        where += _case_conditions(sel, params)
    if sel.bbox is not None:
        where.append(_bbox_condition(sel, params))
    where += _filter_conditions(sel, params)
    if sel.fid is not None:
        kind = KINDS[sel.kind]
        sql_type = _SQL_TYPES[kind.field(kind.id_field).type]  # type: ignore[union-attr]
        where.append(f"{_COLUMNS[sel.kind][kind.id_field]} = CAST(:q_fid AS {sql_type})")
        params["q_fid"] = sel.fid
    return where, params


def _case_conditions(sel: Selection, params: dict[str, Any]) -> list[str]:
    """The case scope's conditions (``cases.store.case_conditions``, one meaning of a scope for every list of
    cases) and the report-time interval."""
    start, end = sel.reported or (None, None)
    conditions, scoped = case_store.case_conditions(district=sel.district, srid=sel.storage_srid, scope=sel.scope,
                                                    compact=True)
    params.update(scoped)
    if start is not None:
        conditions.append("c.reported_at >= CAST(:q_start AS timestamptz)")
        params["q_start"] = start
    if end is not None:
        conditions.append("c.reported_at <= CAST(:q_end AS timestamptz)")
        params["q_end"] = end
    return conditions


def _bbox_condition(sel: Selection, params: dict[str, Any]) -> str:
    """The bbox test: the exact intersection, whose index test finds the candidates in the box (its edges
    densified before the box is transformed to the storage CRS, where they curve)."""
    a = _alias(sel.kind)
    assert sel.bbox is not None
    x0, y0, x1, y1 = sel.bbox
    params.update(q_x0=x0, q_y0=y0, q_x1=x1, q_y1=y1, q_bbox_srid=sel.bbox_srid, q_storage=sel.storage_srid)
    box = ("ST_MakeEnvelope(CAST(:q_x0 AS float8), CAST(:q_y0 AS float8), CAST(:q_x1 AS float8), "
           "CAST(:q_y1 AS float8), CAST(:q_bbox_srid AS int))")
    if sel.bbox_srid != sel.storage_srid:
        if sel.bbox_domain is not None:
            # Cut to where the storage CRS is defined first: a whole-world box folded in a transverse Mercator
            # (it selected nothing) or could not be transformed (a 500); a box outside it is empty (#25 attack).
            params.update(zip(("q_dx0", "q_dy0", "q_dx1", "q_dy1"), sel.bbox_domain, strict=True))
            box = (f"ST_Intersection({box}, ST_MakeEnvelope(CAST(:q_dx0 AS float8), CAST(:q_dy0 AS float8), "
                   "CAST(:q_dx1 AS float8), CAST(:q_dy1 AS float8), CAST(:q_bbox_srid AS int)))")
        box = f"ST_Transform(ST_Segmentize({box}, 0.001), CAST(:q_storage AS int))"
    # ST_Intersects brings the index test (&&) itself; writing both made the planner multiply their
    # selectivities, so numberMatched's estimate of a 3,068-feature box was about 10 rows.
    return f"ST_Intersects({a}.geom, {box})"


def _filter_conditions(sel: Selection, params: dict[str, Any]) -> list[str]:
    """One equality per filter, its value bound and cast to the field's type."""
    kind = KINDS[sel.kind]
    conditions = []
    for i, (name, value) in enumerate(sorted(sel.filters.items())):
        sql_type = _SQL_TYPES[kind.field(name).type]  # type: ignore[union-attr]
        conditions.append(f"{_COLUMNS[sel.kind][name]} = CAST(:q_f{i} AS {sql_type})")
        params[f"q_f{i}"] = value
    return conditions


def _geometry(sel: Selection, params: dict[str, Any]) -> str:
    """The feature's geometry as GeoJSON text in ``sel.out_srid`` (x/y, or y/x when ``latlon``)."""
    geom = f"{_alias(sel.kind)}.geom"
    if sel.out_srid != sel.storage_srid:
        geom = f"ST_Transform({geom}, CAST(:q_out_srid AS int))"
        params["q_out_srid"] = sel.out_srid
    if sel.latlon:
        geom = f"ST_FlipCoordinates({geom})"
    params["q_digits"] = sel.digits
    return f"ST_AsGeoJSON({geom}, CAST(:q_digits AS int), 0)"


def _page(sel: Selection, params: dict[str, Any]) -> str:
    """ORDER BY the feature id (stable pages), LIMIT and OFFSET."""
    kind = KINDS[sel.kind]
    params.update(q_limit=sel.limit, q_offset=sel.offset)
    return f"ORDER BY {_COLUMNS[sel.kind][kind.id_field]} LIMIT :q_limit OFFSET :q_offset"


# ------------------------------------------------------------------------------------------------- the statements
# A page is chosen first on the main table alone (an OFFSET then skips rows without joining, naming or writing
# anything for them), and only its rows are joined, named, given their costly fields (the sub-selects: owners,
# the version and team at report time, the closing time) and written.
def _costly(expr: str) -> bool:
    return expr.lstrip().startswith("(SELECT")


def _joins_read_by(sel: Selection) -> list[str]:
    """The joins the filters of ``sel`` read (a filter on a joined table's column, e.g. a unit grid's team)."""
    joins = _JOINS.get(sel.kind, {})
    exprs = [_COLUMNS[sel.kind][name] for name in sel.filters if not _costly(_COLUMNS[sel.kind][name])]
    needed = {alias for alias in joins if any(expr.startswith(f"{alias}.") for expr in exprs)}
    for alias, join in reversed(joins.items()):  # and the joins those joins read (an owner's party: ``ow``)
        if alias in needed:
            needed |= {other for other in joins if f" {other}." in join}
    return [join for alias, join in joins.items() if alias in needed]


def _filtered_from(sel: Selection) -> str:
    """The main table and the joins the filters of ``sel`` read: what a page or a count reads."""
    return " ".join([_MAIN[sel.kind], *_joins_read_by(sel)])


def _page_sql(sel: Selection) -> tuple[str, dict[str, Any]]:
    """The page of ``sel`` as a subquery of the main table's rows, aliased as the main table (so the kind's field
    expressions and joins read it as they read the table), ordered by id and limited; then its joins."""
    where, params = _where(sel)
    a = _alias(sel.kind)
    sql = (f"(SELECT {a}.* FROM {_filtered_from(sel)} WHERE {' AND '.join(where)} "
           f"{_page(sel, params)}) {a} {' '.join(_JOINS.get(sel.kind, {}).values())}")
    return sql, params


def _id_sql(sel: Selection) -> str:
    return _COLUMNS[sel.kind][KINDS[sel.kind].id_field]


def _feature_rows_sql(sel: Selection) -> tuple[str, dict[str, Any]]:
    page, params = _page_sql(sel)
    columns = ", ".join(f'{expr} AS "{name}"' for name, expr in _COLUMNS[sel.kind].items())
    sql = (f"SELECT {_id_sql(sel)} AS __id, {columns}, {_geometry(sel, params)} AS __geometry FROM {page} "
           f"ORDER BY {_id_sql(sel)}")
    return sql, params


def _feature_json_sql(sel: Selection) -> tuple[str, dict[str, Any]]:
    page, params = _page_sql(sel)
    properties = ", ".join(f"'{name}', {expr}" for name, expr in _COLUMNS[sel.kind].items())
    # The geometry's GeoJSON text is pasted in as it is (not parsed again as json): NULL geometry -> null.
    feature = (f"""'{{"type": "Feature", "id": ' || to_json({_id_sql(sel)}) || ', "geometry": ' """
               f"""|| coalesce({_geometry(sel, params)}, 'null') || ', "properties": ' """
               f"""|| json_build_object({properties}) || '}}'""")
    return f"SELECT {feature} FROM {page} ORDER BY {_id_sql(sel)}", params


def feature_rows(conn: Connection, sel: Selection) -> Iterator[dict[str, Any]]:
    """The features of ``sel`` as rows (``__id``, the kind's fields, ``__geometry``: GeoJSON text in
    ``sel.out_srid``), streamed through a server-side cursor. The statement runs when this is called."""
    sql, params = _feature_rows_sql(sel)
    result = conn.execute(sa.text(sql).execution_options(stream_results=True, yield_per=YIELD_PER), params)
    return (dict(row) for row in result.mappings())


def feature_json(conn: Connection, sel: Selection) -> Iterator[str]:
    """The features of ``sel``, each a GeoJSON Feature already serialised by PostgreSQL (geometry in
    ``sel.out_srid``), streamed through a server-side cursor. The statement runs when this is called."""
    sql, params = _feature_json_sql(sel)
    result = conn.execute(sa.text(sql).execution_options(stream_results=True, yield_per=YIELD_PER), params)
    return iter(result.scalars())


def count_rows(conn: Connection, sel: Selection) -> int:
    """The exact number of features of ``sel`` (its page ignored)."""
    where, params = _where(sel)
    # (part B, ogc_items bench) Plans made for this request's values, for the rest of its transaction: psycopg
    # prepares a statement on its 5th run on a pooled connection, and PostgreSQL then runs the count with a
    # generic plan, in which the bbox's ST_Transform(ST_Segmentize(...)) is no longer folded to a constant but
    # computed again for every candidate row (a 3,000-feature bbox of the bench's census: 265 ms, not 23 ms).
    conn.execute(sa.text("SET LOCAL plan_cache_mode = force_custom_plan"))
    return conn.execute(sa.text(f"SELECT count(*) FROM {_filtered_from(sel)} WHERE {' AND '.join(where)}"),
                        params).scalar_one()


def estimate_rows(conn: Connection, sel: Selection) -> int:
    """The planner's estimate of the number of features of ``sel`` (``EXPLAIN``; nothing is read)."""
    where, params = _where(sel)
    plan = conn.execute(sa.text(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {_filtered_from(sel)} "
                                f"WHERE {' AND '.join(where)}"), params).scalar_one()
    return int(plan[0]["Plan"]["Plan Rows"])


# -------------------------------------------------------------------------------------- districts and versions
def districts(conn: Connection, district: str | None = None) -> list[dict[str, Any]]:
    """Every district (or only ``district``): code, name, the CRS84 bbox of its boundary (x0, y0, x1, y1),
    whether it has frontage units in force, and the time extents: ``first_version`` (first grid version in
    effect), ``first_case`` and ``last_case`` (report times)."""
    rows = conn.execute(sa.text(
        f"""SELECT d.district_code, d.name,
                  ST_XMin(b.box) AS x0, ST_YMin(b.box) AS y0, ST_XMax(b.box) AS x1, ST_YMax(b.box) AS y1,
                  EXISTS (SELECT 1 FROM frontage_units f WHERE f.district_code = d.district_code
                             AND {_frontage_in_force("f")}) AS has_frontage,
                  (SELECT min(v.effective_from) FROM grid_versions v
                    WHERE v.district_code = d.district_code AND v.status <> 'draft') AS first_version,
                  (SELECT min(c.reported_at) FROM cases c WHERE c.district_code = d.district_code) AS first_case,
                  (SELECT max(c.reported_at) FROM cases c WHERE c.district_code = d.district_code) AS last_case
             FROM districts d, LATERAL (SELECT Box2D(ST_Transform(d.geom, 4326)) AS box) b
            WHERE CAST(:d AS text) IS NULL OR d.district_code = :d
            ORDER BY d.district_code"""), {"d": district}).mappings()
    return [dict(r) for r in rows]


def version_status(conn: Connection, district: str, version_id: int) -> str | None:
    """The status (draft, published, retired) of version ``version_id`` of ``district``; None when none."""
    return conn.execute(sa.text(
        "SELECT status FROM grid_versions WHERE district_code = :d AND version_id = :v"
    ), {"d": district, "v": version_id}).scalar_one_or_none()


def current_version(conn: Connection, district: str, *, drafts: bool) -> int | None:
    """The district's current grid version (``spatial.store.CURRENT_VERSION_ORDER``: the newest published;
    without ``drafts``, never a draft); None when none."""
    condition = "" if drafts else "AND v.status <> 'draft'"
    return conn.execute(sa.text(
        f"""SELECT v.version_id FROM grid_versions v WHERE v.district_code = :d {condition}
             ORDER BY {CURRENT_VERSION_ORDER} LIMIT 1"""), {"d": district}).scalar_one_or_none()


def version_in_force(conn: Connection, district: str, start: Any, end: Any) -> int | None:
    """The published or retired version of ``district`` in force during [``start``, ``end``] (instants, either
    None for open): the latest to begin among those overlapping it; None when none does."""
    return conn.execute(sa.text(
        """SELECT version_id FROM grid_versions
            WHERE district_code = :d AND status <> 'draft'
              AND (CAST(:end AS timestamptz) IS NULL OR effective_from <= CAST(:end AS timestamptz))
              AND (CAST(:start AS timestamptz) IS NULL OR effective_to IS NULL
                   OR effective_to > CAST(:start AS timestamptz))
            ORDER BY effective_from DESC LIMIT 1"""), {"d": district, "start": start, "end": end}).scalar_one_or_none()


def district_context(conn: Connection, district: str) -> dict[str, Any]:
    """What every read of a collection of ``district`` needs first, in one round trip: ``srid`` (the
    deployment CRS), ``exists`` (the district is known) and ``has_frontage`` (frontage units in force)."""
    return dict(conn.execute(sa.text(
        f"""SELECT (SELECT srid FROM deployment) AS srid,
                  EXISTS (SELECT 1 FROM districts WHERE district_code = :d) AS exists,
                  EXISTS (SELECT 1 FROM frontage_units f WHERE f.district_code = :d
                             AND {_frontage_in_force("f")}) AS has_frontage"""
    ), {"d": district}).mappings().one())


# --- styles (part Q) ---
# What the QGIS styles (``interop.styles``) and the QGIS project (``interop.qgis_project``) read.


def style_component_classes(conn: Connection, district: str) -> list[dict[str, Any]]:
    """The classes of ``district``'s current census (code, name: the taxonomy's, None when unlisted), by code."""
    rows = conn.execute(sa.text(
        """SELECT c.class_code AS code, min(t.name) AS name
             FROM (SELECT DISTINCT scheme, class_kind, class_code FROM components
                    WHERE district_code = :d AND valid_to IS NULL) c
             LEFT JOIN taxonomy_classes t ON t.scheme = c.scheme AND t.kind = c.class_kind AND t.code = c.class_code
            GROUP BY c.class_code ORDER BY c.class_code"""), {"d": district}).mappings()
    return [dict(r) for r in rows]


def _sql_literal(text: str) -> str:
    """``text`` as an SQL string literal; only plain codes (letters, digits, ``_``, ``-``) are accepted."""
    if not (0 < len(text) <= 32 and all(ch.isascii() and (ch.isalnum() or ch in "_-") for ch in text)):
        raise ValueError(f"not a plain code: {text[:40]!r}")
    return f"'{text}'"


def qgis_layer_sql(kind_key: str, district: str) -> str:
    """The SELECT a QGIS PostGIS layer of collection ``kind_key``-``district`` reads (QGIS wraps it as a
    subquery): the collection's own columns (``_COLUMNS``, named as its fields) and its geometry ``geom`` in the
    storage CRS, for the district's current grid version (found when QGIS reads it, so a project follows a
    publication), the census and frontage units in force and every case (a database account reads all).

    A project file holds no bound parameters, so the district code is written as a literal: it must be a plain
    code (``ValueError`` otherwise; callers pass a code read from the ``districts`` table).
    """
    kind = KINDS[kind_key]
    a = _alias(kind_key)
    where = [f"{a}.district_code = :q_district", *_KIND_WHERE[kind_key]]
    if kind_key == "components":
        where.append(_CENSUS_NOW)
    columns = ", ".join(f"{expr} AS {name}" for name, expr in _COLUMNS[kind_key].items())
    sql = f"SELECT {columns}, {a}.geom FROM {_FROM[kind_key]} WHERE {' AND '.join(where)}"
    literal = _sql_literal(district)
    current = (f"(SELECT v.version_id FROM grid_versions v WHERE v.district_code = {literal} "
               f"AND v.status <> 'draft' ORDER BY {CURRENT_VERSION_ORDER} LIMIT 1)")
    sql = (sql.replace("CAST(:q_version AS int)", current)
           .replace("CAST(:q_at AS timestamptz)", "CAST(NULL AS timestamptz)").replace(":q_district", literal))
    assert ":q_" not in sql and '"' not in sql, f"{kind.key}: a parameter or a double quote left in the SQL"
    return " ".join(sql.split())

