"""Channel senders: one small Protocol per channel, one adapter per provider, a console one.

Adapters translate provider exceptions into ``bot.delivery.errors`` so nothing above them
knows aiogram or twilio.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol, TextIO

import aiohttp
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageReplyMarkup,
    EditMessageText,
    GetFile,
    SendMessage,
)
from aiogram.methods.base import Response
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client as TwilioClient

from bot.delivery.errors import (
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
from storage.phones import mask_phone


@dataclass(frozen=True, slots=True)
class SendResult:
    provider_id: str
    segments: int = 1


class TelegramGateway(Protocol):
    async def send_text(self, chat_id: int, text: str) -> SendResult: ...


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


class AiogramTelegram:
    """Sends through one aiogram ``Bot`` (its session points at ``telegram.api_base``)."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot
        pin_aiogram_responses()

    async def send_text(self, chat_id: int, text: str) -> SendResult:
        try:
            message = await self._bot.send_message(chat_id, text)
        except TelegramRetryAfter as exc:
            raise RetryAfter("telegram flood control", seconds=exc.retry_after,
                             code="429") from None
        except TelegramForbiddenError as exc:
            raise RecipientBlocked(exc.message, code="403") from None
        except TelegramMigrateToChat as exc:
            raise ChatNotFound(f"chat migrated to {exc.migrate_to_chat_id}", code="400") from None
        except TelegramBadRequest as exc:
            if "chat not found" in exc.message.lower():
                raise ChatNotFound(exc.message, code="400") from None
            raise Rejected(exc.message, code="400") from None
        except TelegramServerError as exc:
            raise Transient(exc.message, code="5xx") from None
        except TelegramNetworkError as exc:
            # aiogram raises this for connection errors and for timeouts alike; a refused
            # connection sent nothing, a timeout may have delivered.
            if "timeout" in exc.message.lower():
                raise OutcomeUnknown(exc.message, code="timeout") from None
            raise Transient(exc.message, code="network") from None
        return SendResult(provider_id=str(message.message_id))


# Twilio error codes, https://www.twilio.com/docs/api/errors
_TWILIO_THROTTLE = {20429, 30022}
_TWILIO_OPTED_OUT = {21610}
_TWILIO_INVALID = {21211, 21614, 21612, 21408}


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
    ) -> None:
        self._http = AsyncTwilioHttpClient(timeout=timeout)
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
        except TwilioRestException as exc:
            raise _twilio_error(exc, to) from None
        except TimeoutError:
            raise OutcomeUnknown("twilio request timed out", code="timeout") from None
        except (aiohttp.ClientConnectionError, OSError) as exc:
            if isinstance(exc, aiohttp.ServerTimeoutError):
                raise OutcomeUnknown("twilio request timed out", code="timeout") from None
            raise Transient(f"twilio unreachable: {exc}", code="network") from None
        segments = int(message.num_segments or 1)
        return SendResult(provider_id=str(message.sid), segments=segments)


def _twilio_error(exc: TwilioRestException, to: str) -> SendError:
    code = int(exc.code or 0)
    text = f"twilio {code or exc.status} for {mask_phone(to)}"
    if code in _TWILIO_THROTTLE or exc.status == 429:
        return RetryAfter(text, seconds=1.0, code=str(code or 429))
    if code in _TWILIO_OPTED_OUT:
        return RecipientOptedOut(text, code=str(code))
    if code in _TWILIO_INVALID:
        return InvalidRecipient(text, code=str(code))
    if exc.status >= 500:
        return Transient(text, code=str(code or exc.status))
    return Rejected(text, code=str(code or exc.status))


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

    async def send_text(self, chat_id: int, text: str) -> SendResult:
        return await self._print("telegram", f"chat {chat_id}", text)

    async def send(self, to: str, body: str, *, callback_url: str | None) -> SendResult:
        return await self._print("sms", mask_phone(to), body)
