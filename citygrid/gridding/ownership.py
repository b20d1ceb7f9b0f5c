"""Grid ownership (who answers for a grid in each role, over time) and its derivation from admin areas.

Where a city has not loaded its own responsibility lists, each unit grid's **management** subject (管理主体)
is derived as the street office (街道办事处) of the grid's street and its **responsibility** subject as the
community committee (居委会/村委会) of its community (the street office where the grid has none). These
parties come from the real administrative codes; the assignment is labelled ``derived`` in the party records.
Validity ranges never overlap (the database enforces it); a new assignment closes the previous one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

ROLES = ("responsibility", "management", "enforcement", "supervision")


def derive_default_ownership(conn: Connection, district: str, version_id: int,
                             valid_from: dt.datetime | None = None) -> dict[str, Any]:
    """Street offices and community committees as parties, and management/responsibility ownership of the
    version's unit grids from ``valid_from`` (default now). Returns counts."""
    params = {"d": district, "v": version_id, "start": valid_from}
    conn.execute(sa.text(
        """INSERT INTO parties (district_code, kind, code, name, contact)
           SELECT district_code, CASE level WHEN 'street' THEN 'street_office' ELSE 'community' END, code, name,
                  'derived from administrative codes'
             FROM admin_areas WHERE district_code = :d
           ON CONFLICT (district_code, kind, code) DO NOTHING"""
    ), params)
    counts = {}
    for role, kind, column in (("management", "street_office", "street_code"),
                               ("responsibility", "community", "community_code")):
        conn.execute(sa.text(
            """UPDATE grid_ownership o
                  SET valid = tstzrange(lower(o.valid), coalesce(CAST(:start AS timestamptz), now()))
                 FROM unit_grids u
                WHERE o.district_code = :d AND o.grid_kind = 'unit' AND o.role = :role AND upper_inf(o.valid)
                  AND u.district_code = o.district_code AND u.version_id = :v AND u.code = o.grid_code
                  AND lower(o.valid) < coalesce(CAST(:start AS timestamptz), now())"""
        ), {**params, "role": role})
        counts[role] = conn.execute(sa.text(
            f"""INSERT INTO grid_ownership (district_code, grid_kind, grid_code, role, party_id, valid)
                SELECT u.district_code, 'unit', u.code, :role, p.party_id,
                       tstzrange(coalesce(CAST(:start AS timestamptz), now()), NULL)
                  FROM unit_grids u
                  JOIN parties p ON p.district_code = u.district_code
                   AND ((p.kind = :kind AND p.code = u.{column})
                        OR (:kind = 'community' AND u.community_code IS NULL AND p.kind = 'street_office'
                            AND p.code = u.street_code))
                 WHERE u.district_code = :d AND u.version_id = :v
                   AND NOT EXISTS (SELECT 1 FROM grid_ownership o WHERE o.district_code = u.district_code
                                     AND o.grid_kind = 'unit' AND o.grid_code = u.code AND o.role = :role
                                     AND o.valid && tstzrange(coalesce(CAST(:start AS timestamptz), now()), NULL))"""
        ), {**params, "role": role, "kind": kind}).rowcount
    return counts
