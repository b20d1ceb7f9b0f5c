"""Grid ownership (who answers for a unit grid in each of the four roles, over time) and its derivation from
administrative areas, for a city that has not loaded its own lists (``ownership_import`` loads them).

The four subjects follow seed 000 (DOMAIN.md, "Four responsibility subjects"):

- **management** (管理主体): the community committee (居委会/村委会) of the grid's community, else the street
  office (街道办事处) of its street. Communities and street offices are management subjects.
- **responsibility** (责任主体): in law the social units and citizens of the place (shops under 门前三包,
  property companies). At the grid level, before any such list is loaded, a public-space grid's responsibility
  subject is its management party; a frontage unit or property company covering a point is resolved point by
  point by the geocoder (frontage units), not here.
- **enforcement** (执法主体): the street's comprehensive law-enforcement team (街道综合执法队 — one per street
  since Beijing's 2019 reform moved enforcement down to streets and townships).
- **supervision** (监督主体): the supervisor team of the grid's supervision grid.

Street and community parties come from the real administrative codes, teams from the supervision partition.
Every assignment made here is marked ``derived`` (and its party's ``contact`` says so), so no front end shows a
derived owner as if a city had listed it. Validity ranges never overlap (the database enforces it); a new
assignment closes the previous one. No geometry here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from citygrid import codes
from citygrid.responsibility import store

ROLES = ("responsibility", "management", "enforcement", "supervision")
ENFORCEMENT_SUFFIX = "-enforcement"
SUPERVISION_PREFIX = "supervision-"


def derive_default_ownership(conn: Connection, district: str, version_id: int,
                             valid_from: dt.datetime | None = None, roles: Sequence[str] = ROLES) -> dict[str, Any]:
    """Derived parties and the ``roles``' derived ownership of the version's unit grids from ``valid_from``
    (default now), closing earlier open assignments of a role.

    Parameters
    ----------
    conn : a connection in the caller's transaction.
    district, version_id : the grid version whose unit grids get owners.
    valid_from : the instant the assignments start (aware); None: now.
    roles : the roles to derive (``ROLES`` or a subset).

    Returns
    -------
    The number of grids assigned per role.

    A street's enforcement team is named 〈street〉综合执法队 in a deployment of Chinese administrative codes,
    else 〈street〉 enforcement team.
    """
    chinese = codes.deployment_scheme(conn).name == "cn-admin"
    store.insert_derived_parties(conn, district, version_id, enforcement_suffix=ENFORCEMENT_SUFFIX,
                                 enforcement_name="综合执法队" if chinese else " enforcement team",
                                 supervision_prefix=SUPERVISION_PREFIX)
    counts = {}
    for role in roles:
        store.close_open_ownership(conn, district, version_id, role, valid_from)
        counts[role] = store.assign_derived_owners(conn, district, version_id, role, valid_from,
                                                   enforcement_suffix=ENFORCEMENT_SUFFIX,
                                                   supervision_prefix=SUPERVISION_PREFIX)
    return counts


def roles_without_owners(conn: Connection, district: str) -> list[str]:
    """Roles no unit grid of the district has ever had an owner in."""
    present = store.owned_roles(conn, district)
    return [role for role in ROLES if role not in present]
