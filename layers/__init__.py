"""Folium map layers: take GeoDataFrames, return Folium objects. Never opens a database."""
