"""The account roles and how they map onto the case workflow's roles. Pure data.

planner     edits grid boundaries and versions
supervisor  patrols supervision grids: reports, verifies and checks the cases of their own team's grids
dispatcher  command centre: accepts, dispatches, closes and evaluates cases (受理员 and 派遣员)
acceptor    command centre: files reports (立案) or rejects them, reclassifies, marks duplicates, closes (受理员 only)
calltaker   hotline: takes citizens' calls as reports and records the callback (回访) after closing (话务员)
lead        district level (区级): closes an investigation (调研) opened by a second dissatisfaction
unit        a disposal unit's operator: feeds back or hands back dispatched cases
analyst     reads caseload, density, hot spots and rankings
gis         imports component censuses and reference layers
admin       everything, including accounts and the audit log
"""

from __future__ import annotations

ROLES: tuple[str, ...] = ("planner", "supervisor", "dispatcher", "unit", "analyst", "gis", "admin", "acceptor",
                          "calltaker", "lead")
ANY_ROLE: tuple[str, ...] = ROLES
# The account roles that may read cases (admins always may); the scope each reads in is
# ``citygrid.cases.scope.read_scope``.
CASE_READERS: tuple[str, ...] = ("supervisor", "dispatcher", "unit", "analyst", "acceptor", "calltaker", "lead")
# The account roles that read a complainant's name and phone (admins always may): those who file and dispatch
# the case, and the call-taker who took the call and calls back (回访).
CONTACT_READERS: tuple[str, ...] = ("dispatcher", "acceptor", "calltaker")

# Account role -> the workflow roles (cases/workflow.py) it acts in, in order of preference.
WORKFLOW_ROLES: dict[str, tuple[str, ...]] = {
    "supervisor": ("supervisor",),
    "dispatcher": ("acceptor", "dispatcher"),
    "unit": ("unit",),
    "acceptor": ("acceptor",),
    "calltaker": ("calltaker",),
    "lead": ("district",),
    "admin": ("admin",),
}


def workflow_role(account_roles: tuple[str, ...], allowed: tuple[str, ...]) -> str | None:
    """The workflow role an account acts in for a step that ``allowed`` roles may take, or None.

    >>> workflow_role(("dispatcher",), ("acceptor", "admin"))
    'acceptor'
    >>> workflow_role(("analyst",), ("acceptor", "admin")) is None
    True
    """
    for account_role in account_roles:
        for role in WORKFLOW_ROLES.get(account_role, ()):
            if role in allowed:
                return role
    return None
