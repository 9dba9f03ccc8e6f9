"""Abandoned accident-report drafts: one reminder after ``report.reminder_minutes`` without an
answer, and expiry after ``report.expire_hours`` (the customer is told both, through the
outbox, in Telegram). A pass is idempotent: the reminder's dedup key is the draft's, and a
draft is expired by a conditional update that only an open draft matches.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.transactions import in_transaction

from bot.settings import ReportSettings
from bot.supervisor import Beat
from storage.accident_models import DraftStatus, ReportDraft
from storage.models import Category
from storage.outbox import Outbound, enqueue

log = logging.getLogger(__name__)

STUCK_AFTER_PASSES = 5


@dataclass(frozen=True, slots=True)
class SweepResult:
    reminded: int
    expired: int


def _telegram(draft: ReportDraft, kind: str, now: datetime) -> Outbound:
    return Outbound(dedup_key=f"{kind}:{draft.id}", kind=kind, category=Category.SERVICE,
                    customer_id=draft.customer_id, template_key=kind, not_before=now,
                    channel_policy="telegram_only", stale_after=now + timedelta(hours=1))


async def sweep(settings: ReportSettings, *, now: datetime) -> SweepResult:
    expire_before = now - timedelta(hours=settings.expire_hours)
    remind_before = now - timedelta(minutes=settings.reminder_minutes)
    expired = 0
    for draft in await ReportDraft.filter(status=DraftStatus.OPEN,
                                          touched_at__lte=expire_before):
        async with in_transaction():
            closed = await ReportDraft.filter(id=draft.id, status=DraftStatus.OPEN,
                                              touched_at__lte=expire_before).update(
                status=DraftStatus.EXPIRED, open_for=None, closed_at=now)
            if closed:
                await enqueue(_telegram(draft, "report_expired", now))
                expired += 1
    reminded = 0
    for draft in await ReportDraft.filter(status=DraftStatus.OPEN, reminded_at=None,
                                          touched_at__lte=remind_before):
        async with in_transaction():
            marked = await ReportDraft.filter(id=draft.id, status=DraftStatus.OPEN,
                                              reminded_at=None).update(reminded_at=now)
            if marked:
                await enqueue(_telegram(draft, "report_reminder", now))
                reminded += 1
    if reminded or expired:
        log.info("accident report drafts: %d reminded, %d expired", reminded, expired)
    return SweepResult(reminded, expired)


class DraftSweep:
    """The supervised loop (``report-drafts``): a pass every ``sweep_interval_seconds``."""

    def __init__(self, settings: ReportSettings, *, clock: Callable[[], datetime]) -> None:
        self.settings = settings
        self.clock = clock

    async def run(self, stop: asyncio.Event, beat: Beat) -> None:
        while not stop.is_set():
            await sweep(self.settings, now=self.clock())
            beat()
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.sweep_interval_seconds)
