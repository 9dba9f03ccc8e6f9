"""A fake Telegram Bot API server for end-to-end tests.

Contract mimicked (https://core.telegram.org/bots/api):

* ``GET``/``POST /bot{token}/{method}`` with parameters in the query string, a JSON body,
  an ``application/x-www-form-urlencoded`` body or a ``multipart/form-data`` body (aiogram
  always posts a form; it becomes multipart as soon as a file is attached, and then refers
  to the file part as ``attach://<part name>``). Method names are case-insensitive.
* Every answer is ``{"ok": true, "result": ...}`` or the error shape
  ``{"ok": false, "error_code": 429, "description": "...", "parameters": {"retry_after": 3}}``,
  with the HTTP status equal to ``error_code`` — that is what aiogram maps onto
  ``TelegramRetryAfter``, ``TelegramForbiddenError``, ``TelegramBadRequest``,
  ``TelegramMigrateToChat``, ``TelegramUnauthorizedError`` and ``TelegramServerError``.
* A token other than the one the fake was built with answers 401 ``Unauthorized``.
* ``GET /file/bot{token}/{file_path}`` serves files registered with :meth:`add_file` (or
  uploaded through ``sendDocument``/``sendPhoto``), 404 otherwise.
* ``getUpdates`` long-polls: it honours ``offset`` (confirming earlier updates), ``limit``
  and ``timeout``; it answers 409 while a webhook is set, like the real server.

Recorded parameters are decoded: form values that are JSON (``reply_markup``, ``chat_id``,
``media``, booleans) are parsed, free-text fields (``text``, ``caption``...) are kept as sent,
and ``attach://`` references are replaced by the uploaded :class:`UploadedFile`.

Connect aiogram with::

    Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url)))
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web
from multidict import MultiDictProxy

from tests.fakes.server import FakeServer

__all__ = [
    "DEFAULT_TOKEN",
    "MAX_DOWNLOAD_SIZE",
    "SENT_MESSAGE_METHODS",
    "FakeTelegram",
    "TgRequest",
    "UploadedFile",
]

DEFAULT_TOKEN: Final = "123456:TEST-TOKEN"
MAX_DOWNLOAD_SIZE: Final = 20 * 1024 * 1024
"""Bots may download files up to 20 MB; getFile refuses bigger ones."""
_MAX_UPLOAD_SIZE: Final = 50 * 1024 * 1024

SENT_MESSAGE_METHODS: Final = frozenset({"sendMessage", "sendPhoto", "sendDocument"})
"""Methods whose successful calls :meth:`FakeTelegram.sent_messages` returns."""

_KNOWN_METHODS: Final = (
    "getMe",
    "getUpdates",
    "getFile",
    "sendMessage",
    "sendPhoto",
    "sendDocument",
    "sendMediaGroup",
    "editMessageText",
    "editMessageReplyMarkup",
    "answerCallbackQuery",
    "setMyCommands",
    "deleteMyCommands",
    "setWebhook",
    "deleteWebhook",
    "getWebhookInfo",
    "setChatMenuButton",
)
_CANONICAL: Final = {name.lower(): name for name in _KNOWN_METHODS}

# Values of these parameters are free text; decoding them as JSON would turn "123" into 123.
_RAW_TEXT_PARAMS: Final = frozenset(
    {
        "text",
        "caption",
        "title",
        "description",
        "short_description",
        "name",
        "query",
        "question",
        "explanation",
        "address",
        "first_name",
        "last_name",
        "phone_number",
        "url",
        "secret_token",
        "ip_address",
        "callback_query_id",
        "inline_message_id",
        "file_id",
        "emoji",
        "custom_title",
        "business_connection_id",
        "message_effect_id",
        "parse_mode",
    }
)
_ATTACH: Final = "attach://"


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request."""

    field: str
    filename: str | None
    content_type: str
    content: bytes


@dataclass
class TgRequest:
    """One call that reached the fake, valid or not.

    ``time`` is monotonic seconds at arrival (comparable to ``loop.time()``); ``status``
    is the HTTP status the fake answered with.
    """

    method: str
    token: str
    params: dict[str, Any]
    time: float
    status: int = 200


@dataclass
class _ScriptedError:
    status: int
    description: str
    retry_after: int | None
    migrate_to_chat_id: int | None
    remaining: int


@dataclass(frozen=True)
class _StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    content: bytes


class _ApiError(Exception):
    def __init__(
        self, status: int, description: str, parameters: Mapping[str, int] | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = dict(parameters or {})

    def response(self) -> web.Response:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return web.json_response(body, status=self.status)


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


_STATUS_DESCRIPTIONS: Final = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


class FakeTelegram(FakeServer):
    """Telegram Bot API on loopback, with scripted failures and recorded calls."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        delay: float = 0.0,
        username: str = "engage_test_bot",
        first_name: str = "Engage",
    ) -> None:
        super().__init__(delay=delay)
        self.token = token
        self.bot_user: dict[str, Any] = {
            "id": int(token.partition(":")[0]),
            "is_bot": True,
            "first_name": first_name,
            "username": username,
        }
        self.requests: list[TgRequest] = []
        self.webhook_url = ""
        self._scripts: dict[str, deque[_ScriptedError]] = {}
        self._blocked: set[str] = set()
        self._missing: set[str] = set()
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = 1
        self._update_pushed = asyncio.Event()
        self._files_by_id: dict[str, _StoredFile] = {}
        self._files_by_path: dict[str, _StoredFile] = {}
        self._message_ids = itertools.count(1)
        self._file_seq = itertools.count(1)

    # -- application -------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=_MAX_UPLOAD_SIZE + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._handle_download)
        return app

    # -- inspection --------------------------------------------------------------------

    def requests_for(self, method: str) -> list[TgRequest]:
        wanted = method.lower()
        return [r for r in self.requests if r.method.lower() == wanted]

    def sent_messages(self) -> list[dict[str, Any]]:
        """Params of the send calls that succeeded, in order (see SENT_MESSAGE_METHODS)."""
        return [
            r.params for r in self.requests if r.method in SENT_MESSAGE_METHODS and r.status == 200
        ]

    def clear(self) -> None:
        """Forget the recorded requests; scripts, blocks, updates and files stay."""
        self.requests.clear()

    # -- scripting ---------------------------------------------------------------------

    def script(
        self,
        method: str,
        *,
        status: int,
        description: str | None = None,
        retry_after: int | None = None,
        migrate_to_chat_id: int | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with a Bot API error."""
        if times < 1:
            raise ValueError("times must be >= 1")
        text = description or _STATUS_DESCRIPTIONS.get(status, "Error")
        self._scripts.setdefault(method.lower(), deque()).append(
            _ScriptedError(status, text, retry_after, migrate_to_chat_id, times)
        )

    def rate_limit_next(self, retry_after: int, times: int = 1) -> None:
        self.script(
            "sendMessage",
            status=429,
            description=f"Too Many Requests: retry after {retry_after}",
            retry_after=retry_after,
            times=times,
        )

    def fail_next(self, method: str, status: int = 500, *, times: int = 1) -> None:
        self.script(method, status=status, times=times)

    def block_chat(self, chat_id: int | str) -> None:
        """Every call addressed to ``chat_id`` answers 403 bot was blocked by the user."""
        self._blocked.add(str(chat_id))

    def unblock_chat(self, chat_id: int | str) -> None:
        self._blocked.discard(str(chat_id))

    def chat_not_found(self, chat_id: int | str) -> None:
        """Every call addressed to ``chat_id`` answers 400 chat not found."""
        self._missing.add(str(chat_id))

    # -- updates and files -------------------------------------------------------------

    def push_update(self, update: Mapping[str, Any]) -> int:
        """Queue an update for getUpdates; an ``update_id`` is assigned when missing."""
        stored = dict(update)
        update_id = int(stored.setdefault("update_id", self._next_update_id))
        self._next_update_id = max(self._next_update_id, update_id + 1)
        self._updates.append(stored)
        pushed, self._update_pushed = self._update_pushed, asyncio.Event()
        pushed.set()
        return update_id

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed by a getUpdates offset."""
        return list(self._updates)

    def add_file(self, file_id: str, content: bytes, file_path: str | None = None) -> str:
        """Register a file for getFile and the download route; returns its file_path."""
        n = next(self._file_seq)
        path = file_path or f"documents/file_{n}"
        unique = "AgAD" + hashlib.sha1(file_id.encode()).hexdigest()[:12]
        stored = _StoredFile(file_id, unique, path, content)
        self._files_by_id[file_id] = stored
        self._files_by_path[path] = stored
        return path

    # -- handlers ----------------------------------------------------------------------

    async def _handle_method(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        raw_method = request.match_info["method"]
        method = _CANONICAL.get(raw_method.lower(), raw_method)
        record = TgRequest(method, token, {}, self.now())
        self.requests.append(record)
        try:
            record.params = params = await _read_params(request)
            await self.inject_delay()
            if (page := self.proxy_error_reply()) is not None:
                record.status = page.status
                return page
            if token != self.token:
                raise _ApiError(401, "Unauthorized")
            self._check_chat(params)
            self._check_script(method)
            response = _ok(await self._answer(method, params))
        except _ApiError as e:
            response = e.response()
        record.status = response.status
        return response

    async def _handle_download(self, request: web.Request) -> web.StreamResponse:
        await self.inject_delay()
        if request.match_info["token"] != self.token:
            return _ApiError(401, "Unauthorized").response()
        stored = self._files_by_path.get(request.match_info["file_path"])
        if stored is None:
            return _ApiError(404, "Not Found").response()
        return web.Response(body=stored.content, content_type="application/octet-stream")

    def _check_chat(self, params: Mapping[str, Any]) -> None:
        chat_id = params.get("chat_id")
        if chat_id is None:
            return
        if str(chat_id) in self._blocked:
            raise _ApiError(403, "Forbidden: bot was blocked by the user")
        if str(chat_id) in self._missing:
            raise _ApiError(400, "Bad Request: chat not found")

    def _check_script(self, method: str) -> None:
        queue = self._scripts.get(method.lower())
        if not queue:
            return
        scripted = queue[0]
        scripted.remaining -= 1
        if scripted.remaining <= 0:
            queue.popleft()
        parameters: dict[str, int] = {}
        if scripted.retry_after is not None:
            parameters["retry_after"] = scripted.retry_after
        if scripted.migrate_to_chat_id is not None:
            parameters["migrate_to_chat_id"] = scripted.migrate_to_chat_id
        raise _ApiError(scripted.status, scripted.description, parameters)

    async def _answer(self, method: str, params: dict[str, Any]) -> Any:
        match method:
            case "getMe":
                return {
                    **self.bot_user,
                    "can_join_groups": True,
                    "can_read_all_group_messages": False,
                    "supports_inline_queries": False,
                }
            case "getUpdates":
                return await self._get_updates(params)
            case "getFile":
                return self._get_file(params)
            case "sendMessage":
                message = self._message(params)
                message["text"] = _require(params, "text")
                return message
            case "sendPhoto":
                message = self._message(params)
                message["photo"] = self._photo_sizes(_require(params, "photo"))
                return message
            case "sendDocument":
                message = self._message(params)
                message["document"] = self._document(_require(params, "document"))
                return message
            case "sendMediaGroup":
                return self._media_group(params)
            case "editMessageText" | "editMessageReplyMarkup":
                return self._edited(method, params)
            case "setWebhook":
                self.webhook_url = str(_require(params, "url"))
                return True
            case "deleteWebhook":
                self.webhook_url = ""
                if params.get("drop_pending_updates") is True:
                    self._updates.clear()
                return True
            case "getWebhookInfo":
                return {
                    "url": self.webhook_url,
                    "has_custom_certificate": False,
                    "pending_update_count": len(self._updates),
                }
            case _:
                return True

    # -- results -----------------------------------------------------------------------

    def _message(self, params: Mapping[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": dict(self.bot_user),
            "chat": _chat(_require(params, "chat_id")),
            "date": int(time.time()),
        }
        if isinstance(params.get("caption"), str):
            message["caption"] = params["caption"]
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        return message

    def _stored_upload(self, upload: UploadedFile, prefix: str) -> _StoredFile:
        file_id = f"{prefix}{next(self._file_seq):08d}"
        folder = "photos" if prefix.startswith("AgAC") else "documents"
        path = self.add_file(file_id, upload.content, f"{folder}/{file_id}")
        return self._files_by_path[path]

    def _photo_sizes(self, photo: Any) -> list[dict[str, Any]]:
        if isinstance(photo, UploadedFile):
            stored = self._stored_upload(photo, "AgACAgIAAxk")
            file_id, unique, size = stored.file_id, stored.file_unique_id, len(stored.content)
        else:
            file_id, unique, size = str(photo), "AQAD" + str(photo)[-8:], 0
        return [
            {
                "file_id": file_id + "-s",
                "file_unique_id": unique + "s",
                "file_size": size // 8,
                "width": 90,
                "height": 67,
            },
            {
                "file_id": file_id,
                "file_unique_id": unique,
                "file_size": size,
                "width": 1280,
                "height": 960,
            },
        ]

    def _document(self, document: Any) -> dict[str, Any]:
        if isinstance(document, UploadedFile):
            stored = self._stored_upload(document, "BQACAgIAAxk")
            return {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "file_name": document.filename or document.field,
                "mime_type": document.content_type,
                "file_size": len(document.content),
            }
        known = self._files_by_id.get(str(document))
        return {
            "file_id": str(document),
            "file_unique_id": known.file_unique_id if known else "AgAD" + str(document)[-8:],
            "file_size": len(known.content) if known else 0,
        }

    def _media_group(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        media = _require(params, "media")
        if not isinstance(media, list) or not 2 <= len(media) <= 10:
            raise _ApiError(400, "Bad Request: wrong number of messages in the media group")
        group_id = str(next(self._file_seq) + 10**12)
        messages = []
        for item in media:
            message = self._message(params)
            message["media_group_id"] = group_id
            if item.get("type") == "photo":
                message["photo"] = self._photo_sizes(item.get("media"))
            else:
                message["document"] = self._document(item.get("media"))
            if isinstance(item.get("caption"), str):
                message["caption"] = item["caption"]
            messages.append(message)
        return messages

    def _edited(self, method: str, params: Mapping[str, Any]) -> dict[str, Any] | bool:
        if params.get("inline_message_id"):
            return True
        message = self._message(params)
        message["message_id"] = int(_require(params, "message_id"))
        message["edit_date"] = message["date"]
        if method == "editMessageText":
            message["text"] = _require(params, "text")
        return message

    def _get_file(self, params: Mapping[str, Any]) -> dict[str, Any]:
        stored = self._files_by_id.get(str(_require(params, "file_id")))
        if stored is None:
            raise _ApiError(400, "Bad Request: invalid file_id")
        if len(stored.content) > MAX_DOWNLOAD_SIZE:
            raise _ApiError(400, "Bad Request: file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.content),
            "file_path": stored.file_path,
        }

    async def _get_updates(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        if self.webhook_url:
            raise _ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        limit = max(1, min(100, int(params.get("limit") or 100)))
        timeout = max(0.0, float(params.get("timeout") or 0))
        if offset > 0:  # a positive offset confirms every earlier update
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            batch = self._updates[offset:] if offset < 0 else self._updates
            remaining = deadline - loop.time()
            if batch or remaining <= 0 or self.closing.is_set():
                return batch[:limit]
            await self._wait_for_update(remaining)

    async def _wait_for_update(self, seconds: float) -> None:
        waiters = {
            asyncio.ensure_future(self._update_pushed.wait()),
            asyncio.ensure_future(self.closing.wait()),
        }
        _, pending = await asyncio.wait(
            waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


# -- request parsing -------------------------------------------------------------------


async def _read_params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = {}
    files: dict[str, UploadedFile] = {}
    for key, value in request.query.items():
        params[key] = _decode(key, value)
    if request.method == "POST" and request.body_exists:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise _ApiError(400, "Bad Request: can't parse JSON object") from None
            if not isinstance(body, dict):
                raise _ApiError(400, "Bad Request: can't parse JSON object")
            params.update(body)
        else:
            form = await request.post()
            for key, item in _form_items(form):
                if isinstance(item, UploadedFile):
                    files[key] = item
                else:
                    params[key] = _decode(key, item)
    used: set[str] = set()
    params = {key: _resolve_attachments(value, files, used) for key, value in params.items()}
    for key, upload in files.items():
        if key not in used:
            params.setdefault(key, upload)
    return params


def _form_items(form: MultiDictProxy[Any]) -> Iterable[tuple[str, str | UploadedFile]]:
    for key, value in form.items():
        if isinstance(value, web.FileField):
            try:
                content = value.file.read()
            finally:
                value.file.close()
            yield key, UploadedFile(key, value.filename, value.content_type, content)
        elif isinstance(value, bytes):
            yield key, value.decode()
        else:
            yield key, str(value)


def _decode(key: str, value: str) -> Any:
    if key in _RAW_TEXT_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _resolve_attachments(value: Any, files: Mapping[str, UploadedFile], used: set[str]) -> Any:
    if isinstance(value, str) and value.startswith(_ATTACH):
        name = value.removeprefix(_ATTACH)
        if name in files:
            used.add(name)
            return files[name]
        return value
    if isinstance(value, list):
        return [_resolve_attachments(item, files, used) for item in value]
    if isinstance(value, dict):
        return {k: _resolve_attachments(v, files, used) for k, v in value.items()}
    return value


def _require(params: Mapping[str, Any], name: str) -> Any:
    value = params.get(name)
    if value is None or value == "":
        raise _ApiError(400, f"Bad Request: {name} is empty")
    return value


def _chat(chat_id: Any) -> dict[str, Any]:
    if isinstance(chat_id, str) and chat_id.startswith("@"):
        return {"id": -1001000000000 - len(chat_id), "type": "channel", "username": chat_id[1:]}
    try:
        numeric = int(chat_id)
    except (TypeError, ValueError):
        raise _ApiError(400, "Bad Request: chat not found") from None
    if numeric > 0:
        return {"id": numeric, "type": "private", "first_name": "Customer"}
    if str(numeric).startswith("-100"):
        return {"id": numeric, "type": "supergroup", "title": "Group"}
    return {"id": numeric, "type": "group", "title": "Group"}
