"""A campaign's audience: the filter operators set, and the SQL that selects it.

The selection is one SQL condition over ``customer c`` with named parameters (kept in a
``storage.sql.Params``), so the same clause serves the audience count, the preview's channel
split and the set-based ``INSERT … SELECT`` that puts a campaign into the outbox without
loading customers into Python — and whatever the statement puts around it, each value binds
to its own placeholder. Operators' own contact records are never part of an audience.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from storage.coverage import policy_covers
from storage.models import Language, Product
from storage.sql import Params


class AudienceFilter(BaseModel):
    """Every condition given must hold; an empty filter means every customer."""

    model_config = ConfigDict(extra="forbid")

    tiers: list[str] = Field(default_factory=list, description="VIP tier codes")
    regions: list[str] = Field(default_factory=list,
                               description="region codes (or their earlier short codes)")
    products: list[Product] = Field(
        default_factory=list, description="insured today by a policy of one of these products")
    expiring_from: date | None = Field(
        default=None, description="insured today by a policy ending on or after")
    expiring_to: date | None = Field(
        default=None, description="insured today by a policy ending on or before")
    has_telegram: bool | None = Field(default=None, description="linked, not blocked")
    languages: list[Language] = Field(default_factory=list)

    @model_validator(mode="after")
    def _dates_in_order(self) -> AudienceFilter:
        if self.expiring_from and self.expiring_to and self.expiring_from > self.expiring_to:
            raise PydanticCustomError("date_order",
                                      "expiring_from must not be after expiring_to")
        return self


TELEGRAM_LINKED = (
    "(EXISTS (SELECT 1 FROM telegram_account t WHERE t.customer_id = c.id "
    "AND t.linked_at IS NOT NULL AND t.blocked_at IS NULL) "
    "OR EXISTS (SELECT 1 FROM telegram_account t WHERE t.second_customer_id = c.id "
    "AND t.linked_at IS NOT NULL AND t.blocked_at IS NULL))"
)


def where_clause(audience: AudienceFilter, params: Params, *, default_tier: str,
                 today: date) -> str:
    """The condition selecting ``audience`` from ``customer c``; its values go into
    ``params``. Its policy conditions are about policies that insure the customer on
    ``today`` (the care calendar's day, ``storage.coverage``)."""
    parts = ["NOT EXISTS (SELECT 1 FROM operator o WHERE o.contact_id = c.id)"]
    if audience.languages:
        parts.append(f"c.language IN ({params.add_all(lang.value for lang in audience.languages)})")
    if audience.regions:
        parts.append("c.region_id IN (SELECT r.id FROM region r WHERE r.code IN "
                     f"({params.add_all(audience.regions)}) OR r.alias IN "
                     f"({params.add_all(audience.regions)}))")
    if audience.tiers:
        tier = (f"COALESCE((SELECT a.tier FROM loyalty_account a WHERE a.customer_id = c.id), "
                f"{params.add(default_tier)})")
        parts.append(f"{tier} IN ({params.add_all(audience.tiers)})")
    policy: list[str] = []
    if audience.products:
        policy.append(f"p.product IN ({params.add_all(p.value for p in audience.products)})")
    if audience.expiring_from:
        policy.append(f"p.end_date >= {params.add(audience.expiring_from)}")
    if audience.expiring_to:
        policy.append(f"p.end_date <= {params.add(audience.expiring_to)}")
    if policy:
        policy.append(params.take(policy_covers("p", today)))
        parts.append("EXISTS (SELECT 1 FROM policy p WHERE p.customer_id = c.id AND "
                     f"{' AND '.join(policy)})")
    if audience.has_telegram is True:
        parts.append(TELEGRAM_LINKED)
    elif audience.has_telegram is False:
        parts.append(f"NOT {TELEGRAM_LINKED}")
    return " AND ".join(parts)
