"""Domain errors of the loyalty programme.

Each carries a stable machine ``code`` so the Telegram, SMS and HTTP layers can pick a kind
answer without parsing messages, and the HTTP ``status`` an API answers it with. The message
is for logs and operators.
"""

from __future__ import annotations


class LoyaltyError(Exception):
    """Base of every refusal the loyalty services make on purpose."""

    code = "loyalty_error"
    status = 409

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code)


class InvalidRequest(LoyaltyError):
    """The request itself is malformed (zero points, missing reason, unknown kind)."""

    code = "invalid_request"
    status = 422


class UnknownCustomer(LoyaltyError):
    code = "unknown_customer"
    status = 404


class InsufficientPoints(LoyaltyError):
    """A debit would take the balance below zero: nothing was changed."""

    code = "insufficient_points"

    def __init__(self, needed: int, balance: int | None = None) -> None:
        self.needed = needed
        self.balance = balance
        super().__init__(f"needs {needed} points, balance {balance}")


class IdempotencyConflict(LoyaltyError):
    """The idempotency key was used before for a different request."""

    code = "idempotency_conflict"


class NotEligible(LoyaltyError):
    """The customer may not do this (tier too low, reward inactive, self-referral …).

    ``reason`` narrows it down for the answer: ``tier``, ``inactive``, ``self_referral``,
    ``already_referred``, ``not_new_customer``, ``not_reversible``, ``no_entitlement``.
    """

    code = "not_eligible"

    def __init__(self, reason: str, message: str = "") -> None:
        self.reason = reason
        super().__init__(message or reason)


class OutOfStock(LoyaltyError):
    code = "out_of_stock"


class LimitReached(LoyaltyError):
    """A per-customer monthly/yearly limit or a tier quota is used up for the period."""

    code = "limit_reached"

    def __init__(self, period: str, limit: int) -> None:
        self.period = period
        self.limit = limit
        super().__init__(f"{period} limit of {limit} reached")


class UnknownReward(LoyaltyError):
    code = "unknown_reward"


class VoucherNotFound(LoyaltyError):
    """No such voucher for this caller (absent, malformed, or someone else's)."""

    code = "voucher_not_found"
    status = 404


class InvalidVoucherCode(VoucherNotFound):
    """Not a voucher code at all: wrong length or symbols, or its check character does not
    match (a typo). A kind of "not found" for callers that need no difference."""

    code = "invalid_code"
    status = 422


class VoucherAlreadyUsed(LoyaltyError):
    code = "voucher_already_used"


class VoucherExpired(LoyaltyError):
    code = "voucher_expired"
    status = 410


class VoucherCancelled(LoyaltyError):
    code = "voucher_cancelled"
    status = 410


class PartnerExists(LoyaltyError):
    code = "partner_exists"
