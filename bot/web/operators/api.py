"""The operator REST API under ``/api/v1``: campaigns, claims, documents, customers, loyalty
administration, tasks, imports and the audit log.

Handlers translate HTTP to service calls; roles, CSRF and body validation happen in
``http.Api`` for every route alike, and what is refused is raised and answered as the JSON error
by ``bot.web.errors``. ``/api/v1/openapi.json`` is generated from this
route table and the pydantic models it names.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from bot.web.bodies import read_form
from bot.web.errors import FieldProblem, InvalidBody, answer_under, json_errors
from bot.web.keys import CAMPAIGN_RUNNER, DESK
from bot.web.operators import (
    accident_reports,
    campaigns,
    catalogue,
    claims,
    complaints,
    customers,
    dashboard,
    imports,
    inbox,
    privacy,
    regions,
    renewal_kpis,
    renewals,
    reviews,
    satisfaction,
    shared_phones,
    tasks,
)
from bot.web.operators import responses as out
from bot.web.operators.audience import AudienceFilter
from bot.web.operators.http import Api, Call, json_response
from bot.web.operators.paging import Page, PageOf, PageQuery, page
from storage.accident_models import CoreDeliveryStatus
from storage.loyalty_models import Reward
from storage.models import ClaimEvent, ClaimStatus, Document, TaskStatus
from storage.operator_models import AuditLog, Campaign, CampaignStatus, Role
from storage.regions import RegionFileError, import_region_data

API = Api("/api/v1")
A, G, V = Role.ADMIN, Role.AGENT, Role.VIEWER


class ClaimQuery(PageQuery):
    status: ClaimStatus | None = None
    q: str = Field(default="", max_length=40,
                   description="claim number (or its start), policy number, plate, or the "
                               "customer's phone: whole, last digits, or masked (138****8000)")


class CustomerQuery(PageQuery):
    q: str = Field(min_length=1, max_length=40,
                   description="phone (whole, last digits, or masked), policy number or plate")


class AccidentReportQuery(PageQuery):
    status: CoreDeliveryStatus | None = None


class TaskQuery(PageQuery):
    status: TaskStatus | None = None


class CampaignQuery(PageQuery):
    status: CampaignStatus | None = None


class AuditQuery(PageQuery):
    target_type: str = ""
    target_id: str = ""


class SharedPhoneQuery(PageQuery):
    held: bool | None = Field(default=None, description="true: still to check; false: "
                                                        "released; absent: both")


class RegionQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    used: bool = Field(default=False, description="only regions with customers")
class ConsentQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: int | None = Field(default=None, ge=1, description="one customer; absent: all")


class ImportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["customers", "policies", "claims", "payments"]


def _moved(call: Call, campaign: Campaign) -> web.Response:
    """After a start, pause, resume or cancel: wake the runner, answer the campaign."""
    runner = call.request.app.get(CAMPAIGN_RUNNER)
    if runner is not None:
        runner.wake(campaign.id)
    return json_response(campaigns.campaign_json(campaign))


def page_json(call: Call, found: Page[Any], items: Sequence[Mapping[str, Any]]) -> web.Response:
    """One page of a list: its items, the list's total and the link to the next page (this
    request's URL with the next cursor)."""
    following = (str(call.request.rel_url.update_query(cursor=found.cursor))
                 if found.cursor else None)
    body: dict[str, Any] = {"items": items, "total": found.total, "next": following}
    if found.capped:
        body["total_capped"] = True
    return json_response(body)


# -- me, dashboard, audit ---------------------------------------------------------------------


@API.route("GET", "/me", role=V, summary="The calling operator", tag="access", response=out.Me)
async def me(call: Call) -> web.StreamResponse:
    op = call.actor.operator
    return json_response({"id": op.id, "name": op.name, "role": call.actor.role.value,
                          "language": op.language, "has_contact": op.contact_id is not None,
                          "via": call.actor.via})


@API.route("GET", "/dashboard", role=V, summary="Today's plan, deliveries and failures",
           tag="dashboard", response=out.Dashboard)
async def get_dashboard(call: Call) -> web.StreamResponse:
    return json_response(await dashboard.summary(call.now, call.settings.schedule.timezone))


@API.route("GET", "/audit", role=A, summary="The audit log, newest first", tag="access",
           query=AuditQuery, response=PageOf[out.AuditEntry])
async def get_audit(call: Call) -> web.StreamResponse:
    q: AuditQuery = call.query
    rows = AuditLog.all()
    if q.target_type:
        rows = rows.filter(target_type=q.target_type)
    if q.target_id:
        rows = rows.filter(target_id=q.target_id)
    found = await page(rows, ("-id",), limit=q.limit, cursor=q.cursor)
    return page_json(call, found, [
        {"id": r.id, "operator": r.operator_name, "action": r.action,
         "target_type": r.target_type, "target_id": r.target_id, "before": r.before,
         "after": r.after, "at": r.created_at.isoformat()} for r in found.rows])


# -- campaigns -------------------------------------------------------------------------------


@API.route("GET", "/campaigns", role=V, summary="Campaigns, newest first", tag="campaigns",
           query=CampaignQuery, response=PageOf[out.CampaignOut])
async def list_campaigns(call: Call) -> web.StreamResponse:
    q: CampaignQuery = call.query
    rows = Campaign.all() if q.status is None else Campaign.filter(status=q.status)
    found = await page(rows, ("-id",), limit=q.limit, cursor=q.cursor)
    return page_json(call, found, [campaigns.campaign_json(c) for c in found.rows])


@API.route("POST", "/campaigns", role=A, summary="Create a draft campaign", tag="campaigns",
           body=campaigns.CampaignIn, statuses={201: "created"}, response=out.CampaignOut)
async def create_campaign(call: Call) -> web.StreamResponse:
    data: campaigns.CampaignIn = call.body
    if unknown := campaigns.check_tiers(data.audience, call.settings):
        raise InvalidBody([FieldProblem(path="audience.tiers",
                                        message=f"unknown tier {unknown[0]!r}",
                                        type="unknown_tier")])
    campaign = await campaigns.create_campaign(call.actor, data, now=call.now)
    return json_response(campaigns.campaign_json(campaign), status=201)


@API.route("POST", "/campaigns/audience", role=V, body=AudienceFilter, tag="campaigns",
           summary="Count the customers an audience filter selects (live count)",
           response=out.AudienceCount)
async def count_audience(call: Call) -> web.StreamResponse:
    if unknown := campaigns.check_tiers(call.body, call.settings):
        raise InvalidBody([FieldProblem(path="tiers", message=f"unknown tier {unknown[0]!r}",
                                        type="unknown_tier")])
    return json_response({"audience": await campaigns.audience_count(call.body, call.settings,
                                                                     now=call.now)})


@API.route("GET", "/campaigns/{id}", role=V, summary="One campaign", tag="campaigns",
           response=out.CampaignOut)
async def get_campaign(call: Call) -> web.StreamResponse:
    campaign = await campaigns.get_campaign(call.int_param("id"))
    return json_response(campaigns.campaign_json(campaign))


@API.route("GET", "/campaigns/{id}/preview", role=V, tag="campaigns",
           summary="Audience size, channel split, SMS segments and cost, three samples "
                   "(as at the start, once started)", response=out.Preview)
async def preview_campaign(call: Call) -> web.StreamResponse:
    campaign = await campaigns.get_campaign(call.int_param("id"))
    return json_response(await campaigns.preview(campaign, call.settings, call.texts,
                                                 now=call.now))


@API.route("POST", "/campaigns/{id}/test", role=A, tag="campaigns",
           summary="Send the campaign to the operator's own contact", statuses={202: "queued"},
           response=out.TestSend)
async def test_campaign(call: Call) -> web.StreamResponse:
    message = await campaigns.test_send(call.actor, call.int_param("id"),
                                        settings=call.settings, now=call.now)
    return json_response({"message_id": message.id, "status": str(message.status)}, status=202)


@API.route("POST", "/campaigns/{id}/start", role=A, tag="campaigns",
           summary="Start sending (or schedule for send_at)", response=out.CampaignOut)
async def start_campaign(call: Call) -> web.StreamResponse:
    return _moved(call, await campaigns.start(call.actor, call.int_param("id"),
                                              settings=call.settings, texts=call.texts,
                                              now=call.now))


@API.route("POST", "/campaigns/{id}/pause", role=A, tag="campaigns",
           summary="Stop enqueuing and hold unsent messages", response=out.CampaignOut)
async def pause_campaign(call: Call) -> web.StreamResponse:
    return _moved(call, await campaigns.pause(call.actor, call.int_param("id"), now=call.now))


@API.route("POST", "/campaigns/{id}/resume", role=A, tag="campaigns",
           summary="Carry on after a pause, or retry a failed campaign: held messages are "
                   "released, nothing is sent twice", response=out.CampaignOut)
async def resume_campaign(call: Call) -> web.StreamResponse:
    return _moved(call, await campaigns.resume(call.actor, call.int_param("id"), now=call.now))


@API.route("POST", "/campaigns/{id}/cancel", role=A, tag="campaigns",
           summary="Cancel: unsent messages are skipped with reason cancelled",
           response=out.CampaignOut)
async def cancel_campaign(call: Call) -> web.StreamResponse:
    return _moved(call, await campaigns.cancel(call.actor, call.int_param("id"), now=call.now))


@API.route("GET", "/campaigns/{id}/stats", role=V, tag="campaigns",
           summary="Queued, sent, delivered, failed, skipped by reason",
           response=out.CampaignStats)
async def campaign_stats(call: Call) -> web.StreamResponse:
    campaign = await campaigns.get_campaign(call.int_param("id"))
    return json_response(await campaigns.stats(campaign))


@API.route("GET", "/campaigns/{id}/failures.csv", role=V, tag="campaigns",
           summary="Failed, undelivered, skipped and unknown messages as CSV",
           produces="text/csv")
async def campaign_failures(call: Call) -> web.StreamResponse:
    campaign = await campaigns.get_campaign(call.int_param("id"))
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="campaign-{campaign.id}-failures.csv"',
    })
    await response.prepare(call.request)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(campaigns.FAILURE_COLUMNS)
    async for row in campaigns.failures(campaign.id):
        writer.writerow(row)
        if buffer.tell() > 64 * 1024:
            await response.write(buffer.getvalue().encode())
            buffer.seek(0)
            buffer.truncate()
    await response.write(buffer.getvalue().encode())
    await response.write_eof()
    return response


# -- claims and documents -------------------------------------------------------------------


@API.route("GET", "/claims", role=V, summary="Claims, newest report first", tag="claims",
           query=ClaimQuery, response=PageOf[out.ClaimOut])
async def list_claims(call: Call) -> web.StreamResponse:
    q: ClaimQuery = call.query
    found = await claims.list_claims(
        status=q.status, q=q.q, default_region=call.settings.company.default_phone_region,
        limit=q.limit, cursor=q.cursor)
    return page_json(call, found, [claims.claim_json(c) for c in found.rows])


@API.route("PUT", "/claims/{number}", role=G, body=claims.ClaimIn, tag="claims",
           summary="Create or update a claim from the core system (a status change is a "
                   "timeline step)", statuses={201: "created", 200: "updated"},
           response=out.ClaimOut)
async def put_claim(call: Call) -> web.StreamResponse:
    claim, created = await claims.upsert_claim(call.actor, call.request.match_info["number"],
                                               call.body, texts=call.texts, now=call.now)
    return json_response(claims.claim_json(claim), status=201 if created else 200)


@API.route("GET", "/claims/{number}", role=V, summary="A claim with its events and documents",
           tag="claims", response=out.ClaimDetail)
async def get_claim(call: Call) -> web.StreamResponse:
    claim = await claims.get_claim(call.request.match_info["number"])
    events = await ClaimEvent.filter(claim_id=claim.id).order_by("occurred_at", "id")
    documents = await Document.filter(claim_id=claim.id).order_by("id")
    return json_response({**claims.claim_json(claim),
                          "events": [claims.event_json(e) for e in events],
                          "documents": [reviews.document_json(d) for d in documents]})


@API.route("POST", "/claims/{number}/events", role=G, body=claims.ClaimEventIn, tag="claims",
           summary="A status change from the core system, idempotent by external_id",
           statuses={201: "recorded", 200: "already recorded (replay)"},
           response=out.ClaimEventRecorded)
async def post_claim_event(call: Call) -> web.StreamResponse:
    event, created = await claims.record_event(call.actor, call.request.match_info["number"],
                                               call.body, texts=call.texts, now=call.now)
    return json_response({**claims.event_json(event), "replayed": not created},
                         status=201 if created else 200)


@API.route("GET", "/claims/{number}/documents", role=V, summary="A claim's documents",
           tag="documents", query=PageQuery, response=PageOf[out.DocumentOut])
async def claim_documents(call: Call) -> web.StreamResponse:
    claim = await claims.get_claim(call.request.match_info["number"])
    found = await page(Document.filter(claim_id=claim.id), ("id",), limit=call.query.limit,
                       cursor=call.query.cursor)
    return page_json(call, found, [reviews.document_json(d) for d in found.rows])


@API.route("GET", "/documents/{id}/file", role=V, tag="documents", produces="*/*",
           summary="Download a document, streamed, in its own type (JPEG, PNG, PDF, …)")
async def document_file(call: Call) -> web.StreamResponse:
    document = await reviews.get_document(call.int_param("id"))
    path = reviews.file_path(document, call.settings.uploads.directory)
    name = document.original_name or path.name
    return web.FileResponse(path, headers={
        "Content-Type": document.mime_type,
        "Content-Disposition": f"inline; filename*=UTF-8''{_quote(name)}",
        "Cache-Control": "private, no-store",
    })


@API.route("GET", "/documents/{id}/thumbnail", role=V, summary="A small JPEG of an image",
           tag="documents", produces="image/jpeg")
async def document_thumbnail(call: Call) -> web.StreamResponse:
    document = await reviews.get_document(call.int_param("id"))
    data = await reviews.thumbnail(document, call.settings.uploads.directory)
    if data is None:
        raise reviews.NoThumbnail("only images have thumbnails")
    return web.Response(body=data, content_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=300"})


@API.route("POST", "/documents/{id}/review", role=G, body=reviews.ReviewIn, tag="documents",
           summary="Accept, or reject with a reason (the customer is asked to re-upload)",
           response=out.DocumentOut)
async def review_document(call: Call) -> web.StreamResponse:
    document = await reviews.review(call.actor, call.int_param("id"), call.body, now=call.now)
    return json_response(reviews.document_json(document))


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


# -- customers and loyalty -------------------------------------------------------------------


@API.route("GET", "/customers", role=V, query=CustomerQuery, tag="customers",
           summary="Search by phone, policy number or plate (phones masked)",
           response=PageOf[out.CustomerRow])
async def search_customers(call: Call) -> web.StreamResponse:
    q: CustomerQuery = call.query
    found = await customers.search(q.q, default_region=call.settings.company.default_phone_region,
                                   limit=q.limit, cursor=q.cursor)
    return page_json(call, found, [customers.customer_row(c) for c in found.rows])


@API.route("GET", "/customers/{id}", role=V, tag="customers",
           summary="A customer: policies, claims, consents, points, messages, tasks",
           response=out.CustomerProfile)
async def get_customer(call: Call) -> web.StreamResponse:
    return json_response(await customers.profile(call.int_param("id")))


@API.route("POST", "/customers/{id}/points", role=A, body=catalogue.AdjustIn, tag="loyalty",
           summary="Adjust points (reason required, idempotent by request_key)",
           statuses={201: "adjusted", 200: "already adjusted (a replay of request_key)"},
           response=out.PointsAdjusted)
async def adjust_points(call: Call) -> web.StreamResponse:
    result = await catalogue.adjust(call.actor, call.int_param("id"), call.body, now=call.now,
                                    settings=call.settings.loyalty)
    return json_response(result, status=200 if result["replayed"] else 201)


@API.route("POST", "/customers/{id}/redemptions", role=G, body=catalogue.RedeemIn,
           tag="loyalty", summary="Redeem a reward for a customer who called (audited; the "
                                  "voucher is sent to the customer's channel)",
           statuses={201: "redeemed", 200: "already redeemed (a replay of request_key)"},
           response=out.OperatorRedemption)
async def redeem_for_customer(call: Call) -> web.StreamResponse:
    result = await catalogue.redeem_for(call.actor, call.int_param("id"), call.body,
                                        now=call.now, settings=call.settings.loyalty)
    return json_response(result, status=200 if result["replayed"] else 201)


@API.route("GET", "/customers/{id}/export", role=A, tag="privacy",
           summary="Everything held about the customer (PIPL access request); audited",
           response=out.CustomerExport)
async def export_customer(call: Call) -> web.StreamResponse:
    data = await privacy.export(call.actor, call.int_param("id"), now=call.now,
                                uploads=Path(call.settings.uploads.directory), as_zip=False)
    return json_response(data)


@API.route("GET", "/customers/{id}/export.zip", role=A, tag="privacy", produces="application/zip",
           summary="The export as a ZIP: export.json and the document files; audited")
async def export_customer_zip(call: Call) -> web.StreamResponse:
    customer_id = call.int_param("id")
    data = await privacy.export(call.actor, customer_id, now=call.now,
                                uploads=Path(call.settings.uploads.directory), as_zip=True)
    return web.Response(body=data, content_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="customer-{customer_id}.zip"',
        "Cache-Control": "private, no-store"})


@API.route("POST", "/customers/{id}/erase", role=A, tag="privacy",
           summary="Erase the customer (PIPL): pseudonymise, delete documents and inbound "
                   "messages, suppress the phone; 409 legal_hold lists open claims and "
                   "complaints; idempotent; audited", response=out.ErasureOut)
async def erase_customer(call: Call) -> web.StreamResponse:
    return json_response(await privacy.erase(call.actor, call.int_param("id"), now=call.now,
                                             uploads=Path(call.settings.uploads.directory)))


@API.route("GET", "/consents.csv", role=A, query=ConsentQuery, tag="privacy",
           summary="Consent evidence as CSV: every change with channel, category, source, "
                   "reference (MessageSid) and time", produces="text/csv")
async def consent_evidence(call: Call) -> web.StreamResponse:
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": 'attachment; filename="consents.csv"'})
    await response.prepare(call.request)
    async for chunk in privacy.consent_csv(call.query.customer_id):
        await response.write(chunk)
    await response.write_eof()
    return response


@API.route("GET", "/rewards", role=V, summary="The rewards catalogue", tag="loyalty",
           response=list[out.RewardOut])
async def list_rewards(call: Call) -> web.StreamResponse:
    return json_response([catalogue.reward_json(r) for r in await Reward.all().order_by("id")])


@API.route("POST", "/rewards", role=A, body=catalogue.RewardIn, tag="loyalty",
           summary="Add a reward to the catalogue", statuses={201: "created"},
           response=out.RewardOut)
async def create_reward(call: Call) -> web.StreamResponse:
    reward = await catalogue.create_reward(call.actor, call.body, now=call.now,
                                           settings=call.settings.loyalty)
    return json_response(catalogue.reward_json(reward), status=201)


@API.route("PATCH", "/rewards/{code}", role=A, body=catalogue.RewardPatch, tag="loyalty",
           summary="Change a reward (price, stock, window, limits)", response=out.RewardOut)
async def update_reward(call: Call) -> web.StreamResponse:
    reward = await catalogue.update_reward(call.actor, call.request.match_info["code"],
                                           call.body, now=call.now,
                                           settings=call.settings.loyalty)
    return json_response(catalogue.reward_json(reward))


@API.route("POST", "/rewards/{code}/retire", role=A, tag="loyalty",
           summary="Retire a reward (kept for its vouchers, no longer offered)",
           response=out.RewardOut)
async def retire_reward(call: Call) -> web.StreamResponse:
    reward = await catalogue.retire_reward(call.actor, call.request.match_info["code"],
                                           now=call.now)
    return json_response(catalogue.reward_json(reward))


@API.route("GET", "/accident-reports", role=V, query=AccidentReportQuery, tag="claims",
           summary="Accident reports made in Telegram and their delivery to the core system, "
                   "newest first", response=PageOf[out.AccidentReportOut])
async def list_accident_reports(call: Call) -> web.StreamResponse:
    q: AccidentReportQuery = call.query
    found, numbers = await accident_reports.list_deliveries(q.status, limit=q.limit,
                                                            cursor=q.cursor)
    return page_json(call, found, [accident_reports.delivery_json(r, numbers.get(r.claim_id))
                                   for r in found.rows])


@API.route("POST", "/accident-reports/{id}/retry", role=G, tag="claims",
           summary="Send a dead letter to the core system again", response=out.AccidentReportOut)
async def retry_accident_report(call: Call) -> web.StreamResponse:
    return json_response(await accident_reports.retry(call.actor, call.int_param("id"),
                                                      now=call.now))


@API.route("PUT", "/accident-reports/{number}/claim-number", role=G, tag="claims",
           body=accident_reports.CoreNumberIn, response=out.CoreNumberSet,
           summary="The core system's claim number for a report (by the reference Engage "
                   "gave it): the claim takes it and the customer is told (idempotent)")
async def put_core_claim_number(call: Call) -> web.StreamResponse:
    claim, changed = await accident_reports.set_core_number(
        call.actor, call.request.match_info["number"], call.body, now=call.now)
    return json_response({**claims.claim_json(claim), "changed": changed})


# -- tasks and imports ----------------------------------------------------------------------


@API.route("GET", "/tasks", role=V, query=TaskQuery, tag="tasks",
           summary="Renewal call-back requests and other tasks, newest first",
           response=PageOf[out.TaskOut])
async def list_tasks(call: Call) -> web.StreamResponse:
    q: TaskQuery = call.query
    items, found = await tasks.list_tasks(q.status.value if q.status else None, limit=q.limit,
                                          cursor=q.cursor)
    return page_json(call, found, items)


@API.route("POST", "/tasks/{id}/assign", role=G, body=tasks.AssignIn, tag="tasks",
           summary="Assign a task", response=out.TaskOut)
async def assign_task(call: Call) -> web.StreamResponse:
    task = await tasks.assign(call.actor, call.int_param("id"), call.body, now=call.now)
    return json_response(tasks.task_json(task))


@API.route("POST", "/tasks/{id}/close", role=G, body=tasks.CloseIn, tag="tasks",
           summary="Close a task", response=out.TaskOut)
async def close_task(call: Call) -> web.StreamResponse:
    task = await tasks.close(call.actor, call.int_param("id"), call.body, now=call.now)
    return json_response(tasks.task_json(task))


@API.route("GET", "/shared-phones", role=V, tag="customers", query=SharedPhoneQuery,
           summary="Phone numbers three or more customers share (care and marketing SMS held "
                   "until released), most customers first",
           response=PageOf[out.SharedPhoneOut])
async def list_shared_phones(call: Call) -> web.StreamResponse:
    q: SharedPhoneQuery = call.query
    items, found = await shared_phones.list_flags(q.held, limit=q.limit, cursor=q.cursor)
    return page_json(call, found, items)


@API.route("POST", "/shared-phones/{id}/release", role=G, tag="customers",
           summary="Release a shared number checked to be really those customers' own",
           response=out.SharedPhoneOut)
async def release_shared_phone(call: Call) -> web.StreamResponse:
    return json_response(await shared_phones.release(call.actor, call.int_param("id"),
                                                     now=call.now))


@API.route("POST", "/imports", role=A, query=ImportQuery, tag="imports", upload=True,
           summary="Import a CSV export (text/csv body or multipart field 'file')",
           response=out.ImportResult)
async def post_import(call: Call) -> web.StreamResponse:
    data, filename = await read_upload(call.request)
    if data is None:
        raise InvalidBody([FieldProblem(path="file", message="a CSV file is required",
                                        type="missing")])
    result = await imports.run_import(
        call.actor, call.query.kind, data, filename=filename,
        default_region=call.settings.company.default_phone_region, now=call.now)
    return json_response(result, status=200)


@API.route("GET", "/regions", role=V, query=RegionQuery, tag="regions",
           summary="Regions with their customers, last hazards and this week's weather notices",
           response=list[out.RegionOut])
async def list_regions(call: Call) -> web.StreamResponse:
    return json_response(await regions.region_list(used=call.query.used, now=call.now))


@API.route("POST", "/regions/import", role=A, tag="regions", upload=True,
           summary="Add or change custom areas from a CSV (code, name, name_en, full_name, "
                   "latitude, longitude, timezone, parent)",
           response=out.RegionImportOut)
async def import_regions(call: Call) -> web.StreamResponse:
    data, _ = await read_upload(call.request)
    if data is None:
        raise InvalidBody([FieldProblem(path="file", message="a CSV file is required",
                                        type="missing")])
    try:
        report = await import_region_data(data)
    except RegionFileError as exc:
        raise InvalidBody([FieldProblem(path="file", message=str(exc),
                                        type="value_error")]) from None
    return json_response(regions.import_json(report))


async def read_upload(request: web.Request) -> tuple[bytes | None, str]:
    if request.content_type == "multipart/form-data":
        form = await read_form(request)
        upload = form.get("file")
        if isinstance(upload, web.FileField):
            return upload.file.read(), upload.filename
        return None, ""
    data = await request.read()
    return (data or None), "upload.csv"


# -- conversations ------------------------------------------------------------------------------


class InboxQuery(PageQuery):
    view: inbox.View = Field(default="waiting", description="waiting: handed off, nobody has "
                             "it; mine: held by the caller; all: every thread")


class ThreadQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after: int = Field(default=0, ge=0, description="only messages after this message id")


class PreviewQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=1000)


@API.route("GET", "/conversations", role=V, query=InboxQuery, tag="conversations",
           summary="The inbox: waiting and mine oldest hand-off first, all latest first",
           response=PageOf[out.ConversationOut])
async def list_conversations(call: Call) -> web.StreamResponse:
    q: InboxQuery = call.query
    items, found = await inbox.list_threads(call.actor, q.view, call.request.app[DESK],
                                            call.now, limit=q.limit, cursor=q.cursor)
    return page_json(call, found, items)


@API.route("GET", "/conversations/counts", role=V, tag="conversations",
           summary="Waiting and mine, their unread messages, and how many are overdue",
           response=out.InboxCounts)
async def conversation_counts(call: Call) -> web.StreamResponse:
    return json_response(await inbox.counts(call.actor, call.request.app[DESK], call.now))


@API.route("GET", "/conversations/{id}", role=V, query=ThreadQuery, tag="conversations",
           summary="One thread and its latest messages (or those after a message id)",
           response=out.ThreadOut)
async def get_conversation(call: Call) -> web.StreamResponse:
    return json_response(await inbox.thread_json(call.int_param("id"), call.request.app[DESK],
                                                 call.now, after=call.query.after))


@API.route("GET", "/conversations/{id}/preview", role=G, query=PreviewQuery,
           tag="conversations", summary="Where a reply goes, and its SMS segment count",
           response=out.ReplyPreview)
async def preview_reply(call: Call) -> web.StreamResponse:
    thread = await inbox.get_thread(call.int_param("id"))
    return json_response(await inbox.reply_preview(thread, call.query.text, call.settings))


@API.route("POST", "/conversations/{id}/messages", role=G, body=inbox.ReplyIn,
           tag="conversations", response=out.ConversationMessageOut,
           summary="Reply: queued as a service message on the customer's last channel")
async def reply_conversation(call: Call) -> web.StreamResponse:
    message = await inbox.reply(call.actor, call.int_param("id"), call.body, now=call.now)
    return json_response(inbox.message_json(message, call.actor.name))


@API.route("POST", "/conversations/{id}/assign", role=G, body=inbox.AssignIn,
           tag="conversations", summary="Assign to the caller or a colleague",
           response=out.ConversationOut)
async def assign_conversation(call: Call) -> web.StreamResponse:
    thread = await inbox.assign(call.actor, call.int_param("id"), call.body, now=call.now)
    [row] = await inbox.threads_json([thread], call.request.app[DESK], call.now)
    return json_response(row)


@API.route("POST", "/conversations/{id}/resolve", role=G, tag="conversations",
           summary="Resolve: the bot answers the customer again", response=out.ConversationOut)
async def resolve_conversation(call: Call) -> web.StreamResponse:
    thread = await inbox.resolve(call.actor, call.int_param("id"), now=call.now)
    [row] = await inbox.threads_json([thread], call.request.app[DESK], call.now)
    return json_response(row)


# -- complaints ---------------------------------------------------------------------------------


class ComplaintQuery(PageQuery):
    state: Literal["open", "overdue", "closed", "all"] = Field(
        default="open", description="open and overdue soonest due first; closed and all "
                                    "newest first")


class RegisterQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    received_from: date | None = Field(default=None, description="local date, inclusive")
    received_to: date | None = Field(default=None, description="local date, inclusive")


def _local_start(day: date | None, call: Call, *, after: bool = False) -> datetime | None:
    if day is None:
        return None
    tz = ZoneInfo(call.settings.schedule.timezone)
    return datetime.combine(day + timedelta(days=1 if after else 0), time(), tzinfo=tz)


async def _complaint_out(call: Call, complaint_id: int) -> web.Response:
    return json_response(await complaints.complaint_detail(complaint_id, call.now))


@API.route("GET", "/complaints", role=V, query=ComplaintQuery, tag="complaints",
           summary="Complaints: open and overdue soonest due first",
           response=PageOf[out.ComplaintOut])
async def list_complaints(call: Call) -> web.StreamResponse:
    q: ComplaintQuery = call.query
    items, found = await complaints.list_complaints(q.state, call.now, limit=q.limit,
                                                    cursor=q.cursor)
    return page_json(call, found, items)


@API.route("GET", "/complaints/register.csv", role=V, query=RegisterQuery, tag="complaints",
           summary="The complaint register for regulatory reporting (CSV)",
           produces="text/csv")
async def complaint_register(call: Call) -> web.StreamResponse:
    q: RegisterQuery = call.query
    text = await complaints.register_csv(
        call.now, received_from=_local_start(q.received_from, call),
        received_to=_local_start(q.received_to, call, after=True))
    return web.Response(body=text.encode(), headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": 'attachment; filename="complaints-register.csv"'})


@API.route("GET", "/complaints/{id}", role=V, tag="complaints", summary="One complaint",
           response=out.ComplaintOut)
async def get_complaint(call: Call) -> web.StreamResponse:
    return await _complaint_out(call, call.int_param("id"))


@API.route("POST", "/conversations/{id}/complaint", role=G, body=complaints.FromConversationIn,
           tag="complaints", response=out.ComplaintOut,
           summary="Turn a conversation into a complaint (the customer is told its reference)")
async def complaint_from_conversation(call: Call) -> web.StreamResponse:
    complaint = await complaints.from_conversation(call.actor, call.int_param("id"), call.body,
                                                   now=call.now, settings=call.settings)
    return await _complaint_out(call, complaint.id)


@API.route("POST", "/complaints/{id}/assign", role=G, body=complaints.HandlerIn,
           tag="complaints", response=out.ComplaintOut,
           summary="Give the complaint a handler (never the staff member complained about)")
async def assign_complaint(call: Call) -> web.StreamResponse:
    await complaints.assign(call.actor, call.int_param("id"), call.body, now=call.now)
    return await _complaint_out(call, call.int_param("id"))


@API.route("POST", "/complaints/{id}/staff", role=G, body=complaints.StaffIn,
           tag="complaints", response=out.ComplaintOut,
           summary="Record the staff member complained about (not while they handle it)")
async def complaint_staff(call: Call) -> web.StreamResponse:
    await complaints.set_staff(call.actor, call.int_param("id"), call.body, now=call.now)
    return await _complaint_out(call, call.int_param("id"))


@API.route("POST", "/complaints/{id}/extend", role=G, body=complaints.ExtendIn,
           tag="complaints", response=out.ComplaintOut,
           summary="Extend the deadline (the further extension waits for an admin)")
async def extend_complaint(call: Call) -> web.StreamResponse:
    await complaints.extend(call.actor, call.int_param("id"), call.body, now=call.now,
                            settings=call.settings)
    return await _complaint_out(call, call.int_param("id"))


@API.route("POST", "/complaints/{id}/approve", role=A, tag="complaints",
           response=out.ComplaintOut, summary="Approve the pending further extension")
async def approve_complaint(call: Call) -> web.StreamResponse:
    await complaints.approve(call.actor, call.int_param("id"), now=call.now,
                             settings=call.settings)
    return await _complaint_out(call, call.int_param("id"))


@API.route("POST", "/complaints/{id}/close", role=G, body=complaints.CloseIn,
           tag="complaints", response=out.ComplaintOut,
           summary="Close with the outcome: the customer gets the decision and redress channels")
async def close_complaint(call: Call) -> web.StreamResponse:
    await complaints.close(call.actor, call.int_param("id"), call.body, now=call.now,
                           settings=call.settings)
    return await _complaint_out(call, call.int_param("id"))


@API.route("GET", "/satisfaction", role=V, tag="complaints", response=out.SatisfactionOut,
           summary="Satisfaction (4-5 among answers) against the target, by operator, case "
                   "type and month")
async def get_satisfaction(call: Call) -> web.StreamResponse:
    return json_response(await satisfaction.summary(call.now, call.settings))
# -- renewal desk ----------------------------------------------------------------------------


class ClaimWindowQuery(PageQuery):
    month: date | None = Field(default=None, description="any day of the month (default: "
                                                         "this month)")
    branch: str = Field(default="", max_length=32,
                        description="a branch code; default: the operator's own, * for all")


def _today(call: Call) -> date:
    return call.now.astimezone(ZoneInfo(call.settings.schedule.timezone)).date()


@API.route("GET", "/renewals/worklist", role=V, query=renewals.WorklistQuery, tag="renewals",
           summary="Policies to renew by tab (30, 60, 90 days, lapsed), soonest first, with "
                   "their owner, outcome and every contact so far",
           response=PageOf[out.RenewalRowOut])
async def renewal_worklist(call: Call) -> web.StreamResponse:
    items, found = await renewals.worklist(call.actor, call.query, today=_today(call),
                                           limit=call.query.limit)
    return page_json(call, found, items)


@API.route("GET", "/renewals/claim-window", role=V, query=ClaimWindowQuery, tag="renewals",
           summary="The month's 61–90-day claim list still unclaimed (for the branch manager)",
           response=PageOf[out.RenewalRowOut])
async def renewal_claim_window(call: Call) -> web.StreamResponse:
    q: ClaimWindowQuery = call.query
    today = _today(call)
    items, found = await renewals.unclaimed_in_window(
        call.actor, q.month or today, branch=q.branch, today=today, limit=q.limit,
        cursor=q.cursor)
    return page_json(call, found, items)


@API.route("POST", "/renewals/claim", role=G, body=renewals.ClaimIn, tag="renewals",
           summary="Claim (认领) policies for yourself, or assign them (managers, admins)",
           response=out.RenewalClaimOut)
async def renewal_claim(call: Call) -> web.StreamResponse:
    claimed = await renewals.claim(call.actor, call.body, now=call.now)
    today = _today(call)
    return json_response({"claimed": [renewals.policy_json(p, today) for p in claimed]})


@API.route("POST", "/renewals/{id}/call", role=G, body=renewals.CallIn, tag="renewals",
           summary="Log a call about a policy's renewal, with its result",
           statuses={201: "logged"}, response=out.TaskOut)
async def renewal_call(call: Call) -> web.StreamResponse:
    task = await renewals.log_call(call.actor, call.int_param("id"), call.body, now=call.now)
    return json_response(tasks.task_json(task), status=201)


@API.route("POST", "/renewals/{id}/outcome", role=G, body=renewals.OutcomeIn, tag="renewals",
           summary="Record how a policy's renewal ended (renewed is recorded by the import)",
           response=out.RenewalPolicyOut)
async def renewal_outcome(call: Call) -> web.StreamResponse:
    policy = await renewals.set_outcome(call.actor, call.int_param("id"), call.body,
                                        now=call.now)
    return json_response(renewals.policy_json(policy, _today(call)))


@API.route("GET", "/renewals/kpis", role=V, tag="renewals",
           summary="Renewal rate by expiry month (12 months), branch, agent, product and "
                   "channel; reach per channel; contacts; lapse reasons; win-backs; call-backs",
           response=out.RenewalKpisOut)
async def renewal_kpis_json(call: Call) -> web.StreamResponse:
    return json_response(await call.request.app[renewal_kpis.REPORTS].get(_today(call)))


@API.route("GET", "/renewals/kpis.csv", role=V, tag="renewals",
           summary="The renewal KPIs as one CSV table (section, key, count, part, rate)",
           produces="text/csv")
async def renewal_kpis_csv(call: Call) -> web.StreamResponse:
    today = _today(call)
    text = renewal_kpis.to_csv(await call.request.app[renewal_kpis.REPORTS].get(today))
    return web.Response(text=text, content_type="text/csv", charset="utf-8", headers={
        "Content-Disposition": f'attachment; filename="renewal-kpis-{today}.csv"'})


def setup(app: web.Application) -> None:
    API.add_to(app.router)
    answer_under(app, API.prefix, json_errors("operator"))
