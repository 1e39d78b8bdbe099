"""The star rating of residents' committees (同心家园, seed 003). Pure: no database.

Indicators (each a share in 0…1, or None when it cannot be told) are weighted as
``gis/reports/rating.toml`` says; the score is their weighted mean over those with a value;
the stars are the first threshold the score reaches; a failed gate of the four withouts
(四无) caps them. For each committee, what holds it back: per indicator, the score it loses
(``weight × (1 − value)`` over the weights used) and the stars it would have were that
indicator perfect; per failed gate, the stars it would have without the cap.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from gis.patrol.problems import CATEGORIES

CONFIG_PATH = Path(__file__).with_name("rating.toml")
INDICATORS = ("satisfaction", "urgent_response", "work_standard")
GATES = (
    "no_illegal_construction",
    "no_prominent_illegal_problem",
    "no_public_safety_problem",
    "no_service_gap",
)
ONLY_IF = (None, "overdue_or_escalated")


@dataclass(frozen=True)
class Gate:
    code: str
    label_zh: str
    label_en: str
    cap: int
    categories: tuple[str, ...] = ()
    only_if: str | None = None
    facilities_missing: bool = False


@dataclass(frozen=True)
class Config:
    weights: dict[str, float]
    labels: dict[str, tuple[str, str]]
    window_days: int
    work_parts: tuple[str, ...]
    stars: tuple[tuple[int, float], ...]  # (stars, at least), falling
    gates: tuple[Gate, ...]
    min_survey_answers: int
    target_five: float
    target_three_four: float


def parse_config(raw: dict[str, Any]) -> Config:
    """Check and read the rating file's content (a ValueError names what is wrong)."""
    ind = raw.get("indicators", {})
    if set(ind) != set(INDICATORS):
        raise ValueError(f"rating.toml: indicators must be exactly {', '.join(INDICATORS)}")
    weights = {k: float(ind[k]["weight"]) for k in INDICATORS}
    if any(w <= 0 for w in weights.values()):
        raise ValueError("rating.toml: every weight must be above 0")
    stars = tuple((int(s["stars"]), float(s["at_least"])) for s in raw["stars"])
    if [s for s, _ in stars] != [5, 4, 3, 2, 1] or stars[-1][1] != 0.0:
        raise ValueError("rating.toml: stars 5 to 1 in that order, the last at_least 0")
    if any(a[1] <= b[1] for a, b in zip(stars, stars[1:], strict=False)):
        raise ValueError("rating.toml: the thresholds must fall from 5 stars to 1")
    gates = []
    for code in GATES:
        g = raw["gates"][code]
        cats = tuple(g.get("categories", ()))
        if unknown := set(cats) - set(CATEGORIES):
            raise ValueError(f"rating.toml: {code}: unknown problem categories {unknown}")
        if g.get("only_if") not in ONLY_IF or not 1 <= int(g["cap"]) <= 4:
            raise ValueError(f"rating.toml: {code}: only_if or cap (1–4) is wrong")
        gates.append(
            Gate(
                code,
                g["label_zh"],
                g["label_en"],
                int(g["cap"]),
                cats,
                g.get("only_if"),
                bool(g.get("facilities_missing", False)),
            )
        )
    return Config(
        weights=weights,
        labels={k: (ind[k]["label_zh"], ind[k]["label_en"]) for k in INDICATORS},
        window_days=int(ind["urgent_response"]["window_days"]),
        work_parts=tuple(ind["work_standard"]["parts"]),
        stars=stars,
        gates=tuple(gates),
        min_survey_answers=int(raw["min_survey_answers"]),
        target_five=float(raw["target"]["five_stars"]),
        target_three_four=float(raw["target"]["three_to_four_stars"]),
    )


@cache
def load_config(path: Path = CONFIG_PATH) -> Config:
    """The rating file (cached)."""
    with path.open("rb") as f:
        return parse_config(tomllib.load(f))


def stars_of(score: float, config: Config) -> int:
    """Stars of a score: the first threshold it reaches."""
    return next(s for s, at_least in config.stars if score >= at_least - 1e-9)


def score_of(values: dict[str, float | None], config: Config) -> float | None:
    """Weighted mean of the indicators with a value; None when none has one."""
    used = {k: v for k, v in values.items() if v is not None}
    if not used:
        return None
    total = sum(config.weights[k] for k in used)
    return sum(config.weights[k] * v for k, v in used.items()) / total


def rate(values: dict[str, float | None], failed: list[str], config: Config) -> dict[str, Any]:
    """The rating of one committee from its indicator values and its failed gates."""
    score = score_of(values, config)
    if score is None:
        return {
            "stars": None,
            "score": None,
            "uncapped_stars": None,
            "capped_by": failed,
            "held_back_by": [],
            "missing": [k for k in INDICATORS if values.get(k) is None],
        }
    uncapped = stars_of(score, config)
    caps = {g.code: g.cap for g in config.gates}
    cap = min((caps[g] for g in failed), default=5)
    stars = min(uncapped, cap)
    used = {k: v for k, v in values.items() if v is not None}
    total = sum(config.weights[k] for k in used)
    held: list[dict[str, Any]] = []
    for k, v in used.items():
        loss = config.weights[k] * (1 - v) / total
        if loss <= 1e-9:
            continue
        perfect = stars_of(score_of({**values, k: 1.0}, config) or 0.0, config)
        held.append(
            {
                "kind": "indicator",
                "code": k,
                "value": round(v, 4),
                "score_lost": round(loss, 4),
                "stars_if_perfect": min(perfect, cap),
                "stars_gained": min(perfect, cap) - stars,
            }
        )
    for g in failed:
        without = min((caps[o] for o in failed if o != g), default=5)
        held.append(
            {
                "kind": "gate",
                "code": g,
                "cap": caps[g],
                "stars_without_gate": min(uncapped, without),
                "stars_gained": min(uncapped, without) - stars,
            }
        )
    held.sort(key=lambda h: (-h["stars_gained"], -h.get("score_lost", 0.0)))
    return {
        "stars": stars,
        "score": round(score, 4),
        "uncapped_stars": uncapped,
        "capped_by": failed if stars < uncapped else [],
        "failed_gates": failed,
        "held_back_by": held,
        "missing": [k for k in INDICATORS if values.get(k) is None],
    }


def distribution(stars: list[int | None], config: Config) -> dict[str, Any]:
    """How many committees have each number of stars, against the target shares."""
    rated = [s for s in stars if s is not None]
    n = len(rated)
    counts = {str(s): rated.count(s) for s in (5, 4, 3, 2, 1)}
    five = counts["5"] / n if n else None
    three_four = (counts["3"] + counts["4"]) / n if n else None
    return {
        "rated": n,
        "unrated": len(stars) - n,
        "counts": counts,
        "five_stars_share": None if five is None else round(five, 4),
        "three_to_four_share": None if three_four is None else round(three_four, 4),
        "target": {
            "five_stars": config.target_five,
            "three_to_four_stars": config.target_three_four,
        },
        # the seed sets the shares as a target, not a quota: the difference is shown
        "five_stars_minus_target": None if five is None else round(five - config.target_five, 4),
        "three_to_four_minus_target": None
        if three_four is None
        else round(three_four - config.target_three_four, 4),
    }
