"""SQL of the desk's work queues, built from small named pieces with bound parameters only.

A queue's cases are those of ``cases.store.case_conditions`` (the case map's filters and the caller's scope,
one meaning for every list of cases) that are in the queue's statuses and meet its named ``CONDITIONS``; its
rows come in one of the named ``ORDERS``. Points come back as lon/lat in EPSG:4326; ``near`` points go in as
lon/lat in EPSG:4326 and distances are metres measured in the deployment CRS (a projected CRS: EPSG:4548 for
Beijing).
"""

from __future__ import annotations

import functools
import operator
import re
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from citygrid.cases.scope import CaseScope
from citygrid.cases.store import CASE_OWNERS_SQL, case_conditions
from citygrid.cases.workflow import CLOSED_STATES, STATES
from citygrid.responsibility.store import CASE_FRONTAGE_SQL
from citygrid.spatial.store import current_version_sql

# Further conditions a queue may name (``desk.queues.Queue.condition``); ``{sources}``: the queue's
# ``QueueQuery.callback_sources`` as literals (``_sources``).
CONDITIONS: dict[str, str] = {
    # A supervisor was asked to verify the report (intake of a public report, or request_verify).
    "verify_task": "c.verify_due_at IS NOT NULL",
    # A public report (hotline, citizen, Open311) that was closed, whose complainant is called back (回访). A
    # closed one awaits its callback: the callback is what moves a closed case on (to evaluated, a second
    # handling or an investigation), so a case that is closed again after a second handling awaits a callback
    # again. The sources are literals, as the partial index ``cases_desk_closed`` (migration 0016) names them,
    # so every plan of the statement, a prepared one's too, can read that index.
    "closed_public_report": "c.source IN ({sources}) AND c.closed_at IS NOT NULL",
}
# Orders a queue may name (``desk.queues.Queue.order``); each ends on the case number, so pages are stable.
ORDERS: dict[str, str] = {
    "oldest": "c.reported_at, c.case_id",
    # Overdue first (their deadlines are the earliest), then the soonest deadline.
    "deadline": "c.deadline_at NULLS LAST, c.case_id",
    "verify_due": "c.verify_due_at NULLS LAST, c.reported_at, c.case_id",
    "check_due": "c.check_due_at NULLS LAST, c.reported_at, c.case_id",
    # When the case was last closed (``cases.closed_at``, kept from its events by the database): index
    # ``cases_desk_closed``, whose first entries are the page.
    "recently_closed": "c.closed_at DESC, c.case_id DESC",
    "near": "c.geom <-> (SELECT pt FROM near), c.case_id",
}
# A page row's columns; its class name is looked up for the page's rows only (``_CLASS_NAMES``).
_COLUMNS = """c.case_id, c.district_code, c.kind, c.scheme, c.class_code, c.description, c.source, c.reported_at,
    c.status, c.unit_grid_code, c.supervision_code, c.community_code, c.street_code, c.component_obj_id,
    c.deadline_at, c.verify_due_at, c.check_due_at, c.synthetic, c.row_version, c.attrs,
    ST_X(ST_Transform(c.geom, 4326)) AS lon, ST_Y(ST_Transform(c.geom, 4326)) AS lat"""
# The names of the page's classes as one object (key: the class's [scheme, kind, code] as JSON text), read once
# per statement after the page is cut (the classes with the page's codes: an object of all of them took longer
# to build than the page), each row's name looked up in it. Joined to the queue's cases, where
# the planner expects one candidate case it joins the whole class table to every candidate; joined to the page
# it did so to every row where it expects a page of one (a team's queue: 2,200 comparisons); looked up per row
# by key it scanned the class table once per row (small enough that a scan looks as cheap as its index: 100 of
# a page's 250 buffers on the desk_queue bench).
_CLASS_NAMES = """names AS (SELECT jsonb_object_agg(jsonb_build_array(t.scheme, t.kind, t.code)::text, t.name) AS m
                             FROM taxonomy_classes t
                            WHERE t.code = ANY(ARRAY(SELECT DISTINCT p.class_code FROM page p)))"""
_CLASS_NAME = "names.m ->> jsonb_build_array(page.scheme, page.kind, page.class_code)::text"
_PHOTOS = """(SELECT count(*) FROM case_photos p WHERE p.district_code = c.district_code
                 AND p.case_id = c.case_id) AS photo_count,
             (SELECT min(p.photo_id) FROM case_photos p WHERE p.district_code = c.district_code
                 AND p.case_id = c.case_id) AS first_photo_id"""
# A team's queue read page by page (not ``_bounded``): the team's grids as a list found once per statement, so
# the cases are looked up in those grids rather than every case of the queue's statuses tested against them.
# It narrows only: the scope's own condition (``cases.store.case_conditions``) still decides.
_TEAM_GRIDS = f"""c.supervision_code = ANY(ARRAY(
    SELECT s.code FROM supervision_grids s
     WHERE s.team_code = :scope_team AND s.version_id = {current_version_sql("s.district_code")}))"""
# What a dispatch preview reads besides the case (``cases.service.PreviewInputs``), with each page row: the
# transaction's start, the grid's owners at report time in the roles dispatch may choose (``Preview.roles``),
# and the frontage unit covering the point for a case whose class may go to one (a key of its class among
# ``Preview.frontage_keys``; as ``DispatchRules.rule_for`` reads a class's keys).
_PREVIEW = f"""now() AS preview_now, {CASE_OWNERS_SQL} AS preview_owners,
               CASE WHEN ARRAY[c.kind || '/' || c.class_code, c.kind || '/' || left(c.class_code, 2), c.kind]
                         && CAST(:frontage_keys AS text[])
                    THEN {CASE_FRONTAGE_SQL} END AS preview_frontage"""
# The near point in the storage CRS, once per statement.
# (Given already projected: a transform in the statement sets PROJ up again for every statement.)
_NEAR = "near AS (SELECT ST_GeomFromWKB(:near_wkb, :srid) AS pt)"


@dataclass(frozen=True)
class Preview:
    """What the rows of a queue with dispatch previews read (``_PREVIEW``): the grid's owners in ``roles``
    (``DispatchRules.roles_named``) and the frontage unit of a case whose class has one of ``frontage_keys``
    (``DispatchRules.keys_ruled``). Both only narrow: what a preview does not read, no preview chooses."""

    roles: tuple[str, ...]
    frontage_keys: tuple[str, ...]


@dataclass(frozen=True)
class QueueQuery:
    """What one queue read asks for: the queue's statuses, condition, order, due column and whether rows
    carry photos (``desk.queues.Queue``), and the filters of the case map (``cases.store.case_conditions``'
    keyword arguments) within ``scope``; ``near`` (lon, lat) in EPSG:4326 and ``near_wkb`` the same point as
    WKB in the storage CRS; ``preview``: rows carry what a dispatch preview reads (``preview_now``,
    ``preview_owners`` as ``cases.store.CASE_OWNERS_SQL``, ``preview_frontage`` as
    ``responsibility.store.CASE_FRONTAGE_SQL`` or NULL: ``Preview``)."""

    statuses: tuple[str, ...]
    condition: str | None
    order: str
    due: str | None
    photos: bool
    filters: dict[str, Any]
    scope: CaseScope
    near: tuple[float, float] | None = None
    near_wkb: bytes | None = None
    callback_sources: tuple[str, ...] = ()
    preview: Preview | None = None


def _statuses(statuses: tuple[str, ...]) -> str:
    """The queue's statuses as a condition with literal values (workflow states, never caller input), so the
    planner sees them in every plan and can use the status indexes and the queues' partial indexes."""
    unknown = set(statuses) - set(STATES)
    if not statuses or unknown:
        raise ValueError(f"not workflow statuses: {sorted(unknown) or 'none'}")
    if len(statuses) == 1:
        return f"c.status = '{statuses[0]}'"
    listed = ", ".join(f"'{s}'" for s in statuses)
    return f"c.status IN ({listed})"


def _sources(sources: tuple[str, ...]) -> str:
    """The callback sources as a list of SQL literals (names from ``desk.queues``, never caller input)."""
    if not sources or not all(s.isascii() and s.replace("_", "").isalnum() for s in sources):
        raise ValueError(f"not source names: {sources!r}")
    return ", ".join(f"'{s}'" for s in sources)


def _condition(q: QueueQuery) -> str:
    """The SQL of the queue's further condition (``CONDITIONS``), its sources written in where it names them."""
    condition = CONDITIONS[q.condition]
    return condition.format(sources=_sources(q.callback_sources)) if "{sources}" in condition else condition


def _where(q: QueueQuery, srid: int) -> tuple[str, dict[str, Any], bool]:
    """The WHERE clause (on cases ``c``) of the queue's cases, its parameters, and whether the queue is read
    once and counted whole (``_bounded``: its cases are then looked up grid by grid, ``_BOUNDED``)."""
    bounded = _bounded(q)
    # Read whole, the queue's cases are looked up in the team's grids (``_BOUNDED``), which is all the scope's
    # team condition says: the conditions keep the rest of the scope (its home district).
    scope = replace(q.scope, team=None) if bounded else q.scope
    where, params = case_conditions(**q.filters, srid=srid, scope=scope, compact=True)
    where.append(_statuses(q.statuses))
    if bounded:
        params["scope_team"] = q.scope.team
    elif params.get("scope_team") is not None and not params.get("scope_all"):
        where.append(_TEAM_GRIDS)
    if q.condition is not None:
        where.append(_condition(q))
    if q.near is not None:
        params["near_wkb"] = q.near_wkb
    return " AND ".join(where), params, bounded


def _due(q: QueueQuery) -> str:
    """The due column as SQL (a column name from ``desk.queues``, never caller input), NULL when none."""
    if q.due is None:
        return "CAST(NULL AS timestamptz)"
    if q.due not in ("deadline_at", "verify_due_at", "check_due_at"):
        raise ValueError(f"unknown due column {q.due!r}")
    return f"c.{q.due}"


def _capped_counts(q: QueueQuery, where: str) -> str:
    """Subqueries counting the queue's cases (``total``), those past their due column (``overdue``) and those
    due within ``:soon`` seconds (``due_soon``), each stopping at ``:cap`` + 1 cases: a count is exact below
    ``:cap`` and means "at least" at ``cap`` + 1. Counting stops early because a queue may hold a district's
    whole history (the callback queue: every closed public report), and the desk polls every few seconds; the
    due counts read the queues' partial indexes on their due column. The total counts the newest reports
    first: cases leave a queue all day (accepted, called back), and until vacuum the index entries they leave
    behind stand first in the order the rows were written and among the oldest reports, which a count in
    either order walked past one by one (EXPLAIN on the desk_queue bench)."""
    total = _capped_count(where, " ORDER BY c.closed_at DESC" if q.order == "recently_closed"
                          else " ORDER BY c.reported_at DESC")
    if q.due is None:
        return f"{total} AS total, 0 AS overdue, 0 AS due_soon"
    return (f"{total} AS total, {_capped_count(where, f' AND {_due(q)} < now()')} AS overdue, "
            f"{_capped_count(where, _soon(q))} AS due_soon")


def _capped_count(where: str, extra: str) -> str:
    """A subquery counting the cases of ``where`` and ``extra`` up to ``:cap`` + 1."""
    return f"(SELECT count(*) FROM (SELECT 1 FROM cases c WHERE {where}{extra} LIMIT :cap + 1) k)"


def _soon(q: QueueQuery) -> str:
    """The further condition of a case due within ``:soon`` seconds (not yet overdue)."""
    due = _due(q)
    return f" AND {due} >= now() AND {due} < now() + make_interval(secs => :soon)"


# Queues whose rows come in the order of their due column (``QueueQuery.order`` -> ``QueueQuery.due``): the
# index serving that order serves their counts too (``_due_window``).
_BY_DUE = {"verify_due": "verify_due_at", "check_due": "check_due_at", "deadline": "deadline_at"}


def _due_window(q: QueueQuery) -> bool:
    """Whether the queue's counts are read from one window of its cases in due order (``_window_counts``):
    queues ordered by their due column, whose index walks that order and stops."""
    return q.due is not None and _BY_DUE.get(q.order) == q.due


def _window_counts(q: QueueQuery, where: str) -> str:
    """The queue's first ``:cap`` + 1 cases in the order of its due column (NULLs last) counted once: their
    number (``total``), those past due (``overdue``) and those due within ``:soon`` seconds (``due_soon``), and
    whether ``due_soon`` is exact (``_soon_exact``). In that order the overdue cases come first and the due-soon
    ones next, so a window that ends on a later (or no) due time holds every one of them: ``total`` and
    ``overdue`` are then what ``_capped_counts`` gives (exact, or ``:cap`` + 1 at it), and ``due_soon`` is
    exact unless the window is full of overdue and due-soon cases, when ``read`` counts it the long way.
    One index walk instead of three capped counts, each of which plans the queue's conditions again."""
    due = _due(q)
    return f"""SELECT count(*) AS total, count(*) FILTER (WHERE d < now()) AS overdue,
                      count(*) FILTER (WHERE d >= now() AND d < now() + make_interval(secs => :soon)) AS due_soon,
                      count(*) <= :cap OR count(*) FILTER (WHERE d IS NULL OR d >= now() + make_interval(
                          secs => :soon)) > 0 AS _soon_exact
                 FROM (SELECT {due} AS d FROM cases c WHERE {where}
                        ORDER BY {due} NULLS LAST LIMIT :cap + 1) k"""


_ROW_LIMITS = re.compile(r":(cap|limit|offset)\b")


def _with_row_limits(sql: str, **limits: int) -> str:
    """``sql`` with its row limits (``:cap``, ``:limit``, ``:offset``) written in as integer literals; every
    other value stays a bound parameter.

    With its limits bound, PostgreSQL plans a queue's statement anew on every poll: a plan kept for any limit
    must allow for a large one, which costs more than planning for the one given, so it is never kept. With
    the limits written in, the kept plan is the one the planner would make, and a poll skips planning, which
    was half of the statement's time (0.49 ms instead of 1.06 ms for the accept queue on the desk_queue
    bench). Only whole numbers go in (never caller text): ``TypeError`` otherwise."""
    for name, value in limits.items():
        if type(value) is not int:
            raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return _ROW_LIMITS.sub(lambda m: str(limits[m.group(1)]), sql)


def _statement(sql: str, **limits: int) -> sa.TextClause:
    """``sql`` with its row limits written in (``_with_row_limits``) as a statement, made once per process for
    each text: a queue's text is the same on every poll, and reading its bound parameters out of it again took
    a tenth of a poll's Python time (statements are immutable, shared by every thread)."""
    return _statement_of(_with_row_limits(sql, **limits))


@functools.lru_cache(maxsize=512)
def _statement_of(sql: str) -> sa.TextClause:
    """``sa.text(sql)`` in a cache of the desk's own: its texts carry the caller's row limits, so paging makes
    new ones, which must not push the other stores' statements out of ``spatial.db.statement``'s cache."""
    return sa.text(sql)


def counts(conn: Connection, q: QueueQuery, srid: int, soon_s: float, cap: int) -> dict[str, int]:
    """``total``, ``overdue`` (due column before now) and ``due_soon`` (due within ``soon_s`` seconds) of the
    queue's cases, each counted up to ``cap`` + 1 (``_capped_counts``, or all of them counted once for a queue
    read whole: ``_bounded``); one statement."""
    where, params, bounded = _where(q, srid)
    sql = (f"WITH {_bounded_cte(q, where)} {_whole_counts(q)}" if bounded
           else f"SELECT {_capped_counts(q, where)}")
    row = conn.execute(_statement(sql, cap=cap), {**params, "soon": soon_s}).mappings().one()
    return dict(row)


def _page_sql(q: QueueQuery, where: str, source: str = "cases c") -> str:
    """The SELECT of one page of the queue (``:limit`` rows from ``:offset``) in its order, numbered ``n``, from
    ``source`` (the cases, or the queue's cases already read: ``_BOUNDED``)."""
    order = ORDERS["near" if q.near is not None else q.order]
    extra = [f"EXTRACT(EPOCH FROM {_due(q)} - now()) AS seconds_left"]
    extra.append("ST_Distance(c.geom, (SELECT pt FROM near)) AS distance_m" if q.near is not None
                 else "CAST(NULL AS float8) AS distance_m")
    extra.append("c.closed_at" if q.order == "recently_closed" else "CAST(NULL AS timestamptz) AS closed_at")
    if q.photos:
        extra.append(_PHOTOS)
    if q.preview is not None:
        extra.append(_PREVIEW)
    return f"""SELECT {_COLUMNS}, {", ".join(extra)}, row_number() OVER (ORDER BY {order}) AS n FROM {source}
             WHERE {where}
             ORDER BY {order} LIMIT :limit OFFSET :offset"""


def _bounded(q: QueueQuery) -> bool:
    """Whether the queue's cases are read once and counted whole (``_BOUNDED``): the open tasks of a scope that
    is a supervision team's grids (and nothing else), which are few and which a page nearest first reads all of
    anyway."""
    scope = q.scope
    team = scope.readable and scope.team is not None and scope.party is None
    return team and q.order != "recently_closed" and not set(q.statuses) & set(CLOSED_STATES)


# The queue's cases read once, then counted whole and paged: the counts' window in due order and the page
# nearest first each read them all otherwise, from the district's index on the due column (the verify queue twice
# 1,500 of the district's verification tasks to find the team's 54 on the desk_queue bench). They are looked up
# grid by grid (indexes ``cases_desk_verify_grid`` and ``cases_desk_check_grid``: one grid's tasks of the queue,
# the lookup naming the verify queue's condition as its index does), each lookup planned apart (``OFFSET 0``)
# with nothing else to choose by, and then the queue's conditions, the scope's among them, decide. (With those
# conditions inside the lookup a plan kept for the prepared statement walked the district's due index once per
# grid: 10,600 buffers instead of 390.)
_BOUNDED = f"""queue AS MATERIALIZED (
    SELECT c.* FROM (SELECT DISTINCT s.district_code, s.code FROM supervision_grids s
                      WHERE s.team_code = :scope_team
                        AND s.version_id = {current_version_sql("s.district_code")}) g
    CROSS JOIN LATERAL (SELECT c.* FROM cases c WHERE c.district_code = g.district_code
                           AND c.supervision_code = g.code AND {{statuses}} OFFSET 0) c
     WHERE {{where}})"""


def _bounded_cte(q: QueueQuery, where: str) -> str:
    """The CTE ``queue``: the queue's cases of the team's grids (``_BOUNDED``) that meet ``where``."""
    # The lookup names the queue's condition as the queue's grid index does (``cases_desk_verify_grid``).
    lookup = _statuses(q.statuses) + (f" AND {_condition(q)}" if q.condition is not None else "")
    return _BOUNDED.format(where=where, statuses=lookup)


def _whole_counts(q: QueueQuery) -> str:
    """The counts of the queue's cases read once (``_BOUNDED``), each at most ``:cap`` + 1 as ``_capped_counts``
    gives them."""
    due = _due(q)
    return f"""SELECT least(count(*), :cap + 1) AS total, least(count(*) FILTER (WHERE {due} < now()), :cap + 1)
                      AS overdue,
                      least(count(*) FILTER (WHERE {due} >= now() AND {due} < now() + make_interval(secs => :soon)),
                            :cap + 1) AS due_soon
                 FROM queue c"""


def _counting(q: QueueQuery, where: str, bounded: bool) -> tuple[str, str]:
    """The CTEs that count the queue (ending with ``counted``) and the SQL of its ``due_soon`` count."""
    if bounded:
        return f"{_bounded_cte(q, where)}, counted AS ({_whole_counts(q)})", "counted.due_soon"
    if not _due_window(q):
        return f"counted AS (SELECT {_capped_counts(q, where)})", "counted.due_soon"
    # A window full of overdue and due-soon cases: due_soon the long way, in the same statement (a subquery
    # run only when the window says so).
    return (f"counted AS ({_window_counts(q, where)})",
            f"CASE WHEN counted._soon_exact THEN counted.due_soon ELSE {_capped_count(where, _soon(q))} END")


def read(conn: Connection, q: QueueQuery, srid: int, limit: int, offset: int, soon_s: float,
         cap: int) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """The queue's counts (``counts``, each up to ``cap`` + 1) and one page of its cases in its order (nearest
    first with ``near``), in one statement (one round trip). Each row has lon/lat in EPSG:4326,
    ``seconds_left`` to its due column (negative: overdue), ``distance_m`` from ``near`` (metres in the
    deployment CRS), ``closed_at``, for queues with photos ``photo_count`` and ``first_photo_id``, and with
    ``QueueQuery.preview`` what a dispatch preview reads (``preview_now``, ``preview_owners``,
    ``preview_frontage``)."""
    where, params, bounded = _where(q, srid)
    counting, due_soon = _counting(q, where, bounded)
    page = _page_sql(q, "true", "queue c") if bounded else _page_sql(q, where)
    rows = conn.execute(_statement(
        f"""WITH {_NEAR + "," if q.near is not None else ""}
                 {counting},
                 page AS ({page}),
                 {_CLASS_NAMES}
            SELECT counted.total AS _total, counted.overdue AS _overdue, {due_soon} AS _due_soon, page.*,
                   {_CLASS_NAME} AS class_name
              FROM counted CROSS JOIN names LEFT JOIN page ON true
             ORDER BY page.n""", cap=cap, limit=limit, offset=offset
    ), {**params, **_preview_params(q.preview), "srid": srid, "soon": soon_s})
    return _counts_and_rows(list(rows.keys()), rows.all())


def _preview_params(preview: Preview | None) -> dict[str, list[str]]:
    """The parameters of the page's dispatch previews (``_PREVIEW``), none without them."""
    if preview is None:
        return {}
    return {"owner_roles": list(preview.roles), "frontage_keys": list(preview.frontage_keys)}


_COUNT_COLUMNS = {"_total": "total", "_overdue": "overdue", "_due_soon": "due_soon"}


def _counts_and_rows(keys: list[str], rows: list[Any]) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """The counts (``_COUNT_COLUMNS``, on every row) and the page's rows as dicts without them and ``n`` of a
    ``read`` statement's answer (one row with NULL case columns when the page is empty). Plain tuples made into
    dicts at once, as result mappings filtered key by key took a tenth of a poll's Python time."""
    first = rows[0]
    counted = {name: first[keys.index(column)] for column, name in _COUNT_COLUMNS.items()}
    kept = [i for i, k in enumerate(keys) if k not in _COUNT_COLUMNS and k != "n"]
    names, pick, case_id = [keys[i] for i in kept], operator.itemgetter(*kept), keys.index("case_id")
    return counted, [dict(zip(names, pick(r), strict=True)) for r in rows if r[case_id] is not None]
