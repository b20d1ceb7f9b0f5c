"""The responsibility package's SQL (bound parameters only), one block per part of #22."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

# --- ownership ---


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
    """The person of ``district`` with account ``username`` when given, else the one with ``name`` and
    ``phone``; None when there is none."""
    row = conn.execute(sa.text(
        f"""SELECT {_PERSON} FROM people p WHERE p.district_code = :d
               AND CASE WHEN CAST(:u AS text) IS NULL THEN p.name = :n AND p.phone = :ph ELSE p.username = :u END"""),
        {"d": district, "u": username, "n": name, "ph": phone}).mappings().first()
    return dict(row) if row else None


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
             FROM jsonb_to_recordset(CAST(:rows AS jsonb)) WITH ORDINALITY
                  AS r(name text, role text, phone text, username text, n bigint)
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
        """SELECT CASE
             WHEN :role = 'supervisor' THEN EXISTS (
                 SELECT 1 FROM supervision_grids s WHERE s.district_code = :d AND s.code = :c
                    AND s.version_id = (SELECT max(version_id) FROM grid_versions v WHERE v.district_code = :d))
             WHEN :role = 'team_leader' THEN EXISTS (
                 SELECT 1 FROM supervision_teams t WHERE t.district_code = :d AND t.code = :c)
             WHEN :role = 'unit_contact' THEN EXISTS (
                 SELECT 1 FROM parties y WHERE y.district_code = :d AND y.code = :c)
             ELSE EXISTS (SELECT 1 FROM admin_areas a WHERE a.district_code = :d AND a.code = :c
                             AND a.level = 'community') END"""),
        {"d": district, "role": role, "c": code}).scalar_one()


def later_assignments(conn: Connection, district: str, *, slots: list[dict[str, Any]], at: Any) -> list[dict[str, Any]]:
    """Assignments starting at or after ``at`` in any of ``slots`` (``role``, ``target_code``, ``position``;
    a supervisor's slot is its ``person_id``, or ``target_code`` for every supervisor of that grid)."""
    rows = conn.execute(sa.text(
        """SELECT a.assignment_id, a.person_id, a.role, a.target_code, a.position, lower(a.valid) AS valid_from
             FROM person_assignments a
             JOIN jsonb_to_recordset(CAST(:slots AS jsonb))
                  AS s(role text, target_code text, position text, person_id bigint)
               ON a.role = s.role AND (a.person_id = s.person_id
                                       OR s.person_id IS NULL AND a.target_code = s.target_code
                                          AND a.position = coalesce(s.position, ''))
            WHERE a.district_code = :d AND lower(a.valid) >= :at ORDER BY a.assignment_id"""),
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
        """UPDATE person_assignments a SET valid = tstzrange(lower(a.valid), :at)
             FROM jsonb_to_recordset(CAST(:slots AS jsonb))
                  AS s(role text, target_code text, position text, person_id bigint)
            WHERE a.district_code = :d AND a.role = s.role
              AND (a.person_id = s.person_id
                   OR s.person_id IS NULL AND a.target_code = s.target_code AND a.position = coalesce(s.position, ''))
              AND a.valid @> CAST(:at AS timestamptz) AND lower(a.valid) < :at"""),
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
                 ORDER BY (v.status = 'published' AND v.effective_from <= :at
                           AND (v.effective_to IS NULL OR v.effective_to > :at)) DESC,
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
