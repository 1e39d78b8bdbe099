"""Who may do what: the only place that knows which role holds which permission.

Callers ask by name — ``may(user, "assign_leader")`` or ``require(user, "export_ledgers")``
— and never compare role names themselves. Scope (which areas) is a separate question,
answered by row-level security and ``gis.areas``: a permission says what a role may do
inside its own areas.
"""

from __future__ import annotations

from typing import Protocol

from gis.errors import Forbidden

ROLES = ("admin", "planner", "committee_staff", "grid_worker", "building_leader")
ROLE_LABELS = {
    "admin": "系统管理员",
    "planner": "街道规划人员",
    "committee_staff": "社区工作人员",
    "grid_worker": "网格员",
    "building_leader": "楼栋长",
}

_STAFF = frozenset({"admin", "committee_staff"})
_WRITERS = _STAFF | {"grid_worker"}
_PEOPLE = _WRITERS | {"building_leader"}

# permission -> roles that hold it
PERMISSIONS: dict[str, frozenset[str]] = {
    "whole_city": frozenset({"admin"}),  # needs no areas: every area is theirs
    "see_people": _PEOPLE,  # personal rows; planners get counts only
    "see_counts": frozenset(ROLES),
    "reveal_id_number": _STAFF,
    "reveal_phone": _WRITERS,
    "write_residents": _WRITERS,
    "delete_residents": _STAFF,
    "write_special_groups": _WRITERS,
    "write_backbone": _WRITERS,
    "write_key_persons": _STAFF,
    "write_organisations": _STAFF,
    "import_ledgers": _STAFF,  # a preview compares every row with the ledger: a read
    "export_ledgers": _STAFF,  # the file holds ID numbers in clear
    "subject_rights": _STAFF,  # a person's own copy, erasure (PIPL)
    "assign_leader": _STAFF,
    "edit_map": _STAFF,  # delineation runs, moves, locks; facility edits
    "edit_city_map": frozenset({"admin"}),  # map edits anywhere, redraws of the whole city
    "run_reach_city": frozenset({"admin"}),  # replaces the stored reach of the whole city
    "manage_users": frozenset({"admin"}),
    "see_job_runs": frozenset({"admin"}),  # the scheduled jobs' passes (gis/scheduler.py)
    "rate_committees": _STAFF,  # star ratings computed and published (gis/reports)
    "run_surveys": _STAFF,  # survey rounds and the stairwell sheets (gis/reports)
    # pages of the tablet app (api/shell.py: the menu)
    "page_grid": _PEOPLE,
    "page_reach": _STAFF | {"planner"},
    "page_leaders": _STAFF,
    "page_groups": _STAFF,
    "page_ledgers": _STAFF,
    "page_patrol": _WRITERS,
    "page_city": _STAFF | {"planner"},
    "page_docs": frozenset({"admin"}),
    "page_reports": _STAFF,  # the reports dashboard (api/routes/reports_dashboard.py)
}


class HasRole(Protocol):
    role: str


def roles_with(permission: str) -> frozenset[str]:
    """The roles that hold ``permission`` (KeyError for an unknown name: a typo fails)."""
    return PERMISSIONS[permission]


def may(user: HasRole, permission: str) -> bool:
    """Whether ``user``'s role holds ``permission``."""
    return user.role in PERMISSIONS[permission]


def require(user: HasRole, permission: str, what: str | None = None) -> None:
    """Refuse (403) unless ``user`` holds ``permission``; the message names who may."""
    if not may(user, permission):
        raise Forbidden(refusal(permission, what))


def refusal(permission: str, what: str | None = None) -> str:
    """The message of a refusal: who may do it, in English and Chinese."""
    holders = [r for r in ROLES if r in PERMISSIONS[permission]]
    labels = "、".join(ROLE_LABELS[r] for r in holders)
    action = what or permission.replace("_", " ")
    return f"only {', '.join(holders)} ({labels}) may {action}"
