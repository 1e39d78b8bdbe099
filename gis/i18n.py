"""Every message a person sees, in Chinese and English: one catalogue, ``gis/messages.toml``
plus the files of ``gis/messages/`` (one per part of the app; a key defined twice is an error).

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
CATALOGUE_PARTS = Path(__file__).with_name("messages")


def catalogue_files() -> list[Path]:
    """The catalogue's files: the main one, then ``gis/messages/*.toml`` in name order."""
    return [CATALOGUE, *sorted(CATALOGUE_PARTS.glob("*.toml"))]


@lru_cache(maxsize=1)
def catalogue() -> dict[str, dict[str, str]]:
    """Key → {language → text}; every key has every language (the tests check it)."""
    out: dict[str, dict[str, str]] = {}
    origin: dict[str, Path] = {}

    def walk(prefix: str, node: dict[str, Any], path: Path) -> None:
        for name, value in node.items():
            key = f"{prefix}{name}"
            if isinstance(value, dict) and set(value) <= set(LANGS) and value:
                if key in out:
                    raise ValueError(f"message {key} is defined in {origin[key]} and {path}")
                out[key] = {lang: str(text) for lang, text in value.items()}
                origin[key] = path
            elif isinstance(value, dict):
                walk(f"{key}.", value, path)

    for path in catalogue_files():
        with path.open("rb") as f:
            walk("", tomllib.load(f), path)
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
