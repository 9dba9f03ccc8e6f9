"""Satisfaction figures: satisfied (4–5) among answers against the target
(``satisfaction.target_percent``, the service-centre plan's 95 %), the response rate (answers
among surveys sent), by operator, by case type and by month."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from bot.desk.surveys import SURVEY_KIND
from bot.settings import Settings
from bot.web.operators.rows import SatisfactionGroupJson, SatisfactionJson, SatisfactionMonthJson
from storage.desk_models import SatisfactionSurvey
from storage.models import Message, MessageStatus

MONTHS = 6


def _months_back(today: date, months: int) -> list[date]:
    firsts = []
    year, month = today.year, today.month
    for _ in range(months):
        firsts.append(date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return list(reversed(firsts))


def _rate(satisfied: int, answered: int) -> float | None:
    return round(satisfied / answered, 4) if answered else None


def _group(rows: list[dict[str, Any]], key: str) -> list[SatisfactionGroupJson]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        if row["score"] is None:
            continue
        counts[str(row[key] or "")][0] += 1
        counts[str(row[key] or "")][1] += int(row["score"] >= 4)
    return [{"name": name, "answered": a, "satisfied": s, "rate": _rate(s, a)}
            for name, (a, s) in sorted(counts.items())]


async def summary(now: datetime, settings: Settings) -> SatisfactionJson:
    tz = ZoneInfo(settings.schedule.timezone)
    firsts = _months_back(now.astimezone(tz).date(), MONTHS)
    start = datetime.combine(firsts[0], time(), tzinfo=tz).astimezone(UTC)
    rows = await SatisfactionSurvey.filter(created_at__gte=start).values(
        "case_kind", "operator_name", "score", "created_at")
    sent = await Message.filter(kind=SURVEY_KIND, created_at__gte=start, status__in=[
        MessageStatus.SENT, MessageStatus.DELIVERED]).count()
    answered = [r for r in rows if r["score"] is not None]
    satisfied = sum(1 for r in answered if r["score"] >= 4)
    by_month: list[SatisfactionMonthJson] = []
    for first in firsts:
        month = [r for r in answered
                 if r["created_at"].astimezone(tz).date().replace(day=1) == first]
        ok = sum(1 for r in month if r["score"] >= 4)
        by_month.append({"month": f"{first:%Y-%m}", "answered": len(month), "satisfied": ok,
                         "rate": _rate(ok, len(month))})
    return {
        "since": firsts[0].isoformat(), "target": settings.satisfaction.target_percent / 100,
        "surveys": len(rows), "sent": sent, "answered": len(answered), "satisfied": satisfied,
        "rate": _rate(satisfied, len(answered)),
        "response_rate": round(len(answered) / sent, 4) if sent else None,
        "by_operator": _group(rows, "operator_name"), "by_case": _group(rows, "case_kind"),
        "by_month": by_month,
    }
