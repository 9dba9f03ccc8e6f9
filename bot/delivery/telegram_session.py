"""The one aiogram ``Bot`` of a process, with an HTTP session that reads every reply.

aiogram parses each answer as Bot API JSON. Anything else — the HTML error page of a proxy or
load balancer in front of the Bot API (``502 Bad Gateway``, ``text/html``) — raises
``ClientDecodeError``, which carries no HTTP status, so nobody above could tell a passing
outage from an answer we could not read. ``BotSession`` turns such a reply into
``UnreadableReply`` with its status: a ``TelegramAPIError`` like every other Bot API error,
so the update feed's retry and the dispatcher's classification both see it. A 2xx reply that
cannot be read stays ``ClientDecodeError`` (the request was accepted: outcome unknown).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import ClientDecodeError, TelegramAPIError
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiohttp import ClientSession, TraceConfig


class UnreadableReply(TelegramAPIError):
    """A non-2xx answer that is not Bot API JSON (a proxy's error page)."""

    def __init__(self, method: TelegramMethod[Any], status: int) -> None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "unknown status"
        super().__init__(method=method, message=f"HTTP {status} {phrase}, not a Bot API answer")
        self.status = status


class BotSession(AiohttpSession):
    """``AiohttpSession`` that reports unreadable error replies with their status and, given
    ``trace``, lets aiohttp report when each request leaves (the limiters' wire margin)."""

    def __init__(self, *, api: TelegramAPIServer, trace: TraceConfig | None = None,
                 **kwargs: Any) -> None:
        super().__init__(api=api, **kwargs)
        self._traces = [trace] if trace is not None else []

    async def create_session(self) -> ClientSession:
        session = await super().create_session()
        for trace in self._traces:
            if trace not in session.trace_configs:
                trace.freeze()
                session.trace_configs.append(trace)
        return session

    def check_response(self, bot: Bot, method: TelegramMethod[TelegramType], status_code: int,
                       content: str) -> Response[TelegramType]:
        try:
            return super().check_response(bot, method, status_code, content)
        except ClientDecodeError:
            if HTTPStatus.OK <= status_code < HTTPStatus.MULTIPLE_CHOICES:
                raise
            raise UnreadableReply(method, status_code) from None


def build_bot(token: str, api_base: str, *, trace: TraceConfig | None = None) -> Bot:
    """The process's Bot, talking to ``api_base`` (Telegram, a local Bot API server, a fake)."""
    session = BotSession(api=TelegramAPIServer.from_base(api_base), trace=trace)
    return Bot(token, session=session)
