"""Loyalty administration: manual points adjustments, redemptions made for a customer who
called, and the rewards catalogue.

An adjustment goes through ``loyalty.earning.adjust_points`` (the ledger's invariants hold:
a reason and the operator's identity are recorded, a repeated request key applies once, a
debit never takes the balance below zero). Rewards are created, changed (including stock)
and retired, never deleted: vouchers refer to them.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from bot.web.operators import audit
from bot.web.operators.access import Actor
from bot.web.operators.errors import Refusal
from bot.web.operators.rows import OperatorRedemptionJson, PointsAdjustedJson, RewardJson
from loyalty.codes import display
from loyalty.config import LoyaltySettings, RewardKind
from loyalty.earning import adjust_points
from loyalty.ledger import get_balance
from loyalty.vouchers import redeem
from storage.loyalty_models import Reward
from storage.models import Customer


class CatalogueError(Refusal):
    code = "catalogue_error"
    status = 409


class RewardNotFound(CatalogueError):
    code = "not_found"
    status = 404


class RewardExists(CatalogueError):
    code = "reward_exists"


class UnknownTier(CatalogueError):
    code = "unknown_tier"
    status = 422


class CustomerMissing(CatalogueError):
    code = "not_found"
    status = 404


class AdjustIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points: int = Field(description="positive credits, negative debits")
    reason: str = Field(min_length=1, max_length=500)
    request_key: str = Field(min_length=1, max_length=100,
                             description="repeat it to retry safely: applied once")

    @model_validator(mode="after")
    def _not_zero(self) -> AdjustIn:
        if self.points == 0:
            raise ValueError("points: must not be zero")
        if not self.reason.strip():
            raise ValueError("reason: must not be blank")
        return self


class RedeemIn(BaseModel):
    """A redemption an operator makes for a customer on the phone."""

    model_config = ConfigDict(extra="forbid")

    reward_code: str = Field(min_length=1, max_length=40)
    free: bool = Field(default=False, description="as the tier's free benefit (cost 0)")
    request_key: str = Field(min_length=1, max_length=100,
                             description="repeat it to retry safely: one voucher")


class _RewardFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name_zh: str | None = Field(default=None, min_length=1, max_length=100)
    name_en: str | None = Field(default=None, min_length=1, max_length=100)
    points_cost: int | None = Field(default=None, ge=0)
    min_tier: str | None = None
    stock: int | None = Field(default=None, ge=0, description="null: unlimited")
    monthly_limit: int | None = Field(default=None, ge=1)
    yearly_limit: int | None = Field(default=None, ge=1)
    active_from: date | None = None
    active_until: date | None = None


class RewardIn(_RewardFields):
    code: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$")
    kind: RewardKind
    name_zh: str = Field(min_length=1, max_length=100)
    name_en: str = Field(min_length=1, max_length=100)
    points_cost: int = Field(ge=0)


class RewardPatch(_RewardFields):
    """Only the fields present change (``stock: null`` makes the stock unlimited)."""


def reward_json(reward: Reward) -> RewardJson:
    return {
        "code": reward.code, "kind": reward.kind, "name_zh": reward.name_zh,
        "name_en": reward.name_en, "points_cost": reward.points_cost,
        "min_tier": reward.min_tier, "stock": reward.stock,
        "monthly_limit": reward.monthly_limit, "yearly_limit": reward.yearly_limit,
        "active_from": reward.active_from.isoformat() if reward.active_from else None,
        "active_until": reward.active_until.isoformat() if reward.active_until else None,
        "retired_at": reward.retired_at.isoformat() if reward.retired_at else None,
    }


def _check_tier(tier: str | None, settings: LoyaltySettings) -> None:
    if tier is not None and tier not in {t.code for t in settings.tiers}:
        raise UnknownTier(f"unknown tier {tier!r}")


async def adjust(actor: Actor, customer_id: int, data: AdjustIn, *, now: datetime,
                 settings: LoyaltySettings) -> PointsAdjustedJson:
    if not await Customer.exists(id=customer_id):
        raise CustomerMissing(f"no customer {customer_id}")
    before = await get_balance(customer_id)
    posted = await adjust_points(customer_id, data.points, reason=data.reason.strip(),
                                 operator=actor.name, key=f"{actor.operator.id}:{data.request_key}",
                                 now=now, settings=settings)
    result: PointsAdjustedJson = {"entry_id": posted.entry_id, "points": posted.amount,
              "balance": posted.balance_after, "replayed": posted.replayed}
    if not posted.replayed:
        await audit.record(actor, "points.adjust", "customer", customer_id,
                           before={"balance": before},
                           after={"balance": posted.balance_after, "points": posted.amount,
                                  "reason": data.reason, "entry_id": posted.entry_id}, now=now)
    return result


async def redeem_for(actor: Actor, customer_id: int, data: RedeemIn, *, now: datetime,
                     settings: LoyaltySettings) -> OperatorRedemptionJson:
    """Redeem for a customer who called: the same ``redeem`` as Telegram and SMS (eligibility,
    stock, limits, the ledger debit), audited in its transaction; the voucher code reaches
    the customer through the outbox on their channel (``voucher_issued``)."""
    if not await Customer.exists(id=customer_id):
        raise CustomerMissing(f"no customer {customer_id}")
    async with in_transaction():
        before = await get_balance(customer_id)
        done = await redeem(customer_id, data.reward_code,
                            request_key=f"operator:{actor.operator.id}:{data.request_key}",
                            now=now, settings=settings, entitlement=data.free, notify=True)
        voucher = done.voucher
        result: OperatorRedemptionJson = {
            "voucher_id": voucher.id, "code": display(voucher.code),
            "reward_code": data.reward_code, "points_cost": voucher.points_cost,
            "free": voucher.entitlement, "expires_at": voucher.expires_at.isoformat(),
            "balance": await get_balance(customer_id), "replayed": done.replayed}
        if not done.replayed:
            await audit.record(actor, "voucher.redeem", "customer", customer_id,
                               before={"balance": before},
                               after={k: v for k, v in result.items() if k != "replayed"},
                               now=now)
    return result


async def create_reward(actor: Actor, data: RewardIn, *, now: datetime,
                        settings: LoyaltySettings) -> Reward:
    _check_tier(data.min_tier, settings)
    values = data.model_dump(exclude_none=True)
    try:
        async with in_transaction():
            reward = await Reward.create(**values)
            await audit.record(actor, "reward.create", "reward", reward.code,
                               after=reward_json(reward), now=now)
    except IntegrityError:
        raise RewardExists(f"a reward {data.code!r} exists") from None
    return reward


async def update_reward(actor: Actor, code: str, data: RewardPatch, *, now: datetime,
                        settings: LoyaltySettings) -> Reward:
    _check_tier(data.min_tier, settings)
    changes = data.model_dump(exclude_unset=True)
    for required in ("name_zh", "name_en", "points_cost", "min_tier"):
        if required in changes and changes[required] is None:
            del changes[required]
    async with in_transaction():
        reward = await Reward.filter(code=code).select_for_update().first()
        if reward is None:
            raise RewardNotFound(f"no reward {code!r}")
        before = reward_json(reward)
        reward.update_from_dict(changes)
        await reward.save()
        await audit.record(actor, "reward.update", "reward", code, before=before,
                           after=reward_json(reward), now=now)
    return reward


async def retire_reward(actor: Actor, code: str, *, now: datetime) -> Reward:
    async with in_transaction():
        reward = await Reward.filter(code=code).select_for_update().first()
        if reward is None:
            raise RewardNotFound(f"no reward {code!r}")
        before = reward_json(reward)
        if reward.retired_at is None:
            reward.retired_at = now
            await reward.save(update_fields=["retired_at", "updated_at"])
        await audit.record(actor, "reward.retire", "reward", code, before=before,
                           after=reward_json(reward), now=now)
    return reward
