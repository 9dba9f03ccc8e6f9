"""Payments: upsert by the core system's external id; customer taken from the policy."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from tortoise.backends.base.client import BaseDBAsyncClient

from storage.models import Payment, PaymentKind
from storage.sql import Statements

from . import cells
from .rows import Columns, Context, Outcome, Parsed, given_or, match_policies

KINDS = cells.enum_options(PaymentKind, 保费=PaymentKind.PREMIUM, 退费=PaymentKind.REFUND,
                           退款=PaymentKind.REFUND)

# Payment columns an import sets, in the order of the tuples below.
_FIELDS = ("policy_id", "customer_id", "kind", "amount_cents", "paid_at")


class PaymentRecord(NamedTuple):
    external_id: str
    policy: str
    kind: PaymentKind | None
    amount_cents: int
    paid_at: datetime


class PaymentImport:
    required: tuple[str, ...] = ("external_id", "policy", "amount", "paid_at")
    optional: tuple[str, ...] = ("kind",)

    def __init__(self, columns: Columns, context: Context) -> None:
        self._pick = columns.picker("external_id", "policy", "kind", "amount", "paid_at")
        self._context = context

    async def prepare(self, conn: BaseDBAsyncClient) -> None:
        return None

    def keys(self, record: PaymentRecord) -> tuple[str, ...]:
        return (record.external_id,)

    def parse(self, values: list[str]) -> PaymentRecord:
        external_id, policy, kind_text, amount_text, paid_text = self._pick(values)
        cells.bounded(cells.required(external_id, "external_id"), "external_id", 64)
        cells.required(policy, "policy")
        kind = cells.choice(kind_text, "kind", KINDS) if kind_text else None
        amount = cells.cents(cells.required(amount_text, "amount"), "amount", positive=True)
        paid_at = cells.moment(cells.required(paid_text, "paid_at"), "paid_at",
                               self._context.local_tz)
        return PaymentRecord(external_id, policy, kind, amount, paid_at)

    async def write(self, conn: BaseDBAsyncClient,
                    batch: Sequence[Parsed[PaymentRecord]]) -> Outcome:
        outcome = Outcome()
        statements = Statements(conn)
        inserts: list[list[Any]] = []
        updates: list[list[Any]] = []
        for item, policy, current in await match_policies(
                statements, batch, outcome, policy_of=lambda r: r.policy, model=Payment,
                key="external_id", key_of=lambda r: r.external_id, fields=_FIELDS):
            record = item.record
            if current is None:
                inserts.append([policy[1], policy[2], str(record.kind or PaymentKind.PREMIUM),
                                record.amount_cents, record.paid_at, record.external_id])
                outcome.created += 1
                continue
            old = current[2:]
            kind = given_or(record.kind, old[2])
            new = (policy[1], policy[2], kind, record.amount_cents, record.paid_at)
            if new == old:
                outcome.unchanged += 1
                continue
            updates.append([policy[1], policy[2], str(kind), record.amount_cents, record.paid_at,
                            current[0]])
            outcome.updated += 1

        stamp = statements.stored(self._context.now)
        await statements.insert(Payment, (*_FIELDS, "external_id", "created_at"),
                                [[*row, stamp] for row in inserts])
        await statements.update(Payment, _FIELDS, updates)
        return outcome
