"""A customer sets their own city for weather notices: in Telegram (/settings → City, or
/city 深圳) and by SMS (城市 深圳). The choice is the customer's: an import does not change it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bot.sms.keywords import Command, parse
from storage.importer import import_csv
from storage.models import Customer, Region
from tests import factories as f
from tests.test_sms_inbound import SmsRig, make_rig, rig  # noqa: F401  (fixtures)
from tests.test_telegram_support import Rig

pytest_plugins = ["tests.test_telegram_support"]


async def _city(customer_id: int) -> tuple[str | None, str]:
    c = await Customer.get(id=customer_id).prefetch_related("region")
    return (c.region.code if c.region is not None else None), c.region_set_by


# -- Telegram ------------------------------------------------------------------------------


async def test_settings_city_search_offers_matches_and_the_choice_is_kept(
        tg: Rig, tmp_path: Path) -> None:
    owner, user = await tg.linked(language="en")
    await tg.send(user, "/settings")
    buttons = [b["callback_data"] for row in tg.last(user.id)["reply_markup"]["inline_keyboard"]
               for b in row]
    assert "set:city:" in buttons
    t = tg.t("en")

    await tg.press(user, "set:city:")
    assert tg.last_text(user.id) == t("tg_city_ask", city="—")
    await tg.send(user, "苏州")  # 苏州 is one city, 宿州 (Suzhou too) another: no question
    assert tg.last_text(user.id) == t("tg_city_set", city="Suzhou")
    assert await _city(owner.id) == ("320500", "telegram")

    await tg.send(user, "/city 州")  # many cities: buttons to choose from
    markup = tg.last(user.id)["reply_markup"]["inline_keyboard"]
    labels = {b["text"]: b["callback_data"] for row in markup for b in row}
    assert tg.last_text(user.id) == t("tg_city_choose") and len(labels) == 8
    await tg.send(user, "/city 广州")
    assert await _city(owner.id) == ("440100", "telegram")

    shenzhen = await Region.get(code="440300")
    await tg.press(user, f"city:{shenzhen.id}")
    assert tg.last_text(user.id) == t("tg_city_set", city="Shenzhen")
    assert await _city(owner.id) == ("440300", "telegram")

    path = tmp_path / "c.csv"
    path.write_text(f"phone,name,region\n{owner.phone},{owner.name},北京\n", encoding="utf-8")
    report = await import_csv("customers", path, out=io.StringIO())
    assert report.kept == 1 and await _city(owner.id) == ("440300", "telegram")


async def test_an_unknown_city_changes_nothing(tg: Rig) -> None:
    owner, user = await tg.linked()
    await tg.send(user, "/city 火星")
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_city_none", text="火星")
    assert await _city(owner.id) == (None, "")


# -- SMS -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "argument"), [
    ("城市 深圳", "深圳"), ("城市深圳", "深圳"), ("城市：深圳市", "深圳市"),
    ("city shenzhen", "SHENZHEN"), ("CITY: 440300", "440300"), ("城市", ""), ("CITY", "")])
def test_city_keyword_takes_the_name(body: str, argument: str) -> None:
    parsed = parse(body)
    assert (parsed.command, parsed.argument) == (Command.CITY, argument)
    assert parse("CITYSHENZHEN").command is Command.MENU


async def test_sms_city_sets_the_customers_region(rig: SmsRig) -> None:  # noqa: F811
    owner = await f.customer()
    family = await f.customer(phone=owner.phone)
    reply = await rig.text(owner.phone, "城市 深圳")
    assert reply == rig.replies.to_number(owner.phone).say("sms_city_set", "zh-CN", city="深圳")
    assert await _city(owner.id) == ("440300", "sms")
    assert await _city(family.id) == ("440300", "sms")  # one number, one household

    reply = await rig.text(owner.phone, "城市")
    assert "深圳" in reply


async def test_sms_city_unknown_suggests_and_changes_nothing(rig: SmsRig) -> None:  # noqa: F811
    owner = await f.customer()
    replies = rig.replies.to_number(owner.phone)
    assert await rig.text(owner.phone, "城市 深玔") == replies.say(
        "sms_city_suggest", "zh-CN", text="深玔", city="深圳")
    assert await rig.text(owner.phone, "城市 火星") == replies.say(
        "sms_city_unknown", "zh-CN", text="火星")
    assert await _city(owner.id) == (None, "")


async def test_sms_city_replies_fit_one_segment(rig: SmsRig) -> None:  # noqa: F811
    from bot.delivery.segments import count_segments

    owner = await f.customer()
    replies = rig.replies.to_number(owner.phone)
    for body in (replies.say("sms_city_set", "zh-CN", city="乌鲁木齐"),
                 replies.say("sms_city_suggest", "zh-CN", text="乌鲁木", city="乌鲁木齐"),
                 replies.say("sms_city_unknown", "zh-CN", text="火星")):
        assert count_segments(body) == 1, body

