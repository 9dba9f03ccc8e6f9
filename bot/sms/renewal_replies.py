"""SMS replies to a renewal reminder or lapse rescue: ``续保``/``XB`` asks for a call-back,
``已续`` says the car was renewed with another insurer.

They act on the newest reminder sent to the number's customers within
``renewal.answer_days`` (7 by default) — the car that reminder named — and are applied once
per reminder (``bot.renewal_answers``); the caller runs this inside its claim of the
MessageSid, so a retried webhook gets the stored reply. Every reply fits one segment.
"""

from __future__ import annotations

from datetime import datetime

from bot.renewal_answers import Answer, Result, answer, last_reminder
from bot.settings import Settings
from bot.sms.keywords import Command
from bot.sms.replies import Replies

ANSWERS = {Command.RENEW: Answer.CALLBACK, Command.RENEWED: Answer.ELSEWHERE}
"""The SMS keywords that answer a reminder, and their answer."""

_DONE = {Answer.CALLBACK: "sms_renewal_callback_done",
         Answer.ELSEWHERE: "sms_renewal_elsewhere_done"}


async def reply(settings: Settings, replies: Replies, command: Command, *,
                customer_ids: tuple[int, ...], language: str, now: datetime) -> str:
    days = settings.renewal.answer_days
    reminder = await last_reminder(list(customer_ids), now=now, days=days)
    policy = reminder.params.get("policy_id") if reminder else None
    if reminder is None or not isinstance(policy, int):
        return replies.say("sms_renewal_no_reminder", language, days=days,
                           hotline=replies.hotline)
    choice = ANSWERS[command]
    result = await answer(settings, reminder.customer_id, policy, choice, source="sms",
                          key=f"sms:{reminder.id}", now=now)
    plate = str(reminder.params.get("plate", ""))
    if result is Result.SETTLED:
        return replies.say("sms_renewal_settled", language, plate=plate)
    if result is Result.ALREADY:
        return replies.say("sms_renewal_already", language, plate=plate)
    return replies.say(_DONE[choice], language, plate=plate)
