"""Buildings as vector tiles (``/api/tiles/buildings/…``) on a Folium map, for large scopes.

A page embeds at most a few thousand footprints as GeoJSON; beyond that the city map draws
them with Leaflet.VectorGrid (``folium.plugins.VectorGridProtobuf``, served from npm
``leaflet.vectorgrid`` by ``layers/assets.py``), which fetches only the tiles in view. The
tiles are cut to the user's scope by the server and sent with the login cookie; they are
coloured by households as the embedded layer is (``layers.site.HOUSEHOLD_COLOURS``).
"""

from __future__ import annotations

import json

import folium
from branca.element import MacroElement
from folium.plugins import VectorGridProtobuf
from folium.template import Template

from layers.site import HOUSEHOLD_COLOURS

BUILDINGS_URL = "/api/tiles/buildings/{z}/{x}/{y}.mvt"
MIN_ZOOM = 13  # the server sends empty building tiles below it (gis/tiles.py)


def _style_js() -> str:
    """The VectorGrid options: one style function colouring a footprint by households."""
    steps = json.dumps([[t, c] for t, c in HOUSEHOLD_COLOURS])
    return (
        "{"
        '"pane": "overlayPane", "interactive": true, "minZoom": ' + str(MIN_ZOOM) + ", "
        '"maxNativeZoom": 18, "getFeatureId": function (f) { return f.properties.id; }, '
        '"vectorTileLayerStyles": {"buildings": function (p) {'
        f" var steps = {steps}, colour = steps[0][1];"
        " for (var i = 0; i < steps.length; i++) {"
        " if ((p.households || 0) >= steps[i][0]) { colour = steps[i][1]; } }"
        ' return {"fill": true, "fillColor": colour, "fillOpacity": 0.75,'
        ' "color": "#555555", "weight": 0.6, "opacity": 0.8}; }}'
        "}"
    )


class _HouseholdsCard(MacroElement):
    """A tap on a tiled footprint opens one popup: its household count (text, not HTML)."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        {{ this.layer.get_name() }}.on("click", function (e) {
            var box = document.createElement("div");
            box.className = "ga-tile-card";
            box.textContent = {{ this.label|tojson }} + ": " + (e.layer.properties.households || 0);
            L.popup().setLatLng(e.latlng).setContent(box).openOn({{ this.map.get_name() }});
        });
        {% endmacro %}
    """)

    def __init__(self, layer: VectorGridProtobuf, m: folium.Map, label: str) -> None:
        super().__init__()
        self._name = "HouseholdsCard"
        self.layer, self.map, self.label = layer, m, label


def add_vector_buildings(
    m: folium.Map,
    *,
    name: str,
    households_label: str,
    bounds: tuple[float, float, float, float] | None = None,
    url: str = BUILDINGS_URL,
) -> VectorGridProtobuf:
    """Add the tiled buildings layer to ``m`` (texts in the user's language); return it.

    ``bounds`` (west, south, east, north: the scope's extent) fits the view to it, at a zoom
    which footprints are drawn from zoom 13 on.
    """
    layer = VectorGridProtobuf(url, name=name, options=_style_js(), overlay=True, control=True)
    layer.add_to(m)
    m.add_child(_HouseholdsCard(layer, m, households_label))
    # A layer control already on the map lists the layers defined before it: move it after
    # this one, or its script names a layer not yet defined (Leaflet: "setZIndex" of
    # undefined) and the tiles are never asked for.
    for key, child in list(m._children.items()):
        if isinstance(child, folium.LayerControl):
            del m._children[key]
            m._children[key] = child
    if bounds is not None:
        west, south, east, north = bounds
        m.fit_bounds([[south, west], [north, east]])
    return layer
