"""HTML pages, built with Folium (``folium_pages``) and served with their vendored assets from this blueprint's
static folder: no CDN, no tile server. Overview (grids by owner, search, grid and component cards), caseload
(choropleth, density overlay, month slider), cases (clusters, filters, a supervisor's own grids), and the desk
of #21: the work queues (``/desk``), one case with its actions (``/cases/<id>``), the supervisor's phone report
form (``/report``) and the call-taker's hotline form (``/hotline``); the planners' grid editor of #23 (``/editor``,
with Leaflet-Geoman). The pages only read and write through the
JSON API (``static/*.js``); a page's server side validates nothing but who may open it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, render_template, url_for

from citygrid.accounts.roles import ANY_ROLE, CASE_READERS
from citygrid.cases.queries import case_months, has_synthetic
from citygrid.cases.scope import read_scope
from citygrid.cases.service import active_scheme, case_view, check_scope
from citygrid.cases.workflow import STATES
from citygrid.components_survey.queries import taxonomy
from citygrid.errors import Forbidden, NotFound
from citygrid.gridding.queries import current_teams
from citygrid.responsibility.ownership import ROLES
from citygrid.spatial import db
from citygrid.spatial.queries import data_sources, district_extents, district_summaries
from citygrid.spatial.sources import attributions
from citygrid.webmap.auth import access_of, allow, principal, public, refused_page
from citygrid.webmap.context import connection, zone
from citygrid.webmap.folium_pages import build_page, inline_hashes
from citygrid.webmap.headers import CSP, page_policy

bp = Blueprint("pages", __name__, template_folder="templates", static_folder="static", static_url_path="/static")
PAGES = (("overview", "/", "Overview 总览"), ("caseload", "/caseload", "Caseload 案件分布"),
         ("cases", "/cases", "Cases 案件"), ("desk", "/desk", "Desk 工作台"), ("report", "/report", "Report 上报"),
         ("hotline", "/hotline", "Hotline 热线"), ("editor", "/editor", "Editor 网格编辑"),
         ("hotspots", "/hotspots", "Hot spots 热点"), ("evaluation", "/evaluation", "Evaluation 考核"))
# The account roles with a work queue (GET /api/v1/desk): every case role but the analyst's.
DESK_ROLES = ("supervisor", "dispatcher", "unit", "acceptor", "calltaker", "lead")
# The desk pages' shared script (action forms, API writes with the session's CSRF token, times in the zone).
_DESK_SCRIPTS = ("actions.js",)
MAX_CASE_ID = 2**63 - 1
_FORM_SCRIPTS = ("actions.js", "intake.js")  # and the report forms' point, class picker and idempotent sending


def _page(page: str, *, plugins: tuple[str, ...], data: dict[str, Any], scripts: tuple[str, ...] = (),
          **context: Any) -> Response:
    with connection() as conn:
        districts = district_summaries(conn)
        name = db.deployment_info(conn)["name"]
        extents = district_extents(conn)  # the view is fitted before the boundary arrives
        per_district = {d["code"]: {"bbox": extents.get(d["code"]), "months": case_months(conn, d["code"], zone()),
                                    "synthetic_history": has_synthetic(conn, d["code"]),
                                    "teams": current_teams(conn, d["code"])} for d in districts}
        classes = [{"kind": c["kind"], "code": c["code"], "name": c["name"]}
                   for c in taxonomy(conn, scheme=active_scheme(conn))]
        credits = attributions(data_sources(conn), n_districts=len(districts))
    who = principal()
    map_base = current_app.config["CITYGRID_SETTINGS"].basemap
    visible = [p for p in PAGES if who is not None
               and who.has_any(access_of(current_app.view_functions[f"pages.{p[0]}"]).roles)]
    header = render_template(f"{page}_header.html", deployment_name=name, districts=districts, pages=visible,
                             page=page, classes=classes, statuses=STATES, roles=ROLES, **context)
    html = build_page(title=f"citygrid — {name}", static_url=lambda path: url_for("pages.static", filename=path),
                      plugins=plugins, scripts=(*scripts, f"{page}.js"), header_html=header,
                      footer_html=render_template("footer.html", attributions=credits, basemap=map_base),
                      data={"page": page, "districts": [d["code"] for d in districts], "per_district": per_district,
                            "basemap": map_base, "zone": zone().key, "classes": classes,
                            "user": _user_of(who), **data})
    response = Response(html, mimetype="text/html")
    response.headers[CSP] = page_policy(**inline_hashes(), basemap_url=map_base["url"] if map_base else None)
    return response


@bp.get("/")
@allow(*ANY_ROLE, page=True)
def overview():
    return _page("overview", plugins=("vectorgrid",), data={})


@bp.get("/caseload")
@allow("analyst", "planner", "dispatcher", page=True)  # the caseload API's roles
def caseload():
    return _page("caseload", plugins=("vectorgrid",), data={})


@bp.get("/hotspots")
@allow("analyst", "lead", "planner", "dispatcher", page=True)  # the hot-spot API's roles
def hotspots():
    """Gi* classes and emerging hot-spot categories per area (``static/hotspots.js``), a slider over the bins."""
    return _page("hotspots", plugins=("vectorgrid",), data={})


@bp.get("/cases")
@allow("supervisor", "dispatcher", "unit", "analyst", page=True)  # the case list's roles
def cases():
    return _page("cases", plugins=("markercluster", "vectorgrid"), data={})


def _user_of(who: Any) -> dict[str, Any] | None:
    """What a page's script needs to know of the signed-in account (the API decides what it may do)."""
    if who is None:
        return None
    return {"username": who.username, "roles": list(who.roles), "district": who.district_code,
            "team": who.team_code, "party": who.party_code}


@bp.get("/desk")
@allow(*DESK_ROLES, page=True)
def desk():
    """The signed-in account's work queues (GET /api/v1/desk), refreshed by polling every 5 s with the ETag."""
    return _page("desk", plugins=(), data={}, scripts=_DESK_SCRIPTS)


@bp.get("/cases/<int:case_id>")
@allow(*CASE_READERS, page=True)
def case_page(case_id: int):
    """One case: map, class, text, photos, owners, party and deadline, timeline and the account's actions. A
    case that does not exist, or that the account may not read, is a message page with 404 / 403."""
    who = principal()
    if case_id > MAX_CASE_ID:  # beyond any case number (bigint): no such case, not a database error
        return _message(f"no case {case_id}", 404)
    try:
        with connection() as conn:
            case_view(conn, case_id)
            check_scope(conn, case_id, read_scope(who))
    except (NotFound, Forbidden) as refused:
        return _message(str(refused), 404 if isinstance(refused, NotFound) else 403)
    return _page("case", plugins=(), data={"case_id": case_id}, scripts=_DESK_SCRIPTS, case_id=case_id)


@bp.get("/report")
@allow("supervisor", page=True)
def report():
    """The supervisor's phone-first report form: locate, class, photos, one idempotent multipart request."""
    return _page("report", plugins=(), data={}, scripts=_FORM_SCRIPTS)


@bp.get("/hotline")
@allow("calltaker", page=True)
def hotline():
    """The call-taker's intake form: address or point, caller's name and phone, description, class."""
    return _page("hotline", plugins=(), data={}, scripts=_FORM_SCRIPTS)


@bp.get("/editor")
@allow("planner", page=True)  # the draft and edit API's writers (admins always may)
def editor():
    """The planners' grid editor (#23): a draft's unit grids by viewport, split / merge / reshape / move vertex /
    reassign / set team sent to the edit API with the draft's revision, undo, the edit log, the impact preview
    and publishing. The server is the authority: the page redraws what the API answers."""
    return _page("editor", plugins=("geoman",), data={}, scripts=_DESK_SCRIPTS)


@bp.get("/evaluation")
@allow("analyst", "lead", page=True)  # the evaluation API's readers (admins always may)
def evaluation():
    """The monthly evaluation (#24): one kind's ranking at a time with each score's inputs, the indicators'
    definitions, CSV and the printable report."""
    return _evaluation_page(public=False)


@bp.get("/rankings")
@public
def rankings():
    """The public ranking (#24): units/departments and streets, no sign-in (GET /api/v1/public/rankings)."""
    return _evaluation_page(public=True)


def _evaluation_page(*, public: bool) -> Response:
    """The evaluation or public ranking page: a table the script fills from the API; no inline script (the
    page's data is a JSON block), so the default page policy applies."""
    import datetime as dt

    from citygrid.evaluation.indicators import KINDS

    with connection() as conn:
        districts = district_summaries(conn)
        name = db.deployment_info(conn)["name"]
    today = dt.datetime.now(zone()).date()
    last = (today.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
    who = principal()
    visible = [p for p in PAGES if who is not None
               and who.has_any(access_of(current_app.view_functions[f"pages.{p[0]}"]).roles)]
    data = {"public": public, "kinds": [] if public else list(KINDS), "month": last,
            "month_max": today.strftime("%Y-%m"), "district": who.district_code if who else None}
    html = render_template("evaluation.html", public=public, districts=districts, deployment_name=name,
                           pages=visible, page="evaluation", data=data)
    return Response(html, mimetype="text/html")


def _message(text: str, status: int) -> Response:
    """A plain page saying why a page cannot be shown (no map, no script)."""
    return refused_page(text, status, back="/desk")
