"""Every provider reply is survivable: faults injected through the fake Bot API and the fake
Twilio (JSON errors of every class, a proxy's HTML error pages, unreadable answers), each
classified as transient (retried with back-off), permanent, or unknown outcome — and the
dispatcher carries on with the next message. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from bot.delivery.dispatcher import Dispatcher
from bot.delivery.senders import CHANNEL_PAUSE_SECONDS
from storage.models import Category, Message, MessageStatus
from tests import factories as f
from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import SDK_WARNING_FILTERS, FakeTwilio
from tests.test_dispatcher import Rig
from tests.test_dispatcher import rig as dispatcher_rig  # noqa: F401 - a fixture

pytestmark = [pytest.mark.filterwarnings(w) for w in SDK_WARNING_FILTERS]


async def _service(owner: object, key: str) -> Message:
    return await f.queued(owner, key=key, kind="claim_update",  # type: ignore[arg-type]
                          category=Category.SERVICE, template="claim_update",
                          params={"claim": key, "status": "已结案", "note": ""})


@pytest.fixture
def rig(dispatcher_rig: Rig) -> Rig:  # noqa: F811 - the fixture, not the import
    """test_dispatcher's rig: real aiogram (engage run's session) and twilio clients."""
    return dispatcher_rig


@dataclass(frozen=True)
class Outcome:
    status: MessageStatus
    attempts: int
    retry_in: float | None = None  # seconds until not_before, when requeued
    reason: str = ""


async def _outcome_is(dispatcher: Dispatcher, rig: Rig, hit: Message, expected: Outcome,
                      channel: str) -> None:
    assert await dispatcher.dispatch_once() == 1
    await hit.refresh_from_db()
    assert (hit.status, hit.attempts) == (expected.status, expected.attempts), hit.last_error
    if expected.reason:
        assert hit.skip_reason == expected.reason
    if expected.retry_in is not None:
        assert hit.not_before == rig.clock.now + timedelta(seconds=expected.retry_in)
    assert hit.last_error.startswith(channel)


PAUSED = Outcome(MessageStatus.PENDING, 0, CHANNEL_PAUSE_SECONDS)
RETRIED = Outcome(MessageStatus.PENDING, 1)
UNKNOWN = Outcome(MessageStatus.UNKNOWN, 1)
REJECTED = Outcome(MessageStatus.FAILED, 1, reason="rejected")

TELEGRAM_FAULTS: dict[str, tuple[Callable[[FakeTelegram], None], Outcome]] = {
    "json 401 token refused": (lambda tg: tg.fail_next("sendMessage", 401), PAUSED),
    "json 404 no bot here": (lambda tg: tg.fail_next("sendMessage", 404), PAUSED),
    "json 409 conflict": (lambda tg: tg.fail_next("sendMessage", 409), RETRIED),
    "json 413 too large": (lambda tg: tg.fail_next("sendMessage", 413), REJECTED),
    "json 500": (lambda tg: tg.fail_next("sendMessage", 500), RETRIED),
    "json 418 unforeseen": (lambda tg: tg.fail_next("sendMessage", 418), REJECTED),
    "html 502 proxy": (lambda tg: tg.proxy_error(status=502, times=1), RETRIED),
    "html 503 proxy": (lambda tg: tg.proxy_error(status=503, times=1), RETRIED),
    "html 504 proxy": (lambda tg: tg.proxy_error(status=504, times=1), UNKNOWN),
    "html 403 proxy": (lambda tg: tg.proxy_error(status=403, times=1), PAUSED),
    "html 429 proxy": (lambda tg: tg.proxy_error(status=429, times=1),
                       Outcome(MessageStatus.PENDING, 0, 5.0)),
    "html 200 unreadable": (lambda tg: tg.proxy_error(status=200, times=1), UNKNOWN),
}


@pytest.mark.parametrize("fault", list(TELEGRAM_FAULTS))
async def test_every_bot_api_fault_is_classified_and_the_next_message_goes(
    rig: Rig, fault: str
) -> None:
    inject, expected = TELEGRAM_FAULTS[fault]
    first, second = await f.customer(), await f.customer()
    await f.link_telegram(first, 8101)
    await f.link_telegram(second, 8102)
    hit = await _service(first, "C-1")
    dispatcher = rig.make()
    inject(rig.telegram)
    await _outcome_is(dispatcher, rig, hit, expected, "telegram: ")

    after = await _service(second, "C-2")  # the dispatcher is fine: the next one goes
    assert await dispatcher.dispatch_once() == 1
    await after.refresh_from_db()
    assert after.status == MessageStatus.SENT
    assert [m["chat_id"] for m in rig.telegram.sent_messages()].count(8102) == 1


TWILIO_FAULTS: dict[str, tuple[Callable[[FakeTwilio], None], Outcome]] = {
    "20003 credentials refused": (lambda tw: tw.script_error(20003), PAUSED),
    "20500 server error": (lambda tw: tw.script_error(20500), RETRIED),
    "21617 too long": (lambda tw: tw.script_error(21617), REJECTED),
    "html 502 proxy": (lambda tw: tw.proxy_error(status=502, times=1), RETRIED),
    "html 504 proxy": (lambda tw: tw.proxy_error(status=504, times=1), UNKNOWN),
    "html 401 proxy": (lambda tw: tw.proxy_error(status=401, times=1), PAUSED),
    "html 200 unreadable": (lambda tw: tw.proxy_error(status=200, times=1), UNKNOWN),
}


@pytest.mark.parametrize("fault", list(TWILIO_FAULTS))
async def test_every_twilio_fault_is_classified_and_the_next_message_goes(
    rig: Rig, fault: str
) -> None:
    inject, expected = TWILIO_FAULTS[fault]
    first, second = await f.customer(), await f.customer()
    hit = await _service(first, "C-1")
    dispatcher = rig.make()
    inject(rig.twilio)
    await _outcome_is(dispatcher, rig, hit, expected, "sms: ")

    after = await _service(second, "C-2")
    assert await dispatcher.dispatch_once() == 1
    await after.refresh_from_db()
    assert after.status == MessageStatus.SENT
    assert [r.to for r in rig.twilio.sent_messages()] == [second.phone]


async def test_unforeseen_error_in_one_message_fails_it_alone(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """A message whose template cannot be rendered (a bug, not a provider reply) is failed
    with reason ``error``; the rest of its batch is sent."""
    people = [await f.customer() for _ in range(3)]
    for n, person in enumerate(people):
        await f.link_telegram(person, 8200 + n)
    broken = await f.queued(people[0], key="broken", kind="claim_update",
                            category=Category.SERVICE, template="claim_update", params={})
    fine = [await _service(person, f"C-{n}") for n, person in enumerate(people[1:])]
    with caplog.at_level(logging.ERROR, logger="bot.delivery.dispatcher"):
        assert await rig.make().dispatch_once() == 3
    await broken.refresh_from_db()
    assert (broken.status, broken.skip_reason) == (MessageStatus.FAILED, "error")
    assert broken.last_error.startswith("error: ")
    assert [r.levelname for r in caplog.records] == ["ERROR"]
    for msg in fine:
        await msg.refresh_from_db()
        assert msg.status == MessageStatus.SENT


async def test_html_502_outage_loses_nothing_and_the_loop_lives_on(rig: Rig) -> None:
    """The fault of the issue: a proxy answers 502 text/html for a while. Every message is
    sent exactly once in the end, the pipeline never stops, nothing stays claimed."""
    rig.settings.delivery.backoff_base_seconds = 0.01
    rig.settings.delivery.poll_interval_seconds = 0.02
    rig.clock.now = datetime.now(UTC)  # real time: retries come due by themselves
    dispatcher = rig.make(clock=lambda: datetime.now(UTC))
    people = [await f.customer() for _ in range(30)]
    for n, person in enumerate(people):
        await f.link_telegram(person, 9000 + n)
        await f.queued(person, key=f"svc:{n}", kind="claim_update", category=Category.SERVICE,
                       template="claim_update", params={"claim": f"C{n}", "status": "已结案",
                                                         "note": ""},
                       not_before=rig.clock.now)
    rig.telegram.proxy_error(status=502, times=40)
    stop = asyncio.Event()
    loop = asyncio.ensure_future(dispatcher.pipeline(stop))
    try:
        for _ in range(600):
            if await Message.filter(status=MessageStatus.SENT).count() == 30:
                break
            assert not loop.done(), loop
            await asyncio.sleep(0.05)
        assert rig.telegram.proxy_error_answers == 40
        assert not loop.done()  # still dispatching after the outage
    finally:
        stop.set()
        await loop
    per_chat = Counter(int(m["chat_id"]) for m in rig.telegram.sent_messages())
    assert len(per_chat) == 30 and set(per_chat.values()) == {1}
    assert await Message.filter(status=MessageStatus.SENT).count() == 30
    assert not await Message.filter(status=MessageStatus.CLAIMED).exists()


async def test_a_batch_slower_than_its_lease_keeps_its_claim(rig: Rig) -> None:
    """A batch that takes longer to send than ``lease_seconds`` (a slow channel) extends its
    lease while it sends: another dispatcher never claims it again, nothing goes twice."""
    from bot.delivery.dispatcher import Limits
    from bot.delivery.ratelimit import local_rate_limiter

    rig.settings.delivery.lease_seconds = 5
    rig.settings.delivery.poll_interval_seconds = 0.1
    now = lambda: datetime.now(UTC)  # noqa: E731 - leases run on the real clock here
    people = [await f.customer() for _ in range(14)]
    for n, person in enumerate(people):
        await f.link_telegram(person, 9500 + n)
        await f.queued(person, key=f"slow:{n}", kind="claim_update", category=Category.SERVICE,
                       template="claim_update", params={"claim": f"C{n}", "status": "已结案",
                                                         "note": ""}, not_before=now())
    slow = rig.make(clock=now, limits=Limits(telegram=local_rate_limiter(2.0)))  # 7 s
    other = rig.make(clock=now)
    stop = asyncio.Event()
    first = asyncio.ensure_future(slow.pipeline(stop, until_idle=True))
    await asyncio.sleep(0.3)  # the slow one has claimed all 14
    second = asyncio.ensure_future(other.pipeline(stop))
    await first
    stop.set()
    await second
    per_chat = Counter(int(m["chat_id"]) for m in rig.telegram.sent_messages())
    assert len(per_chat) == 14 and set(per_chat.values()) == {1}
    assert await Message.filter(status=MessageStatus.SENT).count() == 14
