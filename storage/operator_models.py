"""Tortoise models of the operator side: operators and their console sessions, the audit log
and broadcast campaigns.

Operators authenticate with a bearer token shown once at creation; only its sha256 is kept.
Console sessions are kept the same way (the cookie holds the secret, the table its hash).
Every write an operator makes leaves an ``AuditLog`` row with the state before and after.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

from storage.models import Customer

# Model docstrings become SQL table comments, and the migration executor splits SQL on
# semicolons: keep semicolons out of model docstrings and field descriptions.


class Role(StrEnum):
    VIEWER = "viewer"  # reads everything an operator may see
    AGENT = "agent"  # and handles claims, documents and tasks
    ADMIN = "admin"  # and sends campaigns, adjusts points, edits the rewards catalogue


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"  # started, waiting for its send time
    SENDING = "sending"  # the audience is being put into the outbox, or is being delivered
    PAUSED = "paused"
    CANCELLED = "cancelled"
    DONE = "done"
    FAILED = "failed"  # enqueuing stopped on an error: see Campaign.failure, resume retries


HOLD_UNTIL = datetime(9999, 1, 1, tzinfo=UTC)
"""``not_before`` of a paused campaign's unsent messages: never due until resumed."""
CAMPAIGN_CANCELLED = "cancelled"
"""``Message.skip_reason`` of a cancelled campaign's unsent messages."""


class Operator(Model):
    """A person who works in the console or a system that calls the operator API."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64, unique=True)
    role = fields.CharEnumField(Role, max_length=16)
    token_hash = fields.CharField(max_length=64, unique=True)
    language = fields.CharField(max_length=8, default="zh-CN")
    contact: fields.ForeignKeyNullableRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="operator_contacts", null=True,
        on_delete=fields.SET_NULL,
        description="the record test sends go to, kept out of every campaign audience",
    )
    contact_id: int | None
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    branch = fields.CharField(max_length=32, default="", db_default="",
                              description="the branch whose renewals they work")
    manager = fields.BooleanField(default=False, db_default=False,
                                  description="manages the branch: confirms and reassigns")

    class Meta:
        table = "operator"


class ConsoleSession(Model):
    """A console login: the cookie carries the secret, only its sha256 is stored here."""

    id = fields.IntField(primary_key=True)
    key_hash = fields.CharField(max_length=64, unique=True)
    operator: fields.ForeignKeyRelation[Operator] = fields.ForeignKeyField(
        "models.Operator", related_name="sessions", on_delete=fields.CASCADE
    )
    operator_id: int
    csrf_token = fields.CharField(max_length=64)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "operator_session"


class AuditLog(Model):
    """Who changed what and when, with the state before and after (append-only)."""

    id = fields.BigIntField(primary_key=True)
    operator: fields.ForeignKeyNullableRelation[Operator] = fields.ForeignKeyField(
        "models.Operator", related_name="audit", null=True, on_delete=fields.SET_NULL
    )
    operator_id: int | None
    operator_name = fields.CharField(max_length=64)
    action = fields.CharField(max_length=48)
    target_type = fields.CharField(max_length=32)
    target_id = fields.CharField(max_length=64, default="")
    before: Any = fields.JSONField(null=True)
    after: Any = fields.JSONField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "operator_audit"
        indexes = (("target_type", "target_id"), ("created_at",))


class Campaign(Model):
    """A broadcast: an audience filter, a text per language, a channel policy and a send time.

    ``cursor_id`` is the highest customer id whose message is already in the outbox, and
    ``until_id`` the highest customer id when the campaign started: enqueuing walks the id
    range between them in batches and resumes from ``cursor_id`` after a restart.
    """

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100)
    status = fields.CharEnumField(CampaignStatus, max_length=16, default=CampaignStatus.DRAFT)
    category = fields.CharField(max_length=16, description="care or marketing")
    channel_policy = fields.CharField(max_length=20, default="telegram_then_sms")
    audience: Any = fields.JSONField(default=dict)
    templates: Any = fields.JSONField(default=dict)
    send_at = fields.DatetimeField(null=True)
    created_by: fields.ForeignKeyNullableRelation[Operator] = fields.ForeignKeyField(
        "models.Operator", related_name="campaigns", null=True, on_delete=fields.SET_NULL
    )
    created_by_id: int | None
    started_at = fields.DatetimeField(null=True)
    paused_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)
    cursor_id = fields.IntField(default=0)
    until_id = fields.IntField(null=True)
    enqueued = fields.BigIntField(default=0)
    failure = fields.CharField(max_length=500, default="",
                               description="why enqueuing stopped (status failed)")
    preview: Any = fields.JSONField(null=True,
                                    description="the preview as it stood when started")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "campaign"
        indexes = (("status", "send_at"),)
