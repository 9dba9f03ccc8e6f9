"""SMS ``报案`` (issue 20): the hotline and the emergency numbers in one segment, and one
call-back task for the claims team — once per customer while it is open, once per
MessageSid however often Twilio delivers it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, timedelta

import pytest

from bot.delivery.segments import count_segments
from bot.sms.keywords import Command, Parsed, parse
from bot.sms.report import REPORT_TASK
from storage.models import InboundSms, Task, TaskStatus
from tests import factories as f
from tests.test_sms_inbound import (
    SmsRig,
    make_rig,  # noqa: F401 (the fixture)
    new_sid,
)


@pytest.fixture
async def sms(make_rig: Callable[..., Awaitable[SmsRig]]) -> SmsRig:  # noqa: F811
    return await make_rig()


@pytest.mark.parametrize("text", ["报案", " 报案。", "出险", "report", "ＲＥＰＯＲＴ！"])
def test_report_words_read_as_the_report_command(text: str) -> None:
    assert parse(text) == Parsed(Command.REPORT)


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
async def test_sms_report_answers_with_the_hotline_and_opens_one_callback(
        sms: SmsRig, lang: str) -> None:
    owner = await f.customer(language=lang, phone="+85291234567" if lang == "en" else None)
    policy = await f.policy(owner, plate="沪A12345", end=date(2026, 12, 31))
    reply = await sms.text(owner.phone, "报案")
    assert reply == sms.replies.to_number(owner.phone).say(
        "sms_report_received", lang, hotline="95500")
    assert "120" in reply and "122" in reply and "95500" in reply
    assert count_segments(reply) == 1
    [task] = await Task.filter(customer_id=owner.id)
    assert (task.kind, task.source, task.status, task.policy_id) == (
        REPORT_TASK, "sms", TaskStatus.OPEN, policy.id)
    assert task.due_at == f.NOON_SHANGHAI + timedelta(minutes=15)
    await sms.text(owner.phone, "出险")  # again while the call-back is open: still one
    assert await Task.filter(customer_id=owner.id).count() == 1
    task.status = TaskStatus.CLOSED
    await task.save()
    await sms.text(owner.phone, "报案")  # a new accident after the call: a new task
    assert await Task.filter(customer_id=owner.id, status=TaskStatus.OPEN).count() == 1


async def test_a_redelivered_report_sms_has_one_effect(sms: SmsRig) -> None:
    owner = await f.customer()
    await f.policy(owner, plate="沪A1", end=date(2026, 12, 31))
    await f.policy(owner, plate="沪B2", end=date(2026, 12, 31))
    sid = new_sid()
    first = await sms.text(owner.phone, "报案", sid=sid)
    assert await sms.text(owner.phone, "报案", sid=sid) == first
    [task] = await Task.filter(customer_id=owner.id)
    assert task.policy_id is None  # two cars: the call will tell which
    assert await InboundSms.filter(message_sid=sid, keyword="report").count() == 1

