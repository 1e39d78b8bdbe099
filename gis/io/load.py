"""Write a Dataset into PostGIS: COPY into temporary staging tables, then upsert by source id.

Everything runs on the caller's connection inside the caller's transaction, so an import is
all or nothing. Re-importing a file updates changed rows, leaves equal rows untouched and
removes rows the file no longer has; the counts say which.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.engine import Connection

from gis.errors import Conflict, InvalidInput
from gis.io.dataset import Dataset
from gis.pgcopy import copy_rows, ewkb_4326, to_multi

# Households set by hand (a CSV) or from a house register survive re-imports of the map.
# Estimated dwellings are not written: the view dwelling_estimate derives them from the
# household count (see the migration).
PROTECTED_HOUSEHOLDS = ("csv", "register")


@dataclass
class Counts:
    """What an upsert did to one table."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
        }


@dataclass(frozen=True)
class Column:
    """A staged column: its name, SQL type, and how the final value is computed."""

    name: str
    sql_type: str
    expr: str | None = None  # defaults to s.<name>


def _python_values(series: pd.Series, sql_type: str) -> list:
    if sql_type == "geometry":
        return ewkb_4326(series.to_numpy())
    if sql_type == "jsonb":
        return [Jsonb(v) for v in series]
    if sql_type == "text[]":
        return series.tolist()
    values = series.astype(object).where(series.notna(), None).tolist()
    if sql_type == "double precision":
        return [None if v is None else float(v) for v in values]
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def copy_into_stage(
    conn: Connection, stage: str, columns: Sequence[Column], df: pd.DataFrame
) -> None:
    """Create temporary table ``stage`` and COPY ``df`` into it."""
    cols_sql = ", ".join(f"{c.name} {c.sql_type}" for c in columns)
    conn.execute(sa.text(f"CREATE TEMP TABLE {stage} ({cols_sql}) ON COMMIT DROP"))
    data = [_python_values(df[c.name], c.sql_type) for c in columns]
    copy_rows(conn, stage, [c.name for c in columns], [c.sql_type for c in columns], data)


def is_new_source(conn: Connection, table: str, source_file: str) -> bool:
    """Return whether ``table`` has no rows from ``source_file`` yet."""
    return not conn.scalar(
        sa.text(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE source_file = :sf)"),
        {"sf": source_file},
    )


def copy_new_rows(
    conn: Connection, table: str, columns: Sequence[Column], df: pd.DataFrame, source_file: str
) -> Counts:
    """First import of a source: COPY straight into ``table``, every row added.

    Values must already be final (geometries of the column's type, foreign keys resolved):
    no SQL expression is applied on this path.
    """
    data = [[source_file] * len(df)] + [_python_values(df[c.name], c.sql_type) for c in columns]
    names = ["source_file", *(c.name for c in columns)]
    copy_rows(conn, table, names, ["text", *(c.sql_type for c in columns)], data)
    return Counts(added=len(df))


def check_unique_ids(df: pd.DataFrame, layer: str) -> None:
    """Refuse a layer whose features repeat an id: re-imports could not be matched."""
    dup = df["source_id"][df["source_id"].duplicated()]
    if len(dup):
        shown = ", ".join(map(str, dup.unique()[:5]))
        raise InvalidInput(
            f"{layer}: {len(dup)} features repeat an id ({shown}); "
            "ids must be unique so that re-imports can be matched"
        )


def upsert(
    conn: Connection,
    table: str,
    stage: str,
    columns: Sequence[Column],
    source_file: str,
    *,
    joins: str = "",
    protect: dict[str, str] | None = None,
    remove_missing: bool = True,
    keep_missing_if: str | None = None,
) -> Counts:
    """Upsert staged rows into ``table`` keyed by (source_file, source_id).

    ``protect`` maps a column to a SQL condition on the existing row ``t`` under which the
    stored value wins over the file's (e.g. households typed in by staff).
    """
    protect = protect or {}
    names = [c.name for c in columns if c.name != "source_id"]
    exprs = [c.expr or f"s.{c.name}" for c in columns if c.name != "source_id"]
    sets = []
    for n in names:
        if n in protect:
            sets.append(f"{n} = CASE WHEN {protect[n]} THEN t.{n} ELSE EXCLUDED.{n} END")
        else:
            sets.append(f"{n} = EXCLUDED.{n}")
    plain = [n for n in names if n not in protect]
    same = []
    if plain:
        t_cols = ", ".join(f"t.{n}" for n in plain)
        new_cols = ", ".join(f"EXCLUDED.{n}" for n in plain)
        same.append(f"ROW({t_cols}) IS NOT DISTINCT FROM ROW({new_cols})")
    for n, cond in protect.items():
        same.append(f"({cond} OR t.{n} IS NOT DISTINCT FROM EXCLUDED.{n})")
    sql = f"""
        WITH up AS (
            INSERT INTO {table} AS t (source_file, source_id, {", ".join(names)}, imported_at)
            SELECT :sf, s.source_id, {", ".join(exprs)}, now()
            FROM {stage} s {joins}
            ON CONFLICT (source_file, source_id) DO UPDATE
               SET {", ".join(sets)}, imported_at = now()
             WHERE NOT ({" AND ".join(same)})
            RETURNING (xmax = 0) AS inserted
        )
        SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up
    """
    try:
        added, updated = conn.execute(sa.text(sql), {"sf": source_file}).one()
    except sa.exc.IntegrityError as err:
        raise Conflict(f"{table}: {str(err.orig).splitlines()[0]}") from err
    staged = conn.scalar(sa.text(f"SELECT count(*) FROM {stage}"))
    removed = 0
    if remove_missing:
        missing = (
            f"t.source_file = :sf AND NOT EXISTS "
            f"(SELECT 1 FROM {stage} s WHERE s.source_id = t.source_id)"
            + (f" AND NOT ({keep_missing_if})" if keep_missing_if else "")
        )
        savepoint = conn.begin_nested()
        try:
            removed = conn.execute(
                sa.text(f"DELETE FROM {table} t WHERE {missing}"), {"sf": source_file}
            ).rowcount
            savepoint.commit()
        except sa.exc.IntegrityError as err:
            savepoint.rollback()
            child = getattr(err.orig.diag, "table_name", None) or "other"
            label = "code" if table in ("subdistrict", "community", "grid") else "source_id"
            gone = (
                conn.execute(
                    sa.text(f"SELECT t.{label} FROM {table} t WHERE {missing} ORDER BY 1 LIMIT 6"),
                    {"sf": source_file},
                )
                .scalars()
                .all()
            )
            shown = ", ".join(map(str, gone[:5])) + (" …" if len(gone) > 5 else "")
            raise Conflict(
                f"{table} {shown} not in the new file, but {child} rows still belong to "
                f"them; nothing was imported. Move or remove those {child} rows first, or "
                f"keep the {table} in the file"
            ) from err
    return Counts(added, updated, staged - added - updated, removed)


BUILDING_COLUMNS = (
    Column("source_id", "text"),
    Column("building_type", "text"),
    Column("name", "text"),
    Column("addr_street", "text"),
    Column("addr_housenumber", "text"),
    Column("levels", "integer"),
    Column("levels_source", "text"),
    Column("height_m", "double precision"),
    Column("flats", "integer"),
    Column("area_m2", "double precision"),
    Column("is_residential", "boolean"),
    Column("households", "integer"),
    Column("households_source", "text"),
    Column("tags", "jsonb"),
    Column("geom", "geometry", "ST_Multi(s.geom)"),
)
FACILITY_COLUMNS = (
    Column("source_id", "text"),
    Column("categories", "text[]"),
    Column("kind", "text"),
    Column("name", "text"),
    Column("tags", "jsonb"),
    Column(
        "geom",
        "geometry",
        "CASE WHEN GeometryType(s.geom) = 'POINT' THEN s.geom ELSE ST_Multi(s.geom) END",
    ),
)
NODE_COLUMNS = (Column("source_id", "text"), Column("geom", "geometry"))
EDGE_COLUMNS = (
    Column("source_id", "text"),
    Column("source", "text", "n1.id"),
    Column("target", "text", "n2.id"),
    Column("highway", "text"),
    Column("name", "text"),
    Column("length_m", "double precision"),
    Column("geom", "geometry"),
)
AREA_COLUMNS = (
    Column("source_id", "text"),
    Column("code", "text"),
    Column("name", "text"),
    Column("attrs", "jsonb"),
    Column("geom", "geometry", "ST_Multi(s.geom)"),
)
AREA_PARENTS = {
    "communities": ("community", "subdistrict", "subdistrict_id"),
    "grids": ("grid", "community", "community_id"),
    "subdistricts": ("subdistrict", None, None),
}


def load_dataset(
    conn: Connection,
    ds: Dataset,
    source_file: str,
    layers: Iterable[str],
    *,
    remove_registered: bool = False,
) -> dict[str, Counts]:
    """Write the requested layers of ``ds``; return the counts per table.

    A re-import that no longer has a building whose households staff set (a households
    table or a house register) is refused, naming them, unless ``remove_registered``.
    """
    out: dict[str, Counts] = {}
    layers = set(layers)
    if "subdistricts" in layers and "subdistricts" in ds.areas:
        out["subdistrict"] = _load_areas(
            conn, "subdistricts", ds.areas["subdistricts"], source_file
        )
    if "communities" in layers and "communities" in ds.areas:
        out["community"] = _load_areas(conn, "communities", ds.areas["communities"], source_file)
    if "grids" in layers and "grids" in ds.areas:
        out["grid"] = _load_areas(conn, "grids", ds.areas["grids"], source_file)
    if "buildings" in layers and ds.buildings is not None:
        check_unique_ids(ds.buildings, "buildings")
        if is_new_source(conn, "building", source_file):
            rows = ds.buildings.assign(geom=to_multi(ds.buildings["geom"].to_numpy()))
            out["building"] = copy_new_rows(conn, "building", BUILDING_COLUMNS, rows, source_file)
        else:
            copy_into_stage(conn, "stage_building", BUILDING_COLUMNS, ds.buildings)
            if not remove_registered:
                check_registered_kept(conn, source_file)
            check_residents_kept(conn, source_file)
            cond = "t.households_source IN ('" + "', '".join(PROTECTED_HOUSEHOLDS) + "')"
            out["building"] = upsert(
                conn,
                "building",
                "stage_building",
                BUILDING_COLUMNS,
                source_file,
                protect={"households": cond, "households_source": cond},
            )
    if "buildings" in layers and ds.entrances is not None:
        out["building_entrance"] = _load_entrances(conn, ds.entrances, source_file)
    if "facilities" in layers and ds.facilities is not None:
        check_unique_ids(ds.facilities, "facilities")
        withdrawn = set(
            conn.execute(
                sa.text("SELECT source_id FROM facility_withdrawn WHERE source_file = :sf"),
                {"sf": source_file},
            ).scalars()
        )
        rows = ds.facilities[~ds.facilities["source_id"].isin(withdrawn)]
        if is_new_source(conn, "facility", source_file):
            rows = rows.assign(geom=to_multi(rows["geom"].to_numpy()))
            out["facility"] = copy_new_rows(conn, "facility", FACILITY_COLUMNS, rows, source_file)
        else:
            copy_into_stage(conn, "stage_facility", FACILITY_COLUMNS, rows)
            edited = "t.edited_at IS NOT NULL"
            out["facility"] = upsert(
                conn,
                "facility",
                "stage_facility",
                FACILITY_COLUMNS,
                source_file,
                protect={c.name: edited for c in FACILITY_COLUMNS if c.name != "source_id"},
                keep_missing_if=edited,
            )
    if "streets" in layers and ds.walk_edges is not None:
        out.update(_load_network(conn, ds, source_file))
        check_network_ends(conn, source_file)
    return out


def _load_entrances(conn: Connection, entrances: pd.DataFrame, source_file: str) -> Counts:
    """Replace the entrances of this source's buildings (few rows: no diffing needed)."""
    removed = conn.execute(
        sa.text(
            "DELETE FROM building_entrance e USING building b WHERE b.id = e.building_id "
            "AND b.source_file = :sf"
        ),
        {"sf": source_file},
    ).rowcount
    added = 0
    if len(entrances):
        added = conn.execute(
            sa.text(
                "INSERT INTO building_entrance (building_id, source_id, kind, rank, geom) "
                "SELECT b.id, v.sid, v.kind, v.rank, ST_GeomFromWKB(v.g, 4326) FROM unnest("
                "CAST(:b AS text[]), CAST(:s AS text[]), CAST(:k AS text[]), CAST(:r AS int[]), "
                "CAST(:g AS bytea[])) AS v(bsid, sid, kind, rank, g) "
                "JOIN building b ON b.source_file = :sf AND b.source_id = v.bsid"
            ),
            {
                "b": entrances["building"].tolist(),
                "s": entrances["source_id"].tolist(),
                "k": entrances["kind"].tolist(),
                "r": [int(r) for r in entrances["rank"]],
                "g": [shapely.to_wkb(g) for g in entrances["geom"]],
                "sf": source_file,
            },
        ).rowcount
        conn.execute(NUMBER_DOORS, {"sf": source_file})
    same = min(added, removed)
    return Counts(added=added - same, unchanged=same, removed=removed - same)


# Doors to homes (单元门), numbered 1, 2, … along the building's long side where a building
# has two or more: the estimated dwellings are shared among them (dwelling_estimate, 0018)
# and towers are divided by whole entrances where that keeps groups balanced. Stairwell
# kinds win over bare ``yes``/``main`` doors when a building has both; service, emergency,
# garage and other doors are never numbered.
STAIRWELL_DOORS = ("staircase", "home", "residential", "apartments")
PLAIN_DOORS = ("yes", "main")
NUMBER_DOORS = sa.text(
    f"""
    WITH doors AS (
        SELECT e.id, e.building_id, e.kind, e.source_id, e.geom,
               bool_or(e.kind IN {STAIRWELL_DOORS}) OVER (PARTITION BY e.building_id)
                   AS has_stairwells
          FROM building_entrance e JOIN building b ON b.id = e.building_id
         WHERE b.source_file = :sf AND e.kind IN {STAIRWELL_DOORS + PLAIN_DOORS}
    ), homes AS (
        SELECT d.*, count(*) OVER (PARTITION BY d.building_id) AS n FROM doors d
         WHERE d.kind IN {STAIRWELL_DOORS} OR NOT d.has_stairwells
    ), numbered AS (
        SELECT h.id, row_number() OVER (PARTITION BY h.building_id
                                        ORDER BY ST_LineLocatePoint(ax.side, h.geom),
                                                 h.source_id) AS no
          FROM homes h JOIN building b ON b.id = h.building_id
          CROSS JOIN LATERAL (SELECT ST_ExteriorRing(ST_OrientedEnvelope(b.geom)) AS r) env
          CROSS JOIN LATERAL (
              SELECT CASE WHEN ST_Distance(ST_PointN(env.r, 1), ST_PointN(env.r, 2))
                             >= ST_Distance(ST_PointN(env.r, 2), ST_PointN(env.r, 3))
                          THEN ST_MakeLine(ST_PointN(env.r, 1), ST_PointN(env.r, 2))
                          ELSE ST_MakeLine(ST_PointN(env.r, 2), ST_PointN(env.r, 3))
                     END AS side) ax
         WHERE h.n >= 2
    )
    UPDATE building_entrance e SET door_no = numbered.no FROM numbered
     WHERE numbered.id = e.id
    """.replace("',)", "')")
)


def check_registered_kept(conn: Connection, source_file: str) -> None:
    """Refuse to drop buildings whose households or dwellings staff entered by hand."""
    rows = conn.execute(
        sa.text(
            "SELECT t.source_id, t.households_source, (SELECT count(*) FROM dwelling d "
            "WHERE d.building_id = t.id) FROM building t WHERE t.source_file = :sf "
            "AND (t.households_source = ANY(:protected) OR EXISTS (SELECT 1 FROM dwelling d "
            "WHERE d.building_id = t.id)) AND NOT EXISTS (SELECT 1 FROM stage_building s "
            "WHERE s.source_id = t.source_id) ORDER BY t.source_id"
        ),
        {"sf": source_file, "protected": list(PROTECTED_HOUSEHOLDS)},
    ).all()
    if rows:
        shown = ", ".join(
            f"{sid} ({'register, ' + str(n) + ' dwellings' if n else src})"
            for sid, src, n in rows[:5]
        )
        more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
        raise Conflict(
            f"{len(rows)} building(s) with households entered by staff are not in the new "
            f"file: {shown}{more}. Nothing was imported. Check that it is the right file; "
            "to remove them and their dwellings, import again with --remove-registered"
        )


def check_residents_kept(conn: Connection, source_file: str) -> None:
    """Refuse to drop buildings where residents of the ledger live (never with a flag:
    people are not removed by a map update)."""
    rows = conn.execute(
        sa.text(
            "SELECT t.source_id, count(r.id) FROM building t JOIN resident r "
            "ON r.building_id = t.id WHERE t.source_file = :sf AND NOT EXISTS "
            "(SELECT 1 FROM stage_building s WHERE s.source_id = t.source_id) "
            "GROUP BY t.source_id ORDER BY t.source_id"
        ),
        {"sf": source_file},
    ).all()
    if rows:
        shown = ", ".join(f"{sid} ({n} residents)" for sid, n in rows[:5])
        more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
        raise Conflict(
            f"{len(rows)} building(s) where residents of the ledger live are not in the new "
            f"file: {shown}{more}. Nothing was imported. Move those residents to their new "
            "building (PATCH /api/residents/ID) or remove them first"
        )


def _load_network(conn: Connection, ds: Dataset, source_file: str) -> dict[str, Counts]:
    assert ds.walk_nodes is not None and ds.walk_edges is not None
    check_unique_ids(ds.walk_edges, "streets")
    if is_new_source(conn, "walk_node", source_file) and is_new_source(
        conn, "walk_edge", source_file
    ):
        return _copy_new_network(conn, ds, source_file)
    copy_into_stage(conn, "stage_walk_node", NODE_COLUMNS, ds.walk_nodes)
    edges = ds.walk_edges.rename(columns={"source_key": "source", "target_key": "target"})
    copy_into_stage(conn, "stage_walk_edge", EDGE_COLUMNS, edges)
    nodes = upsert(
        conn, "walk_node", "stage_walk_node", NODE_COLUMNS, source_file, remove_missing=False
    )
    joins = (
        "JOIN walk_node n1 ON n1.source_file = :sf AND n1.source_id = s.source "
        "JOIN walk_node n2 ON n2.source_file = :sf AND n2.source_id = s.target"
    )
    edge_counts = upsert(
        conn, "walk_edge", "stage_walk_edge", EDGE_COLUMNS, source_file, joins=joins
    )
    nodes.removed = conn.execute(
        sa.text(
            "DELETE FROM walk_node t WHERE t.source_file = :sf AND NOT EXISTS "
            "(SELECT 1 FROM stage_walk_node s WHERE s.source_id = t.source_id)"
        ),
        {"sf": source_file},
    ).rowcount
    return {"walk_node": nodes, "walk_edge": edge_counts}


def check_network_ends(conn: Connection, source_file: str) -> None:
    """Refuse (roll back) an import that left an edge without its end nodes."""
    dangling = conn.scalar(
        sa.text(
            "SELECT count(*) FROM walk_edge e WHERE e.source_file = :sf AND ("
            "NOT EXISTS (SELECT 1 FROM walk_node n WHERE n.id = e.source) OR "
            "NOT EXISTS (SELECT 1 FROM walk_node n WHERE n.id = e.target))"
        ),
        {"sf": source_file},
    )
    if dangling:
        raise Conflict(
            f"walk network of {source_file}: {dangling} edge(s) without their end "
            "nodes; nothing was imported (please report this as a bug)"
        )


def _copy_new_network(conn: Connection, ds: Dataset, source_file: str) -> dict[str, Counts]:
    assert ds.walk_nodes is not None and ds.walk_edges is not None
    n = len(ds.walk_nodes)
    # Reserve the nodes' ids up front so edges can be written with their endpoints at once.
    ids = (
        conn.execute(
            sa.text("SELECT nextval('walk_node_id_seq') FROM generate_series(1, :n)"), {"n": n}
        )
        .scalars()
        .all()
    )
    nodes = ds.walk_nodes.assign(id=np.array(ids, dtype=np.int64))
    id_of = dict(zip(nodes["source_id"], nodes["id"], strict=True))
    edges = ds.walk_edges.assign(
        source=ds.walk_edges["source_key"].map(id_of), target=ds.walk_edges["target_key"].map(id_of)
    )
    node_cols = (Column("id", "bigint"), *NODE_COLUMNS)
    edge_cols = (
        Column("source_id", "text"),
        Column("source", "bigint"),
        Column("target", "bigint"),
        *EDGE_COLUMNS[3:],
    )
    return {
        "walk_node": copy_new_rows(conn, "walk_node", node_cols, nodes, source_file),
        "walk_edge": copy_new_rows(conn, "walk_edge", edge_cols, edges, source_file),
    }


def _load_areas(conn: Connection, layer: str, df: pd.DataFrame, source_file: str) -> Counts:
    table, parent, fk = AREA_PARENTS[layer]
    check_unique_ids(df, layer)
    stage = f"stage_{table}"
    columns = list(AREA_COLUMNS)
    joins = ""
    if parent:
        columns.append(Column("parent_code", "text"))
        copy_into_stage(conn, stage, columns, df)
        missing = (
            conn.execute(
                sa.text(
                    f"SELECT DISTINCT s.parent_code FROM {stage} s LEFT JOIN {parent} p "
                    f"ON p.code = s.parent_code WHERE p.id IS NULL AND s.parent_code IS NOT NULL"
                )
            )
            .scalars()
            .all()
        )
        if missing:
            raise InvalidInput(
                f"{layer}: parent {parent} code(s) not in the database: "
                f"{', '.join(sorted(missing)[:5])}; import the {parent} "
                "boundaries first"
            )
        if table == "grid":
            n_null = conn.scalar(sa.text(f"SELECT count(*) FROM {stage} WHERE parent_code IS NULL"))
            if n_null:
                raise InvalidInput(
                    f"grids: {n_null} grid(s) without a 'community' code; "
                    "every grid belongs to one community"
                )
        joins = f"LEFT JOIN {parent} p ON p.code = s.parent_code"
        columns[-1] = Column(fk, "text", "p.id")
    else:
        copy_into_stage(conn, stage, columns, df)
    return upsert(conn, table, stage, columns, source_file, joins=joins)
