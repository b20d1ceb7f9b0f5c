"""Reads of the desk's work queues: which queues an account works, each queue's counts and one page of it.

A queue is asked for with a plain ``DeskFilter``: the case map's filters (a ``cases.queries.CaseFilter``, the
same names and meaning as ``GET /api/v1/cases``), a ``near`` point and the page. The caller's scope comes from
their account (``scope_for``): a supervisor's queues keep to their team's grids, a unit's to its party's cases,
as ``cases.scope`` says for every read and action.

Refresh is by polling, not server-sent events: a queue answer carries a tag (``change_tag``) derived from a
cheap change marker of the cases it reads (``desk.store.counts``: count, row versions, photos) and from who
asked, so a page that polls every few seconds gets "not modified" without its rows being read again. Polling
works through every proxy, and holds no worker thread of the production server (a fixed pool of gunicorn
threads) open per open page, which a stream per page would.

Examples
--------
>>> DeskFilter(near=(116.48, 39.93)).limit
20
"""

from __future__ import annotations

import functools
import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import shapely
from pyproj import CRS, Transformer
from sqlalchemy.engine import Connection

from citygrid.cases import service
from citygrid.cases.queries import CaseFilter
from citygrid.cases.rules import FRONTAGE_RULE, CaseRules, DispatchRules
from citygrid.cases.scope import CaseScope, action_scope, read_scope
from citygrid.cases.store import owners_of_rows
from citygrid.desk import store
from citygrid.desk.queues import CALLBACK_SOURCES, DUE_SOON_HOURS, Queue, visible_queues
from citygrid.errors import Forbidden, InvalidInput
from citygrid.spatial import crs
from citygrid.spatial.db import deployment_srid

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from citygrid.accounts.service import Principal

MAX_LIMIT = 200
_WGS84 = crs.parse_crs("EPSG:4326")
# Counts stop here: a queue may hold a district's whole history (the callback queue: every closed public
# report), and the desk polls each open page every few seconds, so a count reads at most this many cases (plus
# one) however long the queue is. Below it every count is exact; at it the answer names the count in
# ``at_least`` (a badge shows "100+"), which is all a worker's badge needs: there is more than a day's work.
COUNT_CAP = 100
# The case map's filters a queue takes (``CaseFilter`` fields); status and the rest are the queue's own.
FILTERS = ("district", "kind", "class_code", "start", "end", "bbox", "unit_grid", "supervision_grid", "team")


@dataclass(frozen=True)
class DeskFilter:
    """Which of a queue's cases to show.

    Attributes
    ----------
    cases : the case map's filters (only ``FILTERS`` of it are read; the queue sets the statuses and the
        caller's scope).
    near : (lon, lat) in EPSG:4326: nearest first, with each case's distance in metres (deployment CRS).
    limit, offset : the page (``limit`` at most ``MAX_LIMIT``).
    """

    cases: CaseFilter = field(default_factory=CaseFilter)
    near: tuple[float, float] | None = None
    limit: int = 20
    offset: int = 0


def scope_for(queue: Queue, who: Principal) -> CaseScope:
    """The cases of ``queue`` that ``who`` sees: admins every case; otherwise the scope of the workflow role the
    queue is worked in (``Queue.acting_as``: a supervisor's team's grids, a unit's party's cases), else their
    read scope. ``Forbidden`` (saying why) for an account whose scope holds no case (a unit bound to no party)."""
    if "admin" in who.roles:
        return CaseScope()
    scope = action_scope(who, queue.acting_as) if queue.acting_as else read_scope(who)
    return scope.required()


def _query(queue: Queue, scope: CaseScope, f: DeskFilter, srid: int, preview: store.Preview | None = None
           ) -> store.QueueQuery:
    """The store's query of ``queue`` under ``scope`` and ``f`` (``near`` projected to EPSG:``srid``, the
    storage CRS; rows with what dispatch previews read with ``preview``); ``Forbidden`` for another team's
    grids than the scope's own (as ``cases.queries.list_cases`` refuses), ``InvalidInput`` (field ``near``) for
    a point too far from the deployment to be projected."""
    team = f.cases.team
    if team is not None and scope.team is not None and team != scope.team:
        raise Forbidden(f"you may list the cases of your own team {scope.team} only")
    if not 1 <= f.limit <= MAX_LIMIT or f.offset < 0:
        raise InvalidInput(f"limit must be 1–{MAX_LIMIT} and offset at least 0", field="limit")
    return store.QueueQuery(statuses=queue.statuses, condition=queue.condition, order=queue.order, due=queue.due,
                            photos=queue.photos, filters={k: getattr(f.cases, k) for k in FILTERS}, scope=scope,
                            near=f.near, near_wkb=_near_wkb(f.near, srid), callback_sources=CALLBACK_SOURCES,
                            preview=preview)


def _preview(queue: Queue, dispatch: DispatchRules | None) -> store.Preview | None:
    """What the rows of ``queue`` read for their dispatch previews (``suggestion``): the owners in the roles the
    ``dispatch`` rules may choose and the frontage units of the classes they send to one; None for a queue
    without previews. ``ValueError`` for a queue with previews read without the rules."""
    if "suggestion" not in queue.columns:
        return None
    if dispatch is None:
        raise ValueError(f"queue {queue.name} shows dispatch previews: read it with the dispatch rules")
    return store.Preview(dispatch.roles_named(), dispatch.keys_ruled(FRONTAGE_RULE))


def _near_wkb(near: tuple[float, float] | None, srid: int) -> bytes | None:
    """``near`` (lon, lat in EPSG:4326) as WKB in EPSG:``srid``; None without one. ``InvalidInput`` (field
    ``near``) for a point so far from the deployment's projection zone that PROJ answers infinity."""
    if near is None:
        return None
    x, y = _from_wgs84(srid).transform(near[0], near[1])
    if not (math.isfinite(x) and math.isfinite(y)):
        raise InvalidInput(f"the point {near[0]:g}, {near[1]:g} is too far from this deployment's area "
                           f"(EPSG:{srid}) to be placed", field="near")
    return shapely.to_wkb(shapely.Point(x, y))


@functools.lru_cache(maxsize=8)
def _from_wgs84(srid: int) -> Transformer:
    """The transformer from EPSG:4326 (lon/lat) to EPSG:``srid``, found once per process (``crs.transformer``
    keys its cache by both CRSs' WKT, which took most of a verify or check queue answer's own Python time)."""
    return crs.transformer(_WGS84.crs, CRS.from_epsg(srid))


def _capped(counted: dict[str, int]) -> tuple[dict[str, int], list[str]]:
    """The counts shown (each at most ``COUNT_CAP``) and the names of those that reached it ("at least")."""
    at_least = [k for k in ("total", "overdue", "due_soon") if counted[k] > COUNT_CAP]
    return {k: min(int(counted[k]), COUNT_CAP) for k in ("total", "overdue", "due_soon")}, at_least


def queue_counts(conn: Connection, queue: Queue, scope: CaseScope, f: DeskFilter) -> dict[str, Any]:
    """``total``, ``overdue`` and ``due_soon`` (within ``DUE_SOON_HOURS``) of the queue's cases under ``scope``
    and ``f``, each exact below ``COUNT_CAP`` and ``COUNT_CAP`` when there are at least that many, and
    ``at_least``: the names of the counts that reached it."""
    srid = deployment_srid(conn)
    counted = store.counts(conn, _query(queue, scope, f, srid), srid, DUE_SOON_HOURS * 3600, COUNT_CAP)
    shown, at_least = _capped(counted)
    return {**shown, "at_least": at_least}


@dataclass(frozen=True)
class QueueRead:
    """One read of a queue: its ``counts`` (as ``queue_counts``, without ``at_least``), the names of the
    counts that reached ``COUNT_CAP`` (``at_least``), one page of its cases (``rows``, as ``desk.store.read``
    gives them) and the ``marker`` of that answer's state (``change_tag``)."""

    counts: dict[str, int]
    at_least: list[str]
    rows: list[dict[str, Any]]
    marker: str


def read_queue(conn: Connection, queue: Queue, scope: CaseScope, f: DeskFilter, srid: int | None = None,
               dispatch: DispatchRules | None = None) -> QueueRead:
    """The counts and one page of ``queue`` under ``scope`` and ``f`` (one statement), with the marker of what
    the answer shows: the counts and each row's case, version, photos and what its dispatch preview reads (the
    grid's owners and the frontage unit). Whatever changes the answer changes the marker (a case entering or
    leaving the queue changes a count or the page; a changed case its version; an ownership or frontage import
    the party a row suggests); a change the answer does not show (beyond the page, with the counts at their cap)
    leaves it alone.
    ``srid``: the storage CRS when the caller holds it (``deployment_srid``; read here otherwise);
    ``dispatch``: the deployment's dispatch rules, which a queue with dispatch previews needs (``_preview``)."""
    srid = deployment_srid(conn) if srid is None else srid
    query = _query(queue, scope, f, srid, _preview(queue, dispatch))
    counted, rows = store.read(conn, query, srid, f.limit, f.offset,
                               DUE_SOON_HOURS * 3600, COUNT_CAP)
    shown, at_least = _capped(counted)
    state = (sorted(shown.items()), at_least, [(r["case_id"], r["row_version"], r.get("photo_count"),
                                                 r.get("first_photo_id"), r.get("preview_owners"),
                                                 r.get("preview_frontage")) for r in rows])
    return QueueRead(shown, at_least, rows, repr(state))


def change_tag(queue: Queue, who: Principal, scope: CaseScope, f: DeskFilter, marker: str,
               now: float | None = None) -> str:
    """The tag of one queue answer: it changes when the queue's cases do (``marker``), and differs between
    callers and between filters, so no caller's tag ever matches another's answer (a shared cache revalidating
    one user's copy for another gets the full answer, never a "not modified"). Queues whose rows depend on the
    clock (``Queue.clock_s``) change their tag that often too."""
    tick = int((time.time() if now is None else now) // queue.clock_s) if queue.clock_s else 0
    # The filter's repr names every field of it and of its case filter (frozen dataclasses of text, numbers,
    # tuples and datetimes, whose reprs are the same in every process), as the JSON of ``asdict`` did in a
    # tenth of a poll's Python time.
    mine = (queue.name, who.user_id, sorted(who.roles), sorted(scope.bound().items()), repr(f), marker, tick)
    return hashlib.sha256(repr(mine).encode()).hexdigest()[:40]


def queue_page(conn: Connection, rules: CaseRules, queue: Queue, rows: list[dict[str, Any]],
               zone: ZoneInfo | None = None) -> list[dict[str, Any]]:
    """The page ``rows`` of ``queue`` (``read_queue``), each with what the queue shows (``Queue.columns``):
    for the accept queue whether the filing rule needs a verification first (``verification``); for the
    dispatch queue the party the case would go to now, its level and deadline (``suggestion``), or why there is
    none; ``seconds_left`` to the task's time limit, ``distance_m`` from ``near`` (metres, deployment CRS).
    ``zone``: the deployment's time zone when the caller holds it (read here otherwise)."""
    if "verification" in queue.columns:
        for row in rows:
            row["verification"] = _verification(rules, row)
    if "suggestion" in queue.columns:
        for row, preview in zip(rows, suggestions(conn, rules, rows, zone), strict=True):
            row["suggestion"] = preview
    return rows


def _verification(rules: CaseRules, case: dict[str, Any]) -> dict[str, Any]:
    """Whether the filing rule (``filing.yaml``) wants the report verified on site first, whether a
    verification is pending (asked for, not done), whether it was verified, and whether ``accept`` is
    refused now (with the rule's reason)."""
    return {"required": rules.filing.must_verify(case["source"]),
            "pending": case["status"] == "reported" and case["verify_due_at"] is not None,
            "verified": case["status"] == "verified",
            "accept_refused": rules.filing.refusal(case)}


def suggestions(conn: Connection, rules: CaseRules, cases: list[dict[str, Any]], zone: ZoneInfo | None = None
                ) -> list[dict[str, Any]]:
    """For each accepted case, the party it would be dispatched to now, its level and the deadline it would get
    (``cases.service.dispatch_previews``); ``party`` None with the ``problem`` when no party can be found (no
    class yet, no ownership for its grid): one case without a party never fails the whole queue. Rows read
    with their preview inputs (``desk.store.QueueQuery.preview``) need no further query."""
    read = None
    if cases and all("preview_now" in c for c in cases):
        read = service.PreviewInputs(started=cases[0]["preview_now"],
                                     owners=[owners_of_rows(c["preview_owners"]) for c in cases],
                                     frontage={c["case_id"]: c["preview_frontage"] for c in cases})
    return service.dispatch_previews(conn, rules, cases, zone=zone, read=read)


def desk_summary(conn: Connection, who: Principal, district: str | None) -> list[dict[str, Any]]:
    """Every queue ``who`` works, with its ``total`` and ``overdue`` count (in ``district`` when given): what
    the desk's first screen shows; each count is exact below ``COUNT_CAP`` and ``COUNT_CAP`` at or above it,
    when the queue names it in ``at_least`` (present only then). A queue whose scope holds no case for ``who``
    (a unit bound to no party) is listed with ``unavailable`` saying why, not left out."""
    listed = []
    for queue in visible_queues(who.roles):
        item: dict[str, Any] = {"queue": queue.name, "label": queue.label}
        try:
            counted = queue_counts(conn, queue, scope_for(queue, who), DeskFilter(CaseFilter(district=district)))
        except Forbidden as exc:
            listed.append({**item, "total": 0, "overdue": 0, "unavailable": exc.message})
            continue
        item.update(total=counted["total"], overdue=counted["overdue"])
        at_least = [k for k in counted["at_least"] if k in ("total", "overdue")]
        listed.append({**item, "at_least": at_least} if at_least else item)
    return listed
