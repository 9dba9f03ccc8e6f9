"""The access log, without phone numbers or secrets.

aiohttp's own access logger writes the request line as it came, and query strings carry what
people search for: ``GET /api/v1/customers?q=8613800138008`` (the console's customer search
too), and a link someone pasted may carry a token. Each query value here — of the request and
of its ``Referer`` — is masked before it is logged: a value under a secret-sounding name, or
one that looks like a token, becomes ``***``; a run of seven or more digits (a phone number,
an ID number) keeps only its last four (``+86*******8008``). Paths are logged as they are:
ours carry ids and claim numbers, never phones.
"""

from __future__ import annotations

import re

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse
from multidict import MultiDict
from yarl import URL

from storage.phones import mask_phones_in

HIDDEN = "***"
_SECRET_NAMES = re.compile(r"token|secret|passw|signature|auth|key|code|csrf|session|sid",
                           re.IGNORECASE)
# 20+ characters of the URL-safe base64 alphabet with a digit in them: bearer tokens,
# session secrets, API keys (a search for a name or a plate is never that).
_TOKEN = re.compile(r"(?=[^\d]*\d)[A-Za-z0-9_\-]{20,}")


def mask_value(name: str, value: str) -> str:
    if _SECRET_NAMES.search(name) or _TOKEN.fullmatch(value):
        return HIDDEN
    return mask_phones_in(value)


def masked_url(url: URL) -> str:
    """``url`` (relative or absolute) with every query value masked."""
    if not url.raw_query_string:
        return str(url)
    query = MultiDict((name, mask_value(name, value)) for name, value in url.query.items())
    return str(url.with_query(query))


def _referer(value: str) -> str:
    if not value:
        return "-"
    try:
        return masked_url(URL(value))
    except ValueError:  # not a URL at all: nothing worth keeping
        return HIDDEN


class MaskedAccessLogger(AbstractAccessLogger):
    """``remote "METHOD path?masked-query HTTP/x.y" status bytes seconds "referer" "agent"``."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %d %.3fs "%s" "%s"',
            request.remote or "-", request.method, masked_url(request.rel_url),
            request.version.major, request.version.minor, response.status,
            response.body_length, time, _referer(request.headers.get("Referer", "")),
            request.headers.get("User-Agent", "-"))
