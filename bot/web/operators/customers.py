"""Finding customers (by phone, policy number or plate) and everything an operator may see
of one: policies, claims, consents, points, messages and tasks. Lists mask phone numbers."""

from __future__ import annotations

import re
from typing import Any

from tortoise.expressions import Q

from bot.web.operators.errors import Refusal
from loyalty import ledger
from storage.choices import CHOICES
from storage.loyalty_models import LoyaltyAccount
from storage.models import Claim, Consent, Customer, Message, Policy, Task
from storage.phones import InvalidPhone, mask_phone, normalise_phone

SEARCH_LIMIT = 50


class CustomerNotFound(Refusal):
    code = "not_found"
    status = 404


def customer_row(customer: Customer) -> dict[str, Any]:
    return {"id": customer.id, "name": customer.name, "phone": mask_phone(customer.phone),
            "language": str(customer.language)}


async def search(query: str, *, default_region: str = "CN") -> list[dict[str, Any]]:
    """Customers whose phone, a policy number or a plate matches ``query``; phones masked."""
    text = query.strip()
    if not text:
        return []
    condition = Q(policies__number=text) | Q(policies__plate=re.sub(r"\s+", "", text).upper())
    digits = re.sub(r"[\s\-()]", "", text)
    if re.fullmatch(r"\+?\d{4,}", digits):
        try:
            condition |= Q(phone=normalise_phone(digits, default_region))
        except InvalidPhone:
            pass
        condition |= Q(phone__endswith=digits.lstrip("+"))
    found = await Customer.filter(condition).distinct().order_by("id").limit(SEARCH_LIMIT)
    return [customer_row(c) for c in found]


async def profile(customer_id: int) -> dict[str, Any]:
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
                     "phone_shared": await Customer.filter(phone=customer.phone).count(),
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


def _choices(customer: Customer) -> dict[str, dict[str, str | None]]:
    """Who set the language, time zone and region, and when (``storage.choices``)."""
    out: dict[str, dict[str, str | None]] = {}
    for prefix in CHOICES.values():
        at = getattr(customer, f"{prefix}_set_at")
        out[prefix] = {"by": getattr(customer, f"{prefix}_set_by"),
                       "at": at.isoformat() if at else None}
    return out
