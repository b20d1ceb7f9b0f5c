"""The case rules of a deployment, read once from its data directory and passed in to the case service.

Who a case goes to (``dispatch.yaml``), its disposal deadline and task time limits (``deadlines.yaml`` on
``calendar.yaml``), the level it is handled at (``escalation.yaml``), which reports are verified before filing
(``filing.yaml``) and the trained classifier (``models/<scheme>.joblib``) are data, not code. The app builds
one ``CaseRules`` in ``create_app`` and each CLI command one per run, from ``Settings.data_dir``; the domain
functions take it as an argument and never read the environment, so an app built for another data directory
follows that directory's rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from citygrid.cases.calendar import DeadlineTable, WorkingCalendar, load_rules
from citygrid.cases.escalation import EscalationRules, load_escalation
from citygrid.cases.intake import SOURCES
from citygrid.errors import InvalidInput
from citygrid.loaders import safeyaml
from citygrid.responsibility.ownership import ROLES as GRID_ROLES

DEFAULT_DISPATCH = {"event": "management", "component": "management"}
# The grid roles, in this order, a community-level case goes to when its class rule finds nobody
# (``cases.service._community_party``).
FALLBACK_ROLES = ("management", "responsibility")
# The rule that sends a class to the frontage unit (门前三包) covering the point.
FRONTAGE_RULE = "frontage_unit"
# What a class rule of ``dispatch.yaml`` may say: a grid role, the linked component's owner, the frontage unit.
RULE_NAMES = (*GRID_ROLES, "component_owner", FRONTAGE_RULE)
# Seed 001 (Chaoyang): hotline and public reports are verified on site by a supervisor before they are filed.
DEFAULT_VERIFY_BEFORE_FILING = ("hotline", "citizen", "open311")
FILING_KEYS = ("verify_before_filing",)
# How many classes' dispatch rules one ``DispatchRules`` keeps (a standard's taxonomy has a few hundred).
_RULES_KEPT = 4096


@dataclass(frozen=True)
class DispatchRules:
    """Who a case is dispatched to (派遣).

    Attributes
    ----------
    rules : ``kind/code``, ``kind/major`` or ``kind`` → a role of the grid's ownership at report time
        (``management``, ``responsibility``, ``enforcement``, ``supervision``) or ``component_owner``: who a
        case handled at community level goes to.
    overrides : ``kind/code`` → ``{"kind": "department", "code": …}``, a party named directly (community level).
    street_section : the section of the street office a street-level case goes to (``levels.street.section``,
        e.g. 城建科), carried in the party; empty: none named.
    district : ``default``, ``kind``, ``kind/major`` or ``kind/code`` → the code of the district department a
        district-level case goes to (``levels.district``; ``{district}`` in a code stands for the case's
        district code, so one file serves every district of the deployment).
    """

    rules: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_DISPATCH))
    overrides: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    street_section: str = ""
    district: Mapping[str, str] = field(default_factory=dict)
    # ``rule_for`` of each class asked (the rules never change after loading; a dispatch queue's page asks for
    # a few classes twenty times), at most ``_RULES_KEPT`` of them.
    _rule_of: dict[tuple[str, str], str] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def from_mapping(cls, data: Any) -> DispatchRules:
        """Rules from a parsed ``dispatch.yaml``; the built-in default (management) where a section is missing.

        Raises ``InvalidInput`` when the file is not a mapping, or its ``levels`` section is malformed.
        """
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise InvalidInput("dispatch rules must be a mapping with rules and overrides", field="dispatch")
        section, district = _levels(data.get("levels"))
        return cls(rules=_class_rules(data.get("rules")), overrides=dict(data.get("overrides") or {}),
                   street_section=section, district=district)

    @classmethod
    def load(cls, data_dir: Path) -> DispatchRules:
        """``<data_dir>/dispatch.yaml``; the built-in default where it is missing."""
        path = data_dir / "dispatch.yaml"
        return cls.from_mapping(yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None)

    def rule_for(self, kind: str, code: str) -> str:
        """The rule of a class: the most specific of ``kind/code``, ``kind/major``, ``kind``; else management."""
        known = self._rule_of.get((kind, code))
        if known is None:
            known = next((self.rules[k] for k in (f"{kind}/{code}", f"{kind}/{code[:2]}", kind) if k in self.rules),
                         "management")
            if len(self._rule_of) < _RULES_KEPT:
                self._rule_of[(kind, code)] = known
        return known

    def roles_named(self) -> tuple[str, ...]:
        """The grid roles a community-level case can go to: each one a rule names and ``FALLBACK_ROLES`` (the
        rules' other names, such as ``component_owner``, come along and match no role). A grid's owners read in
        these roles are all that dispatch chooses from."""
        return tuple(sorted({*self.rules.values(), *FALLBACK_ROLES}))

    def keys_ruled(self, rule: str) -> tuple[str, ...]:
        """The keys (``kind/code``, ``kind/major``, ``kind``) whose rule is ``rule``: a class has that rule
        (``rule_for``) only when one of its three keys is among them."""
        return tuple(sorted(k for k, v in self.rules.items() if v == rule))

    def district_department(self, kind: str, code: str, district: str) -> tuple[str, str] | None:
        """(key of ``levels.district`` that applies, party code) of the department a district-level case of class
        ``kind/code`` in ``district`` goes to: the most specific of ``kind/code``, ``kind/major``, ``kind``,
        ``default``; None when the file names none."""
        key = next((k for k in (f"{kind}/{code}", f"{kind}/{code[:2]}", kind, "default") if k in self.district),
                   None)
        return None if key is None else (key, self.district[key].replace("{district}", district))


# A class key of ``dispatch.yaml``: a kind, or a kind and a class or major code; ``levels.district`` adds default.
_CLASS_KEY = re.compile(r"(event|component)(/[A-Za-z0-9_-]{1,16})?")
_LEVEL_KEY = re.compile(rf"default|{_CLASS_KEY.pattern}")


def _class_rules(data: Any) -> dict[str, str]:
    """The ``rules`` section of ``dispatch.yaml`` (``DEFAULT_DISPATCH`` when empty or missing).

    Raises ``InvalidInput`` (naming ``dispatch.yaml rules``) for anything but a mapping of ``kind`` or
    ``kind/code`` to one of ``RULE_NAMES``: a rule nobody can follow would otherwise break every dispatch and the
    dispatcher's queue, not the file's load.
    """
    if not data:
        return dict(DEFAULT_DISPATCH)
    if not isinstance(data, dict):
        raise InvalidInput("dispatch.yaml rules: a mapping of class key to rule ({event: management, "
                           "'event/0102': frontage_unit, …})", field="dispatch")
    for key, rule in data.items():
        if not isinstance(key, str) or not _CLASS_KEY.fullmatch(key):
            raise InvalidInput(f"dispatch.yaml rules: key {key!r} is not event, component or kind/code (quote "
                               "codes: 'event/01')", field="dispatch")
        if rule not in RULE_NAMES:
            raise InvalidInput(f"dispatch.yaml rules[{key}]: {rule!r} is not one of {', '.join(RULE_NAMES)}",
                               field="dispatch")
    return dict(data)


def _levels(data: Any) -> tuple[str, dict[str, str]]:
    """The ``levels`` section of ``dispatch.yaml``: (the street office's section, district key → party code).

    Raises ``InvalidInput`` (naming ``dispatch.yaml levels``) for anything but a mapping of ``street:
    {section: text}`` and ``district: {key: code}`` with keys ``default``, ``kind`` or ``kind/code`` and codes
    of 1–100 printable characters.
    """
    if data is None:
        return "", {}
    if not isinstance(data, dict) or set(data) - {"street", "district"}:
        raise InvalidInput("dispatch.yaml levels: a mapping of street ({section: …}) and district "
                           "({default: <party code>, 'event/01': <party code>, …})", field="dispatch")
    street = data.get("street") or {}
    if not isinstance(street, dict) or set(street) - {"section"} or not isinstance(street.get("section", ""), str):
        raise InvalidInput("dispatch.yaml levels.street: {section: <text>} (the street office's section)",
                           field="dispatch")
    district = data.get("district") or {}
    if not isinstance(district, dict):
        raise InvalidInput("dispatch.yaml levels.district: a mapping of class key to party code", field="dispatch")
    for key, code in district.items():
        if not isinstance(key, str) or not _LEVEL_KEY.fullmatch(key):
            raise InvalidInput(f"dispatch.yaml levels.district: key {key!r} is not default, event, component or "
                               "kind/code (quote codes: 'event/01')", field="dispatch")
        if not isinstance(code, str) or not 0 < len(code) <= 100 or not code.isprintable():
            raise InvalidInput(f"dispatch.yaml levels.district[{key}]: {code!r} is not a party code (1–100 "
                               "printable characters, quoted)", field="dispatch")
    return street.get("section", "").strip(), dict(district)


@dataclass(frozen=True)
class FilingRules:
    """The filing rule (立案): which report sources a supervisor must verify on site (核实) before the acceptor
    may file the report (``accept``), as ``filing.yaml`` says.

    Attributes
    ----------
    verify_before_filing : sources (``intake.SOURCES``) whose reports must be ``verified`` before ``accept``.
    origin : where the rule was read (``data/filing.yaml``, or the built-in default), named in refusals.
    """

    verify_before_filing: tuple[str, ...] = DEFAULT_VERIFY_BEFORE_FILING
    origin: str = "the built-in default (no filing.yaml)"

    @classmethod
    def from_mapping(cls, data: Any, origin: str) -> FilingRules:
        """Rules from a parsed ``filing.yaml`` (``origin`` names it); the default where the key is missing.

        Raises ``InvalidInput`` naming ``origin`` for a document that is not a mapping, an unknown key, a
        ``verify_before_filing`` that is not a list, or a source citygrid does not know."""
        if data is None:
            return cls(origin=origin)
        if not isinstance(data, dict):
            raise InvalidInput(f"{origin} must be a mapping with verify_before_filing", field="filing.yaml")
        unknown = sorted(str(k)[:40] for k in data if k not in FILING_KEYS)
        if unknown:
            raise InvalidInput(f"{origin}: unknown key {unknown[0]!r}; known: {', '.join(FILING_KEYS)}",
                               field="filing.yaml")
        sources = data.get("verify_before_filing", list(DEFAULT_VERIFY_BEFORE_FILING))
        if sources is None:
            sources = []
        if not isinstance(sources, list):
            raise InvalidInput(f"{origin}: verify_before_filing must be a list of sources, e.g. [hotline, "
                               "citizen]", field="filing.yaml")
        bad = [s for s in sources if not isinstance(s, str) or s not in SOURCES]
        if bad:
            raise InvalidInput(f"{origin}: verify_before_filing: unknown source {str(bad[0])[:40]!r}; sources: "
                               f"{', '.join(SOURCES)}", field="filing.yaml")
        return cls(verify_before_filing=tuple(dict.fromkeys(sources)), origin=origin)

    @classmethod
    def load(cls, data_dir: Path) -> FilingRules:
        """``<data_dir>/filing.yaml`` (size, aliases and nesting capped: ``loaders.safeyaml``); the built-in
        default where it is missing."""
        path = data_dir / "filing.yaml"
        if not path.exists():
            return cls()
        origin = f"{data_dir.name}/filing.yaml"
        return cls.from_mapping(safeyaml.load(path.read_bytes(), what=origin, field="filing.yaml"), origin)

    def must_verify(self, source: str | None) -> bool:
        """Whether a report from ``source`` must be verified before it is filed."""
        return source in self.verify_before_filing

    def refusal(self, case: dict[str, Any]) -> str | None:
        """Why ``accept`` would be refused for ``case`` now (a still ``reported`` report from a source that must
        be verified first; the message names the rule, its file and what to do), or None."""
        if case["status"] != "reported" or not self.must_verify(case.get("source")):
            return None
        return (f"case {case['case_id']} cannot be filed yet: the filing rule verify_before_filing in "
                f"{self.origin} says a {case['source']} report is first verified on site by a supervisor; "
                "send a supervisor (action request_verify) or wait for their verify")


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
    filing: FilingRules = field(default_factory=FilingRules)

    @classmethod
    def load(cls, data_dir: Path) -> CaseRules:
        """Read the rules of ``data_dir`` (``Settings.data_dir``); a missing file means its built-in default.

        Raises ``InvalidInput`` naming the file whose content is not valid.
        """
        deadlines, calendar = load_rules(data_dir)
        return cls(dispatch=DispatchRules.load(data_dir), deadlines=deadlines, calendar=calendar,
                   escalation=load_escalation(data_dir), models_dir=data_dir / "models",
                   filing=FilingRules.load(data_dir))

    def model_path(self, scheme: str) -> Path | None:
        """Where the trained classifier of class scheme ``scheme`` is (or is saved by ``train-classifier``)."""
        return None if self.models_dir is None else self.models_dir / f"{scheme}.joblib"

    def model_for(self, scheme: str, kind: str | None) -> Path | None:
        """The trained model to classify a text of ``scheme`` with (``classify.classifier_for``): none when the
        ``kind`` is given, since a trained model chooses among the classes of both kinds and the taxonomy
        classifier of that kind's classes is asked instead."""
        return None if kind else self.model_path(scheme)
