"""Tortoise ORM models for everything Engage owns or mirrors from the insurer's core system.

Money is integer cents (fen). Timestamps are timezone-aware and stored in UTC. Natural keys
(the core system's customer number, policy number, claim number, payment external id, outbox
dedup key) are unique so imports and retries are upserts, never duplicates. A phone number is
a contact point, not a key: several customers (a family, or a salesperson's own number put on
customers' policies) may share one.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model


class Language(StrEnum):
    ZH_CN = "zh-CN"
    EN = "en"


class Product(StrEnum):
    COMPULSORY = "compulsory"  # 交强险
    COMMERCIAL = "commercial"  # 商业险


class PolicyStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    RENEWED = "renewed"


class ClaimStatus(StrEnum):
    REPORTED = "reported"
    REGISTERED = "registered"
    SURVEYED = "surveyed"
    LOSS_ASSESSED = "loss_assessed"
    APPROVED = "approved"
    PAID = "paid"
    CLOSED = "closed"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


OPEN_CLAIM_STATUSES = (
    ClaimStatus.REPORTED,
    ClaimStatus.REGISTERED,
    ClaimStatus.SURVEYED,
    ClaimStatus.LOSS_ASSESSED,
    ClaimStatus.APPROVED,
)


class Channel(StrEnum):
    TELEGRAM = "telegram"
    SMS = "sms"
    CONSOLE = "console"
    WEB = "web"


class Category(StrEnum):
    SERVICE = "service"  # claim updates, policy service: cannot be turned off
    REMINDER = "reminder"  # renewal
    CARE = "care"  # birthday, festival
    ALERT = "alert"  # weather: a safety notice, outside the weekly cap, one a day at most
    MARKETING = "marketing"  # campaigns


class DocumentStatus(StrEnum):
    RECEIVED = "received"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class MessageStatus(StrEnum):
    PENDING = "pending"  # waiting for its not-before time
    CLAIMED = "claimed"  # leased by a dispatcher
    SENT = "sent"  # accepted by the provider
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    SKIPPED = "skipped"  # never sent, with a reason
    UNKNOWN = "unknown"  # the provider may or may not have it (timeout after the request)


class PaymentKind(StrEnum):
    PREMIUM = "premium"
    REFUND = "refund"


class TimestampMixin:
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)


# Model docstrings become SQL table comments, and the migration executor splits SQL on
# semicolons: keep semicolons out of model docstrings.


# A place weather is forecast for. Built-in regions (``storage/regions.csv``, loaded by
# migration 0015) are the provinces and prefecture-level cities, coded by their administrative
# code (``310000`` Shanghai, ``440300`` Shenzhen); ``name`` is the short Chinese name used in
# messages (深圳), ``full_name`` the official one (深圳市), ``alias`` an earlier short code
# (``SZ``) that imports still accept. Operators may add their own areas (``builtin`` false).
class Region(Model):
    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    name = fields.CharField(max_length=64)
    name_en = fields.CharField(max_length=64, default="")
    latitude = fields.FloatField()
    longitude = fields.FloatField()
    timezone = fields.CharField(max_length=64, default="Asia/Shanghai")
    full_name = fields.CharField(max_length=64, default="", db_default="")
    parent = fields.CharField(max_length=32, default="", db_default="",
                              description="the code of the region it lies in")
    alias = fields.CharField(max_length=32, null=True, unique=True,
                             description="an earlier code imports still accept")
    builtin = fields.BooleanField(default=False, db_default=False)

    class Meta:
        table = "region"


# A customer is a person: ``customer_no`` is the core system's customer number when imports
# carry it. For language, time zone and region, ``*_set_by`` says who set the value
# (``import``, or the channel the customer chose it in: ``telegram``, ``sms``,
# ``console:NAME``; empty when unknown) and ``*_set_at`` when: an import never changes a value
# the customer chose (storage.choices).
class Customer(TimestampMixin, Model):
    id = fields.IntField(primary_key=True)
    customer_no = fields.CharField(max_length=40, null=True, unique=True,
                                   description="the core system's customer number")
    name = fields.CharField(max_length=100)
    phone = fields.CharField(max_length=20, db_index=True,
                             description="E.164, a contact point several customers may share")
    phone_invalid_at = fields.DatetimeField(null=True)
    birthday = fields.DateField(null=True)
    # month * 100 + day of the solar birthday, indexed so a day's birthdays are one lookup
    birthday_md = fields.SmallIntField(null=True, db_index=True)
    lunar_birthday = fields.BooleanField(default=False)
    language = fields.CharEnumField(Language, max_length=8, default=Language.ZH_CN)
    timezone = fields.CharField(max_length=64, default="Asia/Shanghai")
    region: fields.ForeignKeyNullableRelation[Region] = fields.ForeignKeyField(
        "models.Region", related_name="customers", null=True, on_delete=fields.SET_NULL
    )
    region_id: int | None
    referral_code = fields.CharField(max_length=16, unique=True)
    referred_by: fields.ForeignKeyNullableRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="referrals", null=True, on_delete=fields.SET_NULL
    )
    referred_by_id: int | None
    email = fields.CharField(max_length=254, default="")
    language_set_by = fields.CharField(max_length=64, default="", db_default="")
    language_set_at = fields.DatetimeField(null=True)
    timezone_set_by = fields.CharField(max_length=64, default="", db_default="")
    timezone_set_at = fields.DatetimeField(null=True)
    region_set_by = fields.CharField(max_length=64, default="", db_default="")
    region_set_at = fields.DatetimeField(null=True)

    class Meta:
        table = "customer"
        # the weather job finds a region's customers (and whether it has any) by it
        indexes = (("region_id",),)


class TelegramAccount(TimestampMixin, Model):
    id = fields.IntField(primary_key=True)
    telegram_user_id = fields.BigIntField(unique=True)
    chat_id = fields.BigIntField()
    username = fields.CharField(max_length=64, default="")
    language_code = fields.CharField(max_length=16, default="")
    customer: fields.ForeignKeyNullableRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="telegram_accounts", null=True, on_delete=fields.SET_NULL
    )
    customer_id: int | None
    second_customer: fields.ForeignKeyNullableRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="second_telegram_accounts", null=True,
        on_delete=fields.SET_NULL,
        description="the other customer of a phone two customers share, linked with customer",
    )
    second_customer_id: int | None
    linked_at = fields.DatetimeField(null=True)
    blocked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "telegram_account"
        indexes = (("customer_id",), ("second_customer_id",))


class SharedPhone(Model):
    """A phone number three or more customers have, often a salesperson's own number put on
    customers' policies. Care and marketing SMS to it are held while released_at is empty,
    until an operator confirms the number is really theirs (a family, a fleet). A new customer
    on a released number flags it again.
    """

    id = fields.IntField(primary_key=True)
    phone = fields.CharField(max_length=20, unique=True)
    customers = fields.IntField(description="how many customers have it, at the last count")
    flagged_at = fields.DatetimeField()
    released_at = fields.DatetimeField(null=True)
    released_by = fields.CharField(max_length=64, default="")

    class Meta:
        table = "shared_phone"


class Policy(TimestampMixin, Model):
    id = fields.IntField(primary_key=True)
    number = fields.CharField(max_length=40, unique=True)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="policies", on_delete=fields.RESTRICT
    )
    customer_id: int
    product = fields.CharEnumField(Product, max_length=16)
    plate = fields.CharField(max_length=16, db_index=True)
    vehicle = fields.CharField(max_length=100, default="")
    coverage: Any = fields.JSONField(default=dict)
    start_date = fields.DateField()
    end_date = fields.DateField(db_index=True)
    premium_cents = fields.BigIntField()
    status = fields.CharEnumField(PolicyStatus, max_length=16, default=PolicyStatus.ACTIVE)
    renewed_by: fields.ForeignKeyNullableRelation[Policy] = fields.ForeignKeyField(
        "models.Policy", related_name="renews", null=True, on_delete=fields.SET_NULL
    )
    renewed_by_id: int | None
    renewed_at = fields.DatetimeField(null=True)
    cancelled_at = fields.DatetimeField(null=True)
    # The renewal desk (storage.renewal_desk): who sold it, whose branch, who is responsible
    # for renewing it, and how its renewal ended.
    agent = fields.CharField(max_length=64, default="", db_default="",
                             description="the agent on this policy, as imported")
    original_agent = fields.CharField(max_length=64, default="", db_default="",
                                      description="the agent the business is attributed to "
                                                  "for life, kept through renewals")
    branch = fields.CharField(max_length=32, default="", db_default="")
    owner = fields.CharField(max_length=64, default="", db_default="",
                             description="the operator who claimed its renewal (else the agent, "
                                         "else the branch pool)")
    claimed_at = fields.DatetimeField(null=True)
    outcome = fields.CharField(max_length=24, default="", db_default="")
    outcome_reason = fields.CharField(max_length=24, default="", db_default="")
    outcome_note = fields.CharField(max_length=200, default="", db_default="")
    outcome_by = fields.CharField(max_length=64, default="", db_default="")
    outcome_at = fields.DatetimeField(null=True)
    renewal_gap_days = fields.SmallIntField(null=True, description="days from its expiry to "
                                            "the start of the policy that renewed it")

    class Meta:
        table = "policy"
        indexes = (("status", "end_date"), ("customer_id",), ("branch", "end_date"))


class Claim(TimestampMixin, Model):
    id = fields.IntField(primary_key=True)
    number = fields.CharField(max_length=40, unique=True)
    policy: fields.ForeignKeyRelation[Policy] = fields.ForeignKeyField(
        "models.Policy", related_name="claims", on_delete=fields.RESTRICT
    )
    policy_id: int
    customer_id: int
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="claims", on_delete=fields.RESTRICT
    )
    status = fields.CharEnumField(ClaimStatus, max_length=16, default=ClaimStatus.REPORTED)
    reported_at = fields.DatetimeField()
    description = fields.TextField(default="")
    estimated_cents = fields.BigIntField(null=True)
    paid_cents = fields.BigIntField(null=True)
    required_documents: Any = fields.JSONField(default=list)

    class Meta:
        table = "claim"
        indexes = (("customer_id",), ("policy_id",))


class ClaimEvent(Model):
    id = fields.IntField(primary_key=True)
    claim: fields.ForeignKeyRelation[Claim] = fields.ForeignKeyField(
        "models.Claim", related_name="events", on_delete=fields.CASCADE
    )
    claim_id: int
    status = fields.CharEnumField(ClaimStatus, max_length=16)
    occurred_at = fields.DatetimeField()
    note = fields.TextField(default="")
    external_id = fields.CharField(max_length=64, unique=True, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "claim_event"
        indexes = (("claim_id",),)
        ordering = ["occurred_at", "id"]


class Payment(Model):
    """A premium payment or refund pushed from the core system (earns or reverses points)."""

    id = fields.IntField(primary_key=True)
    external_id = fields.CharField(max_length=64, unique=True)
    policy: fields.ForeignKeyRelation[Policy] = fields.ForeignKeyField(
        "models.Policy", related_name="payments", on_delete=fields.RESTRICT
    )
    policy_id: int
    customer_id: int
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="payments", on_delete=fields.RESTRICT
    )
    kind = fields.CharEnumField(PaymentKind, max_length=8, default=PaymentKind.PREMIUM)
    amount_cents = fields.BigIntField()
    paid_at = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "payment"
        indexes = (("customer_id", "paid_at"), ("policy_id",))


class Document(Model):
    id = fields.IntField(primary_key=True)
    claim: fields.ForeignKeyNullableRelation[Claim] = fields.ForeignKeyField(
        "models.Claim", related_name="documents", null=True, on_delete=fields.SET_NULL
    )
    claim_id: int | None
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="documents", on_delete=fields.RESTRICT
    )
    customer_id: int
    channel = fields.CharEnumField(Channel, max_length=16)
    mime_type = fields.CharField(max_length=64)
    size = fields.BigIntField()
    sha256 = fields.CharField(max_length=64, db_index=True)
    storage_key = fields.CharField(max_length=255)
    original_name = fields.CharField(max_length=255, default="")
    status = fields.CharEnumField(DocumentStatus, max_length=16, default=DocumentStatus.RECEIVED)
    reason = fields.TextField(default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    reviewed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "document"
        indexes = (("customer_id",), ("claim_id",))


class Consent(Model):
    """An append-only consent record: the newest per (customer, channel, category) wins.

    ``channel`` is ``sms``, ``telegram`` or ``*`` (every channel).
    """

    id = fields.IntField(primary_key=True)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="consents", on_delete=fields.CASCADE
    )
    customer_id: int
    channel = fields.CharField(max_length=16)
    category = fields.CharEnumField(Category, max_length=16)
    granted = fields.BooleanField()
    source = fields.CharField(max_length=64)
    reference = fields.CharField(
        max_length=64, default="", db_default="",
        description="what proves it: an SMS MessageSid, a Telegram update id, an import line")
    created_at = fields.DatetimeField()

    class Meta:
        table = "consent"
        indexes = (("customer_id", "category", "channel", "created_at"),)


class PhoneSuppression(Model):
    """What the holder of a phone number asked, remembered by number, not by customer.

    Append-only like ``Consent``: the newest row per (phone, channel, category) wins, and
    ``suppressed`` false lifts an earlier one. An SMS STOP from a number no customer has yet
    is kept here and becomes the consent of whoever gets the number (``storage.suppressions``).
    A row with channel ``*`` for every category, service included, says this number gets no
    message at all (a PIPL erasure or objection).
    """

    id = fields.IntField(primary_key=True)
    phone = fields.CharField(max_length=20, description="E.164")
    channel = fields.CharField(max_length=16, description="sms, or * for every channel")
    category = fields.CharEnumField(Category, max_length=16)
    suppressed = fields.BooleanField()
    source = fields.CharField(max_length=64)
    reference = fields.CharField(max_length=64, default="",
                                 description="what carried it: the MessageSid, a request id")
    created_at = fields.DatetimeField()

    class Meta:
        table = "phone_suppression"
        indexes = (("phone", "created_at"),)


class Message(TimestampMixin, Model):
    """The outbox: every outbound message, from the rule that queued it to its final status."""

    id = fields.BigIntField(primary_key=True)
    dedup_key = fields.CharField(max_length=200, unique=True)
    kind = fields.CharField(max_length=40)
    category = fields.CharEnumField(Category, max_length=16)
    # No foreign key in the database (migration 0024): checking it row by row was a third of
    # a festival day's set-based queueing. Customer rows are deleted only by
    # storage.integrity.delete_customers, which deletes their messages in the same transaction
    # (erasure keeps the row), and `engage db check` counts messages whose customer is gone.
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="messages", on_delete=fields.NO_ACTION,
        db_constraint=False
    )
    customer_id: int
    channel_policy = fields.CharField(max_length=20, default="telegram_then_sms")
    channel = fields.CharEnumField(Channel, max_length=16, null=True)
    template_key = fields.CharField(max_length=60)
    params: Any = fields.JSONField(default=dict)
    not_before = fields.DatetimeField()
    stale_after = fields.DatetimeField(null=True)
    status = fields.CharEnumField(MessageStatus, max_length=16, default=MessageStatus.PENDING)
    skip_reason = fields.CharField(max_length=32, default="")
    attempts = fields.SmallIntField(default=0)
    lease_expires_at = fields.DatetimeField(null=True)
    provider_id = fields.CharField(max_length=64, null=True, db_index=True)
    last_error = fields.TextField(default="")
    segments = fields.SmallIntField(default=0)
    campaign_id = fields.IntField(null=True, db_index=True)
    sent_at = fields.DatetimeField(null=True)
    delivered_at = fields.DatetimeField(null=True)

    class Meta:
        table = "message"
        indexes = (("status", "not_before"), ("customer_id", "created_at"))


class TaskStatus(StrEnum):
    OPEN = "open"
    ASSIGNED = "assigned"
    CLOSED = "closed"


class Task(TimestampMixin, Model):
    """Work for an operator, such as a renewal call-back a customer asked for."""

    id = fields.IntField(primary_key=True)
    kind = fields.CharField(max_length=32)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="tasks", on_delete=fields.CASCADE
    )
    customer_id: int
    policy: fields.ForeignKeyNullableRelation[Policy] = fields.ForeignKeyField(
        "models.Policy", related_name="tasks", null=True, on_delete=fields.SET_NULL
    )
    policy_id: int | None
    status = fields.CharEnumField(TaskStatus, max_length=16, default=TaskStatus.OPEN)
    source = fields.CharField(max_length=16, description="telegram, sms or web")
    assignee = fields.CharField(max_length=64, default="")
    note = fields.TextField(default="")
    due_at = fields.DatetimeField(null=True, description="when it should be done (UTC)")
    closed_at = fields.DatetimeField(null=True)
    dedup_key = fields.CharField(max_length=200, null=True, unique=True,
                                 description="one task per key: a button tapped twice, an "
                                             "update replayed, a day planned again")
    result = fields.CharField(max_length=32, default="", db_default="",
                              description="a logged call's result, an escalation's level")

    class Meta:
        table = "task"
        indexes = (("status", "created_at"), ("customer_id",), ("policy_id", "created_at"))


class RenewalKpiRollup(Model):
    """The renewal KPIs of past expiry days, summed once (storage.renewal_rollup). Per expiry
    day: the totals (dimension total) and the counts by branch, product, channel of the last
    contact and lapse reason (lapse: key the outcome, detail the reason). Per complete expiry
    month (day its 1st): the counts by agent (agent) and the month's marker (month). A day or
    month is built when its total or month row is there."""

    id = fields.IntField(primary_key=True)
    day = fields.DateField()
    dimension = fields.CharField(max_length=16)
    key = fields.CharField(max_length=64, default="")
    detail = fields.CharField(max_length=32, default="")
    expired = fields.IntField(default=0)
    renewed = fields.IntField(default=0)
    won_back = fields.IntField(default=0)
    contacted_twice = fields.IntField(default=0)

    class Meta:
        table = "renewal_kpi_rollup"
        unique_together = (("day", "dimension", "key", "detail"),)


class RenewalKpiDirty(Model):
    """An expiry day whose rollup rows may be stale. Written by database triggers on policy,
    message and task (migration 0023), consumed by storage.renewal_rollup.refresh."""

    id = fields.BigIntField(primary_key=True)
    day = fields.DateField()

    class Meta:
        table = "renewal_kpi_dirty"
        indexes = (("day",),)


class ProcessedUpdate(Model):
    """Telegram update ids already handled, so a redelivered update has no second effect."""

    id = fields.BigIntField(primary_key=True)
    update_id = fields.BigIntField(unique=True)
    processed_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "telegram_processed_update"


class LinkAttempt(Model):
    """One try at linking a Telegram account to a customer (rate-limited per user)."""

    id = fields.IntField(primary_key=True)
    telegram_user_id = fields.BigIntField(db_index=True)
    phone = fields.CharField(max_length=20, default="")
    outcome = fields.CharField(max_length=24)
    created_at = fields.DatetimeField()

    class Meta:
        table = "telegram_link_attempt"
        indexes = (("telegram_user_id", "created_at"),)


class LinkCode(Model):
    """A one-time code sent by SMS to confirm re-linking a phone to another Telegram user."""

    id = fields.IntField(primary_key=True)
    telegram_user_id = fields.BigIntField(db_index=True)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="link_codes", on_delete=fields.CASCADE
    )
    customer_id: int
    code_hash = fields.CharField(max_length=64)
    expires_at = fields.DatetimeField()
    tries = fields.SmallIntField(default=0)
    used_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "telegram_link_code"


class InboundSms(Model):
    """An inbound SMS/MMS by Twilio MessageSid: a retried webhook gets the same reply."""

    id = fields.IntField(primary_key=True)
    message_sid = fields.CharField(max_length=64, unique=True)
    from_phone = fields.CharField(max_length=20)
    customer: fields.ForeignKeyNullableRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="inbound_sms", null=True, on_delete=fields.SET_NULL
    )
    customer_id: int | None
    body = fields.TextField(default="")
    keyword = fields.CharField(max_length=16, default="")
    reply = fields.TextField(default="")
    num_media = fields.SmallIntField(default=0)
    created_at = fields.DatetimeField()

    class Meta:
        table = "sms_inbound"
        indexes = (("customer_id",), ("from_phone",), ("created_at",))  # erasure, retention


class SmsMediaPending(Model):
    """An MMS media item still to delete from Twilio, written with the inbound message that
    brought it; gone once Twilio confirms. ``gave_up_at`` marks one the sweep stopped trying."""

    id = fields.IntField(primary_key=True)
    message_sid = fields.CharField(max_length=64, db_index=True)
    media_url = fields.TextField()
    attempts = fields.SmallIntField(default=0)
    next_attempt_at = fields.DatetimeField()
    last_error = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField()
    gave_up_at = fields.DatetimeField(null=True)

    class Meta:
        table = "sms_media_pending"
        indexes = (("gave_up_at", "next_attempt_at"),)


class SmsStatusReport(Model):
    """A Twilio status callback that came before its message's outcome was written (the
    dispatcher records an SMS's sid with the rest of its batch). Applied and deleted when the
    outcome is written, pruned once older than the callbacks worth keeping."""

    id = fields.BigIntField(primary_key=True)
    message_sid = fields.CharField(max_length=64, db_index=True)
    status = fields.CharField(max_length=16)
    error_code = fields.CharField(max_length=16, default="")
    received_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "sms_status_report"
