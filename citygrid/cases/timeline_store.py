"""SQL of the SYNTHETIC demo timelines (``cases.synthetic_events``): which synthetic cases still have only their
import event, replacing that event by a full timeline, and the case columns a timeline sets.

Points go out as lon/lat (EPSG:4326) and x/y in the deployment CRS; nothing here is used by live intake.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

# The actor labels of every synthetic timeline event start with this (the report, verify, dispatch, … of the
# generated history): how a database tells that its synthetic history has timelines already.
SYNTHETIC_ACTOR = "synthetic-"


def has_timelines(conn: Connection, district: str) -> bool:
    """Whether any synthetic case of ``district`` has a generated timeline (an event by a synthetic actor)."""
    return conn.execute(sa.text(
        """SELECT EXISTS (SELECT 1 FROM case_events e JOIN cases c USING (district_code, case_id)
                           WHERE e.district_code = :d AND c.synthetic AND e.actor LIKE :prefix)"""),
        {"d": district, "prefix": SYNTHETIC_ACTOR + "%"}).scalar_one()


def cases_without_timeline(conn: Connection, district: str) -> list[dict[str, Any]]:
    """The synthetic cases of ``district`` whose only events are their import (no workflow step yet), oldest
    first: what ``service.dispatch_previews`` needs (kind, class, grid, report time, lon/lat in EPSG:4326, the
    linked component) plus source, status and the supervision grid and street."""
    rows = conn.execute(sa.text(
        """SELECT c.case_id, c.district_code, c.kind, c.class_code, c.source, c.status, c.reported_at,
                  c.unit_grid_code, c.supervision_code, c.street_code, c.community_code, c.component_obj_id,
                  c.attrs - 'level' AS attrs,
                  ST_X(ST_Transform(c.geom, 4326)) AS lon, ST_Y(ST_Transform(c.geom, 4326)) AS lat
             FROM cases c
            WHERE c.district_code = :d AND c.synthetic
              AND NOT EXISTS (SELECT 1 FROM case_events e WHERE e.district_code = c.district_code
                                 AND e.case_id = c.case_id AND e.action <> 'import')
            ORDER BY c.reported_at, c.case_id"""), {"d": district}).mappings()
    return [dict(r) for r in rows]


def replace_events(conn: Connection, district: str, case_ids: list[int], events: list[dict[str, Any]]) -> None:
    """Delete the events of ``case_ids`` (their import events) and insert ``events`` instead: dicts of
    ``case_id``, ``seq``, ``action``, ``from_status``, ``to_status``, ``actor``, ``role``, ``note``, ``at``,
    ``due_at`` (ISO 8601 instants with their offset; ``due_at`` may be None) and ``party_code`` (the party the
    case is with at a disposal event; None: the insert trigger reads the case's)."""
    conn.execute(sa.text("DELETE FROM case_events WHERE district_code = :d AND case_id = ANY(:ids)"),
                 {"d": district, "ids": case_ids})
    # COPY: a two-year history has a hundred thousand events and more (a JSON array per statement took twice
    # as long); values go as text, which PostgreSQL reads as each column's type.
    columns = ("case_id", "seq", "action", "from_status", "to_status", "actor", "role", "note", "at", "due_at",
               "party_code")
    with conn.connection.driver_connection.cursor() as cursor, cursor.copy(
            "COPY case_events (district_code, case_id, seq, action, from_status, to_status, actor, role, note, at, "
            "due_at, party_code) FROM STDIN") as copy:
        for event in events:
            copy.write_row((district, *(event[c] for c in columns)))


def update_cases(conn: Connection, district: str, rows: list[dict[str, Any]]) -> None:
    """Set what a timeline leaves on each case: ``case_id``, ``attrs`` (merged into the stored ones), the
    ``deadline_at``, ``verify_due_at`` and ``check_due_at`` columns and the ``row_version`` (one per step)."""
    for start in range(0, len(rows), 20_000):
        conn.execute(sa.text(
            """UPDATE cases c SET attrs = c.attrs || r.attrs, deadline_at = r.deadline_at,
                                  verify_due_at = r.verify_due_at, check_due_at = r.check_due_at,
                                  row_version = r.row_version
                 FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
                      case_id bigint, attrs jsonb, deadline_at timestamptz, verify_due_at timestamptz,
                      check_due_at timestamptz, row_version integer)
                WHERE c.district_code = :d AND c.case_id = r.case_id"""),
            {"d": district, "rows": json.dumps(rows[start:start + 20_000], ensure_ascii=False, default=str)})


def component_at(conn: Connection, district: str, obj_id: str | None, class_code: str, x: float, y: float,
                 srid: int) -> dict[str, Any] | None:
    """The current component ``obj_id`` of ``district``, else the current one of ``class_code`` nearest to the
    point (x, y in EPSG:``srid``, the deployment CRS); ``obj_id``, ``x``, ``y`` (deployment CRS) or None."""
    row = conn.execute(sa.text(
        """SELECT obj_id, ST_X(geom) AS x, ST_Y(geom) AS y FROM components
            WHERE district_code = :d AND valid_to IS NULL AND (obj_id = :o OR class_code = :c)
            ORDER BY obj_id = :o DESC, geom <-> ST_SetSRID(ST_MakePoint(:x, :y), :srid) LIMIT 1"""),
        {"d": district, "o": obj_id or "", "c": class_code, "x": x, "y": y, "srid": srid}).mappings().first()
    return dict(row) if row else None


def link_components(conn: Connection, district: str, links: list[tuple[str, str]]) -> int:
    """Link the cases keyed (idempotency key) as in ``links`` to their component (``component_obj_id``).
    Returns how many cases were linked."""
    if not links:
        return 0
    return conn.execute(sa.text(
        """UPDATE cases c SET component_obj_id = l.obj_id
             FROM unnest(CAST(:keys AS text[]), CAST(:objs AS text[])) AS l(key, obj_id)
            WHERE c.district_code = :d AND c.idempotency_key = l.key"""),
        {"d": district, "keys": [k for k, _ in links], "objs": [o for _, o in links]}).rowcount


def link_nearest_components(conn: Connection, district: str, within_m: float) -> int:
    """Link each synthetic component case of ``district`` without a component to the nearest current component
    of its class within ``within_m`` metres (as intake's ``match_component`` does for a live report). Returns
    how many were linked."""
    return conn.execute(sa.text(
        """UPDATE cases c SET component_obj_id = k.obj_id
             FROM (SELECT c2.case_id, n.obj_id FROM cases c2
                     CROSS JOIN LATERAL (SELECT obj_id FROM components m
                                          WHERE m.district_code = c2.district_code AND m.valid_to IS NULL
                                            AND m.class_code = c2.class_code
                                            AND ST_DWithin(m.geom, c2.geom, :r)
                                          ORDER BY m.geom <-> c2.geom LIMIT 1) n
                    WHERE c2.district_code = :d AND c2.synthetic AND c2.kind = 'component'
                      AND c2.component_obj_id IS NULL) k
            WHERE c.district_code = :d AND c.case_id = k.case_id"""), {"d": district, "r": within_m}).rowcount


def mark_planted(conn: Connection, district: str, key_prefix: str, planted: str) -> int:
    """Record ``attrs.planted`` (the planted pattern's id) on the cases whose idempotency key starts with
    ``key_prefix``. Returns how many."""
    return conn.execute(sa.text(
        """UPDATE cases SET attrs = attrs || jsonb_build_object('planted', CAST(:p AS text))
            WHERE district_code = :d AND idempotency_key LIKE :prefix"""),
        {"d": district, "p": planted, "prefix": key_prefix.replace("%", r"\%").replace("_", r"\_") + "%"}).rowcount


def street_offices(conn: Connection, district: str) -> dict[str, dict[str, Any]]:
    """The street offices (party kind ``street_office``, coded as their street) of ``district`` by street code."""
    rows = conn.execute(sa.text(
        "SELECT code, name, kind FROM parties WHERE district_code = :d AND kind = 'street_office' AND active"),
        {"d": district}).mappings()
    return {r["code"]: dict(r) for r in rows}
