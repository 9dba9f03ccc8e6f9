"""Notification preferences chosen in Telegram's /settings, kept as ``Consent`` rows so SMS and
Telegram share one consent model (the dispatcher reads nothing else).

What a switch means. Turning a category (care, weather alerts, reminder, marketing; service
cannot be turned off) off in Telegram means the customer does not want that category at all —
not "not on Telegram" — so it is recorded on channel ``*``. The delivery policy lets a channel's own
record outrank ``*``, so a switch also writes the channel rows that must agree with it:

* ``*``        = the switch;
* ``telegram`` = the switch, and off while the preferred channel is SMS (the dispatcher then
  falls through to SMS for that category; service messages still come to Telegram);
* ``sms``      = the switch — except that an SMS opt-out made over SMS (STOP, 退订: any
  source other than ours) is never overridden from Telegram; only START by SMS undoes it.

The preferred channel has no column of its own: it is the ``source`` of the ``telegram`` rows
this screen writes (``telegram_settings:prefer_sms`` / ``…:prefer_telegram``), the newest of
which is read back. Only rows whose value changes are written (append-only history).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from storage.models import Category, Channel, Consent

SWITCHABLE: tuple[Category, ...] = (Category.CARE, Category.ALERT, Category.REMINDER,
                                    Category.MARKETING)
SOURCE = "telegram_settings"
_PREFER = {Channel.TELEGRAM: f"{SOURCE}:prefer_telegram", Channel.SMS: f"{SOURCE}:prefer_sms"}
_ANY = "*"


@dataclass(frozen=True, slots=True)
class _Row:
    granted: bool
    source: str


@dataclass(frozen=True, slots=True)
class Preferences:
    enabled: dict[Category, bool] = field(default_factory=dict)
    preferred: Channel = Channel.TELEGRAM
    # Categories the customer opted out of by SMS itself (STOP, 退订, a carrier opt-out):
    # shown on the screen, since no switch here can bring them back by SMS.
    sms_opted_out: frozenset[Category] = frozenset()

    def is_on(self, category: Category) -> bool:
        return self.enabled.get(category, True)

    def sms_off(self, category: Category) -> bool:
        return category in self.sms_opted_out


@dataclass(frozen=True, slots=True)
class _State:
    """The newest row per (channel, category), and the newest preference written here."""

    newest: dict[tuple[str, Category], _Row]
    preferred: Channel


async def _state(customer_id: int) -> _State:
    newest: dict[tuple[str, Category], _Row] = {}
    preferred = Channel.TELEGRAM
    for channel, category, granted, source in await Consent.filter(
        customer_id=customer_id, category__in=list(SWITCHABLE)
    ).order_by("created_at", "id").values_list("channel", "category", "granted", "source"):
        newest[(str(channel), Category(category))] = _Row(bool(granted), str(source))
        if channel == Channel.TELEGRAM.value and source in _PREFERRED_BY_SOURCE:
            preferred = _PREFERRED_BY_SOURCE[str(source)]
    return _State(newest, preferred)


_PREFERRED_BY_SOURCE = {source: channel for channel, source in _PREFER.items()}


def _read(state: _State, marketing_needs_grant: bool) -> Preferences:
    enabled: dict[Category, bool] = {}
    for category in SWITCHABLE:
        row = state.newest.get((_ANY, category))
        if row is not None:
            enabled[category] = row.granted
        else:
            # Marketing to a number that needs recorded consent is off until it is given.
            enabled[category] = not (category is Category.MARKETING and marketing_needs_grant)
    return Preferences(enabled, state.preferred, frozenset(
        category for category in SWITCHABLE if _opted_out_by_sms(state.newest.get(
            (Channel.SMS.value, category)))))


def _opted_out_by_sms(row: _Row | None) -> bool:
    return row is not None and not row.granted and row.source != SOURCE


def _needs_grant(phone: str, prefixes: Sequence[str]) -> bool:
    return any(phone.startswith(prefix) for prefix in prefixes)


async def load_preferences(customer_id: int, phone: str, *,
                           marketing_consent_prefixes: Sequence[str]) -> Preferences:
    return _read(await _state(customer_id), _needs_grant(phone, marketing_consent_prefixes))


class _Writer:
    """Collects the rows that change something, and writes them in one statement."""

    def __init__(self, customer_id: int, state: _State, now: datetime,
                 reference: str = "") -> None:
        self.customer_id = customer_id
        self.state = state
        self.now = now
        self.reference = reference  # the Telegram update that asked for it
        self.rows: list[Consent] = []

    def want(self, channel: str, category: Category, granted: bool, source: str) -> None:
        current = self.state.newest.get((channel, category))
        if current is None or current.granted != granted or current.source != source:
            self.rows.append(Consent(customer_id=self.customer_id, channel=channel,
                                     category=category, granted=granted, source=source,
                                     reference=self.reference, created_at=self.now))

    def telegram(self, category: Category, target: Preferences) -> None:
        self.want(Channel.TELEGRAM.value, category,
                  target.is_on(category) and target.preferred is Channel.TELEGRAM,
                  _PREFER[target.preferred])

    async def write(self) -> None:
        if self.rows:
            await Consent.bulk_create(self.rows)


async def set_category(customer_id: int, phone: str, category: Category, on: bool, *,
                       now: datetime, marketing_consent_prefixes: Sequence[str],
                       reference: str = "") -> Preferences:
    if category not in SWITCHABLE:
        raise ValueError(f"category {category} cannot be switched")
    state = await _state(customer_id)
    current = _read(state, _needs_grant(phone, marketing_consent_prefixes))
    target = replace(current, enabled={**current.enabled, category: on})
    writer = _Writer(customer_id, state, now, reference)
    writer.want(_ANY, category, on, SOURCE)
    writer.telegram(category, target)
    if not _opted_out_by_sms(state.newest.get((Channel.SMS.value, category))):
        writer.want(Channel.SMS.value, category, on, SOURCE)
    await writer.write()
    return target


async def set_preferred_channel(customer_id: int, phone: str, channel: Channel, *,
                                now: datetime, marketing_consent_prefixes: Sequence[str],
                                reference: str = "") -> Preferences:
    if channel not in _PREFER:
        raise ValueError(f"channel {channel} cannot be preferred")
    state = await _state(customer_id)
    target = replace(_read(state, _needs_grant(phone, marketing_consent_prefixes)),
                     preferred=channel)
    writer = _Writer(customer_id, state, now, reference)
    for category in SWITCHABLE:
        writer.telegram(category, target)
    await writer.write()
    return target
