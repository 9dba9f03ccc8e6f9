"""Complaints on the regulator's clock: references and due dates in calendar days, extensions
with a reason and an admin's approval, recusal refused, reminders and overdue escalation on
given dates, the decision with the redress channels reaching the customer through the outbox,
the register; and filing from Telegram (three steps, own policies and claims only), SMS and
a conversation."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.desk.complaints import Filing, file_complaint
from bot.settings import Settings
from bot.telegram.callbacks import ComplaintAction, ComplaintCb
from bot.web.keys import DISPATCHER
from bot.web.keys import SETTINGS as SETTINGS_KEY
from bot.web.operators.complaints import sweep
from storage.desk_models import Complaint, ComplaintExtension, ComplaintStatus
from storage.models import Channel, Claim, ClaimStatus, Customer, Message, Task
from tests import factories as f
from tests import test_desk, test_desk_inbox
from tests.test_desk_inbox import MONDAY_10, Desk_
from tests.test_telegram_support import Rig, button_data

pytest_plugins = ["tests.test_telegram_support"]
rig = test_desk_inbox.rig  # the app with the fakes and operators 小李, 小王, 访客, 管理员
sms = test_desk.sms  # the SMS webhook at Monday 10:00

SHANGHAI = ZoneInfo("Asia/Shanghai")
SETTINGS = Settings()


def local(*args: int) -> datetime:
    """A Shanghai wall-clock time, as the UTC moment the app's clock gives."""
    return datetime(*args, tzinfo=SHANGHAI).astimezone(UTC)  # type: ignore[misc]


async def complaint_for(owner: Customer, *, staff: str = "", now: datetime = MONDAY_10,
                        category: str = "claims") -> Complaint:
    return await file_complaint(Filing(owner.id, Channel.SMS, category, "理赔三周没有进展",
                                       staff_complained=staff),
                                now=now, settings=SETTINGS.complaints, timezone="Asia/Shanghai")


async def claim_of(owner: Customer, number: str) -> Claim:
    policy = await f.policy(owner)
    return await Claim.create(number=number, policy=policy, customer=owner,
                              status=ClaimStatus.SURVEYED, reported_at=MONDAY_10)


async def test_references_count_the_day_and_the_decision_is_due_in_15_calendar_days(
    db: str
) -> None:
    owner = await f.customer()
    first, second = await complaint_for(owner), await complaint_for(owner)
    late_evening = await complaint_for(owner, now=local(2026, 11, 23, 23, 30))
    next_day = await complaint_for(owner, now=local(2026, 11, 24, 0, 10))
    assert [c.reference for c in (first, second, late_evening, next_day)] == [
        "TS20261123-0001", "TS20261123-0002", "TS20261123-0003", "TS20261124-0001"]
    assert first.due_at == local(2026, 12, 8, 23, 59, 59)  # weekends and holidays count
    assert next_day.due_at == local(2026, 12, 9, 23, 59, 59)


async def test_extensions_need_a_reason_and_the_further_one_an_admins_approval(
    rig: Desk_
) -> None:
    complaint = await complaint_for(await f.customer())
    path = f"/complaints/{complaint.id}"
    status, body = await rig.call("POST", f"{path}/extend", json={"reason": "  "})
    assert (status, body["error"]) == (422, "invalid_body")
    rig.clock.now += timedelta(days=10)
    status, body = await rig.call("POST", f"{path}/extend", json={"reason": "需第三方鉴定"})
    assert status == 200 and body["extension"] == 1
    assert datetime.fromisoformat(body["due_at"]) == local(2026, 12, 23, 23, 59, 59)
    status, body = await rig.call("POST", f"{path}/extend", json={"reason": "鉴定机构延迟"})
    assert status == 200 and body["extension"] == 1  # the further 30 days wait for approval
    assert [(e["level"], e["requested_by"], e["approved_by"]) for e in body["extensions"]] == [
        (1, "小李", ""), (2, "小李", "")]
    status, _ = await rig.call("POST", f"{path}/approve")  # an agent cannot approve
    assert status == 403
    status, body = await rig.call("POST", f"{path}/approve", who="管理员")
    assert status == 200 and body["extension"] == 2
    assert datetime.fromisoformat(body["due_at"]) == local(2027, 1, 22, 23, 59, 59)
    approved = await ComplaintExtension.get(complaint_id=complaint.id, level=2)
    assert (approved.approved_by, approved.approved_at) == ("管理员", rig.clock.now)
    status, body = await rig.call("POST", f"{path}/extend", json={"reason": "再延"})
    assert (status, body["error"]) == (409, "complaint_extension_refused")


async def test_the_staff_member_complained_about_can_neither_handle_nor_close_it(
    rig: Desk_
) -> None:
    complaint = await complaint_for(await f.customer(), staff="小王")
    path = f"/complaints/{complaint.id}"
    status, body = await rig.call("POST", f"{path}/assign", json={"operator": " 小王 "})
    assert (status, body["error"]) == (409, "complaint_recusal")
    status, body = await rig.call("POST", f"{path}/close", who="小王",
                                  json={"outcome": "已处理"})
    assert (status, body["error"]) == (409, "complaint_recusal")
    assert (await Complaint.get(id=complaint.id)).handler_id is None
    status, body = await rig.call("POST", f"{path}/assign", json={"operator": "小李"})
    assert (status, body["handler"]) == (200, "小李")
    # named later (in the description): not while they handle it
    status, body = await rig.call("POST", f"{path}/staff", json={"staff_complained": "小李"})
    assert (status, body["error"]) == (409, "complaint_recusal")
    status, body = await rig.call("POST", f"{path}/staff", json={"staff_complained": "张三"})
    assert (status, body["staff_complained"]) == (200, "张三")


async def test_the_handler_is_reminded_3_days_before_and_overdue_is_escalated_once(
    rig: Desk_
) -> None:
    owner = await f.customer()
    complaint = await complaint_for(owner)  # due 8 December, end of day
    await rig.call("POST", f"/complaints/{complaint.id}/assign", json={"operator": "小王"})
    settings = rig.app[SETTINGS_KEY]
    assert await sweep(local(2026, 12, 5, 23, 0), settings) == (0, 0)  # 3 days and 1 hour
    assert await sweep(local(2026, 12, 6, 9, 0), settings) == (1, 0)
    assert await sweep(local(2026, 12, 7, 9, 0), settings) == (0, 0)  # once
    [task] = await Task.filter(kind="complaint_due")
    assert (task.assignee, task.note, task.due_at) == ("小王", complaint.reference,
                                                       complaint.due_at)
    assert await sweep(local(2026, 12, 8, 23, 59), settings) == (0, 0)  # not yet overdue
    rig.clock.now = local(2026, 12, 9, 0, 1)
    assert await sweep(rig.clock.now, settings) == (0, 1)
    assert await sweep(rig.clock.now + timedelta(hours=1), settings) == (0, 0)
    [escalation] = await Task.filter(kind="complaint_overdue")
    assert (escalation.assignee, escalation.note) == ("", complaint.reference)
    _, dashboard = await rig.call("GET", "/dashboard")
    assert dashboard["complaints_overdue"] == 1
    _, overdue = await rig.call("GET", "/complaints", params={"state": "overdue"})
    assert [c["reference"] for c in overdue["items"]] == [complaint.reference]


async def test_closing_sends_the_decision_with_the_redress_channels_and_fills_the_register(
    rig: Desk_
) -> None:
    owner = await f.customer(phone="+8613800007777")
    on_time = await complaint_for(owner)
    late = await complaint_for(owner, category="service_attitude")
    await rig.call("POST", f"/complaints/{late.id}/extend", json={"reason": "需调取录音"})
    rig.clock.now = local(2026, 12, 1, 15, 0)
    status, body = await rig.call("POST", f"/complaints/{on_time.id}/close",
                                  json={"outcome": "已补发赔款并致歉"})
    assert status == 200 and body["status"] == "closed" and body["within_deadline"] is True
    await rig.app[DISPATCHER].dispatch_once()
    [decision] = rig.twilio.sent_messages()
    assert decision.to == "+8613800007777"
    assert decision.body.startswith(
        "【安行保险】您的投诉（编号TS20261123-0001）处理结果：已补发赔款并致歉。")
    assert decision.body.endswith(SETTINGS.complaints.redress_zh)
    status, _ = await rig.call("POST", f"/complaints/{on_time.id}/close",
                               json={"outcome": "again"})
    assert status == 409  # closed once
    rig.clock.now = local(2026, 12, 24, 9, 0)  # after the extended due date
    await rig.call("POST", f"/complaints/{late.id}/close", json={"outcome": "已批评教育"})

    resp = await rig.client.get("/api/v1/complaints/register.csv", headers={
        "Authorization": f"Bearer {rig.tokens['访客']}"})
    assert resp.status == 200 and resp.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [(r["reference"], r["category"], r["outcome"], r["within_deadline"]) for r in rows] == [
        ("TS20261123-0001", "claims", "已补发赔款并致歉", "yes"),
        ("TS20261123-0002", "service_attitude", "已批评教育", "no")]
    assert rows[1]["extensions"].startswith("1: 需调取录音 (小李 ")
    assert rows[0]["channel"] == "sms" and rows[0]["closed"].startswith("2026-12-01T07:00")


async def test_an_operator_turns_a_conversation_into_a_complaint_about_the_customers_own_claim(
    rig: Desk_
) -> None:
    owner = await f.customer()
    other = await f.customer()
    mine, theirs = await claim_of(owner, "RD-1"), await claim_of(other, "RD-2")
    tid = await rig.handed_off(owner, Channel.SMS, "我要投诉理赔员态度差")
    body = {"category": "service_attitude", "description": "理赔员态度差",
            "claim_number": theirs.number, "staff_complained": "张查勘"}
    status, refused = await rig.call("POST", f"/conversations/{tid}/complaint", json=body)
    assert (status, refused["error"]) == (422, "complaint_not_customers")
    status, made = await rig.call("POST", f"/conversations/{tid}/complaint",
                                  json={**body, "claim_number": mine.number})
    assert status == 200 and made["conversation_id"] == tid
    assert (made["reference"], made["staff_complained"]) == ("TS20261123-0001", "张查勘")
    [told] = await Message.filter(customer_id=owner.id, kind="complaint_received")
    assert told.params["reference"] == "TS20261123-0001"
    assert told.params["due"] == {"zh-CN": "12月8日", "en": "8 Dec"}
    assert await Complaint.filter(customer_id=other.id).count() == 0


# -- customers filing ---------------------------------------------------------------------------


async def test_a_telegram_complaint_in_three_steps_with_the_customers_own_claim(
    tg: Rig
) -> None:
    tg.clock.now = MONDAY_10
    owner, user = await tg.linked(language="zh-CN")
    mine = await claim_of(owner, "RDAA31000001")
    theirs = await claim_of(await f.customer(), "RDAA31000002")
    t = tg.t("zh-CN")
    await tg.send(user, "投诉")
    assert tg.last_text(user.id) == t("tg_complaint_choose_category")
    claims = ComplaintCb(action=ComplaintAction.CATEGORY, value="claims").pack()
    assert claims in button_data(tg.last(user.id))
    await tg.press(user, claims)
    own = ComplaintCb(action=ComplaintAction.CLAIM, id=mine.id).pack()
    assert own in button_data(tg.last(user.id))
    await tg.press(user, ComplaintCb(action=ComplaintAction.CLAIM, id=theirs.id).pack())
    answers = tg.fake.requests_for("answerCallbackQuery")
    assert answers[-1].params.get("text") == t("tg_button_expired")  # forged: refused
    await tg.press(user, own)
    assert tg.last_text(user.id) == t("tg_complaint_describe")
    await tg.send(user, "查勘员三周没有联系我")
    assert tg.last_text(user.id) == t("tg_complaint_received", reference="TS20261123-0001",
                                      due="12月8日")
    complaint = await Complaint.get(reference="TS20261123-0001")
    assert (complaint.customer_id, complaint.claim_id, complaint.category,
            complaint.channel, complaint.description) == (
        owner.id, mine.id, "claims", Channel.TELEGRAM, "查勘员三周没有联系我")
    assert complaint.status is ComplaintStatus.OPEN


@pytest.mark.parametrize(("body", "filed"), [("投诉：理赔三周没人联系", True), ("投诉", False)])
async def test_an_sms_complaint_is_registered_with_its_reference_and_due_date(
    sms: test_desk.Sms, body: str, filed: bool
) -> None:
    owner = await f.customer(phone="+8613800006666")
    reply = await sms.text(owner.phone, body)
    if filed:
        assert reply == "【安行保险】投诉已受理，编号TS20261123-0001，将于12月8日前答复。"
        complaint = await Complaint.get(customer_id=owner.id)
        assert (complaint.description, complaint.channel) == ("理赔三周没人联系", Channel.SMS)
    else:
        assert reply == "【安行保险】请回复“投诉+问题描述”，我们将登记并在15日内答复。"
        assert await Complaint.all().count() == 0
    assert len(reply) <= 70  # one segment


def test_due_dates_are_calendar_days_in_the_insurers_time_zone() -> None:
    from bot.desk.complaints import due_at

    received = datetime(2026, 9, 30, 17, 0, tzinfo=UTC)  # 1 October 01:00 in Shanghai
    assert due_at(received, 15, "Asia/Shanghai") == local(2026, 10, 16, 23, 59, 59)


async def test_the_console_registers_extends_and_refuses_recusal_in_words(rig: Desk_) -> None:
    from tests.test_operators_api import console_login

    owner = await f.customer(name="周九")
    tid = await rig.handed_off(owner, Channel.TELEGRAM, "我要投诉")
    csrf = await console_login(rig.client, rig.tokens["小王"])
    resp = await rig.client.post(f"/console/inbox/{tid}/complaint", allow_redirects=False,
                                 data={"csrf_token": csrf, "category": "service_attitude",
                                       "description": "电话里态度恶劣",
                                       "staff_complained": "小王"})
    assert resp.status == 303
    complaint = await Complaint.get(customer_id=owner.id)
    assert resp.headers["Location"] == (f"/console/complaints/{complaint.id}"
                                        "?ok=complaint_create")
    listing = await (await rig.client.get("/console/complaints?lang=zh-CN")).text()
    assert complaint.reference in listing and "服务态度" in listing
    resp = await rig.client.post(f"/console/complaints/{complaint.id}/assign",
                                 data={"csrf_token": csrf, "operator": "小王"},
                                 headers={"Referer": f"/console/complaints/{complaint.id}"})
    page = await resp.text()
    assert "被投诉人员不能处理针对自己的投诉" in page
    resp = await rig.client.post(f"/console/complaints/{complaint.id}/extend",
                                 data={"csrf_token": csrf, "reason": "需调取通话录音"})
    page = await resp.text()
    assert resp.status == 200 and "延期已记录" in page and "需调取通话录音" in page
    assert (await Complaint.get(id=complaint.id)).extension == 1


async def test_an_open_complaint_holds_erasure_and_erasure_takes_the_customers_words(
    rig: Desk_, tmp_path: Path
) -> None:
    from storage.desk_models import Conversation, ConversationMessage
    from storage.privacy import ErasureRefused, Requester, erase_customer

    owner = await f.customer(phone="+8613800004444")
    tid = await rig.handed_off(owner, Channel.SMS, "我要投诉，理赔员说话难听")
    _, made = await rig.call("POST", f"/conversations/{tid}/complaint", json={
        "category": "service_attitude", "description": "理赔员说话难听"})
    with pytest.raises(ErasureRefused) as refused:
        await erase_customer(owner.id, by=Requester("管理员"), now=rig.clock(), uploads=tmp_path)
    assert refused.value.blockers == [f"complaint {made['reference']} (open)"]
    await rig.call("POST", f"/complaints/{made['id']}/close", json={"outcome": "已致歉"})
    await erase_customer(owner.id, by=Requester("管理员"), now=rig.clock(), uploads=tmp_path)
    assert not await Conversation.filter(id=tid).exists()
    assert not await ConversationMessage.filter(conversation_id=tid).exists()
    kept = await Complaint.get(id=made["id"])  # the register keeps its row, not the words
    assert (kept.reference, kept.description, kept.status) == (
        made["reference"], "", ComplaintStatus.CLOSED)
