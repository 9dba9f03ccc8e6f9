"""Putting a sending campaign into the outbox, batch by batch, in the background.

One batch is one transaction: move the campaign's cursor over the next range of customer ids
(only if the campaign is still *sending* and the cursor is where this runner read it), then
one set-based ``INSERT INTO message … SELECT … FROM customer c WHERE <audience> AND c.id in
the range`` with ``ON CONFLICT (dedup_key) DO NOTHING`` (``INSERT OR IGNORE`` on SQLite).
Nothing about the customers is loaded into Python, so memory stays flat whatever the size
of the audience, and the rows' parameters (``{name}`` filled in per customer) are built by
the database.

The cursor is committed with the rows it covers, so a restart carries on where the last
committed batch stopped, and a batch that was rolled back is simply done again. Several
processes may run the runner: the conditional cursor update lets one win each batch, and
the dedup key would stop duplicates anyway. Updating the campaign row first also means a
pause (which updates the same row) waits for a batch in flight and then holds its rows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from bot.settings import Settings
from bot.texts import FALLBACK_LANGUAGE
from bot.web.operators import campaigns as service
from bot.web.operators.audience import Where, where_clause
from bot.web.operators.sql import execute, is_postgres
from storage.models import MessageStatus
from storage.operator_models import Campaign, CampaignStatus

log = logging.getLogger(__name__)

_COLUMNS = ("created_at, updated_at, dedup_key, kind, category, customer_id, channel_policy, "
            "template_key, params, not_before, campaign_id, status, skip_reason, attempts, "
            "last_error, segments")


def _params_sql(bodies: dict[str, str], where: Where) -> str:
    """SQL building ``{"body": text}``: the text in the customer's language (the fallback
    language's otherwise) with ``{name}`` replaced by the customer's name. One language per
    row keeps a million-row campaign's outbox (and its WAL) about half the size."""
    pg = where.postgres
    fallback = FALLBACK_LANGUAGE if FALLBACK_LANGUAGE in bodies else next(iter(bodies))

    def text(lang: str) -> str:
        value = where.value(bodies[lang]) + ("::text" if pg else "")
        return f"replace({value}, '{{name}}', c.name)" if "{name}" in bodies[lang] else value

    others = [lang for lang in bodies if lang != fallback]
    # placeholders are positional: build the branches in the order they appear in the text
    branches = "".join(f"WHEN c.language = '{lang}' THEN {text(lang)} " for lang in others)
    chosen = f"CASE {branches}ELSE {text(fallback)} END" if others else text(fallback)
    build = "jsonb_build_object" if pg else "json_object"
    return f"{build}('body', {chosen})"


def insert_select(campaign: Campaign, settings: Settings, *, postgres: bool, lo: int, hi: int,
                  now: datetime) -> tuple[str, list[object]]:
    """The one statement that enqueues the audience with ``lo < customer id <= hi``."""
    where = Where(postgres=postgres)
    stamp: object = now.astimezone(UTC) if postgres else now.astimezone(UTC).isoformat(" ")
    ts = "::timestamptz" if postgres else ""
    txt = "::text" if postgres else ""
    head = (f"{where.value(stamp)}{ts}, {where.value(stamp)}{ts}, "
            f"{where.value(f'{service.CAMPAIGN_KIND}:{campaign.id}:')}{txt} || c.id, "
            f"{where.value(service.CAMPAIGN_KIND)}{txt}, {where.value(campaign.category)}{txt}, "
            f"c.id, {where.value(campaign.channel_policy)}{txt}, "
            f"{where.value(service.TEMPLATE_KEY)}{txt}, "
            f"{_params_sql(service.bodies(campaign, settings), where)}, "
            f"{where.value(stamp)}{ts}, {where.value(campaign.id)}{'::int' if postgres else ''}, "
            f"{where.value(MessageStatus.PENDING.value)}{txt}, '', 0, '', 0")
    clause = where_clause(service.audience_of(campaign), where,
                          default_tier=settings.loyalty.tiers[0].code)
    low, high = where.value(lo), where.value(hi)
    verb = "INSERT" if postgres else "INSERT OR IGNORE"
    tail = " ON CONFLICT (dedup_key) DO NOTHING" if postgres else ""
    sql = (f"{verb} INTO message ({_COLUMNS}) SELECT {head} FROM customer c "
           f"WHERE c.id > {low} AND c.id <= {high} AND {clause}{tail}")
    return sql, where.params


async def enqueue_batch(campaign_id: int, settings: Settings, *, now: datetime,
                        batch_ids: int) -> int | None:
    """Enqueue the next id range of a sending campaign; the number of new messages, or None
    when there was nothing to do (not sending, finished, or another runner took the range)."""
    async with in_transaction() as conn:
        campaign = await Campaign.get_or_none(id=campaign_id)
        if (campaign is None or campaign.status != CampaignStatus.SENDING
                or campaign.until_id is None or campaign.cursor_id >= campaign.until_id):
            return None
        lo = campaign.cursor_id
        hi = min(lo + batch_ids, campaign.until_id)
        moved = await Campaign.filter(id=campaign_id, status=CampaignStatus.SENDING,
                                      cursor_id=lo).update(cursor_id=hi)
        if not moved:
            return None
        sql, params = insert_select(campaign, settings, postgres=is_postgres(conn), lo=lo,
                                    hi=hi, now=now)
        created = await execute(conn, sql, params)
        if created:
            await Campaign.filter(id=campaign_id).update(enqueued=F("enqueued") + created)
    log.debug("campaign %d: ids %d-%d, %d queued", campaign_id, lo, hi, created)
    return created


async def enqueue_all(campaign_id: int, settings: Settings, *, now: datetime,
                      batch_ids: int) -> int:
    """Enqueue every remaining batch now (the benchmark, tests); returns how many were new."""
    total = 0
    while (created := await enqueue_batch(campaign_id, settings, now=now,
                                          batch_ids=batch_ids)) is not None:
        total += created
    return total


class CampaignRunner:
    """The app's background task: promotes due scheduled campaigns, enqueues sending ones
    batch by batch (round-robin between campaigns), marks them done when the outbox has
    nothing left of them, and re-applies pause holds and cancellations once the dispatch
    lease window has passed."""

    def __init__(self, settings: Settings, *, clock: Callable[[], datetime]) -> None:
        self._settings = settings
        self._clock = clock
        self._wake = asyncio.Event()
        self._sweeps: dict[int, datetime] = {}
        self._swept_at_start = False

    def wake(self, campaign_id: int | None = None) -> None:
        """Called after an operator starts, pauses, resumes or cancels a campaign."""
        if campaign_id is not None:
            lease = timedelta(seconds=self._settings.delivery.lease_seconds + 1)
            self._sweeps[campaign_id] = self._clock() + lease
        self._wake.set()

    async def run(self, stop: asyncio.Event, beat: Callable[..., None] = lambda **_: None,
                  ) -> None:
        """Pass after pass until ``stop``; ``beat`` after each completed pass (supervision)."""
        poll = self._settings.operator.campaign_poll_seconds
        while not stop.is_set():
            try:
                busy = await self.tick()
                beat()
            except (OSError, ConnectionError):
                log.warning("campaign runner pass failed: database unreachable", exc_info=True)
                busy = False
            if busy:
                await asyncio.sleep(0)
                continue
            self._wake.clear()
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            try:
                await asyncio.wait(waiters, timeout=poll, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    async def tick(self) -> bool:
        """One pass; True when a batch was enqueued (so the caller goes again at once)."""
        now = self._clock()
        await Campaign.filter(status=CampaignStatus.SCHEDULED, send_at__lte=now).update(
            status=CampaignStatus.SENDING)
        await self._sweep(now)
        busy = False
        batch_ids = self._settings.operator.campaign_batch_ids
        for campaign in await Campaign.filter(status=CampaignStatus.SENDING).order_by("id"):
            created = await enqueue_batch(campaign.id, self._settings, now=now,
                                          batch_ids=batch_ids)
            if created is not None:
                busy = True
                continue
            await self._finish_if_delivered(campaign.id, now)
        return busy

    async def _finish_if_delivered(self, campaign_id: int, now: datetime) -> None:
        from storage.models import Message

        campaign = await Campaign.get(id=campaign_id)
        if campaign.until_id is None or campaign.cursor_id < campaign.until_id:
            return
        open_ = await Message.filter(
            campaign_id=campaign_id,
            status__in=[MessageStatus.PENDING, MessageStatus.CLAIMED]).exists()
        if not open_:
            await Campaign.filter(id=campaign_id, status=CampaignStatus.SENDING).update(
                status=CampaignStatus.DONE, finished_at=now)
            log.info("campaign %d done: %d messages", campaign_id, campaign.enqueued)

    async def _sweep(self, now: datetime) -> None:
        if not self._swept_at_start:
            self._swept_at_start = True
            for campaign in await Campaign.filter(
                    status__in=[CampaignStatus.PAUSED, CampaignStatus.CANCELLED],
                    updated_at__gte=now - timedelta(days=1)).only("id"):
                self._sweeps.setdefault(campaign.id, now)
        due = [cid for cid, when in self._sweeps.items() if when <= now]
        for campaign_id in due:
            del self._sweeps[campaign_id]
            found = await Campaign.get_or_none(id=campaign_id)
            if found is None:
                continue
            async with in_transaction() as conn:
                if found.status == CampaignStatus.PAUSED:
                    await service.hold_pending(conn, campaign_id)
                elif found.status == CampaignStatus.CANCELLED:
                    await service.skip_pending(conn, campaign_id, now)
