"""Map layers as GeoJSON, summary counts and import history."""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from api import models
from api.auth import User
from api.deps import Conn
from gis import geojson, query

router = APIRouter(prefix="/api", tags=["layers"])

LayerName = Literal[
    "buildings",
    "facilities",
    "walk_edges",
    "subdistricts",
    "communities",
    "grids",
    "residents_groups",
    "building_clusters",
    "units",
    "building_cells",
]


@router.get(
    "/layers/{layer}",
    summary="One page of a layer as a GeoJSON FeatureCollection",
    response_model=None,
    responses=models.GEOJSON_PAGE,
)
def get_layer(
    layer: LayerName,
    conn: Conn,
    request: Request,
    _user: User,
    bbox: Annotated[
        str | None,
        Query(
            description="west,south,east,north in degrees", examples=["118.76,32.03,118.80,32.06"]
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=query.MAX_PAGE)] = 1000,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    box = query.BBox.parse(bbox) if bbox else None
    page = query.feature_page(conn, layer, bbox=box, limit=limit, offset=offset)
    if geojson.has_next(page, offset):
        nxt = request.url.include_query_params(offset=offset + limit, limit=limit)
        geojson.link_next(page, str(nxt))
    return page


@router.get("/summary", summary="Counts of everything imported, and the data's extent")
def get_summary(conn: Conn, _user: User) -> dict[str, Any]:
    return query.summary(conn)


@router.get("/imports", summary="Latest imports with their reports (logged-in users)")
def get_imports(
    conn: Conn, _user: User, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[dict[str, Any]]:
    runs = query.import_runs(conn, limit)
    for run in runs:
        report = run.get("report") or {}
        # where the file lay on the server is nobody's business: its name says enough
        if report.get("path"):
            report["path"] = PurePath(report["path"]).name
    return runs


@router.get("/health", summary="Is the service and its database up")
def health(conn: Conn) -> dict[str, str]:
    conn.exec_driver_sql("SELECT 1")
    return {"status": "ok"}
