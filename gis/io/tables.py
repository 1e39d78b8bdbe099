"""CSV/XLSX tables: households per building, and a house register of dwellings.

* households table — columns ``building`` (source id such as ``w123``, or ``building_id``,
  the database id) and ``households`` (户数). Overrides the estimate; survives re-imports.
* house register — columns building, ``room`` (室号) and optionally ``households`` (户数,
  default 1), ``floor`` (楼层, default from the room number) and ``entrance`` (单元 / 单元门,
  the door the room is behind: "1", "2单元", "A"; optional). The listed buildings'
  dwellings become the register's (no longer estimated); their household count becomes
  the register's total. Where a register names entrances, towers are divided by whole
  entrances when that keeps groups balanced, else by floors within one entrance.

Every row is checked first; one bad row refuses the whole file, with row and reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.errors import InvalidInput
from gis.io.households import MAX_HOUSEHOLDS, MAX_LEVELS
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
    "单元": "entrance",
    "单元号": "entrance",
    "单元门": "entrance",
    "门洞": "entrance",
}
MAX_ENTRANCE_CHARS = 20
ROWS_SHOWN = 10
MAX_PER_DWELLING = 50  # households sharing one door (collective households included)


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV (UTF-8, or GBK as Excel in China writes it) or XLSX into strings."""
    try:
        if path.suffix.lower() == ".xlsx":
            df = pd.read_excel(path, dtype=str)
        else:
            # Blank lines are read (then dropped below) so that row numbers are the file's.
            try:
                df = pd.read_csv(path, dtype=str, encoding="utf-8-sig", skip_blank_lines=False)
            except UnicodeDecodeError:
                df = pd.read_csv(path, dtype=str, encoding="gbk", skip_blank_lines=False)
    except Exception as err:  # pandas/openpyxl raise many kinds for broken files
        raise InvalidInput(
            f"{path.name} cannot be read as a table: {str(err).strip().splitlines()[0]}"
        ) from err
    df.columns = [HEADINGS.get(str(c).strip(), str(c).strip().lower()) for c in df.columns]
    # The index is the row number in the file (header = row 1); blank rows are dropped.
    df.index = pd.RangeIndex(2, len(df) + 2)
    return df.dropna(how="all")


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
        for row, v in df["building"].items():
            if v in ambiguous:
                errors.append(f"row {row}: building {v!r} is in several sources; use building_id")
        key = df["building"]
    else:
        raise InvalidInput(
            "the table needs a 'building' (source id, e.g. w123) or 'building_id' column"
        )
    for row in df.index:
        if pd.isna(out[row]) and not any(e.startswith(f"row {row}:") for e in errors):
            errors.append(f"row {row}: no building {key[row]!r}")
    return out


def _int_column(
    df: pd.DataFrame,
    col: str,
    errors: list[str],
    *,
    default: int | None = None,
    minimum: int = 0,
    maximum: int = MAX_HOUSEHOLDS,
) -> pd.Series:
    if col not in df.columns:
        if default is None:
            raise InvalidInput(f"the table needs a {col!r} column")
        return pd.Series(default, index=df.index)
    values = pd.to_numeric(df[col], errors="coerce")
    for row, raw in df[col].items():
        v = values[row]
        if not (np.isfinite(v) and v == int(v) and minimum <= v <= maximum):
            errors.append(
                f"row {row}: {col} {raw!r} is not a whole number from {minimum} to {maximum:,}"
            )
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
        _check_households_rows(conn, df, building, errors)
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


def _entrance_column(df: pd.DataFrame, errors: list[str]) -> list[str | None]:
    """The register's entrances (单元), trimmed; None where a row names none."""
    if "entrance" not in df.columns:
        return [None] * len(df)
    out: list[str | None] = []
    for row, raw in df["entrance"].items():
        text = "" if pd.isna(raw) else str(raw).strip()
        if len(text) > MAX_ENTRANCE_CHARS:
            errors.append(
                f"row {row}: entrance {text[:MAX_ENTRANCE_CHARS]!r}… is longer than "
                f"{MAX_ENTRANCE_CHARS} characters; give the door's number or short name"
            )
        elif "," in text:
            errors.append(
                f"row {row}: entrance {text!r} has a comma; name one entrance per room"
            )
        out.append(text or None)
    return out


def _check_households_rows(
    conn: Connection, df: pd.DataFrame, building: pd.Series, errors: list[str]
) -> None:
    """A building listed twice, or one whose households come from a house register."""
    key = df["building_id"] if "building_id" in df.columns else df["building"]
    first: dict[int, int] = {}
    for row, b in building.dropna().items():
        if int(b) in first:
            errors.append(f"row {row}: building {key[row]!r} is already on row {first[int(b)]}")
        else:
            first[int(b)] = row
    registered = dict(
        conn.execute(
            sa.text(
                "SELECT building_id, count(*) FROM dwelling WHERE building_id = ANY(:ids) "
                "GROUP BY building_id"
            ),
            {"ids": list(first)},
        ).all()
    )
    for b, n in registered.items():
        errors.append(
            f"row {first[b]}: building {b} has a house register ({n} dwellings), which sets its "
            "households; correct the register instead"
        )


def _import_register(
    conn: Connection, path: Path, df: pd.DataFrame, building: pd.Series, errors: list[str]
) -> dict[str, Counts]:
    """Make the listed buildings' dwellings the register's; rows already so stay untouched."""
    households = _int_column(df, "households", errors, default=1, maximum=MAX_PER_DWELLING)
    rooms = df["room"].fillna("").astype(str).str.strip()
    for row, r in rooms.items():
        if not r:
            errors.append(f"row {row}: room is empty")
    if "floor" in df.columns:
        floor = _int_column(df, "floor", errors, minimum=-5, maximum=MAX_LEVELS)
    else:  # 301 is on floor 3, 1502 on floor 15; a bare "5" on floor 1
        floor = pd.to_numeric(rooms.str[:-2], errors="coerce").fillna(1)
        for row, f in floor.items():
            if not 0 <= f <= MAX_LEVELS:
                errors.append(
                    f"row {row}: room {rooms[row]!r} gives floor {f:.0f}; "
                    "add a 'floor' (楼层) column"
                )
    entrance = _entrance_column(df, errors)
    dup = pd.DataFrame({"b": building, "r": rooms}).duplicated()
    for row in dup[dup].index:
        errors.append(f"row {row}: room {rooms[row]!r} appears twice for this building")
    if errors:
        _fail(path.name, errors)
    conn.execute(
        sa.text(
            "CREATE TEMP TABLE stage_register ON COMMIT DROP AS SELECT * FROM unnest("
            "CAST(:b AS bigint[]), CAST(:f AS int[]), CAST(:r AS text[]), CAST(:h AS int[]), "
            "CAST(:e AS text[])) AS v(building_id, floor, room, households, entrance)"
        ),
        {
            "b": [int(b) for b in building],
            "f": [int(f) for f in floor],
            "r": list(rooms),
            "h": [int(h) for h in households],
            "e": entrance,
        },
    )
    ids = sorted({int(b) for b in building})
    removed = conn.execute(
        sa.text(
            "DELETE FROM dwelling d WHERE d.building_id = ANY(:ids) AND NOT EXISTS (SELECT 1 "
            "FROM stage_register s WHERE s.building_id = d.building_id AND s.room = d.room)"
        ),
        {"ids": ids},
    ).rowcount
    updated = conn.execute(
        sa.text(
            "UPDATE dwelling d SET floor = s.floor, households = s.households, "
            "entrance = s.entrance, is_estimated = false, source_file = :sf "
            "FROM stage_register s WHERE s.building_id = d.building_id AND s.room = d.room AND "
            "(d.floor, d.households, d.entrance, d.is_estimated) "
            "IS DISTINCT FROM (s.floor, s.households, s.entrance, false)"
        ),
        {"sf": path.name},
    ).rowcount
    added = conn.execute(
        sa.text(
            "INSERT INTO dwelling (building_id, floor, room, households, entrance, is_estimated, "
            "source_file) SELECT s.building_id, s.floor, s.room, s.households, s.entrance, "
            "false, :sf "
            "FROM stage_register s WHERE NOT EXISTS (SELECT 1 FROM dwelling d "
            "WHERE d.building_id = s.building_id AND d.room = s.room)"
        ),
        {"sf": path.name},
    ).rowcount
    buildings = conn.execute(
        sa.text(
            "UPDATE building b SET households = t.total, households_source = 'register' "
            "FROM (SELECT building_id, sum(households)::int AS total FROM dwelling "
            "WHERE building_id = ANY(:ids) GROUP BY building_id) t WHERE b.id = t.building_id "
            "AND (b.households, b.households_source) IS DISTINCT FROM (t.total, 'register')"
        ),
        {"ids": ids},
    ).rowcount
    return {
        "dwelling": Counts(
            added=added, updated=updated, unchanged=len(df) - added - updated, removed=removed
        ),
        "building": Counts(updated=buildings, unchanged=len(ids) - buildings),
    }
