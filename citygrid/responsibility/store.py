"""The responsibility package's SQL (bound parameters only), one block per part of #22."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from citygrid.spatial.store import current_version_sql

# --- ownership ---
# The derivation ``ownership.derive_default_ownership`` describes, as SQL. Parties it needs, as (district, kind,
# code, name, contact) rows; :enforcement_suffix, :enforcement_name and :supervision_prefix are its names.
_DERIVED_PARTIES = (
    """SELECT district_code, CASE level WHEN 'street' THEN 'street_office' ELSE 'community' END, code, name,
              'derived from administrative codes'
         FROM admin_areas WHERE district_code = :d""",
    """SELECT district_code, 'team', code || CAST(:enforcement_suffix AS text),
              regexp_replace(name, '办事处$', '') || CAST(:enforcement_name AS text),
              'derived: one enforcement team per street'
         FROM admin_areas WHERE district_code = :d AND level = 'street'""",
    """SELECT district_code, 'team', CAST(:supervision_prefix AS text) || code, name,
              'derived from the supervision partition'
         FROM supervision_teams WHERE district_code = :d AND version_id = :v""",
)

# Per role: the (party kind, party code) each unit grid ``u`` of the version answers to (ownership.py says why:
# management is the community committee, else the street office; responsibility defaults to management).
_MANAGEMENT_PARTY = """SELECT CASE WHEN u.community_code IS NULL THEN 'street_office' ELSE 'community' END AS kind,
                              coalesce(u.community_code, u.street_code) AS code"""
_ROLE_PARTY = {
    "management": _MANAGEMENT_PARTY,
    "responsibility": _MANAGEMENT_PARTY,
    "enforcement": "SELECT 'team' AS kind, u.street_code || CAST(:enforcement_suffix AS text) AS code",
    "supervision": """SELECT 'team' AS kind, CAST(:supervision_prefix AS text) || s.team_code AS code
                        FROM supervision_grids s
                       WHERE s.district_code = u.district_code AND s.version_id = u.version_id
                         AND s.code = u.supervision_code""",
}


def insert_derived_parties(conn: Connection, district: str, version_id: int, *, enforcement_suffix: str,
                           enforcement_name: str, supervision_prefix: str) -> None:
    """Add the parties the derived ownership of the version names (street offices, communities, a street's
    enforcement team: street code + ``enforcement_suffix``, street name + ``enforcement_name``; supervision
    teams: ``supervision_prefix`` + team code); parties already there stay as they are."""
    params = {"d": district, "v": version_id, "enforcement_suffix": enforcement_suffix,
              "enforcement_name": enforcement_name, "supervision_prefix": supervision_prefix}
    for select in _DERIVED_PARTIES:
        conn.execute(sa.text(f"""INSERT INTO parties (district_code, kind, code, name, contact) {select}
                                 ON CONFLICT (district_code, kind, code) DO NOTHING"""), params)


def close_open_ownership(conn: Connection, district: str, version_id: int, role: str, start: Any) -> None:
    """End at ``start`` (None: now) the open assignments in ``role`` of the version's unit grids that began
    before it."""
    conn.execute(sa.text(
        """UPDATE grid_ownership o
              SET valid = tstzrange(lower(o.valid), coalesce(CAST(:start AS timestamptz), now()))
             FROM unit_grids u
            WHERE o.district_code = :d AND o.grid_kind = 'unit' AND o.role = :role AND upper_inf(o.valid)
              AND u.district_code = o.district_code AND u.version_id = :v AND u.code = o.grid_code
              AND lower(o.valid) < coalesce(CAST(:start AS timestamptz), now())"""
    ), {"d": district, "v": version_id, "role": role, "start": start})


def assign_derived_owners(conn: Connection, district: str, version_id: int, role: str, start: Any, *,
                          enforcement_suffix: str, supervision_prefix: str) -> int:
    """Give each unit grid of the version without an owner in ``role`` from ``start`` (None: now) on its
    derived party (``_ROLE_PARTY``), open-ended and marked ``derived``; returns how many grids were assigned."""
    return conn.execute(sa.text(
        f"""INSERT INTO grid_ownership (district_code, grid_kind, grid_code, role, party_id, valid, derived)
            SELECT u.district_code, 'unit', u.code, :role, p.party_id,
                   tstzrange(coalesce(CAST(:start AS timestamptz), now()), NULL), true
              FROM unit_grids u
              CROSS JOIN LATERAL ({_ROLE_PARTY[role]}) wanted
              JOIN parties p ON p.district_code = u.district_code AND p.kind = wanted.kind
                            AND p.code = wanted.code
             WHERE u.district_code = :d AND u.version_id = :v
               AND NOT EXISTS (SELECT 1 FROM grid_ownership o WHERE o.district_code = u.district_code
                                 AND o.grid_kind = 'unit' AND o.grid_code = u.code AND o.role = :role
                                 AND o.valid && tstzrange(coalesce(CAST(:start AS timestamptz), now()), NULL))"""
    ), {"d": district, "v": version_id, "role": role, "start": start, "enforcement_suffix": enforcement_suffix,
        "supervision_prefix": supervision_prefix}).rowcount


def owned_roles(conn: Connection, district: str) -> set[str]:
    """The roles some unit grid of the district has ever had an owner in."""
    return set(conn.execute(sa.text(
        "SELECT DISTINCT role FROM grid_ownership WHERE district_code = :d AND grid_kind = 'unit'"),
        {"d": district}).scalars())


def unit_grid_codes(conn: Connection, district: str, version_id: int) -> set[str]:
    """The unit-grid codes of a grid version."""
    return set(conn.execute(sa.text("SELECT code FROM unit_grids WHERE district_code = :d AND version_id = :v"),
                            {"d": district, "v": version_id}).scalars())


def unit_grid_shapes(conn: Connection, district: str, version_id: int) -> list[tuple[str, bytes]]:
    """(code, WKB of the polygon in the storage CRS, ``spatial.db.deployment_srid``) of each unit grid of a
    version, in code order."""
    rows = conn.execute(sa.text(
        """SELECT code, ST_AsBinary(geom) FROM unit_grids WHERE district_code = :d AND version_id = :v
            ORDER BY code"""), {"d": district, "v": version_id}).all()
    return [(code, bytes(wkb)) for code, wkb in rows]


def unit_grid_issued(conn: Connection, district: str, code: str) -> bool:
    """Whether ``code`` was ever issued as a unit grid of ``district`` (retired codes included)."""
    return conn.execute(sa.text(
        "SELECT EXISTS (SELECT 1 FROM grid_codes WHERE district_code = :d AND kind = 'unit' AND code = :c)"),
        {"d": district, "c": code}).scalar_one()


def parties_by_key(conn: Connection, district: str, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str],
                                                                                           dict[str, Any]]:
    """The stored parties among ``keys`` ((kind, code) pairs) as {(kind, code): {party_id, name, contact}}."""
    if not keys:
        return {}
    rows = conn.execute(sa.text(
        """SELECT p.kind, p.code, p.party_id, p.name, p.contact FROM parties p
             JOIN unnest(CAST(:kinds AS text[]), CAST(:codes AS text[])) k(kind, code)
               ON k.kind = p.kind AND k.code = p.code
            WHERE p.district_code = :d"""),
        {"d": district, "kinds": [k for k, _ in keys], "codes": [c for _, c in keys]}).mappings()
    return {(r["kind"], r["code"]): {"party_id": r["party_id"], "name": r["name"], "contact": r["contact"]}
            for r in rows}


def insert_party(conn: Connection, district: str, kind: str, code: str, name: str, contact: str) -> int:
    """A new party; returns its id (the caller has checked that (kind, code) is not stored)."""
    return conn.execute(sa.text(
        """INSERT INTO parties (district_code, kind, code, name, contact) VALUES (:d, :kind, :code, :name, :contact)
           RETURNING party_id"""), {"d": district, "kind": kind, "code": code, "name": name, "contact": contact}
    ).scalar_one()


def insert_ownership_import(conn: Connection, district: str, *, role: str, valid_from: Any, file_name: str,
                            source: str, licence: str) -> int:
    """Record an ownership import (the actor from the transaction's ``citygrid.actor``); returns its id."""
    return conn.execute(sa.text(
        """INSERT INTO ownership_imports (district_code, role, valid_from, file_name, source, licence, imported_by)
           VALUES (:d, :role, :start, :file, :source, :licence,
                   coalesce(nullif(current_setting('citygrid.actor', true), ''), 'db:' || session_user))
           RETURNING import_id"""),
        {"d": district, "role": role, "start": valid_from, "file": file_name, "source": source,
         "licence": licence}).scalar_one()


def set_import_counts(conn: Connection, district: str, import_id: int, counts: dict[str, int]) -> None:
    """Store an ownership import's counts (JSON)."""
    conn.execute(sa.text(
        "UPDATE ownership_imports SET counts = CAST(:counts AS jsonb) WHERE district_code = :d AND import_id = :i"),
        {"d": district, "i": import_id, "counts": json.dumps(counts)})


def assignments_around(conn: Connection, district: str, role: str, codes: Sequence[str],
                       start: Any) -> dict[str, dict[str, Any]]:
    """Per unit-grid code of ``codes``: the assignment in ``role`` in force at ``start`` (``ownership_id``,
    ``party_id``, ``lower``, ``upper``; None where there is none), ``next_lower``, the start of the first
    assignment from a city's list (not derived) after ``start`` (None where there is none), and ``superseded``,
    the ids of the derived assignments that begin between the two (a list from ``start`` replaces them)."""
    rows = conn.execute(sa.text(
        """WITH around AS (
               SELECT c.code,
                      cur.ownership_id, cur.party_id, lower(cur.valid) AS lower, upper(cur.valid) AS upper,
                      (SELECT min(lower(n.valid)) FROM grid_ownership n
                        WHERE n.district_code = :d AND n.grid_kind = 'unit' AND n.grid_code = c.code
                          AND n.role = :role AND lower(n.valid) > :start AND NOT n.derived) AS next_lower
                 FROM unnest(CAST(:codes AS text[])) c(code)
                 LEFT JOIN grid_ownership cur ON cur.district_code = :d AND cur.grid_kind = 'unit'
                                             AND cur.grid_code = c.code AND cur.role = :role
                                             AND cur.valid @> CAST(:start AS timestamptz))
           SELECT a.*, ARRAY(SELECT s.ownership_id FROM grid_ownership s
                              WHERE s.district_code = :d AND s.grid_kind = 'unit' AND s.grid_code = a.code
                                AND s.role = :role AND s.derived AND lower(s.valid) > :start
                                AND (a.next_lower IS NULL OR lower(s.valid) < a.next_lower)) AS superseded
             FROM around a"""),
        {"d": district, "role": role, "codes": list(codes), "start": start}).mappings()
    return {r["code"]: dict(r) for r in rows}


def end_assignment(conn: Connection, district: str, ownership_id: int, end: Any) -> None:
    """End an assignment at ``end`` (which is after its start)."""
    conn.execute(sa.text(
        """UPDATE grid_ownership SET valid = tstzrange(lower(valid), CAST(:end AS timestamptz))
            WHERE district_code = :d AND ownership_id = :id"""), {"d": district, "id": ownership_id, "end": end})


def delete_assignment(conn: Connection, district: str, ownership_id: int) -> None:
    """Remove an assignment (one that began at the very instant a new list replaces it)."""
    conn.execute(sa.text("DELETE FROM grid_ownership WHERE district_code = :d AND ownership_id = :id"),
                 {"d": district, "id": ownership_id})


def insert_ownership_rows(conn: Connection, district: str, role: str, import_id: int,
                          rows: Sequence[tuple[str, int, Any, Any]]) -> None:
    """Assignments of unit grids in ``role`` from an import: (grid code, party id, start, end or None) each."""
    if rows:
        conn.execute(sa.text(
            """INSERT INTO grid_ownership (district_code, grid_kind, grid_code, role, party_id, valid, import_id)
               VALUES (:d, 'unit', :code, :role, :party, tstzrange(:start, :end), :import_id)"""),
            [{"d": district, "role": role, "import_id": import_id, "code": code, "party": party, "start": start,
              "end": end} for code, party, start, end in rows])


def owners_during(conn: Connection, district: str, code: str, start: Any, end: Any) -> list[dict[str, Any]]:
    """Per role, the assignment of unit grid ``code`` in force last in [``start``, ``end``) — the latest to
    begin of those overlapping it — with its party: role, kind, code, name, contact, derived, valid_from,
    valid_to (None: open), import_id."""
    rows = conn.execute(sa.text(
        """SELECT DISTINCT ON (o.role) o.role, p.kind, p.code, p.name, p.contact, o.derived,
                  lower(o.valid) AS valid_from, upper(o.valid) AS valid_to, o.import_id
             FROM grid_ownership o
             JOIN parties p ON p.district_code = o.district_code AND p.party_id = o.party_id
            WHERE o.district_code = :d AND o.grid_kind = 'unit' AND o.grid_code = :code
              AND o.valid && tstzrange(:start, :end)
            ORDER BY o.role, lower(o.valid) DESC"""),
        {"d": district, "code": code, "start": start, "end": end}).mappings()
    return [dict(r) for r in rows]


# --- people ---
_PERSON = "p.person_id, p.district_code, p.name, p.role, p.phone, p.username, p.source, p.synthetic"
# The slot a named person's assignment fills, joined to what it names (a current supervision grid, team or
# community, or a party), for the reads below.
_SLOT_TARGET = """CASE a.role WHEN 'supervisor' THEN 'supervision' WHEN 'team_leader' THEN 'team'
                              WHEN 'unit_contact' THEN 'party' ELSE 'community' END"""


def person(conn: Connection, district: str, person_id: int) -> dict[str, Any] | None:
    """The person ``person_id`` of ``district``, or None."""
    row = conn.execute(sa.text(f"SELECT {_PERSON} FROM people p WHERE p.district_code = :d AND p.person_id = :id"),
                       {"d": district, "id": person_id}).mappings().first()
    return dict(row) if row else None


def people_by_ids(conn: Connection, district: str, person_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The people of ``district`` among ``person_ids``, by id."""
    rows = conn.execute(sa.text(
        f"SELECT {_PERSON} FROM people p WHERE p.district_code = :d AND p.person_id = ANY(:ids)"),
        {"d": district, "ids": person_ids}).mappings()
    return {r["person_id"]: dict(r) for r in rows}


def person_by_key(conn: Connection, district: str, username: str | None, name: str,
                  phone: str) -> dict[str, Any] | None:
    """The person of ``district`` with account ``username`` (when given), else the one with ``name`` and
    ``phone``; None when there is none."""
    row = conn.execute(sa.text(
        f"""SELECT {_PERSON} FROM people p WHERE p.district_code = :d
               AND (p.username = CAST(:u AS text) OR p.name = :n AND p.phone = :ph)
             ORDER BY p.username = CAST(:u AS text) DESC NULLS LAST LIMIT 1"""),
        {"d": district, "u": username, "n": name, "ph": phone}).mappings().first()
    return dict(row) if row else None


def assignment_exists(conn: Connection, district: str, *, person_id: int, role: str, target_code: str,
                      position: str, at: Any) -> bool:
    """Whether exactly this assignment (person, slot, start) is recorded."""
    return conn.execute(sa.text(
        """SELECT EXISTS (SELECT 1 FROM person_assignments WHERE district_code = :d AND person_id = :p
                             AND role = :r AND target_code = :t AND position = :pos AND lower(valid) = :at)"""),
        {"d": district, "p": person_id, "r": role, "t": target_code, "pos": position, "at": at}).scalar_one()


def insert_person(conn: Connection, district: str, *, name: str, role: str, phone: str, username: str | None,
                  source: str, synthetic: bool) -> dict[str, Any]:
    row = conn.execute(sa.text(
        f"""INSERT INTO people AS p (district_code, name, role, phone, username, source, synthetic)
            VALUES (:d, :name, :role, :phone, :username, :source, :synthetic) RETURNING {_PERSON}"""),
        {"d": district, "name": name, "role": role, "phone": phone, "username": username, "source": source,
         "synthetic": synthetic}).mappings().one()
    return dict(row)


def insert_people(conn: Connection, district: str, rows: list[dict[str, Any]], *, source: str,
                  synthetic: bool) -> list[int]:
    """Insert many people at once (``name``, ``role``, ``phone``, ``username`` each); their ids in order."""
    return list(conn.execute(sa.text(
        """INSERT INTO people (district_code, name, role, phone, username, source, synthetic)
           SELECT :d, r.name, r.role, coalesce(r.phone, ''), r.username, :source, :synthetic
             FROM ROWS FROM (jsonb_to_recordset(CAST(:rows AS jsonb))
                             AS (name text, role text, phone text, username text))
                  WITH ORDINALITY AS r(name, role, phone, username, n)
            ORDER BY r.n
           RETURNING person_id"""),
        {"d": district, "rows": json.dumps(rows, ensure_ascii=False), "source": source,
         "synthetic": synthetic}).scalars())


def update_person(conn: Connection, district: str, person_id: int, *, name: str, phone: str,
                  username: str | None) -> None:
    conn.execute(sa.text(
        """UPDATE people SET name = :name, phone = :phone, username = coalesce(:username, username)
            WHERE district_code = :d AND person_id = :id"""),
        {"d": district, "id": person_id, "name": name, "phone": phone, "username": username})


def account_roles(conn: Connection, username: str) -> list[str] | None:
    """The roles of account ``username`` (``users``), or None when there is no such account."""
    row = conn.execute(sa.text("SELECT roles FROM users WHERE username = :u"), {"u": username}).first()
    return list(row[0]) if row else None


def account_people(conn: Connection, username: str) -> list[dict[str, Any]]:
    """The people (of any district) whose account is ``username``, with the roles of the slots they hold now
    or later (``slots``)."""
    rows = conn.execute(sa.text(
        f"""SELECT {_PERSON}, coalesce(array_agg(DISTINCT a.role) FILTER (WHERE a.role IS NOT NULL), '{{}}') AS slots
              FROM people p
              LEFT JOIN person_assignments a ON a.district_code = p.district_code AND a.person_id = p.person_id
                                            AND (upper_inf(a.valid) OR upper(a.valid) > now())
             WHERE p.username = :u GROUP BY p.district_code, p.person_id ORDER BY p.district_code, p.person_id"""),
        {"u": username}).mappings()
    return [dict(r) for r in rows]


def slot_target_exists(conn: Connection, district: str, role: str, code: str) -> bool:
    """Whether the slot's target exists in ``district``: a supervision grid or team of the current grid
    version (``supervisor``, ``team_leader``), a community (``enforcement_officer``, ``community_head``), a
    party (``unit_contact``)."""
    return conn.execute(sa.text(
        f"""SELECT CASE
             WHEN :role = 'supervisor' THEN EXISTS (
                 SELECT 1 FROM supervision_grids s WHERE s.district_code = :d AND s.code = :c
                    AND s.version_id = {current_version_sql(':d')})
             WHEN :role = 'team_leader' THEN EXISTS (
                 SELECT 1 FROM supervision_teams t WHERE t.district_code = :d AND t.code = :c
                    AND t.version_id = {current_version_sql(':d')})
             WHEN :role = 'unit_contact' THEN EXISTS (
                 SELECT 1 FROM parties y WHERE y.district_code = :d AND y.code = :c)
             ELSE EXISTS (SELECT 1 FROM admin_areas a WHERE a.district_code = :d AND a.code = :c
                             AND a.level = 'community') END"""),
        {"d": district, "role": role, "c": code}).scalar_one()


# The assignments in any of :slots (a supervisor's slot is its person_id; every other slot, or every supervisor of a
# grid, is role + target_code + position), as two equality joins the planner can hash (a rotation's thousands).
_IN_SLOTS = """
    WITH s AS (SELECT * FROM jsonb_to_recordset(CAST(:slots AS jsonb))
                             AS s(role text, target_code text, position text, person_id bigint))
    SELECT a.assignment_id FROM person_assignments a JOIN s ON a.role = s.role AND a.person_id = s.person_id
     WHERE a.district_code = :d AND s.person_id IS NOT NULL
    UNION
    SELECT a.assignment_id FROM person_assignments a
      JOIN s ON a.role = s.role AND a.target_code = s.target_code AND a.position = coalesce(s.position, '')
     WHERE a.district_code = :d AND s.person_id IS NULL"""


def later_assignments(conn: Connection, district: str, *, slots: list[dict[str, Any]], at: Any) -> list[dict[str, Any]]:
    """Assignments starting at or after ``at`` in any of ``slots`` (``role``, ``target_code``, ``position``;
    a supervisor's slot is its ``person_id``, or ``target_code`` for every supervisor of that grid)."""
    rows = conn.execute(sa.text(
        f"""SELECT a.assignment_id, a.person_id, a.role, a.target_code, a.position, lower(a.valid) AS valid_from
              FROM person_assignments a
             WHERE a.district_code = :d AND lower(a.valid) >= :at AND a.assignment_id IN ({_IN_SLOTS})
             ORDER BY a.assignment_id"""),
        {"d": district, "slots": json.dumps(slots, ensure_ascii=False), "at": at}).mappings()
    return [dict(r) for r in rows]


def delete_assignments(conn: Connection, district: str, assignment_ids: list[int]) -> int:
    return conn.execute(sa.text(
        "DELETE FROM person_assignments WHERE district_code = :d AND assignment_id = ANY(:ids)"),
        {"d": district, "ids": assignment_ids}).rowcount


def close_slots(conn: Connection, district: str, *, slots: list[dict[str, Any]], at: Any) -> int:
    """End at ``at`` the assignments running then in any of ``slots`` (as ``later_assignments`` reads them);
    returns how many were closed."""
    return conn.execute(sa.text(
        f"""UPDATE person_assignments a SET valid = tstzrange(lower(a.valid), :at)
             WHERE a.district_code = :d AND a.valid @> CAST(:at AS timestamptz) AND lower(a.valid) < :at
               AND a.assignment_id IN ({_IN_SLOTS})"""),
        {"d": district, "slots": json.dumps(slots, ensure_ascii=False), "at": at}).rowcount


def insert_assignments(conn: Connection, district: str, rows: list[dict[str, Any]], *, at: Any, source: str) -> int:
    """Open assignments from ``at`` (each ``person_id``, ``role``, ``target_code``, ``position``)."""
    return conn.execute(sa.text(
        """INSERT INTO person_assignments (district_code, person_id, role, target_code, position, valid, source)
           SELECT :d, r.person_id, r.role, r.target_code, coalesce(r.position, ''), tstzrange(:at, NULL), :source
             FROM jsonb_to_recordset(CAST(:rows AS jsonb))
                  AS r(person_id bigint, role text, target_code text, position text)"""),
        {"d": district, "rows": json.dumps(rows, ensure_ascii=False), "at": at, "source": source}).rowcount


def people_page(conn: Connection, district: str, role: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
    """People of ``district`` (of ``role`` when given) in name order, each with the slots they hold now
    (``assignments``: role, target code, position, since)."""
    rows = conn.execute(sa.text(
        f"""SELECT {_PERSON},
                   coalesce((SELECT jsonb_agg(jsonb_build_object('role', a.role, 'target', {_SLOT_TARGET},
                                                                 'code', a.target_code, 'position', a.position,
                                                                 'since', lower(a.valid))
                                              ORDER BY a.role, a.target_code)
                               FROM person_assignments a
                              WHERE a.district_code = p.district_code AND a.person_id = p.person_id
                                AND a.valid @> now()), '[]') AS assignments
              FROM people p
             WHERE p.district_code = :d AND (CAST(:role AS text) IS NULL OR p.role = :role)
             ORDER BY p.name, p.person_id LIMIT :limit OFFSET :offset"""),
        {"d": district, "role": role, "limit": limit, "offset": offset}).mappings()
    return [dict(r) for r in rows]


def grid_people(conn: Connection, district: str, grid_code: str, at: Any) -> list[dict[str, Any]]:
    """The people holding a slot of unit grid ``grid_code`` at instant ``at``: the supervisors of its
    supervision grid and the leader of that grid's team (in the grid version current at ``at``), the
    enforcement officers and the responsible person of its community, and the contact of the party that is
    its responsibility subject at ``at``; each with ``role``, ``position``, ``code`` (the slot's target)."""
    rows = conn.execute(sa.text(
        f"""WITH grid AS (
                SELECT u.supervision_code, u.community_code, s.team_code
                  FROM unit_grids u
                  JOIN grid_versions v ON v.district_code = u.district_code AND v.version_id = u.version_id
                  LEFT JOIN supervision_grids s ON s.district_code = u.district_code
                                               AND s.version_id = u.version_id AND s.code = u.supervision_code
                 WHERE u.district_code = :d AND u.code = :g
                 ORDER BY coalesce(v.status = 'published' AND v.effective_from <= :at
                                   AND (v.effective_to IS NULL OR v.effective_to > :at), false) DESC,
                          (v.status = 'published') DESC, v.version_id DESC
                 LIMIT 1),
            responsible AS (
                SELECT y.code FROM grid_ownership o
                  JOIN parties y ON y.district_code = o.district_code AND y.party_id = o.party_id
                 WHERE o.district_code = :d AND o.grid_kind = 'unit' AND o.grid_code = :g
                   AND o.role = 'responsibility' AND o.valid @> CAST(:at AS timestamptz))
            SELECT a.role, a.position, a.target_code AS code, {_SLOT_TARGET} AS target, lower(a.valid) AS since,
                   p.person_id, p.name, p.phone, p.synthetic
              FROM grid
              JOIN person_assignments a ON a.district_code = :d
              JOIN people p ON p.district_code = a.district_code AND p.person_id = a.person_id
             WHERE a.valid @> CAST(:at AS timestamptz)
               AND (a.role = 'supervisor' AND a.target_code = grid.supervision_code
                    OR a.role = 'team_leader' AND a.target_code = grid.team_code
                    OR a.role IN ('enforcement_officer', 'community_head') AND a.target_code = grid.community_code
                    OR a.role = 'unit_contact' AND a.target_code IN (SELECT code FROM responsible))
             ORDER BY a.role, a.position DESC, p.name, p.person_id"""),
        {"d": district, "g": grid_code, "at": at}).mappings()
    return [dict(r) for r in rows]


# --- frontage ---
# Frontage units (门前三包): ``frontage_units`` rows, their parties, and the reads of the registry. Geometry is
# stored in the deployment's SRID (``deployment.srid``) and answered as GeoJSON in EPSG:4326. A unit is current on
# a local day D when valid_from <= D < valid_to (NULL: open); sessions run in the deployment's zone, so
# ``CAST(t AS date)`` of an instant is its local day.
_FRONTAGE_COLUMNS = ("name", "kind", "credit_code", "registry_id", "contact_person", "contact_phone", "address",
                     "valid_from", "valid_to", "synthetic", "source", "licence")
_FRONTAGE_FIELDS = """f.unit_id, f.district_code, f.name, f.kind, f.credit_code, f.registry_id, f.contact_person,
       f.contact_phone, f.address, f.valid_from, f.valid_to, f.synthetic, f.source, f.licence, f.updated_at,
       p.code AS party_code, p.kind AS party_kind, f.party_id, round(CAST(ST_Area(f.geom) AS numeric), 1)::float8
       AS area_m2"""
_FRONTAGE_CURRENT = "f.valid_from <= CAST(:day AS date) AND (f.valid_to IS NULL OR f.valid_to > CAST(:day AS date))"
_FRONTAGE_CURRENT_AT = _FRONTAGE_CURRENT.replace("CAST(:day AS date)",
                                                 "CAST(coalesce(CAST(:at AS timestamptz), now()) AS date)")

# ``frontage_unit_at`` of case ``c``'s stored point on the local day it was reported, as the party a dispatch
# names (JSON ``code``, ``name``, ``kind``, ``unit_id``; NULL where no frontage covers it), for a statement that
# reads a page of cases and wants their frontage units with the rows (the desk's dispatch queue).
CASE_FRONTAGE_SQL = f"""(SELECT jsonb_build_object('code', p.code, 'name', p.name, 'kind', p.kind, 'unit_id', f.unit_id)
      FROM frontage_units f JOIN parties p ON p.district_code = f.district_code AND p.party_id = f.party_id
     WHERE f.district_code = c.district_code AND ST_Covers(f.geom, c.geom)
       AND {_FRONTAGE_CURRENT.replace("CAST(:day AS date)", "CAST(coalesce(c.reported_at, now()) AS date)")}
     ORDER BY ST_Area(f.geom), f.unit_id LIMIT 1)"""


def frontage_unit_count(conn: Connection, district: str) -> int:
    """How many frontage units the district has (any validity)."""
    return conn.execute(sa.text("SELECT count(*) FROM frontage_units WHERE district_code = :d"),
                        {"d": district}).scalar_one()


def frontage_unit_by_key(conn: Connection, district: str, credit_code: str | None, registry_id: str | None
                         ) -> dict[str, Any] | None:
    """``unit_id`` and ``party_id`` of the district's unit with this credit code (else registry id)."""
    row = conn.execute(sa.text(
        """SELECT unit_id, party_id FROM frontage_units
            WHERE district_code = :d AND (credit_code = :c OR (CAST(:c AS text) IS NULL AND registry_id = :r))"""),
        {"d": district, "c": credit_code, "r": registry_id}).mappings().first()
    return dict(row) if row else None


def insert_frontage_party(conn: Connection, district: str, kind: str, code: str, name: str, contact: str) -> int:
    """The party of a new unit (kind ``frontage_unit`` or ``property_company``); an existing party of the same
    kind and code is reused and renamed."""
    return conn.execute(sa.text(
        """INSERT INTO parties (district_code, kind, code, name, contact) VALUES (:d, :k, :c, :n, :contact)
           ON CONFLICT (district_code, kind, code) DO UPDATE SET name = EXCLUDED.name, contact = EXCLUDED.contact
           RETURNING party_id"""), {"d": district, "k": kind, "c": code, "n": name, "contact": contact}).scalar_one()


def update_frontage_party(conn: Connection, district: str, party_id: int, kind: str, name: str,
                          contact: str | None) -> None:
    """Rename (and re-kind) a unit's party; ``contact`` None keeps it."""
    conn.execute(sa.text(
        """UPDATE parties SET kind = :k, name = :n, contact = coalesce(CAST(:contact AS text), contact)
            WHERE district_code = :d AND party_id = :p"""),
        {"d": district, "p": party_id, "k": kind, "n": name, "contact": contact})


def insert_frontage_unit(conn: Connection, district: str, party_id: int, values: dict[str, Any]) -> int:
    """Insert a unit (``values``: the columns of ``_FRONTAGE_COLUMNS`` and ``geom`` as WKB in the deployment's
    SRID); returns its ``unit_id``."""
    columns = [c for c in _FRONTAGE_COLUMNS if c in values]
    return conn.execute(sa.text(
        f"""INSERT INTO frontage_units (district_code, party_id, {", ".join(columns)}, geom)
            VALUES (:district, :party, {", ".join(f":{c}" for c in columns)},
                    ST_Multi(ST_GeomFromWKB(:geom, (SELECT srid FROM deployment))))
            RETURNING unit_id"""),
        {**{c: values[c] for c in columns}, "district": district, "party": party_id, "geom": values["geom"]}
    ).scalar_one()


def update_frontage_unit(conn: Connection, district: str, unit_id: int, values: dict[str, Any]) -> None:
    """Set the given columns (names from ``_FRONTAGE_COLUMNS`` only; ``geom`` as WKB in the deployment's SRID)."""
    columns = [c for c in _FRONTAGE_COLUMNS if c in values]
    sets = [f"{c} = :{c}" for c in columns]
    if "geom" in values:
        sets.append("geom = ST_Multi(ST_GeomFromWKB(:geom, (SELECT srid FROM deployment)))")
    if not sets:
        return
    conn.execute(sa.text(
        f"""UPDATE frontage_units SET {", ".join(sets)}, updated_at = now()
             WHERE district_code = :district AND unit_id = :unit"""),
        {**{c: values[c] for c in columns}, "geom": values.get("geom"), "district": district, "unit": unit_id})


def frontage_unit(conn: Connection, unit_id: int) -> dict[str, Any] | None:
    """One unit with its party and its frontage as GeoJSON (EPSG:4326); None for an id no bigint holds."""
    if not 0 < unit_id < 2**63:
        return None
    row = conn.execute(sa.text(
        f"""SELECT {_FRONTAGE_FIELDS}, CAST(ST_AsGeoJSON(ST_Transform(f.geom, 4326), 7) AS json) AS geometry
              FROM frontage_units f JOIN parties p ON p.district_code = f.district_code AND p.party_id = f.party_id
             WHERE f.unit_id = :u"""), {"u": unit_id}).mappings().first()
    return dict(row) if row else None


def frontage_units(conn: Connection, *, districts: list[str] | None, bbox: tuple[float, float, float, float] | None,
                   day: Any, current_only: bool, party: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
    """Units of ``districts`` (None: all) whose frontage meets ``bbox`` (EPSG:4326, exact), current on local
    ``day`` when ``current_only``, of party code ``party`` when given; in unit id order, a page."""
    rows = conn.execute(sa.text(
        f"""SELECT {_FRONTAGE_FIELDS}, CAST(ST_AsGeoJSON(ST_Transform(f.geom, 4326), 7) AS json) AS geometry
              FROM frontage_units f JOIN parties p ON p.district_code = f.district_code AND p.party_id = f.party_id
             WHERE (CAST(:districts AS text[]) IS NULL OR f.district_code = ANY(CAST(:districts AS text[])))
               AND (CAST(:party AS text) IS NULL OR p.code = :party)
               AND (NOT CAST(:current AS boolean) OR ({_FRONTAGE_CURRENT}))
               AND (CAST(:w AS float8) IS NULL OR (
                    f.geom && ST_Transform(ST_MakeEnvelope(:w, :s, :e, :n, 4326), (SELECT srid FROM deployment))
                    AND ST_Intersects(ST_Transform(f.geom, 4326), ST_MakeEnvelope(:w, :s, :e, :n, 4326))))
             ORDER BY f.unit_id LIMIT :limit OFFSET :offset"""),
        {"districts": districts, "party": party, "current": current_only, "day": day, "limit": limit,
         "offset": offset, **dict(zip("wsen", bbox or (None,) * 4, strict=True))}).mappings()
    return [dict(r) for r in rows]


def frontage_unit_at(conn: Connection, district: str, wkb: bytes, srid: int, at: Any) -> dict[str, Any] | None:
    """The unit of ``district`` whose frontage covers the point (WKB in EPSG ``srid``) on the local day of
    instant ``at`` (None: now): the smallest frontage where several overlap, then the lowest id."""
    row = conn.execute(sa.text(
        f"""SELECT f.unit_id, f.name, f.kind, f.credit_code, f.registry_id, f.synthetic, p.code, p.name AS party_name,
                   p.kind AS party_kind
              FROM frontage_units f JOIN parties p ON p.district_code = f.district_code AND p.party_id = f.party_id
             WHERE f.district_code = :d AND ST_Covers(f.geom, ST_GeomFromWKB(:wkb, :srid))
               AND {_FRONTAGE_CURRENT_AT}
             ORDER BY ST_Area(f.geom), f.unit_id LIMIT 1"""),
        {"d": district, "wkb": wkb, "srid": srid, "at": at}).mappings().first()
    return dict(row) if row else None


def frontage_units_at_many(conn: Connection, points: list[tuple[str, bytes, Any]], srid: int
                           ) -> list[dict[str, Any] | None]:
    """``frontage_unit_at`` of each (district, point WKB in EPSG ``srid``, instant) of ``points`` in one query
    (a page of cases), in their order; None where no frontage covers the point."""
    found: list[dict[str, Any] | None] = [None] * len(points)
    if not points:
        return found
    current = _FRONTAGE_CURRENT_AT.replace("CAST(:at AS timestamptz)", "k.at")
    rows = conn.execute(sa.text(
        f"""SELECT k.i, u.* FROM unnest(CAST(:i AS int[]), CAST(:d AS text[]), CAST(:wkb AS bytea[]),
                                       CAST(:at AS timestamptz[])) AS k(i, district, wkb, at)
             CROSS JOIN LATERAL (
                 SELECT f.unit_id, f.name, f.kind, f.credit_code, f.registry_id, f.synthetic, p.code,
                        p.name AS party_name, p.kind AS party_kind
                   FROM frontage_units f
                   JOIN parties p ON p.district_code = f.district_code AND p.party_id = f.party_id
                  WHERE f.district_code = k.district AND ST_Covers(f.geom, ST_GeomFromWKB(k.wkb, :srid))
                    AND {current}
                  ORDER BY ST_Area(f.geom), f.unit_id LIMIT 1) u"""),
        {"i": list(range(len(points))), "d": [d for d, _, _ in points], "wkb": [w for _, w, _ in points],
         "at": [at for _, _, at in points], "srid": srid}).mappings()
    for row in rows:
        found[row["i"]] = {k: v for k, v in row.items() if k != "i"}
    return found


def frontage_units_in_grid(conn: Connection, district: str, version_id: int, grid_code: str, day: Any
                           ) -> list[dict[str, Any]]:
    """The units current on local ``day`` whose frontage meets unit grid ``grid_code`` of version ``version_id``
    (name order)."""
    rows = conn.execute(sa.text(
        f"""SELECT f.unit_id, f.name, f.kind, f.credit_code, f.registry_id, f.contact_person, f.contact_phone,
                   f.synthetic, p.code AS party_code
              FROM frontage_units f
              JOIN parties p ON p.district_code = f.district_code AND p.party_id = f.party_id
              JOIN unit_grids u ON u.district_code = f.district_code AND u.version_id = :v AND u.code = :g
             WHERE f.district_code = :d AND f.geom && u.geom AND ST_Intersects(f.geom, u.geom)
               AND {_FRONTAGE_CURRENT}
             ORDER BY f.name, f.unit_id"""), {"d": district, "v": version_id, "g": grid_code, "day": day}).mappings()
    return [dict(r) for r in rows]


# --- rotation ---
def rotation_grids(conn: Connection, district: str) -> tuple[int | None, list[dict[str, Any]]]:
    """The current published grid version of ``district`` and its supervision grids: code, team_code, workload
    (None where the partition left none), supervisors_required (None: the default staffing)."""
    version = conn.execute(sa.text(
        "SELECT max(version_id) FROM grid_versions WHERE district_code = :d AND status = 'published'"),
        {"d": district}).scalar()
    if version is None:
        return None, []
    rows = conn.execute(sa.text(
        """SELECT code, team_code, workload, supervisors_required FROM supervision_grids
            WHERE district_code = :d AND version_id = :v ORDER BY code"""), {"d": district, "v": version})
    return version, [dict(r._mapping) for r in rows]


def set_supervisors_required(conn: Connection, district: str, version_id: int, required: dict[str, int | None]
                             ) -> int:
    """Set the required number of supervisors of the version's supervision grids named in ``required`` (None:
    back to the default staffing); returns the grids changed."""
    if not required:
        return 0
    result = conn.execute(sa.text(
        """UPDATE supervision_grids SET supervisors_required = :n
            WHERE district_code = :d AND version_id = :v AND code = :code"""),
        [{"d": district, "v": version_id, "code": code, "n": n} for code, n in required.items()])
    return result.rowcount


def rotation_roster(conn: Connection, district: str, version_id: int, at: Any) -> list[dict[str, Any]]:
    """The district's people of role supervisor holding a supervision grid of ``version_id`` at instant ``at``:
    person_id, name, team_code (their grid's team), leader (they lead that team at ``at``) and recent (the
    supervision grids they held, newest first, up to 12, the running one included)."""
    rows = conn.execute(sa.text(
        """SELECT p.person_id, p.name, s.team_code,
                  EXISTS (SELECT 1 FROM person_assignments l
                           WHERE l.district_code = p.district_code AND l.person_id = p.person_id
                             AND l.role = 'team_leader' AND l.target_code = s.team_code AND l.valid @> :at) AS leader,
                  ARRAY(SELECT h.target_code FROM person_assignments h
                         WHERE h.district_code = p.district_code AND h.person_id = p.person_id
                           AND h.role = 'supervisor' AND lower(h.valid) <= :at
                         ORDER BY lower(h.valid) DESC LIMIT 12) AS recent
             FROM people p
             JOIN person_assignments a ON a.district_code = p.district_code AND a.person_id = p.person_id
                                      AND a.role = 'supervisor' AND a.valid @> :at
             JOIN supervision_grids s ON s.district_code = p.district_code AND s.version_id = :v
                                     AND s.code = a.target_code
            WHERE p.district_code = :d AND p.role = 'supervisor'
            ORDER BY p.person_id"""), {"d": district, "v": version_id, "at": at})
    return [dict(r._mapping) for r in rows]


def unplaced_supervisors(conn: Connection, district: str, version_id: int, at: Any) -> int:
    """How many of the district's supervisors hold no supervision grid of ``version_id`` at ``at``."""
    return conn.execute(sa.text(
        """SELECT count(*) FROM people p
            WHERE p.district_code = :d AND p.role = 'supervisor'
              AND NOT EXISTS (SELECT 1 FROM person_assignments a
                                JOIN supervision_grids s ON s.district_code = a.district_code AND s.version_id = :v
                                                        AND s.code = a.target_code
                               WHERE a.district_code = p.district_code AND a.person_id = p.person_id
                                 AND a.role = 'supervisor' AND a.valid @> :at)"""),
        {"d": district, "v": version_id, "at": at}).scalar()


def insert_rotation_plan(conn: Connection, district: str, *, version_id: int, start: Any, months: int, min_gap: int,
                         params: dict[str, Any], summary: dict[str, Any], synthetic: bool, created_by: str) -> int:
    """A new plan's header; returns its id."""
    return conn.execute(sa.text(
        """INSERT INTO rotation_plans (district_code, version_id, start_date, months, min_gap, params, summary,
                                      synthetic, created_by)
           VALUES (:d, :v, :start, :months, :gap, CAST(:params AS jsonb), CAST(:summary AS jsonb), :synthetic, :by)
           RETURNING plan_id"""),
        {"d": district, "v": version_id, "start": start, "months": months, "gap": min_gap,
         "params": json.dumps(params), "summary": json.dumps(summary, ensure_ascii=False), "synthetic": synthetic,
         "by": created_by}).scalar_one()


def insert_rotation_rows(conn: Connection, district: str, plan_id: int, rows: list[dict[str, Any]]) -> None:
    """A plan's rows: period, person_id, person_name, team_code, supervision_code, leader."""
    if rows:
        conn.execute(sa.text(
            """INSERT INTO rotation_plan_rows (district_code, plan_id, period, person_id, person_name, team_code,
                                              supervision_code, leader)
               VALUES (:d, :plan, :period, :person_id, :person_name, :team_code, :supervision_code, :leader)"""),
            [{"d": district, "plan": plan_id, **r} for r in rows])


def rotation_plan(conn: Connection, plan_id: int) -> dict[str, Any] | None:
    """A plan's header by id (any district), or None."""
    row = conn.execute(sa.text(
        """SELECT district_code AS district, plan_id, version_id, start_date, months, min_gap, params, summary,
                  synthetic, created_at, created_by, published_at, published_by
             FROM rotation_plans WHERE plan_id = :p"""), {"p": plan_id}).first()
    return dict(row._mapping) if row else None


def rotation_plans(conn: Connection, districts: tuple[str, ...] | None) -> list[dict[str, Any]]:
    """Plans' headers (no rows), newest first; ``districts`` None for all."""
    rows = conn.execute(sa.text(
        """SELECT district_code AS district, plan_id, version_id, start_date, months, min_gap, synthetic,
                  created_at, published_at, summary -> 'workload_spread' AS workload_spread
             FROM rotation_plans
            WHERE CAST(:all AS boolean) OR district_code = ANY(:ds)
            ORDER BY plan_id DESC"""), {"all": districts is None, "ds": list(districts or [])})
    return [dict(r._mapping) for r in rows]


def rotation_rows(conn: Connection, district: str, plan_id: int, team: str | None = None) -> list[dict[str, Any]]:
    """A plan's rows in period, team, grid, person order; only ``team``'s when given."""
    rows = conn.execute(sa.text(
        """SELECT period, person_id, person_name, team_code, supervision_code, leader FROM rotation_plan_rows
            WHERE district_code = :d AND plan_id = :p AND (CAST(:team AS text) IS NULL OR team_code = :team)
            ORDER BY period, team_code, supervision_code, person_id"""), {"d": district, "p": plan_id, "team": team})
    return [dict(r._mapping) for r in rows]


def mark_rotation_published(conn: Connection, district: str, plan_id: int, by: str) -> None:
    """Record that the plan was published now, by ``by``."""
    conn.execute(sa.text(
        """UPDATE rotation_plans SET published_at = now(), published_by = :by
            WHERE district_code = :d AND plan_id = :p"""), {"d": district, "p": plan_id, "by": by})


def supervisor_count(conn: Connection, district: str) -> int:
    """How many people of role supervisor the district has."""
    return conn.execute(sa.text("SELECT count(*) FROM people WHERE district_code = :d AND role = 'supervisor'"),
                        {"d": district}).scalar_one()


# --- parties (#21: the dispatcher's "choose another party") ---
def search_parties(conn: Connection, district: str, q: str | None, kind: str | None, limit: int
                   ) -> list[dict[str, Any]]:
    """The active parties of ``district`` (code, name, kind) whose name or code contains ``q`` (any case; its
    ``%``, ``_`` and ``\\`` match themselves) and of ``kind`` when given, by kind then code, at most ``limit``."""
    pattern = None if not q else "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = conn.execute(sa.text(
        """SELECT code, name, kind FROM parties
            WHERE district_code = :d AND active AND (CAST(:k AS text) IS NULL OR kind = :k)
              AND (CAST(:p AS text) IS NULL OR name ILIKE :p ESCAPE '\\' OR code ILIKE :p ESCAPE '\\')
            ORDER BY kind, code LIMIT :limit"""), {"d": district, "k": kind, "p": pattern, "limit": limit})
    return [dict(r._mapping) for r in rows]


def ensure_departments(conn: Connection, district: str, rows: Sequence[dict[str, str]]) -> int:
    """Add parties of kind ``department`` (``code``, ``name``, ``contact`` per row) that ``district`` lacks;
    returns how many were added."""
    if not rows:
        return 0
    return conn.execute(sa.text(
        """INSERT INTO parties (district_code, kind, code, name, contact)
           SELECT :d, 'department', r.code, r.name, r.contact
             FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(code text, name text, contact text)
           ON CONFLICT (district_code, kind, code) DO NOTHING"""),
        {"d": district, "rows": json.dumps(list(rows), ensure_ascii=False)}).rowcount
