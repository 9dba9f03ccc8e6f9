"""The loopback fakes as a standalone world, for driving a real ``engage run`` by hand.

``python -m tests.fakes serve --port 18080`` starts the fake Telegram Bot API on 18080,
Twilio on 18081, the weather service on 18082, a control API on 18083 and the core system's
report intake on 18084, and prints the ``engage`` settings (TOML) that point a real process
at them. The control API:

* ``POST /telegram/update`` (an update as JSON) queues it for ``getUpdates`` (polling mode);
* ``GET /telegram/sent`` / ``GET /twilio/sent`` list what reached the providers;
* ``GET /telegram/requests?method=sendMessage`` lists recorded Bot API calls;
* ``POST /telegram/script`` ``{"method", "status", "description", "retry_after", "times"}``
  and ``POST /twilio/error`` ``{"code", "times"}`` inject provider faults;
* ``POST /telegram/outage`` and ``POST /twilio/outage`` ``{"status": 502, "seconds": 3,
  "times": null}`` answer with a proxy's HTML error page instead (``{"end": true}`` ends it);
* ``POST /telegram/delay`` and ``POST /twilio/delay`` ``{"seconds": 2}`` delay every answer;
* ``POST /twilio/callbacks`` ``{"statuses": ["sent", "delivered"], "before_answer": true,
  "error_code": ""}`` posts signed status callbacks for every accepted message (``[]`` stops);
  ``GET /twilio/callbacks`` lists the ones posted;
* ``POST /weather/forecast`` ``{"lat", "lon", "days": [{"date": …, "precipitation_sum": …}]}``;
* ``GET /core/received`` lists the accident reports the core intake took (signature checked),
  ``POST /core/fail`` ``{"status": 503, "times": 2}`` makes it fail the next ones.

``python -m tests.fakes sms --url http://127.0.0.1:8080/sms/inbound --from 13800138000
--body HELP`` posts a form signed like Twilio's (``--auth-token``, default the fake's).
``python -m tests.fakes tg --control http://127.0.0.1:18083 --user 1001 --text /start`` queues
a real message update (``--callback DATA`` for a button press, ``--contact PHONE`` for a
shared contact, ``--location LAT,LON`` for a shared location); ``--webhook URL --secret S``
posts it to a webhook instead.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import itertools
import json
import signal
import time
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from typing import Any

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

from tests.fakes.core import FakeCore
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.fakes.weather import FakeWeather

_FROM_NUMBER = "+15005550006"
_json = functools.partial(web.json_response,
                          dumps=functools.partial(json.dumps, ensure_ascii=False))


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _control_app(tg: FakeTelegram, tw: FakeTwilio, wx: FakeWeather,
                 core: FakeCore) -> web.Application:
    routes = web.RouteTableDef()

    @routes.post("/telegram/update")
    async def push(request: web.Request) -> web.Response:
        return _json({"update_id": tg.push_update(await request.json())})

    @routes.get("/telegram/sent")
    async def tg_sent(request: web.Request) -> web.Response:
        return _json(_plain(tg.sent_messages()))

    @routes.get("/telegram/requests")
    async def tg_requests(request: web.Request) -> web.Response:
        method = request.query.get("method")
        found = tg.requests_for(method) if method else tg.requests
        return _json(_plain(found))

    @routes.post("/telegram/script")
    async def tg_script(request: web.Request) -> web.Response:
        body = await request.json()
        tg.script(body["method"], status=int(body["status"]),
                  description=body.get("description"), retry_after=body.get("retry_after"),
                  times=int(body.get("times", 1)))
        return _json({"ok": True})

    @routes.get("/twilio/sent")
    async def tw_sent(request: web.Request) -> web.Response:
        return _json(_plain(tw.sent_messages()))

    @routes.post("/twilio/error")
    async def tw_error(request: web.Request) -> web.Response:
        body = await request.json()
        tw.script_error(int(body["code"]), times=int(body.get("times", 1)))
        return _json({"ok": True})

    def outage(fake: FakeTelegram | FakeTwilio) -> Any:
        async def handle(request: web.Request) -> web.Response:
            body = await request.json()
            if body.get("end"):
                fake.end_proxy_error()
            else:
                fake.proxy_error(status=int(body.get("status", 502)),
                                 seconds=body.get("seconds"), times=body.get("times"))
            return _json({"ok": True})
        return handle

    def delay(fake: FakeTelegram | FakeTwilio) -> Any:
        async def handle(request: web.Request) -> web.Response:
            fake.delay = float((await request.json())["seconds"])
            return _json({"ok": True})
        return handle

    routes.post("/telegram/outage")(outage(tg))
    routes.post("/twilio/outage")(outage(tw))
    routes.post("/telegram/delay")(delay(tg))
    routes.post("/twilio/delay")(delay(tw))

    @routes.post("/twilio/callbacks")
    async def tw_callbacks(request: web.Request) -> web.Response:
        body = await request.json()
        tw.call_back(body.get("statuses", ["sent", "delivered"]),
                     before_answer=bool(body.get("before_answer", True)),
                     error_code=str(body.get("error_code", "")))
        return _json({"ok": True})

    @routes.get("/twilio/callbacks")
    async def tw_callbacks_posted(request: web.Request) -> web.Response:
        return _json(_plain(tw.callbacks))

    @routes.post("/weather/forecast")
    async def wx_forecast(request: web.Request) -> web.Response:
        body = await request.json()
        wx.set_forecast(float(body["lat"]), float(body["lon"]), body["days"])
        return _json({"ok": True})

    @routes.get("/core/received")
    async def core_received(request: web.Request) -> web.Response:
        return _json([{"body": r.body, "signature": r.headers.get("X-Engage-Signature")}
                      for r in core.received])

    @routes.post("/core/fail")
    async def core_fail(request: web.Request) -> web.Response:
        body = await request.json()
        core.fail_next(int(body.get("status", 503)), times=int(body.get("times", 1)))
        return _json({"ok": True})

    app = web.Application()
    app.add_routes(routes)
    return app


def _settings_toml(tg: FakeTelegram, tw: FakeTwilio, wx: FakeWeather, core: FakeCore) -> str:
    return "\n".join([
        "[telegram]", f'token = "{tg.token}"', f'api_base = "{tg.base_url}"',
        "[twilio]", f'account_sid = "{tw.account_sid}"', f'auth_token = "{tw.auth_token}"',
        f'from_number = "{_FROM_NUMBER}"', f'api_base = "{tw.base_url}"',
        "[weather]", f'api_base = "{wx.base_url}"',
        "[core]", f'report_webhook_url = "{core.url}"',
        f'report_webhook_secret = "{core.secret.decode()}"', ""])


async def _serve(port: int) -> None:
    # The fakes keep every request, so the collector's full passes grow with them: a 200 ms
    # pause would bunch the arrival times the fakes record (and rate tests measure).
    gc.disable()
    tg, tw, wx = FakeTelegram(DEFAULT_TOKEN), FakeTwilio(ACCOUNT_SID, AUTH_TOKEN), FakeWeather()
    core = FakeCore()
    for offset, fake in enumerate((tg, tw, wx)):
        fake.port = port + offset
        await fake.start()
    core.port = port + 4
    await core.start()
    runner = web.AppRunner(_control_app(tg, tw, wx, core), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port + 3).start()
    print(_settings_toml(tg, tw, wx, core), flush=True)
    print(f"# control API: http://127.0.0.1:{port + 3}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    for fake in (tg, tw, wx, core):
        await fake.close()


async def _post_sms(args: argparse.Namespace) -> None:
    params = {"MessageSid": args.sid or f"SM{int(time.time() * 1e6):032x}"[:34],
              "AccountSid": ACCOUNT_SID, "From": args.from_, "To": args.to, "Body": args.body,
              "NumMedia": "0"}
    signed_url = args.public_url or args.url
    signature = RequestValidator(args.auth_token).compute_signature(signed_url, params)
    async with aiohttp.ClientSession() as session, session.post(
            args.url, data=params, headers={"X-Twilio-Signature": signature}) as response:
        print(response.status)
        print(await response.text())


# Microseconds: two invocations within one second must not reuse an update id (the bot
# skips an id it has handled, as it should for a redelivery).
_ids = itertools.count(time.time_ns() // 1000)


def _update(args: argparse.Namespace) -> dict[str, Any]:
    user = {"id": args.user, "is_bot": False, "first_name": args.name,
            "language_code": args.language}
    chat = {"id": args.user, "type": "private", "first_name": args.name}
    message: dict[str, Any] = {"message_id": next(_ids) % 1_000_000, "date": int(time.time()),
                               "chat": chat, "from": user}
    if args.callback:
        return {"update_id": next(_ids), "callback_query": {
            "id": str(next(_ids)), "from": user, "chat_instance": "1", "data": args.callback,
            "message": {**message, "from": {"id": 1, "is_bot": True, "first_name": "bot"},
                        "text": "…"}}}
    if args.contact:
        message["contact"] = {"phone_number": args.contact, "first_name": args.name,
                              "user_id": args.user}
    elif args.location:
        latitude, longitude = (float(part) for part in args.location.split(","))
        message["location"] = {"latitude": latitude, "longitude": longitude}
    else:
        message["text"] = args.text
        if args.text.startswith("/"):
            command = args.text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0,
                                    "length": len(command)}]
    return {"update_id": next(_ids), "message": message}


async def _post_update(args: argparse.Namespace) -> None:
    update = _update(args)
    async with aiohttp.ClientSession() as session:
        if args.webhook:
            headers = {"X-Telegram-Bot-Api-Secret-Token": args.secret} if args.secret else {}
            async with session.post(args.webhook, json=update, headers=headers) as response:
                print(response.status, await response.text())
            return
        async with session.post(f"{args.control}/telegram/update", json=update) as response:
            print(response.status, await response.text())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the fakes and the control API")
    serve.add_argument("--port", type=int, default=18080)
    sms = sub.add_parser("sms", help="post a signed inbound SMS webhook")
    sms.add_argument("--url", required=True)
    sms.add_argument("--public-url", help="the URL Engage signs against (twilio.public_base_url)")
    sms.add_argument("--from", dest="from_", required=True)
    sms.add_argument("--to", default=_FROM_NUMBER)
    sms.add_argument("--body", default="")
    sms.add_argument("--sid")
    sms.add_argument("--auth-token", default=AUTH_TOKEN)
    tg = sub.add_parser("tg", help="queue (or post) a Telegram update")
    tg.add_argument("--control", default="http://127.0.0.1:18083")
    tg.add_argument("--webhook")
    tg.add_argument("--secret")
    tg.add_argument("--user", type=int, default=1001)
    tg.add_argument("--name", default="Test")
    tg.add_argument("--language", default="zh-hans")
    what = tg.add_mutually_exclusive_group(required=True)
    what.add_argument("--text")
    what.add_argument("--callback")
    what.add_argument("--contact")
    what.add_argument("--location", metavar="LAT,LON")
    args = parser.parse_args(argv)
    runner = {"serve": lambda: _serve(args.port), "sms": lambda: _post_sms(args),
              "tg": lambda: _post_update(args)}[args.command]
    asyncio.run(runner())


if __name__ == "__main__":
    main()
