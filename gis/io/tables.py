"""CSV/XLSX tables: households per building, and a house register of dwellings.

* households table — columns ``building`` (source id such as ``w123``, or ``building_id``,
  the database id) and ``households`` (户数). Overrides the estimate; survives re-imports.
* house register — columns building, ``room`` (室号) and optionally ``households`` (户数,
  default 1) and ``floor`` (楼层, default from the room number). The listed buildings'
  dwellings become the register's (no longer estimated); their household count becomes
  the register's total.

Every row is checked first; one bad row refuses the whole file, with row and reason.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.errors import InvalidInput
from gis.io.load import Counts

HEADINGS = {
    "楼栋": "building",
    "建筑": "building",
    "楼栋编号": "building",
    "建筑编号": "building_id",
    "户数": "households",
    "室号": "room",
    "房号": "room",
    "楼层": "floor",
}
ROWS_SHOWN = 10


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV (UTF-8, or GBK as Excel in China writes it) or XLSX into strings."""
    try:
        if path.suffix.lower() == ".xlsx":
            df = pd.read_excel(path, dtype=str)
        else:
            try:
                df = pd.read_csv(path, dtype=str, encoding="utf-8-sig")
            except UnicodeDecodeError:
                df = pd.read_csv(path, dtype=str, encoding="gbk")
    except Exception as err:  # pandas/openpyxl raise many kinds for broken files
        raise InvalidInput(
            f"{path.name} cannot be read as a table: {str(err).strip().splitlines()[0]}"
        ) from err
    df.columns = [HEADINGS.get(str(c).strip(), str(c).strip().lower()) for c in df.columns]
    return df


def _fail(path_name: str, errors: list[str]) -> None:
    shown = "; ".join(errors[:ROWS_SHOWN])
    more = f" (and {len(errors) - ROWS_SHOWN} more)" if len(errors) > ROWS_SHOWN else ""
    raise InvalidInput(f"{path_name}: {len(errors)} bad row(s), nothing imported: {shown}{more}")


def _resolve_buildings(conn: Connection, df: pd.DataFrame, errors: list[str]) -> pd.Series:
    if "building_id" in df.columns:
        ids = pd.to_numeric(df["building_id"], errors="coerce")
        found = set(
            conn.execute(
                sa.text("SELECT id FROM building WHERE id = ANY(:ids)"),
                {"ids": [int(i) for i in ids.dropna()]},
            ).scalars()
        )
        out = ids.where(ids.isin(found))
        key = df["building_id"]
    elif "building" in df.columns:
        rows = conn.execute(
            sa.text(
                "SELECT source_id, min(id), count(*) FROM building WHERE source_id = ANY(:s) "
                "GROUP BY source_id"
            ),
            {"s": list(df["building"].dropna().unique())},
        ).all()
        ambiguous = {r[0] for r in rows if r[2] > 1}
        lookup = {r[0]: r[1] for r in rows if r[2] == 1}
        out = df["building"].map(lookup)
        for i, v in enumerate(df["building"]):
            if v in ambiguous:
                errors.append(f"row {i + 2}: building {v!r} is in several sources; use building_id")
        key = df["building"]
    else:
        raise InvalidInput(
            "the table needs a 'building' (source id, e.g. w123) or 'building_id' column"
        )
    for i in range(len(df)):
        if pd.isna(out.iloc[i]) and not any(e.startswith(f"row {i + 2}:") for e in errors):
            errors.append(f"row {i + 2}: no building {key.iloc[i]!r}")
    return out


def _int_column(
    df: pd.DataFrame, col: str, errors: list[str], *, default: int | None = None, minimum: int = 0
) -> pd.Series:
    if col not in df.columns:
        if default is None:
            raise InvalidInput(f"the table needs a {col!r} column")
        return pd.Series([default] * len(df))
    values = pd.to_numeric(df[col], errors="coerce")
    for i, (raw, v) in enumerate(zip(df[col], values, strict=True)):
        if pd.isna(v) or v != int(v) or v < minimum:
            errors.append(f"row {i + 2}: {col} {raw!r} is not a whole number ≥ {minimum}")
    return values


def import_table(conn: Connection, path: Path, wanted: set[str]) -> dict[str, Counts]:
    """Import a households table or a house register (told apart by a ``room`` column)."""
    df = read_table(path)
    if df.empty:
        raise InvalidInput(f"{path.name} has a header but no rows")
    errors: list[str] = []
    building = _resolve_buildings(conn, df, errors)
    if "room" in df.columns and "dwellings" in wanted:
        return _import_register(conn, path, df, building, errors)
    if "households" in wanted:
        households = _int_column(df, "households", errors)
        if errors:
            _fail(path.name, errors)
        updated = conn.execute(
            sa.text(
                "UPDATE building SET households = v.h, households_source = 'csv' "
                "FROM unnest(CAST(:ids AS bigint[]), CAST(:hh AS int[])) AS v(id, h) "
                "WHERE building.id = v.id AND (building.households, building.households_source) "
                "IS DISTINCT FROM (v.h, 'csv')"
            ),
            {"ids": [int(b) for b in building], "hh": [int(h) for h in households]},
        ).rowcount
        return {"building": Counts(updated=updated, unchanged=len(df) - updated)}
    raise InvalidInput(f"{path.name}: a house register needs a 'room' (室号) column")


def _import_register(
    conn: Connection, path: Path, df: pd.DataFrame, building: pd.Series, errors: list[str]
) -> dict[str, Counts]:
    households = _int_column(df, "households", errors, default=1)
    rooms = df["room"].fillna("").astype(str).str.strip()
    for i, r in enumerate(rooms):
        if not r:
            errors.append(f"row {i + 2}: room is empty")
    floor = (
        _int_column(df, "floor", errors, minimum=-5)
        if "floor" in df.columns
        else pd.to_numeric(rooms.str[:-2], errors="coerce").fillna(1)
    )
    dup = pd.DataFrame({"b": building, "r": rooms}).duplicated()
    for i in pd.Series(dup).to_numpy().nonzero()[0]:
        errors.append(f"row {i + 2}: room {rooms.iloc[i]!r} appears twice for this building")
    if errors:
        _fail(path.name, errors)
    ids = sorted({int(b) for b in building})
    removed = conn.execute(
        sa.text("DELETE FROM dwelling WHERE building_id = ANY(:ids)"), {"ids": ids}
    ).rowcount
    conn.execute(
        sa.text(
            "INSERT INTO dwelling (building_id, floor, room, households, is_estimated, "
            "source_file) SELECT *, false, :sf FROM unnest(CAST(:b AS bigint[]), "
            "CAST(:f AS int[]), CAST(:r AS text[]), CAST(:h AS int[]))"
        ),
        {
            "b": [int(b) for b in building],
            "f": [int(f) for f in floor],
            "r": list(rooms),
            "h": [int(h) for h in households],
            "sf": path.name,
        },
    )
    conn.execute(
        sa.text(
            "UPDATE building b SET households = t.total, households_source = 'register' "
            "FROM (SELECT building_id, sum(households)::int AS total FROM dwelling "
            "WHERE building_id = ANY(:ids) GROUP BY building_id) t WHERE b.id = t.building_id"
        ),
        {"ids": ids},
    )
    return {
        "dwelling": Counts(added=len(df), removed=removed),
        "building": Counts(updated=len(ids)),
    }
