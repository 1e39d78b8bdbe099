"""Ledgers (台账) as Excel/CSV tables with Chinese headings: templates, reading and writing.

Each ledger is declared once in ``TEMPLATES``. ``read_table`` checks every row of an uploaded
.xlsx or .csv against its template and reports bad cells by row number (as Excel shows it) and
heading; ``write_table`` exports rows so that they read back unchanged; ``write_template`` gives
staff an empty sheet plus a sheet of instructions (填写说明).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
import warnings
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import cached_property
from typing import Any, Literal
from xml.parsers import expat

import openpyxl
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import from_excel
from openpyxl.worksheet.datavalidation import DataValidation

from gis.errors import InvalidInput, TooLarge
from gis.ledger.idcard import birth_date_of, gender_of, validate_id_number, validate_phone

Kind = Literal["text", "code", "date", "id_number", "phone", "choice"]
Format = Literal["xlsx", "csv"]

HEADER_SCAN_ROWS = 20  # the heading row may sit below a title row or a few notes
IGNORED_HEADINGS = frozenset({"序号"})  # row counters staff add; not data, not worth a warning
INSTRUCTIONS_SHEET = "填写说明"
_LAST_EXCEL_ROW = 1_048_576


@dataclass(frozen=True)
class Column:
    """One column of a ledger: English key, Chinese heading and how its cells are checked.

    ``kind``: ``text``; ``code`` (text that Excel must not turn into a date, e.g. 室号 3-1);
    ``date``; ``id_number``; ``phone``; ``choice`` (``choices`` maps Chinese label → stored key).
    """

    key: str
    heading: str
    required: bool = False
    kind: Kind = "text"
    choices: tuple[tuple[str, str], ...] = ()
    help: str = ""
    aliases: tuple[str, ...] = ()  # other headings accepted on reading
    max_length: int | None = None  # characters, as the database allows

    @property
    def labels(self) -> tuple[str, ...]:
        """The Chinese labels of the allowed values, in order."""
        return tuple(label for label, _ in self.choices)

    def label_of(self, value: Any) -> str:
        """Chinese label of a stored key (anything else is returned as text)."""
        for label, key in self.choices:
            if value == key:
                return label
        return str(value)

    def key_of(self, text: str) -> str | None:
        """Stored key for a label (spaces ignored) or for the key itself; None if not allowed."""
        compact = re.sub(r"\s+", "", text)
        for label, key in self.choices:
            if compact == label:
                return key
        lowered = text.strip().lower()
        for _, key in self.choices:
            if lowered == key.lower():
                return key
        return None


@dataclass(frozen=True)
class Template:
    """A ledger: its name, Chinese title, ordered columns and the keys that must be unique."""

    name: str
    title: str
    columns: tuple[Column, ...]
    unique: tuple[str, ...] = ()  # a second row with the same values is an error

    @property
    def keys(self) -> tuple[str, ...]:
        """English keys of the columns, in order."""
        return tuple(col.key for col in self.columns)

    def column(self, key: str) -> Column:
        """The column with this English key."""
        for col in self.columns:
            if col.key == key:
                return col
        raise KeyError(key)

    @cached_property
    def lookup(self) -> dict[str, Column]:
        """Normalized heading (or alias, or English key) → column."""
        out: dict[str, Column] = {}
        for col in self.columns:
            for name in (col.heading, *col.aliases):
                out[normalize_heading(name)] = col
            out[col.key.lower()] = col
        return out


@dataclass(frozen=True)
class RowError:
    """A bad cell (or a file-level problem when ``row`` is 0), with a Chinese + English reason."""

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


# --------------------------------------------------------------------------- templates


def _choices(*pairs: str) -> tuple[tuple[str, str], ...]:
    """``"户主"`` (label stored as is) or ``"独居老人=elderly_alone"`` → (label, key) pairs."""
    out = []
    for pair in pairs:
        label, _, key = pair.partition("=")
        out.append((label, key or label))
    return tuple(out)


_NAME = Column("name", "姓名", True, "text", help="本人姓名", aliases=("名字",), max_length=100)
_ID = Column(
    "id_number",
    "身份证号",
    True,
    "id_number",
    help="18 位居民身份证号码，末位可为 X；本列须为“文本”格式，否则 Excel 会把它变成科学计数法",
    aliases=("身份证号码", "公民身份号码", "身份证", "证件号码"),
)
_PHONE = Column(
    "phone",
    "联系电话",
    False,
    "phone",
    help="手机或固定电话号码",
    aliases=("电话", "手机", "手机号", "手机号码", "联系方式"),
)
_NOTES = Column("notes", "备注", False, "text", help="其他需要说明的情况", max_length=2000)

TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template(
            "residents",
            "居民台账",
            (
                _NAME,
                Column(
                    "gender",
                    "性别",
                    False,
                    "choice",
                    _choices("男", "女"),
                    help="可不填，按身份证号自动识别；填写时须与身份证号一致",
                ),
                Column(
                    "birth_date",
                    "出生日期",
                    False,
                    "date",
                    help="可不填，按身份证号自动识别；填写时须与身份证号一致，如 1950-03-02",
                    aliases=("出生年月日", "生日"),
                ),
                _ID,
                _PHONE,
                Column(
                    "building",
                    "楼栋",
                    True,
                    "code",
                    help="楼栋编号或地址，如 12幢、XX路 8 号",
                    aliases=("楼栋号", "楼号", "楼幢"),
                    max_length=200,
                ),
                Column(
                    "room",
                    "室号",
                    True,
                    "code",
                    help="如 301、2-301",
                    aliases=("房号", "房间号"),
                    max_length=40,
                ),
                Column(
                    "relation",
                    "与户主关系",
                    False,
                    "choice",
                    _choices(
                        "户主=head",
                        "配偶=spouse",
                        "子女=child",
                        "父母=parent",
                        "孙子女=grandchild",
                        "兄弟姐妹=sibling",
                        "其他=other",
                    ),
                    help="本人与户主的关系",
                ),
                Column(
                    "status",
                    "居住状态",
                    False,
                    "choice",
                    _choices(
                        "户籍在册=registered",
                        "常住=living_here",
                        "户籍在册且常住=both",
                        "流动人口=migrant",
                    ),
                    help="户籍在本社区但不常住填“户籍在册”；常住而户籍不在本社区填“常住”；"
                    "两者都是填“户籍在册且常住”；外来暂住填“流动人口”",
                ),
                _NOTES,
            ),
            unique=("id_number",),
        ),
        Template(
            "organisations",
            "辖区单位台账",
            (
                Column(
                    "name",
                    "名称",
                    True,
                    "text",
                    help="单位、组织或商户名称",
                    aliases=("单位名称", "组织名称"),
                    max_length=200,
                ),
                Column(
                    "kind",
                    "类型",
                    True,
                    "choice",
                    _choices(
                        "企业=enterprise",
                        "社会组织=social_org",
                        "机关事业单位=public_institution",
                        "商户=shop",
                        "学校=school",
                        "医疗机构=medical",
                        "其他=other",
                    ),
                    help="单位类型",
                    aliases=("单位类型",),
                ),
                Column(
                    "contact_name",
                    "联系人",
                    False,
                    "text",
                    help="联系人姓名",
                    aliases=("负责人",),
                    max_length=100,
                ),
                _PHONE,
                Column(
                    "address",
                    "地址",
                    False,
                    "text",
                    help="所在地址",
                    aliases=("单位地址",),
                    max_length=300,
                ),
                _NOTES,
            ),
            unique=("name", "address"),
        ),
        Template(
            "special_groups",
            "特殊人群台账",
            (
                _NAME,
                _ID,
                Column(
                    "category",
                    "类别",
                    True,
                    "choice",
                    _choices(
                        "独居老人=elderly_alone",
                        "残疾人=disabled",
                        "低保=low_income",
                        "特困=extreme_poverty",
                        "重病=serious_illness",
                        "留守儿童=left_behind_child",
                        "其他=other",
                    ),
                    help="一人属于多个类别时，每个类别填一行",
                    aliases=("人群类别",),
                ),
                _NOTES,
            ),
            unique=("id_number", "category"),
        ),
        Template(
            "key_persons",
            "重点人员台账",
            (
                _NAME,
                _ID,
                Column(
                    "category",
                    "类别",
                    True,
                    "choice",
                    _choices(
                        "社区矫正=community_correction",
                        "刑满释放=released",
                        "吸毒=drug",
                        "精神障碍=mental_disorder",
                        "信访=petitioner",
                        "其他=other",
                    ),
                    help="一人属于多个类别时，每个类别填一行",
                    aliases=("人员类别",),
                ),
                Column(
                    "handling",
                    "处置措施",
                    False,
                    "text",
                    help="帮扶、管控等处置措施",
                    max_length=2000,
                ),
                _NOTES,
            ),
            unique=("id_number", "category"),
        ),
        Template(
            "backbone",
            "骨干力量台账",
            (
                _NAME,
                _ID,
                Column(
                    "role",
                    "角色",
                    True,
                    "choice",
                    _choices(
                        "党员=party_member",
                        "志愿者=volunteer",
                        "楼栋长=building_leader",
                        "单元长=unit_leader",
                        "楼组长=group_leader",
                        "其他=other",
                    ),
                    help="一人有多个角色时，每个角色填一行",
                    aliases=("身份",),
                ),
                _NOTES,
            ),
            unique=("id_number", "role"),
        ),
    )
}


def get_template(ledger: str) -> Template:
    """The template of a ledger; InvalidInput for an unknown name."""
    try:
        return TEMPLATES[ledger]
    except KeyError:
        raise InvalidInput(
            f"unknown ledger {ledger!r}; expected one of {', '.join(TEMPLATES)}"
        ) from None


def normalize_heading(text: Any) -> str:
    """Heading without spaces, a leading/trailing ``*`` or a trailing （必填）/（选填）."""
    s = re.sub(r"\s+", "", "" if text is None else str(text))
    s = s.lstrip("*＊")
    while True:
        stripped = re.sub(r"(?:[*＊]|[（(](?:必填|选填)[）)])$", "", s)
        if stripped == s:
            return s.lower()
        s = stripped


# --------------------------------------------------------------------------- reading

_SCIENTIFIC = re.compile(r"[+-]?\d+(?:\.\d+)?[eE][+-]?\d+")
_DATE = re.compile(
    r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:[ T]+\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
)
_COMPACT_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_EXCEL_TEXT = re.compile(r'="(.*)"', re.S)  # ="0301", as some systems export text to CSV
_CJK_GAP = re.compile(r"(?<=[\u3400-\u9fff])\s+(?=[\u3400-\u9fff])")

_SCIENTIFIC_REASON = (
    "身份证号被 Excel 当成了数字（科学计数法，如 3.20102E+17），末几位已丢失；"
    "请把该列设置为“文本”格式后重新录入 "
    "(Excel turned the ID number into a number in scientific notation and lost its last digits; "
    "format the column as text and re-enter it)"
)


class _Unreadable(Exception):
    """The file cannot be read as a table at all."""


def read_table(data: bytes, filename: str, ledger: str) -> Parsed:
    """Check every row of an .xlsx (first sheet) or .csv ledger file against its template.

    Errors with ``row`` 0 concern the whole file (unreadable, missing required column); then
    no row is returned.
    """
    template = get_template(ledger)
    parsed = Parsed()
    try:
        grid = _read_grid(data, filename)
    except _Unreadable as err:
        parsed.errors.append(RowError(0, "", None, str(err)))
        return parsed

    header_index, mapping = _find_header(template, grid, parsed)
    if header_index is None:
        return parsed
    parsed.header_row = header_index + 1

    seen: dict[tuple[Any, ...], int] = {}
    for rownum, values in enumerate(grid[header_index + 1 :], start=header_index + 2):
        cells = {col: values[i] if i < len(values) else None for i, col in mapping.items()}
        if all(_is_blank(v) for v in cells.values()):
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
        parsed.warnings.append("表中没有数据行 (the table has no data rows)")
    return parsed


def _read_grid(data: bytes, filename: str) -> list[tuple[Any, ...]]:
    """All rows of the file (index 0 = row 1), as cell values.

    TooLarge for a file, a row count, a cell or an unpacked .xlsx over the caps: they are
    checked while reading, so an oversized file is refused before it fills the memory.
    """
    if len(data) > MAX_FILE_BYTES:
        raise TooLarge(FILE_TOO_LARGE)
    name = filename.lower()
    if data.startswith(b"PK\x03\x04"):
        return _xlsx_grid(data)
    if data.startswith(b"\xd0\xcf\x11\xe0") or name.endswith(".xls"):
        raise _Unreadable(
            "不支持旧版 .xls 文件，请在 Excel 中“另存为” .xlsx 后再上传 "
            "(legacy .xls is not supported; save the file as .xlsx)"
        )
    if name.endswith((".xlsx", ".xlsm")):
        raise _Unreadable("文件已损坏，无法作为 Excel 表格读取 (the file is not a valid .xlsx)")
    if name.endswith((".csv", ".txt")) or "." not in name:
        return _csv_grid(data)
    raise _Unreadable("只支持 .xlsx 或 .csv 文件 (only .xlsx and .csv files are supported)")


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
    which, which_en = ("有单元格", "a cell")
    if cell:
        which, which_en = (f"单元格 {cell} ", f"cell {cell}")
    elif row:
        which, which_en = (f"第 {row} 行有单元格", f"a cell in row {row}")
    return TooLarge(
        f"{which}超过 {MAX_CELL_CHARS} 个字，请检查并缩短后再导入 "
        f"({which_en} is longer than {MAX_CELL_CHARS:,} characters; no field takes more "
        "than 2,000: check the cell and shorten it)"
    )


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
                    raise TooLarge(_TOO_MANY_ROWS)
                rows.append(tuple(r[:MAX_COLUMNS]))
            return rows
        finally:
            wb.close()
    except TooLarge:
        raise
    except IndexError as err:
        raise _Unreadable("工作簿中没有工作表 (the workbook has no worksheet)") from err
    except Exception as err:  # zip, XML and openpyxl errors of many kinds for a broken file
        raise _Unreadable(
            f"无法作为 Excel 表格读取 (cannot be read as .xlsx: {str(err).strip()[:200]})"
        ) from err


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
            raise TooLarge(_UNZIPPED_TOO_LARGE)
        if sum(m.file_size for m in members) > MAX_UNZIPPED_BYTES:
            raise TooLarge(_UNZIPPED_TOO_LARGE)
        inflated = 0
        for member in members:
            scanner = _TextScanner() if member.filename.endswith((".xml", ".rels")) else None
            with archive.open(member) as part:
                while chunk := part.read(_CHUNK):
                    inflated += len(chunk)
                    if inflated > MAX_UNZIPPED_BYTES:
                        raise TooLarge(_UNZIPPED_TOO_LARGE)
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
                raise _Unreadable(
                    "无法识别文件编码，请另存为“CSV UTF-8”格式 "
                    "(unknown text encoding; save the file as CSV UTF-8)"
                ) from err
    newline = text.find("\n")
    first_line = text if newline < 0 else text[:newline]
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[tuple[Any, ...]] = []
    try:
        for values in reader:  # streamed: a 10 MB file may hold a million short lines
            if len(rows) == MAX_GRID_ROWS:
                raise TooLarge(_TOO_MANY_ROWS)
            if any(len(v) > MAX_CELL_CHARS for v in values):
                raise _cell_too_long(row=len(rows) + 1)
            rows.append(tuple(_unneutralise(v) for v in values[:MAX_COLUMNS]))
    except csv.Error as err:
        if "field larger than field limit" in str(err):  # csv's own cap, 131,072 characters
            raise _cell_too_long(row=len(rows) + 1) from err
        raise _Unreadable(f"无法作为 CSV 读取 (cannot be read as CSV: {err})") from err
    return rows


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
                RowError(
                    0, col.heading, None, f"缺少必填列“{col.heading}” (missing required column)"
                )
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
            parsed.warnings.append(f"未识别的列“{shown}”已忽略 (unknown column ignored)")
        elif col.key in used:
            parsed.warnings.append(
                f"重复的列“{shown}”已忽略，只读取第一列“{col.heading}” (duplicate column ignored)"
            )
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
        if _is_blank(raw):
            if col.required:
                bad.add(col.key)
                errors.append(RowError(rownum, col.heading, None, "必填项为空 (required value)"))
            continue
        value, reason = _convert(col, raw)
        if reason is None and value is None and col.required:
            reason = "必填项为空 (required value)"
        if reason is not None:
            bad.add(col.key)
            errors.append(RowError(rownum, col.heading, _display(raw), reason))
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
                    "出生日期晚于今天 (birth date is in the future)",
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
                    f"性别与身份证号不符，身份证号显示为“{expected}” "
                    f"(gender does not match the ID number)",
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
                    f"出生日期与身份证号不符，身份证号显示为 {expected_date.isoformat()} "
                    f"(birth date does not match the ID number)",
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
        f"{headings}与第 {first} 行重复 (duplicate of row {first})",
    )


def _convert(col: Column, raw: Any) -> tuple[Any, str | None]:
    """A non-blank cell as the column's typed value, or a reason it is not acceptable."""
    if col.kind == "date":
        return _parse_date(raw)
    if col.kind == "id_number":
        return _parse_id_number(raw)
    if col.kind == "phone":
        return _parse_phone(raw)
    if col.kind == "code" and isinstance(raw, (date, datetime)):
        return None, (
            f"{col.heading}被 Excel 自动变成了日期，请把该列设置为“文本”格式后重新填写 "
            "(Excel turned the value into a date; format the column as text and re-enter it)"
        )
    text = _text(raw)
    if col.key in ("name", "contact_name"):
        text = _CJK_GAP.sub("", text)  # 张  三 → 张三 (padding for alignment)
    if col.max_length is not None and len(text) > col.max_length:
        return (
            None,
            f"内容过长，最多 {col.max_length} 个字 (too long: at most {col.max_length} characters)",
        )
    if col.kind == "choice":
        key = col.key_of(text)
        if key is None:
            return None, f"只能填写：{'、'.join(col.labels)} (not an allowed value)"
        return key, None
    return (text or None), None


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any) -> str:
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


def _display(value: Any) -> str:
    """A cell as the user saw it, for error messages."""
    if isinstance(value, float) and not (value.is_integer() and abs(value) < 1e15):
        return f"{value:G}"
    return _text(value)


def _parse_date(value: Any) -> tuple[date | None, str | None]:
    unrecognized = "无法识别的日期，请写成 1950-03-02 (unrecognized date; write it as YYYY-MM-DD)"
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
    text = _text(value)
    m = _DATE.fullmatch(text) or _COMPACT_DATE.fullmatch(text)
    if m is None:
        return None, unrecognized
    return _ymd(*m.groups())


def _ymd(year: str, month: str, day: str) -> tuple[date | None, str | None]:
    try:
        return date(int(year), int(month), int(day)), None
    except ValueError:
        return None, "日期不存在 (no such date)"


def _parse_id_number(value: Any) -> tuple[str | None, str | None]:
    numeric = False
    if isinstance(value, float):
        if not (value.is_integer() and abs(value) < 1e15):
            return None, _SCIENTIFIC_REASON
        text, numeric = str(int(value)), True
    elif isinstance(value, int) and not isinstance(value, bool):
        text, numeric = str(value), True
    else:
        text = _text(value)
        if _SCIENTIFIC.fullmatch(text):
            return None, _SCIENTIFIC_REASON
    normalized, reason = validate_id_number(text)
    if normalized is None and numeric and len(text) >= 16:
        return None, _SCIENTIFIC_REASON  # Excel keeps 15 significant digits, then zeros
    return normalized, reason


def _parse_phone(value: Any) -> tuple[str | None, str | None]:
    text = _text(value)  # 13812345678.0 (a number cell) loses its ".0" here
    if isinstance(value, str) and re.fullmatch(r"\d+\.0", text):
        text = text[:-2]  # the same, written to CSV by another program
    return validate_phone(text)


# --------------------------------------------------------------------------- writing

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
    return ILLEGAL_CHARACTERS_RE.sub("", _text(value) if not isinstance(value, str) else value)


def _csv_bytes(template: Template, table: list[list[Any]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([col.heading for col in template.columns])
    for values in table:
        writer.writerow(
            [
                "" if v is None else v.isoformat() if isinstance(v, date) else _neutralise(v)
                for v in values
            ]
        )
    return buffer.getvalue().encode("utf-8-sig")  # the BOM makes Excel read it as UTF-8


# A spreadsheet opening a CSV runs a cell that starts with one of these as a formula.
_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def _neutralise(text: str) -> str:
    """Text a spreadsheet would run as a formula, behind a ``'`` (as OWASP advises).

    Text that already starts with quotes before a trigger gets one more, so that
    ``_unneutralise`` gives back exactly what was written.
    """
    return "'" + text if text.lstrip("'").startswith(_FORMULA_TRIGGERS) else text


def _unneutralise(text: str) -> str:
    """A CSV cell without the ``'`` that ``_neutralise`` put before a formula trigger."""
    if text.startswith("'") and text.lstrip("'").startswith(_FORMULA_TRIGGERS):
        return text[1:]
    return text


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
