"""Data in a map is text, never a template: a name like ``{{ 7*7 }}`` shows as itself.

Branca renders the output of every Folium element's macros a second time as Jinja source
(``MacroElement.render`` → ``Element(output)``); layers/page.py replaces that. Each kind of
element our pages put data in is tried here; tests/api/test_map_injection.py tries the
app's pages.
"""

from __future__ import annotations

import folium
import pytest
from folium.plugins import LocateControl

import layers  # noqa: F401  (what every map module of ours imports)
from layers.page import Map

NAME = "{{ 7*7 }}{% if true %}RAN{% endif %}"


def _geojson() -> dict:
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": NAME},
                "geometry": {"type": "Point", "coordinates": [118.78, 32.04]},
            }
        ],
    }


@pytest.mark.parametrize(
    "add",
    [
        lambda m: folium.GeoJson(_geojson(), tooltip=folium.GeoJsonTooltip(["name"])).add_to(m),
        lambda m: folium.GeoJson(_geojson(), popup=folium.GeoJsonPopup(["name"])).add_to(m),
        lambda m: folium.Marker([32.04, 118.78], tooltip=NAME, popup=NAME).add_to(m),
        lambda m: folium.CircleMarker([32.04, 118.78], tooltip=NAME).add_to(m),
        lambda m: (folium.FeatureGroup(name=NAME).add_to(m), folium.LayerControl().add_to(m)),
        lambda m: LocateControl(strings={"title": NAME}).add_to(m),
    ],
    ids=["geojson-tooltip", "geojson-popup", "marker", "circle", "layer-name", "plugin"],
)
def test_a_name_that_looks_like_a_template_stays_text(add) -> None:
    m = folium.Map()  # Folium's own map: the fix is in branca's and Folium's methods
    add(m)
    html = m.get_root().render()
    assert "49RAN" not in html  # what the name comes to when run as a template
    assert "7*7" in html


def test_our_pages_keep_it_text_too() -> None:
    from layers.assets import render_offline

    m = Map()
    folium.GeoJson(_geojson(), tooltip=folium.GeoJsonTooltip(["name"])).add_to(m)
    html = render_offline(m, "n0nce")
    assert "49RAN" not in html and "7*7" in html
