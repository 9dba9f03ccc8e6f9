"""The loopback fakes, driven by the real clients: aiogram, twilio's async client, aiohttp."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import date
from typing import TypeVar

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    MediaUnion,
)
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from tests.fakes.server import FakeServer
from tests.fakes.telegram import FakeTelegram, UploadedFile
from tests.fakes.twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    SDK_WARNING_FILTERS,
    FakeTwilio,
    count_segments,
)
from tests.fakes.weather import FakeWeather

CUSTOMER_CHAT = 424242
CN_MOBILE = "+8613800138000"
SENDER = "+15005550006"
F = TypeVar("F", bound=Callable[..., object])
TWILIO_AUTH = {"Authorization": aiohttp.encode_basic_auth(ACCOUNT_SID, AUTH_TOKEN)}


def uses_twilio_sdk(test: F) -> F:
    """twilio 9.13's async client trips aiohttp 3.14 deprecations on every request."""
    for warning_filter in SDK_WARNING_FILTERS:
        test = pytest.mark.filterwarnings(warning_filter)(test)
    return test


def telegram_bot(fake: FakeTelegram, token: str | None = None) -> Bot:
    api = TelegramAPIServer.from_base(fake.base_url)
    return Bot(token or fake.token, session=AiohttpSession(api=api))


@pytest.fixture
async def bot(fake_telegram: FakeTelegram) -> AsyncIterator[Bot]:
    bot = telegram_bot(fake_telegram)
    yield bot
    await bot.session.close()


@pytest.fixture
async def twilio_client(fake_twilio: FakeTwilio) -> AsyncIterator[Client]:
    http = AsyncTwilioHttpClient()
    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
    client.api.base_url = fake_twilio.base_url
    yield client
    await http.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def message_update(text: str, chat_id: int = CUSTOMER_CHAT) -> dict[str, object]:
    user = {"id": chat_id, "is_bot": False, "first_name": "Li"}
    return {
        "message": {
            "message_id": 7,
            "date": 1_780_000_000,
            "chat": {"id": chat_id, "type": "private", "first_name": "Li"},
            "from": user,
            "text": text,
        }
    }


# -- shared server base --------------------------------------------------------------------


async def test_base_url_is_loopback_only_while_started() -> None:
    fake = FakeWeather()
    with pytest.raises(RuntimeError):
        _ = fake.base_url
    async with fake:
        assert fake.base_url.startswith("http://127.0.0.1:")
        url = fake.base_url
    await fake.close()  # idempotent
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"{url}/v1/forecast")


async def test_start_and_close_without_context_manager() -> None:
    fake: FakeServer = FakeTwilio()
    await fake.start()
    try:
        with pytest.raises(RuntimeError):
            await fake.start()
        assert fake.started
    finally:
        await fake.close()
    assert not fake.started


# -- Telegram ------------------------------------------------------------------------------


async def test_send_message_is_answered_and_recorded(fake_telegram: FakeTelegram, bot: Bot) -> None:
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="续保", callback_data="renew:9")]]
    )

    first = await bot.send_message(CUSTOMER_CHAT, "您的保单即将到期", reply_markup=markup)
    second = await bot.send_message(CUSTOMER_CHAT, "123")

    assert first.text == "您的保单即将到期"
    assert first.chat.id == CUSTOMER_CHAT
    assert first.chat.type == "private"
    assert second.message_id == first.message_id + 1
    sent = fake_telegram.sent_messages()
    assert [m["text"] for m in sent] == ["您的保单即将到期", "123"]  # free text stays text
    assert sent[0]["chat_id"] == CUSTOMER_CHAT
    assert sent[0]["reply_markup"] == {
        "inline_keyboard": [[{"text": "续保", "callback_data": "renew:9"}]]
    }
    assert [r.token for r in fake_telegram.requests_for("sendMessage")] == [fake_telegram.token] * 2


async def test_get_me_describes_the_bot(bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == 123456
    assert me.is_bot
    assert me.username == "engage_test_bot"


async def test_scripted_429_raises_retry_after_then_recovers(
    fake_telegram: FakeTelegram, bot: Bot
) -> None:
    fake_telegram.rate_limit_next(retry_after=3)

    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(CUSTOMER_CHAT, "hi")
    assert caught.value.retry_after == 3
    await bot.send_message(CUSTOMER_CHAT, "hi again")

    assert [r.status for r in fake_telegram.requests_for("sendMessage")] == [429, 200]
    assert [m["text"] for m in fake_telegram.sent_messages()] == ["hi again"]


async def test_blocked_chat_raises_forbidden_for_that_chat_only(
    fake_telegram: FakeTelegram, bot: Bot
) -> None:
    fake_telegram.block_chat(CUSTOMER_CHAT)

    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(CUSTOMER_CHAT, "hi")
    with pytest.raises(TelegramForbiddenError):
        await bot.send_message(CUSTOMER_CHAT, "still blocked")
    await bot.send_message(CUSTOMER_CHAT + 1, "other customer")

    assert [m["chat_id"] for m in fake_telegram.sent_messages()] == [CUSTOMER_CHAT + 1]


async def test_unknown_chat_raises_bad_request(fake_telegram: FakeTelegram, bot: Bot) -> None:
    fake_telegram.chat_not_found(CUSTOMER_CHAT)

    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(CUSTOMER_CHAT, "hi")
    assert fake_telegram.sent_messages() == []


async def test_server_error_and_chat_migration_are_scriptable(
    fake_telegram: FakeTelegram, bot: Bot
) -> None:
    fake_telegram.fail_next("getMe")
    fake_telegram.script(
        "sendMessage",
        status=400,
        description="Bad Request: group chat was upgraded to a supergroup chat",
        migrate_to_chat_id=-1001234567890,
    )

    with pytest.raises(TelegramServerError):
        await bot.get_me()
    with pytest.raises(TelegramMigrateToChat) as caught:
        await bot.send_message(-4242, "hi group")
    assert caught.value.migrate_to_chat_id == -1001234567890
    assert (await bot.get_me()).id == 123456


async def test_script_applies_to_the_next_n_calls(fake_telegram: FakeTelegram, bot: Bot) -> None:
    fake_telegram.fail_next("sendMessage", status=502, times=2)

    for _ in range(2):
        with pytest.raises(TelegramServerError):
            await bot.send_message(CUSTOMER_CHAT, "x")
    await bot.send_message(CUSTOMER_CHAT, "x")

    assert [r.status for r in fake_telegram.requests] == [502, 502, 200]


async def test_wrong_token_is_unauthorized(fake_telegram: FakeTelegram) -> None:
    intruder = telegram_bot(fake_telegram, token="999:WRONG")
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await intruder.send_message(CUSTOMER_CHAT, "hi")
    finally:
        await intruder.session.close()
    [request] = fake_telegram.requests
    assert (request.token, request.status) == ("999:WRONG", 401)
    assert fake_telegram.sent_messages() == []


async def test_get_updates_honours_offset(fake_telegram: FakeTelegram, bot: Bot) -> None:
    first = fake_telegram.push_update(message_update("/start"))
    second = fake_telegram.push_update(message_update("/points"))

    updates = await bot.get_updates()
    assert [(u.update_id, u.message.text if u.message else None) for u in updates] == [
        (first, "/start"),
        (second, "/points"),
    ]
    assert await bot.get_updates(offset=second + 1) == []
    assert fake_telegram.pending_updates == []


async def test_get_updates_long_poll_wakes_on_push(fake_telegram: FakeTelegram, bot: Bot) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.1)
    assert not poll.done()
    fake_telegram.push_update(message_update("hello"))

    updates = await asyncio.wait_for(poll, timeout=2)
    assert [u.message.text for u in updates if u.message] == ["hello"]


async def test_get_updates_long_poll_times_out_empty(bot: Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == []
    assert time.monotonic() - started >= 0.9


async def test_long_poll_returns_at_once_when_fake_closes() -> None:
    fake = await FakeTelegram().start()
    bot = telegram_bot(fake)
    try:
        poll = asyncio.create_task(bot.get_updates(timeout=30))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await fake.close()
        assert await asyncio.wait_for(poll, timeout=3) == []
        assert time.monotonic() - started < 3
    finally:
        await bot.session.close()
        await fake.close()


async def test_get_updates_conflicts_with_webhook(fake_telegram: FakeTelegram, bot: Bot) -> None:
    await bot.set_webhook("https://engage.example/tg")
    info = await bot.get_webhook_info()
    assert info.url == "https://engage.example/tg"

    with pytest.raises(TelegramConflictError) as caught:
        await bot.get_updates()
    assert "webhook is active" in caught.value.message
    await bot.delete_webhook()
    assert await bot.get_updates() == []


async def test_get_file_and_download_return_registered_bytes(
    fake_telegram: FakeTelegram, bot: Bot
) -> None:
    content = b"%PDF-1.7 driving licence scan"
    fake_telegram.add_file("doc-1", content, "documents/licence.pdf")

    file = await bot.get_file("doc-1")
    downloaded = await bot.download_file("documents/licence.pdf")

    assert (file.file_path, file.file_size) == ("documents/licence.pdf", len(content))
    assert downloaded is not None
    assert downloaded.read() == content
    with pytest.raises(TelegramBadRequest, match="invalid file_id"):
        await bot.get_file("missing")


async def test_download_of_unknown_path_is_404(fake_telegram: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(aiohttp.ClientResponseError) as caught:
        await bot.download_file("documents/nope.pdf")
    assert caught.value.status == 404


async def test_multipart_send_document_is_parsed(fake_telegram: FakeTelegram, bot: Bot) -> None:
    upload = BufferedInputFile(b"claim form bytes", filename="claim.pdf")

    message = await bot.send_document(CUSTOMER_CHAT, upload, caption="42")

    [params] = fake_telegram.sent_messages()
    document = params["document"]
    assert isinstance(document, UploadedFile)
    assert (document.filename, document.content) == ("claim.pdf", b"claim form bytes")
    assert params["caption"] == "42"
    assert params["chat_id"] == CUSTOMER_CHAT
    assert message.document is not None
    assert message.document.file_name == "claim.pdf"
    assert message.document.file_size == len(b"claim form bytes")
    # the uploaded file can be fetched back like any other
    file = await bot.get_file(message.document.file_id)
    assert file.file_path is not None
    downloaded = await bot.download_file(file.file_path)
    assert downloaded is not None
    assert downloaded.read() == b"claim form bytes"


async def test_media_group_resolves_each_attachment(fake_telegram: FakeTelegram, bot: Bot) -> None:
    photos: list[MediaUnion] = [
        InputMediaPhoto(media=BufferedInputFile(b"front", filename="front.jpg")),
        InputMediaPhoto(media=BufferedInputFile(b"rear", filename="rear.jpg")),
    ]

    messages = await bot.send_media_group(CUSTOMER_CHAT, photos)

    assert len(messages) == 2
    assert messages[0].media_group_id == messages[1].media_group_id
    [request] = fake_telegram.requests_for("sendMediaGroup")
    contents = [item["media"].content for item in request.params["media"]]
    assert contents == [b"front", b"rear"]


async def test_json_body_and_query_string_are_parsed(
    fake_telegram: FakeTelegram, http: aiohttp.ClientSession
) -> None:
    url = f"{fake_telegram.base_url}/bot{fake_telegram.token}"
    markup = {"inline_keyboard": [[{"text": "OK", "callback_data": "ok"}]]}

    async with http.post(
        f"{url}/sendmessage", json={"chat_id": 5, "text": "json", "reply_markup": markup}
    ) as response:
        sent = await response.json()
    async with http.get(f"{url}/sendMessage", params={"chat_id": "6", "text": "7"}) as response:
        queried = await response.json()

    assert sent["ok"] is True
    assert sent["result"]["reply_markup"] == markup
    assert queried["result"]["text"] == "7"
    assert fake_telegram.sent_messages() == [
        {"chat_id": 5, "text": "json", "reply_markup": markup},
        {"chat_id": 6, "text": "7"},
    ]


async def test_delay_is_injected_and_can_time_out(fake_telegram: FakeTelegram, bot: Bot) -> None:
    fake_telegram.delay = 0.3
    started = time.monotonic()
    await bot.get_me()
    assert time.monotonic() - started >= 0.3

    fake_telegram.delay = 5
    with pytest.raises(TelegramNetworkError, match="timeout"):
        await bot.get_me(request_timeout=1)


async def test_clear_forgets_requests_only(fake_telegram: FakeTelegram, bot: Bot) -> None:
    fake_telegram.block_chat(CUSTOMER_CHAT)
    with pytest.raises(TelegramForbiddenError):
        await bot.send_message(CUSTOMER_CHAT, "x")

    fake_telegram.clear()

    assert fake_telegram.requests == []
    with pytest.raises(TelegramForbiddenError):
        await bot.send_message(CUSTOMER_CHAT, "x")


# -- Twilio --------------------------------------------------------------------------------


@uses_twilio_sdk
async def test_create_message_routes_to_fake(
    fake_twilio: FakeTwilio, twilio_client: Client
) -> None:
    body = "【安心保】您的车险将于7月1日到期，回T退订"

    message = await twilio_client.messages.create_async(
        to=CN_MOBILE,
        from_=SENDER,
        body=body,
        status_callback="https://engage.example/sms/status",
    )

    assert message.sid is not None
    assert message.sid.startswith("SM")
    assert len(message.sid) == 34
    assert (message.status, message.to, message.from_, message.body) == (
        "queued",
        CN_MOBILE,
        SENDER,
        body,
    )
    assert message.num_segments == "1"
    assert message.date_created is not None
    assert message.date_created.tzinfo is not None
    assert message.account_sid == ACCOUNT_SID
    [request] = fake_twilio.sent_messages()
    assert (request.to, request.from_, request.body) == (CN_MOBILE, SENDER, body)
    assert request.status_callback == "https://engage.example/sms/status"
    assert request.sid == message.sid
    fetched = await twilio_client.messages(message.sid).fetch_async()
    assert fetched.body == body


@uses_twilio_sdk
async def test_messaging_service_and_media_urls(
    fake_twilio: FakeTwilio, twilio_client: Client
) -> None:
    message = await twilio_client.messages.create_async(
        to=CN_MOBILE,
        messaging_service_sid="MG" + "1" * 32,
        body="photos",
        media_url=["https://engage.example/a.jpg", "https://engage.example/b.jpg"],
    )

    assert message.sid is not None
    assert message.sid.startswith("MM")
    assert (message.status, message.num_media, message.from_) == ("accepted", "2", None)
    [request] = fake_twilio.requests
    assert request.media_urls == ["https://engage.example/a.jpg", "https://engage.example/b.jpg"]
    assert request.messaging_service_sid == "MG" + "1" * 32


@uses_twilio_sdk
async def test_scripted_error_raises_rest_exception_once(
    fake_twilio: FakeTwilio, twilio_client: Client
) -> None:
    fake_twilio.script_error(20429)

    with pytest.raises(TwilioRestException) as caught:
        await twilio_client.messages.create_async(to=CN_MOBILE, from_=SENDER, body="a")
    assert (caught.value.code, caught.value.status) == (20429, 429)
    await twilio_client.messages.create_async(to=CN_MOBILE, from_=SENDER, body="b")

    assert [(r.status, r.error_code) for r in fake_twilio.requests] == [(429, 20429), (201, None)]
    assert [r.body for r in fake_twilio.sent_messages()] == ["b"]


@uses_twilio_sdk
async def test_recipient_error_is_persistent(
    fake_twilio: FakeTwilio, twilio_client: Client
) -> None:
    fake_twilio.error_for(CN_MOBILE, 21610)

    for _ in range(2):
        with pytest.raises(TwilioRestException) as caught:
            await twilio_client.messages.create_async(to=CN_MOBILE, from_=SENDER, body="x")
        assert (caught.value.code, caught.value.status) == (21610, 400)
        assert "unsubscribed recipient" in caught.value.msg
    await twilio_client.messages.create_async(to="+8613900139000", from_=SENDER, body="x")

    assert [r.to for r in fake_twilio.sent_messages()] == ["+8613900139000"]


@uses_twilio_sdk
async def test_invalid_number_and_missing_body_are_rejected(
    fake_twilio: FakeTwilio, twilio_client: Client
) -> None:
    with pytest.raises(TwilioRestException) as bad_number:
        await twilio_client.messages.create_async(to="13800138000", from_=SENDER, body="x")
    with pytest.raises(TwilioRestException) as no_body:
        await twilio_client.messages.create_async(to=CN_MOBILE, from_=SENDER)

    assert bad_number.value.code == 21211
    assert no_body.value.code == 21602
    assert fake_twilio.sent_messages() == []


@uses_twilio_sdk
async def test_wrong_credentials_are_401(fake_twilio: FakeTwilio) -> None:
    http = AsyncTwilioHttpClient()
    try:
        client = Client(ACCOUNT_SID, "not-the-token", http_client=http)
        client.api.base_url = fake_twilio.base_url
        with pytest.raises(TwilioRestException) as caught:
            await client.messages.create_async(to=CN_MOBILE, from_=SENDER, body="x")
    finally:
        await http.close()
    assert (caught.value.code, caught.value.status) == (20003, 401)
    assert fake_twilio.requests == []


@uses_twilio_sdk
async def test_media_is_served_behind_basic_auth_and_deletable(
    fake_twilio: FakeTwilio, twilio_client: Client, http: aiohttp.ClientSession
) -> None:
    message_sid = "MM" + "a" * 32
    media_sid, url = fake_twilio.add_media(message_sid, b"\xff\xd8jpeg", "image/jpeg")
    async with http.get(url) as anonymous:
        assert anonymous.status == 401
    async with http.get(url, headers=TWILIO_AUTH) as response:
        assert response.status == 200
        assert response.content_type == "image/jpeg"
        assert await response.read() == b"\xff\xd8jpeg"
    deleted = await twilio_client.messages(message_sid).media(media_sid).delete_async()

    assert deleted is True
    assert fake_twilio.deleted_media == [media_sid]
    assert fake_twilio.media_downloads == [media_sid]
    async with http.get(url, headers=TWILIO_AUTH) as gone:
        assert gone.status == 404


async def test_media_delete_without_json_suffix(
    fake_twilio: FakeTwilio, http: aiohttp.ClientSession
) -> None:
    media_sid, url = fake_twilio.add_media("MM" + "b" * 32, b"png", "image/png")
    async with http.delete(url, headers=TWILIO_AUTH) as response:
        assert response.status == 204

    assert fake_twilio.deleted_media == [media_sid]


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("€" * 80, 1),
        ("€" * 81, 2),
        ("保" * 70, 1),
        ("保" * 71, 2),
        ("保" * 134, 2),
        ("保" * 135, 3),
    ],
)
def test_segments_follow_gsm7_and_ucs2_limits(body: str, segments: int) -> None:
    assert count_segments(body) == segments


@uses_twilio_sdk
async def test_delay_applies_to_twilio(fake_twilio: FakeTwilio, twilio_client: Client) -> None:
    fake_twilio.delay = 0.2
    started = time.monotonic()
    await twilio_client.messages.create_async(to=CN_MOBILE, from_=SENDER, body="x")
    assert time.monotonic() - started >= 0.2


# -- weather -------------------------------------------------------------------------------

SHANGHAI = (31.2304, 121.4737)
BEIJING = (39.9042, 116.4074)
DAILY = "weather_code,precipitation_sum,snowfall_sum,wind_gusts_10m_max,temperature_2m_min"


async def test_unknown_place_gets_benign_forecast_from_today(
    fake_weather: FakeWeather, http: aiohttp.ClientSession
) -> None:
    fake_weather.today = date(2026, 7, 1)
    query = {
        "latitude": str(SHANGHAI[0]),
        "longitude": str(SHANGHAI[1]),
        "daily": DAILY,
        "timezone": "Asia/Shanghai",
        "forecast_days": "2",
    }

    async with http.get(f"{fake_weather.base_url}/v1/forecast", params=query) as response:
        assert response.status == 200
        body = await response.json()

    assert isinstance(body, dict)
    assert (body["latitude"], body["longitude"]) == (31.23, 121.47)
    assert (body["timezone"], body["utc_offset_seconds"]) == ("Asia/Shanghai", 8 * 3600)
    assert body["daily"]["time"] == ["2026-07-01", "2026-07-02"]
    assert body["daily"]["weather_code"] == [0, 0]
    assert body["daily"]["precipitation_sum"] == [0.0, 0.0]
    assert body["daily_units"]["precipitation_sum"] == "mm"
    assert set(body["daily"]) == {"time", *DAILY.split(",")}
    [request] = fake_weather.requests
    assert request.latitudes == [SHANGHAI[0]]
    assert request.params["forecast_days"] == "2"


async def test_scripted_storm_is_served_for_its_date(
    fake_weather: FakeWeather, http: aiohttp.ClientSession
) -> None:
    fake_weather.set_forecast(
        31.23,
        121.47,
        [
            {
                "date": "2026-07-02",
                "weather_code": 95,
                "precipitation_sum": 80.5,
                "snowfall_sum": 0.0,
                "wind_gusts_10m_max": 88.0,
                "temperature_2m_min": 24.0,
            }
        ],
    )
    query = {
        "latitude": str(SHANGHAI[0]),
        "longitude": str(SHANGHAI[1]),
        "daily": DAILY,
        "start_date": "2026-07-01",
        "end_date": "2026-07-03",
    }

    async with http.get(f"{fake_weather.base_url}/v1/forecast", params=query) as response:
        body = await response.json()

    assert body["daily"]["time"] == ["2026-07-01", "2026-07-02", "2026-07-03"]
    assert body["daily"]["weather_code"] == [0, 95, 0]
    assert body["daily"]["precipitation_sum"] == [0.0, 80.5, 0.0]
    assert body["daily"]["wind_gusts_10m_max"][1] == 88.0
    assert body["timezone"] == "GMT"


async def test_several_locations_answer_a_list(
    fake_weather: FakeWeather, http: aiohttp.ClientSession
) -> None:
    fake_weather.today = date(2026, 1, 20)
    fake_weather.set_forecast(*BEIJING, [{"date": date(2026, 1, 20), "snowfall_sum": 12.0}])
    query = {
        "latitude": f"{SHANGHAI[0]},{BEIJING[0]}",
        "longitude": f"{SHANGHAI[1]},{BEIJING[1]}",
        "daily": "snowfall_sum",
        "timezone": "Asia/Shanghai",
        "forecast_days": "1",
    }

    async with http.get(f"{fake_weather.base_url}/v1/forecast", params=query) as response:
        body = await response.json()

    assert isinstance(body, list)
    assert [o["location_id"] for o in body] == [0, 1]
    assert [o["daily"]["snowfall_sum"] for o in body] == [[0.0], [12.0]]
    assert fake_weather.requests[0].longitudes == [SHANGHAI[1], BEIJING[1]]


async def test_outage_answers_errors_then_recovers(
    fake_weather: FakeWeather, http: aiohttp.ClientSession
) -> None:
    fake_weather.outage(status=503, times=2)
    query = {"latitude": "31.23", "longitude": "121.47", "daily": "weather_code"}
    statuses = []
    for _ in range(3):
        async with http.get(f"{fake_weather.base_url}/v1/forecast", params=query) as response:
            statuses.append(response.status)
            body = await response.json()
    assert statuses == [503, 503, 200]
    assert "daily" in body
    assert [r.status for r in fake_weather.requests] == [503, 503, 200]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"latitude": "31.2,39.9", "longitude": "121.4"}, "same number of elements"),
        ({"latitude": "31.2", "longitude": "121.4", "daily": "hail_sum"}, "hail_sum"),
        ({"latitude": "131.2", "longitude": "121.4"}, "Latitude must be in range"),
        ({"latitude": "31.2", "longitude": "121.4", "start_date": "2026-07-01"}, "end_date"),
        ({"longitude": "121.4"}, "latitude"),
    ],
)
async def test_bad_query_is_400_with_reason(
    fake_weather: FakeWeather, http: aiohttp.ClientSession, query: dict[str, str], reason: str
) -> None:
    async with http.get(f"{fake_weather.base_url}/v1/forecast", params=query) as response:
        assert response.status == 400
        body = await response.json()
    assert body["error"] is True
    assert reason in body["reason"]


async def test_weather_delay_trips_a_client_timeout(
    fake_weather: FakeWeather, http: aiohttp.ClientSession
) -> None:
    fake_weather.set_delay(2)
    query = {"latitude": "31.23", "longitude": "121.47"}

    with pytest.raises(TimeoutError):
        await http.get(
            f"{fake_weather.base_url}/v1/forecast",
            params=query,
            timeout=aiohttp.ClientTimeout(total=0.2),
        )


# -- proxy error pages and status callbacks ----------------------------------------------------


async def test_proxy_error_answers_html_for_n_requests_then_the_api_again(
    fake_telegram: FakeTelegram,
) -> None:
    fake_telegram.proxy_error(status=502, times=2)
    url = f"{fake_telegram.base_url}/bot{fake_telegram.token}/getMe"
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            async with http.get(url) as resp:
                assert (resp.status, resp.content_type) == (502, "text/html")
                assert "<h1>502 Bad Gateway</h1>" in await resp.text()
        async with http.get(url) as resp:
            assert resp.status == 200 and (await resp.json())["ok"] is True
    assert fake_telegram.proxy_error_answers == 2
    assert [r.status for r in fake_telegram.requests_for("getMe")] == [502, 502, 200]


async def test_proxy_error_for_a_time_ends_by_itself(fake_twilio: FakeTwilio) -> None:
    fake_twilio.proxy_error(status=503, seconds=0.2)
    url = f"{fake_twilio.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/SMx.json"
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            assert (resp.status, resp.content_type) == (503, "text/html")
        await asyncio.sleep(0.25)
        async with http.get(url) as resp:
            assert resp.status == 401  # Twilio itself again (unauthenticated here)


@uses_twilio_sdk
async def test_status_callbacks_are_posted_before_the_create_answers_and_signed(
    fake_twilio: FakeTwilio, twilio_client: Client
) -> None:
    from twilio.request_validator import RequestValidator

    received: list[tuple[dict[str, str], str]] = []

    async def status(request: aiohttp.web.Request) -> aiohttp.web.Response:
        received.append((dict(await request.post()),  # type: ignore[arg-type]
                         request.headers["X-Twilio-Signature"]))
        return aiohttp.web.Response(status=204)

    app = aiohttp.web.Application()
    app.router.add_post("/sms/status", status)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        fake_twilio.call_back(("sent", "delivered"), target=f"http://127.0.0.1:{port}")
        message = await twilio_client.messages.create_async(
            to=CN_MOBILE, from_=SENDER, body="hi",
            status_callback="https://engage.example/sms/status")
        # both callbacks arrived before the create was answered
        assert [form["MessageStatus"] for form, _ in received] == ["sent", "delivered"]
    finally:
        await runner.cleanup()
    validator = RequestValidator(AUTH_TOKEN)
    for form, signature in received:
        assert form["MessageSid"] == message.sid
        assert validator.validate("https://engage.example/sms/status", form, signature)
    assert [(c.status, c.answer) for c in fake_twilio.callbacks] == [("sent", 204),
                                                                     ("delivered", 204)]
