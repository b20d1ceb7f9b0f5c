"""The desk pages of #21 as the server serves them (the browser drives them in ``test_desk_browser.py``): who
may open which page, the nav each role sees, the case page's refusals as message pages with their status (never a
map of nothing, never a 500 for hostile ids), and the pages' strict Content-Security-Policy."""

from __future__ import annotations

import pytest

from citygrid.cases import service
from citygrid.cases.intake import parse_report
from citygrid.webmap.headers import CSP
from tests.conftest import submitted_case

LON, LAT = 116.5012, 39.9187  # unit grid 110105015033002 of team 110105T26, community party 110105015033
PAGES = {"/desk": "desk.js", "/report": "report.js", "/hotline": "hotline.js"}


def new_case(bj, case_rules) -> dict:
    return submitted_case(bj, case_rules, lon=LON, lat=LAT, class_code="0401", description="desk page test")


@pytest.mark.parametrize("path,roles,expected", [
    ("/desk", ["acceptor"], 200), ("/desk", ["calltaker"], 200), ("/desk", ["unit"], 200),
    ("/desk", ["lead"], 200), ("/desk", ["analyst"], 403), ("/desk", ["planner"], 403),
    ("/report", ["supervisor"], 200), ("/report", ["calltaker"], 403), ("/report", ["unit"], 403),
    ("/hotline", ["calltaker"], 200), ("/hotline", ["supervisor"], 403), ("/hotline", ["admin"], 200),
])
def test_who_may_open_each_desk_page(client_as, path, roles, expected):
    kwargs = {"team": "110105T26"} if "supervisor" in roles else {}
    if "unit" in roles:
        kwargs = {"party": "110105015033"}
    answer = client_as(f"page-{roles[0]}", roles, **kwargs).get(path)
    assert answer.status_code == expected, answer.get_data(as_text=True)[:300]
    if expected == 200:
        html = answer.get_data(as_text=True)
        assert PAGES[path] in html and "actions.js" in html
        policy = answer.headers[CSP]
        assert "'unsafe-inline'" not in policy and "script-src 'self' 'sha256-" in policy


def test_anonymous_visitors_are_sent_to_sign_in(anonymous_client):
    for path in ("/desk", "/report", "/hotline", "/cases/1"):
        answer = anonymous_client.get(path)
        assert answer.status_code == 302 and "/login?next=" in answer.headers["Location"], path


@pytest.mark.parametrize("roles,shown,hidden", [
    (["supervisor"], ("Desk", "Report"), ("Hotline",)),
    (["calltaker"], ("Desk", "Hotline"), ("Report",)),
    (["acceptor"], ("Desk",), ("Report", "Hotline")),
    (["admin"], ("Desk", "Report", "Hotline"), ()),
])
def test_the_nav_offers_the_desk_pages_to_their_roles(client_as, roles, shown, hidden):
    kwargs = {"team": "110105T26"} if "supervisor" in roles else {}
    html = client_as(f"nav-{roles[0]}", roles, **kwargs).get("/desk").get_data(as_text=True)
    nav = html[html.index("<nav>"):html.index("</nav>")]
    for label in shown:
        assert f">{label} " in nav, (label, nav)
    for label in hidden:
        assert f">{label} " not in nav, (label, nav)


def test_the_case_page_refuses_as_a_message_page(client_as, bj, case_rules):
    case = new_case(bj, case_rules)
    acceptor = client_as("page-acceptor", ["acceptor"])
    ok = acceptor.get(f"/cases/{case['case_id']}")
    assert ok.status_code == 200 and "case.js" in ok.get_data(as_text=True)
    # Another party's unit, another team's supervisor: 403 with the reason, and no map page.
    for who, roles, kwargs in (("other-unit", ["unit"], {"party": "110105015033"}),
                               ("other-team", ["supervisor"], {"team": "110105T01"})):
        refused = client_as(who, roles, **kwargs).get(f"/cases/{case['case_id']}")
        html = refused.get_data(as_text=True)
        assert refused.status_code == 403 and 'id="message"' in html and "case.js" not in html, html[:500]
        assert "<script" not in html  # a message page runs nothing
    # No such case, or an id beyond any case number: 404, never a server error.
    for case_id in (987654321, 2**63, 10**30):
        missing = acceptor.get(f"/cases/{case_id}")
        assert missing.status_code == 404 and 'id="message"' in missing.get_data(as_text=True), case_id
    for path in ("/cases/-1", "/cases/1e3", "/cases/%00", "/cases/1%0a"):
        assert acceptor.get(path).status_code in (400, 404), path  # not a case number: no page


def test_stored_text_never_reaches_the_page_as_markup(client_as, bj, case_rules):
    """The case page carries the case's number only: its text comes through the API and is set as text."""
    body = {"lon": LON, "lat": LAT, "kind": "event", "class_code": "0402",
            "description": "</script><script>alert(1)</script>", "source": "supervisor"}
    case, _ = service.submit(bj, case_rules, parse_report(body))
    html = client_as("page-xss", ["acceptor"]).get(f"/cases/{case['case_id']}").get_data(as_text=True)
    assert "alert(1)" not in html
