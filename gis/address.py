"""Chinese street addresses: normalization, parsing into parts and keys for matching.

An address is written from the largest unit to the smallest::

    [省/自治区][市][区/县][街道/镇/乡] road [lane 弄/巷/胡同] [number 号]
    [building 幢/栋/座/号楼] [unit 单元] [room 室/房]

e.g. "上海市普陀区长寿路123弄5号301室" or "中山北路88号3栋2单元502". Parsing is forgiving: it
never raises, skips what it does not understand and leaves missing parts as ``None``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace

_VARIANTS = str.maketrans(
    {"號": "号", "衖": "弄", "棟": "栋", "樓": "楼", "單": "单", "區": "区", "縣": "县",
     "—": "-", "–": "-", "―": "-", "‐": "-"}
)  # fmt: skip

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
              "七": 7, "八": 8, "九": 9}  # fmt: skip
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}
_NUMBER_MARKS = "号|弄|巷|胡同|幢|栋|座|单元|室|房|层|楼"
_CN_RUN = re.compile(f"[{''.join(_CN_DIGITS)}{''.join(_CN_UNITS)}]+(?={_NUMBER_MARKS})")

_ROAD_SUFFIXES = ("小区", "新村", "花园", "胡同", "大道", "路", "街", "道", "巷", "里", "村", "苑")
_CJK = "\u4e00-\u9fff"
_PROVINCE = re.compile(f"[{_CJK}]{{2,6}}?(?:省|自治区)")
_CITY = re.compile(f"[{_CJK}]{{2,7}}?市")
_DISTRICT = re.compile(f"[{_CJK}]{{1,7}}?[区县]")
_SUBDISTRICT = re.compile(f"[{_CJK}]{{1,8}}?(?:街道|镇|乡)")
_NOT_DISTRICT = ("小区", "社区", "校区", "景区", "厂区")
# An administrative name is not taken if what follows shows it was part of a road name.
_NOT_AFTER_ADMIN = (*_ROAD_SUFFIXES, "场")

_SLOTS = ("number", "building", "unit")
_TOKENS = (
    ("lane", re.compile(r"([0-9]+)(?:弄|巷|胡同)")),
    ("number", re.compile(r"([0-9]+(?:-[0-9]+)?)号")),
    ("building", re.compile(r"([0-9A-Z]+)幢")),
    ("unit", re.compile(r"([0-9]+)单元")),
    ("floor", re.compile(r"[0-9]+[楼层]")),
    ("room", re.compile(r"([0-9A-Z]+)室")),
    ("dash", re.compile(r"([0-9]+[A-Z]?(?:-[0-9]+[A-Z]?)+)室?")),
    ("bare", re.compile(r"[0-9]+[A-Z]?")),
)


@dataclass(frozen=True)
class Address:
    """An address split into parts; numbers are kept as Arabic-digit strings ("123", "88-1")."""

    city: str | None = None
    district: str | None = None
    road: str | None = None
    lane: str | None = None
    number: str | None = None
    building: str | None = None
    unit: str | None = None
    room: str | None = None

    def key(self) -> str:
        """Canonical ``road|lane|number|building|unit|room`` string for exact matching.

        City and district are left out: keys are compared within one city's ledger, and
        many people omit them.
        """
        parts = (self.road, self.lane, self.number, self.building, self.unit, self.room)
        return "|".join(p or "" for p in parts)

    def label(self) -> str:
        """Clean human form, e.g. "上海市普陀区长寿路123弄5号301室"."""
        marked = (
            (self.lane, "弄"),
            (self.number, "号"),
            (self.building, "幢"),
            (self.unit, "单元"),
            (self.room, "室"),
        )
        head = [self.city, self.district, self.road]
        tail = [value + mark for value, mark in marked if value]
        return "".join(p for p in head if p) + "".join(tail)


def _cn_number(run: str) -> str | None:
    """Arabic digits for a Chinese numeral ("一百零五" → "105", "三〇一" → "301"), or None."""
    if not any(c in _CN_UNITS for c in run):
        return "".join(str(_CN_DIGITS[c]) for c in run)
    total, digit, last_unit = 0, None, 10_000
    for c in run:
        if c in _CN_DIGITS:
            if digit:  # two non-zero digits in a row ("二三十")
                return None
            digit = _CN_DIGITS[c]
        else:
            unit = _CN_UNITS[c]
            if unit >= last_unit:
                return None
            total += (digit or 1) * unit
            digit, last_unit = None, unit
    return str(total + (digit or 0))


def normalize_text(s: str) -> str:
    """Normalize an address string before parsing.

    NFKC (full-width digits, letters and spaces become half-width), traditional variants
    (號 → 号, 衖 → 弄, 棟 → 栋 …), dashes unified to "-", whitespace between two digits turned
    into "-" and all other whitespace removed, letters upper-cased, Chinese numerals directly
    before a marker (号, 弄, 幢, 单元, 室 …) made Arabic ("一百二十三弄" → "123弄"), "第" before a
    number dropped, and after a number the building markers 栋/座/号楼/楼栋/# become 幢 and
    房/房间 become 室. Numerals elsewhere are left alone, so road names like 经五路 survive.
    """
    t = unicodedata.normalize("NFKC", s).translate(_VARIANTS)
    t = re.sub(r"(?<=[0-9])\s+(?=[0-9])", "-", t)
    t = re.sub(r"\s+", "", t).upper()
    t = _CN_RUN.sub(lambda m: _cn_number(m.group()) or m.group(), t)
    t = re.sub(r"第(?=[0-9])", "", t)
    t = re.sub(r"(?<=[0-9A-Z])(?:号楼|楼栋|栋|座|#楼?)", "幢", t)
    return re.sub(r"(?<=[0-9A-Z])房间?", "室", t)


def _take_admin(pattern: re.Pattern[str], text: str) -> tuple[str | None, str]:
    m = pattern.match(text)
    if m is None or m.group().endswith(_NOT_DISTRICT):
        return None, text
    rest = text[m.end() :]
    if rest.startswith(_NOT_AFTER_ADMIN):
        return None, text
    return m.group(), rest


def _split_road(text: str) -> tuple[str | None, str]:
    """Split off the road: the shortest head ending in a road suffix that is followed by a
    number (or nothing); failing that, the Chinese text before the first digit; failing that,
    the shortest head ending in a road suffix at all."""
    first_any = None
    for end in range(2, len(text) + 1):
        head, rest = text[:end], text[end:]
        suffix = next((x for x in _ROAD_SUFFIXES if head.endswith(x) and len(head) > len(x)), None)
        if suffix is None:
            continue
        if suffix in ("巷", "胡同") and head[-len(suffix) - 1].isdigit():
            continue  # "12巷" is a lane, not the end of a road name
        if not rest or rest[0] in "0123456789-":
            return head, rest
        if first_any is None:
            first_any = end
    m = re.match(f"[{_CJK}]+(?=[0-9])", text)
    if m:
        return m.group(), text[m.end() :]
    if first_any is not None:
        return text[:first_any], text[first_any:]
    return None, text


def _parse_parts(text: str) -> dict[str, str]:
    """Lane, number, building, unit and room from the text after the road.

    A bare number is the house number if nothing below the lane was given yet, else the room.
    A dash form ("5-301", "3-2-502") ends with the room; its other parts fill the levels after
    the deepest one already given (number, building, unit): "88号5-301" is building 5 room 301,
    "123弄5-301" number 5 room 301, "88号3-2-502" building 3 unit 2 room 502.
    """
    parts: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        kind, m = next(
            ((k, m) for k, pattern in _TOKENS if (m := pattern.match(text, pos))), ("", None)
        )
        if m is None:
            pos += 1  # punctuation or words we do not know
            continue
        pos = m.end()
        if kind in ("lane", "number", "building", "unit", "room"):
            parts.setdefault(kind, m.group(1))
        elif kind == "dash" and "room" not in parts:
            *upper, room = m.group(1).split("-")
            deepest = max((i for i, slot in enumerate(_SLOTS) if slot in parts), default=-1)
            free = _SLOTS[deepest + 1 :]
            if len(upper) <= len(free):
                parts.update(zip(free, upper, strict=False))
                parts["room"] = room
            else:
                parts["room"] = m.group(1)
        elif kind == "bare":
            below_lane = {"number", "building", "unit", "room"} & parts.keys()
            parts.setdefault("room" if below_lane else "number", m.group())
    return parts


def parse_address(s: str) -> Address:
    """Split an address into its parts (see the module docstring); never raises.

    The province is dropped, city and district are kept as written ("南京市", "鼓楼区"), a
    subdistrict (街道/镇/乡) is dropped. Anything that is not a string gives an empty Address.
    """
    if not isinstance(s, str):
        return Address()
    text = normalize_text(s)
    _, text = _take_admin(_PROVINCE, text)
    city, text = _take_admin(_CITY, text)
    district, text = _take_admin(_DISTRICT, text)
    _, text = _take_admin(_SUBDISTRICT, text)
    road, text = _split_road(text)
    return Address(city=city, district=district, road=road, **_parse_parts(text))


def search_keys(s: str | Address) -> list[str]:
    """Keys of an address from the most to the least specific, for matching incomplete queries.

    The first key is the full :meth:`Address.key`; each next one drops the most specific part
    still present (room, then unit, building, number, lane), down to the road alone:
    "长寿路123弄5号" → ["长寿路|123|5|||", "长寿路|123||||", "长寿路|||||"]. Index every record
    under all of its keys, then look a query's keys up in order: the first key that hits gives
    the most specific records the query can mean. Without a road there are no keys.
    """
    address = s if isinstance(s, Address) else parse_address(s)
    if not address.road:
        return []
    keys = [address.key()]
    for name in ("room", "unit", "building", "number", "lane"):
        if getattr(address, name) is not None:
            address = replace(address, **{name: None})
            keys.append(address.key())
    return keys
