"""Which cases a caller may read and act on: the case read rules in one place, as a plain ``CaseScope`` that
the stores' queries take (``cases.store``, and the ``cases`` tile layer through ``CaseScope.bound``).

- Roles outside ``CASE_READERS`` (planner, gis) read no case at all; admins read every case.
- A supervisor-only account (``Principal.supervisor_only``) reads the cases in its own team's supervision
  grids (the current grid version of the case's district).
- A unit-only account (``Principal.unit_only``) reads the cases dispatched to its party: those whose
  ``attrs->'dispatched_to'->>'code'`` is the account's ``party_code``, in the account's district.
- An account that is both reads the union; every other reader (dispatcher, analyst…) reads every case.
- An account that works in one district (``Principal.district_code``; admins excepted) reads only that
  district's cases, whatever else its roles allow: a dispatcher of one district never reads another's.

Acting follows the role the account acts in (``action_scope``): acting as the workflow's supervisor keeps to
the team's grids, acting as a unit to the party's cases, whatever else the account may read.

Pure data and functions; no database, no Flask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from citygrid.accounts.roles import CASE_READERS
from citygrid.errors import Forbidden

if TYPE_CHECKING:
    from citygrid.accounts.service import Principal


@dataclass(frozen=True)
class CaseScope:
    """The cases a caller may read: none (``readable`` False, ``why_not`` says why), every case (no ``team``
    and no ``party``), or those in the supervision grids of ``team`` and/or dispatched to ``party`` (a
    ``parties.code`` of ``district``); all within the one district ``home`` when it is set (the district the
    account works in).

    >>> CaseScope().unrestricted
    True
    >>> CaseScope(team="110105T01").refusal(7)
    'case 7 is not in the grids of your team 110105T01'
    """

    readable: bool = True
    team: str | None = None
    party: str | None = None
    district: str | None = None
    why_not: str = ""
    home: str | None = None

    @property
    def unrestricted(self) -> bool:
        """Whether every case is in the scope."""
        return self.readable and self.team is None and self.party is None and self.home is None

    def required(self) -> CaseScope:
        """This scope, or ``Forbidden`` (saying why) when it holds no case at all."""
        if not self.readable:
            raise Forbidden(self.why_not or "you may not read cases")
        return self

    def bound(self) -> dict[str, Any]:
        """The scope as the bound parameters of the stores' scope conditions: ``scope_all`` (every case, of
        ``scope_home`` when that is set), ``scope_team``, ``scope_party``, ``scope_district`` and ``scope_home``
        (None where they do not apply)."""
        return {"scope_all": self.readable and self.team is None and self.party is None,
                "scope_team": self.team if self.readable else None,
                "scope_party": self.party if self.readable else None,
                "scope_district": self.district if self.readable and self.party else None,
                "scope_home": self.home if self.readable else None}

    def refusal(self, case_id: int) -> str:
        """Why case ``case_id`` is outside the scope (the message of a 403)."""
        if not self.readable:
            return self.why_not or "you may not read cases"
        if self.team is None and self.party is None:
            return f"case {case_id} is not in your district {self.home}"
        team = f"in the grids of your team {self.team}" if self.team else ""
        party = f"dispatched to your party {self.party}" if self.party else ""
        if team and party:
            return f"case {case_id} is neither {team} nor {party}"
        return f"case {case_id} is not {team or party}"


def _home(who: Principal) -> str | None:
    """The one district whose cases ``who`` reads: its own district, unless it is an admin (None: every)."""
    return None if "admin" in who.roles else who.district_code


def read_scope(who: Principal) -> CaseScope:
    """The cases ``who`` may read (see the module docstring)."""
    if not who.has_any(CASE_READERS):
        return CaseScope(readable=False, why_not=f"{who.username} ({', '.join(who.roles)}) may not read cases; "
                                                 f"that needs one of: {', '.join(CASE_READERS)}")
    if not (who.supervisor_only or who.unit_only):
        return CaseScope(home=_home(who))
    team = who.team_code if who.supervisor_only else None
    party = who.party_code if who.unit_only else None
    if team is None and party is None:
        return CaseScope(readable=False, why_not=f"{who.username} is bound to no supervision team or party: "
                                                 "ask an admin to set one (citygrid users add --team/--party)")
    return CaseScope(team=team, party=party, district=who.district_code if party else None, home=_home(who))


def action_scope(who: Principal, acting_as: str | None) -> CaseScope:
    """The cases ``who`` may act on in workflow role ``acting_as``: as ``supervisor`` those of their team's
    grids, as ``unit`` those dispatched to their party (when the account has a team / a party, or is scoped
    to one anyway), else the cases they may read."""
    if acting_as == "supervisor" and (who.team_code is not None or who.supervisor_only):
        if who.team_code is None:
            return CaseScope(readable=False, why_not=f"{who.username} is bound to no supervision team")
        return CaseScope(team=who.team_code, home=_home(who))
    if acting_as == "unit" and (who.party_code is not None or who.unit_only):
        if who.party_code is None:
            return CaseScope(readable=False, why_not=f"{who.username} is bound to no party")
        return CaseScope(party=who.party_code, district=who.district_code, home=_home(who))
    return read_scope(who)
