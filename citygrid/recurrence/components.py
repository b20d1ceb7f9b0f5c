"""Recurrence per component: how often each component had a case in a window, and the chronic list.

Pure functions over the cases a store query gives (no database): the analyst's list for the source agency
(seed 002) — the components with at least ``min_cases`` cases, ranked by count, then by the latest case (the
most recent first), then by the shortest median interval.
"""

from __future__ import annotations

import datetime as dt
from itertools import groupby
from typing import Any

import numpy as np

DAY_S = 86_400.0


def intervals_days(times: list[dt.datetime]) -> np.ndarray:
    """Days between consecutive report times (sorted, aware datetimes); empty for fewer than two."""
    stamps = np.array([t.timestamp() for t in sorted(times)], dtype=float)
    return np.diff(stamps) / DAY_S


def per_component(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One summary per component of ``cases`` (dicts with ``obj_id``, ``case_id``, ``reported_at``,
    ``synthetic``; any order): ``obj_id``, ``cases``, ``case_ids`` (by report time), ``first_reported``,
    ``last_reported``, ``median_interval_days`` and ``min_interval_days`` (None for one case) and
    ``synthetic`` (any of its cases is)."""
    found = []
    ordered = sorted(cases, key=lambda c: (c["obj_id"], c["reported_at"], c["case_id"]))
    for obj_id, group in groupby(ordered, key=lambda c: c["obj_id"]):
        rows = list(group)
        gaps = intervals_days([r["reported_at"] for r in rows])
        found.append({
            "obj_id": obj_id, "cases": len(rows), "case_ids": [r["case_id"] for r in rows],
            "first_reported": rows[0]["reported_at"], "last_reported": rows[-1]["reported_at"],
            "median_interval_days": round(float(np.median(gaps)), 2) if len(gaps) else None,
            "min_interval_days": round(float(gaps.min()), 2) if len(gaps) else None,
            "synthetic": any(r["synthetic"] for r in rows),
        })
    return found


def chronic(summaries: list[dict[str, Any]], min_cases: int) -> list[dict[str, Any]]:
    """The summaries (``per_component``) with at least ``min_cases`` cases, ranked (``rank`` from 1): more cases
    first, then the most recent last case, then the shortest median interval, then the ObjID."""
    kept = [s for s in summaries if s["cases"] >= min_cases]
    kept.sort(key=lambda s: (-s["cases"], -s["last_reported"].timestamp(),
                             s["median_interval_days"] if s["median_interval_days"] is not None else float("inf"),
                             s["obj_id"]))
    return [{"rank": i, **s} for i, s in enumerate(kept, start=1)]
