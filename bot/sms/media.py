"""MMS media at Twilio: download with the account's credentials, and delete once kept.

Twilio's ``MediaUrl{i}`` points at the Media resource of the inbound message
(``{api_base}/2010-04-01/Accounts/{sid}/Messages/{MM…}/Media/{ME…}``). A GET answers the bytes
(Twilio itself redirects to its CDN; aiohttp drops our ``Authorization`` header on a redirect
to another origin), a DELETE removes them. Credentials are only ever sent to a URL under our
own account at the configured ``twilio.api_base``: the webhook is signed, but a leaked auth
token is worth one more check.

Every request is bounded by a total timeout, and a download by the upload size limit: the
body is read in chunks and abandoned as soon as it is over ``max_bytes``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from aiohttp import hdrs

from bot.documents import UploadRejected

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class MediaRef:
    """One media item of an inbound MMS, as Twilio announced it (type as declared)."""

    url: str
    content_type: str


class MediaUnavailable(Exception):
    """The media could not be fetched (timeout, network, HTTP error, foreign URL)."""


class MmsMedia(Protocol):
    async def fetch(self, url: str, *, max_bytes: int) -> bytes: ...

    async def delete(self, url: str) -> None: ...

    def owns(self, url: str) -> bool:
        """Whether ``url`` is media of our own account, which we may fetch and delete."""
        ...


class TwilioMedia:
    """Media download and delete over one shared aiohttp session (opened by the app)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        account_sid: str,
        auth_token: str,
        api_base: str,
        timeout: float,
    ) -> None:
        self._session = session
        self._prefix = f"{api_base.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages/"
        self._auth = aiohttp.encode_basic_auth(account_sid, auth_token) if account_sid else ""
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    def owns(self, url: str) -> bool:
        return bool(self._auth) and url.startswith(self._prefix)

    def _headers(self, url: str) -> dict[str, str]:
        if not self.owns(url):
            raise MediaUnavailable("media URL is not under our Twilio account")
        return {hdrs.AUTHORIZATION: self._auth}

    async def fetch(self, url: str, *, max_bytes: int) -> bytes:
        """The media's bytes; ``UploadRejected('too_large')`` as soon as they exceed the limit."""
        headers = self._headers(url)
        try:
            async with self._session.get(url, headers=headers, timeout=self._timeout,
                                         max_redirects=3) as resp:
                if resp.status != 200:
                    raise MediaUnavailable(f"media GET answered {resp.status}")
                if resp.content_length is not None and resp.content_length > max_bytes:
                    raise UploadRejected("too_large", f"{resp.content_length} bytes")
                data = bytearray()
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    data += chunk
                    if len(data) > max_bytes:
                        raise UploadRejected("too_large", f"over {max_bytes} bytes")
                return bytes(data)
        except TimeoutError:
            raise MediaUnavailable("media download timed out") from None
        except aiohttp.ClientError as exc:
            raise MediaUnavailable(f"media download failed: {type(exc).__name__}") from None

    async def delete(self, url: str) -> None:
        """Remove the media from Twilio; one already gone (404) counts as deleted."""
        headers = self._headers(url)
        try:
            async with self._session.delete(url, headers=headers, timeout=self._timeout,
                                            allow_redirects=False) as resp:
                if resp.status not in (200, 204, 404):
                    raise MediaUnavailable(f"media DELETE answered {resp.status}")
        except TimeoutError:
            raise MediaUnavailable("media delete timed out") from None
        except aiohttp.ClientError as exc:
            raise MediaUnavailable(f"media delete failed: {type(exc).__name__}") from None
