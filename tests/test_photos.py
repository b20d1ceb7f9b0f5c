"""Photos (#21): checked by content, metadata stripped (GPS kept as a field), stored by content hash, served only to
those who may read the case; on intake, on workflow steps and on their own; in backups. Hostile files and
requests get a 4xx naming the part and the reason."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from PIL import Image, ImageCms

from citygrid import backup
from citygrid.cases import service
from citygrid.cases.intake import parse_report
from citygrid.config import Settings
from citygrid.errors import InvalidInput, TooLarge
from citygrid.evidence import photos as checks
from citygrid.evidence import service as evidence
from citygrid.evidence.storage import PhotoStorage
from tests.conftest import assert_error, rollback_backend, signed_in, user_token

LON, LAT = 116.48, 39.93  # inside Chaoyang (WGS84)


# ------------------------------------------------------------------------------------------ files
def jpeg(size=(64, 48), colour=(200, 40, 40), exif: Image.Exif | None = None, **save) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG", **({"exif": exif} if exif is not None else {}), **save)
    return out.getvalue()


def png(size=(40, 30), mode="RGBA") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (10, 120, 200, 128) if mode == "RGBA" else 1).save(out, "PNG")
    return out.getvalue()


def webp(size=(50, 50)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (0, 200, 0)).save(out, "WEBP")
    return out.getvalue()


def gps_exif(lon: float, lat: float, orientation: int | None = None) -> Image.Exif:
    """EXIF with a GPS position (degrees, minutes, seconds with their refs) and an orientation."""
    def dms(value: float) -> tuple[float, float, float]:
        value = abs(value)
        degrees = int(value)
        minutes = int((value - degrees) * 60)
        return float(degrees), float(minutes), round((value - degrees - minutes / 60) * 3600, 4)

    exif = Image.Exif()
    exif[0x8825] = {1: "N" if lat >= 0 else "S", 2: dms(lat), 3: "E" if lon >= 0 else "W", 4: dms(lon)}
    exif[0x010E] = "secret description"
    if orientation:
        exif[0x0112] = orientation
    return exif


def noisy_jpeg(size=(400, 300)) -> bytes:
    out = io.BytesIO()
    Image.effect_noise(size, 80).convert("RGB").save(out, "JPEG")
    return out.getvalue()


def bomb_png() -> bytes:
    """A small PNG announcing 100,000 x 100,000 pixels (a header with a valid CRC, then almost nothing)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + \
        chunk(b"IEND", b"")


def zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("a.txt", "hello")
    return out.getvalue()


def gif() -> bytes:
    out = io.BytesIO()
    Image.new("P", (10, 10)).save(out, "GIF")
    return out.getvalue()


HOSTILE = [
    ("pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF", "not a JPEG, PNG or WebP"),
    ("html", b"<!doctype html><script>alert(1)</script>", "not a JPEG, PNG or WebP"),
    ("svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "not a JPEG, PNG or WebP"),
    ("zip", zip_bytes(), "not a JPEG, PNG or WebP"),
    ("gif", gif(), "not a JPEG, PNG or WebP"),
    ("truncated", noisy_jpeg()[:20_000], "damaged or truncated"),
    ("empty", b"", "empty"),
    ("bomb", bomb_png(), "pixels"),
]


# ------------------------------------------------------------------------------------------ checks by content
@pytest.mark.parametrize(("name", "data", "needle"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_files_that_are_not_sound_images_are_refused_by_content(name, data, needle):
    with pytest.raises(InvalidInput, match=needle) as refused:
        checks.check_photo(data, "photo[3]")
    assert refused.value.details[0]["field"] == "photo[3]" and not isinstance(refused.value, TooLarge)


def test_accepted_formats_are_stored_as_their_own_format_with_a_jpeg_thumbnail():
    big = jpeg((1000, 500))
    for data, content_type in ((big, "image/jpeg"), (png(), "image/png"), (webp(), "image/webp")):
        photo = checks.check_photo(data, "photo[0]")
        assert photo.content_type == content_type and photo.sha256 == hashlib.sha256(photo.data).hexdigest()
        with Image.open(io.BytesIO(photo.data)) as stored:
            assert stored.format == {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}[content_type]
        with Image.open(io.BytesIO(photo.thumb)) as small:
            assert small.format == "JPEG" and max(small.size) <= checks.THUMB_SIDE
    assert checks.check_photo(big, "p").width == 1000  # under STORED_SIDE: full size


def test_exif_is_stripped_gps_kept_as_a_field_and_orientation_applied():
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = jpeg((60, 40), exif=gps_exif(116.4805, 39.9302, orientation=6), comment=b"who took it", icc_profile=srgb)
    photo = checks.check_photo(data, "photo[0]")
    assert photo.gps == pytest.approx((116.4805, 39.9302), abs=1e-5)
    assert (photo.width, photo.height) == (40, 60)  # orientation 6: rotated upright, then the tag is gone
    with Image.open(io.BytesIO(photo.data)) as stored:
        assert not dict(stored.getexif()) and not stored.getexif().get_ifd(0x8825)
        assert not {"exif", "icc_profile", "comment", "xmp"} & set(stored.info)
    assert b"secret description" not in photo.data and b"who took it" not in photo.data
    south_west = checks.check_photo(jpeg(exif=gps_exif(-58.38, -34.6)), "p")
    assert south_west.gps == pytest.approx((-58.38, -34.6), abs=1e-5)


def test_a_polyglot_keeps_only_its_pixels():
    """A JPEG with a zip and an HTML page appended opens as a JPEG; what is stored is its pixels only."""
    payload = zip_bytes() + b"<html><script>alert(1)</script></html>"
    photo = checks.check_photo(jpeg() + payload, "photo[0]")
    assert b"alert(1)" not in photo.data and b"a.txt" not in photo.data


@pytest.mark.parametrize("gps", [
    {1: "N", 2: (39.0, 61.0, 0.0), 3: "E", 4: (116.0, 0.0, 0.0)},  # 61 minutes
    {1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: (116.0, 0.0, 0.0)},  # beyond the pole
    {1: "X", 2: (39.0, 0.0, 0.0), 3: "E", 4: (116.0, 0.0, 0.0)},  # no such reference
    {2: (39.0, 0.0, 0.0), 4: (116.0, 0.0, 0.0)},  # no references at all
    {1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)},  # 0, 0: no fix
    {1: "N", 2: (39.0, 0.0, 0.0, 1.0), 3: "E", 4: (116.0, 0.0, 0.0)},  # four numbers
])
def test_nonsense_gps_is_ignored(gps):
    exif = Image.Exif()
    exif[0x8825] = gps
    assert checks.check_photo(jpeg(exif=exif), "p").gps is None


def test_a_damaged_exif_block_costs_the_position_not_the_photo():
    out = io.BytesIO()
    Image.new("RGB", (20, 20)).save(out, "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff" + b"\x01" * 20)
    photo = checks.check_photo(out.getvalue(), "p")
    assert photo.gps is None and b"Exif" not in photo.data


def test_over_the_size_limit_is_413_with_the_limit():
    with pytest.raises(TooLarge, match="10,485,760 bytes"):
        checks.check_photo(b"\xff" * (checks.MAX_PHOTO_BYTES + 1), "photo[0]")


def test_storage_writes_each_content_once_under_its_hash(tmp_path):
    storage = PhotoStorage(tmp_path)
    sha = storage.put(b"abc", "jpg")
    assert (tmp_path / sha[:2] / f"{sha}.jpg").read_bytes() == b"abc"
    assert storage.put(b"abc", "jpg") == sha and len(list(tmp_path.rglob("*"))) == 2  # one dir, one file
    for bad in (("../../etc/passwd", "jpg"), (sha, "html"), (sha.upper(), "jpg")):
        with pytest.raises(ValueError):
            storage.path(*bad)
    with pytest.raises(ValueError, match="hashes to"):
        storage.put_verified(f"{'0' * 64}.jpg", iter([b"not zero"]))
    assert not (tmp_path / "00").exists() or not list((tmp_path / "00").iterdir())


# ------------------------------------------------------------------------------------------ HTTP
@pytest.fixture
def photos_dir(tmp_path) -> Path:
    return tmp_path / "photos"


@pytest.fixture
def app(bj, beijing_db, photos_dir):
    """The app on the Beijing test database (rolled back), its photos in a temporary directory."""
    from citygrid.app import create_app

    settings = replace(Settings.from_env(), photos_root=photos_dir)
    return create_app({"CITYGRID_BACKEND": rollback_backend(bj, beijing_db.database or ""), "TESTING": True,
                       "CITYGRID_SETTINGS": settings})


@pytest.fixture
def as_user(app, bj):
    def make(name: str, roles: list[str], team: str | None = None, party: str | None = None):
        return signed_in(app.test_client(), user_token(bj, name, roles, team, party))
    return make


def report_payload(**overrides) -> dict:
    return {"lon": LON, "lat": LAT, "kind": "event", "class_code": "0102", "description": "暴露垃圾",
            "source": "supervisor", **overrides}


def files(*items: bytes, name: str = "photo") -> list[tuple[str, tuple[io.BytesIO, str, str]]]:
    return [(name, (io.BytesIO(data), f"../../evil{i}.jpg", "image/jpeg")) for i, data in enumerate(items)]


def multipart(**fields) -> dict:
    """A multipart body for the test client from form fields and (name, (stream, filename, type)) lists."""
    body: dict = {}
    for key, value in fields.items():
        if isinstance(value, list):
            for name, part in value:
                body.setdefault(name, []).append(part)
        else:
            body[key] = value
    return body


def post_form(client, url: str, headers: dict | None = None, **fields):
    return client.post(url, data=multipart(**fields), content_type="multipart/form-data", headers=headers or {})


@pytest.fixture
def case_setup(bj, case_rules, as_user):
    """A case reported at LON, LAT, accepted and dispatched; its team, its party and another party."""
    case, _ = service.submit(bj, case_rules, parse_report(report_payload()))
    cid = case["case_id"]
    service.transition(bj, case_rules, cid, "accept", actor="a", role="acceptor")
    party = service.transition(bj, case_rules, cid, "dispatch", actor="d",
                               role="dispatcher")["attrs"]["dispatched_to"]["code"]
    team = bj.execute(sa.text("SELECT team_code FROM supervision_grids WHERE code = :c"),
                      {"c": case["supervision_code"]}).scalar_one()
    other_team = bj.execute(sa.text("SELECT team_code FROM supervision_grids WHERE team_code <> :t LIMIT 1"),
                            {"t": team}).scalar_one()
    other_party = bj.execute(sa.text("SELECT code FROM parties WHERE district_code = '110105' AND code <> :p "
                                     "ORDER BY code LIMIT 1"), {"p": party}).scalar_one()
    return {"case_id": cid, "team": team, "other_team": other_team, "party": party, "other_party": other_party}


def stored_count(bj, case_id: int) -> int:
    return bj.execute(sa.text("SELECT count(*) FROM case_photos WHERE case_id = :c"), {"c": case_id}).scalar_one()


def test_add_photos_attaches_an_event_and_serves_the_stripped_files(case_setup, as_user, bj, photos_dir):
    cid = case_setup["case_id"]
    supervisor = as_user("ph-sup", ["supervisor"], case_setup["team"])
    far = jpeg((80, 60), exif=gps_exif(116.50, 39.93))  # ~1.7 km east of the case
    near = jpeg((80, 60), colour=(1, 2, 3), exif=gps_exif(LON, LAT + 0.0002))
    answer = post_form(supervisor, f"/api/v1/cases/{cid}/photos", photo=files(far, near, png()), note="现场照片")
    assert answer.status_code == 201, answer.get_data(as_text=True)
    body = answer.get_json()
    first, second, third = body["photos"]
    assert first["warning"] and "m from the case" in first["warning"] and 1500 < first["gps_distance_m"] < 2000
    assert second["warning"] is None and second["gps_distance_m"] < 50 and second["gps"]["lat"] == pytest.approx(
        LAT + 0.0002, abs=1e-6)
    assert third["gps"] is None and third["content_type"] == "image/png"
    assert first["url"] == f"/api/v1/cases/{cid}/photos/{first['photo_id']}" and first["uploaded_by"] == "ph-sup"
    view = supervisor.get(f"/api/v1/cases/{cid}").get_json()
    assert view["status"] == "dispatched" and [p["photo_id"] for p in view["photos"]] == [
        p["photo_id"] for p in body["photos"]]
    event = next(e for e in view["events"] if e["seq"] == body["event_seq"])
    assert event["action"] == "add_photos" and event["note"] == "现场照片" and event["role"] == "supervisor"
    assert event["photo_ids"] == [p["photo_id"] for p in body["photos"]]
    assert all(e["photo_ids"] == [] for e in view["events"] if e["seq"] != body["event_seq"])
    served = supervisor.get(first["url"])
    assert served.status_code == 200 and served.mimetype == "image/jpeg"
    assert served.headers["X-Content-Type-Options"] == "nosniff" and served.headers["Cache-Control"] == "private"
    assert served.headers["Content-Disposition"] == f'inline; filename="{first["photo_id"]}.jpg"'
    with Image.open(io.BytesIO(served.data)) as image:
        assert not dict(image.getexif()) and image.size == (80, 60)
    again = supervisor.get(first["url"], headers={"If-None-Match": served.headers["ETag"]})
    assert again.status_code == 304
    thumb = supervisor.get(first["thumb_url"])
    assert thumb.mimetype == "image/jpeg" and thumb.headers["Content-Disposition"].endswith('-thumb.jpg"')
    assert supervisor.get(f"/api/v1/cases/{cid}/photos/{third['photo_id']}").mimetype == "image/png"
    # stored under the content hash, never under the client's name
    names = {p.name for p in photos_dir.rglob("*") if p.is_file()}
    rows = bj.execute(sa.text("SELECT sha256, thumb_sha256, content_type FROM case_photos WHERE case_id = :c"),
                      {"c": cid}).all()
    assert names == {f"{r.sha256}.{r.content_type.split('/')[1].replace('jpeg', 'jpg')}" for r in rows} | {
        f"{r.thumb_sha256}.jpg" for r in rows}  # a small JPEG's thumbnail is the same file: stored once
    assert all(n.split(".")[0] == hashlib.sha256((photos_dir / n[:2] / n).read_bytes()).hexdigest() for n in names)
    assert not list(photos_dir.parent.rglob("evil*"))
    listed = supervisor.get(f"/api/v1/cases/{cid}/photos").get_json()["photos"]
    assert [p["photo_id"] for p in listed] == [p["photo_id"] for p in body["photos"]]


def test_who_may_add_and_read_photos(case_setup, as_user, anonymous_client, bj, case_rules):
    cid = case_setup["case_id"]
    admin = as_user("ph-admin", ["admin"])
    photo = post_form(admin, f"/api/v1/cases/{cid}/photos", photo=files(jpeg())).get_json()["photos"][0]
    unit = as_user("ph-unit", ["unit"], party=case_setup["party"])
    assert post_form(unit, f"/api/v1/cases/{cid}/photos", photo=files(jpeg())).status_code == 201
    assert unit.get(photo["url"]).status_code == 200
    stranger_unit = as_user("ph-unit2", ["unit"], party=case_setup["other_party"])
    stranger_sup = as_user("ph-sup2", ["supervisor"], case_setup["other_team"])
    for stranger in (stranger_unit, stranger_sup):
        assert_error(post_form(stranger, f"/api/v1/cases/{cid}/photos", photo=files(jpeg())), 403, "forbidden",
                     reason=f"case {cid}")
        for url in (photo["url"], photo["thumb_url"], f"/api/v1/cases/{cid}/photos", f"/api/v1/cases/{cid}"):
            assert_error(stranger.get(url), 403, "forbidden")
    analyst = as_user("ph-analyst", ["analyst"])
    assert_error(post_form(analyst, f"/api/v1/cases/{cid}/photos", photo=files(jpeg())), 403, "forbidden")
    assert analyst.get(photo["url"]).status_code == 200  # analysts read every case
    planner = as_user("ph-planner", ["planner"])
    assert_error(planner.get(photo["url"]), 403, "forbidden")
    assert_error(anonymous_client.get(photo["url"]), 401, "unauthorized")
    assert_error(post_form(anonymous_client, f"/api/v1/cases/{cid}/photos", photo=files(jpeg())), 401,
                 "unauthorized")
    # another case's photo id through this case: 404; no such case: 404
    other, _ = service.submit(bj, case_rules, parse_report(report_payload(lon=LON + 0.01)))
    assert_error(admin.get(f"/api/v1/cases/{other['case_id']}/photos/{photo['photo_id']}"), 404, "not_found")
    assert_error(admin.get(f"/api/v1/cases/{other['case_id']}/photos/{photo['photo_id']}/thumb"), 404, "not_found")
    assert_error(post_form(admin, "/api/v1/cases/999999999/photos", photo=files(jpeg())), 404, "not_found")
    assert_error(admin.get("/api/v1/cases/999999999/photos"), 404, "not_found")
    assert stored_count(bj, cid) == 2


def test_hostile_uploads_get_a_4xx_naming_the_part_and_store_nothing(case_setup, as_user, bj, app, photos_dir):
    cid = case_setup["case_id"]
    admin = as_user("ph-admin", ["admin"])
    url = f"/api/v1/cases/{cid}/photos"
    html = b"<html><body>not a photo</body></html>"
    assert_error(post_form(admin, url, photo=files(jpeg(), html)), 400, "invalid_input", field="photo[1]",
                 reason="not a JPEG, PNG or WebP")
    assert_error(post_form(admin, url, photo=files(bomb_png())), 400, "invalid_input", field="photo[0]",
                 reason="pixels")
    assert_error(post_form(admin, url, photo=files(*[jpeg()] * 11)), 400, "invalid_input", field="photo",
                 reason="at most 10")
    big = post_form(admin, url, photo=files(b"\xff\xd8" + b"\x00" * (checks.MAX_PHOTO_BYTES - 1)))
    assert_error(big, 413, "request_entity_too_large", field="photo[0]", reason="10,485,760 bytes")
    assert_error(post_form(admin, url, note="x"), 400, "invalid_input", field="photo")
    assert_error(post_form(admin, url, photo="just text"), 400, "invalid_input", field="photo", reason="as a file")
    assert_error(post_form(admin, url, photo=files(jpeg()), note="a\x00b"), 400, "invalid_input", field="note")
    assert_error(post_form(admin, url, photo=files(jpeg()), note="n" * 2001), 400, "invalid_input", field="note")
    assert_error(post_form(admin, url, file=files(jpeg(), name="file")), 400, "invalid_input", field="file")
    assert_error(admin.post(url, json={"photo": "x"}), 400, "invalid_input", field="Content-Type")
    assert stored_count(bj, cid) == 0 and not photos_dir.exists()
    # the request as a whole: over the photo requests' body limit (lowered here) is a 413 that says the limit
    app.config["MAX_CONTENT_LENGTH"] = 2000
    assert_error(post_form(admin, url, photo=files(jpeg((300, 300)))), 413, "request_entity_too_large",
                 reason="at most 2,000 bytes")
    # decoding takes a heavy-request slot: none free is a 503 with Retry-After, and a report without photos
    # needs none
    from citygrid.webmap.heavy import HeavyLimiter

    app.config["MAX_CONTENT_LENGTH"] = 512 * 1024 * 1024
    app.extensions["citygrid_heavy"] = HeavyLimiter(0)
    busy = post_form(admin, url, photo=files(jpeg()))
    assert_error(busy, 503, "overloaded") and busy.headers["Retry-After"]
    assert post_form(admin, "/api/v1/cases", report=json.dumps(report_payload(lon=LON + 0.01))).status_code == 201


def test_a_report_with_photos_is_one_request_and_a_retry_stores_nothing_twice(as_user, bj, photos_dir):
    supervisor = as_user("ph-rep", ["supervisor"], "110105T01")
    cases_before = bj.execute(sa.text("SELECT count(*) FROM cases")).scalar_one()
    report = json.dumps(report_payload(description="路灯不亮", class_code="0103"), ensure_ascii=False)
    key = {"Idempotency-Key": "phone-7f3a"}
    made = post_form(supervisor, "/api/v1/cases", headers=key, report=report, photo=files(jpeg(), webp()))
    assert made.status_code == 201, made.get_data(as_text=True)
    body = made.get_json()
    cid = body["case"]["case_id"]
    rows = bj.execute(sa.text("SELECT event_seq, uploaded_by FROM case_photos WHERE case_id = :c"), {"c": cid}).all()
    assert [tuple(r) for r in rows] == [(1, "ph-rep"), (1, "ph-rep")]
    retry = post_form(supervisor, "/api/v1/cases", headers=key, report=report, photo=files(jpeg(), webp()))
    assert retry.status_code == 200 and retry.get_json()["outcome"] == "existing"
    assert retry.get_json()["case"]["case_id"] == cid and stored_count(bj, cid) == 2
    # the JSON form is unchanged
    plain = as_user("ph-rep-admin", ["admin"]).post("/api/v1/cases", json=report_payload(lon=LON + 0.02,
                                                                                         class_code="0104"))
    assert plain.status_code == 201 and plain.get_json()["case"]["photos"] == []
    # a bad photo refuses the whole report: no case, no row, no file
    files_before = sorted(photos_dir.rglob("*"))
    bad = post_form(supervisor, "/api/v1/cases", report=json.dumps(report_payload(lon=LON + 0.03)),
                    photo=files(jpeg(), b"%PDF-1.4"))
    assert_error(bad, 400, "invalid_input", field="photo[1]")
    assert bj.execute(sa.text("SELECT count(*) FROM cases")).scalar_one() == cases_before + 2
    assert sorted(photos_dir.rglob("*")) == files_before


@pytest.mark.parametrize(("fields", "field", "reason"), [
    ({"report": "{not json"}, "report", "not valid JSON"),
    ({"report": "[1, 2]"}, "report", "JSON object"),
    ({"report": json.dumps({**report_payload(), "description": "a\u0000b"})}, "description", "control character"),
    ({"report": "[" * 5000 + "]" * 5000}, "report", "nested"),
    ({"report": json.dumps({"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]})},
     None, "nested"),
    ({}, "report", "send the report part"),
    ({"report": json.dumps(report_payload()), "file": files(jpeg(), name="file")}, "file", "unexpected file part"),
    ({"report": json.dumps(report_payload(lon=1000))}, "lon", "outside"),
])
def test_bad_report_parts_are_400(as_user, fields, field, reason):
    supervisor = as_user("ph-bad", ["supervisor"], "110105T01")
    assert_error(post_form(supervisor, "/api/v1/cases", **fields), 400, "invalid_input", field=field, reason=reason)


def test_a_workflow_step_carries_its_photos_and_a_refused_step_stores_none(case_setup, as_user, bj, photos_dir):
    cid = case_setup["case_id"]
    unit = as_user("ph-unit", ["unit"], party=case_setup["party"])
    url = f"/api/v1/cases/{cid}/transitions"
    refused = post_form(unit, url, data=json.dumps({"action": "check_pass"}), photo=files(jpeg()))
    assert refused.status_code == 403 and stored_count(bj, cid) == 0
    conflict = post_form(unit, url, data=json.dumps({"action": "feed_back", "expected_version": 0}),
                         photo=files(jpeg()))
    assert_error(conflict, 409, "conflict")
    assert stored_count(bj, cid) == 0
    bad = post_form(unit, url, data=json.dumps({"action": "feed_back"}), photo=files(b"GIF89a;"))
    assert_error(bad, 400, "invalid_input", field="photo[0]")
    done = post_form(unit, url, data=json.dumps({"action": "feed_back", "note": "已清理"}),
                     photo=files(jpeg(), jpeg(colour=(0, 0, 0))))
    assert done.status_code == 200, done.get_data(as_text=True)
    case = done.get_json()
    assert case["status"] == "fed_back"
    feed_back = next(e for e in case["events"] if e["action"] == "feed_back")
    assert len(feed_back["photo_ids"]) == 2 and [p["photo_id"] for p in case["photos"]] == feed_back["photo_ids"]
    assert {p["event_seq"] for p in case["photos"]} == {feed_back["seq"]}
    # another party's unit cannot send a step with photos either
    stranger = as_user("ph-unit2", ["unit"], party=case_setup["other_party"])
    assert post_form(stranger, url, data=json.dumps({"action": "hand_back", "note": "x"}),
                     photo=files(jpeg())).status_code == 403
    assert stored_count(bj, cid) == 2


# ------------------------------------------------------------------------------------------ backups
def test_backup_holds_the_photos_and_restore_writes_them_back(zz, case_rules, tmp_path):
    district = "410104"
    case, _ = service.submit(zz, case_rules, parse_report({"lon": 113.69, "lat": 34.745, "class_code": "0102",
                                                           "description": "照片备份", "source": "supervisor"}))
    source = PhotoStorage(tmp_path / "a")
    added = evidence.add_photos(zz, source, case["case_id"], [checks.check_photo(jpeg((400, 300)), "p"),
                                                              checks.check_photo(png(), "p")],
                                actor="t", role="admin")[0]
    file = tmp_path / "gc.zip"
    manifest = backup.backup(zz, district, file, photos_dir=source.root)
    assert len(manifest["photos"]) == 4 and manifest["photos_missing"] == []  # two photos, two thumbnails
    with zipfile.ZipFile(file) as archive:
        names = {n for n in archive.namelist() if n.startswith("photos/")}
        assert names == {f"photos/{n}" for n in manifest["photos"]}
        for name, entry in manifest["photos"].items():
            assert hashlib.sha256(archive.read(f"photos/{name}")).hexdigest() == entry["sha256"] == name[:64]
    target = tmp_path / "b"
    savepoint = zz.begin_nested()
    result = backup.restore(zz, file, replace=True, photos_dir=target)
    assert result["photos_in_backup"] == 4 and result["photos_written"] == 4
    for photo in added:
        row = zz.execute(sa.text("SELECT sha256 FROM case_photos WHERE photo_id = :p"),
                         {"p": photo["photo_id"]}).scalar_one()
        ext = "jpg" if photo["content_type"] == "image/jpeg" else "png"
        assert PhotoStorage(target).read(row, ext) == source.read(row, ext)
    savepoint.rollback()

    def rewrite(name: str, change) -> Path:
        out = tmp_path / name
        with zipfile.ZipFile(file) as src, zipfile.ZipFile(out, "w") as dst:
            for item in src.infolist():
                data = src.read(item.filename)
                entry = change(item.filename, data)
                if entry is not None:
                    dst.writestr(entry[0], entry[1])
        return out

    victim = next(iter(manifest["photos"]))
    tampered = rewrite("tampered.zip", lambda n, d: (n, d[:-4] + b"evil") if n == f"photos/{victim}" else (n, d))

    def slip(name: str, data: bytes):
        if name == "manifest.json":
            loaded = json.loads(data)
            loaded["photos"]["../../escape.jpg"] = loaded["photos"].pop(victim)
            return name, json.dumps(loaded).encode()
        return ("photos/../../escape.jpg", data) if name == f"photos/{victim}" else (name, data)

    slipped = rewrite("slip.zip", slip)
    for bad, needle in ((tampered, "differ"), (slipped, "not <sha256>.<ext>")):
        fresh = tmp_path / f"c-{bad.stem}"
        savepoint = zz.begin_nested()
        with pytest.raises(InvalidInput, match=needle):
            backup.restore(zz, bad, replace=True, photos_dir=fresh)
        savepoint.rollback()
        assert not fresh.exists() and not (tmp_path / "escape.jpg").exists()


def test_the_photo_directory_is_a_setting(monkeypatch, tmp_path):
    monkeypatch.delenv("CITYGRID_PHOTOS_DIR", raising=False)
    monkeypatch.setenv("CITYGRID_DATA_DIR", str(tmp_path / "data"))
    assert Settings.from_env().photos_dir == tmp_path / "data" / "photos"
    monkeypatch.setenv("CITYGRID_PHOTOS_DIR", str(tmp_path / "elsewhere"))
    assert Settings.from_env().photos_dir == tmp_path / "elsewhere"
    moved = replace(Settings.from_env(), photos_root=None, data_dir=tmp_path / "d")
    assert moved.photos_dir == tmp_path / "d" / "photos"
