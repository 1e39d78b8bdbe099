"""When a problem is overdue (超期): the one rule of the problems list, the escalation job,
today's reminders and the weekly summary.

A deadline exists only for time-limited handling (限时办结). The seed (001) sets the time
limit on the handling: "确保在规定时间内使居民需求得以满足", and crosses a problem off
(挂牌销号) only once someone else has verified it. So:

* not yet resolved (reported, accepted, in progress) after its deadline: **overdue**;
* resolved **in time** and waiting for its verifier: not overdue (the worker met the limit;
  a slow verification is not their lateness). If verification fails it goes back to
  in progress, and is overdue again when the deadline has passed;
* resolved **late** and not yet verified: still overdue. The lateness stays listed until
  the problem is crossed off, so it keeps its flag (and keeps climbing) until verified;
* verified or closed: never overdue.

"In time" is the latest resolution (a ``problem_event`` to ``resolved`` that is not an
escalation) at or before the deadline.
"""

from __future__ import annotations

UNRESOLVED = ("reported", "accepted", "in_progress")


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)  # our own constants, never a caller's text


def overdue_sql(at: str = ":now", problem: str = "p", status: str | None = None) -> str:
    """A boolean SQL expression (never null): the problem aliased ``problem`` is overdue at
    the time bound to ``at``.

    ``status`` is the expression of its status at that time (default: ``<problem>.status``;
    the weekly summary passes the status read from the history). The three arguments are
    names written in our code, never text from a request.
    """
    status = status or f"{problem}.status"
    resolved_at = (
        f"(SELECT max(pe.at) FROM problem_event pe WHERE pe.problem_id = {problem}.id "
        f"AND pe.to_status = 'resolved' AND pe.escalated_to IS NULL AND pe.at <= {at})"
    )
    return (
        f"coalesce({problem}.deadline < {at} AND ({status} IN ({_quoted(UNRESOLVED)}) "
        f"OR ({status} = 'resolved' AND {resolved_at} > {problem}.deadline)), false)"
    )
