"""GET /api/tiles/{layer}/{z}/{x}/{y}.mvt: login, scope, ETag and caching, Gaode shift."""

from __future__ import annotations

import math

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from api.basemap import basemap_of
from gis import db
from gis.settings import Settings
from layers.assets import render_offline
from layers.basemap import add_basemap
from layers.page import Map
from layers.tiles import add_vector_buildings

# --- a small reader of Mapbox Vector Tiles (protobuf), enough for layers and properties ---


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def _fields(buf: bytes):
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, kind = key >> 3, key & 7
        if kind == 0:
            value, i = _varint(buf, i)
        elif kind == 2:
            n, i = _varint(buf, i)
            value, i = buf[i : i + n], i + n
        elif kind == 1:
            value, i = buf[i : i + 8], i + 8
        elif kind == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(kind)
        yield number, value


def _value(buf: bytes):
    for number, v in _fields(buf):
        if number == 1:
            return v.decode()
        if number in (4, 5):  # int, uint
            return v
        if number == 6:  # sint
            return (v >> 1) ^ -(v & 1)
    return None


def decode(tile: bytes) -> dict[str, list[dict]]:
    """Layer name -> features' properties."""
    out: dict[str, list[dict]] = {}
    for number, layer in _fields(tile):
        if number != 3:
            continue
        name, keys, values, features = "", [], [], []
        for n, v in _fields(layer):
            if n == 1:
                name = v.decode()
            elif n == 2:
                features.append(v)
            elif n == 3:
                keys.append(v.decode())
            elif n == 4:
                values.append(_value(v))
        rows = []
        for f in features:
            tags = []
            for n, v in _fields(f):
                if n == 2:
                    j = 0
                    while j < len(v):
                        t, j = _varint(v, j)
                        tags.append(t)
            rows.append({keys[tags[k]]: values[tags[k + 1]] for k in range(0, len(tags), 2)})
        out[name] = rows
    return out


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


def _centroid(url: str, table: str, area_id: int) -> tuple[float, float]:
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.connect() as conn:
        row = conn.execute(
            sa.text(
                f"SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM {table} "
                "WHERE id = :i) q"
            ),
            {"i": area_id},
        ).one()
    eng.dispose()
    return row[0], row[1]


def _path(layer: str, z: int, x: int, y: int) -> str:
    return f"/api/tiles/{layer}/{z}/{x}/{y}.mvt"


def test_tiles_need_a_login(api) -> None:
    client, info, url = api
    r = client.client.get(_path("buildings", 16, 0, 0))
    assert r.status_code == 401


def test_building_tiles_hold_the_users_scope_only(api) -> None:
    client, info, url = api
    building = info.buildings["a1"][0]
    path = _path("buildings", *tile_of(*_centroid(url, "building", building), 16))
    seen = {}
    for user in ("admin", "worker_a1", "staff_b"):
        r = client.get(user, path)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
        seen[user] = {f["id"] for f in decode(r.content).get("buildings", [])}
    assert building in seen["worker_a1"] and building in seen["admin"]
    assert building not in seen["staff_b"]
    assert seen["worker_a1"] <= seen["admin"]
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.connect() as conn:
        in_grid = set(
            conn.scalars(
                sa.text("SELECT building_id FROM building_path WHERE grid_id = :g"),
                {"g": info.grid_a1},
            )
        )
        households = conn.scalar(
            sa.text("SELECT households FROM building WHERE id = :i"), {"i": building}
        )
    eng.dispose()
    assert seen["worker_a1"] <= in_grid  # nothing of the neighbouring grid
    props = next(
        f for f in decode(client.get("worker_a1", path).content)["buildings"] if f["id"] == building
    )
    assert props == {"id": building, "households": households}


def test_area_tiles_hold_the_areas_of_the_scope(api) -> None:
    client, info, url = api
    lon, lat = _centroid(url, "grid", info.grid_a1)
    path = _path("grids", *tile_of(lon, lat, 13))
    worker = {f["id"] for f in decode(client.get("worker_a1", path).content).get("grids", [])}
    admin = {f["id"] for f in decode(client.get("admin", path).content).get("grids", [])}
    assert worker == {info.grid_a1}
    assert info.grid_a1 in admin and len(admin) > 1
    comms = decode(client.get("staff_a", _path("communities", *tile_of(lon, lat, 12))).content)
    assert {f["id"] for f in comms["communities"]} == {info.community_a}
    assert set(comms["communities"][0]) == {"id", "code", "name", "households"}


def test_etag_answers_304_and_tiles_are_privately_cached(api) -> None:
    client, info, url = api
    path = _path("buildings", *tile_of(*_centroid(url, "building", info.buildings["a1"][0]), 16))
    first = client.get("worker_a1", path)
    etag = first.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert first.headers["cache-control"] == "private, max-age=60"
    assert "Cookie" in first.headers["vary"] and "Authorization" in first.headers["vary"]
    again = client.get("worker_a1", path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    listed = client.get("worker_a1", path, headers={"If-None-Match": f'"junk", W/{etag}'})
    assert listed.status_code == 304  # a list, and the weak form of the same tag
    junk = client.get("worker_a1", path, headers={"If-None-Match": '"junk'})
    assert junk.status_code == 200 and junk.content == first.content
    # another user's tile of the same place is other bytes, so another tag: no 304
    other = client.get("staff_b", path, headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.headers["etag"] != etag
    # the rest of the API stays no-store
    assert client.get("worker_a1", "/api/summary").headers["cache-control"] == "no-store"


def test_bad_tile_addresses_are_refused(api) -> None:
    client, _info, _url = api
    assert client.get("admin", _path("buildings", 3, 8, 0)).status_code == 404
    assert client.get("admin", _path("buildings", 23, 0, 0)).status_code == 422
    assert client.get("admin", _path("residents", 10, 0, 0)).status_code == 422
    low = client.get("admin", _path("buildings", *tile_of(118.78, 32.04, 10)))
    assert low.status_code == 200 and low.content == b""  # no footprints below zoom 13


def test_gaode_basemap_shifts_the_tiles(people) -> None:
    url, info = people
    lon, lat = _centroid(url, "building", info.buildings["a1"][0])
    z, x, y = tile_of(lon, lat, 14)
    bodies = {}
    for kind in ("none", "gaode"):
        app = create_app(Settings(database_url=url, basemap=kind))
        with TestClient(app) as c:
            token = c.post(
                "/api/auth/login", json={"username": "admin", "password": "pw-admin-2026"}
            ).json()["token"]
            r = c.get(_path("buildings", z, x, y), headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200
            bodies[kind] = r.content
    assert bodies["none"] != bodies["gaode"]
    assert len(decode(bodies["gaode"])["buildings"]) > 0


@pytest.mark.parametrize("kind", ["gaode", "tianditu", "xyz"])
def test_basemaps_and_tiled_buildings_render_with_local_assets(kind) -> None:
    settings = Settings(
        basemap=kind, tianditu_key="k-123", basemap_url="https://tiles.corp.test/{z}/{x}/{y}.png"
    )
    choice = basemap_of(settings, "en")
    m = Map(tiles=None)
    add_basemap(m, choice)
    add_vector_buildings(m, name="Buildings", households_label="Households <b>")
    html = render_offline_allowing(m, choice.urls)
    assert "/static/vendor/vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js" in html
    assert "unpkg" not in html
    assert "/api/tiles/buildings/{z}/{x}/{y}.mvt" in html
    assert choice.is_gcj02 == (kind == "gaode")


def render_offline_allowing(m, urls) -> str:
    """render_offline refuses external links in src/href; a basemap's template is neither."""
    html = render_offline(m, "n0nce")
    for u in urls:
        assert u.split("{")[0].split("?")[0][:20] in html
    return html


def test_scope_buildings_counts_what_the_user_may_see(api) -> None:
    """What the city map compares with GRIDATLAS_VECTOR_TILES_ABOVE."""
    from gis import accounts, tiles

    client, info, url = api
    eng = db.create_engine(url, poolclass=sa.NullPool)
    counts = {}
    for user in ("admin", "worker_a1"):
        token = client.as_(user)["Authorization"].split()[1]
        with eng.begin() as conn:
            assert accounts.session_user(conn, token) is not None
            counts[user] = tiles.scope_buildings(conn)
    with eng.connect() as conn:
        total = conn.scalar(sa.text("SELECT count(*) FROM building"))
        in_grid = conn.scalar(
            sa.text("SELECT count(*) FROM building_path WHERE grid_id = :g"), {"g": info.grid_a1}
        )
    eng.dispose()
    assert counts["admin"][0] == total and counts["worker_a1"][0] == in_grid
    w, s, e, n = counts["worker_a1"][1]
    aw, as_, ae, an = counts["admin"][1]
    assert aw <= w < e <= ae and as_ <= s < n <= an


def test_basemap_hosts_for_the_csp_are_exact_and_checked() -> None:
    from api.basemap import image_hosts
    from gis.errors import InvalidInput

    def xyz(url: str, **kw) -> Settings:
        return Settings(basemap="xyz", basemap_url=url, **kw)

    assert image_hosts(Settings()) == ()
    assert image_hosts(xyz("http://10.0.0.5:8080/{z}/{x}/{y}.png")) == ("http://10.0.0.5:8080",)
    assert image_hosts(xyz("https://{s}.t.corp/{z}/{x}/{y}.png", basemap_subdomains="ab")) == (
        "https://a.t.corp",
        "https://b.t.corp",
    )
    assert image_hosts(xyz("/tiles/{z}/{x}/{y}.png")) == ()  # this server: 'self'
    assert len(image_hosts(Settings(basemap="gaode"))) == 4
    with pytest.raises(InvalidInput, match="host"):
        image_hosts(xyz("https://a;script-src */{z}/{x}/{y}.png"))
    with pytest.raises(InvalidInput, match="TIANDITU_KEY"):
        image_hosts(Settings(basemap="tianditu"))
    with pytest.raises(InvalidInput, match=r"\{z\}"):
        image_hosts(xyz("https://t.corp/tiles.png"))
