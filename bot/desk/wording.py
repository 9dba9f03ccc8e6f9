"""How the desk tells a customer when a person will answer, in their language and time zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bot.desk.threads import Outcome

_EN_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
EN_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
              "Dec")


def opening_time(moment: datetime, language: str, timezone: str) -> str:
    """``12月7日 09:00`` or ``Mon 7 Dec 09:00`` (not locale-dependent)."""
    local = moment.astimezone(ZoneInfo(timezone))
    if language == "en":
        return (f"{_EN_DAYS[local.weekday()]} {local.day} {EN_MONTHS[local.month - 1]} "
                f"{local:%H:%M}")
    return f"{local.month}月{local.day}日 {local:%H:%M}"


def handoff_text(outcome: Outcome, prefix: str, language: str,
                 timezone: str) -> tuple[str, dict[str, object]]:
    """The text key (``<prefix>_handoff_open`` or ``_closed``) and its parameters telling the
    customer that a person will answer, and when."""
    if outcome.opens_at is None:
        return f"{prefix}_handoff_open", {"minutes": outcome.wait_minutes}
    return f"{prefix}_handoff_closed", {"when": opening_time(outcome.opens_at, language,
                                                              timezone)}
