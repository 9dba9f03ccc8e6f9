"""Typed aiohttp application keys for the app-wide services built in the composition root."""

from __future__ import annotations

from aiohttp import web

from bot.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
