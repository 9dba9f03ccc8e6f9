"""Tortoise models of accident reports (报案) made in the chat: the guided report while the
customer fills it in, and the durable queue that delivers confirmed reports to the insurer's
core system.

A draft is the whole state of the guided report (its step and answers), so a report survives a
restart whatever the conversation storage is. ``open_for`` holds the customer id while the
draft is open and is unique, so a customer never has two open drafts, even across processes.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

from storage.models import Claim, Customer

# Model docstrings become SQL table comments, and the migration executor splits SQL on
# semicolons: keep semicolons out of model docstrings and field descriptions.


class DraftStatus(StrEnum):
    OPEN = "open"
    SUBMITTED = "submitted"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class ReportDraft(Model):
    """An accident report being filled in through Telegram, step by step."""

    id = fields.IntField(primary_key=True)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="report_drafts", on_delete=fields.CASCADE
    )
    customer_id: int
    open_for = fields.IntField(null=True, unique=True,
                               description="the customer id while open (one open draft each)")
    telegram_user_id = fields.BigIntField()
    chat_id = fields.BigIntField()
    step = fields.CharField(max_length=24)
    data: Any = fields.JSONField(default=dict)
    status = fields.CharEnumField(DraftStatus, max_length=16, default=DraftStatus.OPEN)
    started_at = fields.DatetimeField()
    touched_at = fields.DatetimeField(description="the customer's last answer")
    reminded_at = fields.DatetimeField(null=True)
    closed_at = fields.DatetimeField(null=True)
    claim: fields.ForeignKeyNullableRelation[Claim] = fields.ForeignKeyField(
        "models.Claim", related_name="report_drafts", null=True, on_delete=fields.SET_NULL
    )
    claim_id: int | None

    class Meta:
        table = "claim_report_draft"
        indexes = (("status", "touched_at"), ("customer_id", "closed_at"))


class CoreDeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its next attempt
    SENDING = "sending"  # leased by a delivery pass
    DELIVERED = "delivered"
    DEAD = "dead"  # gave up: an operator retries it from the console


class CoreDelivery(Model):
    """A confirmed report on its way to the core system (a durable queue row)."""

    id = fields.IntField(primary_key=True)
    claim: fields.ForeignKeyRelation[Claim] = fields.ForeignKeyField(
        "models.Claim", related_name="core_deliveries", on_delete=fields.CASCADE
    )
    claim_id: int
    reference = fields.CharField(max_length=40, unique=True,
                                 description="the report reference the customer was given")
    idempotency_key = fields.CharField(max_length=64, unique=True)
    payload: Any = fields.JSONField()
    status = fields.CharEnumField(CoreDeliveryStatus, max_length=16,
                                  default=CoreDeliveryStatus.PENDING)
    attempts = fields.SmallIntField(default=0)
    next_attempt_at = fields.DatetimeField()
    lease_expires_at = fields.DatetimeField(null=True)
    last_error = fields.CharField(max_length=300, default="")
    core_claim_number = fields.CharField(max_length=40, null=True)
    created_at = fields.DatetimeField()
    delivered_at = fields.DatetimeField(null=True)
    dead_at = fields.DatetimeField(null=True)

    class Meta:
        table = "core_report_delivery"
        indexes = (("status", "next_attempt_at"),)
