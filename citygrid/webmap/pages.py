"""HTML pages, built with Folium (``folium_pages``) and served with their vendored assets from this blueprint's
static folder: no CDN, no tile server. Overview (grids by owner, search, grid and component cards), caseload
(choropleth, density overlay, month slider) and cases (clusters, filters, a supervisor's own grids)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, render_template, url_for

from citygrid.accounts.roles import ANY_ROLE
from citygrid.cases.queries import case_months, has_synthetic
from citygrid.cases.service import active_scheme
from citygrid.cases.workflow import STATES
from citygrid.components_survey.queries import taxonomy
from citygrid.gridding.queries import current_teams
from citygrid.responsibility.ownership import ROLES
from citygrid.spatial import db
from citygrid.spatial.queries import data_sources, district_summaries
from citygrid.spatial.sources import attributions
from citygrid.webmap.auth import access_of, allow, principal
from citygrid.webmap.context import connection, zone
from citygrid.webmap.folium_pages import build_page, inline_hashes
from citygrid.webmap.headers import CSP, page_policy

bp = Blueprint("pages", __name__, template_folder="templates", static_folder="static", static_url_path="/static")
PAGES = (("overview", "/", "Overview 总览"), ("caseload", "/caseload", "Caseload 案件分布"),
         ("cases", "/cases", "Cases 案件"))


def _page(page: str, *, plugins: tuple[str, ...], data: dict[str, Any], **context: Any) -> Response:
    with connection() as conn:
        districts = district_summaries(conn)
        name = db.deployment_info(conn)["name"]
        per_district = {d["code"]: {"months": case_months(conn, d["code"], zone()),
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
                      plugins=plugins, scripts=(f"{page}.js",), header_html=header,
                      footer_html=render_template("footer.html", attributions=credits, basemap=map_base),
                      data={"page": page, "districts": [d["code"] for d in districts], "per_district": per_district,
                            "basemap": map_base, **data})
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


@bp.get("/cases")
@allow("supervisor", "dispatcher", "unit", "analyst", page=True)  # the case list's roles
def cases():
    return _page("cases", plugins=("markercluster", "vectorgrid"), data={})
