"""SMS free text and the hand-off keyword (人工, 转人工, 客服, AGENT, HUMAN) in the customer's
conversation (``bot.desk``): recorded with the bot's reply, answered with the keyword menu as
before — or with when a person will answer, or nothing while a person has it. And 投诉: a
complaint filed at once with its reference and due date (``bot.desk.complaints``). And a lone
digit 1-5: the answer to a satisfaction survey sent by SMS (``bot.desk.surveys``).

Called inside the transaction that claims the MessageSid (``SmsConversations._effect``), so a
redelivered webhook records nothing twice and gets the stored reply.
"""

from __future__ import annotations

import re
from datetime import datetime

from bot.desk.complaints import Filing, due_day, file_complaint
from bot.desk.surveys import Answer, answer_sms
from bot.desk.threads import Desk, Sender, Verdict
from bot.desk.wording import handoff_text
from bot.settings import Settings
from bot.sms.replies import Replies
from storage.desk_models import HandoffReason
from storage.models import Channel

_COMPLAINT_WORD = re.compile(r"^\s*(?:我要)?投诉\s*[:：#]?\s*|^\s*complaint\s*[:：#]?\s*",
                             re.IGNORECASE)


class SmsDesk:
    def __init__(self, desk: Desk, replies: Replies, settings: Settings) -> None:
        self._desk = desk
        self._replies = replies
        self._settings = settings
        self._timezone = settings.schedule.timezone

    async def complaint(self, customer_id: int, phone: str, language: str, body: str, *,
                        now: datetime) -> str:
        """``投诉 <what happened>`` files a complaint (category other) and answers with its
        reference and due date; ``投诉`` alone asks for what happened."""
        replies = self._replies.to_number(phone)
        description = _COMPLAINT_WORD.sub("", body, count=1).strip()
        if not description:
            return replies.say("sms_complaint_how", language,
                              days=self._settings.complaints.decision_days)
        complaint = await file_complaint(
            Filing(customer_id, Channel.SMS, "other", description), now=now,
            settings=self._settings.complaints, timezone=self._timezone)
        return replies.say("sms_complaint_received", language, reference=complaint.reference,
                           due=due_day(complaint, language, self._timezone))

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

    async def score(self, customer_ids: tuple[int, ...], phone: str, language: str, body: str,
                    digit: int, *, now: datetime) -> str:
        """A digit 1-5: the answer to the newest survey sent by SMS within
        ``satisfaction.answer_hours``; without one it is just free text."""
        recorded = await answer_sms(customer_ids, digit, now=now,
                                    answer_hours=self._settings.satisfaction.answer_hours)
        if recorded.answer is Answer.NONE:
            return await self.converse(customer_ids[0], phone, language, body, agent=False,
                                       now=now)
        replies = self._replies.to_number(phone)
        if recorded.low:
            return replies.say("sms_survey_thanks_low", language, hotline=replies.hotline)
        return replies.say("sms_survey_thanks", language)

    async def unknown(self, phone: str, body: str, *, now: datetime) -> str:
        """A number no customer has: its own thread, and the usual "call the hotline"."""
        reply = self._replies.unknown_sender(phone)
        outcome = await self._desk.inbound(Sender.of_phone(phone), Channel.SMS, body, now=now)
        await self._desk.bot_said(outcome.conversation_id, Channel.SMS, reply, now=now)
        return reply
