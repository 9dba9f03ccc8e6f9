"""Pure delivery decisions: channel choice, consent, quiet hours, staleness, weekly cap."""

from datetime import UTC, datetime, time, timedelta

import pytest

from bot.delivery.policy import (
    CAPPED,
    INVALID_PHONE,
    NO_CHANNEL,
    NO_CONSENT,
    OPTED_OUT,
    STALE,
    Hold,
    Recipient,
    Rules,
    Send,
    Skip,
    decide,
    quiet_until,
)
from storage.models import Channel

RULES = Rules(quiet_start=time(21), quiet_end=time(8), quiet_exempt=frozenset({"service"}),
              weekly_cap=3, sms_enabled=True, telegram_enabled=True,
              marketing_consent_prefixes=("+86",))
NOON_SHANGHAI = datetime(2026, 11, 21, 4, 0, tzinfo=UTC)  # 12:00 in Asia/Shanghai


def person(**kw: object) -> Recipient:
    base: dict[str, object] = dict(customer_id=1, phone="+8613800138000", phone_valid=True,
                                   language="zh-CN", timezone="Asia/Shanghai",
                                   telegram_chat_id=555)
    base.update(kw)
    return Recipient(**base)  # type: ignore[arg-type]


def run(r: Recipient, *, category: str = "care", policy: str = "telegram_then_sms",
        now: datetime = NOON_SHANGHAI, stale: datetime | None = None,
        rules: Rules = RULES, exclude: frozenset[Channel] = frozenset()) -> object:
    return decide(category=category, channel_policy=policy, stale_after=stale, recipient=r,
                  rules=rules, now=now, exclude=exclude)


@pytest.mark.parametrize(
    ("linked", "phone_valid", "policy", "expected"),
    [
        (True, True, "telegram_then_sms", Send(Channel.TELEGRAM)),
        (False, True, "telegram_then_sms", Send(Channel.SMS)),
        (False, False, "telegram_then_sms", Skip(INVALID_PHONE)),
        (True, True, "sms_only", Send(Channel.SMS)),
        (False, True, "telegram_only", Skip(NO_CHANNEL)),
        (True, False, "telegram_only", Send(Channel.TELEGRAM)),
        (False, False, "sms_only", Skip(INVALID_PHONE)),
    ],
)
def test_channel_choice_matrix(linked: bool, phone_valid: bool, policy: str,
                               expected: object) -> None:
    r = person(telegram_chat_id=555 if linked else None, phone_valid=phone_valid)
    assert run(r, policy=policy) == expected


def test_sms_disabled_and_unlinked_means_no_channel() -> None:
    rules = Rules(
        quiet_start=time(21), quiet_end=time(8), quiet_exempt=frozenset({"service"}),
        weekly_cap=3, sms_enabled=False, telegram_enabled=True,
        marketing_consent_prefixes=("+86",))
    assert run(person(telegram_chat_id=None), rules=rules) == Skip(NO_CHANNEL)


def test_telegram_opt_out_falls_back_to_sms_for_that_category_only() -> None:
    r = person(consents={("telegram", "care"): False})
    assert run(r, category="care") == Send(Channel.SMS)
    assert run(r, category="reminder") == Send(Channel.TELEGRAM)


def test_opt_out_on_every_channel_skips_with_reason() -> None:
    r = person(consents={("*", "care"): False})
    assert run(r, category="care") == Skip(OPTED_OUT)


def test_newer_channel_grant_overrides_general_opt_out() -> None:
    r = person(telegram_chat_id=None, consents={("*", "care"): False, ("sms", "care"): True})
    assert run(r) == Send(Channel.SMS)


def test_service_messages_ignore_opt_outs() -> None:
    r = person(consents={("*", "service"): False, ("telegram", "service"): False})
    assert run(r, category="service") == Send(Channel.TELEGRAM)


def test_marketing_to_mainland_needs_recorded_consent() -> None:
    assert run(person(), category="marketing") == Skip(NO_CONSENT)
    granted = person(consents={("telegram", "marketing"): True})
    assert run(granted, category="marketing") == Send(Channel.TELEGRAM)
    foreign = person(phone="+442079460958", telegram_chat_id=None)
    assert run(foreign, category="marketing") == Send(Channel.SMS)


def test_excluded_channel_after_block_falls_back() -> None:
    assert run(person(), exclude=frozenset({Channel.TELEGRAM})) == Send(Channel.SMS)


def test_weekly_cap_applies_to_care_and_marketing_only() -> None:
    r = person(recent_capped=3, consents={("*", "marketing"): True})
    assert run(r, category="care") == Skip(CAPPED)
    assert run(r, category="marketing") == Skip(CAPPED)
    assert run(r, category="reminder") == Send(Channel.TELEGRAM)
    assert run(r, category="service") == Send(Channel.TELEGRAM)
    assert run(person(recent_capped=2)) == Send(Channel.TELEGRAM)


def test_quiet_hours_hold_until_morning_in_each_customers_zone() -> None:
    # 14:30 UTC = 22:30 Shanghai (quiet) = 09:30 New York (not quiet)
    now = datetime(2026, 11, 21, 14, 30, tzinfo=UTC)
    shanghai = run(person(), now=now)
    assert shanghai == Hold(datetime(2026, 11, 22, 0, 0, tzinfo=UTC))  # 08:00 next day
    assert run(person(timezone="America/New_York"), now=now) == Send(Channel.TELEGRAM)
    # 03:00 UTC next day = 22:00 in New York: held until 08:00 New York = 13:00 UTC
    later = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)
    assert run(person(timezone="America/New_York"), now=later) == Hold(
        datetime(2026, 11, 22, 13, 0, tzinfo=UTC))
    # after midnight, still quiet, held until the same morning
    early = datetime(2026, 11, 21, 18, 0, tzinfo=UTC)  # 02:00 Shanghai
    assert run(person(), now=early) == Hold(datetime(2026, 11, 22, 0, 0, tzinfo=UTC))


def test_service_is_exempt_from_quiet_hours() -> None:
    night = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)  # 23:00 Shanghai
    assert run(person(), category="service", now=night) == Send(Channel.TELEGRAM)


def test_quiet_window_that_does_not_cross_midnight() -> None:
    now = datetime(2026, 11, 21, 5, 30, tzinfo=UTC)  # 13:30 Shanghai
    until = quiet_until(now, "Asia/Shanghai", time(13), time(14))
    assert until == datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
    assert quiet_until(now, "Asia/Shanghai", time(14), time(15)) is None


def test_stale_message_is_skipped_and_hold_past_staleness_is_skipped() -> None:
    assert run(person(), stale=NOON_SHANGHAI) == Skip(STALE)
    night = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)  # 22:00 Shanghai, held till 00:00 UTC
    assert run(person(), now=night, stale=night + timedelta(hours=1)) == Skip(STALE)
    assert run(person(), now=night, stale=night + timedelta(hours=12)) == Hold(
        datetime(2026, 11, 22, 0, 0, tzinfo=UTC))
