"""Named people (实名制): who, by name, answers for each slot of the grid system, over time.

Seed 000 asks for seamless real-name responsibility: every small area has a named person per subject. A person
has a name, a role, a phone and, where they use the system, an account (``users.username``). A person fills
dated **slots**:

============================ ============================= ==========================================
assignment role              slot                          person's role
============================ ============================= ==========================================
``supervisor``               the person (one supervision   ``supervisor`` (several per supervision grid:
                             grid at a time)               Chaoyang has 1,547 for 237 grids)
``team_leader``              a supervision team            ``supervisor`` (分队长, rotated yearly)
``enforcement_officer``      a community and a position    ``enforcement_officer`` (seed 000: two per
                             ``lead`` or ``assisting``     community, one lead and one assisting)
``community_head``           a community                   ``community_head`` (its responsible person)
``unit_contact``             a party (a frontage unit …)   ``unit_contact`` (the unit's responsible person)
============================ ============================= ==========================================

A slot holds one person at a time: a new assignment closes the one running in that slot at its start, and the
database refuses overlaps. An assignment that starts before one already recorded later in the same slot is
refused (``Conflict``) unless the caller asks to replace the later ones (a re-published rotation plan).

监管分离 (seed 002): the body that finds and checks problems is not the body that fixes them. One account cannot
both supervise (an account role ``supervisor``; a person of role ``supervisor``: supervision-grid and team
slots) and dispose (an account role ``unit``; a person holding a unit's contact, a community's or an enforcement
slot). Linking an account to a person, assigning a slot and changing an account's roles are all refused with
that reason when they would join the two.

Times: ``valid_from`` is an instant (an aware datetime) or a local day of the deployment's zone (a ``date``:
its first instant there); ``spatial.timezones`` turns texts into either.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from citygrid.errors import Conflict, InvalidInput, NotFound, RowProblem, problem
from citygrid.responsibility import store
from citygrid.spatial import db
from citygrid.spatial.store import district_codes
from citygrid.spatial.timezones import day_start

PERSON_ROLES: tuple[str, ...] = ("supervisor", "enforcement_officer", "community_head", "unit_contact")
# The account roles that may read people's phone numbers (in their own district; admins everywhere): the
# command centre, planners and admins. Never anonymous callers, analysts, supervisors or units.
PHONE_READERS: tuple[str, ...] = ("dispatcher", "planner", "admin")
# assignment role -> (what its code names, the person role that may hold it, the positions it takes)
SLOTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "supervisor": ("supervision grid", "supervisor", ("",)),
    "team_leader": ("supervision team", "supervisor", ("",)),
    "enforcement_officer": ("community", "enforcement_officer", ("lead", "assisting")),
    "community_head": ("community", "community_head", ("",)),
    "unit_contact": ("party", "unit_contact", ("",)),
}
SUPERVISING_PERSON_ROLES = frozenset({"supervisor"})
DISPOSAL_PERSON_ROLES = frozenset({"enforcement_officer", "community_head", "unit_contact"})
SEPARATION_RULE = ("监管分离: one account cannot both supervise (role supervisor, supervision-grid or team slots) "
                   "and dispose (role unit, a unit's contact, community or enforcement slots)")
PHONE = re.compile(r"^[0-9+() -]{0,32}$")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")
MAX_NAME = 100


@dataclass(frozen=True)
class PersonInput:
    """A person as a caller gives one (an import row, the rotation's roster, a test).

    Attributes
    ----------
    name : 1–100 printable characters.
    role : one of ``PERSON_ROLES``.
    phone : digits, spaces, ``+ ( ) -``; up to 32 characters; may be empty.
    username : the person's account, if they use the system.
    """

    name: str
    role: str
    phone: str = ""
    username: str | None = None


# ------------------------------------------------------------------------------------------ checks
def phones_visible(account_roles: Iterable[str] | None, account_district: str | None, district: str) -> bool:
    """Whether an account (None: an anonymous caller) may read the phones of ``district``'s people: one of
    ``PHONE_READERS``, scoped to that district or to none (an admin reads every district's).

    >>> phones_visible(["dispatcher"], "110105", "110105"), phones_visible(["analyst"], None, "110105")
    (True, False)
    >>> phones_visible(["dispatcher"], "410104", "110105"), phones_visible(None, None, "110105")
    (False, False)
    """
    roles = set(account_roles or ())
    if "admin" in roles:
        return True
    return bool(roles & set(PHONE_READERS)) and account_district in (None, district)


def person_problems(person: PersonInput, line: int | None = None) -> list[RowProblem]:
    """What is wrong with ``person`` as given (no database), in the one problem shape."""
    found = []
    if not person.name or len(person.name) > MAX_NAME or not person.name.isprintable() \
            or person.name != person.name.strip():
        found.append(problem("name", f"a name is 1–{MAX_NAME} printable characters without surrounding spaces",
                             line=line))
    if person.role not in PERSON_ROLES:
        found.append(problem("role", f"unknown person role {person.role[:40]!r}; roles: {', '.join(PERSON_ROLES)}",
                             line=line))
    if not PHONE.match(person.phone or ""):
        found.append(problem("phone", "a phone is up to 32 digits, spaces and + ( ) -", line=line))
    if person.username is not None and not USERNAME.match(person.username):
        found.append(problem("account", "an account is a username: 2–63 lower-case letters, digits, '.', '_', '-'",
                             line=line))
    return found


def _side(role: str) -> str | None:
    return "supervising" if role in SUPERVISING_PERSON_ROLES else "disposal" if role in DISPOSAL_PERSON_ROLES \
        else None


def separation_problem(account_roles: Iterable[str], person_roles: Iterable[str]) -> str | None:
    """Why an account with ``account_roles`` linked to people of ``person_roles`` breaks 监管分离, or None.

    >>> separation_problem(["supervisor"], ["unit_contact"]) is not None
    True
    >>> separation_problem(["supervisor", "dispatcher"], ["supervisor"]) is None
    True
    """
    sides = {_side(r) for r in person_roles} - {None}
    roles = set(account_roles)
    if "supervisor" in roles:
        sides.add("supervising")
    if "unit" in roles:
        sides.add("disposal")
    return SEPARATION_RULE if len(sides) > 1 else None


def check_account_roles(conn: Connection, username: str, roles: Sequence[str]) -> None:
    """``Conflict`` (with 监管分离's words) when an account ``username`` with ``roles`` would both supervise
    and dispose, by its own roles or by the people linked to it (``accounts`` calls this on adding a user
    and on changing roles)."""
    linked = store.account_people(conn, username)
    reason = separation_problem(roles, [p["role"] for p in linked])
    if reason:
        people = ", ".join(f"{p['name']} ({p['role']}, {p['district_code']})" for p in linked)
        raise Conflict(reason + (f"; the account is the person {people}" if people else ""),
                       details=[problem("roles", reason)])


def _check_link(conn: Connection, person: PersonInput) -> None:
    """``InvalidInput`` when the person's account does not exist, ``Conflict`` when linking it breaks 监管分离."""
    if person.username is None:
        return
    roles = store.account_roles(conn, person.username)
    if roles is None:
        raise InvalidInput(f"no account {person.username!r}", field="account")
    others = [p["role"] for p in store.account_people(conn, person.username)]
    reason = separation_problem(roles, [*others, person.role])
    if reason:
        raise Conflict(f"{reason}; account {person.username!r} has roles {', '.join(roles)}",
                       details=[problem("account", reason)])


def _instant(conn: Connection, valid_from: dt.datetime | dt.date | None) -> dt.datetime:
    """``valid_from`` as an instant: a date is its first instant in the deployment's zone; None is now."""
    if valid_from is None:
        return dt.datetime.now(dt.UTC)
    if isinstance(valid_from, dt.datetime):
        if valid_from.tzinfo is None:
            raise InvalidInput("valid_from needs its time zone (or give a date)", field="valid_from")
        return valid_from
    return day_start(valid_from, db.deployment_zone(conn))


# ------------------------------------------------------------------------------------------ people
def add_person(conn: Connection, district: str, person: PersonInput, *, source: str = "",
               synthetic: bool = False) -> dict[str, Any]:
    """The person ``person`` of ``district``: found by account (when given) or by name and phone, with the name
    and phone updated, else added.

    Raises
    ------
    InvalidInput for a malformed person or an unknown account; Conflict when the account would break 监管分离
    or the person found has another role.
    """
    problems = person_problems(person)
    if problems:
        raise InvalidInput(problems[0]["reason"], field=problems[0]["field"], details=problems)
    _check_link(conn, person)
    found = store.person_by_key(conn, district, person.username, person.name, person.phone)
    if found is None:
        return store.insert_person(conn, district, name=person.name, role=person.role, phone=person.phone,
                                   username=person.username, source=source, synthetic=synthetic)
    if person.username and found["username"] not in (None, person.username):
        raise Conflict(f"{person.name} ({person.phone or 'no phone'}) is the person of account {found['username']!r},"
                       f" not {person.username!r}", details=[problem("account", "another account's person")])
    if found["role"] != person.role:
        raise Conflict(f"{person.name} is recorded as {found['role']}, not {person.role}", details=[
            problem("role", f"person {found['person_id']} is a {found['role']}")])
    store.update_person(conn, district, found["person_id"], name=person.name, phone=person.phone,
                        username=person.username)
    return {**found, "name": person.name, "phone": person.phone, "username": person.username or found["username"]}


def add_people(conn: Connection, district: str, people: Sequence[PersonInput], *, source: str,
               synthetic: bool = False) -> list[int]:
    """Add many new people at once (a roster: the rotation's SYNTHETIC supervisors), none with an account;
    returns their ids in order. ``InvalidInput`` listing every malformed one."""
    problems = [p for i, person in enumerate(people, start=1) for p in person_problems(person, line=i)]
    problems += [problem("account", "add people with an account one by one (add_person)", line=i)
                 for i, person in enumerate(people, start=1) if person.username is not None]
    if problems:
        raise InvalidInput(f"{len(problems)} problem(s) in the people given", details=problems)
    return store.insert_people(conn, district, [{"name": p.name, "role": p.role, "phone": p.phone,
                                                 "username": None} for p in people],
                               source=source[:300], synthetic=synthetic)


# ------------------------------------------------------------------------------------------ assignments
def _slot_problems(conn: Connection, district: str, person: dict[str, Any] | None, role: str, code: str,
                   position: str, line: int | None = None) -> list[RowProblem]:
    """Why ``person`` cannot hold the slot (``role``, ``code``, ``position``) of ``district``."""
    if role not in SLOTS:
        return [problem("role", f"unknown assignment role {role[:40]!r}; roles: {', '.join(SLOTS)}", line=line)]
    what, person_role, positions = SLOTS[role]
    found = []
    if position not in positions:
        wanted = " or ".join(p for p in positions if p) or "none"
        found.append(problem("position", f"a {role}'s position is {wanted}", line=line))
    if not code or len(code) > 100 or not code.isprintable():
        found.append(problem("code", f"give the {what}'s code (1–100 printable characters)", line=line))
    elif not store.slot_target_exists(conn, district, role, code):
        found.append(problem("code", f"no {what} {code!r} in district {district}", line=line))
    if person is not None and person["role"] != person_role:
        found.append(problem("role", f"a {role} slot is held by a {person_role}, and {person['name']} is a "
                                     f"{person['role']}", line=line))
    return found


def assign(conn: Connection, district: str, person_id: int, role: str, code: str, *, position: str = "",
           valid_from: dt.datetime | dt.date | None = None, source: str = "") -> dict[str, Any]:
    """Give person ``person_id`` the slot (``role``, ``code``, ``position``) from ``valid_from`` (default
    now), closing the assignment running in that slot then (for ``supervisor``: the person's running
    supervision-grid assignment, since a supervisor patrols one grid at a time).

    Returns
    -------
    ``{"assigned": 1, "closed": n}``.

    Raises
    ------
    NotFound for an unknown person; InvalidInput for an unknown role, position or target, or a person of
    another role; Conflict when the slot has an assignment starting at or after ``valid_from``.
    """
    person = store.person(conn, district, person_id)
    if person is None:
        raise NotFound(f"no person {person_id} in district {district}")
    problems = _slot_problems(conn, district, person, role, code, position)
    if problems:
        raise InvalidInput(problems[0]["reason"], field=problems[0]["field"], details=problems)
    at = _instant(conn, valid_from)
    return _write(conn, district, [{"person_id": person_id, "role": role, "target_code": code,
                                    "position": position}], at, source=source, replace_later=False)


def _slot_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """The slot an assignment row fills, as the store matches slots."""
    if row["role"] == "supervisor":
        return {"role": "supervisor", "person_id": row["person_id"]}
    return {"role": row["role"], "target_code": row["target_code"], "position": row.get("position", "")}


def _write(conn: Connection, district: str, rows: list[dict[str, Any]], at: dt.datetime, *, source: str,
           replace_later: bool, extra_slots: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """Close the running assignments of the rows' slots (and ``extra_slots``) at ``at`` and open the rows."""
    slots = [_slot_of(r) for r in rows] + list(extra_slots)
    later = store.later_assignments(conn, district, slots=slots, at=at)
    if later and not replace_later:
        first = later[0]
        raise Conflict(f"the {first['role']} slot {first['target_code']} already has an assignment from "
                       f"{first['valid_from']:%Y-%m-%d %H:%M %Z}, after {at:%Y-%m-%d %H:%M %Z}: assignments are "
                       "recorded in order", details=[problem("valid_from", "after a later assignment of the slot")])
    removed = store.delete_assignments(conn, district, [r["assignment_id"] for r in later]) if later else 0
    closed = store.close_slots(conn, district, slots=slots, at=at)
    assigned = store.insert_assignments(conn, district, rows, at=at, source=source[:300])
    return {"assigned": assigned, "closed": closed, "replaced": removed}


def assign_supervisors(conn: Connection, district: str, assignments: Mapping[str, Sequence[int]],
                       valid_from: dt.datetime | dt.date, *, source: str = "rotation",
                       replace_later: bool = False) -> dict[str, Any]:
    """From ``valid_from``, the supervisors of each supervision grid named in ``assignments`` are exactly the
    people listed for it (what a rotation plan publishes, one call per period, in date order).

    Parameters
    ----------
    conn : inside the caller's transaction (one publish, one transaction).
    district : the district's code.
    assignments : supervision-grid code (current grid version) -> person ids (people of ``district`` of role
        ``supervisor``); a person appears once. Grids not named keep their supervisors, except those who move.
    valid_from : the first local day (a ``date``, in the deployment's zone) or instant of the period.
    source : recorded on each assignment (e.g. ``rotation:<plan id>``), at most 300 characters.
    replace_later : remove assignments of these grids and people that start at or after ``valid_from`` (a plan
        published again) instead of refusing them.

    Returns
    -------
    ``{"assigned": n, "closed": m, "replaced": k}``: new assignments, running ones ended at ``valid_from``,
    later ones removed.

    Raises
    ------
    InvalidInput listing unknown grids, unknown people, people of another role or named twice; Conflict for
    later assignments (without ``replace_later``) or an account that would break 监管分离.

    Examples
    --------
    >>> assign_supervisors(conn, "110105", {"110105S0001": [12, 13]}, dt.date(2027, 1, 1))  # doctest: +SKIP
    {'assigned': 2, 'closed': 2, 'replaced': 0}
    """
    at = _instant(conn, valid_from)
    ids = [int(i) for people in assignments.values() for i in people]
    people = store.people_by_ids(conn, district, ids)
    problems = [problem("person_id", f"person {i} is named for more than one grid", key=str(i))
                for i in sorted({i for i in ids if ids.count(i) > 1})]
    rows = []
    for grid, named in assignments.items():
        if not store.slot_target_exists(conn, district, "supervisor", grid):
            problems.append(problem("code", f"no supervision grid {str(grid)[:40]!r} in district {district}",
                                    key=str(grid)[:40]))
        for person_id in named:
            person = people.get(int(person_id))
            if person is None:
                problems.append(problem("person_id", f"no person {person_id} in district {district}",
                                        key=str(person_id)))
            elif person["role"] != "supervisor":
                problems.append(problem("person_id", f"{person['name']} is a {person['role']}, not a supervisor",
                                        key=str(person_id)))
            rows.append({"person_id": int(person_id), "role": "supervisor", "target_code": grid, "position": ""})
    if problems:
        raise InvalidInput(f"{len(problems)} problem(s) in the supervisor assignments", details=problems)
    for person in people.values():
        if person["username"]:
            _check_link(conn, PersonInput(person["name"], person["role"], person["phone"], person["username"]))
    # The grids' other running supervisors leave them too: every supervisor of a named grid is a slot here.
    grids = [{"role": "supervisor", "target_code": grid, "position": ""} for grid in assignments]
    return _write(conn, district, rows, at, source=source, replace_later=replace_later,
                  extra_slots=grids)


# ------------------------------------------------------------------------------------------ import
COLUMNS = {"name": ("name", "姓名"), "role": ("role", "角色"), "phone": ("phone", "电话", "手机"),
           "account": ("account", "username", "账号"),
           "code": ("code", "grid", "community", "party", "team", "编码"), "position": ("position", "岗位"),
           "valid_from": ("valid_from", "起始日期")}
MAX_ROWS = 100_000
MAX_CELL = 300


@dataclass(frozen=True)
class _Row:
    """One import row, checked: the person, and the slot (role, code, position) from ``at``, if any."""

    line: int
    person: PersonInput
    role: str
    code: str
    position: str
    at: dt.datetime


def _columns(header: Sequence[str]) -> tuple[dict[str, str], list[RowProblem]]:
    """Our field -> the file's column; problems for missing ``name``/``role`` and unknown columns (warnings)."""
    found: dict[str, str] = {}
    known = {alias.lower(): ours for ours, aliases in COLUMNS.items() for alias in aliases}
    problems = []
    for column in header:
        ours = known.get(str(column).strip().lower())
        if ours is None:
            problems.append(problem(str(column)[:80], "unknown column, ignored; columns: " + ", ".join(COLUMNS),
                                    severity="warning"))
        elif ours in found:
            problems.append(problem(str(column)[:80], f"a second column for {ours}"))
        else:
            found[ours] = column
    problems += [problem(ours, f"the file has no {ours} column") for ours in ("name", "role") if ours not in found]
    return found, problems


def _row(conn: Connection, district: str, line: int, cells: Mapping[str, str], default_from: dt.datetime
         ) -> tuple[_Row | None, list[RowProblem]]:
    """One row checked against the district (slot targets) and the rules; (row, []) or (None, problems)."""
    long = [problem(f, f"longer than {MAX_CELL} characters", line=line) for f, v in cells.items() if len(v) > MAX_CELL]
    if long:
        return None, long
    role = cells.get("role", "").strip()
    person_role = SLOTS[role][1] if role in SLOTS else role
    person = PersonInput(name=cells.get("name", ""), role=person_role, phone=cells.get("phone", "").strip(),
                         username=cells.get("account", "").strip() or None)
    problems = person_problems(person, line) if role in SLOTS else [
        problem("role", f"unknown role {role[:40]!r}; roles: {', '.join(SLOTS)}", line=line)]
    code, position = cells.get("code", "").strip(), cells.get("position", "").strip().lower()
    if role in SLOTS and (code or position):
        problems += _slot_problems(conn, district, None, role, code, position, line)
    at = default_from
    if cells.get("valid_from", "").strip():
        try:
            at = _instant(conn, dt.date.fromisoformat(cells["valid_from"].strip()))
        except (ValueError, OverflowError):
            problems.append(problem("valid_from", "valid_from is a date YYYY-MM-DD", line=line))
    if problems:
        return None, problems
    return _Row(line, person, role, code, position, at), []


def import_people(conn: Connection, district: str, table: Any, *, valid_from: dt.datetime | dt.date | None = None,
                  source: str = "") -> dict[str, Any]:
    """Import a list of people and their slots (``table``: a frame of text columns, as
    ``loaders.tables.read_csv_table`` reads a CSV) into ``district``, in the caller's transaction.

    Columns: ``name``, ``role`` (an assignment role of ``SLOTS``: the person's role follows from it),
    ``phone``, ``account`` (a username), ``code`` (the supervision grid, team, community or party of the slot;
    empty: the person only), ``position`` (``lead``/``assisting`` for enforcement officers), ``valid_from``
    (a local date; default ``valid_from``, else today). A person is matched by account, else by name and
    phone. Rows are applied in date order, so one file may hold a slot's history.

    Returns
    -------
    ``{"rows", "people_added", "assigned", "closed", "problems"}`` (problems: warnings only).

    Raises
    ------
    InvalidInput with every row's problems (nothing is written: the caller's transaction rolls back), for
    an unknown district, a file without ``name``/``role``, or any bad row (including one that breaks 监管分离
    or starts before a later assignment of its slot).
    """
    if district not in district_codes(conn):
        raise InvalidInput(f"no district {district[:40]!r}", field="district")
    if len(table) > MAX_ROWS:
        raise InvalidInput(f"{len(table)} rows: at most {MAX_ROWS} in one import", field="file")
    columns, problems = _columns(list(table.columns))
    if any(p["severity"] == "error" for p in problems):
        raise InvalidInput(next(p["reason"] for p in problems if p["severity"] == "error"), field="file",
                           details=problems)
    default_from = _instant(conn, valid_from or dt.datetime.now(db.deployment_zone(conn)).date())
    rows = []
    where = {ours: list(table.columns).index(col) for ours, col in columns.items()}
    for index, values in enumerate(table.itertuples(index=False, name=None), start=2):
        cells = {ours: str(values[i]) for ours, i in where.items()}
        row, found = _row(conn, district, index, cells, default_from)
        problems += found
        if row is not None:
            rows.append(row)
    with conn.begin_nested():  # a file with one bad row writes nothing, whatever the caller does next
        counts = _apply(conn, district, sorted(rows, key=lambda r: (r.at, r.line)), source, problems)
        errors = [p for p in problems if p["severity"] == "error"]
        if errors:
            raise InvalidInput(f"{len(errors)} bad row(s): nothing imported", details=problems)
    return {"rows": len(table), **counts, "problems": problems}


def _apply(conn: Connection, district: str, rows: list[_Row], source: str,
           problems: list[RowProblem]) -> dict[str, int]:
    """Write the rows in order; a row refused by the rules adds its problem instead (the caller raises)."""
    counts = {"people_added": 0, "assigned": 0, "closed": 0}
    for row in rows:
        savepoint = conn.begin_nested()
        try:
            before = store.person_by_key(conn, district, row.person.username, row.person.name, row.person.phone)
            person = add_person(conn, district, row.person, source=source)
            counts["people_added"] += before is None
            if row.code and not store.assignment_exists(conn, district, person_id=person["person_id"], role=row.role,
                                                        target_code=row.code, position=row.position, at=row.at):
                done = _write(conn, district, [{"person_id": person["person_id"], "role": row.role,
                                                "target_code": row.code, "position": row.position}], row.at,
                              source=source, replace_later=False)
                counts["assigned"] += done["assigned"]
                counts["closed"] += done["closed"]
        except (InvalidInput, Conflict) as exc:
            savepoint.rollback()
            problems.append(problem(exc.details[0]["field"] if exc.details else None, exc.message, line=row.line))
        except IntegrityError as exc:  # a rule only the database saw (e.g. two rows racing for one account)
            savepoint.rollback()
            problems.append(problem(None, f"refused by the database: {str(exc.orig).splitlines()[0][:200]}",
                                    line=row.line))
        else:
            savepoint.commit()
    return counts


def assign_team_leaders(conn: Connection, district: str, leaders: Mapping[str, int],
                        valid_from: dt.datetime | dt.date, *, source: str = "rotation",
                        replace_later: bool = False) -> dict[str, Any]:
    """From ``valid_from``, each team named in ``leaders`` (team code -> person id, a ``supervisor``) is led by
    that person (分队长, rotated yearly); as ``assign_supervisors`` for the rest (returns, raises)."""
    at = _instant(conn, valid_from)
    people = store.people_by_ids(conn, district, [int(i) for i in leaders.values()])
    problems = []
    for team, person_id in leaders.items():
        problems += _slot_problems(conn, district, people.get(int(person_id)), "team_leader", team, "")
        if int(person_id) not in people:
            problems.append(problem("person_id", f"no person {person_id} in district {district}", key=str(person_id)))
    if problems:
        raise InvalidInput(f"{len(problems)} problem(s) in the team leaders", details=problems)
    rows = [{"person_id": int(p), "role": "team_leader", "target_code": t, "position": ""} for t, p in leaders.items()]
    return _write(conn, district, rows, at, source=source, replace_later=replace_later)
