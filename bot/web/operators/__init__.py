"""The operator side of the web app: REST API under ``/api/v1`` (``api``), its OpenAPI
document, the server-rendered console under ``/console`` (``console``) and the background
campaign runner (``runner``). ``setup(app, …)`` wires all of it into the composition root."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from functools import partial

from aiohttp import web

from bot.settings import Settings

RUNNER_STUCK_AFTER = 300.0
"""A campaign runner pass (one enqueue batch per sending campaign) takes seconds."""


def setup(app: web.Application, settings: Settings, *, clock: Callable[[], datetime],
          run_campaigns: bool = True) -> None:
    from bot.desk.threads import Desk
    from bot.web.keys import CAMPAIGN_RUNNER, DESK, SUPERVISOR
    from bot.web.operators import api, complaints, console, openapi, renewal_kpis
    from bot.web.operators.runner import CampaignRunner

    app[DESK] = Desk(settings)
    api.setup(app)
    app.router.add_routes([openapi.route(api.API)])
    console.setup(app)
    app[renewal_kpis.REPORTS] = renewal_kpis.ReportCache(settings, clock)
    runner = CampaignRunner(settings, clock=clock)
    app[CAMPAIGN_RUNNER] = runner
    if not run_campaigns:
        return

    async def complaint_clock(app: web.Application) -> AsyncIterator[None]:
        task = app[SUPERVISOR].spawn(
            "complaint-clock", partial(complaints.run_clock, settings, clock),
            stuck_after=settings.complaints.sweep_minutes * 60 * 3)
        yield
        await task.stop()

    app.cleanup_ctx.append(complaint_clock)

    async def campaigns(app: web.Application) -> AsyncIterator[None]:
        task = app[SUPERVISOR].spawn("campaign-runner", runner.run, stuck_after=RUNNER_STUCK_AFTER)
        yield
        await task.stop()  # the batch in flight commits (or rolls back) before shutdown

    app.cleanup_ctx.append(campaigns)
