"""Claims: upsert by claim number; customer taken from the policy; every new claim and every
status change adds a ``ClaimEvent`` (the progress a customer sees)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from tortoise.backends.base.client import BaseDBAsyncClient

from storage.models import Claim, ClaimEvent, ClaimStatus
from storage.sql import Statements

from . import cells
from .rows import Columns, Context, Outcome, Parsed, given_or, match_policies

STATUSES = cells.enum_options(
    ClaimStatus, 报案=ClaimStatus.REPORTED, 立案=ClaimStatus.REGISTERED,
    查勘=ClaimStatus.SURVEYED, 定损=ClaimStatus.LOSS_ASSESSED, 核赔=ClaimStatus.APPROVED,
    赔付=ClaimStatus.PAID, 结案=ClaimStatus.CLOSED, 拒赔=ClaimStatus.REJECTED,
    撤案=ClaimStatus.WITHDRAWN,
)

# Claim columns an import sets, in the order of the tuples below.
_FIELDS = ("policy_id", "customer_id", "status", "reported_at", "description",
           "estimated_cents", "paid_cents")
_EVENT = ("claim_id", "status", "occurred_at", "note", "created_at")


class ClaimRecord(NamedTuple):
    number: str
    policy: str
    status: ClaimStatus
    reported_at: datetime
    description: str | None
    estimated_cents: int | None
    paid_cents: int | None


class ClaimImport:
    required: tuple[str, ...] = ("number", "policy", "status", "reported_at")
    optional: tuple[str, ...] = ("estimated", "paid", "description")

    def __init__(self, columns: Columns, context: Context) -> None:
        self._pick = columns.picker("number", "policy", "status", "reported_at", "estimated",
                                    "paid", "description")
        self._context = context

    async def prepare(self, conn: BaseDBAsyncClient) -> None:
        return None

    def keys(self, record: ClaimRecord) -> tuple[str, ...]:
        return (record.number,)

    def parse(self, values: list[str]) -> ClaimRecord:
        (number, policy, status_text, reported_text, estimated_text, paid_text,
         description) = self._pick(values)
        cells.bounded(cells.required(number, "number"), "number", 40)
        cells.required(policy, "policy")
        status = cells.choice(cells.required(status_text, "status"), "status", STATUSES)
        reported_at = cells.moment(cells.required(reported_text, "reported_at"), "reported_at",
                                   self._context.local_tz)
        estimated = cells.cents(estimated_text, "estimated") if estimated_text else None
        paid = cells.cents(paid_text, "paid") if paid_text else None
        return ClaimRecord(number, policy, status, reported_at, description or None, estimated,
                           paid)

    async def write(self, conn: BaseDBAsyncClient,
                    batch: Sequence[Parsed[ClaimRecord]]) -> Outcome:
        outcome = Outcome()
        statements = Statements(conn)
        stamp = statements.stored(self._context.now)
        inserts: list[list[Any]] = []
        updates: list[list[Any]] = []
        events: list[list[Any]] = []
        for item, policy, current in await match_policies(
                statements, batch, outcome, policy_of=lambda r: r.policy, model=Claim,
                key="number", key_of=lambda r: r.number, fields=_FIELDS):
            record = item.record
            if current is None:
                inserts.append([
                    policy[1], policy[2], str(record.status), record.reported_at,
                    record.description or "", record.estimated_cents, record.paid_cents,
                    record.number,
                ])
                outcome.created += 1
                continue
            old = current[2:]
            new = (policy[1], policy[2], record.status, record.reported_at,
                   given_or(record.description, old[4]), given_or(record.estimated_cents, old[5]),
                   given_or(record.paid_cents, old[6]))
            if new == old:
                outcome.unchanged += 1
                continue
            updates.append([stamp, *new[:2], str(record.status), *new[3:], current[0]])
            if record.status != old[2]:
                events.append([current[0], str(record.status), stamp, "", stamp])
            outcome.updated += 1

        await statements.insert(
            Claim, ("created_at", "updated_at", *_FIELDS, "number", "required_documents"),
            [[stamp, stamp, *row, "[]"] for row in inserts])
        await statements.update(Claim, ("updated_at", *_FIELDS), updates)
        if inserts:
            ids = dict(await statements.select_in(
                Claim, "number", {row[-1] for row in inserts}, ("number", "id")))
            events.extend([ids[row[-1]], row[2], row[3], "", stamp] for row in inserts)
        await statements.insert(ClaimEvent, _EVENT, events)
        return outcome

