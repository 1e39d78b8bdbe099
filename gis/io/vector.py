"""Read GeoJSON, GeoPackage and Shapefile layers: buildings, boundaries, facilities, streets.

The source CRS is read from the file and everything is reprojected to WGS 84. A file without
a CRS is refused unless ``--crs`` names one; coordinates that cannot be longitude/latitude
after reprojection are refused as a wrong CRS.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

from gis.categories import category_codes
from gis.crs import metric_epsg_for
from gis.errors import InvalidInput, MissingCRS
from gis.io.dataset import LAYERS, Dataset, Problem, finish_buildings, repair_polygons
from gis.io.network import WayRecord, build_network, is_walkable
from gis.settings import Settings

# First match wins: grids before communities ("社区网格" is a grid layer), streets before
# subdistricts ("街道线" is a street line layer, "街道" a subdistrict).
LAYER_PATTERNS = (
    ("buildings", re.compile(r"build|楼|房屋", re.I)),
    ("streets", re.compile(r"street|road|highway|walk|network|道路|路网|街道线", re.I)),
    ("facilities", re.compile(r"facilit|poi|设施", re.I)),
    ("grids", re.compile(r"grid|网格", re.I)),
    ("subdistricts", re.compile(r"subdistrict|街道", re.I)),
    ("communities", re.compile(r"communit|residents?_?area|居委|社区", re.I)),
)
COORD_KEY_SCALE = 1e7  # street vertices closer than 1e-7 degrees (~1 cm) are one node


def _pick(columns: list[str], *names: str) -> str | None:
    lower = {c.lower(): c for c in columns}
    return next((lower[n] for n in names if n in lower), None)


def _kind_of(name: str) -> str | None:
    """Return which layer a file layer holds, judged by its name, or None."""
    for layer, pattern in LAYER_PATTERNS:
        if pattern.search(name):
            return layer
    return None


def plan_layers(
    path_name: str, listed: list[str], wanted: set[str], explicit: bool
) -> tuple[list[tuple[str, str]], list[str]]:
    """Return ([(file layer, target layer)], [file layers skipped as unrecognised]).

    A file with one layer takes the one layer asked for with ``--layer``; otherwise layers are
    recognised by name, and those recognised but not asked for are left out.
    """
    if len(listed) == 1:
        kind = _kind_of(listed[0])
        if explicit and len(wanted) == 1:
            return [(listed[0], next(iter(wanted)))], []
        if kind is None:
            raise InvalidInput(
                f"{path_name}: cannot tell what layer {listed[0]!r} holds; say it with "
                "--layer buildings|streets|facilities|subdistricts|communities|grids"
            )
        return ([(listed[0], kind)] if kind in wanted else []), []
    plan, unknown = [], []
    for name in listed:
        kind = _kind_of(name)
        if kind is None:
            unknown.append(name)
        elif kind in wanted:
            plan.append((name, kind))
    return plan, unknown


def read_vector(
    path: Path,
    settings: Settings,
    wanted: set[str],
    crs: str | None,
    on_step: Callable[[str, float], None],
) -> Dataset:
    """Read every layer of ``path`` that maps to a wanted layer."""
    try:
        listed = [str(name) for name, _gtype in pyogrio.list_layers(path)]
    except Exception as err:  # pyogrio raises several DataSource errors
        raise InvalidInput(
            f"{path.name} cannot be read as GeoJSON/GeoPackage/Shapefile: "
            f"{str(err).strip().splitlines()[0]}"
        ) from err
    explicit = wanted != set(LAYERS)
    plan, unknown = plan_layers(path.name, listed, wanted, explicit)
    if not plan:
        raise InvalidInput(
            f"{path.name}: none of its layers ({', '.join(listed)}) is "
            f"{' or '.join(sorted(wanted))}; name the layer with --layer"
        )
    ds = Dataset()
    for name in unknown:
        ds.problems.append(Problem("file", name, "layer name not recognised: skipped"))
    # Boundaries first, so that the order of loading parents before children holds.
    order = ["subdistricts", "communities", "grids", "buildings", "facilities", "streets"]
    targets = sorted({t for _, t in plan}, key=order.index)
    for i, target in enumerate(targets):
        on_step(f"reading {target}", 0.05 + 0.4 * i / len(targets))
        names = [n for n, t in plan if t == target]
        frames = []
        for name in names:
            gdf = _read_layer(path, name, crs)
            ids, how = _ids(gdf, path, target)
            if how:
                ds.notes.append(f"{name}: {how}")
            if len(names) > 1:  # several layers of one kind: ids are per layer
                ids = np.array([f"{name}/{v}" for v in ids], dtype=object)
            frames.append(gdf.assign(_source_id=ids))
        gdf = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        geometry = frames[0].geometry.name
        _add_layer(ds, target, gpd.GeoDataFrame(gdf, geometry=geometry), settings)
    return ds


def _read_layer(path: Path, layer: str, crs: str | None) -> gpd.GeoDataFrame:
    try:
        gdf = pyogrio.read_dataframe(path, layer=layer, fid_as_index=True)
    except Exception as err:
        raise InvalidInput(
            f"{path.name} layer {layer!r} cannot be read: {str(err).strip().splitlines()[0]}"
        ) from err
    if crs:
        try:
            given = CRS.from_user_input(crs)
        except CRSError as err:
            raise InvalidInput(
                f"--crs {crs!r} is not a CRS GDAL/PROJ knows (try EPSG:4326 or EPSG:32651)"
            ) from err
        gdf = gdf.set_crs(given, allow_override=True)
    elif gdf.crs is None:
        raise MissingCRS(
            f"{path.name} layer {layer!r} has no coordinate reference system; "
            "give it with --crs (e.g. --crs EPSG:4326 or --crs EPSG:32651)"
        )
    if len(gdf) and gdf.crs.to_epsg() != 4326:
        gdf = gdf.to_crs(4326)
    # survey data often carries Z; the columns are 2D
    if len(gdf) and gdf.geometry.has_z.any():
        gdf = gdf.set_geometry(shapely.force_2d(gdf.geometry.to_numpy()), crs=gdf.crs)
    valid = gdf.geometry.notna() & ~gdf.geometry.is_empty
    if valid.any():
        x0, y0, x1, y1 = gdf.geometry[valid].total_bounds
        if x0 < -180 or x1 > 180 or y0 < -90 or y1 > 90:
            raise InvalidInput(
                f"{path.name} layer {layer!r}: coordinates ({x0:.0f}, {y0:.0f}) are not "
                "longitude/latitude, so the file's CRS is wrong or missing; give the right "
                "one with --crs (e.g. --crs EPSG:32651 for UTM 51N metres)"
            )
    return gdf


ID_COLUMNS = ("source_id", "id", "osm_id", "fid", "code", "编码", "编号")


def _ids(gdf: gpd.GeoDataFrame, path: Path, target: str) -> tuple[np.ndarray, str | None]:
    """Return (a stable id per feature, a note on how ids were made when the file has none).

    Re-imports match features by id, so an id must follow the feature, not its position:
    an id column when there is one; else a GeoPackage's feature id (its primary key, kept
    when features are deleted or reordered); else, for GeoJSON and Shapefile, whose feature
    numbers are positions, an id made from the geometry itself. With those, an unchanged
    feature is matched, and an edited outline counts as one removed and one added.
    """
    col = _pick(list(gdf.columns), *ID_COLUMNS)
    if col is not None and gdf[col].notna().all():
        return gdf[col].astype(str).to_numpy(), None
    if path.suffix.lower() == ".gpkg":
        return np.array([f"fid{i}" for i in gdf.index], dtype=object), None
    digests = [
        "g" + hashlib.blake2b(b, digest_size=8).hexdigest() if b is not None else None
        for b in shapely.to_wkb(gdf.geometry.to_numpy(), byte_order=1)
    ]
    seen: dict[str | None, int] = {}
    out = []
    for d in digests:  # identical geometries (a duplicated feature) get #2, #3 …
        seen[d] = seen.get(d, 0) + 1
        out.append(f"{d}#{seen[d]}" if seen[d] > 1 else d)
    how = f"column {col!r} has empty values, so" if col is not None else "no id column, so"
    return np.array(out, dtype=object), (
        f"{how} {target} are matched on re-import by their geometry "
        "(an edited outline counts as removed + added); add an 'id' column to track edits"
    )


def _text(gdf: gpd.GeoDataFrame, *names: str) -> list:
    col = _pick(list(gdf.columns), *names)
    if col is None:
        return [None] * len(gdf)
    return [None if pd.isna(v) else str(v) for v in gdf[col]]


def _drop_null_geoms(
    gdf: gpd.GeoDataFrame, ids: np.ndarray, layer: str, ds: Dataset
) -> tuple[gpd.GeoDataFrame, np.ndarray]:
    bad = (gdf.geometry.isna() | gdf.geometry.is_empty).to_numpy()
    for i in np.flatnonzero(bad):
        ds.problems.append(Problem(layer, str(ids[i]), "no geometry: skipped"))
    return gdf.loc[~bad].reset_index(drop=True), ids[~bad]


def _attrs(gdf: gpd.GeoDataFrame, used: set[str]) -> list[dict]:
    """Return the columns not otherwise used, per row, as JSON-ready dicts."""
    cols = [c for c in gdf.columns if c != gdf.geometry.name and c.lower() not in used]
    if not cols:
        return [{} for _ in range(len(gdf))]
    frame = pd.DataFrame(gdf[cols])
    return json.loads(frame.to_json(orient="records", force_ascii=False, date_format="iso"))


def _add_layer(ds: Dataset, target: str, gdf: gpd.GeoDataFrame, settings: Settings) -> None:
    ids = gdf.pop("_source_id").to_numpy()
    gdf, ids = _drop_null_geoms(gdf, ids, target, ds)
    geoms = gdf.geometry.to_numpy().astype(object)
    if target == "buildings":
        btype = [t or "yes" for t in _text(gdf, "building", "building_type", "type")]
        raw = pd.DataFrame(
            {
                "source_id": ids,
                "building_type": btype,
                "name": _text(gdf, "name"),
                "addr_street": _text(gdf, "addr:street", "addr_street", "street"),
                "addr_housenumber": _text(
                    gdf, "addr:housenumber", "addr_housenumber", "housenumber"
                ),
                "levels_tag": _text(gdf, "building:levels", "levels", "floors", "层数"),
                "height_tag": _text(gdf, "height", "height_m"),
                "flats_tag": _text(gdf, "building:flats", "flats"),
                "households_attr": _text(gdf, "households", "户数"),
                "tags": [{} for _ in range(len(gdf))],
                "geom": geoms,
            }
        )
        ds.buildings = finish_buildings(raw, ds, settings)
    elif target == "facilities":
        ds.facilities = _facilities(gdf, ids, geoms, ds)
    elif target == "streets":
        _streets(ds, gdf, ids, geoms, settings)
    else:
        fixed, keep = repair_polygons(geoms, ids, target, ds)
        code_col = _pick(list(gdf.columns), "code", "编码", "id")
        if code_col is None:
            raise InvalidInput(f"{target}: the file needs a 'code' column (the area's code)")
        parent_names = {
            "communities": ("subdistrict", "subdistrict_code", "街道"),
            "grids": ("community", "community_code", "社区", "居委"),
        }.get(target, ())
        used = {code_col.lower(), "name", *parent_names}
        df = pd.DataFrame(
            {
                "source_id": ids,
                "code": gdf[code_col].astype(str).to_numpy(),
                "name": _text(gdf, "name", "名称"),
                "parent_code": _text(gdf, *parent_names) if parent_names else [None] * len(gdf),
                "attrs": _attrs(gdf, used),
                "geom": fixed,
            }
        )
        ds.areas[target] = df.loc[keep].reset_index(drop=True)


def _facilities(
    gdf: gpd.GeoDataFrame, ids: np.ndarray, geoms: np.ndarray, ds: Dataset
) -> pd.DataFrame:
    from gis.categories import FACILITY_KEYS, categorise, load_categories

    known = category_codes()
    cat_col = _pick(list(gdf.columns), "category", "categories", "类别")
    tag_cols = [c for c in gdf.columns if c in FACILITY_KEYS]
    if cat_col is None and not tag_cols:
        raise InvalidInput(
            "facilities: the file needs a 'category' column (one of "
            f"{', '.join(sorted(known))}) or OSM tag columns such as amenity/shop"
        )
    rows = []
    for i in range(len(gdf)):
        tags = {c: str(gdf[c].iloc[i]) for c in tag_cols if pd.notna(gdf[c].iloc[i])}
        if cat_col is not None and pd.notna(gdf[cat_col].iloc[i]):
            cats = [c.strip() for c in re.split(r"[;,]", str(gdf[cat_col].iloc[i])) if c.strip()]
            unknown = [c for c in cats if c not in known]
            if unknown:
                ds.problems.append(
                    Problem("facilities", str(ids[i]), f"unknown category {unknown[0]!r}: skipped")
                )
                continue
        else:
            cats = categorise(tags, load_categories())
        if not cats:
            ds.problems.append(Problem("facilities", str(ids[i]), "no category: skipped"))
            continue
        kind = next((f"{k}={tags[k]}" for k in FACILITY_KEYS if k in tags), cats[0])
        rows.append((i, cats, kind))
    idx = [r[0] for r in rows]
    g = geoms[idx] if idx else np.array([], dtype=object)
    types = shapely.get_type_id(g)
    is_poly = np.isin(types, (3, 6))
    keep = np.isin(types, (0, 3, 6))
    for j in np.flatnonzero(~keep):
        ds.problems.append(
            Problem("facilities", str(ids[idx[j]]), "not a point or polygon: skipped")
        )
    if is_poly.any():
        fixed, ok = repair_polygons(g[is_poly], ids[idx][is_poly], "facilities", ds)
        g[is_poly] = fixed
        keep[np.flatnonzero(is_poly)[~ok]] = False
    names = _text(gdf, "name", "名称")
    df = pd.DataFrame(
        {
            "source_id": ids[idx],
            "categories": [r[1] for r in rows],
            "kind": [r[2] for r in rows],
            "name": [names[i] for i in idx],
            "tags": [{} for _ in rows],
            "geom": g,
        }
    )
    return df.loc[keep].reset_index(drop=True)


def _streets(
    ds: Dataset, gdf: gpd.GeoDataFrame, ids: np.ndarray, geoms: np.ndarray, settings: Settings
) -> None:
    """Node the line layer into the walk network (vertices shared by coordinates)."""
    # A line layer without a class is taken as footpaths: that is what a hand-drawn walking
    # network is. foot/access columns, when present, are honoured as for OSM.
    hw = [h or "footway" for h in _text(gdf, "highway", "class", "type")]
    foot = _text(gdf, "foot")
    access = _text(gdf, "access")
    names = _text(gdf, "name")
    walkable = np.array(
        [
            is_walkable({k: v for k, v in (("highway", h), ("foot", f), ("access", a)) if v})
            for h, f, a in zip(hw, foot, access, strict=True)
        ],
        dtype=bool,
    )
    parts, index = shapely.get_parts(geoms, return_index=True)
    n_parts = np.bincount(index, minlength=len(geoms))
    part_no = np.arange(len(index)) - np.searchsorted(index, index)  # k-th part of its feature
    is_line = shapely.get_type_id(parts) == 1
    for i in np.unique(index[~is_line]):
        ds.problems.append(Problem("streets", str(ids[i]), "not a line: skipped"))
    keep = is_line & walkable[index]
    parts, index, part_no = parts[keep], index[keep], part_no[keep]
    xy, owner = shapely.get_coordinates(parts, return_index=True)
    keys = np.round(xy[:, 0] * COORD_KEY_SCALE).astype(np.int64) * 4_000_000_000 + np.round(
        xy[:, 1] * COORD_KEY_SCALE
    ).astype(np.int64)
    bounds = np.searchsorted(owner, np.arange(len(parts) + 1))
    ways = []
    for j, (i, k) in enumerate(zip(index.tolist(), part_no.tolist(), strict=True)):
        a, b = bounds[j], bounds[j + 1]
        sid = str(ids[i]) if n_parts[i] == 1 else f"{ids[i]}.{k}"
        ways.append(WayRecord(sid, hw[i], names[i], keys[a:b], xy[a:b, 0], xy[a:b, 1]))
    sample = ds.buildings["geom"].to_numpy() if ds.buildings is not None else parts[:1000]
    ds.metric_epsg = ds.metric_epsg or settings.metric_epsg or metric_epsg_for(np.asarray(sample))
    ds.walk_nodes, ds.walk_edges = build_network(ways, ds.metric_epsg, lambda key: f"c{key}")
