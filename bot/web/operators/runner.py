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

The statement is the outbox's own ``INSERT … SELECT`` (``storage.outbox.insert_select``) with
the campaign's columns and the audience's condition as named fragments (``storage.sql``), so
the audience filter's values and the id range bind to their own placeholders whatever order
they are written in.
A batch the database refuses marks that campaign *failed* (reason kept, ERROR logged) and the
pass carries on with the others; a database that cannot be reached fails the pass instead,
to be tried again, and never a campaign.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from bot.settings import Settings
from bot.texts import FALLBACK_LANGUAGE
from bot.web.operators import campaigns as service
from bot.web.operators.audience import where_clause
from storage import outbox
from storage.db import is_unreachable
from storage.models import MessageStatus
from storage.operator_models import Campaign, CampaignStatus
from storage.sql import Fragment, Params, execute, is_postgres, json_object, typed

log = logging.getLogger(__name__)

def _body_sql(bodies: dict[str, str], *, postgres: bool) -> Fragment:
    """SQL building ``{"body": text}``: the text in the customer's language (the fallback
    language's otherwise) with ``{name}`` replaced by the customer's name. One language per
    row keeps a million-row campaign's outbox (and its WAL) about half the size."""
    fallback = FALLBACK_LANGUAGE if FALLBACK_LANGUAGE in bodies else next(iter(bodies))
    params = Params()

    def text(lang: str) -> str:
        value = typed(params.add(bodies[lang]), "text", postgres=postgres)
        return f"replace({value}, '{{name}}', c.name)" if "{name}" in bodies[lang] else value

    others = [lang for lang in bodies if lang != fallback]
    branches = "".join(f"WHEN c.language = {params.add(lang)} THEN {text(lang)} "
                       for lang in others)
    chosen = f"CASE {branches}ELSE {text(fallback)} END" if others else text(fallback)
    return Fragment(json_object(("'body'", chosen), postgres=postgres), params)


def message_columns(campaign: Campaign, settings: Settings, *, now: datetime,
                    postgres: bool) -> dict[str, Fragment]:
    """The outbox columns of the campaign's message to customer ``c``."""

    def value(value: object, sql_type: str) -> Fragment:
        return Fragment(typed(":value", sql_type, postgres=postgres), {"value": value})

    return {
        "dedup_key": Fragment(f"{typed(':prefix', 'text', postgres=postgres)} || c.id",
                              {"prefix": f"{service.CAMPAIGN_KIND}:{campaign.id}:"}),
        "kind": value(service.CAMPAIGN_KIND, "text"),
        "category": value(campaign.category, "text"),
        "customer_id": Fragment("c.id"),
        "channel_policy": value(campaign.channel_policy, "text"),
        "template_key": value(service.TEMPLATE_KEY, "text"),
        "params": _body_sql(service.bodies(campaign, settings), postgres=postgres),
        "not_before": value(now, "timestamptz"),
        "campaign_id": value(campaign.id, "int"),
    }


def insert_select(campaign: Campaign, settings: Settings, *, postgres: bool, lo: int, hi: int,
                  now: datetime) -> tuple[str, Params]:
    """The one statement that enqueues the audience with ``lo < customer id <= hi``, and its
    named parameters: the outbox's own ``INSERT … SELECT`` over the audience's condition."""
    params = Params(lo=lo, hi=hi)
    clause = where_clause(service.audience_of(campaign), params,
                          default_tier=settings.loyalty.tiers[0].code,
                          today=service.care_today(settings, now))
    source = Fragment(f"FROM customer c WHERE c.id > :lo AND c.id <= :hi AND {clause}", params)
    return outbox.insert_select(message_columns(campaign, settings, now=now, postgres=postgres),
                                source, created_at=now, postgres=postgres)


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


async def fail(campaign_id: int, exc: BaseException, *, now: datetime) -> None:
    """Stop enqueuing a campaign whose batch failed: status *failed* with the reason, shown
    on its page and in the API. Messages already queued still go out; ``resume`` retries
    from the committed cursor (the failed batch was rolled back)."""
    reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]
    log.error("campaign %d failed while enqueuing, stopped: %s", campaign_id, reason,
              exc_info=exc)
    await Campaign.filter(id=campaign_id, status=CampaignStatus.SENDING).update(
        status=CampaignStatus.FAILED, failure=reason, updated_at=now)


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
        """Pass after pass until ``stop``; ``beat`` after each completed pass (supervision).
        An unreachable database costs a pass (tried again after the poll interval, no beat);
        anything else is raised to the supervisor, which restarts the runner."""
        poll = self._settings.operator.campaign_poll_seconds
        while not stop.is_set():
            try:
                busy = await self.tick()
                beat()
            except Exception as exc:
                if not is_unreachable(exc):
                    raise  # for the supervisor: logged once as an ERROR, restarted
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
        """One pass; True when a batch was enqueued (so the caller goes again at once).

        Campaigns are independent: one whose batch the database refuses is marked *failed*
        and the pass goes on with the others. A database that cannot be reached fails the
        pass instead (``run`` waits and tries again), never a campaign."""
        now = self._clock()
        await Campaign.filter(status=CampaignStatus.SCHEDULED, send_at__lte=now).update(
            status=CampaignStatus.SENDING)
        await self._sweep(now)
        busy = False
        for campaign in await Campaign.filter(status=CampaignStatus.SENDING).order_by(
                "id").only("id"):
            try:
                busy = await self._step(campaign.id, now) or busy
            except Exception as exc:
                if is_unreachable(exc):
                    raise
                await fail(campaign.id, exc, now=now)
        return busy

    async def _step(self, campaign_id: int, now: datetime) -> bool:
        created = await enqueue_batch(campaign_id, self._settings, now=now,
                                      batch_ids=self._settings.operator.campaign_batch_ids)
        if created is not None:
            return True
        await self._finish_if_delivered(campaign_id, now)
        return False

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
