"""The norms residents' areas are measured against (DOMAIN.md, seeds 000 and 001). Pure.

* full-time workers: one per 300 households, at least five per community (seed 001):
  ``max(5, ceil(households / 300))`` — 300 households need 5, 1,501 need 6;
* backbone team: 50–300 people per residents' area (seed 000), both ends included.
"""

from __future__ import annotations

from typing import Any

HOUSEHOLDS_PER_WORKER = 300
MIN_WORKERS = 5
BACKBONE_MIN = 50
BACKBONE_MAX = 300


def workers_required(households: int) -> int:
    """Full-time workers a community of ``households`` needs."""
    if households < 0:
        raise ValueError("households cannot be negative")
    per_households = -(-households // HOUSEHOLDS_PER_WORKER)  # ceiling, in integers
    return max(MIN_WORKERS, per_households)


def workers_check(households: int, workers: int) -> dict[str, Any]:
    """The staffing norm: required, actual, the shortfall (0 when met), met or not."""
    required = workers_required(households)
    return {
        "required": required,
        "actual": workers,
        "shortfall": max(0, required - workers),
        "is_met": workers >= required,
        "rule": f"max({MIN_WORKERS}, ceil(households / {HOUSEHOLDS_PER_WORKER}))",
    }


def backbone_check(people: int) -> dict[str, Any]:
    """The backbone team against 50–300: below, within or above."""
    status = "below" if people < BACKBONE_MIN else "above" if people > BACKBONE_MAX else "within"
    return {
        "min": BACKBONE_MIN,
        "max": BACKBONE_MAX,
        "actual": people,
        "status": status,
        "is_met": status == "within",
        "shortfall": max(0, BACKBONE_MIN - people),
    }
