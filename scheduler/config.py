"""Settings owned by the scheduler: job times, quiet hours, renewal cadence, weather."""

from __future__ import annotations

from datetime import date, time
from itertools import pairwise
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scheduler.cn_calendar import WorkCalendar, work_calendar
from storage.coverage import DEFAULT_LAPSED_DAYS

BUILT_IN_FESTIVALS = frozenset(
    {"new_year", "spring_festival", "lantern", "dragon_boat", "mid_autumn", "national_day"}
)


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


class FestivalSettings(BaseModel):
    """An extra fixed-date (solar calendar) festival greeted every year."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=32, pattern=r"^[a-z0-9_]+$")
    month: int = Field(ge=1, le=12)
    day: int = Field(ge=1, le=31)
    name_zh: str = Field(min_length=1, max_length=40)
    name_en: str = Field(min_length=1, max_length=60)

    @model_validator(mode="after")
    def _real_day(self) -> FestivalSettings:
        if (self.month, self.day) == (2, 29):
            raise ValueError("day: 29 February is not a yearly date")
        try:
            date(2001, self.month, self.day)
        except ValueError:
            raise ValueError(f"day: {self.month}/{self.day} is not a date") from None
        if self.code in BUILT_IN_FESTIVALS:
            raise ValueError(f"code: {self.code!r} is a built-in festival")
        return self


class ScheduleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: str = Field(default="Asia/Shanghai", description="customer-care calendar time zone")
    daily_plan_at: time = time(8, 30)
    weather_at: time = time(7, 0)
    points_expiry_at: time = time(1, 0)
    quiet_hours_start: time = time(21, 0)
    quiet_hours_end: time = time(8, 0)
    catch_up_days: int = Field(default=3, ge=0, le=31)
    misfire_grace_seconds: int = Field(default=3600, ge=1)
    leader_retry_seconds: int = Field(
        default=30, ge=1, le=3600,
        description="how often a standby tries to take the PostgreSQL scheduler lock",
    )
    batch_size: int = Field(
        default=2000, ge=10, le=20000, description="rows read and messages queued per batch"
    )
    plan_writers: int = Field(
        default=2, ge=1, le=8,
        description="PostgreSQL connections that queue a festival day's greetings at once "
                    "(each one range of customers per statement; SQLite: one)",
    )
    festivals: list[FestivalSettings] = Field(
        default_factory=list, description="extra fixed-date festivals, besides the built-in ones"
    )

    @field_validator("timezone")
    @classmethod
    def _check_zone(cls, value: str) -> str:
        return _zone(value)

    @field_validator("festivals")
    @classmethod
    def _distinct_codes(cls, value: list[FestivalSettings]) -> list[FestivalSettings]:
        codes = [f.code for f in value]
        if len(set(codes)) != len(codes):
            raise ValueError("festival codes must be unique")
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class HolidaySettings(BaseModel):
    """Corrections to the official holiday calendar of the ``holidays`` package."""

    model_config = ConfigDict(extra="forbid")

    days_off: list[date] = Field(
        default_factory=list, description="official days off the holidays package lacks")
    working_days: list[date] = Field(
        default_factory=list,
        description="make-up working days (调休), or days the package wrongly lists as off")

    @model_validator(mode="after")
    def _disjoint(self) -> HolidaySettings:
        if clash := set(self.days_off) & set(self.working_days):
            raise ValueError(f"{min(clash)} is both a day off and a working day")
        return self

    def calendar(self) -> WorkCalendar:
        return work_calendar(tuple(sorted(self.days_off)), tuple(sorted(self.working_days)))


_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _hours(value: str) -> str:
    """``""`` (closed) or ``"HH:MM-HH:MM"`` with the opening before the closing."""
    if value == "":
        return value
    try:
        start, end = (time.fromisoformat(part.strip()) for part in value.split("-"))
    except ValueError:
        raise ValueError(f"{value!r}: write opening hours as HH:MM-HH:MM, or \"\" for closed"
                         ) from None
    if start >= end:
        raise ValueError(f"{value!r}: the opening must be before the closing")
    return f"{start:%H:%M}-{end:%H:%M}"


class OfficeHoursSettings(BaseModel):
    """When people answer (in ``schedule.timezone``): hand-offs, call-backs, response clocks."""

    model_config = ConfigDict(extra="forbid")

    monday: str = "09:00-18:00"
    tuesday: str = "09:00-18:00"
    wednesday: str = "09:00-18:00"
    thursday: str = "09:00-18:00"
    friday: str = "09:00-18:00"
    saturday: str = ""
    sunday: str = ""
    closed_on_holidays: bool = Field(
        default=True, description="closed on official days off; open on make-up working days")

    @field_validator(*_WEEKDAYS)
    @classmethod
    def _check_hours(cls, value: str) -> str:
        return _hours(value)

    def hours_on(self, weekday: int) -> tuple[time, time] | None:
        """Opening and closing on ``weekday`` (Monday 0) as written, None when closed."""
        value: str = getattr(self, _WEEKDAYS[weekday])
        if not value:
            return None
        start, end = value.split("-")
        return time.fromisoformat(start), time.fromisoformat(end)


class CareSettings(BaseModel):
    """Whom customer care (birthday and festival greetings, weather notices) reaches: see
    ``storage.coverage``."""

    model_config = ConfigDict(extra="forbid")

    lapsed_days: int = Field(
        default=DEFAULT_LAPSED_DAYS, ge=0, le=3650,
        description="care also reaches customers whose cover ended at most this many days ago",
    )


class ClaimsBand(BaseModel):
    """Claims in the policy year from ``claims_from`` to ``claims_to`` (none: and more) and
    what the T-30 reminder then says: the no-claims discount continues, is lost, or a
    surcharge of ``percent``."""

    model_config = ConfigDict(extra="forbid")

    claims_from: int = Field(ge=0)
    claims_to: int | None = Field(default=None, ge=0)
    hint: Literal["ncd_continues", "ncd_lost", "surcharge"]
    percent: int = Field(default=0, ge=0, le=200)


def _default_bands() -> list[ClaimsBand]:
    """The claims seed document's table: no claim keeps the no-claims discount, one or two lose
    it, three +10 %, four +20 %, five or more +30 %."""
    return [ClaimsBand(claims_from=0, claims_to=0, hint="ncd_continues"),
            ClaimsBand(claims_from=1, claims_to=2, hint="ncd_lost"),
            ClaimsBand(claims_from=3, claims_to=3, hint="surcharge", percent=10),
            ClaimsBand(claims_from=4, claims_to=4, hint="surcharge", percent=20),
            ClaimsBand(claims_from=5, hint="surcharge", percent=30)]


class ClaimsHintSettings(BaseModel):
    """The claims-based pricing hint in one reminder (off by default: enable it only where
    every claim of the policy year reaches Engage, and with wording the insurer reviewed)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    offset: int = Field(default=30, ge=1, description="the reminder that carries it")
    bands: list[ClaimsBand] = Field(default_factory=_default_bands)

    @field_validator("bands")
    @classmethod
    def _no_overlap(cls, bands: list[ClaimsBand]) -> list[ClaimsBand]:
        ordered = sorted(bands, key=lambda b: b.claims_from)
        for band, following in pairwise(ordered):
            if band.claims_to is None or band.claims_to >= following.claims_from:
                raise ValueError(f"bands overlap at {following.claims_from} claims")
        for band in ordered:
            if band.claims_to is not None and band.claims_to < band.claims_from:
                raise ValueError("claims_to must not be below claims_from")
        return ordered

    def band(self, claims: int) -> ClaimsBand | None:
        for band in self.bands:
            if band.claims_from <= claims and (band.claims_to is None or claims <= band.claims_to):
                return band
        return None


class RenewalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    offsets: list[int] = Field(
        default=[60, 30, 23, 16, 9, 2],
        description="days before expiry on which a reminder is queued",
    )
    lapse_rescue_days: int = Field(default=3, ge=1, le=90)
    lapse_stale_days: int = Field(default=7, ge=1, le=90)
    holiday_lead_working_days: int = Field(default=3, ge=1, le=15)
    claim_by_day: int = Field(default=5, ge=1, le=28, description="day of the month by which "
                              "the month's 61–90-day list must be claimed")
    callback_due_working_hours: float = Field(
        default=4, gt=0, le=80, description="a call-back a customer asks for is due within "
        "this many working hours (office hours and the holiday calendar)")
    answer_days: int = Field(default=7, ge=1, le=30, description="SMS replies 续保/XB and 已续 "
                             "act on the reminder sent at most this many days before")
    escalate_owner_days: int = Field(default=10, ge=1, le=90, description="unresolved this "
                                     "many days before expiry: the owner and branch admins "
                                     "are prompted")
    escalate_manager_days: int = Field(default=5, ge=1, le=90, description="the branch "
                                       "manager confirms or reassigns")
    escalate_head_office_days: int = Field(default=2, ge=0, le=90, description="unclaimed "
                                           "ones go to the head-office pool")
    head_office_pool: str = Field(default="head_office", min_length=1, max_length=64,
                                  description="the owner name of the head-office pool")
    escalate_every_minutes: int = Field(default=15, ge=1, le=1440)
    lapse_follow_ups: int = Field(default=3, ge=0, le=12, description="monthly follow-up "
                                  "tasks for a lapsed policy without an outcome")

    claims_hint: ClaimsHintSettings = ClaimsHintSettings()

    @model_validator(mode="after")
    def _hint_on_a_reminder(self) -> RenewalSettings:
        if self.claims_hint.enabled and self.claims_hint.offset not in self.offsets:
            raise ValueError(f"claims_hint.offset {self.claims_hint.offset} is not one of the "
                             "offsets")
        return self

    @model_validator(mode="after")
    def _levels_in_order(self) -> RenewalSettings:
        if not (self.escalate_owner_days > self.escalate_manager_days
                > self.escalate_head_office_days):
            raise ValueError("escalate_owner_days > escalate_manager_days > "
                             "escalate_head_office_days")
        return self

    @field_validator("offsets")
    @classmethod
    def _positive_distinct(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("needs at least one offset")
        if any(v <= 0 for v in value):
            raise ValueError("offsets are days before expiry and must be positive")
        if len(set(value)) != len(value):
            raise ValueError("offsets must be distinct")
        ordered = sorted(value, reverse=True)
        if any(a - b < 2 for a, b in pairwise(ordered)):
            raise ValueError("offsets must be at least 2 days apart (no reminders on "
                             "consecutive days)")
        return ordered


class WeatherSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_base: str = "https://api.open-meteo.com"
    timeout_seconds: float = Field(default=10.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    backoff_seconds: float = Field(default=2.0, ge=0, description="first retry delay, doubling")
    regions_per_request: int = Field(default=20, ge=1, le=100)
    retry_every_minutes: int = Field(
        default=30, ge=1, le=720, description="after a failed run, try again this much later"
    )
    retry_until: time = Field(
        default=time(12, 0), description="no retries of a failed run after this care time"
    )
    heavy_rain_mm: float = 25.0
    snow_cm: float = 1.0
    gust_ms: float = 17.0
    freeze_c: float = -5.0


class RetentionSettings(BaseModel):
    """How long personal data is kept (``storage.retention``), and the daily job's pace."""

    model_config = ConfigDict(extra="forbid")

    documents_days_after_close: int = Field(default=730, ge=1, description="claim documents, "
                                            "counted from the claim's closing")
    inbound_days: int = Field(default=365, ge=1, description="inbound SMS bodies")
    message_params_days: int = Field(default=180, ge=1, description="names and plates in "
                                     "sent messages (status and counts stay)")
    run_at: time = time(3, 0)
    batch_size: int = Field(default=500, ge=1, le=10_000, description="rows per transaction")
    max_batches: int = Field(default=200, ge=1, description="per kind and run: the rest "
                             "waits for the next day")

