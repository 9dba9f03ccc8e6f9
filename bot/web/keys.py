"""Typed aiohttp application keys for the app-wide services built in the composition root."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry

from bot.settings import Settings

if TYPE_CHECKING:
    pass

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Callable[[], datetime])
REGISTRY = web.AppKey("registry", CollectorRegistry)
TEXTS = web.AppKey("texts", "Texts")
TWILIO_SIGNATURE = web.AppKey("twilio_signature", "TwilioSignature")
DISPATCHER = web.AppKey("dispatcher", "Dispatcher")
