"""Finding customers (by phone, policy number or plate) and everything an operator may see
of one: policies, claims, consents, points, messages and tasks. Lists mask phone numbers."""

from __future__ import annotations

import re

import phonenumbers
from tortoise.expressions import Q, Subquery

from bot.web.operators.errors import Refusal
from bot.web.operators.paging import DEFAULT_LIMIT, Page, page
from bot.web.operators.rows import (
    ChoiceJson,
    CustomerChoicesJson,
    CustomerJson,
    CustomerProfileJson,
)
from loyalty import ledger
from storage.choices import CHOICES
from storage.loyalty_models import LoyaltyAccount
from storage.models import Claim, Consent, Customer, Message, Policy, Task
from storage.phones import InvalidPhone, mask_phone, normalise_phone

_MASKED = re.compile(r"(\+?\d*)(\*+)(\d+)")


class CustomerNotFound(Refusal):
    code = "not_found"
    status = 404


def customer_row(customer: Customer) -> CustomerJson:
    return {"id": customer.id, "name": customer.name, "phone": mask_phone(customer.phone),
            "language": str(customer.language)}


def phone_condition(text: str, *, default_region: str, field: str = "phone") -> Q | None:
    """Rows whose ``field`` (an E.164 phone) matches what an operator typed: a whole number in
    any usual form, its last digits (at least four), or a masked number as the lists show it
    (``+86*******8000``, or ``138****8000`` in the national form). None: not a phone."""
    compact = re.sub(r"[\s\-()]", "", text)
    masked = _MASKED.fullmatch(compact)
    if masked:
        head, _, tail = masked.groups()
        if head and not head.startswith("+"):
            code = phonenumbers.country_code_for_region(default_region)
            head = f"+{code}{head.lstrip('0')}"
        condition = Q(**{f"{field}__endswith": tail})
        return condition & Q(**{f"{field}__startswith": head}) if head else condition
    if not re.fullmatch(r"\+?\d{4,}", compact):
        return None
    condition = Q(**{f"{field}__endswith": compact.lstrip("+")})
    try:
        condition |= Q(**{field: normalise_phone(compact, default_region)})
    except InvalidPhone:
        pass
    return condition


def search_condition(text: str, *, default_region: str) -> Q | None:
    """Customers with that phone (see ``phone_condition``), policy number or plate."""
    text = text.strip()
    if not text:
        return None
    condition = Q(policies__number=text) | Q(policies__plate=plate_of(text))
    phone = phone_condition(text, default_region=default_region)
    return condition | phone if phone is not None else condition


def plate_of(text: str) -> str:
    """A plate as stored: no spaces, upper case (``沪a 12345`` → ``沪A12345``)."""
    return re.sub(r"\s+", "", text).upper()


async def search(query: str, *, default_region: str = "CN", limit: int = DEFAULT_LIMIT,
                 cursor: str = "") -> Page[Customer]:
    """Customers whose phone, a policy number or a plate matches ``query``, by id."""
    condition = search_condition(query, default_region=default_region)
    if condition is None:
        return Page([], 0, None)
    ids = Customer.filter(condition).distinct().values_list("id", flat=True)
    return await page(Customer.filter(id__in=Subquery(ids)), ("id",), limit=limit,
                      cursor=cursor)


async def profile(customer_id: int) -> CustomerProfileJson:
    customer = await Customer.get_or_none(id=customer_id)
    if customer is None:
        raise CustomerNotFound(f"no customer {customer_id}")
    policies = await Policy.filter(customer_id=customer_id).order_by("-end_date")
    claims = await Claim.filter(customer_id=customer_id).order_by("-reported_at")
    consents: dict[tuple[str, str], Consent] = {}
    for consent in await Consent.filter(customer_id=customer_id).order_by("created_at", "id"):
        consents[(consent.channel, str(consent.category))] = consent
    account = await LoyaltyAccount.get_or_none(customer_id=customer_id)
    entries = await ledger.recent_entries(customer_id, limit=20)
    messages = await Message.filter(customer_id=customer_id).order_by(
        "-created_at", "-id").limit(50)
    tasks = await Task.filter(customer_id=customer_id).order_by("-created_at")
    return {
        "customer": {**customer_row(customer), "phone_full": customer.phone,
                     "timezone": customer.timezone, "customer_no": customer.customer_no,
                     "choices": _choices(customer),
                     "phone_shared": (await Customer.filter(phone=customer.phone).count()
                                      if customer.phone else 0),  # erased: no phone
                     "created_at": customer.created_at.isoformat()},
        "policies": [{"number": p.number, "product": str(p.product), "plate": p.plate,
                      "start_date": p.start_date.isoformat(), "end_date": p.end_date.isoformat(),
                      "status": str(p.status), "premium_cents": p.premium_cents}
                     for p in policies],
        "claims": [{"number": c.number, "status": str(c.status),
                    "reported_at": c.reported_at.isoformat()} for c in claims],
        "consents": [{"channel": c.channel, "category": str(c.category), "granted": c.granted,
                      "source": c.source, "at": c.created_at.isoformat()}
                     for c in consents.values()],
        "points": {"balance": account.balance if account else 0,
                   "tier": account.tier if account else None,
                   "entries": [{"id": e.id, "kind": str(e.kind), "amount": e.amount,
                                "balance_after": e.balance_after, "reason": e.reason,
                                "operator": e.operator, "at": e.occurred_at.isoformat()}
                               for e in entries]},
        "messages": [{"id": m.id, "kind": m.kind, "category": str(m.category),
                      "status": str(m.status), "channel": str(m.channel or ""),
                      "skip_reason": m.skip_reason, "campaign_id": m.campaign_id,
                      "created_at": m.created_at.isoformat(),
                      "sent_at": m.sent_at.isoformat() if m.sent_at else None}
                     for m in messages],
        "tasks": [{"id": t.id, "kind": t.kind, "status": str(t.status), "assignee": t.assignee}
                  for t in tasks],
    }


def _choices(customer: Customer) -> CustomerChoicesJson:
    """Who set the language, time zone and region, and when (``storage.choices``)."""

    def choice(prefix: str) -> ChoiceJson:
        at = getattr(customer, f"{prefix}_set_at")
        return {"by": getattr(customer, f"{prefix}_set_by"), "at": at.isoformat() if at else None}

    language, timezone, region = (choice(prefix) for prefix in CHOICES.values())
    return {"language": language, "timezone": timezone, "region": region}
