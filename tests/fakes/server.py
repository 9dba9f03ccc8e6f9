"""Shared base for the loopback fakes of Telegram, Twilio and the weather service.

Each fake is a real :class:`aiohttp.web.Application` served by ``AppRunner``/``TCPSite`` on
``127.0.0.1`` with an OS-assigned port (port 0), so the production clients (aiogram's
``AiohttpSession``, twilio's ``AsyncTwilioHttpClient``, a plain ``aiohttp.ClientSession``)
talk real HTTP to it. The idea follows aiohttp's ``examples/fake_server.py``.

Lifecycle contract:

* ``async with FakeX() as fx:`` or ``await fx.start()`` / ``await fx.close()``;
* ``fx.base_url`` (``http://127.0.0.1:<port>``, no trailing slash) is valid once started;
* ``close()`` first sets :attr:`FakeServer.closing`, which wakes every long poll and every
  injected delay, so shutdown never waits for a sleeping handler; it is idempotent.

Outages: :meth:`FakeServer.proxy_error` makes the fake answer like a proxy or load balancer
in front of a dead service — an HTML error page (``text/html``, e.g. ``502 Bad Gateway``) in
place of the API's answer — for some seconds or some requests.
"""

from __future__ import annotations

import asyncio
import math
import time
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

from aiohttp import web

__all__ = ["FakeServer"]

_HOST = "127.0.0.1"
_PHRASES = {401: "Authorization Required", 403: "Forbidden", 404: "Not Found",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}


class FakeServer(ABC):
    """An aiohttp application listening on loopback for the duration of a test."""

    def __init__(self, *, delay: float = 0.0) -> None:
        self.port = 0
        """The port ``start`` listens on: 0 (the default) lets the OS choose."""
        self.delay = delay
        """Seconds every request waits before it is answered (latency injection)."""
        self.closing = asyncio.Event()
        """Set when the fake is shutting down; long polls and delays end early on it."""
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._outage_status = 0
        self._outage_until = 0.0
        self._outage_left = 0
        self.proxy_error_answers = 0
        """Requests answered with an outage page."""

    @abstractmethod
    def build_app(self) -> web.Application:
        """Return the application with the routes of the service being faked."""

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._base_url

    @property
    def started(self) -> bool:
        return self._runner is not None

    async def start(self) -> Self:
        if self._runner is not None:
            raise RuntimeError(f"{type(self).__name__} is already started")
        self.closing = asyncio.Event()  # bound to the loop that runs this start()
        runner = web.AppRunner(self.build_app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, _HOST, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        host, port = runner.addresses[0][:2]
        self._runner = runner
        self._base_url = f"http://{host}:{port}"
        return self

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self.closing.set()
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; return ``False`` early if the fake starts closing."""
        if seconds <= 0:
            return not self.closing.is_set()
        try:
            await asyncio.wait_for(self.closing.wait(), timeout=seconds)
        except TimeoutError:
            return True
        return False

    async def inject_delay(self) -> None:
        """Apply the configured per-request latency (cut short on close)."""
        if self.delay > 0:
            await self.wait(self.delay)

    def proxy_error(self, *, status: int = 502, seconds: float | None = None,
               times: int | None = None) -> None:
        """Answer every request with an HTML ``status`` page for ``seconds`` from now or the
        next ``times`` requests, whichever ends first (neither: until
        :meth:`end_proxy_error`)."""
        self._outage_status = status
        self._outage_until = math.inf if seconds is None else self.now() + seconds
        self._outage_left = -1 if times is None else times

    def end_proxy_error(self) -> None:
        self._outage_status = 0

    def proxy_error_reply(self) -> web.Response | None:
        """The outage page for this request, or None when the service answers."""
        if not self._outage_status or self.now() >= self._outage_until or not self._outage_left:
            return None
        self._outage_left -= 1
        self.proxy_error_answers += 1
        status = self._outage_status
        title = f"{status} {_PHRASES.get(status, 'Error')}"
        page = (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
                f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
                "</body>\r\n</html>\r\n")
        return web.Response(status=status, text=page, content_type="text/html")

    @staticmethod
    def now() -> float:
        """Timestamp used in request records: monotonic seconds, like ``loop.time()``."""
        return time.monotonic()
