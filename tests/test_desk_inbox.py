"""The inbox from the operator's side, through the real app: the queue with unread counts and
the first-response clock in office time, replies that reach the customer through the outbox
and the fakes on the channel they last wrote on (SMS segment count shown first), replays,
assignment, and threads that cannot be answered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.delivery.senders import AiogramTelegram
from bot.delivery.telegram_session import build_bot
from bot.desk.threads import Desk, Sender
from bot.web.app import Overrides, build_app
from bot.web.keys import DESK, DISPATCHER
from bot.web.operators.access import create_operator
from storage.desk_models import Conversation, ConversationStatus, HandoffReason
from storage.models import Channel, Customer, Message
from storage.operator_models import AuditLog, Role
from tests import factories as f
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram
from tests.fakes.twilio import FakeTwilio

MONDAY_10 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Desk_:
    client: TestClient  # type: ignore[type-arg]
    app: web.Application
    clock: Clock
    tokens: dict[str, str]
    telegram: FakeTelegram
    twilio: FakeTwilio

    @property
    def desk(self) -> Desk:
        return self.app[DESK]

    async def call(self, method: str, path: str, who: str = "小李",
                   **kw: Any) -> tuple[int, Any]:
        resp = await self.client.request(method, f"/api/v1{path}", headers={
            "Authorization": f"Bearer {self.tokens[who]}"}, **kw)
        return resp.status, await resp.json()

    async def handed_off(self, owner: Customer, channel: Channel, text: str = "人工") -> int:
        outcome = await self.desk.inbound(Sender.of_customer(owner.id), channel, text,
                                          handoff=HandoffReason.KEYWORD, now=self.clock())
        return outcome.conversation_id


@pytest.fixture
async def rig(db: str, fake_telegram: FakeTelegram, fake_twilio: FakeTwilio,
              tmp_path: Path) -> AsyncIterator[Desk_]:
    settings = f.settings_for(db_url=db, twilio_base=fake_twilio.base_url,
                              uploads={"directory": str(tmp_path / "uploads")})
    bot = build_bot(DEFAULT_TOKEN, fake_telegram.base_url)
    clock = Clock(MONDAY_10)
    app = build_app(settings, Overrides(telegram=AiogramTelegram(bot), run_dispatcher=False,
                                        run_scheduler=False, run_campaigns=False,
                                        manage_database=False, run_media_sweep=False,
                                        clock=clock))
    tokens = {}
    for name, role in (("小李", Role.AGENT), ("小王", Role.AGENT), ("访客", Role.VIEWER),
                       ("管理员", Role.ADMIN)):
        _, tokens[name] = await create_operator(name, role)
    try:
        async with TestClient(TestServer(app)) as client:
            yield Desk_(client, app, clock, tokens, fake_telegram, fake_twilio)
    finally:
        await bot.session.close()


async def test_an_operator_reply_reaches_the_telegram_customer_through_the_outbox(
    rig: Desk_
) -> None:
    owner = await f.customer(language="zh-CN")
    account = await f.link_telegram(owner)
    tid = await rig.handed_off(owner, Channel.TELEGRAM)
    status, waiting = await rig.call("GET", "/conversations", params={"view": "waiting"})
    assert status == 200
    [row] = waiting["items"]
    assert (row["id"], row["unread"], row["status"], row["last_channel"]) == (
        tid, 1, "waiting", "telegram")

    rig.clock.now += timedelta(minutes=2)
    status, sent = await rig.call("POST", f"/conversations/{tid}/messages",
                                  json={"text": "您好，我是小李，请讲。", "request_key": "k1"})
    assert status == 200 and sent["author"] == "operator" and sent["operator"] == "小李"
    again = await rig.call("POST", f"/conversations/{tid}/messages",
                           json={"text": "您好，我是小李，请讲。", "request_key": "k1"})
    assert again == (200, sent)  # a retried request sends nothing more
    assert await Message.filter(customer_id=owner.id, kind="desk_reply").count() == 1

    await rig.app[DISPATCHER].dispatch_once()
    [delivered] = [r.params for r in rig.telegram.requests_for("sendMessage")]
    assert (delivered["chat_id"], delivered["text"]) == (account.chat_id, "您好，我是小李，请讲。")

    thread = await Conversation.get(id=tid)
    assert thread.status is ConversationStatus.HELD and thread.unread == 0
    assert thread.first_response_at == MONDAY_10 + timedelta(minutes=2)
    _, mine = await rig.call("GET", "/conversations", params={"view": "mine"})
    assert [r["id"] for r in mine["items"]] == [tid]
    assert mine["items"][0]["waited_minutes"] == 2
    _, waiting = await rig.call("GET", "/conversations", params={"view": "waiting"})
    assert waiting["items"] == []


async def test_a_reply_goes_by_sms_when_the_customer_last_wrote_by_sms(rig: Desk_) -> None:
    owner = await f.customer(language="zh-CN", phone="+8613800005678")
    await f.link_telegram(owner)  # linked, but they wrote by SMS: the answer comes by SMS
    tid = await rig.handed_off(owner, Channel.SMS)
    _, short = await rig.call("GET", f"/conversations/{tid}/preview",
                              params={"text": "您好，已为您登记。"})
    assert short == {"channel": "sms", "segments": 1, "encoding": "UCS-2"}
    _, long = await rig.call("GET", f"/conversations/{tid}/preview",
                             params={"text": "您" * 65})  # 6 + 65 > 70: two parts
    assert long["segments"] == 2
    await rig.call("POST", f"/conversations/{tid}/messages", json={"text": "您好，已为您登记。"})
    await rig.app[DISPATCHER].dispatch_once()
    [sms] = rig.twilio.sent_messages()
    assert (sms.to, sms.body) == ("+8613800005678", "【安行保险】您好，已为您登记。")
    assert rig.telegram.requests_for("sendMessage") == []


async def test_the_first_response_clock_counts_office_time_only(rig: Desk_) -> None:
    friday_1758 = datetime(2026, 11, 20, 9, 58, tzinfo=UTC)
    rig.clock.now = friday_1758
    tid = await rig.handed_off(await f.customer(), Channel.SMS)
    rig.clock.now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # Sunday: 2 minutes waited
    _, counts = await rig.call("GET", "/conversations/counts")
    assert (counts["waiting"], counts["waiting_unread"], counts["overdue"]) == (1, 1, 0)
    rig.clock.now = MONDAY_10 - timedelta(minutes=56)  # Monday 09:04: 2 + 4 minutes
    _, counts = await rig.call("GET", "/conversations/counts")
    assert counts["overdue"] == 1
    _, thread = await rig.call("GET", f"/conversations/{tid}")
    assert (thread["waited_minutes"], thread["overdue"]) == (6, True)
    assert [m["body"] for m in thread["messages"]] == ["人工"]


async def test_waiting_is_oldest_first_and_assigning_moves_a_thread_to_the_colleague(
    rig: Desk_
) -> None:
    first = await rig.handed_off(await f.customer(), Channel.SMS)
    rig.clock.now += timedelta(minutes=1)
    second = await rig.handed_off(await f.customer(), Channel.TELEGRAM)
    _, waiting = await rig.call("GET", "/conversations", params={"view": "waiting"})
    assert [r["id"] for r in waiting["items"]] == [first, second]
    status, body = await rig.call("POST", f"/conversations/{first}/assign",
                                  json={"operator": "小王"})
    assert (status, body["assignee"], body["status"]) == (200, "小王", "held")
    _, theirs = await rig.call("GET", "/conversations", who="小王", params={"view": "mine"})
    assert [r["id"] for r in theirs["items"]] == [first]
    assert await AuditLog.filter(action="conversation.assign").count() == 1
    status, body = await rig.call("POST", f"/conversations/{second}/assign",
                                  json={"operator": "nobody"})
    assert (status, body["error"]) == (422, "operator_not_found")
    assert (await Conversation.get(id=second)).status is ConversationStatus.WAITING


async def test_an_unknown_sender_cannot_be_answered_and_a_viewer_cannot_reply(
    rig: Desk_
) -> None:
    outcome = await rig.desk.inbound(Sender.of_phone("+8613912340000"), Channel.SMS, "在吗",
                                     now=rig.clock())
    status, body = await rig.call("POST", f"/conversations/{outcome.conversation_id}/messages",
                                  json={"text": "您好"})
    assert (status, body["error"]) == (409, "conversation_no_customer")
    tid = await rig.handed_off(await f.customer(), Channel.SMS)
    status, _ = await rig.call("POST", f"/conversations/{tid}/messages", who="访客",
                               json={"text": "您好"})
    assert status == 403
    status, body = await rig.call("POST", f"/conversations/{tid}/messages",
                                  json={"text": "   "})
    assert status == 422
    assert await Message.all().count() == 0


async def test_the_console_inbox_lists_highlights_and_answers_a_thread(rig: Desk_) -> None:
    from tests.test_operators_api import console_login

    owner = await f.customer(name="王五", language="zh-CN")
    rig.clock.now = MONDAY_10 - timedelta(hours=1, minutes=30)  # 08:30, before opening
    tid = await rig.handed_off(owner, Channel.SMS, "我要投诉理赔太慢")
    rig.clock.now = MONDAY_10  # 60 minutes of office time later: overdue
    csrf = await console_login(rig.client, rig.tokens["小李"])
    page = await (await rig.client.get("/console/inbox?lang=zh-CN")).text()
    assert f'<tr id="thread-{tid}" class="overdue has-unread">' in page
    assert "王五" in page and "60分钟" in page and 'id="count-overdue"' in page

    thread = await rig.client.get(f"/console/inbox/{tid}?lang=zh-CN")
    html = await thread.text()
    assert thread.status == 200
    assert "我要投诉理赔太慢" in html and 'id="reply-form"' in html
    assert "您好，我是客服，很高兴为您服务。请问有什么可以帮您？" in html  # a quick reply
    assert (await Conversation.get(id=tid)).unread == 0  # opened: read

    resp = await rig.client.post(f"/console/inbox/{tid}/reply", allow_redirects=False, data={
        "csrf_token": csrf, "text": "王先生您好，已为您加急处理。", "request_key": "form-1"})
    assert resp.status == 303 and resp.headers["Location"].endswith("ok=conversation_reply")
    [queued] = await Message.filter(customer_id=owner.id)
    assert (queued.channel_policy, queued.params) == (
        "sms_only", {"body": "王先生您好，已为您加急处理。"})
    resp = await rig.client.post(f"/console/inbox/{tid}/resolve", allow_redirects=False,
                                 data={"csrf_token": csrf})
    assert resp.status == 303
    assert (await Conversation.get(id=tid)).status is ConversationStatus.BOT
