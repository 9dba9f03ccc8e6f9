"""Reading request bodies that callers control: bytes that do not decode are the caller's
mistake (400), never ours (500).

aiohttp decodes a form or JSON body on first read and raises whatever the decoding raised:
``UnicodeDecodeError`` for bytes that are not UTF-8 (``Body=\\xff\\xfe``), ``LookupError``
for a charset Python does not know, ``ValueError`` or ``HttpProcessingError`` for a broken
multipart body, ``ValueError`` for broken JSON.
Every handler reads bodies through these two functions, so each of those is one
``UnreadableBody`` — a 400 wherever it is not caught; under the APIs and the console the web
app's error map (``bot.web.errors``) answers it as their JSON error or error page.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDictProxy


class UnreadableBody(web.HTTPBadRequest):
    """The body cannot be decoded as the form or JSON its Content-Type says it is."""

    def __init__(self, what: str) -> None:
        super().__init__(text=f"the request body is not readable {what}")
        self.what = what


FormValue = str | bytes | bytearray | web.FileField


async def read_form(request: web.Request) -> MultiDictProxy[FormValue]:
    """The POSTed form (read once, then cached by aiohttp)."""
    try:
        return await request.post()
    except (ValueError, LookupError, HttpProcessingError):
        # HttpProcessingError: a multipart part whose headers are not HTTP headers
        raise UnreadableBody("form data (UTF-8)") from None


def _strict_loads(text: str) -> Any:
    """``json.loads``, refusing ``"\\ud800"``-style escapes of lone surrogates: they are not
    text, and would fail later, in a hash or in the database driver."""
    value = json.loads(text)
    if "\\u" in text:
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # UnicodeEncodeError if any
    return value


async def read_json(request: web.Request) -> Any:
    """The JSON body, decoded with the request's charset (UTF-8 by default)."""
    try:
        return await request.json(loads=_strict_loads)
    except (ValueError, LookupError, RecursionError):  # RecursionError: absurdly deep nesting
        raise UnreadableBody("JSON (UTF-8)") from None
