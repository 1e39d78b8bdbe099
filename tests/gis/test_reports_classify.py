"""Classes and norms at their edges, and housing types derived from the real Nanjing data
(recomputed here in SQL from the building rows)."""

from __future__ import annotations

import math

import pytest
import sqlalchemy as sa

from gis.delineate.service import run as delineate_run
from gis.errors import InvalidInput
from gis.io.pipeline import import_file
from gis.reports import classify, norms
from gis.reports.classify import Mix
from tests.conftest import NANJING


@pytest.mark.parametrize(
    ("households", "band"),
    [(0, "under_1000"), (999, "under_1000"), (1000, "1000_2000"), (1999, "1000_2000"),
     (2000, "2000_3000"), (2999, "2000_3000"), (3000, "3000_4000"), (3999, "3000_4000"),
     (4000, "4000_plus"), (25_000, "4000_plus")],
)  # fmt: skip
def test_household_bands_hold_their_lower_edge(households: int, band: str) -> None:
    assert classify.household_band(households).code == band


def test_a_negative_household_count_is_refused() -> None:
    with pytest.raises(InvalidInput):
        classify.household_band(-1)


@pytest.mark.parametrize(
    ("households", "required"),
    [(0, 5), (1, 5), (300, 5), (1500, 5), (1501, 6), (1800, 6), (1801, 7), (3000, 10),
     (3001, 11)],
)  # fmt: skip
def test_workers_one_per_300_households_at_least_five(households: int, required: int) -> None:
    assert norms.workers_required(households) == required
    assert required == max(5, math.ceil(households / 300))  # the rule as the seed words it
    check = norms.workers_check(households, required - 1)
    assert check["is_met"] is False and check["shortfall"] == 1
    assert norms.workers_check(households, required)["is_met"] is True


@pytest.mark.parametrize(
    ("people", "status"), [(0, "below"), (49, "below"), (50, "within"), (300, "within"),
                           (301, "above")],
)  # fmt: skip
def test_backbone_team_50_to_300_both_ends_included(people: int, status: str) -> None:
    check = norms.backbone_check(people)
    assert check["status"] == status
    assert check["is_met"] is (status == "within")
    assert check["shortfall"] == max(0, 50 - people)


def test_building_form_needs_measured_levels_or_a_house_type() -> None:
    assert classify.building_form("yes", 5, "default") is None  # the import's guess
    assert classify.building_form("yes", 3, "tag") == "low_rise"
    assert classify.building_form("apartments", 4, "tag") == "multi_storey"
    assert classify.building_form("yes", 7, "height") == "multi_storey"
    assert classify.building_form("yes", 8, "tag") == "high_rise"
    assert classify.building_form("terrace", 5, "default") == "low_rise"
    assert classify.building_form("yes", None, "tag") is None


def test_building_era_from_the_first_year_tag() -> None:
    assert classify.building_year({"start_date": "1995-06"}) == 1995
    assert classify.building_year({"start_date": "~1930", "construction_date": "2001"}) == 1930
    assert classify.building_year({"building:year": "2003"}) == 2003
    assert classify.building_year({"start_date": "unknown"}) is None
    assert [classify.building_era(y) for y in (1948, 1949, 1999, 2000, None)] == [
        "before_1949", "planned", "planned", "since_2000", None]  # fmt: skip


def _mix(forms: dict, eras: dict | None = None) -> Mix:
    total = sum(forms.values())
    return Mix(total, forms, eras or {None: total})


def test_changshou_types_by_the_share_of_households() -> None:
    tax = classify.taxonomy("changshou")
    assert classify.housing_type(_mix({"high_rise": 60, "multi_storey": 40}), tax).code == "现代型"
    assert classify.housing_type(_mix({"high_rise": 59, "multi_storey": 41}), tax).code == "综合型"
    assert classify.housing_type(_mix({"high_rise": 40, "multi_storey": 60}), tax).code == "现实型"
    assert classify.housing_type(_mix({"low_rise": 40, "multi_storey": 60}), tax).code == "过渡型"
    assert classify.housing_type(_mix({"low_rise": 30, "multi_storey": 40, "high_rise": 30}),
                                 tax).code == "综合型"  # fmt: skip
    # half the households in buildings of unknown form: still decided; fewer: undetermined
    assert classify.housing_type(_mix({"high_rise": 50, None: 50}), tax).code == "现代型"
    d = classify.housing_type(_mix({"high_rise": 49, None: 51}), tax)
    assert d.code is None and "49%" in d.reason
    # era alone can decide: 60 % built since 2000
    m = Mix(100, {"multi_storey": 100}, {"since_2000": 60, "planned": 40})
    assert classify.housing_type(m, tax).code == "现代型"


def test_changning_types_and_the_ones_only_recorded() -> None:
    tax = classify.taxonomy("changning")
    old = Mix(100, {"low_rise": 70, "multi_storey": 30}, {"before_1949": 60, None: 40})
    assert classify.housing_type(old, tax).code == "老洋房"
    assert classify.housing_type(Mix(100, {"low_rise": 70, "multi_storey": 30}, {None: 100}),
                                 tax).code is None  # no year: not told from the map  # fmt: skip
    walkup = Mix(100, {"multi_storey": 60, "high_rise": 40}, {"planned": 50, None: 50})
    assert classify.housing_type(walkup, tax).code == "售后公房"
    assert classify.housing_type(_mix({"multi_storey": 75, "high_rise": 25}), tax).code == (
        "售后公房")  # fmt: skip
    assert classify.housing_type(_mix({"high_rise": 50, "low_rise": 50}), tax).code == (
        "普通商品房")  # fmt: skip
    recorded_only = [t.code for t in tax.types if not t.when and not t.is_otherwise]
    assert recorded_only == ["涉外商品房", "动迁安置房"]


def test_an_unknown_taxonomy_is_refused_with_the_choices() -> None:
    with pytest.raises(InvalidInput) as err:
        classify.taxonomy("pudong")
    assert err.value.key == "reports.unknown_taxonomy"
    assert "changshou" in str(err.value) and "changning" in str(err.value)


def test_the_taxonomy_file_is_configurable_and_checked(tmp_path) -> None:
    text = classify.CONFIG.read_text(encoding="utf-8")
    mine = tmp_path / "mine.toml"
    mine.write_text(text.replace('default_taxonomy = "changshou"', 'default_taxonomy = "tall"')
                    + '\n[taxonomies.tall]\nlabel_zh = "高"\nlabel_en = "tall"\n'
                    '[[taxonomies.tall.types]]\ncode = "高层"\nwhen = [{ high_rise = 0.9 }]\n',
                    encoding="utf-8")  # fmt: skip
    config = classify.load_config(mine)
    tall = classify.taxonomy(None, config)
    assert tall.code == "tall"
    assert classify.housing_type(_mix({"high_rise": 90, "low_rise": 10}), tall).code == "高层"
    assert classify.housing_type(_mix({"high_rise": 89, "low_rise": 11}), tall).code is None
    gap = tmp_path / "gap.toml"
    gap.write_text(text.replace("lower = 2000\nupper = 3000", "lower = 2001\nupper = 3000"),
                   encoding="utf-8")  # fmt: skip
    with pytest.raises(InvalidInput, match="2000_3000 must start at 2000"):
        classify.load_config(gap)
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("{ high_rise = 0.6 }", "{ skyscraper = 0.6 }"), encoding="utf-8")
    with pytest.raises(InvalidInput, match="skyscraper"):
        classify.load_config(bad)


# the forms as this test computes them in SQL: house-like types low-rise; else measured
# levels 1–3 low, 4–7 multi-storey, 8+ high-rise; the import's default level count unknown
FORMS_SQL = """
    SELECT community_id, sum(households) AS households,
           sum(households) FILTER (WHERE form IS NOT NULL) AS known,
           sum(households) FILTER (WHERE form = 'low_rise') AS low,
           sum(households) FILTER (WHERE form = 'multi_storey') AS multi,
           sum(households) FILTER (WHERE form = 'high_rise') AS high
      FROM (SELECT community_id, households,
                   CASE WHEN building_type IN ('house', 'detached', 'semidetached_house',
                             'terrace', 'bungalow', 'hut', 'villa', 'farm') THEN 'low_rise'
                        WHEN levels_source NOT IN ('tag', 'height') OR levels IS NULL
                          OR levels < 1 THEN NULL
                        WHEN levels <= 3 THEN 'low_rise'
                        WHEN levels <= 7 THEN 'multi_storey' ELSE 'high_rise' END AS form
              FROM building WHERE households > 0 AND community_id IS NOT NULL) b
     GROUP BY community_id ORDER BY community_id
"""


def test_housing_types_of_the_nanjing_communities(engine) -> None:
    import_file(engine, NANJING)
    delineate_run(engine)  # proposes the communities (Nanjing's extract has none)
    with engine.connect() as conn:
        expected = conn.execute(sa.text(FORMS_SQL)).all()
        rows = (
            conn.execute(
                sa.text(
                    "SELECT community_id, building_type, levels, levels_source, tags, households "
                    "FROM building WHERE households > 0 AND community_id IS NOT NULL"
                )
            )
            .mappings()
            .all()
        )
    assert expected, "the Nanjing import proposes communities"
    by: dict[int, list] = {}
    for r in rows:
        by.setdefault(r["community_id"], []).append(r)
    tax = classify.taxonomy("changshou")
    decided = 0
    for e in expected:
        mix = classify.mix_of(by[e.community_id])
        assert mix.households == e.households
        known = (e.known or 0) / e.households
        assert round(mix.known_form_share, 4) == round(known, 4)
        d = classify.housing_type(mix, tax)
        if known < 0.5:
            assert d.code is None
            continue
        decided += 1
        high, multi, low = ((x or 0) / e.known for x in (e.high, e.multi, e.low))
        want = ("现代型" if high >= 0.6 else "过渡型" if low >= 0.4 else "现实型"
                if multi >= 0.6 else "综合型")  # fmt: skip
        assert d.code == want, (e.community_id, d)
    assert decided >= 1  # some Nanjing communities have measured levels enough
