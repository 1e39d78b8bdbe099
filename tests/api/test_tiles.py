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


# --- the walk network as tiles, and what a tile leaves out ---------------------------------

EDGES_IN_TILE = """
    SELECT e.id FROM walk_edge e,
           ST_Transform(ST_TileEnvelope(:z, :x, :y, margin => 64.0 / 4096), 4326) env,
           ST_Transform(e.geom, 3857) g
     WHERE e.geom && env
       AND (ST_XMax(g) - ST_XMin(g) >= :px OR ST_YMax(g) - ST_YMin(g) >= :px)
       AND (CAST(:grid AS bigint) IS NULL OR e.geom && (
            SELECT ST_SetSRID(ST_Expand(ST_Extent(b.geom), 0.003)::geometry, 4326)
              FROM building b JOIN building_path p ON p.building_id = b.id
             WHERE p.grid_id = CAST(:grid AS bigint)))
"""


def _pixel(z: int) -> float:
    return 2 * math.pi * 6378137.0 / 2**z / 256


def _edges_expected(url: str, z: int, x: int, y: int, grid: int | None) -> set[int]:
    """Edges meeting the tile (with its 64/4096 margin) and, for a worker of ``grid``,
    within 0.003° of the grid's buildings (the city map's rule); those under a pixel both
    ways are left out."""
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.connect() as conn:
        params = {"z": z, "x": x, "y": y, "px": _pixel(z), "grid": grid}
        ids = set(conn.scalars(sa.text(EDGES_IN_TILE), params))
    eng.dispose()
    return ids


def _ids(client, user: str, layer: str, z: int, x: int, y: int) -> dict[int, dict]:
    r = client.get(user, _path(layer, z, x, y))
    assert r.status_code == 200, r.text
    return {f["id"]: f for f in decode(r.content).get(layer, [])}


def test_walk_edge_tiles_are_scoped_as_the_city_map_scopes_streets(api) -> None:
    client, info, url = api
    z, x, y = tile_of(*_centroid(url, "building", info.buildings["a1"][0]), 15)
    admin = _ids(client, "admin", "walk_edges", z, x, y)
    worker = _ids(client, "worker_a1", "walk_edges", z, x, y)
    assert set(admin) == _edges_expected(url, z, x, y, None)
    assert set(worker) == _edges_expected(url, z, x, y, info.grid_a1)
    assert worker and set(worker) < set(admin)  # the streets beyond the grid's margin stay out
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.connect() as conn:
        edge = next(iter(worker))
        row = conn.execute(
            sa.text("SELECT highway, name FROM walk_edge WHERE id = :i"), {"i": edge}
        ).one()
    eng.dispose()
    assert {k: v for k, v in worker[edge].items() if k != "id"} == {
        k: v for k, v in {"highway": row.highway, "name": row.name}.items() if v is not None
    }


def test_walk_edge_tiles_keep_the_bigger_roads_when_zoomed_out(api) -> None:
    from gis.tiles import MAIN_ROADS, STREETS

    client, info, url = api
    lon, lat = _centroid(url, "building", info.buildings["a1"][0])
    seen = {}
    for z in (9, 11, 13, 15):
        rows = _ids(client, "admin", "walk_edges", *tile_of(lon, lat, z)).values()
        seen[z] = {f["highway"] for f in rows}
    assert seen[9] == set()  # below zoom 10: empty tiles
    assert seen[11] and seen[11] <= set(MAIN_ROADS)
    assert seen[13] <= set(MAIN_ROADS + STREETS) and seen[13] - set(MAIN_ROADS)
    assert seen[15] - set(MAIN_ROADS + STREETS)  # footways, paths, steps… close in


def test_footprints_under_a_pixel_wait_for_a_closer_zoom(api) -> None:
    client, info, url = api
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.connect() as conn:
        small, lon, lat, width = conn.execute(
            sa.text(
                "SELECT id, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)), "
                "greatest(ST_XMax(g) - ST_XMin(g), ST_YMax(g) - ST_YMin(g)) FROM building, "
                "ST_Transform(geom, 3857) g ORDER BY 4 LIMIT 1"
            )
        ).one()
    eng.dispose()
    below = next(z for z in range(13, 23) if _pixel(z) <= width)  # first zoom it is a pixel
    assert below > 13, "the data needs a footprint under a pixel at zoom 13"
    assert small not in _ids(client, "admin", "buildings", *tile_of(lon, lat, below - 1))
    assert small in _ids(client, "admin", "buildings", *tile_of(lon, lat, below))


def test_a_moved_footprint_moves_in_the_tiles(api) -> None:
    """The tiles read the stored Web Mercator copy: the database keeps it in step."""
    client, info, url = api
    building = info.buildings["a1"][0]
    lon, lat = _centroid(url, "building", building)
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.begin() as conn:
        conn.execute(  # about 4 km east
            sa.text("UPDATE building SET geom = ST_Translate(geom, 0.045, 0) WHERE id = :i"),
            {"i": building},
        )
    eng.dispose()
    assert building not in _ids(client, "admin", "buildings", *tile_of(lon, lat, 16))
    assert building in _ids(client, "admin", "buildings", *tile_of(lon + 0.045, lat, 16))


def test_tiles_are_gzipped_for_clients_that_ask_with_a_tag_of_their_own(api) -> None:
    client, info, url = api
    z, x, y = tile_of(*_centroid(url, "building", info.buildings["a1"][0]), 14)
    path = _path("buildings", z, x, y)
    plain = client.get("admin", path, headers={"Accept-Encoding": "identity"})
    zipped = client.get("admin", path, headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers and len(plain.content) > 1024
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == plain.content  # the client unpacked it: the same tile
    assert "Accept-Encoding" in zipped.headers["vary"]
    assert zipped.headers["etag"] != plain.headers["etag"]
    for tag in (plain.headers["etag"], zipped.headers["etag"]):
        again = client.get("admin", path, headers={"If-None-Match": tag})
        assert again.status_code == 304


def _rings(tile: bytes, layer: str) -> dict[int, list[list[tuple[int, int]]]]:
    """Feature id -> its rings (or lines) in tile coordinates, from the MVT commands."""
    out = {}
    for number, body in _fields(tile):
        if number != 3:
            continue
        fields = list(_fields(body))
        if next(v for n, v in fields if n == 1).decode() != layer:
            continue
        keys = [v.decode() for n, v in fields if n == 3]
        values = [_value(v) for n, v in fields if n == 4]
        for n, feature in fields:
            if n != 2:
                continue
            tags, cmds = [], []
            for k, v in _fields(feature):
                ints, j = [], 0
                while k in (2, 4) and j < len(v):
                    t, j = _varint(v, j)
                    ints.append(t)
                tags, cmds = (ints, cmds) if k == 2 else (tags, ints) if k == 4 else (tags, cmds)
            props = {keys[tags[i]]: values[tags[i + 1]] for i in range(0, len(tags), 2)}
            rings, x, y, i = [], 0, 0, 0
            while i < len(cmds):
                cmd, count = cmds[i] & 7, cmds[i] >> 3
                i += 1
                if cmd == 7:
                    continue
                for _ in range(count):
                    dx, dy = cmds[i], cmds[i + 1]
                    x += (dx >> 1) ^ -(dx & 1)
                    y += (dy >> 1) ^ -(dy & 1)
                    i += 2
                    if cmd == 1:
                        rings.append([])
                    rings[-1].append((x, y))
            out[props["id"]] = rings
    return out


def _area(ring: list[tuple[int, int]]) -> float:
    pairs = zip(ring, ring[1:] + ring[:1], strict=True)
    return sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in pairs) / 2


def test_footprints_are_where_st_asmvtgeom_puts_them(api) -> None:
    """Footprints wholly inside a tile skip ST_AsMVTGeom (gis/tiles.py): they must land
    on the same grid points, the exterior ring turned as MVT says (positive area)."""
    client, info, url = api
    z, x, y = tile_of(*_centroid(url, "building", info.buildings["a1"][0]), 15)
    got = _rings(client.get("admin", _path("buildings", z, x, y)).content, "buildings")
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.connect() as conn:
        want = {
            r.id: (r.x0, r.y0, r.x1, r.y1, r.inside)
            for r in conn.execute(
                sa.text(
                    "SELECT id, ST_XMin(m) x0, ST_YMin(m) y0, ST_XMax(m) x1, ST_YMax(m) y1, "
                    "g @ ST_TileEnvelope(:z, :x, :y, margin => 64.0 / 4096) AS inside "
                    "FROM (SELECT b.id, ST_Transform(b.geom, 3857) g, ST_AsMVTGeom("
                    "ST_Transform(b.geom, 3857), ST_TileEnvelope(:z, :x, :y), 4096, 64, true) m "
                    "FROM building b WHERE b.geom && ST_Transform(ST_TileEnvelope(:z, :x, :y, "
                    "margin => 64.0 / 4096), 4326)) q WHERE m IS NOT NULL"
                ),
                {"z": z, "x": x, "y": y},
            )
        }
    eng.dispose()
    inside = [i for i in got if want[i][4]]
    assert len(inside) > 50 and any(not want[i][4] for i in got)  # both paths are used
    assert set(got) <= set(want)
    same = 0
    for i, rings in got.items():
        xs = [p[0] for r in rings for p in r]
        ys = [p[1] for r in rings for p in r]
        box = (min(xs), min(ys), max(xs), max(ys))
        assert all(abs(a - b) <= 1 for a, b in zip(box, want[i][:4], strict=True)), i
        same += box == tuple(want[i][:4])
        assert _area(rings[0]) > 0, i  # an exterior ring: positive area in tile coordinates
    assert same >= 0.99 * len(got)


# --- the server's tile cache (gis/tiles.py, migration 0016) ---------------------------------


def _cache_rows(url: str) -> list[tuple]:
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT layer, z, x, y, scope_key, generation FROM tile_cache ORDER BY 1")
        ).all()
    eng.dispose()
    return [tuple(r) for r in rows]


def test_a_cached_tile_is_served_until_its_data_changes(api) -> None:
    client, info, url = api
    building = info.buildings["a1"][0]
    lon, lat = _centroid(url, "building", building)
    address = tile_of(lon, lat, 16)
    first = client.get("admin", _path("buildings", *address))
    assert first.status_code == 200 and building in _ids(client, "admin", "buildings", *address)
    assert [r[:5] for r in _cache_rows(url)] == [("buildings", *address, "admin")]
    again = client.get("admin", _path("buildings", *address))
    assert again.content == first.content and again.headers["etag"] == first.headers["etag"]
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.begin() as conn:  # about 4 km east: the cached tile is out of date
        conn.execute(
            sa.text("UPDATE building SET geom = ST_Translate(geom, 0.045, 0) WHERE id = :i"),
            {"i": building},
        )
    eng.dispose()
    assert building not in _ids(client, "admin", "buildings", *address)
    assert building in _ids(client, "admin", "buildings", *tile_of(lon + 0.045, lat, 16))


def test_household_counts_in_a_cached_tile_follow_the_register(api) -> None:
    client, info, url = api
    building = info.buildings["a1"][0]
    address = tile_of(*_centroid(url, "building", building), 16)
    before = _ids(client, "admin", "buildings", *address)[building]["households"]
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.begin() as conn:
        conn.execute(
            sa.text("UPDATE building SET households = households + 7 WHERE id = :i"),
            {"i": building},
        )
    eng.dispose()
    assert _ids(client, "admin", "buildings", *address)[building]["households"] == before + 7


def test_cached_tiles_never_cross_scopes(api) -> None:
    """Worker a1's tile is cut to grid a1: the admin's cached tile of the same address is
    not theirs, and theirs is not the admin's."""
    client, info, url = api
    address = tile_of(*_centroid(url, "building", info.buildings["a1"][0]), 14)
    admin = _ids(client, "admin", "buildings", *address)
    worker = _ids(client, "worker_a1", "buildings", *address)
    assert set(worker) < set(admin)
    assert set(_ids(client, "worker_a1", "buildings", *address)) == set(worker)
    assert set(_ids(client, "admin", "buildings", *address)) == set(admin)
    keys = {r[4] for r in _cache_rows(url)}
    assert len(keys) == 2 and "admin" in keys


def test_a_tile_cut_from_an_old_snapshot_is_not_served_after_the_change(api) -> None:
    """A request that read the generation before a change committed keeps a tile of the
    old data under the old generation: the next request must not be given it."""
    from gis import accounts, tiles

    client, info, url = api
    building = info.buildings["a1"][0]
    lon, lat = _centroid(url, "building", building)
    address = tile_of(lon, lat, 16)
    token = client.as_("admin")["Authorization"].split()[1]
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.connect() as slow, eng.connect() as writer:
        slow.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        assert accounts.session_user(slow, token) is not None  # the snapshot is taken here
        with writer.begin():
            writer.execute(
                sa.text("UPDATE building SET geom = ST_Translate(geom, 0.045, 0) WHERE id = :i"),
                {"i": building},
            )
        old = tiles.tile(slow, "buildings", *address)  # cut from the old data, and kept
        slow.commit()
    eng.dispose()
    assert not old.from_cache and _cache_rows(url)
    assert building in {f["id"] for f in decode(old.data)["buildings"]}
    assert building not in _ids(client, "admin", "buildings", *address)


def test_a_transaction_that_wrote_neither_reads_nor_fills_the_cache(api) -> None:
    from gis import accounts, tiles

    client, info, url = api
    building = info.buildings["a1"][0]
    address = tile_of(*_centroid(url, "building", building), 16)
    token = client.as_("admin")["Authorization"].split()[1]
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.connect() as conn:
        assert accounts.session_user(conn, token) is not None
        conn.execute(  # moved away, in this transaction only
            sa.text("UPDATE building SET geom = ST_Translate(geom, 0.045, 0) WHERE id = :i"),
            {"i": building},
        )
        gone = tiles.tile(conn, "buildings", *address)
        conn.rollback()  # the move never happened
    eng.dispose()
    assert building not in {f["id"] for f in decode(gone.data).get("buildings", [])}
    assert _cache_rows(url) == []
    assert building in _ids(client, "admin", "buildings", *address)


def test_compaction_keeps_the_generation_and_drops_outdated_entries(api) -> None:
    from gis import tiles

    client, info, url = api
    building = info.buildings["a1"][0]
    address = tile_of(*_centroid(url, "building", building), 16)
    _ids(client, "admin", "buildings", *address)
    eng = db.create_engine(url, poolclass=sa.NullPool)
    with eng.begin() as conn:
        conn.execute(sa.text("UPDATE building SET households = households WHERE id = :i"),
                     {"i": building})  # fmt: skip
        generation = conn.scalar(sa.text("SELECT generation FROM ga_tile_state()"))
    _ids(client, "worker_a1", "buildings", *address)  # made under the new generation
    with eng.begin() as conn:
        assert tiles.compact_cache(conn, keep=100) == 1  # the admin's, of the old generation
    with eng.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM tile_invalidation")) == 1
        assert conn.scalar(sa.text("SELECT generation FROM ga_tile_state()")) == generation
    eng.dispose()
    assert [r[4] for r in _cache_rows(url)] == [r[4] for r in _cache_rows(url) if r[4] != "admin"]
    assert len(_cache_rows(url)) == 1
    before = client.get("worker_a1", _path("buildings", *address))
    assert before.status_code == 200
    with db.create_engine(url, poolclass=sa.NullPool).begin() as conn:
        tiles.compact_cache(conn, keep=0)
    assert _cache_rows(url) == []
