"""pytest-asyncio fixtures that yield started loopback fakes, closed after the test.

Load them from a conftest or test module with ``pytest_plugins = ["tests.fakes.fixtures"]``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.core import FakeCore
from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import FakeTwilio
from tests.fakes.weather import FakeWeather

__all__ = ["fake_core", "fake_telegram", "fake_twilio", "fake_weather"]


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
async def fake_twilio() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio() as fake:
        yield fake


@pytest.fixture
async def fake_weather() -> AsyncIterator[FakeWeather]:
    async with FakeWeather() as fake:
        yield fake


@pytest.fixture
async def fake_core() -> AsyncIterator[FakeCore]:
    async with FakeCore() as fake:
        yield fake
