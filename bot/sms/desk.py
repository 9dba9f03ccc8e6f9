"""SMS free text and the hand-off keyword (人工, 转人工, 客服, AGENT, HUMAN) in the customer's
conversation (``bot.desk``): recorded with the bot's reply, answered with the keyword menu as
before — or with when a person will answer, or nothing while a person has it.

Called inside the transaction that claims the MessageSid (``SmsConversations._effect``), so a
redelivered webhook records nothing twice and gets the stored reply.
"""

from __future__ import annotations

from datetime import datetime

from bot.desk.threads import Desk, Sender, Verdict
from bot.desk.wording import handoff_text
from bot.sms.replies import Replies
from storage.desk_models import HandoffReason
from storage.models import Channel


class SmsDesk:
    def __init__(self, desk: Desk, replies: Replies, timezone: str) -> None:
        self._desk = desk
        self._replies = replies
        self._timezone = timezone

    async def converse(self, customer_id: int, phone: str, language: str, body: str, *,
                       agent: bool, now: datetime) -> str:
        """A customer's free text (``agent``: the hand-off keyword); the reply to send."""
        replies = self._replies.to_number(phone)
        outcome = await self._desk.inbound(
            Sender.of_customer(customer_id), Channel.SMS, body, now=now,
            handoff=HandoffReason.KEYWORD if agent else None)
        if outcome.verdict is Verdict.HELD:
            return ""
        if outcome.verdict is Verdict.HANDED_OFF:
            key, params = handoff_text(outcome, "sms_desk", language, self._timezone)
            reply = replies.say(key, language, **params)
        else:
            reply = replies.menu(language)
        await self._desk.bot_said(outcome.conversation_id, Channel.SMS, reply, now=now)
        return reply

    async def unknown(self, phone: str, body: str, *, now: datetime) -> str:
        """A number no customer has: its own thread, and the usual "call the hotline"."""
        reply = self._replies.unknown_sender(phone)
        outcome = await self._desk.inbound(Sender.of_phone(phone), Channel.SMS, body, now=now)
        await self._desk.bot_said(outcome.conversation_id, Channel.SMS, reply, now=now)
        return reply
