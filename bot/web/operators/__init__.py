"""The operator side of the web app: REST API under ``/api/v1`` (``api``), its OpenAPI
document, the server-rendered console under ``/console`` (``console``) and the background
campaign runner (``runner``). ``setup(app, …)`` wires all of it into the composition root."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from aiohttp import web

from bot.settings import Settings


def setup(app: web.Application, settings: Settings, *, clock: Callable[[], datetime],
          run_campaigns: bool = True) -> None:
    from bot.web.keys import CAMPAIGN_RUNNER
    from bot.web.operators import api, console, openapi
    from bot.web.operators.runner import CampaignRunner

    api.setup(app)
    app.router.add_routes([openapi.route(api.API)])
    console.setup(app)
    runner = CampaignRunner(settings, clock=clock)
    app[CAMPAIGN_RUNNER] = runner
    if not run_campaigns:
        return

    async def campaigns(app: web.Application) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop), name="campaign-runner")
        yield
        stop.set()
        await task  # the batch in flight commits (or rolls back) before shutdown

    app.cleanup_ctx.append(campaigns)
