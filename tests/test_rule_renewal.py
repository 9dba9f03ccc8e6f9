"""Renewal cadence walked day by day, reminders stopping at renewal or cancellation, the
holiday-aware extra reminder, lapse rescue, catch-up staleness, and one message per car for the
policies (compulsory and commercial) that expire together."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest

from bot.delivery.segments import count_segments
from bot.settings import SmsSettings
from bot.texts import Texts
from scheduler import renewal
from scheduler.cn_calendar import work_calendar
from scheduler.config import RenewalSettings, ScheduleSettings
from scheduler.context import PlanContext
from scheduler.plan import run_plan
from scheduler.wording import PRODUCT_NAMES
from storage.models import Category, Customer, Message, Policy, PolicyStatus, Product
from tests import factories

END = date(2026, 12, 1)  # a Tuesday, no holiday near it
NATIONAL_DAY_END = date(2026, 10, 5)  # inside National Day 2026 (1-7 October)
POLICY_KINDS = ["renewal", "renewal_holiday", "lapse_rescue"]


def _ctx(day: date, today: date | None = None, *, batch_size: int | None = None,
         **renewal_settings: object) -> PlanContext:
    schedule = ScheduleSettings()
    if batch_size is not None:  # below the setting's minimum, to force page boundaries
        schedule = schedule.model_copy(update={"batch_size": batch_size})
    return PlanContext(day=day, today=today or day, schedule=schedule,
                       renewal=RenewalSettings(**renewal_settings))  # type: ignore[arg-type]


def _listed(language: str, *policies: Policy) -> str:
    """How a message names ``policies``: product and number of each, in the order given."""
    separator = "、" if language == "zh-CN" else ", "
    return separator.join(f"{PRODUCT_NAMES[p.product][language]} {p.number}" for p in policies)


async def _walk(first: date, last: date) -> dict[date, list[str]]:
    """Plan every day in [first, last]; the keys each day queued."""
    seen = set(await Message.filter(kind__in=POLICY_KINDS).values_list("dedup_key", flat=True))
    by_day: dict[date, list[str]] = {}
    day = first
    while day <= last:
        await run_plan(_ctx(day))
        keys = set(await Message.filter(kind__in=POLICY_KINDS).values_list("dedup_key",
                                                                             flat=True))
        if new := keys - seen:
            by_day[day] = sorted(new)
        seen = keys
        day += timedelta(days=1)
    return by_day


# -- pure ------------------------------------------------------------------------------------


def test_offsets_must_be_two_days_apart() -> None:
    with pytest.raises(ValueError, match="at least 2 days apart"):
        RenewalSettings(offsets=[30, 10, 9])


def test_a_missed_reminder_is_superseded_by_a_later_one_due_by_today() -> None:
    offsets = [60, 30, 23, 16, 9, 2]
    assert renewal.offsets_due(date(2026, 11, 1), date(2026, 11, 1), offsets) == offsets
    # catching up 1 Nov on 3 Nov: T-2 (end 3 Nov) still in force, nothing later is due
    assert 2 in renewal.offsets_due(date(2026, 11, 1), date(2026, 11, 3), offsets)
    # catching up 1 Nov on 4 Nov: the policy ending 3 Nov has expired
    assert 2 not in renewal.offsets_due(date(2026, 11, 1), date(2026, 11, 4), offsets)
    # T-9 with gap 7: catching up 8 days late, T-2 of the same policy is due too
    assert 9 not in renewal.offsets_due(date(2026, 11, 1), date(2026, 11, 8), offsets)
    assert 9 in renewal.offsets_due(date(2026, 11, 1), date(2026, 11, 7), offsets)


def test_holiday_reminder_goes_three_working_days_before_national_day() -> None:
    settings, calendar = RenewalSettings(), work_calendar()
    period = calendar.period_containing(NATIONAL_DAY_END)
    assert period is not None
    assert (period.code, period.first, period.last) == (
        "national_day", date(2026, 10, 1), date(2026, 10, 7))
    # 30 Sep, 29 Sep, 28 Sep are the three working days before 1 October
    reminder = renewal.holiday_reminder(NATIONAL_DAY_END, settings, calendar)
    assert reminder is not None and reminder.day == date(2026, 9, 28)


def test_holiday_reminder_moves_earlier_off_a_regular_reminder_and_its_neighbours() -> None:
    settings, calendar = RenewalSettings(), work_calendar()
    # expiry 7 Oct: T-9 is 28 Sep; 25 Sep is Mid-Autumn (a day off), 24 Sep is free
    reminder = renewal.holiday_reminder(date(2026, 10, 7), settings, calendar)
    assert reminder is not None and reminder.day == date(2026, 9, 24)
    # expiry 1 Oct: T-2 is 29 Sep, next to 28 Sep
    reminder = renewal.holiday_reminder(date(2026, 10, 1), settings, calendar)
    assert reminder is not None and reminder.day == date(2026, 9, 24)
    for end in (date(2026, 10, d) for d in range(1, 8)):
        days = sorted(renewal.schedule_for(end, settings, calendar))
        assert all((b - a).days >= 2 for a, b in pairwise(days)), end


def test_expiry_outside_long_holidays_gets_no_extra_reminder() -> None:
    calendar = work_calendar()
    for end in (date(2026, 10, 8), date(2026, 9, 25), END, date(2026, 4, 5)):
        assert renewal.holiday_reminder(end, RenewalSettings(), calendar) is None


def test_spring_festival_and_labour_day_periods_include_substituted_days() -> None:
    calendar = work_calendar()
    assert [(p.code, p.first, p.last) for p in calendar.long_holidays(2026)] == [
        ("spring_festival", date(2026, 2, 15), date(2026, 2, 23)),
        ("labour_day", date(2026, 5, 1), date(2026, 5, 5)),
        ("national_day", date(2026, 10, 1), date(2026, 10, 7)),
    ]
    assert calendar.is_working_day(date(2026, 9, 20))  # a make-up Sunday
    assert not calendar.is_working_day(date(2026, 10, 6))  # substituted day off


# -- on a database -----------------------------------------------------------------------------


async def test_cadence_for_one_policy_walked_day_by_day_from_t_minus_61_to_t_plus_4(
    db: str,
) -> None:
    owner = await factories.customer()
    p = await factories.policy(owner, end=END)
    queued = await _walk(END - timedelta(days=61), END + timedelta(days=4))
    assert queued == {
        date(2026, 10, 2): [f"renewal:{p.id}:T-60"],
        date(2026, 11, 1): [f"renewal:{p.id}:T-30"],
        date(2026, 11, 8): [f"renewal:{p.id}:T-23"],
        date(2026, 11, 15): [f"renewal:{p.id}:T-16"],
        date(2026, 11, 22): [f"renewal:{p.id}:T-9"],
        date(2026, 11, 29): [f"renewal:{p.id}:T-2"],
        date(2026, 12, 4): [f"lapse:{p.id}"],
    }
    t16 = await Message.get(dedup_key=f"renewal:{p.id}:T-16")
    assert (t16.kind, t16.category, t16.template_key) == (
        "renewal", Category.REMINDER, "renewal_reminder")
    assert t16.params == {"name": owner.name, "plate": p.plate,
                          "policy": {lang: _listed(lang, p) for lang in ("zh-CN", "en")},
                          "days_left": 16, "expiry": {"zh-CN": "2026年12月1日",
                                                      "en": "1 Dec 2026"}, "policy_id": p.id}
    assert t16.not_before == datetime(2026, 11, 15, 0, 30, tzinfo=UTC)
    assert t16.stale_after == datetime(2026, 12, 1, 16, 0, tzinfo=UTC)  # 2 Dec 00:00 Shanghai
    lapse = await Message.get(dedup_key=f"lapse:{p.id}")
    assert (lapse.template_key, lapse.params["expired_on"]["en"]) == ("lapse_rescue",
                                                                       "1 Dec 2026")
    assert lapse.stale_after == lapse.not_before + timedelta(days=7)


async def test_holiday_extra_reminder_for_expiry_inside_national_day_2026(db: str) -> None:
    owner = await factories.customer()
    p = await factories.policy(owner, end=NATIONAL_DAY_END)
    queued = await _walk(date(2026, 9, 1), date(2026, 10, 9))
    assert queued == {
        date(2026, 9, 5): [f"renewal:{p.id}:T-30"],
        date(2026, 9, 12): [f"renewal:{p.id}:T-23"],
        date(2026, 9, 19): [f"renewal:{p.id}:T-16"],
        date(2026, 9, 26): [f"renewal:{p.id}:T-9"],
        date(2026, 9, 28): [f"renewal_holiday:{p.id}:national_day:2026"],
        date(2026, 10, 3): [f"renewal:{p.id}:T-2"],
        date(2026, 10, 8): [f"lapse:{p.id}"],
    }
    extra = await Message.get(dedup_key=f"renewal_holiday:{p.id}:national_day:2026")
    assert extra.template_key == "renewal_holiday"
    assert extra.params["holiday"] == {"zh-CN": "国庆", "en": "National Day"}
    assert extra.params["expiry"] == {"zh-CN": "2026年10月5日", "en": "5 Oct 2026"}
    assert extra.stale_after == datetime(2026, 9, 30, 16, 0, tzinfo=UTC)  # the holiday starts


async def test_reminders_stop_after_a_renewal_is_recorded(db: str) -> None:
    owner = await factories.customer()
    old = await factories.policy(owner, end=END)
    await _walk(date(2026, 11, 1), date(2026, 11, 10))
    # the import records the renewal: successor linked, old policy marked renewed
    new = await factories.policy(owner, end=date(2027, 12, 1), plate=old.plate,
                                 start_date=date(2026, 12, 2))
    old.renewed_by = new
    old.status = PolicyStatus.RENEWED
    old.renewed_at = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)
    await old.save()
    later = await _walk(date(2026, 11, 11), END + timedelta(days=7))
    assert later == {}
    assert sorted(await Message.filter(kind__in=POLICY_KINDS).values_list(
        "dedup_key", flat=True)) == [f"renewal:{old.id}:T-23", f"renewal:{old.id}:T-30"]


async def test_a_newer_policy_for_the_same_car_stops_reminders_even_unlinked(db: str) -> None:
    owner = await factories.customer()
    old = await factories.policy(owner, end=END)
    other_product = await factories.policy(owner, end=END, plate=old.plate,
                                           product=Product.COMPULSORY)
    await factories.policy(owner, end=date(2027, 12, 1), plate=old.plate)
    await run_plan(_ctx(END - timedelta(days=16)))
    await run_plan(_ctx(END + timedelta(days=3)))
    # keyed by the car's first policy with that end date (see scheduler.renewal), naming only
    # the compulsory policy that still waits for renewal
    assert sorted(await Message.all().values_list("dedup_key", flat=True)) == [
        f"lapse:{old.id}", f"renewal:{old.id}:T-16"]
    for msg in await Message.all():
        assert msg.params["policy"] == {lang: _listed(lang, other_product)
                                        for lang in ("zh-CN", "en")}


async def test_cancelled_policy_gets_neither_reminders_nor_rescue(db: str) -> None:
    owner = await factories.customer()
    p = await factories.policy(owner, end=END)
    await run_plan(_ctx(END - timedelta(days=30)))
    p.status = PolicyStatus.CANCELLED
    p.cancelled_at = datetime(2026, 11, 5, tzinfo=UTC)
    await p.save()
    await _walk(END - timedelta(days=23), END + timedelta(days=4))
    assert await Message.all().values_list("dedup_key", flat=True) == [f"renewal:{p.id}:T-30"]


async def test_expired_status_policy_still_gets_its_rescue(db: str) -> None:
    owner = await factories.customer()
    p = await factories.policy(owner, end=END, status=PolicyStatus.EXPIRED)
    result = await run_plan(_ctx(END + timedelta(days=3)))
    assert result.counts["lapse_rescue"] == 1
    assert await Message.filter(dedup_key=f"lapse:{p.id}").exists()


async def test_catch_up_sends_a_still_useful_reminder_with_days_left_from_today(db: str) -> None:
    owner = await factories.customer()
    p = await factories.policy(owner, end=END)
    missed = END - timedelta(days=9)
    result = await run_plan(_ctx(missed, today=missed + timedelta(days=3)))
    assert result.counts["renewal"] == 1
    msg = await Message.get(dedup_key=f"renewal:{p.id}:T-9")
    assert msg.params["days_left"] == 6
    # a lapse rescue is useful for a week; eight days late it is not planned
    assert (await run_plan(_ctx(END + timedelta(days=3), today=END + timedelta(days=11)))
            ).counts["lapse_rescue"] == 0
    assert (await run_plan(_ctx(END + timedelta(days=3), today=END + timedelta(days=9)))
            ).counts["lapse_rescue"] == 1


# -- one message per car -------------------------------------------------------------------------


async def _pair(owner: Customer, end: date = END) -> tuple[Policy, Policy]:
    """A car's commercial and compulsory policy expiring together (commercial has the lower id)."""
    commercial = await factories.policy(owner, end=end)
    compulsory = await factories.policy(owner, end=end, plate=commercial.plate,
                                        product=Product.COMPULSORY)
    return commercial, compulsory


async def _rendered(key: str) -> dict[str, str]:
    msg = await Message.get(dedup_key=key)
    texts = Texts.load()
    return {lang: texts.render(msg.template_key, lang, msg.params) for lang in ("zh-CN", "en")}


def test_reminders_name_products_as_the_policies_screen_does() -> None:
    texts = Texts.load()
    for product in Product:
        shown = {lang: texts.render(f"tg_product_{product}", lang, {}) for lang in ("zh-CN", "en")}
        assert PRODUCT_NAMES[product]["zh-CN"] == shown["zh-CN"]
        assert shown["en"].lower().startswith(PRODUCT_NAMES[product]["en"])


async def test_a_pair_expiring_together_gets_one_reminder_naming_both(db: str) -> None:
    owner = await factories.customer()
    commercial, compulsory = await _pair(owner)
    holiday_commercial, holiday_compulsory = await _pair(owner, end=NATIONAL_DAY_END)
    other_car = await factories.policy(owner, end=END, product=Product.COMPULSORY)

    result = await run_plan(_ctx(END - timedelta(days=30)))
    assert result.counts["renewal"] == 2
    assert sorted(await Message.all().values_list("dedup_key", flat=True)) == sorted(
        [f"renewal:{commercial.id}:T-30", f"renewal:{other_car.id}:T-30"])
    pair = await _rendered(f"renewal:{commercial.id}:T-30")
    for lang, text in pair.items():
        # compulsory first, each policy once, in the template's own sentence
        assert _listed(lang, compulsory, commercial) in text, text
        assert (text.count(compulsory.number), text.count(commercial.number)) == (1, 1)
        assert commercial.plate in text
    assert _listed("en", other_car) in (await _rendered(f"renewal:{other_car.id}:T-30"))["en"]

    # the holiday reminder and the lapse rescue are one per car too
    await run_plan(_ctx(date(2026, 9, 28)))
    holiday = await Message.filter(kind="renewal_holiday").values_list("dedup_key", flat=True)
    assert holiday == [f"renewal_holiday:{holiday_commercial.id}:national_day:2026"]
    for lang, text in (await _rendered(holiday[0])).items():
        assert _listed(lang, holiday_compulsory, holiday_commercial) in text, text
    result = await run_plan(_ctx(END + timedelta(days=3)))
    assert result.counts["lapse_rescue"] == 2
    for lang, text in (await _rendered(f"lapse:{commercial.id}")).items():
        assert _listed(lang, compulsory, commercial) in text, text
    assert await Message.filter(dedup_key=f"lapse:{other_car.id}").exists()


async def test_sms_for_a_pair_names_no_policy_and_stays_one_segment_in_chinese(db: str) -> None:
    owner = await factories.customer()
    commercial, compulsory = await _pair(owner, end=NATIONAL_DAY_END)
    await run_plan(_ctx(NATIONAL_DAY_END - timedelta(days=30)))
    await run_plan(_ctx(date(2026, 9, 28)))
    await run_plan(_ctx(NATIONAL_DAY_END + timedelta(days=3)))
    texts, signature = Texts.load(), SmsSettings().signature
    messages = await Message.all()
    assert sorted(m.template_key for m in messages) == [
        "lapse_rescue", "renewal_holiday", "renewal_reminder"]
    for msg in messages:
        for lang in ("zh-CN", "en"):
            sms = texts.render(msg.template_key, lang, msg.params, sms=True)
            assert commercial.plate in sms
            # as long for a pair as for one policy
            assert compulsory.number not in sms and commercial.number not in sms
        chinese = signature + texts.render(msg.template_key, "zh-CN", msg.params, sms=True)
        assert count_segments(chinese) == 1, chinese


@pytest.mark.parametrize("renewed_first", [True, False], ids=["lower-id", "higher-id"])
async def test_after_one_of_a_pair_is_renewed_the_other_alone_gets_each_reminder_once(
    db: str, renewed_first: bool,
) -> None:
    owner = await factories.customer()
    commercial, compulsory = await _pair(owner)
    renewed, remaining = (commercial, compulsory) if renewed_first else (compulsory, commercial)
    await run_plan(_ctx(END - timedelta(days=30)))
    new = await factories.policy(owner, end=date(2027, 12, 1), plate=renewed.plate,
                                 product=renewed.product, start_date=END + timedelta(days=1))
    renewed.renewed_by = new
    renewed.status = PolicyStatus.RENEWED
    renewed.renewed_at = datetime(2026, 11, 3, 3, 0, tzinfo=UTC)
    await renewed.save()
    await run_plan(_ctx(END - timedelta(days=30)))  # re-running the pair's day: nothing new

    later = await _walk(END - timedelta(days=29), END + timedelta(days=4))
    # the key keeps the car's first policy id (the commercial one) whichever was renewed
    assert later == {
        date(2026, 11, 8): [f"renewal:{commercial.id}:T-23"],
        date(2026, 11, 15): [f"renewal:{commercial.id}:T-16"],
        date(2026, 11, 22): [f"renewal:{commercial.id}:T-9"],
        date(2026, 11, 29): [f"renewal:{commercial.id}:T-2"],
        date(2026, 12, 4): [f"lapse:{commercial.id}"],
    }
    assert await Message.filter(kind="renewal").count() == 5  # T-30 for the pair, then 4
    for lang, text in (await _rendered(f"renewal:{commercial.id}:T-23")).items():
        assert _listed(lang, remaining) in text
        assert renewed.number not in text


async def test_pairs_across_a_page_boundary_give_one_message_per_car(db: str) -> None:
    owners = [await factories.customer() for _ in range(3)]
    # commercial policies first, compulsory after: every car's two ids lie a page apart
    commercial = [await factories.policy(owner, end=END) for owner in owners]
    compulsory = [await factories.policy(owner, end=END, plate=c.plate,
                                         product=Product.COMPULSORY)
                  for owner, c in zip(owners, commercial, strict=True)]
    day = END - timedelta(days=16)

    assert (await run_plan(_ctx(day, batch_size=2))).counts["renewal"] == 3
    messages = await Message.filter(kind="renewal").order_by("customer_id")
    assert [(m.customer_id, m.dedup_key) for m in messages] == [
        (owner.id, f"renewal:{c.id}:T-16") for owner, c in zip(owners, commercial, strict=True)]
    for msg, first, second in zip(messages, compulsory, commercial, strict=True):
        assert msg.params["policy"] == {lang: _listed(lang, first, second)
                                        for lang in ("zh-CN", "en")}
    for size in (1, 2, 10):
        assert (await run_plan(_ctx(day, batch_size=size))).total == 0
    assert await renewal.expiring(END).count() == 3


async def test_different_expiry_dates_on_one_car_stay_separate_messages(db: str) -> None:
    owner = await factories.customer()
    compulsory = await factories.policy(owner, end=END, product=Product.COMPULSORY)
    commercial = await factories.policy(owner, end=END + timedelta(days=2), plate=compulsory.plate)
    queued = await _walk(END - timedelta(days=2), END)
    assert queued == {
        END - timedelta(days=2): [f"renewal:{compulsory.id}:T-2"],
        END: [f"renewal:{commercial.id}:T-2"],
    }
    assert (await Message.get(dedup_key=f"renewal:{commercial.id}:T-2")).params["policy"] == {
        lang: _listed(lang, commercial) for lang in ("zh-CN", "en")}
