"""Claim documents from any channel (Telegram upload, MMS): validate, store, record.

Validation trusts the bytes, never the file name or the declared type: the type comes from
magic bytes, images are opened with Pillow and refused above a pixel limit before they are
decoded (decompression bombs), and sizes are checked before download when the channel says
the size up front. Files are stored under generated names, de-duplicated by sha256 per
customer and claim.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import uuid
import warnings
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

import filetype
from PIL import Image, UnidentifiedImageError

from storage.models import Channel, Document

ALLOWED_TYPES: dict[str, str] = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "image/heic": "heic",
    "image/heif": "heic",
    "application/pdf": "pdf",
}
IMAGE_TYPES = frozenset(t for t in ALLOWED_TYPES if t.startswith("image/"))


class UploadRejected(Exception):
    """A file we will not keep; ``reason`` is a machine code the bot turns into kind words:
    ``too_large``, ``empty``, ``unsupported_type``, ``image_too_large``, ``corrupt``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class UploadLimits:
    max_bytes: int
    max_pixels: int
    directory: Path


def check_declared_size(size: int | None, limits: UploadLimits) -> None:
    """Refuse before downloading when the channel tells the size (Telegram file_size)."""
    if size is not None and size > limits.max_bytes:
        raise UploadRejected("too_large", f"{size} bytes")


@cache
def _register_heif() -> None:
    from pillow_heif import register_heif_opener

    register_heif_opener()


def inspect(data: bytes, limits: UploadLimits) -> str:
    """The file's real MIME type if it is acceptable; raises ``UploadRejected`` otherwise."""
    if not data:
        raise UploadRejected("empty")
    if len(data) > limits.max_bytes:
        raise UploadRejected("too_large", f"{len(data)} bytes")
    kind = filetype.guess(data)
    mime = kind.mime if kind is not None else ""
    if mime not in ALLOWED_TYPES:
        raise UploadRejected("unsupported_type", mime or "unknown")
    if mime in IMAGE_TYPES:
        _check_image(data, mime, limits.max_pixels)
    return "image/heic" if mime == "image/heif" else mime


def _check_image(data: bytes, mime: str, max_pixels: int) -> None:
    if mime in ("image/heic", "image/heif"):
        _register_heif()
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size  # header only: nothing decoded yet
                if width * height > max_pixels:
                    raise UploadRejected("image_too_large", f"{width}x{height}")
                image.verify()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise UploadRejected("image_too_large", str(exc)) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise UploadRejected("corrupt", type(exc).__name__) from None


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    with temp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temp, path)


async def store_document(
    *,
    customer_id: int,
    claim_id: int | None,
    channel: Channel,
    data: bytes,
    original_name: str,
    limits: UploadLimits,
    now: datetime,
) -> tuple[Document, bool]:
    """Validate and keep one file; returns the Document and whether it is new.

    The same bytes sent again for the same customer and claim return the earlier Document.
    """
    mime = inspect(data, limits)
    digest = hashlib.sha256(data).hexdigest()
    existing = await Document.get_or_none(customer_id=customer_id, claim_id=claim_id,
                                          sha256=digest)
    if existing is not None:
        return existing, False
    key = f"{digest[:2]}/{digest}.{ALLOWED_TYPES[mime]}"
    path = limits.directory / key
    if not path.exists():
        await asyncio.to_thread(_write_atomically, path, data)
    document = await Document.create(
        customer_id=customer_id, claim_id=claim_id, channel=channel, mime_type=mime,
        size=len(data), sha256=digest, storage_key=key, original_name=original_name[:255],
        created_at=now,
    )
    return document, True
