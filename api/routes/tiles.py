"""Vector tiles of buildings and areas, for maps with more features than a page can embed.

Caching: a tile carries no person, but it is cut to the user's scope, so it is
``Cache-Control: private`` (the browser may keep it, no shared cache may) for
``GRIDATLAS_TILE_MAX_AGE_S`` seconds (default 60: a few minutes of panning reuse it, a
moved building shows within a minute), with ``Vary: Authorization, Cookie`` so that a
tablet where another user logs in does not reuse the first user's tiles. After that the
browser asks again with ``If-None-Match``: the ETag is the hash of the tile's bytes, and an
unchanged tile is answered ``304`` with no body.

Compression: a tile is sent gzipped (``gis.tiles.gzipped``, level 1) when the client
accepts gzip (the app's GZipMiddleware passes an answer that has its encoding already); a
cached tile keeps its gzipped bytes.

Server side, tiles are cached in the database until their data changes (``gis.tiles``);
``GRIDATLAS_TILE_CACHE_TILES`` bounds how many (0: none).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Response

from api.auth import ReadUser
from api.basemap import basemap_of
from api.deps import AppSettings
from api.reads import ReadConn
from gis import tiles

router = APIRouter(prefix="/api/tiles", tags=["tiles"])

TileLayerName = Literal["buildings", "walk_edges", "communities", "grids", "residents_groups"]
Z = Annotated[int, Path(ge=0, le=tiles.MAX_ZOOM, description="zoom")]
XY = Annotated[int, Path(ge=0, le=2**tiles.MAX_ZOOM - 1)]


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    tags = (t.strip().removeprefix("W/") for t in if_none_match.split(","))
    return etag in tags


@router.get(
    "/{layer}/{z}/{x}/{y}.mvt",
    summary="One vector tile (MVT) of a layer, limited to the user's scope",
    response_class=Response,
    responses={
        200: {"content": {tiles.MEDIA_TYPE: {}}, "description": "the tile (may be empty)"},
        304: {"description": "unchanged since the ETag sent in If-None-Match"},
    },
)
def get_tile(
    layer: TileLayerName,
    z: Z,
    x: XY,
    y: XY,
    conn: ReadConn,
    user: ReadUser,
    settings: AppSettings,
    if_none_match: Annotated[str | None, Header()] = None,
    accept_encoding: Annotated[str | None, Header()] = None,
) -> Response:
    choice = basemap_of(settings)
    made = tiles.tile(
        conn, layer, z, x, y,
        gcj02=bool(choice and choice.is_gcj02), cache=settings.tile_cache_tiles > 0,
        accepts_gzip="gzip" in (accept_encoding or ""),
    )  # fmt: skip
    plain = made.etag
    # A strong tag names one representation: the gzipped bytes get a tag of their own.
    etag = plain[:-1] + '.gz"' if made.is_gzipped else plain
    headers = {
        "ETag": etag,
        "Cache-Control": f"private, max-age={settings.tile_max_age_s}",
        "Vary": "Authorization, Cookie, Accept-Encoding",
    }
    if _matches(if_none_match, etag) or _matches(if_none_match, plain):
        return Response(status_code=304, headers=headers)
    if made.is_gzipped:
        headers["Content-Encoding"] = "gzip"
    return Response(content=made.body, media_type=tiles.MEDIA_TYPE, headers=headers)
