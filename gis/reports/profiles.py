"""Community profiles (社区概况): counts from the map, the ledgers and the logins, and classes.

A community is reported to a user who may see it (``gis.areas.visible_sql``: it holds a
building of the user's scope; others are a 404, as everywhere in the API). Figures from the
map (households, buildings, groups, grids) are the whole community's. Figures about people
(backbone) count the rows the user may read (row-level security): ``is_partial`` says when
the user does not hold the whole community. Planners, who read no personal rows, get them
counted by the database (``gis.reports.counts``), small counts withheld (``"suppressed"``),
and only for a community they hold whole (else ``value`` None, with a note).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis import levels, permissions
from gis.areas import visible_sql
from gis.audit import Who
from gis.errors import NotFound
from gis.reports import classify, counts
from gis.reports.figures import Figure
from gis.suppression import WITHHELD

COMMUNITY = levels.level("community")
# Scope levels a grid worker may be given inside a community (a subdistrict-wide login is
# no community's worker), each found through building_path's column of that level.
WORKER_LEVELS = ("community", "grid", "residents_group", "building_cluster", "unit", "building")
_WORKER_MATCH = " OR ".join(
    f"(s.level = '{lv}' AND p.{levels.level(lv).path_column} = s.area_id)" for lv in WORKER_LEVELS
)

# households of a building: its house register's dwellings when it has one, else the
# estimate (dwelling_estimate: one dwelling per estimated household) — dwelling_all's sum,
# without generating the estimated rows
BUILDING_HOUSEHOLDS = """
    SELECT b.id, b.community_id, b.building_type, b.levels, b.levels_source,
           coalesce(reg.households, b.households) AS households,
           reg.households IS NOT NULL AS is_registered,
           (SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(b.tags) e
             WHERE e.key = ANY(:year_tags)) AS year_tags
      FROM building b
      LEFT JOIN (SELECT building_id, sum(households)::bigint AS households FROM dwelling
                  GROUP BY building_id) reg ON reg.building_id = b.id
"""
PROFILES = f"""
    WITH c AS MATERIALIZED (
        SELECT t.id, t.code, t.name, t.subdistrict_id, t.housing_type
          FROM community t
         WHERE {visible_sql(COMMUNITY)} AND (CAST(:id AS bigint) IS NULL OR t.id = :id)
         ORDER BY t.code, t.id LIMIT :limit OFFSET :offset)
    SELECT c.*, sd.code AS subdistrict_code, sd.name AS subdistrict_name,
           ga_holds_community(c.id) AS holds_community,
           (SELECT count(*) FROM building b WHERE b.community_id = c.id) AS buildings,
           (SELECT count(*) FROM building b WHERE b.community_id = c.id AND b.households > 0)
             AS residential_buildings,
           (SELECT count(*) FROM grid g WHERE g.community_id = c.id) AS grids,
           (SELECT count(*) FROM residents_group g WHERE g.community_id = c.id)
             AS residents_groups,
           (SELECT count(DISTINCT u.id) FROM app_user u
              JOIN app_user_scope s ON s.user_id = u.id
              JOIN building_path p ON p.community_id = c.id AND ({_WORKER_MATCH})
             WHERE u.role = 'grid_worker' AND u.is_active) AS workers,
           (SELECT count(DISTINCT k.resident_id) FROM backbone k
              JOIN resident r ON r.id = k.resident_id
              JOIN building b ON b.id = r.building_id
             WHERE b.community_id = c.id) AS backbone_people
      FROM c LEFT JOIN subdistrict sd ON sd.id = c.subdistrict_id
     ORDER BY c.code, c.id
"""
VISIBLE_COUNT = f"SELECT count(*) FROM community t WHERE {visible_sql(COMMUNITY)}"
MIX = f"WITH bh AS ({BUILDING_HOUSEHOLDS} WHERE b.community_id = ANY(:ids)) SELECT * FROM bh"
SOURCE = "gis.reports.profiles.PROFILES"


def _mixes(conn: Connection, ids: list[int], config: classify.Config) -> dict[int, Any]:
    rows = conn.execute(sa.text(MIX), {"ids": ids, "year_tags": list(config.year_tags)}).all()
    by: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    registered: dict[int, int] = dict.fromkeys(ids, 0)
    for r in rows:
        by[r.community_id].append(
            {"building_type": r.building_type, "levels": r.levels,
             "levels_source": r.levels_source, "tags": r.year_tags or {},
             "households": int(r.households)}
        )  # fmt: skip
        if r.is_registered:
            registered[r.community_id] += int(r.households)
    return {i: (classify.mix_of(by[i], config), registered[i]) for i in ids}


def _planner_backbone(conn: Connection, user: Who, ids: list[int]) -> dict[int, Any]:
    """Backbone people of each community for a user who reads no personal rows."""
    if permissions.may(user, "see_people"):
        return {}
    hidden = counts.stats_withheld_backbone(conn, ids)
    out: dict[int, Any] = {}
    for cid in ids:
        c = counts.read(conn, cid)
        out[cid] = None if c is None else WITHHELD if cid in hidden else c.get("backbone_people")
    return out


def _profile(
    r: Any, mix: classify.Mix, registered: int, user: Who, tax: classify.Taxonomy,
    config: classify.Config, planner_backbone: Any = None,
) -> dict[str, Any]:  # fmt: skip
    is_partial = not r.holds_community
    if permissions.may(user, "see_people"):
        backbone = Figure(
            int(r.backbone_people),
            f"{SOURCE} (backbone_people: distinct residents in the backbone ledger)",
            "people",
            None,
            is_partial,
        )
    else:
        backbone = Figure(planner_backbone, f"{counts.SOURCE} (backbone_people)", "people",
                          counts.note_for(planner_backbone))  # fmt: skip
    band = classify.household_band(mix.households, config)
    derived = classify.housing_type(mix, tax)
    recorded = r.housing_type
    figures = {
        "households": Figure(mix.households, "gis.reports.profiles.BUILDING_HOUSEHOLDS "
                             "(dwelling, else dwelling_estimate)", "households",
                             detail={"registered": registered,
                                     "estimated": mix.households - registered}),
        "buildings": Figure(int(r.buildings), f"{SOURCE} (buildings)", "buildings",
                            detail={"residential": int(r.residential_buildings)}),
        "grids": Figure(int(r.grids), f"{SOURCE} (grids)", "grids"),
        "residents_groups": Figure(int(r.residents_groups), f"{SOURCE} (residents_groups)",
                                   "groups"),
        "workers": Figure(int(r.workers), f"{SOURCE} (workers: active grid_worker logins "
                          "scoped to the community or an area in it)", "people"),
        "backbone_people": backbone,
    }  # fmt: skip
    return {
        "id": int(r.id),
        "code": r.code,
        "name": r.name,
        "subdistrict": {
            "id": r.subdistrict_id,
            "code": r.subdistrict_code,
            "name": r.subdistrict_name,
        },  # fmt: skip
        "holds_community": bool(r.holds_community),
        "figures": {k: f.as_dict() for k, f in figures.items()},
        "classification": {
            "households_band": {
                "code": band.code,
                "label_zh": band.label_zh,
                "label_en": band.label_en,
                "lower": band.lower,
                "upper": band.upper,
                "source": "gis.reports.classify.household_band",
            },
            "housing_type": {
                "taxonomy": tax.code,
                "code": derived.code,
                "reason": derived.reason,
                "known_form_share": derived.known_form_share,
                "shares": dict(derived.shares),
                "recorded": recorded,
                "agrees_with_recorded": None
                if recorded is None or derived.code is None
                else recorded == derived.code,
                "source": "gis.reports.classify.housing_type",
            },
        },  # fmt: skip
    }


def profiles(
    conn: Connection,
    user: Who,
    *,
    taxonomy: str | None = None,
    community_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """A page of the profiles of the communities the user may see (code order)."""
    config = classify.load_config()
    tax = classify.taxonomy(taxonomy, config)
    params = {"id": community_id, "limit": limit, "offset": offset}
    rows = conn.execute(sa.text(PROFILES), params).all()
    total = len(rows) if community_id is not None else int(conn.scalar(sa.text(VISIBLE_COUNT)))
    mixes = _mixes(conn, [int(r.id) for r in rows], config)
    backbone = _planner_backbone(conn, user, [int(r.id) for r in rows])
    items = [_profile(r, *mixes[int(r.id)], user, tax, config, backbone.get(int(r.id)))
             for r in rows]  # fmt: skip
    return {"total": total, "limit": limit, "offset": offset, "taxonomy": tax.code,
            "items": items}  # fmt: skip


def profile(
    conn: Connection, user: Who, community_id: int, *, taxonomy: str | None = None
) -> dict[str, Any]:
    """One community's profile; a 404 outside the user's scope."""
    page = profiles(conn, user, taxonomy=taxonomy, community_id=community_id, limit=1)
    if not page["items"]:
        raise NotFound(f"no community {community_id}", key="reports.no_community",
                       id=community_id)  # fmt: skip
    return page["items"][0]


def classification_table(
    conn: Connection, user: Who, *, taxonomy: str | None = None, limit: int = 2000
) -> dict[str, Any]:
    """The visible communities counted by household band and by housing type, in the
    shape of seed 000's two tables (each class: how many and which)."""
    config = classify.load_config()
    tax = classify.taxonomy(taxonomy, config)
    page = profiles(conn, user, taxonomy=tax.code, limit=limit)
    by_band = {b.code: [] for b in config.bands}
    by_type: dict[str | None, list[str]] = {t.code: [] for t in tax.types}
    by_type[None] = []
    for p in page["items"]:
        label = p["name"] or p["code"]
        by_band[p["classification"]["households_band"]["code"]].append(label)
        by_type[p["classification"]["housing_type"]["code"]].append(label)
    return {
        "taxonomy": tax.code,
        "communities": len(page["items"]),
        "is_complete": page["total"] <= limit,
        "by_households": [
            {"code": b.code, "label_zh": b.label_zh, "label_en": b.label_en, "lower": b.lower,
             "upper": b.upper, "count": len(by_band[b.code]), "communities": by_band[b.code]}
            for b in config.bands
        ],
        "by_type": [
            {"code": code, "count": len(names), "communities": names}
            for code, names in by_type.items()
        ],
        "source": "gis.reports.profiles.classification_table",
    }  # fmt: skip
