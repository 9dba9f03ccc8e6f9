"""Campaigns through the outbox: audience selection, preview, test send, the background
enqueue (resumable, set-based), pause/resume without re-sending, cancel, stats, failures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.delivery.dispatcher import Dispatcher
from bot.settings import Settings
from bot.texts import Texts
from bot.web.app import Overrides, build_app
from bot.web.operators import campaigns
from bot.web.operators.access import Actor, create_operator
from bot.web.operators.audience import AudienceFilter
from bot.web.operators.runner import CampaignRunner, enqueue_all
from storage.loyalty_models import LoyaltyAccount
from storage.models import Consent, Message, MessageStatus, PolicyStatus, Product, Region
from storage.operator_models import Campaign, CampaignStatus, Operator, Role
from tests import factories as f
from tests.test_operators_api import Clock

Client = TestClient[web.Request, web.Application]


@dataclass
class Rig:
    client: Client
    token: str
    clock: Clock
    settings: Settings
    actor: Actor

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        resp = await self.client.request(method, path, headers={
            "Authorization": f"Bearer {self.token}"}, **kw)
        return resp.status, await resp.json()


@asynccontextmanager
async def open_rig(settings: Settings) -> AsyncIterator[Rig]:
    """The app without background tasks (tests run the runner and dispatcher themselves)
    and an admin whose own contact gets test sends."""
    clock = Clock()
    app = build_app(settings, Overrides(run_dispatcher=False, run_scheduler=False,
                                        run_campaigns=False, manage_database=False, clock=clock))
    operator, token = await create_operator("admin", Role.ADMIN, contact_phone="13900000000")
    async with TestClient(TestServer(app)) as client:
        yield Rig(client, token, clock, settings, Actor(operator, "token"))


@pytest.fixture
async def rig(db: str) -> AsyncIterator[Rig]:
    # twilio "enabled" (never called here) so the preview counts SMS recipients
    async with open_rig(f.settings_for(db_url=db, twilio_base="http://127.0.0.1:9",
                                       operator={"campaign_batch_ids": 100})) as opened:
        yield opened


def _body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "冬季关怀", "category": "care",
        "templates": {"zh-CN": "{name}，{company}提醒您冬季行车注意安全。",
                      "en": "{name}, {company} wishes you safe winter driving."},
    }
    body.update(overrides)
    return body


async def _create(rig: Rig, **overrides: Any) -> int:
    status, created = await rig.call("POST", "/api/v1/campaigns", json=_body(**overrides))
    assert status == 201, created
    return int(created["id"])


async def test_audience_filter_combines_every_condition(rig: Rig) -> None:
    sh = await Region.create(code="SH", name="上海", latitude=31.2, longitude=121.5)
    bj = await Region.create(code="BJ", name="北京", latitude=39.9, longitude=116.4)
    match = await f.customer(region=sh, language="en")
    await f.link_telegram(match)
    await f.policy(match, end=date(2026, 12, 20), product=Product.COMMERCIAL)
    await LoyaltyAccount.create(customer=match, tier="gold")
    other_region = await f.customer(region=bj, language="en")
    await f.link_telegram(other_region)
    await f.policy(other_region, end=date(2026, 12, 20))
    await LoyaltyAccount.create(customer=other_region, tier="gold")
    no_tg = await f.customer(region=sh, language="en")
    await f.policy(no_tg, end=date(2026, 12, 20))
    await LoyaltyAccount.create(customer=no_tg, tier="gold")
    audience = AudienceFilter.model_validate({
        "tiers": ["gold"], "regions": ["SH"], "products": ["commercial"],
        "expiring_from": "2026-12-01", "expiring_to": "2026-12-31", "has_telegram": True,
        "languages": ["en"]})
    assert await campaigns.audience_count(audience, rig.settings, now=rig.clock()) == 1
    status, answer = await rig.call("POST", "/api/v1/campaigns/audience",
                                    json=audience.model_dump(mode="json"))
    assert status == 200 and answer == {"audience": 1}
    # the default tier counts customers without a loyalty account
    plain = await f.customer()
    assert await campaigns.audience_count(AudienceFilter(tiers=["standard"]),
                                          rig.settings, now=rig.clock()) == 1
    # the operator's own contact is never part of an audience
    operator = await Operator.get(name="admin")
    assert operator.contact_id is not None
    assert await campaigns.audience_count(AudienceFilter(), rig.settings, now=rig.clock()) == 4
    del plain


async def test_audience_policy_conditions_mean_insured_today_as_care_does(rig: Rig) -> None:
    """Today (the rig's clock) is 2026-11-21: a policy renewed early but still running counts,
    a cancelled one or one not yet started does not, whatever the labels say."""
    counted = await f.customer(name="renewed early")
    await f.policy(counted, end=date(2026, 12, 20), status=PolicyStatus.RENEWED)
    mislabelled = await f.customer(name="label not corrected")
    await f.policy(mislabelled, end=date(2026, 12, 25), status=PolicyStatus.EXPIRED)
    cancelled = await f.customer(name="cancelled")
    await f.policy(cancelled, end=date(2026, 12, 20), status=PolicyStatus.CANCELLED)
    future = await f.customer(name="starts next year")
    await f.policy(future, start_date=date(2027, 1, 1), end=date(2027, 12, 20))
    audience = AudienceFilter(products=[Product.COMMERCIAL])
    assert await campaigns.audience_count(audience, rig.settings, now=rig.clock()) == 2
    december = AudienceFilter(expiring_from=date(2026, 12, 1), expiring_to=date(2026, 12, 31))
    assert await campaigns.audience_count(december, rig.settings, now=rig.clock()) == 2
    campaign_id = await _create(rig, audience=december.model_dump(mode="json"))
    status, _ = await rig.call("POST", f"/api/v1/campaigns/{campaign_id}/start")
    assert status == 200
    runner = CampaignRunner(rig.settings, clock=rig.clock)
    while await runner.tick():
        pass
    assert set(await Message.filter(campaign_id=campaign_id).values_list(
        "customer_id", flat=True)) == {counted.id, mislabelled.id}


async def test_preview_counts_channels_segments_cost_and_warns_on_cn_marketing(
        rig: Rig) -> None:
    linked = await f.customer(name="王芳")
    await f.link_telegram(linked)
    for n in range(3):
        await f.customer(name=f"客户{n}")
    await f.customer(name="Bob", language="en", phone="+14155550100")
    campaign_id = await _create(rig, category="marketing")
    status, served = await rig.call("GET", f"/api/v1/campaigns/{campaign_id}/preview")
    assert status == 200 and served["channels"]["telegram"] == 0  # Telegram not configured
    with_telegram = f.settings_for(db_url=rig.settings.database.url, telegram_base="http://x",
                                   twilio_base="http://127.0.0.1:9")
    preview = await campaigns.preview(await Campaign.get(id=campaign_id), with_telegram,
                                      Texts.load(), now=rig.clock())
    assert preview["audience"] == 5
    assert preview["channels"] == {"telegram": 1, "sms": 4, "none": 0}
    sms = preview["sms"]
    assert sms["by_language"] == {"zh-CN": 3, "en": 1} and sms["cn_recipients"] == 3
    assert sms["segments_per_message"]["zh-CN"] == 1 and sms["encoding"]["zh-CN"] == "UCS-2"
    assert sms["segments"] == 3 * 1 + 1 * sms["segments_per_message"]["en"]
    assert sms["estimated_cost"] == round(sms["segments"] * 0.05, 2)
    codes = {w["code"] for w in preview["warnings"]}
    assert {"marketing_sms_cn", "marketing_needs_consent"} <= codes
    [first, second, _third] = preview["samples"]
    assert first["channel"] == "telegram" and first["text"].startswith("王芳，安行保险提醒您")
    assert second["channel"] == "sms" and second["text"].startswith("【安行保险】客户0，")
    assert second["text"].endswith("回T退订") and second["refused"] == "marketing_sms_cn"
    assert "*" in second["phone"]


async def test_test_send_goes_to_the_operators_contact_through_the_outbox(rig: Rig) -> None:
    campaign_id = await _create(rig)
    status, answer = await rig.call("POST", f"/api/v1/campaigns/{campaign_id}/test")
    assert status == 202
    message = await Message.get(id=answer["message_id"])
    operator = await Operator.get(name="admin")
    assert message.customer_id == operator.contact_id and message.kind == "campaign_test"
    assert message.campaign_id is None
    assert message.params["body"]["zh-CN"].startswith("admin，安行保险")
    no_contact, token = await create_operator("nobody", Role.ADMIN)
    resp = await rig.client.post(f"/api/v1/campaigns/{campaign_id}/test",
                                 headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 409 and (await resp.json())["error"] == "no_contact"
    del no_contact


async def test_start_enqueues_every_recipient_once_with_the_campaign_dedup_key(
        rig: Rig) -> None:
    people = [await f.customer(name=f"人{n}") for n in range(250)]
    english = await f.customer(name="Ann", language="en")
    campaign_id = await _create(rig)
    status, started = await rig.call("POST", f"/api/v1/campaigns/{campaign_id}/start")
    assert status == 200 and started["status"] == "sending"
    runner = CampaignRunner(rig.settings, clock=rig.clock)
    batches = 0
    while await runner.tick():
        batches += 1
    assert batches >= 3  # 100 ids per batch
    rows = await Message.filter(campaign_id=campaign_id)
    assert len(rows) == 251
    assert {r.dedup_key for r in rows} == {f"campaign:{campaign_id}:{c.id}"
                                           for c in [*people, english]}
    ann = next(r for r in rows if r.customer_id == english.id)
    assert ann.params == {"body": "Ann, Anxing Insurance wishes you safe winter driving."}
    zh = next(r for r in rows if r.customer_id == people[0].id)
    assert zh.params == {"body": "人0，安行保险提醒您冬季行车注意安全。"}
    assert ann.kind == "campaign" and ann.template_key == "campaign"
    assert ann.status == MessageStatus.PENDING and ann.not_before == rig.clock.now
    campaign = await Campaign.get(id=campaign_id)
    assert campaign.enqueued == 251 and campaign.cursor_id == campaign.until_id
    # running the enqueue again (a restart, a second process) adds nothing
    campaign.cursor_id = 0
    await campaign.save()
    assert await enqueue_all(campaign_id, rig.settings, now=rig.clock.now, batch_ids=50) == 0
    assert await Message.filter(campaign_id=campaign_id).count() == 251


async def test_a_new_runner_resumes_from_the_committed_cursor(rig: Rig) -> None:
    for n in range(230):
        await f.customer(name=f"人{n}")
    campaign_id = await _create(rig)
    await rig.call("POST", f"/api/v1/campaigns/{campaign_id}/start")
    first = CampaignRunner(rig.settings, clock=rig.clock)
    assert await first.tick()  # one batch, then the process "dies"
    after_one = await Message.filter(campaign_id=campaign_id).count()
    assert 0 < after_one < 230
    restarted = CampaignRunner(rig.settings, clock=rig.clock)
    while await restarted.tick():
        pass
    assert await Message.filter(campaign_id=campaign_id).count() == 230  # contact excluded


async def test_scheduled_campaign_waits_for_its_send_time(rig: Rig) -> None:
    await f.customer()
    later = rig.clock.now + timedelta(hours=2)
    campaign_id = await _create(rig, send_at=later.isoformat())
    _status, started = await rig.call("POST", f"/api/v1/campaigns/{campaign_id}/start")
    assert started["status"] == "scheduled"
    runner = CampaignRunner(rig.settings, clock=rig.clock)
    assert not await runner.tick()
    assert await Message.filter(campaign_id=campaign_id).count() == 0
    rig.clock.now = later
    assert await runner.tick()
    assert await Message.filter(campaign_id=campaign_id).count() == 1


async def _dispatch(rig: Rig) -> Dispatcher:
    from bot.delivery.senders import SendResult

    class Sms:
        def __init__(self) -> None:
            self.sent: list[str] = []

        async def send(self, to: str, body: str, *, callback_url: str | None) -> SendResult:
            self.sent.append(to)
            return SendResult(f"SM{len(self.sent):032d}", segments=1)

    return Dispatcher(rig.settings, Texts.load(), telegram=None, sms=Sms(),
                      clock=rig.clock, skip_locked=rig.settings.database.is_postgres)


async def test_pause_holds_unsent_and_resume_never_resends(rig: Rig) -> None:
    people = [await f.customer(name=f"人{n}", phone=f"+1415555{n:04d}") for n in range(120)]
    campaign_id = await _create(rig)
    await rig.call("POST", f"/api/v1/campaigns/{campaign_id}/start")
    runner = CampaignRunner(rig.settings, clock=rig.clock)
    assert await runner.tick()  # the first 100 ids are queued
    dispatcher = await _dispatch(rig)
    rig.settings.delivery.batch_size = 40
    await dispatcher.dispatch_once()  # 40 of them are sent
    sent_before = set(await Message.filter(campaign_id=campaign_id, status="sent").values_list(
        "customer_id", flat=True))
    assert len(sent_before) == 40

    status, paused = await rig.call("POST", f"/api/v1/campaigns/{campaign_id}/pause")
    assert status == 200 and paused["status"] == "paused"
    assert not await runner.tick()  # nothing more is enqueued while paused
    assert await Message.filter(campaign_id=campaign_id).count() < 121
    assert await dispatcher.dispatch_once() == 0  # held rows are never due
    _, stats = await rig.call("GET", f"/api/v1/campaigns/{campaign_id}/stats")
    assert stats["held"] > 0 and stats["queued"] == 0 and stats["sent"] == 40
    assert stats["enqueued"] == stats["held"] + stats["queued"] + stats["sent"]  # none twice
    assert stats["in_flight_at_pause"] == 0  # nothing was on the wire at the pause

    status, resumed = await rig.call("POST", f"/api/v1/campaigns/{campaign_id}/resume")
    assert resumed["status"] == "sending"
    while await runner.tick():
        pass
    rig.settings.delivery.batch_size = 500
    while await dispatcher.dispatch_once():
        pass
    rows = await Message.filter(campaign_id=campaign_id)
    assert len(rows) == len(people)  # the operator's own contact is not in the audience
    assert all(r.status == MessageStatus.SENT for r in rows)
    sms = dispatcher._sms
    assert len(sms.sent) == len(set(sms.sent)) == len(rows)  # type: ignore[union-attr]
    # status of the 40 first sends never changed (attempts still 1)
    first = await Message.filter(campaign_id=campaign_id, customer_id__in=list(sent_before))
    assert {m.attempts for m in first} == {1}
    await runner.tick()
    assert (await Campaign.get(id=campaign_id)).status == CampaignStatus.DONE


async def test_cancel_skips_pending_messages_with_reason_cancelled(rig: Rig) -> None:
    for n in range(30):
        await f.customer(name=f"人{n}", phone=f"+1415556{n:04d}")
    campaign_id = await _create(rig)
    await rig.call("POST", f"/api/v1/campaigns/{campaign_id}/start")
    runner = CampaignRunner(rig.settings, clock=rig.clock)
    while await runner.tick():
        pass
    dispatcher = await _dispatch(rig)
    rig.settings.delivery.batch_size = 10
    await dispatcher.dispatch_once()
    status, cancelled = await rig.call("POST", f"/api/v1/campaigns/{campaign_id}/cancel")
    assert cancelled["status"] == "cancelled"
    assert await dispatcher.dispatch_once() == 0
    _, stats = await rig.call("GET", f"/api/v1/campaigns/{campaign_id}/stats")
    assert stats["sent"] == 10 and stats["queued"] == 0
    assert stats["skipped_by_reason"] == {"cancelled": 20}
    status, answer = await rig.call("POST", f"/api/v1/campaigns/{campaign_id}/resume")
    assert status == 409 and answer["error"] == "invalid_state"


async def test_stats_count_skips_by_reason_and_failures_export_as_csv(rig: Rig) -> None:
    opted = await f.customer(name="退订", phone="+14155557001")
    await Consent.create(customer=opted, channel="*", category="care", granted=False,
                         source="test", created_at=rig.clock.now)
    await f.customer(name="正常", phone="+14155557002")
    campaign_id = await _create(rig)
    await rig.call("POST", f"/api/v1/campaigns/{campaign_id}/start")
    runner = CampaignRunner(rig.settings, clock=rig.clock)
    while await runner.tick():
        pass
    dispatcher = await _dispatch(rig)
    await dispatcher.dispatch_once()
    _, stats = await rig.call("GET", f"/api/v1/campaigns/{campaign_id}/stats")
    assert (stats["sent"], stats["skipped"]) == (1, 1)
    assert stats["skipped_by_reason"] == {"opted_out": 1}
    resp = await rig.client.get(f"/api/v1/campaigns/{campaign_id}/failures.csv",
                                headers={"Authorization": f"Bearer {rig.token}"})
    assert resp.status == 200 and resp.content_type == "text/csv"
    lines = (await resp.text()).strip().splitlines()
    assert lines[0].startswith("message_id,customer_id,phone")
    assert len(lines) == 2 and "opted_out" in lines[1] and "+1******7001" in lines[1]


async def test_wrong_state_transitions_are_409(rig: Rig) -> None:
    campaign_id = await _create(rig)
    for action in ("pause", "resume"):
        status, answer = await rig.call("POST", f"/api/v1/campaigns/{campaign_id}/{action}")
        assert status == 409 and answer["error"] == "invalid_state"
    assert (await rig.call("POST", "/api/v1/campaigns/999/start"))[0] == 404


async def test_runner_holds_again_a_message_requeued_after_the_pause(rig: Rig) -> None:
    for n in range(5):
        await f.customer(name=f"人{n}", phone=f"+1415558{n:04d}")
    campaign_id = await _create(rig)
    await rig.call("POST", f"/api/v1/campaigns/{campaign_id}/start")
    runner = CampaignRunner(rig.settings, clock=rig.clock)
    while await runner.tick():
        pass
    await rig.call("POST", f"/api/v1/campaigns/{campaign_id}/pause")
    runner.wake(campaign_id)
    # a dispatcher that had claimed one row before the pause puts it back (say, a retry)
    straggler = await Message.filter(campaign_id=campaign_id).first()
    assert straggler is not None
    await Message.filter(id=straggler.id).update(not_before=rig.clock.now)
    await runner.tick()  # inside the lease window: not yet swept
    assert (await Message.get(id=straggler.id)).not_before == rig.clock.now
    rig.clock.now += timedelta(seconds=rig.settings.delivery.lease_seconds + 2)
    await runner.tick()
    assert (await Message.get(id=straggler.id)).not_before == campaigns.HOLD_UNTIL
    dispatcher = await _dispatch(rig)
    assert await dispatcher.dispatch_once() == 0


async def test_runner_skips_a_message_requeued_after_the_cancel(rig: Rig) -> None:
    await f.customer(phone="+14155559999")
    campaign_id = await _create(rig)
    await rig.call("POST", f"/api/v1/campaigns/{campaign_id}/start")
    runner = CampaignRunner(rig.settings, clock=rig.clock)
    while await runner.tick():
        pass
    await rig.call("POST", f"/api/v1/campaigns/{campaign_id}/cancel")
    [message] = await Message.filter(campaign_id=campaign_id)
    await Message.filter(id=message.id).update(status=MessageStatus.PENDING, skip_reason="")
    restarted = CampaignRunner(rig.settings, clock=rig.clock)  # sweeps once at start-up
    await restarted.tick()
    message = await Message.get(id=message.id)
    assert (message.status, message.skip_reason) == (MessageStatus.SKIPPED, "cancelled")
