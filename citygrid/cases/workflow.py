"""The closed-loop case workflow as a state machine (DOMAIN.md §5).

report → (verify) → accept 立案 → dispatch 派遣 → dispose/feed back 处置反馈 → check 核查 → close 结案 → evaluate;
with the returns the seeds describe: a unit hands a case back to the centre (not its duty), a failed check
sends it back for rework (返工), a closed case can be reopened (the complainant is not satisfied).
Pure data and functions; the store applies a transition atomically.
"""

from __future__ import annotations

from dataclasses import dataclass

from citygrid.errors import Conflict, InvalidInput

STATES = ("reported", "verified", "accepted", "rejected", "dispatched", "fed_back", "checked", "closed",
          "evaluated")
OPEN_STATES = ("reported", "verified", "accepted", "dispatched", "fed_back", "checked")
CLOSED_STATES = ("rejected", "closed", "evaluated")


@dataclass(frozen=True)
class Transition:
    action: str
    sources: tuple[str, ...]
    target: str
    roles: tuple[str, ...]
    label: str


TRANSITIONS: dict[str, Transition] = {t.action: t for t in (
    Transition("verify", ("reported",), "verified", ("supervisor",), "核实"),
    Transition("accept", ("reported", "verified"), "accepted", ("acceptor", "admin"), "立案"),
    Transition("reject", ("reported", "verified"), "rejected", ("acceptor", "admin"), "不予立案"),
    Transition("dispatch", ("accepted",), "dispatched", ("dispatcher", "admin"), "派遣"),
    Transition("hand_back", ("dispatched",), "accepted", ("unit", "dispatcher", "admin"), "退回"),
    Transition("feed_back", ("dispatched",), "fed_back", ("unit", "admin"), "处置反馈"),
    Transition("check_pass", ("fed_back",), "checked", ("supervisor", "admin"), "核查通过"),
    Transition("check_fail", ("fed_back",), "dispatched", ("supervisor", "admin"), "核查未通过，返工"),
    Transition("close", ("checked",), "closed", ("acceptor", "admin"), "结案"),
    Transition("evaluate", ("closed",), "evaluated", ("acceptor", "admin"), "评价"),
    Transition("reopen", ("closed", "evaluated", "rejected"), "accepted", ("acceptor", "admin"), "重新受理"),
    # Reclassification keeps the status: the acceptor confirms or corrects the class before dispatch.
    Transition("reclassify", ("reported", "verified", "accepted"), "", ("acceptor", "admin"), "改类"),
    # Escalation keeps the status and raises the handling level: community -> street -> district.
    Transition("escalate", ("accepted", "dispatched", "fed_back"), "", ("dispatcher", "admin", "system"), "升级"),
)}
LEVELS = ("community", "street", "district")


def next_state(status: str, action: str) -> Transition:
    """The transition ``action`` from ``status``; ``InvalidInput`` for an unknown action, ``Conflict``
    (HTTP 409) for one the case's current status does not allow."""
    if action not in TRANSITIONS:
        raise InvalidInput(f"unknown action {action!r}; actions: {', '.join(TRANSITIONS)}", field="action")
    transition = TRANSITIONS[action]
    if status not in transition.sources:
        allowed = [t.action for t in TRANSITIONS.values() if status in t.sources]
        raise Conflict(f"action {action!r} is not allowed on a {status} case; from {status} the actions are "
                       f"{', '.join(allowed) or 'none'}")
    return transition


def target_status(transition: Transition, status: str) -> str:
    """The status after ``transition`` (escalation keeps the current one)."""
    return transition.target or status


def allowed_actions(status: str) -> list[str]:
    return [t.action for t in TRANSITIONS.values() if status in t.sources]
