"""What the busiest screens read — a customer's policies, a claim with its timeline — always
filtered by the customer, in plain SQL (see ``bot.telegram.sql`` for why).

Rows come back as small read-only records. SQLite hands dates, times and JSON back as text
and PostgreSQL as values; the converters below accept both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from bot.telegram import sql
from storage.models import DocumentStatus
from storage.sql import as_date, as_moment


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


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
    def of(cls, row: dict[str, Any]) -> PolicyCard:
        return cls(int(row["id"]), str(row["number"]), str(row["product"]), str(row["plate"]),
                   str(row["vehicle"]), str(row["status"]), as_date(row["start_date"]),
                   as_date(row["end_date"]), int(row["premium_cents"]), _json(row["coverage"]))


_POLICY = ("SELECT id, number, product, plate, vehicle, status, start_date, end_date, "
           "premium_cents, coverage FROM policy")


async def policies(customer_id: int, *, limit: int, exclude_status: str) -> list[PolicyCard]:
    """The customer's policies, latest end date first."""
    rows = await sql.fetch(f"{_POLICY} WHERE customer_id = ? AND status <> ? "
                           "ORDER BY end_date DESC, id DESC LIMIT ?",
                           [customer_id, exclude_status, limit])
    return [PolicyCard.of(row) for row in rows]


async def policy(customer_id: int, policy_id: int) -> PolicyCard | None:
    rows = await sql.fetch(f"{_POLICY} WHERE id = ? AND customer_id = ?",
                           [policy_id, customer_id])
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
    def of(cls, row: dict[str, Any]) -> ClaimCard:
        steps = tuple(ClaimStep(str(status), as_moment(at), str(note))
                      for status, at, note in _json(row["timeline"] or "[]"))
        names = tuple(str(name) for name in _json(row["documents"] or "[]"))
        return cls(int(row["id"]), str(row["number"]), str(row["plate"]), str(row["status"]),
                   as_moment(row["reported_at"]), str(row["description"]),
                   row["estimated_cents"], row["paid_cents"], _json(row["required_documents"]),
                   steps, names)


def _claim_sql(postgres: bool) -> str:
    """A claim with its timeline and its documents' names gathered as JSON, in one statement
    (the detail view needs all three; one round trip instead of three)."""
    if postgres:
        steps = ("SELECT json_agg(json_build_array(e.status, e.occurred_at, e.note) "
                 "ORDER BY e.occurred_at, e.id)::text FROM claim_event e")
        names = "SELECT json_agg(d.original_name)::text FROM document d"
        events = "e.claim_id = c.id"
    else:
        steps = ("SELECT json_group_array(json_array(e.status, e.occurred_at, e.note)) "
                 "FROM (SELECT status, occurred_at, note FROM claim_event "
                 "WHERE claim_id = c.id ORDER BY occurred_at, id) e")
        names = "SELECT json_group_array(d.original_name) FROM document d"
        events = "1 = 1"
    rejected = DocumentStatus.REJECTED.value
    return ("SELECT c.id, c.number, p.plate, c.status, c.reported_at, c.description, "
            "c.estimated_cents, c.paid_cents, c.required_documents, "
            f"({steps} WHERE {events}) AS timeline, "
            f"({names} WHERE d.claim_id = c.id AND d.status <> '{rejected}') AS documents "
            "FROM claim c JOIN policy p ON p.id = c.policy_id")


_CLAIMS = {postgres: _claim_sql(postgres) for postgres in (False, True)}


async def claims_by_number(customer_id: int, numbers: Sequence[str]) -> list[ClaimCard]:
    if not numbers:
        return []
    marks = ", ".join("?" for _ in numbers)
    rows = await sql.fetch(f"{_CLAIMS[sql.is_postgres()]} WHERE c.customer_id = ? "
                           f"AND c.number IN ({marks}) "
                           "ORDER BY c.reported_at DESC", [customer_id, *numbers])
    return [ClaimCard.of(row) for row in rows]


async def claim(customer_id: int, claim_id: int) -> ClaimCard | None:
    rows = await sql.fetch(f"{_CLAIMS[sql.is_postgres()]} WHERE c.id = ? AND c.customer_id = ?",
                           [claim_id, customer_id])
    return ClaimCard.of(rows[0]) if rows else None


async def document_names(claim_id: int, *, exclude_status: str) -> list[str]:
    rows = await sql.fetch("SELECT original_name FROM document WHERE claim_id = ? "
                           "AND status <> ?", [claim_id, exclude_status])
    return [str(r["original_name"]) for r in rows]
