"""The operator REST API: authentication, roles on every route, CSRF for cookie sessions,
422 with field paths, claims, documents, customers, loyalty admin, tasks, imports, audit."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image

from bot.web.app import Overrides, build_app
from bot.web.operators.access import create_operator
from bot.web.operators.api import API
from storage.choices import record_choice
from storage.loyalty_models import LedgerEntry, Reward
from storage.models import (
    Category,
    Channel,
    Claim,
    ClaimEvent,
    ClaimStatus,
    Customer,
    Document,
    DocumentStatus,
    Message,
    PolicyStatus,
    SharedPhone,
    Task,
    TaskStatus,
)
from storage.operator_models import AuditLog, Role
from storage.shared_phones import recount
from tests import factories as f

Client = TestClient[web.Request, web.Application]


class Clock:
    def __init__(self, now: datetime = f.NOON_SHANGHAI) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Rig:
    client: Client
    tokens: dict[Role, str]
    clock: Clock
    uploads: Path

    def auth(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def call(self, method: str, path: str, role: Role | None = Role.ADMIN,
                   **kw: Any) -> tuple[int, Any]:
        headers = {**(self.auth(role) if role else {}), **kw.pop("headers", {})}
        resp = await self.client.request(method, path, headers=headers, **kw)
        body = await resp.json() if resp.content_type == "application/json" else await resp.read()
        return resp.status, body


@pytest.fixture
async def rig(db: str, tmp_path: Path) -> AsyncIterator[Rig]:
    uploads = tmp_path / "uploads"
    settings = f.settings_for(db_url=db, uploads={"directory": str(uploads)})
    clock = Clock()
    app = build_app(settings, Overrides(run_dispatcher=False, run_scheduler=False,
                                        run_campaigns=False, manage_database=False, clock=clock))
    tokens: dict[Role, str] = {}
    for role in Role:
        _, tokens[role] = await create_operator(f"op-{role.value}", role,
                                                contact_phone=None)
    async with TestClient(TestServer(app)) as client:
        yield Rig(client, tokens, clock, uploads)


# -- access ----------------------------------------------------------------------------------


def test_openapi_lists_every_route_with_its_method() -> None:
    from bot.web.operators.openapi import document

    doc = document(API)
    for endpoint in API.endpoints:
        assert endpoint.method.lower() in doc["paths"][endpoint.path], endpoint.path
    assert "/api/v1/claims/{number}/events" in doc["paths"]
    body = doc["paths"]["/api/v1/campaigns"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("/CampaignIn")
    assert "CampaignTemplates" in doc["components"]["schemas"]


async def test_openapi_document_is_served_and_matches_the_router(rig: Rig) -> None:
    resp = await rig.client.get("/api/v1/openapi.json")
    doc = await resp.json()
    served = {(r.method, r.resource.canonical) for r in rig.client.app.router.routes()
              if r.resource is not None and r.resource.canonical.startswith("/api/v1/")
              and "partner" not in r.resource.canonical
              and not r.resource.canonical.endswith("openapi.json") and r.method != "HEAD"}
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert served == documented


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"},
                                     {"Authorization": "Basic eDp5"}])
async def test_no_or_bad_token_is_401(rig: Rig, headers: dict[str, str]) -> None:
    resp = await rig.client.get("/api/v1/campaigns", headers=headers)
    assert resp.status == 401
    assert (await resp.json())["error"] == "unauthorized"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_every_route_refuses_a_role_below_its_own(rig: Rig) -> None:
    below = {Role.AGENT: Role.VIEWER, Role.ADMIN: Role.AGENT}
    for endpoint in API.endpoints:
        if endpoint.role == Role.VIEWER:
            continue
        path = re.sub(r"{id}", "1", endpoint.path).replace("{number}", "C1").replace(
            "{code}", "car_wash")
        status, body = await rig.call(endpoint.method, path, below[endpoint.role], json={})
        assert status == 403, (endpoint.method, path)
        assert body["error"] == "forbidden"


async def test_viewer_cannot_send_a_campaign(rig: Rig) -> None:
    status, created = await rig.call("POST", "/api/v1/campaigns", json=_campaign())
    assert status == 201
    for action in ("start", "test"):
        status, _ = await rig.call("POST", f"/api/v1/campaigns/{created['id']}/{action}",
                                   Role.VIEWER)
        assert status == 403
    status, _ = await rig.call("GET", f"/api/v1/campaigns/{created['id']}/stats", Role.VIEWER)
    assert status == 200


async def test_agent_cannot_adjust_points(rig: Rig) -> None:
    c = await f.customer()
    body = {"points": 100, "reason": "goodwill", "request_key": "k1"}
    status, answer = await rig.call("POST", f"/api/v1/customers/{c.id}/points", Role.AGENT,
                                    json=body)
    assert status == 403 and answer["error"] == "forbidden"
    assert await LedgerEntry.all().count() == 0


# -- bodies ---------------------------------------------------------------------------------


def _campaign(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "双十一关怀", "category": "care", "channel_policy": "telegram_then_sms",
        "audience": {},
        "templates": {"zh-CN": "{name}，天冷注意保暖。", "en": "{name}, stay warm."},
    }
    body.update(overrides)
    return body


async def test_bad_campaign_body_is_422_with_field_paths(rig: Rig) -> None:
    status, answer = await rig.call("POST", "/api/v1/campaigns", json=_campaign(
        category="spam", templates={"zh-CN": "你好{nmae}", "en": ""},
        audience={"products": ["boat"], "expiring_from": "2026-12-01",
                  "expiring_to": "2026-11-01"}))
    assert status == 422 and answer["error"] == "invalid_body"
    paths = {d["path"] for d in answer["details"]}
    assert {"category", "templates.zh-CN", "templates.en", "audience.products[0]"} <= paths
    assert any("{nmae}" in d["message"] for d in answer["details"])
    status, answer = await rig.call("POST", "/api/v1/campaigns", json=_campaign(
        audience={"expiring_from": "2026-12-01", "expiring_to": "2026-11-01"}))
    assert status == 422 and answer["details"][0]["path"] == "audience"


async def test_unknown_tier_and_unknown_field_are_422(rig: Rig) -> None:
    status, answer = await rig.call("POST", "/api/v1/campaigns",
                                    json=_campaign(audience={"tiers": ["platinum"]}))
    assert status == 422 and answer["details"][0]["path"] == "audience.tiers"
    status, answer = await rig.call("POST", "/api/v1/campaigns", json=_campaign(colour="red"))
    assert status == 422 and answer["details"][0]["path"] == "colour"


async def test_malformed_json_is_422(rig: Rig) -> None:
    status, answer = await rig.call("POST", "/api/v1/campaigns", data=b"{not json",
                                    headers={"Content-Type": "application/json"})
    assert status == 422 and answer["details"][0]["path"] == "body"


# -- claims --------------------------------------------------------------------------------


async def _claim(number: str = "C2026001") -> Claim:
    owner = await f.customer(name="赵六")
    policy = await f.policy(owner, number=f"P-{number}")
    return await Claim.create(number=number, policy=policy, customer=owner,
                              reported_at=f.NOON_SHANGHAI - timedelta(days=3))


async def test_claim_event_is_idempotent_by_external_id(rig: Rig) -> None:
    claim = await _claim()
    event = {"external_id": "core-77", "status": "surveyed",
             "occurred_at": "2026-11-21T10:00:00+08:00", "note": "查勘员已到场"}
    first = await rig.call("POST", f"/api/v1/claims/{claim.number}/events", Role.AGENT,
                           json=event)
    again = await rig.call("POST", f"/api/v1/claims/{claim.number}/events", Role.AGENT,
                           json=event)
    assert first[0] == 201 and first[1]["replayed"] is False
    assert again[0] == 200 and again[1]["replayed"] is True and again[1]["id"] == first[1]["id"]
    assert await ClaimEvent.filter(claim_id=claim.id).count() == 1
    [message] = await Message.filter(kind="claim_update")
    assert message.category == Category.SERVICE and message.customer_id == claim.customer_id
    assert message.params["status"] == {"zh-CN": "查勘完成", "en": "survey completed"}
    assert (await Claim.get(id=claim.id)).status == ClaimStatus.SURVEYED


async def test_claim_event_conflict_and_late_event(rig: Rig) -> None:
    claim = await _claim()
    url = f"/api/v1/claims/{claim.number}/events"
    assert (await rig.call("POST", url, Role.AGENT, json={
        "external_id": "e2", "status": "approved",
        "occurred_at": "2026-11-21T10:00:00+08:00"}))[0] == 201
    # same id, other content: conflict, nothing changes
    status, answer = await rig.call("POST", url, Role.AGENT, json={
        "external_id": "e2", "status": "paid", "occurred_at": "2026-11-21T10:00:00+08:00"})
    assert status == 409 and answer["error"] == "idempotency_conflict"
    # an older event arriving late is recorded but neither regresses nor notifies
    assert (await rig.call("POST", url, Role.AGENT, json={
        "external_id": "e1", "status": "surveyed",
        "occurred_at": "2026-11-20T10:00:00+08:00"}))[0] == 201
    assert (await Claim.get(id=claim.id)).status == ClaimStatus.APPROVED
    assert await Message.filter(kind="claim_update").count() == 1
    status, answer = await rig.call("POST", "/api/v1/claims/NOPE/events", Role.AGENT, json={
        "external_id": "e9", "status": "paid", "occurred_at": "2026-11-21T10:00:00+08:00"})
    assert status == 404


async def test_claim_upsert_creates_then_updates(rig: Rig) -> None:
    owner = await f.customer()
    policy = await f.policy(owner)
    body = {"policy_number": policy.number, "reported_at": "2026-11-20T09:00:00+08:00",
            "description": "追尾", "required_documents": ["driver_license"]}
    status, created = await rig.call("PUT", "/api/v1/claims/C9", Role.AGENT, json=body)
    assert status == 201 and created["customer_id"] == owner.id
    status, updated = await rig.call("PUT", "/api/v1/claims/C9", Role.AGENT,
                                     json={**body, "estimated_cents": 120000})
    assert status == 200 and updated["estimated_cents"] == 120000
    status, answer = await rig.call("PUT", "/api/v1/claims/C9", Role.AGENT,
                                    json={**body, "policy_number": "nope"})
    assert status == 422 and answer["error"] == "unknown_policy"
    actions = [a.action for a in await AuditLog.filter(target_type="claim").order_by("id")]
    assert actions == ["claim.upsert", "claim.upsert"]


# -- documents -----------------------------------------------------------------------------


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


async def _document(rig: Rig, claim: Claim) -> Document:
    from bot.documents import UploadLimits, store_document

    limits = UploadLimits(max_bytes=10_000_000, max_pixels=40_000_000, directory=rig.uploads)
    document, _ = await store_document(customer_id=claim.customer_id, claim_id=claim.id,
                                       channel=Channel.TELEGRAM, data=_png(),
                                       original_name="驾驶证.png", limits=limits,
                                       now=f.NOON_SHANGHAI)
    return document


async def test_document_download_thumbnail_and_reject_asks_to_reupload(rig: Rig) -> None:
    claim = await _claim()
    document = await _document(rig, claim)
    status, listed = await rig.call("GET", f"/api/v1/claims/{claim.number}/documents",
                                    Role.VIEWER)
    assert status == 200 and [d["id"] for d in listed["items"]] == [document.id]
    resp = await rig.client.get(f"/api/v1/documents/{document.id}/file",
                                headers=rig.auth(Role.VIEWER))
    assert resp.status == 200 and await resp.read() == _png()
    assert resp.headers["Content-Type"] == "image/png"
    resp = await rig.client.get(f"/api/v1/documents/{document.id}/thumbnail",
                                headers=rig.auth(Role.VIEWER))
    assert resp.status == 200 and resp.headers["Content-Type"] == "image/jpeg"
    assert (await rig.client.get(f"/api/v1/documents/{document.id}/file")).status == 401

    url = f"/api/v1/documents/{document.id}/review"
    status, answer = await rig.call("POST", url, Role.VIEWER, json={"decision": "reject",
                                                                    "reason": "模糊"})
    assert status == 403
    status, answer = await rig.call("POST", url, Role.AGENT, json={"decision": "reject"})
    assert status == 422 and answer["details"][0]["path"] == "reason"
    status, answer = await rig.call("POST", url, Role.AGENT, json={"decision": "reject",
                                                                   "reason": "照片模糊"})
    assert status == 200 and answer["status"] == "rejected"
    [message] = await Message.filter(kind="document_rejected")
    assert message.template_key == "document_rejected"
    assert message.params == {"claim": claim.number, "reason": "照片模糊"}
    status, answer = await rig.call("POST", url, Role.AGENT, json={"decision": "accept"})
    assert status == 409 and answer["error"] == "already_reviewed"
    assert (await Document.get(id=document.id)).status == DocumentStatus.REJECTED


# -- customers, loyalty --------------------------------------------------------------------


async def test_customer_search_masks_phones(rig: Rig) -> None:
    owner = await f.customer(name="钱七", phone="+8613912345678")
    policy = await f.policy(owner, number="PDAA2026", plate="沪B12345")
    for q in ("13912345678", "PDAA2026", "沪b 12345", "5678"):
        status, found = await rig.call("GET", "/api/v1/customers", Role.VIEWER,
                                       params={"q": q})
        assert status == 200 and [c["id"] for c in found["items"]] == [owner.id], q
        assert found["items"][0]["phone"] == "+86*******5678"
    no_policy = await f.customer(phone="+8613912340001")
    status, found = await rig.call("GET", "/api/v1/customers", Role.VIEWER,
                                   params={"q": "139 1234 0001"})
    assert [c["id"] for c in found["items"]] == [no_policy.id]
    status, profile = await rig.call("GET", f"/api/v1/customers/{owner.id}", Role.VIEWER)
    assert status == 200 and profile["policies"][0]["number"] == policy.number
    status, answer = await rig.call("GET", "/api/v1/customers", Role.VIEWER)
    assert status == 422 and answer["details"][0]["path"] == "query.q"


async def test_admin_adjusts_points_once_per_request_key_with_reason(rig: Rig) -> None:
    c = await f.customer()
    url = f"/api/v1/customers/{c.id}/points"
    status, answer = await rig.call("POST", url, json={"points": 50, "reason": " ",
                                                       "request_key": "k"})
    assert status == 422 and answer["details"][0]["path"] == "reason"
    body = {"points": 300, "reason": "投诉补偿", "request_key": "k1"}
    first = await rig.call("POST", url, json=body)
    again = await rig.call("POST", url, json=body)
    assert first[0] == 201 and first[1]["balance"] == 300
    assert again[0] == 200 and again[1]["replayed"] is True
    entry = await LedgerEntry.get()
    assert (entry.reason, entry.operator) == ("投诉补偿", "op-admin")
    status, answer = await rig.call("POST", url, json={"points": -1000, "reason": "x",
                                                       "request_key": "k2"})
    assert status == 409 and answer["error"] == "insufficient_points"
    log = await AuditLog.get(action="points.adjust")
    assert log.before == {"balance": 0} and log.after["balance"] == 300


async def test_rewards_create_update_stock_and_retire(rig: Rig) -> None:
    body = {"code": "wash_plus", "kind": "car_wash", "name_zh": "精洗", "name_en": "Deluxe wash",
            "points_cost": 800, "stock": 10}
    status, created = await rig.call("POST", "/api/v1/rewards", json=body)
    assert status == 201 and created["stock"] == 10
    assert (await rig.call("POST", "/api/v1/rewards", json=body))[0] == 409
    status, answer = await rig.call("POST", "/api/v1/rewards", json={**body, "code": "Bad!"})
    assert status == 422 and answer["details"][0]["path"] == "code"
    status, updated = await rig.call("PATCH", "/api/v1/rewards/wash_plus", json={"stock": 3})
    assert status == 200 and updated["stock"] == 3 and updated["points_cost"] == 800
    status, retired = await rig.call("POST", "/api/v1/rewards/wash_plus/retire")
    assert status == 200 and retired["retired_at"]
    assert (await Reward.get(code="wash_plus")).retired_at is not None
    log = await AuditLog.get(action="reward.update")
    assert (log.before["stock"], log.after["stock"]) == (10, 3)
    assert (await rig.call("PATCH", "/api/v1/rewards/nope", json={"stock": 1}))[0] == 404


# -- tasks and imports -----------------------------------------------------------------------


async def test_tasks_list_assign_close(rig: Rig) -> None:
    c = await f.customer()
    task = await Task.create(kind="renewal_callback", customer=c, source="telegram")
    status, listed = await rig.call("GET", "/api/v1/tasks", Role.VIEWER,
                                    params={"status": "open"})
    assert status == 200 and listed["items"][0]["id"] == task.id
    assert "*" in listed["items"][0]["phone"]
    status, assigned = await rig.call("POST", f"/api/v1/tasks/{task.id}/assign", Role.AGENT,
                                      json={"assignee": "小李"})
    assert status == 200 and assigned["status"] == "assigned"
    status, closed = await rig.call("POST", f"/api/v1/tasks/{task.id}/close", Role.AGENT,
                                    json={"note": "已回电，客户已续保"})
    assert status == 200 and closed["status"] == "closed"
    assert (await Task.get(id=task.id)).status == TaskStatus.CLOSED
    status, answer = await rig.call("POST", f"/api/v1/tasks/{task.id}/close", Role.AGENT,
                                    json={})
    assert status == 409 and answer["error"] == "task_closed"


async def test_shared_numbers_are_listed_masked_and_an_agent_releases_one(rig: Rig) -> None:
    shared = "+8613800138008"
    people = [await f.customer(name=name, phone=shared) for name in ("张伟", "李娜", "王强")]
    await recount([shared], rig.clock.now)
    status, listed = await rig.call("GET", "/api/v1/shared-phones", Role.VIEWER)
    assert status == 200 and (listed["total"], listed["next"]) == (1, None)
    [flag] = listed["items"]
    assert (flag["phone"], flag["held"], flag["customers"]) == (
        "+86*******8008", True, [{"id": p.id, "name": p.name[0] + "*"} for p in people])
    status, _ = await rig.call("POST", f"/api/v1/shared-phones/{flag['id']}/release",
                               Role.VIEWER)
    assert status == 403
    status, released = await rig.call("POST", f"/api/v1/shared-phones/{flag['id']}/release",
                                      Role.AGENT)
    assert status == 200 and released["released_by"] == "op-agent"
    assert not await SharedPhone.filter(released_at__isnull=True).exists()
    assert (released["held"], released["customers"]) == (False, flag["customers"])
    for held, total in (("true", 0), ("false", 1)):
        status, listed = await rig.call("GET", "/api/v1/shared-phones", Role.VIEWER,
                                        params={"held": held})
        assert (status, listed["total"], len(listed["items"])) == (200, total, total)
    [row] = await AuditLog.filter(action="shared_phone.release")
    assert (row.before["released_at"], row.after["released_by"]) == (None, "op-agent")
    assert "138008" not in str(row.before) + str(row.after)
    status, answer = await rig.call("POST", "/api/v1/shared-phones/999/release", Role.AGENT)
    assert status == 404 and answer["error"] == "not_found"
    # the console lists it too, released, with a release button only while held
    await _login(rig, Role.AGENT)
    page = await (await rig.client.get("/console/shared-phones?lang=en")).text()
    assert "+86*******8008" in page and "released by op-agent" in page
    assert "/release" not in page and shared not in page


async def test_a_customers_profile_says_who_set_their_language_and_who_shares_the_phone(
        rig: Rig) -> None:
    shared = "+8613800138008"
    her = await f.customer(name="李娜", phone=shared, customer_no="C002")
    await f.customer(name="张伟", phone=shared)
    await record_choice(her.id, source="telegram", now=rig.clock.now, language="en")
    status, profile = await rig.call("GET", f"/api/v1/customers/{her.id}", Role.VIEWER)
    assert status == 200
    customer = profile["customer"]
    assert (customer["customer_no"], customer["phone_shared"]) == ("C002", 2)
    assert customer["choices"]["language"] == {"by": "telegram",
                                               "at": rig.clock.now.isoformat()}
    assert customer["choices"]["timezone"] == {"by": "", "at": None}
    await _login(rig, Role.VIEWER)
    page = await (await rig.client.get(f"/console/customers/{her.id}?lang=en")).text()
    assert "language set by the customer in Telegram (2026-11-21 12:00)" in page
    assert "2 customers share this number" in page


async def test_dashboard_counts_the_insured_today_as_care_does(rig: Rig) -> None:
    today = rig.clock.now.date()  # 2026-11-21 in Shanghai
    renewed_early = await f.customer()
    await f.policy(renewed_early, end=today + timedelta(days=5), status=PolicyStatus.RENEWED)
    await f.policy(await f.customer(), end=today + timedelta(days=5),
                   status=PolicyStatus.CANCELLED)
    await f.policy(await f.customer(), end=today - timedelta(days=1))
    await f.customer()
    for name in ("甲", "乙", "丙"):
        await f.customer(name=name, phone="+8613800138008")
    await recount(["+8613800138008"], rig.clock.now)
    status, data = await rig.call("GET", "/api/v1/dashboard", Role.VIEWER)
    assert status == 200
    assert (data["insured_today"], data["shared_phones_held"]) == (1, 1)


async def test_csv_import_reports_line_numbered_errors(rig: Rig) -> None:
    csv_text = "phone,name\n13800000001,甲\nnot-a-phone,乙\n13800000003,\n"
    status, report = await rig.call("POST", "/api/v1/imports", params={"kind": "customers"},
                                    data=csv_text.encode(), headers={"Content-Type": "text/csv"})
    assert status == 200
    assert (report["created"], report["rejected"]) == (1, 2)
    assert report["problems"][0].startswith("line 3: phone:")
    assert report["problems"][1].startswith("line 4: name:")
    assert await Customer.filter(phone="+8613800000001").exists()
    status, answer = await rig.call("POST", "/api/v1/imports", params={"kind": "customers"},
                                    data=b"nothing,here\n1,2\n",
                                    headers={"Content-Type": "text/csv"})
    assert status == 422 and answer["error"] == "import_refused"
    assert "missing column" in answer["message"] and "/tmp" not in answer["message"]
    status, answer = await rig.call("POST", "/api/v1/imports", Role.AGENT,
                                    params={"kind": "customers"}, data=csv_text.encode())
    assert status == 403


# -- console session on the API: CSRF ---------------------------------------------------------


async def console_login(client: Client, token: str) -> str:
    """Sign ``client`` in to the console with an operator token; the session's CSRF token."""
    resp = await client.get("/console/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', await resp.text())
    assert csrf is not None
    resp = await client.post("/console/login", data={
        "token": token, "csrf_token": csrf.group(1), "next": "/console/"},
        allow_redirects=False)
    assert resp.status == 303
    cookie = resp.cookies["engage_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    page = await (await client.get("/console/")).text()
    session_csrf = re.search(r'data-csrf="([^"]+)"', page)
    assert session_csrf is not None
    return session_csrf.group(1)


async def _login(rig: Rig, role: Role) -> str:
    return await console_login(rig.client, rig.tokens[role])


async def test_session_cookie_writes_need_the_csrf_token(rig: Rig) -> None:
    csrf = await _login(rig, Role.ADMIN)
    resp = await rig.client.get("/api/v1/me")
    assert resp.status == 200 and (await resp.json())["via"] == "session"
    resp = await rig.client.post("/api/v1/campaigns", json=_campaign())
    assert resp.status == 403 and (await resp.json())["error"] == "csrf"
    resp = await rig.client.post("/api/v1/campaigns", json=_campaign(),
                                 headers={"X-CSRF-Token": "wrong"})
    assert resp.status == 403
    resp = await rig.client.post("/api/v1/campaigns", json=_campaign(),
                                 headers={"X-CSRF-Token": csrf})
    assert resp.status == 201


async def test_console_forms_need_the_csrf_token(rig: Rig) -> None:
    await _login(rig, Role.ADMIN)
    c = await f.customer()
    resp = await rig.client.post(f"/console/customers/{c.id}/points", data={
        "points": "10", "reason": "x", "request_key": "r"}, allow_redirects=False)
    assert resp.status == 403
    assert await LedgerEntry.all().count() == 0


async def test_console_form_mistakes_go_back_to_the_form_naming_the_field(rig: Rig) -> None:
    csrf = await _login(rig, Role.ADMIN)
    c = await f.customer()
    resp = await rig.client.post(f"/console/customers/{c.id}/points", data={
        "points": "0", "reason": "x", "request_key": "r", "csrf_token": csrf},
        allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == (f"/console/customers/{c.id}"
                                        "?err=invalid_adjustment&field=points")
    assert await LedgerEntry.all().count() == 0
    resp = await rig.client.post("/console/rewards", data={
        "code": "Bad!", "kind": "car_wash", "name_zh": "洗", "name_en": "Wash",
        "points_cost": "10", "csrf_token": csrf}, allow_redirects=False)
    assert resp.headers["Location"] == "/console/rewards?err=invalid_reward&field=code"
    await rig.call("POST", "/api/v1/rewards", json={
        "code": "wash_plus", "kind": "car_wash", "name_zh": "精洗", "name_en": "Deluxe wash",
        "points_cost": 800})
    resp = await rig.client.post("/console/rewards/wash_plus", data={
        "stock": "-3", "csrf_token": csrf}, allow_redirects=False)
    assert resp.headers["Location"] == "/console/rewards?err=invalid_reward&field=stock"
    assert (await Reward.get(code="wash_plus")).stock is None
    claim = await _claim()
    document = await _document(rig, claim)
    resp = await rig.client.post(f"/console/documents/{document.id}/review", data={
        "decision": "reject", "reason": " ", "csrf_token": csrf}, allow_redirects=False)
    assert resp.headers["Location"] == (f"/console/claims/{claim.number}"
                                        "?err=invalid_review&field=reason")
    assert (await Document.get(id=document.id)).status == DocumentStatus.RECEIVED
    page = await (await rig.client.get(resp.headers["Location"] + "&lang=en")).text()
    assert "A rejection needs a reason. — <span class=\"detail\">reason</span>" in page


async def test_console_refusals_go_back_with_their_code_or_get_the_error_page(
        rig: Rig) -> None:
    csrf = await _login(rig, Role.ADMIN)
    _, created = await rig.call("POST", "/api/v1/campaigns", json=_campaign())
    url = f"/console/campaigns/{created['id']}"
    resp = await rig.client.post(url + "/pause", data={"csrf_token": csrf},
                                 headers={"Referer": "http://x" + url}, allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, url + "?err=invalid_state")
    resp = await rig.client.post(url + "/cancel", data={"csrf_token": csrf},
                                 allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, url + "?ok=campaign_cancel")
    resp = await rig.client.post(url + "/launch", data={"csrf_token": csrf},
                                 allow_redirects=False)
    assert resp.status == 404
    resp = await rig.client.get("/console/campaigns/999999?lang=zh-CN")
    assert resp.status == 404
    assert '<p class="flash err" id="error-code">未找到。</p>' in await resp.text()


async def test_console_login_with_a_bad_token_fails_and_pages_redirect(rig: Rig) -> None:
    resp = await rig.client.get("/console/campaigns", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/console/login")
    resp = await rig.client.get("/console/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', await resp.text())
    assert csrf is not None
    resp = await rig.client.post("/console/login", data={"token": "nope",
                                                         "csrf_token": csrf.group(1)})
    assert resp.status == 401 and "engage_session" not in resp.cookies


async def test_viewer_console_hides_and_refuses_admin_actions(rig: Rig) -> None:
    await _login(rig, Role.VIEWER)
    page = await (await rig.client.get("/console/campaigns")).text()
    assert 'id="new-campaign"' not in page
    resp = await rig.client.get("/console/campaigns/new")
    assert resp.status == 403


async def test_every_console_page_renders_in_both_languages(rig: Rig) -> None:
    await _login(rig, Role.ADMIN)
    claim = await _claim()
    await _document(rig, claim)
    _status, created = await rig.call("POST", "/api/v1/campaigns", json=_campaign())
    c = await f.customer()
    await Task.create(kind="renewal_callback", customer=c, source="sms")
    pages = ["/console/", "/console/campaigns", "/console/campaigns/new",
             f"/console/campaigns/{created['id']}", "/console/claims",
             f"/console/claims/{claim.number}", "/console/customers?q=138",
             f"/console/customers/{c.id}", "/console/rewards", "/console/tasks",
             "/console/imports", "/console/shared-phones"]
    for lang in ("zh-CN", "en"):
        for url in pages:
            sep = "&" if "?" in url else "?"
            resp = await rig.client.get(f"{url}{sep}lang={lang}")
            assert resp.status == 200, url
            text = await resp.text()
            assert f'<html lang="{lang}">' in text
    assert "Campaigns" in text and "群发活动" not in text


async def test_every_write_leaves_an_audit_row(rig: Rig) -> None:
    _status, created = await rig.call("POST", "/api/v1/campaigns", json=_campaign())
    await rig.call("POST", f"/api/v1/campaigns/{created['id']}/cancel")
    rows = await AuditLog.filter(target_type="campaign").order_by("id")
    assert [r.action for r in rows] == ["campaign.create", "campaign.cancel"]
    assert rows[1].before["status"] == "draft" and rows[1].after["status"] == "cancelled"
    assert rows[1].operator_name == "op-admin"
    assert rows[0].created_at == f.NOON_SHANGHAI
    _ = datetime.now(UTC)  # the clock above is the injected one, not this


async def test_session_cookie_is_secure_behind_https(db: str) -> None:
    settings = f.settings_for(db_url=db, web={"public_base_url": "https://ops.example.com"})
    app = build_app(settings, Overrides(run_dispatcher=False, run_scheduler=False,
                                        run_campaigns=False, manage_database=False))
    _, token = await create_operator("https-admin", Role.ADMIN)
    async with TestClient(TestServer(app)) as client:
        page = await (await client.get("/console/login")).text()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert csrf is not None
        resp = await client.post("/console/login", allow_redirects=False, data={
            "token": token, "csrf_token": csrf.group(1)},
            cookies={"engage_login_csrf": csrf.group(1)})
        assert resp.status == 303
        cookie = resp.cookies["engage_session"]
        assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Strict"
