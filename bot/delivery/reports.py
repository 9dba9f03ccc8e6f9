"""Provider status reports (Twilio status callbacks) applied to outbox messages, none lost.

Callbacks may arrive late, twice or out of order, and none is sent for ``queued``; ranking
the statuses makes every order and every repeat end in the same state.

They may also arrive *early*: Twilio posts ``sent``/``delivered`` within a second or two of
the create call, and can do so before the dispatcher has written the message's sid (outcomes
are written per batch, and a 200-message SMS batch takes ~20 s at the default rate). A report
for a sid no message carries yet is kept in ``sms_status_report`` and applied when the
outcome is written (``apply_kept``). Both sides write first and look second — the callback
stores its report, then looks for the message; the dispatcher writes the sid, then looks for
reports — so whichever commits second sees the other's row, and applying a report twice is
harmless. Reports nobody claimed are dropped after ``KEEP`` (a message is claimed again and
gets a new sid only after its lease, so older ones can never match).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from bot.delivery.recipients import record_number_sms_opt_out
from storage.models import Channel, Message, MessageStatus, SmsStatusReport

log = logging.getLogger(__name__)

KEEP = timedelta(hours=1)
OPTED_OUT_CODE = "21610"

TWILIO_TO_OURS: dict[str, MessageStatus] = {
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.DELIVERED,
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
}
_RANK: dict[MessageStatus, int] = {
    MessageStatus.SENT: 1,
    MessageStatus.DELIVERED: 2,
    MessageStatus.UNDELIVERED: 3,
    MessageStatus.FAILED: 3,
}


def advances(current: MessageStatus, new: MessageStatus) -> bool:
    """Whether a callback saying ``new`` moves a message that is ``current`` forward."""
    return _RANK.get(new, 0) > _RANK.get(current, 0)


async def apply(msg: Message, new: MessageStatus, error_code: str, *, now: datetime,
                opt_out_categories: Iterable[str]) -> bool:
    """Move ``msg`` to ``new`` if that is forward; a 21610 also records the SMS opt-out of
    the number (every customer on it)."""
    if not advances(msg.status, new):
        return False
    updates: dict[str, object] = {"status": new, "updated_at": now}
    if new is MessageStatus.DELIVERED:
        updates["delivered_at"] = now
    if error_code:
        updates["last_error"] = f"sms: twilio {error_code}"
    # Conditional on the status we read, so two concurrent callbacks cannot move it back.
    changed = await Message.filter(id=msg.id, status=msg.status).update(**updates)
    if not changed:
        return False
    msg.status = new
    if error_code == OPTED_OUT_CODE:
        await record_number_sms_opt_out(msg.customer_id, opt_out_categories,
                                        source="twilio:21610", reference=msg.provider_id or "",
                                        now=now)
    return True


async def keep(sid: str, new: MessageStatus, error_code: str, *, now: datetime) -> None:
    """Store a report for a sid no message carries yet (and drop reports past ``KEEP``)."""
    await SmsStatusReport.filter(received_at__lt=now - KEEP).delete()
    await SmsStatusReport.create(message_sid=sid, status=new.value, error_code=error_code[:16],
                                 received_at=now)


async def apply_kept(messages: Sequence[Message], *, now: datetime,
                     opt_out_categories: Iterable[str]) -> int:
    """Apply the kept reports of ``messages`` (SMS with their sid just written), in rank
    order, and delete them; returns how many reports were applied."""
    by_sid = {m.provider_id: m for m in messages
              if m.channel == Channel.SMS and m.provider_id}
    if not by_sid:
        return 0
    reports = await SmsStatusReport.filter(message_sid__in=list(by_sid)).order_by("id")
    if not reports:
        return 0
    categories = list(opt_out_categories)
    for report in sorted(reports, key=lambda r: _RANK.get(MessageStatus(r.status), 0)):
        await apply(by_sid[report.message_sid], MessageStatus(report.status), report.error_code,
                    now=now, opt_out_categories=categories)
    await SmsStatusReport.filter(id__in=[r.id for r in reports]).delete()
    log.info("applied %d status callbacks that came before their message's outcome",
             len(reports))
    return len(reports)
