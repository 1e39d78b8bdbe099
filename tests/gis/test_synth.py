"""The synthetic city (``gridatlas synth``): file-only checks, no database needed."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from gis.categories import category_codes
from gis.errors import InvalidInput
from gis.io.dataset import Dataset
from gis.io.vector import _add_layer, read_vector
from gis.settings import Settings
from gis.synth import write_city

LAYERS = ("buildings", "streets", "facilities", "communities", "subdistricts")
CATEGORY_CODES = {
    "committee_office", "police_room", "activity_room", "library", "convenience_service",
    "family_planning", "health_station", "rehabilitation", "affairs_board", "science_board",
    "residents_school", "outdoor_fitness", "medical", "shopping", "employment",
    "entertainment", "housekeeping", "education", "elderly_care",
}  # fmt: skip
METRIC = 32651


def read_city(path: Path) -> dict[str, gpd.GeoDataFrame]:
    """Read every layer of a synthetic city back from its GeoPackage."""
    assert sorted(pyogrio.list_layers(path)[:, 0]) == sorted(LAYERS)
    return {name: pyogrio.read_dataframe(path, layer=name) for name in LAYERS}


def overlap_pairs(geoms: np.ndarray, min_area: float) -> list[tuple[int, int, float]]:
    """Return (i, j, area) for distinct pairs of ``geoms`` sharing more than ``min_area``."""
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    area = shapely.area(shapely.intersection(geoms[left], geoms[right]))
    bad = area > min_area
    return list(zip(left[bad].tolist(), right[bad].tolist(), area[bad].tolist(), strict=True))


@pytest.fixture(scope="module")
def small_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synth") / "small.gpkg"
    summary = write_city(path, buildings=2000, seed=7)
    assert summary.startswith(f"wrote {path}: 2000 buildings")
    return path


@pytest.fixture(scope="module")
def small(small_path: Path) -> dict[str, gpd.GeoDataFrame]:
    return read_city(small_path)


@pytest.fixture(scope="module")
def city_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synth") / "nested" / "city.gpkg"  # parents are made
    write_city(path, buildings=20_000, seed=3)
    return path


@pytest.fixture(scope="module")
def city(city_path: Path) -> dict[str, gpd.GeoDataFrame]:
    return read_city(city_path)


def test_same_seed_same_city_other_seed_other_city(small_path: Path, tmp_path: Path) -> None:
    again, other = tmp_path / "again.gpkg", tmp_path / "other.gpkg"
    (tmp_path / "again.gpkg").write_text("stale")  # an existing file is replaced
    write_city(again, buildings=2000, seed=7)
    write_city(other, buildings=2000, seed=8)
    first, second, third = read_city(small_path), read_city(again), read_city(other)
    for name in LAYERS:
        a, b = first[name], second[name]
        assert (
            shapely.to_wkb(a.geometry.to_numpy()).tolist()
            == shapely.to_wkb(b.geometry.to_numpy()).tolist()
        ), name
        pd.testing.assert_frame_equal(a.drop(columns="geometry"), b.drop(columns="geometry"))
    a, c = first["buildings"], third["buildings"]
    assert len(c) == 2000
    assert not shapely.equals(a.geometry.to_numpy()[:100], c.geometry.to_numpy()[:100]).all()


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="--buildings"):
        write_city(tmp_path / "x.gpkg", buildings=0, seed=1)
    with pytest.raises(InvalidInput, match="--seed"):
        write_city(tmp_path / "x.gpkg", buildings=10, seed=-1)
    with pytest.raises(InvalidInput, match="directory"):
        write_city(tmp_path, buildings=10, seed=1)


@pytest.mark.parametrize("n", [1, 37])
def test_tiny_cities_are_complete(tmp_path: Path, n: int) -> None:
    path = tmp_path / "tiny.gpkg"
    write_city(path, buildings=n, seed=5)
    layers = read_city(path)
    assert len(layers["buildings"]) == n
    assert set(layers["facilities"]["category"]) == CATEGORY_CODES
    assert len(layers["communities"]) >= 1 and len(layers["subdistricts"]) == 1


def test_buildings_count_ids_and_footprints(small: dict[str, gpd.GeoDataFrame]) -> None:
    b = small["buildings"]
    assert len(b) == 2000
    for name, key in (
        ("buildings", "id"), ("streets", "id"), ("facilities", "id"),
        ("communities", "code"), ("subdistricts", "code"),
    ):  # fmt: skip
        assert small[name][key].is_unique, name
    assert set(b["building"]) == {"apartments", "retail"}
    assert (b.loc[b["building"] == "retail", "households"] == 0).all()
    apartments = b[b["building"] == "apartments"]
    assert set(apartments["levels"]) <= {6, *range(18, 34)}
    footprints = b.to_crs(METRIC).geometry.to_numpy()
    assert shapely.is_valid(footprints).all()
    expected = np.round(shapely.area(footprints) * b["levels"] * 0.75 / 70)
    is_apt = (b["building"] == "apartments").to_numpy()
    assert np.abs(expected[is_apt] - b["households"][is_apt]).max() <= 1
    assert overlap_pairs(footprints, 0.0) == []
    lines = small["streets"].to_crs(METRIC).geometry.to_numpy()
    hits = shapely.STRtree(lines).query(footprints, predicate="intersects")
    assert hits.shape[1] == 0, f"{hits.shape[1]} building/street crossings"


def test_importer_reads_the_city_without_problems(small_path: Path) -> None:
    wanted = {"buildings", "streets", "facilities", "subdistricts", "communities", "grids"}
    ds = read_vector(small_path, Settings(), wanted, None, lambda _step, _done: None)
    assert ds.problems == [] and not ds.repaired
    assert sorted(ds.layers()) == sorted(LAYERS)
    written = pyogrio.read_dataframe(small_path, layer="buildings", read_geometry=False)
    assert ds.buildings["households"].sum() == written["households"].sum()
    assert set(ds.areas["communities"]["parent_code"]) <= set(ds.areas["subdistricts"]["code"])


def test_every_facility_category_is_present(small: dict[str, gpd.GeoDataFrame]) -> None:
    f = small["facilities"]
    assert category_codes() == CATEGORY_CODES  # the importer knows every code written
    assert set(f["category"]) == CATEGORY_CODES
    assert len(f) >= 19 and f["name"].notna().all()
    assert (shapely.get_type_id(f.geometry.to_numpy()) == 0).all()


def test_communities_tile_subdistricts_with_balanced_households(
    city: dict[str, gpd.GeoDataFrame],
) -> None:
    comm, subs, b = city["communities"], city["subdistricts"], city["buildings"]
    assert len(b) == 20_000
    assert overlap_pairs(comm.to_crs(METRIC).geometry.to_numpy(), 1.0) == []
    assert shapely.is_valid(comm.geometry.to_numpy()).all()
    assert shapely.is_valid(subs.geometry.to_numpy()).all()
    assert 1 < len(subs) < len(comm)
    parent = subs.set_index("code").geometry.loc[comm["subdistrict"]].to_numpy()
    assert shapely.covered_by(comm.geometry.to_numpy(), parent).all()
    per_sub = comm["subdistrict"].value_counts()
    assert per_sub.max() <= 30 and per_sub.median() >= 10
    centroids = b.to_crs(METRIC).geometry.centroid.to_numpy()
    inside, cid = shapely.STRtree(comm.to_crs(METRIC).geometry.to_numpy()).query(
        centroids, predicate="within"
    )
    assert (np.bincount(inside, minlength=len(b)) == 1).all()
    households = np.bincount(cid, weights=b["households"].to_numpy()[inside], minlength=len(comm))
    assert households.min() >= 800 and households.max() <= 4500, (
        households.min(),
        households.max(),
    )


def test_walk_network_reaches_every_building(
    city: dict[str, gpd.GeoDataFrame],
) -> None:
    ds = Dataset()
    streets = city["streets"].assign(_source_id=[f"s{i}" for i in range(len(city["streets"]))])
    _add_layer(ds, "streets", streets, Settings())  # the importer's own noding
    nodes, edges = ds.walk_nodes, ds.walk_edges
    assert not ds.problems
    index = pd.Series(np.arange(len(nodes)), index=nodes["source_id"])
    src, dst = index[edges["source_key"]].to_numpy(), index[edges["target_key"]].to_numpy()
    graph = coo_matrix((np.ones(len(src)), (src, dst)), shape=(len(nodes), len(nodes)))
    _, label = connected_components(graph, directed=False)
    assert np.bincount(label).max() >= 0.99 * len(nodes)
    node_xy = gpd.GeoSeries(nodes["geom"].to_numpy(), crs=4326).to_crs(METRIC).to_numpy()
    b = city["buildings"]
    apartments = b[b["building"] == "apartments"].to_crs(METRIC).geometry.to_numpy()
    _, dist = shapely.STRtree(node_xy).query_nearest(apartments, return_distance=True)
    assert dist.max() <= 60.0, dist.max()
