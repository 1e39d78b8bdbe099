"""The configured basemap, from the settings to what a page draws and what the CSP allows.

``basemap_of`` turns ``GRIDATLAS_BASEMAP`` and its companions into a ``layers.basemap.Basemap``
(None for the default, no basemap); ``image_hosts`` lists the origins its tiles come from,
which ``api/headers.py`` adds to ``img-src`` and nowhere else; ``shift_frames`` moves a
page's frames to GCJ-02 when the basemap is Gaode's.

A page route::

    choice = basemap_of(settings, request_lang(request))
    buildings, edges = shift_frames(choice, buildings, edges)
    m = overview_map(buildings, edges, ...)
    add_basemap(m, choice)
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import geopandas as gpd

from gis import i18n
from gis.errors import InvalidInput
from gis.gcj02 import shift_frame
from gis.settings import Settings
from layers.basemap import Basemap

# Tianditu's WMTS in Web Mercator (TILEMATRIXSET=w), asked for as XYZ: vec_w are the
# streets, cva_w their Chinese labels. Eight hosts t0…t7.
TIANDITU = (
    "https://t{{s}}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
    "&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles"
    "&TILEMATRIX={{z}}&TILEROW={{y}}&TILECOL={{x}}&tk={key}"
)
TIANDITU_HOSTS = "01234567"
# Gaode's street tiles (style 8: roads and labels), GCJ-02, hosts webrd01…webrd04.
GAODE = "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}"
GAODE_HOSTS = "1234"
# What may go into img-src: a host name or address and a port, nothing that could end the
# directive (";", spaces) or widen it ("*").
_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def basemap_of(settings: Settings, lang: str = i18n.DEFAULT_LANG) -> Basemap | None:
    """The configured basemap in ``lang``, or None (our own layers only, offline)."""
    kind = settings.basemap
    if kind == "none":
        return None
    if kind == "xyz":
        url = settings.basemap_url or ""
        if not all(part in url for part in ("{z}", "{x}", "{y}")):
            raise InvalidInput(
                "GRIDATLAS_BASEMAP=xyz needs GRIDATLAS_BASEMAP_URL, a template with {z}, {x} "
                "and {y}, e.g. https://tiles.intranet.example/{z}/{x}/{y}.png"
            )
        return Basemap(
            name=i18n.t("map.basemap_xyz", lang),
            urls=(url,),
            attribution=settings.basemap_attribution or i18n.t("map.basemap_xyz", lang),
            subdomains=settings.basemap_subdomains,
        )
    if kind == "tianditu":
        if settings.tianditu_key is None:
            raise InvalidInput("GRIDATLAS_BASEMAP=tianditu needs GRIDATLAS_TIANDITU_KEY")
        key = settings.tianditu_key.get_secret_value()
        return Basemap(
            name=i18n.t("map.basemap_tianditu", lang),
            urls=tuple(TIANDITU.format(layer=layer, key=key) for layer in ("vec", "cva")),
            attribution=settings.basemap_attribution or i18n.t("map.credit_tianditu", lang),
            subdomains=TIANDITU_HOSTS,
        )
    return Basemap(
        name=i18n.t("map.basemap_gaode", lang),
        urls=(GAODE,),
        attribution=settings.basemap_attribution or i18n.t("map.credit_gaode", lang),
        subdomains=GAODE_HOSTS,
        is_gcj02=True,
    )


def image_hosts(settings: Settings) -> tuple[str, ...]:
    """The origins (``https://host``) the basemap's tiles load from; none by default."""
    choice = basemap_of(settings)
    if choice is None:
        return ()
    hosts: list[str] = []
    for url in choice.urls:
        fills = (choice.subdomains or "abc") if "{s}" in url else ("",)
        for s in fills:
            parts = urlsplit(url.replace("{s}", s))
            if not parts.netloc:
                continue  # a path on this server: 'self' covers it
            if parts.scheme not in ("http", "https") or not _HOST.fullmatch(parts.netloc):
                raise InvalidInput(f"basemap URL {url!r} must be http(s)://host[:port]/…")
            origin = f"{parts.scheme}://{parts.netloc}"
            if origin not in hosts:
                hosts.append(origin)
    return tuple(hosts)


def shift_frames(choice: Basemap | None, *frames: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, ...]:
    """``frames`` as drawn on ``choice``: shifted to GCJ-02 for Gaode, unchanged otherwise."""
    if choice is None or not choice.is_gcj02:
        return frames
    return tuple(shift_frame(f) for f in frames)
