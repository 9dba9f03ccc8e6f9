"""A person's rights over their data (PIPL): what we hold about them, and erasure.

Export
------
``export_customer`` is everything held about one customer record, as one JSON-safe document:
the profile, Telegram links, policies, claims with their timeline, payments, the documents
list, every consent row with its source and the number's remembered choices, messages sent
(status and parameters), inbound SMS with our replies, the loyalty account, ledger entries,
vouchers, check-ins, tasks, SMS redemptions and what operators did about them (the audit log).
``export_zip`` adds the document files.

Erasure
-------
``erase_customer`` keeps the row and its id — the ledger, message counts, campaign statistics
and dashboards are sums over ids — and replaces what identifies the person: name (by a
pseudonym), phone, birthday, email, customer number, plates, vehicle and free-text notes, and
message parameters. Documents (rows and files), inbound SMS, Telegram links, link codes and
pending SMS redemptions are deleted; messages not yet sent are skipped with reason
``erased``. The phone is remembered as suppressed on every channel for every category
(``storage.suppressions``). The customer number is cleared, so a later import of the same
person makes a new record that inherits none of the old data. It is refused while a claim is
open or a complaint is unresolved (``ErasureRefused`` lists them); a second erasure changes
nothing. Rows change in one transaction with the audit row; files are removed after it
commits (a file that cannot be removed is logged; its row is gone either way), except a file
another customer's document also points to (files are stored by content).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import zipfile
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from storage.desk_models import Complaint, ComplaintStatus, Conversation, ConversationMessage
from storage.loyalty_models import CheckIn, LedgerEntry, LoyaltyAccount, Voucher
from storage.models import (
    OPEN_CLAIM_STATUSES,
    Category,
    Claim,
    ClaimEvent,
    Consent,
    Customer,
    Document,
    InboundSms,
    LinkAttempt,
    LinkCode,
    Message,
    MessageStatus,
    Payment,
    PhoneSuppression,
    Policy,
    Task,
    TaskStatus,
    TelegramAccount,
)
from storage.operator_models import AuditLog
from storage.phones import mask_phone
from storage.privacy_models import Erasure, SmsRedemption
from storage.shared_phones import recount
from storage.suppressions import remember_number_choice

log = logging.getLogger(__name__)

COMPLAINT_TASK_KINDS = frozenset({"complaint"})
"""Task kinds that are complaints: an unresolved one is a legal hold on erasure."""
ERASED_SOURCE = "erasure"
ERASED_REASON = "erased"
UNSENT = (MessageStatus.PENDING, MessageStatus.CLAIMED)


class CustomerNotFound(Exception):
    pass


class ErasureRefused(Exception):
    """A legal hold: ``blockers`` names each open claim and unresolved complaint."""

    def __init__(self, customer_id: int, blockers: Sequence[Blocker]) -> None:
        self.customer_id = customer_id
        self.blockers = [str(b) for b in blockers]
        super().__init__(f"customer {customer_id} cannot be erased while these are open: "
                         + ", ".join(self.blockers))


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asked: an operator (id and name) or the command line (no id)."""

    name: str
    operator_id: int | None = None


@dataclass(slots=True)
class ErasureResult:
    customer_id: int
    already: bool
    documents: int = 0
    inbound: int = 0
    messages_cleared: int = 0
    messages_skipped: int = 0
    files_failed: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"customer_id": self.customer_id, "already_erased": self.already,
                "documents_deleted": self.documents, "inbound_deleted": self.inbound,
                "messages_cleared": self.messages_cleared,
                "messages_skipped": self.messages_skipped,
                "files_not_removed": len(self.files_failed)}


def pseudonym(customer_id: int) -> str:
    return f"ERASED-{customer_id:08d}"


# -- export ------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


async def _rows(query: QuerySet[Any], *exclude: str) -> list[dict[str, Any]]:
    rows = await query.order_by("id").values()
    return [{k: _plain(v) for k, v in row.items() if k not in exclude} for row in rows]


async def find_customers(*, phone: str | None = None,
                         customer_no: str | None = None) -> list[Customer]:
    if customer_no:
        return await Customer.filter(customer_no=customer_no).order_by("id")
    return await Customer.filter(phone=phone or "").order_by("id")


async def export_customer(customer_id: int, *, now: datetime) -> dict[str, Any]:
    customer = await Customer.get_or_none(id=customer_id)
    if customer is None:
        raise CustomerNotFound(f"no customer {customer_id}")
    claims = Claim.filter(customer_id=customer_id)
    claim_ids = await claims.values_list("id", flat=True)
    account = LoyaltyAccount.filter(customer_id=customer_id)
    account_ids = await account.values_list("id", flat=True)
    phone = customer.phone
    return {
        "exported_at": now.isoformat(),
        "customer": (await _rows(Customer.filter(id=customer_id)))[0],
        "erased": await _rows(Erasure.filter(customer_id=customer_id)),
        "telegram_accounts": await _rows(TelegramAccount.filter(customer_id=customer_id))
        + await _rows(TelegramAccount.filter(second_customer_id=customer_id)),
        "policies": await _rows(Policy.filter(customer_id=customer_id)),
        "claims": await _rows(claims),
        "claim_events": await _rows(ClaimEvent.filter(claim_id__in=claim_ids)),
        "payments": await _rows(Payment.filter(customer_id=customer_id)),
        "documents": await _rows(Document.filter(customer_id=customer_id), "storage_key"),
        "consents": await _rows(Consent.filter(customer_id=customer_id)),
        "number_choices": await _rows(PhoneSuppression.filter(phone=phone)) if phone else [],
        "messages": await _rows(Message.filter(customer_id=customer_id), "lease_expires_at"),
        "inbound_sms": await _rows(InboundSms.filter(customer_id=customer_id)),
        "loyalty_account": await _rows(account),
        "ledger_entries": await _rows(LedgerEntry.filter(account_id__in=account_ids)),
        "vouchers": await _rows(Voucher.filter(customer_id=customer_id)),
        "check_ins": await _rows(CheckIn.filter(customer_id=customer_id)),
        "tasks": await _rows(Task.filter(customer_id=customer_id)),
        "sms_redemptions": await _rows(SmsRedemption.filter(customer_id=customer_id), "code"),
        "telegram_link_attempts": await _rows(LinkAttempt.filter(phone=phone)) if phone else [],
        "operator_actions": await _rows(AuditLog.filter(target_type="customer",
                                                        target_id=str(customer_id))),
    }


def _file(directory: Path, storage_key: str) -> Path | None:
    root = directory.resolve()
    path = (root / storage_key).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None


def export_zip(export: dict[str, Any], directory: Path,
               documents: Iterable[tuple[int, str, str]]) -> bytes:
    """``export.json`` and ``documents/<id>-<name>`` for each (id, storage key, name)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("export.json", json.dumps(export, ensure_ascii=False, indent=2))
        for doc_id, key, name in documents:
            path = _file(directory, key)
            if path is not None:
                archive.write(path, f"documents/{doc_id}-{Path(name or key).name}")
    return buffer.getvalue()


async def document_files(customer_id: int) -> list[tuple[int, str, str]]:
    rows = await Document.filter(customer_id=customer_id).order_by("id").values_list(
        "id", "storage_key", "original_name")
    return [(int(i), str(k), str(n)) for i, k, n in rows]


async def audit(by: Requester, action: str, customer_id: int, *, now: datetime,
                after: dict[str, Any] | None = None) -> None:
    await AuditLog.create(operator_id=by.operator_id, operator_name=by.name[:64], action=action,
                          target_type="customer", target_id=str(customer_id), after=after,
                          created_at=now)


# -- erasure -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Blocker:
    """An open claim (``reference`` its number), an unresolved complaint task (the task id) or
    an open complaint of the conversations desk (its TS… reference)."""

    kind: str  # "claim", "complaint" (a task) or "complaint_case" (storage.desk_models)
    reference: str
    status: str

    def __str__(self) -> str:
        if self.kind in ("claim", "complaint_case"):
            return f"{self.kind.partition('_')[0]} {self.reference} ({self.status})"
        return f"complaint task {self.reference}"


async def erasure_blockers(customer_id: int) -> list[Blocker]:
    """What holds the data: open claims and unresolved complaints."""
    claims = await Claim.filter(customer_id=customer_id,
                                status__in=list(OPEN_CLAIM_STATUSES)).order_by("id").values_list(
        "number", "status")
    complaints = await Task.filter(customer_id=customer_id, kind__in=list(COMPLAINT_TASK_KINDS)
                                   ).exclude(status=TaskStatus.CLOSED).order_by("id").values_list(
        "id", "status")
    open_complaints = await Complaint.filter(customer_id=customer_id,
                                             status=ComplaintStatus.OPEN).order_by(
        "id").values_list("reference", flat=True)
    return ([Blocker("claim", str(number), _plain(status)) for number, status in claims]
            + [Blocker("complaint", str(task_id), _plain(status))
               for task_id, status in complaints]
            + [Blocker("complaint_case", str(reference), "open")  # the desk's (TS2026…)
               for reference in open_complaints])


async def erase_customer(customer_id: int, *, by: Requester, now: datetime,
                         uploads: Path) -> ErasureResult:
    customer = await Customer.get_or_none(id=customer_id)
    if customer is None:
        raise CustomerNotFound(f"no customer {customer_id}")
    if await Erasure.exists(customer_id=customer_id):
        return ErasureResult(customer_id, already=True)
    if blockers := await erasure_blockers(customer_id):
        raise ErasureRefused(customer_id, blockers)
    result = ErasureResult(customer_id, already=False)
    async with in_transaction():
        locked = await Customer.filter(id=customer_id).select_for_update().first()
        if locked is None or await Erasure.exists(customer_id=customer_id):
            return ErasureResult(customer_id, already=True)
        if blockers := await erasure_blockers(customer_id):  # under the lock, once more
            raise ErasureRefused(customer_id, blockers)
        files = await document_files(customer_id)
        result.documents = await Document.filter(customer_id=customer_id).delete()
        result.inbound = await InboundSms.filter(customer_id=customer_id).delete()
        if locked.phone and not await Customer.filter(phone=locked.phone).exclude(
                id=customer_id).exists():  # what the number sent before it was theirs
            result.inbound += await InboundSms.filter(from_phone=locked.phone).delete()
        await _forget_links(locked)
        await _clear_records(customer_id, result)
        await _clear_desk(locked)
        if locked.phone:
            await remember_number_choice(locked.phone, [c.value for c in Category],
                                         suppressed=True, channel="*", source=ERASED_SOURCE,
                                         reference=f"customer:{customer_id}", now=now)
        await _pseudonymise(locked, now)
        if locked.phone:
            await recount([locked.phone], now)
        await Erasure.create(customer_id=customer_id, requested_by=by.name[:64],
                             documents=result.documents, inbound=result.inbound, erased_at=now)
        await audit(by, "customer.erase", customer_id, now=now, after=result.as_json())
        keys = {key for _, key, _ in files}
        # Files are stored by content: one another customer also sent stays for them.
        shared = set(await Document.filter(storage_key__in=keys).values_list(
            "storage_key", flat=True)) if keys else set()
    result.files_failed = await asyncio.to_thread(_remove_files, uploads, keys - shared)
    log.info("customer %d erased: %d documents, %d inbound messages, phone %s suppressed",
             customer_id, result.documents, result.inbound, mask_phone(locked.phone))
    return result


async def _forget_links(customer: Customer) -> None:
    await TelegramAccount.filter(customer_id=customer.id).delete()
    await TelegramAccount.filter(second_customer_id=customer.id).update(second_customer_id=None)
    await LinkCode.filter(customer_id=customer.id).delete()
    if customer.phone:
        await LinkAttempt.filter(phone=customer.phone).update(phone="")
    await SmsRedemption.filter(customer_id=customer.id).delete()


async def _clear_records(customer_id: int, result: ErasureResult) -> None:
    """Keep every row that a total counts; clear the words in it."""
    result.messages_skipped = await Message.filter(
        customer_id=customer_id, status__in=list(UNSENT)).update(
        status=MessageStatus.SKIPPED, skip_reason=ERASED_REASON, lease_expires_at=None)
    result.messages_cleared = await Message.filter(customer_id=customer_id).update(params={})
    await Policy.filter(customer_id=customer_id).update(plate="", vehicle="")
    claim_ids = await Claim.filter(customer_id=customer_id).values_list("id", flat=True)
    await Claim.filter(customer_id=customer_id).update(description="")
    await ClaimEvent.filter(claim_id__in=claim_ids).update(note="")
    await Task.filter(customer_id=customer_id).update(note="")


async def _clear_desk(customer: Customer) -> None:
    """The conversations desk: the customer's thread (and what the number wrote before it was
    theirs) goes; complaints and surveys stay for the register and the totals, without the
    customer's words."""
    keys = [f"c:{customer.id}"] + ([f"p:{customer.phone}"] if customer.phone else [])
    threads = await Conversation.filter(key__in=keys).values_list("id", flat=True)
    if threads:
        await ConversationMessage.filter(conversation_id__in=list(threads)).delete()
        await Conversation.filter(id__in=list(threads)).delete()
    await Complaint.filter(customer_id=customer.id).update(description="", conversation_id=None)


async def _pseudonymise(customer: Customer, now: datetime) -> None:
    await Customer.filter(id=customer.id).update(
        name=pseudonym(customer.id), phone="", phone_invalid_at=now, birthday=None,
        birthday_md=None, lunar_birthday=False, email="", customer_no=None, region_id=None)


def _remove_files(uploads: Path, keys: Iterable[str]) -> list[str]:
    failed = []
    for key in keys:
        path = _file(uploads, key)
        if path is None:
            continue
        try:
            path.unlink()
        except OSError as exc:
            log.warning("erasure: document file %s not removed: %s", key, exc)
            failed.append(key)
    return failed



# -- consent evidence --------------------------------------------------------------------

CONSENT_COLUMNS = ("customer_id", "customer_no", "channel", "category", "granted", "source",
                   "reference", "at")
_BATCH = 1000


async def consent_evidence(customer_ids: Sequence[int] | None = None
                           ) -> AsyncIterator[tuple[object, ...]]:
    """Every consent change, oldest first, with its source and its evidence (``reference``):
    the row's own — the MessageSid of an SMS keyword, ``update:N`` of a Telegram settings
    button — else the MessageSid kept with the number's choice (``PhoneSuppression``: Twilio
    opt-outs, and rows written before consents carried their reference)."""
    last = 0
    while True:
        query = Consent.filter(id__gt=last)
        if customer_ids is not None:
            query = query.filter(customer_id__in=list(customer_ids))
        batch = await query.order_by("id").limit(_BATCH).values_list(
            "id", "customer_id", "channel", "category", "granted", "source", "reference",
            "created_at")
        if not batch:
            return
        last = int(batch[-1][0])
        owners = {int(cid): (str(phone), no) for cid, phone, no in await Customer.filter(
            id__in={row[1] for row in batch}).values_list("id", "phone", "customer_no")}
        references = await _references({phone for phone, _ in owners.values() if phone})
        for _, cid, channel, category, granted, source, own, at in batch:
            phone, number = owners.get(int(cid), ("", None))
            reference = own or references.get((phone, str(source), at), "")
            yield (cid, number or "", channel, _plain(category), "yes" if granted else "no",
                   source, reference, _plain(at))


async def _references(phones: set[str]) -> dict[tuple[str, str, datetime], str]:
    if not phones:
        return {}
    rows = await PhoneSuppression.filter(phone__in=phones).exclude(reference="").values_list(
        "phone", "source", "created_at", "reference")
    return {(str(p), str(s), at): str(r) for p, s, at, r in rows}
