"""The grid editor page of #23 as the server serves it (the browser drives it in ``test_editor_browser.py``): who
may open it (planners and admins; everyone else 403 with the message page, anonymous visitors to the sign-in
form), the nav that offers it, its vendored Leaflet-Geoman with no outside asset, and a query string that never
reaches the page as markup."""

from __future__ import annotations

import pytest

from citygrid.webmap.headers import CSP

GEOMAN_JS = "vendor/geoman/leaflet-geoman.js"
GEOMAN_CSS = "vendor/geoman/leaflet-geoman.css"


@pytest.mark.parametrize("roles,expected", [
    (["planner"], 200), (["admin"], 200), (["planner", "analyst"], 200),
    (["analyst"], 403), (["supervisor"], 403), (["dispatcher"], 403), (["acceptor"], 403), (["gis"], 403),
    (["lead"], 403), (["unit"], 403), (["calltaker"], 403),
])
def test_who_may_open_the_editor(client_as, roles, expected):
    kwargs = {"team": "110105T26"} if "supervisor" in roles else {"party": "110105015033"} if "unit" in roles else {}
    answer = client_as(f"editor-page-{'-'.join(roles)}", roles, **kwargs).get("/editor")
    html = answer.get_data(as_text=True)
    assert answer.status_code == expected, html[:300]
    if expected == 200:
        assert "editor.js" in html and "actions.js" in html and 'id="draft"' in html and 'id="impact"' in html
        assert GEOMAN_JS in html and GEOMAN_CSS in html
        policy = answer.headers[CSP]
        assert "'unsafe-inline'" not in policy and "script-src 'self' 'sha256-" in policy
    else:  # the message page the other pages show, with why (no map, no script)
        assert answer.mimetype == "text/html" and 'id="message"' in html and "planner" in html, html[:500]
        assert "editor.js" not in html and "<script" not in html and 'href="/"' in html


def test_anonymous_visitors_are_sent_to_sign_in(anonymous_client):
    answer = anonymous_client.get("/editor")
    assert answer.status_code == 302 and "/login?next=/editor" in answer.headers["Location"]


@pytest.mark.parametrize("roles,shown", [(["planner"], True), (["admin"], True), (["supervisor"], False),
                                         (["analyst"], False)])
def test_the_nav_offers_the_editor_to_planners(client_as, roles, shown):
    kwargs = {"team": "110105T26"} if "supervisor" in roles else {}
    html = client_as(f"nav-editor-{roles[0]}", roles, **kwargs).get("/").get_data(as_text=True)
    nav = html[html.index("<nav>"):html.index("</nav>")]
    assert ('href="/editor"' in nav) is shown, nav


def test_only_the_editor_page_loads_geoman(client_as):
    planner = client_as("editor-assets", ["planner"])
    assert GEOMAN_JS not in planner.get("/caseload").get_data(as_text=True)
    for path in (GEOMAN_JS, GEOMAN_CSS, "editor.js"):
        served = planner.get(f"/static/{path}")
        assert served.status_code == 200 and len(served.data) > 1000, path
        text = served.get_data(as_text=True)
        # nothing the page would fetch from outside this server (the icons are data: URIs)
        assert "https://unpkg" not in text and "cdn.jsdelivr" not in text and "fonts.googleapis" not in text, path


@pytest.mark.parametrize("query", ["?district=%3Cscript%3Ealert(1)%3C/script%3E", "?version=%00%0a",
                                   "?version=99999999999999999999999", "?district=" + "9" * 5000,
                                   "?version=NaN&district=Infinity"])
def test_a_hostile_query_string_never_reaches_the_page(client_as, query):
    answer = client_as("editor-hostile", ["planner"]).get("/editor" + query)
    html = answer.get_data(as_text=True)
    # The page reads its query in the browser and asks the API, which validates it; the server's page echoes
    # none of it (a control character is refused before any page, with 400).
    assert answer.status_code in (200, 400) and "alert(1)" not in html and "9" * 100 not in html
    assert answer.status_code == 400 or "editor.js" in html
