"""``POST /sms/inbound`` end to end: the real aiohttp app, requests signed with twilio's own
RequestValidator, the fake Twilio REST server for MMS media, and the database before and
after — signatures, idempotency (also concurrent), every keyword, unknown senders, other
customers' claims, and STOP reaching the dispatcher."""

from __future__ import annotations

import asyncio
import io
import itertools
import random
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from pydantic import SecretStr
from tortoise import Tortoise
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from bot.delivery.recipients import load_recipients, record_sms_opt_out
from bot.delivery.segments import count_segments
from bot.settings import Settings, TwilioSettings
from bot.sms.conversations import SmsConversations
from bot.sms.inbound import twiml_text
from bot.sms.keywords import Command
from bot.sms.media_deletes import LEASE, MediaDeletes, SweepResult, mask_sid
from bot.sms.replies import Replies
from bot.telegram import consents
from bot.web.app import Overrides, build_app
from bot.web.keys import DISPATCHER, SETTINGS, SMS_CONVERSATIONS
from loyalty.earning import check_in
from storage.loyalty_models import CheckIn, LedgerEntry
from storage.models import (
    Category,
    Channel,
    Claim,
    ClaimStatus,
    Consent,
    Customer,
    Document,
    InboundSms,
    MessageStatus,
    PhoneSuppression,
    Policy,
    SharedPhone,
    SmsMediaPending,
)
from storage.shared_phones import recount, release
from tests import factories as f
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

INBOUND_URL = f"{f.PUBLIC_URL}/sms/inbound"
TO_NUMBER = f.FROM_NUMBER
STRANGER = "+8613912345678"
CATEGORIES = ["marketing", "care", "alert", "reminder"]
_claims = itertools.count(1)


def signature(params: dict[str, str], *, url: str = INBOUND_URL,
              token: str = AUTH_TOKEN) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, params)}


def new_sid(prefix: str = "SM") -> str:
    return prefix + uuid.uuid4().hex


def message_of(twiml: str) -> str:
    root = ET.fromstring(twiml)
    assert root.tag == "Response"
    messages = root.findall("Message")
    assert len(messages) <= 1
    return (messages[0].text or "") if messages else ""


@dataclass
class SmsRig:
    client: TestClient  # type: ignore[type-arg]
    app: web.Application
    twilio: FakeTwilio
    uploads: Path

    @property
    def replies(self) -> Replies:
        return self.app[SMS_CONVERSATIONS].replies

    async def post(self, params: dict[str, str],
                   headers: dict[str, str] | None = None) -> tuple[int, str, str]:
        resp = await self.client.post("/sms/inbound", data=params,
                                      headers=signature(params) if headers is None else headers)
        return resp.status, resp.content_type, await resp.text()

    async def text(self, sender: str, body: str, *, sid: str | None = None,
                   **extra: str) -> str:
        params = {"MessageSid": sid or new_sid(), "AccountSid": ACCOUNT_SID, "From": sender,
                  "To": TO_NUMBER, "Body": body, "NumMedia": "0", **extra}
        status, content_type, twiml = await self.post(params)
        assert (status, content_type) == (200, "text/xml"), twiml
        return message_of(twiml)

    async def mms(self, sender: str, media: list[tuple[bytes, str]], *, body: str = "",
                  sid: str | None = None) -> tuple[str, list[str]]:
        """Registers the media at the fake Twilio, posts the webhook; reply and media sids."""
        sid = sid or new_sid("MM")
        extra: dict[str, str] = {"NumMedia": str(len(media))}
        sids = []
        for i, (content, content_type) in enumerate(media):
            media_sid, url = self.twilio.add_media(sid, content, content_type)
            sids.append(media_sid)
            extra[f"MediaUrl{i}"] = url
            extra[f"MediaContentType{i}"] = content_type
        return await self.text(sender, body, sid=sid, **extra), sids

    async def drain(self) -> None:
        await self.app[SMS_CONVERSATIONS].drain()

    @property
    def deletes(self) -> MediaDeletes:
        deletes = self.app[SMS_CONVERSATIONS].media_deletes
        assert deletes is not None
        return deletes


def rig_settings(db: str, twilio: FakeTwilio, upload_dir: Path, *, delete_media: bool = True,
                 **sections: Any) -> Settings:
    return f.settings_for(
        db_url=db,
        twilio=TwilioSettings(account_sid=ACCOUNT_SID, auth_token=SecretStr(AUTH_TOKEN),
                              from_number=f.FROM_NUMBER, api_base=twilio.base_url,
                              public_base_url=f.PUBLIC_URL, delete_media=delete_media),
        uploads={"directory": str(upload_dir), **sections.pop("uploads", {})},
        **sections,
    )


@pytest.fixture
async def make_rig(db: str, fake_twilio: FakeTwilio,
                   tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[SmsRig]]]:
    clients: list[TestClient] = []  # type: ignore[type-arg]

    async def make(*, clock: Callable[[], datetime] = lambda: f.NOON_SHANGHAI,
                   sweep_media: bool = False, **sections: Any) -> SmsRig:
        """``sweep_media``: run the media-delete sweep (at start-up, then periodically) as
        ``engage run`` does; off by default, so tests call ``sweep()`` themselves."""
        uploads = tmp_path / "uploads"
        settings = rig_settings(db, fake_twilio, uploads, **sections)
        app = build_app(settings, Overrides(run_dispatcher=False, run_scheduler=False,
                                            manage_database=False, clock=clock,
                                            run_media_sweep=sweep_media))
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return SmsRig(client, app, fake_twilio, uploads)

    try:
        yield make
    finally:
        for client in clients:
            await client.close()


@pytest.fixture
async def rig(make_rig: Callable[..., Awaitable[SmsRig]]) -> SmsRig:
    return await make_rig()


async def claim_of(owner: Customer, *, status: ClaimStatus = ClaimStatus.SURVEYED,
                   reported: datetime = f.NOON_SHANGHAI - timedelta(days=3)) -> Claim:
    pol = await f.policy(owner)
    return await Claim.create(number=f"RDAA31{next(_claims):08d}", policy=pol, customer=owner,
                              status=status, reported_at=reported)


def png(size: tuple[int, int] = (16, 16), *, noise: bool = False) -> bytes:
    image = Image.new("RGB", size, "white")
    if noise:
        image = Image.frombytes("RGB", size, random.Random(7).randbytes(size[0] * size[1] * 3))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


async def sms_consents(customer_id: int) -> dict[str, bool]:
    recipients = await load_recipients([customer_id], now=f.NOON_SHANGHAI)
    return {cat: granted for (channel, cat), granted in recipients[customer_id].consents.items()
            if channel == "sms"}


# -- signatures ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tamper",
    ["no_signature", "wrong_token", "tampered_param", "added_param", "wrong_url",
     "http_not_https", "forwarded_headers"],
)
async def test_bad_signature_is_403_and_nothing_is_stored(rig: SmsRig, tamper: str) -> None:
    c = await f.customer()
    params = {"MessageSid": new_sid(), "From": c.phone, "To": TO_NUMBER, "Body": "STOP"}
    evil = "https://attacker.example.net/sms/inbound"
    headers = {
        "no_signature": {},
        "wrong_token": signature(params, token="x" * 32),
        "tampered_param": signature({**params, "Body": "HELP"}),
        "added_param": signature({k: v for k, v in params.items() if k != "Body"}),
        "wrong_url": signature(params, url=f"{f.PUBLIC_URL}/sms/status"),
        "http_not_https": signature(params, url=INBOUND_URL.replace("https://", "http://")),
        # Signed for a URL the caller chose, with headers claiming that URL: still refused.
        "forwarded_headers": {**signature(params, url=evil), "X-Forwarded-Proto": "https",
                              "X-Forwarded-Host": "attacker.example.net",
                              "Host": "attacker.example.net"},
    }[tamper]
    status, _, _ = await rig.post(params, headers)
    assert status == 403
    assert await InboundSms.all().count() == 0
    assert await Consent.all().count() == 0


async def test_signed_request_without_message_sid_is_400_and_stores_nothing(
    rig: SmsRig,
) -> None:
    params = {"From": "+8613800000001", "Body": "HELP"}
    status, _, _ = await rig.post(params)
    assert status == 400
    assert await InboundSms.all().count() == 0


# -- who is it -----------------------------------------------------------------------------


async def test_unknown_number_gets_one_generic_reply_and_only_the_idempotency_row(
    rig: SmsRig,
) -> None:
    await f.customer()
    sid = new_sid()
    reply = await rig.text(STRANGER, "POINTS", sid=sid)
    assert reply == "【安行保险】未查到您的客户信息，如需帮助请致电95500。"
    [row] = await InboundSms.all()
    assert (row.message_sid, row.customer_id, row.from_phone, row.reply) == (
        sid, None, STRANGER, reply)
    assert await Consent.all().count() == 0
    assert await PhoneSuppression.all().count() == 0
    assert await Customer.all().count() == 1
    assert rig.twilio.requests == []  # the answer is the TwiML, nothing sent besides


# -- opting out before being a customer ------------------------------------------------------


async def remembered(phone: str) -> set[tuple[str, str, bool, str, str]]:
    rows = await PhoneSuppression.filter(phone=phone).values_list(
        "channel", "category", "suppressed", "source", "reference")
    return {(str(ch), str(cat), bool(s), str(src), str(ref)) for ch, cat, s, src, ref in rows}


@pytest.mark.parametrize("word", ["退订", "STOP", "td"])
async def test_stop_from_a_number_no_customer_has_is_confirmed_and_remembered(
    rig: SmsRig, word: str,
) -> None:
    sid = new_sid()
    reply = await rig.text(STRANGER, word, sid=sid)
    assert reply == ("【安行保险】已为您退订营销、关怀、天气、提醒短信，理赔等服务通知不受影响。"
                     "回复订阅可恢复。")
    assert await remembered(STRANGER) == {("sms", c, True, "sms:keyword", sid) for c in CATEGORIES}
    [row] = await InboundSms.all()
    assert (row.customer_id, row.keyword, row.reply) == (None, "stop", reply)
    assert await Consent.all().count() == 0 and await Customer.all().count() == 0
    assert await rig.text(STRANGER, word, sid=sid) == reply  # a redelivery: no second effect
    assert await PhoneSuppression.all().count() == len(CATEGORIES)


async def test_stop_from_abroad_is_confirmed_in_english_with_the_english_signature(
    rig: SmsRig,
) -> None:
    reply = await rig.text("+85291234567", "STOP")
    assert reply == ("[Anxing Insurance] You will no longer get marketing, care, weather, reminder "
                     "texts. Service updates continue. Reply START to resubscribe.")
    assert len(await remembered("+85291234567")) == len(CATEGORIES)


async def test_a_twilio_opt_out_from_a_stranger_is_remembered_without_a_reply(
    rig: SmsRig,
) -> None:
    sid = new_sid()
    assert await rig.text(STRANGER, "ARRET", sid=sid, OptOutType="STOP") == ""
    assert await remembered(STRANGER) == {
        ("sms", c, True, "sms:twilio-opt-out", sid) for c in CATEGORIES}


async def import_customers(db: str, tmp_path: Path, rows: str) -> None:
    from storage.importer import import_csv

    path = tmp_path / "customers.csv"
    path.write_text("phone,name\n" + rows, encoding="utf-8")
    report = await import_csv("customers", path, default_region="CN", out=io.StringIO(),
                              now=f.NOON_SHANGHAI + timedelta(days=1))
    assert report.rejected == 0


async def test_an_opt_out_made_before_the_import_holds_for_the_new_customer(
    rig: SmsRig, db: str, tmp_path: Path,
) -> None:
    """The stranger's STOP, then the core system's import creates the customer: care and
    marketing are not sent, service messages are."""
    await rig.text(STRANGER, "退订")
    await import_customers(db, tmp_path, "13912345678,赵敏\n13800000002,周芷若\n")
    owner = await Customer.get(phone=STRANGER)
    other = await Customer.get(phone="+8613800000002")
    assert await sms_consents(owner.id) == dict.fromkeys(CATEGORIES, False)
    assert {str(s) for s in await Consent.filter(customer_id=owner.id).values_list(
        "source", flat=True)} == {"sms:keyword"}
    assert await sms_consents(other.id) == {}
    care = await f.queued(owner)
    claim = await f.queued(owner, kind="claim_update", category=Category.SERVICE,
                           template="claim_update",
                           params={"claim": "RDAA1", "status": "已赔付", "note": ""})
    await rig.app[DISPATCHER].dispatch_once()
    await care.refresh_from_db()
    await claim.refresh_from_db()
    assert (care.status, care.skip_reason) == (MessageStatus.SKIPPED, "opted_out")
    assert claim.status is MessageStatus.SENT
    assert [r.to for r in rig.twilio.sent_messages()] == [STRANGER]
    # Re-importing the same file changes nothing (no second set of consents).
    await import_customers(db, tmp_path, "13912345678,赵敏\n")
    assert await Consent.filter(customer_id=owner.id).count() == len(CATEGORIES)


async def test_an_opt_out_holds_for_a_customer_the_import_moves_to_the_number(
    rig: SmsRig, db: str, tmp_path: Path,
) -> None:
    """Keyed by customer number, an import may give a customer a new phone: a STOP the new
    number sent before holds for them too, and no one else's consent changes."""
    from storage.importer import import_csv

    path = tmp_path / "numbered.csv"
    for rows in ("C001,13800000001,赵敏\nC002,13800000002,周芷若\n",
                 "C001,13912345678,赵敏\n"):
        if rows.startswith("C001,139"):
            await rig.text(STRANGER, "STOP")
        path.write_text("customer_no,phone,name\n" + rows, encoding="utf-8")
        report = await import_csv("customers", path, default_region="CN", out=io.StringIO(),
                                  now=f.NOON_SHANGHAI + timedelta(days=1))
        assert report.rejected == 0
    moved = await Customer.get(customer_no="C001")
    assert moved.phone == STRANGER
    assert await sms_consents(moved.id) == dict.fromkeys(CATEGORIES, False)
    assert await sms_consents((await Customer.get(customer_no="C002")).id) == {}


async def test_start_after_stop_lifts_what_the_number_asked(
    rig: SmsRig, db: str, tmp_path: Path,
) -> None:
    await rig.text(STRANGER, "STOP")
    reply = await rig.text(STRANGER, "START")
    assert reply == rig.replies.opted_in("zh-CN", CATEGORIES)
    await import_customers(db, tmp_path, "13912345678,赵敏\n")
    owner = await Customer.get(phone=STRANGER)
    assert await sms_consents(owner.id) == {}


async def test_a_customer_stop_is_remembered_for_the_number_too(rig: SmsRig) -> None:
    owner = await f.customer()
    sid = new_sid()
    await rig.text(owner.phone, "STOP", sid=sid)
    assert await sms_consents(owner.id) == dict.fromkeys(CATEGORIES, False)
    assert await remembered(owner.phone) == {
        ("sms", c, True, "sms:keyword", sid) for c in CATEGORIES}
    again = new_sid()
    await rig.text(owner.phone, "START", sid=again)
    assert await sms_consents(owner.id) == dict.fromkeys(CATEGORIES, True)
    # each consent row carries its own evidence: the MessageSid that asked for it
    assert set(await Consent.filter(customer_id=owner.id).values_list(
        "granted", "reference")) == {(False, sid), (True, again)}
    assert {s for _, _, s, _, _ in await remembered(owner.phone)} == {True, False}


async def test_an_operator_contact_record_gets_the_numbers_opt_out(rig: SmsRig) -> None:
    from bot.web.operators.access import create_operator
    from storage.operator_models import Role

    await rig.text(STRANGER, "STOP")
    operator, _ = await create_operator("测试员", Role.AGENT, contact_phone="13912345678")
    assert operator.contact_id is not None
    assert await sms_consents(operator.contact_id) == dict.fromkeys(CATEGORIES, False)


async def test_sender_is_found_by_from_normalised_to_e164(rig: SmsRig) -> None:
    c = await f.customer(phone="+8613800138000")
    reply = await rig.text("008613800138000", "HELP")
    assert reply == rig.replies.help("zh-CN")
    assert (await InboundSms.get()).customer_id == c.id


# -- every keyword -------------------------------------------------------------------------


def full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


WORDS: dict[Command, tuple[str, ...]] = {
    Command.STOP: ("STOP", "UNSUBSCRIBE", "END", "QUIT", "CANCEL", "T", "TD", "退订"),
    Command.START: ("START", "UNSTOP", "订阅"),
    Command.HELP: ("HELP", "帮助"),
    Command.POLICY: ("POLICY", "保单"),
    Command.CLAIM: ("CLAIM", "理赔"),
    Command.POINTS: ("POINTS", "积分"),
    Command.CHECKIN: ("CHECKIN", "签到"),
}
FORMS: dict[str, Callable[[str], str]] = {
    "upper": str.upper,
    "lower": str.lower,
    "full_width": lambda w: f"\u3000{full_width(w.lower())}！",
}
KEYWORD_CASES = [(cmd, word, form) for cmd, words in WORDS.items() for word in words
                 for form in FORMS]


async def expected_after(rig: SmsRig, command: Command, owner: Customer, lang: str,
                         reply: str) -> None:
    """The reply is the command's, in the customer's language, and its effect happened."""
    r = rig.replies.to_number(owner.phone)
    if command is Command.STOP:
        assert reply == r.opted_out(lang, CATEGORIES)
        assert await sms_consents(owner.id) == dict.fromkeys(CATEGORIES, False)
        assert await Consent.filter(customer_id=owner.id,
                                    source="sms:keyword").count() == len(CATEGORIES)
    elif command is Command.START:
        assert reply == r.opted_in(lang, CATEGORIES)
        assert await sms_consents(owner.id) == dict.fromkeys(CATEGORIES, True)
    elif command is Command.HELP:
        assert reply == r.help(lang)
    elif command is Command.POLICY:
        pol = await Policy.get(customer_id=owner.id)
        assert reply == r.policies(lang, [(pol.plate, pol.end_date)])
        assert pol.plate in reply and "2026-12-31" in reply
    elif command is Command.CLAIM:
        claim = await Claim.get(customer_id=owner.id)
        assert reply == r.claim(lang, claim.number, "surveyed")
        assert claim.number in reply and ("已查勘" if lang == "zh-CN" else "surveyed") in reply
    elif command is Command.POINTS:
        assert reply == r.points(lang, 0, {"zh-CN": "普卡", "en": "Standard"})
    elif command is Command.CHECKIN:
        assert reply == r.checked_in(lang, awarded=True, points=5, bonus=0, streak=1,
                                     balance=5)
        assert await CheckIn.filter(customer_id=owner.id).count() == 1
    if command not in (Command.STOP, Command.START):
        assert await Consent.filter(customer_id=owner.id).count() == 0
    if command is not Command.CHECKIN:
        assert await CheckIn.filter(customer_id=owner.id).count() == 0


# Who texts in: (language, number, signature, most segments a reply may take). English
# replies carry the Chinese signature to mainland numbers (the registered one), which makes
# them UCS-2; abroad they carry sms.signature_en and stay GSM-7.
SENDERS = [("zh-CN", None, "【安行保险】", 1), ("en", "+85291234567", "[Anxing Insurance] ", 1),
           ("en", None, "【安行保险】 ", 2)]


@pytest.mark.parametrize(("command", "word", "form"), KEYWORD_CASES,
                         ids=[f"{c.value}-{w}-{form}" for c, w, form in KEYWORD_CASES])
async def test_every_keyword_in_both_languages(rig: SmsRig, command: Command, word: str,
                                               form: str) -> None:
    for lang, phone, signature, segments in SENDERS:
        owner = await f.customer(language=lang, phone=phone)
        # Realistic worst cases: a new-energy plate, a 17-character claim number.
        policy = await f.policy(owner, plate="沪A·D12345")
        await Claim.create(number=f"RDAA3100{next(_claims):09d}", policy=policy, customer=owner,
                           status=ClaimStatus.SURVEYED, reported_at=f.NOON_SHANGHAI)
        reply = await rig.text(owner.phone, FORMS[form](word))
        assert reply.startswith(signature)
        assert count_segments(reply) <= segments, reply
        await expected_after(rig, command, owner, lang, reply)


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
async def test_anything_else_gets_the_keyword_menu(rig: SmsRig, lang: str) -> None:
    owner = await f.customer(language=lang)
    reply = await rig.text(owner.phone, "你好，请问我的车险什么时候到期？")
    assert reply == rig.replies.to_number(owner.phone).menu(lang)
    assert ("保单" in reply) if lang == "zh-CN" else ("POLICY" in reply)


async def test_replies_read_as_the_customer_expects() -> None:
    """A few literal wordings, so a template mix-up cannot pass by comparing with itself."""
    from bot.texts import Texts

    r = Replies(Texts.load(), Settings().sms, "+8613800138000")
    assert r.opted_out("zh-CN", CATEGORIES) == (
        "【安行保险】已为您退订营销、关怀、天气、提醒短信，理赔等服务通知不受影响。回复订阅可恢复。")
    assert r.opted_out("en", CATEGORIES).startswith("【安行保险】 You will no longer get")
    assert r.to_number("+85291234567").help("en") == (
        "[Anxing Insurance] POLICY: policies. CLAIM [number]: status. "
        "POINTS: balance. CHECKIN: daily points. REDEEM: rewards. STOP: opt out. "
        "Hotline 95500")
    assert r.help("zh-CN").endswith("客服95500")
    assert r.claim("zh-CN", "C1", "paid") == "【安行保险】理赔C1进度：已赔付。"


async def test_policy_lists_only_active_unexpired_policies(rig: SmsRig) -> None:
    owner = await f.customer()
    await f.policy(owner, plate="沪A11111", end=date(2027, 5, 1))
    await f.policy(owner, plate="沪A22222", end=date(2026, 11, 20))  # ended yesterday
    await f.policy(owner, plate="沪A33333", status="cancelled")
    other = await f.customer()
    await f.policy(other, plate="沪A44444")
    reply = await rig.text(owner.phone, "保单")
    assert reply == "【安行保险】您的有效保单：沪A11111至2027-05-01"


async def test_claim_without_number_reports_the_latest_claim(rig: SmsRig) -> None:
    owner = await f.customer(language="en")
    assert await rig.text(owner.phone, "CLAIM") == rig.replies.to_number(owner.phone).no_claims(
        "en")
    await claim_of(owner, status=ClaimStatus.PAID, reported=f.NOON_SHANGHAI - timedelta(days=40))
    latest = await claim_of(owner, status=ClaimStatus.REGISTERED)
    assert await rig.text(owner.phone, "claim") == (
        f"【安行保险】 Claim {latest.number}: registered.")


async def test_claim_number_of_another_customer_reads_as_not_found(rig: SmsRig) -> None:
    owner = await f.customer()
    mine = await claim_of(owner, status=ClaimStatus.APPROVED)
    stranger_claim = await claim_of(await f.customer(), status=ClaimStatus.PAID)
    theirs = await rig.text(owner.phone, f"理赔 {stranger_claim.number}")
    assert theirs == f"【安行保险】未找到您名下的理赔{stranger_claim.number}，请核对案件号。"
    assert "已赔付" not in theirs
    nonexistent = await rig.text(owner.phone, "理赔 RDAA3199999999")
    assert nonexistent == theirs.replace(stranger_claim.number, "RDAA3199999999")
    assert await rig.text(owner.phone, f"claim {mine.number.lower()}") == (
        f"【安行保险】理赔{mine.number}进度：已核赔。")


async def test_checkin_twice_in_a_day_awards_once(rig: SmsRig) -> None:
    owner = await f.customer()
    first = await rig.text(owner.phone, "签到")
    second = await rig.text(owner.phone, "签到")
    assert first == "【安行保险】签到成功，积分+5，已连续签到1天，余额5。"
    assert second == "【安行保险】今天已签到，已连续1天，余额5。明天再来！"
    assert await rig.text(owner.phone, "积分") == (
        "【安行保险】您的积分余额5，会员等级普卡。回复签到每日领积分。")


# -- consent -------------------------------------------------------------------------------


async def test_start_after_stop_opts_back_in_newest_wins(rig: SmsRig) -> None:
    owner = await f.customer()
    await rig.text(owner.phone, "退订")
    assert await sms_consents(owner.id) == dict.fromkeys(CATEGORIES, False)
    await rig.text(owner.phone, "订阅")  # same clock instant: the row id orders them
    assert await sms_consents(owner.id) == dict.fromkeys(CATEGORIES, True)


@pytest.mark.parametrize(("opt_out_type", "granted"), [("STOP", False), ("START", True)])
async def test_twilio_opt_out_type_is_honoured_and_twilio_does_the_answering(
    rig: SmsRig, opt_out_type: str, granted: bool,
) -> None:
    owner = await f.customer()
    reply = await rig.text(owner.phone, "ARRET", OptOutType=opt_out_type)
    assert reply == ""  # Twilio's Advanced Opt-Out has confirmed it already
    assert await sms_consents(owner.id) == dict.fromkeys(CATEGORIES, granted)
    rows = await Consent.filter(customer_id=owner.id).values_list("source", flat=True)
    assert {str(source) for source in rows} == {"sms:twilio-opt-out"}


async def test_opt_out_categories_come_from_settings(
    make_rig: Callable[..., Awaitable[SmsRig]],
) -> None:
    rig = await make_rig(sms={"opt_out_categories": ["marketing"]})
    owner = await f.customer()
    reply = await rig.text(owner.phone, "TD")
    assert reply == "【安行保险】已为您退订营销短信，理赔等服务通知不受影响。回复订阅可恢复。"
    assert await sms_consents(owner.id) == {"marketing": False}


async def test_stop_then_care_and_marketing_are_skipped_while_claim_updates_go_out(
    rig: SmsRig,
) -> None:
    """Through the app's own Dispatcher and TwilioSms against the fake Twilio."""
    mainland = await f.customer(name="王芳")
    abroad = await f.customer(name="Alice", phone="+442079460958", language="en")
    control = await f.customer(name="李雷")
    assert await rig.text(mainland.phone, "退订") == rig.replies.opted_out("zh-CN", CATEGORIES)
    assert await rig.text(abroad.phone, "stop") == rig.replies.to_number(abroad.phone).opted_out(
        "en", CATEGORIES)
    care = await f.queued(mainland)
    marketing = await f.queued(abroad, kind="campaign", category=Category.MARKETING,
                               template="campaign", params={"body": "Winter tyre check"})
    claims = [
        await f.queued(who, kind="claim_update", category=Category.SERVICE,
                       template="claim_update",
                       params={"claim": "RDAA1", "status": "已赔付", "note": ""})
        for who in (mainland, abroad)
    ]
    control_care = await f.queued(control)
    await rig.app[DISPATCHER].dispatch_once()
    for msg in (care, marketing, *claims, control_care):
        await msg.refresh_from_db()
    assert (care.status, care.skip_reason) == (MessageStatus.SKIPPED, "opted_out")
    assert (marketing.status, marketing.skip_reason) == (MessageStatus.SKIPPED, "opted_out")
    assert [m.status for m in claims] == [MessageStatus.SENT, MessageStatus.SENT]
    assert control_care.status == MessageStatus.SENT  # the skip is the STOP's doing
    sent_to = sorted(r.to or "" for r in rig.twilio.sent_messages())
    assert sent_to == sorted([mainland.phone, abroad.phone, control.phone])


async def test_sms_opt_out_is_the_same_consent_model_telegram_reads(rig: SmsRig) -> None:
    """One set of Consent rows: SMS is off for the STOP categories, Telegram untouched."""
    from bot.delivery.policy import allowed

    owner = await f.customer()
    await f.link_telegram(owner)
    await rig.text(owner.phone, "STOP")
    recipient = (await load_recipients([owner.id], now=f.NOON_SHANGHAI))[owner.id]
    for category in CATEGORIES:
        assert not allowed(recipient, Channel.SMS, category)
        assert allowed(recipient, Channel.TELEGRAM, category)
    assert allowed(recipient, Channel.SMS, "service")
    # ... and the customer's Telegram /settings reads the same rows.
    prefs = await consents.load_preferences(owner.id, owner.phone, marketing_consent_prefixes=())
    assert prefs.sms_opted_out == {Category(c) for c in CATEGORIES}
    assert all(prefs.is_on(Category(c)) for c in CATEGORIES)
    await rig.text(owner.phone, "START")
    prefs = await consents.load_preferences(owner.id, owner.phone, marketing_consent_prefixes=())
    assert prefs.sms_opted_out == frozenset()


# -- idempotency ---------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["STOP", "签到", "保单", "理赔", "HELP", "whatever"])
async def test_same_message_sid_twice_gets_the_same_answer_and_one_effect(
    rig: SmsRig, body: str,
) -> None:
    owner = await f.customer()
    await claim_of(owner)
    sid = new_sid()
    params = {"MessageSid": sid, "From": owner.phone, "To": TO_NUMBER, "Body": body}
    first = await rig.post(params)
    # Change what a second run would see: a new policy, the check-in already done.
    await f.policy(owner, plate="沪Z99999")
    second = await rig.post(params)
    assert first == second and first[0] == 200
    assert await InboundSms.filter(message_sid=sid).count() == 1
    stops = len(CATEGORIES) if body == "STOP" else 0
    assert await Consent.filter(customer_id=owner.id).count() == stops
    assert await LedgerEntry.all().count() == (1 if body == "签到" else 0)


@pytest.mark.parametrize("body", ["STOP", "CHECKIN", "POLICY"])
async def test_two_concurrent_deliveries_of_one_message_have_one_effect(
    rig: SmsRig, body: str,
) -> None:
    owner = await f.customer(language="en")
    await claim_of(owner)
    params = {"MessageSid": new_sid(), "From": owner.phone, "To": TO_NUMBER, "Body": body}
    a, b = await asyncio.gather(rig.post(params), rig.post(params))
    assert a == b and a[0] == 200 and message_of(a[2])
    assert await InboundSms.all().count() == 1
    assert await Consent.all().count() == (len(CATEGORIES) if body == "STOP" else 0)
    assert await LedgerEntry.all().count() == (1 if body == "CHECKIN" else 0)


async def _blocked_behind(is_postgres: bool) -> bool:
    """Whether a second request is now waiting for the first one's transaction."""
    conn = Tortoise.get_connection("default")
    if is_postgres:
        rows = await conn.execute_query_dict(
            "SELECT count(*) AS n FROM pg_locks WHERE NOT granted")
        return bool(rows[0]["n"])
    # SQLite: the second request queues on Tortoise's one-connection lock.
    waiters = getattr(getattr(conn, "_lock", None), "_waiters", None)
    return bool(waiters)


async def test_duplicate_waits_for_the_winner_and_returns_its_stored_reply(
    rig: SmsRig, is_postgres: bool, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The race the unique key alone would not settle: the duplicate arrives while the first
    delivery has inserted its row but not yet written its reply."""
    owner = await f.customer()
    inside, release = asyncio.Event(), asyncio.Event()
    calls: list[int] = []

    async def slow_check_in(customer_id: int, **kw: Any) -> Any:
        calls.append(customer_id)
        inside.set()
        await release.wait()
        return await check_in(customer_id, **kw)

    monkeypatch.setattr("bot.sms.conversations.check_in", slow_check_in)
    params = {"MessageSid": new_sid(), "From": owner.phone, "To": TO_NUMBER, "Body": "签到"}
    first = asyncio.create_task(rig.post(params))
    await inside.wait()  # the winner holds the row, uncommitted, without a reply
    second = asyncio.create_task(rig.post(params))
    for _ in range(10_000):
        if await _blocked_behind(is_postgres):
            break
        await asyncio.sleep(0)
    else:
        pytest.fail("the duplicate never waited for the first delivery")
    assert not second.done()
    release.set()
    a, b = await asyncio.gather(first, second)
    assert a == b and message_of(a[2]) == "【安行保险】签到成功，积分+5，已连续签到1天，余额5。"
    assert calls == [owner.id]
    assert await LedgerEntry.all().count() == 1


async def test_a_failed_first_delivery_leaves_no_row_so_the_retry_does_the_work(
    rig: SmsRig, monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner = await f.customer()
    async def broken(*args: Any, **kw: Any) -> None:
        raise ConnectionResetError("database went away")

    monkeypatch.setattr("bot.sms.conversations.record_sms_opt_out", broken)
    params = {"MessageSid": new_sid(), "From": owner.phone, "To": TO_NUMBER, "Body": "STOP"}
    status, _, _ = await rig.post(params)
    assert status == 500
    assert await InboundSms.all().count() == 0
    assert await PhoneSuppression.all().count() == 0  # the same transaction
    monkeypatch.setattr("bot.sms.conversations.record_sms_opt_out", record_sms_opt_out)
    status, _, twiml = await rig.post(params)
    assert status == 200 and message_of(twiml) == rig.replies.opted_out("zh-CN", CATEGORIES)
    assert await Consent.filter(customer_id=owner.id).count() == len(CATEGORIES)


# -- MMS -----------------------------------------------------------------------------------


async def test_mms_photo_is_stored_on_the_open_claim_and_deleted_from_twilio(
    rig: SmsRig,
) -> None:
    owner = await f.customer()
    await claim_of(owner, status=ClaimStatus.PAID, reported=f.NOON_SHANGHAI - timedelta(days=90))
    open_claim = await claim_of(owner, status=ClaimStatus.SURVEYED)
    photo = png()
    reply, [media_sid] = await rig.mms(owner.phone, [(photo, "image/png")])
    assert reply == f"【安行保险】已收到1份资料，已关联理赔{open_claim.number}。"
    [doc] = await Document.all()
    assert (doc.customer_id, doc.claim_id, doc.channel, doc.mime_type, doc.size) == (
        owner.id, open_claim.id, Channel.SMS, "image/png", len(photo))
    assert (rig.uploads / doc.storage_key).read_bytes() == photo
    await rig.drain()
    assert rig.twilio.media_downloads == [media_sid]
    assert rig.twilio.deleted_media == [media_sid]
    assert media_sid not in rig.twilio.media
    assert await SmsMediaPending.all().count() == 0  # done: nothing left for the sweep


async def test_mms_retry_after_the_media_is_gone_gets_the_same_reply(rig: SmsRig) -> None:
    owner = await f.customer(language="en")
    claim = await claim_of(owner)
    sid = new_sid("MM")
    reply, [media_sid] = await rig.mms(owner.phone, [(png(), "image/png")], sid=sid)
    await rig.drain()
    params = {"MessageSid": sid, "From": owner.phone, "To": TO_NUMBER, "Body": "",
              "NumMedia": "1", "MediaUrl0": "https://api.twilio.com/gone",
              "MediaContentType0": "image/png"}
    status, _, twiml = await rig.post(params)
    assert status == 200 and message_of(twiml) == reply
    assert reply == f"【安行保险】 Received 1 file for claim {claim.number}. Thank you."
    assert rig.twilio.media_downloads == [media_sid]
    assert await Document.all().count() == 1


async def test_concurrent_mms_deliveries_store_once_and_delete_once(rig: SmsRig) -> None:
    owner = await f.customer()
    await claim_of(owner)
    sid = new_sid("MM")
    media_sid, url = rig.twilio.add_media(sid, png(), "image/png")
    params = {"MessageSid": sid, "From": owner.phone, "To": TO_NUMBER, "Body": "",
              "NumMedia": "1", "MediaUrl0": url, "MediaContentType0": "image/png"}
    a, b = await asyncio.gather(rig.post(params), rig.post(params))
    await rig.drain()
    assert a == b and "已收到1份资料" in message_of(a[2])
    assert await Document.all().count() == 1
    assert rig.twilio.deleted_media == [media_sid]


async def test_mms_without_open_claim_is_kept_and_filed_when_the_number_comes(
    rig: SmsRig,
) -> None:
    owner = await f.customer()
    closed = await claim_of(owner, status=ClaimStatus.CLOSED)
    reply, _ = await rig.mms(owner.phone, [(png(), "image/png"), (png((20, 20)), "image/png")])
    assert reply == "【安行保险】已收到2份资料。请回复理赔+案件号，以便关联到您的案件。"
    assert await Document.filter(claim_id=None, customer_id=owner.id).count() == 2
    # A closed claim takes no documents (as in Telegram): status only, files stay waiting.
    assert await rig.text(owner.phone, f"理赔{closed.number}") == (
        f"【安行保险】理赔{closed.number}进度：已结案。")
    assert await Document.filter(claim_id=None).count() == 2
    # The claim the photos were for arrives from the core system; the customer names it.
    new = await claim_of(owner, status=ClaimStatus.REPORTED)
    reply = await rig.text(owner.phone, f"理赔{new.number}")
    assert reply == f"【安行保险】理赔{new.number}进度：已报案。已关联您发来的2份资料。"
    assert await Document.filter(claim_id=new.id).count() == 2
    # Asked again: nothing left to file, just the status.
    assert await rig.text(owner.phone, f"理赔{new.number}") == (
        f"【安行保险】理赔{new.number}进度：已报案。")


async def test_mms_naming_another_customers_claim_is_not_attached_to_it(rig: SmsRig) -> None:
    owner = await f.customer()
    await claim_of(owner)  # an open claim of their own, but they named another
    theirs = await claim_of(await f.customer())
    reply, _ = await rig.mms(owner.phone, [(png(), "image/png")], body=f"理赔 {theirs.number}")
    assert reply == "【安行保险】已收到1份资料。请回复理赔+案件号，以便关联到您的案件。"
    [doc] = await Document.all()
    assert (doc.customer_id, doc.claim_id) == (owner.id, None)
    # Nor does the owner's follow-up with that number move it there.
    assert "未找到" in await rig.text(owner.phone, f"理赔 {theirs.number}")
    assert (await Document.get()).claim_id is None


async def test_mms_naming_own_open_claim_goes_to_that_claim(rig: SmsRig) -> None:
    owner = await f.customer()
    older = await claim_of(owner, reported=f.NOON_SHANGHAI - timedelta(days=30))
    await claim_of(owner)  # newer open claim
    reply, _ = await rig.mms(owner.phone, [(png(), "image/png")], body=f"理赔{older.number}")
    assert reply == f"【安行保险】已收到1份资料，已关联理赔{older.number}。"
    assert (await Document.get()).claim_id == older.id


async def test_mms_naming_own_closed_claim_is_kept_unattached(rig: SmsRig) -> None:
    owner = await f.customer()
    closed = await claim_of(owner, status=ClaimStatus.PAID)
    reply, _ = await rig.mms(owner.phone, [(png(), "image/png")], body=f"理赔{closed.number}")
    assert reply == "【安行保险】已收到1份资料。请回复理赔+案件号，以便关联到您的案件。"
    assert (await Document.get()).claim_id is None


@pytest.mark.parametrize(
    ("content", "declared", "reply"),
    [
        (b"plain text, not a photo", "image/jpeg",
         "【安行保险】文件未保存：仅支持JPG、PNG、WEBP、HEIC图片或PDF。请处理后重新发送。"),
        (b"BEGIN:VCARD\nEND:VCARD\n", "text/vcard",
         "【安行保险】文件未保存：仅支持JPG、PNG、WEBP、HEIC图片或PDF。请处理后重新发送。"),
        (png()[:40], "image/png", "【安行保险】文件未保存：文件无法打开。请处理后重新发送。"),
        (b"", "image/png", "【安行保险】文件未保存：文件为空。请处理后重新发送。"),
    ],
    ids=["text_as_jpeg", "vcard", "truncated_png", "empty"],
)
async def test_rejected_file_gets_a_kind_reply_and_nothing_is_stored(
    rig: SmsRig, content: bytes, declared: str, reply: str,
) -> None:
    owner = await f.customer()
    await claim_of(owner)
    got, [media_sid] = await rig.mms(owner.phone, [(content, declared)])
    assert got == reply
    assert await Document.all().count() == 0
    assert not rig.uploads.exists() or not any(p.is_file() for p in rig.uploads.rglob("*"))
    await rig.drain()
    assert rig.twilio.deleted_media == [media_sid]


async def test_too_large_file_is_refused_while_downloading(
    make_rig: Callable[..., Awaitable[SmsRig]],
) -> None:
    rig = await make_rig(uploads={"max_bytes": 2048})
    owner = await f.customer(language="en")
    claim = await claim_of(owner)
    big = png((64, 64), noise=True)
    assert len(big) > 2048
    reply, _ = await rig.mms(owner.phone, [(big, "image/png"), (png(), "image/png")])
    assert reply == (f"【安行保险】 Received 1 file for claim {claim.number}; another was not "
                     "saved: it is larger than 2KB.")
    assert await Document.all().count() == 1


async def test_too_large_reply_names_the_limit_in_megabytes(
    make_rig: Callable[..., Awaitable[SmsRig]],
) -> None:
    rig = await make_rig(uploads={"max_bytes": 2 * 1024 * 1024})
    owner = await f.customer()
    await claim_of(owner)
    big = b"%PDF-1.4\n" + b"0" * (2 * 1024 * 1024)
    reply, _ = await rig.mms(owner.phone, [(big, "application/pdf")])
    assert reply == "【安行保险】文件未保存：超过2MB。请处理后重新发送。"
    assert await Document.all().count() == 0


async def test_media_outside_our_twilio_account_is_never_fetched_with_our_credentials(
    rig: SmsRig,
) -> None:
    owner = await f.customer()
    await claim_of(owner)
    sid = new_sid("MM")
    _, url = rig.twilio.add_media(sid, png(), "image/png")
    foreign = url.replace(ACCOUNT_SID, "AC" + "f" * 32)
    params = {"MessageSid": sid, "From": owner.phone, "To": TO_NUMBER, "Body": "",
              "NumMedia": "1", "MediaUrl0": foreign, "MediaContentType0": "image/png"}
    status, _, twiml = await rig.post(params)
    assert status == 200
    assert message_of(twiml) == "【安行保险】文件未保存：文件接收失败。请处理后重新发送。"
    await rig.drain()
    assert rig.twilio.media_downloads == [] and rig.twilio.deleted_media == []
    assert await Document.all().count() == 0
    assert await SmsMediaPending.all().count() == 0  # nor is it ever sent our credentials


async def test_slow_media_download_is_cut_off_and_the_answer_still_comes(
    make_rig: Callable[..., Awaitable[SmsRig]],
) -> None:
    rig = await make_rig(sms={"media_timeout_seconds": 0.2})
    owner = await f.customer()
    await claim_of(owner)
    rig.twilio.delay = 60.0  # Twilio hangs; the fake ends the wait when it shuts down
    reply, _ = await rig.mms(owner.phone, [(png(), "image/png")])
    assert reply == "【安行保险】文件未保存：文件接收失败。请处理后重新发送。"
    assert await Document.all().count() == 0
    assert (await InboundSms.get()).reply == reply
    await rig.drain()  # the DELETE is cut off the same way, and only logged


async def test_media_is_kept_at_twilio_when_delete_media_is_off(
    make_rig: Callable[..., Awaitable[SmsRig]],
) -> None:
    rig = await make_rig(delete_media=False)
    owner = await f.customer()
    await claim_of(owner)
    _, [media_sid] = await rig.mms(owner.phone, [(png(), "image/png")])
    await rig.drain()
    assert rig.twilio.deleted_media == [] and media_sid in rig.twilio.media
    assert rig.app[SMS_CONVERSATIONS].media_deletes is None
    assert await SmsMediaPending.all().count() == 0


# -- MMS media we do not keep: unknown senders, Twilio opt-outs ----------------------------


def unkept_mms(rig: SmsRig, sender: str, *, body: str = "", sid: str | None = None,
               foreign: bool = False, **extra: str) -> tuple[dict[str, str], str, str]:
    """Signed-webhook params of a one-photo MMS registered at the fake Twilio (plus, with
    ``foreign``, a second media URL of another Twilio account): params, media sid, our URL."""
    sid = sid or new_sid("MM")
    media_sid, url = rig.twilio.add_media(sid, png(), "image/png")
    params = {"MessageSid": sid, "AccountSid": ACCOUNT_SID, "From": sender, "To": TO_NUMBER,
              "Body": body, "NumMedia": "1", "MediaUrl0": url,
              "MediaContentType0": "image/png", **extra}
    if foreign:
        _, other = rig.twilio.add_media(sid, png(), "image/png")
        params.update(NumMedia="2", MediaUrl1=other.replace(ACCOUNT_SID, "AC" + "f" * 32),
                      MediaContentType1="image/png")
    return params, media_sid, url


UNKEPT = {  # MMS whose media we never download: extra webhook fields by case
    "unknown_number": {"body": "这是我的驾驶证"},
    "twilio_stop": {"body": "STOP", "OptOutType": "STOP"},
    "twilio_start": {"body": "START", "OptOutType": "START"},
    "twilio_help": {"body": "HELP", "OptOutType": "HELP"},
}


async def unkept_sender(kind: str) -> str:
    return STRANGER if kind == "unknown_number" else (await f.customer()).phone


async def test_mms_from_unknown_number_is_deleted_at_twilio_without_being_downloaded(
    rig: SmsRig,
) -> None:
    await f.customer()
    params, media_sid, _ = unkept_mms(rig, STRANGER, body="这是我的驾驶证")
    status, _, twiml = await rig.post(params)
    assert status == 200
    assert message_of(twiml) == "【安行保险】未查到您的客户信息，如需帮助请致电95500。"
    [row] = await InboundSms.all()
    assert (row.customer_id, row.keyword, row.num_media) == (None, "unknown", 1)
    await rig.drain()
    assert rig.twilio.media_downloads == []  # never read: we keep nothing of a stranger's
    assert rig.twilio.media_delete_requests == [media_sid]
    assert rig.twilio.deleted_media == [media_sid] and media_sid not in rig.twilio.media
    assert await Document.all().count() == 0
    assert not rig.uploads.exists() or not any(p.is_file() for p in rig.uploads.rglob("*"))
    assert await SmsMediaPending.all().count() == 0  # done: nothing left for the sweep
    assert rig.twilio.requests == []  # the one reply is the TwiML


async def test_twilio_opt_out_with_a_photo_records_the_opt_out_and_deletes_the_photo(
    rig: SmsRig,
) -> None:
    owner = await f.customer()
    await claim_of(owner)  # an open claim: still, an opt-out files nothing
    params, media_sid, _ = unkept_mms(rig, owner.phone, body="STOP", OptOutType="STOP")
    status, _, twiml = await rig.post(params)
    assert status == 200 and message_of(twiml) == ""  # Twilio has answered already
    assert await sms_consents(owner.id) == dict.fromkeys(CATEGORIES, False)
    rows = await Consent.filter(customer_id=owner.id).values_list("source", flat=True)
    assert {str(source) for source in rows} == {"sms:twilio-opt-out"}
    await rig.drain()
    assert rig.twilio.media_downloads == []
    assert rig.twilio.media_delete_requests == [media_sid]
    assert media_sid not in rig.twilio.media
    assert await Document.all().count() == 0
    assert await SmsMediaPending.all().count() == 0


@pytest.mark.parametrize("kind", list(UNKEPT))
async def test_unkept_mms_media_are_recorded_with_the_message_for_the_sweep(
    make_rig: Callable[..., Awaitable[SmsRig]], monkeypatch: pytest.MonkeyPatch, kind: str,
) -> None:
    """The duty to delete commits with the InboundSms row: a crash before the immediate
    delete leaves it to the sweep. A URL outside our account is neither recorded nor sent
    our credentials."""
    clock = Clock()
    rig = await make_rig(clock=clock)
    sender = await unkept_sender(kind)
    crash_before_background_deletes(monkeypatch)
    params, media_sid, url = unkept_mms(rig, sender, foreign=True, **UNKEPT[kind])
    status, _, _ = await rig.post(params)
    assert status == 200
    [pending] = await SmsMediaPending.all()
    assert (pending.message_sid, pending.media_url, pending.attempts) == (
        params["MessageSid"], url, 0)
    assert (await InboundSms.get()).message_sid == params["MessageSid"]
    assert rig.twilio.media_delete_requests == [] and rig.twilio.media_downloads == []
    clock.at(LEASE)
    assert await rig.deletes.sweep() == SweepResult(deleted=1)
    assert rig.twilio.deleted_media == [media_sid]
    assert await SmsMediaPending.all().count() == 0


@pytest.mark.parametrize("kind", ["unknown_number", "twilio_stop"])
async def test_unkept_mms_delivered_twice_is_recorded_and_deleted_once(
    rig: SmsRig, monkeypatch: pytest.MonkeyPatch, kind: str,
) -> None:
    sender = await unkept_sender(kind)
    # One after the other, the first delete never having run: one pending row.
    crash_before_background_deletes(monkeypatch)
    params, _, _ = unkept_mms(rig, sender, **UNKEPT[kind])
    first, second = await rig.post(params), await rig.post(params)
    assert first == second and first[0] == 200
    assert await InboundSms.all().count() == 1
    assert await SmsMediaPending.all().count() == 1
    monkeypatch.undo()
    # Concurrently, and once more after the first delete: one DELETE.
    params, media_sid, _ = unkept_mms(rig, sender, **UNKEPT[kind])
    a, b = await asyncio.gather(rig.post(params), rig.post(params))
    await rig.drain()
    assert a == b == first
    assert await rig.post(params) == first
    await rig.drain()
    assert rig.twilio.media_delete_requests == [media_sid]
    assert await SmsMediaPending.filter(message_sid=params["MessageSid"]).count() == 0
    assert await InboundSms.all().count() == 2
    if kind == "twilio_stop":
        owner = await Customer.get(phone=sender)
        assert await Consent.filter(customer_id=owner.id).count() == 2 * len(CATEGORIES)


@pytest.mark.parametrize("kind", ["unknown_number", "twilio_stop"])
async def test_unkept_mms_media_stay_at_twilio_when_delete_media_is_off(
    make_rig: Callable[..., Awaitable[SmsRig]], kind: str,
) -> None:
    rig = await make_rig(delete_media=False)
    sender = await unkept_sender(kind)
    params, media_sid, _ = unkept_mms(rig, sender, **UNKEPT[kind])
    status, _, _ = await rig.post(params)
    await rig.drain()
    assert status == 200 and await InboundSms.all().count() == 1
    assert await SmsMediaPending.all().count() == 0
    assert rig.twilio.media_delete_requests == [] and rig.twilio.media_downloads == []
    assert media_sid in rig.twilio.media


# -- MMS media deletes that failed or never ran ---------------------------------------------


@dataclass
class Clock:
    """The app's clock, moved by the test: backoff is checked without sleeping."""

    now: datetime = f.NOON_SHANGHAI

    def __call__(self) -> datetime:
        return self.now

    def at(self, delta: timedelta) -> None:
        self.now = f.NOON_SHANGHAI + delta


def crash_before_background_deletes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process stops after the answer, before the delete task ever runs."""
    monkeypatch.setattr(SmsConversations, "_spawn", lambda self, coro: coro.close())


async def test_failed_media_delete_is_retried_by_the_sweep_and_reaches_twilio(
    make_rig: Callable[..., Awaitable[SmsRig]],
) -> None:
    clock = Clock()
    rig = await make_rig(clock=clock)
    owner = await f.customer()
    await claim_of(owner)
    rig.twilio.fail_media_deletes(1)  # Twilio answers the immediate DELETE with a 503
    _, [media_sid] = await rig.mms(owner.phone, [(png(), "image/png")])
    await rig.drain()
    assert rig.twilio.media_delete_requests == [media_sid]
    assert rig.twilio.deleted_media == [] and media_sid in rig.twilio.media
    [pending] = await SmsMediaPending.all()
    assert (pending.attempts, pending.last_error, pending.gave_up_at) == (
        1, "media DELETE answered 503", None)
    assert pending.next_attempt_at == f.NOON_SHANGHAI + timedelta(seconds=60)

    clock.at(timedelta(seconds=60))
    assert await rig.deletes.sweep() == SweepResult(deleted=1)
    assert rig.twilio.deleted_media == [media_sid] and media_sid not in rig.twilio.media
    assert await SmsMediaPending.all().count() == 0
    assert await rig.deletes.sweep() == SweepResult()  # nothing left
    assert rig.twilio.media_delete_requests == [media_sid, media_sid]


async def test_media_already_gone_at_twilio_counts_as_deleted(
    make_rig: Callable[..., Awaitable[SmsRig]], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    rig = await make_rig(clock=clock)
    owner = await f.customer()
    await claim_of(owner)
    crash_before_background_deletes(monkeypatch)
    _, [media_sid] = await rig.mms(owner.phone, [(png(), "image/png")])
    del rig.twilio.media[media_sid]  # someone (another process) deleted it meanwhile
    clock.at(LEASE)
    assert await rig.deletes.sweep() == SweepResult(deleted=1)
    assert rig.twilio.media_delete_requests == [media_sid]  # answered 404
    assert await SmsMediaPending.all().count() == 0
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]


async def test_media_left_by_a_crash_before_the_delete_is_swept_at_the_next_start(
    make_rig: Callable[..., Awaitable[SmsRig]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    rig = await make_rig()
    owner = await f.customer()
    await claim_of(owner)
    crash_before_background_deletes(monkeypatch)
    _, [media_sid] = await rig.mms(owner.phone, [(png(), "image/png")])
    await rig.drain()
    assert rig.twilio.media_delete_requests == [] and media_sid in rig.twilio.media
    [pending] = await SmsMediaPending.all()
    assert (pending.message_sid, pending.attempts) == (
        (await InboundSms.get()).message_sid, 0)
    await rig.client.close()

    # The next process, started two minutes later, sweeps at start-up.
    monkeypatch.undo()
    restarted = await make_rig(clock=lambda: f.NOON_SHANGHAI + timedelta(minutes=2),
                               sweep_media=True)
    await restarted.drain()  # the start-up pass
    assert restarted.twilio.deleted_media == [media_sid]
    assert await SmsMediaPending.all().count() == 0


async def test_sweep_leaves_a_fresh_record_to_the_immediate_delete(
    make_rig: Callable[..., Awaitable[SmsRig]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    rig = await make_rig(clock=clock)
    owner = await f.customer()
    await claim_of(owner)
    crash_before_background_deletes(monkeypatch)
    await rig.mms(owner.phone, [(png(), "image/png")])
    clock.at(LEASE - timedelta(seconds=1))
    assert await rig.deletes.sweep() == SweepResult()
    assert rig.twilio.media_delete_requests == []
    clock.at(LEASE)
    assert await rig.deletes.sweep() == SweepResult(deleted=1)


async def test_sweep_backs_off_exponentially_on_the_injected_clock(
    make_rig: Callable[..., Awaitable[SmsRig]],
) -> None:
    clock = Clock()
    rig = await make_rig(clock=clock, sms={"media_delete_retry_seconds": 60})
    owner = await f.customer()
    await claim_of(owner)
    rig.twilio.fail_media_deletes(4)
    _, [media_sid] = await rig.mms(owner.phone, [(png(), "image/png")])
    await rig.drain()  # attempt 1 fails: retry after 60 s, then 120 s, then 240 s, 480 s
    requests = rig.twilio.media_delete_requests
    for due, result in [(60, SweepResult(failed=1)), (60 + 120, SweepResult(failed=1)),
                        (180 + 240, SweepResult(failed=1)), (420 + 480, SweepResult(deleted=1))]:
        before = len(requests)
        clock.at(timedelta(seconds=due - 1))
        assert await rig.deletes.sweep() == SweepResult(), f"not before {due} s"
        assert len(requests) == before
        clock.at(timedelta(seconds=due))
        assert await rig.deletes.sweep() == result, f"at {due} s"
        assert len(requests) == before + 1
    assert rig.twilio.deleted_media == [media_sid]
    assert await SmsMediaPending.all().count() == 0


async def test_giving_up_after_the_attempt_limit_logs_once_and_stops_retrying(
    make_rig: Callable[..., Awaitable[SmsRig]], caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    rig = await make_rig(clock=clock, sms={"media_delete_max_attempts": 2})
    owner = await f.customer()
    await claim_of(owner)
    rig.twilio.fail_media_deletes(10)
    _, [media_sid] = await rig.mms(owner.phone, [(png(), "image/png")])
    await rig.drain()
    clock.at(timedelta(minutes=1))
    assert await rig.deletes.sweep() == SweepResult(abandoned=1)
    clock.at(timedelta(days=3))
    assert await rig.deletes.sweep() == SweepResult()
    assert rig.twilio.media_delete_requests == [media_sid, media_sid]
    assert media_sid in rig.twilio.media
    [pending] = await SmsMediaPending.all()
    assert pending.attempts == 2 and pending.gave_up_at == f.NOON_SHANGHAI + timedelta(minutes=1)

    [error] = [r for r in caplog.records if r.levelname == "ERROR"]
    text = error.getMessage()
    sid = pending.message_sid
    assert mask_sid(sid) in text and f"id {pending.id}" in text and "2 attempts" in text
    for secret in (sid, media_sid, owner.phone, owner.phone[-8:], ACCOUNT_SID, AUTH_TOKEN,
                   "http"):
        assert secret not in text
    metrics = await (await rig.client.get("/metrics")).text()
    assert 'engage_sms_media_pending_deletes{state="abandoned"} 1.0' in metrics
    assert 'engage_sms_media_pending_deletes{state="pending"} 0.0' in metrics
    assert 'engage_sms_media_deletes_total{outcome="failed"} 2.0' in metrics


async def test_a_delete_failing_past_the_age_limit_is_given_up(
    make_rig: Callable[..., Awaitable[SmsRig]], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    rig = await make_rig(clock=clock, sms={"media_delete_max_age_hours": 1})
    owner = await f.customer()
    await claim_of(owner)
    crash_before_background_deletes(monkeypatch)
    await rig.mms(owner.phone, [(png(), "image/png")])
    rig.twilio.fail_media_deletes(1)
    clock.at(timedelta(hours=2))  # e.g. the service was down that long
    assert await rig.deletes.sweep() == SweepResult(abandoned=1)  # tried once more first
    assert len([r for r in caplog.records if r.levelname == "ERROR"]) == 1


async def test_a_stored_mms_that_rolls_back_records_nothing_and_keeps_the_media(
    rig: SmsRig, monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner = await f.customer()
    await claim_of(owner)

    async def broken(**kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("bot.sms.conversations.store_document", broken)
    sid = new_sid("MM")
    media_sid, url = rig.twilio.add_media(sid, png(), "image/png")
    params = {"MessageSid": sid, "From": owner.phone, "To": TO_NUMBER, "Body": "",
              "NumMedia": "1", "MediaUrl0": url, "MediaContentType0": "image/png"}
    status, _, _ = await rig.post(params)
    await rig.drain()
    assert status == 500
    assert await InboundSms.all().count() == 0 and await SmsMediaPending.all().count() == 0
    assert media_sid in rig.twilio.media  # Twilio's retry must still find it
    assert rig.twilio.media_delete_requests == []


class UnusedMedia:
    async def fetch(self, url: str, *, max_bytes: int) -> bytes:
        raise AssertionError("not called")

    async def delete(self, url: str) -> None:
        raise AssertionError("not called")

    def owns(self, url: str) -> bool:
        raise AssertionError("not called")


async def test_two_sweepers_claim_disjoint_rows(rig: SmsRig) -> None:
    now = f.NOON_SHANGHAI
    await SmsMediaPending.bulk_create([
        SmsMediaPending(message_sid=f"MM{i}", media_url=f"https://x/{i}", created_at=now,
                        next_attempt_at=now)
        for i in range(7)
    ])
    settings = rig.app[SETTINGS]
    # Another process's sweeper (claiming only: its media client is never called).
    other = MediaDeletes(UnusedMedia(), settings.sms, clock=lambda: now,
                         skip_locked=settings.database.is_postgres)
    a, b = await asyncio.gather(rig.deletes.claim(now), other.claim(now))
    ids_a, ids_b = {r.id for r in a}, {r.id for r in b}
    assert not ids_a & ids_b and len(ids_a | ids_b) == 7
    assert all(r.attempts == 1 for r in [*a, *b])
    assert await rig.deletes.claim(now) == []  # all leased


async def test_engage_run_sweeps_again_every_interval(
    make_rig: Callable[..., Awaitable[SmsRig]],
) -> None:
    clock = Clock()
    rig = await make_rig(clock=clock, sweep_media=True,
                         sms={"media_sweep_interval_seconds": 0.05})
    owner = await f.customer()
    await claim_of(owner)
    rig.twilio.fail_media_deletes(1)
    _, [media_sid] = await rig.mms(owner.phone, [(png(), "image/png")])
    await rig.drain()
    assert rig.twilio.deleted_media == []
    clock.at(timedelta(minutes=1))
    for _ in range(200):  # the loop's own (tiny) interval, not the backoff, is waited for
        if rig.twilio.deleted_media:
            break
        await asyncio.sleep(0.025)
    assert rig.twilio.deleted_media == [media_sid]


# -- a number several customers share -----------------------------------------------------------

SHARED = "+8613800138008"


async def test_a_family_number_answers_for_both_and_stop_reaches_both(rig: SmsRig) -> None:
    """Two customers on one number: POLICY lists both cars, CLAIM finds either's, STOP turns
    SMS off for both; points and check-in are personal and point to Telegram."""
    husband = await f.customer(name="张伟", phone=SHARED)
    wife = await f.customer(name="李娜", phone=SHARED)
    await f.policy(husband, plate="沪A11111", end=date(2026, 12, 31))
    car = await f.policy(wife, plate="沪B22222", end=date(2027, 3, 31))
    hers = await Claim.create(number="RDAA3100009999", policy=car, customer=wife,
                              status=ClaimStatus.SURVEYED, reported_at=f.NOON_SHANGHAI)
    replies = rig.replies
    assert await rig.text(SHARED, "保单") == replies.policies(
        "zh-CN", [("沪A11111", date(2026, 12, 31)), ("沪B22222", date(2027, 3, 31))])
    assert await rig.text(SHARED, "理赔") == replies.claim("zh-CN", hers.number, "surveyed")
    assert await rig.text(SHARED, f"理赔 {hers.number}") == replies.claim(
        "zh-CN", hers.number, "surveyed")
    for keyword in ("积分", "签到"):
        assert await rig.text(SHARED, keyword) == replies.shared_personal("zh-CN")
    assert await CheckIn.all().count() == 0
    await rig.text(SHARED, "退订")
    for person in (husband, wife):
        assert await sms_consents(person.id) == dict.fromkeys(CATEGORIES, False)


async def test_mms_from_a_family_number_goes_to_the_claim_of_whichever_customer(
        rig: SmsRig) -> None:
    husband = await f.customer(name="张伟", phone=SHARED)
    wife = await f.customer(name="李娜", phone=SHARED)
    hers = await claim_of(wife)
    reply, _ = await rig.mms(SHARED, [(png(), "image/png")])
    await rig.drain()
    assert reply == rig.replies.documents("zh-CN", stored=1, claim=hers.number,
                                          rejected_reason=None)
    [doc] = await Document.all()
    assert (doc.customer_id, doc.claim_id) == (wife.id, hers.id)
    # with no open claim, kept under the first customer until the claim is named
    await Claim.filter(id=hers.id).update(status=ClaimStatus.CLOSED)
    later = await claim_of(wife)
    await Claim.filter(id=later.id).update(status=ClaimStatus.CLOSED)
    await rig.mms(SHARED, [(png(noise=True), "image/png")])
    await rig.drain()
    kept = await Document.get(claim_id=None)
    assert kept.customer_id == husband.id
    await Claim.filter(id=later.id).update(status=ClaimStatus.REGISTERED)
    await rig.text(SHARED, f"理赔 {later.number}")
    await kept.refresh_from_db()
    assert (kept.customer_id, kept.claim_id) == (wife.id, later.id)


async def test_a_held_number_answers_help_and_stop_but_shows_nobodys_data(
        rig: SmsRig) -> None:
    people = [await f.customer(name=name, phone=SHARED) for name in ("张伟", "李娜", "王强")]
    await f.policy(people[0], plate="沪A11111")
    await claim_of(people[1])
    await recount([SHARED], f.NOON_SHANGHAI)
    held = rig.replies.shared_held("zh-CN")
    for body in ("保单", "理赔", "积分", "签到", "随便说点什么"):
        assert await rig.text(SHARED, body) == held
    reply, _ = await rig.mms(SHARED, [(png(), "image/png")])
    await rig.drain()
    assert reply == held and await Document.all().count() == 0
    assert not await SmsMediaPending.exists()  # deleted at Twilio all the same
    assert await rig.text(SHARED, "帮助") == rig.replies.help("zh-CN")
    await rig.text(SHARED, "退订")
    for person in people:
        assert await sms_consents(person.id) == dict.fromkeys(CATEGORIES, False)
    # released by an operator: answered like a family's number
    [flag] = await SharedPhone.all()
    await release(flag.id, "王经理", f.NOON_SHANGHAI)
    assert "沪A11111" in await rig.text(SHARED, "保单")



@given(st.text(max_size=200))
def test_twiml_answer_is_exactly_what_twilio_writes(reply: str) -> None:
    expected = MessagingResponse()
    if reply:
        expected.message(reply)
    assert twiml_text(reply) == str(expected)


def test_twiml_answer_escapes_markup_in_the_reply() -> None:
    reply = '<b>R&D</b> "1 > 0" ]]> 中文'
    assert message_of(twiml_text(reply)) == reply
    assert message_of(twiml_text("")) == ""
