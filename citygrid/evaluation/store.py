"""SQL of the evaluation: one aggregated pass per kind over one local month of a district's case events.

Every function takes the district and the month's bounds (aware datetimes, end exclusive) and returns one dict
per evaluated object with the counts ``indicators`` divides; nothing is scored here. The month's events are
read through ``case_events_month`` (district, at); a case's own events through the primary key.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

_SUPERVISOR_ACTIONS = "('report', 'verify', 'check_pass', 'check_fail')"
# The actor label prefix of the SYNTHETIC demo timelines' supervisors (``cases.synthetic_events``): one stand-in
# per supervision grid, ``synthetic-supervisor-<grid code>``, with no account or person; it holds its grid.
SYNTHETIC_SUPERVISOR = "synthetic-supervisor-"
# The counts of a supervisor's (or a team's) own events, from a CTE ``ev`` (code, case_id, action, at, due_at).
_ACT_COUNTS = """
    SELECT ev.code,
           count(*) FILTER (WHERE ev.action = 'report') AS reports,
           count(*) FILTER (WHERE ev.action = 'report' AND EXISTS (
               SELECT 1 FROM case_events a WHERE a.district_code = :d AND a.case_id = ev.case_id
                  AND a.action = 'accept')) AS valid_reports,
           count(*) FILTER (WHERE ev.action = 'verify' AND ev.due_at IS NOT NULL) AS verifies_due,
           count(*) FILTER (WHERE ev.action = 'verify' AND ev.at <= ev.due_at) AS verifies_timely,
           count(*) FILTER (WHERE ev.action IN ('check_pass', 'check_fail') AND ev.due_at IS NOT NULL)
               AS checks_due,
           count(*) FILTER (WHERE ev.action IN ('check_pass', 'check_fail') AND ev.at <= ev.due_at)
               AS checks_timely
      FROM ev GROUP BY ev.code"""
_ACT_FIELDS = ("reports", "valid_reports", "verifies_due", "verifies_timely", "checks_due", "checks_timely")
# Each supervision grid of the newest published version in force by the month's end (before the first
# publication: of the first published version, whose codes the earlier cases carry), with its team.
_GRID_TEAMS = """
    SELECT DISTINCT ON (g.code) g.code, g.team_code, g.version_id
      FROM supervision_grids g
      JOIN grid_versions v ON v.district_code = g.district_code AND v.version_id = g.version_id
     WHERE g.district_code = :d AND v.effective_from IS NOT NULL AND g.team_code IS NOT NULL
     ORDER BY g.code, v.effective_from < :end DESC, g.version_id DESC"""


def _params(district: str, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    return {"d": district, "start": start, "end": end}


def _zeros(fields: tuple[str, ...]) -> str:
    return ", ".join(f"COALESCE({f}, 0) AS {f}" for f in fields)


def supervisors(conn: Connection, district: str, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    """Per supervisor account: its reports (and those accepted), its timed verifications and checks (and those
    on time), and the cases reported in the month in the grids its named person held then (and those it did
    not report itself); a SYNTHETIC stand-in (``SYNTHETIC_SUPERVISOR`` + grid code) holds its own grid for the
    synthetic cases. Name: the named person's, else the account name."""
    sql = f"""
WITH ev AS (
    SELECT e.actor AS code, e.case_id, e.action, e.at, e.due_at
      FROM case_events e
     WHERE e.district_code = :d AND e.at >= :start AND e.at < :end AND e.role = 'supervisor'
       AND e.action IN {_SUPERVISOR_ACTIONS}
), acts AS ({_ACT_COUNTS}
), slots AS MATERIALIZED (  -- a few hundred rows: joined to the month's cases by hash, not per person
    SELECT p.username, a.target_code, a.valid, false AS stand_in
      FROM person_assignments a
      JOIN people p ON p.district_code = a.district_code AND p.person_id = a.person_id
     WHERE a.district_code = :d AND a.role = 'supervisor' AND p.username IS NOT NULL
       AND a.valid && tstzrange(:start, :end)
    UNION ALL  -- the SYNTHETIC timelines' stand-in of one supervision grid holds that grid, for synthetic cases
    SELECT DISTINCT ev.code, substr(ev.code, length(:stand_in) + 1), tstzrange(NULL, NULL), true
      FROM ev WHERE starts_with(ev.code, :stand_in)
), held AS (
    SELECT s.username AS code, c.case_id, c.source,
           (SELECT r.actor FROM case_events r WHERE r.district_code = c.district_code AND r.case_id = c.case_id
               AND r.action = 'report' ORDER BY r.seq LIMIT 1) AS reporter
      FROM cases c
      JOIN slots s ON s.target_code = c.supervision_code AND s.valid @> c.reported_at
                  AND (c.synthetic OR NOT s.stand_in)
     WHERE c.district_code = :d AND c.reported_at >= :start AND c.reported_at < :end
), grids AS (
    SELECT code, count(DISTINCT case_id) AS grid_cases,
           count(DISTINCT case_id) FILTER (WHERE source <> 'supervisor' OR reporter IS DISTINCT FROM code)
               AS missed_cases
      FROM held GROUP BY code
)
SELECT COALESCE(acts.code, grids.code) AS code,
       COALESCE((SELECT p.name FROM people p WHERE p.district_code = :d
                    AND p.username = COALESCE(acts.code, grids.code)), COALESCE(acts.code, grids.code)) AS name,
       {_zeros(_ACT_FIELDS)}, {_zeros(("grid_cases", "missed_cases"))}
  FROM acts FULL JOIN grids ON grids.code = acts.code
 ORDER BY 1"""
    params = {**_params(district, start, end), "stand_in": SYNTHETIC_SUPERVISOR}
    return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]


def teams(conn: Connection, district: str, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    """Per team (of the newest grid version in force by the month's end): the supervisors' events of the month
    on cases of its grids, and the cases reported in the month there (and those a non-supervisor reported)."""
    sql = f"""
WITH sg AS ({_GRID_TEAMS}
), sup_ev AS MATERIALIZED (  -- each event's case looked up once by its key: a hash join reads every case
    SELECT e.case_id, e.action, e.at, e.due_at,
           (SELECT c.supervision_code FROM cases c
             WHERE c.district_code = e.district_code AND c.case_id = e.case_id) AS supervision_code
      FROM case_events e
     WHERE e.district_code = :d AND e.at >= :start AND e.at < :end AND e.role = 'supervisor'
       AND e.action IN {_SUPERVISOR_ACTIONS}
), ev AS (
    SELECT sg.team_code AS code, x.case_id, x.action, x.at, x.due_at
      FROM sup_ev x JOIN sg ON sg.code = x.supervision_code
), acts AS ({_ACT_COUNTS}
), grids AS (
    SELECT sg.team_code AS code, count(*) AS grid_cases,
           count(*) FILTER (WHERE c.source <> 'supervisor') AS missed_cases
      FROM cases c JOIN sg ON sg.code = c.supervision_code
     WHERE c.district_code = :d AND c.reported_at >= :start AND c.reported_at < :end
     GROUP BY 1
)
SELECT COALESCE(acts.code, grids.code) AS code,
       COALESCE((SELECT NULLIF(t.name, '') FROM supervision_teams t WHERE t.district_code = :d
                    AND t.code = COALESCE(acts.code, grids.code) ORDER BY t.version_id DESC LIMIT 1),
                COALESCE(acts.code, grids.code)) AS name,
       {_zeros(_ACT_FIELDS)}, {_zeros(("grid_cases", "missed_cases"))}
  FROM acts FULL JOIN grids ON grids.code = acts.code
 ORDER BY 1"""
    return [dict(r) for r in conn.execute(sa.text(sql), _params(district, start, end)).mappings()]


_UNIT_COUNTS = ("dispatches", "hand_backs", "feed_backs_due", "feed_backs_on_time", "checks", "check_fails")


def units(conn: Connection, district: str, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    """Per party (``case_events.party_code``): its disposal events of the month, the cases dispatched to it
    in the month (and those closed by the month's end), and its self-initiated fixes. Name and kind: the
    party's (``parties``). An event stored without a party (a bulk writer that gave none before the case named
    its party) counts for the party the case names now (``attrs.dispatched_to``)."""
    sql = """
WITH all_ev AS (
    SELECT COALESCE(e.party_code, (SELECT c.attrs -> 'dispatched_to' ->> 'code' FROM cases c
                                    WHERE c.district_code = e.district_code AND c.case_id = e.case_id)) AS code,
           e.case_id, e.action, e.at, e.due_at
      FROM case_events e
     WHERE e.district_code = :d AND e.at >= :start AND e.at < :end
       AND e.action IN ('dispatch', 'hand_back', 'feed_back', 'check_pass', 'check_fail', 'close')
), ev AS (
    SELECT * FROM all_ev WHERE code IS NOT NULL
), counts AS (
    SELECT code,
           count(*) FILTER (WHERE action = 'dispatch') AS dispatches,
           count(*) FILTER (WHERE action = 'hand_back') AS hand_backs,
           count(*) FILTER (WHERE action = 'feed_back' AND due_at IS NOT NULL) AS feed_backs_due,
           count(*) FILTER (WHERE action = 'feed_back' AND at <= due_at) AS feed_backs_on_time,
           count(*) FILTER (WHERE action IN ('check_pass', 'check_fail')) AS checks,
           count(*) FILTER (WHERE action = 'check_fail') AS check_fails
      FROM ev GROUP BY code
), per_case AS (
    SELECT code, case_id, bool_or(action = 'dispatch') AS dispatched, bool_or(action = 'close') AS closed
      FROM ev GROUP BY code, case_id
), cases_of AS (
    SELECT code, count(*) FILTER (WHERE dispatched) AS dispatched_cases,
           count(*) FILTER (WHERE dispatched AND closed) AS closed_cases
      FROM per_case GROUP BY code
), own AS (
    SELECT ev.code, count(DISTINCT ev.case_id) AS self_initiated_fixes
      FROM ev
      JOIN case_events r ON r.district_code = :d AND r.case_id = ev.case_id AND r.action = 'report'
      JOIN users u ON u.username = r.actor AND u.party_code = ev.code
     WHERE ev.action = 'close'
     GROUP BY ev.code
)
SELECT counts.*, cases_of.dispatched_cases, cases_of.closed_cases,
       COALESCE(own.self_initiated_fixes, 0) AS self_initiated_fixes,
       COALESCE(pa.name, counts.code) AS name, pa.kind AS party_kind
  FROM counts
  JOIN cases_of ON cases_of.code = counts.code
  LEFT JOIN own ON own.code = counts.code
  LEFT JOIN LATERAL (SELECT p.name, p.kind FROM parties p WHERE p.district_code = :d AND p.code = counts.code
                      ORDER BY p.party_id LIMIT 1) pa ON true
 ORDER BY counts.code"""
    return [dict(r) for r in conn.execute(sa.text(sql), _params(district, start, end)).mappings()]


AREA_COLUMNS = {"street": "street_code", "community": "community_code"}


def areas(conn: Connection, district: str, level: str, start: dt.datetime, end: dt.datetime, *,
          with_geometry: bool = False) -> list[dict[str, Any]]:
    """Per street or community (``level``) with cases or events in the month: its caseload, filed and closed
    cases, timed feedbacks (and those on time), callbacks (and those satisfied), area (km², deployment CRS: its
    polygon, else the sum of its unit grids) and the components currently in its unit grids. ``geometry``
    (GeoJSON, EPSG:4326, or None) with ``with_geometry``."""
    col = AREA_COLUMNS[level]  # a constant of this module, never input
    geometry = "ST_AsGeoJSON(ST_Transform(a.geom, 4326), 6)" if with_geometry else "NULL"
    sql = f"""
WITH c AS (  -- each case's own events read once, by its key
    SELECT c.case_id, c.{col} AS code, COALESCE(f.filed, false) AS filed, COALESCE(f.closed, false) AS closed
      FROM cases c
      LEFT JOIN LATERAL (SELECT bool_or(a.action = 'accept') AS filed, bool_or(a.action = 'close') AS closed
                           FROM case_events a
                          WHERE a.district_code = c.district_code AND a.case_id = c.case_id
                            AND a.action IN ('accept', 'close') AND a.at < :end) f ON true
     WHERE c.district_code = :d AND c.reported_at >= :start AND c.reported_at < :end AND c.{col} IS NOT NULL
), load AS (
    SELECT code, count(*) AS caseload, count(*) FILTER (WHERE filed) AS filed_cases,
           count(*) FILTER (WHERE filed AND closed) AS closed_cases
      FROM c GROUP BY code
), area_ev AS MATERIALIZED (  -- each event's case looked up once by its key (a hash join reads every case)
    SELECT e.action, e.at, e.due_at, e.to_status,
           (SELECT c.{col} FROM cases c WHERE c.district_code = e.district_code AND c.case_id = e.case_id) AS code
      FROM case_events e
     WHERE e.district_code = :d AND e.at >= :start AND e.at < :end AND e.action IN ('feed_back', 'callback')
), ev AS (
    SELECT code,
           count(*) FILTER (WHERE action = 'feed_back' AND due_at IS NOT NULL) AS feed_backs_due,
           count(*) FILTER (WHERE action = 'feed_back' AND at <= due_at) AS feed_backs_on_time,
           count(*) FILTER (WHERE action = 'callback') AS callbacks,
           count(*) FILTER (WHERE action = 'callback' AND to_status = 'evaluated') AS satisfied_callbacks
      FROM area_ev WHERE code IS NOT NULL
     GROUP BY 1
), v AS (
    SELECT version_id FROM grid_versions
     WHERE district_code = :d AND effective_from IS NOT NULL
     ORDER BY effective_from < :end DESC, version_id DESC LIMIT 1
), grid AS (
    SELECT g.{col} AS code, sum(g.area_m2) AS area_m2
      FROM unit_grids g JOIN v ON v.version_id = g.version_id
     WHERE g.district_code = :d GROUP BY 1
), per_grid AS (
    SELECT unit_grid_code, count(*) AS n FROM components
     WHERE district_code = :d AND valid_to IS NULL GROUP BY 1
), comp AS (
    SELECT g.{col} AS code, CAST(sum(k.n) AS bigint) AS components
      FROM per_grid k
      JOIN unit_grids g ON g.district_code = :d AND g.code = k.unit_grid_code
      JOIN v ON v.version_id = g.version_id
     GROUP BY 1
)
SELECT a.code, a.name, {_zeros(("caseload", "filed_cases", "closed_cases", "feed_backs_due",
                                 "feed_backs_on_time", "callbacks", "satisfied_callbacks", "components"))},
       COALESCE(ST_Area(a.geom), grid.area_m2) / 1e6 AS area_km2, {geometry} AS geometry
  FROM admin_areas a
  LEFT JOIN load ON load.code = a.code
  LEFT JOIN ev ON ev.code = a.code
  LEFT JOIN grid ON grid.code = a.code
  LEFT JOIN comp ON comp.code = a.code
 WHERE a.district_code = :d AND a.level = :level
   AND (load.code IS NOT NULL OR ev.code IS NOT NULL)
 ORDER BY a.code"""
    params = {**_params(district, start, end), "level": level}
    return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]


def counted_synthetic(conn: Connection, district: str, start: dt.datetime, end: dt.datetime) -> bool:
    """Whether any case the month's evaluation counts (reported in the month, or with an event in it) is
    synthetic."""
    return bool(conn.execute(sa.text("""
SELECT EXISTS (SELECT 1 FROM cases c WHERE c.district_code = :d AND c.synthetic
                  AND c.reported_at >= :start AND c.reported_at < :end)
    OR EXISTS (SELECT 1 FROM case_events e
                 JOIN cases c ON c.district_code = e.district_code AND c.case_id = e.case_id
                WHERE e.district_code = :d AND e.at >= :start AND e.at < :end AND c.synthetic)"""),
        _params(district, start, end)).scalar())


def district_name(conn: Connection, district: str) -> str | None:
    """The district's name, or None when there is no such district."""
    return conn.execute(sa.text("SELECT name FROM districts WHERE district_code = :d"), {"d": district}).scalar()
