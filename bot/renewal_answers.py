"""What a customer answers to a renewal reminder or a lapse rescue — by a Telegram button or an
SMS reply — and what it does: a call-back task for the policy's owner, or an outcome on the
car's policies that still wait for renewal.

Each answer is written once per ``key`` (the message it answers and the answer): a double tap,
a replayed update or a retried webhook finds the key taken and changes nothing. A call-back is
also not asked twice while one for the car is open. The call-back is due
``renewal.callback_due_working_hours`` of office time later (``[office_hours]`` and the
holiday calendar), and goes to the policy's responsible person, or the branch pool.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from tortoise.transactions import in_transaction

from bot.settings import Settings
from scheduler.office_hours import OfficeHours
from storage.models import Message, MessageStatus, Task, TaskStatus
from storage.renewal_desk import (
    OPEN_TASK,
    Outcome,
    Reason,
    TaskKind,
    car_policies,
    record_outcome,
    responsible,
    task_once,
)

log = logging.getLogger(__name__)

REMINDER_KINDS = ("renewal", "renewal_holiday", "lapse_rescue")


class Answer(StrEnum):
    CALLBACK = "cb"  # 申请续保回电
    ELSEWHERE = "else"  # 已在其他公司续保
    NOT_RENEWING = "no"  # 暂不续保 (with a reason)
    SOLD = "sold"  # 车辆已过户/报废


class Result(StrEnum):
    DONE = "done"
    ALREADY = "already"  # answered before (a double tap, a replay, an open call-back)
    SETTLED = "settled"  # nothing waits for renewal on that car any more


_OUTCOMES = {Answer.ELSEWHERE: Outcome.RENEWED_ELSEWHERE, Answer.SOLD: Outcome.SOLD_SCRAPPED,
             Answer.NOT_RENEWING: Outcome.NOT_RENEWING}


def callback_due(settings: Settings, now: datetime) -> datetime | None:
    """When a call-back asked at ``now`` must have been made (None: the office never opens)."""
    office = OfficeHours(settings.office_hours, settings.holidays.calendar(),
                         ZoneInfo(settings.schedule.timezone))
    return office.add(now, timedelta(hours=settings.renewal.callback_due_working_hours))


async def answer(settings: Settings, customer_id: int, policy_id: int, choice: Answer, *,
                 source: str, key: str, now: datetime,
                 reason: Reason | None = None) -> Result:
    """Apply ``choice`` to the car of ``policy_id`` (which must be ``customer_id``'s)."""
    policies = await car_policies(customer_id, policy_id)
    if not policies:
        return Result.SETTLED
    first = policies[0]
    if choice is Answer.CALLBACK:
        if await Task.filter(kind=TaskKind.CALLBACK.value, status__in=OPEN_TASK,
                             policy_id__in=[p.id for p in policies]).exists():
            return Result.ALREADY
        owner = responsible(first)
        task = await task_once(
            f"{key}:{choice.value}", kind=TaskKind.CALLBACK, customer_id=customer_id,
            policy_id=first.id, source=source, assignee=owner,
            status=TaskStatus.ASSIGNED if owner else TaskStatus.OPEN,
            due_at=callback_due(settings, now))
        if task is None:
            return Result.ALREADY
        log.info("renewal call-back task %d for policy %d (%s)", task.id, first.id, source)
        return Result.DONE
    outcome = _OUTCOMES[choice]
    if choice is Answer.SOLD:
        reason = None
    if all(p.outcome == outcome for p in policies):
        return Result.ALREADY  # said before, in answer to another reminder
    async with in_transaction():
        noted = await task_once(
            f"{key}:{choice.value}", kind=TaskKind.ANSWER, customer_id=customer_id,
            policy_id=first.id, source=source, result=outcome.value,
            note=reason.value if reason else "", status=TaskStatus.CLOSED, closed_at=now)
        if noted is None:
            return Result.ALREADY
        await record_outcome(policies, outcome, by=f"customer:{source}", now=now,
                             reason=reason)
    log.info("customer answer %s for policy %d (%s)", outcome.value, first.id, source)
    return Result.DONE


async def note_insurer(customer_id: int, policy_id: int, insurer: str) -> bool:
    """Record which insurer the car was renewed with, on its policies recorded as renewed
    elsewhere (a second tap changes nothing); whether there were any."""
    policies = [p for p in await car_policies(customer_id, policy_id)
                if p.outcome == Outcome.RENEWED_ELSEWHERE]
    for policy in policies:
        if policy.outcome_note != insurer:
            policy.outcome_note = insurer[:200]
            await policy.save(update_fields=["outcome_note", "updated_at"])
    return bool(policies)


async def last_reminder(customer_ids: list[int], *, now: datetime,
                        days: int) -> Message | None:
    """The newest renewal reminder or lapse rescue sent to one of ``customer_ids`` within
    ``days`` before ``now`` that names its policy (what an SMS reply answers)."""
    return await Message.filter(
        customer_id__in=customer_ids, kind__in=REMINDER_KINDS, sent_at__gte=now - timedelta(
            days=days), sent_at__lte=now,
        status__in=[MessageStatus.SENT, MessageStatus.DELIVERED],
    ).order_by("-sent_at", "-id").first()
