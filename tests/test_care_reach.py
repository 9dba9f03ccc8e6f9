"""Customer care: one definition of "insured today" (a policy covering the day, whatever its
status label, except cancelled) and one eligibility rule (insured today or lapsed within
``care.lapsed_days``) for every care rule; greeting times in the customer's own time zone; one
festival greeting per customer per day. Through ``engage plan`` walking days on a real
database (both backends), and the weather rule against the fake forecast server."""

from __future__ import annotations

import contextlib
import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from scheduler import weather
from scheduler.config import WeatherSettings
from scheduler.context import PlanContext, outbox_sink
from scheduler.forecast import OpenMeteo
from scheduler.plan import run_plan
from storage.coverage import insured_on
from storage.models import Customer, Message, PolicyStatus, Region
from storage.sql import current, fetch
from tests import factories
from tests.fakes.weather import FakeWeather

NATIONAL_DAY = date(2026, 10, 1)


def plan(day: date) -> dict[str, int]:
    """``engage plan --date day``: the counts it prints, per kind."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["plan", "--date", day.isoformat()]) == 0
    lines = out.getvalue().splitlines()[1:]
    return {line.split()[0]: int(line.split()[1]) for line in lines
            if len(line.split()) >= 2 and line.split()[1].isdigit()}


async def _customers() -> dict[str, int]:
    """One customer of each kind care has to decide about, all born on National Day."""
    born = {"birthday": date(1980, 10, 1), "birthday_md": 1001}
    people: dict[str, int] = {}

    async def person(key: str, *policies: dict[str, Any], **extra: Any) -> None:
        owner = await factories.customer(name=key, **born, **extra)
        for fields in policies:
            await factories.policy(owner, **fields)
        people[key] = owner.id

    await person("insured", {"end": date(2027, 3, 31)})
    # renewed early: the old policy still runs to 10 Oct, the renewal starts on the 11th
    await person("renewed_early",
                 {"start_date": date(2025, 10, 11), "end": date(2026, 10, 10),
                  "status": PolicyStatus.RENEWED},
                 {"start_date": date(2026, 10, 11), "end": date(2027, 10, 10)})
    # the core system has not corrected the label: "expired", yet it covers the day
    await person("mislabelled", {"start_date": date(2026, 1, 1), "end": date(2026, 12, 31),
                                 "status": PolicyStatus.EXPIRED})
    await person("lapsed_recently", {"end": date(2026, 3, 31), "status": PolicyStatus.EXPIRED})
    await person("lapsed_long_ago", {"end": date(2025, 9, 30), "status": PolicyStatus.EXPIRED})
    await person("cancelled", {"end": date(2027, 3, 31), "status": PolicyStatus.CANCELLED})
    await person("no_policy")
    await person("new_york", {"end": date(2027, 3, 31)}, timezone="America/New_York")
    return people


REACHED = {"insured", "renewed_early", "mislabelled", "lapsed_recently", "new_york"}


def test_every_care_rule_reaches_the_same_customers_walking_the_days(engage_url: str) -> None:
    people = factories.on_database(engage_url, _customers)
    assert [plan(NATIONAL_DAY - timedelta(days=1))["birthday"],
            plan(NATIONAL_DAY)["birthday"],
            plan(NATIONAL_DAY + timedelta(days=1))["birthday"]] == [0, 5, 0]

    async def greeted() -> dict[str, set[str]]:
        names = {pk: name for name, pk in people.items()}
        found: dict[str, set[str]] = {}
        for kind, customer in await Message.all().values_list("kind", "customer_id"):
            found.setdefault(kind, set()).add(names[customer])
        return found

    assert factories.on_database(engage_url, greeted) == {"birthday": REACHED,
                                                          "festival": REACHED}
    # planning the day again queues nothing new
    assert plan(NATIONAL_DAY) == {"birthday": 0, "festival": 0, "renewal": 0,
                                  "renewal_holiday": 0, "lapse_rescue": 0, "total": 0}


def test_lapsed_days_is_the_one_setting_for_lapsed_customers(
        engage_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    factories.on_database(engage_url, _customers)
    monkeypatch.setenv("ENGAGE_CARE__LAPSED_DAYS", "0")
    assert plan(NATIONAL_DAY)["festival"] == len(REACHED) - 1  # not lapsed_recently


def test_adding_a_festival_to_a_day_already_greeted_sends_nothing_more(
        engage_url: str, tmp_path: Path) -> None:
    factories.on_database(engage_url, _customers)
    assert plan(NATIONAL_DAY)["festival"] == len(REACHED)
    (tmp_path / "config.toml").write_text(
        '[[schedule.festivals]]\ncode = "company_day"\nmonth = 10\nday = 1\n'
        'name_zh = "公司日"\nname_en = "Company Day"\n', encoding="utf-8")
    assert plan(NATIONAL_DAY)["festival"] == 0

    async def keys() -> list[str]:
        return list(await Message.filter(kind="festival").values_list("dedup_key", flat=True))

    assert all(key.startswith("festival:2026-10-01:")
               for key in factories.on_database(engage_url, keys))


def test_greetings_go_in_the_morning_of_the_customers_own_time_zone(engage_url: str) -> None:
    people = factories.on_database(engage_url, _customers)
    plan(NATIONAL_DAY)

    async def times() -> dict[tuple[str, str], tuple[datetime, datetime]]:
        rows = await Message.filter(customer_id__in=[people["new_york"], people["insured"]]
                                    ).values_list("kind", "customer__name", "not_before",
                                                  "stale_after")
        return {(kind, name): (sent, stale) for kind, name, sent, stale in rows}

    found = factories.on_database(engage_url, times)
    # 08:30 and midnight in New York (EDT, UTC-4) on 1 October; 08:30 Shanghai for the others
    new_york = (datetime(2026, 10, 1, 12, 30, tzinfo=UTC), datetime(2026, 10, 2, 4, 0, tzinfo=UTC))
    shanghai = (datetime(2026, 10, 1, 0, 30, tzinfo=UTC), datetime(2026, 10, 1, 16, 0, tzinfo=UTC))
    assert found == {("birthday", "new_york"): new_york, ("festival", "new_york"): new_york,
                     ("birthday", "insured"): shanghai, ("festival", "insured"): shanghai}


async def test_renewal_reminders_go_at_the_plan_time_in_the_customers_zone(db: str) -> None:
    owner = await factories.customer(timezone="America/New_York")
    policy = await factories.policy(owner, end=date(2026, 11, 30))
    await factories.policy(await factories.customer(), end=date(2026, 11, 30))
    await run_plan(PlanContext(day=date(2026, 11, 21), today=date(2026, 11, 21)))
    reminder = await Message.get(dedup_key=f"renewal:{policy.id}:T-9")
    assert reminder.not_before == datetime(2026, 11, 21, 13, 30, tzinfo=UTC)  # 08:30 EST
    other = await Message.exclude(id=reminder.id).get(kind="renewal")
    assert other.not_before == datetime(2026, 11, 21, 0, 30, tzinfo=UTC)  # 08:30 Shanghai


async def test_weather_reaches_the_same_customers_at_seven_in_their_zone(
        db: str, fake_weather: FakeWeather) -> None:
    region = await Region.create(code="beijing", name="北京", name_en="Beijing", latitude=39.9,
                                 longitude=116.41)
    people = await _customers()
    await Customer.all().update(region_id=region.id)
    fake_weather.set_forecast(39.9, 116.41, [{"date": "2026-10-01", "precipitation_sum": 50.0}])
    source = OpenMeteo(WeatherSettings(api_base=fake_weather.base_url), timezone="Asia/Shanghai")
    try:
        result = await weather.queue(PlanContext(day=NATIONAL_DAY, today=NATIONAL_DAY),
                                     WeatherSettings(api_base=fake_weather.base_url), source,
                                     outbox_sink(100))
    finally:
        await source.close()
    names = {pk: name for name, pk in people.items()}
    rows = await Message.filter(kind="weather").values_list("customer_id", "not_before")
    assert result.queued == len(REACHED)
    assert {names[customer] for customer, _ in rows} == REACHED
    sent = {names[customer]: moment for customer, moment in rows}
    assert sent["new_york"] == datetime(2026, 10, 1, 11, 0, tzinfo=UTC)  # 07:00 EDT
    assert sent["insured"] == datetime(2026, 9, 30, 23, 0, tzinfo=UTC)  # 07:00 Shanghai


async def test_insured_on_a_day_is_any_cover_of_that_day_except_a_cancelled_one(
        db: str) -> None:
    people = await _customers()
    names = {pk: name for name, pk in people.items()}
    condition = insured_on(NATIONAL_DAY)
    rows = await fetch(current(), f"SELECT c.id FROM customer c WHERE {condition.sql}",
                       condition.params)
    assert {names[row["id"]] for row in rows} == REACHED - {"lapsed_recently"}
