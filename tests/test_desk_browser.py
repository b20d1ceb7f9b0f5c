"""The desk pages of #21 in headless Chromium (Debian's ``chromium``, driven by Playwright): the whole closed loop
driven by six accounts in the browser — a supervisor reports with a photo on a 390 px phone page, the acceptor
files it on the desk, the dispatcher dispatches it with one click to the suggested party, the community's unit
feeds back with a photo, the supervisor fails the check, the re-dispatch goes to the street level's party (shown
on the desk), the street unit feeds back, the check passes, the acceptor closes, the call-taker records the
callback. Every page: no console errors, no request leaving localhost, screenshots in ``tests/artifacts/``. Bad
inputs: a file that is not an image, an oversized photo, a unit opening another party's case, an acceptor and an
unverified hotline report. Fails (never skips) without Chromium."""

from __future__ import annotations

import io
import re
from contextlib import contextmanager
from urllib.parse import urlparse

import pytest
import sqlalchemy as sa

from tests.test_browser import ARTIFACTS, CSP_LISTENER, browser, server, sign_in  # noqa: F401 (fixtures used here)

pytestmark = pytest.mark.slow  # run in the main pass of make test, not again in the TCP DATABASE_URL pass
PASSWORD = "desk browser test password"
# A point of Chaoyang's test grids: unit grid 110105015033002 (十里堡社区), supervision grid 110105S0153, team T26.
LON, LAT = 116.5012, 39.9187
TEAM = "110105T26"
COMMUNITY_PARTY = "110105015033"  # the grid's management party: 十里堡社区居委会
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True,
         "geolocation": {"latitude": LAT, "longitude": LON}, "permissions": ["geolocation"]}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
# Chromium logs every 4xx answer as a console error ("Failed to load resource"); where a test provokes one on
# purpose (a refused upload, a forbidden page) those lines are the expected refusal, not a page error.
REFUSAL = re.compile(r"^Failed to load resource: the server responded with a status of 4\d\d")


def jpeg(size: tuple[int, int] = (64, 48), *, lonlat: tuple[float, float] | None = (LON, LAT),
         colour: str = "#3070b0") -> bytes:
    """A small JPEG made now with Pillow, with GPS EXIF at ``lonlat`` (WGS84) unless None."""
    from PIL import Image

    image = Image.new("RGB", size, colour)
    exif = Image.Exif()
    if lonlat is not None:
        def dms(value: float) -> tuple[float, float, float]:
            value = abs(value)
            degrees, minutes = int(value), int(value * 60 % 60)
            return (float(degrees), float(minutes), round((value * 3600) % 60, 4))

        exif[0x8825] = {1: "N" if lonlat[1] >= 0 else "S", 2: dms(lonlat[1]),
                        3: "E" if lonlat[0] >= 0 else "W", 4: dms(lonlat[0])}
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes() if lonlat is not None else b"")
    return out.getvalue()


def photo(name: str, data: bytes, mime: str = "image/jpeg") -> dict:
    return {"name": name, "mimeType": mime, "buffer": data}


@pytest.fixture(scope="module")
def people(beijing_engine):
    """The loop's accounts (committed; the test database lives for this run only): a supervisor of the team whose
    grid holds the point, an acceptor, a dispatcher, a call-taker, and ``unit(party)`` to add a unit account of
    a party once the case shows which one it goes to."""
    from citygrid.accounts import service as accounts

    made: dict[str, str] = {}

    def add(username: str, roles: list[str], **kwargs: str) -> str:
        with beijing_engine.begin() as conn:
            if not any(u["username"] == username for u in accounts.list_users(conn)):
                accounts.add_user(conn, username, roles, password=PASSWORD, **kwargs)
        made[username] = username
        return username

    add("desk-supervisor", ["supervisor"], team=TEAM)
    add("desk-acceptor", ["acceptor"])
    add("desk-dispatcher", ["dispatcher"])
    add("desk-calltaker", ["calltaker"])
    return {"supervisor": "desk-supervisor", "acceptor": "desk-acceptor", "dispatcher": "desk-dispatcher",
            "calltaker": "desk-calltaker",
            "unit": lambda party: add(f"desk-unit-{re.sub(r'[^a-z0-9]', '', party.lower())[-20:]}", ["unit"],
                                      party=party)}


@pytest.fixture(scope="module")
def made_cases(beijing_engine):
    """Case ids the tests create; removed (with their events, photos and contacts) when the module ends."""
    ids: list[int] = []
    yield ids
    with beijing_engine.begin() as conn:
        for case_id in ids:
            conn.execute(sa.text("DELETE FROM cases WHERE case_id = :c"), {"c": case_id})


@contextmanager
def page_as(browser, url: str, username: str, *, allow_refusals: bool = False,  # noqa: F811
            allow: re.Pattern | None = None, **context_args):
    """A new browser context signed in as ``username`` on ``url``: yields ``(page, errors, outside)`` and checks,
    when the block ends, that the page logged no error (CSP violations included; with ``allow_refusals`` the
    4xx answers the test provoked are not counted, nor lines matching ``allow``) and made no request that left
    this server."""
    context = browser.new_context(**(context_args or DESKTOP))
    context.add_init_script(CSP_LISTENER)
    page = context.new_page()
    errors: list[str] = []
    outside: list[str] = []
    page.on("console", lambda m: errors.append(m.text)
            if m.type == "error" or "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: outside.append(r.url)
            if urlparse(r.url).hostname not in ("127.0.0.1", None)
            and not r.url.startswith(("data:", "blob:")) else None)
    try:
        sign_in(page, url, username, PASSWORD)
        if page.locator("#whoami").count():
            page.wait_for_function("() => window.citygrid && window.citygrid.ready", timeout=30_000)
        yield page, errors, outside
        real = [e for e in errors if not (allow_refusals and REFUSAL.match(e)) and not (allow and allow.match(e))]
        assert real == [], real
        assert outside == [], outside
    finally:
        context.close()


def goto(page, url: str) -> None:
    page.goto(url)
    page.wait_for_function("() => window.citygrid && window.citygrid.ready", timeout=30_000)


def row(page, case_id: int):
    """The desk row of a case, once its action buttons have come."""
    locator = page.locator(f"#rows > li[data-case-id='{case_id}']")
    locator.locator(".cg-actions button, .cg-actions .cg-meta").first.wait_for(timeout=20_000)
    return locator


def act_on_case_page(page, action: str, *, note: str = "", photos: list[dict] | None = None,
                     fields: dict[str, str] | None = None) -> None:
    """Click ``action`` among the case page's buttons, fill its form (if it opens one) and wait for the case to
    be read again."""
    before = page.inner_text("#timeline")
    button = page.locator(f"#actions button[data-action='{action}']")
    button.wait_for(timeout=20_000)
    button.click()
    form = page.locator(f"#actions form.cg-action-form[data-action='{action}']")
    if form.count():
        fill_form(form, note=note, photos=photos, fields=fields)
    page.wait_for_function("(t) => window.citygrid.ready && document.getElementById('timeline').innerText !== t",
                           arg=before, timeout=30_000)


def fill_form(form, *, note: str = "", photos: list[dict] | None = None, fields: dict[str, str] | None = None):
    for name, value in (fields or {}).items():
        target = form.locator(f"[name={name}]")
        if target.evaluate("e => e.tagName") == "SELECT":
            target.select_option(value)
        else:
            target.fill(value)
    if note:
        form.locator("[name=note]").fill(note)
    if photos:
        form.locator("[name=photo]").set_input_files(photos)
    form.locator("button[type=submit]").click()


@pytest.fixture(scope="module")
def api(server, beijing_admin_token):  # noqa: F811
    """An admin's test client of the served database (to read what the pages did)."""
    from citygrid.app import create_app
    from tests.conftest import signed_in

    return signed_in(create_app({"CITYGRID_SETTINGS": server.settings}).test_client(), beijing_admin_token)


GRID = "110105015033002"


def desk_row(page, case_id: int):
    """The desk row of a case, once its action buttons have come."""
    return row(page, case_id)


def wait_gone(page, case_id: int) -> None:
    """Wait until the case's desk row has left the queue; fail with the message the row shows if the API refused."""
    page.wait_for_function("""(id) => { const r = document.querySelector(`#rows > li[data-case-id='${id}']`);
        return !r || Array.from(r.querySelectorAll('.cg-error')).some(e => e.textContent.length > 0); }""",
                           arg=case_id, timeout=30_000)
    left = page.locator(f"#rows > li[data-case-id='{case_id}']")
    assert left.count() == 0, left.inner_text()


def click_row_action(page, case_id: int, action: str, **form) -> None:
    """Click ``action`` on the case's desk row (filling its form when one opens) and wait for the row to leave
    the queue."""
    found = desk_row(page, case_id)
    found.locator(f".cg-actions button[data-action='{action}']").click()
    opened = found.locator(f"form.cg-action-form[data-action='{action}']")
    if opened.count():
        fill_form(opened, **form)
    wait_gone(page, case_id)


def test_the_closed_loop_in_the_browser(browser, server, people, made_cases, api):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    # 1. The supervisor reports from the phone: GPS, the grid shown, class, a photo, one request.
    with page_as(browser, server + "/report", people["supervisor"], **PHONE) as (page, _, _o):
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.click("#locate")
        page.wait_for_function("(g) => document.getElementById('where').textContent.includes(g)", arg=GRID)
        page.fill("#description", "机动车乱停放，占用人行道")
        page.fill("#class-search", "0505")
        page.select_option("#class", "event/0505")
        page.set_input_files("#photos", [photo("street.jpg", jpeg())])
        page.wait_for_selector("#previews img")
        page.screenshot(path=str(ARTIFACTS / "desk-report-phone.png"), full_page=True)
        page.click("#submit")
        page.wait_for_selector("#case-link", timeout=30_000)
        case_id = int(page.get_attribute("#result", "data-case-id"))
        made_cases.append(case_id)
        assert page.evaluate("sessionStorage.getItem('citygrid-report-key')") is None  # a new form, a new key
    case = api.get(f"/api/v1/cases/{case_id}").get_json()
    assert (case["status"], case["source"], case["unit_grid_code"]) == ("reported", "supervisor", GRID)
    assert len(case["photos"]) == 1 and case["photos"][0]["gps"] is not None

    mine = f"unit_grid={GRID}"
    # 2. The acceptor files it from the desk's accept queue.
    with page_as(browser, server + f"/desk?queue=accept&{mine}", people["acceptor"]) as (page, _, _o):
        assert "refreshes every 5 s" in page.inner_text(".cg-help")
        assert "机动车乱停放" in desk_row(page, case_id).inner_text()
        page.screenshot(path=str(ARTIFACTS / "desk-acceptor.png"))
        click_row_action(page, case_id, "accept")
    assert api.get(f"/api/v1/cases/{case_id}").get_json()["status"] == "accepted"

    # 3. The dispatcher dispatches with one click to the suggested party (shown with level and deadline).
    with page_as(browser, server + f"/desk?queue=dispatch&{mine}", people["dispatcher"]) as (page, _, _o):
        text = desk_row(page, case_id).inner_text()
        assert "十里堡社区居委会" in text and "community" in text, text
        page.screenshot(path=str(ARTIFACTS / "desk-dispatcher.png"))
        click_row_action(page, case_id, "dispatch")
    case = api.get(f"/api/v1/cases/{case_id}").get_json()
    assert case["status"] == "dispatched" and case["attrs"]["dispatched_to"]["code"] == COMMUNITY_PARTY

    # 4. The community's unit feeds back with a photo, from its dispose queue (deadline counting down).
    community_unit = people["unit"](COMMUNITY_PARTY)
    with page_as(browser, server + "/desk?queue=dispose", community_unit) as (page, _, _o):
        assert "left" in desk_row(page, case_id).inner_text()
        click_row_action(page, case_id, "feed_back", note="已劝离车辆",
                         photos=[photo("fixed.jpg", jpeg(colour="#30b070"))])
    assert api.get(f"/api/v1/cases/{case_id}").get_json()["status"] == "fed_back"

    # 5. The supervisor checks on the phone and fails it: the case goes back for re-dispatch at a higher level.
    with page_as(browser, server + f"/desk?queue=check&{mine}", people["supervisor"], **PHONE) as (page, _, _o):
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(ARTIFACTS / "desk-supervisor-check-phone.png"), full_page=True)
        click_row_action(page, case_id, "check_fail", note="车辆仍在人行道上",
                         photos=[photo("still.jpg", jpeg(colour="#b03030"))])
    case = api.get(f"/api/v1/cases/{case_id}").get_json()
    assert case["status"] == "accepted"

    # 6. The re-dispatch goes to the next level's party (the street's), shown on the dispatcher's desk.
    with page_as(browser, server + f"/desk?queue=dispatch&{mine}", people["dispatcher"]) as (page, _, _o):
        text = desk_row(page, case_id).inner_text()
        assert "十里堡社区居委会" not in text and "street" in text, text
        page.screenshot(path=str(ARTIFACTS / "desk-redispatch.png"))
        click_row_action(page, case_id, "dispatch")
    case = api.get(f"/api/v1/cases/{case_id}").get_json()
    street_party = case["attrs"]["dispatched_to"]
    assert case["status"] == "dispatched" and street_party["code"] != COMMUNITY_PARTY
    assert street_party["name"] in text

    # The community's unit no longer reads the case: its page is a 403 message, not a blank map.
    with page_as(browser, server + f"/cases/{case_id}", community_unit, allow_refusals=True) as (page, _, _o):
        assert "not" in page.inner_text("h1").lower() and page.locator(".folium-map").count() == 0
        assert COMMUNITY_PARTY in page.inner_text("#message") or "party" in page.inner_text("#message")

    # 7. The street's unit feeds back from the case page, with a photo.
    with page_as(browser, server + f"/cases/{case_id}", people["unit"](street_party["code"])) as (page, _, _o):
        assert street_party["name"] in page.inner_text("#summary-box")
        act_on_case_page(page, "feed_back", note="城建科已清理", photos=[photo("done.jpg", jpeg(colour="#30b030"))])
        assert "fed_back" in page.inner_text("#title")

    # 8. The supervisor's check passes (case page on the phone); 9. the acceptor closes.
    with page_as(browser, server + f"/cases/{case_id}", people["supervisor"], **PHONE) as (page, _, _o):
        act_on_case_page(page, "check_pass", note="已整改")
        assert "checked" in page.inner_text("#title")
    with page_as(browser, server + f"/cases/{case_id}", people["acceptor"]) as (page, _, _o):
        act_on_case_page(page, "close")
        assert "closed" in page.inner_text("#title")

    # 10. The call-taker records the callback: satisfied.
    with page_as(browser, server + f"/cases/{case_id}", people["calltaker"]) as (page, _, _o):
        act_on_case_page(page, "callback", fields={"satisfaction": "satisfied"}, note="回访：满意")
        assert "evaluated" in page.inner_text("#title")
        timeline = page.inner_text("#timeline")
        for step in ("accept", "dispatch", "feed_back", "check_fail", "check_pass", "close", "callback"):
            assert step in timeline
        assert page.locator("#timeline img").count() >= 4  # the photos of the report, feedbacks and failed check
        assert page.locator("#photos img").count() >= 4
        page.screenshot(path=str(ARTIFACTS / "desk-case-closed.png"), full_page=True)
    case = api.get(f"/api/v1/cases/{case_id}").get_json()
    assert case["status"] == "evaluated" and case["row_version"] >= 9


def refusal_of(api, files: list[tuple[str, bytes, str]]) -> str:
    """The API's own message for a report with these photo parts (nothing is stored: it is refused)."""
    import json

    data = {"report": json.dumps({"lon": LON, "lat": LAT, "description": "照片检查", "source": "supervisor"})}
    data["photo"] = [(io.BytesIO(content), name, mime) for name, content, mime in files]
    answer = api.post("/api/v1/cases", data=data, content_type="multipart/form-data")
    assert 400 <= answer.status_code < 500, answer.get_data(as_text=True)[:300]
    return answer.get_json()["message"]


def test_the_report_form_shows_why_a_photo_is_refused_and_then_sends_once(browser, server, people, made_cases,  # noqa: F811
                                                                           api):
    not_image = b"%PDF-1.4 this is a document, not a photo\n" * 20
    oversized = jpeg() + b"\0" * (10 * 1024 * 1024 + 1)
    with page_as(browser, server + "/report", people["supervisor"], allow_refusals=True, **PHONE) as (page, _, _o):
        page.click("#locate")
        page.wait_for_function("(g) => document.getElementById('where').textContent.includes(g)", arg=GRID)
        page.fill("#description", "井盖缺失")
        for name, content in (("lie.jpg", not_image), ("huge.jpg", oversized)):
            page.set_input_files("#photos", [photo(name, content)])
            page.click("#submit")
            page.wait_for_selector("#result.cg-result.cg-error", timeout=60_000)
            shown = page.inner_text("#result")
            assert refusal_of(api, [(name, content, "image/jpeg")]) in shown, shown
            assert page.locator("#retry").is_hidden() and page.is_enabled("#submit")
            page.screenshot(path=str(ARTIFACTS / f"desk-report-refused-{name.split('.')[0]}.png"), full_page=True)
        page.set_input_files("#photos", [photo("ok.jpg", jpeg())])
        page.click("#submit")
        page.wait_for_selector("#case-link", timeout=30_000)
        made_cases.append(int(page.get_attribute("#result", "data-case-id")))


def test_an_acceptor_is_not_offered_filing_an_unverified_hotline_report(browser, server, people, made_cases,  # noqa: F811
                                                                        api):
    with page_as(browser, server + "/hotline", people["calltaker"]) as (page, _, _o):
        page.fill("#caller-name", "王先生")
        page.fill("#caller-phone", "13800000000")
        page.fill("#address", "十里堡")
        page.click("#find")
        page.locator("#places li").first.click()
        page.wait_for_function("() => document.getElementById('where').textContent.includes('unit grid')")
        page.fill("#description", "小区门口垃圾桶满溢，无人清运")
        page.wait_for_function("() => document.getElementById('suggestion').textContent.length > 0")
        page.screenshot(path=str(ARTIFACTS / "desk-hotline.png"))
        page.click("#submit")
        page.wait_for_selector("#case-link", timeout=30_000)
        hotline_case = int(page.get_attribute("#result", "data-case-id"))
        made_cases.append(hotline_case)
    case = api.get(f"/api/v1/cases/{hotline_case}").get_json()
    assert case["source"] == "hotline" and case["complainant"]["name"] == "王先生"

    with page_as(browser, server + f"/cases/{hotline_case}", people["acceptor"],
                 allow_refusals=True) as (page, _, _o):
        assert page.locator("#actions button[data-action='accept']").count() == 0
        # The report waits for a supervisor's verification (a hotline report is given the task at intake).
        assert "Verify by 核实时限" in page.inner_text("#summary-box")
        assert "王先生" in page.inner_text("#complainant")
        # Forced (a button the page would not offer): the API's refusal, naming the rule, is shown.
        page.evaluate("""(id) => window.citygrid.api('/api/v1/cases/' + id).then(r => window.citygrid.actionButtons(
            document.getElementById('actions'), Object.assign({}, r.body, {my_actions: [{action: 'accept',
            label: '立案', needs: []}]}), {onDone: () => {}}))""", hotline_case)
        page.click("#actions button[data-action='accept']")
        page.wait_for_function("() => document.querySelector('#actions .cg-error').textContent.length > 0")
        assert "filing" in page.inner_text("#actions .cg-error")
        page.screenshot(path=str(ARTIFACTS / "desk-acceptor-unverified.png"))
    # A call-taker's case page never lists what only others may do; a missing case is a 404 message page.
    with page_as(browser, server + "/cases/987654321", people["acceptor"], allow_refusals=True) as (page, _, _o):
        assert page.locator("#message").inner_text().startswith("no case")


@pytest.mark.parametrize("path,who", [("/desk", "acceptor"), ("/desk", "calltaker"), ("/report", "supervisor"),
                                      ("/hotline", "calltaker")])
def test_the_desk_pages_on_a_phone(browser, server, people, path, who):  # noqa: F811
    with page_as(browser, server + path, people[who], **PHONE) as (page, _, _o):
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        nav = page.inner_text("header nav")
        assert ("Report" in nav) == (who == "supervisor") and ("Hotline" in nav) == (who == "calltaker")
        page.screenshot(path=str(ARTIFACTS / f"desk-phone-{who}-{path.strip('/')}.png"), full_page=True)


def test_a_lost_answer_is_sent_again_with_the_same_key_and_makes_one_case(browser, server, people,  # noqa: F811
                                                                          made_cases, beijing_engine):
    """A slow or broken connection: the report reaches the server but its answer is lost. The form says so,
    offers Retry (never a second submit meanwhile), and the retry carries the same Idempotency-Key: one case."""
    keys: list[str] = []

    def lose_the_first_answer(route):
        keys.append(route.request.header_value("idempotency-key"))
        if len(keys) == 1:
            route.fetch(timeout=30_000)  # the server stores the report…
            route.abort("timedout")  # …and the phone never hears back
        else:
            route.continue_()

    lost = re.compile(r"^Failed to load resource: net::ERR_TIMED_OUT")
    with page_as(browser, server + "/report", people["supervisor"], allow=lost, **PHONE) as (page, _, _o):
        page.route("**/api/v1/cases", lose_the_first_answer)
        page.click("#locate")
        page.wait_for_function("(g) => document.getElementById('where').textContent.includes(g)", arg=GRID)
        page.fill("#description", "施工占道，围挡占用人行道")
        page.select_option("#class", "event/0304")
        page.set_input_files("#photos", [photo("site.jpg", jpeg(colour="#807060"))])
        # A double tap: the form sends once.
        page.evaluate("""() => { const f = document.getElementById('report-form');
                             f.requestSubmit(); f.requestSubmit(); }""")
        page.wait_for_selector("#retry:visible", timeout=40_000)
        assert len(keys) == 1 and keys[0]
        assert page.evaluate("sessionStorage.getItem('citygrid-report-key')") == keys[0]
        assert "sending" not in page.inner_text("#result")
        page.screenshot(path=str(ARTIFACTS / "desk-report-retry.png"), full_page=True)
        page.click("#retry")
        page.wait_for_selector("#case-link", timeout=30_000)
        case_id = int(page.get_attribute("#result", "data-case-id"))
        made_cases.append(case_id)
        assert keys == [keys[0], keys[0]]
    with beijing_engine.connect() as conn:
        made = conn.execute(sa.text("SELECT case_id FROM cases WHERE description = :d"),
                            {"d": "施工占道，围挡占用人行道"}).scalars().all()
        photos = conn.execute(sa.text("SELECT count(*) FROM case_photos WHERE case_id = :c"), {"c": case_id}).scalar()
    assert made == [case_id] and photos == 1


def test_the_desk_shows_a_new_case_by_itself(browser, server, people, made_cases, api):  # noqa: F811
    """The desk polls every 5 s with the list's ETag: unchanged answers are 304s, and a new report shows up in
    the acceptor's queue without a reload."""
    with page_as(browser, server + f"/desk?queue=accept&unit_grid={GRID}", people["acceptor"]) as (page, _, _o):
        with page.expect_response(lambda r: "/api/v1/desk/accept?" in r.url and r.status == 304, timeout=15_000):
            pass
        made = api.post("/api/v1/cases", json={"lon": LON, "lat": LAT, "kind": "event", "class_code": "0301",
                                               "description": "夜间施工扰民", "source": "supervisor"})
        assert made.status_code == 201, made.get_data(as_text=True)
        case_id = made.get_json()["case"]["case_id"]
        made_cases.append(case_id)
        desk_row(page, case_id)  # appears at the next poll
        assert "夜间施工扰民" in page.inner_text("#rows")


def test_the_acceptors_forms_reclassify_reject_with_a_reason_and_mark_a_duplicate(browser, server, people,  # noqa: F811
                                                                                   made_cases, api):
    made = {}
    for name, code in (("first", "0105"), ("second", "0106"), ("original", "0108")):
        answer = api.post("/api/v1/cases", json={"lon": LON, "lat": LAT, "kind": "event", "class_code": code,
                                                 "description": f"受理测试 {name}", "source": "supervisor"})
        assert answer.status_code == 201, answer.get_data(as_text=True)
        made[name] = answer.get_json()["case"]["case_id"]
        made_cases.append(made[name])
    with page_as(browser, server + f"/desk?queue=accept&unit_grid={GRID}", people["acceptor"],
                 allow_refusals=True) as (page, _, _o):
        # Reclassify with the class picker's search: the case stays in the queue with its new class.
        second = desk_row(page, made["second"])
        second.locator("button[data-action='reclassify']").click()
        form = second.locator("form.cg-action-form[data-action='reclassify']")
        form.locator("input[type=search]").fill("废弃车辆")
        form.locator("[name=class_code]").select_option("event/0107")
        form.locator("button[type=submit]").click()
        page.wait_for_function("(id) => { const r = document.querySelector(`#rows > li[data-case-id='${id}']`);"
                               " return r && !r.querySelector('form') && r.querySelector('.cg-row-head').innerText"
                               ".includes('0107') && r.querySelector('.cg-actions button'); }",
                               arg=made["second"], timeout=20_000)
        # Reject needs its reason: the form says so before anything is sent, then the reason goes with it.
        second = desk_row(page, made["second"])
        second.locator("button[data-action='reject']").click()
        form = second.locator("form.cg-action-form[data-action='reject']")
        form.locator("button[type=submit]").click()
        assert "reason is required" in form.locator(".cg-error").inner_text()
        fill_form(form, note="不属于城管职责")
        wait_gone(page, made["second"])
        # Mark a duplicate: its own number is refused with the API's message; the original's is taken.
        first = desk_row(page, made["first"])
        first.locator("button[data-action='mark_duplicate']").click()
        form = first.locator("form.cg-action-form[data-action='mark_duplicate']")
        fill_form(form, fields={"duplicate_of": str(made["first"])})
        page.wait_for_function("(id) => { const f = document.querySelector("
                               "`#rows > li[data-case-id='${id}'] form.cg-action-form .cg-error`);"
                               " return f && f.textContent.length > 0; }", arg=made["first"])
        refused = form.locator(".cg-error").inner_text()
        assert str(made["first"]) in refused or "itself" in refused, refused
        page.screenshot(path=str(ARTIFACTS / "desk-acceptor-duplicate-refused.png"))
        form.locator(".cg-error").evaluate("e => { e.textContent = ''; }")
        fill_form(form, fields={"duplicate_of": str(made["original"])})
        wait_gone(page, made["first"])
    second, first = (api.get(f"/api/v1/cases/{made[k]}").get_json() for k in ("second", "first"))
    assert (second["status"], second["class_code"]) == ("rejected", "0107")
    assert first["status"] == "duplicate"


def test_the_dispatcher_sends_a_case_to_another_party_and_its_unit_hands_it_back(browser, server, people,  # noqa: F811
                                                                                  made_cases, api):
    other = "110105015000-enforcement"  # the street's law-enforcement team, not the rule's community committee
    answer = api.post("/api/v1/cases", json={"lon": LON, "lat": LAT, "kind": "event", "class_code": "0109",
                                             "description": "树上挂满杂物", "source": "supervisor"})
    case = answer.get_json()["case"]
    made_cases.append(case["case_id"])
    assert api.post(f"/api/v1/cases/{case['case_id']}/transitions",
                    json={"action": "accept", "note": ""}).status_code == 200
    with page_as(browser, server + f"/desk?queue=dispatch&unit_grid={GRID}", people["dispatcher"]) as (page, _, _o):
        found = desk_row(page, case["case_id"])
        found.locator("button[data-action='dispatch-other']").click()
        form = found.locator("form.cg-action-form[data-action='dispatch']")
        form.locator("[name=party_search]").fill("八里庄街道综合执法")
        page.wait_for_function("(v) => Array.from(document.querySelectorAll('select[name=party_code] option'))"
                               ".some(o => o.value === v)", arg=other)
        fill_form(form, fields={"party_code": other}, note="由执法队处理")
        wait_gone(page, case["case_id"])
    dispatched = api.get(f"/api/v1/cases/{case['case_id']}").get_json()
    assert dispatched["status"] == "dispatched" and dispatched["attrs"]["dispatched_to"]["code"] == other
    with page_as(browser, server + f"/cases/{case['case_id']}", people["unit"](other)) as (page, _, _o):
        act_on_case_page(page, "hand_back", note="不属于本单位职责")
        assert "accepted" in page.inner_text("#title")
        assert "不属于本单位职责" in page.inner_text("#timeline")
