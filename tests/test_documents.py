"""Upload validation by content, not by name: types, sizes, decompression bombs, de-dup."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from bot.documents import UploadLimits, UploadRejected, check_declared_size, inspect, store_document
from storage.models import Channel, Document
from tests import factories as f


def png(width: int = 8, height: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (0, 90, 200)).save(buf, format="JPEG")
    return buf.getvalue()


def pdf() -> bytes:
    return (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
            b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny PNG whose header claims 2.5 gigapixels (one compressed row is enough)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\x00" * (width * 3 + 1))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(
        b"IEND", b"")


@pytest.fixture
def limits(tmp_path: Path) -> UploadLimits:
    return UploadLimits(max_bytes=1_000_000, max_pixels=40_000_000, directory=tmp_path / "up")


@pytest.mark.parametrize(("maker", "mime"), [(png, "image/png"), (jpeg, "image/jpeg"),
                                             (pdf, "application/pdf")])
def test_accepted_types_are_recognised_by_content(limits: UploadLimits, maker: object,
                                                  mime: str) -> None:
    assert inspect(maker(), limits) == mime  # type: ignore[operator]


def test_webp_is_accepted(limits: UploadLimits) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buf, format="WEBP")
    assert inspect(buf.getvalue(), limits) == "image/webp"


def test_pdf_named_jpg_is_a_pdf_and_text_named_pdf_is_refused(limits: UploadLimits) -> None:
    assert inspect(pdf(), limits) == "application/pdf"
    with pytest.raises(UploadRejected) as info:
        inspect(b"just some text pretending to be a pdf", limits)
    assert info.value.reason == "unsupported_type"


def test_decompression_bomb_is_refused_before_decoding(limits: UploadLimits) -> None:
    with pytest.raises(UploadRejected) as info:
        inspect(png_bomb(), limits)
    assert info.value.reason == "image_too_large"


def test_truncated_image_is_corrupt(limits: UploadLimits) -> None:
    with pytest.raises(UploadRejected) as info:
        inspect(png()[:60], limits)
    assert info.value.reason == "corrupt"


def test_sizes_are_checked_declared_and_actual(limits: UploadLimits) -> None:
    with pytest.raises(UploadRejected, match="too_large"):
        check_declared_size(limits.max_bytes + 1, limits)
    check_declared_size(None, limits)
    with pytest.raises(UploadRejected, match="too_large"):
        inspect(b"%PDF-" + b"0" * limits.max_bytes, limits)
    with pytest.raises(UploadRejected, match="empty"):
        inspect(b"", limits)


async def test_store_writes_once_and_deduplicates_by_hash(db: str, limits: UploadLimits) -> None:
    owner = await f.customer()
    data = png()
    first, new = await store_document(customer_id=owner.id, claim_id=None, channel=Channel.TELEGRAM,
                                      data=data, original_name="photo.jpg", limits=limits,
                                      now=f.NOON_SHANGHAI)
    again, new_again = await store_document(customer_id=owner.id, claim_id=None,
                                            channel=Channel.SMS, data=data, original_name="x",
                                            limits=limits, now=f.NOON_SHANGHAI)
    assert new and not new_again and again.id == first.id
    assert first.mime_type == "image/png" and first.size == len(data)
    stored = limits.directory / first.storage_key
    assert stored.read_bytes() == data and "photo" not in first.storage_key
    assert await Document.all().count() == 1


async def test_rejected_upload_stores_nothing(db: str, limits: UploadLimits) -> None:
    owner = await f.customer()
    with pytest.raises(UploadRejected):
        await store_document(customer_id=owner.id, claim_id=None, channel=Channel.TELEGRAM,
                             data=png_bomb(), original_name="bomb.png", limits=limits,
                             now=f.NOON_SHANGHAI)
    assert await Document.all().count() == 0
    assert not limits.directory.exists()
