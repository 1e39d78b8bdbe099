"""A raster basemap under our layers: an intranet XYZ server, Tianditu (天地图) or Gaode (高德).

The default is no basemap: our own streets and buildings, which work offline. Which basemap,
its URL and its credit are decided by the API from the settings (``api/basemap.py``) and
handed here as a ``Basemap``: this module never reads settings or opens a database. When
``is_gcj02`` is set the tiles are in GCJ-02 and the page's own layers must be shifted to
it (``gis.gcj02.shift_frame``) before they are drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

import folium


@dataclass(frozen=True)
class Basemap:
    """One configured basemap: its tile URL templates, bottom first, and its credit."""

    name: str  # shown in the layer control, in the user's language
    urls: tuple[str, ...]  # Leaflet templates ({s}, {z}, {x}, {y}); later ones are labels
    attribution: str  # plain text (escaped here), in the user's language
    subdomains: str = ""
    max_zoom: int = 18
    is_gcj02: bool = False


def add_basemap(m: folium.Map, choice: Basemap | None) -> folium.Map:
    """Add ``choice``'s tile layers to ``m`` (nothing when ``choice`` is None); return ``m``.

    The first URL is the base layer; the others (Tianditu's labels) sit on top of it in
    the tile pane, under our vector layers, and switch with it.
    """
    if choice is None or not choice.urls:
        return m
    credit = escape(choice.attribution)
    group = folium.FeatureGroup(name=choice.name, overlay=False, control=True)
    for url in choice.urls:
        folium.TileLayer(
            tiles=url,
            attr=credit,
            subdomains=choice.subdomains or "abc",
            max_zoom=20,
            max_native_zoom=choice.max_zoom,
            overlay=False,
            control=False,
        ).add_to(group)
    group.add_to(m)
    return m
