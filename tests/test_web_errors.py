"""The web app's one error map: a refusal raised below a route is answered by the part of the
app that was called (its JSON error, with the API's status and code), and nothing outside the
registered parts changes (aiohttp answers those as before)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.web import errors
from bot.web.bodies import read_json
from bot.web.operators.catalogue import RewardNotFound
from loyalty.errors import (
    InsufficientPoints,
    InvalidRequest,
    InvalidVoucherCode,
    NotEligible,
    UnknownCustomer,
    VoucherCancelled,
    VoucherExpired,
    VoucherNotFound,
)

Client = TestClient[web.Request, web.Application]
RAISED: dict[str, Exception] = {
    "insufficient": InsufficientPoints(50, 10),
    "invalid": InvalidRequest("zero points"),
    "customer": UnknownCustomer("no customer 7"),
    "eligible": NotEligible("tier"),
    "voucher": VoucherNotFound("no such voucher"),
    "code": InvalidVoucherCode("check character"),
    "expired": VoucherExpired("expired at 2026-03-01"),
    "cancelled": VoucherCancelled("the customer cancelled it"),
    "reward": RewardNotFound("no reward 'wash'"),
    "unauthorized": errors.Unauthorized(),
    "restated": errors.Restated(VoucherExpired("expired at noon"), voucher={"code": "ABC"}),
    "body": errors.InvalidBody([errors.FieldProblem(path="audience.tiers[0]",
                                                    message="unknown tier 'x'",
                                                    type="unknown_tier")]),
}


async def _raise(request: web.Request) -> web.Response:
    raise RAISED[request.match_info["what"]]


async def _echo(request: web.Request) -> web.Response:
    return web.json_response(await read_json(request))


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    app = web.Application()
    errors.setup(app)
    for prefix in ("/api/", "/api/partner/", "/elsewhere/"):
        app.router.add_get(prefix + "{what}", _raise)
    app.router.add_post("/api/echo", _echo)
    errors.answer_under(app, "/api/", errors.json_errors("operator"))
    errors.answer_under(app, "/api/partner/", errors.json_errors(
        "partner", {"voucher_expired": "this voucher has expired"}))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.mark.parametrize(("what", "status", "code"), [
    ("insufficient", 409, "insufficient_points"), ("invalid", 422, "invalid_request"),
    ("customer", 404, "unknown_customer"), ("eligible", 409, "not_eligible"),
    ("voucher", 404, "voucher_not_found"), ("code", 422, "invalid_code"),
    ("expired", 410, "voucher_expired"), ("cancelled", 410, "voucher_cancelled"),
    ("reward", 404, "not_found"),
])
async def test_a_domain_error_is_its_status_and_code_as_json(client: Client, what: str,
                                                             status: int, code: str) -> None:
    response = await client.get(f"/api/{what}")
    assert response.status == status
    assert await response.json() == {"error": code, "message": str(RAISED[what])}
    assert "WWW-Authenticate" not in response.headers


async def test_the_api_says_its_own_message_and_realm(client: Client) -> None:
    response = await client.get("/api/partner/expired")
    assert (response.status, await response.json()) == (
        410, {"error": "voucher_expired", "message": "this voucher has expired"})
    response = await client.get("/api/partner/unauthorized")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="partner"'
    response = await client.get("/api/unauthorized")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="operator"'


async def test_details_are_fields_of_the_body(client: Client) -> None:
    response = await client.get("/api/partner/restated")
    assert (response.status, await response.json()) == (410, {
        "error": "voucher_expired", "message": "this voucher has expired",
        "voucher": {"code": "ABC"}})
    response = await client.get("/api/body")
    assert (response.status, await response.json()) == (422, {
        "error": "invalid_body", "message": "audience.tiers[0]: unknown tier 'x'",
        "details": [{"path": "audience.tiers[0]", "message": "unknown tier 'x'",
                     "type": "unknown_tier"}]})


async def test_an_unreadable_body_is_400(client: Client) -> None:
    response = await client.post("/api/echo", data=b"\xff\xfe{",
                                 headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert (await response.json())["error"] == "unreadable_body"


async def test_outside_the_registered_parts_aiohttp_answers_as_before(client: Client) -> None:
    response = await client.get("/elsewhere/insufficient")
    assert response.status == 500
    assert response.content_type == "text/plain"
