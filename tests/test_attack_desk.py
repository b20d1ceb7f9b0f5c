"""Attacks on what #21 added (the desk's queues, photos, the new workflow actions, the complainant, the pages):
what a hostile or merely curious caller sends, and what each route must answer. Real PostGIS, no mocks."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from citygrid.accounts import service as accounts
from citygrid.cases import service
from citygrid.cases.intake import parse_report
from tests import test_photos as photo_tests
from tests.conftest import assert_error, user_token
from tests.test_photos import LAT, LON, files, jpeg, png, post_form, report_payload, stored_count, webp

# The photo tests' fixtures: the app with a temporary photo directory, its signed-in users, a dispatched case.
app, as_user, photos_dir = photo_tests.app, photo_tests.as_user, photo_tests.photos_dir
case_setup = photo_tests.case_setup

NAME, PHONE = "来电人丙丁", "+86 138-7766-5544"
BEYOND = (2**63, 10**30)


def leaks(response) -> bool:
    body = response.get_data()
    return any(t in body for t in (NAME.encode(), PHONE.encode(), b"7766-5544", json.dumps(NAME).encode()))


# ------------------------------------------------------------------------------------------ ids
def test_photo_and_transition_routes_refuse_ids_beyond_bigint_as_404_not_500(case_setup, as_user):
    admin = as_user("atk-big", ["admin"])
    cid = case_setup["case_id"]
    for big in BEYOND:
        for answer in (admin.get(f"/api/v1/cases/{big}/photos"), admin.get(f"/api/v1/cases/{big}/photos/1"),
                       admin.get(f"/api/v1/cases/{big}/photos/1/thumb"),
                       admin.get(f"/api/v1/cases/{cid}/photos/{big}"),
                       admin.get(f"/api/v1/cases/{cid}/photos/{big}/thumb"),
                       admin.get(f"/api/v1/cases/{big}"),
                       post_form(admin, f"/api/v1/cases/{big}/photos", photo=files(jpeg())),
                       admin.post(f"/api/v1/cases/{big}/transitions", json={"action": "accept"})):
            assert_error(answer, 404, "not_found")
    sup = as_user("atk-big-sup", ["supervisor"], case_setup["team"])
    for big in BEYOND:
        assert_error(sup.get(f"/api/v1/cases/{big}/photos"), 404, "not_found")
        assert_error(post_form(sup, f"/api/v1/cases/{big}/photos", photo=files(jpeg())), 404, "not_found")


# ------------------------------------------------------------------------------------------ replays
def test_a_retry_with_the_same_key_but_other_photos_is_a_409_not_a_silent_drop(as_user, bj):
    supervisor = as_user("atk-key", ["supervisor"], "110105T01")
    report = json.dumps(report_payload(description="井盖缺失", class_code="0103"), ensure_ascii=False)
    key = {"Idempotency-Key": "atk-key-1"}
    made = post_form(supervisor, "/api/v1/cases", headers=key, report=report, photo=files(jpeg()))
    assert made.status_code == 201, made.get_data(as_text=True)
    cid = made.get_json()["case"]["case_id"]
    # the very same request again: the same case, nothing stored twice
    again = post_form(supervisor, "/api/v1/cases", headers=key, report=report, photo=files(jpeg()))
    assert again.status_code == 200 and again.get_json()["outcome"] == "existing"
    # the same key with another photo, one more photo, or none: another request, refused, not dropped silently
    for other in (files(png()), files(jpeg(), webp()), []):
        answer = post_form(supervisor, "/api/v1/cases", headers=key, report=report, photo=other)
        assert_error(answer, 409, "conflict", reason="different report")
    assert stored_count(bj, cid) == 1
    # a report made without photos and retried with one is another report too
    plain = supervisor.post("/api/v1/cases", json=report_payload(lon=LON + 0.01, class_code="0104"),
                            headers={"Idempotency-Key": "atk-key-2"})
    assert plain.status_code == 201
    retried = post_form(supervisor, "/api/v1/cases", headers={"Idempotency-Key": "atk-key-2"},
                        report=json.dumps(report_payload(lon=LON + 0.01, class_code="0104")), photo=files(jpeg()))
    assert_error(retried, 409, "conflict")
    # and retried exactly (JSON, no photos) it is the same case
    same = supervisor.post("/api/v1/cases", json=report_payload(lon=LON + 0.01, class_code="0104"),
                           headers={"Idempotency-Key": "atk-key-2"})
    assert same.status_code == 200 and same.get_json()["outcome"] == "existing"


# ------------------------------------------------------------------------------------------ complainant
def test_no_desk_queue_photo_list_or_replay_carries_the_complainant(as_user, bj, case_rules):
    calltaker = as_user("atk-ct", ["calltaker"])
    body = {"lon": LON, "lat": LAT, "kind": "event", "class_code": "0505", "description": "占道经营",
            "complainant": {"name": NAME, "phone": PHONE}}
    made = calltaker.post("/api/v1/cases", json=body, headers={"Idempotency-Key": "atk-ct-1"})
    assert made.status_code == 201 and not leaks(made)
    cid = made.get_json()["case"]["case_id"]
    replay = calltaker.post("/api/v1/cases", json=body, headers={"Idempotency-Key": "atk-ct-1"})
    assert replay.status_code == 200 and not leaks(replay)
    readers = [as_user("atk-acc", ["acceptor"]), as_user("atk-disp", ["dispatcher"]), calltaker,
               as_user("atk-adm", ["admin"])]
    for reader in readers:
        for queue in ("accept", "callback", "dispatch"):
            answer = reader.get(f"/api/v1/desk/{queue}?limit=200")
            assert answer.status_code in (200, 403) and not leaks(answer), queue
        assert not leaks(reader.get("/api/v1/desk"))
        assert not leaks(reader.get(f"/api/v1/cases/{cid}/photos"))
    # walk the case to closed: the callback queue lists it, without the contact
    for action, role in (("verify", "supervisor"), ("accept", "acceptor"), ("dispatch", "dispatcher"),
                         ("feed_back", "unit"), ("check_pass", "supervisor"), ("close", "acceptor")):
        service.transition(bj, case_rules, cid, action, actor="t", role=role)
    for reader in readers[:3]:
        answer = reader.get("/api/v1/desk/callback?limit=200")
        assert cid in [r["case_id"] for r in answer.get_json()["cases"]] and not leaks(answer)


# ------------------------------------------------------------------------------------------ sessions
def _session(app, bj, name: str, roles: list[str], team: str | None = None):
    user_token(bj, name, roles, team)
    client = app.test_client()
    answer = client.post("/login", json={"username": name, "password": "correct horse battery"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return client, answer.get_json()["csrf_token"]


def test_cookie_sessions_need_the_csrf_token_on_every_new_write(app, case_setup, bj):
    cid = case_setup["case_id"]
    client, token = _session(app, bj, "atk-sess", ["admin"])
    url = f"/api/v1/cases/{cid}/photos"
    assert_error(post_form(client, url, photo=files(jpeg())), 403, "forbidden", reason="CSRF")
    assert_error(post_form(client, url, photo=files(jpeg()), csrf_token="forged"), 403, "forbidden", reason="CSRF")
    assert_error(post_form(client, f"/api/v1/cases/{cid}/transitions", data=json.dumps({"action": "feed_back"})),
                 403, "forbidden", reason="CSRF")
    assert_error(post_form(client, "/api/v1/cases", report=json.dumps(report_payload())), 403, "forbidden",
                 reason="CSRF")
    assert stored_count(bj, cid) == 0
    # the token as a form field of the multipart body, or as the header
    assert post_form(client, url, photo=files(jpeg()), csrf_token=token).status_code == 201
    assert post_form(client, url, photo=files(png()), headers={"X-CSRF-Token": token}).status_code == 201


def test_a_disabled_account_reads_no_queue_photo_or_case_and_writes_nothing(app, as_user, case_setup, bj):
    cid = case_setup["case_id"]
    admin = as_user("atk-dis-admin", ["admin"])
    photo = post_form(admin, f"/api/v1/cases/{cid}/photos", photo=files(jpeg())).get_json()["photos"][0]
    gone = as_user("atk-dis", ["dispatcher"])
    tag = gone.get("/api/v1/desk/accept").headers["ETag"]
    accounts.set_disabled(bj, "atk-dis")
    for answer in (gone.get("/api/v1/desk"), gone.get("/api/v1/desk/accept", headers={"If-None-Match": tag}),
                   gone.get(photo["url"]), gone.get(photo["thumb_url"]), gone.get(f"/api/v1/cases/{cid}"),
                   gone.get("/api/v1/parties?district=110105"),
                   post_form(gone, f"/api/v1/cases/{cid}/photos", photo=files(jpeg())),
                   gone.post(f"/api/v1/cases/{cid}/transitions", json={"action": "accept"})):
        assert_error(answer, 401, "unauthorized")


# ------------------------------------------------------------------------------------------ etags
def test_a_photo_tag_never_answers_for_a_caller_who_may_not_read_the_case(as_user, case_setup):
    cid = case_setup["case_id"]
    admin = as_user("atk-tag-admin", ["admin"])
    photo = post_form(admin, f"/api/v1/cases/{cid}/photos", photo=files(jpeg())).get_json()["photos"][0]
    got = admin.get(photo["url"])
    tag = got.headers["ETag"]
    assert admin.get(photo["url"], headers={"If-None-Match": tag}).status_code == 304
    stranger = as_user("atk-tag-sup", ["supervisor"], case_setup["other_team"])
    for header in (tag, "*", f"W/{tag}"):
        assert_error(stranger.get(photo["url"], headers={"If-None-Match": header}), 403, "forbidden")
    desk_tag = as_user("atk-tag-acc", ["acceptor"]).get("/api/v1/desk/accept").headers["ETag"]
    other = as_user("atk-tag-acc2", ["acceptor"]).get("/api/v1/desk/accept", headers={"If-None-Match": f"W/{desk_tag}"})
    assert other.status_code == 200 and "cases" in other.get_json()


# ------------------------------------------------------------------------------------------ hostile parts
def test_hostile_names_types_and_parts_are_4xx_or_stored_by_content_never_500(as_user, case_setup, bj, photos_dir):
    cid = case_setup["case_id"]
    admin = as_user("atk-parts", ["admin"])
    url = f"/api/v1/cases/{cid}/photos"
    names = ["../../../etc/passwd.jpg", "a\x00b.jpg", "\x1b[31m.jpg", "x" * 5000 + ".jpg", "..\\..\\c.jpg", ""]
    for i, name in enumerate(names):
        part = [("photo", (io.BytesIO(jpeg(colour=(i, 9, 9))), name, "text/html"))]
        answer = post_form(admin, url, photo=part)
        assert answer.status_code in (201, 400), (name[:20], answer.get_data(as_text=True)[:300])
        if answer.status_code == 201:
            assert answer.get_json()["photos"][0]["content_type"] == "image/jpeg"
    for path in photos_dir.rglob("*"):
        assert path.is_dir() or re.fullmatch(r"[0-9a-f]{64}\.(jpg|png|webp)", path.name), path
    # an HTML file called .jpg and sent as image/jpeg is not an image
    html = [("photo", (io.BytesIO(b"<html><script>alert(1)</script>"), "x.jpg", "image/jpeg"))]
    assert_error(post_form(admin, url, photo=html), 400, "invalid_input", field="photo[0]")
    # the data part of a transition: huge text, deep nesting, not an object, control characters
    step = f"/api/v1/cases/{cid}/transitions"
    for data in ('{"action": "' + "x" * 2_000_000 + '"}', "[" * 100_000, "7", '{"action": "feed_back\\u0000"}'):
        answer = post_form(admin, step, data=data)
        assert answer.status_code in (400, 413), answer.get_data(as_text=True)[:300]
    # eleven photos
    assert_error(post_form(admin, url, photo=files(*[jpeg(colour=(i, 1, 1)) for i in range(11)])), 400,
                 "invalid_input", field="photo")


# ------------------------------------------------------------------------------------------ pages
PAGE_SCRIPTS = ("desk.js", "case.js", "report.js", "hotline.js", "actions.js", "intake.js")


def test_the_desk_pages_never_hand_stored_text_to_leaflet_as_html():
    """Leaflet's ``bindTooltip``/``bindPopup``/``setContent`` put a string in with ``innerHTML``: a class name or
    component id holding markup would become the page's markup. The desk's pages give them elements or
    functions that build elements with ``textContent``."""
    static = Path(__file__).parents[1] / "citygrid" / "webmap" / "static"
    for name in PAGE_SCRIPTS:
        text = (static / name).read_text(encoding="utf-8")
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text, name
        for call in re.finditer(r"\.(bindTooltip|bindPopup|setContent)\(\s*([^)]{0,80})", text):
            argument = call.group(2)
            as_text = argument.startswith(("document.createTextNode(", "function", "cg."))
            assert as_text or not (argument.startswith(('"', "'")) or "+" in argument), (name, call.group(0))


def test_a_polled_304_never_hides_a_case_falling_overdue_or_due_soon(as_user, bj, case_rules):
    """Time passing changes no row, yet a task falls due: the counts a page shows must not stay behind a 304."""
    case, _ = service.submit(bj, case_rules, parse_report(report_payload(lon=LON + 0.004, class_code="0104")))
    due = "UPDATE cases SET verify_due_at = now() + CAST(:left AS interval) WHERE case_id = :c"
    bj.execute(sa.text(due), {"left": "3 days", "c": case["case_id"]})
    acceptor = as_user("atk-due", ["acceptor"])
    url = "/api/v1/desk/accept?district=110105"
    first = acceptor.get(url)
    counts, tag = first.get_json()["counts"], first.headers["ETag"]
    assert acceptor.get(url, headers={"If-None-Match": tag}).status_code == 304
    for left, changed in (("1 hour", "due_soon"), ("-1 minute", "overdue")):  # what the clock does to the task
        bj.execute(sa.text(due), {"left": left, "c": case["case_id"]})
        later = acceptor.get(url, headers={"If-None-Match": tag})
        assert later.status_code == 200, left
        assert later.get_json()["counts"][changed] == counts[changed] + 1
        tag = later.headers["ETag"]


def test_a_small_file_announcing_fifty_megapixels_is_not_copied_full_size_again_and_again(tmp_path):
    """A few hundred kB of PNG (or a few kB of WebP) decode to 4 bytes a pixel (190 MiB); checking one made
    three more full-size copies (940 MiB at its peak; ten photos a request, several requests at once). Made
    small first, its peak stays under 3.25 times the decode (about 560 MiB). Measured in a process of its own
    by its peak resident memory since the check began (``/proc/self/clear_refs``, Linux)."""
    from PIL import Image

    from citygrid.evidence.photos import MAX_PIXELS

    side = int(MAX_PIXELS**0.5) - 10
    path = tmp_path / "big.png"
    Image.new("RGBA", (side, side), (1, 2, 3, 4)).save(path, "PNG")
    assert path.stat().st_size < 1_000_000
    child = ("from citygrid.evidence.photos import check_photo\n"
             "def kib(key):\n"
             "    return next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith(key))\n"
             f"data = open({str(path)!r}, 'rb').read()\n"
             "open('/proc/self/clear_refs', 'w').write('5')\n"
             "before = kib('VmRSS:')\n"
             "checked = check_photo(data, 'photo[0]')\n"
             "print(checked.width, kib('VmHWM:') - before)\n")
    width, grown_kib = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                                      check=True).stdout.split()
    assert int(width) == 4096
    decode_kib = side * side * 4 / 1024
    assert int(grown_kib) < 3.25 * decode_kib, f"{int(grown_kib) // 1024} MiB for a {decode_kib // 1024:.0f} MiB decode"


def race(engine, case_rules, first: tuple[int, int], second: tuple[int, int]) -> str:
    """Two acceptors at once: ``first`` (case, duplicate_of) is marked and, before it commits, ``second`` is
    tried on another connection; what became of the second (``marked`` or the refusal's message)."""
    import threading

    from citygrid.errors import Conflict

    outcome: dict[str, str] = {}

    def other_acceptor() -> None:
        with engine.begin() as conn:
            try:
                service.transition(conn, case_rules, second[0], "mark_duplicate", actor="acc-2", role="acceptor",
                                   duplicate_of=second[1])
                outcome["second"] = "marked"
            except Conflict as refused:
                outcome["second"] = refused.message
            except Exception as failed:  # what the endpoint would answer with a 500
                outcome["second"] = f"failed: {type(failed).__name__}"
    with engine.connect() as conn, conn.begin():
        service.transition(conn, case_rules, first[0], "mark_duplicate", actor="acc-1", role="acceptor",
                           duplicate_of=first[1])
        racer = threading.Thread(target=other_acceptor)
        racer.start()
        racer.join(timeout=3)  # it may finish meanwhile or wait for this commit
    racer.join(timeout=60)
    return outcome["second"]


def test_duplicates_marked_at_once_wait_for_each_other_never_a_500_or_a_circle(beijing_engine, case_rules):
    """A as a duplicate of B while B is marked a duplicate of A: each saw the other open. C and D as duplicates
    of the same E at once: both events took E's next number (a unique violation, a 500)."""
    with beijing_engine.begin() as conn:
        ids = [service.submit(conn, case_rules, parse_report(report_payload(lon=LON + d, class_code=c)))[0]["case_id"]
               for d, c in ((0.011, "0103"), (0.013, "0104"), (0.015, "0103"), (0.017, "0104"), (0.019, "0201"))]
    a, b, c, d, e = ids
    try:
        assert "itself a duplicate" in race(beijing_engine, case_rules, (a, b), (b, a))
        assert race(beijing_engine, case_rules, (c, e), (d, e)) == "marked"
        with beijing_engine.connect() as conn:
            statuses = dict(conn.execute(sa.text("SELECT case_id, status FROM cases WHERE case_id = ANY(:ids)"),
                                         {"ids": ids}).all())
            told = conn.execute(sa.text("SELECT count(*) FROM case_events WHERE case_id = :e "
                                        "AND action = 'duplicate_report'"), {"e": e}).scalar_one()
        assert statuses == {a: "duplicate", b: "reported", c: "duplicate", d: "duplicate", e: "reported"}
        assert told == 2
    finally:
        with beijing_engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM case_events WHERE case_id = ANY(:ids)"), {"ids": ids})
            conn.execute(sa.text("DELETE FROM cases WHERE case_id = ANY(:ids)"), {"ids": ids})


def test_two_events_added_to_one_case_at_once_take_their_numbers_in_turn(beijing_engine, case_rules):
    """Photos added (an ``add_photos`` event) while a duplicate report joins the same case on another
    connection: both read the same highest event number and the second insert was a unique violation (a 500)."""
    import threading

    from citygrid.cases import store as case_store

    with beijing_engine.begin() as conn:
        case = service.submit(conn, case_rules, parse_report(report_payload(lon=LON + 0.021, class_code="0505")))[0]
    district, cid = case["district_code"], case["case_id"]
    failures: list[str] = []

    def joining_report() -> None:
        try:
            with beijing_engine.begin() as conn:
                case_store.add_event(conn, district, cid, action="duplicate_report", from_status=None,
                                     to_status="reported", actor="t2", role="supervisor")
        except Exception as failed:  # what the endpoint would answer with a 500
            failures.append(type(failed).__name__)
    try:
        with beijing_engine.connect() as conn, conn.begin():
            case_store.add_event(conn, district, cid, action="add_photos", from_status="reported",
                                 to_status="reported", actor="t1", role="supervisor")
            racer = threading.Thread(target=joining_report)
            racer.start()
            racer.join(timeout=2)  # it waits for this commit
        racer.join(timeout=60)
        assert failures == []
        with beijing_engine.connect() as conn:
            seqs = conn.execute(sa.text("SELECT seq FROM case_events WHERE case_id = :c ORDER BY seq"),
                                {"c": cid}).scalars().all()
        assert seqs == [1, 2, 3]
    finally:
        with beijing_engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM cases WHERE case_id = :c"), {"c": cid})


def test_photos_are_not_added_to_a_closed_case(bj, case_rules, tmp_path):
    """Evidence documents the handling: a rejected, duplicate, closed or evaluated case takes no new photos
    (409) until it is reopened; an open one does."""
    from PIL import Image

    from citygrid.errors import Conflict
    from citygrid.evidence import service as evidence
    from citygrid.evidence.photos import check_photo
    from citygrid.evidence.storage import PhotoStorage

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, "JPEG")
    photo = check_photo(buffer.getvalue(), "photo[0]")
    case = service.submit(bj, case_rules, parse_report(report_payload(lon=LON + 0.023, class_code="0506")))[0]
    storage = PhotoStorage(tmp_path)
    added, _ = evidence.add_photos(bj, storage, case["case_id"], [photo], actor="t", role="supervisor")
    assert len(added) == 1
    for status in ("rejected", "duplicate", "closed", "evaluated"):
        bj.execute(sa.text("UPDATE cases SET status = :s WHERE case_id = :c"), {"s": status, "c": case["case_id"]})
        try:
            evidence.add_photos(bj, storage, case["case_id"], [photo], actor="t", role="supervisor")
        except Conflict as refused:
            assert status in refused.message
        else:
            raise AssertionError(f"photos added to a {status} case")
