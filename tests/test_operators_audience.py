"""Every audience filter, alone and combined, queues exactly the customers it selects — through
the REST API and the real campaign runner, on each backend — and the preview and the live count
say the same number. The expected set is worked out here in Python from the rows the test
wrote, not by the SQL under test.

Also: a campaign whose batch the database refuses is marked *failed* with its reason (API,
console, an ERROR log) while other campaigns carry on, and ``resume`` retries it.
"""

from __future__ import annotations

import logging
import random
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest
from tortoise import connections
from tortoise.exceptions import OperationalError

from bot.web.operators.runner import CampaignRunner
from storage.db import is_unreachable
from storage.loyalty_models import LoyaltyAccount
from storage.models import Message, PolicyStatus, Product, Region, TelegramAccount
from storage.operator_models import Campaign, CampaignStatus
from tests import factories as f
from tests.test_operators_api import console_login
from tests.test_operators_campaigns import Rig, open_rig

REGIONS = ("SH", "BJ", "GZ", None)
TIERS = ("gold", "silver", "standard", None)  # None: no loyalty account (the default tier)
TELEGRAM = ("none", "linked", "blocked")


@dataclass
class Person:
    id: int
    region: str | None
    language: str
    tier: str  # the effective tier
    telegram: str
    policies: list[tuple[Product, date, PolicyStatus]] = field(default_factory=list)


TODAY = date(2026, 11, 21)  # the rig's clock, in the care calendar's time zone


def insures_today(ends: date, status: PolicyStatus) -> bool:
    """``storage.coverage``: the policy covers today (each starts a year before it ends),
    whatever its status label but cancelled."""
    return status != PolicyStatus.CANCELLED and ends.replace(year=ends.year - 1) <= TODAY <= ends


def selects(audience: dict[str, Any], person: Person) -> bool:
    """The audience filter as documented, in plain Python."""
    if audience.get("regions") and person.region not in audience["regions"]:
        return False
    if audience.get("languages") and person.language not in audience["languages"]:
        return False
    if audience.get("tiers") and person.tier not in audience["tiers"]:
        return False
    if "has_telegram" in audience and audience["has_telegram"] != (person.telegram == "linked"):
        return False
    products = audience.get("products")
    start, end = audience.get("expiring_from"), audience.get("expiring_to")
    if products or start or end:
        return any(insures_today(ends, status)
                   and (not products or product.value in products)
                   and (start is None or ends >= date.fromisoformat(start))
                   and (end is None or ends <= date.fromisoformat(end))
                   for product, ends, status in person.policies)
    return True


FILTERS: dict[str, dict[str, Any]] = {
    "everyone": {},
    "regions": {"regions": ["SH", "BJ"]},
    "one_region": {"regions": ["GZ"]},
    "tiers": {"tiers": ["gold"]},
    "default_tier": {"tiers": ["standard"]},
    "products": {"products": ["commercial"]},
    "expiring_from": {"expiring_from": "2026-12-15"},
    "expiring_to": {"expiring_to": "2026-12-31"},
    "expiring_window": {"expiring_from": "2026-12-01", "expiring_to": "2027-01-31"},
    "languages": {"languages": ["en"]},
    "telegram_linked": {"has_telegram": True},
    "telegram_not_linked": {"has_telegram": False},
    "region_and_tier": {"regions": ["SH"], "tiers": ["gold", "silver"]},
    "product_in_window_en": {"products": ["compulsory"], "expiring_from": "2026-12-01",
                             "expiring_to": "2027-06-30", "languages": ["en"]},
    "every_filter": {"regions": ["SH", "BJ", "GZ"], "tiers": ["gold", "silver", "standard"],
                     "products": ["commercial", "compulsory"], "expiring_from": "2026-11-01",
                     "expiring_to": "2027-12-31", "languages": ["zh-CN", "en"],
                     "has_telegram": True},
}


async def create(rig: Rig, audience: dict[str, Any], name: str = "冬季关怀") -> int:
    status, created = await rig.call("POST", "/api/v1/campaigns", json={
        "name": name, "category": "care", "audience": audience,
        "templates": {"zh-CN": "{name}，{company}提醒您冬季行车注意安全。",
                      "en": "{name}, {company} wishes you safe winter driving."}})
    assert status == 201, created
    return int(created["id"])


async def run_campaigns(rig: Rig) -> None:
    """The real runner, pass after pass, until nothing is left to enqueue."""
    runner = CampaignRunner(rig.settings, clock=rig.clock)
    while await runner.tick():
        pass


@pytest.fixture
async def rig(db: str) -> AsyncIterator[Rig]:
    # a small batch so every campaign crosses several id ranges
    async with open_rig(f.settings_for(db_url=db,
                                       operator={"campaign_batch_ids": 7})) as opened:
        yield opened


async def population(size: int = 48) -> list[Person]:
    """Customers spread over every value of every filtered attribute (a fixed seed)."""
    pick = random.Random(12)
    regions = {code: await Region.create(code=code, name=code, latitude=30.0, longitude=120.0)
               for code in REGIONS if code}
    ends = (date(2026, 11, 30), date(2026, 12, 15), date(2026, 12, 31), date(2027, 3, 1),
            date(2026, 11, 20))  # the last ended yesterday
    people: list[Person] = []
    for n in range(size):
        region = pick.choice(REGIONS)
        language = pick.choice(("zh-CN", "en"))
        customer = await f.customer(name=f"客户{n}", language=language,
                                    region=regions[region] if region else None)
        tier = pick.choice(TIERS)
        if tier is not None:
            await LoyaltyAccount.create(customer=customer, tier=tier)
        telegram = pick.choice(TELEGRAM)
        if telegram != "none":
            account = await f.link_telegram(customer)
            if telegram == "blocked":
                await TelegramAccount.filter(id=account.id).update(blocked_at=f.NOON_SHANGHAI)
        person = Person(customer.id, region, language, tier or "standard", telegram)
        for _ in range(pick.choice((0, 1, 1, 2))):
            policy = (pick.choice(list(Product)), pick.choice(ends),
                      pick.choice((PolicyStatus.ACTIVE, PolicyStatus.ACTIVE,
                                   PolicyStatus.EXPIRED, PolicyStatus.CANCELLED)))
            await f.policy(customer, product=policy[0], end=policy[1], status=policy[2])
            person.policies.append(policy)
        people.append(person)
    return people


@pytest.mark.parametrize("audience", list(FILTERS.values()), ids=list(FILTERS))
async def test_every_audience_filter_queues_exactly_what_the_preview_counts(
        rig: Rig, audience: dict[str, Any]) -> None:
    people = await population()
    expected = {p.id for p in people if selects(audience, p)}
    assert expected, "the population must give every filter someone to select"
    if audience:
        assert len(expected) < len(people), "and someone to leave out"
    campaign_id = await create(rig, audience)

    status, count = await rig.call("POST", "/api/v1/campaigns/audience", json=audience)
    assert status == 200 and count == {"audience": len(expected)}
    status, preview = await rig.call("GET", f"/api/v1/campaigns/{campaign_id}/preview")
    assert status == 200 and preview["audience"] == len(expected)

    status, started = await rig.call("POST", f"/api/v1/campaigns/{campaign_id}/start")
    assert status == 200 and started["status"] == "sending"
    await run_campaigns(rig)

    queued = await Message.filter(campaign_id=campaign_id).values_list("customer_id", flat=True)
    assert sorted(queued) == sorted(expected)
    status, served = await rig.call("GET", f"/api/v1/campaigns/{campaign_id}")
    assert served["enqueued"] == len(expected) and served["failure"] is None
    assert served["status"] == "sending"  # queued, not yet delivered


async def test_a_campaign_the_database_refuses_fails_with_its_reason_and_others_go_on(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    people = await population(20)
    by_tier = await create(rig, {"tiers": ["gold"]}, name="金卡专享")
    everyone = await create(rig, {}, name="全体关怀")
    for campaign_id in (by_tier, everyone):
        await rig.call("POST", f"/api/v1/campaigns/{campaign_id}/start")
    conn = connections.get("default")
    # the tier filter reads loyalty_account: take it away under the running campaign
    await conn.execute_script("ALTER TABLE loyalty_account RENAME TO loyalty_account_away")
    with caplog.at_level(logging.ERROR, logger="bot.web.operators.runner"):
        await run_campaigns(rig)

    status, failed = await rig.call("GET", f"/api/v1/campaigns/{by_tier}")
    assert status == 200 and failed["status"] == "failed"
    assert "loyalty_account" in failed["failure"]
    assert await Message.filter(campaign_id=by_tier).count() == 0
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and f"campaign {by_tier} failed" in errors[0].getMessage()
    # the other campaign, behind it in the same passes, queued everyone
    assert await Message.filter(campaign_id=everyone).count() == len(people)

    await conn.execute_script("ALTER TABLE loyalty_account_away RENAME TO loyalty_account")
    await console_login(rig.client, rig.token)
    for lang, words in (("zh-CN", "生成发送队列时出错"),
                        ("en", "Queuing this campaign hit an error")):
        page = await (await rig.client.get(f"/console/campaigns/{by_tier}?lang={lang}")).text()
        assert words in page and "loyalty_account" in page and 'id="action-resume"' in page
    status, retried = await rig.call("POST", f"/api/v1/campaigns/{by_tier}/resume")
    assert status == 200 and retried["status"] == "sending" and retried["failure"] is None
    await run_campaigns(rig)
    gold = {p.id for p in people if p.tier == "gold"}
    queued = await Message.filter(campaign_id=by_tier).values_list("customer_id", flat=True)
    assert sorted(queued) == sorted(gold)
    assert (await Campaign.get(id=by_tier)).status == CampaignStatus.SENDING


def test_unreachable_database_is_told_apart_from_a_refused_statement() -> None:
    import asyncpg

    assert is_unreachable(ConnectionRefusedError(111, "connection refused"))
    assert is_unreachable(asyncpg.exceptions.ConnectionDoesNotExistError("closed"))
    assert is_unreachable(asyncpg.exceptions.CannotConnectNowError("starting up"))
    assert is_unreachable(asyncpg.exceptions.SerializationError("retry"))
    try:
        try:
            raise sqlite3.OperationalError("database is locked")
        except sqlite3.OperationalError as exc:
            raise OperationalError(exc) from None
    except OperationalError as wrapped:
        assert is_unreachable(wrapped)
    assert not is_unreachable(OperationalError(sqlite3.OperationalError("no such table: x")))
    assert not is_unreachable(asyncpg.exceptions.DataError("invalid input syntax"))
    assert not is_unreachable(asyncpg.exceptions.InterfaceError(
        "the server expects 3 arguments for this query, 2 were passed"))
    assert not is_unreachable(ValueError("bad audience"))
