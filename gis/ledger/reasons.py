"""Why an import refuses a cell, a row or a file: a stable code, its values, and its text
in each language (gis/messages/ledgers.toml, ``import_reason.*`` and ``import_warning.*``).

A ``Reason`` is also a ``str``: the Chinese and English texts together, for logs, the CLI
and the English ``detail`` of an API error, so code that only passes reasons on needs no
change. What a person reads is ``text(lang)``, one language only; API clients key on
``code``.
"""

from __future__ import annotations

from typing import Any

from gis import i18n

REASON = "import_reason."
WARNING = "import_warning."
UNCODED = "other"  # a plain string passed where a Reason belongs: shown as it is


class Reason(str):
    """One reason (or warning), by code, with the values its texts name."""

    code: str
    params: dict[str, Any]
    prefix: str

    def __new__(cls, code: str, *, prefix: str = REASON, **params: Any) -> Reason:
        key = prefix + code
        if key not in i18n.catalogue():  # a typo fails where it is made, not on a screen
            raise KeyError(f"no message {key}")
        zh, en = (i18n.t(key, lang, **params) for lang in ("zh", "en"))
        self = super().__new__(cls, f"{zh} ({en})")
        self.code, self.params, self.prefix = code, dict(params), prefix
        return self

    def text(self, lang: str) -> str:
        """The reason in ``lang`` only."""
        return i18n.t(self.prefix + self.code, lang, **self.params)

    def __reduce__(self) -> tuple[Any, ...]:  # copies and pickles keep the code
        return (_rebuild, (self.code, self.prefix, self.params))


def _rebuild(code: str, prefix: str, params: dict[str, Any]) -> Reason:
    return Reason(code, prefix=prefix, **params)


def reason(code: str, **params: Any) -> Reason:
    """The reason ``code`` (``import_reason.<code>``) with ``params`` filled in."""
    return Reason(code, **params)


def warning(code: str, **params: Any) -> Reason:
    """The warning ``code`` (``import_warning.<code>``) with ``params`` filled in."""
    return Reason(code, prefix=WARNING, **params)


def code_of(text: str) -> str:
    """The stable code of a reason ("other" for a plain string)."""
    return text.code if isinstance(text, Reason) else UNCODED


def text_of(text: str, lang: str) -> str:
    """What a person reading ``lang`` sees of a reason (a plain string as it is)."""
    return text.text(lang) if isinstance(text, Reason) else str(text)
