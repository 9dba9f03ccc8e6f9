"""Daily weather forecasts: a small Protocol the weather rule uses, and its Open-Meteo adapter.

The adapter asks for several places per request (comma-separated coordinates, as Open-Meteo
allows), with a timeout per attempt and a bounded number of retries with doubling backoff for
what may pass (timeouts, connection errors, 429 and 5xx). ``sleep`` is injected so tests do
not wait. A request that cannot be answered raises :class:`ForecastUnavailable`; the caller
decides what that means for the other places.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Protocol

import aiohttp

from scheduler.config import WeatherSettings

log = logging.getLogger(__name__)

DAILY_VARIABLES: Final = (
    "weather_code", "precipitation_sum", "snowfall_sum", "wind_gusts_10m_max",
    "temperature_2m_min",
)
_RETRYABLE_STATUS: Final = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Place:
    code: str
    latitude: float
    longitude: float


@dataclass(frozen=True, slots=True)
class DayForecast:
    """One place's daily values; None where the provider has no value."""

    place: str
    day: date
    weather_code: int | None = None
    precipitation_mm: float | None = None
    snowfall_cm: float | None = None
    gust_ms: float | None = None
    temp_min_c: float | None = None


class ForecastUnavailable(Exception):
    """The forecast could not be had for these places; ``retryable`` if trying later may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class ForecastSource(Protocol):
    async def daily(self, places: Sequence[Place], start: date,
                    end: date) -> list[DayForecast]: ...


Sleep = Callable[[float], Awaitable[None]]


class StaticForecast:
    """A forecast source answering from a fixed list: the offline demo's scripted weather."""

    def __init__(self, days: Iterable[DayForecast] = ()) -> None:
        self.days = list(days)

    async def daily(self, places: Sequence[Place], start: date,
                    end: date) -> list[DayForecast]:
        codes = {p.code for p in places}
        return [d for d in self.days if d.place in codes and start <= d.day <= end]


def forecast_file(path: str) -> StaticForecast:
    """A forecast written down (``engage weather --forecast FILE.json``): a JSON list of
    ``{"region": "440300", "date": "2026-07-02", "precipitation_sum": 60, …}`` with any of
    Open-Meteo's daily variable names; ``ValueError`` names what is wrong."""
    with open(path, encoding="utf-8") as f:
        try:
            rows = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not JSON ({exc})") from None
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a list of daily forecasts")
    days: list[DayForecast] = []
    for i, row in enumerate(rows, start=1):
        try:
            place, day = str(row["region"]), date.fromisoformat(str(row["date"]))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: item {i}: needs region and date (YYYY-MM-DD)") from None
        values = [row.get(name) for name in DAILY_VARIABLES]
        parsed = [_number(values, k) for k in range(len(values))]
        code = parsed[0]
        days.append(DayForecast(place, day, int(code) if code is not None else None,
                                *parsed[1:]))
    return StaticForecast(days)


class OpenMeteo:
    """``GET {api_base}/v1/forecast`` for many places at once."""

    def __init__(self, settings: WeatherSettings, *, timezone: str,
                 session: aiohttp.ClientSession | None = None,
                 sleep: Sleep = asyncio.sleep) -> None:
        self._settings = settings
        self._timezone = timezone
        self._session = session
        self._own_session = session is None
        self._sleep = sleep

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def daily(self, places: Sequence[Place], start: date,
                    end: date) -> list[DayForecast]:
        if not places:
            return []
        params = {
            "latitude": ",".join(f"{p.latitude:.4f}" for p in places),
            "longitude": ",".join(f"{p.longitude:.4f}" for p in places),
            "daily": ",".join(DAILY_VARIABLES),
            "timezone": self._timezone,
            "start_date": start.isoformat(),
            "end_date": end.isoformat(),
            "wind_speed_unit": "ms",
        }
        body = await self._get(params)
        objects = body if isinstance(body, list) else [body]
        if len(objects) != len(places):
            raise ForecastUnavailable(
                f"asked for {len(places)} places, got {len(objects)}", retryable=True)
        out: list[DayForecast] = []
        for place, obj in zip(places, _in_request_order(objects), strict=True):
            out.extend(_parse(place, obj))
        return out

    async def _get(self, params: Mapping[str, str]) -> Any:
        url = f"{self._settings.api_base.rstrip('/')}/v1/forecast"
        timeout = aiohttp.ClientTimeout(total=self._settings.timeout_seconds)
        attempts = self._settings.retries + 1
        delay = self._settings.backoff_seconds
        last = "no attempt"
        for attempt in range(1, attempts + 1):
            try:
                async with self._http().get(url, params=params, timeout=timeout) as response:
                    if response.status == 200:
                        return await response.json(content_type=None)
                    reason = await _reason(response)
                    last = f"HTTP {response.status}: {reason}"
                    if response.status not in _RETRYABLE_STATUS:
                        raise ForecastUnavailable(last, retryable=False)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if attempt < attempts:
                log.info("weather request failed (%s), attempt %d of %d", last, attempt, attempts)
                await self._sleep(delay)
                delay *= 2
        raise ForecastUnavailable(last, retryable=True)


async def _reason(response: aiohttp.ClientResponse) -> str:
    try:
        body = await response.json(content_type=None)
    except (aiohttp.ClientError, ValueError):
        return response.reason or "error"
    if isinstance(body, dict) and isinstance(body.get("reason"), str):
        return str(body["reason"])[:200]
    return response.reason or "error"


def _in_request_order(objects: list[Any]) -> list[Any]:
    if all(isinstance(o, dict) and "location_id" in o for o in objects):
        return sorted(objects, key=lambda o: int(o["location_id"]))
    return objects


def _number(values: Sequence[Any], index: int) -> float | None:
    if index >= len(values):
        return None
    value = values[index]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _parse(place: Place, obj: Any) -> list[DayForecast]:
    if not isinstance(obj, dict) or not isinstance(obj.get("daily"), dict):
        raise ForecastUnavailable(f"no daily forecast for {place.code}", retryable=True)
    daily: dict[str, Any] = obj["daily"]
    times = daily.get("time")
    if not isinstance(times, list):
        raise ForecastUnavailable(f"no dates in the forecast for {place.code}", retryable=True)
    columns: dict[str, list[Any]] = {}
    for name in DAILY_VARIABLES:
        values = daily.get(name)
        columns[name] = values if isinstance(values, list) else []
    out: list[DayForecast] = []
    for i, raw in enumerate(times):
        try:
            day = date.fromisoformat(str(raw))
        except ValueError:
            continue
        code = _number(columns["weather_code"], i)
        out.append(DayForecast(
            place=place.code,
            day=day,
            weather_code=int(code) if code is not None else None,
            precipitation_mm=_number(columns["precipitation_sum"], i),
            snowfall_cm=_number(columns["snowfall_sum"], i),
            gust_ms=_number(columns["wind_gusts_10m_max"], i),
            temp_min_c=_number(columns["temperature_2m_min"], i),
        ))
    return out
