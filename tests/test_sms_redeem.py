"""Redeeming points by SMS end to end, through the signed ``/sms/inbound`` webhook: the
numbered list, the 4-digit confirmation, the voucher code in the reply, tier entitlements at
cost 0, ``券``, and every refusal (wrong code, expired code, points gone, stock gone) changing
nothing — nor does a replayed MessageSid."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import pytest

from bot.delivery.segments import count_segments
from bot.settings import Settings
from bot.sms.keywords import Command, Parsed, parse
from bot.sms.replies import Replies
from bot.texts import Texts
from loyalty import ledger
from loyalty.config import LoyaltySettings
from loyalty.earning import adjust_points
from loyalty.rewards import seed_rewards
from storage.loyalty_models import EntryKind, LedgerEntry, LoyaltyAccount, Reward, Voucher
from storage.models import Customer, InboundSms, Message
from storage.privacy_models import PendingStatus, SmsRedemption
from tests import factories as f
from tests import test_sms_inbound as inbound
from tests.test_sms_inbound import SmsRig, new_sid

S = LoyaltySettings()
NOW = f.NOON_SHANGHAI
make_rig = inbound.make_rig  # the signed-webhook rig of tests/test_sms_inbound.py
rig = inbound.rig


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def adjust(owner: Customer, points: int, key: str) -> None:
    await adjust_points(owner.id, points, reason="t", operator="t", key=f"{key}:{owner.id}",
                        now=NOW - timedelta(hours=1), settings=S)


async def member(points: int = 0, *, tier: str = "standard", **fields: object) -> Customer:
    await seed_rewards(S)
    owner = await f.customer(**fields)  # type: ignore[arg-type]
    if points:
        await adjust(owner, points, "seed")
    if tier != "standard":
        if not points:
            await adjust(owner, 1, "open")
        await LoyaltyAccount.filter(customer_id=owner.id).update(tier=tier)
    return owner


def code_in(reply: str) -> str:
    found = re.search(r"(?:确认|CONFIRM) (\d{4})", reply)
    assert found, reply
    return found.group(1)


async def balance(owner: Customer) -> int:
    return await ledger.get_balance(owner.id)


async def test_list_choose_confirm_issues_one_voucher_and_debits_once(rig: SmsRig) -> None:
    owner = await member(900)
    listing = await rig.text(owner.phone, "兑换")
    assert listing == ("【安行保险】积分900，回复兑换+序号：1精致洗车(300分)；"
                       "2定制晴雨伞(500分)；3代驾服务(800分)")
    assert count_segments(listing) == 1
    ask = await rig.text(owner.phone, "兑换2")
    code = code_in(ask)
    assert ask == f"【安行保险】用500分兑换定制晴雨伞？10分钟内回复：确认 {code}"
    assert await balance(owner) == 900  # nothing taken before the confirmation
    sid = new_sid()
    done = await rig.text(owner.phone, f"确认 {code}", sid=sid)
    voucher = await Voucher.get(customer_id=owner.id)
    shown = f"{voucher.code[:4]}-{voucher.code[4:8]}-{voucher.code[8:]}"
    assert done == f"【安行保险】已兑换定制晴雨伞，券码{shown}，2027年2月19日前有效。"
    assert await balance(owner) == 400
    assert (await Reward.get(code="gift_umbrella")).stock == 199
    # The same webhook again, and the code again in a new message: still one voucher.
    assert await rig.text(owner.phone, f"确认 {code}", sid=sid) == done
    assert await rig.text(owner.phone, f"确认{code}") == done
    assert await Voucher.filter(customer_id=owner.id).count() == 1
    assert await balance(owner) == 400
    assert await LedgerEntry.filter(kind=EntryKind.REDEMPTION).count() == 1
    # The code came in the reply: no outbox notice repeats it.
    assert await Message.filter(customer_id=owner.id).count() == 0
    assert rig.twilio.sent_messages() == []
    assert await ledger.audit() == ([], 0)


async def test_vouchers_lists_the_unused_ones(rig: SmsRig) -> None:
    owner = await member(900)
    assert await rig.text(owner.phone, "券") == "【安行保险】您没有可用的券。回复兑换用积分兑换。"
    await rig.text(owner.phone, f"确认 {code_in(await rig.text(owner.phone, '兑换1'))}")
    voucher = await Voucher.get(customer_id=owner.id)
    shown = f"{voucher.code[:4]}-{voucher.code[4:8]}-{voucher.code[8:]}"
    assert await rig.text(owner.phone, "VOUCHERS") == (
        f"【安行保险】可用券：精致洗车{shown}至2027年2月19日")


async def test_tier_entitlement_is_listed_at_cost_zero_and_takes_no_points(rig: SmsRig) -> None:
    owner = await member(100, tier="silver")
    listing = await rig.text(owner.phone, "兑换")
    assert listing == "【安行保险】积分100，回复兑换+序号：1精致洗车(权益0分)"
    ask = await rig.text(owner.phone, "兑换1")
    assert ask.startswith("【安行保险】领取会员权益精致洗车(0分)？")
    await rig.text(owner.phone, f"确认 {code_in(ask)}")
    voucher = await Voucher.get(customer_id=owner.id)
    assert (voucher.entitlement, voucher.points_cost) == (True, 0)
    assert await balance(owner) == 100
    # The month's one free wash is used: the list no longer offers it.
    assert await rig.text(owner.phone, "兑换") == (
        "【安行保险】积分100，暂无可兑换的项目。回复积分查余额。")


async def test_wrong_code_changes_nothing_and_five_wrong_codes_void_it(rig: SmsRig) -> None:
    owner = await member(900)
    code = code_in(await rig.text(owner.phone, "兑换1"))
    wrong = f"{(int(code) + 1) % 10_000:04d}"
    assert await rig.text(owner.phone, f"确认 {wrong}") == (
        "【安行保险】确认码不对，请核对短信中的4位数字后再回复。")
    assert await Voucher.all().count() == 0 and await balance(owner) == 900
    for _ in range(4):
        await rig.text(owner.phone, f"确认 {wrong}")
    assert (await SmsRedemption.get(customer_id=owner.id)).status == PendingStatus.VOID
    assert await rig.text(owner.phone, f"确认 {code}") == (
        "【安行保险】没有待确认的兑换。回复兑换查看可兑换的项目。")
    assert await Voucher.all().count() == 0 and await balance(owner) == 900


async def test_expired_code_redeems_nothing(
    make_rig: Callable[..., Awaitable[SmsRig]],
) -> None:
    clock = Clock(NOW)
    sms = await make_rig(clock=clock)
    owner = await member(900)
    code = code_in(await sms.text(owner.phone, "兑换1"))
    clock.now = NOW + timedelta(minutes=10)
    assert await sms.text(owner.phone, f"确认 {code}") == (
        "【安行保险】确认码已过期，未兑换。请回复兑换重新选择。")
    assert await Voucher.all().count() == 0 and await balance(owner) == 900
    # A fresh request within its ten minutes works.
    clock.now = NOW + timedelta(minutes=11)
    code = code_in(await sms.text(owner.phone, "兑换1"))
    clock.now = NOW + timedelta(minutes=20, seconds=59)
    assert (await sms.text(owner.phone, f"确认 {code}")).startswith("【安行保险】已兑换精致洗车")


async def test_points_spent_meanwhile_refuses_and_takes_nothing(rig: SmsRig) -> None:
    owner = await member(900)
    code = code_in(await rig.text(owner.phone, "兑换3"))  # 800 points
    await adjust(owner, -200, "spent")
    assert await rig.text(owner.phone, f"确认 {code}") == (
        "【安行保险】代驾服务未能兑换：积分不足，积分未扣。")
    assert await Voucher.all().count() == 0 and await balance(owner) == 700
    assert await ledger.audit() == ([], 0)


async def test_stock_gone_meanwhile_refuses_and_takes_nothing(rig: SmsRig) -> None:
    owner = await member(900)
    code = code_in(await rig.text(owner.phone, "兑换2"))  # the umbrella, stock 200
    await Reward.filter(code="gift_umbrella").update(stock=0)
    assert await rig.text(owner.phone, f"确认 {code}") == (
        "【安行保险】定制晴雨伞未能兑换：已兑完，积分未扣。")
    assert await Voucher.all().count() == 0 and await balance(owner) == 900
    assert "晴雨伞" not in await rig.text(owner.phone, "兑换")


async def test_not_enough_points_lists_nothing_and_a_number_out_of_range_is_refused(
    rig: SmsRig,
) -> None:
    owner = await member(100)
    assert await rig.text(owner.phone, "REDEEM") == (
        "【安行保险】积分100，暂无可兑换的项目。回复积分查余额。")
    assert await rig.text(owner.phone, "兑换1") == (
        "【安行保险】没有第1项。回复兑换查看可兑换的项目。")
    assert await SmsRedemption.all().count() == 0


async def test_a_newer_choice_voids_the_older_code(rig: SmsRig) -> None:
    owner = await member(900)
    first = code_in(await rig.text(owner.phone, "兑换1"))
    second = code_in(await rig.text(owner.phone, "兑换2"))
    if first != second:
        assert (await rig.text(owner.phone, f"确认 {first}")).endswith("后再回复。")
    assert "定制晴雨伞" in await rig.text(owner.phone, f"确认 {second}")
    assert await Voucher.filter(customer_id=owner.id).count() == 1


async def test_replayed_choice_keeps_its_code(rig: SmsRig) -> None:
    owner = await member(900)
    sid = new_sid()
    ask = await rig.text(owner.phone, "兑换1", sid=sid)
    assert await rig.text(owner.phone, "兑换1", sid=sid) == ask
    assert await SmsRedemption.all().count() == 1
    assert await InboundSms.filter(message_sid=sid).count() == 1


async def test_english_list_and_confirmation(rig: SmsRig) -> None:
    owner = await member(900, language="en", phone="+85291234567")
    listing = await rig.text(owner.phone, "redeem")
    assert "1 Car wash (300 pts); 2 Branded umbrella (500 pts)" in listing
    ask = await rig.text(owner.phone, "REDEEM 1")
    assert "Redeem Car wash for 300 points? Reply CONFIRM" in ask
    done = await rig.text(owner.phone, f"confirm {code_in(ask)}")
    assert "Car wash redeemed. Voucher " in done and "valid until 2027-02-19" in done


async def test_a_shared_number_cannot_redeem(rig: SmsRig) -> None:
    owner = await member(900)
    await f.customer(phone=owner.phone)
    reply = await rig.text(owner.phone, "兑换1")
    assert "积分按人计算" in reply
    assert await SmsRedemption.all().count() == 0


def test_every_redemption_reply_fits_one_segment_with_realistic_values() -> None:
    replies = Replies(Texts.load(), Settings().sms)
    for phone, lang in (("+8613800138000", "zh-CN"), ("+85291234567", "en")):
        r = replies.to_number(phone)
        name = "Annual vehicle inspection" if lang == "en" else "代办年检"
        texts = [
            r.say("sms_redeem_none", lang, balance=1_234_567),
            r.say("sms_redeem_no_such_item", lang, number=12),
            r.say("sms_redeem_confirm", lang, name=name, cost=8000, code="4821"),
            r.say("sms_redeem_confirm_free", lang, name=name, code="4821"),
            r.say("sms_redeem_done", lang, name=name, code="7KM9-KQGP-5FA",
                  expires="2027年12月31日" if lang == "zh-CN" else "2027-12-31"),
            r.say("sms_redeem_wrong_code", lang), r.say("sms_redeem_expired", lang),
            r.say("sms_redeem_nothing_to_confirm", lang), r.say("sms_vouchers_none", lang),
        ]
        texts += [r.say("sms_redeem_refused", lang, name=name,
                        reason=r.word(f"sms_redeem_reason_{reason}", lang))
                  for reason in ("insufficient_points", "out_of_stock", "limit_reached", "tier",
                                 "unavailable")]
        for text in texts:
            assert count_segments(text) == 1, text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("兑换2", Parsed(Command.REDEEM, "2")), ("兑换 12", Parsed(Command.REDEEM, "12")),
        ("ｒｅｄｅｅｍ　３", Parsed(Command.REDEEM, "3")), ("REDEEM3", Parsed(Command.REDEEM, "3")),
        ("确认 4821", Parsed(Command.CONFIRM, "4821")),
        ("确认４８２１。", Parsed(Command.CONFIRM, "4821")),
        ("confirm 0123", Parsed(Command.CONFIRM, "0123")),
        ("确认 123", Parsed(Command.MENU)), ("确认", Parsed(Command.MENU)),
        ("兑换 abc", Parsed(Command.MENU)), ("我的券", Parsed(Command.VOUCHERS)),
    ],
)
def test_redeem_and_confirm_take_their_argument(text: str, expected: Parsed) -> None:
    assert parse(text) == expected
