"""Accident reports in the operator console and API (issue 20): the report is a claim the
console shows with its documents, a dead letter is listed with a retry button that puts it
back in the queue, the core system's claim number arrives by PUT, and the delivery loop and
the drafts sweep are supervised tasks on /healthz and /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.web.app import Overrides, build_app
from bot.web.operators.access import create_operator
from storage.accident_models import CoreDelivery, CoreDeliveryStatus
from storage.models import Channel, Claim, Document, Message
from storage.operator_models import AuditLog, Role
from tests import factories as f
from tests.fakes.core import FakeCore
from tests.test_core_reports import SECRET, Clock, reported
from tests.test_operators_api import console_login

Client = TestClient[web.Request, web.Application]


@dataclass
class Rig:
    client: Client
    clock: Clock
    token: str
    csrf: str
    document: int = 0

    async def api(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        resp = await self.client.request(method, path, headers={
            "Authorization": f"Bearer {self.token}"}, **kw)
        return resp.status, await resp.json()


@pytest.fixture
async def rig(db: str) -> AsyncIterator[Rig]:
    clock = Clock()
    app = build_app(f.settings_for(db_url=db), Overrides(
        run_dispatcher=False, run_scheduler=False, run_campaigns=False, manage_database=False,
        run_accident_reports=False, clock=clock))
    _, token = await create_operator("agent", Role.AGENT, contact_phone=None)
    async with TestClient(TestServer(app)) as client:
        csrf = await console_login(client, token)
        yield Rig(client, clock, token, csrf)


async def _dead(rig: Rig) -> tuple[Claim, CoreDelivery]:
    claim = await reported(rig.clock)
    document = await Document.create(
        claim=claim, customer_id=claim.customer_id, channel=Channel.TELEGRAM,
        mime_type="image/jpeg", size=1000, sha256="a" * 64, storage_key="a/a",
        original_name="photos:photo", created_at=rig.clock())
    row = await CoreDelivery.get(claim_id=claim.id)
    await CoreDelivery.filter(id=row.id).update(status=CoreDeliveryStatus.DEAD, attempts=8,
                                                dead_at=rig.clock(),
                                                last_error="HTTP 503: maintenance")
    rig.document = document.id
    return claim, row


async def test_the_console_shows_the_report_and_a_dead_letter_it_can_retry(rig: Rig) -> None:
    claim, row = await _dead(rig)
    claims_page = await (await rig.client.get("/console/claims")).text()
    assert claim.number in claims_page
    claim_page = await (await rig.client.get(f"/console/claims/{claim.number}")).text()
    assert f'id="document-{rig.document}"' in claim_page and "剐蹭" in claim_page
    assert f"报案号 {claim.number}" in claim_page and "死信" in claim_page
    page = await (await rig.client.get("/console/accident-reports?status=dead")).text()
    assert f'data-id="{row.id}" data-status="dead"' in page
    assert "HTTP 503: maintenance" in page
    assert f'action="/console/accident-reports/{row.id}/retry"' in page
    rig.clock.advance(minutes=5)
    resp = await rig.client.post(f"/console/accident-reports/{row.id}/retry",
                                 data={"csrf_token": rig.csrf}, allow_redirects=False)
    assert resp.status == 303
    row = await CoreDelivery.get(id=row.id)
    assert (row.status, row.attempts, row.next_attempt_at) == (
        CoreDeliveryStatus.PENDING, 0, rig.clock())
    assert await AuditLog.filter(action="accident_report.retry").count() == 1
    page = await (await rig.client.get("/console/accident-reports?status=dead")).text()
    assert f'data-id="{row.id}"' not in page
    resp = await rig.client.post(f"/console/accident-reports/{row.id}/retry",
                                 data={"csrf_token": rig.csrf}, allow_redirects=False)
    assert resp.status in (303, 409)  # not a dead letter any more: refused, nothing changed
    assert (await CoreDelivery.get(id=row.id)).status == CoreDeliveryStatus.PENDING


async def test_the_api_lists_dead_letters_and_retries_one(rig: Rig) -> None:
    claim, row = await _dead(rig)
    status, body = await rig.api("GET", "/api/v1/accident-reports?status=dead")
    assert status == 200
    [item] = body["items"]
    assert (item["reference"], item["claim_number"], item["status"]) == (
        claim.number, claim.number, "dead")
    status, body = await rig.api("POST", f"/api/v1/accident-reports/{row.id}/retry")
    assert (status, body["status"]) == (200, "pending")
    status, body = await rig.api("POST", f"/api/v1/accident-reports/{row.id}/retry")
    assert (status, body["error"]) == (409, "not_a_dead_letter")
    status, _ = await rig.api("POST", "/api/v1/accident-reports/99999/retry")
    assert status == 404


async def test_the_core_claim_number_put_later_renames_the_claim_and_tells_the_customer(
        rig: Rig) -> None:
    claim = await reported(rig.clock)
    reference = claim.number
    path = f"/api/v1/accident-reports/{reference}/claim-number"
    status, body = await rig.api("PUT", path, json={"claim_number": "RDAA2026000777"})
    assert (status, body["number"], body["changed"], body["status"]) == (
        200, "RDAA2026000777", True, "reported")
    status, body = await rig.api("PUT", path, json={"claim_number": "RDAA2026000777"})
    assert (status, body["changed"]) == (200, False)
    status, body = await rig.api("PUT", path, json={"claim_number": "RDAA2026000999"})
    assert (status, body["error"]) == (409, "core_number_conflict")
    status, body = await rig.api("PUT", "/api/v1/accident-reports/BA000000XXXXXX/claim-number",
                                 json={"claim_number": "X1"})
    assert (status, body["error"]) == (404, "report_not_found")
    status, _ = await rig.api("PUT", path, json={"claim_number": "bad number; drop"})
    assert status == 422
    [told] = await Message.filter(kind="report_core_number")
    assert told.params == {"reference": reference, "claim": "RDAA2026000777"}
    # the core system's own updates now reach the claim by its number
    status, body = await rig.api("POST", "/api/v1/claims/RDAA2026000777/events", json={
        "external_id": "ev-1", "status": "registered",
        "occurred_at": (rig.clock() + timedelta(hours=1)).isoformat()})
    assert status == 201
    assert (await Claim.get(id=claim.id)).status == "registered"


async def test_the_delivery_loop_and_the_drafts_sweep_are_supervised(db: str) -> None:
    clock = Clock()
    app = build_app(f.settings_for(db_url=db), Overrides(
        run_dispatcher=False, run_scheduler=False, run_campaigns=False, manage_database=False,
        clock=clock))
    async with TestClient(TestServer(app)) as client:
        body = await (await client.get("/healthz")).json()
        assert {"core-reports", "report-drafts"} <= set(body["tasks"])
        metrics = await (await client.get("/metrics")).text()
        assert "engage_core_reports_dead" in metrics
        assert 'engage_task_up{task="core-reports"}' in metrics


async def until(check: Callable[[], Awaitable[bool]], limit: float = 30.0) -> None:
    """Wait for a background loop's effect (a deadline, not a sleep-and-hope)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not await check():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_the_running_app_delivers_a_confirmed_report(db: str) -> None:
    clock = Clock()
    async with FakeCore(SECRET, now=lambda: clock().timestamp()) as core:
        settings = f.settings_for(db_url=db, core={
            "report_webhook_url": core.url, "report_webhook_secret": SECRET,
            "poll_interval_seconds": 0.05})
        app = build_app(settings, Overrides(
            run_dispatcher=False, run_scheduler=False, run_campaigns=False,
            manage_database=False, clock=clock))
        async with TestClient(TestServer(app)):
            claim = await reported(clock)

            async def delivered() -> bool:
                row = await CoreDelivery.get(claim_id=claim.id)
                return row.status == CoreDeliveryStatus.DELIVERED

            await until(delivered)
        assert core.refused == [] and len(core.received) == 1
        assert (await Claim.get(id=claim.id)).number == "CLM00000001"
