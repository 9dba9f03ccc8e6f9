"""The JSON rows the operator services build (``claim_json``, ``stats``, ``profile`` …), typed:
what a handler puts in a response and what the console's templates read.

Values are as they go on the wire: times and dates as ISO text, statuses as their codes.
``responses.py`` holds the pydantic models the OpenAPI document promises for the same
bodies; a test holds each row here to the fields of its model there, so the two cannot drift.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

# -- dashboard ---------------------------------------------------------------------------------


class SchedulerRunJson(TypedDict):
    job: str
    finished_at: str
    counts: dict[str, int]


class FailureJson(TypedDict):
    id: int
    kind: str
    status: str
    channel: str
    error: str
    phone: str
    campaign_id: int | None
    at: str


class LiveCampaignJson(TypedDict):
    id: int
    name: str
    status: str


class DashboardJson(TypedDict):
    day: str
    planned: dict[str, int]
    planned_total: int
    runs: list[SchedulerRunJson]
    delivery: dict[str, int]
    failures: list[FailureJson]
    campaigns: list[LiveCampaignJson]
    insured_today: int
    shared_phones_held: int
    conversations_waiting: int
    complaints_overdue: int


# -- campaigns ---------------------------------------------------------------------------------


class CampaignJson(TypedDict):
    id: int
    name: str
    status: str
    category: str
    channel_policy: str
    audience: dict[str, Any]
    templates: dict[str, str]
    send_at: str | None
    started_at: str | None
    finished_at: str | None
    enqueued: int
    failure: str | None
    created_at: str


class SmsPreviewJson(TypedDict):
    recipients: int
    by_language: dict[str, int]
    segments_per_message: dict[str, int]
    encoding: dict[str, str]
    segments: int
    price_per_segment: float
    currency: str
    estimated_cost: float
    cn_recipients: int


class PreviewSampleJson(TypedDict):
    customer_id: int
    name: str
    phone: str
    language: str
    channel: str
    text: str
    segments: int
    refused: str


class PreviewWarningJson(TypedDict):
    code: str
    count: NotRequired[int]
    language: NotRequired[str]
    prefixes: NotRequired[list[str]]


class ChannelSplitJson(TypedDict):
    telegram: int
    sms: int
    none: int


class PreviewJson(TypedDict):
    audience: int
    channels: ChannelSplitJson
    sms: SmsPreviewJson
    samples: list[PreviewSampleJson]
    warnings: list[PreviewWarningJson]
    as_of: str


class CampaignStatsJson(TypedDict):
    campaign: int
    status: str
    enqueued: int
    queued: int
    held: int
    in_flight_at_pause: int | None
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


class ClaimJson(TypedDict):
    number: str
    status: str
    customer_id: int
    policy_id: int
    reported_at: str
    description: str
    estimated_cents: int | None
    paid_cents: int | None
    required_documents: list[str]


class ClaimEventJson(TypedDict):
    id: int
    external_id: str | None
    status: str
    occurred_at: str
    note: str


class DocumentJson(TypedDict):
    id: int
    claim_id: int | None
    customer_id: int
    channel: str
    mime_type: str
    size: int
    original_name: str
    status: str
    reason: str
    created_at: str
    reviewed_at: str | None


# -- customers and loyalty -------------------------------------------------------------------


class CustomerJson(TypedDict):
    id: int
    name: str
    phone: str
    language: str


class ChoiceJson(TypedDict):
    by: str | None
    at: str | None


class CustomerChoicesJson(TypedDict):
    language: ChoiceJson
    timezone: ChoiceJson
    region: ChoiceJson


class CustomerDetailJson(CustomerJson):
    phone_full: str
    timezone: str
    customer_no: str | None
    choices: CustomerChoicesJson
    phone_shared: int
    created_at: str


class PolicyJson(TypedDict):
    number: str
    product: str
    plate: str
    start_date: str
    end_date: str
    status: str
    premium_cents: int


class ClaimBriefJson(TypedDict):
    number: str
    status: str
    reported_at: str


class ConsentJson(TypedDict):
    channel: str
    category: str
    granted: bool
    source: str
    at: str


class LedgerEntryJson(TypedDict):
    id: int
    kind: str
    amount: int
    balance_after: int
    reason: str
    operator: str
    at: str


class PointsJson(TypedDict):
    balance: int
    tier: str | None
    entries: list[LedgerEntryJson]


class MessageJson(TypedDict):
    id: int
    kind: str
    category: str
    status: str
    channel: str
    skip_reason: str
    campaign_id: int | None
    created_at: str
    sent_at: str | None


class TaskBriefJson(TypedDict):
    id: int
    kind: str
    status: str
    assignee: str


class CustomerProfileJson(TypedDict):
    customer: CustomerDetailJson
    policies: list[PolicyJson]
    claims: list[ClaimBriefJson]
    consents: list[ConsentJson]
    points: PointsJson
    messages: list[MessageJson]
    tasks: list[TaskBriefJson]


class SharedPhoneCustomerJson(TypedDict):
    id: int
    name: str


class SharedPhoneJson(TypedDict):
    id: int
    phone: str
    held: bool
    customers: list[SharedPhoneCustomerJson]
    flagged_at: str
    released_at: str | None
    released_by: str


class PointsAdjustedJson(TypedDict):
    entry_id: int
    points: int
    balance: int
    replayed: bool


class OperatorRedemptionJson(TypedDict):
    voucher_id: int
    code: str
    reward_code: str
    points_cost: int
    free: bool
    expires_at: str
    balance: int
    replayed: bool


class ErasureJson(TypedDict):
    customer_id: int
    already_erased: bool
    documents_deleted: int
    inbound_deleted: int
    messages_cleared: int
    messages_skipped: int
    files_not_removed: int


class RewardJson(TypedDict):
    code: str
    kind: str
    name_zh: str
    name_en: str
    points_cost: int
    min_tier: str
    stock: int | None
    monthly_limit: int | None
    yearly_limit: int | None
    active_from: str | None
    active_until: str | None
    retired_at: str | None


# -- tasks and imports -------------------------------------------------------------------------


class TaskJson(TypedDict):
    id: int
    kind: str
    customer_id: int
    policy_id: int | None
    status: str
    source: str
    assignee: str
    note: str
    phone: str | None
    created_at: str
    closed_at: str | None


class ImportJson(TypedDict):
    kind: str
    file: str
    created: int
    updated: int
    unchanged: int
    rejected: int
    problems: list[str]
    problems_truncated: bool
    notes: list[str]
    summary: str


# -- conversations, complaints, satisfaction ---------------------------------------------------


class ConversationJson(TypedDict):
    id: int
    customer_id: int | None
    name: str
    phone: str
    status: str
    handoff_reason: str
    assignee: str
    last_channel: str
    unread: int
    waiting_since: str | None
    first_response_at: str | None
    waited_minutes: int | None
    overdue: bool
    last_message_at: str
    answerable: bool


class ConversationMessageJson(TypedDict):
    id: int
    direction: str
    author: str
    operator: str
    channel: str
    kind: str
    body: str
    created_at: str


class ThreadJson(ConversationJson):
    messages: list[ConversationMessageJson]


class InboxCountsJson(TypedDict):
    waiting: int
    mine: int
    waiting_unread: int
    mine_unread: int
    overdue: int


class ReplyPreviewJson(TypedDict):
    channel: str
    segments: int | None
    encoding: str | None


class ComplaintExtensionJson(TypedDict):
    level: int
    reason: str
    requested_by: str
    requested_at: str
    approved_by: str
    approved_at: str | None


class ComplaintJson(TypedDict):
    id: int
    reference: str
    customer_id: int
    name: str
    phone: str
    conversation_id: int | None
    channel: str
    category: str
    description: str
    staff_complained: str
    handler: str
    status: str
    received_at: str
    due_at: str
    extension: int
    overdue: bool
    extensions: list[ComplaintExtensionJson]
    outcome: str
    closed_at: str | None
    within_deadline: bool | None


class SatisfactionGroupJson(TypedDict):
    name: str
    answered: int
    satisfied: int
    rate: float | None


class SatisfactionMonthJson(TypedDict):
    month: str
    answered: int
    satisfied: int
    rate: float | None


class SatisfactionJson(TypedDict):
    since: str
    target: float
    surveys: int
    sent: int
    answered: int
    satisfied: int
    rate: float | None
    response_rate: float | None
    by_operator: list[SatisfactionGroupJson]
    by_case: list[SatisfactionGroupJson]
    by_month: list[SatisfactionMonthJson]
