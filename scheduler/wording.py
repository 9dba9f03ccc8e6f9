"""Localised parameter values the rules put into messages: dates, festival and holiday names,
the policies a reminder is about, hazards and car-care advice.

The sentences themselves live in ``bot/texts/messages.toml``; these are the words that fill
their placeholders, as ``{"zh-CN": ..., "en": ...}`` dicts the renderer picks from at dispatch
time, in the customer's language.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Final

from storage.models import Product

Localised = dict[str, str]

_MONTHS_EN: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def localised_date(day: date) -> Localised:
    """``2026年12月1日`` / ``1 Dec 2026``."""
    return {
        "zh-CN": f"{day.year}年{day.month}月{day.day}日",
        "en": f"{day.day} {_MONTHS_EN[day.month - 1]} {day.year}",
    }


def localised(zh: str, en: str) -> Localised:
    return {"zh-CN": zh, "en": en or zh}


FESTIVAL_NAMES: Final[dict[str, Localised]] = {
    "new_year": localised("元旦", "New Year's Day"),
    "spring_festival": localised("春节", "Spring Festival"),
    "lantern": localised("元宵节", "Lantern Festival"),
    "dragon_boat": localised("端午节", "Dragon Boat Festival"),
    "mid_autumn": localised("中秋节", "Mid-Autumn Festival"),
    "national_day": localised("国庆节", "National Day"),
}

# The names /policies shows in Telegram (``tg_product_*``), lower-case to sit inside a sentence.
PRODUCT_NAMES: Final[dict[Product, Localised]] = {
    Product.COMPULSORY: localised("交强险", "compulsory"),
    Product.COMMERCIAL: localised("商业险", "commercial"),
}


def policy_list(policies: Iterable[tuple[Product, str]]) -> Localised:
    """``交强险 P1、商业险 P2`` / ``compulsory P1, commercial P2``: product and number of each
    ``(product, number)``, in the order given."""
    items = [(PRODUCT_NAMES[product], number) for product, number in policies]
    return {
        "zh-CN": "、".join(f"{name['zh-CN']} {number}" for name, number in items),
        "en": ", ".join(f"{name['en']} {number}" for name, number in items),
    }


HOLIDAY_NAMES: Final[dict[str, Localised]] = {
    "spring_festival": localised("春节", "Spring Festival"),
    "labour_day": localised("劳动节", "May Day"),
    "national_day": localised("国庆", "National Day"),
}

HAZARD_NAMES: Final[dict[str, Localised]] = {
    "heavy_rain": localised("强降雨", "heavy rain"),
    "snow": localised("降雪", "snow"),
    "storm": localised("大风或雷暴天气", "storms and strong winds"),
    "freeze": localised("严寒冰冻天气", "freezing weather"),
}

# The short names a combined weather notice lists (深圳明天有暴雨和雷暴大风).
HAZARD_WORDS: Final[dict[str, Localised]] = {
    "heavy_rain": localised("暴雨", "heavy rain"),
    "snow": localised("降雪", "snow"),
    "storm": localised("雷暴大风", "gales or thunderstorms"),
    "freeze": localised("严寒冰冻", "hard frost"),
}
# One line of advice for a notice by SMS, kept short so the notice fits one segment.
HAZARD_TIP: Final[dict[str, Localised]] = {
    "heavy_rain": localised("车辆请停高处，勿涉水行车。", "Park high, avoid flooded roads."),
    "snow": localised("请检查轮胎，减速慢行。", "Check tyres, drive slowly."),
    "storm": localised("请远离大树和广告牌停车。", "Park away from trees and signs."),
    "freeze": localised("请检查防冻液，桥面防滑。", "Check antifreeze, bridges ice first."),
}
# Which hazard's advice an SMS gives when several come together: the most dangerous first.
HAZARD_PRIORITY: Final = ("storm", "heavy_rain", "snow", "freeze")
_DAYS: Final = (localised("今天", "today"), localised("明天", "tomorrow"))


def _listed(words: list[str], conjunction: str, comma: str) -> str:
    if len(words) <= 1:
        return "".join(words)
    return comma.join(words[:-1]) + conjunction + words[-1]


def hazard_forecast(days: Iterable[tuple[int, Iterable[str]]]) -> Localised:
    """What a notice says is coming, per day offset (0 today, 1 tomorrow) and its hazards:
    ``明天有暴雨和雷暴大风`` / ``heavy rain and gales or thunderstorms tomorrow``;
    ``今天有降雪，明天有严寒冰冻`` / ``snow today and hard frost tomorrow``."""
    zh: list[str] = []
    en: list[str] = []
    for offset, hazards in days:
        names = [HAZARD_WORDS[h] for h in hazards]
        zh.append(_DAYS[offset]["zh-CN"] + "有"
                  + _listed([n["zh-CN"] for n in names], "和", "、"))
        en.append(_listed([n["en"] for n in names], " and ", ", ") + " " + _DAYS[offset]["en"])
    return {"zh-CN": "，".join(zh), "en": "; ".join(en)}


def hazard_advice(hazards: Iterable[str]) -> Localised:
    """The advice for each hazard, in a fixed order, each once."""
    present = set(hazards)
    chosen = [HAZARD_ADVICE[h] for h in HAZARD_PRIORITY if h in present]
    return {"zh-CN": "".join(a["zh-CN"] for a in chosen),
            "en": " ".join(a["en"] for a in chosen)}


def hazard_tip(hazards: Iterable[str]) -> Localised:
    """The SMS tip: the most dangerous hazard's."""
    present = set(hazards)
    return HAZARD_TIP[next(h for h in HAZARD_PRIORITY if h in present)]


HAZARD_ADVICE: Final[dict[str, Localised]] = {
    "heavy_rain": localised(
        "请将车辆停放在地势较高处，避开地下车库和低洼路段；雨天减速慢行，切勿涉深水行驶。",
        "Park on higher ground, away from underground car parks and low-lying roads. "
        "Slow down in the rain and never drive through deep water.",
    ),
    "snow": localised(
        "出行前请检查轮胎和防冻液，清除车身积雪；雪天减速慢行、加大车距，避免急刹车。",
        "Check tyres and antifreeze and clear the snow off the car before you set out. "
        "Drive slowly, keep your distance and avoid sudden braking.",
    ),
    "storm": localised(
        "请将车辆停放在远离大树、广告牌和临时搭建物的地方；行车时握稳方向盘，减速慢行。",
        "Park away from trees, billboards and temporary structures. "
        "Keep a firm grip on the wheel and slow down.",
    ),
    "freeze": localised(
        "请检查防冻液和蓄电池，车窗除冰后再上路；桥面和背阴路段容易结冰，请减速慢行。",
        "Check antifreeze and the battery, and clear ice from every window before driving. "
        "Bridges and shaded roads freeze first: slow down.",
    ),
}
