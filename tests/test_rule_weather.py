"""Weather rule: hazard thresholds, notices through the fake Open-Meteo server, a failing region
not stopping the others, and a provider outage ending the run cleanly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest

from bot.delivery.segments import count_segments
from bot.settings import SmsSettings
from bot.texts import Texts
from scheduler import weather, wording
from scheduler.config import WeatherSettings
from scheduler.context import PlanContext, outbox_sink
from scheduler.forecast import DayForecast, OpenMeteo
from storage.models import Category, Message, PolicyStatus, Region
from tests import factories
from tests.fakes.weather import FakeWeather

DAY = date(2026, 7, 1)
SHANGHAI = (31.23, 121.47)
BEIJING = (39.90, 116.41)


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def source(fake_weather: FakeWeather, sleeps: Sleeps) -> AsyncIterator[OpenMeteo]:
    client = OpenMeteo(_settings(fake_weather), timezone="Asia/Shanghai", sleep=sleeps)
    yield client
    await client.close()


def _settings(fake: FakeWeather, **extra: object) -> WeatherSettings:
    return WeatherSettings(api_base=fake.base_url, **extra)  # type: ignore[arg-type]


def _ctx(day: date = DAY, today: date | None = None) -> PlanContext:
    return PlanContext(day=day, today=today or day)


def _day(**values: float | int | None) -> DayForecast:
    return DayForecast(place="x", day=DAY, **values)  # type: ignore[arg-type]


async def _insured(region: Region, **extra: object) -> int:
    c = await factories.customer(region=region, **extra)
    await factories.policy(c, end=date(2026, 12, 31))
    return c.id


async def _regions() -> tuple[Region, Region]:
    sh = await Region.create(code="shanghai", name="上海", name_en="Shanghai",
                             latitude=SHANGHAI[0], longitude=SHANGHAI[1])
    bj = await Region.create(code="beijing", name="北京", name_en="Beijing",
                             latitude=BEIJING[0], longitude=BEIJING[1])
    return sh, bj


# -- pure ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [({"precipitation_mm": 24.9}, []),
     ({"precipitation_mm": 25.0}, ["heavy_rain"]),
     ({"snowfall_cm": 0.9}, []),
     ({"snowfall_cm": 1.0}, ["snow"]),
     ({"gust_ms": 16.9}, []),
     ({"gust_ms": 17.0}, ["storm"]),
     ({"weather_code": 94}, []),
     ({"weather_code": 95}, ["storm"]),
     ({"weather_code": 99}, ["storm"]),
     ({"temp_min_c": -4.9}, []),
     ({"temp_min_c": -5.0}, ["freeze"]),
     ({"precipitation_mm": 30.0, "snowfall_cm": 5.0, "gust_ms": 20.0, "temp_min_c": -8.0},
      ["heavy_rain", "snow", "storm", "freeze"]),
     ({}, [])],
)
def test_hazard_thresholds(values: dict[str, float], expected: list[str]) -> None:
    assert weather.hazards(_day(**values), WeatherSettings()) == expected


def test_thresholds_are_configurable() -> None:
    assert weather.hazards(_day(precipitation_mm=12.0),
                           WeatherSettings(heavy_rain_mm=10.0)) == ["heavy_rain"]


# -- through the fake weather server -----------------------------------------------------------


async def test_one_combined_notice_per_customer_naming_every_hazard(
    db: str, fake_weather: FakeWeather, source: OpenMeteo
) -> None:
    sh, bj = await _regions()
    a = await _insured(sh)
    b = await _insured(bj)
    lapsed = await factories.customer(region=sh)  # more than care.lapsed_days ago
    await factories.policy(lapsed, end=date(2025, 6, 30), status=PolicyStatus.EXPIRED)
    fake_weather.set_forecast(*SHANGHAI, [{"date": "2026-07-02", "precipitation_sum": 60.0,
                                           "weather_code": 95}])
    fake_weather.set_forecast(*BEIJING, [{"date": "2026-07-01", "wind_gusts_10m_max": 18.0}])

    result = await weather.queue(_ctx(), _settings(fake_weather), source, outbox_sink(100))

    assert (result.queued, result.regions, result.failed) == (2, 2, [])
    assert sorted(await Message.all().values_list("dedup_key", flat=True)) == sorted([
        f"weather:2026-07-01:{a}", f"weather:2026-07-01:{b}"])
    [request] = fake_weather.requests
    assert request.params["wind_speed_unit"] == "ms"
    assert request.params["daily"] == ("weather_code,precipitation_sum,snowfall_sum,"
                                       "wind_gusts_10m_max,temperature_2m_min")
    assert (request.params["start_date"], request.params["end_date"]) == ("2026-07-01",
                                                                         "2026-07-02")
    assert len(request.latitudes) == 2
    rain = await Message.get(dedup_key=f"weather:2026-07-01:{a}")
    assert (rain.category, rain.template_key) == (Category.ALERT, "weather_notice")
    assert rain.params["region"] == {"zh-CN": "上海", "en": "Shanghai"}
    assert rain.params["forecast"] == {"zh-CN": "明天有暴雨和雷暴大风",
                                       "en": "heavy rain and gales or thunderstorms tomorrow"}
    assert "低洼" in rain.params["advice"]["zh-CN"] and "大树" in rain.params["advice"]["zh-CN"]
    assert rain.params["tip"]["zh-CN"] == "请远离大树和广告牌停车。"  # the storm's: the worst
    assert rain.not_before == datetime(2026, 6, 30, 23, 0, tzinfo=UTC)  # 07:00 Shanghai
    assert rain.stale_after == datetime(2026, 7, 2, 4, 0, tzinfo=UTC)  # 12:00 the rainy day
    gust = await Message.get(dedup_key=f"weather:2026-07-01:{b}")
    assert gust.params["forecast"]["zh-CN"] == "今天有雷暴大风"

    again = await weather.queue(_ctx(date(2026, 7, 2)), _settings(fake_weather), source,
                                outbox_sink(100))
    assert again.queued == 0  # tomorrow's run sees the same rain: announced already
    assert again.by_region == {"shanghai": [(date(2026, 7, 2), ["heavy_rain", "storm"])]}


async def test_a_hazard_new_the_next_day_is_announced_alone(
    db: str, fake_weather: FakeWeather, source: OpenMeteo
) -> None:
    sh, _ = await _regions()
    a = await _insured(sh)
    fake_weather.set_forecast(*SHANGHAI, [{"date": "2026-07-02", "precipitation_sum": 60.0}])
    await weather.queue(_ctx(), _settings(fake_weather), source, outbox_sink(100))
    fake_weather.set_forecast(*SHANGHAI, [{"date": "2026-07-02", "precipitation_sum": 60.0,
                                           "wind_gusts_10m_max": 25.0}])

    again = await weather.queue(_ctx(date(2026, 7, 2)), _settings(fake_weather), source,
                                outbox_sink(100))

    assert again.queued == 1
    second = await Message.get(dedup_key=f"weather:2026-07-02:{a}")
    assert second.params["forecast"]["zh-CN"] == "今天有雷暴大风"


@pytest.mark.parametrize(("days", "zh", "en"), [
    ([(1, ["heavy_rain", "storm"])], "明天有暴雨和雷暴大风",
     "heavy rain and gales or thunderstorms tomorrow"),
    ([(0, ["snow"]), (1, ["snow", "freeze"])], "今天有降雪，明天有降雪和严寒冰冻",
     "snow today; snow and hard frost tomorrow"),
    ([(0, ["heavy_rain", "snow", "storm"])], "今天有暴雨、降雪和雷暴大风",
     "heavy rain, snow and gales or thunderstorms today"),
])
def test_hazard_combinations_are_worded_in_both_languages(
        days: list[tuple[int, list[str]]], zh: str, en: str) -> None:
    assert wording.hazard_forecast(days) == {"zh-CN": zh, "en": en}


@pytest.mark.parametrize("hazards", [
    ["heavy_rain"], ["snow"], ["storm"], ["freeze"], ["heavy_rain", "storm"],
    ["snow", "freeze"], ["heavy_rain", "snow", "storm", "freeze"]])
def test_chinese_sms_notice_fits_one_segment_with_signature_and_opt_out(
        hazards: list[str]) -> None:
    texts, sms = Texts.load(), SmsSettings()
    params = {"name": "欧阳娜娜", "region": {"zh-CN": "西双版纳", "en": "Xishuangbanna"},
              "forecast": wording.hazard_forecast([(1, hazards)]),
              "advice": wording.hazard_advice(hazards), "tip": wording.hazard_tip(hazards)}
    body = texts.render("weather_notice", "zh-CN", params, sms=True)
    assert count_segments(sms.signature + body + sms.opt_out_hint_zh) == 1, body
    assert texts.render("weather_notice", "en", params, sms=True)


async def test_provider_outage_is_retried_with_backoff_then_ends_cleanly(
    db: str, fake_weather: FakeWeather, source: OpenMeteo, sleeps: Sleeps
) -> None:
    sh, _ = await _regions()
    await _insured(sh)
    fake_weather.set_forecast(*SHANGHAI, [{"date": "2026-07-01", "snowfall_sum": 3.0}])
    fake_weather.outage(status=503, times=3)

    result = await weather.queue(_ctx(), _settings(fake_weather), source, outbox_sink(100))

    assert result.failed == ["shanghai"] and not result.complete and result.retryable
    assert result.queued == 0 and await Message.all().count() == 0
    assert len(fake_weather.requests) == 3  # retries = 2
    assert sleeps.calls == [2.0, 4.0]
    # the next run, with the provider back, queues the notice
    result = await weather.queue(_ctx(), _settings(fake_weather), source, outbox_sink(100))
    assert result.complete and result.queued == 1


async def test_a_failing_request_does_not_stop_the_other_regions(
    db: str, fake_weather: FakeWeather, sleeps: Sleeps
) -> None:
    sh, bj = await _regions()
    await _insured(sh)
    b = await _insured(bj)
    fake_weather.set_forecast(*SHANGHAI, [{"date": "2026-07-01", "snowfall_sum": 3.0}])
    fake_weather.set_forecast(*BEIJING, [{"date": "2026-07-01", "snowfall_sum": 3.0}])
    fake_weather.outage(status=502, times=2)
    settings = _settings(fake_weather, regions_per_request=1, retries=1)
    client = OpenMeteo(settings, timezone="Asia/Shanghai", sleep=sleeps)
    try:
        result = await weather.queue(_ctx(), settings, client, outbox_sink(100))
    finally:
        await client.close()
    assert result.failed == ["shanghai"]
    assert await Message.all().values_list("dedup_key", flat=True) == [
        f"weather:2026-07-01:{b}"]


async def test_a_region_the_provider_refuses_is_isolated_from_its_batch(
    db: str, fake_weather: FakeWeather, source: OpenMeteo
) -> None:
    sh, _ = await _regions()
    bad = await Region.create(code="nowhere", name="无", latitude=95.0, longitude=0.0)
    a = await _insured(sh)
    await _insured(bad)
    fake_weather.set_forecast(*SHANGHAI, [{"date": "2026-07-01", "temperature_2m_min": -9.0}])
    result = await weather.queue(_ctx(), _settings(fake_weather), source, outbox_sink(100))
    assert result.failed == ["nowhere"] and not result.retryable
    assert await Message.all().values_list("dedup_key", flat=True) == [
        f"weather:2026-07-01:{a}"]


async def test_past_days_get_no_weather_notices(
    db: str, fake_weather: FakeWeather, source: OpenMeteo
) -> None:
    sh, _ = await _regions()
    await _insured(sh)
    result = await weather.queue(_ctx(DAY, today=date(2026, 7, 3)), _settings(fake_weather),
                                 source, outbox_sink(100))
    assert result.regions == 0 and fake_weather.requests == []
