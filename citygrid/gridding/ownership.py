"""Grid ownership (who answers for a grid in each role, over time) and its derivation from admin areas.

Where a city has not loaded its own responsibility lists, each unit grid gets derived owners in all four roles:
**management** (管理主体) the street office (街道办事处) of the grid's street; **responsibility** (责任主体) the
community committee (居委会/村委会) of its community, or the street office where it has none; **enforcement**
(执法主体) the street's comprehensive law-enforcement team (街道综合执法队 — one per street since Beijing's 2019
reform moved enforcement down to streets and townships); **supervision** (监督主体) the supervisor team of the
grid's supervision grid. Street and community parties come from the real administrative codes, teams from the
supervision partition; every derived party says so in its ``contact`` field. Validity ranges never overlap (the
database enforces it); a new assignment closes the previous one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

ROLES = ("responsibility", "management", "enforcement", "supervision")
ENFORCEMENT_SUFFIX = "-enforcement"
SUPERVISION_PREFIX = "supervision-"

# Parties the derivation needs, as (district, kind, code, name, contact) rows.
_DERIVED_PARTIES = (
    """SELECT district_code, CASE level WHEN 'street' THEN 'street_office' ELSE 'community' END, code, name,
              'derived from administrative codes'
         FROM admin_areas WHERE district_code = :d""",
    f"""SELECT district_code, 'team', code || '{ENFORCEMENT_SUFFIX}',
               regexp_replace(name, '办事处$', '') || :enforcement_name,
               'derived: one enforcement team per street'
          FROM admin_areas WHERE district_code = :d AND level = 'street'""",
    f"""SELECT district_code, 'team', '{SUPERVISION_PREFIX}' || code, name,
               'derived from the supervision partition'
          FROM supervision_teams WHERE district_code = :d AND version_id = :v""",
)

# Per role: the (party kind, party code) each unit grid ``u`` of the version answers to.
_ROLE_PARTY = {
    "management": "SELECT 'street_office' AS kind, u.street_code AS code",
    "responsibility": """SELECT CASE WHEN u.community_code IS NULL THEN 'street_office' ELSE 'community' END AS kind,
                                coalesce(u.community_code, u.street_code) AS code""",
    "enforcement": f"SELECT 'team' AS kind, u.street_code || '{ENFORCEMENT_SUFFIX}' AS code",
    "supervision": f"""SELECT 'team' AS kind, '{SUPERVISION_PREFIX}' || s.team_code AS code
                         FROM supervision_grids s
                        WHERE s.district_code = u.district_code AND s.version_id = u.version_id
                          AND s.code = u.supervision_code""",
}


def derive_default_ownership(conn: Connection, district: str, version_id: int,
                             valid_from: dt.datetime | None = None, roles: Sequence[str] = ROLES) -> dict[str, Any]:
    """Derived parties and the ``roles``' ownership of the version's unit grids from ``valid_from`` (default
    now), closing earlier open assignments of a role. Returns the number of grids assigned per role.

    A street's enforcement team is named 〈street〉综合执法队 in a deployment of Chinese administrative codes,
    else 〈street〉 enforcement team."""
    from citygrid import codes as code_schemes

    chinese = code_schemes.deployment_scheme(conn).name == "cn-admin"
    params = {"d": district, "v": version_id, "start": valid_from,
              "enforcement_name": "综合执法队" if chinese else " enforcement team"}
    for select in _DERIVED_PARTIES:
        conn.execute(sa.text(f"""INSERT INTO parties (district_code, kind, code, name, contact) {select}
                                 ON CONFLICT (district_code, kind, code) DO NOTHING"""), params)
    counts = {}
    for role in roles:
        party_of_grid = _ROLE_PARTY[role]
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
                  CROSS JOIN LATERAL ({party_of_grid}) wanted
                  JOIN parties p ON p.district_code = u.district_code AND p.kind = wanted.kind
                                AND p.code = wanted.code
                 WHERE u.district_code = :d AND u.version_id = :v
                   AND NOT EXISTS (SELECT 1 FROM grid_ownership o WHERE o.district_code = u.district_code
                                     AND o.grid_kind = 'unit' AND o.grid_code = u.code AND o.role = :role
                                     AND o.valid && tstzrange(coalesce(CAST(:start AS timestamptz), now()), NULL))"""
        ), {**params, "role": role}).rowcount
    return counts


def roles_without_owners(conn: Connection, district: str) -> list[str]:
    """Roles no unit grid of the district has ever had an owner in."""
    present = set(conn.execute(sa.text(
        "SELECT DISTINCT role FROM grid_ownership WHERE district_code = :d AND grid_kind = 'unit'"),
        {"d": district}).scalars())
    return [role for role in ROLES if role not in present]
