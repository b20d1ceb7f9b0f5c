"""SQL of the cases package: cases, their workflow events, duplicates, owners, nearest components.

Points are WKB in the deployment CRS going in; the web gets lon/lat in EPSG:4326.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from citygrid.cases.scope import CaseScope
from citygrid.cases.workflow import CLOSED_STATES, OPEN_STATES
from citygrid.spatial import db
from citygrid.spatial.store import current_version_sql

_CASE_COLUMNS = """c.case_id, c.district_code, c.idempotency_key, c.kind, c.scheme, c.class_code, c.description,
    c.source, c.reported_at, c.status, c.unit_grid_code, c.supervision_code, c.community_code, c.street_code,
    c.component_obj_id, c.deadline_at, c.verify_due_at, c.check_due_at, c.synthetic, c.row_version, c.attrs,
    ST_X(ST_Transform(c.geom, 4326)) AS lon, ST_Y(ST_Transform(c.geom, 4326)) AS lat,
    t.name AS class_name, t.major_name, t.service_code"""


def district_at(conn: Connection, wkb: bytes, srid: int) -> tuple[str | None, float | None]:
    """(district containing the point, None) or (None, metres to the nearest district)."""
    row = conn.execute(sa.text(
        """SELECT district_code, ST_Distance(geom, ST_GeomFromWKB(:wkb, :srid)) AS dist FROM districts
            ORDER BY geom <-> ST_GeomFromWKB(:wkb, :srid) LIMIT 1"""
    ), {"wkb": wkb, "srid": srid}).first()
    if row is None:
        return None, None
    return (row[0], None) if row[1] == 0 else (None, float(row[1]))


def class_exists(conn: Connection, scheme: str, kind: str, code: str) -> bool:
    return conn.execute(sa.text(
        "SELECT 1 FROM taxonomy_classes WHERE scheme = :s AND kind = :k AND code = :c"),
        {"s": scheme, "k": kind, "c": code}).first() is not None


def component_near(conn: Connection, district: str, wkb: bytes, srid: int, *, obj_id: str | None,
                   class_code: str | None, within_m: float) -> dict[str, Any] | None:
    """The current component named by ``obj_id`` (with its distance), or the nearest of ``class_code`` (any
    class when None) within ``within_m`` metres."""
    if obj_id:
        row = conn.execute(sa.text(
            """SELECT obj_id, class_code, ST_Distance(geom, ST_GeomFromWKB(:wkb, :srid)) AS distance_m
                 FROM components WHERE district_code = :d AND obj_id = :o AND valid_to IS NULL"""
        ), {"d": district, "o": obj_id, "wkb": wkb, "srid": srid}).mappings().first()
    else:
        row = conn.execute(sa.text(
            """SELECT obj_id, class_code, ST_Distance(geom, ST_GeomFromWKB(:wkb, :srid)) AS distance_m
                 FROM components
                WHERE district_code = :d AND (CAST(:c AS text) IS NULL OR class_code = :c) AND valid_to IS NULL
                  AND ST_DWithin(geom, ST_GeomFromWKB(:wkb, :srid), :r)
                ORDER BY geom <-> ST_GeomFromWKB(:wkb, :srid) LIMIT 1"""
        ), {"d": district, "c": class_code, "wkb": wkb, "srid": srid, "r": within_m}).mappings().first()
    return dict(row) if row else None


def open_duplicates(conn: Connection, district: str, kind: str, class_code: str, wkb: bytes, srid: int,
                    at: Any, radius_m: float, hours: float, limit: int = 5) -> list[int]:
    """Open cases of the same class within ``radius_m`` and ``hours`` of the report, nearest first."""
    return list(conn.execute(sa.text(
        f"""SELECT case_id FROM cases
             WHERE district_code = :d AND kind = :k AND class_code = :c
               AND status IN ({", ".join(f"'{s}'" for s in OPEN_STATES)})
               AND ST_DWithin(geom, ST_GeomFromWKB(:wkb, :srid), :r)
               AND reported_at BETWEEN coalesce(CAST(:at AS timestamptz), now()) - make_interval(secs => :h * 3600)
                                   AND coalesce(CAST(:at AS timestamptz), now()) + make_interval(secs => :h * 3600)
             ORDER BY geom <-> ST_GeomFromWKB(:wkb, :srid), case_id LIMIT :limit"""
    ), {"d": district, "k": kind, "c": class_code, "wkb": wkb, "srid": srid, "r": radius_m, "h": hours,
        "at": at, "limit": limit}).scalars())


def has_synthetic_cases(conn: Connection, district: str) -> bool:
    """Whether the district holds any SYNTHETIC case (a demo's generated history)."""
    return conn.execute(sa.text("SELECT 1 FROM cases WHERE district_code = :d AND synthetic LIMIT 1"),
                        {"d": district}).first() is not None


def case_by_key(conn: Connection, district: str | None, key: str) -> tuple[int, str | None] | None:
    """(case, digest of the report) that a report with this (scoped) idempotency key created, or joined as a
    duplicate; None when the key is new."""
    row = conn.execute(sa.text(
        """SELECT case_id, digest FROM (
               SELECT case_id, idempotency_digest AS digest FROM cases WHERE idempotency_key = :k
                  AND (CAST(:d AS text) IS NULL OR district_code = :d)
               UNION ALL
               SELECT case_id, idempotency_digest FROM case_events WHERE idempotency_key = :k
                  AND (CAST(:d AS text) IS NULL OR district_code = :d)) hits
            ORDER BY case_id LIMIT 1"""), {"k": key, "d": district}).first()
    return (row[0], row[1]) if row else None


def insert_case(conn: Connection, row: dict[str, Any], srid: int) -> int | None:
    """Insert a case; None when another request with the same idempotency key won the race."""
    return conn.execute(sa.text(
        """INSERT INTO cases (district_code, idempotency_key, kind, scheme, class_code, description, source,
                              reported_at, status, unit_grid_code, supervision_code, community_code, street_code,
                              component_obj_id, synthetic, attrs, geom, idempotency_digest, verify_due_at)
           VALUES (:district, :key, :kind, :scheme, :class_code, :description, :source,
                   coalesce(CAST(:reported_at AS timestamptz), now()), 'reported', :unit, :supervision, :community,
                   :street, :component, :synthetic, CAST(:attrs AS jsonb), ST_GeomFromWKB(:wkb, :srid), :digest,
                   CAST(:verify_due_at AS timestamptz))
           ON CONFLICT (district_code, idempotency_key) DO NOTHING
           RETURNING case_id"""
    ), {"digest": None, "verify_due_at": None, **row, "attrs": json.dumps(row.get("attrs", {}), ensure_ascii=False),
        "srid": srid}).scalar()


def add_event(conn: Connection, district: str, case_id: int, *, action: str, from_status: str | None,
              to_status: str, actor: str, role: str, note: str = "", idempotency_key: str | None = None,
              idempotency_digest: str | None = None, account: str | None = None, due_at: Any = None) -> bool:
    """Append an event, recording the person (``people``) of the acting ``account`` in the case's district
    (NULL without an account or a person) and ``due_at``, when the task the event completes was due; False
    when an event with this idempotency key exists already (a retried report).

    The case row is locked first (a no-op for a transition, which has updated it already), so two events
    added to one case at once (a duplicate report joining it while it moves, photos added meanwhile) take
    their numbers in turn instead of the same one."""
    conn.execute(sa.text("SELECT 1 FROM cases WHERE district_code = :d AND case_id = :c FOR UPDATE"),
                 {"d": district, "c": case_id}).all()
    return conn.execute(sa.text(
        """INSERT INTO case_events (district_code, case_id, seq, action, from_status, to_status, actor, role, note,
                                   idempotency_key, idempotency_digest, person_id, due_at)
           VALUES (:d, :c, (SELECT coalesce(max(seq), 0) + 1 FROM case_events WHERE district_code = :d
                                                                           AND case_id = :c),
                   :action, :from_status, :to_status, :actor, :role, :note, :key, :digest,
                   (SELECT person_id FROM people WHERE district_code = :d AND username = :account),
                   CAST(:due_at AS timestamptz))
           ON CONFLICT (district_code, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"""
    ), {"d": district, "c": case_id, "action": action, "from_status": from_status, "to_status": to_status,
        "actor": actor, "role": role, "note": note, "key": idempotency_key,
        "digest": idempotency_digest, "account": account, "due_at": due_at}).rowcount == 1


def lock_cases(conn: Connection, case_ids: list[int]) -> None:
    """Lock the rows of ``case_ids`` until the transaction ends, in case-number order, so two transactions that
    lock the same cases wait for each other in turn, never in a circle."""
    conn.execute(sa.text("SELECT case_id FROM cases WHERE case_id = ANY(:ids) ORDER BY case_id FOR UPDATE"),
                 {"ids": sorted(case_ids)}).all()


def get_case(conn: Connection, case_id: int, scope: CaseScope | None = None) -> dict[str, Any] | None:
    """The case, or None when there is none or it lies outside ``scope`` (default: every case)."""
    row = conn.execute(sa.text(
        f"""SELECT {_CASE_COLUMNS} FROM cases c
              LEFT JOIN taxonomy_classes t ON t.scheme = c.scheme AND t.kind = c.kind AND t.code = c.class_code
             WHERE c.case_id = :id AND {_IN_SCOPE}"""
    ), {"id": case_id, **_scope(scope)}).mappings().first()
    return dict(row) if row else None


def events(conn: Connection, district: str, case_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(sa.text(
        """SELECT e.seq, e.at, e.action, e.from_status, e.to_status, e.actor, e.role, e.note, e.person_id,
                  p.name AS person_name, e.due_at
             FROM case_events e
             LEFT JOIN people p ON p.district_code = e.district_code AND p.person_id = e.person_id
            WHERE e.district_code = :d AND e.case_id = :c ORDER BY e.seq"""
    ), {"d": district, "c": case_id}).mappings()
    return [dict(r) for r in rows]


def apply_transition(conn: Connection, case_id: int, from_status: str, to_status: str,
                     expected_version: int | None) -> int | None:
    """Move the case if it is still in ``from_status`` (and at ``expected_version`` when given); returns the
    new row version, or None when another change got there first."""
    return conn.execute(sa.text(
        """UPDATE cases SET status = :to, row_version = row_version + 1
            WHERE case_id = :id AND status = :from
              AND (CAST(:v AS integer) IS NULL OR row_version = :v)
            RETURNING row_version"""
    ), {"id": case_id, "from": from_status, "to": to_status, "v": expected_version}).scalar()


def owners_at(conn: Connection, district: str, unit_grid: str | None, at: Any) -> dict[str, dict[str, Any]]:
    """Party per role (responsibility, management, enforcement, supervision) owning the grid at ``at``."""
    if unit_grid is None:
        return {}
    rows = conn.execute(sa.text(
        """SELECT o.role, p.code, p.name, p.kind FROM grid_ownership o
             JOIN parties p ON p.district_code = o.district_code AND p.party_id = o.party_id
            WHERE o.district_code = :d AND o.grid_kind = 'unit' AND o.grid_code = :g
              AND o.valid @> CAST(coalesce(CAST(:at AS timestamptz), now()) AS timestamptz)"""
    ), {"d": district, "g": unit_grid, "at": at}).mappings()
    return {r["role"]: {"code": r["code"], "name": r["name"], "kind": r["kind"]} for r in rows}


# ``owners_at`` of case ``c``'s unit grid at its report time in the roles ``:owner_roles`` (text[]), as an array
# of [role, code, name, kind] rows (NULL for none), for a statement that reads a page of cases and wants their
# owners with the rows (the desk's dispatch queue: no round trip of its own); ``owners_of_rows`` reads it. A text
# array rather than JSON, and only the roles asked for (the desk's: those dispatch may choose, two of a grid's
# four with the default rules): 0.15 ms less of the dispatch queue's 0.9 ms statement on the desk_queue bench.
CASE_OWNERS_SQL = """(SELECT array_agg(ARRAY[o.role, p.code, p.name, p.kind])
      FROM grid_ownership o JOIN parties p ON p.district_code = o.district_code AND p.party_id = o.party_id
     WHERE o.district_code = c.district_code AND o.grid_kind = 'unit' AND o.grid_code = c.unit_grid_code
       AND o.role = ANY(CAST(:owner_roles AS text[])) AND o.valid @> coalesce(c.reported_at, now()))"""


def owners_of_rows(found: list[list[str]] | None) -> dict[str, dict[str, Any]]:
    """The owners ``CASE_OWNERS_SQL`` read, as ``owners_at`` gives them (party per role)."""
    return {role: {"code": code, "name": name, "kind": kind} for role, code, name, kind in found or ()}


def owners_at_many(conn: Connection, grids: list[tuple[str, str | None, Any]]) -> list[dict[str, dict[str, Any]]]:
    """``owners_at`` of each (district, unit grid, instant) of ``grids``, in one query (a page of cases)."""
    found: list[dict[str, dict[str, Any]]] = [{} for _ in grids]
    asked = [(i, d, g, at) for i, (d, g, at) in enumerate(grids) if g is not None]
    if not asked:
        return found
    rows = conn.execute(sa.text(
        """SELECT k.i, o.role, p.code, p.name, p.kind
             FROM unnest(CAST(:i AS int[]), CAST(:d AS text[]), CAST(:g AS text[]), CAST(:at AS timestamptz[]))
                  AS k(i, district, grid, at)
             JOIN grid_ownership o ON o.district_code = k.district AND o.grid_kind = 'unit' AND o.grid_code = k.grid
                                  AND o.valid @> coalesce(k.at, now())
             JOIN parties p ON p.district_code = o.district_code AND p.party_id = o.party_id"""
    ), {"i": [a[0] for a in asked], "d": [a[1] for a in asked], "g": [a[2] for a in asked],
        "at": [a[3] for a in asked]}).mappings()
    for r in rows:
        found[r["i"]][r["role"]] = {"code": r["code"], "name": r["name"], "kind": r["kind"]}
    return found


# A case in one of the supervision grids of team :team in its district's current grid version. Uncorrelated
# (the pair of district and grid code), so the team's grids are found once per statement, not once per case.
_IN_TEAM = f"""(c.district_code, c.supervision_code) IN (
                    SELECT s.district_code, s.code FROM supervision_grids s
                     WHERE s.team_code = :team AND s.version_id = {current_version_sql("s.district_code")})"""
# A case in a reader's scope (``CaseScope.bound``): every case, or those in the grids of team :scope_team, or
# those dispatched to party :scope_party of district :scope_district; only district :scope_home's when it is set.
_IN_SCOPE = f"""((CAST(:scope_home AS text) IS NULL OR c.district_code = :scope_home)
              AND (CAST(:scope_all AS boolean)
                  OR (CAST(:scope_team AS text) IS NOT NULL AND {_IN_TEAM.replace(":team", ":scope_team")})
                  OR (CAST(:scope_party AS text) IS NOT NULL AND c.district_code = :scope_district
                      AND c.attrs -> 'dispatched_to' ->> 'code' = :scope_party)))"""


def _scope(scope: CaseScope | None) -> dict[str, Any]:
    return (scope or CaseScope()).bound()


def list_cases(conn: Connection, *, district: str | None, status: str | None, kind: str | None,
               class_code: str | None, start: Any, end: Any, bbox: tuple[float, float, float, float] | None,
               unit_grid: str | None, supervision_grid: str | None, srid: int, limit: int, offset: int,
               team: str | None = None, open_only: bool = False, scope: CaseScope | None = None,
               statuses: tuple[str, ...] | None = None, published: tuple[tuple[str, ...], tuple[str, ...]] | None = None
               ) -> list[dict[str, Any]]:
    """Cases matching every given filter (all bound) within ``scope`` (default: every case), newest first.
    ``bbox`` in EPSG:4326, applied exactly (not as its bounding box in the storage CRS); ``team``: the
    supervision grids of that team in the current grid version; ``open_only``: not rejected, closed or
    evaluated; ``statuses``: one of these; ``published``: (sources, ``kind/class_code`` pairs) — only cases
    from one of the sources or of one of the classes (what Open311 publishes)."""
    where, params = case_conditions(
        district=district, status=status, kind=kind, class_code=class_code, start=start, end=end, bbox=bbox,
        unit_grid=unit_grid, supervision_grid=supervision_grid, srid=srid, team=team, open_only=open_only,
        scope=scope, statuses=statuses, published=published)
    params.update(limit=limit, offset=offset)
    rows = conn.execute(sa.text(
        f"""SELECT {_CASE_COLUMNS} FROM cases c
              LEFT JOIN taxonomy_classes t ON t.scheme = c.scheme AND t.kind = c.kind AND t.code = c.class_code
             WHERE {" AND ".join(where)}
             ORDER BY c.reported_at DESC, c.case_id DESC LIMIT :limit OFFSET :offset"""
    ), params).mappings()
    return [dict(r) for r in rows]


def case_conditions(*, district: str | None, status: str | None = None, kind: str | None = None,
                    class_code: str | None = None, start: Any = None, end: Any = None,
                    bbox: tuple[float, float, float, float] | None = None, unit_grid: str | None = None,
                    supervision_grid: str | None = None, srid: int, team: str | None = None,
                    open_only: bool = False, scope: CaseScope | None = None,
                    statuses: tuple[str, ...] | None = None,
                    published: tuple[tuple[str, ...], tuple[str, ...]] | None = None, compact: bool = False
                    ) -> tuple[list[str], dict[str, Any]]:
    """The WHERE conditions (on cases ``c``, to be joined with AND) and their bound parameters of a filtered
    list of cases, as ``list_cases`` means each filter: one meaning for every list of cases (the case API,
    Open311, the desk's queues). ``bbox`` in EPSG:4326; ``srid`` the storage CRS. ``compact``: only the
    conditions that apply to these values (``_compact_conditions``, the same cases): a shorter statement that
    plans quicker, for a statement that repeats the conditions (the desk's counts and page)."""
    where = ["(CAST(:district AS text) IS NULL OR c.district_code = :district)",
             "(CAST(:status AS text) IS NULL OR c.status = :status)",
             "(CAST(:kind AS text) IS NULL OR c.kind = :kind)",
             "(CAST(:class_code AS text) IS NULL OR c.class_code = :class_code)",
             "(CAST(:start AS timestamptz) IS NULL OR c.reported_at >= CAST(:start AS timestamptz))",
             "(CAST(:end AS timestamptz) IS NULL OR c.reported_at < CAST(:end AS timestamptz))",
             "(CAST(:unit AS text) IS NULL OR c.unit_grid_code = :unit)",
             "(CAST(:sup AS text) IS NULL OR c.supervision_code = :sup)",
             "(CAST(:open AS boolean) IS FALSE OR c.status <> ALL(CAST(:closed AS text[])))",
             f"(CAST(:team AS text) IS NULL OR {_IN_TEAM})", _IN_SCOPE]
    params: dict[str, Any] = {"district": district, "status": status, "kind": kind, "class_code": class_code,
                              "start": start, "end": end, "unit": unit_grid, "sup": supervision_grid,
                              "srid": srid, "team": team, "open": open_only,
                              "closed": list(CLOSED_STATES),
                              **_scope(scope)}
    if compact:
        where = _compact_conditions(params) or ["true"]
    if bbox is not None:
        # The index finds candidates in the box's extent in the storage CRS (which is larger than the box:
        # its edges curve there); the exact test is in EPSG:4326.
        where.append("c.geom && ST_Transform(ST_Segmentize(ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326), 0.001), :srid)"
                     " AND ST_Intersects(ST_Transform(c.geom, 4326), ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326))")
        params.update(x0=bbox[0], y0=bbox[1], x1=bbox[2], y1=bbox[3])
    if statuses is not None:
        where.append("c.status = ANY(CAST(:statuses AS text[]))")
        params["statuses"] = list(statuses)
    if published is not None:
        where.append("(c.source = ANY(CAST(:pub_sources AS text[])) "
                     "OR c.kind || '/' || c.class_code = ANY(CAST(:pub_classes AS text[])))")
        params.update(pub_sources=list(published[0]), pub_classes=list(published[1]))
    return where, params


# ``_IN_TEAM`` with the team's grids found once per statement as one array of (district, code) pairs: the
# planner otherwise joins each case to the team's grids and finds their district's current version per case.
_IN_TEAM_ONCE = f"""jsonb_build_array(c.district_code, c.supervision_code) = ANY(ARRAY(
                    SELECT jsonb_build_array(s.district_code, s.code) FROM supervision_grids s
                     WHERE s.team_code = :team AND s.version_id = {current_version_sql("s.district_code")}))"""
# ``case_conditions``' plain filters as conditions that apply when their parameter is set (not None).
_SET_FILTERS = (("district", "c.district_code = :district"), ("status", "c.status = :status"),
                ("kind", "c.kind = :kind"), ("class_code", "c.class_code = :class_code"),
                ("start", "c.reported_at >= CAST(:start AS timestamptz)"),
                ("end", "c.reported_at < CAST(:end AS timestamptz)"), ("unit", "c.unit_grid_code = :unit"),
                ("sup", "c.supervision_code = :sup"), ("team", _IN_TEAM_ONCE))


def _compact_conditions(params: dict[str, Any]) -> list[str]:
    """``case_conditions``' filter and scope conditions for the values bound in ``params``, without those that
    hold for every case with these values (a filter not given, the scope's parts that do not apply): each
    ``CAST(:x AS …) IS NULL OR …`` of the full list decided here rather than by the planner."""
    where = [sql for name, sql in _SET_FILTERS if params[name] is not None]
    if params["open"]:
        where.append("c.status <> ALL(CAST(:closed AS text[]))")
    if params["scope_home"] is not None:
        where.append("c.district_code = :scope_home")
    if params["scope_all"]:
        return where
    either = []
    if params["scope_team"] is not None:
        either.append(_IN_TEAM_ONCE.replace(":team", ":scope_team"))
    if params["scope_party"] is not None:
        either.append("(c.district_code = :scope_district AND c.attrs -> 'dispatched_to' ->> 'code' = :scope_party)")
    where.append(f"({' OR '.join(either)})" if either else "false")
    return where


def in_scope(conn: Connection, case_id: int, scope: CaseScope) -> bool:
    """Whether case ``case_id`` exists and lies in ``scope``."""
    return conn.execute(sa.text(f"SELECT EXISTS (SELECT 1 FROM cases c WHERE c.case_id = :id AND {_IN_SCOPE})"),
                        {"id": case_id, **scope.bound()}).scalar_one()


def set_deadline(conn: Connection, case_id: int, deadline: Any) -> None:
    conn.execute(sa.text("UPDATE cases SET deadline_at = :t WHERE case_id = :id"), {"t": deadline, "id": case_id})


def set_task_dues(conn: Connection, case_id: int, verify_due_at: Any, check_due_at: Any) -> None:
    """Set (or clear, with None) when the case's verification and check tasks are due."""
    conn.execute(sa.text("UPDATE cases SET verify_due_at = CAST(:v AS timestamptz), check_due_at = CAST(:k AS "
                         "timestamptz) WHERE case_id = :id"), {"v": verify_due_at, "k": check_due_at, "id": case_id})


def transaction_start(conn: Connection) -> dt.datetime:
    """The start of the current transaction (PostgreSQL ``now()``), the instant a deadline is counted from."""
    return conn.execute(sa.text("SELECT now()")).scalar_one()


def deadline_lists(conn: Connection, district: str | None, within_hours: float, limit: int,
                   scope: CaseScope | None = None) -> dict[str, list[dict[str, Any]]]:
    """Dispatched cases (within ``scope``, default every case) past their deadline, and those due within
    ``within_hours`` (soonest first)."""
    base = f"""SELECT {_CASE_COLUMNS} FROM cases c
                 LEFT JOIN taxonomy_classes t ON t.scheme = c.scheme AND t.kind = c.kind AND t.code = c.class_code
                WHERE c.status = 'dispatched' AND c.deadline_at IS NOT NULL
                  AND (CAST(:d AS text) IS NULL OR c.district_code = :d) AND {_IN_SCOPE}"""
    params = {"d": district, "h": within_hours, "limit": limit, **_scope(scope)}
    overdue = conn.execute(sa.text(base + " AND c.deadline_at < now() ORDER BY c.deadline_at LIMIT :limit"),
                           params).mappings()
    soon = conn.execute(sa.text(base + """ AND c.deadline_at >= now()
                                          AND c.deadline_at < now() + make_interval(secs => :h * 3600)
                                        ORDER BY c.deadline_at LIMIT :limit"""), params).mappings()
    return {"overdue": [dict(r) for r in overdue], "due_soon": [dict(r) for r in soon]}


def set_class(conn: Connection, case_id: int, kind: str, class_code: str) -> None:
    conn.execute(sa.text("UPDATE cases SET kind = :k, class_code = :c WHERE case_id = :id"),
                 {"k": kind, "c": class_code, "id": case_id})


def merge_attrs(conn: Connection, case_id: int, extra: dict[str, Any]) -> None:
    conn.execute(sa.text("UPDATE cases SET attrs = attrs || CAST(:x AS jsonb) WHERE case_id = :id"),
                 {"x": json.dumps(extra, ensure_ascii=False, default=str), "id": case_id})


def repoint_duplicates(conn: Connection, district: str, old: int, new: int) -> list[int]:
    """Make the cases of ``district`` recorded as duplicates of case ``old`` duplicates of case ``new`` (``old``
    has just been marked a duplicate of ``new``), so every duplicate names the original; their numbers."""
    return list(conn.execute(sa.text(
        """UPDATE cases SET attrs = jsonb_set(attrs, '{duplicate_of}', to_jsonb(CAST(:new AS bigint)))
            WHERE district_code = :d AND attrs ->> 'duplicate_of' = CAST(:old AS text)
           RETURNING case_id"""), {"d": district, "old": old, "new": new}).scalars())


def party(conn: Connection, district: str, kind: str, code: str) -> dict[str, Any] | None:
    row = conn.execute(sa.text(
        "SELECT code, name, kind FROM parties WHERE district_code = :d AND kind = :k AND code = :c"),
        {"d": district, "k": kind, "c": code}).mappings().first()
    return dict(row) if row else None


# When one code names parties of several kinds, the one a dispatch by code means: a department first.
_PARTY_KIND_ORDER = ["department", "street_office", "community", "unit", "frontage_unit", "property_company", "team",
                     "person"]


def party_by_code(conn: Connection, district: str, code: str) -> dict[str, Any] | None:
    """The active party of ``district`` coded ``code`` (code, name, kind); of several kinds, the first of
    ``_PARTY_KIND_ORDER``; None when there is none."""
    row = conn.execute(sa.text(
        """SELECT code, name, kind FROM parties WHERE district_code = :d AND code = :c AND active
            ORDER BY array_position(CAST(:order AS text[]), kind) NULLS LAST, kind LIMIT 1"""),
        {"d": district, "c": code, "order": _PARTY_KIND_ORDER}).mappings().first()
    return dict(row) if row else None


def has_party_kind(conn: Connection, district: str, kind: str) -> bool:
    """Whether ``district`` has any party of ``kind`` (e.g. a street office)."""
    return conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM parties WHERE district_code = :d AND kind = :k)"),
                        {"d": district, "k": kind}).scalar_one()


# --- the complainant (case_contacts: apart from the case row, so no read of cases carries it) ---
def insert_contact(conn: Connection, district: str, case_id: int, name: str, phone: str) -> None:
    """Keep the complainant's ``name`` and ``phone`` of case ``case_id``; a case keeps its first contact."""
    conn.execute(sa.text(
        """INSERT INTO case_contacts (district_code, case_id, name, phone) VALUES (:d, :c, :name, :phone)
           ON CONFLICT (district_code, case_id) DO NOTHING"""),
        {"d": district, "c": case_id, "name": name, "phone": phone})


def contact(conn: Connection, case_id: int) -> dict[str, Any] | None:
    """The complainant's ``name`` and ``phone`` of case ``case_id``, None when none was recorded."""
    row = conn.execute(sa.text("SELECT name, phone FROM case_contacts WHERE case_id = :c"),
                       {"c": case_id}).mappings().first()
    return dict(row) if row else None


def component_owner(conn: Connection, district: str, obj_id: str, at: Any) -> dict[str, Any] | None:
    """DeptCode1/DeptName1 of the component version valid at ``at``."""
    row = conn.execute(sa.text(
        """SELECT dept_code1 AS code, dept_name1 AS name FROM components
            WHERE district_code = :d AND obj_id = :o AND valid_from <= coalesce(CAST(:at AS timestamptz), now())
              AND (valid_to IS NULL OR valid_to > coalesce(CAST(:at AS timestamptz), now()))
            ORDER BY valid_from DESC LIMIT 1"""), {"d": district, "o": obj_id, "at": at}).mappings().first()
    return dict(row) if row else None


def overdue_ids(conn: Connection, district: str | None) -> list[int]:
    return list(conn.execute(sa.text(
        """SELECT case_id FROM cases WHERE status = 'dispatched' AND deadline_at < now()
              AND (CAST(:d AS text) IS NULL OR district_code = :d) ORDER BY deadline_at"""), {"d": district}
    ).scalars())


MAX_MONTHS = 600


def case_months(conn: Connection, district: str, zone: ZoneInfo) -> list[str]:
    """The months (YYYY-MM, local to ``zone``, the deployment's time zone) from the district's first to its
    last report, oldest first (two index look-ups, not a scan of every case)."""
    first, last = conn.execute(sa.text(
        """SELECT (SELECT reported_at FROM cases WHERE district_code = :d ORDER BY reported_at LIMIT 1),
                  (SELECT reported_at FROM cases WHERE district_code = :d ORDER BY reported_at DESC LIMIT 1)"""),
        {"d": district}).one()
    if first is None:
        return []
    first, last = first.astimezone(zone), last.astimezone(zone)
    first = max(first, last - dt.timedelta(days=31 * MAX_MONTHS))  # a slider of at most MAX_MONTHS months
    months = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def has_synthetic(conn: Connection, district: str) -> bool:
    """Whether any of the district's cases is synthetic (pages label them)."""
    return conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM cases WHERE district_code = :d AND synthetic)"),
                        {"d": district}).scalar_one()


def labelled_texts(conn: Connection, scheme: str) -> list[tuple[str, str, str]]:
    """(description, ``kind/code`` label, class name) of the real (non-synthetic), classified cases of
    ``scheme`` that have a description: the classifier's training set. A class the classifier chose itself
    (``attrs.classification``) counts only once a person confirmed it (``reclassify``: ``confirmed_by``)."""
    rows = conn.execute(sa.text(
        """SELECT c.description, c.kind || '/' || c.class_code AS label, t.name FROM cases c
             JOIN taxonomy_classes t ON t.scheme = c.scheme AND t.kind = c.kind AND t.code = c.class_code
            WHERE c.scheme = :s AND NOT c.synthetic AND length(c.description) > 0
              AND (c.attrs->'classification' IS NULL OR c.attrs->'classification' ? 'confirmed_by')"""),
        {"s": scheme}).all()
    return [(r[0], r[1], r[2]) for r in rows]


# ------------------------------------------------------------------------------------------ bulk history imports
def class_keys(conn: Connection, scheme: str) -> set[tuple[str, str]]:
    """Every (kind, code) of the class ``scheme``: what a bulk import checks its classes against."""
    return {(k, c) for k, c in conn.execute(sa.text("SELECT kind, code FROM taxonomy_classes WHERE scheme = :s"),
                                            {"s": scheme})}


def bulk_audit_off(conn: Connection, off: bool) -> None:
    """Turn the cases trigger's row-by-row audit off (``True``) or back on for this transaction: a historic
    caseload is audited once, as one operation."""
    db.quiet_row_audit(conn, off)


def insert_cases_bulk(conn: Connection, rows: list[dict[str, Any]], srid: int, now: dt.datetime) -> list[Any]:
    """Insert placed cases (x/y in EPSG:``srid``), one statement for all of them (rows as a JSON array); rows
    whose idempotency key is stored already are skipped. Returns (case_id, district_code, status,
    idempotency_key) of the inserted ones."""
    return list(conn.execute(sa.text(
        """INSERT INTO cases (district_code, idempotency_key, kind, scheme, class_code, description, source,
                              reported_at, status, unit_grid_code, supervision_code, community_code, street_code,
                              synthetic, attrs, geom)
           SELECT r.district, r.key, r.kind, r.scheme, r.class_code, r.description, r.source,
                  coalesce(r.reported_at, :now), r.status, r.unit, r.supervision, r.community, r.street,
                  r.synthetic, r.attrs, ST_SetSRID(ST_MakePoint(r.x, r.y), :srid)
             FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
                  district text, key text, kind text, scheme text, class_code text, description text,
                  source text, reported_at timestamptz, status text, unit text, supervision text,
                  community text, street text, synthetic boolean, attrs jsonb, x float8, y float8)
           ON CONFLICT (district_code, idempotency_key) DO NOTHING
           RETURNING case_id, district_code, status, idempotency_key"""
    ), {"rows": json.dumps(rows, ensure_ascii=False, default=str), "srid": srid, "now": now}).all())


def insert_events_bulk(conn: Connection, events: list[dict[str, Any]]) -> None:
    """Insert workflow events of imported cases: each a dict of ``district``, ``case_id``, ``seq``,
    ``action``, ``from_status``, ``to_status`` and ``at`` (an ISO 8601 instant with its offset; NULL: the
    case's report time); actor and role ``import``."""
    conn.execute(sa.text(
        """INSERT INTO case_events (district_code, case_id, seq, action, from_status, to_status, actor, role,
                                    note, at)
           SELECT e.district, e.case_id, e.seq, e.action, e.from_status, e.to_status, 'import', 'import',
                  'historic case', coalesce(e.at, c.reported_at)
             FROM jsonb_to_recordset(CAST(:events AS jsonb)) AS e(
                  district text, case_id bigint, seq integer, action text, from_status text, to_status text,
                  at timestamptz)
             JOIN cases c ON c.district_code = e.district AND c.case_id = e.case_id"""
    ), {"events": json.dumps(events, ensure_ascii=False, default=str)})
