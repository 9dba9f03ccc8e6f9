"""The conversations desk from the customer's side: Telegram through the real dispatcher and
the fake Bot API, SMS through the signed webhook of the real app. Hand-off by each trigger,
silence while a person has the conversation (commands still answered), office hours with an
injected clock, unknown senders' own threads, replays recorded once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot.settings import TwilioSettings
from bot.web.app import Overrides, build_app
from bot.web.operators.access import Actor, create_operator
from bot.web.operators.inbox import resolve
from storage.desk_models import (
    Author,
    Conversation,
    ConversationMessage,
    ConversationStatus,
    Direction,
)
from storage.models import Channel, InboundSms
from storage.operator_models import Role
from tests import factories as f
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.test_sms_inbound import message_of, new_sid, signature
from tests.test_telegram_support import Rig

pytest_plugins = ["tests.test_telegram_support"]

MONDAY_10 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai, office open
SATURDAY_NOON = f.NOON_SHANGHAI
NATIONAL_DAY = datetime(2026, 10, 2, 2, 0, tzinfo=UTC)  # closed until Thursday 8 October


async def thread_of(customer_id: int) -> Conversation:
    return await Conversation.get(key=f"c:{customer_id}")


async def said(conversation: Conversation) -> list[tuple[str, str]]:
    rows = await ConversationMessage.filter(conversation_id=conversation.id).order_by("id")
    return [(Author(m.author).value, m.body) for m in rows]


async def operator() -> Actor:
    op, _ = await create_operator("小李", Role.AGENT)
    return Actor(op, "token")


# -- Telegram ---------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["人工", "转人工", "客服", "agent", "Human!", "人工。"])
async def test_a_handoff_word_queues_the_conversation_and_the_bot_then_keeps_quiet(
    tg: Rig, word: str
) -> None:
    tg.clock.now = MONDAY_10
    owner, user = await tg.linked(language="zh-CN")
    await tg.send(user, word)
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_desk_handoff_open", minutes=5)
    thread = await thread_of(owner.id)
    assert (thread.status, thread.handoff_reason) == (ConversationStatus.WAITING, "keyword")
    assert thread.waiting_since == MONDAY_10

    before = len(tg.sent(user.id))
    await tg.send(user, "我的车被刮了，怎么办？")
    await tg.send(user, location={"latitude": 31.2304, "longitude": 121.4737})
    assert len(tg.sent(user.id)) == before  # a person has it: the bot says nothing
    await tg.send(user, "/policies")  # commands still work
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_policies_empty", hotline="95500")

    thread = await thread_of(owner.id)
    assert await said(thread) == [
        ("customer", word), ("bot", tg.t("zh-CN")("tg_desk_handoff_open", minutes=5)),
        ("customer", "我的车被刮了，怎么办？"), ("customer", "31.23040,121.47370")]
    assert thread.unread == 3
    kinds = await ConversationMessage.filter(conversation_id=thread.id,
                                             direction=Direction.IN).values_list("kind",
                                                                                 flat=True)
    assert kinds == ["text", "text", "location"]


@pytest.mark.parametrize("how", ["/agent", "💬 联系客服", "💬 Talk to a person"])
async def test_the_contact_button_and_agent_command_hand_off(tg: Rig, how: str) -> None:
    tg.clock.now = MONDAY_10
    owner, user = await tg.linked(language="en")
    await tg.send(user, how)
    assert tg.last_text(user.id) == tg.t("en")("tg_desk_handoff_open", minutes=5)
    assert "5 minutes" in tg.last_text(user.id)
    thread = await thread_of(owner.id)
    assert (thread.status, thread.handoff_reason) == (ConversationStatus.WAITING, "button")


async def test_help_and_the_main_menu_carry_the_contact_button(tg: Rig) -> None:
    _, user = await tg.linked(language="zh-CN")
    await tg.send(user, "/help")
    keyboard = tg.last(user.id)["reply_markup"]["keyboard"]
    assert "💬 联系客服" in [button["text"] for row in keyboard for button in row]
    assert "/agent" in tg.last_text(user.id)


async def test_two_misunderstood_texts_in_a_row_hand_off(tg: Rig) -> None:
    tg.clock.now = MONDAY_10
    owner, user = await tg.linked(language="zh-CN")
    t = tg.t("zh-CN")
    await tg.send(user, "天气怎么样")
    assert tg.last_text(user.id) == t("tg_unknown_text")
    assert (await thread_of(owner.id)).status is ConversationStatus.BOT
    tg.clock.advance(minutes=3)
    await tg.send(user, "你们几点下班")
    assert tg.last_text(user.id) == t("tg_desk_handoff_open", minutes=5)
    thread = await thread_of(owner.id)
    assert (thread.status, thread.handoff_reason) == (ConversationStatus.WAITING,
                                                      "misunderstood")
    assert thread.waiting_since == MONDAY_10 + timedelta(minutes=3)


async def test_misunderstood_texts_far_apart_do_not_hand_off(tg: Rig) -> None:
    tg.clock.now = MONDAY_10
    owner, user = await tg.linked(language="zh-CN")
    await tg.send(user, "天气怎么样")
    tg.clock.advance(minutes=31)  # conversations.misunderstood_window_minutes = 30
    await tg.send(user, "你们几点下班")
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_unknown_text")
    assert (await thread_of(owner.id)).status is ConversationStatus.BOT


@pytest.mark.parametrize(("now", "lang", "when"), [
    (SATURDAY_NOON, "zh-CN", "11月23日 09:00"),
    (SATURDAY_NOON, "en", "Mon 23 Nov 09:00"),
    (NATIONAL_DAY, "zh-CN", "10月8日 09:00"),  # the holiday week is closed
    (MONDAY_10 + timedelta(hours=9), "en", "Tue 24 Nov 09:00"),  # 19:00, after hours
])
async def test_outside_office_hours_the_customer_is_told_when_a_person_answers(
    tg: Rig, now: datetime, lang: str, when: str
) -> None:
    tg.clock.now = now
    owner, user = await tg.linked(language=lang)
    await tg.send(user, "人工")
    assert tg.last_text(user.id) == tg.t(lang)("tg_desk_handoff_closed", when=when)
    assert (await thread_of(owner.id)).status is ConversationStatus.WAITING  # still queued


async def test_an_unlinked_user_has_a_thread_of_their_own_and_is_asked_to_link(
    tg: Rig
) -> None:
    from tests.test_telegram_support import User

    stranger = User(990_001)
    await tg.send(stranger, "人工")
    assert tg.last_text(stranger.id) == tg.t("zh-CN")("tg_link_first")
    thread = await Conversation.get(key=f"t:{stranger.id}")
    assert thread.customer_id is None and thread.status is ConversationStatus.BOT
    assert await said(thread) == [("customer", "人工"), ("bot", tg.t("zh-CN")("tg_link_first"))]


async def test_resolving_gives_the_conversation_back_to_the_bot(tg: Rig) -> None:
    tg.clock.now = MONDAY_10
    owner, user = await tg.linked(language="zh-CN")
    await tg.send(user, "人工")
    thread = await thread_of(owner.id)
    await resolve(await operator(), thread.id, now=MONDAY_10 + timedelta(minutes=10))
    await tg.send(user, "谢谢")
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_unknown_text")
    thread = await thread_of(owner.id)
    assert thread.status is ConversationStatus.BOT and thread.assignee_id is None


# -- SMS --------------------------------------------------------------------------------------


class Sms:
    def __init__(self, client: TestClient) -> None:  # type: ignore[type-arg]
        self.client = client

    async def text(self, sender: str, body: str, *, sid: str | None = None) -> str:
        params = {"MessageSid": sid or new_sid(), "AccountSid": ACCOUNT_SID, "From": sender,
                  "To": f.FROM_NUMBER, "Body": body, "NumMedia": "0"}
        resp = await self.client.post("/sms/inbound", data=params, headers=signature(params))
        assert resp.status == 200
        return message_of(await resp.text())


@pytest.fixture
async def sms(db: str, fake_twilio: FakeTwilio, tmp_path: Path) -> AsyncIterator[Sms]:
    settings = f.settings_for(
        db_url=db, uploads={"directory": str(tmp_path / "uploads")},
        twilio=TwilioSettings(account_sid=ACCOUNT_SID, auth_token=SecretStr(AUTH_TOKEN),
                              from_number=f.FROM_NUMBER, api_base=fake_twilio.base_url,
                              public_base_url=f.PUBLIC_URL))
    app = build_app(settings, Overrides(run_dispatcher=False, run_scheduler=False,
                                        manage_database=False, run_campaigns=False,
                                        run_media_sweep=False, clock=lambda: MONDAY_10))
    async with TestClient(TestServer(app)) as client:
        yield Sms(client)


async def test_sms_agent_keyword_hands_off_then_free_text_gets_no_reply_but_keywords_do(
    sms: Sms
) -> None:
    owner = await f.policyholder(phone="+8613800001234")
    reply = await sms.text(owner.phone, "转人工")
    assert reply == "【安行保险】已转人工客服，约5分钟内回复您。"
    thread = await thread_of(owner.id)
    assert (thread.status, thread.last_channel) == (ConversationStatus.WAITING, "sms")
    assert await sms.text(owner.phone, "我要改地址") == ""
    assert (await sms.text(owner.phone, "保单")).startswith("【安行保险】")
    assert await said(thread) == [("customer", "转人工"), ("bot", reply),
                                  ("customer", "我要改地址")]


async def test_sms_two_unknown_texts_hand_off_and_a_redelivery_is_recorded_once(
    sms: Sms
) -> None:
    owner = await f.policyholder(phone="+8613800001235")
    first = await sms.text(owner.phone, "你好")
    assert "人工" in first  # the keyword menu names the way to a person
    sid = new_sid()
    second = await sms.text(owner.phone, "在吗", sid=sid)
    assert second == "【安行保险】已转人工客服，约5分钟内回复您。"
    assert await sms.text(owner.phone, "在吗", sid=sid) == second  # Twilio retried
    thread = await thread_of(owner.id)
    assert [body for _, body in await said(thread)] == ["你好", first, "在吗", second]
    assert await InboundSms.filter(message_sid=sid).count() == 1


async def test_an_unknown_number_has_a_thread_of_its_own(sms: Sms) -> None:
    reply = await sms.text("+8613912340000", "人工")
    assert reply == "【安行保险】未查到您的客户信息，如需帮助请致电95500。"
    thread = await Conversation.get(key="p:+8613912340000")
    assert (thread.customer_id, thread.status) == (None, ConversationStatus.BOT)
    assert await said(thread) == [("customer", "人工"), ("bot", reply)]


@pytest.mark.parametrize(("body", "command", "argument"), [
    ("人工", "agent", ""), ("转人工！", "agent", ""), ("Human", "agent", ""), ("客服", "agent", ""),
    ("投诉", "complaint", ""), ("投诉：理赔太慢", "complaint", "理赔太慢"),
    ("我要投诉 乱收费", "complaint", "乱收费"), ("５", "score", "5"), ("3", "score", "3"),
    ("6", "menu", ""), ("人工智能", "menu", ""),
])
def test_desk_keywords_parse(body: str, command: str, argument: str) -> None:
    from bot.sms.keywords import parse

    parsed = parse(body)
    assert (parsed.command.value, parsed.argument) == (command, argument)


async def test_retention_empties_conversation_words_older_than_the_inbound_cutoff(
    db: str, tmp_path: Path
) -> None:
    from bot.desk.threads import Desk, Sender
    from bot.settings import Settings
    from storage import retention

    owner = await f.customer()
    desk = Desk(Settings())
    old = await desk.inbound(Sender.of_customer(owner.id), Channel.SMS, "车牌沪A12345",
                             now=MONDAY_10 - timedelta(days=400))
    await desk.inbound(Sender.of_customer(owner.id), Channel.SMS, "还在吗", now=MONDAY_10)
    cutoffs = retention.Cutoffs(documents_before=MONDAY_10 - timedelta(days=730),
                                inbound_before=MONDAY_10 - timedelta(days=365),
                                params_before=MONDAY_10 - timedelta(days=180))
    dry = await retention.run(cutoffs, uploads=tmp_path, batch=10, max_batches=5, dry_run=True)
    assert dry.inbound_bodies == 1
    await retention.run(cutoffs, uploads=tmp_path, batch=10, max_batches=5)
    bodies = await ConversationMessage.filter(conversation_id=old.conversation_id).order_by(
        "id").values_list("body", flat=True)
    assert bodies == ["", "还在吗"]
