"""HTML pages. Every asset comes from this blueprint's static folder (vendored; no CDN, no tile server)."""

from __future__ import annotations

import json

from flask import Blueprint, render_template

from citygrid.spatial import db, store
from citygrid.webmap.context import connection

bp = Blueprint("pages", __name__, template_folder="templates", static_folder="static", static_url_path="/static")


@bp.get("/")
def overview():
    with connection() as conn:
        districts = store.district_summaries(conn)
        name = db.deployment_info(conn)["name"]
    return render_template(
        "overview.html", deployment_name=name, districts=districts,
        districts_json=json.dumps([d["code"] for d in districts]),
    )
