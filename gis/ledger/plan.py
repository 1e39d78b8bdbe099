"""What a spreadsheet import would do, or did: counts, bad rows and the planned writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from gis import i18n
from gis.ledger.reasons import code_of, text_of

Action = tuple[Literal["add", "update"], int | None, dict[str, Any], int]  # what, id, values, row


@dataclass
class Plan:
    """What an import would do, or did."""

    ledger: str
    total_rows: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    written: bool = False
    actions: list[Action] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)  # every resident or entry compared
    registered_elsewhere: int = 0  # numbers found registered outside the user's areas

    def error(self, row: int, heading: str, value: Any, reason: str) -> None:
        shown = None if value is None else str(value)
        if shown is not None and len(shown) > 200:  # the answer echoes it: keep it short
            shown = shown[:200] + "…"
        self.errors.append({"row": row, "column": heading, "value": shown, "reason": reason})

    def compare(self, row_id: int, values: dict[str, Any], now: dict[str, Any], n: int) -> None:
        """Plan an update of the values that differ from ``now``, or count the row unchanged."""
        changes = {k: v for k, v in values.items() if k in now and now[k] != v}
        if changes:
            self.actions.append(("update", row_id, changes, n))
        else:
            self.unchanged += 1

    def summary(self, lang: str = i18n.DEFAULT_LANG) -> dict[str, Any]:
        """The plan as the API answers it: every reason in ``lang`` only, with its code."""
        bad_rows = len({e["row"] for e in self.errors})
        errors = [
            {**e, "reason": text_of(e["reason"], lang), "code": code_of(e["reason"])}
            for e in self.errors[:1000]
        ]
        warnings = [text_of(w, lang) for w in self.warnings]
        return {
            "ledger": self.ledger,
            "total_rows": self.total_rows,
            "valid_rows": self.total_rows - bad_rows,
            "bad_rows": bad_rows,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "written": self.written,
            "errors": errors,
            "warnings": [w if len(w) <= 300 else w[:300] + "…" for w in warnings],
            "warning_codes": [code_of(w) for w in self.warnings],
        }
