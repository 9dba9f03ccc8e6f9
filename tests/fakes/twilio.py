"""A fake Twilio REST API (Programmable Messaging, API version 2010-04-01).

Contract mimicked:

* Every route requires HTTP basic auth ``account_sid:auth_token``; anything else answers
  401 with Twilio's error 20003. A URL naming another account answers 404 (20404).
* ``POST /2010-04-01/Accounts/{sid}/Messages.json`` takes the form fields the SDK sends
  (``To``, ``From`` or ``MessagingServiceSid``, ``Body``, ``MediaUrl`` (repeated),
  ``StatusCallback``...) and answers 201 with a message resource: ``sid`` ``SM``/``MM`` + 32
  hex, ``status`` ``queued`` (``accepted`` when only a messaging service is given, as the
  real API does), RFC 2822 dates, ``num_segments`` counted as Twilio does (GSM-7: 160, then
  153 per part; UCS-2, i.e. any Chinese character: 70, then 67 per part). Validation errors
  are real codes: 21604 (no To), 21603 (no From), 21602 (no Body/MediaUrl), 21211 (To is not
  E.164), 21617 (body over 1600 characters).
* Errors use the legacy JSON shape ``{"code", "message", "more_info", "status"}``, which the
  SDK turns into ``twilio.base.exceptions.TwilioRestException`` with ``.code``/``.status``.
* ``GET .../Messages/{sid}.json`` fetches a created message.
* ``GET .../Messages/{msid}/Media/{media_sid}`` serves media bytes registered with
  :meth:`FakeTwilio.add_media` (``.json`` suffix: the media resource instead);
  ``DELETE`` of either path removes it and answers 204; one already gone answers 404
  (20404). :meth:`FakeTwilio.fail_media_deletes` makes the next DELETEs answer a 5xx.

Status callbacks: :meth:`FakeTwilio.call_back` makes every accepted create post the given
statuses (``sent``, ``delivered``…) to its ``StatusCallback`` URL, form-encoded and signed
with ``X-Twilio-Signature`` exactly as Twilio signs (the URL as given in the create), either
before the 201 is answered (``before_answer=True``: the sender cannot possibly have recorded
the sid yet — the race real Twilio wins within a second or two) or right after it. ``target``
replaces the URL's scheme and host for the actual POST (tests whose public URL is not
reachable); the signature still covers the URL as given. Results are in ``callbacks``.

Pointing the real SDK here (verified against twilio 9.13): ``Domain.absolute_url`` reads
``self.base_url`` on every request, so overriding the *domain* is enough::

    http = AsyncTwilioHttpClient()
    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
    client.api.base_url = fake.base_url        # covers client.messages and api.v2010
    msg = await client.messages.create_async(to=..., from_=..., body=...)
    await http.close()                          # the SDK never closes its aiohttp session

Under aiohttp >= 3.14 every SDK request emits two DeprecationWarnings (the async client
builds ``aiohttp.BasicAuth`` and passes ``auth=``); with ``filterwarnings = ["error"]`` they
fail the test, so tests driving the SDK must apply :data:`SDK_WARNING_FILTERS`.

Do not set ``region``/``edge`` (or ``TWILIO_REGION``/``TWILIO_EDGE``): the client then
rewrites the host name and would leave loopback.
"""

from __future__ import annotations

import asyncio
import math
import re
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
from aiohttp import BasicAuth, hdrs, web
from multidict import MultiDictProxy
from twilio.request_validator import RequestValidator

from tests.fakes.server import FakeServer

__all__ = [
    "ACCOUNT_SID",
    "API_VERSION",
    "AUTH_TOKEN",
    "ERROR_MESSAGES",
    "SDK_WARNING_FILTERS",
    "FakeTwilio",
    "StatusCallback",
    "StoredMedia",
    "TwilioRequest",
    "count_segments",
]

ACCOUNT_SID: Final = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN: Final = "fedcba9876543210" * 2
API_VERSION: Final = "2010-04-01"

SDK_WARNING_FILTERS: Final = (
    "ignore:BasicAuth is deprecated:DeprecationWarning:twilio.http.async_http_client",
    "ignore:The 'auth' parameter is deprecated:DeprecationWarning:twilio.base.client_base",
)
"""``filterwarnings`` entries for the two DeprecationWarnings every request of twilio 9.13's
``AsyncTwilioHttpClient`` raises under aiohttp >= 3.14 (it builds ``aiohttp.BasicAuth`` and
passes ``auth=`` to ``ClientSession.request``). Scoped to twilio's modules so our own code
still fails on them."""

ERROR_MESSAGES: Final[dict[int, str]] = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20500: "An internal server error has occurred",
    20503: "Service unavailable",
    20429: "Too Many Requests",
    21211: "Invalid 'To' Phone Number",
    21408: "Permission to send an SMS has not been enabled for the region "
    "indicated by the 'To' number",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    30022: "US A2P 10DLC - Rate Limit Exceeded",
}
_DEFAULT_STATUS: Final = {20003: 401, 20404: 404, 20429: 429, 20500: 500, 20503: 503}
_MAX_BODY: Final = 1600
_E164: Final = re.compile(r"^(?:[a-z]+:)?\+[1-9]\d{6,14}$")

_GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION: Final = frozenset("^{}\\[~]|€\f")


def count_segments(body: str) -> int:
    """Number of SMS parts Twilio bills for ``body``."""
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENSION for c in body):
        septets = sum(2 if c in _GSM7_EXTENSION else 1 for c in body)
        return 1 if septets <= 160 else math.ceil(septets / 153)
    units = len(body.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


@dataclass
class TwilioRequest:
    """One Messages create call, answered (``status`` 201, ``sid`` set) or refused."""

    to: str | None
    from_: str | None
    body: str | None
    status_callback: str | None
    params: dict[str, str | list[str]]
    time: float
    messaging_service_sid: str | None = None
    media_urls: list[str] = field(default_factory=list)
    status: int = 201
    sid: str | None = None
    error_code: int | None = None


@dataclass(frozen=True)
class StoredMedia:
    sid: str
    message_sid: str
    content: bytes
    content_type: str
    date_created: str


@dataclass
class _ScriptedError:
    code: int
    status: int
    message: str
    remaining: int


@dataclass
class StatusCallback:
    """One status callback the fake posted, and the HTTP status it got back."""

    sid: str
    status: str
    url: str
    answer: int


@dataclass
class _CallbackPlan:
    statuses: tuple[str, ...]
    before_answer: bool
    target: str | None
    error_code: str


class _RestError(Exception):
    def __init__(self, code: int, status: int | None = None, message: str | None = None) -> None:
        self.code = code
        self.status = status or _DEFAULT_STATUS.get(code, 400)
        self.message = message or ERROR_MESSAGES.get(code, "Error")
        super().__init__(self.message)

    def response(self) -> web.Response:
        body = {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }
        headers = {}
        if self.status == 401:
            headers[hdrs.WWW_AUTHENTICATE] = 'Basic realm="Twilio API"'
        return web.json_response(body, status=self.status, headers=headers)


def _rfc2822_now() -> str:
    return format_datetime(datetime.now(UTC).replace(microsecond=0))


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeTwilio(FakeServer):
    """Twilio's Messages and Media REST endpoints on loopback."""

    def __init__(
        self,
        account_sid: str = ACCOUNT_SID,
        auth_token: str = AUTH_TOKEN,
        *,
        delay: float = 0.0,
    ) -> None:
        super().__init__(delay=delay)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.requests: list[TwilioRequest] = []
        self.messages: dict[str, dict[str, Any]] = {}
        """Created message resources by sid, as answered."""
        self.media: dict[str, StoredMedia] = {}
        self.media_downloads: list[str] = []
        """Media sids whose bytes were fetched, in order."""
        self.deleted_media: list[str] = []
        """Media sids removed by a DELETE, in order."""
        self.media_delete_requests: list[str] = []
        """Media sids of every DELETE received (refused, 404 or done), in order."""
        self._failing_deletes: deque[_RestError] = deque()
        self._scripted: deque[_ScriptedError] = deque()
        self._recipient_errors: dict[str, _RestError] = {}
        self.callbacks: list[StatusCallback] = []
        self._callback_plan: _CallbackPlan | None = None
        self._callback_session: aiohttp.ClientSession | None = None
        self._callback_tasks: set[asyncio.Task[None]] = set()

    # -- application -------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth_middleware])
        account = f"/{API_VERSION}/Accounts/{{account_sid}}"
        app.router.add_post(f"{account}/Messages.json", self._create_message)
        app.router.add_get(f"{account}/Messages/{{message_sid}}.json", self._fetch_message)
        media = f"{account}/Messages/{{message_sid}}/Media/{{media_sid}}"
        app.router.add_get(media, self._get_media)
        app.router.add_delete(media, self._delete_media)
        return app

    async def close(self) -> None:
        await asyncio.gather(*self._callback_tasks, return_exceptions=True)
        if self._callback_session is not None:
            await self._callback_session.close()
            self._callback_session = None
        await super().close()

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        await self.inject_delay()
        if (page := self.proxy_error_reply()) is not None:
            return page
        try:
            self._authenticate(request)
            return await handler(request)
        except _RestError as e:
            return e.response()

    def _authenticate(self, request: web.Request) -> None:
        header = request.headers.get(hdrs.AUTHORIZATION, "")
        try:
            auth = BasicAuth.decode(header)
        except ValueError:
            raise _RestError(20003) from None
        if (auth.login, auth.password) != (self.account_sid, self.auth_token):
            raise _RestError(20003)
        if request.match_info.get("account_sid") != self.account_sid:
            raise _RestError(20404, message=f"The requested resource {request.path} was not found")

    # -- inspection --------------------------------------------------------------------

    def sent_messages(self) -> list[TwilioRequest]:
        """The create calls that were accepted, in order."""
        return [r for r in self.requests if r.sid is not None]

    def clear(self) -> None:
        """Forget recorded requests and deletions; scripted errors and media stay."""
        self.requests.clear()
        self.media_downloads.clear()
        self.deleted_media.clear()
        self.media_delete_requests.clear()

    # -- scripting ---------------------------------------------------------------------

    def script_error(
        self,
        code: int,
        *,
        status: int | None = None,
        message: str | None = None,
        times: int = 1,
    ) -> None:
        """Refuse the next ``times`` creates with Twilio error ``code``.

        ``status`` defaults to the HTTP status Twilio uses for the code (429 for 20429,
        else 400); ``message`` to the text in :data:`ERROR_MESSAGES`.
        """
        if times < 1:
            raise ValueError("times must be >= 1")
        error = _RestError(code, status, message)
        self._scripted.append(_ScriptedError(code, error.status, error.message, times))

    def fail_media_deletes(self, times: int = 1, *, code: int = 20503) -> None:
        """Refuse the next ``times`` media DELETEs with Twilio error ``code`` (a 5xx)."""
        if times < 1:
            raise ValueError("times must be >= 1")
        self._failing_deletes.extend(_RestError(code) for _ in range(times))

    def error_for(
        self, to_number: str, code: int, status: int | None = None, message: str | None = None
    ) -> None:
        """Refuse every create addressed to ``to_number`` until :meth:`clear_errors`."""
        self._recipient_errors[to_number] = _RestError(code, status, message)

    def clear_errors(self) -> None:
        self._scripted.clear()
        self._failing_deletes.clear()
        self._recipient_errors.clear()

    def call_back(self, statuses: tuple[str, ...] | list[str] = ("sent", "delivered"), *,
                  before_answer: bool = True, target: str | None = None,
                  error_code: str = "") -> None:
        """Post ``statuses`` to each accepted message's StatusCallback (see the module
        docstring); ``error_code`` goes with ``failed``/``undelivered``. ``()`` stops it."""
        self._callback_plan = (_CallbackPlan(tuple(statuses), before_answer, target, error_code)
                               if statuses else None)

    async def _post_callbacks(self, plan: _CallbackPlan, message: dict[str, Any],
                              url: str) -> None:
        if self._callback_session is None:
            self._callback_session = aiohttp.ClientSession()
        validator = RequestValidator(self.auth_token)
        actual = url
        if plan.target:
            parts = urlsplit(url)
            actual = plan.target.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query
                                                            else "")
        for status in plan.statuses:
            params = {"MessageSid": message["sid"], "SmsSid": message["sid"],
                      "MessageStatus": status, "SmsStatus": status,
                      "AccountSid": self.account_sid, "From": message["from"] or "",
                      "To": message["to"], "ApiVersion": API_VERSION}
            if plan.error_code and status in ("failed", "undelivered"):
                params["ErrorCode"] = plan.error_code
            headers = {"X-Twilio-Signature": validator.compute_signature(url, params)}
            try:
                async with self._callback_session.post(actual, data=params,
                                                       headers=headers) as answer:
                    code = answer.status
            except aiohttp.ClientError:
                code = 0
            self.callbacks.append(StatusCallback(message["sid"], status, url, code))

    def add_media(self, message_sid: str, content: bytes, content_type: str) -> tuple[str, str]:
        """Attach media to a (usually inbound) message; returns ``(media_sid, media_url)``.

        The URL is absolute, without ``.json``, like the ``MediaUrl0`` of an inbound webhook.
        """
        media_sid = "ME" + uuid.uuid4().hex
        self.media[media_sid] = StoredMedia(
            media_sid, message_sid, content, content_type, _rfc2822_now()
        )
        url = f"{self.base_url}/{API_VERSION}/Accounts/{self.account_sid}"
        return media_sid, f"{url}/Messages/{message_sid}/Media/{media_sid}"

    # -- handlers ----------------------------------------------------------------------

    async def _create_message(self, request: web.Request) -> web.Response:
        form = await request.post()
        params = _flatten(form)
        record = TwilioRequest(
            to=_first(params, "To"),
            from_=_first(params, "From"),
            body=_first(params, "Body"),
            status_callback=_first(params, "StatusCallback"),
            params=params,
            time=self.now(),
            messaging_service_sid=_first(params, "MessagingServiceSid"),
            media_urls=[str(v) for v in form.getall("MediaUrl", [])],
        )
        self.requests.append(record)
        try:
            self._validate(record)
            self._check_scripted(record)
        except _RestError as e:
            record.status, record.error_code = e.status, e.code
            return e.response()
        message = self._message_resource(record)
        record.sid = message["sid"]
        self.messages[record.sid] = message
        plan = self._callback_plan
        if plan is not None and record.status_callback:
            posting = self._post_callbacks(plan, message, record.status_callback)
            if plan.before_answer:
                await posting
            else:
                task = asyncio.ensure_future(posting)
                self._callback_tasks.add(task)
                task.add_done_callback(self._callback_tasks.discard)
        return web.json_response(message, status=201)

    async def _fetch_message(self, request: web.Request) -> web.Response:
        message = self.messages.get(request.match_info["message_sid"])
        if message is None:
            raise _RestError(20404, message=f"The requested resource {request.path} was not found")
        return web.json_response(message)

    async def _get_media(self, request: web.Request) -> web.Response:
        media_sid, as_json = _split_json(request.match_info["media_sid"])
        stored = self._find_media(request, media_sid)
        if as_json:
            return web.json_response(self._media_resource(stored))
        self.media_downloads.append(stored.sid)
        return web.Response(body=stored.content, headers={hdrs.CONTENT_TYPE: stored.content_type})

    async def _delete_media(self, request: web.Request) -> web.Response:
        media_sid, _ = _split_json(request.match_info["media_sid"])
        self.media_delete_requests.append(media_sid)
        if self._failing_deletes:
            raise self._failing_deletes.popleft()
        stored = self._find_media(request, media_sid)
        del self.media[stored.sid]
        self.deleted_media.append(stored.sid)
        return web.Response(status=204)

    # -- helpers -----------------------------------------------------------------------

    def _validate(self, record: TwilioRequest) -> None:
        if not record.to:
            raise _RestError(21604)
        if not record.from_ and not record.messaging_service_sid:
            raise _RestError(21603)
        if not record.body and not record.media_urls and "ContentSid" not in record.params:
            raise _RestError(21602)
        if not _E164.match(record.to):
            raise _RestError(21211, message=f"Invalid 'To' Phone Number: {record.to}")
        if record.body and len(record.body) > _MAX_BODY:
            raise _RestError(21617)

    def _check_scripted(self, record: TwilioRequest) -> None:
        if record.to in self._recipient_errors:
            raise self._recipient_errors[record.to]
        if not self._scripted:
            return
        scripted = self._scripted[0]
        scripted.remaining -= 1
        if scripted.remaining <= 0:
            self._scripted.popleft()
        raise _RestError(scripted.code, scripted.status, scripted.message)

    def _message_resource(self, record: TwilioRequest) -> dict[str, Any]:
        prefix = "MM" if record.media_urls else "SM"
        sid = prefix + uuid.uuid4().hex
        now = _rfc2822_now()
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": record.body or "",
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": record.from_,
            "messaging_service_sid": record.messaging_service_sid,
            "num_media": str(len(record.media_urls)),
            "num_segments": str(count_segments(record.body or "")),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued" if record.from_ else "accepted",
            "subresource_uris": {"media": f"{base}/Media.json"},
            "to": record.to,
            "uri": f"{base}.json",
        }

    def _find_media(self, request: web.Request, media_sid: str) -> StoredMedia:
        stored = self.media.get(media_sid)
        if stored is None or stored.message_sid != request.match_info["message_sid"]:
            raise _RestError(20404, message=f"The requested resource {request.path} was not found")
        return stored

    def _media_resource(self, stored: StoredMedia) -> dict[str, Any]:
        return {
            "account_sid": self.account_sid,
            "content_type": stored.content_type,
            "date_created": stored.date_created,
            "date_updated": stored.date_created,
            "parent_sid": stored.message_sid,
            "sid": stored.sid,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/"
            f"{stored.message_sid}/Media/{stored.sid}.json",
        }


def _flatten(form: MultiDictProxy[Any]) -> dict[str, str | list[str]]:
    params: dict[str, str | list[str]] = {}
    for key in form.keys():
        if key in params:
            continue
        values = [str(v) for v in form.getall(key)]
        params[key] = values[0] if len(values) == 1 else values
    return params


def _first(params: dict[str, str | list[str]], key: str) -> str | None:
    value = params.get(key)
    if isinstance(value, list):
        return value[0]
    return value


def _split_json(name: str) -> tuple[str, bool]:
    if name.endswith(".json"):
        return name.removesuffix(".json"), True
    return name, False
