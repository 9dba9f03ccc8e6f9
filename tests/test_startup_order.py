"""``engage run``'s start-up order: the scheduler's catch-up starts only once the web app
answers (``serve`` sets ``listening`` after the site starts) and the late parts (delivery,
Telegram: ``bot.web.late``) are up, and /healthz and the webhooks keep answering while a
points catch-up is still running (here held on an event: however long it takes over many
accounts, nothing waits for it). ``engage --help`` imports neither the settings nor Tortoise,
and the web app answers without aiogram imported (the late parts import it)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import date

from aiohttp.test_utils import TestClient, TestServer
from twilio.request_validator import RequestValidator

from bot.web.app import Overrides, build_app
from scheduler.jobs import POINTS, Jobs
from storage.scheduler_models import SchedulerRun
from tests import factories as f
from tests.fakes.twilio import AUTH_TOKEN


def held_points(started: asyncio.Event, release: asyncio.Event) -> type[Jobs]:
    class HeldPoints(Jobs):
        async def points(self) -> list[tuple[date, dict[str, int]]]:
            started.set()
            await release.wait()
            return await super().points()

    return HeldPoints


async def _until(check: Callable[[], Awaitable[bool]], limit: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not await check():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def _healthz(client: TestClient) -> tuple[int, str]:  # type: ignore[type-arg]
    resp = await client.get("/healthz")
    return resp.status, (await resp.json())["status"]


async def _readyz(client: TestClient) -> int:  # type: ignore[type-arg]
    return (await client.get("/readyz")).status


async def _status_callback(client: TestClient) -> int:  # type: ignore[type-arg]
    params = {"MessageSid": "SM" + "7" * 32, "MessageStatus": "delivered"}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(f"{f.PUBLIC_URL}/sms/status",
                                                                params)
    resp = await client.post("/sms/status", data=params,
                             headers={"X-Twilio-Signature": signature})
    return resp.status


async def test_catch_up_starts_after_listening_and_webhooks_answer_while_it_runs(
    db: str,
) -> None:
    started, release, listening = asyncio.Event(), asyncio.Event(), asyncio.Event()
    settings = f.settings_for(db_url=db, twilio_base="http://127.0.0.1:9")
    app = build_app(settings, Overrides(run_dispatcher=False, manage_database=False,
                                        clock=lambda: f.NOON_SHANGHAI,
                                        scheduler_jobs=held_points(started, release)),
                    listening=listening)
    async with TestClient(TestServer(app)) as client:
        # started, leading the scheduler, answering, and no catch-up yet: it waits for serve,
        # and so does delivery (a late part: it needs aiogram), which /healthz says
        assert await _healthz(client) == (200, "starting")
        assert (await (await client.get("/healthz")).json())["late"] == {"delivery": "starting"}
        assert await _readyz(client) == 503  # alive, not ready: no traffic yet
        for _ in range(20):
            await asyncio.sleep(0)
        assert not started.is_set()
        assert await SchedulerRun.all().count() == 0

        listening.set()  # delivery starts, then the catch-up
        await asyncio.wait_for(started.wait(), timeout=30)
        # the points catch-up is running (held): health and webhooks are not behind it
        assert await _healthz(client) == (200, "ok")
        assert await _readyz(client) == 200
        assert await _status_callback(client) == 204
        assert not await SchedulerRun.filter(job=POINTS).exists()

        release.set()

        async def points_recorded() -> bool:
            return await SchedulerRun.filter(job=POINTS).exists()

        await _until(points_recorded)
        assert await _healthz(client) == (200, "ok")


async def test_without_a_listening_event_the_catch_up_runs_at_once(db: str) -> None:
    """Tests and the demo build the app without ``serve``: catch-up as before."""
    started, release = asyncio.Event(), asyncio.Event()
    release.set()
    settings = f.settings_for(db_url=db, twilio_base="http://127.0.0.1:9")
    app = build_app(settings, Overrides(run_dispatcher=False, manage_database=False,
                                        clock=lambda: f.NOON_SHANGHAI,
                                        scheduler_jobs=held_points(started, release)))
    async with TestClient(TestServer(app)):
        await asyncio.wait_for(started.wait(), timeout=30)


def test_help_imports_neither_settings_nor_tortoise() -> None:
    probe = ("import sys\nfrom bot.cli import main\ntry:\n    main(['--help'])\n"
             "except SystemExit:\n    pass\n"
             "print(sorted(m for m in ('bot.settings', 'tortoise', 'aiogram', 'pydantic') "
             "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=120)
    assert done.stdout.splitlines()[-1] == "[]"
    assert "usage: engage" in done.stdout


def test_the_web_app_imports_without_aiogram() -> None:
    probe = ("import sys\nimport bot.web.app\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'aiogram'))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=120)
    assert done.stdout.splitlines()[-1] == "[]"
