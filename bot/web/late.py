"""The parts of the application that start after ``engage run`` listens.

Importing aiogram takes seconds (about 3 s on a quiet machine: it builds a pydantic model for
every Bot API type and method), and the Telegram bot, its update feed and the outbox
dispatcher (whose Telegram sender and keyboards are aiogram's) all need it. So ``engage run``
answers first — /healthz, the SMS webhooks, the operator API and console — and imports and
starts those parts beside it (``bot.web.channels``). Until they are up:

- /healthz answers 200 with ``"status": "starting"`` and says which parts are still starting
  (``"late": {"telegram": "starting", "delivery": "starting"}``): the process is alive and
  serving what it can. If they fail to start it answers 503 and ``engage run`` stops with the
  error, as it did when they started before listening.
- the Telegram webhook checks the secret as always, then answers 503 with ``Retry-After``:
  Telegram keeps the update and delivers it again; none is answered 200 unhandled.

Nothing here imports aiogram; the names below are for type checking only.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from aiogram import Bot

    from bot.delivery.dispatcher import Dispatcher
    from bot.telegram.runtime import TelegramRuntime

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
STARTING_RETRY_AFTER = 5
"""Seconds a webhook asks Telegram to wait while the bot is still starting."""

WebHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class LateStart:
    """What the late parts are (``starting``, ``up`` or ``failed``) and, once up, the objects
    they built: the webhook is attached here, not as an app key (a started app's state is
    frozen)."""

    def __init__(self, parts: Iterable[str]) -> None:
        self.parts = dict.fromkeys(parts, "starting")
        self.ready = asyncio.Event()
        self.failed = asyncio.Event()
        self.error: BaseException | None = None
        self.bot: Bot | None = None
        self.dispatcher: Dispatcher | None = None
        self.telegram: TelegramRuntime | None = None
        self.webhook: WebHandler | None = None

    def up(self) -> None:
        self.parts = dict.fromkeys(self.parts, "up")
        self.ready.set()

    def fail(self, error: BaseException) -> None:
        self.parts = {name: "up" if state == "up" else "failed"
                      for name, state in self.parts.items()}
        self.error = error
        self.failed.set()

    @property
    def starting(self) -> bool:
        return "starting" in self.parts.values()

    @property
    def broken(self) -> bool:
        return "failed" in self.parts.values()


def secret_matches(request: web.Request, expected: bytes) -> bool:
    """``X-Telegram-Bot-Api-Secret-Token`` is the configured secret (never true without one)."""
    # aiohttp hands over header bytes that are not UTF-8 as lone surrogates
    given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
    return bool(expected) and hmac.compare_digest(given, expected)


def gated_webhook(secret: str, late: LateStart) -> WebHandler:
    """``POST /telegram/webhook`` from the first moment: 401 without the secret, 503 with
    ``Retry-After`` until the Telegram runtime is up, then the runtime's handler."""
    expected = secret.encode()

    async def handle(request: web.Request) -> web.StreamResponse:
        if not secret_matches(request, expected):
            log.warning("telegram webhook: missing or wrong secret token")
            return web.Response(status=401, text="Unauthorized")
        if late.webhook is None:
            return web.Response(status=503, text="starting",
                                headers={"Retry-After": str(STARTING_RETRY_AFTER)})
        return await late.webhook(request)

    return handle
