"""The dashboard's numbers: today's plan, today's deliveries, recent failures, how many
customers are insured today (``storage.coverage``, the care rules' own definition) and how
many shared phone numbers wait for an operator."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tortoise import connections
from tortoise.functions import Count

from bot.web.operators.sql import fetch, is_postgres
from storage.coverage import insured_on
from storage.models import Message, MessageStatus, SharedPhone
from storage.operator_models import Campaign, CampaignStatus
from storage.phones import mask_phone
from storage.scheduler_models import SchedulerRun

FAILED = (MessageStatus.FAILED, MessageStatus.UNDELIVERED, MessageStatus.UNKNOWN)


async def summary(now: datetime, timezone: str) -> dict[str, Any]:
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    start = datetime.combine(today, datetime.min.time(), tzinfo=zone)
    end = start + timedelta(days=1)
    planned: dict[str, int] = {}
    for row in await Message.filter(not_before__gte=start, not_before__lt=end).annotate(
            n=Count("id")).group_by("kind").values("kind", "n"):
        planned[str(row["kind"])] = int(row["n"])
    delivery = {s.value: 0 for s in MessageStatus}
    for row in await Message.filter(updated_at__gte=start, updated_at__lt=end).annotate(
            n=Count("id")).group_by("status").values("status", "n"):
        delivery[str(row["status"])] = int(row["n"])
    runs = [{"job": r.job, "finished_at": r.finished_at.isoformat(), "counts": r.counts}
            for r in await SchedulerRun.filter(day=today).order_by("finished_at")]
    failures = await Message.filter(status__in=list(FAILED)).order_by("-updated_at", "-id").limit(
        10).values("id", "kind", "status", "channel", "last_error", "updated_at",
                   "customer__phone", "campaign_id")
    live = await Campaign.filter(status__in=[CampaignStatus.SCHEDULED, CampaignStatus.SENDING,
                                             CampaignStatus.PAUSED]).order_by("-id").limit(10)
    return {
        "insured_today": await _insured(today),
        "shared_phones_held": await SharedPhone.filter(released_at__isnull=True).count(),
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
    conn = connections.get("default")
    insured = insured_on(day)
    rows = await fetch(conn, f"SELECT COUNT(*) AS n FROM customer c WHERE {insured.sql}",
                       insured.bound(postgres=is_postgres(conn)))
    return int(rows[0]["n"])
