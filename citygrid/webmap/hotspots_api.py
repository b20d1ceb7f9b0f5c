"""``GET /api/v1/hotspots`` (Gi* per area for a period) and ``GET /api/v1/hotspots/emerging`` (emerging hot
spots over local months or weeks), as JSON, GeoJSON (EPSG:4326) or CSV, each with the parameters it used.

Readers: analysts, district leads, planners, dispatchers (as the caseload) and admins; an account that works in
one district reads only that district's hot spots. Both are heavy requests (``@heavy``).
"""

from __future__ import annotations

from flask import Blueprint

from citygrid.cases.workflow import STATES
from citygrid.hotspots import queries as hotspots
from citygrid.spatial.analysis.queries import LEVELS, CaseloadFilter
from citygrid.webmap.auth import allow, home_district_arg
from citygrid.webmap.context import connection
from citygrid.webmap.formats import FORMATS, table_response
from citygrid.webmap.heavy import heavy
from citygrid.webmap.params import choice_arg, float_arg, int_arg, optional_code_arg, period_args

bp = Blueprint("hotspots_v1", __name__, url_prefix="/api/v1")
READERS = ("analyst", "lead", "planner", "dispatcher")
MAX_SEED = 2**31 - 1


def _case_filter() -> CaseloadFilter:
    """The caseload's case filters: ``start``/``end`` (inclusive dates), ``kind``, ``class_code``, ``status``,
    ``synthetic``."""
    start, end = period_args()
    synthetic = choice_arg("synthetic", ("true", "false"))
    return CaseloadFilter(start=start, end=end, kind=choice_arg("kind", ("event", "component")),
                          class_code=optional_code_arg("class", "class_code"), status=choice_arg("status", STATES),
                          synthetic=None if synthetic is None else synthetic == "true")


def _common() -> dict[str, object]:
    """``level``, ``weights``, ``distance_m`` and ``alpha``."""
    weights = choice_arg("weights", ("queen", "distance"), "queen")
    distance = float_arg("distance_m", hotspots.DEFAULT_DISTANCE_M, hotspots.MIN_DISTANCE_M,
                         hotspots.MAX_DISTANCE_M) if weights == "distance" else None
    return {"level": choice_arg("level", LEVELS, "unit"), "weights": weights, "distance_m": distance,
            "alpha": float_arg("alpha", 0.05, 0.001, 0.2)}


@bp.get("/hotspots")
@allow(*READERS)
@heavy
def gi_star():
    """Gi* per area: ``district`` (required), ``level`` unit|supervision|community|street, ``start``/``end``,
    ``kind``, ``class_code``, ``status``, ``synthetic``, ``weights`` queen|distance, ``distance_m`` (10–20000,
    default 500), ``permutations`` (0–9999, default 999), ``seed``, ``alpha`` (0.001–0.2, default 0.05),
    ``fdr`` true|false (default false), ``format`` json|geojson|csv."""
    district = home_district_arg()
    fmt = choice_arg("format", FORMATS, "json")
    params = hotspots.HotspotParams(**_common(), permutations=int_arg("permutations", 999, 0,
                                                                       hotspots.MAX_PERMUTATIONS),
                                    seed=int_arg("seed", 2026, 0, MAX_SEED),
                                    fdr=choice_arg("fdr", ("true", "false"), "false") == "true")
    filters = _case_filter()
    with connection() as conn:
        answer = hotspots.hotspots(conn, district, filters, params, with_geometry=fmt == "geojson")
    rows = answer.pop("rows")
    return table_response(rows, fmt=fmt, fields=hotspots.GI_FIELDS, filename=f"hotspots-{district}-{params.level}.csv",
                          meta=answer)


@bp.get("/hotspots/emerging")
@allow(*READERS)
@heavy
def emerging():
    """Emerging hot spots per area: the filters and weights of ``/hotspots`` plus ``bin`` month|week (local
    time; 4–120 bins), ``k`` (previous bins in the neighbourhood, 0–12, default 1), ``fdr`` (default true)."""
    district = home_district_arg()
    fmt = choice_arg("format", FORMATS, "json")
    params = hotspots.EmergingParams(**_common(), bin=choice_arg("bin", hotspots.BINS, "month"),
                                     k=int_arg("k", 1, 0, hotspots.MAX_K),
                                     fdr=choice_arg("fdr", ("true", "false"), "true") == "true")
    filters = _case_filter()
    with connection() as conn:
        answer = hotspots.emerging(conn, district, filters, params, with_geometry=fmt == "geojson")
    rows = answer.pop("rows")
    return table_response(rows, fmt=fmt, fields=hotspots.EMERGING_FIELDS,
                          filename=f"emerging-{district}-{params.level}.csv", meta=answer)
