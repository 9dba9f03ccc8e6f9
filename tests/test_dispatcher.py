"""The dispatcher end to end: real aiogram and twilio clients against the loopback fakes,
real database rows before and after."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.delivery.dispatcher import Dispatcher, Limits
from bot.delivery.segments import count_segments, sms_encoding
from bot.delivery.senders import AiogramTelegram, TwilioSms
from bot.delivery.telegram_session import build_bot
from bot.settings import Settings
from bot.texts import Texts
from storage.models import (
    Category,
    Channel,
    Consent,
    Customer,
    Message,
    MessageStatus,
    PhoneSuppression,
    SharedPhone,
    TelegramAccount,
)
from storage.shared_phones import recount, release
from tests import factories as f
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio


class Clock:
    def __init__(self, now: datetime = f.NOON_SHANGHAI) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Rig:
    dispatcher: Dispatcher
    clock: Clock
    settings: Settings
    telegram: FakeTelegram
    twilio: FakeTwilio
    make: Callable[..., Dispatcher]


class RecordingLimiter:
    """Counts acquisitions and pauses (no I/O, so a plain object is the honest stand-in)."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self.acquired = 0.0

    async def acquire(self, cost: float = 1.0) -> None:
        self.acquired += cost

    async def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)


@pytest.fixture
async def rig(db: str, fake_telegram: FakeTelegram, fake_twilio: FakeTwilio,
              ) -> AsyncIterator[Rig]:
    settings = f.settings_for(db_url=db, telegram_base=fake_telegram.base_url,
                              twilio_base=fake_twilio.base_url)
    bot = build_bot(DEFAULT_TOKEN, fake_telegram.base_url)  # the session engage run uses
    sms = TwilioSms(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=f.FROM_NUMBER,
                    api_base=fake_twilio.base_url)
    clock = Clock()
    texts = Texts.load()

    def make(**kw: object) -> Dispatcher:
        options: dict[str, object] = dict(telegram=AiogramTelegram(bot), sms=sms, clock=clock,
                                          skip_locked=not db.startswith("sqlite"))
        options.update(kw)
        return Dispatcher(settings, texts, **options)  # type: ignore[arg-type]

    try:
        yield Rig(make(), clock, settings, fake_telegram, fake_twilio, make)
    finally:
        await bot.session.close()
        await sms.close()


async def test_linked_customer_gets_telegram_in_own_language(rig: Rig) -> None:
    zh = await f.customer(name="王芳")
    en = await f.customer(name="Alice", language="en")
    await f.link_telegram(zh, 111)
    await f.link_telegram(en, 222)
    m1 = await f.queued(zh)
    m2 = await f.queued(en)
    assert await rig.dispatcher.dispatch_once() == 2
    sent = {m["chat_id"]: m["text"] for m in rig.telegram.sent_messages()}
    assert sent[111].startswith("王芳，生日快乐")
    assert sent[222].startswith("Happy birthday, Alice")
    for msg in (m1, m2):
        await msg.refresh_from_db()
        assert msg.status == MessageStatus.SENT and msg.channel == Channel.TELEGRAM
        assert msg.provider_id and msg.attempts == 1 and msg.sent_at == rig.clock.now
    assert rig.twilio.sent_messages() == []


async def test_unlinked_customer_gets_signed_sms_with_status_callback(rig: Rig) -> None:
    c = await f.customer(name="李雷")
    msg = await f.queued(c)
    await rig.dispatcher.dispatch_once()
    [req] = rig.twilio.sent_messages()
    assert req.to == c.phone and req.body.startswith("【安行保险】李雷，生日快乐")
    assert req.status_callback == f"{f.PUBLIC_URL}/sms/status"
    await msg.refresh_from_db()
    assert (msg.status, msg.channel, msg.provider_id) == (MessageStatus.SENT, Channel.SMS,
                                                          req.sid)
    assert msg.segments == 1


async def test_english_sms_abroad_carry_the_english_signature_and_stay_gsm7(rig: Rig) -> None:
    abroad = await f.customer(name="Alice", phone="+85291234567", language="en")
    mainland = await f.customer(name="Bob", language="en")
    for who in (abroad, mainland):
        await f.queued(who)
    await rig.dispatcher.dispatch_once()
    sent = {req.to: req.body for req in rig.twilio.sent_messages()}
    assert sent[abroad.phone].startswith("[Anxing Insurance] Happy birthday, Alice")
    assert sms_encoding(sent[abroad.phone]) == "GSM-7"
    # The registered Chinese signature on every SMS to a mainland number, whatever language.
    assert sent[mainland.phone].startswith("【安行保险】 Happy birthday, Bob")
    msg = await Message.get(customer_id=abroad.id)
    assert msg.segments == count_segments(sent[abroad.phone]) == 1


async def test_marketing_sms_carries_opt_out_hint_and_never_goes_to_mainland(rig: Rig) -> None:
    foreign = await f.customer(name="Bob", phone="+442079460958", language="en")
    mainland = await f.customer(name="韩梅梅")
    for who in (foreign, mainland):
        await Consent.create(customer=who, channel="*", category=Category.MARKETING,
                             granted=True, source="test", created_at=rig.clock.now)
    a = await f.queued(foreign, kind="campaign", category=Category.MARKETING,
                       template="campaign", params={"body": "Winter tyre check, 20% off"})
    b = await f.queued(mainland, kind="campaign", category=Category.MARKETING,
                       template="campaign", params={"body": "冬季轮胎检测八折"})
    await rig.dispatcher.dispatch_once()
    [req] = rig.twilio.sent_messages()
    assert req.to == foreign.phone and req.body.endswith("Reply STOP to opt out")
    await b.refresh_from_db()
    await a.refresh_from_db()
    assert a.status == MessageStatus.SENT
    assert (b.status, b.skip_reason, b.last_error) == (MessageStatus.SKIPPED, "content_refused",
                                                       "marketing_sms_cn")


async def test_blocked_bot_marks_account_and_falls_back_to_sms(rig: Rig) -> None:
    c = await f.customer()
    account = await f.link_telegram(c, 333)
    rig.telegram.block_chat(333)
    msg = await f.queued(c)
    await rig.dispatcher.dispatch_once()
    await account.refresh_from_db()
    assert account.blocked_at == rig.clock.now
    assert len(rig.twilio.sent_messages()) == 1
    await msg.refresh_from_db()
    assert msg.channel == Channel.SMS and msg.status == MessageStatus.SENT
    assert "403" in msg.last_error or "blocked" in msg.last_error
    # the next message goes straight to SMS without asking Telegram again
    rig.telegram.clear()
    await f.queued(c)
    await rig.dispatcher.dispatch_once()
    assert rig.telegram.requests_for("sendMessage") == []


async def test_chat_not_found_unlinks_and_falls_back(rig: Rig) -> None:
    c = await f.customer()
    account = await f.link_telegram(c, 444)
    rig.telegram.chat_not_found(444)
    await f.queued(c)
    await rig.dispatcher.dispatch_once()
    await account.refresh_from_db()
    assert account.customer_id is None and account.linked_at is None
    assert len(rig.twilio.sent_messages()) == 1


async def test_telegram_only_message_with_blocked_bot_is_skipped_not_smsed(rig: Rig) -> None:
    c = await f.customer()
    await f.link_telegram(c, 555)
    rig.telegram.block_chat(555)
    msg = await f.queued(c, channel_policy="telegram_only")
    await rig.dispatcher.dispatch_once()
    await msg.refresh_from_db()
    assert (msg.status, msg.skip_reason) == (MessageStatus.SKIPPED, "no_channel")
    assert rig.twilio.sent_messages() == []


async def test_flood_control_pauses_limiter_and_resends_only_after_retry_after(rig: Rig) -> None:
    limiter = RecordingLimiter()
    dispatcher = rig.make(limits=Limits(telegram=limiter))
    c = await f.customer()
    await f.link_telegram(c, 666)
    rig.telegram.rate_limit_next(retry_after=3)
    msg = await f.queued(c)
    await dispatcher.dispatch_once()
    assert limiter.pauses == [3]
    await msg.refresh_from_db()
    assert msg.status == MessageStatus.PENDING
    assert msg.not_before == rig.clock.now + timedelta(seconds=3)
    rig.clock.advance(seconds=2.9)
    assert await dispatcher.dispatch_once() == 0
    assert len(rig.telegram.sent_messages()) == 0
    rig.clock.advance(seconds=0.1)
    assert await dispatcher.dispatch_once() == 1
    assert len(rig.telegram.sent_messages()) == 1
    await msg.refresh_from_db()
    assert msg.status == MessageStatus.SENT and msg.attempts == 1


async def test_twilio_21610_records_opt_out_and_later_care_sms_is_skipped(rig: Rig) -> None:
    c = await f.customer()
    rig.twilio.error_for(c.phone, 21610)
    first = await f.queued(c)
    await rig.dispatcher.dispatch_once()
    await first.refresh_from_db()
    assert (first.status, first.skip_reason) == (MessageStatus.FAILED, "opted_out")
    withdrawn = await Consent.filter(customer=c, channel="sms", granted=False).values_list(
        "category", flat=True)
    assert set(withdrawn) == {"marketing", "care", "alert", "reminder"}
    rig.twilio.clear_errors()
    second = await f.queued(c)
    claim = await f.queued(c, kind="claim_update", category=Category.SERVICE,
                           template="claim_update",
                           params={"claim": "C1", "status": "已赔付", "note": ""})
    await rig.dispatcher.dispatch_once()
    await second.refresh_from_db()
    await claim.refresh_from_db()
    assert (second.status, second.skip_reason) == (MessageStatus.SKIPPED, "opted_out")
    assert claim.status == MessageStatus.SENT  # service messages still go out


async def test_twilio_21610_opts_out_every_customer_on_the_number(rig: Rig) -> None:
    c = await f.customer()
    spouse = await f.customer(name="李四", phone=c.phone)
    rig.twilio.error_for(c.phone, 21610)
    first = await f.queued(c)
    await rig.dispatcher.dispatch_once()
    rig.twilio.clear_errors()
    withdrawn = await Consent.filter(customer=spouse, channel="sms", granted=False).values_list(
        "category", flat=True)
    assert set(withdrawn) == {"marketing", "care", "alert", "reminder"}
    assert await PhoneSuppression.filter(phone=c.phone, suppressed=True).values_list(
        "channel", "source", "reference") == [
            ("sms", "twilio:21610", f"message {first.id}")] * len(withdrawn)
    theirs = await f.queued(spouse)
    await rig.dispatcher.dispatch_once()
    await theirs.refresh_from_db()
    assert (theirs.status, theirs.skip_reason) == (MessageStatus.SKIPPED, "opted_out")


async def test_invalid_number_is_marked_and_not_retried(rig: Rig) -> None:
    c = await f.customer()
    rig.twilio.error_for(c.phone, 21211)
    msg = await f.queued(c)
    await rig.dispatcher.dispatch_once()
    await msg.refresh_from_db()
    refreshed = await Customer.get(id=c.id)
    assert refreshed.phone_invalid_at == rig.clock.now
    assert (msg.status, msg.skip_reason) == (MessageStatus.SKIPPED, "invalid_phone")
    assert len(rig.twilio.requests) == 1


async def test_server_errors_back_off_then_fail_after_max_attempts(rig: Rig) -> None:
    c = await f.customer()
    await f.link_telegram(c, 777)
    rig.telegram.fail_next("sendMessage", status=502, times=10)
    msg = await f.queued(c)
    max_attempts = rig.settings.delivery.max_attempts
    for attempt in range(1, max_attempts + 1):
        assert await rig.dispatcher.dispatch_once() == 1
        await msg.refresh_from_db()
        assert msg.attempts == attempt
        if attempt < max_attempts:
            assert msg.status == MessageStatus.PENDING
            delay = (msg.not_before - rig.clock.now).total_seconds()
            base = rig.settings.delivery.backoff_base_seconds * 2 ** (attempt - 1)
            assert base / 2 <= delay <= base
            rig.clock.now = msg.not_before
    assert (msg.status, msg.skip_reason) == (MessageStatus.FAILED, "attempts_exhausted")


async def test_quiet_hours_hold_message_until_morning(rig: Rig) -> None:
    rig.clock.now = datetime(2026, 11, 21, 14, 30, tzinfo=UTC)  # 22:30 in Shanghai
    c = await f.customer()
    await f.link_telegram(c)
    msg = await f.queued(c, not_before=rig.clock.now)
    await rig.dispatcher.dispatch_once()
    await msg.refresh_from_db()
    assert msg.status == MessageStatus.PENDING
    assert msg.not_before == datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
    assert rig.telegram.sent_messages() == []
    rig.clock.now = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
    await rig.dispatcher.dispatch_once()
    assert len(rig.telegram.sent_messages()) == 1


async def test_weekly_cap_counts_messages_in_the_same_batch(rig: Rig) -> None:
    c = await f.customer()
    await f.link_telegram(c)
    msgs = [await f.queued(c) for _ in range(5)]
    await rig.dispatcher.dispatch_once()
    statuses = sorted([(await Message.get(id=m.id)).status for m in msgs])
    assert statuses.count(MessageStatus.SENT) == rig.settings.delivery.weekly_cap
    assert statuses.count(MessageStatus.SKIPPED) == 5 - rig.settings.delivery.weekly_cap


async def test_stale_weather_notice_is_skipped(rig: Rig) -> None:
    c = await f.customer()
    await f.link_telegram(c)
    msg = await f.queued(c, kind="weather", template="weather_alert",
                         params={"name": "x", "region": "上海", "date": "11月21日",
                                 "hazard": "暴雨", "advice": "慢行"},
                         stale_after=rig.clock.now - timedelta(minutes=1))
    await rig.dispatcher.dispatch_once()
    await msg.refresh_from_db()
    assert (msg.status, msg.skip_reason) == (MessageStatus.SKIPPED, "stale")


def _weather_notice(c: Customer) -> dict[str, Any]:
    return {"key": f"weather:2026-11-21:{c.id}", "kind": "weather",
            "category": Category.ALERT, "template": "weather_notice",
            "params": {"name": c.name, "region": {"zh-CN": "深圳", "en": "Shenzhen"},
                       "forecast": {"zh-CN": "明天有暴雨和雷暴大风",
                                    "en": "heavy rain and gales tomorrow"},
                       "advice": {"zh-CN": "慢行", "en": "slow down"},
                       "tip": {"zh-CN": "勿涉水", "en": "avoid floods"}}}


async def test_weather_alert_is_outside_the_weekly_care_cap_and_does_not_use_it(
        rig: Rig) -> None:
    c = await f.customer()
    await f.link_telegram(c)
    alert = await f.queued(c, **_weather_notice(c))
    greetings = [await f.queued(c) for _ in range(rig.settings.delivery.weekly_cap + 1)]
    await rig.dispatcher.dispatch_once()

    await alert.refresh_from_db()
    assert alert.status == MessageStatus.SENT
    statuses = [(await Message.get(id=m.id)).status for m in greetings]
    # the alert used none of the cap: every slot went to the greetings
    assert statuses.count(MessageStatus.SENT) == rig.settings.delivery.weekly_cap
    texts = [str(m.get("text")) for m in rig.telegram.sent_messages()]
    assert any("深圳明天有暴雨和雷暴大风" in text for text in texts)


async def test_weather_alerts_switched_off_are_skipped_and_care_still_comes(rig: Rig) -> None:
    c = await f.customer()
    await f.link_telegram(c)
    await Consent.create(customer=c, channel="*", category=Category.ALERT, granted=False,
                         source="telegram_settings", created_at=rig.clock.now)
    alert = await f.queued(c, **_weather_notice(c))
    greeting = await f.queued(c)
    await rig.dispatcher.dispatch_once()

    await alert.refresh_from_db()
    await greeting.refresh_from_db()
    assert (alert.status, alert.skip_reason) == (MessageStatus.SKIPPED, "opted_out")
    assert greeting.status == MessageStatus.SENT


async def test_expired_lease_is_claimed_again_and_nothing_is_lost(rig: Rig) -> None:
    c = await f.customer()
    await f.link_telegram(c)
    msg = await f.queued(c)
    claimed = await rig.dispatcher.claim(rig.clock.now)  # a dispatcher that then "died"
    assert [m.id for m in claimed] == [msg.id]
    assert await rig.dispatcher.dispatch_once() == 0  # leased: nobody else takes it
    rig.clock.advance(seconds=rig.settings.delivery.lease_seconds + 1)
    assert await rig.make().dispatch_once() == 1
    await msg.refresh_from_db()
    assert msg.status == MessageStatus.SENT
    assert len(rig.telegram.sent_messages()) == 1


async def test_no_provider_configured_skips_with_no_channel(rig: Rig) -> None:
    c = await f.customer()
    await f.link_telegram(c)
    msg = await f.queued(c)
    await rig.make(telegram=None, sms=None).dispatch_once()
    await msg.refresh_from_db()
    assert (msg.status, msg.skip_reason) == (MessageStatus.SKIPPED, "no_channel")


async def test_blocked_account_row_is_not_used_for_channel_choice(rig: Rig) -> None:
    c = await f.customer()
    await TelegramAccount.create(telegram_user_id=9, chat_id=9, customer=c,
                                 linked_at=rig.clock.now, blocked_at=rig.clock.now)
    await f.queued(c)
    await rig.dispatcher.dispatch_once()
    assert rig.telegram.sent_messages() == [] and len(rig.twilio.sent_messages()) == 1


async def test_sent_rate_never_exceeds_limit_in_any_one_second_window(rig: Rig) -> None:
    """Real limiter, real time: 60 messages at 30/s, counted where they arrive (the fake)."""
    from bot.delivery.ratelimit import local_rate_limiter

    rate = 30
    # jitter: headroom for a loaded test machine delaying a task after its slot (see ratelimit)
    dispatcher = rig.make(limits=Limits(telegram=local_rate_limiter(rate, jitter=0.05)))
    owners = [await f.customer() for _ in range(60)]
    for owner in owners:
        await f.link_telegram(owner)
        await f.queued(owner, kind="claim_update", category=Category.SERVICE,
                       template="claim_update", params={"claim": "C", "status": "已结案",
                                                        "note": ""})
    while await dispatcher.dispatch_once():
        pass
    arrivals = sorted(r.time for r in rig.telegram.requests_for("sendMessage"))
    assert len(arrivals) == 60
    busiest = max(sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals)
    assert busiest <= rate
    assert arrivals[-1] - arrivals[0] >= (60 - rate) / rate  # and it really was throttled


async def test_a_flagged_shared_number_gets_no_care_or_marketing_sms_until_released(
        rig: Rig) -> None:
    """Three customers on one number (flagged): care and marketing SMS are skipped with
    reason shared_phone, a service SMS still goes, Telegram still goes; once an operator
    releases the number, care SMS go again."""
    shared = "+8613800138008"
    people = [await f.customer(name=f"客户{n}", phone=shared) for n in range(3)]
    await recount([shared], rig.clock.now)
    await f.link_telegram(people[2], 333)
    care = await f.queued(people[0])
    marketing = await f.queued(people[1], kind="campaign", category=Category.MARKETING)
    service = await f.queued(people[0], kind="claim_update", category=Category.SERVICE,
                             template="claim_update",
                             params={"claim": "C1", "status": "已赔付", "note": ""})
    on_telegram = await f.queued(people[2])
    await rig.dispatcher.dispatch_once()
    for msg in (care, marketing, service, on_telegram):
        await msg.refresh_from_db()
    assert (care.status, care.skip_reason) == (MessageStatus.SKIPPED, "shared_phone")
    assert (marketing.status, marketing.skip_reason) == (MessageStatus.SKIPPED, "shared_phone")
    assert (service.status, service.channel) == (MessageStatus.SENT, Channel.SMS)
    assert (on_telegram.status, on_telegram.channel) == (MessageStatus.SENT, Channel.TELEGRAM)
    assert [r.to for r in rig.twilio.sent_messages()] == [shared]

    [flag] = await SharedPhone.all()
    await release(flag.id, "王经理", rig.clock.now)
    again = await f.queued(people[0])
    await rig.dispatcher.dispatch_once()
    await again.refresh_from_db()
    assert (again.status, again.channel) == (MessageStatus.SENT, Channel.SMS)
