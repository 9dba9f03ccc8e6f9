"""Tortoise models of the loyalty programme: accounts, the points ledger and its lots, tier
history, the rewards catalogue, vouchers, partners and check-ins.

Points are integers and money is integer cents. Ledger entries, lot uses and tier changes are
append-only: nothing here is updated after the fact except an account's balance and tier, a
lot's remainder, a reward's stock and a voucher's status, each changed in the same
transaction as the row that explains it. The service layer (``loyalty/``) owns those writes.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from storage.models import Customer, Payment, Policy

# Model docstrings become SQL table comments, and the migration executor splits SQL on
# semicolons: keep semicolons out of model docstrings and field descriptions.


class EntryKind(StrEnum):
    EARN_PREMIUM = "earn_premium"
    PREMIUM_REVERSAL = "premium_reversal"  # refund or cancelled policy, floored at zero
    PAYMENT_CORRECTION = "payment_correction"  # a settled payment re-imported changed
    CHECKIN = "checkin"
    CHECKIN_STREAK = "checkin_streak"
    REFERRAL = "referral"
    BIRTHDAY = "birthday"
    ADJUSTMENT = "adjustment"  # by an operator, with a reason
    REDEMPTION = "redemption"
    EXPIRY = "expiry"
    REVERSAL = "reversal"  # undoes one earlier entry, linked by reverses_id


EARNING_KINDS = (
    EntryKind.EARN_PREMIUM,
    EntryKind.CHECKIN,
    EntryKind.CHECKIN_STREAK,
    EntryKind.REFERRAL,
    EntryKind.BIRTHDAY,
    EntryKind.ADJUSTMENT,
)


class TierChangeReason(StrEnum):
    UPGRADE = "upgrade"  # at once, on a qualifying payment
    REVIEW = "review"  # the annual review, the only time a tier goes down


class VoucherStatus(StrEnum):
    ISSUED = "issued"
    USED = "used"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class LoyaltyAccount(Model):
    """One per customer: the running points balance and the current VIP tier."""

    id = fields.IntField(primary_key=True)
    customer: fields.OneToOneRelation[Customer] = fields.OneToOneField(
        "models.Customer", related_name="loyalty_account", on_delete=fields.RESTRICT
    )
    customer_id: int
    balance = fields.BigIntField(default=0, description="always the sum of the entries")
    tier = fields.CharField(max_length=32, default="standard")
    tier_since = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "loyalty_account"


class LedgerEntry(Model):
    """An immutable points posting. A mistake is corrected by a reversal entry, never an edit."""

    id = fields.BigIntField(primary_key=True)
    account: fields.ForeignKeyRelation[LoyaltyAccount] = fields.ForeignKeyField(
        "models.LoyaltyAccount", related_name="entries", on_delete=fields.RESTRICT
    )
    account_id: int
    kind = fields.CharEnumField(EntryKind, max_length=24)
    amount = fields.BigIntField(description="signed points, credit positive")
    balance_after = fields.BigIntField()
    idempotency_key = fields.CharField(max_length=200, unique=True)
    fingerprint = fields.CharField(max_length=64, description="sha256 of the request content")
    reverses: fields.ForeignKeyNullableRelation[LedgerEntry] = fields.ForeignKeyField(
        "models.LedgerEntry", related_name="reversals", null=True, on_delete=fields.RESTRICT
    )
    reverses_id: int | None
    shortfall = fields.BigIntField(
        default=0, description="points a reversal could not take back because they were spent"
    )
    payment: fields.ForeignKeyNullableRelation[Payment] = fields.ForeignKeyField(
        "models.Payment", related_name="loyalty_entries", null=True, on_delete=fields.RESTRICT
    )
    payment_id: int | None
    policy: fields.ForeignKeyNullableRelation[Policy] = fields.ForeignKeyField(
        "models.Policy", related_name="loyalty_entries", null=True, on_delete=fields.RESTRICT
    )
    policy_id: int | None
    basis_cents = fields.BigIntField(
        null=True,
        description="the payment amount in cents an entry of a payment settled, refund negative",
    )
    reason = fields.TextField(default="")
    operator = fields.CharField(max_length=100, default="")
    occurred_at = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "loyalty_entry"
        indexes = (("account_id", "occurred_at"), ("occurred_at", "kind"), ("payment_id", "id"))


class PointLot(Model):
    """The points one credit brought, with their expiry date. Debits consume lots first-
    expiring-first, so the balance is always the sum of the lots' remainders."""

    id = fields.BigIntField(primary_key=True)
    account: fields.ForeignKeyRelation[LoyaltyAccount] = fields.ForeignKeyField(
        "models.LoyaltyAccount", related_name="lots", on_delete=fields.RESTRICT
    )
    account_id: int
    entry: fields.ForeignKeyRelation[LedgerEntry] = fields.ForeignKeyField(
        "models.LedgerEntry", related_name="lots", on_delete=fields.RESTRICT
    )
    entry_id: int
    original = fields.BigIntField()
    remaining = fields.BigIntField()
    earned_at = fields.DatetimeField()
    expires_on = fields.DateField(description="the last day the points may be used")

    class Meta:
        table = "loyalty_lot"
        indexes = (("account_id", "expires_on"), ("expires_on", "remaining"))


class LotUse(Model):
    """How many points one debit took from one lot, so a reversal can give them back."""

    id = fields.BigIntField(primary_key=True)
    entry: fields.ForeignKeyRelation[LedgerEntry] = fields.ForeignKeyField(
        "models.LedgerEntry", related_name="lot_uses", on_delete=fields.RESTRICT
    )
    entry_id: int
    lot: fields.ForeignKeyRelation[PointLot] = fields.ForeignKeyField(
        "models.PointLot", related_name="uses", on_delete=fields.RESTRICT
    )
    lot_id: int
    amount = fields.BigIntField(description="positive points taken from the lot")

    class Meta:
        table = "loyalty_lot_use"


class TierChange(Model):
    """Tier history: every change of an account's tier, with the premium that justified it."""

    id = fields.IntField(primary_key=True)
    account: fields.ForeignKeyRelation[LoyaltyAccount] = fields.ForeignKeyField(
        "models.LoyaltyAccount", related_name="tier_changes", on_delete=fields.RESTRICT
    )
    account_id: int
    from_tier = fields.CharField(max_length=32)
    to_tier = fields.CharField(max_length=32)
    reason = fields.CharEnumField(TierChangeReason, max_length=16)
    trailing_premium_cents = fields.BigIntField()
    effective_at = fields.DatetimeField()
    key = fields.CharField(max_length=120, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "loyalty_tier_change"
        ordering = ["effective_at", "id"]


class Reward(Model):
    """A catalogue entry customers redeem points (or a tier entitlement) for."""

    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=40, unique=True)
    kind = fields.CharField(max_length=24, db_index=True)
    name_zh = fields.CharField(max_length=100)
    name_en = fields.CharField(max_length=100)
    points_cost = fields.IntField()
    min_tier = fields.CharField(max_length=32, default="standard")
    stock = fields.IntField(null=True, description="None means unlimited")
    monthly_limit = fields.IntField(null=True)
    yearly_limit = fields.IntField(null=True)
    active_from = fields.DateField(null=True)
    active_until = fields.DateField(null=True)
    retired_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "loyalty_reward"


class Partner(Model):
    """A service partner (car wash, driving service, garage) that verifies and uses vouchers.

    Only the sha256 of its bearer token is kept, and it sees only its own reward kinds.
    """

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=100, unique=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    reward_kinds: fields.Field[list[str]] = fields.JSONField(default=list)
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "loyalty_partner"


class Voucher(Model):
    """What a redemption issues: an unguessable code a partner marks used exactly once."""

    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=16, unique=True)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="vouchers", on_delete=fields.RESTRICT
    )
    customer_id: int
    reward: fields.ForeignKeyRelation[Reward] = fields.ForeignKeyField(
        "models.Reward", related_name="vouchers", on_delete=fields.RESTRICT
    )
    reward_id: int
    reward_kind = fields.CharField(max_length=24)
    points_cost = fields.IntField()
    entitlement = fields.BooleanField(default=False, description="a free tier benefit")
    discount_percent = fields.SmallIntField(default=0)
    status = fields.CharEnumField(VoucherStatus, max_length=16, default=VoucherStatus.ISSUED)
    request_key = fields.CharField(max_length=200, unique=True)
    issued_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    used_by: fields.ForeignKeyNullableRelation[Partner] = fields.ForeignKeyField(
        "models.Partner", related_name="vouchers_used", null=True, on_delete=fields.RESTRICT
    )
    used_by_id: int | None
    cancelled_at = fields.DatetimeField(null=True)
    debit_entry: fields.ForeignKeyNullableRelation[LedgerEntry] = fields.ForeignKeyField(
        "models.LedgerEntry", related_name="vouchers", null=True, on_delete=fields.RESTRICT
    )
    debit_entry_id: int | None
    refund_entry: fields.ForeignKeyNullableRelation[LedgerEntry] = fields.ForeignKeyField(
        "models.LedgerEntry", related_name="refunded_vouchers", null=True,
        on_delete=fields.RESTRICT,
    )
    refund_entry_id: int | None
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "loyalty_voucher"
        indexes = (("customer_id", "reward_kind", "issued_at"), ("status", "expires_at"))


class CheckIn(Model):
    """One row per customer per customer-local day: the unique pair makes check-in once a day."""

    id = fields.IntField(primary_key=True)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="checkins", on_delete=fields.RESTRICT
    )
    customer_id: int
    day = fields.DateField()
    streak = fields.IntField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "loyalty_checkin"
        unique_together = (("customer", "day"),)
