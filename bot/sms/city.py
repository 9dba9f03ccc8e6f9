"""``城市 深圳`` by SMS: the customer sets their own city (region) for weather notices.

The city is named as imports name it (``storage.regions``: code, Chinese or English name). On
a number several customers share, every customer on it moves (a family lives together); a
number an operator has not released never gets here (``bot.sms.conversations``). The choice is
the customer's own (``storage.choices``): no import changes it afterwards.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.sms.replies import Replies
from storage.choices import SMS, record_choice
from storage.models import Customer
from storage.regions import RegionNames, RegionNotFound


@dataclass(frozen=True, slots=True)
class CityChange:
    """The reply, and the change to apply with it (None: a question or refusal, no effect)."""

    reply: str
    act: Callable[[], Awaitable[str]] | None = None


async def change(customer_ids: Sequence[int], text: str, language: str, replies: Replies,
                 now: datetime) -> CityChange:
    names = await RegionNames.load()
    if not text:
        current = await Customer.get(id=customer_ids[0]).only("id", "region_id")
        region_id = current.region_id
        city = _name(names, region_id, language) if region_id is not None else "—"
        return CityChange(replies.say("sms_city_current", language, city=city))
    try:
        region_id = names.resolve(text)
    except RegionNotFound:
        hint = names.search(text, limit=1) or [r for r in [names.nearest(text)] if r]
        if hint:
            return CityChange(replies.say("sms_city_suggest", language, text=text,
                                          city=_name(names, hint[0].id, language)))
        return CityChange(replies.say("sms_city_unknown", language, text=text))
    city = _name(names, region_id, language)

    async def act() -> str:
        for customer_id in customer_ids:
            await record_choice(customer_id, source=SMS, now=now, region_id=region_id)
        return replies.say("sms_city_set", language, city=city)

    return CityChange("", act)


def _name(names: RegionNames, region_id: int, language: str) -> str:
    region = names.get(region_id)
    return region.name if language != "en" or not region.name_en else region.name_en
