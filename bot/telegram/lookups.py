"""What the busiest screens read — a customer's policies, a claim with its timeline — always
filtered by the customer, in plain SQL through ``storage.sql``: building a query through
the ORM costs several times the query itself (about 0.3–0.9 ms of CPU each, measured by
``bench/telegram_updates.py``), and these run on most updates.

Rows come back as small read-only records. SQLite hands dates, times and JSON back as text
and PostgreSQL as values; the converters below accept both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from storage.models import DocumentStatus
from storage.sql import (
    Params,
    Row,
    as_date,
    as_json,
    as_moment,
    current,
    fetch,
    is_postgres,
    json_rows,
    json_values,
)


@dataclass(frozen=True, slots=True)
class PolicyCard:
    id: int
    number: str
    product: str
    plate: str
    vehicle: str
    status: str
    start_date: date
    end_date: date
    premium_cents: int
    coverage: Any

    @classmethod
    def of(cls, row: Row) -> PolicyCard:
        return cls(int(row["id"]), str(row["number"]), str(row["product"]), str(row["plate"]),
                   str(row["vehicle"]), str(row["status"]), as_date(row["start_date"]),
                   as_date(row["end_date"]), int(row["premium_cents"]), as_json(row["coverage"]))


_POLICY = ("SELECT id, number, product, plate, vehicle, status, start_date, end_date, "
           "premium_cents, coverage FROM policy")


async def policies(customer_id: int, *, limit: int, exclude_status: str) -> list[PolicyCard]:
    """The customer's policies, latest end date first."""
    rows = await fetch(current(), f"{_POLICY} WHERE customer_id = :customer "
                       "AND status <> :excluded ORDER BY end_date DESC, id DESC LIMIT :limit",
                       {"customer": customer_id, "excluded": exclude_status, "limit": limit})
    return [PolicyCard.of(row) for row in rows]


async def policy(customer_id: int, policy_id: int) -> PolicyCard | None:
    rows = await fetch(current(), f"{_POLICY} WHERE id = :policy AND customer_id = :customer",
                       {"policy": policy_id, "customer": customer_id})
    return PolicyCard.of(rows[0]) if rows else None


@dataclass(frozen=True, slots=True)
class ClaimStep:
    status: str
    occurred_at: datetime
    note: str


@dataclass(frozen=True, slots=True)
class ClaimCard:
    id: int
    number: str
    plate: str
    status: str
    reported_at: datetime
    description: str
    estimated_cents: int | None
    paid_cents: int | None
    required_documents: Any
    timeline: tuple[ClaimStep, ...]  # oldest first
    document_names: tuple[str, ...]  # of the documents not rejected

    @classmethod
    def of(cls, row: Row) -> ClaimCard:
        steps = tuple(ClaimStep(str(status), as_moment(at), str(note))
                      for status, at, note in as_json(row["timeline"], []))
        names = tuple(str(name) for name in as_json(row["documents"], []))
        return cls(int(row["id"]), str(row["number"]), str(row["plate"]), str(row["status"]),
                   as_moment(row["reported_at"]), str(row["description"]),
                   row["estimated_cents"], row["paid_cents"], as_json(row["required_documents"]),
                   steps, names)


def _claim_sql(postgres: bool) -> str:
    """A claim with its timeline and its documents' names gathered as JSON, in one statement
    (the detail view needs all three; one round trip instead of three)."""
    steps = json_rows("e.status", "e.occurred_at", "e.note", postgres=postgres,
                      order_by="e.occurred_at, e.id")
    names = json_values("d.original_name", postgres=postgres)
    rejected = DocumentStatus.REJECTED.value
    return ("SELECT c.id, c.number, p.plate, c.status, c.reported_at, c.description, "
            "c.estimated_cents, c.paid_cents, c.required_documents, "
            f"(SELECT {steps} FROM (SELECT id, status, occurred_at, note FROM claim_event "
            "WHERE claim_id = c.id ORDER BY occurred_at, id) e) AS timeline, "
            f"(SELECT {names} FROM document d WHERE d.claim_id = c.id "
            f"AND d.status <> '{rejected}') AS documents "
            "FROM claim c JOIN policy p ON p.id = c.policy_id")


_CLAIMS = {postgres: _claim_sql(postgres) for postgres in (False, True)}


async def claims_by_number(customer_id: int, numbers: Sequence[str]) -> list[ClaimCard]:
    if not numbers:
        return []
    params = Params(customer=customer_id)
    rows = await fetch(current(), f"{_CLAIMS[is_postgres()]} WHERE c.customer_id = :customer "
                       f"AND c.number IN ({params.add_all(numbers)}) "
                       "ORDER BY c.reported_at DESC", params)
    return [ClaimCard.of(row) for row in rows]


async def claim(customer_id: int, claim_id: int) -> ClaimCard | None:
    rows = await fetch(current(), f"{_CLAIMS[is_postgres()]} WHERE c.id = :claim "
                       "AND c.customer_id = :customer",
                       {"claim": claim_id, "customer": customer_id})
    return ClaimCard.of(rows[0]) if rows else None


async def document_names(claim_id: int, *, exclude_status: str) -> list[str]:
    rows = await fetch(current(), "SELECT original_name FROM document WHERE claim_id = :claim "
                       "AND status <> :excluded", {"claim": claim_id, "excluded": exclude_status})
    return [str(r["original_name"]) for r in rows]
