"""Twilio status callbacks that arrive before the dispatcher has written the message's sid
are kept and applied when the outcome is written: none is lost. The fake Twilio calls the
real aiohttp application back, signed like Twilio, before it even answers the create."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.delivery import reports
from bot.delivery.dispatcher import Dispatcher
from bot.delivery.senders import TwilioSms
from bot.texts import Texts
from bot.web.app import Overrides, build_app
from storage.models import Category, Consent, Message, MessageStatus, SmsStatusReport
from tests import factories as f
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, SDK_WARNING_FILTERS, FakeTwilio

pytestmark = [pytest.mark.filterwarnings(w) for w in SDK_WARNING_FILTERS]


@dataclass
class Rig:
    dispatcher: Dispatcher
    twilio: FakeTwilio
    server: str


@pytest.fixture
async def rig(db: str, fake_twilio: FakeTwilio) -> AsyncIterator[Rig]:
    settings = f.settings_for(db_url=db, twilio_base=fake_twilio.base_url)
    app = build_app(settings, Overrides(run_dispatcher=False, run_scheduler=False,
                                        run_campaigns=False, run_media_sweep=False,
                                        manage_database=False, clock=lambda: f.NOON_SHANGHAI))
    sms = TwilioSms(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=f.FROM_NUMBER,
                    api_base=fake_twilio.base_url)
    async with TestClient(TestServer(app)) as client:
        dispatcher = Dispatcher(settings, Texts.load(), telegram=None, sms=sms,
                                clock=lambda: f.NOON_SHANGHAI,
                                skip_locked=not db.startswith("sqlite"))
        try:
            yield Rig(dispatcher, fake_twilio, str(client.make_url("/")).rstrip("/"))
        finally:
            await sms.close()


async def _queue_sms(n: int) -> list[Message]:
    people = [await f.customer(phone=f"+1415444{i:04d}") for i in range(n)]
    return [await f.queued(p, kind="claim_update", category=Category.SERVICE,
                           template="claim_update",
                           params={"claim": f"C{i}", "status": "已结案", "note": ""})
            for i, p in enumerate(people)]


async def test_callbacks_before_the_create_is_answered_are_applied_with_the_outcome(
    rig: Rig,
) -> None:
    queued = await _queue_sms(11)
    rig.twilio.call_back(("sent", "delivered"), before_answer=True, target=rig.server)
    assert await rig.dispatcher.dispatch_once() == 11
    # Twilio had every answer before the sids were written: all of them were kept...
    assert len(rig.twilio.callbacks) == 22 and {c.answer for c in rig.twilio.callbacks} == {204}
    # ...and applied when the batch's outcomes were written.
    for msg in queued:
        await msg.refresh_from_db()
        assert msg.status == MessageStatus.DELIVERED and msg.delivered_at == f.NOON_SHANGHAI
    assert await SmsStatusReport.all().count() == 0


async def test_an_early_21610_opt_out_is_not_lost(rig: Rig) -> None:
    [msg] = await _queue_sms(1)
    rig.twilio.call_back(("sent", "failed"), before_answer=True, target=rig.server,
                         error_code="21610")
    await rig.dispatcher.dispatch_once()
    await msg.refresh_from_db()
    assert msg.status == MessageStatus.FAILED and msg.last_error == "sms: twilio 21610"
    assert await Consent.filter(customer_id=msg.customer_id, channel="sms", granted=False,
                                category=Category.MARKETING).exists()


async def test_callbacks_after_the_answer_still_land(rig: Rig) -> None:
    queued = await _queue_sms(3)
    rig.twilio.call_back(("delivered",), before_answer=False, target=rig.server)
    await rig.dispatcher.dispatch_once()
    await rig.twilio.close()  # waits for the callbacks posted in the background
    for msg in queued:
        await msg.refresh_from_db()
        assert msg.status == MessageStatus.DELIVERED
    assert await SmsStatusReport.all().count() == 0


async def test_unclaimed_reports_are_dropped_after_an_hour(db: str) -> None:
    old = f.NOON_SHANGHAI - reports.KEEP - timedelta(seconds=1)
    await reports.keep("SM" + "1" * 32, MessageStatus.SENT, "", now=old)
    await reports.keep("SM" + "2" * 32, MessageStatus.DELIVERED, "", now=f.NOON_SHANGHAI)
    assert await SmsStatusReport.all().values_list("message_sid", flat=True) == ["SM" + "2" * 32]
