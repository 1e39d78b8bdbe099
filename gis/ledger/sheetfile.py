"""A spreadsheet file (.xlsx, first sheet, or .csv) as rows of cell values, within caps.

The caps are checked while reading, so an oversized file is refused (``TooLarge``) before
it fills the memory: the file's size, its rows and columns, each cell's characters, and
for an .xlsx the inflated size of every zip member (a zip bomb) and the XML's entities.
"""

from __future__ import annotations

import codecs
import csv
import io
import warnings
import zipfile
from typing import Any
from xml.parsers import expat

import openpyxl

from gis.errors import TooLarge
from gis.ledger.cells import unneutralise
from gis.ledger.reasons import reason


class Unreadable(Exception):
    """The file cannot be read as a table at all."""


MAX_FILE_BYTES = 10 * 1024 * 1024  # 20,000 residents take about 2 MB as .xlsx, 3 MB as .csv
MAX_GRID_ROWS = 20_010  # the import's 20,000 rows, a title and headings
MAX_COLUMNS = 200
MAX_CELL_CHARS = 10_000  # the longest field (备注, 处置措施) holds 2,000; Excel's limit is 32,767
MAX_UNZIPPED_BYTES = 50 * 1024 * 1024  # all parts of an .xlsx, inflated
MAX_ZIP_MEMBERS = 1_000
_CHUNK = 64 * 1024

FILE_TOO_LARGE = (
    f"文件超过 {MAX_FILE_BYTES // 2**20} MB，请拆分成几个文件分别导入 "
    f"(the file is larger than {MAX_FILE_BYTES // 2**20} MB: split it into smaller files)"
)
_TOO_MANY_ROWS = (
    f"表格超过 {MAX_GRID_ROWS} 行，请拆分成每个不超过 20000 行的文件 "
    f"(more than {MAX_GRID_ROWS:,} rows: split the file into files of at most 20,000 rows)"
)
_UNZIPPED_TOO_LARGE = (
    f"Excel 文件解压后超过 {MAX_UNZIPPED_BYTES // 2**20} MB，请删除多余的工作表、图片和格式，"
    "或另存为 CSV 后再导入 "
    f"(the .xlsx unpacks to more than {MAX_UNZIPPED_BYTES // 2**20} MB: remove extra sheets, "
    "pictures and formatting, or save it as CSV)"
)


def _cell_too_long(cell: str = "", row: int = 0) -> TooLarge:
    """The reason for a cell over the cap: at an .xlsx cell reference, in a row, or anywhere."""
    which, which_en, key = ("有单元格", "a cell", "upload.cell_too_long")
    if cell:
        which, which_en, key = (f"单元格 {cell} ", f"cell {cell}", "upload.cell_too_long_at")
    elif row:
        which, which_en, key = (f"第 {row} 行有单元格", f"a cell in row {row}",
                                "upload.cell_too_long_row")  # fmt: skip
    return TooLarge(
        f"{which}超过 {MAX_CELL_CHARS} 个字，请检查并缩短后再导入 "
        f"({which_en} is longer than {MAX_CELL_CHARS:,} characters; no field takes more "
        "than 2,000: check the cell and shorten it)",
        key=key,
        cell=cell,
        row=row,
        max=f"{MAX_CELL_CHARS:,}",
    )


def file_too_large() -> TooLarge:
    """The refusal of a file over ``MAX_FILE_BYTES`` (also raised by the upload route)."""
    return TooLarge(FILE_TOO_LARGE, key="upload.too_large", mb=MAX_FILE_BYTES // 2**20)


def _too_many_rows() -> TooLarge:
    return TooLarge(_TOO_MANY_ROWS, key="upload.too_many_rows", max=f"{MAX_GRID_ROWS:,}",
                    rows="20,000")  # fmt: skip


def _unzipped_too_large() -> TooLarge:
    return TooLarge(_UNZIPPED_TOO_LARGE, key="upload.unzipped_too_large",
                    mb=MAX_UNZIPPED_BYTES // 2**20)  # fmt: skip


def read_grid(data: bytes, filename: str) -> list[tuple[Any, ...]]:
    """All rows of the file (index 0 = row 1), as cell values.

    TooLarge for a file, a row count, a cell or an unpacked .xlsx over the caps: they are
    checked while reading, so an oversized file is refused before it fills the memory.
    """
    if len(data) > MAX_FILE_BYTES:
        raise file_too_large()
    name = filename.lower()
    if data.startswith(b"PK\x03\x04"):
        return _xlsx_grid(data)
    if data.startswith(b"\xd0\xcf\x11\xe0") or name.endswith(".xls"):
        raise Unreadable(reason("file_xls"))
    if name.endswith((".xlsx", ".xlsm")):
        raise Unreadable(reason("file_broken_xlsx"))
    if name.endswith((".csv", ".txt")) or "." not in name:
        return _csv_grid(data)
    raise Unreadable(reason("file_format"))


def _xlsx_grid(data: bytes) -> list[tuple[Any, ...]]:
    try:
        _check_xlsx_parts(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about unsupported extensions
            wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            ws = wb.worksheets[0]
            ws.reset_dimensions()  # the stored dimension is often wrong; read every row
            rows = []
            for r in ws.iter_rows(values_only=True):
                if len(rows) == MAX_GRID_ROWS:  # a small zip can hold millions of rows
                    raise _too_many_rows()
                rows.append(tuple(r[:MAX_COLUMNS]))
            return rows
        finally:
            wb.close()
    except TooLarge:
        raise
    except IndexError as err:
        raise Unreadable(reason("file_no_sheet")) from err
    except Exception as err:  # zip, XML and openpyxl errors of many kinds for a broken file
        raise Unreadable(reason("file_unreadable_xlsx", error=str(err).strip()[:200])) from err


def _check_xlsx_parts(data: bytes) -> None:
    """TooLarge if the .xlsx unpacks to too much or holds a too long cell; nothing kept.

    openpyxl holds sharedStrings.xml and each cell's text whole: a few hundred KB of deflated
    XML can hold a 600 MB cell. So every part is inflated here first, a chunk at a time,
    counting the bytes (declared sizes can lie) and the characters of each text.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return  # openpyxl gives the reason
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise _unzipped_too_large()
        if sum(m.file_size for m in members) > MAX_UNZIPPED_BYTES:
            raise _unzipped_too_large()
        inflated = 0
        for member in members:
            scanner = _TextScanner() if member.filename.endswith((".xml", ".rels")) else None
            with archive.open(member) as part:
                while chunk := part.read(_CHUNK):
                    inflated += len(chunk)
                    if inflated > MAX_UNZIPPED_BYTES:
                        raise _unzipped_too_large()
                    if scanner is not None and not scanner.feed(chunk):
                        scanner = None  # not well-formed: openpyxl says so if it reads the part


class _TextScanner:
    """Streams one XML part; raises TooLarge at a cell text over ``MAX_CELL_CHARS``.

    A string item (``si`` in sharedStrings.xml, ``is`` for an inline string) counts as one
    text however many rich-text runs it has: openpyxl joins them into one value.
    """

    def __init__(self) -> None:
        self._parser = expat.ParserCreate()
        self._parser.buffer_text = True
        self._parser.StartElementHandler = self._start
        self._parser.EndElementHandler = self._end
        self._parser.CharacterDataHandler = self._text
        self._parser.EntityDeclHandler = self._entity
        self._in_string = 0
        self._length = 0
        self._cell = ""

    def feed(self, chunk: bytes) -> bool:
        """Scan the next bytes of the part; False once the XML is not well-formed."""
        try:
            self._parser.Parse(chunk, False)
        except expat.ExpatError:
            return False
        return True

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        local = name.rpartition(":")[2]
        if local == "c":
            self._cell = attrs.get("r", "")
        if local in ("si", "is"):
            self._in_string += 1
            if self._in_string == 1:
                self._length = 0
        elif not self._in_string:
            self._length = 0

    def _end(self, name: str) -> None:
        if name.rpartition(":")[2] in ("si", "is"):
            self._in_string -= 1
        if not self._in_string:
            self._length = 0

    def _text(self, text: str) -> None:
        self._length += len(text)
        if self._length > MAX_CELL_CHARS:
            raise _cell_too_long(cell=self._cell)  # none in sharedStrings.xml

    def _entity(self, *_args: Any) -> None:
        # No spreadsheet declares entities; expanding them could build a long text.
        raise ValueError("the file declares XML entities")


def _csv_grid(data: bytes) -> list[tuple[Any, ...]]:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = data.decode("utf-16")
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            try:
                text = data.decode("gb18030")
            except UnicodeDecodeError as err:
                raise Unreadable(reason("file_encoding")) from err
    newline = text.find("\n")
    first_line = text if newline < 0 else text[:newline]
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[tuple[Any, ...]] = []
    try:
        for values in reader:  # streamed: a 10 MB file may hold a million short lines
            if len(rows) == MAX_GRID_ROWS:
                raise _too_many_rows()
            if any(len(v) > MAX_CELL_CHARS for v in values):
                raise _cell_too_long(row=len(rows) + 1)
            rows.append(tuple(unneutralise(v) for v in values[:MAX_COLUMNS]))
    except csv.Error as err:
        if "field larger than field limit" in str(err):  # csv's own cap, 131,072 characters
            raise _cell_too_long(row=len(rows) + 1) from err
        raise Unreadable(reason("file_unreadable_csv", error=str(err)[:200])) from err
    return rows
