"""The one aiogram ``Bot`` of a process, with an HTTP session that reads every reply.

aiogram parses each answer as Bot API JSON. Anything else — the HTML error page of a proxy or
load balancer in front of the Bot API (``502 Bad Gateway``, ``text/html``) — raises
``ClientDecodeError``, which carries no HTTP status, so nobody above could tell a passing
outage from an answer we could not read. ``BotSession`` turns such a reply into
``UnreadableReply`` with its status: a ``TelegramAPIError`` like every other Bot API error,
so the update feed's retry and the dispatcher's classification both see it. A 2xx reply that
cannot be read stays ``ClientDecodeError`` (the request was accepted: outcome unknown).

The outbox's sends take a lean path, ``BotSession.send_text``: the ``sendMessage`` aiogram would
make (the same fields, URL, timeout and network errors), read with ``json.loads`` when it is a
plain success — only the message id is used — and by aiogram's own ``check_response``
otherwise, so every failure raises exactly what ``bot.send_message`` would. It skips building
the method and ``Message`` pydantic models per send, which profiles of the dispatcher showed as
the largest CPU cost of a send after the HTTP request itself. Its fields go as a JSON body,
which the Bot API takes as it takes a form: aiogram's form percent-encodes every byte of a
Chinese text one by one (``urllib.parse.quote_plus``), a twelfth of the CPU of a Telegram
update's reply. A keyboard (``reply_markup``) is prepared by aiogram's own ``prepare_value``,
so it is the same object. The bot's replies to updates take the same path
(``bot.telegram.replies``).
"""

from __future__ import annotations

import dataclasses
import json
from http import HTTPStatus
from typing import Any, cast

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import ClientDecodeError, TelegramAPIError, TelegramNetworkError
from aiogram.methods import SendMessage, TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import (
    ForceReply,
    InlineKeyboardMarkup,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from aiohttp import ClientError, ClientSession, ClientTimeout, TraceConfig

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | ForceReply
_JSON = {"Content-Type": "application/json"}


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

    async def send_text(self, bot: Bot, chat_id: int, text: str,
                        reply_markup: Markup | None = None) -> int:
        """``sendMessage`` of plain ``text`` (and a keyboard) to ``chat_id``: the new
        message's id, or the exception ``bot.send_message(chat_id, text, reply_markup=…)``
        would raise."""
        def method() -> SendMessage:  # built only where aiogram's errors need it
            return SendMessage(chat_id=chat_id, text=text, reply_markup=reply_markup)

        session = await self.create_session()
        fields: dict[str, Any] = {"chat_id": chat_id, "text": text}
        if reply_markup is not None:
            fields["reply_markup"] = self.prepare_value(reply_markup, bot=bot, files={},
                                                        _dumps_json=False)
        body = json.dumps(fields, ensure_ascii=False).encode()
        try:
            async with session.post(self.api.api_url(token=bot.token, method="sendMessage"),
                                    data=body, headers=_JSON,
                                    timeout=ClientTimeout(total=self.timeout)) as resp:
                status, raw = resp.status, await resp.text()
        except TimeoutError as exc:
            raise TelegramNetworkError(method=method(), message="Request timeout error") from exc
        except ClientError as exc:
            raise TelegramNetworkError(method=method(),
                                       message=f"{type(exc).__name__}: {exc}") from exc
        if status == HTTPStatus.OK:
            try:
                answer = json.loads(raw)
                if answer.get("ok") is True:
                    return int(answer["result"]["message_id"])
            except (ValueError, TypeError, KeyError, AttributeError):
                pass  # aiogram's reading below says what is wrong with it
        response = self.check_response(bot, method(), status, raw)
        return int(cast(Message, response.result).message_id)

    def check_response(self, bot: Bot, method: TelegramMethod[TelegramType], status_code: int,
                       content: str) -> Response[TelegramType]:
        try:
            return super().check_response(bot, method, status_code, content)
        except ClientDecodeError:
            if HTTPStatus.OK <= status_code < HTTPStatus.MULTIPLE_CHOICES:
                raise
            raise UnreadableReply(method, status_code) from None


def lean_sends(bot: Bot) -> BotSession | None:
    """``bot``'s session when its sends may take the lean path: a ``BotSession`` and no
    default properties (parse mode, previews…) that aiogram would add to each request."""
    if not isinstance(bot.session, BotSession):
        return None
    if any(getattr(bot.default, field.name) is not None
           for field in dataclasses.fields(bot.default)):
        return None
    return bot.session


def build_bot(token: str, api_base: str, *, trace: TraceConfig | None = None) -> Bot:
    """The process's Bot, talking to ``api_base`` (Telegram, a local Bot API server, a fake)."""
    session = BotSession(api=TelegramAPIServer.from_base(api_base), trace=trace)
    return Bot(token, session=session)
