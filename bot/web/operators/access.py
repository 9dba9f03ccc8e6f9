"""Who an operator is and what they may do: tokens, console sessions, CSRF, roles.

Tokens and session secrets have 256 bits from ``secrets`` and only their sha256 is stored
(the same reasoning and the same ``hash_token`` as the partner API: no salt or slow hash is
needed against guessing a random 256-bit value). Roles are ordered: a viewer reads, an agent
also handles claims, documents and tasks, an admin also sends campaigns, adjusts points and
edits the rewards catalogue.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from loyalty.partners import hash_token
from storage.identity import comparable_name
from storage.models import Customer, Language
from storage.operator_models import ConsoleSession, Operator, Role
from storage.phones import InvalidPhone, normalise_phone
from storage.suppressions import apply_number_opt_outs

log = logging.getLogger(__name__)

RANK: dict[Role, int] = {Role.VIEWER: 0, Role.AGENT: 1, Role.ADMIN: 2}


class OperatorExists(Exception):
    """An operator with this name exists already."""


class InvalidOperator(Exception):
    """The operator's details cannot be used (empty name, invalid contact phone)."""


def may(role: Role, needed: Role) -> bool:
    return RANK[role] >= RANK[needed]


@dataclass(frozen=True, slots=True)
class Actor:
    """The authenticated operator of one request, and how they authenticated."""

    operator: Operator
    via: str  # "token" or "session"
    csrf_token: str = ""

    @property
    def name(self) -> str:
        return self.operator.name

    @property
    def role(self) -> Role:
        return Role(self.operator.role)

    def may(self, needed: Role) -> bool:
        return may(self.role, needed)


async def create_operator(
    name: str, role: Role, *, language: str = "zh-CN", contact_phone: str | None = None,
    default_region: str = "CN", branch: str = "", manager: bool = False,
) -> tuple[Operator, str]:
    """A new operator and their bearer token — the only time the token is ever available.

    With ``contact_phone`` the operator gets a contact record for campaign test sends: the
    customer with that phone if there is one, else a new record. Contact records are kept out
    of every campaign audience.
    """
    name = name.strip()
    if not name:
        raise InvalidOperator("an operator needs a name")
    if language not in {lang.value for lang in Language}:
        raise InvalidOperator(f"unknown language {language!r}")
    branch = branch.strip()
    if len(branch) > 32:
        raise InvalidOperator("a branch code has at most 32 characters")
    if manager and not branch:
        raise InvalidOperator("a manager manages a branch: give --branch")
    token = secrets.token_urlsafe(32)
    async with in_transaction():
        contact_id: int | None = None
        if contact_phone:
            try:
                phone = normalise_phone(contact_phone, default_region)
            except InvalidPhone as exc:
                raise InvalidOperator(str(exc)) from None
            contact_id = await _contact(name, phone, language)
        try:
            operator = await Operator.create(name=name, role=role, token_hash=hash_token(token),
                                             language=language, contact_id=contact_id,
                                             branch=branch, manager=manager)
        except IntegrityError:
            raise OperatorExists(f"an operator named {name!r} exists") from None
    log.info("operator %d created with role %s", operator.id, role.value)
    return operator, token


async def _contact(name: str, phone: str, language: str) -> int:
    """The customer record on ``phone`` for test sends: the one with the operator's name if
    several share the number, else the first; a new one when nobody has it."""
    on_phone = await Customer.filter(phone=phone).order_by("id")
    same = [c for c in on_phone if comparable_name(c.name) == comparable_name(name)]
    if same or on_phone:
        return (same or on_phone)[0].id
    contact = await Customer.create(name=name, phone=phone, language=language,
                                    referral_code=f"OP{secrets.token_hex(5).upper()}")
    await apply_number_opt_outs([phone])  # a STOP from the number before it was ours holds
    return contact.id


async def authenticate_token(token: str) -> Operator | None:
    if not token:
        return None
    return await Operator.get_or_none(token_hash=hash_token(token), active=True)


async def open_session(operator: Operator, *, now: datetime, hours: int) -> tuple[str, str]:
    """A console session for ``operator``; returns (cookie secret, CSRF token)."""
    secret = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    await ConsoleSession.create(key_hash=hash_token(secret), operator=operator, csrf_token=csrf,
                                created_at=now, expires_at=now + timedelta(hours=hours))
    await ConsoleSession.filter(operator_id=operator.id, expires_at__lt=now).delete()
    return secret, csrf


async def session_actor(secret: str, *, now: datetime) -> Actor | None:
    if not secret:
        return None
    session = await ConsoleSession.get_or_none(key_hash=hash_token(secret)).prefetch_related(
        "operator")
    if session is None or session.expires_at <= now or not session.operator.active:
        return None
    return Actor(session.operator, "session", session.csrf_token)


async def close_session(secret: str) -> None:
    if secret:
        await ConsoleSession.filter(key_hash=hash_token(secret)).delete()


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of what a caller sent (any text, even lone surrogates from
    header bytes that were not UTF-8) with a secret of ours."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                               expected.encode("utf-8", "surrogateescape"))
