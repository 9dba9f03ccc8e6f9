"""Broadcast campaigns: create, preview, test send, start, pause, resume, cancel, stats.

Every campaign message goes through the outbox with dedup key ``campaign:{id}:{customer}``,
so the dispatcher applies consent, quiet hours, the weekly cap and rate limits exactly as for
any other message, and nothing can put a second message for one customer into the outbox.

States: ``draft`` → ``scheduled`` (started, send time in the future) → ``sending`` → ``done``;
``paused`` and ``cancelled`` from any live state; ``failed`` when the database refused a
batch (the reason is kept in ``failure``; ``resume`` tries again from the committed cursor).
While a campaign is *sending*, the ``CampaignRunner`` walks the customer id range in batches,
each one ``INSERT … SELECT`` of the audience in that range (see ``runner.py``).

Pause holds the campaign's messages that are still pending by moving their ``not_before`` to
``HOLD_UNTIL`` (year 9999): the dispatcher's contract is untouched (it claims what is due,
and held rows are never due), and nothing new is enqueued while paused. Resume makes held
rows due now and enqueuing carries on from the cursor. Nothing is ever re-sent: rows already
sent keep their status and the dedup key stops a second row. A dispatcher checks the
campaign again before every send (``bot.delivery.campaign_gate``): of the messages it had
already claimed at the moment of the pause, only those on the wire go, the rest are held
like the others. Anything put back in the queue otherwise is held again by the runner once
the lease window has passed.

Cancel turns every pending message of the campaign into ``skipped`` with reason
``cancelled`` and stops enqueuing for good.
"""

from __future__ import annotations

import string
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, cast

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.functions import Max
from tortoise.transactions import in_transaction

from bot.delivery.content import ContentRefused, check_sms, check_telegram, is_cn_number
from bot.delivery.segments import count_segments, sms_encoding
from bot.delivery.sms_signing import signed_sms
from bot.settings import Settings
from bot.texts import Texts
from bot.web.operators import audit
from bot.web.operators.access import Actor
from bot.web.operators.audience import TELEGRAM_LINKED, AudienceFilter, where_clause
from bot.web.operators.errors import Refusal
from bot.web.operators.rows import (
    CampaignJson,
    CampaignStatsJson,
    ChannelSplitJson,
    PreviewJson,
    PreviewSampleJson,
    PreviewWarningJson,
)
from storage.models import Category, Customer, Message, MessageStatus
from storage.operator_models import CAMPAIGN_CANCELLED, HOLD_UNTIL, Campaign, CampaignStatus
from storage.outbox import Outbound, enqueue
from storage.phones import mask_phone
from storage.sql import Params, execute, fetch

CAMPAIGN_KIND = "campaign"
TEST_KIND = "campaign_test"
TEMPLATE_KEY = "campaign"
CANCELLED = CAMPAIGN_CANCELLED  # Message.skip_reason of a cancelled campaign's unsent messages
PLACEHOLDERS = ("name", "company", "hotline")
LIVE = (CampaignStatus.SCHEDULED, CampaignStatus.SENDING)

ChannelPolicyName = Literal["telegram_then_sms", "telegram_only", "sms_only"]


class CampaignError(Refusal):
    """A refusal with a machine code and the HTTP status it maps to."""

    code = "campaign_error"
    status = 409


class CampaignNotFound(CampaignError):
    code = "not_found"
    status = 404


class WrongState(CampaignError):
    code = "invalid_state"


class NoContact(CampaignError):
    code = "no_contact"


# -- request models ------------------------------------------------------------------------


def _check_template(text: str) -> str:
    """A campaign text: not blank, only our placeholders. Errors carry their own type so the
    console can say them in the operator's language."""
    if not text.strip():
        raise PydanticCustomError("empty_text", "must not be empty")
    try:
        fields = [f for _, f, spec, conv in string.Formatter().parse(text) if f is not None
                  and (f not in PLACEHOLDERS or spec or conv)]
    except ValueError:
        raise PydanticCustomError("unbalanced_braces",
                                  "unbalanced braces: write a brace as {{ or }}") from None
    if fields:
        raise PydanticCustomError(
            "unknown_placeholder", "unknown placeholder {{placeholder}}: use {name}, {company} "
            "or {hotline}, or write a brace as {{ or }}", {"placeholder": fields[0]})
    return text


class CampaignTemplates(BaseModel):
    """The message in each language, with optional {name}, {company}, {hotline}."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    zh_CN: str = Field(alias="zh-CN", max_length=2000)
    en: str = Field(max_length=2000)

    _check = field_validator("zh_CN", "en")(_check_template)

    def by_language(self) -> dict[str, str]:
        return {"zh-CN": self.zh_CN, "en": self.en}


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    category: Literal["care", "marketing"]
    channel_policy: ChannelPolicyName = "telegram_then_sms"
    audience: AudienceFilter = Field(default_factory=AudienceFilter)
    templates: CampaignTemplates
    send_at: AwareDatetime | None = None


# -- reading ---------------------------------------------------------------------------------


async def get_campaign(campaign_id: int) -> Campaign:
    campaign = await Campaign.get_or_none(id=campaign_id)
    if campaign is None:
        raise CampaignNotFound(f"no campaign {campaign_id}")
    return campaign


def campaign_json(campaign: Campaign) -> CampaignJson:
    return {
        "id": campaign.id, "name": campaign.name, "status": CampaignStatus(campaign.status).value,
        "category": campaign.category, "channel_policy": campaign.channel_policy,
        "audience": campaign.audience, "templates": campaign.templates,
        "send_at": _iso(campaign.send_at), "started_at": _iso(campaign.started_at),
        "finished_at": _iso(campaign.finished_at), "enqueued": campaign.enqueued,
        "failure": campaign.failure or None, "created_at": campaign.created_at.isoformat(),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def audience_of(campaign: Campaign) -> AudienceFilter:
    return AudienceFilter.model_validate(campaign.audience)


def _default_tier(settings: Settings) -> str:
    return settings.loyalty.tiers[0].code


def care_today(settings: Settings, now: datetime) -> date:
    """The care calendar's day at ``now``: the day an audience's policy conditions are
    about."""
    return now.astimezone(settings.schedule.tz).date()


def check_tiers(audience: AudienceFilter, settings: Settings) -> list[str]:
    """Tier codes the configuration does not know (reported with the field path)."""
    known = {t.code for t in settings.loyalty.tiers}
    return [t for t in audience.tiers if t not in known]


async def audience_count(audience: AudienceFilter, settings: Settings, *,
                         now: datetime) -> int:
    from tortoise import connections

    params = Params()
    clause = where_clause(audience, params, default_tier=_default_tier(settings),
                          today=care_today(settings, now))
    rows = await fetch(connections.get("default"),
                       f"SELECT COUNT(*) AS n FROM customer c WHERE {clause}", params)
    return int(rows[0]["n"])


# -- writing ---------------------------------------------------------------------------------


async def create_campaign(actor: Actor, data: CampaignIn, *, now: datetime) -> Campaign:
    async with in_transaction():
        campaign = await Campaign.create(
            name=data.name.strip(), category=data.category, channel_policy=data.channel_policy,
            audience=data.audience.model_dump(mode="json"),
            templates=data.templates.by_language(), send_at=data.send_at,
            created_by_id=actor.operator.id,
        )
        await audit.record(actor, "campaign.create", "campaign", campaign.id,
                           after=campaign_json(campaign), now=now)
    return campaign


async def _transition(
    actor: Actor, campaign_id: int, action: str, allowed: tuple[CampaignStatus, ...],
    now: datetime,
) -> tuple[Campaign, CampaignJson]:
    campaign = await get_campaign(campaign_id)
    if campaign.status not in allowed:
        raise WrongState(f"cannot {action} a campaign that is {campaign.status}")
    return campaign, campaign_json(campaign)


async def start(actor: Actor, campaign_id: int, *, settings: Settings, texts: Texts,
                now: datetime) -> Campaign:
    """Fix the id range of the audience, keep the preview as it stands now (the campaign's
    page shows what it was sent with, not later data) and hand the campaign to the runner."""
    async with in_transaction():
        campaign, before = await _transition(actor, campaign_id, "start",
                                             (CampaignStatus.DRAFT,), now)
        row = await Customer.all().annotate(top=Max("id")).first().values("top")
        campaign.until_id = int((row or {}).get("top") or 0)
        campaign.cursor_id = 0
        campaign.started_at = now
        campaign.preview = await preview(campaign, settings, texts, now=now)
        due = campaign.send_at is None or campaign.send_at <= now
        campaign.status = CampaignStatus.SENDING if due else CampaignStatus.SCHEDULED
        await campaign.save()
        await audit.record(actor, "campaign.start", "campaign", campaign.id, before=before,
                           after=campaign_json(campaign), now=now)
    return campaign


async def pause(actor: Actor, campaign_id: int, *, now: datetime) -> Campaign:
    async with in_transaction() as conn:
        campaign, before = await _transition(actor, campaign_id, "pause", LIVE, now)
        # Updating the campaign row first waits for a batch being enqueued (it holds the
        # row), so the hold below also covers the rows that batch wrote.
        await Campaign.filter(id=campaign.id).update(status=CampaignStatus.PAUSED, updated_at=now,
                                                     paused_at=now)
        campaign.status, campaign.paused_at = CampaignStatus.PAUSED, now
        await hold_pending(conn, campaign.id)
        await audit.record(actor, "campaign.pause", "campaign", campaign.id, before=before,
                           after=campaign_json(campaign), now=now)
    return campaign


async def resume(actor: Actor, campaign_id: int, *, now: datetime) -> Campaign:
    async with in_transaction() as conn:
        campaign, before = await _transition(actor, campaign_id, "resume",
                                             (CampaignStatus.PAUSED, CampaignStatus.FAILED), now)
        due = campaign.send_at is None or campaign.send_at <= now
        campaign.status = CampaignStatus.SENDING if due else CampaignStatus.SCHEDULED
        campaign.failure = ""
        await campaign.save(update_fields=["status", "failure", "updated_at"])
        await execute(conn, "UPDATE message SET not_before = :now WHERE campaign_id = :campaign "
                      "AND status = :pending AND not_before >= :held",
                      {"now": now, "campaign": campaign.id,
                       "pending": MessageStatus.PENDING.value, "held": HOLD_UNTIL})
        await audit.record(actor, "campaign.resume", "campaign", campaign.id, before=before,
                           after=campaign_json(campaign), now=now)
    return campaign


async def cancel(actor: Actor, campaign_id: int, *, now: datetime) -> Campaign:
    async with in_transaction() as conn:
        campaign, before = await _transition(
            actor, campaign_id, "cancel",
            (CampaignStatus.DRAFT, *LIVE, CampaignStatus.PAUSED, CampaignStatus.FAILED), now)
        await Campaign.filter(id=campaign.id).update(
            status=CampaignStatus.CANCELLED, updated_at=now, finished_at=now)
        campaign.status, campaign.finished_at = CampaignStatus.CANCELLED, now
        await skip_pending(conn, campaign.id, now)
        await audit.record(actor, "campaign.cancel", "campaign", campaign.id, before=before,
                           after=campaign_json(campaign), now=now)
    return campaign


async def hold_pending(conn: BaseDBAsyncClient, campaign_id: int) -> int:
    return await execute(conn, "UPDATE message SET not_before = :held WHERE campaign_id = "
                         ":campaign AND status = :pending AND not_before < :held",
                         {"held": HOLD_UNTIL, "campaign": campaign_id,
                          "pending": MessageStatus.PENDING.value})


async def skip_pending(conn: BaseDBAsyncClient, campaign_id: int, now: datetime) -> int:
    return await execute(conn, "UPDATE message SET status = :skipped, skip_reason = :reason, "
                         "updated_at = :now WHERE campaign_id = :campaign AND status = :pending",
                         {"skipped": MessageStatus.SKIPPED.value, "reason": CANCELLED,
                          "now": now, "campaign": campaign_id,
                          "pending": MessageStatus.PENDING.value})


# -- rendering ---------------------------------------------------------------------------------


def bodies(campaign: Campaign, settings: Settings) -> dict[str, str]:
    """Each language's text with {company} and {hotline} filled in and {name} left for the
    per-customer substitution at enqueue time."""
    company = settings.company
    names = {"zh-CN": company.name_zh, "en": company.name_en}
    return {
        lang: text.format(name="{name}", company=names.get(lang, company.name_zh),
                          hotline=company.hotline)
        for lang, text in dict(campaign.templates).items()
    }


def params_for(campaign: Campaign, settings: Settings, name: str) -> dict[str, Any]:
    return {"body": {lang: body.replace("{name}", name)
                     for lang, body in bodies(campaign, settings).items()}}


def sms_text(texts: Texts, settings: Settings, *, language: str, params: dict[str, Any],
             category: str, to: str) -> str:
    """The SMS to ``to`` exactly as the dispatcher builds it: signature, body, opt-out hint."""
    body = texts.render(TEMPLATE_KEY, language, params, sms=True)
    return signed_sms(settings.sms, body, language=language, to=to,
                      opt_out_hint=category == Category.MARKETING)


# -- preview -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    customer_id: int
    name: str
    phone: str  # masked
    language: str
    channel: str
    text: str
    segments: int
    refused: str  # content check that would refuse it, or ""


async def _split(campaign: Campaign, settings: Settings,
                 now: datetime) -> list[dict[str, Any]]:
    from tortoise import connections

    params = Params(cn="+86%")
    clause = where_clause(audience_of(campaign), params, default_tier=_default_tier(settings),
                          today=care_today(settings, now))
    sql = (f"SELECT c.language AS language, {TELEGRAM_LINKED} AS tg, "
           "(c.phone_invalid_at IS NULL) AS phone_ok, "
           "(c.phone LIKE :cn) AS cn, COUNT(*) AS n "
           f"FROM customer c WHERE {clause} GROUP BY 1, 2, 3, 4")
    return await fetch(connections.get("default"), sql, params)


def _channel(policy: str, *, tg: bool, phone_ok: bool, telegram: bool,
             sms: bool) -> Literal["telegram", "sms", "none"]:
    if policy in ("telegram_then_sms", "telegram_only") and tg and telegram:
        return "telegram"
    if policy in ("telegram_then_sms", "sms_only") and sms:
        return "sms" if phone_ok else "none"
    return "none"


async def preview(campaign: Campaign, settings: Settings, texts: Texts, *,
                  now: datetime) -> PreviewJson:
    """Audience size, per-channel split, SMS segments and cost, three rendered samples and
    warnings — before consent, quiet hours and the weekly cap, which apply at dispatch.

    A draft's preview is worked out now; a started campaign's is the one kept when it started
    (``as_of`` says when), so a finished campaign still shows what it went out with."""
    if campaign.status != CampaignStatus.DRAFT and campaign.preview:
        return cast(PreviewJson, dict(campaign.preview))  # kept as it was answered
    return await _preview_now(campaign, settings, texts, now)


async def _preview_now(campaign: Campaign, settings: Settings, texts: Texts,
                       now: datetime) -> PreviewJson:
    telegram_on, sms_on = settings.telegram.enabled, settings.twilio.enabled
    channels: ChannelSplitJson = {"telegram": 0, "sms": 0, "none": 0}
    sms_by_language: dict[str, int] = {}
    sms_cn = 0
    for row in await _split(campaign, settings, now):
        n = int(row["n"])
        channel = _channel(campaign.channel_policy, tg=bool(row["tg"]),
                           phone_ok=bool(row["phone_ok"]), telegram=telegram_on, sms=sms_on)
        channels[channel] += n
        if channel == "sms":
            language = str(row["language"])
            sms_by_language[language] = sms_by_language.get(language, 0) + n
            if row["cn"]:
                sms_cn += n
    samples = await _samples(campaign, settings, texts, telegram_on=telegram_on, sms_on=sms_on,
                             now=now)
    segments_per_language: dict[str, int] = {}
    encodings: dict[str, str] = {}
    for language in ("zh-CN", "en"):
        longest = max((s for s in samples if s.language == language and s.channel == "sms"),
                      key=lambda s: s.segments, default=None)
        # No sample in this language: as sent outside the mainland (marketing to +86
        # numbers is never sent at all).
        text = longest.text if longest else sms_text(
            texts, settings, language=language, params=params_for(campaign, settings, "XX"),
            category=campaign.category, to="")
        segments_per_language[language] = count_segments(text)
        encodings[language] = sms_encoding(text)
    segments = sum(segments_per_language.get(lang, 1) * n for lang, n in sms_by_language.items())
    price = settings.operator.sms_price_per_segment
    warnings: list[PreviewWarningJson] = []
    if campaign.category == Category.MARKETING and sms_cn:
        warnings.append({"code": "marketing_sms_cn", "count": sms_cn})
    if sms_cn and any(s.refused == "url_in_sms_cn" for s in samples):
        warnings.append({"code": "url_in_sms_cn", "count": sms_cn})
    for lang, body in bodies(campaign, settings).items():
        try:
            check_telegram(texts.render(TEMPLATE_KEY, lang, {"body": body}))
        except ContentRefused as exc:
            warnings.append({"code": exc.reason, "language": lang})
    prefixes = settings.delivery.marketing_requires_consent_prefixes
    if campaign.category == Category.MARKETING and prefixes:
        warnings.append({"code": "marketing_needs_consent", "prefixes": prefixes})
    return {
        "audience": channels["telegram"] + channels["sms"] + channels["none"],
        "channels": channels,
        "sms": {
            "recipients": channels["sms"], "by_language": sms_by_language,
            "segments_per_message": segments_per_language, "encoding": encodings,
            "segments": segments, "price_per_segment": price,
            "currency": settings.operator.sms_currency,
            "estimated_cost": round(segments * price, 2),
            "cn_recipients": sms_cn,
        },
        "samples": [_sample_json(s) for s in samples],
        "warnings": warnings,
        "as_of": now.isoformat(),
    }


def _sample_json(sample: Sample) -> PreviewSampleJson:
    return {"customer_id": sample.customer_id, "name": sample.name, "phone": sample.phone,
            "language": sample.language, "channel": sample.channel, "text": sample.text,
            "segments": sample.segments, "refused": sample.refused}


async def _samples(campaign: Campaign, settings: Settings, texts: Texts, *, telegram_on: bool,
                   sms_on: bool, now: datetime, limit: int = 3) -> list[Sample]:
    from tortoise import connections

    values = Params(limit=limit)
    clause = where_clause(audience_of(campaign), values, default_tier=_default_tier(settings),
                          today=care_today(settings, now))
    rows = await fetch(connections.get("default"), f"SELECT c.id, c.name, c.phone, c.language, "
                       f"(c.phone_invalid_at IS NULL) AS phone_ok, {TELEGRAM_LINKED} AS tg "
                       f"FROM customer c WHERE {clause} ORDER BY c.id LIMIT :limit", values)
    out: list[Sample] = []
    for row in rows:
        language = str(row["language"])
        params = params_for(campaign, settings, str(row["name"]))
        channel = _channel(campaign.channel_policy, tg=bool(row["tg"]),
                           phone_ok=bool(row["phone_ok"]), telegram=telegram_on, sms=sms_on)
        refused = ""
        if channel == "sms":
            text = sms_text(texts, settings, language=language, params=params,
                            category=campaign.category, to=str(row["phone"]))
            try:
                check_sms(str(row["phone"]), text, category=campaign.category)
            except ContentRefused as exc:
                refused = exc.reason
            segments = count_segments(text)
        else:
            text = texts.render(TEMPLATE_KEY, language, params)
            segments = 0
        out.append(Sample(int(row["id"]), str(row["name"]), mask_phone(str(row["phone"])),
                          language, channel, text, segments, refused))
    return out


# -- test send -----------------------------------------------------------------------------


async def test_send(actor: Actor, campaign_id: int, *, settings: Settings,
                    now: datetime) -> Message:
    """Queue the campaign's message for the operator's own contact, through the outbox.

    Sent as a service message (no consent, quiet hours or cap: it goes to staff who asked for
    it), with the campaign's channel policy and no campaign id, so it never counts in stats.
    """
    campaign = await get_campaign(campaign_id)
    contact_id = actor.operator.contact_id
    if contact_id is None:
        raise NoContact("this operator has no contact for test sends")
    contact = await Customer.get(id=contact_id)
    message, _ = await enqueue(Outbound(
        dedup_key=f"campaign-test:{campaign.id}:{actor.operator.id}:{uuid.uuid4().hex[:12]}",
        kind=TEST_KIND, category=Category.SERVICE, customer_id=contact.id,
        template_key=TEMPLATE_KEY, not_before=now,
        params=params_for(campaign, settings, contact.name),
        channel_policy=campaign.channel_policy,  # type: ignore[arg-type]
    ))
    await audit.record(actor, "campaign.test_send", "campaign", campaign.id,
                       after={"message_id": message.id, "customer_id": contact.id}, now=now)
    return message


# -- stats and failures ------------------------------------------------------------------------


async def stats(campaign: Campaign) -> CampaignStatsJson:
    from tortoise import connections

    conn = connections.get("default")
    rows = await fetch(conn, "SELECT status, skip_reason, channel, COUNT(*) AS n FROM message "
                       "WHERE campaign_id = :campaign GROUP BY status, skip_reason, channel",
                       {"campaign": campaign.id})
    by_status = {s.value: 0 for s in MessageStatus}
    skipped: dict[str, int] = {}
    channels: dict[str, int] = {}
    for row in rows:
        n = int(row["n"])
        status = str(row["status"])
        by_status[status] = by_status.get(status, 0) + n
        if status == MessageStatus.SKIPPED:
            reason = str(row["skip_reason"] or "unknown")
            skipped[reason] = skipped.get(reason, 0) + n
        if row["channel"]:
            channels[str(row["channel"])] = channels.get(str(row["channel"]), 0) + n
    held = await Message.filter(campaign_id=campaign.id, status=MessageStatus.PENDING,
                                not_before__gte=HOLD_UNTIL).count()
    total = sum(by_status.values())
    finished = total - by_status["pending"] - by_status["claimed"]
    span = campaign.until_id or 0
    enqueue_progress = 1.0 if span == 0 else min(1.0, campaign.cursor_id / span)
    if campaign.status == CampaignStatus.DRAFT:
        enqueue_progress = 0.0
    return {
        "campaign": campaign.id,
        "status": CampaignStatus(campaign.status).value,
        "enqueued": total,
        # waiting + held + the finished statuses add up to enqueued: no message twice
        "queued": by_status["pending"] + by_status["claimed"] - held,
        "held": held,
        "in_flight_at_pause": await _in_flight_at_pause(campaign),
        "sent": by_status["sent"],
        "delivered": by_status["delivered"],
        "failed": by_status["failed"] + by_status["undelivered"],
        "unknown": by_status["unknown"],
        "skipped": by_status["skipped"],
        "skipped_by_reason": skipped,
        "by_status": by_status,
        "by_channel": channels,
        "enqueue_progress": round(enqueue_progress, 4),
        "delivery_progress": round(finished / total, 4) if total else 0.0,
    }


async def _in_flight_at_pause(campaign: Campaign) -> int | None:
    """While paused: messages that went out after the pause was committed — those already
    on the wire then (the dispatcher checks the campaign before every send)."""
    if campaign.status != CampaignStatus.PAUSED or campaign.paused_at is None:
        return None
    return await Message.filter(campaign_id=campaign.id,
                                sent_at__gt=campaign.paused_at).count()


FAILURE_STATUSES = (MessageStatus.FAILED, MessageStatus.UNDELIVERED, MessageStatus.SKIPPED,
                    MessageStatus.UNKNOWN)
FAILURE_COLUMNS = ("message_id", "customer_id", "phone", "channel", "status", "reason",
                   "error", "attempts", "updated_at")


async def failures(campaign_id: int, *, batch: int = 1000) -> AsyncIterator[list[str]]:
    """The campaign's failed, undelivered, skipped and unknown messages, by keyset pages."""
    last = 0
    while True:
        rows = await Message.filter(
            campaign_id=campaign_id, status__in=list(FAILURE_STATUSES), id__gt=last,
        ).order_by("id").limit(batch).values(
            "id", "customer_id", "customer__phone", "channel", "status", "skip_reason",
            "last_error", "attempts", "updated_at")
        if not rows:
            return
        for row in rows:
            yield [str(row["id"]), str(row["customer_id"]), mask_phone(row["customer__phone"]),
                   str(row["channel"] or ""), str(row["status"]), row["skip_reason"] or "",
                   (row["last_error"] or "").replace("\n", " ")[:300], str(row["attempts"]),
                   row["updated_at"].isoformat()]
        last = int(rows[-1]["id"])


__all__ = [
    "CAMPAIGN_KIND", "HOLD_UNTIL", "CampaignError", "CampaignIn", "CampaignNotFound",
    "NoContact", "WrongState", "audience_count", "cancel", "create_campaign", "failures",
    "is_cn_number", "pause", "preview", "resume", "start", "stats", "test_send",
]
