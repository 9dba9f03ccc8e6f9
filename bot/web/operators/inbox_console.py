"""The console's inbox pages (``/console/inbox``): the queue and one thread with its reply box,
quick replies, assignment and resolving, the customer's policies, claims and points beside it.
``static/inbox.js`` adds what needs no reload: new messages, the SMS segment count of the
reply being typed, quick replies into the box, and the tabs' counts."""

from __future__ import annotations

import secrets
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import ValidationError

from bot.desk.complaints import CATEGORIES
from bot.web.bodies import read_form
from bot.web.keys import DESK, SETTINGS
from bot.web.operators import inbox
from bot.web.operators.access import Actor
from bot.web.operators.console import (
    PAGE_SIZE,
    PREFIX,
    _back,
    _cursor,
    _int,
    _pager,
    page,
    render,
)
from bot.web.operators.http import now_of
from storage.operator_models import Operator, Role

INBOX = f"{PREFIX}/inbox"


@page(Role.VIEWER)
async def inbox_page(request: web.Request, actor: Actor) -> web.StreamResponse:
    wanted = request.query.get("view", "")
    view: inbox.View = "mine" if wanted == "mine" else "all" if wanted == "all" else "waiting"
    desk, now = request.app[DESK], now_of(request)
    rows, found = await inbox.list_threads(actor, view, desk, now, limit=PAGE_SIZE,
                                           cursor=_cursor(request))
    return render(request, "inbox.html", actor, threads=rows, view=view,
                  views=inbox.VIEWS, counts=await inbox.counts(actor, desk, now),
                  target=desk.settings.first_response_minutes,
                  poll=desk.settings.poll_seconds, pager=_pager(request, found))


@page(Role.VIEWER)
async def thread_page(request: web.Request, actor: Actor) -> web.StreamResponse:
    conversation_id = _int(request, "id")
    settings = request.app[SETTINGS]
    desk, now = request.app[DESK], now_of(request)
    thread = await inbox.thread_json(conversation_id, desk, now)
    await inbox.mark_read(conversation_id)
    today = now.astimezone(ZoneInfo(settings.schedule.timezone)).date()
    customer = (await inbox.beside(thread["customer_id"], today=today)
                if thread["customer_id"] else None)
    colleagues = await Operator.filter(active=True, role__in=[Role.AGENT, Role.ADMIN]
                                       ).order_by("name").values_list("name", flat=True)
    return render(request, "conversation.html", actor, thread=thread, customer=customer,
                  quick_replies=settings.conversations.quick_replies, colleagues=colleagues,
                  request_key=secrets.token_urlsafe(12), poll=desk.settings.poll_seconds,
                  categories=CATEGORIES)


@page(Role.AGENT)
async def thread_action(request: web.Request, actor: Actor) -> web.StreamResponse:
    form = await read_form(request)
    conversation_id = _int(request, "id")
    action = request.match_info["action"]
    back = f"{INBOX}/{conversation_id}"
    now = now_of(request)
    if action == "reply":
        try:
            data = inbox.ReplyIn(text=str(form.get("text", "")),
                                 request_key=str(form.get("request_key", ""))[:64])
        except ValidationError:
            return _back(back, err="conversation_reply_empty")
        await inbox.reply(actor, conversation_id, data, now=now)
        return _back(back, ok="conversation_reply")
    if action == "assign":
        await inbox.assign(actor, conversation_id,
                           inbox.AssignIn(operator=str(form.get("operator", ""))[:64]), now=now)
        return _back(back, ok="conversation_assign")
    await inbox.resolve(actor, conversation_id, now=now)
    return _back(INBOX, ok="conversation_resolve")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get(INBOX, inbox_page)
    router.add_get(f"{INBOX}/{{id:\\d+}}", thread_page)
    router.add_post(f"{INBOX}/{{id:\\d+}}/{{action:reply|assign|resolve}}", thread_action)
