"""SMS keyword commands: from a message body (and Twilio's ``OptOutType``) to one command.

Pure: no I/O, no clock. The body is normalised first — Unicode NFKC (full-width ``ＳＴＯＰ``
and the ideographic space become ``STOP`` and a plain space), trimmed of whitespace and
closing punctuation, upper-cased — so ``stop``, ``Stop!``, ``ＳＴＯＰ`` and `` 退订。`` all read
as the keyword.

A keyword is the whole message, as carriers and Twilio match opt-out words: "STOP" opts
out, "please don't stop" does not. CLAIM takes the claim number, REDEEM the number of an item
in its list, CONFIRM a 4-digit code and CITY the city's name (``城市 深圳``, ``CITY Shenzhen``);
the argument may follow the keyword directly (``理赔RDAA31001``, ``兑换2``) or after a space,
colon or ``#``. COMPLAINT (``投诉 …``) takes what happened, and a lone digit 1–5 is SCORE, a
satisfaction survey's answer.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum


class Command(StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"
    POLICY = "policy"
    CLAIM = "claim"
    POINTS = "points"
    CHECKIN = "checkin"
    AGENT = "agent"  # a person, please (bot.desk)
    COMPLAINT = "complaint"  # 投诉 [what happened] (bot.sms.desk)
    SCORE = "score"  # a digit 1-5: a satisfaction survey's answer (bot.sms.desk)
    CITY = "city"  # 城市 深圳: the customer's own region for weather (bot.sms.city)
    REPORT = "report"  # an accident: hotline and a call-back (bot.sms.report)
    REDEEM = "redeem"  # argument: the item's number in the list, or none for the list
    CONFIRM = "confirm"  # argument: the 4-digit code of a redemption
    VOUCHERS = "vouchers"
    RENEW = "renew"  # call me about renewing (bot.sms.renewal_replies)
    RENEWED = "renewed"  # renewed with another insurer
    MENU = "menu"  # anything we do not recognise


_WORDS: dict[Command, tuple[str, ...]] = {
    Command.STOP: ("STOP", "UNSUBSCRIBE", "END", "QUIT", "CANCEL", "T", "TD", "退订"),
    Command.START: ("START", "UNSTOP", "订阅"),
    Command.HELP: ("HELP", "帮助"),
    Command.POLICY: ("POLICY", "保单"),
    Command.CLAIM: ("CLAIM", "理赔"),
    Command.POINTS: ("POINTS", "积分"),
    Command.CHECKIN: ("CHECKIN", "CHECK IN", "签到"),
    Command.AGENT: ("人工", "转人工", "人工客服", "客服", "联系客服", "AGENT", "HUMAN"),
    Command.COMPLAINT: ("投诉", "我要投诉", "COMPLAINT"),
    Command.CITY: ("CITY", "城市"),
    Command.REPORT: ("REPORT", "报案", "出险"),
    Command.REDEEM: ("REDEEM", "兑换"),
    Command.VOUCHERS: ("VOUCHERS", "VOUCHER", "券", "优惠券", "我的券"),
    Command.RENEW: ("XB", "续保"),
    Command.RENEWED: ("已续", "已续保"),
}
KEYWORDS: dict[str, Command] = {word: cmd for cmd, words in _WORDS.items() for word in words}
"""Every keyword (normalised form) and its command."""

# Twilio's Advanced Opt-Out classifies the message itself; its verdict wins over ours.
_OPT_OUT_TYPES = {"STOP": Command.STOP, "START": Command.START, "HELP": Command.HELP}

# Closing punctuation people add to a one-word reply (after NFKC: "！" is "!", "。" stays).
_TRAILING = " \t\r\n.!?,;:~。，、；！？…"
# "CLAIM RDAA31001", "CLAIM:RDAA31001", "理赔RDAA31001" (Chinese needs no space; English
# does, or "CLAIMS" would be claim number "S").
_CLAIM = re.compile(
    r"^(?:CLAIM(?:\s*[:#]\s*|\s+)|理赔(?:\s*[:#]?\s*))([A-Z0-9][A-Z0-9\-]{0,39})$"
)

# "投诉 理赔三周没有进展", "我要投诉：…", "COMPLAINT no call back" (the text is the argument).
_COMPLAINT = re.compile(r"^(?:(?:我要)?投诉\s*[:#]?\s*|COMPLAINT(?:\s*[:#]\s*|\s+))(.+)$",
                        re.DOTALL)

_SCORES = frozenset("12345")


# "城市 深圳", "城市深圳", "城市：深圳", "CITY Shenzhen"
_CITY = re.compile(r"^(?:CITY(?:\s*[:#]\s*|\s+)|城市(?:\s*[:#]?\s*))(\S.{0,39})$")
# "兑换2", "兑换 2", "REDEEM 2", "REDEEM2"; "确认 4821", "确认4821", "CONFIRM 4821".
_REDEEM = re.compile(r"^(?:REDEEM|兑换)\s*[:#]?\s*(\d{1,2})$")
_CONFIRM = re.compile(r"^(?:CONFIRM|确认)\s*[:#]?\s*(\d{4})$")


@dataclass(frozen=True, slots=True)
class Parsed:
    command: Command
    argument: str = ""  # CLAIM's number, REDEEM's item, CONFIRM's code, CITY's name,
    # COMPLAINT's text, SCORE's digit; else empty
    from_twilio: bool = False  # decided by Twilio's OptOutType, which already answered


def normalise(body: str) -> str:
    """NFKC, inner whitespace collapsed, trimmed of spaces and closing punctuation, upper."""
    text = unicodedata.normalize("NFKC", body)
    text = " ".join(text.split())
    return text.strip(_TRAILING).upper()


def parse(body: str, opt_out_type: str = "") -> Parsed:
    verdict = _OPT_OUT_TYPES.get(opt_out_type.strip().upper())
    if verdict is not None:
        return Parsed(verdict, from_twilio=True)
    text = normalise(body)
    command = KEYWORDS.get(text)
    if command is not None:
        return Parsed(command)
    if match := _CLAIM.match(text):
        return Parsed(Command.CLAIM, match.group(1))
    if match := _CITY.match(text):
        return Parsed(Command.CITY, match.group(1))
    for command, pattern in ((Command.REDEEM, _REDEEM), (Command.CONFIRM, _CONFIRM)):
        if match := pattern.match(text):
            return Parsed(command, match.group(1))
    if match := _COMPLAINT.match(text):
        return Parsed(Command.COMPLAINT, match.group(1))
    if text in _SCORES:
        return Parsed(Command.SCORE, text)
    return Parsed(Command.MENU)
