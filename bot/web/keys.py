"""Typed aiohttp application keys for the app-wide services built in the composition root."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiogram import Bot
from aiohttp import web
from prometheus_client import CollectorRegistry

from bot.accident.core import CoreReports
from bot.delivery.dispatcher import Dispatcher
from bot.desk.threads import Desk
from bot.settings import Settings
from bot.sms.conversations import SmsConversations
from bot.sms.signature import TwilioSignature
from bot.supervisor import Supervisor
from bot.telegram.runtime import TelegramRuntime
from bot.texts import Texts
from bot.web.operators.runner import CampaignRunner

SETTINGS = web.AppKey("settings", Settings)
CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("clock")
REGISTRY = web.AppKey("registry", CollectorRegistry)
TEXTS = web.AppKey("texts", Texts)
TWILIO_SIGNATURE = web.AppKey("twilio_signature", TwilioSignature)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
CAMPAIGN_RUNNER = web.AppKey("campaign_runner", CampaignRunner)
BOT = web.AppKey("telegram_bot", Bot)
TELEGRAM = web.AppKey("telegram", TelegramRuntime)
SMS_CONVERSATIONS = web.AppKey("sms_conversations", SmsConversations)
SUPERVISOR = web.AppKey("supervisor", Supervisor)
DESK = web.AppKey("desk", Desk)
CORE_REPORTS = web.AppKey("core_reports", CoreReports)
