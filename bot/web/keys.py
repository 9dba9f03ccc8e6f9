"""Typed aiohttp application keys for the app-wide services built in the composition root.

``BOT``, ``DISPATCHER`` and ``TELEGRAM`` are set only when those parts start with the app
(tests, the demo); ``engage run`` starts them after it listens and holds them in ``LATE``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry

from bot.accident.core import CoreReports
from bot.desk.threads import Desk
from bot.settings import Settings
from bot.sms.conversations import SmsConversations
from bot.sms.signature import TwilioSignature
from bot.supervisor import Supervisor
from bot.texts import Texts
from bot.web.late import LateStart
from bot.web.operators.runner import CampaignRunner

if TYPE_CHECKING:  # aiogram and what needs it are imported after the app listens (late)
    from aiogram import Bot

    from bot.delivery.dispatcher import Dispatcher
    from bot.telegram.runtime import TelegramRuntime

SETTINGS = web.AppKey("settings", Settings)
CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("clock")
REGISTRY = web.AppKey("registry", CollectorRegistry)
TEXTS = web.AppKey("texts", Texts)
TWILIO_SIGNATURE = web.AppKey("twilio_signature", TwilioSignature)
DISPATCHER: web.AppKey[Dispatcher] = web.AppKey("dispatcher")
CAMPAIGN_RUNNER = web.AppKey("campaign_runner", CampaignRunner)
BOT: web.AppKey[Bot] = web.AppKey("telegram_bot")
TELEGRAM: web.AppKey[TelegramRuntime] = web.AppKey("telegram")
SMS_CONVERSATIONS = web.AppKey("sms_conversations", SmsConversations)
SUPERVISOR = web.AppKey("supervisor", Supervisor)
DESK = web.AppKey("desk", Desk)
CORE_REPORTS = web.AppKey("core_reports", CoreReports)
LATE = web.AppKey("late_start", LateStart)
