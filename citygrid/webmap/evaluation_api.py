"""Monthly evaluation (#24): ``GET /api/v1/evaluation`` (one kind's ranking: JSON, GeoJSON for streets and
communities, CSV), ``GET /api/v1/evaluation/report`` (the printable HTML report, every kind), and the public
``GET /api/v1/public/rankings`` (units/departments and streets only; no sign-in, rate-limited per client like
the public intake).

Readers: analysts, district leads (区级领导) and admins; an account bound to a district reads only that district.
The rules (``data/evaluation.yaml``) are read once by ``create_app`` (``evaluation_rules``).
"""

from __future__ import annotations

import threading
import time

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from citygrid.evaluation import queries, report
from citygrid.evaluation.indicators import KINDS
from citygrid.evaluation.scores import EvaluationRules
from citygrid.webmap.auth import allow, home_district_arg, public
from citygrid.webmap.context import connection
from citygrid.webmap.formats import FORMATS, table_response
from citygrid.webmap.headers import CSP, csp_hash, page_policy, trusted_proxy
from citygrid.webmap.heavy import heavy
from citygrid.webmap.params import choice_arg, district_code
from citygrid.webmap.ratelimit import ANONYMOUS_BURST, ANONYMOUS_PER_MINUTE, TokenBuckets, client_address

bp = Blueprint("evaluation_v1", __name__, url_prefix="/api/v1")
READERS = ("analyst", "lead")
RULES_KEY = "citygrid_evaluation_rules"
BUCKETS_KEY = "citygrid_public_buckets"
PUBLIC_CACHE_KEY = "citygrid_public_rankings"
# The public ranking is the same for everyone and changes slowly: shared caches and this process keep an answer
# this long, so a crowd of anonymous clients costs one evaluation per district and month, not one each.
PUBLIC_MAX_AGE_S = 300
PUBLIC_CACHE_ENTRIES = 64
# The analysts' answers name supervisors and are per account: never kept by a shared cache.
PRIVATE = "private, no-cache"


def install(app: Flask) -> None:
    """Read the evaluation rules once (``EvaluationRules.load`` of the settings' data directory) and give the
    public ranking its own per-client buckets."""
    app.extensions[RULES_KEY] = EvaluationRules.load(app.config["CITYGRID_SETTINGS"].data_dir)
    app.extensions[BUCKETS_KEY] = TokenBuckets()
    app.extensions[PUBLIC_CACHE_KEY] = PublicCache()


class PublicCache:
    """Public ranking answers by (district, month) for ``PUBLIC_MAX_AGE_S``, at most ``PUBLIC_CACHE_ENTRIES``
    (the oldest goes first); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, str], tuple[float, dict]] = {}

    def get(self, key: tuple[str, str]) -> dict | None:
        with self._lock:
            found = self._answers.get(key)
        return found[1] if found and found[0] > time.monotonic() else None

    def put(self, key: tuple[str, str], answer: dict) -> None:
        with self._lock:
            if len(self._answers) >= PUBLIC_CACHE_ENTRIES:
                self._answers.pop(min(self._answers, key=lambda k: self._answers[k][0]))
            self._answers[key] = (time.monotonic() + PUBLIC_MAX_AGE_S, answer)


@bp.after_request
def _not_shared(response: Response) -> Response:
    """Every answer but the public ranking is the signed-in caller's own."""
    response.headers.setdefault("Cache-Control", PRIVATE)
    return response


def evaluation_rules() -> EvaluationRules:
    return current_app.extensions[RULES_KEY]


@bp.get("/evaluation")
@allow(*READERS)
@heavy
def evaluation():
    """``district`` (required), ``month`` YYYY-MM (required, local month of the deployment's zone), ``kind``
    (supervisors|teams|units|streets|communities, default supervisors), ``format`` json|geojson|csv."""
    district = home_district_arg()
    kind = choice_arg("kind", KINDS, "supervisors")
    fmt = choice_arg("format", FORMATS, "json")
    with connection() as conn:
        answer = queries.evaluate(conn, evaluation_rules(), district, request.args.get("month"), kind,
                                  with_geometry=fmt == "geojson")
    rows = answer.pop("rows")
    if fmt == "csv":
        rows = [{k: v for k, v in r.items() if k != "inputs"} for r in rows]
    return table_response(rows, fmt=fmt, fields=queries.fields(kind), meta=answer,
                          filename=f"evaluation-{district}-{answer['month']}-{kind}.csv")


@bp.get("/evaluation/report")
@allow(*READERS)
@heavy
def evaluation_report():
    """The printable report of every kind for ``district`` and ``month`` (HTML, one A4 page per kind)."""
    district = home_district_arg()
    with connection() as conn:
        answer = queries.evaluate_all(conn, evaluation_rules(), district, request.args.get("month"))
    response = Response(report.render(answer), mimetype="text/html")
    response.headers[CSP] = page_policy(styles=[csp_hash(report.CSS)])
    return response


@bp.get("/public/rankings")
@public
def public_rankings():
    """The public ranking of ``district`` for ``month``: units/departments and streets (``evaluation.yaml``
    ``public``), persons anonymised; 429 past the anonymous limit per client. The same for every caller, so it
    is kept ``PUBLIC_MAX_AGE_S`` by this process and by shared caches; computing it takes a heavy slot."""
    address = client_address(request.remote_addr, request.headers.get("X-Forwarded-For"), trusted_proxy())
    current_app.extensions[BUCKETS_KEY].take(f"addr:{address}", ANONYMOUS_PER_MINUTE, ANONYMOUS_BURST)
    district = district_code(request.args.get("district"))
    month = request.args.get("month")
    cache = current_app.extensions[PUBLIC_CACHE_KEY]
    answer = cache.get((district, str(month)))
    if answer is None:
        with current_app.extensions["citygrid_heavy"].slot(), connection() as conn:
            answer = queries.public_rankings(conn, evaluation_rules(), district, month)
        cache.put((district, str(month)), answer)
    response = jsonify(answer)
    response.headers["Cache-Control"] = f"public, max-age={PUBLIC_MAX_AGE_S}"
    return response
