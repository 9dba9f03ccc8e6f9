"""Weather rule: hazard thresholds, notices through the fake Open-Meteo server, a failing region
not stopping the others, and a provider outage ending the run cleanly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest

from scheduler import weather
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


async def test_notices_per_customer_region_hazard_and_date(
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

    assert (result.queued, result.regions, result.failed) == (3, 2, [])
    assert sorted(await Message.all().values_list("dedup_key", flat=True)) == sorted([
        f"weather:shanghai:2026-07-02:heavy_rain:{a}",
        f"weather:shanghai:2026-07-02:storm:{a}",
        f"weather:beijing:2026-07-01:storm:{b}",
    ])
    [request] = fake_weather.requests
    assert request.params["wind_speed_unit"] == "ms"
    assert request.params["daily"] == ("weather_code,precipitation_sum,snowfall_sum,"
                                       "wind_gusts_10m_max,temperature_2m_min")
    assert (request.params["start_date"], request.params["end_date"]) == ("2026-07-01",
                                                                         "2026-07-02")
    assert len(request.latitudes) == 2
    rain = await Message.get(dedup_key=f"weather:shanghai:2026-07-02:heavy_rain:{a}")
    assert (rain.category, rain.template_key) == (Category.CARE, "weather_alert")
    assert rain.params["region"] == {"zh-CN": "上海", "en": "Shanghai"}
    assert rain.params["date"] == {"zh-CN": "2026年7月2日", "en": "2 Jul 2026"}
    assert rain.params["hazard"] == {"zh-CN": "强降雨", "en": "heavy rain"}
    assert "低洼" in rain.params["advice"]["zh-CN"]
    assert rain.not_before == datetime(2026, 6, 30, 23, 0, tzinfo=UTC)  # 07:00 Shanghai
    assert rain.stale_after == datetime(2026, 7, 2, 4, 0, tzinfo=UTC)  # 12:00 the rainy day

    again = await weather.queue(_ctx(date(2026, 7, 2)), _settings(fake_weather), source,
                                outbox_sink(100))
    assert again.queued == 0  # tomorrow's run sees the same rain: nothing new


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
        f"weather:beijing:2026-07-01:snow:{b}"]


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
        f"weather:shanghai:2026-07-01:freeze:{a}"]


async def test_past_days_get_no_weather_notices(
    db: str, fake_weather: FakeWeather, source: OpenMeteo
) -> None:
    sh, _ = await _regions()
    await _insured(sh)
    result = await weather.queue(_ctx(DAY, today=date(2026, 7, 3)), _settings(fake_weather),
                                 source, outbox_sink(100))
    assert result.regions == 0 and fake_weather.requests == []
