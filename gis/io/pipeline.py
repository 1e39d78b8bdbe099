"""``import_file``: recognise a file, read it, write it in one transaction, report what changed."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gis.errors import DatabaseUnavailable, InvalidInput
from gis.io.dataset import LAYERS, Dataset, Problem
from gis.io.load import Counts, load_dataset
from gis.settings import Settings, get_settings

TABLE_LAYERS = ("households", "dwellings")
VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg", ".shp", ".zip")
PROBLEMS_SHOWN = 20


@dataclass
class ImportReport:
    """What an import did: per table counts, repairs, skipped features, time."""

    path: Path
    source_file: str
    format: str
    counts: dict[str, Counts] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    read_s: float = 0.0
    write_s: float = 0.0

    def as_dict(self) -> dict:
        return {
            "path": str(self.path),
            "source_file": self.source_file,
            "format": self.format,
            "counts": {k: v.as_dict() for k, v in self.counts.items()},
            "repaired": self.repaired,
            "problems": [p.__dict__ for p in self.problems],
            "notes": self.notes,
            "seconds": round(self.seconds, 3),
            "read_s": round(self.read_s, 3),
            "write_s": round(self.write_s, 3),
        }

    def render(self) -> str:
        """Return the report as text for a terminal."""
        lines = [
            f"imported {self.path.name} ({self.format}) as source '{self.source_file}' "
            f"in {self.seconds:.2f} s (read {self.read_s:.2f} s, write {self.write_s:.2f} s)",
            f"  {'table':<12}{'added':>9}{'updated':>9}{'unchanged':>11}{'removed':>9}",
        ]
        for table, c in self.counts.items():
            lines.append(f"  {table:<12}{c.added:>9}{c.updated:>9}{c.unchanged:>11}{c.removed:>9}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        for layer, n in self.repaired.items():
            lines.append(f"  repaired {n} invalid {layer} polygon(s) with make_valid")
        if self.problems:
            lines.append(f"  {len(self.problems)} feature(s) skipped or values ignored:")
            for p in self.problems[:PROBLEMS_SHOWN]:
                lines.append(f"    {p.layer} {p.source_id}: {p.reason}")
            if len(self.problems) > PROBLEMS_SHOWN:
                lines.append(
                    f"    … and {len(self.problems) - PROBLEMS_SHOWN} more "
                    "(all are in the import_run table's report)"
                )
        return "\n".join(lines)


def detect_format(path: Path) -> str:
    """Return 'osm', 'vector' or 'table' for ``path``, or refuse it with the reason."""
    if not path.exists():
        raise InvalidInput(f"{path}: no such file")
    if path.is_dir():
        raise InvalidInput(f"{path} is a folder; give a file")
    if path.stat().st_size == 0:
        raise InvalidInput(f"{path.name} is empty")
    name = path.name.lower()
    if name.endswith((".osm", ".pbf", ".osm.bz2", ".osm.gz", ".o5m")):
        return "osm"
    if name.endswith(VECTOR_SUFFIXES):
        return "vector"
    if name.endswith((".csv", ".xlsx")):
        return "table"
    raise InvalidInput(
        f"{path.name}: unknown format; give .osm/.pbf, .geojson/.json, .gpkg, "
        ".shp, or a .csv/.xlsx of households or dwellings"
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _requested_layers(fmt: str, layers: Sequence[str] | None) -> set[str]:
    allowed = TABLE_LAYERS if fmt == "table" else LAYERS
    if not layers:
        return set(allowed)
    bad = [lyr for lyr in layers if lyr not in allowed]
    if bad:
        raise InvalidInput(
            f"unknown layer {bad[0]!r} for a {fmt} file; choose from {', '.join(allowed)}"
        )
    return set(layers)


def import_file(
    engine: Engine,
    path: Path,
    *,
    layers: Sequence[str] | None = None,
    crs: str | None = None,
    source: str | None = None,
    on_step: Callable[[str, float], None] | None = None,
    settings: Settings | None = None,
    remove_registered: bool = False,
) -> ImportReport:
    """Import ``path`` in one transaction and return what changed.

    Raises InvalidInput (and writes nothing) for an unreadable, empty or wrong-format
    file, an unknown layer or a missing CRS.
    """
    settings = settings or get_settings()
    step = on_step or (lambda _n, _f: None)
    t0 = time.perf_counter()
    path = Path(path)
    fmt = detect_format(path)
    wanted = _requested_layers(fmt, layers)
    source_file = source or path.name
    report = ImportReport(path=path, source_file=source_file, format=fmt)
    # Readers are imported when needed: geopandas alone adds a second to a command's start.
    if fmt == "table":
        from gis.io import tables

        with _database_lost(), engine.begin() as conn:
            _lock_source(conn, source_file)
            report.counts = tables.import_table(conn, path, wanted)
            # a register replaces a divided building's dwellings: only its groups change
            from gis.delineate.part_store import redivide_stale

            redivide_stale(conn)
            _log_run(conn, report, path, fmt)
        report.seconds = time.perf_counter() - t0
        return report
    if fmt == "osm":
        if crs:
            raise InvalidInput("--crs does not apply to OSM files (always WGS 84)")
        from gis.io.osm import read_osm

        ds = read_osm(path, settings, wanted, step)
    else:
        from gis.io.vector import read_vector

        ds = read_vector(path, settings, wanted, crs, step)
    if not any(_has_rows(ds, lyr) for lyr in ds.layers()):
        raise InvalidInput(
            f"{path.name}: nothing to import (no buildings, streets, "
            "facilities or boundaries found)"
        )
    report.read_s = time.perf_counter() - t0
    step("writing to PostGIS", 0.6)
    with _database_lost(), engine.begin() as conn:
        _lock_source(conn, source_file)
        report.counts = load_dataset(
            conn, ds, source_file, wanted, remove_registered=remove_registered
        )
        from gis.search import refresh_address_keys

        refresh_address_keys(conn)
        report.repaired = dict(ds.repaired)
        report.problems = ds.problems
        report.notes = ds.notes
        step("recording the import", 0.95)
        report.write_s = time.perf_counter() - t0 - report.read_s
        _log_run(conn, report, path, fmt)
    report.seconds = time.perf_counter() - t0
    return report


@contextmanager
def _database_lost() -> Iterator[None]:
    """The server went away mid-import: one line that says what to do, not a traceback."""
    try:
        yield
    # the binary COPY (gis/pgcopy.py) talks to psycopg directly: its errors come unwrapped
    except (sa.exc.OperationalError, sa.exc.InterfaceError, psycopg.OperationalError,
            psycopg.InterfaceError) as err:  # fmt: skip
        reason = (str(getattr(err, "orig", None) or err).strip().splitlines() or ["?"])[0]
        raise DatabaseUnavailable(
            f"the database went away during the import ({reason}); an import is one "
            "transaction, so it is stored whole or not at all: run it again once the "
            "database is back (`gridatlas db up`), a re-import adds only what is missing"
        ) from err


def _has_rows(ds: Dataset, layer: str) -> bool:
    frame = {"buildings": ds.buildings, "streets": ds.walk_edges, "facilities": ds.facilities}.get(
        layer, ds.areas.get(layer)
    )
    return frame is not None and len(frame) > 0


def _lock_source(conn: sa.Connection, source_file: str) -> None:
    # Two imports of the same source would race on the upsert; the second waits.
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": source_file})


def _log_run(conn: sa.Connection, report: ImportReport, path: Path, fmt: str) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO import_run (source_file, path, sha256, format, finished_at, report) "
            "VALUES (:sf, :p, :h, :f, clock_timestamp(), CAST(:r AS jsonb))"
        ),
        {
            "sf": report.source_file,
            "p": str(path.resolve()),
            "h": _sha256(path),
            "f": fmt,
            "r": json.dumps(report.as_dict(), ensure_ascii=False),
        },
    )
