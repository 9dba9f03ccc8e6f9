"""Satisfaction (满意度) after every case: one survey per paid or closed claim, closed complaint
and resolved conversation, answered 1 to 5 once.

The survey goes through the outbox as a **care** message: quiet hours hold it until morning
and a customer who switched care messages off is skipped (and so is one over the weekly
care cap). It is queued an hour after the case ends (``DELAY``), so the claim update or the
decision arrives first. In Telegram it carries 1–5 buttons (``sv:<survey>:<score>``, built at
send time by ``bot.telegram.surveys.survey_keyboard``); by SMS
the customer replies with the digit within ``satisfaction.answer_hours`` (48) of the send.

The first answer counts; a replay or a second tap changes nothing. A score of 1 or 2 opens a
follow-up task for a supervisor (``satisfaction_low``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from storage.desk_models import SatisfactionSurvey, SurveyCase
from storage.models import Category, Channel, Message, Task, TaskStatus
from storage.outbox import Outbound, enqueue

SURVEY_KIND = "satisfaction_survey"
LOW_TASK = "satisfaction_low"
DELAY = timedelta(hours=1)
SCORES = range(1, 6)
_CASE_WORDS = {
    SurveyCase.CLAIM: {"zh-CN": "理赔", "en": "claim"},
    SurveyCase.COMPLAINT: {"zh-CN": "投诉处理", "en": "complaint"},
    SurveyCase.CONVERSATION: {"zh-CN": "咨询", "en": "enquiry"},
}


class Answer(StrEnum):
    RECORDED = "recorded"
    ALREADY = "already"  # answered before: the first answer stands
    NONE = "none"  # no survey of theirs to answer (or too late by SMS)


async def offer(case: SurveyCase, case_id: int, customer_id: int, *, now: datetime,
                operator_name: str = "") -> SatisfactionSurvey | None:
    """Queue the case's survey, unless it has one already (None then)."""
    if await SatisfactionSurvey.filter(case_kind=case, case_id=case_id).exists():
        return None
    try:
        async with in_transaction():
            survey = await SatisfactionSurvey.create(
                case_kind=case, case_id=case_id, customer_id=customer_id,
                operator_name=operator_name[:64], created_at=now)
            queued, _ = await enqueue(Outbound(
                dedup_key=f"survey:{case.value}:{case_id}", kind=SURVEY_KIND,
                category=Category.CARE, customer_id=customer_id, template_key=SURVEY_KIND,
                not_before=now + DELAY, stale_after=now + timedelta(days=7),
                params={"case": _CASE_WORDS[case], "survey": survey.id}))
            survey.outbox_id = queued.id
            await survey.save(update_fields=["outbox_id"])
    except IntegrityError:  # the same case's survey, offered at the same moment
        return None
    return survey


@dataclass(frozen=True, slots=True)
class Recorded:
    answer: Answer
    low: bool = False


async def _record(survey: SatisfactionSurvey, score: int, channel: Channel,
                  now: datetime) -> Recorded:
    updated = await SatisfactionSurvey.filter(id=survey.id, score=None).update(
        score=score, answered_at=now, answer_channel=channel.value)
    if not updated:
        return Recorded(Answer.ALREADY)
    low = score <= 2
    if low:
        await Task.create(kind=LOW_TASK, customer_id=survey.customer_id, source=channel.value,
                          status=TaskStatus.OPEN,
                          note=f"{survey.case_kind} {survey.case_id}: {score}/5"
                               + (f" ({survey.operator_name})" if survey.operator_name
                                  else ""))
    return Recorded(Answer.RECORDED, low)


async def answer_button(survey_id: int, customer_id: int, score: int, *,
                        now: datetime) -> Recorded:
    """A tap on a Telegram button: only the customer's own survey."""
    async with in_transaction():
        survey = await SatisfactionSurvey.filter(id=survey_id, customer_id=customer_id
                                                 ).select_for_update().first()
        if survey is None:
            return Recorded(Answer.NONE)
        return await _record(survey, score, Channel.TELEGRAM, now)


async def answer_sms(customer_ids: Sequence[int], score: int, *, now: datetime,
                     answer_hours: float) -> Recorded:
    """A digit by SMS: the newest unanswered survey sent by SMS to one of these customers
    within ``answer_hours``."""
    since = (now - timedelta(hours=answer_hours)).astimezone(UTC)  # compared in the database
    sent = await Message.filter(customer_id__in=list(customer_ids), kind=SURVEY_KIND,
                                channel=Channel.SMS, sent_at__gte=since
                                ).order_by("-sent_at", "-id").values_list("id", flat=True)
    if not sent:
        return Recorded(Answer.NONE)
    async with in_transaction():
        survey = await SatisfactionSurvey.filter(
            outbox_id__in=list(sent), score=None).order_by("-created_at", "-id"
                                                          ).select_for_update().first()
        if survey is None:
            return Recorded(Answer.ALREADY)
        return await _record(survey, score, Channel.SMS, now)
