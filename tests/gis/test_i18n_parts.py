"""The catalogue is read from several files; a key defined twice must not silently win."""

from __future__ import annotations

import pytest

from gis import i18n


@pytest.fixture
def parts(tmp_path, monkeypatch):
    main = tmp_path / "messages.toml"
    main.write_text('[app]\nname = { zh = "网格地图", en = "Grid Atlas" }\n', encoding="utf-8")
    folder = tmp_path / "messages"
    folder.mkdir()
    monkeypatch.setattr(i18n, "CATALOGUE", main)
    monkeypatch.setattr(i18n, "CATALOGUE_PARTS", folder)
    i18n.catalogue.cache_clear()
    yield folder
    i18n.catalogue.cache_clear()


def test_a_part_adds_its_keys(parts):
    (parts / "tiles.toml").write_text('[tiles]\nwalk = { zh = "步行网络", en = "Walk network" }\n',
                                      encoding="utf-8")
    assert i18n.t("tiles.walk", "zh") == "步行网络"
    assert i18n.t("app.name", "en") == "Grid Atlas"


def test_a_key_defined_in_two_files_is_refused(parts):
    (parts / "x.toml").write_text('[app]\nname = { zh = "别的", en = "Other" }\n', encoding="utf-8")
    with pytest.raises(ValueError, match="app.name"):
        i18n.catalogue()


def test_the_real_catalogue_loads_every_part():
    i18n.catalogue.cache_clear()
    cat = i18n.catalogue()
    assert "app.name" in cat
    assert all(set(texts) == set(i18n.LANGS) for texts in cat.values())
