"""The five ledgers (台账) as spreadsheets: their columns, Chinese headings and choices.

Each ledger is declared once in ``TEMPLATES``; reading (gis/ledger/tabular.py), writing
(gis/ledger/sheetwrite.py) and the database's allowed values (gis/ledger/store.py) all
take them from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from gis.errors import InvalidInput

Kind = Literal["text", "code", "date", "id_number", "phone", "choice"]


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
