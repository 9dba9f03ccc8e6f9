"""The aiohttp application: /healthz, /metrics, and Twilio status callbacks (signed with
twilio's own RequestValidator) moving statuses forward only."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from twilio.request_validator import RequestValidator

from bot.web.app import Overrides, build_app
from storage.models import Category, Channel, Consent, Customer, MessageStatus
from tests import factories as f
from tests.fakes.twilio import AUTH_TOKEN


@pytest.fixture
async def client(db: str) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    settings = f.settings_for(db_url=db, twilio_base="http://127.0.0.1:9")
    app = build_app(settings, Overrides(run_dispatcher=False, manage_database=False,
                                        clock=lambda: f.NOON_SHANGHAI))
    async with TestClient(TestServer(app)) as c:
        yield c


def signed(params: dict[str, str], *, url: str = f"{f.PUBLIC_URL}/sms/status",
           token: str = AUTH_TOKEN) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, params)}


async def post_status(client: TestClient, sid: str, status: str,  # type: ignore[type-arg]
                      **extra: str) -> int:
    params = {"MessageSid": sid, "MessageStatus": status, **extra}
    resp = await client.post("/sms/status", data=params, headers=signed(params))
    return resp.status


async def test_healthz_reports_database_up(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.get("/healthz")
    assert resp.status == 200
    body = await resp.json()
    assert (body["status"], body["database"]) == ("ok", "up")
    # the background tasks this app runs (no dispatcher, no Telegram here)
    assert set(body["tasks"]) == {"campaign-runner", "complaint-clock", "scheduler",
                                  "media-sweep", "core-reports", "report-drafts"}
    assert {task["status"] for task in body["tasks"].values()} == {"ok"}


async def test_metrics_are_prometheus_text(client: TestClient) -> None:  # type: ignore[type-arg]
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert "engage_dispatch_latency_seconds" in await resp.text()


async def _sent_sms(sid: str) -> int:
    c = await f.customer()
    msg = await f.queued(c, status=MessageStatus.SENT, channel=Channel.SMS, provider_id=sid)
    return msg.id


ORDERS = list(itertools.permutations(["sent", "delivered", "queued"]))


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
async def test_status_callbacks_in_any_order_end_delivered(
    client: TestClient, order: tuple[str, ...]  # type: ignore[type-arg]
) -> None:
    from storage.models import Message

    msg_id = await _sent_sms("SM" + "1" * 32)
    for status in order:
        assert await post_status(client, "SM" + "1" * 32, status) == 204
    msg = await Message.get(id=msg_id)
    assert msg.status == MessageStatus.DELIVERED and msg.delivered_at == f.NOON_SHANGHAI


async def test_duplicate_and_late_callbacks_never_move_status_back(
    client: TestClient  # type: ignore[type-arg]
) -> None:
    from storage.models import Message

    msg_id = await _sent_sms("SM" + "2" * 32)
    for status in ["undelivered", "undelivered", "sent", "delivered", "queued"]:
        assert await post_status(client, "SM" + "2" * 32, status, ErrorCode="30003") == 204
    msg = await Message.get(id=msg_id)
    assert msg.status == MessageStatus.UNDELIVERED
    assert msg.last_error == "sms: twilio 30003"


async def test_failed_callback_with_21610_records_sms_opt_out(
    client: TestClient  # type: ignore[type-arg]
) -> None:
    from storage.models import Message

    msg_id = await _sent_sms("SM" + "3" * 32)
    assert await post_status(client, "SM" + "3" * 32, "failed", ErrorCode="21610") == 204
    msg = await Message.get(id=msg_id)
    assert msg.status == MessageStatus.FAILED
    assert await Consent.filter(customer_id=msg.customer_id, channel="sms", granted=False,
                                category=Category.MARKETING).exists()


async def test_a_21610_callback_opts_out_the_number_for_every_customer_on_it(
    client: TestClient  # type: ignore[type-arg]
) -> None:
    from storage.models import Message, PhoneSuppression

    sid = "SM" + "4" * 32
    msg_id = await _sent_sms(sid)
    sender = await Customer.get(id=(await Message.get(id=msg_id)).customer_id)
    spouse = await f.customer(name="李四", phone=sender.phone)
    stranger = await f.customer(name="王五")
    assert await post_status(client, sid, "failed", ErrorCode="21610") == 204
    for customer in (sender, spouse):
        withdrawn = await Consent.filter(customer_id=customer.id, channel="sms",
                                         granted=False).values_list("category", flat=True)
        assert set(withdrawn) == {"marketing", "care", "alert", "reminder"}
    assert not await Consent.filter(customer_id=stranger.id).exists()
    remembered = await PhoneSuppression.filter(phone=sender.phone).values_list(
        "channel", "suppressed", "source", "reference")
    assert sorted(remembered) == [("sms", True, "twilio:21610", sid)] * 4  # the opt-out categories


@pytest.mark.parametrize(
    "tamper",
    ["no_signature", "wrong_token", "tampered_param", "wrong_url", "http_not_https"],
)
async def test_bad_signature_is_403_and_changes_nothing(
    client: TestClient, tamper: str  # type: ignore[type-arg]
) -> None:
    from storage.models import Message

    msg_id = await _sent_sms("SM" + "4" * 32)
    params = {"MessageSid": "SM" + "4" * 32, "MessageStatus": "delivered"}
    headers = {
        "no_signature": {},
        "wrong_token": signed(params, token="x" * 32),
        "tampered_param": signed({**params, "MessageStatus": "sent"}),
        "wrong_url": signed(params, url=f"{f.PUBLIC_URL}/sms/other"),
        "http_not_https": signed(params, url=f.PUBLIC_URL.replace("https", "http")
                                 + "/sms/status"),
    }[tamper]
    resp = await client.post("/sms/status", data=params, headers=headers)
    assert resp.status == 403
    assert (await Message.get(id=msg_id)).status == MessageStatus.SENT


async def test_callback_for_unknown_sid_is_accepted_and_ignored(
    client: TestClient  # type: ignore[type-arg]
) -> None:
    assert await post_status(client, "SM" + "9" * 32, "delivered") == 204


async def test_partner_api_is_mounted_and_needs_a_token(
    client: TestClient  # type: ignore[type-arg]
) -> None:
    resp = await client.get("/api/v1/partner/vouchers/ABCDEFGHJKL")
    assert resp.status == 401
    assert (await resp.json())["error"]
