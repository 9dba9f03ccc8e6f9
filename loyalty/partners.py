"""Service partners: who may check and use which vouchers.

A partner authenticates with a bearer token shown once at creation; only its sha256 is kept
(the token has 256 bits from ``secrets``, so a plain hash is enough — no salt or slow hash is
needed against guessing). A partner sees only vouchers of its own reward kinds: any other
voucher is "not found", exactly like one that does not exist. What it sees is the reward,
the validity and a masked name — never the customer's phone or anything else.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from loyalty import codes, notifications
from loyalty.config import REWARD_KINDS
from loyalty.errors import (
    InvalidRequest,
    InvalidVoucherCode,
    PartnerExists,
    VoucherAlreadyUsed,
    VoucherCancelled,
    VoucherExpired,
    VoucherNotFound,
)
from loyalty.periods import utc
from loyalty.vouchers import effective_status
from storage.identity import mask_name
from storage.loyalty_models import Partner, Voucher, VoucherStatus

log = logging.getLogger(__name__)


def hash_token(token: str) -> str:
    # surrogateescape: header bytes that were not UTF-8 reach us as lone surrogates; they
    # hash to something no token has instead of failing the request
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


async def create_partner(name: str, reward_kinds: Iterable[str]) -> tuple[Partner, str]:
    """A new partner and its bearer token — the only time the token is ever available."""
    name = name.strip()
    kinds = sorted({k.strip() for k in reward_kinds if k.strip()})
    if not name:
        raise InvalidRequest("a partner needs a name")
    if not kinds:
        raise InvalidRequest("a partner needs at least one reward kind")
    if unknown := [k for k in kinds if k not in REWARD_KINDS]:
        raise InvalidRequest(f"unknown reward kinds {unknown}, known: {list(REWARD_KINDS)}")
    token = secrets.token_urlsafe(32)
    try:
        partner = await Partner.create(name=name, token_hash=hash_token(token),
                                       reward_kinds=kinds)
    except IntegrityError:
        raise PartnerExists(f"a partner named {name!r} exists") from None
    log.info("partner %d created for %s", partner.id, ",".join(kinds))
    return partner, token


async def authenticate_partner(token: str) -> Partner | None:
    if not token:
        return None
    return await Partner.get_or_none(token_hash=hash_token(token), active=True)


@dataclass(frozen=True, slots=True)
class PartnerVoucherView:
    """All a partner may know of a voucher."""

    code: str
    status: VoucherStatus
    reward_code: str
    reward_kind: str
    reward_name_zh: str
    reward_name_en: str
    discount_percent: int
    issued_at: datetime
    valid_until: datetime
    used_at: datetime | None
    customer: str

    def as_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "status": self.status.value,
            "reward": {"code": self.reward_code, "kind": self.reward_kind,
                       "name_zh": self.reward_name_zh, "name_en": self.reward_name_en},
            "discount_percent": self.discount_percent,
            "issued_at": self.issued_at.isoformat(),
            "valid_until": self.valid_until.isoformat(),
            "used_at": self.used_at.isoformat() if self.used_at else None,
            "customer": self.customer,
        }


async def _find(partner: Partner, code: str) -> Voucher:
    stored = codes.normalise(code)
    if stored is None:
        raise InvalidVoucherCode("not a voucher code (length, symbols or check character)")
    voucher = await Voucher.get_or_none(code=stored, reward_kind__in=list(partner.reward_kinds))
    if voucher is None:
        raise VoucherNotFound("no such voucher")
    return voucher


async def _view(voucher: Voucher, now: datetime) -> PartnerVoucherView:
    await voucher.fetch_related("reward", "customer")
    return PartnerVoucherView(
        code=codes.display(voucher.code), status=effective_status(voucher, now),
        reward_code=voucher.reward.code, reward_kind=voucher.reward_kind,
        reward_name_zh=voucher.reward.name_zh, reward_name_en=voucher.reward.name_en,
        discount_percent=voucher.discount_percent, issued_at=utc(voucher.issued_at),
        valid_until=utc(voucher.expires_at),
        used_at=utc(voucher.used_at) if voucher.used_at else None,
        customer=mask_name(voucher.customer.name))


async def check_voucher(partner: Partner, code: str, *, now: datetime) -> PartnerVoucherView:
    """Look a voucher up (any status) without changing it."""
    return await _view(await _find(partner, code), now)


async def use_voucher(partner: Partner, code: str, *, now: datetime) -> PartnerVoucherView:
    """Mark the voucher used, exactly once: a second use raises ``VoucherAlreadyUsed``, a
    cancelled or expired one ``VoucherCancelled``/``VoucherExpired``. The customer is told
    through the outbox in the same transaction."""
    voucher = await _find(partner, code)
    async with in_transaction():
        changed = await Voucher.filter(
            id=voucher.id, status=VoucherStatus.ISSUED, expires_at__gt=utc(now)
        ).update(status=VoucherStatus.USED, used_at=utc(now), used_by_id=partner.id)
        voucher = await Voucher.get(id=voucher.id)
        if not changed:
            status = effective_status(voucher, now)
            if status == VoucherStatus.USED:
                raise VoucherAlreadyUsed(f"used at {voucher.used_at}")
            if status == VoucherStatus.CANCELLED:
                raise VoucherCancelled("the customer cancelled this voucher")
            raise VoucherExpired(f"expired at {voucher.expires_at}")
        view = await _view(voucher, now)
        await notifications.voucher_used(voucher, voucher.reward, voucher.customer, partner.name,
                                         now=now)
    log.info("voucher %d used by partner %d", voucher.id, partner.id)
    return view
