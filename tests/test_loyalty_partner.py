"""Partner verification over HTTP: the real aiohttp routes against a real database."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.web import errors, partner
from bot.web.keys import CLOCK
from loyalty import ledger
from loyalty.codes import display
from loyalty.config import LoyaltySettings
from loyalty.partners import authenticate_partner, create_partner, hash_token
from loyalty.rewards import seed_rewards
from loyalty.vouchers import cancel_voucher, redeem
from storage.identity import mask_name
from storage.loyalty_models import EntryKind, Partner, Voucher, VoucherStatus
from storage.models import Customer, Message

S = LoyaltySettings()
NOW = datetime(2026, 3, 15, 2, 0, tzinfo=UTC)
_seq = itertools.count(1)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def clock(db: str) -> Clock:
    await seed_rewards(S)
    return Clock()


@pytest.fixture
async def client(clock: Clock) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application()
    app[CLOCK] = lambda: clock.now
    errors.setup(app)  # the app's one error map answers the partner API's refusals
    partner.setup(app)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def _voucher(reward: str = "car_wash", name: str = "张三") -> tuple[Customer, Voucher]:
    n = next(_seq)
    owner = await Customer.create(name=name, phone=f"+8613912345{n:03d}", referral_code=f"P{n}")
    await ledger.credit(owner.id, 5000, kind=EntryKind.ADJUSTMENT, key=f"seed:{owner.id}",
                        now=NOW, settings=S, reason="t", operator="t")
    done = await redeem(owner.id, reward, request_key=f"r{n}", now=NOW, settings=S)
    return owner, done.voucher


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_names_are_masked_after_the_first_character() -> None:
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧***"
    assert mask_name("John Smith") == "J*** *****"
    assert mask_name("") == ""


async def test_tokens_are_stored_hashed_and_shown_once(db: str) -> None:
    partner, token = await create_partner("安心洗车", ["car_wash"])
    stored = await Partner.get(id=partner.id)
    assert stored.token_hash == hash_token(token) and token not in stored.token_hash
    assert len(token) >= 40
    assert (await authenticate_partner(token)) is not None
    assert await authenticate_partner(token + "x") is None
    await Partner.filter(id=partner.id).update(active=False)
    assert await authenticate_partner(token) is None


async def test_partner_checks_a_voucher_and_sees_no_personal_data(
    client: TestClient[web.Request, web.Application],
) -> None:
    owner, voucher = await _voucher(name="张三")
    _, token = await create_partner("安心洗车", ["car_wash", "maintenance"])
    response = await client.get(f"/api/v1/partner/vouchers/{display(voucher.code).lower()}",
                                headers=_auth(token))
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "issued" and body["customer"] == "张*"
    assert body["reward"] == {"code": "car_wash", "kind": "car_wash", "name_zh": "精致洗车",
                              "name_en": "Car wash"}
    assert body["valid_until"] == "2026-06-13T16:00:00+00:00"
    text = await response.text()
    assert owner.phone not in text and owner.phone[-4:] not in text
    assert owner.name not in text and str(owner.id) not in body.values()


async def test_missing_or_wrong_token_is_401(
    client: TestClient[web.Request, web.Application],
) -> None:
    _, voucher = await _voucher()
    url = f"/api/v1/partner/vouchers/{voucher.code}"
    for headers in ({}, _auth("not-a-token"), {"Authorization": "Basic abc"}):
        response = await client.get(url, headers=headers)
        assert response.status == 401
        assert (await response.json())["error"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await client.post(url + "/redeem")).status == 401
    assert (await Voucher.get(id=voucher.id)).status == VoucherStatus.ISSUED


async def test_voucher_used_twice_the_second_is_refused(
    client: TestClient[web.Request, web.Application], clock: Clock,
) -> None:
    _, voucher = await _voucher()
    partner, token = await create_partner("安心洗车", ["car_wash"])
    clock.now = NOW + timedelta(days=3)
    url = f"/api/v1/partner/vouchers/{voucher.code}/redeem"
    first = await client.post(url, headers=_auth(token))
    assert first.status == 200
    assert (await first.json())["status"] == "used"
    second = await client.post(url, headers=_auth(token))
    assert second.status == 409
    body = await second.json()
    assert body["error"] == "voucher_already_used"
    assert body["voucher"]["used_at"] == "2026-03-18T02:00:00+00:00"
    stored = await Voucher.get(id=voucher.id)
    assert (stored.status, stored.used_by_id) == (VoucherStatus.USED, partner.id)
    message = await Message.get(dedup_key=f"voucher_used:{voucher.id}")
    assert message.params["partner"] == "安心洗车"
    assert message.params["time"] == "2026年3月18日 10:00"


async def test_concurrent_uses_of_one_voucher_succeed_once(
    client: TestClient[web.Request, web.Application],
) -> None:
    _, voucher = await _voucher()
    _, token = await create_partner("安心洗车", ["car_wash"])
    url = f"/api/v1/partner/vouchers/{voucher.code}/redeem"
    responses = await asyncio.gather(*(client.post(url, headers=_auth(token)) for _ in range(8)))
    assert sorted(r.status for r in responses) == [200] + [409] * 7


async def test_partner_cannot_see_another_partners_reward_kinds(
    client: TestClient[web.Request, web.Application],
) -> None:
    _, wash = await _voucher("car_wash")
    _, token = await create_partner("代驾公司", ["designated_driving"])
    for response in (
        await client.get(f"/api/v1/partner/vouchers/{wash.code}", headers=_auth(token)),
        await client.post(f"/api/v1/partner/vouchers/{wash.code}/redeem", headers=_auth(token)),
    ):
        assert response.status == 404
        assert await response.json() == {"error": "voucher_not_found",
                                          "message": "no such voucher"}
    assert (await Voucher.get(id=wash.id)).status == VoucherStatus.ISSUED


async def test_a_typo_is_422_invalid_code_and_only_a_well_formed_unknown_code_is_404(
    client: TestClient[web.Request, web.Application],
) -> None:
    _, voucher = await _voucher()
    _, token = await create_partner("安心洗车", ["car_wash"])
    typo = voucher.code[:-1] + ("0" if voucher.code[-1] != "0" else "1")
    swapped = voucher.code[1] + voucher.code[0] + voucher.code[2:]
    for code in (typo, swapped, "HELLO", "0000-0000-0000"):
        if code == voucher.code:
            continue  # (two equal leading symbols swap into the same code)
        for response in (
            await client.get(f"/api/v1/partner/vouchers/{code}", headers=_auth(token)),
            await client.post(f"/api/v1/partner/vouchers/{code}/redeem", headers=_auth(token)),
        ):
            assert response.status == 422, code
            assert await response.json() == {
                "error": "invalid_code",
                "message": "this is not a valid voucher code — check for a typo"}
    assert (await Voucher.get(id=voucher.id)).status == VoucherStatus.ISSUED
    # "0000-0000-000" passes its check character: well formed, just not a voucher
    response = await client.get("/api/v1/partner/vouchers/0000-0000-000", headers=_auth(token))
    assert response.status == 404
    assert (await response.json())["error"] == "voucher_not_found"


async def test_expired_and_cancelled_vouchers_are_gone(
    client: TestClient[web.Request, web.Application], clock: Clock,
) -> None:
    owner, cancelled = await _voucher()
    _, expired = await _voucher()
    await cancel_voucher(owner.id, cancelled.id, now=NOW, settings=S)
    _, token = await create_partner("安心洗车", ["car_wash"])
    response = await client.post(f"/api/v1/partner/vouchers/{cancelled.code}/redeem",
                                 headers=_auth(token))
    assert (response.status, (await response.json())["error"]) == (410, "voucher_cancelled")
    clock.now = NOW + timedelta(days=91)
    check = await client.get(f"/api/v1/partner/vouchers/{expired.code}", headers=_auth(token))
    assert (check.status, (await check.json())["status"]) == (200, "expired")
    response = await client.post(f"/api/v1/partner/vouchers/{expired.code}/redeem",
                                 headers=_auth(token))
    assert (response.status, (await response.json())["error"]) == (410, "voucher_expired")
    assert (await Voucher.get(id=expired.id)).status == VoucherStatus.ISSUED
