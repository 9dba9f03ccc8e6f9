"""Settings owned by the loyalty programme: earning rates, lots, VIP tiers, rewards."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

RewardKind = Literal["car_wash", "designated_driving", "annual_inspection", "maintenance", "gift"]
REWARD_KINDS: tuple[RewardKind, ...] = (
    "car_wash", "designated_driving", "annual_inspection", "maintenance", "gift",
)


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


class RewardSeed(BaseModel):
    """One catalogue entry the database is seeded with when its code is not there yet.

    Seeding never overwrites: once a reward exists, operators own it (price, stock, window).
    """

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$")
    kind: RewardKind
    name_zh: str = Field(min_length=1, max_length=100)
    name_en: str = Field(min_length=1, max_length=100)
    points_cost: int = Field(ge=0)
    min_tier: str = "standard"
    stock: int | None = Field(default=None, ge=0, description="None: unlimited")
    monthly_limit: int | None = Field(default=None, ge=1, description="per customer")
    yearly_limit: int | None = Field(default=None, ge=1, description="per customer")
    active_from: date | None = None
    active_until: date | None = None


def _default_rewards() -> list[RewardSeed]:
    return [
        RewardSeed(code="car_wash", kind="car_wash", name_zh="精致洗车", name_en="Car wash",
                   points_cost=300, monthly_limit=4),
        RewardSeed(code="designated_driving", kind="designated_driving", name_zh="代驾服务",
                   name_en="Designated driving", points_cost=800, yearly_limit=6),
        RewardSeed(code="annual_inspection", kind="annual_inspection", name_zh="代办年检",
                   name_en="Annual vehicle inspection", points_cost=1500, yearly_limit=1),
        RewardSeed(code="maintenance", kind="maintenance", name_zh="基础保养",
                   name_en="Basic maintenance", points_cost=2000, min_tier="silver",
                   yearly_limit=2),
        RewardSeed(code="gift_umbrella", kind="gift", name_zh="定制晴雨伞",
                   name_en="Branded umbrella", points_cost=500, stock=200, yearly_limit=1),
        RewardSeed(code="gift_dashcam", kind="gift", name_zh="行车记录仪", name_en="Dash camera",
                   points_cost=8000, min_tier="gold", stock=50, yearly_limit=1),
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
    rewards: list[RewardSeed] = Field(default_factory=_default_rewards)

    @model_validator(mode="after")
    def _tiers_ascending(self) -> LoyaltySettings:
        if not self.tiers or self.tiers[0].min_premium_cents != 0:
            raise ValueError("tiers: the first tier must start at min_premium_cents = 0")
        mins = [t.min_premium_cents for t in self.tiers]
        if mins != sorted(set(mins)):
            raise ValueError("tiers: min_premium_cents must be strictly ascending")
        codes = [t.code for t in self.tiers]
        if len(set(codes)) != len(codes):
            raise ValueError("tiers: codes must be unique")
        return self

    @model_validator(mode="after")
    def _rewards_consistent(self) -> LoyaltySettings:
        codes = [r.code for r in self.rewards]
        if len(set(codes)) != len(codes):
            raise ValueError("rewards: codes must be unique")
        tiers = {t.code for t in self.tiers}
        for reward in self.rewards:
            if reward.min_tier not in tiers:
                raise ValueError(f"rewards: {reward.code} has unknown min_tier {reward.min_tier!r}")
            if (reward.active_from and reward.active_until
                    and reward.active_until < reward.active_from):
                raise ValueError(f"rewards: {reward.code} ends before it starts")
        return self

    def tier(self, code: str) -> TierSettings:
        """The tier with this code, or the lowest one for a code no longer configured."""
        for tier in self.tiers:
            if tier.code == code:
                return tier
        return self.tiers[0]

    def tier_rank(self, code: str) -> int:
        for rank, tier in enumerate(self.tiers):
            if tier.code == code:
                return rank
        return 0

    def tier_for_premium(self, trailing_premium_cents: int) -> TierSettings:
        """The highest tier whose threshold the trailing-12-month premium reaches."""
        chosen = self.tiers[0]
        for tier in self.tiers:
            if trailing_premium_cents >= tier.min_premium_cents:
                chosen = tier
        return chosen
