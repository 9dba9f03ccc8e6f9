"""The composition root: build every app-wide service from ``Settings`` and wire the aiohttp
application (webhooks, operator API, /healthz, /metrics) together with the dispatcher.

Nothing connects at import; ``build_app`` only describes. Connections open in the app's
cleanup contexts at start-up and close, in reverse order, at shutdown. Every background loop
(dispatch pipelines, campaign runner, scheduler leadership, media sweep, update feed, the
core-system delivery of accident reports and the report-drafts sweep) runs
under the app's ``Supervisor`` and is reported by /healthz and /metrics.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from tortoise import Tortoise

from bot.accident import core as core_reports
from bot.accident.core import CoreMetrics, CoreReports
from bot.accident.sweep import DraftSweep
from bot.delivery.dispatcher import Dispatcher
from bot.delivery.limits import WireMargins, limits_for
from bot.delivery.metrics import DeliveryMetrics
from bot.delivery.senders import AiogramTelegram, SmsGateway, TelegramGateway, TwilioSms
from bot.delivery.telegram_session import build_bot
from bot.retention_metrics import RetentionMetrics
from bot.settings import Settings
from bot.sms.inbound import conversations_context, inbound_sms
from bot.sms.signature import TwilioSignature
from bot.sms.status import status_callback
from bot.supervisor import Supervisor
from bot.telegram import runtime as telegram_runtime
from bot.telegram.updates import webhook_handler
from bot.texts import Texts
from bot.web import errors, headers, operators, partner
from bot.web.access_log import MaskedAccessLogger
from bot.web.heap import freeze_startup_heap
from bot.web.keys import (
    BOT,
    CLOCK,
    CORE_REPORTS,
    DISPATCHER,
    REGISTRY,
    SETTINGS,
    SUPERVISOR,
    TELEGRAM,
    TEXTS,
    TWILIO_SIGNATURE,
)
from loyalty.rewards import seed_rewards
from scheduler import runtime as scheduler_runtime
from scheduler.jobs import Jobs, SchedulerSettings
from storage import db as storage_db

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
    extra_cleanup: list[Callable[[web.Application], AsyncIterator[None]]] = field(
        default_factory=list
    )


async def healthz(request: web.Request) -> web.Response:
    """200 when the database answers and every background task runs and beats within its
    threshold, else 503; the body says which, task by task."""
    healthy, tasks = request.app[SUPERVISOR].report()
    database = "up"
    try:
        await Tortoise.get_connection("default").execute_query("SELECT 1")
    except Exception as exc:  # any driver error means "not healthy"; report, don't crash
        log.warning("health check failed: %s", type(exc).__name__)
        database = "down"
    ok = healthy and database == "up"
    body = {"status": "ok" if ok else "unavailable", "database": database, "tasks": tasks}
    return web.json_response(body, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def build_app(settings: Settings, overrides: Overrides | None = None, *,
              listening: asyncio.Event | None = None) -> web.Application:
    """The application, described. ``listening`` (``serve`` sets it once the socket answers):
    the scheduler's start-up catch-up waits for it, so however long the catch-up, /healthz and
    the webhooks are served first and beside it."""
    seams = overrides or Overrides()
    app = web.Application(client_max_size=settings.uploads.max_bytes + 1024 * 1024)
    app[SETTINGS] = settings
    app[CLOCK] = seams.clock
    app[REGISTRY] = CollectorRegistry()
    app[SUPERVISOR] = supervisor = seams.supervisor or Supervisor()
    supervisor.register_metrics(app[REGISTRY])
    margins = WireMargins()
    app[TEXTS] = Texts.load()  # template errors stop start-up here
    app[TWILIO_SIGNATURE] = TwilioSignature(
        settings.twilio.auth_token.get_secret_value(), settings.twilio.public_base_url
    )

    async def database(app: web.Application) -> AsyncIterator[None]:
        await storage_db.upgrade(settings.database.url, pool_max=settings.database.pool_max)
        added = await seed_rewards(settings.loyalty)  # the configured catalogue, never overwritten
        if added:
            log.info("seeded %d rewards from the configuration", added)
        yield
        await storage_db.close()

    async def telegram_bot(app: web.Application) -> AsyncIterator[None]:
        # One Bot (one HTTP session) per process, shared by the outbox sender and the bot.
        app[BOT] = build_bot(settings.telegram.token.get_secret_value(),
                             settings.telegram.api_base, trace=margins.telegram.trace())
        yield
        await app[BOT].session.close()

    async def telegram_updates(app: web.Application) -> AsyncIterator[None]:
        app[TELEGRAM] = await telegram_runtime.start(app[BOT], settings, app[TEXTS],
                                                     clock=seams.clock, supervisor=supervisor,
                                                     sleep=seams.sleep)
        yield
        await app[TELEGRAM].stop()

    async def delivery(app: web.Application) -> AsyncIterator[None]:
        closers: list[Callable[[], object]] = []
        telegram = seams.telegram
        if telegram is None and BOT in app:
            telegram = AiogramTelegram(app[BOT])
        sms = seams.sms
        if sms is None and settings.twilio.enabled:
            twilio = TwilioSms(
                account_sid=settings.twilio.account_sid,
                auth_token=settings.twilio.auth_token.get_secret_value(),
                from_number=settings.twilio.from_number,
                messaging_service_sid=settings.twilio.messaging_service_sid,
                api_base=settings.twilio.api_base,
                trace=margins.sms.trace(),
            )
            sms = twilio
            closers.append(twilio.close)
        limits, close_redis = limits_for(settings, margins)
        if close_redis is not None:
            closers.append(close_redis)
        dispatcher = Dispatcher(
            settings, app[TEXTS], telegram=telegram, sms=sms, limits=limits,
            metrics=DeliveryMetrics(app[REGISTRY]), clock=seams.clock,
            skip_locked=settings.database.is_postgres,
        )
        app[DISPATCHER] = dispatcher
        delivery = settings.delivery
        pipelines = [
            supervisor.spawn(f"dispatcher-{n}", dispatcher.pipeline,
                             stuck_after=float(delivery.lease_seconds + 30))
            for n in range(1, delivery.pipelines + 1)
        ] if seams.run_dispatcher else []
        if telegram is None and sms is None:
            log.warning("no channel configured (telegram.token, twilio.account_sid): "
                        "messages will be skipped with reason no_channel")
        yield
        # Unsent claimed messages go back at once, sends on the wire finish (see dispatcher).
        await asyncio.gather(*(pipeline.stop() for pipeline in pipelines))
        for close in reversed(closers):
            result = close()
            if asyncio.iscoroutine(result):
                await result

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
    if settings.telegram.enabled:
        app.cleanup_ctx.append(telegram_bot)
    app.cleanup_ctx.append(delivery)
    if settings.telegram.enabled:
        app.cleanup_ctx.append(telegram_updates)
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
            catch_up_after=listening.wait if listening is not None else None,
            jobs=seams.scheduler_jobs,
        ))
    app.cleanup_ctx.extend(seams.extra_cleanup)

    headers.setup(app, public_base_url=settings.web.public_base_url)
    errors.setup(app)  # before the parts that register their answers to refusals
    operators.setup(app, settings, clock=seams.clock, run_campaigns=seams.run_campaigns)
    partner.setup(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/sms/status", status_callback)
    if settings.telegram.enabled and settings.telegram.mode == "webhook":
        app.router.add_post(telegram_runtime.WEBHOOK_PATH, webhook_handler(
            settings.telegram.webhook_secret.get_secret_value(), lambda: app[TELEGRAM].feed))
    app.router.add_post("/sms/inbound", inbound_sms)
    return app


async def serve(settings: Settings, stop: asyncio.Event, sock: socket.socket | None = None,
                ) -> None:
    """Run the application until ``stop`` is set (SIGTERM/SIGINT in ``engage run``) on ``sock``
    (bound by the caller, before the bot stack was imported) or ``web.host:web.port``; then shut
    down within ``delivery.shutdown_seconds``: every background loop is told at once, the
    dispatcher gives back what it has not sent, and whatever is still running when the time
    is up is abandoned (a message it held returns to the queue when its lease expires).

    The scheduler's start-up catch-up begins only once the site answers and the start-up heap
    is frozen (what the catch-up allocates is not start-up state)."""
    listening = asyncio.Event()
    app = build_app(settings, listening=listening)
    budget = settings.delivery.shutdown_seconds
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=budget / 2,
                           access_log_class=MaskedAccessLogger)
    await runner.setup()
    try:
        site: web.BaseSite = (web.SockSite(runner, sock) if sock is not None
                              else web.TCPSite(runner, settings.web.host, settings.web.port))
        await site.start()
        freeze_startup_heap()
        log.info("engage listening on http://%s:%d", settings.web.host, settings.web.port)
        listening.set()
        await stop.wait()
        log.info("shutting down: unsent messages back to the queue, in-flight sends finish "
                 "(at most %.0f s)", budget)
        app[SUPERVISOR].begin_shutdown()
    finally:
        try:
            await asyncio.wait_for(runner.cleanup(), timeout=budget)
        except TimeoutError:
            log.error("shutdown took longer than delivery.shutdown_seconds (%.0f s): exiting "
                      "with work unfinished; claimed messages return after their lease", budget)
