"""The operator API's OpenAPI document: valid OpenAPI 3.1 (openapi-spec-validator), complete
enough for a generated client (every operation named, summarised, typed, with the error
shape), and true: every route's real answer validates against the schema it documents."""

from __future__ import annotations

import re
from datetime import date
from fnmatch import fnmatch
from typing import Any

from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from bot.desk.threads import Desk, Sender
from bot.settings import Settings
from bot.web.operators.access import create_operator
from bot.web.operators.api import API
from storage.accident_models import CoreDelivery, CoreDeliveryStatus
from storage.choices import TELEGRAM, record_choice
from storage.desk_models import HandoffReason
from storage.loyalty_models import Reward
from storage.models import Channel, SharedPhone, Task
from storage.operator_models import Role
from storage.shared_phones import recount
from tests import factories as f
from tests import test_operators_api
from tests.test_core_reports import reported
from tests.test_operators_api import Rig, _campaign, _claim, _document

rig = test_operators_api.rig  # the API rig: an operator per role, uploads, a set clock

JSON = "application/json"


async def served(rig: Rig) -> dict[str, Any]:
    resp = await rig.client.get("/api/v1/openapi.json")
    assert resp.status == 200
    doc: dict[str, Any] = await resp.json()
    return doc


async def test_the_served_document_is_valid_openapi_3_1(rig: Rig) -> None:
    doc = await served(rig)
    assert doc["openapi"] == "3.1.0"
    validate(doc)  # raises with the offending path if not


async def test_every_operation_gives_a_client_a_name_a_summary_types_and_errors(
        rig: Rig) -> None:
    doc = await served(rig)
    schemas = doc["components"]["schemas"]
    seen: set[str] = set()

    def resolves(schema: dict[str, Any]) -> bool:
        ref = schema.get("$ref") or schema.get("items", {}).get("$ref")
        return ref is not None and ref.rsplit("/", 1)[-1] in schemas

    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            assert op["operationId"] not in seen, where
            seen.add(op["operationId"])
            assert op["summary"].strip(), where
            success = {code: r for code, r in op["responses"].items() if code.startswith("2")}
            assert success, where
            for response in success.values():
                [(media, content)] = response["content"].items()
                schema = content["schema"]
                assert schema, f"{where}: an empty schema types nothing"
                if media == JSON:
                    assert resolves(schema), where
                else:
                    assert schema["type"] == "string", where
            for code in ("401", "403", *(["404"] if "{" in path else []),
                         *(["422"] if "requestBody" in op else [])):
                error = op["responses"][code]["content"][JSON]["schema"]
                assert error == {"$ref": "#/components/schemas/Error"}, (where, code)
            if "requestBody" in op and JSON in op["requestBody"]["content"]:
                assert resolves(op["requestBody"]["content"][JSON]["schema"]), where
            for parameter in op["parameters"]:
                assert "$ref" not in str(parameter) or resolves(parameter["schema"]) or all(
                    ref.split("/")[-1] in schemas
                    for ref in re.findall(r"#/components/schemas/[\w.\-]+", str(parameter))
                ), where
    assert len(seen) == len(API.endpoints)


async def test_every_answer_is_what_the_document_says(rig: Rig) -> None:
    doc = await served(rig)
    _, token = await create_operator("有联系人", Role.ADMIN, contact_phone="13900000000")
    claim = await _claim()
    document = await _document(rig, claim)
    customer = await f.customer(name="郑一", phone="+8613600001234")
    await record_choice(customer.id, source=TELEGRAM, now=rig.clock.now, language="en")
    task = await Task.create(kind="renewal_callback", customer=customer, source="sms")
    await Reward.create(code="pen", kind="gift", name_zh="笔", name_en="Pen", points_cost=10)
    erasable = await f.customer(name="钱二")
    renewing = await f.policy(customer, end=date(2026, 12, 1), branch="310100")
    await Task.create(kind="renewal_callback", customer=customer, policy=renewing,
                      source="telegram")
    for name in ("王一", "王二", "王三"):
        await f.customer(name=name, phone="+8613700001111")
    await recount(["+8613700001111"], rig.clock.now)
    shared = await SharedPhone.get(phone="+8613700001111")
    talk = await Desk(Settings()).inbound(Sender.of_customer(customer.id), Channel.SMS, "人工",
                                          handoff=HandoffReason.KEYWORD, now=rig.clock.now)
    tid = talk.conversation_id
    cpid = 1  # the complaint the conversation becomes below
    _, campaign = await rig.call("POST", "/api/v1/campaigns", json=_campaign())
    cid = campaign["id"]
    report = await reported(rig.clock)
    await CoreDelivery.filter(claim_id=report.id).update(status=CoreDeliveryStatus.DEAD)
    delivery = await CoreDelivery.get(claim_id=report.id)
    csv_text = "phone,name\n13600009999,新客户\n"
    event = {"external_id": "core-1", "status": "surveyed",
             "occurred_at": "2026-11-21T10:00:00+08:00"}
    reward = {"code": "tea", "kind": "gift", "name_zh": "茶叶", "name_en": "Tea",
              "points_cost": 300}
    claim_body = {"policy_number": f"P-{claim.number}",
                  "reported_at": "2026-11-20T09:00:00+08:00"}
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/api/v1/me", {}),
        ("GET", "/api/v1/dashboard", {}),
        ("GET", "/api/v1/audit", {"params": {"limit": "2"}}),
        ("GET", "/api/v1/campaigns", {}),
        ("POST", "/api/v1/campaigns", {"json": _campaign(name="再一个")}),
        ("POST", "/api/v1/campaigns/audience", {"json": {"languages": ["zh-CN"]}}),
        ("GET", f"/api/v1/campaigns/{cid}", {}),
        ("GET", f"/api/v1/campaigns/{cid}/preview", {}),
        ("POST", f"/api/v1/campaigns/{cid}/test", {}),
        ("POST", f"/api/v1/campaigns/{cid}/start", {}),
        ("POST", f"/api/v1/campaigns/{cid}/pause", {}),
        ("POST", f"/api/v1/campaigns/{cid}/resume", {}),
        ("GET", f"/api/v1/campaigns/{cid}/stats", {}),
        ("GET", f"/api/v1/campaigns/{cid}/failures.csv", {}),
        ("POST", f"/api/v1/campaigns/{cid}/cancel", {}),
        ("GET", "/api/v1/claims", {"params": {"q": claim.number}}),
        ("PUT", f"/api/v1/claims/{claim.number}", {"json": claim_body}),
        ("POST", f"/api/v1/claims/{claim.number}/events", {"json": event}),
        ("GET", f"/api/v1/claims/{claim.number}", {}),
        ("GET", f"/api/v1/claims/{claim.number}/documents", {}),
        ("GET", f"/api/v1/documents/{document.id}/file", {}),
        ("GET", f"/api/v1/documents/{document.id}/thumbnail", {}),
        ("POST", f"/api/v1/documents/{document.id}/review", {"json": {"decision": "accept"}}),
        ("GET", "/api/v1/customers", {"params": {"q": "1234"}}),
        ("GET", f"/api/v1/customers/{customer.id}", {}),
        ("POST", f"/api/v1/customers/{customer.id}/points",
         {"json": {"points": 50, "reason": "补偿", "request_key": "k1"}}),
        ("POST", f"/api/v1/customers/{customer.id}/redemptions",
         {"json": {"reward_code": "pen", "request_key": "r1"}}),
        ("GET", f"/api/v1/customers/{customer.id}/export", {}),
        ("GET", f"/api/v1/customers/{customer.id}/export.zip", {}),
        ("POST", f"/api/v1/customers/{erasable.id}/erase", {}),
        ("GET", "/api/v1/consents.csv", {}),
        ("GET", "/api/v1/rewards", {}),
        ("POST", "/api/v1/rewards", {"json": reward}),
        ("PATCH", "/api/v1/rewards/tea", {"json": {"stock": 10}}),
        ("POST", "/api/v1/rewards/tea/retire", {}),
        ("GET", "/api/v1/accident-reports", {"params": {"status": "dead"}}),
        ("POST", f"/api/v1/accident-reports/{delivery.id}/retry", {}),
        ("PUT", f"/api/v1/accident-reports/{report.number}/claim-number",
         {"json": {"claim_number": "CORE-0001"}}),
        ("GET", "/api/v1/tasks", {}),
        ("POST", f"/api/v1/tasks/{task.id}/assign", {"json": {"assignee": "小王"}}),
        ("POST", f"/api/v1/tasks/{task.id}/close", {"json": {"note": "已回电"}}),
        ("GET", "/api/v1/conversations", {"params": {"view": "waiting"}}),
        ("GET", "/api/v1/conversations/counts", {}),
        ("GET", f"/api/v1/conversations/{tid}", {}),
        ("GET", f"/api/v1/conversations/{tid}/preview", {"params": {"text": "您好"}}),
        ("POST", f"/api/v1/conversations/{tid}/messages", {"json": {"text": "您好"}}),
        ("POST", f"/api/v1/conversations/{tid}/assign", {"json": {}}),
        ("POST", f"/api/v1/conversations/{tid}/resolve", {}),
        ("POST", f"/api/v1/conversations/{tid}/complaint",
         {"json": {"category": "other", "description": "等太久"}}),
        ("GET", "/api/v1/complaints", {}),
        ("GET", "/api/v1/satisfaction", {}),
        ("GET", "/api/v1/complaints/register.csv", {"params": {"received_from": "2026-11-01"}}),
        ("POST", f"/api/v1/complaints/{cpid}/assign", {"json": {}}),
        ("POST", f"/api/v1/complaints/{cpid}/staff", {"json": {"staff_complained": "钱七"}}),
        ("POST", f"/api/v1/complaints/{cpid}/extend", {"json": {"reason": "复杂"}}),
        ("POST", f"/api/v1/complaints/{cpid}/extend", {"json": {"reason": "更复杂"}}),
        ("POST", f"/api/v1/complaints/{cpid}/approve", {}),
        ("GET", f"/api/v1/complaints/{cpid}", {}),
        ("POST", f"/api/v1/complaints/{cpid}/close", {"json": {"outcome": "已致歉"}}),
        ("POST", "/api/v1/renewals/claim", {"json": {"policy_ids": [renewing.id]}}),
        ("POST", f"/api/v1/renewals/{renewing.id}/call", {"json": {"result": "reached"}}),
        ("POST", f"/api/v1/renewals/{renewing.id}/outcome", {"json": {"outcome": "unreachable"}}),
        ("GET", "/api/v1/renewals/worklist", {"params": {"branch": "*"}}),
        ("GET", "/api/v1/renewals/claim-window", {}),
        ("GET", "/api/v1/renewals/kpis", {}),
        ("GET", "/api/v1/renewals/kpis.csv", {}),
        ("GET", "/api/v1/shared-phones", {"params": {"held": "true", "limit": "5"}}),
        ("POST", f"/api/v1/shared-phones/{shared.id}/release", {}),
        ("GET", "/api/v1/regions", {"params": {"used": "true"}}),
        ("POST", "/api/v1/regions/import",
         {"data": "code,name,latitude,longitude\nisle,岛,30,121\n".encode(),
          "headers": {"Content-Type": "text/csv"}}),
        ("POST", "/api/v1/imports", {"params": {"kind": "customers"},
                                     "data": csv_text.encode(),
                                     "headers": {"Content-Type": "text/csv"}}),
    ]
    covered = {(m, re.sub(r"/(\d+|tea|C2026001|BA\w+)(?=/|$)", "/{x}", p)) for m, p, _ in calls}
    routes = {(e.method, re.sub(r"{\w+}", "{x}", e.path)) for e in API.endpoints}
    assert covered == routes, routes ^ covered
    for method, path, kw in calls:
        resp = await rig.client.request(method, path, **{
            **kw, "headers": {"Authorization": f"Bearer {token}", **kw.get("headers", {})}})
        template = next(e.path for e in API.endpoints if e.method == method and re.fullmatch(
            re.sub(r"{\w+}", r"[^/]+", e.path), path))
        op = doc["paths"][template][method.lower()]
        assert str(resp.status) in op["responses"], (method, path, resp.status)
        assert resp.status < 300, (method, path, await resp.text())
        [(media, content)] = op["responses"][str(resp.status)]["content"].items()
        assert fnmatch(resp.content_type, media), (method, path)
        if media != JSON:
            assert await resp.read(), (method, path)
            continue
        schema = {**doc, **content["schema"]}  # $refs resolve inside the whole document
        errors = sorted(Draft202012Validator(schema).iter_errors(await resp.json()), key=str)
        assert not errors, (method, path, [e.message for e in errors[:3]])
