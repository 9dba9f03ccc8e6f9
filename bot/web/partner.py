"""Partner voucher verification API: a partner checks a voucher and marks it used, once.

``GET  /api/v1/partner/vouchers/{code}``         → the voucher as the partner may see it
``POST /api/v1/partner/vouchers/{code}/redeem``  → mark it used (exactly once)

Authenticated by ``Authorization: Bearer <token>`` (one token per partner, created with
``engage partner add``). A voucher of a reward kind the partner does not serve answers 404,
exactly as an unknown code does. Errors are JSON ``{"error": code, "message": …}``: 401 bad
or missing token, 422 ``invalid_code`` for text that cannot be a voucher code (wrong length
or symbols, or a check character that does not match: a typo, worth checking with the
customer), 404 a well-formed code that is not a voucher of this partner's, 409 already used,
410 expired or cancelled.

The handlers only translate HTTP to ``loyalty.partners`` calls; the domain errors they raise
carry their status and are answered by ``bot.web.errors`` with the messages below.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiohttp import web

from bot.web.errors import Restated, Unauthorized, answer_under, json_errors
from bot.web.keys import CLOCK
from loyalty.errors import VoucherAlreadyUsed, VoucherCancelled, VoucherExpired
from loyalty.partners import authenticate_partner, check_voucher, use_voucher
from storage.loyalty_models import Partner

log = logging.getLogger(__name__)

PREFIX = "/api/v1/partner/"

MESSAGES = {
    "unauthorized": "missing or invalid partner token",
    "invalid_code": "this is not a valid voucher code — check for a typo",
    "voucher_not_found": "no such voucher",
    "voucher_already_used": "this voucher has already been used",
    "voucher_expired": "this voucher has expired",
    "voucher_cancelled": "this voucher was cancelled by the customer",
}
"""What a partner reads for each refusal (the domain error's own message is for our logs)."""


def _now(request: web.Request) -> datetime:
    clock = request.app.get(CLOCK)
    return clock() if clock is not None else datetime.now(UTC)


async def _partner(request: web.Request) -> Partner:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    partner = await authenticate_partner(token.strip()) if scheme.lower() == "bearer" else None
    if partner is None:
        raise Unauthorized()
    return partner


async def check(request: web.Request) -> web.Response:
    partner = await _partner(request)
    view = await check_voucher(partner, request.match_info["code"], now=_now(request))
    return web.json_response(view.as_json())


async def redeem(request: web.Request) -> web.Response:
    partner = await _partner(request)
    code = request.match_info["code"]
    now = _now(request)
    try:
        view = await use_voucher(partner, code, now=now)
    except (VoucherAlreadyUsed, VoucherExpired, VoucherCancelled) as refusal:
        # The partner serves this voucher's kind: it may see why it cannot be used.
        current = await check_voucher(partner, code, now=now)
        log.info("partner %d refused voucher use: %s", partner.id, refusal.code)
        raise Restated(refusal, voucher=current.as_json()) from refusal
    return web.json_response(view.as_json())


def partner_routes() -> web.RouteTableDef:
    routes = web.RouteTableDef()
    routes.get(PREFIX + "vouchers/{code}")(check)
    routes.post(PREFIX + "vouchers/{code}/redeem")(redeem)
    return routes


def setup(app: web.Application) -> None:
    app.router.add_routes(partner_routes())
    answer_under(app, PREFIX, json_errors("partner", MESSAGES))
