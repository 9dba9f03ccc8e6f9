"""Redemption for a customer who called the hotline, in the API and the console: the same
``redeem`` as Telegram and SMS (points, stock, limits), audited with the operator's name, and
the voucher code queued for the customer's channel through the outbox."""

from __future__ import annotations

import re
from datetime import timedelta

from loyalty import ledger
from loyalty.config import LoyaltySettings
from loyalty.earning import adjust_points
from loyalty.rewards import seed_rewards
from storage.loyalty_models import Reward, Voucher
from storage.models import Customer, Message
from storage.operator_models import AuditLog, Role
from tests import factories as f
from tests import test_operators_api as api
from tests.test_operators_api import Rig, console_login

S = LoyaltySettings()
rig = api.rig  # the operator API rig of tests/test_operators_api.py


async def member(points: int) -> Customer:
    await seed_rewards(S)
    owner = await f.customer()
    await adjust_points(owner.id, points, reason="t", operator="t", key=f"seed:{owner.id}",
                        now=f.NOON_SHANGHAI - timedelta(hours=1), settings=S)
    return owner


async def test_agent_redeems_for_a_caller_audited_and_the_code_goes_to_the_outbox(
    rig: Rig,
) -> None:
    owner = await member(900)
    url = f"/api/v1/customers/{owner.id}/redemptions"
    body = {"reward_code": "gift_umbrella", "request_key": "call-1"}
    status, answer = await rig.call("POST", url, Role.AGENT, json=body)
    assert status == 201, answer
    voucher = await Voucher.get(customer_id=owner.id)
    assert (answer["voucher_id"], answer["points_cost"], answer["balance"]) == (
        voucher.id, 500, 400)
    assert answer["code"].replace("-", "") == voucher.code
    [notice] = await Message.filter(customer_id=owner.id)
    assert notice.kind == "voucher_issued"
    assert notice.params["code"] == answer["code"]
    [entry] = await AuditLog.filter(action="voucher.redeem")
    assert (entry.operator_name, entry.target_id) == ("op-agent", str(owner.id))
    assert entry.before == {"balance": 900}
    assert entry.after is not None and entry.after["voucher_id"] == voucher.id
    # The operator's retry (same request key): the same voucher, nothing more.
    status, again = await rig.call("POST", url, Role.AGENT, json=body)
    assert status == 200 and again["replayed"] and again["voucher_id"] == voucher.id
    assert await Voucher.filter(customer_id=owner.id).count() == 1
    assert await ledger.get_balance(owner.id) == 400
    assert await AuditLog.filter(action="voucher.redeem").count() == 1
    assert await Message.filter(customer_id=owner.id).count() == 1


async def test_refusals_change_nothing_and_a_viewer_may_not_redeem(rig: Rig) -> None:
    owner = await member(400)
    url = f"/api/v1/customers/{owner.id}/redemptions"
    status, answer = await rig.call("POST", url, Role.AGENT, json={
        "reward_code": "gift_umbrella", "request_key": "k1"})
    assert (status, answer["error"]) == (409, "insufficient_points")
    await Reward.filter(code="car_wash").update(stock=0)
    status, answer = await rig.call("POST", url, Role.AGENT, json={
        "reward_code": "car_wash", "request_key": "k2"})
    assert (status, answer["error"]) == (409, "out_of_stock")
    status, answer = await rig.call("POST", url, Role.AGENT, json={
        "reward_code": "car_wash", "free": True, "request_key": "k3"})
    assert (status, answer["error"]) == (409, "not_eligible")  # a standard tier has no free wash
    status, answer = await rig.call("POST", url, Role.VIEWER, json={
        "reward_code": "gift_umbrella", "request_key": "k4"})
    assert status == 403
    status, answer = await rig.call("POST", url, Role.AGENT, json={"reward_code": "x"})
    assert status == 422
    assert await Voucher.all().count() == 0
    assert await AuditLog.filter(action="voucher.redeem").count() == 0
    assert await ledger.get_balance(owner.id) == 400
    assert (await Reward.get(code="car_wash")).stock == 0


async def test_console_agent_redeems_from_the_customer_page(rig: Rig) -> None:
    owner = await member(900)
    csrf = await console_login(rig.client, rig.tokens[Role.AGENT])
    page = await (await rig.client.get(f"/console/customers/{owner.id}?lang=en")).text()
    assert "Redeem for the customer" in page
    assert '<option value="gift_umbrella:0">Branded umbrella · 500 points</option>' in page
    key = re.search(r'id="redeem-form">.*?name="request_key" value="([^"]+)"', page, re.S)
    assert key is not None
    resp = await rig.client.post(f"/console/customers/{owner.id}/redeem", data={
        "csrf_token": csrf, "request_key": key.group(1), "offer": "gift_umbrella:0"},
        allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"].endswith("ok=voucher_redeemed")
    assert await Voucher.filter(customer_id=owner.id).count() == 1
    [entry] = await AuditLog.filter(action="voucher.redeem")
    assert entry.operator_name == "op-agent"
    # A refusal comes back as the error, in the operator's language.
    resp = await rig.client.post(f"/console/customers/{owner.id}/redeem", data={
        "csrf_token": csrf, "request_key": "other", "offer": "gift_dashcam:0"},
        headers={"Referer": f"/console/customers/{owner.id}"}, allow_redirects=False)
    assert resp.status == 303 and "err=" in resp.headers["Location"]
    assert await Voucher.filter(customer_id=owner.id).count() == 1
