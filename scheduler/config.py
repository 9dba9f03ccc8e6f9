"""Settings owned by the scheduler: job times, quiet hours, renewal cadence, weather."""

from __future__ import annotations

from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


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

    @field_validator("timezone")
    @classmethod
    def _check_zone(cls, value: str) -> str:
        return _zone(value)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class RenewalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    offsets: list[int] = Field(
        default=[60, 30, 23, 16, 9, 2],
        description="days before expiry on which a reminder is queued",
    )
    lapse_rescue_days: int = Field(default=3, ge=1, le=90)
    holiday_lead_working_days: int = Field(default=3, ge=1, le=15)

    @field_validator("offsets")
    @classmethod
    def _positive_distinct(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("needs at least one offset")
        if any(v <= 0 for v in value):
            raise ValueError("offsets are days before expiry and must be positive")
        if len(set(value)) != len(value):
            raise ValueError("offsets must be distinct")
        return sorted(value, reverse=True)


class WeatherSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_base: str = "https://api.open-meteo.com"
    timeout_seconds: float = Field(default=10.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    regions_per_request: int = Field(default=20, ge=1, le=100)
    heavy_rain_mm: float = 25.0
    snow_cm: float = 1.0
    gust_ms: float = 17.0
    freeze_c: float = -5.0
