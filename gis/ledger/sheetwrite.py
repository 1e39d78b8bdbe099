"""Ledgers written as .xlsx or .csv that ``read_table`` reads back unchanged.

``write_table`` exports rows (choices as their Chinese labels, CSV cells neutralised
against formulas, .xlsx cells typed as text); ``write_template`` gives staff an empty
sheet plus a sheet of instructions (填写说明).
"""

from __future__ import annotations

import csv
import io
import unicodedata
from datetime import date, datetime
from typing import Any, Literal

import openpyxl
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from gis.errors import InvalidInput
from gis.ledger.cells import as_text, neutralise
from gis.ledger.templates import Column, Template, get_template

Format = Literal["xlsx", "csv"]
INSTRUCTIONS_SHEET = "填写说明"
_LAST_EXCEL_ROW = 1_048_576

_HEADER_FONT = Font(bold=True)
_REQUIRED_FILL = PatternFill("solid", fgColor="FFF2CC")
_OPTIONAL_FILL = PatternFill("solid", fgColor="EDEDED")


def write_table(ledger: str, rows: list[dict[str, Any]], fmt: Format = "xlsx") -> bytes:
    """Rows (English keys, stored values) as an .xlsx or .csv that ``read_table`` reads back."""
    template = get_template(ledger)
    table = [[_export_value(col, row.get(col.key)) for col in template.columns] for row in rows]
    return _encode(template, table, fmt, instructions=False)


def write_template(ledger: str, fmt: Format = "xlsx") -> bytes:
    """An empty ledger with its headings; the .xlsx also has a 填写说明 sheet."""
    return _encode(get_template(ledger), [], fmt, instructions=True)


def _encode(template: Template, table: list[list[Any]], fmt: str, instructions: bool) -> bytes:
    if fmt == "csv":
        return _csv_bytes(template, table)
    if fmt == "xlsx":
        return _xlsx_bytes(template, table, instructions)
    raise InvalidInput(f"unknown format {fmt!r}; expected xlsx or csv")


def _export_value(col: Column, value: Any) -> Any:
    """What a cell shows: the Chinese label of a choice, a date, or text (None when blank)."""
    if value is None or value == "":
        return None
    if col.kind == "choice":
        return col.label_of(value)
    if col.kind == "date" and isinstance(value, date):
        return value.date() if isinstance(value, datetime) else value
    return ILLEGAL_CHARACTERS_RE.sub("", as_text(value) if not isinstance(value, str) else value)


def _csv_bytes(template: Template, table: list[list[Any]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([col.heading for col in template.columns])
    for values in table:
        writer.writerow(
            [
                "" if v is None else v.isoformat() if isinstance(v, date) else neutralise(v)
                for v in values
            ]
        )
    return buffer.getvalue().encode("utf-8-sig")  # the BOM makes Excel read it as UTF-8




def _xlsx_bytes(template: Template, table: list[list[Any]], instructions: bool) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = template.title
    for c, col in enumerate(template.columns, start=1):
        cell = ws.cell(row=1, column=c, value=col.heading)
        cell.font = _HEADER_FONT
        cell.fill = _REQUIRED_FILL if col.required else _OPTIONAL_FILL
        cell.alignment = Alignment(horizontal="center")
    for r, values in enumerate(table, start=2):
        for c, value in enumerate(values, start=1):
            if value is None:
                continue
            cell = ws.cell(row=r, column=c, value=value)
            if isinstance(value, date):
                cell.number_format = "yyyy-mm-dd"
            else:
                cell.data_type = "s"  # never a formula, even when the text starts with "="
                cell.number_format = "@"
    last = get_column_letter(len(template.columns))
    for c, col in enumerate(template.columns, start=1):
        letter = get_column_letter(c)
        dim = ws.column_dimensions[letter]
        dim.width = _column_width(col, [values[c - 1] for values in table[:500]])
        # Typed into later, the column keeps text as text (no 3.2E+17, no 3-1 → 1 March).
        dim.number_format = "yyyy-mm-dd" if col.kind == "date" else "@"
        if col.choices:
            dv = DataValidation(
                type="list",
                formula1='"' + ",".join(col.labels) + '"',
                allow_blank=True,
                showErrorMessage=True,
                errorTitle="填写有误",
                error=f"只能填写：{'、'.join(col.labels)}",
            )
            dv.add(f"{letter}2:{letter}{_LAST_EXCEL_ROW}")
            ws.add_data_validation(dv)
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:{last}{len(table) + 1}"
    if instructions:
        _add_instructions(wb, template)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _add_instructions(wb: openpyxl.Workbook, template: Template) -> None:
    ws = wb.create_sheet(INSTRUCTIONS_SHEET)
    ws.append(["列名", "是否必填", "可填写的值", "说明"])
    for cell in ws[1]:
        cell.font = _HEADER_FONT
    for col in template.columns:
        ws.append([col.heading, "必填" if col.required else "选填", _allowed(col), col.help])
    ws.append([])
    for note in (
        f"在第一个工作表“{template.title}”中每行填写一条记录；列名行请勿修改或删除。",
        "表头上方可以加一行标题；空行会被跳过；本“填写说明”工作表不会被导入。",
        "身份证号、联系电话等列请保持“文本”格式，避免被 Excel 转成科学计数法或日期。",
    ):
        ws.append([note])
    widths = (14, 10, 40, 60)
    for c, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(c)].width = width
    for row in ws.iter_rows(min_row=2, max_row=len(template.columns) + 1):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")


def _allowed(col: Column) -> str:
    if col.choices:
        return "、".join(col.labels)
    return {
        "date": "日期，如 1950-03-02、1950/3/2、1950年3月2日、19500302",
        "id_number": "18 位身份证号码（文本格式）",
        "phone": "手机号码或固定电话",
    }.get(col.kind, f"文字（最多 {col.max_length} 字）" if col.max_length else "文字")


def _column_width(col: Column, values: list[Any]) -> float:
    widest = max(
        [_display_width(col.heading)]
        + [10 if isinstance(v, date) else _display_width(str(v)) for v in values if v is not None]
    )
    floor = {"id_number": 20, "phone": 14, "date": 12}.get(col.kind, 8)
    return float(min(max(widest + 2, floor), 50))


def _display_width(text: str) -> int:
    """Width in Excel character units: Chinese characters count double."""
    line = max(text.splitlines() or [""], key=len)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)
