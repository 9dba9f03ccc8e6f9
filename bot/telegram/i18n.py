"""The language of one conversation and the texts rendered in it.

A linked customer's language is ``Customer.language`` (the one the outbox writes in too); an
unlinked user's is what they chose with /language, else a guess from Telegram's
``language_code``: ``zh*`` → zh-CN, anything else → en.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from bot.settings import CompanySettings
from bot.texts import LANGUAGES, Texts
from loyalty.notifications import format_date, format_time
from storage.models import Language

__all__ = ["Translator", "company_name", "format_date", "format_money", "format_time",
           "guess_language", "labels"]


def guess_language(language_code: str | None, default: str = Language.ZH_CN.value) -> str:
    """``zh``, ``zh-hans``, ``zh-CN`` → zh-CN; another code → en; none → ``default``."""
    if not language_code:
        return default
    if language_code.lower().startswith("zh"):
        return Language.ZH_CN.value
    return Language.EN.value


def format_money(cents: int) -> str:
    """Yuan with the sign and two decimals, the same in both languages: ``¥3,500.00``."""
    sign = "-" if cents < 0 else ""
    return f"{sign}¥{abs(cents) / 100:,.2f}"


@dataclass(frozen=True, slots=True)
class Translator:
    """Renders text keys in this update's language (``t("tg_help", hotline=...)``)."""

    texts: Texts
    lang: str

    def __call__(self, key: str, /, **params: Any) -> str:
        return self.texts.render(key, self.lang, params)

    def has(self, key: str) -> bool:
        return key in self.texts

    def day(self, value: date) -> str:
        return format_date(value, self.lang)

    def moment(self, value: datetime, timezone: str) -> str:
        return format_time(value, self.lang, timezone)


@lru_cache(maxsize=256)
def labels(texts: Texts, key: str) -> frozenset[str]:
    """A key's wording in every language: menu buttons are matched in both."""
    return frozenset(texts.render(key, lang, {}) for lang in LANGUAGES)


def company_name(company: CompanySettings, lang: str) -> str:
    return company.name_en if lang == Language.EN.value else company.name_zh
