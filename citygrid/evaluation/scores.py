"""Scores, grades and ranks as data: ``data/evaluation.yaml``, read once and passed in.

The shipped weights are DOMAIN.md §12.6's usable default, not the standard (GB/T 30428.4's weights were not
found): supervisors valid reports 40 % + missed reports 20 % (as 1 − rate) + timely verification 20 % + timely
check 20 %, graded A ≥ 90, B ≥ 75, C ≥ 60, D ≥ 40, else E; the other kinds likewise with their own indicators.

A score is ``100 × Σ wᵢ·sᵢ / Σ wᵢ`` over the indicators that have a value (``sᵢ`` the rate, or 1 − rate where
lower is better); an indicator with no denominator this month is left out and its weight shared by the others,
which the score's ``inputs`` show. No indicator at all: no score, no grade, no rank.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from citygrid.errors import InvalidInput
from citygrid.evaluation.indicators import INDICATORS, KINDS, PUBLIC_KINDS
from citygrid.loaders import safeyaml

FILE = "evaluation.yaml"
DEFAULT_GRADES = (("A", 90.0), ("B", 75.0), ("C", 60.0), ("D", 40.0))
DEFAULT_FALLBACK = "E"
DEFAULT_WEIGHTS: dict[str, dict[str, float]] = {
    "supervisors": {"valid_report_rate": 40, "missed_report_rate": 20, "timely_verification_rate": 20,
                    "timely_check_rate": 20},
    "teams": {"valid_report_rate": 40, "missed_report_rate": 20, "timely_verification_rate": 20,
              "timely_check_rate": 20},
    "units": {"on_time_disposal_rate": 40, "rework_rate": 20, "hand_back_rate": 20, "closure_rate": 20},
    "streets": {"closure_rate": 40, "on_time_rate": 40, "satisfaction_rate": 20},
    "communities": {"closure_rate": 40, "on_time_rate": 40, "satisfaction_rate": 20},
}
_TOP_KEYS = ("grades", "fallback_grade", "weights", "public", "note")
_PUBLIC_KEYS = ("kinds", "show_person_names")


@dataclass(frozen=True)
class EvaluationRules:
    """What ``evaluation.yaml`` says (the built-in default where it is missing).

    Attributes
    ----------
    weights : kind → indicator → weight (each kind's weights sum to 100).
    grades : (grade, lowest score) pairs, thresholds descending; a score below the last is ``fallback_grade``.
    public_kinds : the kinds the public ranking shows (units and streets at most: persons never).
    show_person_names : whether the public ranking names a party of kind ``person`` (anonymised by default).
    origin : where the rules were read, named in refusals and shown in answers.
    """

    weights: dict[str, dict[str, float]] = field(default_factory=lambda: {k: dict(v) for k, v in
                                                                       DEFAULT_WEIGHTS.items()})
    grades: tuple[tuple[str, float], ...] = DEFAULT_GRADES
    fallback_grade: str = DEFAULT_FALLBACK
    public_kinds: tuple[str, ...] = PUBLIC_KINDS
    show_person_names: bool = False
    origin: str = "the built-in default (no evaluation.yaml)"

    @classmethod
    def load(cls, data_dir: Path) -> EvaluationRules:
        """``<data_dir>/evaluation.yaml`` (size, aliases and nesting capped); the default when it is missing.

        Raises ``InvalidInput`` naming the file and the key that is wrong."""
        path = data_dir / FILE
        if not path.exists():
            return cls()
        origin = f"{data_dir.name}/{FILE}"
        return cls.from_mapping(safeyaml.load(path.read_bytes(), what=origin, field=FILE), origin)

    @classmethod
    def from_mapping(cls, data: Any, origin: str) -> EvaluationRules:
        """Rules from a parsed ``evaluation.yaml``; ``InvalidInput`` naming ``origin`` and the key otherwise."""
        if data is None:
            return cls(origin=origin)
        if not isinstance(data, dict):
            raise _bad(origin, "", "must be a mapping with grades, weights and public")
        unknown = [str(k)[:40] for k in data if k not in _TOP_KEYS]
        if unknown:
            raise _bad(origin, unknown[0], f"unknown key; known: {', '.join(_TOP_KEYS)}")
        fallback = data.get("fallback_grade", DEFAULT_FALLBACK)
        if not isinstance(fallback, str) or not 0 < len(fallback) <= 8:
            raise _bad(origin, "fallback_grade", "must be a short text such as E")
        public_kinds, show_names = _public(data.get("public"), origin)
        return cls(weights=_weights(data.get("weights"), origin), grades=_grades(data.get("grades"), origin),
                   fallback_grade=fallback, public_kinds=public_kinds, show_person_names=show_names,
                   origin=origin)

    def grade(self, score: float | None) -> str | None:
        """The grade of ``score`` (None for no score)."""
        if score is None:
            return None
        return next((g for g, low in self.grades if score >= low), self.fallback_grade)

    def describe(self, kind: str) -> dict[str, Any]:
        """The weights and grades used for ``kind``, for the answer."""
        return {"weights": dict(self.weights[kind]), "grades": {g: low for g, low in self.grades},
                "fallback_grade": self.fallback_grade, "rules": self.origin,
                "note": "DOMAIN.md §12.6's usable default, not the standard; set your own in evaluation.yaml"}


def _bad(origin: str, key: str, reason: str) -> InvalidInput:
    return InvalidInput(f"{origin}{' ' + key if key else ''}: {reason}", field=FILE)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _weights(data: Any, origin: str) -> dict[str, dict[str, float]]:
    """``weights``: kind → indicator → weight ≥ 0, each kind summing to 100; a missing kind keeps its default."""
    weights = {k: dict(v) for k, v in DEFAULT_WEIGHTS.items()}
    if data is None:
        return weights
    if not isinstance(data, dict):
        raise _bad(origin, "weights", f"must map kinds ({', '.join(KINDS)}) to indicator weights")
    for kind, given in data.items():
        if kind not in KINDS:
            raise _bad(origin, f"weights.{str(kind)[:40]}", f"unknown kind; kinds: {', '.join(KINDS)}")
        names = [i.name for i in INDICATORS[kind]]
        if not isinstance(given, dict) or not given:
            raise _bad(origin, f"weights.{kind}", f"must map indicators ({', '.join(names)}) to weights")
        for name, weight in given.items():
            if name not in names:
                raise _bad(origin, f"weights.{kind}.{str(name)[:40]}",
                           f"unknown indicator; {kind} has {', '.join(names)}")
            value = _number(weight)
            if value is None or value < 0:
                raise _bad(origin, f"weights.{kind}.{name}", "must be a number ≥ 0")
        total = sum(float(w) for w in given.values())
        if abs(total - 100.0) > 1e-9:
            raise _bad(origin, f"weights.{kind}", f"weights must sum to 100, not {total:g}")
        weights[kind] = {name: float(w) for name, w in given.items()}
    return weights


def _grades(data: Any, origin: str) -> tuple[tuple[str, float], ...]:
    """``grades``: an ordered mapping grade → lowest score (0–100), thresholds strictly descending."""
    if data is None:
        return DEFAULT_GRADES
    if not isinstance(data, dict) or not data:
        raise _bad(origin, "grades", "must map grades to their lowest score, e.g. {A: 90, B: 75}")
    pairs: list[tuple[str, float]] = []
    for grade, low in data.items():
        value = _number(low)
        if not isinstance(grade, str) or not 0 < len(grade) <= 8:
            raise _bad(origin, f"grades.{str(grade)[:40]}", "a grade is a short text such as A")
        if value is None or not 0 <= value <= 100:
            raise _bad(origin, f"grades.{grade}", "must be a score between 0 and 100")
        if pairs and value >= pairs[-1][1]:
            raise _bad(origin, f"grades.{grade}", f"thresholds must descend: {value:g} is not below "
                       f"{pairs[-1][0]}'s {pairs[-1][1]:g}")
        pairs.append((grade, value))
    return tuple(pairs)


def _public(data: Any, origin: str) -> tuple[tuple[str, ...], bool]:
    """``public``: ``kinds`` (a subset of units, streets) and ``show_person_names`` (default false)."""
    if data is None:
        return PUBLIC_KINDS, False
    if not isinstance(data, dict):
        raise _bad(origin, "public", f"must be a mapping with {', '.join(_PUBLIC_KEYS)}")
    unknown = [str(k)[:40] for k in data if k not in _PUBLIC_KEYS]
    if unknown:
        raise _bad(origin, f"public.{unknown[0]}", f"unknown key; known: {', '.join(_PUBLIC_KEYS)}")
    kinds = data.get("kinds", list(PUBLIC_KINDS))
    if not isinstance(kinds, list) or any(k not in PUBLIC_KINDS for k in kinds):
        raise _bad(origin, "public.kinds", f"a list of {', '.join(PUBLIC_KINDS)} (persons are never public)")
    show = data.get("show_person_names", False)
    if not isinstance(show, bool):
        raise _bad(origin, "public.show_person_names", "must be true or false")
    return tuple(dict.fromkeys(kinds)), show


def score(rules: EvaluationRules, kind: str, values: dict[str, float | None]) -> tuple[float | None,
                                                                                       dict[str, Any]]:
    """(score 0–100 rounded to 2 decimals or None, inputs) of one row's indicator ``values`` (rates 0–1).

    ``inputs`` names, per indicator, its rate, the value scored (1 − rate where lower is better), its weight as
    configured, the weight used (shared out when others are missing) and the points it gave.
    """
    weights = rules.weights[kind]
    better = {i.name: i.better for i in INDICATORS[kind]}
    present = {n: w for n, w in weights.items() if values.get(n) is not None}
    total = sum(present.values())
    inputs: dict[str, Any] = {}
    for name, weight in weights.items():
        rate = values.get(name)
        scored = None if rate is None else (1.0 - rate if better[name] == "lower" else rate)
        used = 0.0 if scored is None or total == 0 else weight * 100.0 / total
        inputs[name] = {"rate": rate, "scored": scored, "weight": weight, "weight_used": round(used, 4),
                        "points": None if scored is None else round(used * scored, 4)}
    if total == 0:
        return None, inputs
    return round(sum(i["points"] for i in inputs.values() if i["points"] is not None), 2), inputs


def rank(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` ordered by ``score`` (highest first; no score last, by code) with ``rank``: equal scores share a
    rank and the next rank skips (1, 2, 2, 4); rows without a score get rank None."""
    ordered = sorted(rows, key=lambda r: (r["score"] is None, -(r["score"] or 0.0), str(r["code"])))
    previous, position = None, 0
    for index, row in enumerate(ordered, start=1):
        if row["score"] is None:
            row["rank"] = None
            continue
        if row["score"] != previous:
            position, previous = index, row["score"]
        row["rank"] = position
    return ordered
