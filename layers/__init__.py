"""Folium map layers: take GeoDataFrames, return Folium objects. Never opens a database."""

# Folium's elements rendered without compiling their output as templates (layers/page.py).
from layers import page as _page  # noqa: E402, F401
