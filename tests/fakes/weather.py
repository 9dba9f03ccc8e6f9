"""A fake Open-Meteo forecast API (``GET /v1/forecast``).

Contract mimicked (https://open-meteo.com/en/docs):

* Query: ``latitude``, ``longitude`` (one value, or comma-separated lists of equal length),
  ``daily`` (comma-separated and/or repeated variable names), ``timezone`` (IANA name,
  ``GMT``/``UTC`` or ``auto``; default GMT), and either ``forecast_days`` (0–16, default 7)
  or ``start_date`` + ``end_date`` (ISO dates, inclusive).
* One location answers one JSON object; several answer a JSON list of objects (each with a
  ``location_id``). An object carries ``latitude``, ``longitude``, ``generationtime_ms``,
  ``utc_offset_seconds``, ``timezone``, ``timezone_abbreviation``, ``elevation``,
  ``daily_units`` and ``daily`` = ``{"time": [ISO dates], <variable>: [values]}``.
* Errors answer ``{"error": true, "reason": "..."}`` with status 400 (bad query) or the
  scripted outage status.

Differences from the real service, on purpose: coordinates are echoed (rounded to 2
decimals) instead of snapped to the model grid, and ``timezone=auto`` resolves to GMT.
Forecast values come from :meth:`FakeWeather.set_forecast` by date for the location rounded
to 2 decimals; any other day or place gets a benign day (clear sky, no rain or snow).
"today" is :attr:`FakeWeather.today` when set, else the current date in the requested zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from tests.fakes.server import FakeServer

__all__ = ["BENIGN_DAY", "DAILY_UNITS", "FakeWeather", "WeatherRequest"]

DAILY_UNITS: Final[dict[str, str]] = {
    "weather_code": "wmo code",
    "precipitation_sum": "mm",
    "rain_sum": "mm",
    "snowfall_sum": "cm",
    "wind_gusts_10m_max": "km/h",
    "wind_speed_10m_max": "km/h",
    "temperature_2m_min": "°C",
    "temperature_2m_max": "°C",
    "precipitation_probability_max": "%",
}
BENIGN_DAY: Final[dict[str, float | int]] = {
    "weather_code": 0,
    "precipitation_sum": 0.0,
    "rain_sum": 0.0,
    "snowfall_sum": 0.0,
    "wind_gusts_10m_max": 12.0,
    "wind_speed_10m_max": 6.0,
    "temperature_2m_min": 16.0,
    "temperature_2m_max": 25.0,
    "precipitation_probability_max": 0,
}
_MAX_FORECAST_DAYS: Final = 16


@dataclass(frozen=True)
class WeatherRequest:
    """One call to /v1/forecast: the raw query and the coordinates parsed from it."""

    params: dict[str, str]
    latitudes: list[float]
    longitudes: list[float]
    time: float
    status: int = 200


class _QueryError(Exception):
    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status

    def response(self) -> web.Response:
        return web.json_response({"error": True, "reason": self.reason}, status=self.status)


@dataclass
class _Outage:
    status: int
    reason: str
    remaining: int


def _key(lat: float, lon: float) -> tuple[float, float]:
    return round(lat, 2), round(lon, 2)


class FakeWeather(FakeServer):
    """Open-Meteo's daily forecast endpoint on loopback."""

    def __init__(self, *, delay: float = 0.0, today: date | None = None) -> None:
        super().__init__(delay=delay)
        self.today = today
        self.requests: list[WeatherRequest] = []
        self._forecasts: dict[tuple[float, float], dict[date, dict[str, Any]]] = {}
        self._outage: _Outage | None = None

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/forecast", self._forecast)
        return app

    # -- scripting ---------------------------------------------------------------------

    def set_forecast(self, lat: float, lon: float, days: Iterable[Mapping[str, Any]]) -> None:
        """Script daily values for a place; each day has ``date`` (date or ISO string)
        and any of the daily variables (missing ones take the benign value)."""
        by_date = self._forecasts.setdefault(_key(lat, lon), {})
        for day in days:
            values = dict(day)
            raw = values.pop("date")
            when = raw if isinstance(raw, date) else date.fromisoformat(str(raw))
            unknown = set(values) - set(DAILY_UNITS)
            if unknown:
                raise ValueError(f"unknown daily variables: {sorted(unknown)}")
            by_date[when] = values

    def outage(self, status: int = 503, times: int = 1, reason: str | None = None) -> None:
        """Answer the next ``times`` requests with an error."""
        text = reason or "Service temporarily unavailable"
        self._outage = _Outage(status, text, times)

    def set_delay(self, seconds: float) -> None:
        self.delay = seconds

    def clear(self) -> None:
        """Forget recorded requests; forecasts and outages stay."""
        self.requests.clear()

    # -- handler -----------------------------------------------------------------------

    async def _forecast(self, request: web.Request) -> web.Response:
        params = {key: ",".join(request.query.getall(key)) for key in request.query.keys()}
        started = self.now()
        lats: list[float] = []
        lons: list[float] = []
        query_error: _QueryError | None = None
        try:
            lats, lons = _floats(params, "latitude"), _floats(params, "longitude")
        except _QueryError as e:
            query_error = e
        await self.inject_delay()
        try:
            self._take_outage()
            if query_error is not None:
                raise query_error
            response = web.json_response(self._answer(params, lats, lons))
        except _QueryError as e:
            response = e.response()
        self.requests.append(WeatherRequest(params, lats, lons, started, response.status))
        return response

    def _take_outage(self) -> None:
        outage = self._outage
        if outage is None:
            return
        outage.remaining -= 1
        if outage.remaining <= 0:
            self._outage = None
        raise _QueryError(outage.reason, outage.status)

    def _answer(
        self, params: Mapping[str, str], lats: list[float], lons: list[float]
    ) -> dict[str, Any] | list[dict[str, Any]]:
        if len(lats) != len(lons):
            raise _QueryError(
                "Parameter 'latitude' and 'longitude' must have the same number of elements"
            )
        for lat, lon in zip(lats, lons, strict=True):
            if not -90 <= lat <= 90:
                raise _QueryError(f"Latitude must be in range of -90 to 90°. Given: {lat}.")
            if not -180 <= lon <= 180:
                raise _QueryError(f"Longitude must be in range of -180 to 180°. Given: {lon}.")
        variables = [v for raw in params.get("daily", "").split(",") if (v := raw.strip())]
        for variable in variables:
            if variable not in DAILY_UNITS:
                raise _QueryError(
                    f"Cannot initialize ForecastVariableDaily from invalid String value {variable}."
                )
        zone_name, zone = _zone(params.get("timezone", "GMT"))
        days = self._dates(params, zone)
        objects = []
        for index, (lat, lon) in enumerate(zip(lats, lons, strict=True)):
            obj = self._location(lat, lon, zone_name, zone, days, variables)
            if len(lats) > 1:
                obj["location_id"] = index
            objects.append(obj)
        return objects if len(objects) > 1 else objects[0]

    def _dates(self, params: Mapping[str, str], zone: ZoneInfo) -> list[date]:
        start_raw, end_raw = params.get("start_date"), params.get("end_date")
        if start_raw or end_raw:
            if not (start_raw and end_raw):
                raise _QueryError("Parameter 'start_date' and 'end_date' must be set together")
            try:
                start, end = date.fromisoformat(start_raw), date.fromisoformat(end_raw)
            except ValueError:
                raise _QueryError("Invalid date format, expected yyyy-mm-dd") from None
            if end < start:
                raise _QueryError("End-date must be larger or equals than start-date")
        else:
            try:
                count = int(params.get("forecast_days", "7"))
            except ValueError:
                raise _QueryError("Parameter 'forecast_days' must be an integer") from None
            if not 0 <= count <= _MAX_FORECAST_DAYS:
                raise _QueryError(
                    f"Forecast days is invalid. Allowed range 0 to {_MAX_FORECAST_DAYS}."
                )
            start = self.today or datetime.now(zone).date()
            if count == 0:
                return []
            end = start + timedelta(days=count - 1)
        return [start + timedelta(days=n) for n in range((end - start).days + 1)]

    def _location(
        self,
        lat: float,
        lon: float,
        zone_name: str,
        zone: ZoneInfo,
        days: list[date],
        variables: list[str],
    ) -> dict[str, Any]:
        scripted = self._forecasts.get(_key(lat, lon), {})
        reference = datetime.combine(days[0], datetime.min.time()) if days else datetime.now()
        offset_s = int((zone.utcoffset(reference) or timedelta()).total_seconds())
        obj: dict[str, Any] = {
            "latitude": round(lat, 2),
            "longitude": round(lon, 2),
            "generationtime_ms": 0.05,
            "utc_offset_seconds": offset_s,
            "timezone": zone_name,
            "timezone_abbreviation": _abbreviation(offset_s),
            "elevation": 10.0,
        }
        if variables:
            obj["daily_units"] = {"time": "iso8601"} | {v: DAILY_UNITS[v] for v in variables}
            daily: dict[str, list[Any]] = {"time": [d.isoformat() for d in days]}
            for variable in variables:
                daily[variable] = [
                    scripted.get(day, {}).get(variable, BENIGN_DAY[variable]) for day in days
                ]
            obj["daily"] = daily
        return obj


def _floats(params: Mapping[str, str], name: str) -> list[float]:
    raw = params.get(name)
    if not raw:
        raise _QueryError(f"Parameter '{name}' is required")
    try:
        return [float(part) for part in raw.split(",")]
    except ValueError:
        raise _QueryError(f"Parameter '{name}' must be a floating point number") from None


def _zone(name: str) -> tuple[str, ZoneInfo]:
    if name.lower() in {"gmt", "utc", "auto", ""}:
        return "GMT", ZoneInfo("UTC")
    try:
        return name, ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _QueryError(f"Invalid timezone '{name}'") from None


def _abbreviation(offset_s: int) -> str:
    if offset_s == 0:
        return "GMT"
    hours, rest = divmod(abs(offset_s), 3600)
    sign = "+" if offset_s > 0 else "-"
    return f"GMT{sign}{hours}" + (f":{rest // 60:02d}" if rest else "")
