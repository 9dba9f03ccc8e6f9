"""SMS ``报案`` (REPORT): no report by SMS — the answer is the hotline and the emergency
numbers, and the claims team gets a call-back task (``Task`` kind ``report_callback``, due
within ``CALLBACK_WITHIN``). A second 报案 while one call-back is still open adds nothing:
the customer is called once."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from bot.accident.drafts import local_day
from bot.sms.replies import Replies
from storage.models import Policy, PolicyStatus, Task, TaskStatus
from storage.phones import mask_phone

log = logging.getLogger(__name__)

REPORT_TASK = "report_callback"
CALLBACK_WITHIN = timedelta(minutes=15)


async def report_by_sms(customer_id: int, phone: str, language: str, timezone: str,
                        replies: Replies, *, now: datetime) -> str:
    """Open (or keep) the call-back task; the reply. Runs inside the inbound message's
    transaction (``SmsConversations.claimed``), so a redelivered SMS changes nothing."""
    open_task = await Task.filter(customer_id=customer_id, kind=REPORT_TASK,
                                  status__in=[TaskStatus.OPEN, TaskStatus.ASSIGNED]).first()
    if open_task is None:
        today = local_day(now, timezone)
        cars = await Policy.filter(customer_id=customer_id, start_date__lte=today,
                                   end_date__gte=today).exclude(
            status=PolicyStatus.CANCELLED).values_list("id", "plate")
        plates = {plate for _, plate in cars}
        await Task.create(kind=REPORT_TASK, customer_id=customer_id, source="sms",
                          policy_id=cars[0][0] if len(plates) == 1 else None,
                          note="SMS 报案", due_at=now + CALLBACK_WITHIN)
        log.info("accident report call-back task opened for customer %d (%s)", customer_id,
                 mask_phone(phone))
    return replies.say("sms_report_received", language, hotline=replies.hotline)
