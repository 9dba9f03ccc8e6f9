"""Customers answering renewal reminders: the buttons the dispatcher puts under a reminder,
what a tap does (once, whatever the double taps and replays), the SMS replies 续保/XB and 已续
within 7 days of a reminder, the wording per offset, and reminders stopping once a customer
answered. Each test runs on every backend."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from bot.delivery.segments import count_segments
from bot.settings import Settings
from bot.sms.replies import Replies
from bot.telegram.callbacks import RenewalCb
from bot.texts import Texts
from scheduler import recheck, renewal
from scheduler.config import ClaimsHintSettings, RenewalSettings
from scheduler.context import PlanContext, outbox_sink
from scheduler.renewal import reminder_template
from storage.models import (
    Claim,
    Customer,
    Message,
    MessageStatus,
    Policy,
    Product,
    Task,
    TaskStatus,
)
from tests import factories as f
from tests import test_dispatcher, test_sms_inbound
from tests.test_dispatcher import Rig as DispatchRig
from tests.test_sms_inbound import SmsRig
from tests.test_telegram_support import Rig, button_data

pytest_plugins = ["tests.test_telegram_support"]

rig = test_dispatcher.rig  # the dispatcher with the fake Telegram and Twilio
make_rig = test_sms_inbound.make_rig  # the app with the signed SMS webhook

END = date(2026, 12, 7)  # 16 days after f.NOON_SHANGHAI
# Saturday 21 Nov 2026 12:00 in Shanghai: the office opens Monday 09:00, four working hours on
MONDAY_1300 = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)


def cb(answer: str, policy: Policy, reason: str = "") -> str:
    return RenewalCb(answer=answer, policy=policy.id, reason=reason).pack()


async def car(owner: Customer, end: date = END, plate: str = "沪A55555") -> tuple[Policy, Policy]:
    """A car's compulsory and commercial policies expiring together."""
    compulsory = await f.policy(owner, end=end, plate=plate, product=Product.COMPULSORY)
    commercial = await f.policy(owner, end=end, plate=plate)
    return compulsory, commercial


async def reminder(owner: Customer, anchor: Policy, *, kind: str = "renewal",
                   sent_at: datetime | None = None, **params: Any) -> Message:
    template = {"renewal": "renewal_reminder", "lapse_rescue": "lapse_rescue"}[kind]
    body = {"name": owner.name, "plate": anchor.plate, "expiry": "2026年12月7日",
            "days_left": 16, "policy": f"交强险 {anchor.number}", "expired_on": "2026-12-07",
            "policy_id": anchor.id, **params}
    extra: dict[str, Any] = {}
    if sent_at is not None:
        extra = {"status": MessageStatus.DELIVERED, "sent_at": sent_at, "channel": "sms"}
    return await f.queued(owner, key=f"{kind}:{anchor.id}:T-16", kind=kind, template=template,
                          params=body, **extra)


# -- the buttons under a reminder ---------------------------------------------------------------


async def test_reminders_and_rescues_carry_the_answer_buttons_other_messages_none(
        rig: DispatchRig) -> None:
    owner = await f.customer(name="王芳")
    await f.link_telegram(owner, 111)
    compulsory, _ = await car(owner)
    await reminder(owner, compulsory)
    await reminder(owner, compulsory, kind="lapse_rescue")
    await f.queued(owner)  # a birthday greeting
    assert await rig.dispatcher.dispatch_once() == 3
    sent = rig.telegram.sent_messages()
    expected = [[cb("cb", compulsory)], [cb("else", compulsory)],
                [cb("no", compulsory), cb("sold", compulsory)]]
    for words in ("还剩16天", "目前车辆处于脱保状态"):
        [message] = [m for m in sent if words in m["text"]]
        keyboard = message["reply_markup"]["inline_keyboard"]
        assert [[b["callback_data"] for b in row] for row in keyboard] == expected
        assert [b["text"] for row in keyboard for b in row] == [
            "📞 申请续保回电", "已在其他公司续保", "暂不续保", "车辆已过户/报废"]
    [birthday] = [m for m in sent if "生日" in m["text"]]
    assert not birthday.get("reply_markup")


async def test_a_call_back_tap_makes_one_task_for_the_owner_due_in_working_hours(
        tg: Rig) -> None:
    owner, user = await tg.linked()
    compulsory, commercial = await car(owner)
    commercial.agent = "王五"
    await commercial.save()
    await tg.press(user, cb("cb", compulsory), message_id=77)
    assert tg.last_text(user.id).startswith("已收到您的续保回电申请")
    update = await tg.press(user, cb("cb", compulsory), message_id=77)  # double tap
    await tg.feed.feed(update)  # the same update delivered again
    await tg.press(user, cb("cb", compulsory), message_id=78)  # another reminder's button
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_renewal_answer_already")
    [task] = await Task.all()
    assert (task.kind, task.source, task.policy_id, task.status) == (
        "renewal_callback", "telegram", compulsory.id, TaskStatus.OPEN)
    assert task.due_at == MONDAY_1300
    # once closed, a new tap asks again — for the responsible person
    await Task.filter(id=task.id).update(status=TaskStatus.CLOSED)
    await Policy.filter(id=compulsory.id).update(owner="小李")
    await tg.press(user, cb("cb", compulsory), message_id=79)
    newer = await Task.filter(status=TaskStatus.ASSIGNED).get()
    assert newer.assignee == "小李"


async def test_not_renewing_asks_the_reason_and_records_it_on_the_whole_car_once(
        tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    compulsory, commercial = await car(owner)
    await tg.press(user, cb("no", compulsory), message_id=5)
    assert tg.last_text(user.id) == tg.t("en")("tg_renewal_answer_why")
    assert button_data(tg.last(user.id)) == [
        cb("why", compulsory, r)
        for r in ("price", "service", "claim_experience", "sold_scrapped", "other")]
    assert await Task.all().count() == 0  # nothing recorded before the reason
    await tg.press(user, cb("why", compulsory, "price"), message_id=6)
    await tg.press(user, cb("why", compulsory, "service"), message_id=6)  # second tap
    for policy in (compulsory, commercial):
        await policy.refresh_from_db()
        assert (policy.outcome, policy.outcome_reason, policy.outcome_by) == (
            "not_renewing", "price", "customer:telegram")
    [answer] = await Task.all()
    assert (answer.kind, answer.result, answer.status) == (
        "renewal_answer", "not_renewing", TaskStatus.CLOSED)
    # the reminders of that car stop, and a queued one is skipped at send time
    assert await recheck.obsolete([compulsory.id]) == {compulsory.id: "customer_answered"}


async def test_renewed_elsewhere_and_sold_record_their_outcome(tg: Rig) -> None:
    owner, user = await tg.linked()
    first, _ = await car(owner)
    second, _ = await car(owner, plate="沪B66666")
    await tg.press(user, cb("else", first), message_id=1)
    await tg.press(user, cb("sold", second), message_id=2)
    outcomes = {p.plate: p.outcome for p in await Policy.all()}
    assert outcomes == {"沪A55555": "renewed_elsewhere", "沪B66666": "sold_scrapped"}
    await tg.press(user, cb("else", first), message_id=3)  # the next reminder's button
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_renewal_answer_already")
    assert await Task.filter(kind="renewal_answer").count() == 2
    await Policy.filter(plate="沪B66666").update(renewed_by_id=first.id)
    await tg.press(user, cb("cb", second), message_id=4)  # settled: nothing waits
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_renewal_answer_settled")


async def test_renewed_elsewhere_may_name_the_insurer(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    compulsory, commercial = await car(owner)
    await tg.press(user, cb("else", compulsory), message_id=1)
    assert button_data(tg.last(user.id)) == [
        cb("ins", compulsory, code) for code in ("picc", "pingan", "cpic", "other")]
    await tg.press(user, cb("ins", compulsory, "pingan"), message_id=2)
    assert tg.last_text(user.id) == tg.t("en")("tg_renewal_insurer_noted")
    assert {(p.outcome, p.outcome_note) for p in await Policy.all()} == {
        ("renewed_elsewhere", "平安")}
    # not for a car without that outcome, nor a made-up insurer
    other, _ = await car(owner, plate="沪D77777")
    await tg.press(user, cb("ins", other, "picc"), message_id=3)
    await tg.press(user, cb("ins", compulsory, "acme"), message_id=4)
    assert {(p.plate, p.outcome_note) for p in await Policy.all()} == {
        ("沪A55555", "平安"), ("沪D77777", "")}
    assert commercial.id in {p.id for p in await Policy.filter(outcome_note="平安")}


async def test_a_button_naming_another_customers_policy_changes_nothing(tg: Rig) -> None:
    _, user = await tg.linked()
    stranger = await f.customer()
    theirs, _ = await car(stranger)
    await tg.press(user, cb("else", theirs), message_id=1)
    await tg.press(user, cb("cb", theirs), message_id=1)
    assert {p.outcome for p in await Policy.all()} == {""}
    assert await Task.all().count() == 0


async def test_a_renewed_policy_is_not_changed_by_a_late_answer(tg: Rig) -> None:
    owner, user = await tg.linked()
    compulsory, commercial = await car(owner)
    await Policy.filter(id__in=[compulsory.id, commercial.id]).update(outcome="renewed")
    await tg.press(user, cb("else", compulsory), message_id=1)
    assert {p.outcome for p in await Policy.all()} == {"renewed"}


# -- SMS replies ----------------------------------------------------------------------------


@pytest.fixture
async def sms(make_rig: Any) -> SmsRig:
    rig: SmsRig = await make_rig()
    return rig


async def test_sms_xb_and_yixu_answer_the_last_reminder_within_seven_days(sms: SmsRig) -> None:
    owner = await f.customer(phone="+8613800001111")
    compulsory, commercial = await car(owner)
    await reminder(owner, compulsory, sent_at=f.NOON_SHANGHAI - timedelta(days=2))
    reply = await sms.text(owner.phone, "xb")
    assert reply == "【安行保险】已收到沪A55555续保回电申请，专员将在工作时间尽快联系您。"
    assert count_segments(reply) == 1
    again = await sms.text(owner.phone, "续保")
    assert again == "【安行保险】已收到您关于沪A55555的回复，无需重复发送。"
    [task] = await Task.all()
    assert (task.kind, task.source, task.due_at) == ("renewal_callback", "sms", MONDAY_1300)
    sid = "SMrepeat0001"
    first = await sms.text(owner.phone, "已续", sid=sid)
    assert first.startswith("【安行保险】已记录沪A55555已在其他公司续保")
    assert await sms.text(owner.phone, "已续", sid=sid) == first  # Twilio's retry
    for policy in (compulsory, commercial):
        await policy.refresh_from_db()
        assert (policy.outcome, policy.outcome_by) == ("renewed_elsewhere", "customer:sms")
    assert await Task.filter(kind="renewal_answer").count() == 1


async def test_sms_reply_without_a_recent_reminder_changes_nothing(sms: SmsRig) -> None:
    owner = await f.customer(phone="+8613800002222")
    compulsory, _ = await car(owner)
    await reminder(owner, compulsory, sent_at=f.NOON_SHANGHAI - timedelta(days=8))
    reply = await sms.text(owner.phone, "XB")
    assert reply == "【安行保险】近7天没有需要回复的续保提醒。续保咨询请致电95500。"
    assert await Task.all().count() == 0
    assert (await Policy.get(id=compulsory.id)).outcome == ""


# -- wording per offset -----------------------------------------------------------------------


def test_each_offset_has_its_tone() -> None:
    assert [reminder_template(k) for k in (60, 30, 23, 16, 9, 2)] == [
        "renewal_reminder_early", *["renewal_reminder"] * 4, "renewal_reminder_urgent"]


@pytest.mark.parametrize("key", ["renewal_reminder_early", "renewal_reminder",
                                 "renewal_reminder_urgent", "renewal_holiday", "lapse_rescue",
                                 "renewal_reminder_ncd_continues", "renewal_reminder_ncd_lost",
                                 "renewal_reminder_surcharge"])
@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_renewal_sms_wordings_fit_one_segment_in_chinese(key: str, language: str) -> None:
    """In Chinese one UCS-2 segment; in English the plate makes it UCS-2 too: two at most."""
    texts = Texts.load()
    day = {"zh-CN": "2026年12月31日", "en": "31 Dec 2026"}
    holiday = {"zh-CN": "国庆节", "en": "National Day"}
    params = {"name": "欧阳娜娜", "plate": "沪A·D12345", "expiry": day, "days_left": 2,
              "policy": "交强险 P1、商业险 P2", "holiday": holiday, "expired_on": day,
              "percent": 30}
    replies = Replies(texts, Settings().sms, to="+8613800138000")
    body = replies.say(key, language, **params)
    assert count_segments(body) <= (1 if language == "zh-CN" else 2), body
    assert texts.render(key, language, params)  # the Telegram wording renders too


# -- the claims-based pricing hint ---------------------------------------------------------------


async def _claims(policy: Policy, count: int, status: str = "reported") -> None:
    for _ in range(count):
        await Claim.create(number=f"C{policy.id}-{await Claim.all().count()}", policy=policy,
                           customer_id=policy.customer_id, status=status,
                           reported_at=datetime(2026, 6, 1, tzinfo=UTC))


@pytest.mark.parametrize("enabled", [True, False])
async def test_the_t30_reminder_says_what_the_claims_mean_when_the_hint_is_on(
        db: str, enabled: bool) -> None:
    day = date(2026, 11, 1)
    end = day + timedelta(days=30)
    cases = {0: "renewal_reminder_ncd_continues", 2: "renewal_reminder_ncd_lost",
             3: "renewal_reminder_surcharge", 6: "renewal_reminder_surcharge"}
    made: dict[int, Policy] = {}
    for count in cases:
        owner = await f.customer()
        compulsory, commercial = await car(owner, end=end, plate=f"沪C{count:05d}")
        await _claims(commercial, count)
        await _claims(compulsory, 1, status="withdrawn")  # not counted
        made[count] = compulsory
    settings = RenewalSettings(claims_hint=ClaimsHintSettings(enabled=enabled))
    await renewal.queue(PlanContext(day=day, today=day, renewal=settings), outbox_sink(100))
    found = {m.dedup_key: m for m in await Message.filter(kind="renewal")}
    for count, template in cases.items():
        message = found[f"renewal:{made[count].id}:T-30"]
        assert message.template_key == (template if enabled else "renewal_reminder"), count
        if enabled and count >= 3:
            assert message.params["percent"] == {3: 10, 6: 30}[count]
    # the other reminders never carry it
    later = day + timedelta(days=7)
    await renewal.queue(PlanContext(day=later, today=later, renewal=settings), outbox_sink(100))
    assert {m.template_key for m in await Message.filter(dedup_key__endswith=":T-23")} == {
        "renewal_reminder"}


def test_claims_hint_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="overlap"):
        ClaimsHintSettings(bands=[{"claims_from": 0, "claims_to": 2, "hint": "ncd_lost"},
                                  {"claims_from": 2, "hint": "surcharge", "percent": 10}])
    with pytest.raises(ValueError, match="not one of the offsets"):
        RenewalSettings(claims_hint=ClaimsHintSettings(enabled=True, offset=31))
    assert ClaimsHintSettings().band(12) == ClaimsHintSettings().bands[-1]
