"""Reporting an accident in Telegram (issue 20): the guided report through real update JSON,
safety first, back and cancel, a restart in the middle, the guards (another customer's
policy, a policy not in force, one open draft, the daily limit) and the Claim it becomes."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from typing import Any

import pytest
from aiogram.fsm.storage.redis import RedisStorage
from redis.exceptions import ConnectionError as RedisConnectionError

from bot.accident.sweep import SweepResult, sweep
from bot.settings import RedisSettings
from bot.telegram import report
from bot.telegram.runtime import build_dispatcher, fsm_storage
from bot.telegram.updates import UpdateFeed
from storage.accident_models import CoreDelivery, DraftStatus, ReportDraft
from storage.models import Claim, ClaimEvent, ClaimStatus, Customer, Document, Message, Policy
from tests import factories as f
from tests.test_telegram_support import BOT_USERNAME, Rig, User, button_data, inline_buttons
from tests.test_telegram_uploads import jpeg, photo

pytest_plugins = ["tests.test_telegram_support"]


async def _car(owner: Customer, **extra: Any) -> Policy:
    return await f.policy(owner, plate=extra.pop("plate", "沪A12345"), vehicle="大众帕萨特",
                          **extra)


def texts(params: dict[str, Any]) -> list[str]:
    return [str(b["text"]) for b in inline_buttons(params)]


async def _draft(owner: Customer) -> ReportDraft:
    return await ReportDraft.get(customer_id=owner.id)


async def _to_where(tg: Rig, user: User, policy: Policy) -> None:
    """/report → safe → the car → just now."""
    await tg.send(user, "/report")
    await tg.press(user, "rpt:safe:")
    await tg.press(user, f"rpt:car:{policy.id}")
    await tg.press(user, "rpt:now:")


async def test_a_full_report_with_photos_and_location_becomes_a_reported_claim(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    policy = await _car(owner)
    t = tg.t("en")
    await tg.send(user, t("tg_menu_report"))
    assert tg.last_text(user.id) == t("tg_report_safety")
    assert button_data(tg.last(user.id)) == ["rpt:danger:", "rpt:safe:", "rpt:cancel:"]
    await tg.press(user, "rpt:safe:")
    assert tg.last_text(user.id) == t("tg_report_car")
    assert texts(tg.last(user.id))[0] == "沪A12345 大众帕萨特"
    await tg.press(user, f"rpt:car:{policy.id}")
    await tg.press(user, "rpt:pick:")
    days = button_data(tg.last(user.id))
    assert days[0] == "rpt:day:2026-11-21" and days[30] == "rpt:day:2026-10-22"
    assert days[31:] == ["rpt:back:when_day", "rpt:cancel:"]
    await tg.press(user, "rpt:day:2026-11-20")
    assert len(button_data(tg.last(user.id))) == 24 + 2  # a past day: every hour
    await tg.press(user, "rpt:hour:18")
    assert t("tg_report_where") in tg.texts_to(user.id)
    share = tg.last(user.id)["reply_markup"]["keyboard"][0][0]
    assert share["request_location"] is True
    await tg.send(user, location={"latitude": 31.2304, "longitude": 121.4737})
    assert tg.last_text(user.id) == t("tg_report_what")
    await tg.press(user, "rpt:type:rear_end")
    assert tg.last_text(user.id) == t("tg_report_other_party")
    await tg.send(user, "苏E 88888")
    tg.fake.clear()
    for n in range(2):
        content = jpeg(20 + n)
        tg.fake.add_file(f"AC{n}", content, f"photos/ac_{n}.jpg")
        await tg.send(user, photo=photo(f"AC{n}", len(content)), media_group_id="scene")
    [ack] = tg.sent(user.id)
    assert ack["text"] == t("tg_report_album_received", album=1, count=1)
    [edit] = tg.sent(user.id, "editMessageText")
    assert edit["text"] == t("tg_report_album_received", album=2, count=2)
    await tg.press(user, "rpt:photos:")
    assert tg.last_text(user.id) == t("tg_report_phone", phone=owner.phone)
    await tg.press(user, "rpt:phone:")
    summary = tg.last_text(user.id)
    assert "沪A12345" in summary and "2026-11-20 18:00" in summary
    assert "SUE88888" not in summary and "苏E88888" in summary
    assert "location 31.23040, 121.47370" in summary
    assert button_data(tg.last(user.id)) == ["rpt:submit:", "rpt:back:confirm", "rpt:cancel:"]
    await tg.press(user, "rpt:submit:")

    claim = await Claim.get(customer_id=owner.id)
    assert (claim.status, claim.policy_id, claim.reported_at) == (
        ClaimStatus.REPORTED, policy.id, tg.clock())
    assert claim.number.startswith("BA261121")
    assert "Rear-end collision" in claim.description and "苏E88888" in claim.description
    [event] = await ClaimEvent.filter(claim_id=claim.id)
    assert event.status == ClaimStatus.REPORTED
    docs = await Document.filter(claim_id=claim.id)
    assert len(docs) == 2 and all(d.original_name == "photos:photo" for d in docs)
    assert tg.last_text(user.id) == t("tg_report_done", reference=claim.number,
                                      phone=owner.phone, hotline="95500")
    delivery = await CoreDelivery.get(claim_id=claim.id)
    accident = delivery.payload["accident"]
    assert (delivery.reference, delivery.payload["policy_number"]) == (claim.number, policy.number)
    assert accident["occurred_at"] == datetime(2026, 11, 20, 10, tzinfo=UTC).isoformat()
    assert accident["location"]["latitude"] == 31.2304
    assert (accident["type"], accident["other_party_plate"]) == ("rear_end", "苏E88888")
    assert [d["path"] for d in delivery.payload["documents"]] == [
        f"/api/v1/documents/{d.id}/file" for d in sorted(docs, key=lambda d: d.id)]
    assert delivery.payload["documents"][0]["sha256"] == min(docs, key=lambda d: d.id).sha256
    draft = await _draft(owner)
    assert (draft.status, draft.open_for, draft.claim_id) == (
        DraftStatus.SUBMITTED, None, claim.id)
    await tg.send(user, "沪A12345")  # after the report, text is not taken as an answer
    assert await Claim.filter(customer_id=owner.id).count() == 1


async def test_injury_shows_the_emergency_numbers_first_then_the_report_goes_on(tg: Rig) -> None:
    owner, user = await tg.linked()
    policy = await _car(owner)
    t = tg.t("zh-CN")
    await tg.send(user, "/report")
    await tg.press(user, "rpt:danger:")
    emergency = tg.last_text(user.id)
    assert emergency == t("tg_report_emergency", hotline="95500")
    assert "120" in emergency and "122" in emergency
    await tg.press(user, "rpt:go:")
    await tg.press(user, f"rpt:car:{policy.id}")
    await tg.send(user, "11-21 09:15")
    await tg.send(user, "浦东新区世纪大道100号")
    await tg.send(user, "倒车时撞到了路边的柱子")
    await tg.press(user, "rpt:noparty:")
    await tg.press(user, "rpt:photos:")
    await tg.send(user, "13912345678")
    summary = tg.last_text(user.id)
    assert "+8613912345678" in summary and "浦东新区世纪大道100号" in summary
    assert "人员伤亡/妨碍交通：是" in summary
    await tg.press(user, "rpt:submit:")
    claim = await Claim.get(customer_id=owner.id)
    delivery = await CoreDelivery.get(claim_id=claim.id)
    assert delivery.payload["accident"]["injury_or_blocking"] is True
    assert delivery.payload["customer"]["contact_phone"] == "+8613912345678"
    assert delivery.payload["accident"]["occurred_at"] == datetime(
        2026, 11, 21, 1, 15, tzinfo=UTC).isoformat()
    assert "倒车时撞到了路边的柱子" in claim.description


async def test_back_returns_to_the_previous_step_and_cancel_ends_the_report(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    policy = await _car(owner)
    t = tg.t("en")
    await _to_where(tg, user, policy)
    await tg.press(user, "rpt:back:where")
    assert tg.last_text(user.id) == t("tg_report_when", days=30)
    await tg.press(user, "rpt:back:where")  # a second tap on the same old button: nothing
    assert tg.sent(None, "answerCallbackQuery")[-1]["text"] == t("tg_button_expired")
    await tg.press(user, "rpt:back:when")
    assert tg.last_text(user.id) == t("tg_report_car")
    await tg.press(user, "rpt:cancel:")
    assert tg.last_text(user.id) == t("tg_report_cancelled", hotline="95500")
    draft = await _draft(owner)
    assert (draft.status, draft.open_for) == (DraftStatus.CANCELLED, None)
    await tg.send(user, "Nanjing Road 1")  # no report in progress: not an address any more
    assert tg.last_text(user.id) == t("tg_unknown_text")
    await tg.send(user, "/report")  # a new one starts at the safety question
    assert tg.last_text(user.id) == t("tg_report_safety")


async def test_a_restart_in_the_middle_continues_at_the_same_step(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    policy = await _car(owner)
    await _to_where(tg, user, policy)
    # the process restarts: a new dispatcher with empty memory storage
    dispatcher = build_dispatcher(tg.settings, tg.texts, clock=tg.clock,
                                  bot_username=BOT_USERNAME)
    assert await report.restore(dispatcher, tg.bot) == 1
    tg.dispatcher, tg.feed = dispatcher, UpdateFeed(dispatcher, tg.bot, tg.clock)
    tg.clock.advance(minutes=10)
    await tg.send(user, "Century Avenue 100, Pudong")
    assert tg.last_text(user.id) == tg.t("en")("tg_report_what")
    draft = await _draft(owner)
    assert (draft.step, draft.data["where"]) == ("what", {"address": "Century Avenue 100, Pudong"})
    await tg.send(user, "/report")  # /report again resumes instead of starting over
    assert tg.texts_to(user.id)[-2:] == [tg.t("en")("tg_report_resumed"),
                                         tg.t("en")("tg_report_what")]
    assert await ReportDraft.filter(customer_id=owner.id).count() == 1


async def test_another_customers_policy_is_refused(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    await _car(owner)
    stranger = await f.customer()
    theirs = await _car(stranger, plate="沪B99999")
    await tg.send(user, "/report")
    await tg.press(user, "rpt:safe:")
    await tg.press(user, f"rpt:car:{theirs.id}")
    assert tg.texts_to(user.id)[-2:] == [tg.t("en")("tg_not_found"), tg.t("en")("tg_report_car")]
    draft = await _draft(owner)
    assert draft.step == "car" and "plate" not in draft.data


async def test_a_policy_not_in_force_on_the_accident_day_is_refused_with_its_period(
        tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    policy = await _car(owner, end=date(2026, 11, 15))
    t = tg.t("en")
    await tg.send(user, "/report")
    await tg.press(user, "rpt:safe:")
    await tg.press(user, f"rpt:car:{policy.id}")
    await tg.press(user, "rpt:now:")
    assert tg.texts_to(user.id)[-2:] == [
        t("tg_report_refused_not_in_force", plate="沪A12345",
          period="2025-11-15 – 2026-11-15"),
        t("tg_report_when", days=30)]
    await tg.send(user, "2026-11-14 08:00")  # inside the cover: accepted
    assert t("tg_report_where") in tg.texts_to(user.id)
    await tg.send(user, "2026-10-01 08:00")  # not an answer to "where": taken as an address
    assert (await _draft(owner)).step == "what"


async def test_a_time_more_than_30_days_ago_or_in_the_future_is_refused(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    policy = await _car(owner)
    t = tg.t("en")
    await tg.send(user, "/report")
    await tg.press(user, "rpt:safe:")
    await tg.press(user, f"rpt:car:{policy.id}")
    await tg.send(user, "2026-10-01 08:00")
    assert tg.texts_to(user.id)[-2] == t("tg_report_refused_too_early", days=30,
                                         hotline="95500")
    await tg.send(user, "23:30")
    assert tg.texts_to(user.id)[-2] == t("tg_report_refused_in_future")
    await tg.send(user, "tomorrow-ish")
    assert tg.texts_to(user.id)[-2] == t("tg_report_time_unreadable")
    assert (await _draft(owner)).step == "when"


async def test_reports_per_day_are_limited(tg: Rig) -> None:
    tg.settings.report.max_per_day = 1
    owner, user = await tg.linked(language="en")
    policy = await _car(owner)
    await _to_where(tg, user, policy)
    await tg.send(user, "Century Avenue 100")
    await tg.press(user, "rpt:type:glass")
    await tg.press(user, "rpt:noparty:")
    await tg.press(user, "rpt:photos:")
    await tg.press(user, "rpt:phone:")
    await tg.press(user, "rpt:submit:")
    assert await Claim.filter(customer_id=owner.id).count() == 1
    await tg.send(user, "/report")
    assert tg.last_text(user.id) == tg.t("en")("tg_report_refused_daily_limit", limit=1,
                                               hotline="95500")
    assert await ReportDraft.filter(customer_id=owner.id, status=DraftStatus.OPEN).count() == 0
    tg.clock.advance(hours=13)  # the next local day
    await tg.send(user, "/report")
    assert tg.last_text(user.id) == tg.t("en")("tg_report_safety")


async def test_a_stale_button_changes_nothing(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    await _car(owner)
    await tg.send(user, "/report")
    await tg.press(user, "rpt:submit:")
    [alert] = tg.sent(None, "answerCallbackQuery")[-1:]
    assert alert["text"] == tg.t("en")("tg_button_expired")
    assert (await _draft(owner)).step == "safety"
    assert await Claim.all().count() == 0


async def test_a_customer_without_a_policy_in_force_cannot_report(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    await _car(owner, end=date(2026, 9, 30))
    await tg.send(user, "/report")
    await tg.press(user, "rpt:safe:")
    assert tg.last_text(user.id) == tg.t("en")("tg_report_refused_no_policy", hotline="95500")
    assert (await _draft(owner)).status == DraftStatus.CANCELLED


async def test_an_unlinked_user_is_asked_to_link_first(tg: Rig) -> None:
    user = User(990_001)
    await tg.send(user, "/report")
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_link_first")
    assert await ReportDraft.all().count() == 0


async def test_an_abandoned_draft_is_reminded_once_then_expires(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    policy = await _car(owner)
    settings = tg.settings.report
    await tg.send(user, "/report")
    await tg.press(user, "rpt:safe:")
    tg.clock.advance(minutes=20)
    await tg.press(user, f"rpt:car:{policy.id}")  # an answer: the silence starts again
    tg.clock.advance(minutes=29)
    assert await sweep(settings, now=tg.clock()) == SweepResult(0, 0)
    tg.clock.advance(minutes=2)
    assert await sweep(settings, now=tg.clock()) == SweepResult(1, 0)
    tg.clock.advance(hours=2)
    assert await sweep(settings, now=tg.clock()) == SweepResult(0, 0)  # one reminder only
    [reminder] = await Message.filter(customer_id=owner.id, kind="report_reminder")
    assert (reminder.channel_policy, reminder.category) == ("telegram_only", "service")
    tg.clock.advance(hours=21, minutes=28)  # 23 h 59 min after the last answer: still open
    assert await sweep(settings, now=tg.clock()) == SweepResult(0, 0)
    tg.clock.advance(minutes=2)
    assert await sweep(settings, now=tg.clock()) == SweepResult(0, 1)
    assert await sweep(settings, now=tg.clock()) == SweepResult(0, 0)
    draft = await _draft(owner)
    assert (draft.status, draft.open_for) == (DraftStatus.EXPIRED, None)
    assert await Message.filter(customer_id=owner.id, kind="report_expired").count() == 1
    await tg.press(user, "rpt:now:")  # the old buttons are spent
    assert tg.sent(None, "answerCallbackQuery")[-1]["text"] == tg.t("en")("tg_button_expired")
    await tg.send(user, "Century Avenue 100")  # an answer to the expired report
    assert tg.last_text(user.id) == tg.t("en")("tg_report_gone")
    await tg.send(user, "/report")
    assert tg.last_text(user.id) == tg.t("en")("tg_report_safety")
    assert await ReportDraft.filter(customer_id=owner.id, status=DraftStatus.OPEN).count() == 1


async def test_the_reminder_reaches_the_chat_through_the_outbox(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    await _car(owner)
    await tg.send(user, "/report")
    tg.clock.advance(minutes=31)
    await sweep(tg.settings.report, now=tg.clock())
    [reminder] = await Message.filter(kind="report_reminder")
    assert reminder.template_key == "report_reminder" and reminder.not_before == tg.clock()
    assert tg.texts.render("report_reminder", "en", {}).startswith(
        "Your accident report is not finished")


REDIS_URL = os.environ.get("ENGAGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


async def test_with_redis_another_process_continues_the_report(tg: Rig) -> None:
    """``redis.url`` set: the conversation state is shared, so a second process takes the
    next answer without restoring anything."""
    settings = tg.settings.model_copy(update={"redis": RedisSettings(url=REDIS_URL)})
    first, first_isolation = fsm_storage(settings)
    second, second_isolation = fsm_storage(settings)
    assert isinstance(first, RedisStorage)
    try:
        await first.redis.ping()
    except (RedisConnectionError, OSError) as exc:
        await first.close()
        await second.close()
        pytest.skip(f"Redis not reachable at {REDIS_URL} ({exc}); CI provides one")
    owner, user = await tg.linked(language="en")
    policy = await _car(owner)
    try:
        for storage, isolation in ((first, first_isolation), (second, second_isolation)):
            dispatcher = build_dispatcher(tg.settings, tg.texts, clock=tg.clock,
                                          storage=storage, isolation=isolation,
                                          bot_username=BOT_USERNAME)
            tg.feed = UpdateFeed(dispatcher, tg.bot, tg.clock)
            if storage is first:
                await _to_where(tg, user, policy)
            else:
                await tg.send(user, location={"latitude": 31.2, "longitude": 121.5})
        assert tg.last_text(user.id) == tg.t("en")("tg_report_what")
        await tg.press(user, "rpt:cancel:")
    finally:
        await first.close()
        await second.close()
    assert (await _draft(owner)).status == DraftStatus.CANCELLED


async def test_report_photos_go_through_the_upload_checks(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    policy = await _car(owner)
    t = tg.t("en")
    await _to_where(tg, user, policy)
    content = jpeg(3)
    tg.fake.add_file("EARLY", content)
    await tg.send(user, photo=photo("EARLY", len(content)))  # not the photo step yet
    assert tg.last_text(user.id) == t("tg_report_photos_later")
    await tg.send(user, "Century Avenue 100")
    await tg.press(user, "rpt:type:scrape")
    await tg.press(user, "rpt:noparty:")
    tg.fake.add_file("P1", content)
    await tg.send(user, photo=photo("P1", len(content)))
    assert tg.last_text(user.id) == t("tg_report_photo_received", count=1)
    tg.fake.add_file("P1-again", content)
    await tg.send(user, photo=photo("P1-again", len(content)))
    assert tg.last_text(user.id) == t("tg_report_photo_duplicate")
    tg.fake.add_file("TXT", b"not a picture at all")
    await tg.send(user, document={"file_id": "TXT", "file_unique_id": "uTXT",
                                  "file_name": "scene.jpg", "mime_type": "image/jpeg",
                                  "file_size": 20})
    assert tg.last_text(user.id) == t("tg_upload_unsupported")
    await tg.send(user, document={"file_id": "BIG", "file_unique_id": "uBIG",
                                  "file_name": "video.jpg", "mime_type": "image/jpeg",
                                  "file_size": 20 * 1024 * 1024 + 1})
    assert tg.last_text(user.id) == t("tg_upload_too_large", max_mb=20)
    assert len(tg.fake.requests_for("getFile")) == 3  # the early photo was never fetched
    assert len((await _draft(owner)).data["documents"]) == 1
    assert await Document.filter(customer_id=owner.id).count() == 1
