"""``POST /sms/status``: Twilio status callbacks move a message's status forward only.

What a report means and how it is applied is ``bot.delivery.reports``; a report for a sid no
message carries yet (the dispatcher writes sids per batch) is kept and applied when the
outcome is written, so no callback is lost.
"""

from __future__ import annotations

import logging
from datetime import datetime

from aiohttp import web

from bot.delivery import reports
from bot.web.keys import CLOCK, SETTINGS, TWILIO_SIGNATURE
from storage.models import Message

log = logging.getLogger(__name__)


async def status_callback(request: web.Request) -> web.Response:
    form = await request.app[TWILIO_SIGNATURE].verified_form(request)
    sid = form.get("MessageSid", "")[:64]
    new = reports.TWILIO_TO_OURS.get(form.get("MessageStatus", "").lower())
    if not sid or new is None:
        return web.Response(status=204)  # queued/accepted/sending: nothing to record
    now: datetime = request.app[CLOCK]()
    categories = request.app[SETTINGS].sms.opt_out_categories
    error_code = form.get("ErrorCode", "")
    msg = await Message.get_or_none(provider_id=sid)
    if msg is None:
        await reports.keep(sid, new, error_code, now=now)
        # Written first, looked again second: if the dispatcher wrote the sid meanwhile, it
        # may have looked for reports before ours was there - apply it here then.
        msg = await Message.get_or_none(provider_id=sid)
        if msg is None:
            log.debug("status callback for a message not written yet (%s): kept", sid[:6])
            return web.Response(status=204)
        await reports.apply_kept([msg], now=now, opt_out_categories=categories)
        return web.Response(status=204)
    await reports.apply(msg, new, error_code, now=now, opt_out_categories=categories)
    return web.Response(status=204)
