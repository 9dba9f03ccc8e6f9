"""The console speaks one language at a time: every code the system stores has its word in
both languages, and a walk over every console page of a database holding every kind of row —
in zh-CN and in en, through the real app — finds no raw code, no untranslated key, no
template object and no English error on a Chinese page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.delivery import policy
from bot.desk import surveys
from bot.desk.complaints import CATEGORIES
from bot.desk.threads import Desk, Sender
from bot.texts import LANGUAGES, Texts
from bot.web.app import Overrides, build_app
from bot.web.operators import campaigns, complaints, inbox
from bot.web.operators.access import create_operator
from bot.web.operators.console import Strings
from bot.web.operators.errors import Refusal
from loyalty import notifications
from loyalty.config import REWARD_KINDS
from loyalty.errors import LoyaltyError
from scheduler import birthday, festival, lapse, points_expiry, recheck, renewal, weather
from storage import choices, shared_phones
from storage.desk_models import (
    Author,
    ComplaintStatus,
    ConversationStatus,
    HandoffReason,
    SurveyCase,
)
from storage.loyalty_models import EntryKind
from storage.models import (
    Category,
    Channel,
    Claim,
    ClaimEvent,
    ClaimStatus,
    Consent,
    Customer,
    Document,
    DocumentStatus,
    Language,
    MessageStatus,
    PolicyStatus,
    Product,
    SharedPhone,
    Task,
    TaskStatus,
)
from storage.operator_models import Campaign, CampaignStatus, Role
from tests import factories as f
from tests.test_operators_api import Clock, console_login

Client = TestClient[web.Request, web.Application]

MESSAGE_KINDS = {birthday.KIND, festival.KIND, weather.KIND, renewal.KIND, renewal.HOLIDAY_KIND,
                 lapse.KIND, points_expiry.KIND, notifications.VOUCHER_ISSUED,
                 notifications.VOUCHER_USED, notifications.TIER_UPGRADE,
                 notifications.POINTS_SUMMARY, notifications.POINTS_EXPIRING,
                 campaigns.CAMPAIGN_KIND, campaigns.TEST_KIND, "claim_update",
                 "document_rejected", "link_code", inbox.REPLY_KIND,
                 complaints.RECEIVED_KIND, complaints.DECISION_KIND, surveys.SURVEY_KIND}
REASONS = {policy.NO_CHANNEL, policy.OPTED_OUT, policy.CAPPED, policy.STALE,
           policy.INVALID_PHONE, policy.SHARED_PHONE, policy.NO_CONSENT, policy.CONTENT,
           "no_customer", "attempts_exhausted", "rejected", "error", campaigns.CANCELLED,
           recheck.RENEWED, recheck.CANCELLED}
REFUSED = {"marketing_sms_cn", "url_in_sms_cn", "telegram_empty", "telegram_too_long"}
DOCUMENT_KINDS = {"driving_licence", "vehicle_licence", "accident_report", "repair_invoice",
                  "photos", "other"}


def _codes(base: type[Exception]) -> set[str]:
    found = {str(getattr(base, "code", ""))}
    for sub in base.__subclasses__():
        found |= _codes(sub)
    return found - {""}


GROUPS: dict[str, set[str]] = {
    "msg": {s.value for s in MessageStatus},
    "campaign": {s.value for s in CampaignStatus},
    "claim_status": {s.value for s in ClaimStatus},
    "policy_status": {s.value for s in PolicyStatus},
    "product": {p.value for p in Product},
    "category": {c.value for c in Category},
    "channel": {c.value for c in Channel} | {"*"},
    "task": {s.value for s in TaskStatus},
    "task_kind": {"renewal_callback", complaints.REMINDER_TASK, complaints.OVERDUE_TASK,
                  surveys.LOW_TASK},
    "survey_case": {c.value for c in SurveyCase},
    "document": {s.value for s in DocumentStatus},
    "tg_doc": DOCUMENT_KINDS,
    "tg_entry": {k.value for k in EntryKind},
    "kind": MESSAGE_KINDS,
    "reason": REASONS,
    "refused": REFUSED,
    "error": _codes(Refusal) | _codes(LoyaltyError)
    | {"unauthorized", "csrf", "forbidden", "invalid_review", "invalid_adjustment",
       "invalid_reward", "no_file"},
    "language": {lang.value for lang in Language},
    "role": {r.value for r in Role},
    "reward_kind": set(REWARD_KINDS),
    "set_by": {choices.IMPORT, choices.TELEGRAM, choices.SMS},
    "inbox_status": {s.value for s in ConversationStatus},
    "inbox_author": {a.value for a in Author},
    "complaint_category": set(CATEGORIES),
    "complaint_status": {s.value for s in ComplaintStatus},
    "inbox_kind": {"text", "sticker", "voice", "audio", "video", "video_note", "animation",
                   "photo", "document", "location", "venue", "contact"},
}
# every stored code a page may show; a Chinese page showing one of these as text shows a code
RAW = set().union(*GROUPS.values()) - {"*"}


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_stored_code_has_its_word_in_each_language(language: str) -> None:
    strings = Strings(Texts.load(), language)
    missing = [f"{group}_{code}" for group, codes in GROUPS.items() for code in sorted(codes)
               if strings.label(group, code) == strings("other_value", code=code)]
    assert missing == []


class _Text(HTMLParser):
    """The text a reader sees, without user content (``class="text"``), code (``<code>``),
    scripts and form values."""

    SKIP = {"code", "script", "style", "textarea", "title"}

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skipping: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if self._skipping or tag in self.SKIP or "text" in classes:
            if tag not in {"br", "img", "input", "meta", "link"}:
                self._skipping.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._skipping and self._skipping[-1] == tag:
            self._skipping.pop()

    def handle_data(self, data: str) -> None:
        if not self._skipping and data.strip():
            self.parts.append(data.strip())


def visible_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return "\n".join(parser.parts)


def raw_codes(text: str, *, language: str) -> set[str]:
    """Codes shown as words: on a Chinese page any code; on an English one those no English
    sentence has (``points_summary``, ``other:photo``)."""
    tokens = set(re.findall(r"(?<![\w/])[a-z][a-z0-9_:\-]*[a-z0-9](?![\w/])", text))
    if language == "zh-CN":
        return {t for t in tokens if t in RAW or t.split(":")[0] in RAW}
    return {t for t in tokens if ("_" in t or ":" in t) and (t in RAW or t.split(":")[0] in RAW)}


@dataclass
class Rig:
    client: Client
    clock: Clock
    campaigns: dict[str, int]
    claims: list[str]
    customer: int
    conversations: list[int] = field(default_factory=list)
    complaints: list[int] = field(default_factory=list)


@pytest.fixture
async def rig(db: str, tmp_path: Any) -> AsyncIterator[Rig]:
    settings = f.settings_for(db_url=db, twilio_base="http://127.0.0.1:9",
                              uploads={"directory": str(tmp_path / "uploads")})
    clock = Clock()
    app = build_app(settings, Overrides(run_dispatcher=False, run_scheduler=False,
                                        run_campaigns=False, manage_database=False, clock=clock))
    _, token = await create_operator("管理员", Role.ADMIN, contact_phone="13900000000")
    async with TestClient(TestServer(app)) as client:
        await console_login(client, token)
        headers = {"Authorization": f"Bearer {token}"}
        rig = Rig(client, clock, {}, [], 0)
        await _fill(rig, headers)
        yield rig


async def _fill(rig: Rig, headers: dict[str, str]) -> None:
    """A customer with every kind of row around them, and campaigns in every state."""
    now = rig.clock.now
    who = await f.customer(name="李雷", phone="+8613812340000", customer_no="C0001")
    await f.customer(name="Lucy", language="en", phone="+14155550123")
    rig.customer = who.id
    # the language, time zone and region each set by someone else; the phone shared by three
    # (held), another number released
    for source, value in zip(sorted(GROUPS["set_by"]), ({"language": "en"},
                             {"timezone": "Asia/Shanghai"}, {"region_id": None}), strict=True):
        await choices.record_choice(who.id, source=source, now=now, **value)
    for name in ("韩梅梅", "林涛"):
        await f.customer(name=name, phone=who.phone)
    for name in ("张一", "张二", "张三"):
        await f.customer(name=name, phone="+8613812349999")
    await shared_phones.recount([who.phone, "+8613812349999"], now)
    released = await SharedPhone.get(phone="+8613812349999")
    await shared_phones.release(released.id, "王经理", now)
    for n, status in enumerate(PolicyStatus):
        await f.policy(who, number=f"PL{n}", status=status, product=list(Product)[n % 2],
                       end=date(2026, 12, 1) + timedelta(days=n))
    policy_row = await f.policy(who, number="PCLAIM")
    for n, status in enumerate(ClaimStatus):
        claim = await Claim.create(number=f"CL{n}", policy=policy_row, customer=who,
                                   status=status, reported_at=now - timedelta(days=n))
        await ClaimEvent.create(claim=claim, status=status, occurred_at=claim.reported_at,
                                note="核损中")
        rig.claims.append(claim.number)
    first = await Claim.get(number="CL0")
    for n, (name, status) in enumerate((("other:photo", DocumentStatus.RECEIVED),
                                        ("photos:IMG_0001.jpg", DocumentStatus.REJECTED),
                                        ("driving_licence:驾驶证.pdf", DocumentStatus.ACCEPTED))):
        await Document.create(claim=first, customer=who, channel=Channel.TELEGRAM,
                              mime_type="image/jpeg", size=1000, sha256=f"{n:064d}",
                              storage_key=f"x/{n}", original_name=name, status=status,
                              reason="照片模糊" if status == DocumentStatus.REJECTED else "")
    for channel, category in (("*", Category.CARE), ("sms", Category.MARKETING),
                              ("telegram", Category.SERVICE), ("sms", Category.REMINDER)):
        await Consent.create(customer=who, channel=channel, category=category, granted=False,
                             source="sms:STOP", created_at=now)
    for n, kind in enumerate(sorted(MESSAGE_KINDS)):
        status = list(MessageStatus)[n % len(MessageStatus)]
        await f.queued(who, kind=kind, status=status, not_before=now,
                       channel=list(Channel)[n % len(Channel)] if n % 3 else None,
                       skip_reason=sorted(REASONS)[n % len(REASONS)]
                       if status == MessageStatus.SKIPPED else "",
                       last_error="Twilio 21211: invalid 'To' number"
                       if status == MessageStatus.FAILED else "")
    for status in TaskStatus:
        await Task.create(kind="renewal_callback", customer=who, source="sms", status=status,
                          assignee="小王" if status != TaskStatus.OPEN else "")
    await rig.client.post(f"/api/v1/customers/{who.id}/points", headers=headers,
                          json={"points": 100, "reason": "补偿", "request_key": "k"})
    await rig.client.post("/api/v1/rewards", headers=headers, json={
        "code": "car_wash", "kind": "car_wash", "name_zh": "精致洗车", "name_en": "Car wash",
        "points_cost": 300})
    await _campaigns(rig, headers)
    await _conversations(rig, who, headers)


async def _conversations(rig: Rig, who: Customer, headers: dict[str, str]) -> None:
    """A thread waiting, one held with an operator's reply, one with an unknown number."""
    desk = Desk(f.settings_for())
    now = rig.clock.now
    held = await desk.inbound(Sender.of_customer(who.id), Channel.TELEGRAM, "人工", now=now,
                              handoff=HandoffReason.KEYWORD)
    await desk.inbound(Sender.of_customer(who.id), Channel.TELEGRAM, "", kind="sticker",
                       now=now)
    await rig.client.post(f"/api/v1/conversations/{held.conversation_id}/messages",
                          headers=headers, json={"text": "您好"})
    waiting = await desk.inbound(Sender.of_customer((await f.customer()).id), Channel.SMS,
                                 "在吗", now=now, handoff=HandoffReason.KEYWORD)
    unknown = await desk.inbound(Sender.of_phone("+8613912340000"), Channel.SMS, "你好", now=now)
    rig.conversations = [held.conversation_id, waiting.conversation_id,
                         unknown.conversation_id]
    made = await rig.client.post(
        f"/api/v1/conversations/{held.conversation_id}/complaint", headers=headers,
        json={"category": "sales_conduct", "description": "乱收费", "staff_complained": "钱七"})
    first = int((await made.json())["id"])
    for reason in ("复杂", "更复杂"):
        await rig.client.post(f"/api/v1/complaints/{first}/extend", headers=headers,
                              json={"reason": reason})
    made = await rig.client.post(
        f"/api/v1/conversations/{waiting.conversation_id}/complaint", headers=headers,
        json={"category": "privacy", "description": "泄露信息"})
    second = int((await made.json())["id"])
    await rig.client.post(f"/api/v1/complaints/{second}/close", headers=headers,
                          json={"outcome": "已核实并整改"})
    rig.complaints = [first, second]


async def _campaigns(rig: Rig, headers: dict[str, str]) -> None:
    body = {"name": "冬季关怀", "category": "care", "audience": {},
            "templates": {"zh-CN": "{name}，冬季行车注意安全。",
                          "en": "{name}, drive safely this winter."}}
    for n, state in enumerate(CampaignStatus):
        created = await rig.client.post("/api/v1/campaigns", headers=headers,
                                        json={**body, "name": f"活动{n}"})
        campaign_id = int((await created.json())["id"])
        rig.campaigns[state.value] = campaign_id
        if state != CampaignStatus.DRAFT:
            await rig.client.post(f"/api/v1/campaigns/{campaign_id}/start", headers=headers)
        action = {CampaignStatus.PAUSED: "pause", CampaignStatus.CANCELLED: "cancel"}.get(state)
        if action:
            await rig.client.post(f"/api/v1/campaigns/{campaign_id}/{action}", headers=headers)
        if state in (CampaignStatus.DONE, CampaignStatus.FAILED, CampaignStatus.SCHEDULED):
            await Campaign.filter(id=campaign_id).update(
                status=state, failure="OperationalError: no such table: loyalty_account"
                if state == CampaignStatus.FAILED else "")
    done = rig.campaigns["done"]
    for n, reason in enumerate(sorted(REASONS)):
        await f.queued(await f.customer(), kind="campaign", campaign_id=done,
                       status=MessageStatus.SKIPPED, skip_reason=reason, key=f"c:{done}:{n}")


def pages(rig: Rig) -> list[str]:
    return ["/console/", "/console/campaigns", "/console/campaigns/new",
            *(f"/console/campaigns/{cid}" for cid in rig.campaigns.values()),
            "/console/claims", "/console/claims?q=138****0000",
            *(f"/console/claims/{number}" for number in rig.claims),
            "/console/customers?q=0000", f"/console/customers/{rig.customer}",
            "/console/rewards", "/console/tasks", "/console/imports",
            "/console/shared-phones", "/console/shared-phones?state=held",
            "/console/shared-phones?state=released",
            "/console/campaigns/999999", f"/console/customers/{rig.customer}?err=csrf",
            f"/console/customers/{rig.customer}?err=invalid_adjustment&field=points",
            "/console/inbox", "/console/inbox?view=mine", "/console/inbox?view=all",
            *(f"/console/inbox/{cid}" for cid in rig.conversations),
            "/console/complaints", "/console/complaints?state=all", "/console/satisfaction",
            "/console/complaints?state=closed", "/console/tasks",
            *(f"/console/complaints/{cid}" for cid in rig.complaints)]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_every_console_page_speaks_one_language(rig: Rig, language: str) -> None:
    other = "其他（" if language == "zh-CN" else "other ("
    for url in pages(rig):
        sep = "&" if "?" in url else "?"
        resp = await rig.client.get(f"{url}{sep}lang={language}")
        html = await resp.text()
        assert resp.status in (200, 404), (url, resp.status)
        assert f'<html lang="{language}">' in html, url
        assert "<Macro" not in html and "Undefined" not in html, url
        text = visible_text(html)
        assert other not in text, (url, [line for line in text.splitlines() if other in line])
        assert raw_codes(text, language=language) == set(), url
        assert not re.search(r"\b1 segments\b", text), url


async def test_form_errors_are_in_the_pages_language(rig: Rig) -> None:
    page = await (await rig.client.get("/console/campaigns/new?lang=zh-CN")).text()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf is not None and 'id="form-errors"' not in page and "flash err" not in page
    form = {"csrf_token": csrf.group(1), "name": "", "category": "care",
            "template_zh": "{客户}您好", "template_en": "Hi {name", "expiring_from": "2026-12-31",
            "expiring_to": "2026-12-01", "send_at": "not a time"}
    resp = await rig.client.post("/console/campaigns/new", data=form)
    html = await resp.text()
    assert resp.status == 422
    errors = dict(re.findall(r'data-path="([^"]+)">([^<]+)<', html))
    assert errors == {
        "name": "不能为空",
        "templates.zh-CN": "不认识的占位符 {客户}：只能用 {name}、{company} 或 {hotline}；"
                           "要显示花括号请写成 {{ 或 }}",
        "templates.en": "花括号不成对：要显示花括号请写成 {{ 或 }}",
        "audience": "开始日期不能晚于结束日期",
        "send_at": "请输入有效的日期和时间",
    }
    assert not re.search(r"[A-Za-z]{4,}", " ".join(errors.values()).replace("hotline", "")
                         .replace("name", "").replace("company", ""))
    resp = await rig.client.post("/console/campaigns/new?lang=en", data=form)
    errors = dict(re.findall(r'data-path="([^"]+)">([^<]+)<', await resp.text()))
    assert errors["templates.zh-CN"].startswith("unknown placeholder {客户}: use {name}")


async def test_a_started_campaign_shows_the_preview_it_started_with(rig: Rig) -> None:
    sending = rig.campaigns["sending"]
    before = (await Campaign.get(id=sending)).preview
    assert before is not None and before["audience"] >= 2
    for n in range(3):
        await f.customer(name=f"后来的{n}")
    page = await (await rig.client.get(f"/console/campaigns/{sending}?lang=zh-CN")).text()
    shown = re.search(r'id="preview-audience">(\d+)<', page)
    assert shown is not None and int(shown.group(1)) == before["audience"]
    assert 'id="preview-as-of"' in page
    draft = await (await rig.client.get(
        f"/console/campaigns/{rig.campaigns['draft']}?lang=zh-CN")).text()
    live = re.search(r'id="preview-audience">(\d+)<', draft)
    everyone = await Customer.all().count() - 1  # all but the operator's own contact
    assert live is not None and int(live.group(1)) == everyone > before["audience"]
    done = await (await rig.client.get(
        f"/console/campaigns/{rig.campaigns['done']}?lang=zh-CN")).text()
    assert 'id="invalid-phone-note"' in done and "号码无效" in done
