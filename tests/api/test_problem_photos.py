"""Problem photos: type from the bytes, size limit, EXIF (GPS) removed, private storage,
served only within the problem's scope."""

from __future__ import annotations

import datetime as dt
import io
import stat

import pytest
from PIL import ExifTags, Image

from api.routes.patrol import clock
from api.routes.problem_photos import photo_root
from gis.patrol import photos

NOW = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
GPS = ExifTags.IFD.GPSInfo


@pytest.fixture
def shot(api, tmp_path):
    client, info, _ = api
    app = client.client.app
    app.dependency_overrides[clock] = lambda: NOW
    app.dependency_overrides[photo_root] = lambda: tmp_path / "photos"
    return client, info, tmp_path / "photos"


def _problem(api, user: str, building_id: int) -> int:
    r = api.post(user, "/api/problems",
                 json={"category": "ebike_charging", "description": "楼道内充电",
                       "building_id": building_id})  # fmt: skip
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _jpeg_with_gps() -> bytes:
    """A 40×20 JPEG whose EXIF holds a GPS position, a camera model and orientation 6."""
    img = Image.new("RGB", (40, 20), (200, 30, 30))
    exif = Image.Exif()
    exif[ExifTags.Base.Model] = "GA-Test-Phone"
    exif[ExifTags.Base.Orientation] = 6  # shown rotated 90° clockwise
    exif.get_ifd(GPS).update({
        ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (32.0, 3.0, 30.0),
        ExifTags.GPS.GPSLongitudeRef: "E", ExifTags.GPS.GPSLongitude: (118.0, 47.0, 10.0),
    })  # fmt: skip
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif)
    return out.getvalue()


def _upload(api, user: str, pid: int, data: bytes, name: str = "p.jpg", ctype="image/jpeg"):
    return api.post(user, f"/api/problems/{pid}/photos", files={"file": (name, data, ctype)})


def test_a_photo_with_gps_in_exif_is_stored_and_served_without_any_metadata(shot) -> None:
    api, info, root = shot
    pid = _problem(api, "worker_a1", info.buildings["a1"][0])
    original = _jpeg_with_gps()
    before = Image.open(io.BytesIO(original)).getexif()
    assert before.get_ifd(GPS)[ExifTags.GPS.GPSLatitudeRef] == "N"  # the test photo has GPS

    r = _upload(api, "worker_a1", pid, original)
    assert r.status_code == 201, r.text
    meta = r.json()
    assert meta["media_type"] == "image/jpeg" and meta["problem_id"] == pid

    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].name == meta["sha256"]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(files[0].parent.stat().st_mode) == 0o700
    stored = files[0].read_bytes()
    assert b"Exif" not in stored and b"GA-Test-Phone" not in stored
    back = Image.open(io.BytesIO(stored))
    assert dict(back.getexif()) == {} and back.getexif().get_ifd(GPS) == {}
    assert "exif" not in back.info
    assert back.size == (20, 40)  # the orientation was applied before it was dropped

    served = api.get("worker_a1", meta["url"])
    assert served.status_code == 200
    assert served.content == stored
    assert served.headers["content-type"] == "image/jpeg"
    assert served.headers["cache-control"] == "no-store"
    assert served.headers["x-content-type-options"] == "nosniff"
    listed = api.get("staff_a", f"/api/problems/{pid}/photos").json()
    assert [p["id"] for p in listed] == [meta["id"]]

    # the same photo synced again is the same row and the same file
    again = _upload(api, "worker_a1", pid, original)
    assert again.status_code == 201 and again.json()["id"] == meta["id"]
    assert len([p for p in root.rglob("*") if p.is_file()]) == 1


def test_png_and_webp_are_accepted_and_cleaned(shot) -> None:
    api, info, _ = shot
    pid = _problem(api, "worker_a1", info.buildings["a1"][0])
    for fmt, media in (("PNG", "image/png"), ("WEBP", "image/webp")):
        out = io.BytesIO()
        exif = Image.Exif()
        exif[ExifTags.Base.Model] = "GA-Test-Phone"
        Image.new("RGBA", (8, 8), (0, 0, 255, 128)).save(out, fmt, exif=exif)
        r = _upload(api, "worker_a1", pid, out.getvalue(), "x.bin", "application/octet-stream")
        assert r.status_code == 201, r.text
        assert r.json()["media_type"] == media  # from the bytes, not the name or the type
        served = api.get("worker_a1", r.json()["url"])
        assert served.headers["content-type"] == media
        assert b"GA-Test-Phone" not in served.content


def test_a_text_file_named_jpg_and_a_forged_header_are_refused(shot) -> None:
    api, info, root = shot
    pid = _problem(api, "worker_a1", info.buildings["a1"][0])
    text = api.post("worker_a1", f"/api/problems/{pid}/photos",
                    files={"file": ("photo.jpg", b"hello, not a photo\n" * 20, "image/jpeg")},
                    headers={"Accept-Language": "en"})  # fmt: skip
    assert text.status_code == 422
    assert "content, not its name" in text.json()["message"]
    forged = _upload(api, "worker_a1", pid, b"\xff\xd8\xff\xe0" + b"\x00" * 200)
    assert forged.status_code == 422
    empty = _upload(api, "worker_a1", pid, b"")
    assert empty.status_code == 422
    missing = api.post("worker_a1", f"/api/problems/{pid}/photos", data={"x": "1"})
    assert missing.status_code == 422
    assert not root.exists() or not any(p.is_file() for p in root.rglob("*"))


def test_a_photo_over_the_size_limit_is_refused_with_413(shot) -> None:
    api, info, root = shot
    pid = _problem(api, "worker_a1", info.buildings["a1"][0])
    big = b"\xff\xd8\xff\xe0" + b"\x00" * photos.MAX_BYTES
    r = api.post("worker_a1", f"/api/problems/{pid}/photos",
                 files={"file": ("big.jpg", big, "image/jpeg")},
                 headers={"Accept-Language": "en"})  # fmt: skip
    assert r.status_code == 413
    assert r.json()["message"] == "The photo is larger than 8 MB; send a smaller one"
    assert not root.exists() or not any(p.is_file() for p in root.rglob("*"))


def test_another_grids_worker_gets_404_as_for_a_photo_that_does_not_exist(shot) -> None:
    api, info, _ = shot
    pid = _problem(api, "staff_a", info.buildings["a2"][0])  # grid A2, not worker_a1's
    r = _upload(api, "staff_a", pid, _jpeg_with_gps())
    assert r.status_code == 201, r.text
    url = r.json()["url"]
    assert api.get("staff_a", url).status_code == 200
    for path in (url, f"/api/problems/{pid}/photos"):
        assert api.get("worker_a1", path).status_code == 404
        assert api.get("staff_b", path).status_code == 404
    assert _upload(api, "worker_a1", pid, _jpeg_with_gps()).status_code == 404
    nothing = api.get("worker_a1", f"/api/problems/{pid}/photos/{r.json()['id'] + 999}")
    assert nothing.status_code == 404
    assert api.get("worker_a1", url).json()["error"] == nothing.json()["error"]
    api.client.cookies.clear()  # the logins above left a session cookie
    assert api.client.get(url).status_code == 401  # no login, no photo
