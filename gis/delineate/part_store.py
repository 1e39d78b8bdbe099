"""Building parts in PostGIS: which dwellings each part holds, and a re-division in place.

A part's dwellings are a run of the building's dwellings (``dwelling_all``: the register's,
else the estimated ones) in floor order (``DWELLING_ORDER``), so every part is a contiguous
range of floors; two parts meet on at most one floor. Where the building's dwellings are
behind two or more known entrances (单元门: a register's ``entrance`` column, or numbered
OSM doors shared out by ``dwelling_estimate``), a part may instead be whole entrances, or
a range of floors behind one entrance (``parts.fit_parts`` picks the closer fit), and
``entrance`` names them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.delineate.model import Inputs, Result
from gis.delineate.parts import ENTRANCE_CUT_COST, fit_parts, fit_to_dwellings
from gis.errors import Conflict

# floor, then room numbers as numbers when they are (101 < 1001), then as text
DWELLING_ORDER = "floor, length(room), room"
# entrances as numbers when they are ("2" < "10"), then as text; NULL (none named) first
ENTRANCE_KEY = "coalesce(length(entrance), 0), entrance"


@dataclass
class PartRow:
    """One part as stored: its floors, its dwellings (rooms) and their households."""

    floor_min: int
    floor_max: int
    rooms: list[str]
    households: int
    entrance: str | None = None  # the entrances it holds ("1", "2,3"), when by entrance


def _only(ids: np.ndarray, only_these: bool) -> tuple[str, dict]:
    """The filter on ``ids`` when they are some of the city's buildings (one community's).

    Without it the queries read every dwelling of the city: right for a whole run (one
    scan), most of a community run's time when it holds a few hundred buildings.
    """
    if not only_these:
        return "TRUE", {}
    return "building_id = ANY(:ids)", {"ids": ids.tolist()}


def load_registers(
    conn: Connection, ids: np.ndarray, only_these: bool = False
) -> dict[int, np.ndarray]:
    """Per building index with a house register, households per dwelling in floor order
    (``only_these``: read the buildings ``ids`` only, see ``_only``)."""
    index = {int(b): i for i, b in enumerate(ids.tolist())}
    where, args = _only(ids, only_these)
    rows = conn.execute(
        sa.text(
            "SELECT building_id, array_agg(households ORDER BY "
            f"{DWELLING_ORDER}) FROM dwelling WHERE {where} GROUP BY building_id"
        ),
        args,
    ).all()
    return {index[b]: np.array(h, dtype=float) for b, h in rows if b in index}


def _label(dwelling: tuple) -> str | None:
    return dwelling[3] if len(dwelling) > 3 else None


def _entrance_key(label: str | None) -> tuple:
    return (0, "") if label is None else (len(label), label)


def door_order(dwellings: Sequence[tuple]) -> list[int] | None:
    """Dwellings (floor order) re-ordered by entrance then floor; None under one entrance."""
    labels = [_label(d) for d in dwellings]
    if len(set(labels)) < 2:
        return None
    return sorted(range(len(dwellings)), key=lambda i: (_entrance_key(labels[i]), i))


def load_doors(
    conn: Connection, ids: np.ndarray, only_these: bool = False
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per building index whose dwellings are behind two or more entrances, the households
    of its dwellings by entrance then floor, and their entrance numbers (0, 1, …)
    (``only_these``: as in ``load_registers``)."""
    index = {int(b): i for i, b in enumerate(ids.tolist())}
    where, args = _only(ids, only_these)
    rows = conn.execute(
        sa.text(
            f"SELECT building_id, array_agg(households ORDER BY {ENTRANCE_KEY}, "
            f"{DWELLING_ORDER}), array_agg(dense_rank ORDER BY {ENTRANCE_KEY}, "
            f"{DWELLING_ORDER}) FROM (SELECT *, dense_rank() OVER (PARTITION BY building_id "
            f"ORDER BY {ENTRANCE_KEY}) FROM dwelling_all WHERE {where} AND building_id IN (SELECT "
            "building_id FROM dwelling WHERE entrance IS NOT NULL UNION SELECT building_id "
            "FROM building_entrance WHERE door_no IS NOT NULL)) d GROUP BY building_id "
            "HAVING count(DISTINCT coalesce(entrance, '')) >= 2"
        ),
        args,
    ).all()
    return {
        index[b]: (np.array(h, dtype=float), np.array(e, dtype=np.int64) - 1)
        for b, h, e in rows
        if b in index
    }


def cut_dwellings(
    dwellings: Sequence[tuple], sizes: Sequence[float], cut_cost: float = 0.0
) -> list[PartRow]:
    """Cut (floor, room, households[, entrance]) rows in floor order into parts of ``sizes``.

    A dwelling goes to the part in which its first household falls; sizes that do not end
    on a dwelling (a register changed since) are first moved to dwelling ends. Behind two
    or more entrances the parts are whole entrances or floors of one entrance when that
    fits as closely (``parts.fit_parts``; ``cut_cost`` 0 keeps sizes that fit exactly).
    """
    hh = np.array([d[2] for d in dwellings], dtype=float)
    if len(hh) < len(sizes):
        raise Conflict(
            f"a building of {len(hh)} dwellings cannot hold {len(sizes)} parts; run delineate"
        )
    order = door_order(dwellings)
    by_door = False
    if order is not None:
        labels = [_entrance_key(_label(dwellings[i])) for i in order]
        door = np.cumsum([0] + [int(a != b) for a, b in zip(labels, labels[1:], strict=False)])
        sizes, by_door = fit_parts(np.asarray(sizes, dtype=float), hh, hh[order], door, cut_cost)
    else:
        sizes = fit_to_dwellings(np.asarray(sizes, dtype=float), hh)
    if not by_door:
        order = list(range(len(dwellings)))
    seq = hh[order]
    starts = np.concatenate([[0.0], np.cumsum(seq)[:-1]])
    of = np.searchsorted(np.cumsum(sizes), starts, side="right")
    out = []
    for k in range(len(sizes)):
        mine = [order[i] for i in np.flatnonzero(of == k).tolist()]
        floors = [int(dwellings[i][0]) for i in mine]
        entrances = sorted({_label(dwellings[i]) or "" for i in mine}, key=_entrance_key)
        out.append(
            PartRow(
                min(floors),
                max(floors),
                [str(dwellings[i][1]) for i in mine],
                int(hh[mine].sum()),
                ",".join(entrances) if by_door else None,
            )
        )
    return out


def _dwellings_of(conn: Connection, building_ids: list[int]) -> dict[int, list[tuple]]:
    rows = conn.execute(
        sa.text(
            "SELECT building_id, floor, room, households, entrance FROM dwelling_all "
            f"WHERE building_id = ANY(:ids) ORDER BY building_id, {DWELLING_ORDER}"
        ),
        {"ids": building_ids},
    ).all()
    out: dict[int, list[tuple]] = {b: [] for b in building_ids}
    for b, floor, room, h, entrance in rows:
        out[b].append((floor, room, h, entrance))
    return out


def write_parts(conn: Connection, inputs: Inputs, r: Result, u_ids: list[int | None]) -> int:
    """Store the parts of every divided building the run wrote; return how many parts.

    Parts whose unit went with the areas the run replaced are removed first; parts of
    locked groups' buildings keep theirs.
    """
    conn.execute(sa.text("DELETE FROM building_part WHERE unit_id IS NULL"))
    written = {
        int(inputs.building_ids[b]): parts
        for b, parts in r.parts.items()
        if all(u_ids[u] is not None for u, _ in parts)
    }
    if not written:
        return 0
    conn.execute(
        sa.text("DELETE FROM building_part WHERE building_id = ANY(:ids)"), {"ids": list(written)}
    )
    dwellings = _dwellings_of(conn, list(written))
    rows = []
    for b, parts in written.items():
        cut = cut_dwellings(dwellings[b], [h for _, h in parts])
        for no, ((u, h), row) in enumerate(zip(parts, cut, strict=True), start=1):
            if row.households != round(h):
                raise Conflict(f"building {b} changed while it was divided; run delineate again")
            rows.append(_row(b, no, u_ids[u], row))
    conn.execute(_INSERT, rows)
    return len(rows)


_INSERT = sa.text(
    "INSERT INTO building_part (building_id, part_no, unit_id, households, floor_min, "
    "floor_max, rooms, entrance) VALUES (:b, :no, :u, :h, :fmin, :fmax, :rooms, :entrance)"
)


def _row(building_id: int, no: int, unit_id: int | None, row: PartRow) -> dict:
    return {
        "b": building_id,
        "no": no,
        "u": unit_id,
        "h": row.households,
        "fmin": row.floor_min,
        "fmax": row.floor_max,
        "rooms": row.rooms,
        "entrance": row.entrance,
    }


# Locked groups, and every group that holds a part of a building one of them holds a part
# of (and so on): a divided building is kept or redrawn with all its groups.
HELD_GROUPS = sa.text(
    """
    WITH RECURSIVE part_group AS (
        SELECT p.building_id, c.residents_group_id AS group_id
          FROM building_part p JOIN unit u ON u.id = p.unit_id
          JOIN building_cluster c ON c.id = u.building_cluster_id
    ), held(id) AS (
        SELECT id FROM residents_group WHERE is_locked
        UNION
        SELECT o.group_id FROM held h
          JOIN part_group m ON m.group_id = h.id
          JOIN part_group o ON o.building_id = m.building_id
    )
    SELECT g.id, g.code, ST_AsBinary(g.geom), g.households FROM residents_group g
     WHERE g.id IN (SELECT id FROM held) ORDER BY g.id
    """
)


def redivide(conn: Connection, building_ids: list[int]) -> dict[int, list[PartRow]]:
    """Cut divided buildings' dwellings again among the parts they have (a register changed).

    Each part keeps its unit and its share of the households (scaled to the new total); the
    households of the units, clusters, groups, grids and communities above change by the
    difference. No other area changes. Returns the new parts per building.
    """
    rows = conn.execute(
        sa.text(
            "SELECT p.building_id, p.id, p.unit_id, p.households, b.households FROM "
            "building_part p JOIN building b ON b.id = p.building_id WHERE p.building_id = "
            "ANY(:ids) AND p.unit_id IS NOT NULL ORDER BY p.building_id, p.part_no"
        ),
        {"ids": building_ids},
    ).all()
    by_building: dict[int, list] = {}
    for row in rows:
        by_building.setdefault(row[0], []).append(row)
    dwellings = _dwellings_of(conn, list(by_building))
    out = {}
    for b, parts in by_building.items():
        total = int(parts[0][4])
        old = np.array([p[3] for p in parts], dtype=float)
        cut = cut_dwellings(dwellings[b], _scaled(old, total), ENTRANCE_CUT_COST)
        for p, row in zip(parts, cut, strict=True):
            conn.execute(
                sa.text(
                    "UPDATE building_part SET households = :h, floor_min = :fmin, "
                    "floor_max = :fmax, rooms = :rooms, entrance = :entrance WHERE id = :id"
                ),
                {**_row(b, 0, None, row), "id": p[1]},
            )
            _add_to_levels(conn, int(p[2]), row.households - int(p[3]))
        out[b] = cut
    return out


def _scaled(old: np.ndarray, total: int) -> list[float]:
    """``old`` sizes scaled to add up to ``total`` (largest remainders), each at least 1."""
    exact = old * total / max(old.sum(), 1.0)
    sizes = np.maximum(np.floor(exact), 1.0)
    for i in np.argsort(-(exact - np.floor(exact))).tolist():
        if sizes.sum() >= total:
            break
        sizes[i] += 1
    while sizes.sum() > total and sizes.max() > 1:
        sizes[int(np.argmax(sizes))] -= 1
    return sizes.tolist()


def _add_to_levels(conn: Connection, unit_id: int, delta: int) -> None:
    """Add ``delta`` households to a unit and every area above it."""
    if delta == 0:
        return
    conn.execute(
        sa.text(
            """
            WITH u AS (UPDATE unit SET households = households + :d WHERE id = :u
                       RETURNING building_cluster_id),
                 c AS (UPDATE building_cluster SET households = households + :d
                        WHERE id = (SELECT building_cluster_id FROM u)
                       RETURNING residents_group_id),
                 g AS (UPDATE residents_group SET households = households + :d
                        WHERE id = (SELECT residents_group_id FROM c)
                       RETURNING grid_id, community_id),
                 gr AS (UPDATE grid SET households = households + :d
                         WHERE id = (SELECT grid_id FROM g) RETURNING id)
            UPDATE community SET households = households + :d
             WHERE id = (SELECT community_id FROM g)
            """
        ),
        {"d": delta, "u": unit_id},
    )


# Divided buildings whose parts no longer hold exactly their dwellings (a house register
# came in since): the rooms differ, or the households do.
STALE = sa.text(
    """
    WITH pr AS (SELECT p.building_id, r.room, p.households FROM building_part p
                 CROSS JOIN LATERAL unnest(p.rooms) AS r(room) WHERE p.unit_id IS NOT NULL),
         dw AS (SELECT building_id, room FROM dwelling_all
                 WHERE building_id IN (SELECT building_id FROM pr))
    SELECT coalesce(pr.building_id, dw.building_id) FROM pr
      FULL JOIN dw ON dw.building_id = pr.building_id AND dw.room = pr.room
     WHERE pr.room IS NULL OR dw.room IS NULL
    UNION
    SELECT p.building_id FROM building_part p JOIN building b ON b.id = p.building_id
     WHERE p.unit_id IS NOT NULL GROUP BY p.building_id, b.households
    HAVING sum(p.households) <> b.households
    """
)


def redivide_stale(conn: Connection) -> list[int]:
    """Re-divide every divided building a register changed (``redivide``); their ids."""
    ids = sorted(int(b) for b in conn.execute(STALE).scalars())
    if ids:
        redivide(conn, ids)
    return ids


def parts_of(conn: Connection, building_id: int) -> list[dict]:
    """A building's parts up from the ground: floors (and entrances, when divided by
    entrance), households and the areas holding each.

    An undivided building gives one entry for the whole of it (part 0).
    """
    rows = (
        conn.execute(
            sa.text(
                """
                SELECT coalesce(p.part_no, 0) AS part_no,
                       coalesce(p.floor_min, (SELECT min(floor) FROM dwelling_all d
                                               WHERE d.building_id = b.id)) AS floor_min,
                       coalesce(p.floor_max, (SELECT max(floor) FROM dwelling_all d
                                               WHERE d.building_id = b.id)) AS floor_max,
                       p.entrance,
                       coalesce(p.households, b.households) AS households,
                       coalesce(cardinality(p.rooms), (SELECT count(*) FROM dwelling_all d
                                                        WHERE d.building_id = b.id))
                           AS dwellings,
                       u.id AS unit_id, u.code AS unit, c.code AS cluster,
                       g.id AS group_id, g.code AS "group"
                  FROM building b LEFT JOIN building_part p ON p.building_id = b.id
                  JOIN unit u ON u.id = coalesce(p.unit_id, b.unit_id)
                  JOIN building_cluster c ON c.id = u.building_cluster_id
                  JOIN residents_group g ON g.id = c.residents_group_id
                 WHERE b.id = :b ORDER BY 1
                """
            ),
            {"b": building_id},
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows]
