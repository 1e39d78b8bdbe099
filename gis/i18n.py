"""Every message a person sees, in Chinese and English: one catalogue, ``gis/messages.toml``.

Pages and server answers pick the user's language (``zh`` by default; ``en`` on request).
A message is a key with named parameters; the catalogue holds one text per language, so
no English sentence reaches a Chinese screen. Errors raised with a ``key``
(``gis.errors``) are shown in the user's language; an error without one is shown as its
kind's general message (the English ``detail`` stays in the answer for API clients).
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"
CATALOGUE = Path(__file__).with_name("messages.toml")


@lru_cache(maxsize=1)
def catalogue() -> dict[str, dict[str, str]]:
    """Key → {language → text}; every key has every language (the tests check it)."""
    with CATALOGUE.open("rb") as f:
        doc = tomllib.load(f)
    out: dict[str, dict[str, str]] = {}

    def walk(prefix: str, node: dict[str, Any]) -> None:
        for name, value in node.items():
            key = f"{prefix}{name}"
            if isinstance(value, dict) and set(value) <= set(LANGS) and value:
                out[key] = {lang: str(text) for lang, text in value.items()}
            elif isinstance(value, dict):
                walk(f"{key}.", value)

    walk("", doc)
    return out


def lang_of(value: str | None) -> str:
    """A supported language from a cookie value or an Accept-Language header."""
    for part in (value or "").replace(" ", "").split(","):
        code = part.split(";")[0].split("-")[0].lower()
        if code in LANGS:
            return code
    return DEFAULT_LANG


def t(key: str, lang: str = DEFAULT_LANG, **params: Any) -> str:
    """The text of ``key`` in ``lang`` with ``params`` filled in (the key if unknown)."""
    texts = catalogue().get(key)
    if texts is None:
        return key
    text = texts.get(lang) or texts[DEFAULT_LANG]
    # a parameter "@level.unit" is itself a key: translated too ("单元" / "unit")
    params = {
        k: t(v[1:], lang) if isinstance(v, str) and v.startswith("@") else v
        for k, v in params.items()
    }
    try:
        return text.format(**params)
    except (KeyError, IndexError, ValueError):
        return text


def texts(lang: str, prefix: str = "") -> dict[str, str]:
    """Every text of ``lang`` whose key starts with ``prefix`` (for the pages' scripts)."""
    return {k: v.get(lang) or v[DEFAULT_LANG] for k, v in catalogue().items()
            if k.startswith(prefix)}  # fmt: skip
