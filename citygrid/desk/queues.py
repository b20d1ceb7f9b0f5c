"""The desk's work queues (#21), one per step of the closed loop, as data: who sees a queue, which cases are in
it, in what order, what each row shows and which due column its overdue counts read.

A queue's cases are always within the caller's case scope (``cases.scope``): ``acting_as`` names the workflow
role the queue is worked in, so the supervisor's queues keep to the team's grids and the unit's to its party's
cases (``cases.scope.action_scope``), exactly as acting on one of those cases would. Admins see every queue and
every case in it.

Pure data and functions; no database, no Flask.

Examples
--------
>>> QUEUES["dispose"].acting_as
'unit'
>>> [q.name for q in visible_queues(("calltaker",))]
['callback']
"""

from __future__ import annotations

from dataclasses import dataclass

from citygrid.errors import Forbidden, NotFound

# Sources whose complainant is called back (回访) after closing (seed 001's hotline loop; citizens and Open311
# report as the public does). The partial index ``cases_desk_closed`` (migration 0016) holds the same list.
CALLBACK_SOURCES = ("hotline", "citizen", "open311")
# A task due within this many hours counts as ``due_soon``.
DUE_SOON_HOURS = 4.0


@dataclass(frozen=True)
class Queue:
    """One work queue.

    Attributes
    ----------
    name, label : the queue's name in the URL (``/api/v1/desk/<name>``) and what the page calls it.
    roles : the account roles that see it (admins always do).
    acting_as : the workflow role the queue is worked in (``supervisor``, ``unit``), whose action scope its cases
        keep to; None: the caller's read scope.
    statuses : the workflow statuses of its cases.
    condition : a further condition by name (``desk.store.CONDITIONS``): ``verify_task`` (a verification was
        asked for), ``closed_public_report`` (from one of ``CALLBACK_SOURCES`` and closed: it awaits its
        callback, which is what moves a closed case on); None: none.
    order : the order of its rows by name (``desk.store.ORDERS``); with ``near`` the rows are nearest first.
    due : the column of the task's time limit that ``overdue`` and ``due_soon`` count (None: none counted).
    columns : what each row shows besides the case's identity, place and class.
    photos : whether rows carry the photo count and the first photo (what a supervisor on site looks at).
    clock_s : for rows that depend on the clock (a dispatch preview's deadline counted from now), how often
        the queue's ETag changes even when no case does; None: only when its cases do.
    """

    name: str
    label: str
    roles: tuple[str, ...]
    statuses: tuple[str, ...]
    order: str
    columns: tuple[str, ...]
    acting_as: str | None = None
    condition: str | None = None
    due: str | None = None
    photos: bool = False
    clock_s: int | None = None

    def seen_by(self, roles: tuple[str, ...]) -> bool:
        """Whether an account with ``roles`` sees the queue (admins see every one)."""
        return "admin" in roles or any(r in self.roles for r in roles)


QUEUES: dict[str, Queue] = {q.name: q for q in (
    Queue("accept", "受理 new reports", ("acceptor", "dispatcher"), ("reported", "verified"), "oldest",
          ("source", "classification", "needs_review", "verification", "verify_due_at"), due="verify_due_at"),
    Queue("dispatch", "派遣 accepted cases", ("dispatcher",), ("accepted",), "oldest",
          ("level", "suggestion"), clock_s=60),
    Queue("dispose", "处置 cases dispatched to my unit", ("unit",), ("dispatched",), "deadline",
          ("dispatched_to", "level", "deadline_at", "seconds_left"), acting_as="unit", due="deadline_at"),
    Queue("verify", "核实 verification tasks", ("supervisor",), ("reported",), "verify_due",
          ("source", "verify_due_at", "seconds_left"), acting_as="supervisor", condition="verify_task",
          due="verify_due_at", photos=True),
    Queue("check", "核查 check tasks", ("supervisor",), ("fed_back",), "check_due",
          ("dispatched_to", "check_due_at", "seconds_left"), acting_as="supervisor", due="check_due_at",
          photos=True),
    Queue("callback", "回访 callbacks", ("calltaker", "acceptor", "dispatcher"), ("closed",), "recently_closed",
          ("source", "closed_at"), condition="closed_public_report"),
    Queue("investigate", "调研 investigations", ("lead",), ("investigating",), "oldest", ("level",)),
)}


def queue(name: str) -> Queue:
    """The queue called ``name``; ``NotFound`` naming every queue otherwise."""
    if name not in QUEUES:
        raise NotFound(f"no queue {name[:40]!r}; queues: {', '.join(QUEUES)}")
    return QUEUES[name]


def visible_queues(roles: tuple[str, ...]) -> list[Queue]:
    """The queues an account with ``roles`` sees, in the loop's order."""
    return [q for q in QUEUES.values() if q.seen_by(roles)]


def require_queue(name: str, roles: tuple[str, ...], username: str) -> Queue:
    """The queue ``name`` when an account with ``roles`` sees it; ``NotFound`` for an unknown queue,
    ``Forbidden`` naming the roles that see it otherwise."""
    wanted = queue(name)
    if not wanted.seen_by(roles):
        raise Forbidden(f"{username} ({', '.join(roles)}) does not work the {name} queue; it is for: "
                        f"{', '.join((*wanted.roles, 'admin'))}")
    return wanted
