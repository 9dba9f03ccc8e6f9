"""What can go wrong when a provider is asked to send, in our own words.

The dispatcher decides what each means for the message (retry, fall back, give up); the
adapters translate every provider reply and every exception of a send into one of these, so
nothing else escapes a send. Three families:

* nothing was sent, try again later: ``RetryAfter`` (the provider asked us to slow down),
  ``ChannelUnavailable`` (the provider refuses *us* — credentials, a wrong address, a proxy's
  error page — so the whole channel pauses) and ``Transient`` (5xx, connection refused);
* refused for good: ``Rejected`` and the recipient-specific ones (``RecipientBlocked``,
  ``ChatNotFound``, ``RecipientOptedOut``, ``InvalidRecipient``);
* the outcome is unknown (a timeout after the request left, an answer we could not read, an
  exception nobody foresaw): ``OutcomeUnknown`` — never resent blindly.
"""

from __future__ import annotations


class SendError(Exception):
    """Base: ``code`` is the provider's error code or HTTP status, for metrics and last_error."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class RetryAfter(SendError):
    """The provider asked us to slow down: nothing was sent; pause the channel, then resend."""

    def __init__(self, message: str, *, seconds: float, code: str = "") -> None:
        super().__init__(message, code=code)
        self.seconds = seconds


class ChannelUnavailable(RetryAfter):
    """The provider refuses our requests, not this message (401/404 from the Bot API, Twilio
    20003, an HTML error page from a proxy): nothing was sent; the channel pauses for
    ``seconds`` and the message waits without an attempt counted."""


class Transient(SendError):
    """Nothing was sent (5xx, connection refused): retry with backoff."""


class OutcomeUnknown(SendError):
    """The request may have reached the provider (timeout after sending): do not resend."""


class RecipientBlocked(SendError):
    """Telegram 403: the user blocked the bot."""


class ChatNotFound(SendError):
    """Telegram 400 chat not found: the stored chat is gone."""


class RecipientOptedOut(SendError):
    """Twilio 21610: the number replied STOP to our sender."""


class InvalidRecipient(SendError):
    """Twilio 21211/21614: not a number that can receive SMS."""


class Rejected(SendError):
    """The provider refused this message for good (other 4xx): no retry."""
