"""The console's complaint pages (``/console/complaints``): the register by state with due
dates, one complaint with its handler, extensions, approval and closing, and the form that
turns a conversation into a complaint; and satisfaction (``/console/satisfaction``) with its
chart against the target."""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from bot.web import charts
from bot.web.bodies import read_form
from bot.web.keys import SETTINGS, TEXTS
from bot.web.operators import complaints, satisfaction
from bot.web.operators.access import Actor
from bot.web.operators.console import (
    PAGE_SIZE,
    PREFIX,
    Strings,
    _back,
    _cursor,
    _int,
    _pager,
    language_of,
    page,
    render,
)
from bot.web.operators.http import now_of
from storage.operator_models import Operator, Role

COMPLAINTS = f"{PREFIX}/complaints"
STATES = ("open", "overdue", "closed", "all")


@page(Role.VIEWER)
async def complaints_page(request: web.Request, actor: Actor) -> web.StreamResponse:
    state = request.query.get("state", "open")
    state = state if state in STATES else "open"
    rows, found = await complaints.list_complaints(state, now_of(request), limit=PAGE_SIZE,
                                                   cursor=_cursor(request))
    return render(request, "complaints.html", actor, complaints=rows, state=state,
                  states=STATES, pager=_pager(request, found))


@page(Role.VIEWER)
async def complaint_page(request: web.Request, actor: Actor) -> web.StreamResponse:
    row = await complaints.complaint_detail(_int(request, "id"), now_of(request))
    colleagues = await Operator.filter(active=True, role__in=[Role.AGENT, Role.ADMIN]
                                       ).order_by("name").values_list("name", flat=True)
    pending = any(e["level"] == 2 and not e["approved_at"] for e in row["extensions"])
    return render(request, "complaint.html", actor, c=row, colleagues=colleagues,
                  pending=pending)


async def _form(request: web.Request) -> dict[str, str]:
    form = await read_form(request)
    return {k: str(v) for k, v in form.items() if k != "csrf_token"}


@page(Role.AGENT)
async def complaint_action(request: web.Request, actor: Actor) -> web.StreamResponse:
    form = await _form(request)
    complaint_id = _int(request, "id")
    action = request.match_info["action"]
    back = f"{COMPLAINTS}/{complaint_id}"
    now, settings = now_of(request), request.app[SETTINGS]
    try:
        if action == "assign":
            await complaints.assign(actor, complaint_id, complaints.HandlerIn(
                operator=form.get("operator", "")[:64]), now=now)
        elif action == "extend":
            await complaints.extend(actor, complaint_id, complaints.ExtendIn(
                reason=form.get("reason", "")[:1000]), now=now, settings=settings)
        elif action == "staff":
            await complaints.set_staff(actor, complaint_id, complaints.StaffIn(
                staff_complained=form.get("staff_complained", "")[:64]), now=now)
        elif action == "approve":
            await complaints.approve(actor, complaint_id, now=now, settings=settings)
        else:
            await complaints.close(actor, complaint_id, complaints.CloseIn(
                outcome=form.get("outcome", "")[:2000]), now=now, settings=settings)
    except ValidationError:
        return _back(back, err=f"complaint_{action}_empty")
    return _back(back, ok=f"complaint_{action}")


@page(Role.AGENT)
async def from_conversation(request: web.Request, actor: Actor) -> web.StreamResponse:
    form = await _form(request)
    conversation_id = _int(request, "id")
    try:
        data = complaints.FromConversationIn.model_validate({
            "category": form.get("category", ""),
            "description": form.get("description", "")[:4000],
            "policy_number": form.get("policy_number", "")[:40],
            "claim_number": form.get("claim_number", "")[:40],
            "staff_complained": form.get("staff_complained", "")[:64]})
    except ValidationError:
        return _back(f"{PREFIX}/inbox/{conversation_id}", err="complaint_form")
    complaint = await complaints.from_conversation(actor, conversation_id, data,
                                                   now=now_of(request),
                                                   settings=request.app[SETTINGS])
    return _back(f"{COMPLAINTS}/{complaint.id}", ok="complaint_create")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get(COMPLAINTS, complaints_page)
    router.add_get(f"{COMPLAINTS}/{{id:\\d+}}", complaint_page)
    router.add_post(f"{COMPLAINTS}/{{id:\\d+}}/{{action:assign|staff|extend|approve|close}}",
                    complaint_action)
    router.add_post(f"{PREFIX}/inbox/{{id:\\d+}}/complaint", from_conversation)
    add_satisfaction_routes(router)



@page(Role.VIEWER)
async def satisfaction_page(request: web.Request, actor: Actor) -> web.StreamResponse:
    data = await satisfaction.summary(now_of(request), request.app[SETTINGS])
    return render(request, "satisfaction.html", actor, data=data)


@page(Role.VIEWER)
async def satisfaction_chart(request: web.Request, actor: Actor) -> web.StreamResponse:
    data = await satisfaction.summary(now_of(request), request.app[SETTINGS])
    strings = Strings(request.app[TEXTS], language_of(request, actor))
    months = [m["month"] for m in data["by_month"]]
    svg = charts.line(strings("satisfaction_chart_title"), months,
                      {strings("satisfaction_rate"): [m["rate"] for m in data["by_month"]]},
                      percent=True, target=(strings("satisfaction_target"), data["target"]))
    return charts.svg_response(svg)


def add_satisfaction_routes(router: web.UrlDispatcher) -> None:
    router.add_get(f"{PREFIX}/satisfaction", satisfaction_page)
    router.add_get(f"{PREFIX}/satisfaction/chart.svg", satisfaction_chart)
