"""Small builders for test data and test settings (real rows in the test database)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from tortoise import Tortoise

from bot.settings import Settings, TelegramSettings, TwilioSettings
from storage import db as storage_db
from storage.models import (
    Category,
    Customer,
    Message,
    Policy,
    Product,
    TelegramAccount,
)
from tests.fakes.telegram import DEFAULT_TOKEN
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN

T = TypeVar("T")
_seq = itertools.count(1)
NOON_SHANGHAI = datetime(2026, 11, 21, 4, 0, tzinfo=UTC)  # 12:00 in Asia/Shanghai
PUBLIC_URL = "https://engage.example.com"
FROM_NUMBER = "+15005550006"


def settings_for(
    *,
    db_url: str = "sqlite://unused.sqlite3",
    telegram_base: str | None = None,
    twilio_base: str | None = None,
    **sections: Any,
) -> Settings:
    data: dict[str, Any] = {"database": {"url": db_url}, **sections}
    if telegram_base is not None:
        data["telegram"] = TelegramSettings(token=DEFAULT_TOKEN, api_base=telegram_base)
    if twilio_base is not None:
        data["twilio"] = TwilioSettings(
            account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number=FROM_NUMBER,
            api_base=twilio_base, public_base_url=PUBLIC_URL,
        )
    return Settings(**data)


async def customer(
    *, name: str = "张三", phone: str | None = None, language: str = "zh-CN",
    timezone: str = "Asia/Shanghai", **extra: Any,
) -> Customer:
    n = next(_seq)
    return await Customer.create(
        name=name, phone=phone or f"+86138{n:08d}", language=language, timezone=timezone,
        referral_code=f"T{n:07d}", **extra,
    )


async def policyholder(**fields: Any) -> Customer:
    """A customer with a policy covering mid-2025 to mid-2027 (care reaches policyholders);
    no renewal or lapse message falls in 2026."""
    owner = await customer(**fields)
    await policy(owner, start_date=date(2025, 7, 1), end=date(2027, 6, 30))
    return owner


async def link_telegram(owner: Customer, chat_id: int | None = None,
                        *, now: datetime = NOON_SHANGHAI) -> TelegramAccount:
    chat = chat_id or 700_000 + owner.id
    return await TelegramAccount.create(telegram_user_id=chat, chat_id=chat, customer=owner,
                                        linked_at=now)


async def policy(owner: Customer, *, number: str | None = None, end: date = date(2026, 12, 31),
                 **extra: Any) -> Policy:
    n = next(_seq)
    fields: dict[str, Any] = dict(product=Product.COMMERCIAL, plate=f"沪A{n:05d}",
                                  start_date=date(end.year - 1, end.month, end.day),
                                  end_date=end, premium_cents=350_000)
    fields.update(extra)
    return await Policy.create(number=number or f"P{n:08d}", customer=owner, **fields)


async def queued(
    owner: Customer, *, key: str | None = None, kind: str = "birthday",
    category: Category = Category.CARE, template: str = "birthday",
    params: dict[str, Any] | None = None, not_before: datetime = NOON_SHANGHAI,
    **extra: Any,
) -> Message:
    return await Message.create(
        dedup_key=key or f"{kind}:{owner.id}:{next(_seq)}", kind=kind, category=category,
        customer=owner, template_key=template,
        params=params if params is not None else {"name": owner.name},
        not_before=not_before, **extra,
    )


def on_database(url: str, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` against the database at ``url`` from a synchronous test (an ``engage``
    command runs its own event loop, so a test that calls one cannot be async)."""

    async def go() -> T:
        await Tortoise.init(config=storage_db.tortoise_config(url))
        try:
            return await work()
        finally:
            await Tortoise.close_connections()

    return asyncio.run(go())
