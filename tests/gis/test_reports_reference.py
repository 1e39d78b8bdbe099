"""Seed 000's tables of Changshou Road: parsed from the seed again and compared with the
project's data file, counts exactly as the seed prints them, spellings reconciled."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gis.errors import InvalidInput
from gis.reports import reference
from gis.settings import PROJECT_ROOT

# the seed's annex, as a person reads it (the test's own transcription, not the parser's)
BY_TYPE = {
    "现实型": "正红 长三 长四 普雄 谈家渡 武一 武二 安全",
    "过渡型": "合德 永定 长鸿 锦绣",
    "现代型": "武宁小城 河滨围城 新湖明珠城 大上海城市花苑 苏堤春晓 泰欣嘉园 上海知音苑 玉佛城 "
    "地方天园 秋水云庐 半岛花园 逸流公寓 圣骊澳门苑 梅芳里 上青佳园",
    "综合型": "陕北 世纪之门 芙蓉花苑 叶家宅 澳门 绿洲 九茂 梅山苑",
}
BY_HOUSEHOLDS = {
    "1000户以下": "锦绣里 武二 地方天园 大上海城市花苑 玉佛城 圣骊澳门苑 芙蓉花苑 逸流公寓 "
    "泰欣嘉园",
    "1000—2000户": "秋水云庐 河滨围城 半岛花园 梅芳里 长鸿 苏堤春晓 叶家宅 谈家渡 安全 武宁小城 "
    "武一 绿洲",
    "2000—3000户": "澳门 永定 上海知音苑 合德 九茂 陕北 长三 长四 上青佳园 正红里 梅山苑 普雄",
    "3000—4000户": "世纪之门 新湖明珠城",
}


def test_the_data_file_is_what_the_seed_says() -> None:
    parsed = reference.read_seed()
    doc = reference.load()
    assert doc["source_sha256"] == parsed.source_sha256
    assert doc["areas"] == parsed.areas
    assert [(x["label"], x["names"]) for x in doc["by_type"]] == [
        (x.label, x.names) for x in parsed.by_type
    ]
    assert [(x["label"], x["names"]) for x in doc["by_households"]] == [
        (x.label, x.names) for x in parsed.by_households
    ]
    # the file is exactly what the script writes from the seed: no hand edit
    assert reference.DATA_FILE.read_text(encoding="utf-8") == reference.to_toml(
        parsed, f"seeds/{reference.SEED.name}"
    )


def test_the_seeds_tables_are_reproduced_exactly() -> None:
    t = reference.tables(reference.load())
    assert t["areas"] == 35
    assert [r["count"] for r in t["by_type"]] == [8, 4, 15, 8]
    assert [r["count"] for r in t["by_households"]] == [9, 12, 12, 2]
    assert [r["stated_count"] for r in t["by_type"]] == [8, 4, 15, 8]
    assert [r["stated_count"] for r in t["by_households"]] == [9, 12, 12, 2]
    spelled = {"锦绣": "锦绣里", "正红": "正红里"}
    for row in t["by_type"]:
        assert sorted(row["areas"]) == sorted(
            spelled.get(n, n) for n in BY_TYPE[row["label"]].split()
        )
    for row in t["by_households"]:
        assert sorted(row["areas"]) == sorted(BY_HOUSEHOLDS[row["label"]].split())
    assert t["only_in_type_list"] == [] and t["only_in_households_list"] == []
    bands = [(r["lower"], r["upper"]) for r in t["by_households"]]
    assert bands == [(0, 1000), (1000, 2000), (2000, 3000), (3000, 4000)]


def test_names_spelled_two_ways_are_one_area_and_look_alikes_stay_apart() -> None:
    areas = {a["name"]: a for a in reference.load()["areas"]}
    assert areas["锦绣里"]["spellings"] == ["锦绣", "锦绣里"]
    assert areas["锦绣里"]["housing_type"] == "过渡型"
    assert areas["锦绣里"]["households_band"] == "1000户以下"
    assert areas["正红里"]["spellings"] == ["正红", "正红里"]
    assert (areas["正红里"]["housing_type"], areas["正红里"]["households_band"]) == (
        "现实型", "2000—3000户")  # fmt: skip
    # 澳门 and 圣骊澳门苑 are two areas; 梅芳里 is spelled one way only
    assert areas["澳门"]["households_band"] == "2000—3000户"
    assert areas["圣骊澳门苑"]["households_band"] == "1000户以下"
    assert areas["梅芳里"]["spellings"] == ["梅芳里"]
    assert all(a["housing_type"] and a["households_band"] for a in areas.values())


def test_a_name_in_one_table_only_is_listed_not_dropped() -> None:
    text = reference.SEED.read_text(encoding="utf-8")
    changed = text.replace("九茂、陕北", "陕北").replace("武一、绿洲", "武一、绿洲、新村")
    ref = reference.parse_seed(changed)
    assert ref.only_in_type_list == ["九茂"]
    assert ref.only_in_households_list == ["新村"]
    assert len(ref.areas) == 36


def test_the_script_writes_the_committed_file(tmp_path) -> None:
    out = tmp_path / "areas.toml"
    run = subprocess.run(
        [sys.executable, "scripts/reference_changshou.py", str(reference.SEED), str(out)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "by type: 8 / 4 / 15 / 8" in run.stdout
    assert "by households: 9 / 12 / 12 / 2" in run.stdout
    assert out.read_text(encoding="utf-8") == reference.DATA_FILE.read_text(encoding="utf-8")


def test_a_text_without_the_annex_is_refused() -> None:
    with pytest.raises(InvalidInput, match="annex"):
        reference.parse_seed("第一条 总则")
    with pytest.raises(InvalidInput, match="household band"):
        reference.band_bounds("很多户")
