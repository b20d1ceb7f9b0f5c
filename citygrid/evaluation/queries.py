"""What the web layer and the CLI ask of the evaluation: one kind's ranking for a month, every kind (the
report), and the public ranking. Each answer carries the parameters used, the indicators' definitions, the
weights and grades applied, and ``synthetic`` when any counted case is synthetic."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection

from citygrid.errors import NotFound
from citygrid.evaluation import store
from citygrid.evaluation.indicators import (
    CONTEXT,
    INDICATORS,
    KINDS,
    LABELS,
    check_kind,
    definitions,
    month_bounds,
    rates,
)
from citygrid.evaluation.scores import EvaluationRules, rank, score
from citygrid.spatial.db import deployment_zone

_FETCH: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "supervisors": lambda conn, d, s, e, g: store.supervisors(conn, d, s, e),
    "teams": lambda conn, d, s, e, g: store.teams(conn, d, s, e),
    "units": lambda conn, d, s, e, g: store.units(conn, d, s, e),
    "streets": lambda conn, d, s, e, g: store.areas(conn, d, "street", s, e, with_geometry=g),
    "communities": lambda conn, d, s, e, g: store.areas(conn, d, "community", s, e, with_geometry=g),
}


def fields(kind: str) -> tuple[str, ...]:
    """The columns of ``kind``'s rows in a table (CSV): identity, rank, score, grade, rates, counts."""
    return ("code", "name", "rank", "score", "grade", *(i.name for i in INDICATORS[kind]), *CONTEXT[kind])


def _month(conn: Connection, district: str, month: str | None, now: dt.datetime | None) -> dict[str, Any]:
    """The month's bounds in the deployment's zone, checked, with the district's name; ``NotFound`` for no
    such district, ``InvalidInput`` for a bad month."""
    zone = deployment_zone(conn)
    start, end = month_bounds(month, zone, now or dt.datetime.now(dt.UTC))
    name = store.district_name(conn, district)
    if name is None:
        raise NotFound(f"no district {district}")
    return {"district": district, "district_name": name, "month": month, "start": start, "end": end,
            "zone": zone.key}


def _with_density(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    """Caseload per km² and per 10,000 components for an area row (None where the area or count is zero)."""
    if kind in ("streets", "communities"):
        area, comps = row.get("area_km2") or 0.0, row.get("components") or 0
        row["area_km2"] = round(area, 4) if area else None
        row["cases_per_km2"] = round(row["caseload"] / area, 4) if area else None
        row["cases_per_10k_components"] = round(row["caseload"] * 10_000 / comps, 4) if comps else None
    return row


def scored_row(rules: EvaluationRules, kind: str, row: dict[str, Any]) -> dict[str, Any]:
    """A store row with its rates, score, grade and the score's inputs."""
    values = rates(kind, row)
    total, inputs = score(rules, kind, values)
    out = {"code": row["code"], "name": row["name"], "rank": None, "score": total, "grade": rules.grade(total),
           **{k: (None if v is None else round(v, 4)) for k, v in values.items()}}
    out.update({k: row.get(k) for k in CONTEXT[kind]})
    out["inputs"] = inputs
    for extra in ("party_kind", "geometry"):
        if extra in row:
            out[extra] = row[extra]
    return out


def _kind_rows(conn: Connection, rules: EvaluationRules, kind: str, month: dict[str, Any],
               with_geometry: bool) -> list[dict[str, Any]]:
    raw = _FETCH[kind](conn, month["district"], month["start"], month["end"], with_geometry)
    return rank([scored_row(rules, kind, _with_density(kind, r)) for r in raw])


def _meta(month: dict[str, Any], synthetic: bool) -> dict[str, Any]:
    return {"district": month["district"], "district_name": month["district_name"], "month": month["month"],
            "start": month["start"].isoformat(), "end": month["end"].isoformat(), "zone": month["zone"],
            "synthetic": synthetic}


def evaluate(conn: Connection, rules: EvaluationRules, district: str, month: str | None, kind: str, *,
             with_geometry: bool = False, now: dt.datetime | None = None) -> dict[str, Any]:
    """The ranking of ``kind`` in ``district`` for the local month ``month`` (``YYYY-MM``).

    Returns
    -------
    ``{district, district_name, month, start, end, zone, synthetic, kind, definitions, scoring, rows}``: rows
    ranked (``scores.rank``), each with its rates, counts, score, grade and ``inputs``; street and community rows
    with ``geometry`` (GeoJSON, EPSG:4326) when ``with_geometry``.

    Raises ``InvalidInput`` for a bad kind or month, ``NotFound`` for no such district.
    """
    check_kind(kind)
    found = _month(conn, district, month, now)
    rows = _kind_rows(conn, rules, kind, found, with_geometry)
    synthetic = store.counted_synthetic(conn, district, found["start"], found["end"])
    return {**_meta(found, synthetic), "kind": kind, "definitions": definitions(kind),
            "scoring": rules.describe(kind), "rows": rows}


def evaluate_all(conn: Connection, rules: EvaluationRules, district: str, month: str | None, *,
                 kinds: tuple[str, ...] = KINDS, now: dt.datetime | None = None) -> dict[str, Any]:
    """Every kind of ``kinds`` for the month (the report): ``{…meta, kind_order, kinds: {kind: {label,
    definitions, scoring, rows}}}`` (``kind_order``: the kinds in order, since JSON answers sort their keys)."""
    found = _month(conn, district, month, now)
    synthetic = store.counted_synthetic(conn, district, found["start"], found["end"])
    return {**_meta(found, synthetic), "kind_order": list(kinds), "kinds": {
        kind: {"label": LABELS[kind], "definitions": definitions(kind), "scoring": rules.describe(kind),
               "rows": _kind_rows(conn, rules, kind, found, False)} for kind in kinds}}


_PUBLIC_FIELDS = ("rank", "code", "name", "score", "grade")


def public_rankings(conn: Connection, rules: EvaluationRules, district: str, month: str | None, *,
                    now: dt.datetime | None = None) -> dict[str, Any]:
    """The public ranking: the kinds ``rules.public_kinds`` allows (units/departments and streets, never
    supervisors or teams), each row its rank, code, name, score, grade and rates. A party of kind ``person`` is
    shown as "个人 N" with no code unless ``rules.show_person_names``."""
    answer = evaluate_all(conn, rules, district, month, kinds=rules.public_kinds, now=now)
    for kind, part in answer["kinds"].items():
        names = [i.name for i in INDICATORS[kind]]
        anonymous = 0
        public_rows = []
        for row in part["rows"]:
            shown = {k: row[k] for k in (*_PUBLIC_FIELDS, *names)}
            if row.get("party_kind") == "person" and not rules.show_person_names:
                anonymous += 1
                shown.update(code=None, name=f"个人 {anonymous}")
            public_rows.append(shown)
        part["rows"] = public_rows
    answer["persons_named"] = rules.show_person_names
    return answer
