"""The one error router: a refusal by the loyalty services gets its own kind words, anything
else an apology with the hotline; both are logged. Handlers never catch broadly themselves.

If the apology itself cannot be sent, that error propagates: the update is then not marked
processed and (in webhook mode) answered 500, so Telegram delivers it again later. A flood
wait too long to wait out in the reply (``bot.telegram.flood``) propagates the same way,
without an apology and without a traceback.
"""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramRetryAfter
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent

from bot.settings import Settings
from bot.telegram.i18n import Translator
from bot.texts import Texts
from loyalty.errors import (
    InsufficientPoints,
    LimitReached,
    LoyaltyError,
    NotEligible,
    OutOfStock,
    UnknownReward,
    VoucherAlreadyUsed,
    VoucherExpired,
    VoucherNotFound,
)

log = logging.getLogger(__name__)

_SIMPLE: dict[type[LoyaltyError], str] = {
    OutOfStock: "tg_error_out_of_stock",
    LimitReached: "tg_error_limit_reached",
    NotEligible: "tg_error_not_eligible",
    VoucherAlreadyUsed: "tg_error_voucher_used",
    VoucherExpired: "tg_error_voucher_expired",
    VoucherNotFound: "tg_not_found",
    UnknownReward: "tg_not_found",
}


async def _answer(event: ErrorEvent, bot: Bot, text: str) -> None:
    """Say it where the update came from: a message's chat, or a button's user."""
    update = event.update
    if update.callback_query is not None:
        await bot.answer_callback_query(update.callback_query.id)
        await bot.send_message(update.callback_query.from_user.id, text)
    elif update.message is not None:
        await bot.send_message(update.message.chat.id, text)


def _translator(t: Translator | None, texts: Texts, settings: Settings) -> Translator:
    # The context middleware may not have run (an error before it): the company default.
    return t or Translator(texts, settings.company.default_language)


async def loyalty_refused(event: ErrorEvent, bot: Bot, texts: Texts, settings: Settings,
                          t: Translator | None = None) -> None:
    error = event.exception
    assert isinstance(error, LoyaltyError)
    t = _translator(t, texts, settings)
    log.info("update %d: loyalty refused: %s (%s)", event.update.update_id, error.code, error)
    if isinstance(error, InsufficientPoints):
        text = t("tg_error_insufficient_points", needed=error.needed,
                 balance=error.balance if error.balance is not None else 0)
    else:
        key = next((k for kind, k in _SIMPLE.items() if isinstance(error, kind)),
                   "tg_error_loyalty")
        text = t(key, hotline=settings.company.hotline) if key == "tg_error_loyalty" else t(key)
    await _answer(event, bot, text)


async def flood_controlled(event: ErrorEvent) -> None:
    """A reply met a flood wait longer than ``bot.telegram.flood`` waits for: an apology
    would meet it too. The update stays unprocessed, and Telegram delivers it again."""
    error = event.exception
    assert isinstance(error, TelegramRetryAfter)
    log.warning("update %d: Telegram flood control for %d s; left for redelivery",
                event.update.update_id, error.retry_after)
    raise error


async def unexpected(event: ErrorEvent, bot: Bot, texts: Texts, settings: Settings,
                     t: Translator | None = None) -> None:
    log.error("update %d failed: %s", event.update.update_id, type(event.exception).__name__,
              exc_info=event.exception)
    t = _translator(t, texts, settings)
    await _answer(event, bot, t("tg_error_generic", hotline=settings.company.hotline))


def get_router() -> Router:
    router = Router(name=__name__)
    router.errors.register(loyalty_refused, ExceptionTypeFilter(LoyaltyError))
    router.errors.register(flood_controlled, ExceptionTypeFilter(TelegramRetryAfter))
    router.errors.register(unexpected)
    return router
