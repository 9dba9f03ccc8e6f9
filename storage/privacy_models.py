"""Privacy and reach: SMS redemptions waiting for their code, erasures, retention progress.

``兑换2`` by SMS writes one row with a 4-digit code valid ten minutes; ``确认 4821`` finds the
customer's newest open row, checks the code and redeems through ``loyalty.vouchers.redeem``
with the row as the request key, so a second confirmation cannot redeem twice. A newer
request voids the older open one, and too many wrong codes void it too.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from storage.models import Customer

# Model docstrings become SQL table comments, and the migration executor splits SQL on
# semicolons: keep semicolons out of model docstrings and field descriptions.


class PendingStatus(StrEnum):
    OPEN = "open"
    CONFIRMED = "confirmed"
    VOID = "void"  # replaced by a newer request, or too many wrong codes


class SmsRedemption(Model):
    """A reward an SMS customer chose, waiting for the confirmation code sent back to them."""

    id = fields.IntField(primary_key=True)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="sms_redemptions", on_delete=fields.CASCADE
    )
    customer_id: int
    message_sid = fields.CharField(max_length=64, description="the SMS that chose the reward")
    reward_code = fields.CharField(max_length=40)
    entitlement = fields.BooleanField(default=False)
    points_cost = fields.IntField(description="as quoted when chosen")
    code = fields.CharField(max_length=4)
    status = fields.CharEnumField(PendingStatus, max_length=12, default=PendingStatus.OPEN)
    attempts = fields.SmallIntField(default=0, description="wrong codes so far")
    voucher_id = fields.IntField(null=True)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    closed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "sms_redemption"
        indexes = (("customer_id", "status"),)


class Erasure(Model):
    """A customer erased on request (PIPL): the record stays as a pseudonym for the totals."""

    id = fields.IntField(primary_key=True)
    customer: fields.OneToOneRelation[Customer] = fields.OneToOneField(
        "models.Customer", related_name="erasure", on_delete=fields.RESTRICT
    )
    customer_id: int
    requested_by = fields.CharField(max_length=64)
    documents = fields.IntField(default=0, description="document files deleted")
    inbound = fields.IntField(default=0, description="inbound messages deleted")
    erased_at = fields.DatetimeField()

    class Meta:
        table = "customer_erasure"


class RetentionCursor(Model):
    """How far a retention pass over a large table has come (by id)."""

    name = fields.CharField(max_length=32, primary_key=True)
    last_id = fields.BigIntField(default=0)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "retention_cursor"
