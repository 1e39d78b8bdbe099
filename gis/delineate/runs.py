"""Delineation runs: what each was asked for, and the household band it drew groups to.

A run's row in ``delineation_run`` keeps its ``Params`` and the community it redrew
(``community``: null when it drew all). Edits, warnings and map colours judge a group by
the band of the run that drew it, not by the default target.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gis.delineate.model import DEFAULT_BAND, Params, Result, band_of


def record_run(conn: Connection, params: Params, only: str | None, r: Result) -> int:
    """Store the run's targets, coverage key, quality and timings; return its id."""
    stored = {k: (sorted(v) if isinstance(v, frozenset) else v) for k, v in asdict(params).items()}
    stored["community"] = only
    return int(
        conn.scalar(
            sa.text(
                "INSERT INTO delineation_run (params, coverage_key, quality, timings) VALUES "
                "(CAST(:p AS jsonb), :k, CAST(:q AS jsonb), CAST(:t AS jsonb)) RETURNING id"
            ),
            {
                "p": json.dumps(stored),
                "k": r.coverage[0],
                "q": json.dumps(r.quality),
                "t": json.dumps(r.timings),
            },
        )
    )


def band_of_params(params: dict | None) -> tuple[float, float]:
    """Return the group band of a run's stored params (the default one when none)."""
    default = Params()
    if not params:
        return default.group_min, default.group_max
    target = params.get("group_households", default.group_households)
    return band_of(float(target), float(params.get("band", DEFAULT_BAND)))


def group_band(conn: Connection, community_id: int) -> tuple[float, float]:
    """Return the (lowest, highest) households in band for groups of ``community_id``.

    The band is that of the latest run that drew the community: one for it alone, or one
    over every community. Runs stored before runs named their community count as the latter.
    """
    params = conn.scalar(
        sa.text(
            "SELECT r.params FROM delineation_run r WHERE r.params->>'community' IS NULL "
            "OR r.params->>'community' = (SELECT code FROM community WHERE id = :c) "
            "ORDER BY r.id DESC LIMIT 1"
        ),
        {"c": community_id},
    )
    return band_of_params(params)


def group_bands(conn: Connection) -> dict[str, tuple[float, float]]:
    """Return the group band of every community that has groups, by community code."""
    rows = conn.execute(
        sa.text(
            "SELECT DISTINCT cm.id, cm.code FROM community cm "
            "JOIN residents_group g ON g.community_id = cm.id"
        )
    ).all()
    return {code: group_band(conn, cid) for cid, code in rows}
