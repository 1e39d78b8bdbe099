"""Ledgers (台账) as Excel/CSV tables with Chinese headings: reading them, row by row.

``read_table`` checks every row of an uploaded .xlsx or .csv against its template
(gis/ledger/templates.py) and reports bad cells by row number (as Excel shows it) and
heading. The file is read within caps (gis/ledger/sheetfile.py), cells are converted by
gis/ledger/cells.py; writing is gis/ledger/sheetwrite.py. The names other modules use
are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from gis.ledger.cells import convert, display, is_blank
from gis.ledger.idcard import birth_date_of, gender_of
from gis.ledger.reasons import reason, warning
from gis.ledger.sheetfile import (
    FILE_TOO_LARGE,
    MAX_CELL_CHARS,
    MAX_COLUMNS,
    MAX_FILE_BYTES,
    MAX_GRID_ROWS,
    MAX_UNZIPPED_BYTES,
    MAX_ZIP_MEMBERS,
    Unreadable,
    read_grid,
)
from gis.ledger.sheetwrite import INSTRUCTIONS_SHEET, Format, write_table, write_template
from gis.ledger.templates import TEMPLATES, Column, Kind, Template, get_template, normalize_heading

__all__ = [
    "FILE_TOO_LARGE",
    "INSTRUCTIONS_SHEET",
    "MAX_CELL_CHARS",
    "MAX_COLUMNS",
    "MAX_FILE_BYTES",
    "MAX_GRID_ROWS",
    "MAX_UNZIPPED_BYTES",
    "MAX_ZIP_MEMBERS",
    "TEMPLATES",
    "Column",
    "Format",
    "Kind",
    "Parsed",
    "RowError",
    "Template",
    "get_template",
    "normalize_heading",
    "read_table",
    "write_table",
    "write_template",
]

HEADER_SCAN_ROWS = 20  # the heading row may sit below a title row or a few notes
IGNORED_HEADINGS = frozenset({"序号"})  # row counters staff add; not data, not worth a warning


@dataclass(frozen=True)
class RowError:
    """A bad cell (or a file-level problem when ``row`` is 0), with its reason
    (gis/ledger/reasons.py: a code and a text in each language)."""

    row: int
    column_heading: str
    value: str | None
    reason: str

    def __str__(self) -> str:
        where = f"第 {self.row} 行" if self.row else "文件"
        column = f"「{self.column_heading}」" if self.column_heading else ""
        shown = f"“{self.value}”" if self.value is not None else ""
        return f"{where}{column}{shown}：{self.reason}"


@dataclass
class Parsed:
    """Outcome of reading a table: valid rows (English keys, typed values, ``_row``) and errors."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    total_rows: int = 0  # non-blank data rows, valid or not
    header_row: int | None = None

    @property
    def ok(self) -> bool:
        """Whether nothing was wrong."""
        return not self.errors


def read_table(data: bytes, filename: str, ledger: str) -> Parsed:
    """Check every row of an .xlsx (first sheet) or .csv ledger file against its template.

    Errors with ``row`` 0 concern the whole file (unreadable, missing required column); then
    no row is returned.
    """
    template = get_template(ledger)
    parsed = Parsed()
    try:
        grid = read_grid(data, filename)
    except Unreadable as err:
        parsed.errors.append(RowError(0, "", None, err.args[0] if err.args else str(err)))
        return parsed

    header_index, mapping = _find_header(template, grid, parsed)
    if header_index is None:
        return parsed
    parsed.header_row = header_index + 1

    seen: dict[tuple[Any, ...], int] = {}
    for rownum, values in enumerate(grid[header_index + 1 :], start=header_index + 2):
        cells = {col: values[i] if i < len(values) else None for i, col in mapping.items()}
        if all(is_blank(v) for v in cells.values()):
            continue
        parsed.total_rows += 1
        row, bad, errors = _parse_row(template, cells, rownum)
        if template.unique and all(k not in bad and row[k] is not None for k in template.unique):
            key = tuple(row[k] for k in template.unique)
            first = seen.setdefault(key, rownum)
            if first != rownum:
                errors.append(_duplicate(template, row, rownum, first))
        if errors:
            parsed.errors.extend(errors)
        else:
            parsed.rows.append(row)
    if parsed.total_rows == 0:
        parsed.warnings.append(warning("no_rows"))
    return parsed


def _find_header(
    template: Template, grid: list[tuple[Any, ...]], parsed: Parsed
) -> tuple[int | None, dict[int, Column]]:
    """Index of the heading row and cell index → column; file errors/warnings go to ``parsed``."""
    required = {col.key for col in template.columns if col.required}
    best: tuple[int, set[str]] = (-1, set())
    for index, values in enumerate(grid[:HEADER_SCAN_ROWS]):
        found = {
            col.key
            for v in values
            if (col := template.lookup.get(normalize_heading(v))) is not None
        }
        if required <= found:
            return index, _map_header(template, values, parsed)
        if len(found) > len(best[1]):
            best = (index, found)
    for col in template.columns:
        if col.required and col.key not in best[1]:
            parsed.errors.append(
                RowError(0, col.heading, None, reason("missing_column", heading=col.heading))
            )
    return None, {}


def _map_header(template: Template, values: tuple[Any, ...], parsed: Parsed) -> dict[int, Column]:
    mapping: dict[int, Column] = {}
    used: set[str] = set()
    for index, value in enumerate(values):
        heading = normalize_heading(value)
        if not heading or heading in IGNORED_HEADINGS:
            continue
        col = template.lookup.get(heading)
        shown = str(value).strip()
        if col is None:
            parsed.warnings.append(warning("unknown_column", heading=shown))
        elif col.key in used:
            parsed.warnings.append(warning("duplicate_column", heading=shown, first=col.heading))
        else:
            used.add(col.key)
            mapping[index] = col
    return mapping


def _parse_row(
    template: Template, cells: dict[Column, Any], rownum: int
) -> tuple[dict[str, Any], set[str], list[RowError]]:
    """Typed values by key (plus ``_row``), the keys whose cells are bad, and the errors."""
    row: dict[str, Any] = {}
    bad: set[str] = set()
    errors: list[RowError] = []
    for col in template.columns:
        raw = cells.get(col)
        row[col.key] = None
        if is_blank(raw):
            if col.required:
                bad.add(col.key)
                errors.append(RowError(rownum, col.heading, None, reason("required")))
            continue
        value, why = convert(col, raw)
        if why is None and value is None and col.required:
            why = reason("required")
        if why is not None:
            bad.add(col.key)
            errors.append(RowError(rownum, col.heading, display(raw), why))
        else:
            row[col.key] = value
    errors.extend(_check_against_id(template, row, bad, rownum))
    row["_row"] = rownum
    return row, bad, errors


def _check_against_id(
    template: Template, row: dict[str, Any], bad: set[str], rownum: int
) -> list[RowError]:
    """Fill gender and birth date from the ID number, or report where they disagree."""
    errors: list[RowError] = []
    keys = template.keys
    if "birth_date" in keys and "birth_date" not in bad:
        born = row["birth_date"]
        if born is not None and born > date.today():
            bad.add("birth_date")
            errors.append(
                RowError(
                    rownum,
                    template.column("birth_date").heading,
                    born.isoformat(),
                    reason("birth_future"),
                )
            )
    id_number = row.get("id_number")
    if not id_number or "id_number" in bad:
        return errors
    if "gender" in keys and "gender" not in bad:
        expected = gender_of(id_number)
        if row["gender"] is None:
            row["gender"] = expected
        elif row["gender"] != expected:
            bad.add("gender")
            errors.append(
                RowError(
                    rownum,
                    template.column("gender").heading,
                    row["gender"],
                    reason("gender_mismatch", expected=expected),
                )
            )
    if "birth_date" in keys and "birth_date" not in bad:
        expected_date = birth_date_of(id_number)
        if row["birth_date"] is None:
            row["birth_date"] = expected_date
        elif row["birth_date"] != expected_date:
            bad.add("birth_date")
            errors.append(
                RowError(
                    rownum,
                    template.column("birth_date").heading,
                    row["birth_date"].isoformat(),
                    reason("birth_mismatch", expected=expected_date.isoformat()),
                )
            )
    return errors


def _duplicate(template: Template, row: dict[str, Any], rownum: int, first: int) -> RowError:
    cols = [template.column(k) for k in template.unique]
    headings = "、".join(c.heading for c in cols)
    value = " / ".join(c.label_of(row[c.key]) for c in cols)
    return RowError(
        rownum,
        cols[0].heading,
        value,
        reason("duplicate_row", headings=headings, first=first),
    )
