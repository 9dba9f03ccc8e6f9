"""A reminder planned before the renewal (or the cancellation) arrived is not sent: the plan
queues it, the core system's export is imported, and the dispatcher — checking again right
before sending — skips it with reason ``renewed`` or ``cancelled``. The real path: the plan,
the CSV import and the dispatcher against the fake Twilio, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.delivery.dispatcher import Dispatcher
from bot.delivery.senders import TwilioSms
from bot.texts import Texts
from scheduler.config import RenewalSettings, ScheduleSettings
from scheduler.context import PlanContext
from scheduler.plan import run_plan
from storage.importer import import_csv
from storage.models import Customer, Message, MessageStatus, Policy, Product
from tests import factories as f
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, SDK_WARNING_FILTERS, FakeTwilio

pytestmark = [pytest.mark.filterwarnings(w) for w in SDK_WARNING_FILTERS]

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 24)  # plan day D; the policy ends D + 2: T-2 is queued
END = DAY + timedelta(days=2)
NOON = datetime.combine(DAY, time(12), SHANGHAI).astimezone(UTC)


@pytest.fixture
async def dispatch(db: str, fake_twilio: FakeTwilio,
                   ) -> AsyncIterator[Callable[[], object]]:
    settings = f.settings_for(db_url=db, twilio_base=fake_twilio.base_url)
    sms = TwilioSms(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=f.FROM_NUMBER,
                    api_base=fake_twilio.base_url)
    dispatcher = Dispatcher(settings, Texts.load(), telegram=None, sms=sms, clock=lambda: NOON,
                            skip_locked=not db.startswith("sqlite"))
    try:
        yield dispatcher.dispatch_once
    finally:
        await sms.close()


async def _plan(day: date = DAY) -> None:
    await run_plan(PlanContext(day=day, today=day, schedule=ScheduleSettings(),
                               renewal=RenewalSettings()))


async def _import(tmp_path: Path, rows: str) -> None:
    path = tmp_path / "policies.csv"
    path.write_text("number,phone,product,plate,start_date,end_date,premium,status,renews\n"
                    + rows, encoding="utf-8")
    report = await import_csv("policies", path, out=io.StringIO(), now=NOON)
    assert report.rejected == 0


async def _owner() -> tuple[Customer, Policy]:
    owner = await f.customer(name="王芳", phone="+8613912340001")
    old = await f.policy(owner, number="P-OLD", end=END, plate="沪A12345",
                         product=Product.COMMERCIAL)
    return owner, old


async def test_reminder_queued_before_the_renewal_was_imported_is_skipped(
    tmp_path: Path, dispatch: Callable[[], object], fake_twilio: FakeTwilio
) -> None:
    await _owner()
    await _plan()
    [reminder] = await Message.filter(kind="renewal")
    assert reminder.dedup_key.endswith(":T-2")
    await _import(tmp_path, "P-NEW,13912340001,商业险,沪A12345,2026-11-26,2027-11-25,3200,,"
                            "P-OLD\n")
    assert await dispatch() == 1  # type: ignore[misc]
    await reminder.refresh_from_db()
    assert (reminder.status, reminder.skip_reason) == (MessageStatus.SKIPPED, "renewed")
    assert fake_twilio.sent_messages() == []


async def test_an_unlinked_successor_for_the_same_car_counts_as_renewed(
    tmp_path: Path, dispatch: Callable[[], object], fake_twilio: FakeTwilio
) -> None:
    await _owner()
    await _plan()
    await _import(tmp_path, "P-NEW,13912340001,商业险,沪A12345,2026-11-26,2027-11-25,3200,,\n")
    await dispatch()  # type: ignore[misc]
    [reminder] = await Message.filter(kind="renewal")
    assert (reminder.status, reminder.skip_reason) == (MessageStatus.SKIPPED, "renewed")
    assert fake_twilio.sent_messages() == []


async def test_reminder_for_a_policy_cancelled_since_is_skipped_as_cancelled(
    tmp_path: Path, dispatch: Callable[[], object], fake_twilio: FakeTwilio
) -> None:
    await _owner()
    await _plan()
    await _import(tmp_path, "P-OLD,13912340001,商业险,沪A12345,2025-11-27,2026-11-26,3500,"
                            "已退保,\n")
    await dispatch()  # type: ignore[misc]
    [reminder] = await Message.filter(kind="renewal")
    assert (reminder.status, reminder.skip_reason) == (MessageStatus.SKIPPED, "policy_cancelled")
    assert fake_twilio.sent_messages() == []


async def test_a_car_with_one_policy_still_waiting_gets_its_reminder(
    tmp_path: Path, dispatch: Callable[[], object], fake_twilio: FakeTwilio
) -> None:
    owner, _ = await _owner()
    await f.policy(owner, number="P-CMP", end=END, plate="沪A12345",
                   product=Product.COMPULSORY)
    await _plan()
    [reminder] = await Message.filter(kind="renewal")  # one message for the pair
    await _import(tmp_path, "P-NEW,13912340001,商业险,沪A12345,2026-11-26,2027-11-25,3200,,"
                            "P-OLD\n")  # the commercial one renewed, the compulsory not
    await dispatch()  # type: ignore[misc]
    await reminder.refresh_from_db()
    assert reminder.status == MessageStatus.SENT
    [sms] = fake_twilio.sent_messages()
    assert sms.to == owner.phone


async def test_reminder_nobody_renewed_is_sent(
    dispatch: Callable[[], object], fake_twilio: FakeTwilio
) -> None:
    await _owner()
    await _plan()
    await dispatch()  # type: ignore[misc]
    [reminder] = await Message.filter(kind="renewal")
    assert reminder.status == MessageStatus.SENT
    assert "2天" in (fake_twilio.sent_messages()[0].body or "")


async def test_lapse_rescue_after_a_late_renewal_is_skipped(
    tmp_path: Path, dispatch: Callable[[], object], fake_twilio: FakeTwilio
) -> None:
    owner = await f.customer(name="李雷", phone="+8613912340002")
    lapsed_end = DAY - timedelta(days=RenewalSettings().lapse_rescue_days)
    await f.policy(owner, number="P-LAPSED", end=lapsed_end, plate="沪B54321",
                   product=Product.COMMERCIAL)
    await _plan()
    [rescue] = await Message.filter(kind="lapse_rescue")
    start, end = lapsed_end + timedelta(days=1), lapsed_end + timedelta(days=365)
    await _import(tmp_path, f"P-LATE,13912340002,商业险,沪B54321,{start},{end},3200,,"
                            "P-LAPSED\n")
    await dispatch()  # type: ignore[misc]
    await rescue.refresh_from_db()
    assert (rescue.status, rescue.skip_reason) == (MessageStatus.SKIPPED, "renewed")
    assert fake_twilio.sent_messages() == []
