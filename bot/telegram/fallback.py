"""Whatever no feature took: a message naming one of the customer's own claim numbers gets
that claim's status; anything else a pointer to the menu (or, unlinked, to linking)."""

from __future__ import annotations

import re

from aiogram import Bot, F, Router
from aiogram.types import Message

from bot.telegram import keyboards
from bot.telegram.accounts import Policyholder
from bot.telegram.claims import own_claims_by_number, send_claim
from bot.telegram.i18n import Translator

# Claim numbers are letters, digits and dashes (RDAA3101000001, CLM-2026-0001).
_CANDIDATE = re.compile(r"(?<![A-Za-z0-9-])[A-Za-z0-9][A-Za-z0-9-]{5,39}(?![A-Za-z0-9-])")
_MAX_CANDIDATES = 10


def claim_number_candidates(text: str) -> list[str]:
    found: list[str] = []
    for match in _CANDIDATE.finditer(text):
        token = match.group(0)
        if any(ch.isdigit() for ch in token):
            found += [token] if token == token.upper() else [token, token.upper()]
    return found[:_MAX_CANDIDATES]


async def free_text(message: Message, bot: Bot, customer: Policyholder | None,
                    t: Translator) -> None:
    if customer is None:
        await message.answer(t("tg_link_first"), reply_markup=keyboards.share_contact(t))
        return
    candidates = claim_number_candidates(message.text or "")
    if candidates:
        claims = await own_claims_by_number(customer, candidates)
        if claims:
            await send_claim(bot, message.chat.id, t, claims[0], customer)
            return
    await message.answer(t("tg_unknown_text"), reply_markup=keyboards.main_menu(t))


async def anything_else(message: Message, customer: Policyholder | None, t: Translator) -> None:
    if customer is None:
        await message.answer(t("tg_link_first"), reply_markup=keyboards.share_contact(t))
    else:
        await message.answer(t("tg_unknown_text"), reply_markup=keyboards.main_menu(t))


def get_router() -> Router:
    router = Router(name=__name__)
    router.message.register(free_text, F.text)
    router.message.register(anything_else)
    return router
