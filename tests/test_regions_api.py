"""Regions in the operator API and the console: customers, last hazards and this week's
weather notices per region; custom areas imported from a CSV."""

from __future__ import annotations

from datetime import date

from aiohttp.test_utils import TestClient, TestServer

from bot.web.app import Overrides, build_app
from bot.web.operators.access import create_operator
from storage.models import Category, Message, Region
from storage.operator_models import Role
from storage.scheduler_models import WeatherAlert
from tests import factories as f
from tests.fakes.weather import FakeWeather
from tests.test_operators_api import Rig, console_login, rig  # noqa: F401  (fixture)


async def _shenzhen_storm() -> Region:
    shenzhen = await Region.get(code="440300")
    owner = await f.customer(region=shenzhen)
    await f.customer(region=shenzhen)
    await WeatherAlert.create(region=shenzhen, day=date(2026, 11, 22), hazard="storm",
                              first_seen_on=date(2026, 11, 21), last_seen_on=date(2026, 11, 21))
    await WeatherAlert.create(region=shenzhen, day=date(2026, 11, 22), hazard="heavy_rain",
                              first_seen_on=date(2026, 11, 21), last_seen_on=date(2026, 11, 21))
    await f.queued(owner, key=f"weather:2026-11-21:{owner.id}", kind="weather",
                   category=Category.ALERT, template="weather_notice")
    return shenzhen


async def test_regions_api_lists_used_regions_with_alerts_and_notices(rig: Rig) -> None:  # noqa: F811
    await _shenzhen_storm()
    status, body = await rig.call("GET", "/api/v1/regions?used=true", role=Role.VIEWER)
    assert status == 200
    [row] = body
    assert (row["code"], row["name"], row["customers"], row["notices_week"]) == \
        ("440300", "深圳", 2, 1)
    assert row["last_alert"] == {"day": "2026-11-22", "hazards": ["storm", "heavy_rain"],
                                 "seen_on": "2026-11-21"}
    status, body = await rig.call("GET", "/api/v1/regions", role=Role.VIEWER)
    assert status == 200 and len(body) == 366


async def test_regions_api_import_is_for_admins_and_reports_rows(rig: Rig) -> None:  # noqa: F811
    csv = ("code,name,latitude,longitude,parent\n"
           "chongming,崇明岛,31.62,121.40,310000\n"
           "bad,坏,95,121.4,\n").encode()
    status, _ = await rig.call("POST", "/api/v1/regions/import", role=Role.AGENT, data=csv,
                               headers={"Content-Type": "text/csv"})
    assert status == 403
    status, body = await rig.call("POST", "/api/v1/regions/import", data=csv,
                                  headers={"Content-Type": "text/csv"})
    assert status == 200
    assert body["problems"] == ["line 3: latitude: out of range (±90)"]
    assert (body["created"], body["rejected"]) == (1, 1)
    assert (await Region.get(code="chongming")).parent == "310000"
    status, body = await rig.call("POST", "/api/v1/regions/import", data=b"name\nx\n",
                                  headers={"Content-Type": "text/csv"})
    assert status == 422 and await Region.filter(builtin=False).count() == 1


async def test_console_regions_page_shows_customers_and_last_alert(rig: Rig) -> None:  # noqa: F811
    await _shenzhen_storm()
    await console_login(rig.client, rig.tokens[Role.VIEWER])
    resp = await rig.client.get("/console/regions")
    html = await resp.text()
    assert resp.status == 200
    assert 'data-code="440300"' in html and "2026-11-22" in html
    assert "110000" not in html  # only regions with customers unless asked
    resp = await rig.client.get("/console/regions?all=1")
    assert 'data-code="110000"' in await resp.text()
    assert await Message.filter(kind="weather").count() == 1


async def test_console_weather_dry_run_shows_hazards_and_writes_nothing(
        db: str, fake_weather: FakeWeather) -> None:
    settings = f.settings_for(db_url=db, weather={"api_base": fake_weather.base_url})
    app = build_app(settings, Overrides(run_dispatcher=False, run_scheduler=False,
                                        run_campaigns=False, manage_database=False,
                                        clock=lambda: f.NOON_SHANGHAI))
    _, token = await create_operator("值班", Role.AGENT, contact_phone=None)
    shenzhen = await Region.get(code="440300")
    for _ in range(2):
        c = await f.customer(region=shenzhen)
        await f.policy(c, end=date(2026, 12, 31))
    fake_weather.set_forecast(shenzhen.latitude, shenzhen.longitude, [
        {"date": "2026-07-02", "precipitation_sum": 70.0, "wind_gusts_10m_max": 25.0}])
    async with TestClient(TestServer(app)) as client:
        csrf = await console_login(client, token)
        resp = await client.post("/console/regions/dry-run",
                                 data={"date": "2026-07-01", "csrf_token": csrf})
        html = await resp.text()
    assert resp.status == 200
    assert "2026-07-01 dry run: forecast for 1 regions with customers, 2 alerts would go" in html \
        or "2026-07-01 试算：获取 1 个有客户的地区的预报，将发送 2 条预警" in html
    assert "440300: 2026-07-02" in html
    assert await Message.all().count() == 0 and await WeatherAlert.all().count() == 0
