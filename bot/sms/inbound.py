"""``POST /sms/inbound``: Twilio's incoming-message webhook, answered with TwiML.

The signature is checked before anything is read or stored (403 otherwise). The answer is
the ``<Message>`` Twilio sends back to the customer, or an empty ``<Response/>`` when there
is nothing to say; ``bot.sms.conversations`` decides which, once per MessageSid.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from functools import partial
from xml.sax.saxutils import escape

import aiohttp
from aiohttp import web

from bot.sms.conversations import MAX_MEDIA, InboundMessage, SmsConversations
from bot.sms.media import MediaRef, TwilioMedia
from bot.sms.media_deletes import MediaDeleteMetrics, MediaDeletes
from bot.web.keys import (
    CLOCK,
    REGISTRY,
    SETTINGS,
    SMS_CONVERSATIONS,
    SUPERVISOR,
    TEXTS,
    TWILIO_SIGNATURE,
)

log = logging.getLogger(__name__)


def inbound_from_form(form: Mapping[str, str]) -> InboundMessage:
    """Read Twilio's webhook fields; ``ValueError`` when MessageSid or From is missing."""
    sid = form.get("MessageSid") or form.get("SmsMessageSid") or ""
    sender = form.get("From", "")
    if not sid or not sender:
        raise ValueError("MessageSid and From are required")
    try:
        count = min(int(form.get("NumMedia", "0") or 0), MAX_MEDIA)
    except ValueError:
        count = 0
    media = tuple(
        MediaRef(url=form[f"MediaUrl{i}"], content_type=form.get(f"MediaContentType{i}", ""))
        for i in range(count)
        if form.get(f"MediaUrl{i}")
    )
    return InboundMessage(message_sid=sid[:64], from_=sender, body=form.get("Body", ""),
                          opt_out_type=form.get("OptOutType", ""), media=media)


_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
_EMPTY = f"{_DECLARATION}<Response />"


def twiml_text(reply: str) -> str:
    """The TwiML twilio's ``MessagingResponse`` writes for ``reply`` (one ``<Message>``, or
    none when empty), character for character, without building its element tree: the text
    escaped as ElementTree escapes it (``&``, ``<``, ``>``)."""
    if not reply:
        return _EMPTY
    return f"{_DECLARATION}<Response><Message>{escape(reply)}</Message></Response>"


def twiml(reply: str) -> web.Response:
    return web.Response(text=twiml_text(reply), content_type="text/xml")


async def inbound_sms(request: web.Request) -> web.Response:
    form = await request.app[TWILIO_SIGNATURE].verified_form(request)
    try:
        message = inbound_from_form(form)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    reply = await request.app[SMS_CONVERSATIONS].answer(message)
    return twiml(reply)


async def conversations_context(app: web.Application, *,
                                sweep_media: bool = True) -> AsyncIterator[None]:
    """Cleanup context: the media client's HTTP session, the service that uses it, and (with
    ``twilio.delete_media``) the sweep of media deletes still pending — once now, then every
    ``sms.media_sweep_interval_seconds`` (``sweep_media=False`` leaves it to the caller), as
    the supervised task ``media-sweep``.

    At shutdown the sweep pass and the media deletions still running are awaited before the
    session closes.
    """
    settings = app[SETTINGS]
    twilio = settings.twilio
    async with aiohttp.ClientSession() as session:
        media = (
            TwilioMedia(session, account_sid=twilio.account_sid,
                        auth_token=twilio.auth_token.get_secret_value(),
                        api_base=twilio.api_base, timeout=settings.sms.media_timeout_seconds)
            if twilio.enabled else None
        )
        deletes = (
            MediaDeletes(media, settings.sms, clock=app[CLOCK],
                         skip_locked=settings.database.is_postgres,
                         metrics=MediaDeleteMetrics(app[REGISTRY]))
            if media is not None and twilio.delete_media else None
        )
        service = SmsConversations(settings, app[TEXTS], media, clock=app[CLOCK],
                                   deletes=deletes)
        app[SMS_CONVERSATIONS] = service
        sweeper = None
        if deletes is not None and sweep_media:
            interval = settings.sms.media_sweep_interval_seconds
            sweeper = app[SUPERVISOR].spawn(
                "media-sweep", partial(deletes.run, interval=interval),
                stuck_after=2 * interval + 120)
        yield
        if sweeper is not None:
            await sweeper.stop()
        await service.drain()
