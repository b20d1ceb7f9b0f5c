"""A seeded, SYNTHETIC case history for the demo districts (no public case data exists for them).

How it is made (all random draws from ``numpy.random.default_rng(seed)``):
- **volume**: ``n`` cases over the ``days`` before ``end`` (the demo uses 20,000 a year for Chaoyang —
  the real district files about 6.8 million, so this is a 1:340 sample — and 8,000 for Guancheng);
- **class**: drawn from the common classes below with base weights, times a seasonal factor (snow and ice
  in winter, barbecues and waterlogging in summer);
- **place**: near a random located community (normal scatter of 300 m), kept only if inside the district;
- **time**: a random day, weekdays a little busier, hour-of-day peaking in the late morning;
- **status**: older cases are mostly closed or evaluated, the last fortnight spread over the open states;
- **text**: "<community> 附近 <class name>（合成）";
- **source**: supervisor 80 %, hotline 15 %, citizen 5 % (a stream of its own).
Event timelines and planted patterns are added by ``cases.synthetic_events``.
Every case is stored with ``synthetic = true`` and an idempotency key ``synthetic-…``, through the same intake
validation and geocoding as real reports (``history.insert_reports``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import shapely
from sqlalchemy.engine import Connection

from citygrid.cases.history import BulkResult, insert_reports
from citygrid.components_survey import store as survey_store
from citygrid.errors import InvalidInput
from citygrid.gridding import store as grid_store
from citygrid.spatial import crs
from citygrid.spatial.boundaries import district_boundary
from citygrid.spatial.db import deployment_srid, deployment_zone
from citygrid.spatial.timezones import localize

# (kind, code, base weight, season): season is None, "winter" or "summer".
CLASS_MIX = (
    ("event", "0102", 20, None), ("event", "0201", 14, None), ("event", "0505", 12, None),
    ("event", "0501", 8, "summer"), ("event", "0504", 8, None), ("event", "0104", 7, None),
    ("event", "0103", 5, None), ("event", "0506", 5, None), ("event", "0101", 3, None),
    ("event", "0510", 3, "summer"), ("event", "0406", 2, "summer"), ("event", "0407", 2, "winter"),
    ("event", "0508", 2, "summer"), ("component", "0101", 4, None), ("component", "0118", 3, "winter"),
    ("component", "0305", 2, "summer"), ("component", "0402", 2, "summer"),
)
SEASON_FACTOR = {"winter": {12: 3.0, 1: 3.0, 2: 2.0}, "summer": {6: 2.0, 7: 2.5, 8: 2.5, 9: 1.5}}
SCATTER_M = 300.0
SOURCES, SOURCE_SHARES = ("supervisor", "hotline", "citizen"), (0.8, 0.15, 0.05)


def generate(conn: Connection, district: str, n: int, *, seed: int = 2026, days: int = 365,
             end: dt.datetime | None = None) -> BulkResult:
    """Generate and store ``n`` synthetic cases for ``district`` (see the module docstring)."""
    from citygrid.cases.service import active_scheme
    from citygrid.components_survey.taxonomy import DEFAULT_SCHEME

    if (scheme := active_scheme(conn)) != DEFAULT_SCHEME:  # intake would refuse every class of the mix
        raise InvalidInput(f"the synthetic history uses the packaged {DEFAULT_SCHEME} classes, but the active "
                           f"scheme is {scheme}: run citygrid taxonomy activate {DEFAULT_SCHEME} first",
                           field="scheme")
    rng = np.random.default_rng(seed)
    # Hours of day are the city's wall-clock hours: ``end`` (default midnight of 1 November 2026) in its zone.
    end = localize(end or dt.datetime(2026, 11, 1), deployment_zone(conn))
    boundary = district_boundary(conn, district)
    areas = [a for a in grid_store.load_areas(conn, district) if a.level == "community" and a.point is not None]
    if not areas:
        areas = [a for a in grid_store.load_areas(conn, district) if a.point is not None]
    if not areas:
        raise InvalidInput(f"district {district} has no street or community with a location to scatter the "
                           "synthetic cases around (citygrid areas import)", field="district")
    classes = {(c["kind"], c["code"]): c["name"] for c in survey_store.taxonomy(conn)}
    mix = [m for m in CLASS_MIX if (m[0], m[1]) in classes]
    # Times first (the class mix depends on the month).
    day_offsets = rng.integers(0, days, n * 2)
    starts = [end - dt.timedelta(days=int(d)) for d in day_offsets]
    weekday_ok = np.array([rng.random() < (1.0 if s.weekday() < 5 else 0.7) for s in starts])
    hours = np.clip(rng.normal(11.0, 3.5, n * 2), 6, 22)
    stamps = [s.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(hours=float(h))
              for s, h in zip(starts, hours, strict=True)]
    stamps = [s for s, ok in zip(stamps, weekday_ok, strict=True) if ok][:n]
    records: list[dict[str, Any]] = []
    xs, ys, picks = [], [], []
    while len(xs) < len(stamps):
        area = areas[int(rng.integers(len(areas)))]
        x = area.point.x + rng.normal(0, SCATTER_M)
        y = area.point.y + rng.normal(0, SCATTER_M)
        if boundary.contains(shapely.Point(x, y)):
            xs.append(x)
            ys.append(y)
            picks.append(area)
    lonlat = crs.to_lonlat(np.array([shapely.Point(x, y) for x, y in zip(xs, ys, strict=True)], dtype=object),
                           deployment_srid(conn))
    # Who reported it (a stream of its own, so the rest of the history stays as it was before sources varied):
    # mostly supervisors on patrol, some hotline calls and citizens' reports (verified before filing).
    sources = np.random.default_rng([seed, 1]).choice(SOURCES, p=SOURCE_SHARES, size=len(stamps))
    for i, stamp in enumerate(stamps):
        weights = np.array([w * SEASON_FACTOR.get(season or "", {}).get(stamp.month, 1.0)
                            for _, _, w, season in mix], dtype=float)
        kind, code, _, _ = mix[int(rng.choice(len(mix), p=weights / weights.sum()))]
        age = (end - stamp).days
        status = _status(rng, age)
        name = picks[i].name.replace("社区居委会", "社区").replace("村委会", "村")
        records.append({
            "lon": lonlat[i].x, "lat": lonlat[i].y, "kind": kind, "class_code": code,
            "description": f"{name}附近{classes[(kind, code)]}（合成）", "reported_at": stamp.isoformat(),
            "status": status, "source": str(sources[i]), "idempotency_key": f"synthetic-{district}-{seed}-{i}",
        })
    return insert_reports(conn, records, max_bad_ratio=0.01, synthetic=True)


def _status(rng: np.random.Generator, age_days: int) -> str:
    if age_days > 14:
        return str(rng.choice(["closed", "evaluated", "rejected"], p=[0.55, 0.42, 0.03]))
    return str(rng.choice(["reported", "accepted", "dispatched", "fed_back", "checked", "closed"],
                          p=[0.1, 0.1, 0.35, 0.15, 0.1, 0.2]))
