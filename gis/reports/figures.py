"""A figure of a report: its value and where it came from (the query or function)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Figure:
    """One reported value.

    ``source`` names what produced it: a query of this package (``gis.reports.<module>.
    <NAME>``) or a function of another (``gis.patrol.weekly.summary``). ``value`` is None
    when it cannot be computed (``note`` says why); ``is_partial`` when it counts only the
    rows the user may see and the user does not hold the whole community.
    """

    value: Any
    source: str
    unit: str | None = None
    note: str | None = None
    is_partial: bool = False
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "source": self.source}
        if self.unit:
            out["unit"] = self.unit
        if self.note:
            out["note"] = self.note
        out["is_partial"] = self.is_partial
        if self.detail:
            out["detail"] = self.detail
        return out


def share(part: int, whole: int) -> float | None:
    """``part / whole`` to four places; None for an empty whole."""
    return None if whole == 0 else round(part / whole, 4)
