"""The parts of the application that need aiogram: one Telegram ``Bot`` (one HTTP session,
shared by the outbox sender and the bot), the outbox dispatcher with its senders and
pipelines, and the Telegram runtime (webhook registration or long polling). Started in this
order and stopped in reverse, after the app listens in ``engage run`` (see ``bot.web.late``),
with the app in tests and the demo.

Importing this module imports aiogram: ``bot.web.app`` imports it only when it starts these.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from prometheus_client import CollectorRegistry

from bot.delivery.dispatcher import Dispatcher
from bot.delivery.limits import WireMargins, limits_for
from bot.delivery.metrics import DeliveryMetrics
from bot.delivery.senders import AiogramTelegram, SmsGateway, TelegramGateway, TwilioSms
from bot.delivery.telegram_session import build_bot
from bot.settings import Settings
from bot.supervisor import Supervisor
from bot.telegram import runtime as telegram_runtime
from bot.telegram.updates import webhook_handler
from bot.texts import Texts
from bot.web.late import LateStart

log = logging.getLogger(__name__)


@asynccontextmanager
async def channels(settings: Settings, late: LateStart, *, texts: Texts,
                   registry: CollectorRegistry, supervisor: Supervisor,
                   clock: Callable[[], datetime], sleep: Callable[[float], Awaitable[None]],
                   telegram: TelegramGateway | None, sms: SmsGateway | None,
                   run_dispatcher: bool) -> AsyncIterator[None]:
    """Bot, dispatcher and Telegram runtime, held in ``late``; ``telegram``/``sms`` replace a
    provider (tests, the demo)."""
    margins = WireMargins()
    bot = None
    if settings.telegram.enabled:
        late.bot = bot = build_bot(settings.telegram.token.get_secret_value(),
                                   settings.telegram.api_base, trace=margins.telegram.trace())
    try:
        async with _delivery(settings, late, margins, texts=texts, registry=registry,
                             supervisor=supervisor, clock=clock, run=run_dispatcher,
                             telegram=telegram if telegram is not None or bot is None
                             else AiogramTelegram(bot), sms=sms):
            if bot is None:
                yield
                return
            late.telegram = runtime = await telegram_runtime.start(
                bot, settings, texts, clock=clock, supervisor=supervisor, sleep=sleep)
            try:
                late.webhook = webhook_handler(settings.telegram.webhook_secret.get_secret_value(),
                                               lambda: runtime.feed)
                yield
            finally:
                late.webhook = None
                await runtime.stop()
    finally:
        if bot is not None:
            await bot.session.close()


@asynccontextmanager
async def _delivery(settings: Settings, late: LateStart, margins: WireMargins, *,
                    texts: Texts, registry: CollectorRegistry, supervisor: Supervisor,
                    clock: Callable[[], datetime], run: bool,
                    telegram: TelegramGateway | None, sms: SmsGateway | None,
                    ) -> AsyncIterator[None]:
    closers: list[Callable[[], object]] = []
    if sms is None and settings.twilio.enabled:
        twilio = TwilioSms(
            account_sid=settings.twilio.account_sid,
            auth_token=settings.twilio.auth_token.get_secret_value(),
            from_number=settings.twilio.from_number,
            messaging_service_sid=settings.twilio.messaging_service_sid,
            api_base=settings.twilio.api_base,
            trace=margins.sms.trace(),
        )
        sms = twilio
        closers.append(twilio.close)
    limits, close_redis = limits_for(settings, margins)
    if close_redis is not None:
        closers.append(close_redis)
    late.dispatcher = dispatcher = Dispatcher(
        settings, texts, telegram=telegram, sms=sms, limits=limits,
        metrics=DeliveryMetrics(registry), clock=clock,
        skip_locked=settings.database.is_postgres,
    )
    delivery = settings.delivery
    pipelines = [
        supervisor.spawn(f"dispatcher-{n}", dispatcher.pipeline,
                         stuck_after=float(delivery.lease_seconds + 30))
        for n in range(1, delivery.pipelines + 1)
    ] if run else []
    if telegram is None and sms is None:
        log.warning("no channel configured (telegram.token, twilio.account_sid): "
                    "messages will be skipped with reason no_channel")
    try:
        yield
    finally:
        # Unsent claimed messages go back at once, sends on the wire finish (see dispatcher).
        await asyncio.gather(*(pipeline.stop() for pipeline in pipelines))
        for close in reversed(closers):
            result = close()
            if asyncio.iscoroutine(result):
                await result
