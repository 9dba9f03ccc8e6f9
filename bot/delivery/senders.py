"""Channel senders: one small Protocol per channel, one adapter per provider, a console one.

Adapters translate every provider reply and every exception of a send into
``bot.delivery.errors`` (see there for the three families), so nothing above them knows
aiogram or twilio and no exception of a send reaches the dispatch loop. Each adapter's
classification is one ordered table: the first row whose exception type matches decides.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TextIO

import aiohttp
from aiogram import Bot
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageReplyMarkup,
    EditMessageText,
    GetFile,
    SendMessage,
)
from aiogram.methods.base import Response
from aiogram.types import InlineKeyboardMarkup
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client as TwilioClient

from bot.delivery.errors import (
    ChannelUnavailable,
    ChatNotFound,
    InvalidRecipient,
    OutcomeUnknown,
    RecipientBlocked,
    RecipientOptedOut,
    Rejected,
    RetryAfter,
    SendError,
    Transient,
)
from bot.delivery.telegram_session import UnreadableReply, lean_sends
from storage.phones import mask_phone

CHANNEL_PAUSE_SECONDS = 30.0
"""How long a channel rests after the provider refused *us* (credentials, address, proxy)."""
FLOOD_WAIT_UNKNOWN_SECONDS = 5.0
"""A 429 whose answer could not be read says nothing about how long to wait."""


@dataclass(frozen=True, slots=True)
class SendResult:
    provider_id: str
    segments: int = 1


class TelegramGateway(Protocol):
    async def send_text(self, chat_id: int, text: str,
                        markup: InlineKeyboardMarkup | None = None) -> SendResult: ...


class SmsGateway(Protocol):
    async def send(self, to: str, body: str, *, callback_url: str | None) -> SendResult: ...


_PINNED: list[type] = []


def pin_aiogram_responses() -> None:
    """Keep aiogram's response models built for the life of the process.

    aiogram parses every answer as ``Response[<return type>]``, a generic pydantic model that
    pydantic caches only weakly: when the garbage collector drops it, the next call builds the
    class again (about 10 ms). Profiles of the dispatcher and of the update feed showed a
    fifth of the send path's CPU going there. Holding the ones Engage uses keeps them built.
    """
    if not _PINNED:
        returning = {method.__returning__ for method in (
            SendMessage, EditMessageText, EditMessageReplyMarkup, AnswerCallbackQuery, GetFile)}
        _PINNED.extend(Response[kind] for kind in returning)  # type: ignore[valid-type]


def _bad_request(exc: TelegramAPIError) -> SendError:
    if "chat not found" in exc.message.lower():
        return ChatNotFound(exc.message, code="400")
    return Rejected(exc.message, code="400")


def _network(exc: TelegramAPIError) -> SendError:
    # aiogram raises this for connection errors and for timeouts alike; a refused
    # connection sent nothing, a timeout may have delivered.
    if "timeout" in exc.message.lower():
        return OutcomeUnknown(exc.message, code="timeout")
    return Transient(exc.message, code="network")


def _unreadable(exc: UnreadableReply) -> SendError:
    """A proxy's page in place of the Bot API: the Bot API never judged this message."""
    code = str(exc.status)
    if exc.status == 429:
        return RetryAfter(exc.message, seconds=FLOOD_WAIT_UNKNOWN_SECONDS, code=code)
    if exc.status == 504:  # the proxy gave up waiting: Telegram may have sent it
        return OutcomeUnknown(exc.message, code=code)
    if exc.status >= 500:
        return Transient(exc.message, code=code)
    return ChannelUnavailable(exc.message, seconds=CHANNEL_PAUSE_SECONDS, code=code)


_TELEGRAM_ERRORS: tuple[tuple[type[BaseException], Callable[..., SendError]], ...] = (
    (TelegramRetryAfter, lambda e: RetryAfter("telegram flood control", seconds=e.retry_after,
                                              code="429")),
    (TelegramForbiddenError, lambda e: RecipientBlocked(e.message, code="403")),
    (TelegramMigrateToChat, lambda e: ChatNotFound(f"chat migrated to {e.migrate_to_chat_id}",
                                                   code="400")),
    (TelegramBadRequest, _bad_request),
    (TelegramEntityTooLarge, lambda e: Rejected(e.message, code="413")),
    (TelegramUnauthorizedError, lambda e: ChannelUnavailable(
        f"bot token refused: {e.message}", seconds=CHANNEL_PAUSE_SECONDS, code="401")),
    (TelegramNotFound, lambda e: ChannelUnavailable(
        f"no Bot API at this address for this token: {e.message}",
        seconds=CHANNEL_PAUSE_SECONDS, code="404")),
    (TelegramConflictError, lambda e: Transient(e.message, code="409")),
    (UnreadableReply, _unreadable),
    (TelegramServerError, lambda e: Transient(e.message, code="5xx")),
    (TelegramNetworkError, _network),
    (TelegramAPIError, lambda e: Rejected(e.message, code="4xx")),
    # Accepted (2xx) but unreadable: it went out, we cannot tell its message id.
    (ClientDecodeError, lambda e: OutcomeUnknown(f"unreadable answer: {e.message}",
                                                 code="decode")),
)


def classify(table: tuple[tuple[type[BaseException], Callable[..., SendError]], ...],
             exc: Exception) -> SendError:
    """The first matching row's error; anything unforeseen is an unknown outcome (it may have
    been sent), named by its type so it shows in last_error and the metrics."""
    for kind, make in table:
        if isinstance(exc, kind):
            return make(exc)
    return OutcomeUnknown(f"unexpected {type(exc).__name__}: {exc}"[:300],
                          code=type(exc).__name__)


class AiogramTelegram:
    """Sends through one aiogram ``Bot`` (its session points at ``telegram.api_base``): the
    lean ``sendMessage`` of ``BotSession.send_text``, with or without buttons, where the bot
    allows it (``lean_sends``)."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot
        self._lean = lean_sends(bot)
        pin_aiogram_responses()

    async def send_text(self, chat_id: int, text: str,
                        markup: InlineKeyboardMarkup | None = None) -> SendResult:
        try:
            if self._lean is not None:
                message_id = await self._lean.send_text(self._bot, chat_id, text,
                                                        reply_markup=markup)
            else:
                message_id = (await self._bot.send_message(
                    chat_id, text, reply_markup=markup)).message_id
        except Exception as exc:  # every one is classified; none escapes the send
            raise classify(_TELEGRAM_ERRORS, exc) from exc
        return SendResult(provider_id=str(message_id))


# Twilio error codes, https://www.twilio.com/docs/api/errors
_TWILIO_THROTTLE = {20429, 30022}
_TWILIO_OPTED_OUT = {21610}
_TWILIO_INVALID = {21211, 21614, 21612, 21408}
_TWILIO_REFUSES_US = {20003, 20005, 20404}  # authenticate, account suspended, no account


class TwilioSms:
    """Sends through the twilio client with its aiohttp-based async HTTP client."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str = "",
        messaging_service_sid: str = "",
        api_base: str = "",
        timeout: float = 15.0,
        trace: aiohttp.TraceConfig | None = None,
    ) -> None:
        self._http = AsyncTwilioHttpClient(timeout=timeout,
                                           trace_configs=[trace] if trace else None)
        self._client = TwilioClient(account_sid, auth_token, http_client=self._http)
        if api_base:
            self._client.api.base_url = api_base.rstrip("/")
        self._from = from_number
        self._service = messaging_service_sid

    @property
    def client(self) -> TwilioClient:
        return self._client

    async def close(self) -> None:
        await self._http.close()

    async def send(self, to: str, body: str, *, callback_url: str | None) -> SendResult:
        kwargs: dict[str, str] = {"to": to, "body": body}
        if self._service:
            kwargs["messaging_service_sid"] = self._service
        else:
            kwargs["from_"] = self._from
        if callback_url:
            kwargs["status_callback"] = callback_url
        try:
            message = await self._client.messages.create_async(**kwargs)
            segments = int(message.num_segments or 1)
        except Exception as exc:  # every one is classified; none escapes the send
            raise _twilio_error(exc, to) from exc
        return SendResult(provider_id=str(message.sid), segments=segments)


def _twilio_error(exc: Exception, to: str) -> SendError:
    if isinstance(exc, TwilioRestException | TwilioServiceException):
        return _twilio_refusal(int(exc.status), int(exc.code or 0), to)
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return OutcomeUnknown("twilio request timed out", code="timeout")
    if isinstance(exc, aiohttp.ClientConnectionError | OSError):
        return Transient(f"twilio unreachable: {type(exc).__name__}: {exc}", code="network")
    if isinstance(exc, ValueError):  # a 2xx answer that is not JSON: created, unreadable
        return OutcomeUnknown("twilio answer unreadable", code="decode")
    return classify((), exc)


def _twilio_refusal(status: int, code: int, to: str) -> SendError:
    text = f"twilio {code or status} for {mask_phone(to)}"
    label = str(code or status)
    if code in _TWILIO_THROTTLE or status == 429:
        return RetryAfter(text, seconds=1.0, code=label)
    if code in _TWILIO_OPTED_OUT:
        return RecipientOptedOut(text, code=label)
    if code in _TWILIO_INVALID:
        return InvalidRecipient(text, code=label)
    if code in _TWILIO_REFUSES_US or status in (401, 403) or (status == 404 and code == 404):
        # our credentials or account, or a 404 page that is not Twilio's: not this message
        return ChannelUnavailable(text, seconds=CHANNEL_PAUSE_SECONDS, code=label)
    if status == 504:  # a gateway timed out waiting for Twilio: it may have been created
        return OutcomeUnknown(text, code=label)
    if status >= 500:
        return Transient(text, code=label)
    return Rejected(text, code=label)


class ConsoleChannel:
    """The demo's channel: prints each message instead of sending it."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._counter = 0
        self._lock = asyncio.Lock()

    async def _print(self, channel: str, to: str, text: str) -> SendResult:
        async with self._lock:
            self._counter += 1
            print(f"[{channel} → {to}] {text}", file=self._out)
            return SendResult(provider_id=f"console-{self._counter}")

    async def send_text(self, chat_id: int, text: str,
                        markup: InlineKeyboardMarkup | None = None) -> SendResult:
        return await self._print("telegram", f"chat {chat_id}", text)

    async def send(self, to: str, body: str, *, callback_url: str | None) -> SendResult:
        return await self._print("sms", mask_phone(to), body)
