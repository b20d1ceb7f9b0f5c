"""The case rules of a deployment, read once from its data directory and passed in to the case service.

Who a case goes to (``dispatch.yaml``), its disposal deadline (``deadlines.yaml`` on ``calendar.yaml``), the
level it is handled at (``escalation.yaml``) and the trained classifier (``models/<scheme>.joblib``) are data,
not code. The app builds one ``CaseRules`` in ``create_app`` and each CLI command one per run, from
``Settings.data_dir``; the domain functions take it as an argument and never read the environment, so an
app built for another data directory follows that directory's rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from citygrid.cases.calendar import DeadlineTable, WorkingCalendar, load_rules
from citygrid.cases.escalation import EscalationRules, load_escalation
from citygrid.errors import InvalidInput

DEFAULT_DISPATCH = {"event": "management", "component": "management"}


@dataclass(frozen=True)
class DispatchRules:
    """Who a case is dispatched to (派遣).

    Attributes
    ----------
    rules : ``kind/code``, ``kind/major`` or ``kind`` → a role of the grid's ownership at report time
        (``management``, ``responsibility``, ``enforcement``, ``supervision``) or ``component_owner``.
    overrides : ``kind/code`` → ``{"kind": "department", "code": …}``, a party named directly.
    """

    rules: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_DISPATCH))
    overrides: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Any) -> DispatchRules:
        """Rules from a parsed ``dispatch.yaml``; the built-in default (management) where a section is missing.

        Raises ``InvalidInput`` when the file is not a mapping.
        """
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise InvalidInput("dispatch rules must be a mapping with rules and overrides", field="dispatch")
        return cls(rules=dict(data.get("rules") or DEFAULT_DISPATCH), overrides=dict(data.get("overrides") or {}))

    @classmethod
    def load(cls, data_dir: Path) -> DispatchRules:
        """``<data_dir>/dispatch.yaml``; the built-in default where it is missing."""
        path = data_dir / "dispatch.yaml"
        return cls.from_mapping(yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None)

    def rule_for(self, kind: str, code: str) -> str:
        """The rule of a class: the most specific of ``kind/code``, ``kind/major``, ``kind``; else management."""
        return next((self.rules[k] for k in (f"{kind}/{code}", f"{kind}/{code[:2]}", kind) if k in self.rules),
                    "management")


@dataclass(frozen=True)
class CaseRules:
    """Every rule the case service applies, as read from one data directory.

    ``models_dir`` None means no trained classifier: descriptions are classified by taxonomy similarity.
    ``CaseRules()`` is the built-in default of every part (as for a data directory without any rule file).
    """

    dispatch: DispatchRules = field(default_factory=DispatchRules)
    deadlines: DeadlineTable = field(default_factory=lambda: DeadlineTable(defaults={}))
    calendar: WorkingCalendar = field(default_factory=WorkingCalendar)
    escalation: EscalationRules = field(default_factory=EscalationRules)
    models_dir: Path | None = None

    @classmethod
    def load(cls, data_dir: Path) -> CaseRules:
        """Read the rules of ``data_dir`` (``Settings.data_dir``); a missing file means its built-in default.

        Raises ``InvalidInput`` naming the file whose content is not valid.
        """
        deadlines, calendar = load_rules(data_dir)
        return cls(dispatch=DispatchRules.load(data_dir), deadlines=deadlines, calendar=calendar,
                   escalation=load_escalation(data_dir), models_dir=data_dir / "models")

    def model_path(self, scheme: str) -> Path | None:
        """Where the trained classifier of class scheme ``scheme`` is (or is saved by ``train-classifier``)."""
        return None if self.models_dir is None else self.models_dir / f"{scheme}.joblib"

    def model_for(self, scheme: str, kind: str | None) -> Path | None:
        """The trained model to classify a text of ``scheme`` with (``classify.classifier_for``): none when the
        ``kind`` is given, since a trained model chooses among the classes of both kinds and the taxonomy
        classifier of that kind's classes is asked instead."""
        return None if kind else self.model_path(scheme)
