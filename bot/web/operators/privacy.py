"""A person's data for the operator API (admins only): the export, erasure and consent
evidence of ``storage.privacy``, each audited with the operator's identity."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.web.operators.access import Actor
from bot.web.operators.errors import Refusal
from bot.web.operators.rows import ErasureJson
from storage import privacy


class CustomerNotFound(Refusal):
    code = "not_found"
    status = 404


class LegalHold(Refusal):
    """Erasure refused while a claim is open or a complaint unresolved."""

    code = "legal_hold"
    status = 409

    def __init__(self, refused: privacy.ErasureRefused) -> None:
        super().__init__(str(refused), blockers=refused.blockers)


def requester(actor: Actor) -> privacy.Requester:
    return privacy.Requester(actor.name, actor.operator.id)


async def export(actor: Actor, customer_id: int, *, now: datetime, uploads: Path,
                 as_zip: bool) -> dict[str, Any] | bytes:
    try:
        data = await privacy.export_customer(customer_id, now=now)
    except privacy.CustomerNotFound as exc:
        raise CustomerNotFound(str(exc)) from None
    files = await privacy.document_files(customer_id)
    await privacy.audit(requester(actor), "customer.export", customer_id, now=now,
                        after={"documents": len(files), "format": "zip" if as_zip else "json"})
    if as_zip:
        return privacy.export_zip(data, uploads, files)
    return data


async def erase(actor: Actor, customer_id: int, *, now: datetime,
                uploads: Path) -> ErasureJson:
    try:
        result = await privacy.erase_customer(customer_id, by=requester(actor), now=now,
                                              uploads=uploads)
    except privacy.CustomerNotFound as exc:
        raise CustomerNotFound(str(exc)) from None
    except privacy.ErasureRefused as exc:
        raise LegalHold(exc) from None
    return {"customer_id": result.customer_id, "already_erased": result.already,
            "documents_deleted": result.documents, "inbound_deleted": result.inbound,
            "messages_cleared": result.messages_cleared,
            "messages_skipped": result.messages_skipped,
            "files_not_removed": len(result.files_failed)}


async def consent_csv(customer_id: int | None) -> AsyncIterator[bytes]:
    """The consent evidence as CSV, in chunks."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(privacy.CONSENT_COLUMNS)
    async for row in privacy.consent_evidence(None if customer_id is None else [customer_id]):
        writer.writerow(row)
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()
