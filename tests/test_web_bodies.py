"""Bodies and headers a caller controls, through the real aiohttp app (Twilio webhooks, the
Telegram webhook, the operator API and console): bytes that do not decode are answered 400 —
403 when a Twilio webhook is not signed, 401 for a webhook secret that is not ours — never
500, and nothing is stored.

Requests are written byte for byte on a socket, so that what aiohttp's client would refuse
to send (a raw ``\\xff`` in a header) reaches the server as a broken client would send it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from twilio.request_validator import RequestValidator

from bot.settings import TelegramSettings
from bot.web.app import Overrides, build_app
from bot.web.operators.access import create_operator
from storage.loyalty_models import LedgerEntry
from storage.models import InboundSms, Message, ProcessedUpdate
from storage.operator_models import AuditLog, Role
from tests import factories as f
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram
from tests.fakes.twilio import AUTH_TOKEN, FakeTwilio
from tests.test_telegram_support import Clock

SECRET = "webhook-s3cret"
FORM = "application/x-www-form-urlencoded"
NOT_UTF8 = b"MessageSid=SM0001&From=%2B8613800138000&Body=\xff\xfe"

# Bodies no route can decode, by what is wrong with them.
BROKEN: dict[str, tuple[bytes, str]] = {
    "form_not_utf8": (b"csrf_token=x&Body=\xff\xfe", FORM),
    "form_unknown_charset": (b"csrf_token=x&a=b", f"{FORM}; charset=no-such-charset"),
    "json_not_utf8": (b'{"name": "\xff\xfe"}', "application/json"),
    "json_unknown_charset": (b'{"name": "x"}', "application/json; charset=no-such-charset"),
    "json_lone_surrogate": (b'{"name": "\\ud800", "request_key": "\\udcff"}',
                            "application/json"),
    "json_nested_too_deep": (b"[" * 100_000, "application/json"),
    "multipart_not_utf8": (b'--b\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
                           b"\xff\xfe\r\n--b--\r\n", "multipart/form-data; boundary=b"),
    "multipart_no_field_name": (b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n",
                                "multipart/form-data; boundary=b"),
    "multipart_broken_part_headers": (b"--b\r\n\xff\xfe: \xff\r\n\r\nx\r\n--b--\r\n",
                                      "multipart/form-data; boundary=b"),
    "multipart_no_boundary": (b"garbage", "multipart/form-data"),
}


@dataclass
class Answer:
    status: int
    body: str


@dataclass
class World:
    client: TestClient  # type: ignore[type-arg]
    token: str

    async def raw(self, method: str, path: str, body: bytes = b"",
                  headers: dict[str, bytes] | None = None) -> Answer:
        """One HTTP/1.1 request written as bytes; the status and body of the answer."""
        server = self.client.server
        reader, writer = await asyncio.open_connection(server.host, server.port)
        head = [f"{method} {path} HTTP/1.1".encode(), b"Host: engage.example.com",
                b"Connection: close", f"Content-Length: {len(body)}".encode()]
        head += [name.encode() + b": " + value for name, value in (headers or {}).items()]
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        await writer.drain()
        answer = await reader.read()
        writer.close()
        await writer.wait_closed()
        status_line, _, rest = answer.partition(b"\r\n")
        return Answer(int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2].decode(
            "utf-8", "replace"))

    async def session(self) -> tuple[str, str]:
        """A console session for the admin: (cookie value, CSRF token)."""
        resp = await self.client.get("/console/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', await resp.text())
        assert csrf is not None
        resp = await self.client.post("/console/login", data={
            "token": self.token, "csrf_token": csrf.group(1), "next": "/console/"},
            allow_redirects=False)
        assert resp.status == 303
        cookie = resp.cookies["engage_session"].value
        page = await (await self.client.get("/console/")).text()
        token = re.search(r'data-csrf="([^"]+)"', page)
        assert token is not None
        return cookie, token.group(1)


@pytest.fixture
async def world(db: str, fake_telegram: FakeTelegram, fake_twilio: FakeTwilio,
                tmp_path: Path) -> AsyncIterator[World]:
    settings = f.settings_for(
        db_url=db, twilio_base=fake_twilio.base_url, uploads={"directory": tmp_path},
        telegram=TelegramSettings(token=DEFAULT_TOKEN, api_base=fake_telegram.base_url,
                                  mode="webhook", webhook_secret=SECRET,
                                  webhook_url=f"{f.PUBLIC_URL}/telegram/webhook"))
    app = build_app(settings, Overrides(run_dispatcher=False, run_scheduler=False,
                                        run_campaigns=False, run_media_sweep=False,
                                        manage_database=False, clock=Clock()))
    _, token = await create_operator("admin", Role.ADMIN)
    async with TestClient(TestServer(app)) as client:
        yield World(client, token)


async def nothing_stored() -> None:
    assert await InboundSms.all().count() == 0
    assert await Message.all().count() == 0
    assert await ProcessedUpdate.all().count() == 0
    assert await LedgerEntry.all().count() == 0
    assert await AuditLog.all().count() == 0


def signed_for(path: str, params: dict[str, str]) -> dict[str, bytes]:
    signature = RequestValidator(AUTH_TOKEN).compute_signature(f"{f.PUBLIC_URL}{path}", params)
    return {"Content-Type": FORM.encode(), "X-Twilio-Signature": signature.encode()}


# -- Twilio webhooks ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/sms/inbound", "/sms/status"])
async def test_twilio_form_that_is_not_utf8_is_403_unsigned_and_400_signed(
    world: World, path: str
) -> None:
    unsigned = await world.raw("POST", path, NOT_UTF8, {"Content-Type": FORM.encode()})
    assert unsigned.status == 403
    # Signed over the text as a sender that did not care about encodings would have it.
    params = {"MessageSid": "SM0001", "From": "+8613800138000", "Body": "\ufffd\ufffd"}
    signed = await world.raw("POST", path, NOT_UTF8, signed_for(path, params))
    assert signed.status == 400 and "UTF-8" in signed.body
    await nothing_stored()


@pytest.mark.parametrize("path", ["/sms/inbound", "/sms/status"])
async def test_twilio_signature_header_that_is_not_utf8_is_403(world: World, path: str) -> None:
    answer = await world.raw("POST", path, b"MessageSid=SM1&From=%2B8613800138000&Body=HELP",
                             {"Content-Type": FORM.encode(), "X-Twilio-Signature": b"\xff\xfe"})
    assert answer.status == 403
    await nothing_stored()


# -- Telegram webhook --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["json_not_utf8", "json_unknown_charset",
                                  "json_nested_too_deep", "form_not_utf8"])
async def test_telegram_update_that_cannot_be_read_is_400(world: World, name: str) -> None:
    body, content_type = BROKEN[name]
    answer = await world.raw("POST", "/telegram/webhook", body, {
        "Content-Type": content_type.encode(), "X-Telegram-Bot-Api-Secret-Token":
        SECRET.encode()})
    assert answer.status == 400
    await nothing_stored()


async def test_telegram_secret_header_that_is_not_utf8_is_401(world: World) -> None:
    answer = await world.raw("POST", "/telegram/webhook", b"{}", {
        "Content-Type": b"application/json",
        "X-Telegram-Bot-Api-Secret-Token": SECRET.encode() + b"\xff"})
    assert answer.status == 401


# -- operator API and console ------------------------------------------------------------------


async def test_api_json_body_that_is_not_utf8_is_422_invalid_json(world: World) -> None:
    body, content_type = BROKEN["json_not_utf8"]
    answer = await world.raw("POST", "/api/v1/campaigns", body, {
        "Content-Type": content_type.encode(), "Authorization": f"Bearer {world.token}".encode()})
    assert answer.status == 422 and '"json_invalid"' in answer.body
    await nothing_stored()


async def test_api_session_form_that_is_not_utf8_is_400_as_json(world: World) -> None:
    cookie, _ = await world.session()
    body, content_type = BROKEN["form_not_utf8"]
    answer = await world.raw("POST", "/api/v1/rewards/car_wash/retire", body, {
        "Content-Type": content_type.encode(), "Cookie": f"engage_session={cookie}".encode()})
    assert answer.status == 400 and '"error": "unreadable_body"' in answer.body
    await nothing_stored()


async def test_console_form_that_is_not_utf8_is_an_error_page(world: World) -> None:
    cookie, _ = await world.session()
    c = await f.customer()
    body, content_type = BROKEN["form_not_utf8"]
    answer = await world.raw("POST", f"/console/customers/{c.id}/points", body, {
        "Content-Type": content_type.encode(), "Cookie": f"engage_session={cookie}".encode()})
    assert answer.status == 400
    assert re.search(r'id="error-code">[^<]*UTF-8', answer.body)
    login = await world.raw("POST", "/console/login", body, {
        "Content-Type": content_type.encode()})
    assert login.status == 400
    await nothing_stored()


@pytest.mark.parametrize("header", ["Authorization", "X-CSRF-Token", "Cookie", "Referer"])
async def test_api_header_bytes_that_are_not_utf8_are_refused_not_a_500(
    world: World, header: str
) -> None:
    cookie, _ = await world.session()
    values = {"Authorization": b"Bearer \xff\xfe", "X-CSRF-Token": b"\xff\xfe",
              "Cookie": b"engage_session=\xff\xfe", "Referer": b"https://x/\xff?q=\xfe"}
    headers = {"Content-Type": b"application/json", "Cookie": f"engage_session={cookie}".encode(),
               header: values[header]}
    answer = await world.raw("POST", "/api/v1/rewards/car_wash/retire", b"{}", headers)
    assert answer.status in (401, 403, 404)
    await nothing_stored()


@pytest.mark.parametrize("auth", ["bearer", "session"])
async def test_no_route_answers_500_to_a_body_it_cannot_decode(world: World, auth: str) -> None:
    """Every POST/PUT/PATCH route of the app (webhooks, API, console) and every kind of body
    that cannot be decoded: a 4xx, and nothing anywhere changed."""
    if auth == "bearer":
        credentials = {"Authorization": f"Bearer {world.token}".encode()}
    else:
        cookie, csrf = await world.session()
        credentials = {"Cookie": f"engage_session={cookie}".encode(),
                       "X-CSRF-Token": csrf.encode()}
    routes = sorted({(route.method, route.resource.canonical)
                     for route in world.client.app.router.routes()
                     if route.method in ("POST", "PUT", "PATCH") and route.resource is not None})
    assert len(routes) > 30
    answers: dict[tuple[str, str, str], int] = {}
    for method, canonical in routes:
        path = re.sub(r"\{[^}]+\}", "1", canonical)
        for name, (body, content_type) in BROKEN.items():
            headers = {**credentials, "Content-Type": content_type.encode(),
                       "X-Twilio-Signature": b"c2lnbmVk",
                       "X-Telegram-Bot-Api-Secret-Token": SECRET.encode()}
            answer = await world.raw(method, path, body, headers)
            answers[(method, path, name)] = answer.status
    failed = {key: status for key, status in answers.items() if not 400 <= status < 500}
    assert failed == {}
    await nothing_stored()
