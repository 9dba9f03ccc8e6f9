"""/claims, /claim <number>, and a claim number anywhere in a message: a claim's localised
status timeline and the documents it still needs. Only the customer's own claims are ever
looked up (the number alone proves nothing)."""

from __future__ import annotations

import logging
import re

from aiogram import Bot, F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.filters import Command, CommandObject, or_f
from aiogram.types import CallbackQuery, Message

from bot.settings import Settings
from bot.telegram import keyboards, lookups
from bot.telegram.accounts import Policyholder
from bot.telegram.callbacks import ClaimAction, ClaimCb
from bot.telegram.claim_documents import missing, required
from bot.telegram.context import LINKED
from bot.telegram.filters import Magic, MenuButton
from bot.telegram.i18n import Translator, format_money
from bot.telegram.lookups import ClaimCard
from bot.telegram.replies import reply
from storage.models import OPEN_CLAIM_STATUSES, Claim

log = logging.getLogger(__name__)

SHOWN = 10
# Claim numbers are letters, digits and dashes (RDAA3101000001, CLM-2026-0001).
_CANDIDATE = re.compile(r"(?<![A-Za-z0-9-])[A-Za-z0-9][A-Za-z0-9-]{5,39}(?![A-Za-z0-9-])")
_MAX_CANDIDATES = 10


def claim_number_candidates(text: str) -> list[str]:
    """Words that could be claim numbers (they contain a digit), as typed and upper-cased."""
    found: list[str] = []
    for match in _CANDIDATE.finditer(text):
        token = match.group(0)
        if any(ch.isdigit() for ch in token):
            found += [token] if token == token.upper() else [token, token.upper()]
    return found[:_MAX_CANDIDATES]


def status_text(t: Translator, status: str) -> str:
    return t(f"tg_claim_status_{status}")


def document_name(t: Translator, kind: str) -> str:
    return t(f"tg_doc_{kind}") if t.has(f"tg_doc_{kind}") else kind


def claim_text(t: Translator, claim: ClaimCard, customer: Policyholder) -> str:
    """The detail view: status, timeline, amounts and what is still needed."""
    events = claim.timeline
    tz = customer.timezone
    parts = [t("tg_claim_detail", number=claim.number, plate=claim.plate,
               status=status_text(t, claim.status), reported=t.moment(claim.reported_at, tz),
               description=claim.description or "—")]
    if claim.estimated_cents is not None or claim.paid_cents is not None:
        none = t("tg_amount_none")
        parts.append(t("tg_claim_amounts",
                       estimated=format_money(claim.estimated_cents)
                       if claim.estimated_cents is not None else none,
                       paid=format_money(claim.paid_cents)
                       if claim.paid_cents is not None else none))
    if events:
        parts.append(t("tg_claim_timeline_header"))
        for event in events:
            params = {"time": t.moment(event.occurred_at, tz),
                      "status": status_text(t, event.status)}
            parts.append(t("tg_claim_event_note", note=event.note, **params) if event.note
                         else t("tg_claim_event", **params))
    if claim.status in OPEN_CLAIM_STATUSES:
        needed = missing(claim.document_names, required(claim.required_documents))
        if needed:
            names = t("tg_list_separator").join(document_name(t, kind) for kind in needed)
            parts.append(t("tg_claim_docs_needed", documents=names))
        elif claim.required_documents:
            parts.append(t("tg_claim_docs_complete"))
    return "\n".join(parts)


async def send_claim(bot: Bot, chat_id: int, t: Translator, claim: ClaimCard,
                     customer: Policyholder) -> None:
    await reply(bot, chat_id, claim_text(t, claim, customer),
                keyboards.claim_detail(t, claim.id, open_=claim.status in OPEN_CLAIM_STATUSES))


async def own_claims_by_number(customer: Policyholder, numbers: list[str]) -> list[ClaimCard]:
    return await lookups.claims_by_number(customer.id, numbers)


async def send_claims(bot: Bot, chat_id: int, customer: Policyholder, t: Translator,
                      settings: Settings) -> None:
    """The customer's latest claims, a button each."""
    claims = await Claim.filter(customer_id=customer.id).order_by("-reported_at", "-id").limit(
        SHOWN)
    if not claims:
        await reply(bot, chat_id, t("tg_claims_empty", hotline=settings.company.hotline))
        return
    lines = [t("tg_claims_header")]
    lines += [t("tg_claim_line", number=c.number, status=status_text(t, c.status),
                reported=t.moment(c.reported_at, customer.timezone)) for c in claims]
    buttons = [(c.id, t("tg_claim_button", number=c.number, status=status_text(t, c.status)))
               for c in claims]
    await reply(bot, chat_id, "\n".join(lines), keyboards.claims(buttons))


async def list_claims(message: Message, bot: Bot, customer: Policyholder, t: Translator,
                      settings: Settings) -> None:
    await send_claims(bot, message.chat.id, customer, t, settings)


async def back_to_claims(query: CallbackQuery, bot: Bot, customer: Policyholder, t: Translator,
                         settings: Settings) -> None:
    await query.answer()
    await send_claims(bot, query.from_user.id, customer, t, settings)


async def claim_command(message: Message, command: CommandObject, bot: Bot,
                        customer: Policyholder, t: Translator) -> None:
    number = (command.args or "").strip()
    if not number:
        await message.answer(t("tg_claim_usage"))
        return
    found = await own_claims_by_number(customer, [number, number.upper()])
    if not found:
        await message.answer(t("tg_claim_number_unknown", number=number[:40]))
        return
    await send_claim(bot, message.chat.id, t, found[0], customer)


async def show_claim(query: CallbackQuery, callback_data: ClaimCb, bot: Bot,
                     customer: Policyholder, t: Translator) -> None:
    await query.answer()
    claim = await lookups.claim(customer.id, callback_data.id)
    if claim is None:
        log.warning("claim %d asked for by customer %d (telegram user %d): not theirs",
                    callback_data.id, customer.id, query.from_user.id)
        await bot.send_message(query.from_user.id, t("tg_not_found"))
        return
    await send_claim(bot, query.from_user.id, t, claim, customer)


async def claim_in_text(message: Message, bot: Bot, customer: Policyholder,
                        t: Translator) -> None:
    """Free text naming one of the customer's claims answers with its status; text naming
    none (or someone else's) goes on to the handlers after this router."""
    claims = await own_claims_by_number(customer, claim_number_candidates(message.text or ""))
    if not claims:
        raise SkipHandler
    await send_claim(bot, message.chat.id, t, claims[0], customer)


def get_router() -> Router:
    router = Router(name=__name__)
    router.message.register(list_claims, or_f(Command("claims"), MenuButton("tg_menu_claims")),
                            flags=LINKED)
    router.message.register(claim_command, Command("claim"), flags=LINKED)
    router.callback_query.register(show_claim, ClaimCb.filter(F.action == ClaimAction.SHOW),
                                   flags=LINKED)
    router.callback_query.register(back_to_claims,
                                   ClaimCb.filter(F.action == ClaimAction.LIST), flags=LINKED)
    # Early in the chain (not in the fallback) so the most common free text is cheap to route.
    router.message.register(claim_in_text, Magic(F.text), Magic(~F.text.startswith("/")),
                            Magic(F.text.regexp(r"\d", mode="search")), flags=LINKED)
    return router
