"""The supervisors a rotation plan moves (the roster), and the SYNTHETIC roster of the demo.

A roster is a list of ``Supervisor``: a person with role supervisor in a district, their current team, whether
they lead it, and the supervision grids they held most recently (the rotation's gap rule counts them). The
roster is read from the named people of ``citygrid.responsibility.people`` (#22, 实名制).

The synthetic roster (``synthetic_roster``) has the seeds' scale for Chaoyang (seed 001: 1,547 supervisors in 35
teams for 237 supervision grids): as many people as the grids require, placed in teams by their grids' staffing,
with fixed-seed names that say they are synthetic (``SYNTHETIC 监督员 0001``) and one leader per team.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

SYNTHETIC_PREFIX = "SYNTHETIC"


@dataclass(frozen=True)
class Supervisor:
    """A supervisor: ``person_id`` (the named person's id), ``name``, current ``team`` code, ``leader`` of it or
    not, and the supervision grids ``recent``ly held, oldest first (the last is the grid held now)."""

    person_id: int
    name: str
    team: str
    leader: bool = False
    recent: tuple[str, ...] = field(default=())


def synthetic_roster(staffing_by_team: Mapping[str, Sequence[tuple[str, int]]], seed: int = 2026,
                     first_id: int = 1, chinese: bool = True) -> list[Supervisor]:
    """A SYNTHETIC roster: for each team, as many supervisors as its grids require, each holding one of the
    team's grids now (so the plan's gap rule has something to count), one leader per team chosen with the seed.

    Parameters
    ----------
    staffing_by_team : team code -> [(supervision grid code, required supervisors), …].
    seed : fixes the leaders and the order of people.
    first_id : ``person_id`` of the first person (the caller stores them and may renumber).
    chinese : names in Chinese (``SYNTHETIC 监督员 0001``) or English (``SYNTHETIC supervisor 0001``).

    Examples
    --------
    >>> roster = synthetic_roster({"T1": [("S1", 2), ("S2", 1)], "T2": [("S3", 2), ("S4", 1)]}, seed=1)
    >>> len(roster), sum(s.leader for s in roster), roster[0].name
    (6, 2, 'SYNTHETIC 监督员 0001')
    """
    rng = np.random.default_rng(seed)
    word = "监督员" if chinese else "supervisor"
    people: list[Supervisor] = []
    number = first_id
    for team in sorted(staffing_by_team):
        slots = [code for code, required in sorted(staffing_by_team[team]) for _ in range(required)]
        order = rng.permutation(len(slots))
        leader = int(rng.integers(len(slots))) if slots else -1
        for i, slot in enumerate(order):
            people.append(Supervisor(number, f"{SYNTHETIC_PREFIX} {word} {number - first_id + 1:04d}", team,
                                     i == leader, (slots[slot],)))
            number += 1
    return people
