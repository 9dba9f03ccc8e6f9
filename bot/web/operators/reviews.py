"""Claim document review: accept, or reject with a reason and ask the customer to re-upload.

Files are read from ``uploads.directory`` under their generated storage key; the key is
checked to stay inside that directory before anything is opened.
"""

from __future__ import annotations

import asyncio
import io
from datetime import datetime
from pathlib import Path
from typing import Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tortoise.transactions import in_transaction

from bot.web.operators import audit
from bot.web.operators.access import Actor
from bot.web.operators.errors import Refusal
from bot.web.operators.rows import DocumentJson
from storage.models import Category, Claim, Document, DocumentStatus
from storage.outbox import Outbound, enqueue

THUMBNAIL_PIXELS = 320


class DocumentError(Refusal):
    code = "document_error"
    status = 409


class DocumentNotFound(DocumentError):
    code = "not_found"
    status = 404


class AlreadyReviewed(DocumentError):
    code = "already_reviewed"


class NoThumbnail(DocumentError):
    code = "no_thumbnail"
    status = 404


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["accept", "reject"]
    reason: str = Field(default="", max_length=300)

    @model_validator(mode="after")
    def _reason_for_rejection(self) -> ReviewIn:
        if self.decision == "reject" and not self.reason.strip():
            raise ValueError("reason: required when rejecting a document")
        return self


def document_json(document: Document) -> DocumentJson:
    return {
        "id": document.id, "claim_id": document.claim_id, "customer_id": document.customer_id,
        "channel": str(document.channel), "mime_type": document.mime_type, "size": document.size,
        "original_name": document.original_name, "status": DocumentStatus(document.status).value,
        "reason": document.reason, "created_at": document.created_at.isoformat(),
        "reviewed_at": document.reviewed_at.isoformat() if document.reviewed_at else None,
    }


async def get_document(document_id: int) -> Document:
    document = await Document.get_or_none(id=document_id)
    if document is None:
        raise DocumentNotFound(f"no document {document_id}")
    return document


def file_path(document: Document, directory: Path) -> Path:
    root = directory.resolve()
    path = (root / document.storage_key).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise DocumentNotFound("the file is not in storage")
    return path


def _thumbnail(path: Path) -> bytes:
    with Image.open(path) as image:
        image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
        out = io.BytesIO()
        image.convert("RGB").save(out, "JPEG", quality=80)
    return out.getvalue()


async def thumbnail(document: Document, directory: Path) -> bytes | None:
    """A small JPEG of an image document (None for PDFs)."""
    if not document.mime_type.startswith("image/"):
        return None
    path = file_path(document, directory)
    if document.mime_type == "image/heic":
        from pillow_heif import register_heif_opener

        register_heif_opener()
    return await asyncio.to_thread(_thumbnail, path)


async def review(actor: Actor, document_id: int, data: ReviewIn, *, now: datetime) -> Document:
    async with in_transaction():
        document = await Document.filter(id=document_id).select_for_update().first()
        if document is None:
            raise DocumentNotFound(f"no document {document_id}")
        if document.status != DocumentStatus.RECEIVED:
            raise AlreadyReviewed(f"document {document_id} is already {document.status}")
        before = document_json(document)
        accepted = data.decision == "accept"
        document.status = DocumentStatus.ACCEPTED if accepted else DocumentStatus.REJECTED
        document.reason = data.reason.strip()
        document.reviewed_at = now
        await document.save(update_fields=["status", "reason", "reviewed_at"])
        if not accepted:
            claim = await Claim.get_or_none(id=document.claim_id) if document.claim_id else None
            await enqueue(Outbound(
                dedup_key=f"document_rejected:{document.id}", kind="document_rejected",
                category=Category.SERVICE, customer_id=document.customer_id,
                template_key="document_rejected", not_before=now,
                params={"claim": claim.number if claim else "-", "reason": document.reason},
            ))
        await audit.record(actor, f"document.{data.decision}", "document", document.id,
                           before=before, after=document_json(document), now=now)
    return document
