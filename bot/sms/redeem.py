"""Redeeming points by SMS: ``兑换`` lists, ``兑换2`` asks for a code, ``确认 4821`` redeems.

The rules are Telegram's, because the functions are: ``loyalty.rewards.offers_for`` decides
what this customer may redeem now (tier, window, limits, stock, balance) and
``loyalty.vouchers.redeem`` redeems it (eligibility, stock and the ledger debit in one
transaction). What SMS adds is the confirmation: choosing an item writes an
``SmsRedemption`` with a 4-digit code valid ``CONFIRM_MINUTES``; the confirmation checks it
and redeems with the row as the request key, so however often ``确认`` arrives the customer
gets one voucher. The code comes back in the reply (no outbox notice follows, as in
Telegram), with its expiry.

Choosing and confirming are effects: they run inside the transaction that claims the
MessageSid (``SmsConversations.claimed``), so a replayed webhook changes nothing and gets
the stored reply. The list and ``券`` are queries (``SmsConversations.query``).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.delivery.segments import count_segments
from bot.sms.keywords import Command
from bot.sms.replies import Replies
from loyalty.codes import display
from loyalty.config import LoyaltySettings
from loyalty.errors import LoyaltyError, NotEligible
from loyalty.ledger import get_balance
from loyalty.notifications import format_date, is_english, reward_name, voucher_valid_until
from loyalty.rewards import Offer, get_reward, offers_for
from loyalty.vouchers import customer_vouchers, redeem
from storage.loyalty_models import Voucher, VoucherStatus
from storage.privacy_models import PendingStatus, SmsRedemption

if TYPE_CHECKING:
    from bot.sms.conversations import Handler, SmsConversations, Turn

log = logging.getLogger(__name__)

CONFIRM_MINUTES = 10
MAX_WRONG_CODES = 5  # then the request is void: a 4-digit code is not for guessing
MAX_SEGMENTS = 2
_REASONS = ("insufficient_points", "out_of_stock", "limit_reached", "tier")


def new_confirmation_code() -> str:
    return f"{secrets.randbelow(10_000):04d}"


def _fit(replies: Replies, key: str, more_key: str, language: str, items: Sequence[str],
         **params: object) -> str:
    """``items`` in the ``key`` reply: all of them in one segment if they fit, else in two,
    else as many as fit two with "and N more"."""
    separator = replies.word("sms_list_separator", language)
    reply = ""
    for segments in (1, MAX_SEGMENTS):
        for shown in range(len(items), 0, -1):
            listed = separator.join(items[:shown])
            if shown < len(items):
                listed += replies.texts.render(more_key, language, {"total": len(items)})
            reply = replies.say(key, language, items=listed, **params)
            if count_segments(reply) <= segments and (shown == len(items)
                                                      or segments == MAX_SEGMENTS):
                return reply
    return reply


class SmsRedemptions:
    """The handlers of REDEEM, CONFIRM and VOUCHERS, answering through the conversation's
    ``query`` and ``claimed`` (``bot.sms.conversations``)."""

    def __init__(self, conversation: SmsConversations, settings: LoyaltySettings, *,
                 new_code: Callable[[], str] = new_confirmation_code) -> None:
        self._conversation = conversation
        self._settings = settings
        self._new_code = new_code

    def handlers(self) -> dict[Command, Handler]:
        return {Command.REDEEM: self.redeem, Command.CONFIRM: self.confirm,
                Command.VOUCHERS: self.vouchers}

    async def vouchers(self, turn: Turn) -> str:
        return await self._query(turn, await self._vouchers(turn))

    async def redeem(self, turn: Turn) -> str:
        """The list (no argument), or the chosen item's confirmation code (an effect)."""
        offers = await self._available(turn)
        if not turn.parsed.argument:
            return await self._query(turn, await self._list(turn, offers))
        number = int(turn.parsed.argument)
        if not 1 <= number <= len(offers):
            return await self._query(turn, turn.replies.say(
                "sms_redeem_no_such_item", turn.language, number=number))
        async with self._conversation.claimed(turn.row, Command.REDEEM.value,
                                              turn.delete_urls) as claim:
            claim.reply = await self._choose(turn, offers[number - 1])
        return claim.reply

    async def confirm(self, turn: Turn) -> str:
        async with self._conversation.claimed(turn.row, Command.CONFIRM.value,
                                              turn.delete_urls) as claim:
            claim.reply = await self._confirm(turn, turn.parsed.argument)
        return claim.reply

    async def _query(self, turn: Turn, reply: str) -> str:
        return await self._conversation.query(turn.row, turn.parsed.command.value, reply,
                                              turn.delete_urls)

    async def _available(self, turn: Turn) -> list[Offer]:
        """What the customer can redeem now, in ``/rewards`` order: the numbers of the list."""
        offers = await offers_for(turn.sender.id, now=turn.now, settings=self._settings)
        return [offer for offer in offers if offer.blocked is None]

    def _name(self, language: str, offer: Offer) -> str:
        return offer.name_en if is_english(language) else offer.name_zh

    async def _list(self, turn: Turn, offers: Sequence[Offer]) -> str:
        lang, replies = turn.language, turn.replies
        balance = await get_balance(turn.sender.id)
        if not offers:
            return replies.say("sms_redeem_none", lang, balance=balance)
        items = [
            replies.texts.render("sms_redeem_item_free", lang,
                                 {"number": i, "name": self._name(lang, offer)})
            if offer.entitlement else
            replies.texts.render("sms_redeem_item", lang, {
                "number": i, "name": self._name(lang, offer), "cost": offer.points_cost})
            for i, offer in enumerate(offers, start=1)
        ]
        return _fit(replies, "sms_redeem_list", "sms_redeem_more", lang, items, balance=balance)

    async def _choose(self, turn: Turn, offer: Offer) -> str:
        """A new request replaces the customer's open one: only the newest code is valid."""
        now, lang = turn.now, turn.language
        await SmsRedemption.filter(customer_id=turn.sender.id,
                                   status=PendingStatus.OPEN).update(
            status=PendingStatus.VOID, closed_at=now)
        code = self._new_code()
        await SmsRedemption.create(
            customer_id=turn.sender.id, message_sid=turn.row["message_sid"],
            reward_code=offer.reward_code, entitlement=offer.entitlement,
            points_cost=offer.points_cost, code=code, created_at=now,
            expires_at=now + timedelta(minutes=CONFIRM_MINUTES))
        name = self._name(lang, offer)
        if offer.entitlement:
            return turn.replies.say("sms_redeem_confirm_free", lang, name=name, code=code)
        return turn.replies.say("sms_redeem_confirm", lang, name=name, cost=offer.points_cost,
                                code=code)

    async def _confirm(self, turn: Turn, code: str) -> str:
        lang, replies, now, customer_id = turn.language, turn.replies, turn.now, turn.sender.id
        pending = await SmsRedemption.filter(
            customer_id=customer_id, status=PendingStatus.OPEN,
        ).order_by("-id").select_for_update().first()
        if pending is None:
            return await self._confirmed_before(turn, code)
        if pending.expires_at <= now:
            await self._close(pending, PendingStatus.VOID, now)
            return replies.say("sms_redeem_expired", lang)
        if not secrets.compare_digest(pending.code, code):
            pending.attempts += 1
            if pending.attempts >= MAX_WRONG_CODES:
                pending.status, pending.closed_at = PendingStatus.VOID, now
            await pending.save(update_fields=["attempts", "status", "closed_at"])
            return replies.say("sms_redeem_wrong_code", lang)
        reward = await get_reward(pending.reward_code)
        try:
            redemption = await redeem(
                customer_id, pending.reward_code, request_key=f"sms:{pending.id}",
                now=now, settings=self._settings, entitlement=pending.entitlement,
                notify=False)
        except LoyaltyError as refusal:
            await self._close(pending, PendingStatus.VOID, now)
            log.info("SMS redemption %d refused: %s", pending.id, refusal.code)
            reason = refusal.reason if isinstance(refusal, NotEligible) else refusal.code
            key = f"sms_redeem_reason_{reason if reason in _REASONS else 'unavailable'}"
            return replies.say("sms_redeem_refused", lang, name=reward_name(reward, lang),
                               reason=replies.word(key, lang))
        pending.voucher_id = redemption.voucher.id
        await self._close(pending, PendingStatus.CONFIRMED, now)
        return self._done(turn, redemption.voucher, reward_name(reward, lang))

    async def _confirmed_before(self, turn: Turn, code: str) -> str:
        """``确认`` again with the code that already redeemed: the same voucher, once more."""
        latest = await SmsRedemption.filter(customer_id=turn.sender.id).exclude(
            status=PendingStatus.OPEN).order_by("-id").first()
        if (latest is None or latest.status != PendingStatus.CONFIRMED
                or latest.code != code or latest.voucher_id is None):
            return turn.replies.say("sms_redeem_nothing_to_confirm", turn.language)
        voucher = await Voucher.get(id=latest.voucher_id).prefetch_related("reward")
        return self._done(turn, voucher, reward_name(voucher.reward, turn.language))

    @staticmethod
    async def _close(pending: SmsRedemption, status: PendingStatus, now: datetime) -> None:
        pending.status, pending.closed_at = status, now
        await pending.save(update_fields=["status", "closed_at", "voucher_id"])

    @staticmethod
    def _done(turn: Turn, voucher: Voucher, name: str) -> str:
        until = voucher_valid_until(voucher, turn.sender.timezone)
        return turn.replies.say("sms_redeem_done", turn.language, name=name,
                                code=display(voucher.code),
                                expires=format_date(until, turn.language))

    async def _vouchers(self, turn: Turn) -> str:
        lang, replies = turn.language, turn.replies
        views = [v for v in await customer_vouchers(turn.sender.id, now=turn.now)
                 if v.status == VoucherStatus.ISSUED]
        if not views:
            return replies.say("sms_vouchers_none", lang)
        items = [replies.texts.render("sms_voucher_item", lang, {
            "name": v.name_en if is_english(lang) else v.name_zh, "code": v.code,
            "until": format_date(v.valid_until, lang)}) for v in views]
        return _fit(replies, "sms_vouchers_list", "sms_vouchers_more", lang, items)
