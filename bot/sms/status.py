"""``POST /sms/status``: Twilio status callbacks move a message's status forward only.

Callbacks may arrive late, twice or out of order, and none is sent for ``queued``; ranking
the statuses makes every order and every repeat end in the same state.
"""

from __future__ import annotations

import logging
from datetime import datetime

from aiohttp import web

from bot.delivery.recipients import record_sms_opt_out
from bot.web.keys import CLOCK, SETTINGS, TWILIO_SIGNATURE
from storage.models import Message, MessageStatus

log = logging.getLogger(__name__)

_TWILIO_TO_OURS: dict[str, MessageStatus] = {
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


async def status_callback(request: web.Request) -> web.Response:
    form = await request.app[TWILIO_SIGNATURE].verified_form(request)
    sid = form.get("MessageSid", "")
    twilio_status = form.get("MessageStatus", "").lower()
    new = _TWILIO_TO_OURS.get(twilio_status)
    if not sid or new is None:
        return web.Response(status=204)  # queued/accepted/sending: nothing to record
    now: datetime = request.app[CLOCK]()
    msg = await Message.get_or_none(provider_id=sid)
    if msg is None:
        log.info("status callback for unknown message %s", sid)
        return web.Response(status=204)
    if not advances(msg.status, new):
        return web.Response(status=204)
    updates: dict[str, object] = {"status": new, "updated_at": now}
    if new is MessageStatus.DELIVERED:
        updates["delivered_at"] = now
    error_code = form.get("ErrorCode", "")
    if error_code:
        updates["last_error"] = f"sms: twilio {error_code}"
    # Conditional on the status we read, so two concurrent callbacks cannot move it back.
    changed = await Message.filter(id=msg.id, status=msg.status).update(**updates)
    if changed and error_code == "21610":
        settings = request.app[SETTINGS]
        await record_sms_opt_out(msg.customer_id, settings.sms.opt_out_categories,
                                 source="twilio:21610", now=now)
    return web.Response(status=204)
