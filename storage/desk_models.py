"""The conversations desk: one thread per customer across Telegram and SMS, and its messages.

A thread is keyed by whom it is with (``Conversation.key``): ``c:<customer id>`` for a
customer, ``p:<phone>`` for an SMS number no customer has, ``t:<telegram user id>`` for a
Telegram user not linked to one. While a person holds it (``waiting`` or ``held``) the bot
keeps quiet on free text; resolving it gives it back to the bot.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from storage.models import Channel, Customer
from storage.operator_models import Operator


class ConversationStatus(StrEnum):
    BOT = "bot"  # the bot answers
    WAITING = "waiting"  # handed off, in the queue for a person
    HELD = "held"  # a person has it


class HandoffReason(StrEnum):
    KEYWORD = "keyword"  # 人工, 客服, agent, human…
    BUTTON = "button"  # 联系客服 in the menu or /help
    MISUNDERSTOOD = "misunderstood"  # the bot did not understand twice in a row
    OPERATOR = "operator"  # an operator answered or took it


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class Author(StrEnum):
    CUSTOMER = "customer"
    BOT = "bot"
    OPERATOR = "operator"


# Model docstrings become SQL table comments: no semicolons in them.


class Conversation(Model):
    """One thread with a customer (or an unknown sender) across channels."""

    id = fields.IntField(primary_key=True)
    key = fields.CharField(max_length=40, unique=True,
                           description="c:<customer>, p:<phone> or t:<telegram user>")
    customer: fields.ForeignKeyNullableRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="conversations", null=True, on_delete=fields.CASCADE
    )
    customer_id: int | None
    phone = fields.CharField(max_length=20, default="", description="E.164, unknown senders")
    telegram_user_id = fields.BigIntField(null=True)
    status = fields.CharEnumField(ConversationStatus, max_length=16,
                                  default=ConversationStatus.BOT)
    handoff_reason = fields.CharField(max_length=16, default="")
    assignee: fields.ForeignKeyNullableRelation[Operator] = fields.ForeignKeyField(
        "models.Operator", related_name="conversations", null=True, on_delete=fields.SET_NULL
    )
    assignee_id: int | None
    last_channel = fields.CharEnumField(Channel, max_length=16)
    waiting_since = fields.DatetimeField(null=True, description="handed off at")
    first_response_at = fields.DatetimeField(null=True,
                                             description="a person's first reply since then")
    unread = fields.IntField(default=0, description="customer messages no operator opened")
    misunderstood = fields.SmallIntField(default=0,
                                         description="free texts in a row the bot did not get")
    last_inbound_at = fields.DatetimeField(null=True)
    last_message_at = fields.DatetimeField()
    resolved_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "conversation"
        indexes = (("status", "waiting_since"), ("assignee_id", "status"),
                   ("last_message_at",))


class ConversationMessage(Model):
    """A message of a thread: the customer's, the bot's answer or an operator's reply."""

    id = fields.BigIntField(primary_key=True)
    conversation: fields.ForeignKeyRelation[Conversation] = fields.ForeignKeyField(
        "models.Conversation", related_name="messages", on_delete=fields.CASCADE
    )
    conversation_id: int
    direction = fields.CharEnumField(Direction, max_length=3)
    author = fields.CharEnumField(Author, max_length=16)
    operator: fields.ForeignKeyNullableRelation[Operator] = fields.ForeignKeyField(
        "models.Operator", related_name="conversation_messages", null=True,
        on_delete=fields.SET_NULL
    )
    operator_id: int | None
    channel = fields.CharEnumField(Channel, max_length=16)
    kind = fields.CharField(max_length=16, default="text",
                            description="text, sticker, voice, location, photo…")
    body = fields.TextField(default="")
    outbox_id = fields.BigIntField(null=True, description="the outbox message of a reply")
    created_at = fields.DatetimeField()

    class Meta:
        table = "conversation_message"
        indexes = (("conversation_id", "id"),)


class ComplaintStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class Complaint(Model):
    """A complaint on the regulator's clock, from receipt to the decision sent to the customer."""

    id = fields.IntField(primary_key=True)
    reference = fields.CharField(max_length=20, unique=True, description="TS20261204-0001")
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="complaints", on_delete=fields.RESTRICT
    )
    customer_id: int
    conversation: fields.ForeignKeyNullableRelation[Conversation] = fields.ForeignKeyField(
        "models.Conversation", related_name="complaints", null=True, on_delete=fields.SET_NULL
    )
    conversation_id: int | None
    channel = fields.CharEnumField(Channel, max_length=16, description="where it was received")
    category = fields.CharField(max_length=24)
    policy_id = fields.IntField(null=True, description="the customer's own policy it is about")
    claim_id = fields.IntField(null=True, description="the customer's own claim it is about")
    description = fields.TextField(default="")
    staff_complained = fields.CharField(max_length=64, default="",
                                        description="the staff member complained about")
    handler: fields.ForeignKeyNullableRelation[Operator] = fields.ForeignKeyField(
        "models.Operator", related_name="complaints", null=True, on_delete=fields.SET_NULL
    )
    handler_id: int | None
    status = fields.CharEnumField(ComplaintStatus, max_length=16, default=ComplaintStatus.OPEN)
    received_at = fields.DatetimeField()
    due_at = fields.DatetimeField(description="the end of the day the decision is due")
    extension = fields.SmallIntField(default=0, description="0, 1 (30 days), 2 (a further 30)")
    reminded_at = fields.DatetimeField(null=True)
    escalated_at = fields.DatetimeField(null=True)
    outcome = fields.TextField(default="")
    closed_by = fields.CharField(max_length=64, default="")
    closed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "complaint"
        indexes = (("status", "due_at"), ("customer_id",), ("received_at",))


class ComplaintExtension(Model):
    """An extension of a complaint's deadline: who asked, why, and for the further 30 days the
    admin who approved it (until then it is pending)."""

    id = fields.IntField(primary_key=True)
    complaint: fields.ForeignKeyRelation[Complaint] = fields.ForeignKeyField(
        "models.Complaint", related_name="extensions", on_delete=fields.CASCADE
    )
    complaint_id: int
    level = fields.SmallIntField()
    reason = fields.TextField()
    requested_by = fields.CharField(max_length=64)
    requested_at = fields.DatetimeField()
    approved_by = fields.CharField(max_length=64, default="")
    approved_at = fields.DatetimeField(null=True)

    class Meta:
        table = "complaint_extension"
        unique_together = (("complaint_id", "level"),)


class SurveyCase(StrEnum):
    CLAIM = "claim"  # paid or closed
    COMPLAINT = "complaint"  # closed
    CONVERSATION = "conversation"  # resolved


class SatisfactionSurvey(Model):
    """One satisfaction survey per case, asked through the outbox, answered 1 to 5 once."""

    id = fields.IntField(primary_key=True)
    case_kind = fields.CharEnumField(SurveyCase, max_length=16)
    case_id = fields.IntField()
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="surveys", on_delete=fields.CASCADE
    )
    customer_id: int
    operator_name = fields.CharField(max_length=64, default="",
                                     description="who handled the case, if a person did")
    outbox_id = fields.BigIntField(null=True)
    created_at = fields.DatetimeField()
    score = fields.SmallIntField(null=True)
    answered_at = fields.DatetimeField(null=True)
    answer_channel = fields.CharField(max_length=16, default="")

    class Meta:
        table = "satisfaction_survey"
        unique_together = (("case_kind", "case_id"),)
        indexes = (("customer_id", "created_at"), ("created_at",))
