"""Retention: what is kept only for a while, removed in bounded batches.

* Claim documents, ``documents_before`` their claim closed (the newest event with a closing
  status — closed, rejected, withdrawn — or, without one, the claim's last change); documents
  never filed to a claim count from their upload. Rows go in one transaction per batch; files
  go after it commits, except one another document still points to (files are stored by
  content).
* Inbound SMS received before ``inbound_before``: the body and our reply (which may list
  plates or a voucher code) are emptied; the row (the MessageSid's idempotency record and the
  keyword) stays.
* Conversation messages (the desk's threads: customers', the bot's and operators' words)
  written before ``inbound_before``: emptied the same way, counted with the inbound bodies.
* Parameters (names, plates) of messages created before ``params_before``: emptied, status
  and counts stay. The messages table is large, so the pass walks it by id from where the
  last one stopped (``RetentionCursor``); a message still waiting to be sent when the pass
  reaches it keeps its parameters (it needs them).

Each pass takes at most ``batch`` rows per step and ``max_batches`` steps, so a first run on a
large database spreads over several days instead of holding locks for hours. ``dry_run``
counts what would go and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tortoise.expressions import Q, Subquery
from tortoise.functions import Max
from tortoise.transactions import in_transaction

from storage.desk_models import ConversationMessage
from storage.models import OPEN_CLAIM_STATUSES, Claim, ClaimEvent, Document, InboundSms, Message
from storage.privacy_models import RetentionCursor

log = logging.getLogger(__name__)

PARAMS_CURSOR = "message_params"
_WAITING = ("pending", "claimed")


@dataclass(frozen=True, slots=True)
class Cutoffs:
    documents_before: datetime  # claim closed (or document uploaded, unfiled) before this
    inbound_before: datetime
    params_before: datetime


@dataclass(slots=True)
class RetentionReport:
    documents: int = 0
    files: int = 0
    bytes: int = 0
    inbound_bodies: int = 0
    message_params: int = 0
    batches: int = 0
    complete: bool = True  # False: stopped at max_batches with more to do
    sample: list[str] = field(default_factory=list)  # in a dry run: some of what would go

    def counts(self) -> dict[str, int]:
        return {"documents": self.documents, "files": self.files, "bytes": self.bytes,
                "inbound_bodies": self.inbound_bodies, "message_params": self.message_params,
                "batches": self.batches, "complete": int(self.complete)}


async def closed_claims_before(cutoff: datetime) -> list[int]:
    """Claims no longer open whose closing is older than ``cutoff`` and that have documents."""
    with_documents = Document.filter(claim_id__isnull=False).values("claim_id")
    claims = await Claim.filter(id__in=Subquery(with_documents)).exclude(
        status__in=list(OPEN_CLAIM_STATUSES)).values_list("id", "updated_at")
    if not claims:
        return []
    closing = {int(cid): at for cid, at in await ClaimEvent.filter(
        claim_id__in=[c for c, _ in claims]).exclude(status__in=list(OPEN_CLAIM_STATUSES)
    ).group_by("claim_id").annotate(at=Max("occurred_at")).values_list("claim_id", "at")}
    return sorted(int(cid) for cid, changed in claims if closing.get(int(cid), changed) < cutoff)


async def run(cutoffs: Cutoffs, *, uploads: Path, batch: int, max_batches: int,
              dry_run: bool = False) -> RetentionReport:
    report = RetentionReport()
    await _documents(cutoffs.documents_before, uploads, batch, max_batches, dry_run, report)
    await _inbound(cutoffs.inbound_before, batch, max_batches, dry_run, report)
    await _conversation_words(cutoffs.inbound_before, batch, max_batches, dry_run, report)
    await _params(cutoffs.params_before, batch, max_batches, dry_run, report)
    log.info("retention%s: %s", " (dry run)" if dry_run else "", report.counts())
    return report


async def _documents(cutoff: datetime, uploads: Path, batch: int, max_batches: int,
                     dry_run: bool, report: RetentionReport) -> None:
    claims = await closed_claims_before(cutoff)
    unfiled = Q(claim_id__isnull=True, created_at__lt=cutoff)
    due = Document.filter(Q(claim_id__in=claims) | unfiled if claims else unfiled)
    if dry_run:
        report.documents = await due.count()
        rows = await due.order_by("id").limit(20).values_list("id", "claim_id", "size")
        report.sample += [f"document {i} (claim {c or '-'}, {s} bytes)" for i, c, s in rows]
        return
    for _ in range(max_batches):
        rows = await due.order_by("id").limit(batch).values_list("id", "storage_key", "size")
        if not rows:
            return
        async with in_transaction():
            await Document.filter(id__in=[r[0] for r in rows]).delete()
            keys = {str(r[1]) for r in rows}
            kept = set(await Document.filter(storage_key__in=keys).values_list(
                "storage_key", flat=True))
        report.documents += len(rows)
        report.batches += 1
        files, size = await asyncio.to_thread(_unlink, uploads, keys - kept)
        report.files += files
        report.bytes += size
    report.complete = not await due.exists()


def _unlink(uploads: Path, keys: Iterable[str]) -> tuple[int, int]:
    root = uploads.resolve()
    files = size = 0
    for key in keys:
        path = (root / key).resolve()
        if path.is_relative_to(root) and path.is_file():
            size += path.stat().st_size
            path.unlink()
            files += 1
    return files, size


async def _inbound(cutoff: datetime, batch: int, max_batches: int, dry_run: bool,
                   report: RetentionReport) -> None:
    due = InboundSms.filter(Q(created_at__lt=cutoff), ~(Q(body="") & Q(reply="")))
    if dry_run:
        report.inbound_bodies = await due.count()
        return
    for _ in range(max_batches):
        ids = await due.order_by("id").limit(batch).values_list("id", flat=True)
        if not ids:
            return
        report.inbound_bodies += await InboundSms.filter(id__in=ids).update(body="", reply="")
        report.batches += 1
    report.complete = report.complete and not await due.exists()


async def _params(cutoff: datetime, batch: int, max_batches: int, dry_run: bool,
                  report: RetentionReport) -> None:
    cursor = await RetentionCursor.get_or_none(name=PARAMS_CURSOR)
    last = cursor.last_id if cursor else 0
    due = Message.filter(id__gt=last, created_at__lt=cutoff)
    if dry_run:
        report.message_params = await due.exclude(status__in=_WAITING).count()
        return
    for _ in range(max_batches):
        rows = await due.filter(id__gt=last).order_by("id").limit(batch).values_list(
            "id", "status")
        if not rows:
            return
        ids = [int(i) for i, status in rows if str(status) not in _WAITING]
        last = int(rows[-1][0])
        async with in_transaction():
            if ids:
                report.message_params += await Message.filter(id__in=ids).update(params={})
            await RetentionCursor.update_or_create(defaults={"last_id": last},
                                                   name=PARAMS_CURSOR)
        report.batches += 1
    report.complete = report.complete and not await due.filter(id__gt=last).exists()


async def _conversation_words(cutoff: datetime, batch: int, max_batches: int, dry_run: bool,
                              report: RetentionReport) -> None:
    due = ConversationMessage.filter(created_at__lt=cutoff).exclude(body="")
    if dry_run:
        report.inbound_bodies += await due.count()
        return
    for _ in range(max_batches):
        ids = await due.order_by("id").limit(batch).values_list("id", flat=True)
        if not ids:
            return
        report.inbound_bodies += await ConversationMessage.filter(id__in=ids).update(body="")
        report.batches += 1
