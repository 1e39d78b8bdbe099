"""GeoJSON Features and FeatureCollections, written one way for every caller.

Where rows live in PostGIS, PostGIS writes the JSON: :func:`feature_sql` and
:func:`feature_expr` are the SQL of one Feature (text SQL and SQLAlchemy Core), and
:func:`collection_sql` wraps a page of them into one FeatureCollection as text, so no
coordinate is parsed or re-encoded in Python. Where the data is already in Python (rows,
shapely geometries, GeoDataFrames), :func:`feature`, :func:`collection` and
:func:`frame_features` write the same shape. Every page carries the same envelope:
``numberMatched`` (all rows the query matched), ``numberReturned`` (rows on this page) and,
where the API links pages, a ``next`` link (:func:`has_next`, :func:`link_next`).

The property names and SQL expressions handed to these functions are ours (constants of
the calling module), never the caller's text; values travel as bound parameters.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import shapely
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSON

PRECISION = 7  # decimal places of degrees: 1 cm


def _pairs_sql(members: Mapping[str, str]) -> str:
    return ", ".join(f"'{name}', {expr}" for name, expr in members.items())


def feature_sql(
    key: str, geom: str | None, properties: Mapping[str, str], precision: int = PRECISION
) -> str:
    """SQL of one Feature as ``json``: ``key`` its id, ``geom`` a geometry column (or None)."""
    geometry = "NULL::json" if geom is None else f"ST_AsGeoJSON({geom}, {int(precision)})::json"
    return (
        f"json_build_object('type', 'Feature', 'id', {key}, 'geometry', {geometry}, "
        f"'properties', json_build_object({_pairs_sql(properties)}))"
    )


def feature_expr(
    key: sa.ColumnElement[Any],
    geom: sa.ColumnElement[Any],
    properties: Sequence[sa.ColumnElement[Any]],
    precision: int = PRECISION,
) -> sa.ColumnElement[Any]:
    """SQLAlchemy Core of one Feature as ``json``; properties are named after their columns.

    The properties object is ``jsonb`` (keys shortest first), as the layer pages always were.
    """
    pairs = [x for c in properties for x in (sa.literal(c.name, sa.Text), c)]
    return sa.func.json_build_object(
        "type",
        "Feature",
        "id",
        key,
        "geometry",
        sa.cast(sa.func.ST_AsGeoJSON(geom, precision), JSON),
        "properties",
        sa.func.jsonb_build_object(*pairs),
    )


def collection_sql(
    page: str,
    order: str,
    *,
    members: Mapping[str, str] | None = None,
    matched: str | None = None,
    also: Mapping[str, str] | None = None,
) -> str:
    """SQL of one FeatureCollection (``collection``, text) over ``page``, a query of Features.

    ``page`` selects a ``feature`` column (json) and the columns ``order`` sorts by (on the
    alias ``p``); ``members`` are more top-level members (name → SQL); ``matched`` is the SQL
    of ``numberMatched`` (default: the rows of the page); ``also`` are more columns of the
    answer (name → an aggregate over ``p``, e.g. the ids a page shows, for the audit).
    """
    envelope = {
        "type": "'FeatureCollection'",
        **(members or {}),
        "numberMatched": matched or "count(*)",
        "numberReturned": "count(*)",
        "features": f"coalesce(json_agg(p.feature ORDER BY {order}), '[]'::json)",
    }
    extra = "".join(f", {expr} AS {name}" for name, expr in (also or {}).items())
    return (
        f"SELECT json_build_object({_pairs_sql(envelope)})::text AS collection{extra} "
        f"FROM ({page}) p"
    )


def geometry(geom: shapely.Geometry | None, precision: int = PRECISION) -> dict[str, Any] | None:
    """A shapely geometry as a GeoJSON geometry object (None stays None)."""
    if geom is None:
        return None
    rounded = shapely.set_precision(geom, 10.0**-precision)
    return json.loads(shapely.to_geojson(rounded))


def feature(
    key: Any, geom: dict[str, Any] | None, properties: Mapping[str, Any]
) -> dict[str, Any]:
    """One Feature from Python values (``geom`` a GeoJSON geometry object, or None)."""
    return {"type": "Feature", "id": key, "geometry": geom, "properties": dict(properties)}


def frame_features(
    frame: Any, key: str = "id", precision: int = PRECISION
) -> list[dict[str, Any]]:
    """The rows of a GeoDataFrame as Features: ``key`` the id, other columns the properties."""
    shapes = shapely.set_precision(frame.geometry.values, 10.0**-precision)
    texts = shapely.to_geojson(shapes)  # one vectorised call, not a loop of mapping()
    columns = [c for c in frame.columns if c not in (key, frame.geometry.name)]
    props = json.loads(frame[columns].to_json(orient="records", date_format="iso"))
    return [
        feature(k, None if t is None else json.loads(t), p)
        for k, t, p in zip(frame[key].tolist(), texts, props, strict=True)
    ]


def collection(
    features: Iterable[dict[str, Any]],
    *,
    matched: int | None = None,
    members: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A FeatureCollection page: ``members`` first, then the counts, then the features."""
    features = list(features)
    return {
        "type": "FeatureCollection",
        **(members or {}),
        "numberMatched": len(features) if matched is None else int(matched),
        "numberReturned": len(features),
        "features": features,
    }


def has_next(page: Mapping[str, Any], offset: int) -> bool:
    """Whether rows remain after this page (which started at ``offset``)."""
    return offset + int(page["numberReturned"]) < int(page["numberMatched"])


def link_next(page: dict[str, Any], href: str) -> dict[str, Any]:
    """Add the ``next`` link (OGC API Features' ``links``) to a page; returns the page."""
    page["links"] = [{"rel": "next", "href": href}]
    return page
