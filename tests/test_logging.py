"""What the logs of a real ``engage run`` contain: never a full phone number or a secret.

One run of the real process (``python -m bot.cli -v run``: every logger at DEBUG, a superset
of what a normal run writes) against the fake Telegram and Twilio, with the traffic that
carries phone numbers — inbound SMS from customers and strangers (mainland and Hong Kong),
an MMS, status callbacks, outbound SMS and Telegram messages, shared contacts, the API's and
the console's customer search by phone (and a Referer carrying one), a CSV import — then
every line the process wrote is searched for the numbers, in any format, and for the tokens.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tortoise import Tortoise
from twilio.request_validator import RequestValidator
from yarl import URL

from bot.cli import _configure_logging
from bot.web.access_log import masked_url
from bot.web.operators.access import create_operator
from storage import db as storage_db
from storage.models import (
    Category,
    Claim,
    ClaimStatus,
    Customer,
    Message,
    Policy,
    Product,
    TelegramAccount,
)
from storage.operator_models import Role
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.test_engage_run import _free_port, _until, _until_healthy

MAINLAND = "+8613800138008"  # a customer on SMS only
LINKED = "+8613900139009"  # a customer on Telegram
ABROAD = "+85291234567"  # a Hong Kong customer
STRANGER = "+8613912345678"  # no customer
STRANGER_ABROAD = "+85298765432"
IMPORTED = "+8613700137007"
EVERY_NUMBER = [MAINLAND, LINKED, ABROAD, STRANGER, STRANGER_ABROAD, IMPORTED]

# A mainland mobile in any writing (13800138008, 86 138 0013 8008, 138-0013-8008) and any
# E.164 number; masked ones (+86*******8008) do not match.
_MAINLAND = re.compile(r"(?<![\d*])(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d){8}(?![\d*])")
_E164 = re.compile(r"\+\d(?:[ -]?\d){7,14}")


def full_numbers(text: str) -> list[str]:
    return _MAINLAND.findall(text) + _E164.findall(text)


def test_the_number_patterns_catch_what_they_must_and_spare_masks() -> None:
    written = ("q=13800138008 to +85291234567 from 86 138 0013 8008 and 8613800138008 "
               "masked +86*******8008 *********8008 claim RDAA3100000001234 id 4567")
    assert full_numbers(written) == ["13800138008", "86 138 0013 8008", "8613800138008",
                                     "+85291234567"]


@pytest.mark.parametrize(("url", "logged"), [
    ("/api/v1/customers?q=8613800138008", "/api/v1/customers?q=*********8008"),
    ("/console/customers?q=%2B86%20138-0013-8008&page=2",
     "/console/customers?q=%2B86*******8008&page=2"),
    ("/x?token=abc&next=/console/", "/x?token=***&next=/console/"),
    ("/x?ref=Oau4Re9pcDBRqBuDHZJFhR5r", "/x?ref=***"),
    ("/x?q=%E5%BC%A0%E4%B8%89&id=110101199003074518",
     "/x?q=%E5%BC%A0%E4%B8%89&id=**************4518"),
    ("/api/v1/claims/RDAA3100000001234?page=12", "/api/v1/claims/RDAA3100000001234?page=12"),
])
def test_the_access_log_masks_query_values(url: str, logged: str) -> None:
    assert masked_url(URL(url)) == logged


def test_twilio_request_logs_are_quiet_unless_verbose() -> None:
    twilio = logging.getLogger("twilio.http_client")
    before = logging.getLogger("twilio").level
    try:
        _configure_logging(verbose=False)
        assert not twilio.isEnabledFor(logging.INFO)
        assert twilio.isEnabledFor(logging.WARNING)
        _configure_logging(verbose=True)
        assert twilio.getEffectiveLevel() == logging.getLogger().getEffectiveLevel()
    finally:
        logging.getLogger("twilio").setLevel(before)


async def _seed(url: str) -> str:
    """Customers, a linked Telegram account, a claim, queued messages; an operator token."""
    await storage_db.upgrade(url)
    try:
        mainland = await Customer.create(name="王芳", phone=MAINLAND, referral_code="LOG1")
        linked = await Customer.create(name="李雷", phone=LINKED, referral_code="LOG2")
        abroad = await Customer.create(name="陳大文", phone=ABROAD, language="en",
                                       referral_code="LOG3")
        now = datetime.now(UTC)
        await TelegramAccount.create(telegram_user_id=7001, chat_id=7001, customer=linked,
                                     linked_at=now)
        policy = await Policy.create(number="PLOG1", customer=mainland, plate="沪A·D12345",
                                     product=Product.COMMERCIAL, start_date=now.date(),
                                     end_date=now.date() + timedelta(days=300),
                                     premium_cents=350_000)
        await Claim.create(number="RDAA3100000001234", policy=policy, customer=mainland,
                           status=ClaimStatus.SURVEYED, reported_at=now)
        for n, who in enumerate((mainland, linked, abroad)):
            await Message.create(dedup_key=f"svc:log:{n}", kind="claim_update",
                                 category=Category.SERVICE, customer=who,
                                 template_key="claim_update",
                                 params={"claim": "RDAA3100000001234", "status": "已查勘",
                                         "note": ""},
                                 not_before=now - timedelta(minutes=1))
        _, token = await create_operator("审计员", Role.ADMIN)
        return token
    finally:
        await Tortoise.close_connections()


class Traffic:
    """Requests as Twilio, Telegram, an operator and a browser would make them."""

    def __init__(self, http: aiohttp.ClientSession, base: str, token: str,
                 telegram: FakeTelegram, twilio: FakeTwilio) -> None:
        self.http, self.base, self.token = http, base, token
        self.telegram, self.twilio = telegram, twilio
        self._sids = iter(range(1, 1000))

    async def twilio_post(self, path: str, params: dict[str, str]) -> int:
        signature = RequestValidator(AUTH_TOKEN).compute_signature(f"{self.base}{path}", params)
        async with self.http.post(f"{self.base}{path}", data=params,
                                  headers={"X-Twilio-Signature": signature}) as resp:
            await resp.read()
            return resp.status

    async def sms(self, sender: str, body: str, **extra: str) -> int:
        params = {"MessageSid": f"SM{next(self._sids):032x}", "AccountSid": ACCOUNT_SID,
                  "From": sender, "To": "+15005550006", "Body": body, "NumMedia": "0",
                  **extra}
        return await self.twilio_post("/sms/inbound", params)

    async def mms(self, sender: str) -> int:
        sid = f"MM{next(self._sids):032x}"
        _, url = self.twilio.add_media(sid, b"%PDF-1.4\n%%EOF\n", "application/pdf")
        return await self.sms(sender, "理赔RDAA3100000001234", MessageSid=sid, NumMedia="1",
                              MediaUrl0=url, MediaContentType0="application/pdf")

    def update(self, user: int, **message: Any) -> None:
        chat = {"id": user, "type": "private", "first_name": "客户"}
        sender = {"id": user, "is_bot": False, "first_name": "客户", "language_code": "zh-hans"}
        if "text" in message and str(message["text"]).startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0,
                                    "length": len(str(message["text"]).split()[0])}]
        self.telegram.push_update({"message": {
            "message_id": user * 100 + len(self.telegram.requests), "date": 1_795_000_000,
            "chat": chat, "from": sender, **message}})

    def contact(self, user: int, phone: str) -> None:
        self.update(user, contact={"phone_number": phone, "first_name": "客户",
                                   "user_id": user})

    async def api(self, method: str, path: str, **kw: Any) -> int:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        async with self.http.request(method, f"{self.base}{path}", headers=headers,
                                     **kw) as resp:
            await resp.read()
            return resp.status


async def _drive(t: Traffic) -> None:
    # SMS in: customers, strangers, an MMS, a signed body that is not UTF-8
    for sender, body in [(MAINLAND, "HELP"), (MAINLAND, "保单"), (ABROAD, "POINTS"),
                         (STRANGER, "退订"), (STRANGER_ABROAD, "STOP"),
                         (STRANGER, "我的保单呢"), ("008613800138008", "理赔")]:
        assert await t.sms(sender, body) == 200
    assert await t.mms(MAINLAND) == 200
    # Telegram: a new user shares a contact nobody has, one shares a customer's (no "+")
    t.update(7002, text="/start")
    t.contact(7002, STRANGER.lstrip("+"))
    t.contact(7003, ABROAD.lstrip("+"))
    t.update(7001, text="/policies")
    # The operator looks customers up by phone, in the API and the console
    for q in (MAINLAND, MAINLAND.removeprefix("+86"), "86 138 0013 8008", ABROAD):
        assert await t.api("GET", "/api/v1/customers", params={"q": q}) == 200
    assert await t.api("GET", "/console/customers", params={"q": STRANGER},
                       headers={"Referer": f"{t.base}/console/customers?q={LINKED}"},
                       allow_redirects=False) == 303
    csv_text = f"phone,name\n{IMPORTED},新客户\n{IMPORTED}1,号码太长\n"
    assert await t.api("POST", "/api/v1/imports", params={"kind": "customers"},
                       data=csv_text.encode(), headers={"Content-Type": "text/csv"}) == 200

    async def all_sent() -> bool:
        sms_to = {r.to for r in t.twilio.sent_messages()}
        return {MAINLAND, ABROAD} <= sms_to and any(
            m.get("chat_id") == 7001 for m in t.telegram.sent_messages())

    await _until(all_sent)
    # Twilio's status callbacks for what was sent, one carrying an opt-out (21610)
    for n, (sid, resource) in enumerate(t.twilio.messages.items()):
        params = {"MessageSid": sid, "MessageStatus": "delivered" if n else "undelivered",
                  "To": str(resource["to"]), **({} if n else {"ErrorCode": "21610"})}
        assert await t.twilio_post("/sms/status", params) == 204

    async def telegram_answered() -> bool:
        return len(t.telegram.sent_messages()) >= 5

    await _until(telegram_answered)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_a_real_run_never_logs_a_full_phone_number_or_a_secret(
    tmp_path: Path, fake_telegram: FakeTelegram, fake_twilio: FakeTwilio
) -> None:
    url = f"sqlite://{tmp_path / 'logs.sqlite3'}"
    token = await _seed(url)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGE_")}
    env.update({
        "ENGAGE_DATABASE__URL": url,
        "ENGAGE_TELEGRAM__TOKEN": DEFAULT_TOKEN,
        "ENGAGE_TELEGRAM__API_BASE": fake_telegram.base_url,
        "ENGAGE_TWILIO__ACCOUNT_SID": ACCOUNT_SID,
        "ENGAGE_TWILIO__AUTH_TOKEN": AUTH_TOKEN,
        "ENGAGE_TWILIO__FROM_NUMBER": "+15005550006",
        "ENGAGE_TWILIO__API_BASE": fake_twilio.base_url,
        "ENGAGE_TWILIO__PUBLIC_BASE_URL": base,
        "ENGAGE_WEB__PORT": str(port),
        "ENGAGE_WEB__PUBLIC_BASE_URL": base,
        "ENGAGE_UPLOADS__DIRECTORY": str(tmp_path / "uploads"),
        "ENGAGE_DELIVERY__POLL_INTERVAL_SECONDS": "0.2",
        "ENGAGE_WEATHER__API_BASE": "http://127.0.0.1:9",
    })
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "-v", "run", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async with aiohttp.ClientSession() as http:
            await _until_healthy(http, base)
            await _drive(Traffic(http, base, token, fake_telegram, fake_twilio))
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    written = (out + err).decode()
    assert proc.returncode == 0, written[-3000:]
    # Nothing that identifies a person or opens a door ...
    leaks = [line for line in written.splitlines() if full_numbers(line)]
    assert leaks == []
    for number in EVERY_NUMBER:
        digits = number.lstrip("+")
        assert digits not in written and digits[-11:] not in written, number
    for secret in (token, AUTH_TOKEN, DEFAULT_TOKEN, DEFAULT_TOKEN.split(":")[1]):
        assert secret not in written
    # ... though the traffic was there, and logged, masked:
    assert '"GET /api/v1/customers?q=%2B86*******8008 HTTP/1.1" 200' in written
    assert "from unknown number +86*******5678" in written
    assert "linked to customer" in written and "+852****4567" in written
    assert "DEBUG" in written
