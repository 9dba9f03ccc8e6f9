"""MMS media still to delete from Twilio: recorded durably, deleted at once, swept later.

Why a record
------------
The customer's photos (ID card, driving licence, the accident) must not stay on Twilio's
servers. Deleting them is a network call after the webhook's answer, and it can fail (5xx,
timeout) or never run (crash, deploy, SIGTERM). So every media URL of an inbound MMS (of our
own Twilio account) is written to ``sms_media_pending`` in the same transaction that records
the message — and its documents, when the sender is a customer; media from unknown numbers or
sent with an opt-out are recorded without being downloaded. Once the message is ours, so is
the duty to delete its media.

The life of a row
-----------------
* Written with ``next_attempt_at = now + LEASE``: the immediate delete (a background task
  started right after the reply) has that long before a sweep may take the row.
* The immediate delete removes the row on success, and on 404 (already gone). On failure the
  row has had one attempt and waits ``sms.media_delete_retry_seconds``.
* A sweep (once at start-up, then every ``sms.media_sweep_interval_seconds``) claims due rows
  by counting the attempt and moving ``next_attempt_at`` a lease ahead, ``FOR UPDATE SKIP
  LOCKED`` on PostgreSQL so two processes claim disjoint rows; a process that dies mid-attempt
  leaves its rows to come due again. Each failure waits twice as long as the one before (at
  most ``MAX_RETRY_DELAY``).
* A failure after ``sms.media_delete_max_attempts`` attempts, or once the message is older
  than ``sms.media_delete_max_age_hours``, gives up: one ERROR log with the masked MessageSid
  and the row id (never the phone or the URL), and ``gave_up_at`` set so no sweep takes the
  row again. It stays in the table for an operator to act on.

Outcomes are written only by the attempt that still holds the claim (the attempt count is the
version), so a slow attempt overtaken by another process's claim cannot give up twice. Two
processes deleting the same media is harmless: Twilio answers the second with 404, which
counts as done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from bot.settings import SmsSettings
from bot.sms.media import MediaUnavailable, MmsMedia
from storage.models import SmsMediaPending

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=1)
"""How long a row is left to whoever attempts it: far above one attempt, which is bounded by
``sms.media_timeout_seconds`` (at most 10 s)."""
MAX_RETRY_DELAY = timedelta(hours=6)
BATCH = 5
"""Rows claimed (and deleted concurrently) at a time: few, beside the dispatcher's own Twilio
requests, under Twilio's concurrent-request limit (error 20429)."""
_ERROR_CHARS = 200


class Outcome(StrEnum):
    DELETED = "deleted"  # also: already gone (404)
    FAILED = "failed"  # to be retried
    ABANDONED = "abandoned"


@dataclass(frozen=True, slots=True)
class SweepResult:
    deleted: int = 0
    failed: int = 0
    abandoned: int = 0


def mask_sid(sid: str) -> str:
    """``MM…c0de``: enough to find the message, no more, in a log line."""
    if len(sid) <= 8:
        return "*" * len(sid)
    return f"{sid[:2]}…{sid[-4:]}"


class MediaDeleteMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "engage_sms_media_deletes_total",
            "MMS media deletes at Twilio: attempts that deleted (or found it gone) or failed, "
            "and media given up after the last failure (abandoned)",
            ["outcome"], registry=registry,
        )
        self.rows = Gauge(
            "engage_sms_media_pending_deletes",
            "MMS media still to delete from Twilio (pending) or given up (abandoned), "
            "counted at this process's last sweep",
            ["state"], registry=registry,
        )


class MediaDeletes:
    """The record, the immediate delete and the sweep of MMS media at Twilio."""

    def __init__(self, media: MmsMedia, settings: SmsSettings, *,
                 clock: Callable[[], datetime], skip_locked: bool = False,
                 metrics: MediaDeleteMetrics | None = None) -> None:
        self._media = media
        self._clock = clock
        self._skip_locked = skip_locked
        self._metrics = metrics
        self._retry = timedelta(seconds=settings.media_delete_retry_seconds)
        self._max_attempts = settings.media_delete_max_attempts
        self._max_age = timedelta(hours=settings.media_delete_max_age_hours)
        self._pass: asyncio.Task[bool] | None = None

    def deletable(self, url: str) -> bool:
        """Media of our own Twilio account; any other URL is never sent our credentials."""
        return self._media.owns(url)

    async def record(self, message_sid: str, urls: Sequence[str], now: datetime) -> None:
        """Remember ``urls`` as to delete. Runs inside the caller's transaction (the one that
        stores the message), so the message and this duty commit or vanish together."""
        if urls:
            await SmsMediaPending.bulk_create([
                SmsMediaPending(message_sid=message_sid, media_url=url, created_at=now,
                                next_attempt_at=now + LEASE)
                for url in urls
            ])

    async def delete_now(self, message_sid: str, url: str) -> None:
        """The first attempt, right after the reply; a failure is left to the sweep."""
        error = await self._attempt(url)
        rows = SmsMediaPending.filter(message_sid=message_sid, media_url=url)
        if error is None:
            await rows.delete()
            return
        log.warning("MMS %s media left at Twilio for now, to be retried: %s",
                    mask_sid(message_sid), error)
        await rows.filter(attempts=0, gave_up_at=None).update(
            attempts=1, last_error=error[:_ERROR_CHARS],
            next_attempt_at=self._clock() + self._delay(1))

    # -- the sweep ---------------------------------------------------------------------

    async def sweep(self) -> SweepResult:
        """Attempt every due row once, a batch at a time, until none is due."""
        counts = dict.fromkeys(Outcome, 0)
        while batch := await self.claim(self._clock()):
            for outcome in await asyncio.gather(*(self._again(row) for row in batch)):
                counts[outcome] += 1
        await self._count()
        return SweepResult(deleted=counts[Outcome.DELETED], failed=counts[Outcome.FAILED],
                           abandoned=counts[Outcome.ABANDONED])

    async def claim(self, now: datetime) -> list[SmsMediaPending]:
        """Due rows, each with this attempt counted and leased to the caller."""
        lease = now + LEASE
        async with in_transaction():
            query = (SmsMediaPending.filter(gave_up_at=None, next_attempt_at__lte=now)
                     .order_by("next_attempt_at", "id").limit(BATCH))
            if self._skip_locked:
                query = query.select_for_update(skip_locked=True)
            # Model rows, not values_list(): tortoise 1.1.9 drops FOR UPDATE from those.
            rows = await query
            if not rows:
                return []
            await SmsMediaPending.filter(id__in=[row.id for row in rows]).update(
                attempts=F("attempts") + 1, next_attempt_at=lease)
        for row in rows:
            row.attempts += 1
            row.next_attempt_at = lease
        return rows

    async def _again(self, row: SmsMediaPending) -> Outcome:
        error = await self._attempt(row.media_url)
        if error is None:
            await SmsMediaPending.filter(id=row.id).delete()
            return Outcome.DELETED
        now = self._clock()
        # Still ours only if nobody claimed it since (our lease ran out meanwhile).
        ours = SmsMediaPending.filter(id=row.id, attempts=row.attempts, gave_up_at=None)
        age = now - row.created_at
        if row.attempts >= self._max_attempts or age >= self._max_age:
            if not await ours.update(gave_up_at=now, last_error=error[:_ERROR_CHARS]):
                return Outcome.FAILED  # another claim has it now, and decides
            log.error(
                "MMS %s: gave up deleting a media item from Twilio after %d attempts in "
                "%.1f h (sms_media_pending id %d, last error: %s); it is still at Twilio",
                mask_sid(row.message_sid), row.attempts, age.total_seconds() / 3600,
                row.id, error)
            self._count_attempt(Outcome.ABANDONED)
            return Outcome.ABANDONED
        wait = self._delay(row.attempts)
        await ours.update(last_error=error[:_ERROR_CHARS], next_attempt_at=now + wait)
        log.warning("MMS %s media delete failed (attempt %d), retrying in %s: %s",
                    mask_sid(row.message_sid), row.attempts, wait, error)
        return Outcome.FAILED

    async def _attempt(self, url: str) -> str | None:
        """None once the media is gone from Twilio, else why not."""
        try:
            await self._media.delete(url)
        except MediaUnavailable as exc:
            self._count_attempt(Outcome.FAILED)
            return str(exc) or type(exc).__name__
        self._count_attempt(Outcome.DELETED)
        return None

    def _delay(self, attempts: int) -> timedelta:
        return min(self._retry * (1 << max(attempts - 1, 0)), MAX_RETRY_DELAY)

    def _count_attempt(self, outcome: Outcome) -> None:
        if self._metrics is not None:
            self._metrics.attempts.labels(outcome.value).inc()

    async def _count(self) -> None:
        if self._metrics is None:
            return
        pending = await SmsMediaPending.filter(gave_up_at=None).count()
        abandoned = await SmsMediaPending.filter(gave_up_at__isnull=False).count()
        self._metrics.rows.labels("pending").set(pending)
        self._metrics.rows.labels("abandoned").set(abandoned)

    # -- running it --------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, beat: Callable[..., None], *,
                  interval: float) -> None:
        """Sweep now (what an earlier process left behind), then every ``interval`` seconds
        until ``stop`` is set, calling ``beat`` after each pass that completed; ends after
        the pass in flight. A pass failing on anything but the database raises (the
        supervisor restarts the loop)."""
        while True:
            self._pass = asyncio.create_task(self._sweep_logged(), name="sms-media-sweep")
            if await self._pass:
                beat()
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            if stop.is_set():
                return

    async def drain(self) -> None:
        """Wait for the sweep pass in flight, if any."""
        if self._pass is not None:
            await self._pass

    async def _sweep_logged(self) -> bool:
        try:
            result = await self.sweep()
        except (OSError, ConnectionError):
            log.warning("MMS media delete sweep failed: database unreachable, retrying later",
                        exc_info=True)
            return False
        if result.deleted or result.failed or result.abandoned:
            log.info("MMS media delete sweep: %d deleted, %d to retry, %d given up",
                     result.deleted, result.failed, result.abandoned)
        return True
