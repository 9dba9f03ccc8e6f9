"""The composition root: build every app-wide service from ``Settings`` and wire the aiohttp
application (webhooks, operator API, /healthz, /metrics) together with the dispatcher.

Nothing connects at import; ``build_app`` only describes. Connections open in the app's
cleanup contexts at start-up and close, in reverse order, at shutdown. Every background loop
(dispatch pipelines, campaign runner, scheduler leadership, media sweep, update feed, the
core-system delivery of accident reports and the report-drafts sweep) runs
under the app's ``Supervisor`` and is reported by /healthz and /metrics.

This module does not import aiogram: the parts that need it (the Telegram bot and runtime,
the dispatcher: ``bot.web.channels``) are imported when they start, which in ``engage run`` is
after the app answers (``bot.web.late``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from tortoise import Tortoise

from bot.accident import core as core_reports
from bot.accident.core import CoreMetrics, CoreReports
from bot.accident.sweep import DraftSweep
from bot.retention_metrics import RetentionMetrics
from bot.settings import Settings
from bot.sms.inbound import conversations_context, inbound_sms
from bot.sms.signature import TwilioSignature
from bot.sms.status import status_callback
from bot.supervisor import Supervisor
from bot.texts import Texts
from bot.web import errors, headers, operators, partner
from bot.web.access_log import MaskedAccessLogger
from bot.web.heap import freeze_startup_heap
from bot.web.keys import (
    BOT,
    CLOCK,
    CORE_REPORTS,
    DISPATCHER,
    LATE,
    REGISTRY,
    SETTINGS,
    SUPERVISOR,
    TELEGRAM,
    TEXTS,
    TWILIO_SIGNATURE,
)
from bot.web.late import WEBHOOK_PATH, LateStart, gated_webhook
from loyalty.rewards import seed_rewards
from scheduler import runtime as scheduler_runtime
from scheduler.jobs import Jobs, SchedulerSettings
from storage import db as storage_db

if TYPE_CHECKING:
    from bot.delivery.senders import SmsGateway, TelegramGateway

log = logging.getLogger(__name__)


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class Overrides:
    """Seams for tests and the demo: replace a provider or the clock, skip a background task."""

    telegram: TelegramGateway | None = None
    sms: SmsGateway | None = None
    clock: Callable[[], datetime] = system_clock
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # a reply's flood-control wait
    run_dispatcher: bool = True
    run_scheduler: bool = True
    manage_database: bool = True
    run_campaigns: bool = True
    run_media_sweep: bool = True
    run_accident_reports: bool = True  # the core-system delivery queue and the drafts sweep
    scheduler_jobs: type[Jobs] = Jobs
    supervisor: Supervisor | None = None
    late_gate: Callable[[], Awaitable[object]] | None = None
    """Held by a test: the late parts (``bot.web.late``) start after the app answers, once this
    returns, as they do in ``engage run``."""
    extra_cleanup: list[Callable[[web.Application], AsyncIterator[None]]] = field(
        default_factory=list
    )


async def _health(request: web.Request) -> tuple[bool, dict[str, Any]]:
    """(alive, the health body): alive when the database answers, every background task runs
    and beats within its threshold and the late parts did not fail to start; ``status`` is
    ``ok``, ``starting`` (alive, late parts still starting) or ``unavailable``."""
    healthy, tasks = request.app[SUPERVISOR].report()
    late = request.app[LATE]
    database = "up"
    try:
        await Tortoise.get_connection("default").execute_query("SELECT 1")
    except Exception as exc:  # any driver error means "not healthy"; report, don't crash
        log.warning("health check failed: %s", type(exc).__name__)
        database = "down"
    alive = healthy and database == "up" and not late.broken
    status = "unavailable" if not alive else "starting" if late.starting else "ok"
    return alive, {"status": status, "database": database, "late": late.parts, "tasks": tasks}


async def healthz(request: web.Request) -> web.Response:
    """200 when the database answers and every background task runs and beats within its
    threshold, else 503; the body says which, task by task. While the late parts (Telegram,
    delivery: ``bot.web.late``) are still starting, 200 with status ``starting``; if they
    failed to start, 503. For liveness: a starting process is alive."""
    alive, body = await _health(request)
    return web.json_response(body, status=200 if alive else 503)


async def readyz(request: web.Request) -> web.Response:
    """The same body as /healthz, but 200 only when its status is ``ok``: every part,
    Telegram and delivery included, is up. For readiness: a load balancer or Kubernetes
    probe that sees only the status code sends no traffic to a starting process."""
    _, body = await _health(request)
    return web.json_response(body, status=200 if body["status"] == "ok" else 503)


Channels = Callable[..., AbstractAsyncContextManager[None]]
"""``bot.web.channels.channels``, named here without importing it."""


def _import_channels(*, pause_gc: bool) -> Channels:
    """Import the aiogram stack (seconds). In ``engage run`` (``pause_gc``): with the collector
    paused, as ``bot.cli._run`` does for the rest of the bot stack, and frozen once made."""
    pause = pause_gc and "bot.web.channels" not in sys.modules
    if pause:
        gc.disable()
    try:
        from bot.web.channels import channels
    finally:
        if pause:
            gc.freeze()
            gc.enable()
    return channels


async def _start_late(late: LateStart,
                      start: Callable[[Channels], AbstractAsyncContextManager[None]],
                      stopping: asyncio.Event, *, listening: asyncio.Event | None,
                      gate: Callable[[], Awaitable[object]] | None, freeze_heap: bool) -> None:
    """Import the late parts in a thread (the event loop keeps answering meanwhile), start
    them, and hold them until ``stopping``. A failure to start is reported on ``late`` (and
    /healthz); ``serve`` stops on it."""
    try:
        if listening is not None:
            await listening.wait()
        if gate is not None:
            await gate()
        channels = await asyncio.to_thread(_import_channels, pause_gc=freeze_heap)
        async with start(channels):
            if freeze_heap:
                freeze_startup_heap()  # before the catch-up, which waits for ``late.ready``
            late.up()
            log.info("%s started beside the running app", " and ".join(late.parts))
            await stopping.wait()
    except Exception as exc:  # reported and acted on by serve: the process stops with it
        log.exception("start-up of %s failed", ", ".join(late.parts))
        late.fail(exc)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def build_app(settings: Settings, overrides: Overrides | None = None, *,
              listening: asyncio.Event | None = None,
              freeze_heap: bool = False) -> web.Application:
    """The application, described. ``listening`` (``serve`` sets it once the socket answers):
    the late parts — Telegram and delivery, which need aiogram (``bot.web.late``) — are
    imported and started after it, beside the running app, and the scheduler's start-up
    catch-up waits for them, so however long either takes, /healthz and the webhooks are
    served first. Without ``listening`` (tests, the demo) they start with the app, as every
    other part does, unless ``overrides.late_gate`` holds them back. ``freeze_heap``
    (``serve``): the aiogram import runs with the collector paused, and the start-up heap is
    frozen once the late parts are up (``bot.web.heap``)."""
    seams = overrides or Overrides()
    app = web.Application(client_max_size=settings.uploads.max_bytes + 1024 * 1024)
    app[SETTINGS] = settings
    app[CLOCK] = seams.clock
    app[REGISTRY] = CollectorRegistry()
    app[SUPERVISOR] = supervisor = seams.supervisor or Supervisor()
    supervisor.register_metrics(app[REGISTRY])
    app[TEXTS] = Texts.load()  # template errors stop start-up here
    app[TWILIO_SIGNATURE] = TwilioSignature(
        settings.twilio.auth_token.get_secret_value(), settings.twilio.public_base_url
    )
    app[LATE] = late = LateStart(["telegram", "delivery"] if settings.telegram.enabled
                                 else ["delivery"])
    deferred = listening is not None or seams.late_gate is not None

    async def database(app: web.Application) -> AsyncIterator[None]:
        await storage_db.upgrade(settings.database.url, pool_max=settings.database.pool_max)
        added = await seed_rewards(settings.loyalty)  # the configured catalogue, never overwritten
        if added:
            log.info("seeded %d rewards from the configuration", added)
        yield
        await storage_db.close()

    def late_parts(channels: Channels) -> AbstractAsyncContextManager[None]:
        return channels(settings, late, texts=app[TEXTS], registry=app[REGISTRY],
                        supervisor=supervisor, clock=seams.clock, sleep=seams.sleep,
                        telegram=seams.telegram, sms=seams.sms,
                        run_dispatcher=seams.run_dispatcher)

    async def late_now(app: web.Application) -> AsyncIterator[None]:
        from bot.web.channels import channels

        async with late_parts(channels):
            if late.bot is not None:
                app[BOT] = late.bot
            if late.telegram is not None:
                app[TELEGRAM] = late.telegram
            if late.dispatcher is not None:
                app[DISPATCHER] = late.dispatcher
            late.up()
            yield

    async def late_after_listening(app: web.Application) -> AsyncIterator[None]:
        stopping = asyncio.Event()
        task = asyncio.create_task(_start_late(
            late, late_parts, stopping, listening=listening, gate=seams.late_gate,
            freeze_heap=freeze_heap))
        yield
        stopping.set()
        if not late.ready.is_set():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def accident_reports(app: web.Application) -> AsyncIterator[None]:
        reports = app[CORE_REPORTS]
        loops = [
            supervisor.spawn("core-reports", reports.run, stuck_after=(
                settings.core.poll_interval_seconds
                + core_reports.BATCH * settings.core.timeout_seconds + 60)),
            supervisor.spawn("report-drafts", DraftSweep(settings.report, clock=seams.clock).run,
                             stuck_after=settings.report.sweep_interval_seconds * 5 + 60),
        ] if seams.run_accident_reports else []
        if not settings.core.enabled:
            log.info("core.report_webhook_url is not set: confirmed accident reports wait "
                        "in the queue until it is")
        yield
        for loop in loops:
            await loop.stop()
        await reports.close()

    app[CORE_REPORTS] = CoreReports(settings.core, clock=seams.clock,
                                    metrics=CoreMetrics(app[REGISTRY]),
                                    skip_locked=settings.database.is_postgres)
    if seams.manage_database:
        app.cleanup_ctx.append(database)
    app.cleanup_ctx.append(late_after_listening if deferred else late_now)
    app.cleanup_ctx.append(partial(conversations_context, sweep_media=seams.run_media_sweep))
    app.cleanup_ctx.append(accident_reports)
    if seams.run_scheduler:
        app.cleanup_ctx.append(scheduler_runtime.cleanup_context(
            SchedulerSettings(schedule=settings.schedule, renewal=settings.renewal,
                              weather=settings.weather, loyalty=settings.loyalty,
                              care=settings.care, holidays=settings.holidays,
                              retention=settings.retention, uploads=settings.uploads.directory),
            settings.database, clock=seams.clock, supervisor=supervisor,
            on_retention=RetentionMetrics(app[REGISTRY]).observe,
            catch_up_after=late.ready.wait if deferred else None,
            jobs=seams.scheduler_jobs,
        ))
    app.cleanup_ctx.extend(seams.extra_cleanup)

    headers.setup(app, public_base_url=settings.web.public_base_url)
    errors.setup(app)  # before the parts that register their answers to refusals
    operators.setup(app, settings, clock=seams.clock, run_campaigns=seams.run_campaigns)
    partner.setup(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/sms/status", status_callback)
    if settings.telegram.enabled and settings.telegram.mode == "webhook":
        app.router.add_post(WEBHOOK_PATH, gated_webhook(
            settings.telegram.webhook_secret.get_secret_value(), late))
    app.router.add_post("/sms/inbound", inbound_sms)
    return app


async def serve(settings: Settings, stop: asyncio.Event, sock: socket.socket | None = None,
                ) -> None:
    """Run the application until ``stop`` is set (SIGTERM/SIGINT in ``engage run``) on ``sock``
    (bound by the caller, before the bot stack was imported) or ``web.host:web.port``; then shut
    down within ``delivery.shutdown_seconds``: every background loop is told at once, the
    dispatcher gives back what it has not sent, and whatever is still running when the time
    is up is abandoned (a message it held returns to the queue when its lease expires).

    Telegram and delivery start once the site answers (``bot.web.late``); if they fail to,
    the app stops and the error is raised. The scheduler's start-up catch-up begins once they
    are up and the start-up heap is frozen (what the catch-up allocates is not start-up
    state)."""
    listening = asyncio.Event()
    app = build_app(settings, listening=listening, freeze_heap=True)
    budget = settings.delivery.shutdown_seconds
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=budget / 2,
                           access_log_class=MaskedAccessLogger)
    await runner.setup()
    try:
        site: web.BaseSite = (web.SockSite(runner, sock) if sock is not None
                              else web.TCPSite(runner, settings.web.host, settings.web.port))
        await site.start()
        log.info("engage listening on http://%s:%d", settings.web.host, settings.web.port)
        listening.set()
        late = app[LATE]
        stopped = asyncio.create_task(stop.wait())
        failed = asyncio.create_task(late.failed.wait())
        await asyncio.wait([stopped, failed], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        failed.cancel()
        if late.error is None:
            log.info("shutting down: unsent messages back to the queue, in-flight sends "
                     "finish (at most %.0f s)", budget)
        app[SUPERVISOR].begin_shutdown()
        if late.error is not None:
            raise RuntimeError("engage could not start Telegram and delivery") from late.error
    finally:
        try:
            await asyncio.wait_for(runner.cleanup(), timeout=budget)
        except TimeoutError:
            log.error("shutdown took longer than delivery.shutdown_seconds (%.0f s): exiting "
                      "with work unfinished; claimed messages return after their lease", budget)
