"""Twilio webhook signatures: the one check every inbound Twilio request passes first.

The URL that is signed is the one Twilio called, i.e. our configured public base URL plus
the request's path and query. It is never rebuilt from ``Host`` or ``X-Forwarded-*``
headers, which a caller controls.
"""

from __future__ import annotations

import base64
import hmac
import logging
from collections.abc import Mapping
from functools import lru_cache
from hashlib import sha1
from urllib.parse import urlparse

from aiohttp import web
from multidict import MultiDictProxy
from twilio.request_validator import add_port, remove_port

from bot.web.bodies import read_form

log = logging.getLogger(__name__)


@lru_cache(maxsize=256)
def _signed_urls(url: str) -> tuple[str, str]:
    """The two URLs twilio's ``RequestValidator.validate`` accepts a signature of: ``url``
    without its port and with it (443/80 added when it has none), rebuilt as it rebuilds them."""
    parsed = urlparse(url)
    return remove_port(parsed), add_port(parsed)


class TwilioSignature:
    """``RequestValidator(auth_token).validate(url, form, signature)`` (HMAC-SHA1), computing
    one HMAC for a good signature where ``validate`` always computes two (the URL with and
    without the port): the second only when the first does not match."""

    def __init__(self, auth_token: str, public_base_url: str) -> None:
        self._key = auth_token.encode("utf-8") if auth_token else None
        self._base = public_base_url.rstrip("/")

    def url_for(self, request: web.Request) -> str:
        return f"{self._base}{request.path_qs}"

    async def verified_form(self, request: web.Request) -> MultiDictProxy[str]:
        """The POSTed form if the signature is valid. Unsigned: 403 before the body is read;
        signed but not a readable form (bytes that are not UTF-8): 400; a signature that
        does not match: 403."""
        signature = request.headers.get("X-Twilio-Signature", "")
        if self._key is None or not self._base:
            log.warning("refused Twilio webhook %s: twilio auth token or public_base_url "
                        "not configured", request.path)
            raise web.HTTPForbidden(text="signature cannot be checked")
        if not signature:
            log.warning("refused Twilio webhook %s: not signed", request.path)
            raise web.HTTPForbidden(text="invalid signature")
        form = await read_form(request)
        params = {k: v for k, v in form.items() if isinstance(v, str)}
        if not self.valid(self.url_for(request), params, signature):
            log.warning("refused Twilio webhook %s: bad signature", request.path)
            raise web.HTTPForbidden(text="invalid signature")
        return form  # type: ignore[return-value]

    def valid(self, url: str, params: Mapping[str, str], signature: str) -> bool:
        """Whether ``signature`` is Twilio's for ``url`` and the POSTed ``params``, as
        ``RequestValidator.validate`` decides it (signed without the port, or with it)."""
        if self._key is None:
            return False
        given = signature.encode("utf-8", "surrogatepass")
        signed = "".join(name + params[name] for name in sorted(params))
        return any(hmac.compare_digest(self._digest(candidate + signed), given)
                   for candidate in _signed_urls(url))

    def _digest(self, text: str) -> bytes:
        assert self._key is not None
        return base64.b64encode(hmac.new(self._key, text.encode("utf-8"), sha1).digest())
