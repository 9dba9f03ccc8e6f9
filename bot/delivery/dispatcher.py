"""The outbox dispatcher: claim due messages, decide, render, rate-limit, send, record.

Delivery guarantees, stated honestly:
- A claimed message carries a lease. A process that dies before recording the outcome leaves
  the lease to expire, and another dispatch claims the message again: nothing is lost. A
  crash therefore delays the messages it held by up to ``delivery.lease_seconds``.
- The price is a narrow window for duplicates: a message accepted by the provider whose
  outcome was not yet written (crash between send and acknowledgement) is sent again. A
  live process extends the lease of a batch it is still sending (``_keep_leases``), so only
  a crash lets a lease run out.
  Telegram's Bot API has no idempotency key, so this cannot be closed for Telegram. Outcomes
  are written once a second while a batch is sent (and at its end), so the window is about a
  second of sends plus those on the wire.
- A request that timed out after it was sent may have been delivered: such a message is
  recorded as ``unknown`` and never resent blindly (a duplicate renewal notice or claim
  update costs more trust than a missing one, which operators can see and resend).
- Several dispatchers on one PostgreSQL database claim disjoint rows (``FOR UPDATE SKIP
  LOCKED``), so no message is sent twice by two processes. SQLite means one dispatcher. A
  message whose lease ran out while it waited for its rate-limit slot is not sent (another
  process may hold it by then).

Every provider reply is classified by the senders (``bot.delivery.errors``); any other
exception while settling one message fails that message (logged), never the batch or the
loop. A pass that fails (the database went away) is retried by the pipeline after a pause.

Right before each send the message is checked again: a campaign paused or cancelled since
the batch was claimed stops it (``campaign_gate``), and a renewal reminder, holiday reminder
or lapse rescue whose policy was renewed or cancelled since it was planned is skipped
(``scheduler.recheck``).

Shutdown (``begin_shutdown``, on SIGTERM): messages not yet handed to a provider stop waiting
and go back to the queue at once; sends on the wire get until ``delivery.shutdown_seconds``
minus ``SHUTDOWN_RESERVE`` to finish, then are cut off and recorded as ``unknown``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from tortoise.transactions import in_transaction

from bot.delivery import recipients as recipient_store
from bot.delivery import reports
from bot.delivery.campaign_gate import CampaignGate
from bot.delivery.content import ContentRefused, check_sms, check_telegram
from bot.delivery.errors import (
    ChannelUnavailable,
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
from bot.delivery.ratelimit import KeyedInterval
from bot.delivery.segments import count_segments
from bot.delivery.senders import SendResult, SmsGateway, TelegramGateway
from bot.delivery.sms_signing import signed_sms
from bot.telegram.renewal_answers import reminder_keyboard
from bot.telegram.surveys import survey_keyboard
from bot.texts import Texts
from scheduler import recheck
from storage import outbox
from storage.db import is_unreachable
from storage.models import Category, Channel, Message, MessageStatus
from storage.operator_models import CAMPAIGN_CANCELLED, HOLD_UNTIL
from storage.sql import Statements

if TYPE_CHECKING:
    from bot.delivery.metrics import DeliveryMetrics
    from bot.settings import Settings

log = logging.getLogger(__name__)

_OUTCOME_FIELDS = [
    "status", "channel", "skip_reason", "attempts", "lease_expires_at", "provider_id",
    "last_error", "segments", "not_before", "sent_at", "updated_at",
]
SHUTDOWN_RESERVE = 1.5
"""Seconds of ``delivery.shutdown_seconds`` kept for recording outcomes and closing down."""
MAX_CHANNEL_BACKOFF = 30.0
"""A channel answering 5xx again and again rests 1, 2, 4 … seconds, at most this long."""
MAX_PASS_BACKOFF = 30.0
PREPARING = 4
"""Messages decided and rendered per event-loop turn (see ``_settle``)."""
WRITE_EVERY = 1.0
"""Seconds between writes of a batch's outcomes while it is being sent."""


class Limiter(Protocol):
    async def acquire(self, cost: float = 1.0) -> None: ...
    async def pause(self, seconds: float) -> None: ...


Beat = Callable[..., None]
"""Called after every pass, so the supervisor can tell the loop is alive."""


def _no_beat(**detail: str) -> None:
    return None


@dataclass
class Limits:
    """Rate limits per channel; ``None`` means unlimited (tests, benchmarks)."""

    telegram: Limiter | None = None
    telegram_per_chat: KeyedInterval | None = None
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
        gate: CampaignGate | None = None,
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
        self._gate = gate or CampaignGate()
        self._rules = rules_from_settings(settings, telegram=telegram is not None,
                                          sms=sms is not None)
        self._tg_slots = asyncio.Semaphore(self._limits.telegram_concurrency)
        self._sms_slots = asyncio.Semaphore(self._limits.sms_concurrency)
        self._preparing = asyncio.Semaphore(PREPARING)
        base = settings.twilio.public_base_url.rstrip("/")
        self._callback_url = f"{base}/sms/status" if base else None
        self._stopping = asyncio.Event()
        self._waiting: set[asyncio.Task[Any]] = set()  # sends not yet handed to a provider
        self._wire: dict[asyncio.Task[Any], Message] = {}  # sends on the wire
        self._cut: set[int] = set()  # messages whose request was cut off at shutdown
        self._failing: dict[Channel, int] = {}  # consecutive transient errors per channel
        self._resting_until: dict[Channel, float] = {}

    # -- the loop -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, until_idle: bool = False) -> None:
        """``delivery.pipelines`` loops side by side until ``stop`` is set (or, with
        ``until_idle``, until nothing is due): one batch's database round trips overlap the
        next batch's sends. ``engage run`` supervises each pipeline on its own instead."""
        await asyncio.gather(*(self.pipeline(stop, until_idle=until_idle)
                               for _ in range(self._settings.delivery.pipelines)))

    async def pipeline(self, stop: asyncio.Event, beat: Beat = _no_beat, *,
                       until_idle: bool = False) -> None:
        """One dispatch loop. ``stop`` begins the shutdown (see the module docstring); a pass
        that fails because the database cannot be reached (``storage.db.is_unreachable``: down,
        restarting, locked) is logged and tried again after a growing pause; anything else
        is raised to the supervisor.

        The next batch is claimed once half of the current one is settled, while the rest is
        still being sent: the claim's round trips then overlap the last sends instead of
        leaving the rate limiter without a waiting sender (at most two batches per loop)."""
        interval = self._settings.delivery.poll_interval_seconds
        failures = 0
        finishing: asyncio.Future[int] | None = None  # the previous batch's last sends
        try:
            while not stop.is_set():
                half = asyncio.Event()
                current = asyncio.ensure_future(self._pass(stop, half))
                earlier, finishing = finishing, None
                reading_earlier = True
                try:
                    if earlier is not None:
                        await earlier
                    reading_earlier = False
                    halfway = asyncio.ensure_future(half.wait())
                    try:
                        await asyncio.wait({current, halfway},
                                           return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        halfway.cancel()
                    if current.done():
                        handled = current.result()
                    else:
                        handled, finishing = 1, current
                except Exception as exc:
                    if reading_earlier:
                        finishing = current  # its outcome is read next time round
                    if not is_unreachable(exc):
                        raise  # for the supervisor: logged once as an ERROR, restarted
                    failures += 1
                    wait = min(interval * 2 ** failures, MAX_PASS_BACKOFF)
                    log.warning("dispatch pass failed (%s: %s); trying again in %.0f s",
                                type(exc).__name__, exc, wait)
                    await _wait(stop, wait)
                    continue
                failures = 0
                beat()
                if handled:
                    continue
                if until_idle:
                    return
                await _wait(stop, interval)
        finally:
            if finishing is not None:
                await _finish(finishing)

    async def _pass(self, stop: asyncio.Event, half: asyncio.Event | None = None) -> int:
        once = asyncio.ensure_future(self.dispatch_once(half))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({once, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not once.done():
                self.begin_shutdown()
            return await once
        finally:
            stopped.cancel()

    def begin_shutdown(self) -> None:
        """Stop waiting sends now (their messages return to the queue); cut off sends still
        on the wire when the shutdown budget is spent."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        for task in list(self._waiting):
            task.cancel()
        budget = self._settings.delivery.shutdown_seconds
        grace = max(budget - SHUTDOWN_RESERVE, budget / 2)
        asyncio.get_running_loop().call_later(grace, self._cut_wire)

    def _cut_wire(self) -> None:
        for task, msg in list(self._wire.items()):
            self._cut.add(msg.id)
            task.cancel()

    async def dispatch_once(self, half: asyncio.Event | None = None) -> int:
        """Claim one batch of due messages and settle every one of them; returns the count.
        ``half`` is set once half of the batch is settled (see ``pipeline``)."""
        now = self._clock()
        batch = await self.claim(now)
        if not batch:
            return 0
        recipients = await recipient_store.load_recipients(
            (m.customer_id for m in batch), now=now
        )
        obsolete = await self._obsolete(batch)
        sent_capped: dict[int, int] = {}
        tasks = [asyncio.ensure_future(self._settle_one(
            m, recipients.get(m.customer_id), sent_capped, obsolete.get(m.id))) for m in batch]
        if half is not None:
            _set_when_half_done(tasks, half)
        done: set[int] = set()  # written (or given back) already
        try:
            await self._settle_all(batch, tasks, done)
        finally:
            await self._record([m for m in batch if m.id not in done])
        return len(batch)

    async def _settle_all(self, batch: list[Message], tasks: list[asyncio.Task[None]],
                          done: set[int]) -> None:
        everything: asyncio.Future[list[None]] = asyncio.gather(*tasks)
        stopping: asyncio.Future[Any] = asyncio.ensure_future(self._stopping.wait())
        renewing = asyncio.ensure_future(self._keep_leases(batch))
        finished = asyncio.Event()
        flushing = asyncio.ensure_future(self._write_every_second(batch, done, finished))
        try:
            await asyncio.wait([everything, stopping], return_when=asyncio.FIRST_COMPLETED)
            if not everything.done():
                # Shutting down: what is not on the wire ends now; give it back at once.
                rest = [t for t in tasks if not t.done() and t not in self._wire]
                if rest:
                    await asyncio.wait(rest)
                on_wire = {m.id for m in self._wire.values()}
                unsent = [m for m in batch
                          if m.status == MessageStatus.CLAIMED and m.id not in on_wire]
                await self.release(unsent)
                done.update(m.id for m in unsent)
            await everything
        finally:
            stopping.cancel()
            renewing.cancel()
            finished.set()
            await flushing  # a write in progress completes; the rest is _record's

    async def _write_every_second(self, batch: list[Message], done: set[int],
                                  finished: asyncio.Event) -> None:
        """Write the outcomes settled so far once a second while the batch is sent: a crash
        then repeats at most about a second of sends, not the whole batch's."""
        while True:
            try:
                await asyncio.wait_for(finished.wait(), timeout=WRITE_EVERY)
                return
            except TimeoutError:
                pass
            settled = [m for m in batch if m.status != MessageStatus.CLAIMED and m.id not in done]
            if not settled:
                continue
            done.update(m.id for m in settled)
            try:
                await self._write_outcomes(settled)
            except (OSError, ConnectionError) as exc:  # _record tries them again at the end
                done.difference_update(m.id for m in settled)
                log.warning("could not write outcomes yet: %s: %s", type(exc).__name__, exc)

    async def _keep_leases(self, batch: list[Message]) -> None:
        """While the batch is being sent, extend its lease every third of ``lease_seconds``:
        a live process never loses its claim, so a batch that takes longer than the lease (a
        slow channel, a flood wait) is not claimed and sent again by another pipeline or
        process. Only a process that died leaves its lease to run out."""
        seconds = self._settings.delivery.lease_seconds
        old = batch[0].lease_expires_at  # one claim, one lease for the whole batch
        while old is not None:
            await asyncio.sleep(max(1.0, seconds / 3))
            new = self._clock() + timedelta(seconds=seconds)
            if new <= old:
                continue
            try:  # every row still ours, including those settled but not yet recorded
                await Message.filter(id__in=[m.id for m in batch], status=MessageStatus.CLAIMED,
                                     lease_expires_at=old).update(lease_expires_at=new)
            except (OSError, ConnectionError) as exc:
                log.warning("could not extend a batch's lease: %s: %s", type(exc).__name__, exc)
                continue
            for m in batch:
                if m.status == MessageStatus.CLAIMED and m.lease_expires_at == old:
                    m.lease_expires_at = new
            old = new

    async def claim(self, now: datetime) -> list[Message]:
        ids = await outbox.claim_due(
            now, lease_until=now + timedelta(seconds=self._settings.delivery.lease_seconds),
            limit=self._settings.delivery.batch_size, skip_locked=self._skip_locked)
        if not ids:
            return []
        return await Message.filter(id__in=ids).order_by("not_before", "id")

    async def release(self, messages: list[Message]) -> None:
        """Give claimed messages back to the queue (not tried: shutdown). Only rows still
        under this claim's lease: one another process claimed meanwhile stays its own."""
        by_lease: dict[datetime | None, list[int]] = {}
        for m in messages:
            if m.status == MessageStatus.CLAIMED:
                by_lease.setdefault(m.lease_expires_at, []).append(m.id)
        for lease, ids in by_lease.items():
            await Message.filter(id__in=ids, status=MessageStatus.CLAIMED,
                                 lease_expires_at=lease).update(
                status=MessageStatus.PENDING, lease_expires_at=None)

    async def _obsolete(self, batch: list[Message]) -> dict[int, str]:
        """Reminders in ``batch`` whose policy no longer needs them, with the skip reason."""
        anchors = {m.id: recheck.anchor(m.dedup_key) for m in batch if m.kind in recheck.KINDS}
        wanted = {anchor for anchor in anchors.values() if anchor is not None}
        if not wanted:
            return {}
        reasons = await recheck.obsolete(wanted)
        return {mid: reasons[anchor] for mid, anchor in anchors.items()
                if anchor is not None and anchor in reasons}

    # -- one message ----------------------------------------------------------------------

    async def _settle_one(self, msg: Message, recipient: Recipient | None,
                          sent_capped: dict[int, int], obsolete: str | None) -> None:
        """Settle ``msg`` whatever happens: no exception leaves this for the batch."""
        try:
            if obsolete:
                self._skip(msg, obsolete)
                return
            await self._settle(msg, recipient, sent_capped)
        except asyncio.CancelledError:
            if not self._stopping.is_set():
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            if msg.id in self._cut:
                msg.last_error = "shutdown: the request was cut off before its answer"
                self._finish(msg, MessageStatus.UNKNOWN)
            # else never handed over: it stays claimed and goes back to the queue
        except (OSError, ConnectionError) as exc:
            log.warning("message %d left for its lease to expire: %s: %s", msg.id,
                        type(exc).__name__, exc)
        except Exception as exc:  # a bug for this one message; the batch goes on
            log.exception("message %d could not be settled; recorded as failed", msg.id)
            if msg.status == MessageStatus.CLAIMED:
                msg.last_error = f"error: {type(exc).__name__}: {exc}"[:500]
                self._finish(msg, MessageStatus.FAILED, reason="error")

    async def _settle(
        self, msg: Message, recipient: Recipient | None, sent_capped: dict[int, int]
    ) -> None:
        if recipient is None:  # the customer was deleted after the message was queued
            self._skip(msg, "no_customer")
            return
        while True:
            extra = sent_capped.get(recipient.customer_id, 0)
            current = replace(recipient, recent_capped=recipient.recent_capped + extra)
            # A few at a time: the CPU of deciding and rendering a whole batch at once would
            # hold the event loop - and the requests already released - for a fifth of a second.
            async with self._preparing:
                prepared = self._prepare(msg, current)
            if prepared is None:
                return
            channel, text = prepared
            capped = msg.category in CAPPED_CATEGORIES
            if capped:
                sent_capped[recipient.customer_id] = extra + 1
            try:
                result = await self._send(msg, channel, current, text)
            except SendError as exc:
                result = None
                fallback = await self._on_error(msg, current, channel, exc)
                if fallback is not None:
                    recipient = fallback  # without the channel that just failed
                    if capped:
                        sent_capped[recipient.customer_id] = extra
                    continue
            if result is None:  # not sent: the message already says what happens next
                if capped:
                    sent_capped[recipient.customer_id] = extra
                return
            self._sent(msg, channel, result)
            return

    def _prepare(self, msg: Message, recipient: Recipient) -> tuple[Channel, str] | None:
        """The channel and the rendered text, or None when the policy skips or holds it."""
        decision = decide_policy(
            category=str(msg.category), channel_policy=msg.channel_policy,
            stale_after=msg.stale_after, recipient=recipient, rules=self._rules,
            now=self._clock(),
        )
        if isinstance(decision, Skip):
            self._skip(msg, decision.reason)
            return None
        if isinstance(decision, Hold):
            self._requeue(msg, decision.until)
            return None
        try:
            return decision.channel, self._render(msg, recipient, decision.channel)
        except ContentRefused as exc:
            self._skip(msg, CONTENT, error=exc.reason)
            return None

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

    # -- sending ---------------------------------------------------------------------------

    async def _send(self, msg: Message, channel: Channel, recipient: Recipient,
                    text: str) -> SendResult | None:
        """Send under the channel's limits; None when the message must not go now (shutting
        down, campaign stopped, lease gone — see ``_may_start`` and ``_may_go``)."""
        task = asyncio.current_task()
        assert task is not None
        self._waiting.add(task)
        try:
            if channel is Channel.TELEGRAM:
                return await self._send_telegram(msg, recipient, text)
            return await self._send_sms(msg, recipient, text)
        finally:
            self._waiting.discard(task)

    async def _send_telegram(self, msg: Message, recipient: Recipient,
                             text: str) -> SendResult | None:
        assert self._telegram is not None and recipient.telegram_chat_id is not None
        chat = recipient.telegram_chat_id
        async with self._tg_slots:
            if not await self._may_start(msg):
                return None
            await _take_slot(self._limits.telegram, self._limits.telegram_per_chat,
                             str(chat), 1.0)
            if not self._may_go(msg):
                return None
            markup = (reminder_keyboard(self._texts, recipient.language, msg.kind, msg.params)
                      or survey_keyboard(msg.kind, msg.params))
            return await self._on_wire(msg, self._telegram.send_text(chat, text, markup))

    async def _send_sms(self, msg: Message, recipient: Recipient,
                        text: str) -> SendResult | None:
        assert self._sms is not None
        segments = count_segments(text)
        async with self._sms_slots:
            if not await self._may_start(msg):
                return None
            await _take_slot(self._limits.sms, None, "", segments)
            if not self._may_go(msg):
                return None
            result = await self._on_wire(msg, self._sms.send(
                recipient.phone, text, callback_url=self._callback_url))
        return SendResult(result.provider_id, segments=max(result.segments, segments))

    async def _on_wire(self, msg: Message,
                       request: Coroutine[Any, Any, SendResult]) -> SendResult:
        task = asyncio.current_task()
        assert task is not None
        self._waiting.discard(task)
        self._wire[task] = msg
        try:
            return await request
        finally:
            del self._wire[task]

    async def _may_start(self, msg: Message) -> bool:
        """Before waiting for a rate-limit slot: not stopping, campaign still sending."""
        if self._stopping.is_set():
            return False
        if msg.campaign_id is not None:
            await self._gate.refresh(msg.campaign_id)
        return self._may_go(msg)

    def _may_go(self, msg: Message) -> bool:
        """Right before the request leaves (nothing awaited): still not stopping, the
        campaign not stopped as last seen, and the claim still ours."""
        if self._stopping.is_set():
            return False
        verdict = self._gate.verdict(msg.campaign_id) if msg.campaign_id is not None else None
        if verdict == "paused":
            self._requeue(msg, HOLD_UNTIL)  # held like the rest; resume releases it
            return False
        if verdict == "cancelled":
            self._skip(msg, CAMPAIGN_CANCELLED)
            return False
        if msg.lease_expires_at is not None and self._clock() >= msg.lease_expires_at:
            log.warning("message %d: lease ran out while waiting to send; left to whoever "
                        "claims it next", msg.id)
            return False
        return True

    # -- what an error means --------------------------------------------------------------

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
            await self._rest(channel, exc)
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
            await recipient_store.record_number_sms_opt_out(
                recipient.customer_id, self._settings.sms.opt_out_categories,
                source="twilio:21610", reference=f"message {msg.id}", now=now,
            )
            self._finish(msg, MessageStatus.FAILED, reason=OPTED_OUT)
            return None
        if isinstance(exc, InvalidRecipient):
            await recipient_store.mark_phone_invalid(recipient.customer_id, now=now)
            return replace(recipient, phone_valid=False)
        if isinstance(exc, Transient):
            await self._back_off(channel)
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

    async def _rest(self, channel: Channel, exc: RetryAfter) -> None:
        """The provider asked us to wait, or refuses us: nobody here (or, with Redis, in any
        process) starts a send on the channel before ``exc.seconds`` have passed."""
        limiter = self._limits.telegram if channel is Channel.TELEGRAM else self._limits.sms
        if limiter is not None:
            await limiter.pause(exc.seconds)
        if isinstance(exc, ChannelUnavailable):
            loop = asyncio.get_running_loop()
            if loop.time() >= self._resting_until.get(channel, 0.0):  # once per rest
                log.error("%s refuses our requests (%s); the channel rests %.0f s and its "
                          "messages wait", channel.value, exc, exc.seconds)
            self._resting_until[channel] = loop.time() + exc.seconds

    async def _back_off(self, channel: Channel) -> None:
        """A 5xx or a refused connection: the whole channel waits 1, 2, 4 … s while they
        continue, so one outage does not spend the attempts of every message in the batch."""
        failing = self._failing.get(channel, 0) + 1
        self._failing[channel] = failing
        limiter = self._limits.telegram if channel is Channel.TELEGRAM else self._limits.sms
        if limiter is not None:
            await limiter.pause(min(2.0 ** (failing - 1), MAX_CHANNEL_BACKOFF))

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
        self._failing[channel] = 0
        msg.attempts += 1
        msg.provider_id = result.provider_id
        msg.segments = result.segments if channel is Channel.SMS else 0
        msg.sent_at = now
        msg.skip_reason = ""
        self._finish(msg, MessageStatus.SENT, channel=channel)
        if self._metrics is not None:
            self._metrics.latency.observe(max(0.0, (now - msg.not_before).total_seconds()))

    async def _record(self, batch: list[Message]) -> None:
        """Write every settled outcome not written yet and release the rest."""
        await self._write_outcomes([m for m in batch if m.status != MessageStatus.CLAIMED])
        unsettled = [m for m in batch if m.status == MessageStatus.CLAIMED]
        if unsettled:
            await self.release(unsettled)

    async def _write_outcomes(self, settled: list[Message]) -> None:
        """One executemany for the outcomes, then the status callbacks that came before the
        SMS sids were written."""
        now = self._clock()
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
        sms = [m for m in settled if m.status == MessageStatus.SENT and m.channel == Channel.SMS]
        if sms:
            await reports.apply_kept(sms, now=now,
                                     opt_out_categories=self._settings.sms.opt_out_categories)


async def _take_slot(limiter: Limiter | None, per_chat: KeyedInterval | None, key: str,
                     cost: float) -> None:
    """Hold the global slot and the chat together: the chat must be free when the slot is
    released, else the slot is given up (it stays counted) and the send waits for the chat."""
    while True:
        if per_chat is not None:
            await per_chat.ready(key)
        if limiter is not None:
            await limiter.acquire(cost)
        if per_chat is None or await per_chat.try_pass(key) <= 0:
            return


def _set_when_half_done(tasks: list[asyncio.Task[None]], half: asyncio.Event) -> None:
    left = len(tasks) - len(tasks) // 2

    def settled(_: asyncio.Task[None]) -> None:
        nonlocal left
        left -= 1
        if left <= 0:
            half.set()

    for task in tasks:
        task.add_done_callback(settled)


async def _finish(batch: asyncio.Future[int]) -> None:
    """Wait for a batch still sending when its loop ends; its failure is logged, not raised
    (the loop is already ending, with its own error if it had one)."""
    try:
        await batch
    except Exception:
        log.exception("dispatch pass failed while its loop ended")


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)
