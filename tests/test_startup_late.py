"""Telegram and delivery start after the app answers (``bot.web.late``), as in ``engage run``;
here they wait on a gate the test holds. Meanwhile /healthz answers 200 and says they are
starting, and the Telegram webhook checks the secret and answers 503 with Retry-After, so
Telegram keeps the update and delivers it again: once they are up, the redelivered update is
handled, once. A failure to start them turns /healthz 503, and ``engage run`` exits with it;
SIGTERM while they start is a clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bot.settings import Settings, TelegramSettings
from bot.web.app import Overrides, build_app
from bot.web.late import SECRET_HEADER, STARTING_RETRY_AFTER
from storage.models import ProcessedUpdate
from tests import factories as f
from tests.fakes.telegram import DEFAULT_TOKEN, FakeTelegram
from tests.test_engage_run import _free_port
from tests.test_startup_order import _status_callback
from tests.test_telegram_support import Clock, User

SECRET = "webhook-s3cret"
USER = User(31338, "en")


def _settings(db: str, api_base: str, tmp_path: Path) -> Settings:
    return f.settings_for(
        db_url=db, uploads={"directory": tmp_path / "uploads"},
        twilio_base="http://127.0.0.1:9",
        telegram=TelegramSettings(token=DEFAULT_TOKEN, api_base=api_base, mode="webhook",
                                  webhook_url=f"{f.PUBLIC_URL}/telegram/webhook",
                                  webhook_secret=SECRET))


def _help(update_id: int) -> dict[str, Any]:
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": 1_795_000_000, "chat": USER.chat(),
        "from": USER.json(), "text": "/help",
        "entities": [{"type": "bot_command", "offset": 0, "length": 5}]}}


async def _health(client: TestClient) -> tuple[int, dict[str, Any]]:  # type: ignore[type-arg]
    resp = await client.get("/healthz")
    return resp.status, await resp.json()


async def _until(check: Callable[[], Awaitable[bool]], limit: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not await check():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_webhook_is_503_while_telegram_starts_and_the_redelivery_is_handled_once(
    db: str, fake_telegram: FakeTelegram, tmp_path: Path
) -> None:
    gate = asyncio.Event()
    app = build_app(_settings(db, fake_telegram.base_url, tmp_path),
                    Overrides(run_dispatcher=False, run_scheduler=False, manage_database=False,
                              clock=Clock(), late_gate=gate.wait))
    async with TestClient(TestServer(app)) as client:  # listening on 127.0.0.1
        status, body = await _health(client)
        assert (status, body["status"], body["database"]) == (200, "starting", "up")
        assert body["late"] == {"telegram": "starting", "delivery": "starting"}
        assert "update-feed" not in body["tasks"] and "telegram-prune" not in body["tasks"]

        wrong = await client.post("/telegram/webhook", json=_help(41),
                                  headers={SECRET_HEADER: "wrong"})
        assert wrong.status == 401  # the secret is checked from the first moment
        early = await client.post("/telegram/webhook", json=_help(41),
                                  headers={SECRET_HEADER: SECRET})
        assert early.status == 503
        assert early.headers["Retry-After"] == str(STARTING_RETRY_AFTER)
        assert await _status_callback(client) == 204  # SMS webhooks are served already
        # nothing of the bot ran: no Bot API call, the update is not taken as processed
        assert fake_telegram.requests_for("getMe") == []
        assert fake_telegram.requests_for("sendMessage") == []
        assert not await ProcessedUpdate.exists(update_id=41)

        gate.set()

        async def up() -> bool:
            return bool((await _health(client))[1]["status"] == "ok")

        await _until(up)
        status, body = await _health(client)
        assert status == 200
        assert body["late"] == {"telegram": "up", "delivery": "up"}
        assert len(fake_telegram.requests_for("setWebhook")) == 1

        for _ in range(2):  # Telegram's redelivery of update 41, and one more for good measure
            resp = await client.post("/telegram/webhook", json=_help(41),
                                     headers={SECRET_HEADER: SECRET})
            assert resp.status == 200
        [sent] = fake_telegram.requests_for("sendMessage")
        assert sent.params["chat_id"] == USER.id
        assert sent.params["text"].startswith("The Anxing Insurance assistant can:")
        assert await ProcessedUpdate.exists(update_id=41)


async def test_telegram_failing_to_start_late_turns_healthz_503(
    db: str, tmp_path: Path
) -> None:
    gate = asyncio.Event()
    gate.set()
    app = build_app(_settings(db, "http://127.0.0.1:9", tmp_path),  # no Bot API there
                    Overrides(run_dispatcher=False, run_scheduler=False, manage_database=False,
                              clock=Clock(), late_gate=gate.wait))
    async with TestClient(TestServer(app)) as client:
        async def failed() -> bool:
            return (await _health(client))[0] == 503

        await _until(failed)
        status, body = await _health(client)
        assert (status, body["status"]) == (503, "unavailable")
        assert body["late"] == {"telegram": "failed", "delivery": "failed"}
        ready = await client.get("/readyz")
        assert ready.status == 503 and (await ready.json())["status"] == "unavailable"
        resp = await client.post("/telegram/webhook", json=_help(42),
                                 headers={SECRET_HEADER: SECRET})
        assert resp.status == 503  # never 200 for an update nobody handled


async def _engage_run(tmp_path: Path, api_base: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGE_")}
    env.update({
        "ENGAGE_DATABASE__URL": f"sqlite://{tmp_path / 'run.sqlite3'}",
        "ENGAGE_TELEGRAM__TOKEN": DEFAULT_TOKEN, "ENGAGE_TELEGRAM__API_BASE": api_base,
        "ENGAGE_WEB__PORT": str(_free_port()), "ENGAGE_WEATHER__API_BASE": "http://127.0.0.1:9",
    })
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)


async def test_engage_run_exits_with_the_error_when_telegram_cannot_start(
    tmp_path: Path,
) -> None:
    proc = await _engage_run(tmp_path, "http://127.0.0.1:9")  # no Bot API there
    _, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    log = err.decode()
    assert proc.returncode == 1
    assert "engage listening on" in log  # it answered first
    assert "could not start Telegram and delivery" in log


async def test_sigterm_while_telegram_starts_stops_cleanly(
    tmp_path: Path, fake_telegram: FakeTelegram
) -> None:
    proc = await _engage_run(tmp_path, fake_telegram.base_url)
    assert proc.stderr is not None
    seen: list[str] = []
    while not any("engage listening on" in line for line in seen):
        line = await asyncio.wait_for(proc.stderr.readline(), timeout=120)
        assert line, "".join(seen)[-3000:]
        seen.append(line.decode())
    proc.send_signal(signal.SIGTERM)  # most likely while aiogram is still being imported
    _, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    log = "".join(seen) + err.decode()
    assert proc.returncode == 0, log[-3000:]
    assert "Traceback" not in log
