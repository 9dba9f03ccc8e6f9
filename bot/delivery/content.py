"""Content checks a message must pass before it is handed to a provider.

SMS to mainland China (+86) through Twilio may carry neither a URL nor insurance marketing
(Twilio's China rules; carriers filter such messages, and sending them risks the sender).
A refused message gets a machine-readable ``reason`` so the dispatcher can record it as a
skip instead of spending an attempt on a send that cannot succeed.
"""

from __future__ import annotations

import re

TELEGRAM_MAX_UTF16 = 4096

CN_PREFIX = "+86"


class ContentRefused(Exception):
    """The message may not be sent as written; ``reason`` is a machine code.

    Codes: ``url_in_sms_cn``, ``marketing_sms_cn``, ``telegram_too_long``,
    ``telegram_empty``. ``detail`` says what triggered it (never the phone number).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# Any scheme: http(s)://, and app deep links such as weixin:// are links too.
_SCHEME = re.compile(r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]{1,15}://")
_WWW = re.compile(r"(?<![A-Za-z0-9\-])www\d{0,3}[.．][A-Za-z0-9]", re.IGNORECASE)
# One or more labels and a dot (ASCII or fullwidth), then an alphabetic TLD, then an
# optional path. Labels may be digits (JD's 3.cn) but a TLD never is, which is what keeps
# "3.5", "¥1,200.00", "v2.0" and "No.12345" out.
_DOMAIN = re.compile(
    r"(?<![A-Za-z0-9\-_.．])"
    r"((?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?[.．])+)"
    r"([A-Za-z]{2,24})"
    r"(?![A-Za-z0-9\-_])"
    r"(/[^\s]*)?"
)
# A dotted IPv4 address followed by a port or a path.
_IPV4_URL = re.compile(r"(?<![0-9.])(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?/")

# TLDs that alone mark a bare domain: the ones links in Chinese SMS actually use, short-link
# hosts' (t.cn, url.cn, dwz.cn, suo.im, bit.ly, j.mp, tb.cn, 3.cn) and common gTLDs.
_TLDS = frozenset(
    """
    com net org info biz edu gov mil int cn top xyz site online vip shop store club app dev io
    co cc ly gl mp tv la im hk mo tw sg jp kr uk de fr ru au ca eu nz ch nl se es pt
    wang ink ren link live life fun pro mobi asia tech cloud work news icu cyou art fit red
    xin ltd group games email space website press today help world
    """.split()
)
# TLDs that are also common English words; "soon.to renew" is a missing space, not a link,
# so these count only with a path ("go.to/abc") — a scheme or www. is caught regardless.
_WORD_TLDS = frozenset("to in me us it is at be do go no so my am as an".split())


def _find_url(body: str) -> str | None:
    for pattern in (_SCHEME, _WWW, _IPV4_URL):
        if match := pattern.search(body):
            return match.group(0)
    for match in _DOMAIN.finditer(body):
        tld, path = match.group(2), match.group(3)
        # "Example.COM" and "example.com" are links; "Mr.Smith" is a name.
        if not (tld.islower() or tld.isupper()):
            continue
        tld = tld.lower()
        if tld in _TLDS or (tld in _WORD_TLDS and path and len(path) > 1):
            return match.group(0)
    return None


def is_cn_number(to: str) -> bool:
    """A mainland China number in E.164 (Hong Kong +852, Macau +853, Taiwan +886 are not)."""
    return to.strip().replace(" ", "").startswith((CN_PREFIX, "0086"))


def check_sms(to: str, body: str, *, category: str) -> None:
    """Refuse what Twilio will not carry to mainland China: marketing, and any URL.

    URLs are looked for broadly - a scheme (``https://``, ``weixin://``), ``www.``, a bare
    domain (``example.com``, ``t.cn/xxx``, ``3.cn``, an e-mail's domain) or an IP with a
    path - and narrowly enough that amounts (``¥1,200.00``), decimals (``3.5``), times
    (``08:30``), versions and dotted policy numbers pass. A false positive is an operator
    fixing a template; a false negative is a message the carrier filters silently.
    Numbers outside +86 are not restricted here.
    """
    if not is_cn_number(to):
        return
    if category == "marketing":
        raise ContentRefused("marketing_sms_cn", "insurance marketing SMS to +86 numbers")
    if (url := _find_url(body)) is not None:
        raise ContentRefused("url_in_sms_cn", url)


def telegram_length(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def check_telegram(text: str) -> str:
    """Return ``text`` if Telegram will accept it as a message, else raise ContentRefused.

    The limit is 4,096 UTF-16 code units. The text is counted as given, markup included, so
    a formatted text is judged conservatively. Too long raises ``telegram_too_long`` rather
    than truncating: cutting a claim update or a renewal notice mid-sentence (with an
    ellipsis or not) silently changes what the customer is told, and splitting it into
    several messages is a template decision, not a transport one. Empty or whitespace-only
    text raises ``telegram_empty`` (the Bot API refuses it with a 400).
    """
    if not text.strip():
        raise ContentRefused("telegram_empty", "message text is empty")
    length = telegram_length(text)
    if length > TELEGRAM_MAX_UTF16:
        raise ContentRefused(
            "telegram_too_long", f"{length} UTF-16 units, limit {TELEGRAM_MAX_UTF16}"
        )
    return text
