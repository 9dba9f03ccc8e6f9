"""The operator console: server-rendered pages (aiohttp-jinja2) in zh-CN and en.

Log-in exchanges an operator token for a session cookie (HttpOnly, SameSite=Strict, Secure
when the public URL is https). Every form carries the session's CSRF token and every POST
checks it; every page checks the role its actions need, exactly like the API (the pages call
the same services). Strings come from ``bot/texts/console.toml`` through ``Texts``: one key
per string, both languages side by side, declared parameters.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
from aiohttp import web
from multidict import MultiDict
from pydantic import BaseModel, ValidationError
from yarl import URL

from bot.telegram.claim_documents import kind_of
from bot.texts import LANGUAGES, Texts
from bot.web import charts
from bot.web.bodies import read_form
from bot.web.errors import (
    CsrfRefused,
    Forbidden,
    Refused,
    RequestRefused,
    Unauthorized,
    answer_under,
)
from bot.web.keys import CAMPAIGN_RUNNER, SETTINGS, TEXTS
from bot.web.operators import (
    accident_reports,
    campaigns,
    catalogue,
    claims,
    customers,
    dashboard,
    imports,
    paging,
    privacy,
    regions,
    renewal_kpis,
    renewals,
    reviews,
    shared_phones,
    tasks,
)
from bot.web.operators.access import (
    Actor,
    authenticate_token,
    close_session,
    open_session,
    same_secret,
    session_actor,
)
from bot.web.operators.api import read_upload
from bot.web.operators.errors import Refusal
from bot.web.operators.http import SESSION_COOKIE, field_path, now_of, validation_details
from bot.web.operators.paging import Page
from loyalty.config import REWARD_KINDS
from loyalty.rewards import offers_for
from storage.accident_models import CoreDelivery, CoreDeliveryStatus
from storage.loyalty_models import Reward
from storage.models import Claim, ClaimEvent, ClaimStatus, Document, Language, Product, TaskStatus
from storage.operator_models import Campaign, CampaignStatus, Role
from storage.privacy import erasure_blockers
from storage.privacy_models import Erasure
from storage.renewal_desk import CallResult, Reason

log = logging.getLogger(__name__)

PREFIX = "/console"
LANG_COOKIE = "engage_lang"
LOGIN_CSRF_COOKIE = "engage_login_csrf"
STATIC_ROUTE = "console_static"

PageHandler = Callable[[web.Request, Actor], Awaitable[web.StreamResponse]]
PAGE_SIZE = 50
ACTOR = web.RequestKey("console_actor", Actor)
"""The signed-in operator, once known: the error page speaks their language."""
Model = TypeVar("Model", bound=BaseModel)


# -- language and strings ---------------------------------------------------------------------


def language_of(request: web.Request, actor: Actor | None = None) -> str:
    wanted = request.query.get("lang") or request.cookies.get(LANG_COOKIE)
    if wanted in LANGUAGES:
        return str(wanted)
    if actor is not None and actor.operator.language in LANGUAGES:
        return actor.operator.language
    return request.app[SETTINGS].operator.default_language


class Strings:
    """``t("key", **params)`` for templates: ``console_<key>`` in the operator's language, or
    ``<key>`` itself for texts customers see too (claim status names)."""

    def __init__(self, texts: Texts, language: str) -> None:
        self._texts = texts
        self.language = language

    def _key(self, key: str) -> str:
        console = f"console_{key}"
        return console if console in self._texts else key

    def __call__(self, key: str, **params: Any) -> str:
        return self._texts.render(self._key(key), self.language, params)

    def has(self, key: str) -> bool:
        return self._key(key) in self._texts

    def labels(self, group: str) -> dict[str, str]:
        """Every code of ``group`` that has its word, with the word (for the page's script)."""
        prefix = f"console_{group}_"
        return {key.removeprefix(prefix): self._texts.render(key, self.language, {})
                for key in self._texts if key.startswith(prefix)}

    def label(self, group: str, code: Any) -> str:
        """The operator's word for a stored code (a status, a kind, a reason): ``<group>_<code>``
        in the catalogue; a code without one reads "other (code)" rather than passing as a
        word. Every code the system writes has its word (a test walks the pages for this)."""
        text = str(code.value if hasattr(code, "value") else code or "")
        if not text:
            return self("none_value")
        key = f"{group}_{text.replace('-', '_').replace('*', 'all')}"
        return self(key) if self.has(key) else self("other_value", code=text)


_FORM_ERRORS = {
    "missing": "form_missing", "string_too_short": "form_too_short",
    "string_too_long": "form_too_long", "empty_text": "form_empty_text",
    "unknown_placeholder": "form_unknown_placeholder",
    "unbalanced_braces": "form_unbalanced_braces", "date_order": "form_date_order",
    "literal_error": "form_choice", "enum": "form_choice",
    "datetime_parsing": "form_bad_datetime", "datetime_from_date_parsing": "form_bad_datetime",
    "timezone_aware": "form_bad_datetime", "date_parsing": "form_bad_date",
    "date_from_datetime_parsing": "form_bad_date",
}


def form_errors(exc: ValidationError, strings: Strings) -> dict[str, str]:
    """Each invalid field's path and what is wrong with it, in the operator's language."""
    errors: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        key = _FORM_ERRORS.get(err["type"], "form_invalid")
        ctx = err.get("ctx") or {}
        params = {"max": ctx.get("max_length", "")} if key == "form_too_long" else {}
        if key == "form_unknown_placeholder":
            params = {"placeholder": ctx.get("placeholder", "")}
        errors.setdefault(field_path(err["loc"]), strings(key, **params))
    return errors


def _cookie_secure(request: web.Request) -> bool:
    return request.app[SETTINGS].web.public_base_url.startswith("https://")


def _set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str,
                *, max_age: int | None = None, http_only: bool = True) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=http_only,
                        samesite="Strict", secure=_cookie_secure(request))


def _format_time(moment: datetime | str | None, timezone: str) -> str:
    if moment is None or moment == "":
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def render(request: web.Request, template: str, actor: Actor | None, http_status: int = 200,
           **context: Any) -> web.Response:
    strings = Strings(request.app[TEXTS], language_of(request, actor))
    settings = request.app[SETTINGS]
    tz = settings.schedule.timezone
    base = {
        "t": strings, "lang": strings.language, "actor": actor, "path": request.path,
        "csrf": actor.csrf_token if actor else "", "company": settings.company,
        "when": lambda m: _format_time(m, tz), "timezone": tz,
        "may": (lambda role: actor is not None and actor.may(Role(role))),
        "static": _static_url(request),
        "ok": request.query.get("ok", ""), "err": request.query.get("err", ""),
        "err_field": request.query.get("field", ""), "lang_url": _lang_url(request),
        "document_name": _document_name,
    }
    response = aiohttp_jinja2.render_template(template, request, {**base, **context},
                                              status=http_status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'")
    if "lang" in request.query and request.query["lang"] in LANGUAGES:
        _set_cookie(request, response, LANG_COOKIE, request.query["lang"],
                    max_age=365 * 86400, http_only=False)
    return response


def _document_name(original: str) -> tuple[str, str]:
    """A document's kind (recorded as a prefix, ``photos:IMG_1.jpg``) and its file name."""
    kind = kind_of(original or "")
    return (kind, original.partition(":")[2]) if kind else ("", original or "")


def _static_url(request: web.Request) -> Callable[[str], str]:
    def url(name: str) -> str:
        return str(request.app.router[STATIC_ROUTE].url_for(filename=name))
    return url


def _lang_url(request: web.Request) -> Callable[[str], str]:
    def url(lang: str) -> str:
        query = {k: v for k, v in request.query.items() if k not in ("lang", "ok", "err",
                                                                     "field")}
        query["lang"] = lang
        return f"{request.path}?{urlencode(query)}"
    return url


def redirect(url: str) -> web.Response:
    """A 303 to ``url`` (returned, not raised, so cookies can be set on it)."""
    return web.Response(status=303, headers={"Location": url})


def _back(path: str, **query: str) -> web.Response:
    return redirect(f"{path}?{urlencode(query)}" if query else path)


# -- access -----------------------------------------------------------------------------------


def page(role: Role) -> Callable[[PageHandler],
                                 Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """Require a console session with ``role``; POSTs must carry the session's CSRF token.
    What is refused is raised and answered by ``refused``."""

    def decorate(handler: PageHandler) -> Callable[[web.Request],
                                                   Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            actor = await session_actor(request.cookies.get(SESSION_COOKIE, ""),
                                        now=now_of(request))
            if actor is None:
                if request.method != "GET":
                    raise Unauthorized()
                return redirect(f"{PREFIX}/login?next={quote(request.path_qs)}")
            request[ACTOR] = actor
            if request.method == "POST":
                form = await read_form(request)
                if not same_secret(str(form.get("csrf_token", "")), actor.csrf_token):
                    raise CsrfRefused()
            if not actor.may(role):
                raise Forbidden()
            return await handler(request, actor)

        handle.__name__ = handler.__name__
        return handle

    return decorate


async def refused(request: web.Request, refusal: Refused) -> web.StreamResponse:
    """The console's answer to a refusal, said by its code in the operator's language (the
    English detail is for logs): a refused form or action goes back to its page with ``err``;
    a refused request (not signed in, CSRF, role, unreadable body) or page gets the error
    page with the refusal's status."""
    actor = request.get(ACTOR)
    if isinstance(refusal, FormInvalid):
        return _back(refusal.back, err=refusal.code,
                     **({"field": refusal.field} if refusal.field else {}))
    if request.method == "POST" and not isinstance(refusal, RequestRefused):
        log.info("console %s %s refused: %s", request.method, request.path, refusal)
        referer = request.headers.get("Referer", "")
        return _back(URL(referer).path if referer else request.path, err=refusal.code)
    return render(request, "error.html", actor, http_status=refusal.status, code=refusal.code)


class FormInvalid(Refusal):
    """A console form that does not validate: back to the form's page (``back``) with the
    form's error code and the first field in the way."""

    status = 422

    def __init__(self, code: str, *, back: str, field: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.back = back
        self.field = field


def validated(model: type[Model], data: Mapping[str, Any], *, err: str, back: str) -> Model:
    """The form's values as ``model``, or ``FormInvalid(err)`` naming the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise FormInvalid(err, back=back, field=validation_details(exc)[0]["path"]) from None


async def login_form(request: web.Request) -> web.StreamResponse:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", None, login_csrf=token,
                      next=request.query.get("next", PREFIX + "/"), failed=False)
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


async def login(request: web.Request) -> web.StreamResponse:
    form = await read_form(request)  # not UTF-8 (no browser sends one): 400, nothing done
    if not same_secret(str(form.get("csrf_token", "")), request.cookies.get(LOGIN_CSRF_COOKIE,
                                                                            "")):
        raise CsrfRefused()
    operator = await authenticate_token(str(form.get("token", "")).strip())
    next_url = str(form.get("next", "")) or PREFIX + "/"
    if not next_url.startswith(PREFIX) or next_url.startswith("//"):
        next_url = PREFIX + "/"
    if operator is None:
        token = secrets.token_urlsafe(24)
        response = render(request, "login.html", None, http_status=401, login_csrf=token,
                          next=next_url, failed=True)
        _set_cookie(request, response, LOGIN_CSRF_COOKIE, token, max_age=3600)
        return response
    settings = request.app[SETTINGS]
    secret, _ = await open_session(operator, now=now_of(request),
                                   hours=settings.operator.session_hours)
    log.info("operator %d logged in to the console", operator.id)
    response = redirect(next_url)
    _set_cookie(request, response, SESSION_COOKIE, secret,
                max_age=settings.operator.session_hours * 3600)
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@page(Role.VIEWER)
async def logout(request: web.Request, actor: Actor) -> web.StreamResponse:
    await close_session(request.cookies.get(SESSION_COOKIE, ""))
    response = redirect(f"{PREFIX}/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


# -- dashboard ---------------------------------------------------------------------------------


@page(Role.VIEWER)
async def dashboard_page(request: web.Request, actor: Actor) -> web.StreamResponse:
    data = await dashboard.summary(now_of(request), request.app[SETTINGS].schedule.timezone)
    return render(request, "dashboard.html", actor, data=data)


# -- campaigns ---------------------------------------------------------------------------------


def _pager(request: web.Request, found: Page[Any]) -> dict[str, Any]:
    """What a list page shows under its table: "51–100 of 308", a link to the next page and
    one back to the first. ``from`` only numbers the rows shown; the cursor picks them."""
    text = request.query.get("from", "1")
    first = int(text) if text.isdigit() and int(text) > 0 else 1
    shown = len(found.rows)
    rest = {k: v for k, v in request.query.items() if k not in ("cursor", "from", "ok", "err",
                                                                "field")}
    following = (str(request.rel_url.with_query({**rest, "cursor": found.cursor,
                                                 "from": str(first + shown)}))
                 if found.cursor else None)
    restart = str(request.rel_url.with_query(rest)) if "cursor" in request.query else None
    last = first + shown - 1
    total = f"{max(found.total, last)}+" if found.capped else found.total
    return {"total": total, "first": first if shown else 0, "last": last,
            "next": following, "restart": restart}


def _cursor(request: web.Request) -> str:
    return request.query.get("cursor", "")[:300]


@page(Role.VIEWER)
async def campaigns_page(request: web.Request, actor: Actor) -> web.StreamResponse:
    found = await paging.page(Campaign.all(), ("-id",), limit=PAGE_SIZE,
                              cursor=_cursor(request))
    return render(request, "campaigns.html", actor, campaigns=found.rows,
                  pager=_pager(request, found))


def _campaign_form_context(request: web.Request) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    return {"tiers": settings.loyalty.tiers, "products": list(Product),
            "languages": list(Language)}


@page(Role.ADMIN)
async def campaign_new(request: web.Request, actor: Actor) -> web.StreamResponse:
    return render(request, "campaign_new.html", actor, form=MultiDict(), errors={},
                  **_campaign_form_context(request))


def _campaign_data(form: Any, timezone: str) -> dict[str, Any]:
    audience: dict[str, Any] = {
        "tiers": form.getall("tiers", []), "products": form.getall("products", []),
        "languages": form.getall("languages", []),
        "regions": [r.strip() for r in str(form.get("regions", "")).split(",") if r.strip()],
    }
    for key in ("expiring_from", "expiring_to"):
        if form.get(key):
            audience[key] = form.get(key)
    telegram = form.get("has_telegram", "")
    if telegram in ("yes", "no"):
        audience["has_telegram"] = telegram == "yes"
    data: dict[str, Any] = {
        "name": form.get("name", ""), "category": form.get("category", ""),
        "channel_policy": form.get("channel_policy", "telegram_then_sms"),
        "audience": audience,
        "templates": {"zh-CN": form.get("template_zh", ""), "en": form.get("template_en", "")},
    }
    if form.get("send_at"):
        try:
            local = datetime.fromisoformat(str(form.get("send_at")))
            data["send_at"] = local.replace(tzinfo=ZoneInfo(timezone)).isoformat()
        except ValueError:
            data["send_at"] = str(form.get("send_at"))
    return data


@page(Role.ADMIN)
async def campaign_create(request: web.Request, actor: Actor) -> web.StreamResponse:
    form = await read_form(request)
    settings = request.app[SETTINGS]
    data = _campaign_data(form, settings.schedule.timezone)
    strings = Strings(request.app[TEXTS], language_of(request, actor))
    errors: dict[str, str] = {}
    try:
        parsed = campaigns.CampaignIn.model_validate(data)
    except ValidationError as exc:
        errors = form_errors(exc, strings)
    else:
        if unknown := campaigns.check_tiers(parsed.audience, settings):
            errors["audience.tiers"] = strings("form_unknown_tier", tier=unknown[0])
    if errors:
        return render(request, "campaign_new.html", actor, http_status=422, form=form,
                      errors=errors, **_campaign_form_context(request))
    campaign = await campaigns.create_campaign(actor, parsed, now=now_of(request))
    return _back(f"{PREFIX}/campaigns/{campaign.id}", ok="campaign_created")


@page(Role.VIEWER)
async def campaign_page(request: web.Request, actor: Actor) -> web.StreamResponse:
    campaign = await campaigns.get_campaign(_int(request, "id"))
    settings = request.app[SETTINGS]
    preview = await campaigns.preview(campaign, settings, request.app[TEXTS],
                                      now=now_of(request))
    stats = await campaigns.stats(campaign)
    strings = Strings(request.app[TEXTS], language_of(request, actor))
    return render(request, "campaign.html", actor, campaign=campaign, preview=preview,
                  stats=stats, reason_labels=strings.labels("reason"),
                  live=campaign.status in (CampaignStatus.SCHEDULED, CampaignStatus.SENDING,
                                           CampaignStatus.PAUSED))


@page(Role.ADMIN)
async def campaign_test(request: web.Request, actor: Actor) -> web.StreamResponse:
    campaign_id = _int(request, "id")
    await campaigns.test_send(actor, campaign_id, settings=request.app[SETTINGS],
                              now=now_of(request))
    return _back(f"{PREFIX}/campaigns/{campaign_id}", ok="campaign_test")


@page(Role.ADMIN)
async def campaign_start(request: web.Request, actor: Actor) -> web.StreamResponse:
    return _moved(request, "start", await campaigns.start(
        actor, _int(request, "id"), settings=request.app[SETTINGS], texts=request.app[TEXTS],
        now=now_of(request)))


@page(Role.ADMIN)
async def campaign_pause(request: web.Request, actor: Actor) -> web.StreamResponse:
    return _moved(request, "pause",
                  await campaigns.pause(actor, _int(request, "id"), now=now_of(request)))


@page(Role.ADMIN)
async def campaign_resume(request: web.Request, actor: Actor) -> web.StreamResponse:
    return _moved(request, "resume",
                  await campaigns.resume(actor, _int(request, "id"), now=now_of(request)))


@page(Role.ADMIN)
async def campaign_cancel(request: web.Request, actor: Actor) -> web.StreamResponse:
    return _moved(request, "cancel",
                  await campaigns.cancel(actor, _int(request, "id"), now=now_of(request)))


def _moved(request: web.Request, action: str, campaign: Campaign) -> web.Response:
    """After a start, pause, resume or cancel: wake the runner, back to the campaign."""
    runner = request.app.get(CAMPAIGN_RUNNER)
    if runner is not None:
        runner.wake(campaign.id)
    return _back(f"{PREFIX}/campaigns/{campaign.id}", ok=f"campaign_{action}")


# -- claims and documents ----------------------------------------------------------------------


@page(Role.VIEWER)
async def claims_page(request: web.Request, actor: Actor) -> web.StreamResponse:
    status = request.query.get("status", "")
    q = request.query.get("q", "").strip()[:40]
    found = await claims.list_claims(
        status=ClaimStatus(status) if status in {s.value for s in ClaimStatus} else None, q=q,
        default_region=request.app[SETTINGS].company.default_phone_region, limit=PAGE_SIZE,
        cursor=_cursor(request))
    pending = {row["claim_id"] for row in await Document.filter(
        claim_id__in=[c.id for c in found.rows], status="received").values("claim_id")}
    return render(request, "claims.html", actor, claims=found.rows, statuses=list(ClaimStatus),
                  status=status, q=q, pending=pending, pager=_pager(request, found))


@page(Role.VIEWER)
async def claim_page(request: web.Request, actor: Actor) -> web.StreamResponse:
    claim = await claims.get_claim(request.match_info["number"])
    events = await ClaimEvent.filter(claim_id=claim.id).order_by("occurred_at", "id")
    documents = await Document.filter(claim_id=claim.id).order_by("id")
    delivery = await CoreDelivery.get_or_none(claim_id=claim.id)
    return render(request, "claim.html", actor, claim=claim, events=events, documents=documents,
                  delivery=delivery)


@page(Role.AGENT)
async def document_review(request: web.Request, actor: Actor) -> web.StreamResponse:
    form = await read_form(request)
    document = await reviews.get_document(_int(request, "id"))
    claim = await Claim.get_or_none(id=document.claim_id) if document.claim_id else None
    target = f"{PREFIX}/claims/{claim.number}" if claim else f"{PREFIX}/claims"
    data = validated(reviews.ReviewIn, {"decision": form.get("decision", ""),
                                        "reason": form.get("reason", "")},
                     err="invalid_review", back=target)
    await reviews.review(actor, document.id, data, now=now_of(request))
    return _back(target, ok=f"document_{data.decision}")


# -- customers and rewards ---------------------------------------------------------------------


@page(Role.VIEWER)
async def customers_page(request: web.Request, actor: Actor) -> web.StreamResponse:
    q = request.query.get("q", "").strip()[:40]
    found = await customers.search(
        q, default_region=request.app[SETTINGS].company.default_phone_region, limit=PAGE_SIZE,
        cursor=_cursor(request))
    return render(request, "customers.html", actor, q=q,
                  found=[customers.customer_row(c) for c in found.rows],
                  pager=_pager(request, found))


@page(Role.VIEWER)
async def customer_page(request: web.Request, actor: Actor) -> web.StreamResponse:
    data = await customers.profile(_int(request, "id"))
    zh = language_of(request, actor) == "zh-CN"
    tier_names = {tier.code: tier.name_zh if zh else tier.name_en
                  for tier in request.app[SETTINGS].loyalty.tiers}
    offers = []
    if actor.may(Role.AGENT):
        found = await offers_for(data["customer"]["id"], now=now_of(request),
                                 settings=request.app[SETTINGS].loyalty)
        offers = [o for o in found if o.blocked is None]
    erased = blockers = None
    if actor.may(Role.ADMIN):
        erased = await Erasure.get_or_none(customer_id=data["customer"]["id"])
        blockers = await erasure_blockers(data["customer"]["id"])
    return render(request, "customer.html", actor, data=data, tier_names=tier_names,
                  request_key=secrets.token_hex(8), offers=offers, zh=zh, erased=erased,
                  blockers=blockers)


@page(Role.ADMIN)
async def customer_points(request: web.Request, actor: Actor) -> web.StreamResponse:
    form = await read_form(request)
    customer_id = _int(request, "id")
    data = validated(catalogue.AdjustIn, {
        "points": form.get("points", ""), "reason": form.get("reason", ""),
        "request_key": form.get("request_key", "")},
        err="invalid_adjustment", back=f"{PREFIX}/customers/{customer_id}")
    await catalogue.adjust(actor, customer_id, data, now=now_of(request),
                           settings=request.app[SETTINGS].loyalty)
    return _back(f"{PREFIX}/customers/{customer_id}", ok="points_adjusted")


@page(Role.AGENT)
async def customer_redeem(request: web.Request, actor: Actor) -> web.StreamResponse:
    """A redemption for a customer on the phone: ``offer`` is ``<reward code>:<1 if free>``."""
    form = await read_form(request)
    customer_id = _int(request, "id")
    code, _, free = str(form.get("offer", "")).partition(":")
    data = validated(catalogue.RedeemIn, {
        "reward_code": code, "free": free == "1", "request_key": form.get("request_key", "")},
        err="invalid_request", back=f"{PREFIX}/customers/{customer_id}")
    await catalogue.redeem_for(actor, customer_id, data, now=now_of(request),
                               settings=request.app[SETTINGS].loyalty)
    return _back(f"{PREFIX}/customers/{customer_id}", ok="voucher_redeemed")


@page(Role.ADMIN)
async def customer_erase(request: web.Request, actor: Actor) -> web.StreamResponse:
    """Erasure from the customer page: the admin types the customer's id to confirm."""
    form = await read_form(request)
    customer_id = _int(request, "id")
    if str(form.get("confirm", "")).strip() != str(customer_id):
        raise FormInvalid("erase_unconfirmed", back=f"{PREFIX}/customers/{customer_id}")
    await privacy.erase(actor, customer_id, now=now_of(request),
                        uploads=Path(request.app[SETTINGS].uploads.directory))
    return _back(f"{PREFIX}/customers/{customer_id}", ok="customer_erased")


@page(Role.VIEWER)
async def rewards_page(request: web.Request, actor: Actor) -> web.StreamResponse:
    rows = await Reward.all().order_by("retired_at", "id")
    return render(request, "rewards.html", actor, rewards=rows, kinds=REWARD_KINDS,
                  tiers=request.app[SETTINGS].loyalty.tiers)


def _optional_int(value: Any) -> int | None:
    text = str(value or "").strip()
    return int(text) if text.lstrip("-").isdigit() else None


@page(Role.ADMIN)
async def reward_create(request: web.Request, actor: Actor) -> web.StreamResponse:
    form = await read_form(request)
    data = validated(catalogue.RewardIn, {
        "code": form.get("code", ""), "kind": form.get("kind", ""),
        "name_zh": form.get("name_zh", ""), "name_en": form.get("name_en", ""),
        "points_cost": form.get("points_cost", ""), "min_tier": form.get("min_tier") or None,
        "stock": _optional_int(form.get("stock"))}, err="invalid_reward", back=f"{PREFIX}/rewards")
    await catalogue.create_reward(actor, data, now=now_of(request),
                                  settings=request.app[SETTINGS].loyalty)
    return _back(f"{PREFIX}/rewards", ok="reward_created")


@page(Role.ADMIN)
async def reward_update(request: web.Request, actor: Actor) -> web.StreamResponse:
    form = await read_form(request)
    code = request.match_info["code"]
    if form.get("action") == "retire":
        await catalogue.retire_reward(actor, code, now=now_of(request))
        return _back(f"{PREFIX}/rewards", ok="reward_retired")
    changes: dict[str, Any] = {"stock": _optional_int(form.get("stock"))}
    if (cost := _optional_int(form.get("points_cost"))) is not None:
        changes["points_cost"] = cost
    data = validated(catalogue.RewardPatch, changes, err="invalid_reward",
                     back=f"{PREFIX}/rewards")
    await catalogue.update_reward(actor, code, data, now=now_of(request),
                                  settings=request.app[SETTINGS].loyalty)
    return _back(f"{PREFIX}/rewards", ok="reward_updated")


# -- tasks and imports -------------------------------------------------------------------------


@page(Role.VIEWER)
async def tasks_page(request: web.Request, actor: Actor) -> web.StreamResponse:
    status = request.query.get("status", "")
    rows, found = await tasks.list_tasks(
        status if status in {s.value for s in TaskStatus} else None, limit=PAGE_SIZE,
        cursor=_cursor(request))
    return render(request, "tasks.html", actor, tasks=rows, status=status,
                  statuses=list(TaskStatus), pager=_pager(request, found))


@page(Role.AGENT)
async def task_assign(request: web.Request, actor: Actor) -> web.StreamResponse:
    form = await read_form(request)
    assignee = str(form.get("assignee", "")).strip() or actor.name
    await tasks.assign(actor, _int(request, "id"), tasks.AssignIn(assignee=assignee),
                       now=now_of(request))
    return _back(f"{PREFIX}/tasks", ok="task_assign")


@page(Role.AGENT)
async def task_close(request: web.Request, actor: Actor) -> web.StreamResponse:
    form = await read_form(request)
    await tasks.close(actor, _int(request, "id"),
                      tasks.CloseIn(note=str(form.get("note", ""))[:2000]), now=now_of(request))
    return _back(f"{PREFIX}/tasks", ok="task_close")


@page(Role.VIEWER)
async def accident_reports_page(request: web.Request, actor: Actor) -> web.StreamResponse:
    status = request.query.get("status", "")
    chosen = CoreDeliveryStatus(status) if status in {s.value for s in CoreDeliveryStatus} \
        else None
    found, numbers = await accident_reports.list_deliveries(chosen, limit=PAGE_SIZE,
                                                            cursor=_cursor(request))
    return render(request, "accident_reports.html", actor, rows=found.rows, numbers=numbers,
                  status=status, statuses=list(CoreDeliveryStatus), pager=_pager(request, found))


@page(Role.AGENT)
async def accident_report_retry(request: web.Request, actor: Actor) -> web.StreamResponse:
    await accident_reports.retry(actor, _int(request, "id"), now=now_of(request))
    return _back(f"{PREFIX}/accident-reports", ok="accident_report_retry")


@page(Role.VIEWER)
async def shared_phones_page(request: web.Request, actor: Actor) -> web.StreamResponse:
    state = request.query.get("state", "")
    held = {"held": True, "released": False}.get(state)
    flags, found = await shared_phones.list_flags(held, limit=PAGE_SIZE, cursor=_cursor(request))
    return render(request, "shared_phones.html", actor, flags=flags,
                  state=state if held is not None else "", pager=_pager(request, found))


@page(Role.AGENT)
async def shared_phone_release(request: web.Request, actor: Actor) -> web.StreamResponse:
    await shared_phones.release(actor, _int(request, "id"), now=now_of(request))
    return _back(f"{PREFIX}/shared-phones", ok="shared_phone_release")


@page(Role.VIEWER)
async def regions_page(request: web.Request, actor: Actor) -> web.StreamResponse:
    used = request.query.get("all", "") != "1"
    rows = await regions.region_list(used=used, now=now_of(request))
    return render(request, "regions.html", actor, regions=rows, used=used, dry_run=None,
                  dry_day=None)


@page(Role.AGENT)
async def regions_dry_run(request: web.Request, actor: Actor) -> web.StreamResponse:
    """``engage weather --dry-run`` for a day: the forecast fetched now, nothing written."""
    form = await read_form(request)
    try:
        day = date.fromisoformat(str(form.get("date", "")))
    except ValueError:
        return _back(f"{PREFIX}/regions", err="bad_date")
    result = await regions.weather_dry_run(request.app[SETTINGS], day)
    rows = await regions.region_list(used=True, now=now_of(request))
    return render(request, "regions.html", actor, regions=rows, used=True, dry_run=result,
                  dry_day=day)


@page(Role.ADMIN)
async def imports_page(request: web.Request, actor: Actor) -> web.StreamResponse:
    return render(request, "imports.html", actor, result=None)


@page(Role.ADMIN)
async def import_upload(request: web.Request, actor: Actor) -> web.StreamResponse:
    form = await read_form(request)
    data, filename = await read_upload(request)
    if data is None:
        return _back(f"{PREFIX}/imports", err="no_file")
    result = await imports.run_import(
        actor, str(form.get("kind", "")), data, filename=filename,
        default_region=request.app[SETTINGS].company.default_phone_region, now=now_of(request))
    return render(request, "imports.html", actor, result=result)


# -- renewal desk --------------------------------------------------------------------------------


def _local_today(request: web.Request) -> date:
    return now_of(request).astimezone(ZoneInfo(request.app[SETTINGS].schedule.timezone)).date()


@page(Role.VIEWER)
async def renewals_page(request: web.Request, actor: Actor) -> web.StreamResponse:
    query = {k: v for k, v in request.query.items() if k in ("tab", "branch", "agent", "state")}
    try:
        q = renewals.WorklistQuery.model_validate({**query, "cursor": _cursor(request)})
    except ValidationError:
        q = renewals.WorklistQuery()
    today = _local_today(request)
    rows, found = await renewals.worklist(actor, q, today=today, limit=PAGE_SIZE)
    settings = request.app[SETTINGS].renewal
    window = renewals.window_of(today)
    prompts = await renewals.open_prompts(actor)
    return render(request, "renewals.html", actor, rows=rows, q=q, tabs=list(renewals.Tab),
                  prompts=prompts,
                  states=list(renewals.RowState), outcomes=renewals.OPERATOR_OUTCOMES,
                  reasons=list(Reason), results=list(CallResult),
                  branch=renewals.default_branch(actor, q.branch), today=today,
                  window=window, deadline=renewals.claim_deadline(today, settings.claim_by_day),
                  pager=_pager(request, found), assigns=renewals.may_assign(actor))


@page(Role.VIEWER)
async def renewal_window_page(request: web.Request, actor: Actor) -> web.StreamResponse:
    today = _local_today(request)
    branch = request.query.get("branch", "")[:32]
    rows, found = await renewals.unclaimed_in_window(actor, today, branch=branch, today=today,
                                                     limit=PAGE_SIZE, cursor=_cursor(request))
    deadline = renewals.claim_deadline(today, request.app[SETTINGS].renewal.claim_by_day)
    return render(request, "renewal_window.html", actor, rows=rows, today=today,
                  window=renewals.window_of(today), deadline=deadline, late=today > deadline,
                  branch=renewals.default_branch(actor, branch), pager=_pager(request, found),
                  assigns=renewals.may_assign(actor))


@page(Role.VIEWER)
async def renewal_kpis_page(request: web.Request, actor: Actor) -> web.StreamResponse:
    today = _local_today(request)
    data = await request.app[renewal_kpis.REPORTS].get(today)
    return render(request, "renewal_kpis.html", actor, data=data,
                  charts=renewal_kpis.CHARTS)


@page(Role.VIEWER)
async def renewal_kpi_chart(request: web.Request, actor: Actor) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in renewal_kpis.CHARTS:
        raise web.HTTPNotFound()
    data = await request.app[renewal_kpis.REPORTS].get(_local_today(request))
    strings = Strings(request.app[TEXTS], language_of(request, actor))
    titles = ("title_months", "title_branch", "title_reach", "title_reasons", "series_rate",
              "series_reached", "series_count")
    words = {**{key: strings(f"kpi_{key}") for key in titles}, **{f"channel_{k}": v
                                          for k, v in strings.labels("channel").items()},
             **{f"reason_{k}": v for k, v in strings.labels("renewal_reason").items()},
             **{f"reason_{k}": v for k, v in strings.labels("renewal_outcome").items()
                if k != "not_renewing"}, "reason_none": strings("kpi_no_outcome")}
    return charts.svg_response(renewal_kpis.chart(name, data, words))


def _back_to_list(form: Mapping[str, Any]) -> str:
    back = str(form.get("back", ""))
    return back if back.startswith(f"{PREFIX}/renewals") else f"{PREFIX}/renewals"


def _with(url: str, **query: str) -> str:
    return str(URL(url).update_query(**query))


@page(Role.AGENT)
async def renewal_claim(request: web.Request, actor: Actor) -> web.StreamResponse:
    form = await read_form(request)
    back = _back_to_list(form)
    ids = [int(v) for v in form.getall("policy_id", []) if isinstance(v, str) and v.isdigit()]
    if not ids:
        return redirect(_with(back, err="no_selection"))
    try:
        data = renewals.ClaimIn(policy_ids=ids, assignee=str(form.get("assignee", "")).strip())
    except ValidationError:
        return redirect(_with(back, err="no_selection"))
    await renewals.claim(actor, data, now=now_of(request))
    return redirect(_with(back, ok="renewal_claim"))


@page(Role.AGENT)
async def renewal_call(request: web.Request, actor: Actor) -> web.StreamResponse:
    form = await read_form(request)
    back = _back_to_list(form)
    try:
        data = renewals.CallIn.model_validate({"result": form.get("result", ""),
                                               "note": str(form.get("note", ""))[:2000]})
    except ValidationError:
        return redirect(_with(back, err="invalid_call"))
    await renewals.log_call(actor, _int(request, "id"), data, now=now_of(request))
    return redirect(_with(back, ok="renewal_call"))


@page(Role.AGENT)
async def renewal_outcome(request: web.Request, actor: Actor) -> web.StreamResponse:
    form = await read_form(request)
    back = _back_to_list(form)
    try:
        data = renewals.OutcomeIn.model_validate({
            "outcome": form.get("outcome", ""), "reason": form.get("reason") or None,
            "note": str(form.get("note", ""))[:200]})
    except ValidationError:
        return redirect(_with(back, err="invalid_outcome"))
    await renewals.set_outcome(actor, _int(request, "id"), data, now=now_of(request))
    return redirect(_with(back, ok="renewal_outcome"))


def _int(request: web.Request, name: str) -> int:
    value = request.match_info[name]
    if not value.isdigit():
        raise web.HTTPNotFound()
    return int(value)


# -- wiring ----------------------------------------------------------------------------------


def setup(app: web.Application) -> None:
    from pathlib import Path

    aiohttp_jinja2.setup(
        app, loader=jinja2.PackageLoader("bot.web", "templates"),
        autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
    )
    r = app.router
    r.add_get(PREFIX, _redirect_root)
    r.add_get(f"{PREFIX}/login", login_form)
    r.add_post(f"{PREFIX}/login", login)
    r.add_post(f"{PREFIX}/logout", logout)
    r.add_get(f"{PREFIX}/", dashboard_page)
    r.add_get(f"{PREFIX}/campaigns", campaigns_page)
    r.add_get(f"{PREFIX}/campaigns/new", campaign_new)
    r.add_post(f"{PREFIX}/campaigns/new", campaign_create)
    r.add_get(f"{PREFIX}/campaigns/{{id:\\d+}}", campaign_page)
    r.add_post(f"{PREFIX}/campaigns/{{id:\\d+}}/test", campaign_test)
    r.add_post(f"{PREFIX}/campaigns/{{id:\\d+}}/start", campaign_start)
    r.add_post(f"{PREFIX}/campaigns/{{id:\\d+}}/pause", campaign_pause)
    r.add_post(f"{PREFIX}/campaigns/{{id:\\d+}}/resume", campaign_resume)
    r.add_post(f"{PREFIX}/campaigns/{{id:\\d+}}/cancel", campaign_cancel)
    r.add_get(f"{PREFIX}/claims", claims_page)
    r.add_get(f"{PREFIX}/claims/{{number}}", claim_page)
    r.add_post(f"{PREFIX}/documents/{{id:\\d+}}/review", document_review)
    r.add_get(f"{PREFIX}/customers", customers_page)
    r.add_get(f"{PREFIX}/customers/{{id:\\d+}}", customer_page)
    r.add_post(f"{PREFIX}/customers/{{id:\\d+}}/points", customer_points)
    r.add_post(f"{PREFIX}/customers/{{id:\\d+}}/redeem", customer_redeem)
    r.add_post(f"{PREFIX}/customers/{{id:\\d+}}/erase", customer_erase)
    r.add_get(f"{PREFIX}/rewards", rewards_page)
    r.add_post(f"{PREFIX}/rewards", reward_create)
    r.add_post(f"{PREFIX}/rewards/{{code}}", reward_update)
    r.add_get(f"{PREFIX}/tasks", tasks_page)
    r.add_post(f"{PREFIX}/tasks/{{id:\\d+}}/assign", task_assign)
    r.add_post(f"{PREFIX}/tasks/{{id:\\d+}}/close", task_close)
    r.add_get(f"{PREFIX}/renewals", renewals_page)
    r.add_get(f"{PREFIX}/renewals/window", renewal_window_page)
    r.add_get(f"{PREFIX}/renewals/kpis", renewal_kpis_page)
    r.add_get(f"{PREFIX}/renewals/kpis/{{name}}.svg", renewal_kpi_chart)
    r.add_post(f"{PREFIX}/renewals/claim", renewal_claim)
    r.add_post(f"{PREFIX}/renewals/{{id:\\d+}}/call", renewal_call)
    r.add_post(f"{PREFIX}/renewals/{{id:\\d+}}/outcome", renewal_outcome)
    r.add_get(f"{PREFIX}/shared-phones", shared_phones_page)
    r.add_get(f"{PREFIX}/accident-reports", accident_reports_page)
    r.add_post(f"{PREFIX}/accident-reports/{{id:\\d+}}/retry", accident_report_retry)
    r.add_post(f"{PREFIX}/shared-phones/{{id:\\d+}}/release", shared_phone_release)
    r.add_get(f"{PREFIX}/regions", regions_page)
    r.add_post(f"{PREFIX}/regions/dry-run", regions_dry_run)
    r.add_get(f"{PREFIX}/imports", imports_page)
    r.add_post(f"{PREFIX}/imports", import_upload)
    from bot.web.operators import complaints_console, inbox_console

    inbox_console.add_routes(r)
    complaints_console.add_routes(r)
    r.add_static(f"{PREFIX}/static", Path(__file__).parent.parent / "static",
                 append_version=True, name=STATIC_ROUTE)
    answer_under(app, PREFIX, refused)


async def _redirect_root(request: web.Request) -> web.StreamResponse:
    return redirect(f"{PREFIX}/")
