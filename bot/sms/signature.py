"""Twilio webhook signatures: the one check every inbound Twilio request passes first.

The URL that is signed is the one Twilio called, i.e. our configured public base URL plus
the request's path and query. It is never rebuilt from ``Host`` or ``X-Forwarded-*``
headers, which a caller controls.
"""

from __future__ import annotations

import logging

from aiohttp import web
from multidict import MultiDictProxy
from twilio.request_validator import RequestValidator

from bot.web.bodies import read_form

log = logging.getLogger(__name__)


class TwilioSignature:
    def __init__(self, auth_token: str, public_base_url: str) -> None:
        self._validator = RequestValidator(auth_token) if auth_token else None
        self._base = public_base_url.rstrip("/")

    def url_for(self, request: web.Request) -> str:
        return f"{self._base}{request.path_qs}"

    async def verified_form(self, request: web.Request) -> MultiDictProxy[str]:
        """The POSTed form if the signature is valid. Unsigned: 403 before the body is read;
        signed but not a readable form (bytes that are not UTF-8): 400; a signature that
        does not match: 403."""
        signature = request.headers.get("X-Twilio-Signature", "")
        if self._validator is None or not self._base:
            log.warning("refused Twilio webhook %s: twilio auth token or public_base_url "
                        "not configured", request.path)
            raise web.HTTPForbidden(text="signature cannot be checked")
        if not signature:
            log.warning("refused Twilio webhook %s: not signed", request.path)
            raise web.HTTPForbidden(text="invalid signature")
        form = await read_form(request)
        params = {k: v for k, v in form.items() if isinstance(v, str)}
        if not self._validator.validate(self.url_for(request), params, signature):
            log.warning("refused Twilio webhook %s: bad signature", request.path)
            raise web.HTTPForbidden(text="invalid signature")
        return form  # type: ignore[return-value]
