"""Classes of residents' areas: by households (seed 000's bands) and by housing type.

Pure: the configuration comes from ``classification.toml`` (next to this file), buildings
come in as plain values. How a building's form and era are told, and how a taxonomy's
types are derived from their shares of households, is stated in that file and in
docs/reports.md; :func:`housing_type` returns the reason with the type, so a report can say
why an area is what it is.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from gis.errors import InvalidInput

CONFIG = Path(__file__).with_name("classification.toml")
FORMS = ("low_rise", "multi_storey", "high_rise")
ERAS = ("before_1949", "planned", "since_2000")
MEASURED_LEVELS = ("tag", "height")  # building.levels_source values that are evidence
YEAR = re.compile(r"(?<!\d)(1[5-9]\d\d|20\d\d)(?!\d)")


@dataclass(frozen=True)
class Band:
    code: str
    label_zh: str
    label_en: str
    lower: int
    upper: int | None  # exclusive; None: no upper bound

    def holds(self, households: int) -> bool:
        return households >= self.lower and (self.upper is None or households < self.upper)


@dataclass(frozen=True)
class HousingType:
    code: str
    label_en: str
    when: tuple[Mapping[str, float], ...]  # alternatives; empty: recorded only
    is_otherwise: bool


@dataclass(frozen=True)
class Taxonomy:
    code: str
    label_zh: str
    label_en: str
    source: str
    min_known_share: float
    types: tuple[HousingType, ...]


@dataclass(frozen=True)
class Config:
    bands: tuple[Band, ...]
    low_rise_types: frozenset[str]
    low_rise_max_levels: int
    multi_storey_max_levels: int
    year_tags: tuple[str, ...]
    before_1949_until: int
    planned_until: int
    taxonomies: Mapping[str, Taxonomy]
    default_taxonomy: str


def _bands(doc: dict[str, Any]) -> tuple[Band, ...]:
    bands = tuple(
        Band(b["code"], b["label_zh"], b["label_en"], int(b["lower"]),
             None if b.get("upper") is None else int(b["upper"]))
        for b in doc["household_bands"]
    )  # fmt: skip
    # the bands must tile 0 … ∞ without gaps or overlaps, else an area has no class or two
    edge = 0
    for b in bands:
        if b.lower != edge or (b.upper is not None and b.upper <= b.lower):
            raise InvalidInput(f"household band {b.code} must start at {edge} and end above")
        edge = b.upper if b.upper is not None else -1
    if edge != -1:
        raise InvalidInput("the last household band must have no upper bound")
    return bands


def _taxonomy(code: str, spec: dict[str, Any]) -> Taxonomy:
    types = []
    for t in spec["types"]:
        when = tuple(dict(alt) for alt in t.get("when", []))
        for alt in when:
            unknown = set(alt) - set(FORMS) - set(ERAS)
            if unknown:
                raise InvalidInput(f"taxonomy {code}, type {t['code']}: unknown share "
                                   f"{sorted(unknown)}; use {', '.join(FORMS + ERAS)}")  # fmt: skip
        types.append(HousingType(t["code"], t.get("label_en", t["code"]), when,
                                 bool(t.get("otherwise", False))))  # fmt: skip
    return Taxonomy(code, spec["label_zh"], spec["label_en"], spec.get("source", ""),
                    float(spec.get("min_known_share", 0.5)), tuple(types))  # fmt: skip


@lru_cache
def load_config(path: Path = CONFIG) -> Config:
    """Read the classification file; a malformed one is refused with its reason."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        forms, eras = doc["building_forms"], doc["building_eras"]
        taxonomies = {k: _taxonomy(k, v) for k, v in doc["taxonomies"].items()}
        config = Config(
            _bands(doc),
            frozenset(forms["low_rise_types"]),
            int(forms["low_rise_max_levels"]),
            int(forms["multi_storey_max_levels"]),
            tuple(eras["year_tags"]),
            int(eras["before_1949_until"]),
            int(eras["planned_until"]),
            taxonomies,
            doc["default_taxonomy"],
        )
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as err:
        raise InvalidInput(f"cannot read the classification file {path}: {err!r}") from err
    if config.default_taxonomy not in taxonomies:
        raise InvalidInput(f"default_taxonomy {config.default_taxonomy} is not a taxonomy")
    return config


def taxonomy(code: str | None, config: Config | None = None) -> Taxonomy:
    """The taxonomy ``code`` (the default one for None); unknown codes are refused."""
    config = config or load_config()
    code = code or config.default_taxonomy
    if code not in config.taxonomies:
        raise InvalidInput(
            f"unknown taxonomy {code!r}: one of {', '.join(config.taxonomies)}",
            key="reports.unknown_taxonomy", code=code, known=", ".join(config.taxonomies),
        )  # fmt: skip
    return config.taxonomies[code]


def household_band(households: int, config: Config | None = None) -> Band:
    """The band holding ``households`` (lower bound inclusive, upper exclusive)."""
    config = config or load_config()
    if households < 0:
        raise InvalidInput("households cannot be negative")
    return next(b for b in config.bands if b.holds(households))


def building_form(
    building_type: str, levels: int | None, levels_source: str, config: Config | None = None
) -> str | None:
    """``low_rise``, ``multi_storey``, ``high_rise``, or None when not known.

    A house-like ``building=*`` is low-rise whatever its levels; otherwise only measured
    levels (``levels_source`` tag or height) count — the import's default is no evidence.
    """
    config = config or load_config()
    if building_type in config.low_rise_types:
        return "low_rise"
    if levels is None or levels_source not in MEASURED_LEVELS or levels < 1:
        return None
    if levels <= config.low_rise_max_levels:
        return "low_rise"
    if levels <= config.multi_storey_max_levels:
        return "multi_storey"
    return "high_rise"


def building_year(tags: Mapping[str, Any], config: Config | None = None) -> int | None:
    """The construction year from the first year tag that holds a year, else None."""
    config = config or load_config()
    for tag in config.year_tags:
        m = YEAR.search(str(tags.get(tag) or ""))
        if m is not None:
            return int(m[1])
    return None


def building_era(year: int | None, config: Config | None = None) -> str | None:
    """``before_1949``, ``planned`` (1949–1999) or ``since_2000``; None for no year."""
    config = config or load_config()
    if year is None:
        return None
    if year < config.before_1949_until:
        return "before_1949"
    return "planned" if year < config.planned_until else "since_2000"


@dataclass(frozen=True)
class Mix:
    """Households of an area by building form and era (None: not known)."""

    households: int
    by_form: Mapping[str | None, int]
    by_era: Mapping[str | None, int]

    @property
    def known_form_share(self) -> float:
        return self._known(self.by_form) / self.households if self.households else 0.0

    @staticmethod
    def _known(counts: Mapping[str | None, int]) -> int:
        return sum(n for k, n in counts.items() if k is not None)

    def shares(self) -> dict[str, float | None]:
        """Each form's share of households of known form, each era's of known era."""
        out: dict[str, float | None] = {}
        for names, counts in ((FORMS, self.by_form), (ERAS, self.by_era)):
            known = self._known(counts)
            for name in names:
                out[name] = None if known == 0 else round(counts.get(name, 0) / known, 4)
        return out


def mix_of(buildings: Iterable[Mapping[str, Any]], config: Config | None = None) -> Mix:
    """The households of ``buildings`` (building_type, levels, levels_source, tags,
    households) by form and era."""
    config = config or load_config()
    by_form: dict[str | None, int] = {}
    by_era: dict[str | None, int] = {}
    total = 0
    for b in buildings:
        n = int(b["households"])
        if n <= 0:
            continue
        total += n
        form = building_form(b["building_type"], b["levels"], b["levels_source"], config)
        era = building_era(building_year(b["tags"] or {}, config), config)
        by_form[form] = by_form.get(form, 0) + n
        by_era[era] = by_era.get(era, 0) + n
    return Mix(total, by_form, by_era)


@dataclass(frozen=True)
class Derived:
    """A derived housing type (None: undetermined) and why."""

    code: str | None
    reason: str  # English, for API clients; the shares are given with it
    shares: Mapping[str, float | None]
    known_form_share: float


def _holds(alternative: Mapping[str, float], shares: Mapping[str, float | None]) -> bool:
    # a share that cannot be known (no building with a year) holds no rule
    return all(shares.get(k) is not None and shares[k] >= v for k, v in alternative.items())


def housing_type(mix: Mix, tax: Taxonomy) -> Derived:
    """The first type of ``tax`` whose rule the mix meets (see classification.toml)."""
    shares = mix.shares()
    known = round(mix.known_form_share, 4)
    if mix.households == 0:
        return Derived(None, "no households", shares, known)
    if known < tax.min_known_share:
        return Derived(
            None,
            f"only {known:.0%} of households are in buildings of known form (levels or "
            f"building type); {tax.min_known_share:.0%} needed",
            shares,
            known,
        )
    for t in tax.types:
        for alt in t.when:
            if _holds(alt, shares):
                rule = " and ".join(f"{k} >= {v:.0%}" for k, v in alt.items())
                return Derived(t.code, f"{rule} of households", shares, known)
    fallback = next((t for t in tax.types if t.is_otherwise), None)
    if fallback is not None:
        return Derived(fallback.code, "no other type's rule holds", shares, known)
    return Derived(None, "no type's rule holds", shares, known)
