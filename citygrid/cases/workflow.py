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
          "evaluated", "investigating", "duplicate")
# investigating (调研): a second dissatisfaction at the callback opens an investigation, open until a
# district-level role closes it (seed 001's hotline loop).
OPEN_STATES = ("reported", "verified", "accepted", "dispatched", "fed_back", "checked", "investigating")
# duplicate: a report the acceptor marked as a duplicate of another open case (``attrs.duplicate_of``); it is
# handled as that case and closes here.
CLOSED_STATES = ("rejected", "closed", "evaluated", "duplicate")


@dataclass(frozen=True)
class Transition:
    action: str
    sources: tuple[str, ...]
    target: str
    roles: tuple[str, ...]
    label: str
    # Body fields the action cannot do without (``note``: the reason), beyond ``action`` itself.
    needs: tuple[str, ...] = ()
    # Body fields the action takes when given (``party_code``: another party than the suggested one).
    optional: tuple[str, ...] = ()


TRANSITIONS: dict[str, Transition] = {t.action: t for t in (
    Transition("verify", ("reported",), "verified", ("supervisor",), "核实"),
    Transition("accept", ("reported", "verified"), "accepted", ("acceptor", "admin"), "立案"),
    Transition("reject", ("reported", "verified"), "rejected", ("acceptor", "admin"), "不予立案", ("note",)),
    # The acceptor sends a supervisor to verify a report on site (核实); the status stays, the verification task
    # gets its time limit (``verify_due_at``). Reports from the sources of data/filing.yaml get one on intake.
    Transition("request_verify", ("reported",), "", ("acceptor", "admin"), "派核实"),
    # A report of a problem another open case of the district already holds: closed as that case's duplicate.
    Transition("mark_duplicate", ("reported", "verified"), "duplicate", ("acceptor", "admin"), "重复案件",
               ("duplicate_of",)),
    Transition("dispatch", ("accepted",), "dispatched", ("dispatcher", "admin"), "派遣", optional=("party_code",)),
    Transition("hand_back", ("dispatched",), "accepted", ("unit", "dispatcher", "admin"), "退回", ("note",)),
    Transition("feed_back", ("dispatched",), "fed_back", ("unit", "admin"), "处置反馈"),
    Transition("check_pass", ("fed_back",), "checked", ("supervisor", "admin"), "核查通过"),
    # A failed check goes back to the dispatcher (returned to accepted): the rework (返工) is re-dispatched, at
    # the level escalation.yaml raises it to, so "整改无效" reaches the next level's party (seed 000).
    Transition("check_fail", ("fed_back",), "accepted", ("supervisor", "admin"), "核查未通过，返工"),
    Transition("close", ("checked",), "closed", ("acceptor", "admin"), "结案"),
    Transition("evaluate", ("closed",), "evaluated", ("acceptor", "admin"), "评价"),
    Transition("reopen", ("closed", "evaluated", "rejected"), "accepted", ("acceptor", "admin"), "重新受理"),
    # The callback (回访) to the complainant after closing: satisfied / basically satisfied -> evaluated; the first
    # "not satisfied" -> accepted (second handling, 二次处理); a second -> investigating (调研). The target
    # depends on the body and the case's history: ``callback_target``.
    Transition("callback", ("closed",), "", ("calltaker", "acceptor", "admin"), "回访", ("satisfaction",)),
    Transition("close_investigation", ("investigating",), "closed", ("district", "admin"), "调研结案", ("note",)),
    # Reclassification keeps the status: the acceptor confirms or corrects the class before dispatch.
    Transition("reclassify", ("reported", "verified", "accepted"), "", ("acceptor", "admin"), "改类",
               ("kind", "class_code")),
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


SATISFACTION = ("satisfied", "basic", "unsatisfied")


def callback_target(satisfaction: str, unsatisfied_before: int) -> str:
    """The status a callback (回访) leads to: ``evaluated`` for satisfied or basically satisfied, ``accepted``
    (second handling) for the first "not satisfied", ``investigating`` (调研) for any later one.

    >>> callback_target("basic", 0), callback_target("unsatisfied", 0), callback_target("unsatisfied", 1)
    ('evaluated', 'accepted', 'investigating')
    """
    if satisfaction not in SATISFACTION:
        raise InvalidInput(f"satisfaction must be one of {', '.join(SATISFACTION)}", field="satisfaction")
    if satisfaction != "unsatisfied":
        return "evaluated"
    return "accepted" if unsatisfied_before == 0 else "investigating"


def allowed_actions(status: str) -> list[str]:
    return [t.action for t in TRANSITIONS.values() if status in t.sources]
