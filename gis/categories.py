"""Facility categories and the editable mapping from OSM tags to them."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from gis.errors import InvalidInput

DEFAULT_MAPPING = Path(__file__).with_name("facility_categories.toml")
FACILITY_KEYS = (
    "amenity",
    "shop",
    "healthcare",
    "leisure",
    "office",
    "social_facility",
    "craft",
    "tourism",
)


@dataclass(frozen=True)
class Category:
    """One facility category: its code, Chinese and English labels, group and tag rules."""

    code: str
    label_zh: str
    group: str
    rules: tuple[tuple[tuple[str, frozenset[str] | None], ...], ...]
    label_en: str = ""

    def label(self, lang: str) -> str:
        """The label a person reading ``lang`` ("zh" or "en") sees."""
        return self.label_en if lang == "en" and self.label_en else self.label_zh

    def matches(self, tags: dict[str, str]) -> bool:
        """Return whether any rule (all of its key=value terms) holds for ``tags``."""
        for rule in self.rules:
            if all(key in tags and (values is None or tags[key] in values) for key, values in rule):
                return True
        return False


def _parse_rule(text: str, where: str) -> tuple[tuple[str, frozenset[str] | None], ...]:
    terms = []
    for term in text.split("&"):
        key, sep, value = term.strip().partition("=")
        if not sep or not key or not value:
            raise InvalidInput(f"{where}: rule {text!r} must read key=value, key=a|b or key=*")
        terms.append((key, None if value == "*" else frozenset(value.split("|"))))
    return tuple(terms)


@lru_cache
def load_categories(path: Path = DEFAULT_MAPPING) -> tuple[Category, ...]:
    """Read the category mapping file; a malformed file is refused with its reason."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise InvalidInput(f"cannot read facility mapping {path}: {err}") from err
    out = []
    for code, spec in doc.get("categories", {}).items():
        where = f"{path.name} [categories.{code}]"
        try:
            rules = tuple(_parse_rule(r, where) for r in spec["match"])
            out.append(Category(code, spec["label_zh"], spec["group"], rules, spec["label_en"]))
        except KeyError as err:
            raise InvalidInput(f"{where}: missing {err.args[0]!r}") from err
    if not out:
        raise InvalidInput(f"{path}: no [categories.*] tables")
    return tuple(out)


def categorise(tags: dict[str, str], categories: tuple[Category, ...]) -> list[str]:
    """Return the codes of every category whose rules ``tags`` satisfy."""
    relevant, cache = _lookup_state(categories)
    key = tuple(sorted((k, v) for k, v in tags.items() if k in relevant))
    found = cache.get(key)
    if found is None:
        found = cache[key] = tuple(c.code for c in categories if c.matches(dict(key)))
    return list(found)


_STATE: dict[int, tuple[tuple[Category, ...], frozenset[str], dict]] = {}


def _lookup_state(categories: tuple[Category, ...]) -> tuple[frozenset[str], dict]:
    # Many features share the same tags (shop=convenience …): match each combination once.
    # Keyed by identity, as hashing the whole mapping per feature would cost more than it saves.
    state = _STATE.get(id(categories))
    if state is None or state[0] is not categories:
        keys = frozenset(k for c in categories for rule in c.rules for k, _ in rule)
        state = _STATE[id(categories)] = (categories, keys, {})
    return state[1], state[2]


def category_labels(lang: str) -> dict[str, str]:
    """Category code → its label in ``lang``, in the mapping's order."""
    return {c.code: c.label(lang) for c in load_categories()}


def category_codes() -> set[str]:
    """Return the set of known category codes."""
    return {c.code for c in load_categories()}
