"""The wording of SMS replies: templates from ``bot/texts/sms.toml``, signed as every SMS we
send is (``bot.delivery.sms_signing``), and the policy list cut to fit two segments. Pure:
callers bring the data.

A ``Replies`` is bound to the number it answers (``to_number``): that picks the signature of
English replies — the registered Chinese one for mainland numbers, ``sms.signature_en``
elsewhere, so English replies abroad stay GSM-7. Every keyword reply fits one segment with
realistic values, in Chinese and in English abroad; tests/test_sms_replies.py checks each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from bot.delivery.content import is_cn_number
from bot.delivery.segments import count_segments
from bot.delivery.sms_signing import signed_sms
from bot.settings import SmsSettings
from bot.texts import Texts

MAX_POLICY_SEGMENTS = 2


def size_label(size: int) -> str:
    """``20971520`` → ``20MB``, ``1572864`` → ``1.5MB``, ``2048`` → ``2KB``."""
    mib = 1024 * 1024
    if size >= mib:
        return f"{round(size / mib, 1):g}MB"
    return f"{max(1, size // 1024)}KB"


@dataclass(frozen=True, slots=True)
class Replies:
    texts: Texts
    sms: SmsSettings
    to: str = ""  # the number answered, E.164 ("" until bound: signed as abroad)

    def to_number(self, phone: str) -> Replies:
        return replace(self, to=phone)

    @property
    def hotline(self) -> str:
        return self.sms.hotline

    def say(self, key: str, language: str, **params: Any) -> str:
        body = self.texts.render(key, language, params, sms=True)
        return signed_sms(self.sms, body, language=language, to=self.to)

    def word(self, key: str, language: str) -> str:
        """A fragment (status name, category, separator) to be placed into a sentence."""
        return self.texts.render(key, language, {})

    # -- who and what ------------------------------------------------------------------

    @staticmethod
    def language_for(phone: str) -> str:
        """The language to answer a number with no customer (no language on record) in:
        mainland numbers read Chinese."""
        return "zh-CN" if is_cn_number(phone) or not phone else "en"

    def unknown_sender(self, phone: str) -> str:
        return self.to_number(phone).say("sms_unknown_sender", self.language_for(phone),
                                         hotline=self.hotline)

    def shared_held(self, language: str) -> str:
        """A number three or more customers share, not released: nobody's data by SMS."""
        return self.say("sms_shared_held", language, hotline=self.hotline)

    def shared_personal(self, language: str) -> str:
        """Points and check-in are one person's: a shared number cannot say whose."""
        return self.say("sms_shared_personal", language)

    def menu(self, language: str) -> str:
        return self.say("sms_menu", language, hotline=self.hotline)

    def help(self, language: str) -> str:
        return self.say("sms_help", language, hotline=self.hotline)

    def _categories(self, language: str, categories: Iterable[str]) -> str:
        names = [self.word(f"sms_category_{c}", language) for c in categories]
        return self.word("sms_name_separator", language).join(names)

    def opted_out(self, language: str, categories: Iterable[str]) -> str:
        return self.say("sms_opted_out", language,
                        categories=self._categories(language, categories))

    def opted_in(self, language: str, categories: Iterable[str]) -> str:
        return self.say("sms_opted_in", language,
                        categories=self._categories(language, categories))

    # -- queries -----------------------------------------------------------------------

    def policies(self, language: str, policies: Sequence[tuple[str, date]]) -> str:
        """Active policies as "plate until expiry", as many as fit two segments."""
        unique = list(dict.fromkeys(policies))  # compulsory + commercial on one car: once
        if not unique:
            return self.say("sms_policy_none", language, hotline=self.hotline)
        items = [self.texts.render("sms_policy_item", language,
                                   {"plate": plate, "expiry": expiry.isoformat()})
                 for plate, expiry in unique]
        separator = self.word("sms_list_separator", language)
        reply = ""
        for shown in range(len(items), 0, -1):
            listed = separator.join(items[:shown])
            if shown < len(items):
                listed += self.texts.render("sms_policy_more", language, {"total": len(items)})
            reply = self.say("sms_policy_list", language, items=listed)
            if count_segments(reply) <= MAX_POLICY_SEGMENTS:
                break
        return reply

    def status_name(self, language: str, status: str) -> str:
        return self.word(f"sms_status_{status}", language)

    def claim(self, language: str, number: str, status: str, *, attached: int = 0) -> str:
        name = self.status_name(language, status)
        if attached:
            return self.say("sms_claim_status_documents", language, claim=number, status=name,
                            count=attached)
        return self.say("sms_claim_status", language, claim=number, status=name)

    def claim_not_found(self, language: str, number: str) -> str:
        return self.say("sms_claim_not_found", language, claim=number)

    def no_claims(self, language: str) -> str:
        return self.say("sms_claim_none", language, hotline=self.hotline)

    def points(self, language: str, balance: int, tier: Mapping[str, str]) -> str:
        """``tier`` by language: ``{"zh-CN": "金卡", "en": "Gold"}``."""
        return self.say("sms_points", language, balance=balance, tier=tier)

    def checked_in(self, language: str, *, awarded: bool, points: int, bonus: int,
                   streak: int, balance: int) -> str:
        if not awarded:
            return self.say("sms_checkin_already", language, streak=streak, balance=balance)
        if bonus:
            return self.say("sms_checkin_bonus", language, points=points, bonus=bonus,
                            streak=streak, balance=balance)
        return self.say("sms_checkin_done", language, points=points, streak=streak,
                        balance=balance)

    # -- documents ---------------------------------------------------------------------

    def rejection(self, language: str, reason: str, *, max_bytes: int) -> str:
        """The kind words for an ``UploadRejected.reason`` (or ``download_failed``)."""
        key = f"sms_reason_{reason}"
        if key not in self.texts:
            key = "sms_reason_corrupt"
        params = {"limit": size_label(max_bytes)} if reason == "too_large" else {}
        return self.texts.render(key, language, params)

    def documents(self, language: str, *, stored: int, claim: str | None,
                  rejected_reason: str | None) -> str:
        if not stored:
            return self.say("sms_media_rejected", language, reason=rejected_reason or "")
        if claim is not None:
            if rejected_reason:
                return self.say("sms_media_attached_some_rejected", language, count=stored,
                                claim=claim, reason=rejected_reason)
            return self.say("sms_media_attached", language, count=stored, claim=claim)
        if rejected_reason:
            return self.say("sms_media_unattached_some_rejected", language, count=stored,
                            reason=rejected_reason)
        return self.say("sms_media_unattached", language, count=stored)
