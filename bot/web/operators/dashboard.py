"""The dashboard's numbers: today's plan, today's deliveries, recent failures, how many
customers are insured today (``storage.coverage``, the care rules' own definition) and how
many shared phone numbers wait for an operator.

"Today" is the local day in ``schedule.timezone``, counted by its UTC bounds on both
backends."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from tortoise import connections
from tortoise.expressions import Q
from tortoise.functions import Count

from bot.web.operators.complaints import overdue_count
from bot.web.operators.rows import DashboardJson, SchedulerRunJson
from storage.coverage import insured_on
from storage.desk_models import Conversation, ConversationStatus
from storage.models import Message, MessageStatus, SharedPhone
from storage.operator_models import Campaign, CampaignStatus
from storage.phones import mask_phone
from storage.scheduler_models import SchedulerRun
from storage.sql import Params, fetch

FAILED = (MessageStatus.FAILED, MessageStatus.UNDELIVERED, MessageStatus.UNKNOWN)


def day_bounds(now: datetime, timezone: str) -> tuple[date, datetime, datetime]:
    """The local day of ``now`` in ``timezone`` and its bounds as UTC instants.

    In UTC because that is how times are stored: SQLite compares them as text, so a bound
    written with a ``+08:00`` offset would be compared digit by digit with ``+00:00`` values
    and miss the first eight hours of the day."""
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    start = datetime.combine(today, time(0, 0), tzinfo=zone)
    end = datetime.combine(today + timedelta(days=1), time(0, 0), tzinfo=zone)
    return today, start.astimezone(UTC), end.astimezone(UTC)


async def summary(now: datetime, timezone: str) -> DashboardJson:
    """Today's plan — every message due today, queued today or sent today, by kind — the
    day's deliveries by status, the scheduler's runs, recent failures and the campaigns that
    are live or need attention."""
    today, start, end = day_bounds(now, timezone)
    planned: dict[str, int] = {}
    todays = (Q(not_before__gte=start, not_before__lt=end)
              | Q(created_at__gte=start, created_at__lt=end)
              | Q(sent_at__gte=start, sent_at__lt=end))
    for row in await Message.filter(todays).annotate(n=Count("id")).group_by("kind").values(
            "kind", "n"):
        planned[str(row["kind"])] = int(row["n"])
    delivery = {s.value: 0 for s in MessageStatus}
    for row in await Message.filter(updated_at__gte=start, updated_at__lt=end).annotate(
            n=Count("id")).group_by("status").values("status", "n"):
        delivery[str(row["status"])] = int(row["n"])
    runs: list[SchedulerRunJson] = [
        {"job": r.job, "finished_at": r.finished_at.isoformat(), "counts": r.counts}
        for r in await SchedulerRun.filter(day=today).order_by("finished_at")]
    failures = await Message.filter(status__in=list(FAILED)).order_by("-updated_at", "-id").limit(
        10).values("id", "kind", "status", "channel", "last_error", "updated_at",
                   "customer__phone", "campaign_id")
    live = await Campaign.filter(status__in=[CampaignStatus.SCHEDULED, CampaignStatus.SENDING,
                                             CampaignStatus.PAUSED, CampaignStatus.FAILED]
                                 ).order_by("-id").limit(10)
    return {
        "insured_today": await _insured(today),
        "shared_phones_held": await SharedPhone.filter(released_at__isnull=True).count(),
        "conversations_waiting": await Conversation.filter(
            status=ConversationStatus.WAITING).count(),
        "complaints_overdue": await overdue_count(now),
        "day": today.isoformat(),
        "planned": planned,
        "planned_total": sum(planned.values()),
        "runs": runs,
        "delivery": delivery,
        "failures": [{"id": f["id"], "kind": f["kind"], "status": str(f["status"]),
                      "channel": str(f["channel"] or ""), "error": (f["last_error"] or "")[:200],
                      "phone": mask_phone(f["customer__phone"]), "campaign_id": f["campaign_id"],
                      "at": f["updated_at"].isoformat()} for f in failures],
        "campaigns": [{"id": c.id, "name": c.name, "status": str(c.status)} for c in live],
    }


async def _insured(day: date) -> int:
    params = Params()
    insured = params.take(insured_on(day))
    rows = await fetch(connections.get("default"),
                       f"SELECT COUNT(*) AS n FROM customer c WHERE {insured}", params)
    return int(rows[0]["n"])
