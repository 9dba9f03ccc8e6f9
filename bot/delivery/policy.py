"""Who gets a message, on which channel, and when: pure decisions, no I/O.

Order of checks for one message: stale → quiet hours → channel (link state, consent,
phone validity, channel policy) → weekly cap. Each outcome is a ``Send``, a ``Hold`` (try
again at a later time, never dropped) or a ``Skip`` with a reason that operators can count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from storage.models import Category, Channel

# Reasons a message is skipped (stored in Message.skip_reason).
NO_CHANNEL = "no_channel"
OPTED_OUT = "opted_out"
CAPPED = "capped"
STALE = "stale"
INVALID_PHONE = "invalid_phone"
NO_CONSENT = "no_marketing_consent"
CONTENT = "content_refused"
SHARED_PHONE = "shared_phone"  # a number 3+ customers share, not yet released by an operator

CAPPED_CATEGORIES = frozenset({Category.CARE, Category.MARKETING})
# Not sent by SMS to a shared number an operator has not released (a salesperson's phone).
HELD_ON_SHARED_PHONES = CAPPED_CATEGORIES | {Category.ALERT}


@dataclass(frozen=True, slots=True)
class Recipient:
    """What the dispatcher knows about one customer when it decides."""

    customer_id: int
    phone: str
    phone_valid: bool
    language: str
    timezone: str
    telegram_chat_id: int | None  # linked and not blocked
    # the phone is shared by three or more customers and not released: no care or marketing SMS
    sms_held: bool = False
    # newest consent per (channel, category); channel "*" means every channel
    consents: Mapping[tuple[str, str], bool] = field(default_factory=dict)
    recent_capped: int = 0  # care + marketing messages sent in the last 7 days


@dataclass(frozen=True, slots=True)
class Rules:
    quiet_start: time
    quiet_end: time
    quiet_exempt: frozenset[str]
    weekly_cap: int
    sms_enabled: bool
    telegram_enabled: bool
    marketing_consent_prefixes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Send:
    channel: Channel


@dataclass(frozen=True, slots=True)
class Hold:
    until: datetime


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str


Decision = Send | Hold | Skip


def quiet_until(now: datetime, tz: str, start: time, end: time) -> datetime | None:
    """If ``now`` falls in the quiet window in ``tz``, the moment the window ends, else None.

    The window may cross midnight (21:00–08:00) or not (13:00–14:00).
    """
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    t = local.timetz().replace(tzinfo=None)
    if start == end:
        return None
    crosses_midnight = start > end
    inside = (t >= start or t < end) if crosses_midnight else (start <= t < end)
    if not inside:
        return None
    end_day = local.date()
    if crosses_midnight and t >= start:
        end_day += timedelta(days=1)
    return datetime.combine(end_day, end, tzinfo=zone).astimezone(now.tzinfo)


def allowed(recipient: Recipient, channel: Channel, category: str) -> bool:
    """Consent: service always; otherwise the newest record for this channel or "*" wins."""
    if category == Category.SERVICE:
        return True
    specific = recipient.consents.get((channel.value, category))
    if specific is not None:
        return specific
    general = recipient.consents.get(("*", category))
    return True if general is None else general


def _marketing_needs_consent(recipient: Recipient, rules: Rules) -> bool:
    return any(recipient.phone.startswith(p) for p in rules.marketing_consent_prefixes)


def _has_explicit_grant(recipient: Recipient, channel: Channel, category: str) -> bool:
    return bool(
        recipient.consents.get((channel.value, category))
        or recipient.consents.get(("*", category))
    )


def choose_channel(
    recipient: Recipient,
    category: str,
    channel_policy: str,
    rules: Rules,
    *,
    exclude: frozenset[Channel] = frozenset(),
) -> Channel | Skip:
    candidates: list[Channel] = []
    if channel_policy in ("telegram_then_sms", "telegram_only"):
        candidates.append(Channel.TELEGRAM)
    if channel_policy in ("telegram_then_sms", "sms_only"):
        candidates.append(Channel.SMS)
    reasons: list[str] = []
    for channel in candidates:
        if channel in exclude:
            continue
        if channel is Channel.TELEGRAM:
            if not rules.telegram_enabled or recipient.telegram_chat_id is None:
                continue
        else:
            if not rules.sms_enabled or not recipient.phone:
                continue
            if not recipient.phone_valid:
                reasons.append(INVALID_PHONE)
                continue
            if recipient.sms_held and category in HELD_ON_SHARED_PHONES:
                reasons.append(SHARED_PHONE)
                continue
        if not allowed(recipient, channel, category):
            reasons.append(OPTED_OUT)
            continue
        if (
            category == Category.MARKETING
            and _marketing_needs_consent(recipient, rules)
            and not _has_explicit_grant(recipient, channel, category)
        ):
            reasons.append(NO_CONSENT)
            continue
        return channel
    for reason in (OPTED_OUT, NO_CONSENT, SHARED_PHONE, INVALID_PHONE):
        if reason in reasons:
            return Skip(reason)
    return Skip(NO_CHANNEL)


def decide(
    *,
    category: str,
    channel_policy: str,
    stale_after: datetime | None,
    recipient: Recipient,
    rules: Rules,
    now: datetime,
    exclude: frozenset[Channel] = frozenset(),
) -> Decision:
    if stale_after is not None and now >= stale_after:
        return Skip(STALE)
    if category not in rules.quiet_exempt:
        until = quiet_until(now, recipient.timezone, rules.quiet_start, rules.quiet_end)
        if until is not None:
            if stale_after is not None and until >= stale_after:
                return Skip(STALE)
            return Hold(until)
    channel = choose_channel(recipient, category, channel_policy, rules, exclude=exclude)
    if isinstance(channel, Skip):
        return channel
    if category in CAPPED_CATEGORIES and recipient.recent_capped >= rules.weekly_cap:
        return Skip(CAPPED)
    return Send(channel)
