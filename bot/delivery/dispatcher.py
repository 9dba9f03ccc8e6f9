"""The outbox dispatcher: claim due messages, decide, render, rate-limit, send, record.

Delivery guarantees, stated honestly:
- A claimed message carries a lease. A process that dies before recording the outcome leaves
  the lease to expire, and another dispatch claims the message again: nothing is lost.
- The price is a narrow window for duplicates: a message accepted by the provider whose
  outcome was not yet written (crash between send and acknowledgement) is sent again.
  Telegram's Bot API has no idempotency key, so this cannot be closed for Telegram. Outcomes
  are written per batch, so the window is at most one batch of in-flight sends.
- A request that timed out after it was sent may have been delivered: such a message is
  recorded as ``unknown`` and never resent blindly (a duplicate renewal notice or claim
  update costs more trust than a missing one, which operators can see and resend).
- Several dispatchers on one PostgreSQL database claim disjoint rows (``FOR UPDATE SKIP
  LOCKED``), so no message is sent twice by two processes. SQLite means one dispatcher.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from bot.delivery import recipients as recipient_store
from bot.delivery.content import ContentRefused, check_sms, check_telegram
from bot.delivery.errors import (
    ChatNotFound,
    InvalidRecipient,
    OutcomeUnknown,
    RecipientBlocked,
    RecipientOptedOut,
    Rejected,
    RetryAfter,
    SendError,
    Transient,
)
from bot.delivery.policy import CAPPED_CATEGORIES, CONTENT, OPTED_OUT, Hold, Recipient, Rules, Skip
from bot.delivery.policy import decide as decide_policy
from bot.delivery.segments import count_segments
from bot.delivery.senders import SendResult, SmsGateway, TelegramGateway
from bot.delivery.sms_signing import signed_sms
from bot.texts import Texts
from storage.models import Category, Channel, Message, MessageStatus
from storage.sql import Statements

if TYPE_CHECKING:
    from bot.delivery.metrics import DeliveryMetrics
    from bot.settings import Settings

log = logging.getLogger(__name__)

_OUTCOME_FIELDS = [
    "status", "channel", "skip_reason", "attempts", "lease_expires_at", "provider_id",
    "last_error", "segments", "not_before", "sent_at", "updated_at",
]


class Limiter(Protocol):
    async def acquire(self, cost: float = 1.0) -> None: ...
    async def pause(self, seconds: float) -> None: ...


class KeyedWait(Protocol):
    async def wait(self, key: str) -> None: ...


@dataclass
class Limits:
    """Rate limits per channel; ``None`` means unlimited (tests, benchmarks)."""

    telegram: Limiter | None = None
    telegram_per_chat: KeyedWait | None = None
    sms: Limiter | None = None
    sms_concurrency: int = 8
    telegram_concurrency: int = 64


def rules_from_settings(settings: Settings, *, telegram: bool, sms: bool) -> Rules:
    return Rules(
        quiet_start=settings.schedule.quiet_hours_start,
        quiet_end=settings.schedule.quiet_hours_end,
        quiet_exempt=frozenset(settings.delivery.quiet_hours_exempt),
        weekly_cap=settings.delivery.weekly_cap,
        sms_enabled=sms,
        telegram_enabled=telegram,
        marketing_consent_prefixes=tuple(settings.delivery.marketing_requires_consent_prefixes),
    )


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        texts: Texts,
        *,
        telegram: TelegramGateway | None,
        sms: SmsGateway | None,
        limits: Limits | None = None,
        metrics: DeliveryMetrics | None = None,
        clock: Callable[[], datetime],
        skip_locked: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._texts = texts
        self._telegram = telegram
        self._sms = sms
        self._limits = limits or Limits()
        self._metrics = metrics
        self._clock = clock
        self._skip_locked = skip_locked
        self._rng = rng or random.Random()
        self._rules = rules_from_settings(settings, telegram=telegram is not None,
                                          sms=sms is not None)
        self._tg_slots = asyncio.Semaphore(self._limits.telegram_concurrency)
        self._sms_slots = asyncio.Semaphore(self._limits.sms_concurrency)
        base = settings.twilio.public_base_url.rstrip("/")
        self._callback_url = f"{base}/sms/status" if base else None

    # -- the loop -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, until_idle: bool = False) -> None:
        """Dispatch until ``stop`` is set (or, with ``until_idle``, until nothing is due).

        ``delivery.pipelines`` loops run side by side, so one batch's database round trips
        overlap the next batch's sends. Each loop finishes its batch in flight before it
        returns.
        """
        interval = self._settings.delivery.poll_interval_seconds

        async def loop() -> None:
            while not stop.is_set():
                try:
                    handled = await self.dispatch_once()
                except (OSError, ConnectionError):
                    log.warning("dispatch pass failed: database unreachable, retrying",
                                exc_info=True)
                    handled = 0
                if handled:
                    continue
                if until_idle:
                    return
                try:
                    await asyncio.wait_for(stop.wait(), timeout=interval)
                except TimeoutError:
                    pass

        await asyncio.gather(*(loop() for _ in range(self._settings.delivery.pipelines)))

    async def dispatch_once(self) -> int:
        """Claim one batch of due messages and settle every one of them; returns the count."""
        now = self._clock()
        batch = await self.claim(now)
        if not batch:
            return 0
        recipients = await recipient_store.load_recipients(
            (m.customer_id for m in batch), now=now
        )
        sent_capped: dict[int, int] = {}
        try:
            await asyncio.gather(
                *(self._settle(m, recipients.get(m.customer_id), sent_capped) for m in batch)
            )
        finally:
            await self._record(batch)
        return len(batch)

    async def claim(self, now: datetime) -> list[Message]:
        lease = now + timedelta(seconds=self._settings.delivery.lease_seconds)
        due = Q(status=MessageStatus.PENDING, not_before__lte=now) | Q(
            status=MessageStatus.CLAIMED, lease_expires_at__lt=now
        )
        async with in_transaction():
            query = (
                Message.filter(due)
                .order_by("not_before", "id")
                .limit(self._settings.delivery.batch_size)
            )
            if self._skip_locked:
                query = query.select_for_update(skip_locked=True)
            # Not values_list(): tortoise 1.1.9 drops FOR UPDATE from values/values_list
            # queries, which would let two dispatchers claim the same rows.
            ids = [row.id for row in await query.only("id")]
            if not ids:
                return []
            await Message.filter(id__in=list(ids)).update(
                status=MessageStatus.CLAIMED, lease_expires_at=lease
            )
        return await Message.filter(id__in=list(ids)).order_by("not_before", "id")

    async def release(self, messages: list[Message]) -> None:
        """Give claimed messages back to the queue (shutdown before they were tried)."""
        ids = [m.id for m in messages if m.status == MessageStatus.CLAIMED]
        if ids:
            await Message.filter(id__in=ids, status=MessageStatus.CLAIMED).update(
                status=MessageStatus.PENDING, lease_expires_at=None
            )

    # -- one message ----------------------------------------------------------------------

    async def _settle(
        self, msg: Message, recipient: Recipient | None, sent_capped: dict[int, int]
    ) -> None:
        if recipient is None:  # the customer was deleted after the message was queued
            self._skip(msg, "no_customer")
            return
        while True:
            now = self._clock()
            extra = sent_capped.get(recipient.customer_id, 0)
            current = replace(recipient, recent_capped=recipient.recent_capped + extra)
            decision = decide_policy(
                category=str(msg.category), channel_policy=msg.channel_policy,
                stale_after=msg.stale_after, recipient=current, rules=self._rules, now=now,
            )
            if isinstance(decision, Skip):
                self._skip(msg, decision.reason)
                return
            if isinstance(decision, Hold):
                self._requeue(msg, decision.until)
                return
            channel = decision.channel
            try:
                text = self._render(msg, current, channel)
            except ContentRefused as exc:
                self._skip(msg, CONTENT, error=exc.reason)
                return
            if msg.category in CAPPED_CATEGORIES:
                sent_capped[recipient.customer_id] = extra + 1
            try:
                result = await self._send(channel, current, text)
            except SendError as exc:
                if msg.category in CAPPED_CATEGORIES:
                    sent_capped[recipient.customer_id] = extra
                fallback = await self._on_error(msg, current, channel, exc)
                if fallback is None:
                    return
                recipient = fallback  # without the channel that just failed
                continue
            self._sent(msg, channel, result)
            return

    def _render(self, msg: Message, recipient: Recipient, channel: Channel) -> str:
        language = recipient.language
        if channel is Channel.SMS:
            body = self._texts.render(msg.template_key, language, msg.params, sms=True)
            text = signed_sms(self._settings.sms, body, language=language, to=recipient.phone,
                              opt_out_hint=msg.category == Category.MARKETING)
            check_sms(recipient.phone, text, category=str(msg.category))
            return text
        text = self._texts.render(msg.template_key, language, msg.params)
        check_telegram(text)
        return text

    async def _send(self, channel: Channel, recipient: Recipient, text: str) -> SendResult:
        limits = self._limits
        if channel is Channel.TELEGRAM:
            assert self._telegram is not None and recipient.telegram_chat_id is not None
            async with self._tg_slots:
                if limits.telegram_per_chat is not None:
                    await limits.telegram_per_chat.wait(str(recipient.telegram_chat_id))
                if limits.telegram is not None:
                    await limits.telegram.acquire()
                return await self._telegram.send_text(recipient.telegram_chat_id, text)
        assert self._sms is not None
        segments = count_segments(text)
        async with self._sms_slots:
            if limits.sms is not None:
                await limits.sms.acquire(segments)
            result = await self._sms.send(recipient.phone, text, callback_url=self._callback_url)
        return SendResult(result.provider_id, segments=max(result.segments, segments))

    async def _on_error(
        self, msg: Message, recipient: Recipient, channel: Channel, exc: SendError
    ) -> Recipient | None:
        """Record what the error means; a Recipient to try the next channel with, or None."""
        now = self._clock()
        if self._metrics is not None:
            self._metrics.provider_errors.labels(channel.value, exc.code or "?").inc()
        msg.last_error = f"{channel.value}: {exc}"[:500]
        msg.attempts += 1
        if isinstance(exc, RetryAfter):
            limiter = self._limits.telegram if channel is Channel.TELEGRAM else self._limits.sms
            if limiter is not None:
                await limiter.pause(exc.seconds)
            msg.attempts -= 1  # the provider refused before trying: not a failed attempt
            self._requeue(msg, now + timedelta(seconds=exc.seconds))
            return None
        if isinstance(exc, RecipientBlocked) and recipient.telegram_chat_id is not None:
            await recipient_store.mark_blocked(recipient.customer_id, recipient.telegram_chat_id,
                                               now=now)
            return replace(recipient, telegram_chat_id=None)
        if isinstance(exc, ChatNotFound) and recipient.telegram_chat_id is not None:
            await recipient_store.unlink_chat(recipient.customer_id, recipient.telegram_chat_id)
            return replace(recipient, telegram_chat_id=None)
        if isinstance(exc, RecipientOptedOut):
            await recipient_store.record_sms_opt_out(
                recipient.customer_id, self._settings.sms.opt_out_categories,
                source="twilio:21610", now=now,
            )
            self._finish(msg, MessageStatus.FAILED, reason=OPTED_OUT)
            return None
        if isinstance(exc, InvalidRecipient):
            await recipient_store.mark_phone_invalid(recipient.customer_id, now=now)
            return replace(recipient, phone_valid=False)
        if isinstance(exc, Transient):
            if msg.attempts >= self._settings.delivery.max_attempts:
                self._finish(msg, MessageStatus.FAILED, reason="attempts_exhausted")
                return None
            self._requeue(msg, now + self._backoff(msg.attempts))
            return None
        if isinstance(exc, OutcomeUnknown):
            self._finish(msg, MessageStatus.UNKNOWN, channel=channel)
            return None
        assert isinstance(exc, Rejected | RecipientBlocked | ChatNotFound)
        self._finish(msg, MessageStatus.FAILED, channel=channel, reason="rejected")
        return None

    def _backoff(self, attempts: int) -> timedelta:
        base = self._settings.delivery.backoff_base_seconds * (2 ** (attempts - 1))
        capped = min(base, 6 * 3600.0)
        return timedelta(seconds=capped * (0.5 + self._rng.random() / 2))  # "equal jitter"

    # -- outcomes (written per batch in _record) ------------------------------------------

    def _finish(
        self,
        msg: Message,
        status: MessageStatus,
        *,
        channel: Channel | None = None,
        reason: str = "",
    ) -> None:
        msg.status = status
        msg.lease_expires_at = None
        if channel is not None:
            msg.channel = channel
        if reason:
            msg.skip_reason = reason
        if self._metrics is not None:
            label = msg.channel.value if msg.channel else "none"
            self._metrics.messages.labels(msg.kind, label, status.value).inc()

    def _skip(self, msg: Message, reason: str, *, error: str = "") -> None:
        if error:
            msg.last_error = error
        self._finish(msg, MessageStatus.SKIPPED, reason=reason)

    def _requeue(self, msg: Message, when: datetime) -> None:
        msg.status = MessageStatus.PENDING
        msg.not_before = when
        msg.lease_expires_at = None

    def _sent(self, msg: Message, channel: Channel, result: SendResult) -> None:
        now = self._clock()
        msg.attempts += 1
        msg.provider_id = result.provider_id
        msg.segments = result.segments if channel is Channel.SMS else 0
        msg.sent_at = now
        msg.skip_reason = ""
        self._finish(msg, MessageStatus.SENT, channel=channel)
        if self._metrics is not None:
            self._metrics.latency.observe(max(0.0, (now - msg.not_before).total_seconds()))

    async def _record(self, batch: list[Message]) -> None:
        """Write every settled outcome of the batch in one executemany, release the rest."""
        now = self._clock()
        settled = [m for m in batch if m.status != MessageStatus.CLAIMED]
        if settled:
            rows = [
                [
                    m.status.value, m.channel.value if m.channel else None, m.skip_reason,
                    m.attempts, _utc(m.lease_expires_at), m.provider_id, m.last_error,
                    m.segments, _utc(m.not_before), _utc(m.sent_at), _utc(now), m.id,
                ]
                for m in settled
            ]
            async with in_transaction() as conn:
                await Statements(conn).update(Message, _OUTCOME_FIELDS, rows)
        unsettled = [m for m in batch if m.status == MessageStatus.CLAIMED]
        if unsettled:
            await self.release(unsettled)


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)
