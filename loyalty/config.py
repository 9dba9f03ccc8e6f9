"""Settings owned by the loyalty programme: earning rates, lots, VIP tiers, rewards."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TierSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str
    name_zh: str
    name_en: str
    min_premium_cents: int = Field(ge=0)
    points_multiplier: float = Field(default=1.0, gt=0)
    free_car_washes_per_month: int = Field(default=0, ge=0)
    designated_driving_per_year: int = Field(default=0, ge=0)
    free_annual_inspection: bool = False
    maintenance_discount_percent: int = Field(default=0, ge=0, le=100)
    birthday_bonus: int = Field(default=0, ge=0)


def _default_tiers() -> list[TierSettings]:
    return [
        TierSettings(code="standard", name_zh="普卡", name_en="Standard", min_premium_cents=0,
                     birthday_bonus=50),
        TierSettings(code="silver", name_zh="银卡", name_en="Silver", min_premium_cents=300_000,
                     points_multiplier=1.2, free_car_washes_per_month=1, birthday_bonus=100),
        TierSettings(code="gold", name_zh="金卡", name_en="Gold", min_premium_cents=600_000,
                     points_multiplier=1.5, free_car_washes_per_month=2,
                     designated_driving_per_year=2, maintenance_discount_percent=5,
                     birthday_bonus=200),
        TierSettings(code="diamond", name_zh="钻石", name_en="Diamond",
                     min_premium_cents=1_000_000, points_multiplier=2.0,
                     free_car_washes_per_month=4, designated_driving_per_year=6,
                     free_annual_inspection=True, maintenance_discount_percent=10,
                     birthday_bonus=500),
    ]


class LoyaltySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points_per_yuan: float = Field(default=1.0, ge=0)
    lot_expiry_months: int = Field(default=24, ge=1, le=120)
    checkin_points: int = Field(default=5, ge=0)
    checkin_streak_days: int = Field(default=7, ge=2)
    checkin_streak_bonus: int = Field(default=20, ge=0)
    referral_bonus: int = Field(default=200, ge=0)
    expiry_warning_days: int = Field(default=30, ge=1)
    refund_expired_vouchers: bool = False
    voucher_valid_days: int = Field(default=90, ge=1)
    tiers: list[TierSettings] = Field(default_factory=_default_tiers)

    @model_validator(mode="after")
    def _tiers_ascending(self) -> LoyaltySettings:
        if not self.tiers or self.tiers[0].min_premium_cents != 0:
            raise ValueError("tiers: the first tier must start at min_premium_cents = 0")
        mins = [t.min_premium_cents for t in self.tiers]
        if mins != sorted(set(mins)):
            raise ValueError("tiers: min_premium_cents must be strictly ascending")
        return self
