"""Send-time checks: a reminder planned for a policy that no longer needs it is not sent.

Renewal reminders, holiday reminders and lapse rescues are queued when the plan runs and sent
later — the next morning after quiet hours, after a retry, or days later on a catch-up. A
renewal or a cancellation imported meanwhile must stop them: "…剩2天，请及时续保" to a
customer who renewed yesterday costs more trust than it earns.

The dispatcher asks :func:`obsolete` about every such message it claimed, just before
sending. A message names a car by its dedup key's policy id (the group's anchor, see
``scheduler.renewal``): the customer's policies with that plate and end date. The message is
still needed while one of them still waits for its renewal as the planner sees it
(``scheduler.renewal.waiting``, not renewed or cancelled by status). Otherwise it is skipped
with reason ``policy_cancelled`` when every policy of the car was cancelled,
``customer_answered`` when the customer told the renewal desk they renewed elsewhere, are not
renewing or sold the car, else ``renewed`` (a renewal was linked, the status says so, or a newer
policy for the car is on the books).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from tortoise import connections

from scheduler import lapse, renewal
from storage.models import PolicyStatus
from storage.sql import Params, fetch

KINDS = frozenset({renewal.KIND, renewal.HOLIDAY_KIND, lapse.KIND})
RENEWED = "renewed"
CANCELLED = "policy_cancelled"
ANSWERED = "customer_answered"  # renewed elsewhere, not renewing, car sold (renewal desk)


def anchor(dedup_key: str) -> int | None:
    """The policy id in ``renewal:{id}:T-k``, ``renewal_holiday:{id}:…`` or ``lapse:{id}``."""
    parts = dedup_key.split(":")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def _sql(anchors: str) -> str:
    done = f"'{PolicyStatus.RENEWED.value}', '{PolicyStatus.CANCELLED.value}'"
    cancelled = f"g.status = '{PolicyStatus.CANCELLED.value}' OR g.cancelled_at IS NOT NULL"
    stopped = ", ".join(f"'{outcome}'" for outcome in renewal.STOPPED_BY)
    return (
        "SELECT a.id AS anchor, "
        f"SUM(CASE WHEN g.status NOT IN ({done}) AND {renewal.waiting('g')} "
        "THEN 1 ELSE 0 END) AS waiting, "
        f"SUM(CASE WHEN {cancelled} THEN 1 ELSE 0 END) AS cancelled, "
        f"SUM(CASE WHEN g.outcome IN ({stopped}) THEN 1 ELSE 0 END) AS answered, "
        "COUNT(*) AS policies "
        "FROM policy a JOIN policy g ON g.customer_id = a.customer_id "
        "AND g.plate = a.plate AND g.end_date = a.end_date "
        f"WHERE a.id IN ({anchors}) GROUP BY a.id"
    )


async def obsolete(anchors: Collection[int]) -> dict[int, str]:
    """Anchors whose cars need no reminder any more, with the skip reason. An anchor whose
    policy is gone (not found) is left alone: nothing says it was renewed."""
    if not anchors:
        return {}
    params = Params()
    rows = await fetch(connections.get("default"), _sql(params.add_all(anchors)), params)
    return {int(row["anchor"]): _reason(row) for row in rows if int(row["waiting"]) == 0}


def _reason(row: dict[str, Any]) -> str:
    cancelled, answered = int(row["cancelled"]), int(row["answered"])
    if cancelled == int(row["policies"]):
        return CANCELLED
    if answered and cancelled + answered == int(row["policies"]):
        return ANSWERED
    return RENEWED
