"""What a ledger posting writes and answers, shared by the posting paths (``loyalty.ledger``
for one posting, ``loyalty.group_postings`` for a group of them): the entry's spec, the
outcome, the request fingerprint, and the error for a broken invariant."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from storage.loyalty_models import EntryKind


@dataclass(frozen=True, slots=True)
class Posted:
    """The outcome of a posting: the entry (new, or the original on a replay)."""

    entry_id: int
    account_id: int
    kind: EntryKind
    amount: int
    balance_after: int
    shortfall: int = 0
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class EntrySpec:
    """What to write for one entry, apart from the amounts the posting decides."""

    kind: EntryKind
    key: str
    fingerprint: str
    reason: str = ""
    operator: str = ""
    reverses_id: int | None = None
    payment_id: int | None = None
    policy_id: int | None = None
    basis_cents: int | None = None  # the payment amount the entry settles (refund negative)


class LedgerCorrupted(RuntimeError):
    """The lots do not cover the balance: a broken invariant, never a user error."""


def fingerprint(request: Mapping[str, Any]) -> str:
    """A stable digest of what was asked, to tell a replay from a conflicting reuse."""
    body = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()
