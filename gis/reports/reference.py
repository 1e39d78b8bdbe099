"""Reference data from seed 000: Changshou Road's 35 residential areas, by type and size.

The seed's annex (附件 居民区类型分类) lists the subdistrict's residents' areas twice: once
by housing type (按居住类型分类) and once by households (按所辖户数分类), each list headed
``N、<class>(<count>个):`` and continued over several lines. :func:`parse_seed` reads
both lists from the text itself; ``scripts/reference_changshou.py`` writes the result to
``data/reference/changshou_road_areas.toml`` (names only, no geometry), and the tests parse
the seed again and compare.

Names the source spells two ways are one area: a name found in one list only is matched
with a name found in the other list only when the two differ by a generic suffix
(:data:`SUFFIXES`: 里 "lane", as in 锦绣 / 锦绣里). The longer spelling is the area's
name; both are kept as its spellings. Whatever stays unmatched is reported, never dropped.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gis.errors import InvalidInput
from gis.settings import PROJECT_ROOT

SEED = PROJECT_ROOT.parent / "shared" / "seeds" / "000_574a3af5aa94af07.txt"
DATA_FILE = PROJECT_ROOT / "data" / "reference" / "changshou_road_areas.toml"
SUFFIXES = ("里",)  # a lane's generic suffix: 锦绣里 is also written 锦绣

ANNEX = "居民区类型分类"
BY_TYPE = "按居住类型分类"
BY_HOUSEHOLDS = "按所辖户数分类"
END = "备注"
# "1、现实型(8个): 正红、…" — half- or full-width brackets and colon
HEADING = re.compile(r"^\s*(\d+)、\s*(.+?)\s*[(（]\s*(\d+)\s*个\s*[)）]\s*[:：]\s*(.*)$")
SEPARATORS = re.compile(r"[、，,；;\s]+")
# "1000户以下", "1000—2000户"; the seed's dash is an em dash (—), others accepted
BAND = re.compile(r"^(?:(\d+)\s*[—–\-~～至]+\s*(\d+)\s*户|(\d+)\s*户以下|(\d+)\s*户以上)$")


@dataclass
class Listing:
    """One class of one list as the source prints it: its label, stated count, names."""

    label: str
    stated_count: int
    names: list[str] = field(default_factory=list)


@dataclass
class Reference:
    """Both lists and the areas they describe, spellings reconciled."""

    by_type: list[Listing]
    by_households: list[Listing]
    areas: list[dict[str, Any]]  # name, spellings, housing_type, households_band
    only_in_type_list: list[str]
    only_in_households_list: list[str]
    source_sha256: str


def band_bounds(label: str) -> tuple[int, int | None]:
    """``(lower, upper)`` households of a band label, lower inclusive, upper exclusive:
    ``1000户以下`` → (0, 1000), ``1000—2000户`` → (1000, 2000), ``4000户以上`` → (4000, None)."""
    m = BAND.match(label.strip())
    if m is None:
        raise InvalidInput(f"not a household band: {label!r}")
    if m[1]:
        return int(m[1]), int(m[2])
    if m[3]:
        return 0, int(m[3])
    return int(m[4]), None


def _sections(text: str) -> tuple[list[str], list[str]]:
    start = text.find(ANNEX)
    if start < 0:
        raise InvalidInput(f"the seed has no annex {ANNEX}")
    annex = text[start:]
    end = annex.find(END)
    annex = annex if end < 0 else annex[:end]
    lines = annex.splitlines()
    i = next((k for k, line in enumerate(lines) if BY_TYPE in line), -1)
    j = next((k for k, line in enumerate(lines) if BY_HOUSEHOLDS in line), -1)
    if i < 0 or j < i:
        raise InvalidInput(f"the annex must hold {BY_TYPE} then {BY_HOUSEHOLDS}")
    return lines[i + 1 : j], lines[j + 1 :]


def _listings(lines: list[str]) -> list[Listing]:
    out: list[Listing] = []
    for line in lines:
        m = HEADING.match(line)
        if m is not None:
            out.append(Listing(m[2], int(m[3])))
            rest = m[4]
        elif out:
            rest = line  # a continuation line of the class above
        else:
            continue
        out[-1].names.extend(n for n in SEPARATORS.split(rest) if n)
    return out


def _bare(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _reconcile(
    type_names: list[str], band_names: list[str]
) -> tuple[dict[str, str], list[str], list[str]]:
    """Spelling → area name across both lists; the names left in one list only."""
    only_t = [n for n in type_names if n not in band_names]
    only_b = [n for n in band_names if n not in type_names]
    canonical = {n: n for n in type_names + band_names}
    for a in list(only_t):
        partners = [b for b in only_b if b != a and _bare(a) == _bare(b)]
        if len(partners) == 1:  # an ambiguous match is left for a person to settle
            b = partners[0]
            name = max(a, b, key=len)
            canonical[a] = canonical[b] = name
            only_t.remove(a)
            only_b.remove(b)
    return canonical, only_t, only_b


def parse_seed(text: str) -> Reference:
    """Both lists of the seed's annex, with the areas they describe (see the module)."""
    type_lines, band_lines = _sections(text)
    by_type, by_households = _listings(type_lines), _listings(band_lines)
    if not by_type or not by_households:
        raise InvalidInput("the annex lists no classes")
    for listing in by_households:
        band_bounds(listing.label)  # every class of the second list is a household band
    type_of = {n: lst.label for lst in by_type for n in lst.names}
    band_of = {n: lst.label for lst in by_households for n in lst.names}
    canonical, only_t, only_b = _reconcile(list(type_of), list(band_of))
    areas: dict[str, dict[str, Any]] = {}
    for spelling, name in canonical.items():
        area = areas.setdefault(
            name, {"name": name, "spellings": [], "housing_type": None, "households_band": None}
        )
        area["spellings"].append(spelling)
        area["housing_type"] = area["housing_type"] or type_of.get(spelling)
        area["households_band"] = area["households_band"] or band_of.get(spelling)
    for area in areas.values():
        area["spellings"] = sorted(set(area["spellings"]), key=lambda s: (len(s), s))
    return Reference(
        by_type,
        by_households,
        [areas[k] for k in sorted(areas)],
        only_t,
        only_b,
        hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )


def read_seed(path: Path = SEED) -> Reference:
    """:func:`parse_seed` of the seed file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise InvalidInput(f"cannot read the seed {path}: {err}") from err
    return parse_seed(text)


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _names(names: list[str]) -> str:
    return "[" + ", ".join(_quote(n) for n in names) + "]"


def to_toml(ref: Reference, source: str) -> str:
    """The data file's text: the two lists as printed, then one table per area."""
    lines = [
        "# Changshou Road subdistrict (长寿路街道, Putuo, Shanghai): its residents' areas by",
        "# housing type and by households, as the annex of seed 000 lists them. Names only.",
        "# Written by scripts/reference_changshou.py from the seed; do not edit by hand.",
        f"source = {_quote(source)}",
        f"source_sha256 = {_quote(ref.source_sha256)}",
        'households_note = "上述户数为小区房屋套数 (households = dwellings)"',
        f"only_in_type_list = {_names(ref.only_in_type_list)}",
        f"only_in_households_list = {_names(ref.only_in_households_list)}",
        "",
    ]
    for key, listings in (("by_type", ref.by_type), ("by_households", ref.by_households)):
        for lst in listings:
            lines += [
                f"[[{key}]]",
                f"label = {_quote(lst.label)}",
                f"stated_count = {lst.stated_count}",
                f"names = {_names(lst.names)}",
                "",
            ]
    for area in ref.areas:
        lines += [
            "[[areas]]",
            f"name = {_quote(area['name'])}",
            f"spellings = {_names(area['spellings'])}",
            f"housing_type = {_quote(area['housing_type'] or '')}",
            f"households_band = {_quote(area['households_band'] or '')}",
            "",
        ]
    return "\n".join(lines)


def load(path: Path = DATA_FILE) -> dict[str, Any]:
    """The project's data file (what the script wrote)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise InvalidInput(f"cannot read the reference file {path}: {err}") from err


def tables(doc: dict[str, Any]) -> dict[str, Any]:
    """The seed's two tables from the data file: per class the stated count, the areas
    counted, and which areas; plus the names found in one list only."""

    def table(key: str, field_: str) -> list[dict[str, Any]]:
        rows = []
        for lst in doc[key]:
            names = [a["name"] for a in doc["areas"] if a[field_] == lst["label"]]
            row = {"label": lst["label"], "stated_count": lst["stated_count"],
                   "count": len(names), "areas": names}  # fmt: skip
            if key == "by_households":
                row["lower"], row["upper"] = band_bounds(lst["label"])
            rows.append(row)
        return rows

    return {
        "areas": len(doc["areas"]),
        "by_type": table("by_type", "housing_type"),
        "by_households": table("by_households", "households_band"),
        "only_in_type_list": doc["only_in_type_list"],
        "only_in_households_list": doc["only_in_households_list"],
        "source": doc["source"],
    }
