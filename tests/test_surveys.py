"""Satisfaction after every case: one survey per case (a claim paid then closed is asked once),
queued an hour later as a care message (quiet hours hold it, a care opt-out skips it), 1–5
buttons in Telegram where the first tap counts, an SMS digit within 48 hours and not after,
a low score opening a follow-up task, and the figures against the 95 % target."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.desk.surveys import SURVEY_KIND, offer
from bot.web.keys import DISPATCHER
from storage.desk_models import SatisfactionSurvey, SurveyCase
from storage.models import (
    Category,
    Channel,
    Claim,
    ClaimStatus,
    Consent,
    Customer,
    Message,
    MessageStatus,
    Task,
)
from tests import factories as f
from tests import test_desk_inbox
from tests.fakes.twilio import ACCOUNT_SID
from tests.test_desk_inbox import MONDAY_10, Desk_
from tests.test_sms_inbound import message_of, new_sid, signature
from tests.test_telegram_support import Rig, User

pytest_plugins = ["tests.test_telegram_support"]
rig = test_desk_inbox.rig


async def text_in(desk: Desk_, phone: str, body: str) -> str:
    params = {"MessageSid": new_sid(), "AccountSid": ACCOUNT_SID, "From": phone,
              "To": f.FROM_NUMBER, "Body": body, "NumMedia": "0"}
    resp = await desk.client.post("/sms/inbound", data=params, headers=signature(params))
    assert resp.status == 200
    return message_of(await resp.text())


async def event(desk: Desk_, number: str, status: str, n: int) -> None:
    status_code, body = await desk.call("POST", f"/claims/{number}/events", json={
        "external_id": f"e{n}", "status": status, "occurred_at": desk.clock().isoformat()})
    assert status_code == 201, body


async def test_a_claim_paid_then_closed_is_surveyed_once_an_hour_later_as_care(
    rig: Desk_
) -> None:
    owner = await f.customer()
    policy = await f.policy(owner)
    await Claim.create(number="RD-9", policy=policy, customer=owner,
                       status=ClaimStatus.APPROVED, reported_at=MONDAY_10 - timedelta(days=9))
    await event(rig, "RD-9", "paid", 1)
    rig.clock.now += timedelta(days=2)
    await event(rig, "RD-9", "closed", 2)
    [survey] = await SatisfactionSurvey.all()
    assert (survey.case_kind, survey.customer_id) == (SurveyCase.CLAIM, owner.id)
    [asked] = await Message.filter(kind=SURVEY_KIND)
    assert (asked.category, asked.not_before) == (Category.CARE, MONDAY_10 + timedelta(hours=1))
    assert asked.params["survey"] == survey.id


async def test_telegram_buttons_take_the_first_tap_and_a_low_score_opens_a_task(
    rig: Desk_, tg: Rig
) -> None:
    owner, user = await tg.linked(language="zh-CN")
    survey = await offer(SurveyCase.CONVERSATION, 77, owner.id, now=MONDAY_10,
                         operator_name="小李")
    assert survey is not None
    assert await offer(SurveyCase.CONVERSATION, 77, owner.id, now=MONDAY_10) is None  # once
    rig.clock.now = MONDAY_10 + timedelta(hours=1)
    await rig.app[DISPATCHER].dispatch_once()
    [sent] = [r.params for r in rig.telegram.requests_for("sendMessage")
              if r.params["chat_id"] == user.id]
    buttons = [b["callback_data"] for row in sent["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons == [f"sv:{survey.id}:{n}" for n in range(1, 6)]
    assert sent["text"].startswith("您的咨询已办结")

    stranger = User(990_777)  # someone else's tap on the same button proves nothing
    await tg.press(stranger, f"sv:{survey.id}:5")
    assert (await SatisfactionSurvey.get(id=survey.id)).score is None
    await tg.press(user, f"sv:{survey.id}:2")
    await tg.press(user, f"sv:{survey.id}:5")  # a second tap changes nothing
    survey = await SatisfactionSurvey.get(id=survey.id)
    assert (survey.score, survey.answer_channel) == (2, "telegram")
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_survey_thanks_low")
    [task] = await Task.filter(kind="satisfaction_low")
    assert (task.customer_id, task.note) == (owner.id, "conversation 77: 2/5 (小李)")


async def test_quiet_hours_hold_the_survey_and_a_care_opt_out_skips_it(rig: Desk_) -> None:
    night, opted_out = await f.customer(), await f.customer()
    await f.link_telegram(night)
    await f.link_telegram(opted_out)
    await Consent.create(customer=opted_out, channel="*", category=Category.CARE,
                         granted=False, source="telegram", created_at=MONDAY_10)
    await offer(SurveyCase.CLAIM, 2, opted_out.id, now=MONDAY_10)
    rig.clock.now = MONDAY_10 + timedelta(hours=1, minutes=5)
    await rig.app[DISPATCHER].dispatch_once()
    skipped = await Message.get(customer_id=opted_out.id, kind=SURVEY_KIND)
    assert (skipped.status, skipped.skip_reason) == (MessageStatus.SKIPPED, "opted_out")

    evening = MONDAY_10 + timedelta(hours=12)  # 22:00 in Shanghai
    await offer(SurveyCase.CLAIM, 1, night.id, now=evening)
    rig.clock.now = evening + timedelta(hours=1, minutes=5)
    await rig.app[DISPATCHER].dispatch_once()
    assert rig.telegram.requests_for("sendMessage") == []
    held = await Message.get(customer_id=night.id, kind=SURVEY_KIND)
    assert held.status is MessageStatus.PENDING and held.not_before > rig.clock.now


async def _asked_by_sms(rig: Desk_, owner: Customer, case_id: int) -> SatisfactionSurvey:
    survey = await offer(SurveyCase.COMPLAINT, case_id, owner.id, now=rig.clock())
    assert survey is not None
    rig.clock.now += timedelta(hours=1)
    await rig.app[DISPATCHER].dispatch_once()
    sent = await Message.get(id=survey.outbox_id)
    assert (sent.channel, sent.status) == (Channel.SMS, MessageStatus.SENT)
    return survey


async def test_an_sms_digit_answers_within_48_hours_and_not_after(rig: Desk_) -> None:
    owner = await f.customer(phone="+8613800008888")
    first = await _asked_by_sms(rig, owner, 1)
    [asked] = rig.twilio.sent_messages()
    assert asked.body == "【安行保险】请为本次投诉处理服务打分，回复1-5（5为很满意）。"
    rig.clock.now += timedelta(hours=47)
    assert await text_in(rig, owner.phone, "５") == "【安行保险】感谢您的评价！"
    assert await text_in(rig, owner.phone, "1") == "【安行保险】感谢您的评价！"  # answered: kept
    assert (await SatisfactionSurvey.get(id=first.id)).score == 5

    second = await _asked_by_sms(rig, owner, 2)
    rig.clock.now += timedelta(hours=49)
    reply = await text_in(rig, owner.phone, "2")
    assert reply.startswith("【安行保险】可回复：")  # too late: just a text, the menu answers
    assert (await SatisfactionSurvey.get(id=second.id)).score is None
    assert await Task.filter(kind="satisfaction_low").count() == 0


async def test_resolving_a_handed_off_conversation_and_closing_a_complaint_offer_surveys(
    rig: Desk_
) -> None:
    owner = await f.customer()
    tid = await rig.handed_off(owner, Channel.SMS)
    await rig.call("POST", f"/conversations/{tid}/messages", json={"text": "您好"})
    await rig.call("POST", f"/conversations/{tid}/resolve")
    await rig.call("POST", f"/conversations/{tid}/resolve")  # again: no second survey
    _, made = await rig.call("POST", f"/conversations/{tid}/complaint",
                             json={"category": "other", "description": "等太久"})
    await rig.call("POST", f"/complaints/{made['id']}/assign", json={"operator": "小王"})
    await rig.call("POST", f"/complaints/{made['id']}/close", json={"outcome": "已致歉"})
    surveys = await SatisfactionSurvey.all().order_by("id")
    assert [(s.case_kind, s.operator_name) for s in surveys] == [
        (SurveyCase.CONVERSATION, "小李"), (SurveyCase.COMPLAINT, "小王")]


async def test_the_figures_compare_satisfied_answers_with_the_95_percent_target(
    rig: Desk_
) -> None:
    owner = await f.customer()
    for n, (score, who) in enumerate([(5, "小李"), (4, "小李"), (2, "小王"), (None, "小王")]):
        survey = await offer(SurveyCase.CLAIM if n % 2 else SurveyCase.CONVERSATION, n,
                             owner.id, now=MONDAY_10, operator_name=who)
        assert survey is not None
        await SatisfactionSurvey.filter(id=survey.id).update(score=score)
        await Message.filter(id=survey.outbox_id).update(status=MessageStatus.DELIVERED)
    status, data = await rig.call("GET", "/satisfaction")
    assert status == 200
    assert (data["answered"], data["satisfied"], data["sent"]) == (3, 2, 4)
    assert (data["rate"], data["response_rate"], data["target"]) == (0.6667, 0.75, 0.95)
    by: dict[str, Any] = {g["name"]: g["rate"] for g in data["by_operator"]}
    assert by == {"小李": 1.0, "小王": 0.0}
    assert data["by_month"][-1] == {"month": "2026-11", "answered": 3, "satisfied": 2,
                                    "rate": 0.6667}
    from tests.test_operators_api import console_login

    await console_login(rig.client, rig.tokens["访客"])
    page = await (await rig.client.get("/console/satisfaction?lang=zh-CN")).text()
    assert "66.7%" in page and "目标 95.0%" in page
    chart = await rig.client.get("/console/satisfaction/chart.svg")
    assert chart.status == 200 and chart.content_type == "image/svg+xml"
    assert "每月满意率" in await chart.text()
