"""Escalation rules (升级): the level a case is handled at — community → street → district — by rule.

Data, not code (``data/escalation.yaml``): the level cases of a class start at (an emergency such as a road
collapse goes to the district at once), and how many hand-backs (退回), failed checks (返工) or reopenings
(the complainant not satisfied) raise a case one level. Overdue cases are raised by
``citygrid cases escalate-overdue``. Pure functions; the case service applies them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from citygrid.cases.workflow import LEVELS
from citygrid.errors import InvalidInput

COUNTED_ACTIONS = ("hand_back", "check_fail", "reopen")


@dataclass(frozen=True)
class EscalationRules:
    """``initial``: ``kind/code`` or ``kind/major`` or ``kind`` → level; ``after``: action → count."""

    initial: dict[str, str] = field(default_factory=dict)
    after: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: dict[str, Any] | None) -> EscalationRules:
        """Validate a parsed YAML mapping; ``InvalidInput`` names the bad entry."""
        data = data or {}
        initial = {str(k): str(v) for k, v in (data.get("initial_level") or {}).items()}
        for key, level in initial.items():
            if level not in LEVELS:
                raise InvalidInput(f"escalation initial_level {key}: {level!r} is not one of {', '.join(LEVELS)}",
                                   field="escalation")
        after = {}
        for action, count in (data.get("after") or {}).items():
            if action not in COUNTED_ACTIONS:
                raise InvalidInput(f"escalation after: {action!r} is not one of {', '.join(COUNTED_ACTIONS)}",
                                   field="escalation")
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise InvalidInput(f"escalation after {action}: {count!r} must be a whole number ≥ 1",
                                   field="escalation")
            after[action] = count
        return cls(initial=initial, after=after)

    def initial_level(self, kind: str, code: str) -> str:
        """The level a new case of this class starts at (most specific key wins; default community)."""
        for key in (f"{kind}/{code}", f"{kind}/{code[:2]}", kind):
            if key in self.initial:
                return self.initial[key]
        return LEVELS[0]

    def triggered(self, action: str, times: int) -> str | None:
        """A note when the ``times``-th occurrence of ``action`` on a case calls for one level up, else None."""
        limit = self.after.get(action)
        if limit is not None and times > 0 and times % limit == 0:
            return f"rule: {action} {times} time(s)"
        return None


def next_level(level: str) -> str | None:
    """The level above ``level``, None at the top."""
    position = LEVELS.index(level)
    return LEVELS[position + 1] if position + 1 < len(LEVELS) else None


def load_escalation(data_dir: Path) -> EscalationRules:
    """``data/escalation.yaml`` (no rules where it is missing); read once per app or command run, by
    ``cases.rules.CaseRules.load``."""
    path = data_dir / "escalation.yaml"
    return EscalationRules.from_mapping(yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None)
