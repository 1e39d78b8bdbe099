"""One cell of a ledger sheet: as text, as a column's typed value, and safe from formulas.

``convert`` turns a non-blank cell into the value its column stores, or gives the reason
(gis/ledger/reasons.py: a code, and a text in each language) it cannot; ``neutralise`` /
``unneutralise`` keep a CSV cell that a spreadsheet would run as a formula inert, and give
it back unchanged on reading.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Any

from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.utils.datetime import from_excel

from gis.ledger.idcard import validate_id_number, validate_phone
from gis.ledger.reasons import Reason, reason
from gis.ledger.templates import Column

_SCIENTIFIC = re.compile(r"[+-]?\d+(?:\.\d+)?[eE][+-]?\d+")
_DATE = re.compile(
    r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:[ T]+\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
)
_COMPACT_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_EXCEL_TEXT = re.compile(r'="(.*)"', re.S)  # ="0301", as some systems export text to CSV
_CJK_GAP = re.compile(r"(?<=[\u3400-\u9fff])\s+(?=[\u3400-\u9fff])")


def convert(col: Column, raw: Any) -> tuple[Any, Reason | None]:
    """A non-blank cell as the column's typed value, or a reason it is not acceptable."""
    if col.kind == "date":
        return _parse_date(raw)
    if col.kind == "id_number":
        return _parse_id_number(raw)
    if col.kind == "phone":
        return _parse_phone(raw)
    if col.kind == "code" and isinstance(raw, (date, datetime)):
        return None, reason("excel_date", heading=col.heading)
    text = as_text(raw)
    if col.key in ("name", "contact_name"):
        text = _CJK_GAP.sub("", text)  # 张  三 → 张三 (padding for alignment)
    if col.max_length is not None and len(text) > col.max_length:
        return None, reason("too_long", max=col.max_length)
    if col.kind == "choice":
        key = col.key_of(text)
        if key is None:
            return None, reason("not_allowed", choices="、".join(col.labels))
        return key, None
    return (text or None), None


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def as_text(value: Any) -> str:
    """A cell as trimmed text: whole floats lose their ``.0``; dates become ISO text."""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else str(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat(sep=" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    s = ILLEGAL_CHARACTERS_RE.sub("", str(value)).strip()
    if (m := _EXCEL_TEXT.fullmatch(s)) is not None:
        s = m.group(1).strip()
    return s


def display(value: Any) -> str:
    """A cell as the user saw it, for error messages."""
    if isinstance(value, float) and not (value.is_integer() and abs(value) < 1e15):
        return f"{value:G}"
    return as_text(value)


def _parse_date(value: Any) -> tuple[date | None, Reason | None]:
    unrecognized = reason("date_unrecognized")
    if isinstance(value, datetime):
        return value.date(), None
    if isinstance(value, date):
        return value, None
    if isinstance(value, bool):
        return None, unrecognized
    if isinstance(value, (int, float)):
        if not float(value).is_integer():
            return None, unrecognized
        number = int(value)
        if 10_000_101 <= number <= 99_991_231:
            return _ymd(*_COMPACT_DATE.fullmatch(str(number)).groups())  # type: ignore[union-attr]
        if 0 < number < 2_958_466:  # an Excel serial date shown as a number
            return from_excel(number).date(), None
        return None, unrecognized
    text = as_text(value)
    m = _DATE.fullmatch(text) or _COMPACT_DATE.fullmatch(text)
    if m is None:
        return None, unrecognized
    return _ymd(*m.groups())


def _ymd(year: str, month: str, day: str) -> tuple[date | None, Reason | None]:
    try:
        return date(int(year), int(month), int(day)), None
    except ValueError:
        return None, reason("date_invalid")


def _parse_id_number(value: Any) -> tuple[str | None, Reason | None]:
    numeric = False
    if isinstance(value, float):
        if not (value.is_integer() and abs(value) < 1e15):
            return None, reason("id_scientific")
        text, numeric = str(int(value)), True
    elif isinstance(value, int) and not isinstance(value, bool):
        text, numeric = str(value), True
    else:
        text = as_text(value)
        if _SCIENTIFIC.fullmatch(text):
            return None, reason("id_scientific")
    normalized, why = validate_id_number(text)
    if normalized is None and numeric and len(text) >= 16:
        return None, reason("id_scientific")  # Excel keeps 15 significant digits, then zeros
    return normalized, why


def _parse_phone(value: Any) -> tuple[str | None, Reason | None]:
    text = as_text(value)  # 13812345678.0 (a number cell) loses its ".0" here
    if isinstance(value, str) and re.fullmatch(r"\d+\.0", text):
        text = text[:-2]  # the same, written to CSV by another program
    return validate_phone(text)


# A spreadsheet opening a CSV runs a cell that starts with one of these as a formula.
_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """Text a spreadsheet would run as a formula, behind a ``'`` (as OWASP advises).

    Text that already starts with quotes before a trigger gets one more, so that
    ``unneutralise`` gives back exactly what was written.
    """
    return "'" + text if text.lstrip("'").startswith(_FORMULA_TRIGGERS) else text


def unneutralise(text: str) -> str:
    """A CSV cell without the ``'`` that ``neutralise`` put before a formula trigger."""
    if text.startswith("'") and text.lstrip("'").startswith(_FORMULA_TRIGGERS):
        return text[1:]
    return text
