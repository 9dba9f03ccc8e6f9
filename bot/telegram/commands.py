"""The command menu Telegram shows, in both languages (setMyCommands at start-up)."""

from __future__ import annotations

from aiogram import Bot
from aiogram.types import BotCommand, BotCommandScopeDefault

from bot.texts import Texts

# The command contract of issue 6: names are fixed, descriptions come from the texts.
COMMANDS: tuple[str, ...] = (
    "start", "report", "policies", "claims", "claim", "upload", "points", "rewards", "vouchers",
    "checkin", "invite", "settings", "language", "help", "unlink", "agent", "complaint",
)
# Telegram's language_code scopes are two-letter ISO 639-1 codes.
SCOPES: dict[str, str] = {"zh": "zh-CN", "en": "en"}


def bot_commands(texts: Texts, language: str) -> list[BotCommand]:
    return [BotCommand(command=name, description=texts.render(f"tg_cmd_{name}", language, {}))
            for name in COMMANDS]


async def register_commands(bot: Bot, texts: Texts, default_language: str) -> None:
    """Per-language lists for ``zh``/``en`` clients, and the default for everyone else."""
    for code, language in SCOPES.items():
        await bot.set_my_commands(bot_commands(texts, language), scope=BotCommandScopeDefault(),
                                  language_code=code)
    await bot.set_my_commands(bot_commands(texts, default_language),
                              scope=BotCommandScopeDefault())
