"""What the operator API answers: one pydantic model per response body.

The route table names these (``response=``) and the OpenAPI document is generated from them,
so a client generated from the document gets typed results. The handlers build plain JSON
(the ``*_json`` functions of each service); a test calls every route and checks each body
against the document, and ``extra="forbid"`` makes a field the document does not declare a
failure there rather than a surprise for a client.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from storage.models import (
    ClaimStatus,
    DocumentStatus,
    MessageStatus,
    PolicyStatus,
    Product,
    TaskStatus,
)
from storage.operator_models import CampaignStatus, Role


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- access, audit, dashboard ----------------------------------------------------------------


class Me(Out):
    id: int
    name: str
    role: Role
    language: str
    has_contact: bool = Field(description="has a contact record for campaign test sends")
    via: Literal["token", "session"]


class AuditEntry(Out):
    id: int
    operator: str
    action: str = Field(description="e.g. campaign.start, claim.upsert, points.adjust")
    target_type: str
    target_id: str
    before: Any = Field(description="the object before the change (null for a creation)")
    after: Any = Field(description="the object after the change")
    at: datetime


class SchedulerRunOut(Out):
    job: str
    finished_at: datetime
    counts: dict[str, int]


class FailureOut(Out):
    id: int
    kind: str
    status: MessageStatus
    channel: str
    error: str
    phone: str = Field(description="masked")
    campaign_id: int | None
    at: datetime


class LiveCampaign(Out):
    id: int
    name: str
    status: CampaignStatus


class Dashboard(Out):
    day: date = Field(description="the local day (schedule.timezone)")
    planned: dict[str, int] = Field(
        description="messages due, queued or sent today, by kind")
    planned_total: int
    runs: list[SchedulerRunOut]
    delivery: dict[str, int] = Field(description="messages that changed today, by status")
    failures: list[FailureOut]
    campaigns: list[LiveCampaign] = Field(description="scheduled, sending, paused or failed")
    insured_today: int = Field(description="customers with a policy covering today "
                                           "(any status but cancelled)")
    shared_phones_held: int = Field(description="numbers three or more customers share, "
                                                "still to check")
    conversations_waiting: int = Field(description="handed off, nobody has it yet")
    complaints_overdue: int = Field(description="open complaints past their due date")


# -- campaigns ---------------------------------------------------------------------------------


class CampaignOut(Out):
    id: int
    name: str
    status: CampaignStatus
    category: Literal["care", "marketing"]
    channel_policy: Literal["telegram_then_sms", "telegram_only", "sms_only"]
    audience: dict[str, Any] = Field(description="the AudienceFilter it was created with")
    templates: dict[str, str] = Field(description="the text per language")
    send_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    enqueued: int
    failure: str | None = Field(description="why enqueuing stopped, when status is failed")
    created_at: datetime


class AudienceCount(Out):
    audience: int


class SmsPreview(Out):
    recipients: int
    by_language: dict[str, int]
    segments_per_message: dict[str, int]
    encoding: dict[str, Literal["GSM-7", "UCS-2"]]
    segments: int
    price_per_segment: float
    currency: str
    estimated_cost: float
    cn_recipients: int = Field(description="SMS recipients with a +86 number")


class PreviewSample(Out):
    customer_id: int
    name: str
    phone: str = Field(description="masked")
    language: str
    channel: Literal["telegram", "sms", "none"]
    text: str
    segments: int
    refused: str = Field(description="the content check that would refuse it, or empty")


class PreviewWarning(Out):
    code: str
    count: int | None = None
    language: str | None = None
    prefixes: list[str] | None = None


class ChannelSplit(Out):
    telegram: int
    sms: int
    none: int


class Preview(Out):
    audience: int
    channels: ChannelSplit
    sms: SmsPreview
    samples: list[PreviewSample]
    warnings: list[PreviewWarning]
    as_of: datetime = Field(description="when worked out: now for a draft, the start for a "
                            "started campaign")


class TestSend(Out):
    message_id: int
    status: MessageStatus


class CampaignStats(Out):
    campaign: int
    status: CampaignStatus
    enqueued: int
    queued: int = Field(description="waiting to be sent (not held); waiting + held + the "
                        "finished statuses add up to enqueued")
    held: int = Field(description="unsent messages a pause holds")
    in_flight_at_pause: int | None = Field(description="while paused: messages already on "
                                           "the wire when the pause was committed")
    sent: int
    delivered: int
    failed: int
    unknown: int
    skipped: int
    skipped_by_reason: dict[str, int]
    by_status: dict[str, int]
    by_channel: dict[str, int]
    enqueue_progress: float
    delivery_progress: float


# -- claims and documents ----------------------------------------------------------------------


class ClaimOut(Out):
    number: str
    status: ClaimStatus
    customer_id: int
    policy_id: int
    reported_at: datetime
    description: str
    estimated_cents: int | None
    paid_cents: int | None
    required_documents: list[str]


class ClaimEventOut(Out):
    id: int
    external_id: str | None
    status: ClaimStatus
    occurred_at: datetime
    note: str


class ClaimEventRecorded(ClaimEventOut):
    replayed: bool = Field(description="true when this event id was already recorded")


class DocumentOut(Out):
    id: int
    claim_id: int | None
    customer_id: int
    channel: str
    mime_type: str
    size: int
    original_name: str
    status: DocumentStatus
    reason: str
    created_at: datetime
    reviewed_at: datetime | None


class ClaimDetail(ClaimOut):
    events: list[ClaimEventOut]
    documents: list[DocumentOut]


# -- customers and loyalty -------------------------------------------------------------------


class CustomerRow(Out):
    id: int
    name: str
    phone: str = Field(description="masked")
    language: str


class CustomerDetail(CustomerRow):
    phone_full: str
    timezone: str
    customer_no: str | None = Field(description="the core system's customer number")
    choices: CustomerChoices = Field(
        description="who set the language, time zone and region, and when (an import never "
                    "overwrites the customer's own choice)")
    phone_shared: int = Field(description="customers with this phone number, this one included")
    created_at: datetime


class SharedPhoneCustomer(Out):
    id: int
    name: str = Field(description="masked")


class SharedPhoneOut(Out):
    id: int
    phone: str = Field(description="masked")
    held: bool = Field(description="care and marketing SMS to it are held until released")
    customers: list[SharedPhoneCustomer]
    flagged_at: datetime
    released_at: datetime | None
    released_by: str = Field(description="the operator who released it; empty while held")


class PolicyOut(Out):
    number: str
    product: Product
    plate: str
    start_date: date
    end_date: date
    status: PolicyStatus
    premium_cents: int


class ClaimBrief(Out):
    number: str
    status: ClaimStatus
    reported_at: datetime


class ConsentOut(Out):
    channel: str
    category: str
    granted: bool
    source: str
    at: datetime


class LedgerEntryOut(Out):
    id: int
    kind: str
    amount: int
    balance_after: int
    reason: str
    operator: str
    at: datetime


class PointsOut(Out):
    balance: int
    tier: str | None
    entries: list[LedgerEntryOut]


class MessageOut(Out):
    id: int
    kind: str
    category: str
    status: MessageStatus
    channel: str = Field(description="telegram, sms, console or web; empty before dispatch")
    skip_reason: str
    campaign_id: int | None
    created_at: datetime
    sent_at: datetime | None


class TaskBrief(Out):
    id: int
    kind: str
    status: TaskStatus
    assignee: str


class ChoiceOut(Out):
    by: str = Field(description="who set the value: import, telegram, sms; empty if unknown")
    at: datetime | None


class CustomerChoices(Out):
    language: ChoiceOut
    timezone: ChoiceOut
    region: ChoiceOut


class CustomerProfile(Out):
    customer: CustomerDetail
    policies: list[PolicyOut]
    claims: list[ClaimBrief]
    consents: list[ConsentOut]
    points: PointsOut
    messages: list[MessageOut]
    tasks: list[TaskBrief]


class PointsAdjusted(Out):
    entry_id: int
    points: int
    balance: int
    replayed: bool


class OperatorRedemption(Out):
    voucher_id: int
    code: str
    reward_code: str
    points_cost: int
    free: bool
    expires_at: str
    balance: int
    replayed: bool


class CustomerExport(Out):
    """Every record held about the customer, each list as the stored rows."""

    exported_at: str
    customer: dict[str, Any]
    erased: list[dict[str, Any]]
    telegram_accounts: list[dict[str, Any]]
    policies: list[dict[str, Any]]
    claims: list[dict[str, Any]]
    claim_events: list[dict[str, Any]]
    payments: list[dict[str, Any]]
    documents: list[dict[str, Any]]
    consents: list[dict[str, Any]]
    number_choices: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    inbound_sms: list[dict[str, Any]]
    loyalty_account: list[dict[str, Any]]
    ledger_entries: list[dict[str, Any]]
    vouchers: list[dict[str, Any]]
    check_ins: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    sms_redemptions: list[dict[str, Any]]
    telegram_link_attempts: list[dict[str, Any]]
    operator_actions: list[dict[str, Any]]


class ErasureOut(Out):
    customer_id: int
    already_erased: bool
    documents_deleted: int
    inbound_deleted: int
    messages_cleared: int
    messages_skipped: int
    files_not_removed: int


class RewardOut(Out):
    code: str
    kind: str
    name_zh: str
    name_en: str
    points_cost: int
    min_tier: str
    stock: int | None = Field(description="null: unlimited")
    monthly_limit: int | None
    yearly_limit: int | None
    active_from: date | None
    active_until: date | None
    retired_at: datetime | None


# -- tasks and imports -------------------------------------------------------------------------


class TaskOut(Out):
    id: int
    kind: str
    customer_id: int
    policy_id: int | None
    status: TaskStatus
    source: str
    assignee: str
    note: str
    phone: str | None = Field(description="masked")
    created_at: datetime
    closed_at: datetime | None


class ConversationOut(Out):
    id: int
    customer_id: int | None
    name: str = Field(description="the customer's name; empty for an unknown number")
    phone: str = Field(description="masked")
    status: Literal["bot", "waiting", "held"]
    handoff_reason: str
    assignee: str
    last_channel: str = Field(description="where a reply goes: telegram or sms")
    unread: int
    waiting_since: datetime | None
    first_response_at: datetime | None
    waited_minutes: int | None = Field(description="office time without a first reply")
    overdue: bool = Field(description="beyond conversations.first_response_minutes")
    last_message_at: datetime
    answerable: bool = Field(description="false for unknown senders (no customer record)")


class ConversationMessageOut(Out):
    id: int
    direction: Literal["in", "out"]
    author: Literal["customer", "bot", "operator"]
    operator: str
    channel: str
    kind: str
    body: str
    created_at: datetime


class ThreadOut(ConversationOut):
    messages: list[ConversationMessageOut]


class InboxCounts(Out):
    waiting: int
    mine: int
    waiting_unread: int
    mine_unread: int
    overdue: int


class ReplyPreview(Out):
    channel: str
    segments: int | None = Field(description="SMS segments of the signed text; null for "
                                 "Telegram")
    encoding: Literal["GSM-7", "UCS-2"] | None


class ComplaintExtensionOut(Out):
    level: int = Field(description="1: to 30 days; 2: a further 30 (counts once approved)")
    reason: str
    requested_by: str
    requested_at: datetime
    approved_by: str
    approved_at: datetime | None


class ComplaintOut(Out):
    id: int
    reference: str = Field(description="TS20261204-0001")
    customer_id: int
    name: str
    phone: str = Field(description="masked")
    conversation_id: int | None
    channel: str
    category: Literal["claims", "renewal_pricing", "sales_conduct", "service_attitude",
                      "privacy", "other"]
    description: str
    staff_complained: str
    handler: str
    status: Literal["open", "closed"]
    received_at: datetime
    due_at: datetime
    extension: int
    overdue: bool
    extensions: list[ComplaintExtensionOut]
    outcome: str
    closed_at: datetime | None
    within_deadline: bool | None


class SatisfactionGroup(Out):
    name: str = Field(description="the operator's name, or the case type")
    answered: int
    satisfied: int = Field(description="scores of 4 or 5")
    rate: float | None


class SatisfactionMonth(Out):
    month: str = Field(description="YYYY-MM, local")
    answered: int
    satisfied: int
    rate: float | None


class SatisfactionOut(Out):
    since: date
    target: float = Field(description="satisfaction.target_percent as a fraction")
    surveys: int = Field(description="surveys offered since then")
    sent: int = Field(description="surveys that reached a provider")
    answered: int
    satisfied: int
    rate: float | None = Field(description="satisfied ÷ answered")
    response_rate: float | None = Field(description="answered ÷ sent")
    by_operator: list[SatisfactionGroup]
    by_case: list[SatisfactionGroup]
    by_month: list[SatisfactionMonth]
class AccidentReportOut(Out):
    id: int
    reference: str = Field(description="the reference the customer was given")
    claim_number: str | None = Field(description="the claim's number now")
    status: str = Field(description="pending, sending, delivered or dead")
    attempts: int
    next_attempt_at: datetime
    last_error: str
    core_claim_number: str | None
    created_at: datetime
    delivered_at: datetime | None
    dead_at: datetime | None


class CoreNumberSet(ClaimOut):
    changed: bool = Field(description="false when the report already had this number")


class ImportResult(Out):
    kind: Literal["customers", "policies", "claims", "payments"]
    file: str
    created: int
    updated: int
    unchanged: int
    rejected: int
    problems: list[str] = Field(description="'line N: column: problem', the first ones")
    problems_truncated: bool
    notes: list[str]
    summary: str


# -- regions ----------------------------------------------------------------------------------


class RegionAlert(Out):
    day: date = Field(description="the forecast day")
    hazards: list[str] = Field(description="heavy_rain, snow, storm, freeze")
    seen_on: date = Field(description="the last plan day the forecast gave them")


class RegionOut(Out):
    code: str = Field(description="administrative code (440300) or a custom area's code")
    name: str
    name_en: str
    latitude: float
    longitude: float
    timezone: str
    parent: str = Field(description="the code of the region it lies in")
    builtin: bool
    customers: int
    last_alert: RegionAlert | None = Field(description="the latest day with hazards")
    notices_week: int = Field(description="weather notices to its customers, last 7 days")


class RegionImportOut(Out):
    created: int
    updated: int
    rejected: int
    problems: list[str] = Field(description="'line N: column: problem'")
    summary: str
# -- renewal desk --------------------------------------------------------------------------------


class RenewalPolicyOut(Out):
    id: int
    number: str
    product: Product
    plate: str
    end_date: date
    days_left: int = Field(description="negative once expired")
    status: PolicyStatus
    branch: str
    agent: str = Field(description="the agent on this policy, as imported")
    original_agent: str = Field(description="whom the business is attributed to for life")
    owner: str = Field(description="who claimed its renewal")
    responsible: str = Field(description="the owner, else the agent; empty: the branch pool")
    claimed_at: datetime | None
    outcome: str = Field(description="renewed, renewed_elsewhere, not_renewing, "
                                     "sold_scrapped, unreachable, or empty")
    outcome_reason: str = Field(description="price, service, claim_experience, "
                                            "sold_scrapped, other (for not_renewing)")
    outcome_note: str
    outcome_by: str = Field(description="an operator, import, or customer:telegram/sms")
    outcome_at: datetime | None


class RenewalCustomerOut(Out):
    id: int
    name: str
    phone: str = Field(description="masked")


class RenewalCarPolicyOut(Out):
    id: int
    number: str
    product: Product
    end_date: date
    status: PolicyStatus


class RenewalContactOut(Out):
    type: Literal["message", "task"]
    kind: str
    at: datetime
    channel: str | None
    status: str = Field(description="a message's delivery status, a task's status")
    by: str
    result: str
    note: str


class RenewalRowOut(RenewalPolicyOut):
    customer: RenewalCustomerOut
    car: list[RenewalCarPolicyOut] = Field(description="every policy of the customer's car")
    contacts: list[RenewalContactOut]
    contact_count: int


class RenewalClaimOut(Out):
    claimed: list[RenewalPolicyOut]


class KpiMonthOut(Out):
    month: str = Field(description="YYYY-MM of expiry")
    expired: int
    renewed: int = Field(description="renewed within 30 days after expiry")
    rate: float | None
    won_back: int = Field(description="renewed after a lapse")
    contacted_twice: int = Field(description="contacted at least twice before expiry")


class KpiGroupOut(Out):
    key: str
    expired: int
    renewed: int
    rate: float | None


class KpiReachOut(Out):
    channel: str = Field(description="telegram, sms, or none (skipped)")
    due: int
    reached: int
    rate: float | None


class KpiReasonOut(Out):
    outcome: str = Field(description="empty: no outcome recorded")
    reason: str
    count: int


class KpiCallbacksOut(Out):
    asked: int
    answered: int
    on_time: int = Field(description="closed by their due time")
    median_working_hours: float | None


class KpiTotalsOut(Out):
    expired: int
    renewed: int
    rate: float | None
    won_back: int
    contacted_twice: int


class RenewalKpisOut(Out):
    as_of: date
    first_expiry: date
    totals: KpiTotalsOut
    months: list[KpiMonthOut]
    by_branch: list[KpiGroupOut]
    by_agent: list[KpiGroupOut] = Field(description="by the original agent")
    by_product: list[KpiGroupOut]
    by_channel: list[KpiGroupOut] = Field(description="by the channel of the last contact")
    reach: list[KpiReachOut]
    lapse_reasons: list[KpiReasonOut]
    callbacks: KpiCallbacksOut
