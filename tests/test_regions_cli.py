"""``engage regions list|import`` and ``engage weather --date D [--dry-run] [--forecast F]`` on
a clean database (no demo): both backends, through the real command."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from bot.cli import main
from storage.models import Customer, Message, Region
from storage.scheduler_models import WeatherAlert
from tests import factories as f

DAY = "2026-07-01"


async def _people() -> None:
    shenzhen = await Region.get(code="440300")
    beijing = await Region.get(code="110000")
    for region, n in ((shenzhen, 3), (beijing, 1)):
        for _ in range(n):
            c = await f.customer(region=region)
            await f.policy(c, end=date(2026, 12, 31))


async def _counts() -> tuple[int, int]:
    return await Message.all().count(), await WeatherAlert.all().count()


def _forecast(tmp_path: Path) -> Path:
    path = tmp_path / "forecast.json"
    path.write_text(json.dumps([
        {"region": "440300", "date": "2026-07-02", "precipitation_sum": 80.0,
         "wind_gusts_10m_max": 24.0},
        {"region": "110000", "date": "2026-07-01", "precipitation_sum": 2.0},
        {"region": "310000", "date": "2026-07-01", "snowfall_sum": 9.0},  # no customers there
    ]), encoding="utf-8")
    return path


def test_weather_dry_run_shows_hazards_and_writes_nothing(
        engage_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f.on_database(engage_url, _people)
    forecast = _forecast(tmp_path)

    assert main(["weather", "--date", DAY, "--dry-run", "--forecast", str(forecast)]) == 0
    out = capsys.readouterr().out
    assert "weather for 2026-07-01 (dry run: nothing written): 2 regions with customers" in out
    assert "  440300   2026-07-02 heavy_rain, storm" in out
    assert "310000" not in out and "110000" not in out
    assert "  3 notices would be queued" in out
    assert f.on_database(engage_url, _counts) == (0, 0)

    assert main(["weather", "--date", DAY, "--forecast", str(forecast)]) == 0
    assert "  3 notices queued" in capsys.readouterr().out
    assert f.on_database(engage_url, _counts) == (3, 2)
    assert main(["weather", "--date", DAY, "--forecast", str(forecast)]) == 0
    assert "  0 notices queued" in capsys.readouterr().out  # once per customer and day


def test_weather_forecast_file_mistake_is_one_line(
        engage_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"date": "2026-07-01"}]', encoding="utf-8")
    assert main(["weather", "--date", DAY, "--dry-run", "--forecast", str(bad)]) == 2
    assert capsys.readouterr().err.strip() == \
        f"engage: {bad}: item 1: needs region and date (YYYY-MM-DD)"


def test_regions_list_and_used(engage_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    f.on_database(engage_url, _people)
    assert main(["regions", "list"]) == 0
    everything = capsys.readouterr().out
    assert "366 regions, 4 customers" in everything
    assert main(["regions", "list", "--used"]) == 0
    used = capsys.readouterr().out.splitlines()
    assert used[-1] == "2 regions, 4 customers"
    assert used[1].startswith("110000   北京") and used[2].startswith("440300   深圳")
    assert used[2].split()[3] == "3"


def test_regions_import_adds_custom_areas_and_reports_bad_rows(
        engage_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "areas.csv"
    path.write_text("code,name,name_en,latitude,longitude,timezone,parent\n"
                    "chongming,崇明岛,Chongming Island,31.62,121.40,,310000\n"
                    "440300,深圳,Shenzhen,22.5,114.0,,\n"
                    "pingtan,平潭,Pingtan,north,119.79,,350100\n"
                    "xisha,西沙,Xisha,16.83,112.33,Mars/Base,460300\n", encoding="utf-8")

    assert main(["regions", "import", str(path)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "line 3: code: 440300 is a built-in region",
        "line 4: latitude: not a number: 'north'",
        "line 5: timezone: unknown time zone 'Mars/Base'",
        "regions: 1 accepted (1 created, 0 updated), 3 rejected",
    ]

    async def check() -> tuple[str, str, bool, int]:
        island = await Region.get(code="chongming")
        customer = await f.customer(region=island)
        await Customer.get(id=customer.id)
        return island.name, island.parent, island.builtin, await Region.all().count()

    assert f.on_database(engage_url, check) == ("崇明岛", "310000", False, 367)
