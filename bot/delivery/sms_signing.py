"""How every SMS we send reads: the sender signature in front, the opt-out hint behind.

Mainland rules want the registered Chinese signature (``sms.signature``, 【安行保险】) on every
SMS to a +86 number, whatever its language. An English SMS to any other number carries
``sms.signature_en`` instead: one Chinese character makes the whole message UCS-2 (70
characters a segment instead of 160), so the Chinese signature would double the cost of
most English replies. The dispatcher, the campaign preview and the SMS keyword replies all
sign here, so what a preview shows is what is sent.
"""

from __future__ import annotations

from bot.delivery.content import is_cn_number
from bot.settings import SmsSettings


def signature_for(sms: SmsSettings, *, language: str, to: str) -> str:
    if language == "zh-CN" or is_cn_number(to):
        return sms.signature
    return sms.signature_en


def signed_sms(sms: SmsSettings, body: str, *, language: str, to: str,
               opt_out_hint: bool = False) -> str:
    """``body`` as sent to ``to`` (E.164): signature, body and, with ``opt_out_hint``
    (marketing), how to opt out. Chinese runs together; English is spaced."""
    parts = [signature_for(sms, language=language, to=to), body]
    if opt_out_hint:
        parts.append(sms.opt_out_hint_zh if language == "zh-CN" else sms.opt_out_hint_en)
    if language == "zh-CN":
        return "".join(parts)
    return " ".join(part for part in parts if part)
