"""Buildings and the walk network as vector tiles (``/api/tiles/…``) on a Folium map.

A page embeds at most a few thousand footprints as GeoJSON; beyond that the city map draws
them with Leaflet.VectorGrid (``folium.plugins.VectorGridProtobuf``, served from npm
``leaflet.vectorgrid`` by ``layers/assets.py``), which fetches only the tiles in view. The
tiles are cut to the user's scope by the server and sent with the login cookie; they are
coloured by households as the embedded layer is (``layers.site.HOUSEHOLD_COLOURS``).
Both are drawn on canvas (one bitmap per tile, where SVG, VectorGrid's default, makes an
element per footprint: thousands per tile) and neither is redrawn while a zoom is
animated: what the main thread does on a pan or a zoom is what keeps a large map smooth
(bench/pages.py). A tap on a canvas tile needs ``L.DomEvent.fakeStop``, which Leaflet 1.9
no longer has (:class:`_FakeStop`).

The walk network comes the same way (:func:`add_vector_streets`): a few megabytes of
GeoJSON redrawn on every pan and zoom is what kept a large map from moving smoothly. Its
tiles are drawn on canvas (no tap on a street: one card per tap stays the building's),
under the buildings, widths by road class as the embedded layer's
(``layers.site.STREET_WEIGHT``); zoomed out the server sends only the bigger roads.
"""

from __future__ import annotations

import json

import folium
from branca.element import MacroElement
from folium.plugins import VectorGridProtobuf
from folium.template import Template

from layers.site import HOUSEHOLD_COLOURS, STREET_COLOUR, STREET_WEIGHT

BUILDINGS_URL = "/api/tiles/buildings/{z}/{x}/{y}.mvt"
WALK_EDGES_URL = "/api/tiles/walk_edges/{z}/{x}/{y}.mvt"
MIN_ZOOM = 13  # the server sends empty building tiles below it (gis/tiles.py)
STREETS_MIN_ZOOM = 10  # and empty walk-network tiles below this one


def _style_js() -> str:
    """The VectorGrid options: one style function colouring a footprint by households."""
    steps = json.dumps([[t, c] for t, c in HOUSEHOLD_COLOURS])
    return (
        "{"
        '"pane": "overlayPane", "interactive": true, "updateWhenZooming": false, '
        '"rendererFactory": L.canvas.tile, '
        '"minZoom": ' + str(MIN_ZOOM) + ", "
        '"maxNativeZoom": 18, "getFeatureId": function (f) { return f.properties.id; }, '
        '"vectorTileLayerStyles": {"buildings": function (p) {'
        f" var steps = {steps}, colour = steps[0][1];"
        " for (var i = 0; i < steps.length; i++) {"
        " if ((p.households || 0) >= steps[i][0]) { colour = steps[i][1]; } }"
        ' return {"fill": true, "fillColor": colour, "fillOpacity": 0.75,'
        ' "color": "#555555", "weight": 0.6, "opacity": 0.8}; }}'
        "}"
    )


def _streets_js() -> str:
    """The VectorGrid options of the walk network: canvas, not interactive, width by class."""
    weights = json.dumps(STREET_WEIGHT)
    return (
        "{"
        '"pane": "overlayPane", "interactive": false, "rendererFactory": L.canvas.tile, '
        f'"updateWhenZooming": false, "minZoom": {STREETS_MIN_ZOOM}, '
        '"maxNativeZoom": 18, '
        '"vectorTileLayerStyles": {"walk_edges": function (p) {'
        f" var w = {weights}[p.highway] || 1.2;"
        f' return {{"color": {json.dumps(STREET_COLOUR)}, "weight": w, "opacity": 0.9}}; }}}}'
        "}"
    )


def _control_last(m: folium.Map) -> None:
    # A layer control already on the map lists the layers defined before it: move it after
    # a new one, or its script names a layer not yet defined (Leaflet: "setZIndex" of
    # undefined) and the tiles are never asked for.
    for key, child in list(m._children.items()):
        if isinstance(child, folium.LayerControl):
            del m._children[key]
            m._children[key] = child


def add_vector_streets(
    m: folium.Map, *, name: str, url: str = WALK_EDGES_URL
) -> VectorGridProtobuf:
    """Add the tiled walk network to ``m`` (``name`` in the user's language); return it.

    Add it before the buildings: overlays are stacked in the order they are added.
    """
    layer = VectorGridProtobuf(url, name=name, options=_streets_js(), overlay=True, control=True)
    layer.add_to(m)
    _control_last(m)
    return layer


class _FakeStop(MacroElement):
    """Leaflet 1.9 dropped ``L.DomEvent.fakeStop``, which a VectorGrid canvas tile calls on
    every tap: without it the tap throws before any card opens. Its 1.9 meaning: mark the
    event handled, so that the map does not take it too."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        if (!L.DomEvent.fakeStop) { L.DomEvent.fakeStop = function (e) { e._stopped = true; }; }
        {% endmacro %}
    """)

    def __init__(self) -> None:
        super().__init__()
        self._name = "FakeStop"


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
    m.add_child(_FakeStop())
    m.add_child(_HouseholdsCard(layer, m, households_label))
    _control_last(m)
    if bounds is not None:
        west, south, east, north = bounds
        m.fit_bounds([[south, west], [north, east]])
    return layer
