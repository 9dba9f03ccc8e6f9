"""What can go wrong when a provider is asked to send, in our own words.

The dispatcher decides what each means for the message (retry, fall back, give up); the
adapters only translate provider errors into these.
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
