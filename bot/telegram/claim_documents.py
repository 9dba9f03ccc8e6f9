"""Which documents a claim still needs, and how a Telegram upload records what it is.

``Claim.required_documents`` lists document kinds (``driving_licence``, ``vehicle_licence``,
``accident_report``, ``repair_invoice``, ``photos``). ``Document`` has no column for the
kind, so an upload records it as a prefix of ``original_name`` (``"photos:IMG_0001.jpg"``),
which operators see next to the file name anyway; a required kind counts as provided once a
document of that kind exists that was not rejected. (A ``Document.kind`` column would be the
proper home: see the issue notes.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bot.telegram import lookups
from storage.models import OPEN_CLAIM_STATUSES, Claim, DocumentStatus

OTHER = "other"
_SEPARATOR = ":"


def stored_name(kind: str, file_name: str) -> str:
    return f"{kind}{_SEPARATOR}{file_name}"[:255]


def kind_of(original_name: str) -> str | None:
    kind, found, _ = original_name.partition(_SEPARATOR)
    return kind if found and kind.isidentifier() else None


def required(kinds: Any) -> list[str]:
    """The kinds a claim asks for (its ``required_documents``)."""
    return [str(k) for k in kinds] if isinstance(kinds, list) else []


def missing(names: Iterable[str], wanted: list[str]) -> list[str]:
    """The kinds in ``wanted`` that no document named in ``names`` provides."""
    have = {kind for name in names if (kind := kind_of(name)) is not None}
    return [kind for kind in wanted if kind not in have]


async def still_needed(claim_id: int, wanted: list[str]) -> list[str]:
    if not wanted:
        return []
    return missing(await lookups.document_names(claim_id, exclude_status=DocumentStatus.REJECTED),
                   wanted)


async def open_claims(customer_id: int) -> list[Claim]:
    return await Claim.filter(customer_id=customer_id,
                              status__in=list(OPEN_CLAIM_STATUSES)).order_by("-reported_at")


async def open_claim(customer_id: int, claim_id: int) -> Claim | None:
    """The claim if it is this customer's and still open (documents make sense for it)."""
    return await Claim.get_or_none(id=claim_id, customer_id=customer_id,
                                   status__in=list(OPEN_CLAIM_STATUSES))
