"""Claim documents through Telegram: the /upload flow, albums acknowledged with one running
count, the 20 MB limit checked before any download, content-based types, decompression
bombs, files sent outside the flow, and claims that are not the sender's."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

from PIL import Image

from storage.models import Claim, ClaimStatus, Customer, Document
from tests import factories as f
from tests.test_documents import pdf, png_bomb
from tests.test_telegram_support import Rig, User, button_data

pytest_plugins = ["tests.test_telegram_support"]

MB = 1024 * 1024


def jpeg(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32 + shade, 24), (40 * shade % 256, 90, 200)).save(buf, format="JPEG")
    return buf.getvalue()


async def _claim(owner: Customer, **extra: Any) -> Claim:
    policy = await f.policy(owner)
    return await Claim.create(number=f"RDAA{owner.id:07d}1", policy=policy, customer=owner,
                              status=extra.pop("status", ClaimStatus.REGISTERED),
                              reported_at=datetime(2026, 11, 10, tzinfo=UTC),
                              required_documents=["driving_licence", "photos"], **extra)


def photo(file_id: str, size: int | None) -> list[dict[str, Any]]:
    return [{"file_id": f"{file_id}-s", "file_unique_id": f"u{file_id}s", "width": 90,
             "height": 67, "file_size": 100},
            {"file_id": file_id, "file_unique_id": f"u{file_id}", "width": 1280, "height": 960,
             **({"file_size": size} if size is not None else {})}]


def document(file_id: str, name: str, size: int, mime: str = "image/jpeg") -> dict[str, Any]:
    return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_name": name,
            "mime_type": mime, "file_size": size}


async def _into_flow(tg: Rig, user: User, claim: Claim, kind: str = "photos") -> None:
    """/upload → the claim → the kind of document."""
    await tg.send(user, "/upload")
    assert button_data(tg.last(user.id)) == [f"upl:claim:{claim.id}:"]
    await tg.press(user, f"upl:claim:{claim.id}:")
    kinds = button_data(tg.last(user.id))
    assert kinds == [f"upl:kind:{claim.id}:driving_licence", f"upl:kind:{claim.id}:photos",
                     f"upl:kind:{claim.id}:other", "upl:claims:0:"]
    await tg.press(user, f"upl:kind:{claim.id}:{kind}")


async def test_an_album_is_stored_and_acknowledged_once_with_a_running_count(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    claim = await _claim(owner)
    await _into_flow(tg, user, claim)
    tg.fake.clear()
    for n in range(3):
        content = jpeg(10 + n)
        tg.fake.add_file(f"PH{n}", content, f"photos/file_{n}.jpg")
        await tg.send(user, photo=photo(f"PH{n}", len(content)), media_group_id="album-1")
    docs = await Document.filter(claim_id=claim.id).order_by("id")
    assert [(d.customer_id, d.mime_type, d.original_name) for d in docs] == [
        (owner.id, "image/jpeg", "photos:photo")] * 3
    t = tg.t("en")
    [ack] = tg.sent(user.id)
    assert ack["text"] == t("tg_upload_album_received", album=1, count=1, claim=claim.number)
    edits = tg.sent(user.id, "editMessageText")
    assert [e["text"] for e in edits] == [
        t("tg_upload_album_received", album=n, count=n, claim=claim.number) for n in (2, 3)]
    assert len(tg.fake.requests_for("getFile")) == 3

    await tg.press(user, f"upl:done:{claim.id}:")
    assert tg.last_text(user.id) == t("tg_upload_done", count=3, claim=claim.number)
    await tg.press(user, f"clm:show:{claim.id}")
    assert tg.last_text(user.id).endswith(
        t("tg_claim_docs_needed", documents=t("tg_doc_driving_licence")))


async def test_a_file_over_20_mb_is_refused_before_any_download(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    claim = await _claim(owner)
    await _into_flow(tg, user, claim)
    tg.fake.clear()
    update = await tg.send(user, document=document("BIG", "scan.pdf", 20 * MB + 1,
                                                   "application/pdf"))
    reply = tg.last(user.id)
    assert reply["text"] == tg.t("en")("tg_upload_too_large", max_mb=20)
    assert reply["reply_to_message_id"] == update.message.message_id  # type: ignore[union-attr]
    assert tg.fake.requests_for("getFile") == []
    assert await Document.all().count() == 0


async def test_a_pdf_named_jpg_is_stored_as_the_pdf_it_is(tg: Rig) -> None:
    owner, user = await tg.linked()
    claim = await _claim(owner)
    await _into_flow(tg, user, claim, kind="driving_licence")
    content = pdf()
    tg.fake.add_file("PDF1", content)
    await tg.send(user, document=document("PDF1", "licence.jpg", len(content)))
    [doc] = await Document.all()
    assert (doc.mime_type, doc.original_name, doc.storage_key[-4:]) == (
        "application/pdf", "driving_licence:licence.jpg", ".pdf")
    assert tg.last_text(user.id) == tg.t("zh-CN")("tg_upload_received", count=1,
                                                  claim=claim.number)


async def test_a_decompression_bomb_png_is_refused(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    claim = await _claim(owner)
    await _into_flow(tg, user, claim)
    content = png_bomb()
    tg.fake.add_file("BOMB", content)
    await tg.send(user, document=document("BOMB", "crash.png", len(content), "image/png"))
    assert tg.last_text(user.id) == tg.t("en")("tg_upload_image_too_large")
    assert await Document.all().count() == 0


async def test_a_file_that_is_not_an_accepted_type_is_refused(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    claim = await _claim(owner)
    await _into_flow(tg, user, claim)
    tg.fake.add_file("TXT", b"just some words, not a picture")
    await tg.send(user, document=document("TXT", "photo.jpg", 30))
    assert tg.last_text(user.id) == tg.t("en")("tg_upload_unsupported")
    assert await Document.all().count() == 0


async def test_the_same_file_twice_is_kept_once(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    claim = await _claim(owner)
    await _into_flow(tg, user, claim)
    content = jpeg(1)
    tg.fake.add_file("A", content)
    tg.fake.add_file("B", content)
    await tg.send(user, photo=photo("A", len(content)))
    await tg.send(user, photo=photo("B", len(content)))
    assert tg.last_text(user.id) == tg.t("en")("tg_upload_duplicate", claim=claim.number)
    assert await Document.all().count() == 1


async def test_a_file_outside_the_flow_asks_which_claim_it_belongs_to(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    claim = await _claim(owner)
    await _claim(await f.customer())  # someone else's open claim is never offered
    content = jpeg(2)
    tg.fake.add_file("LOOSE", content)
    for _ in range(2):  # an album of two copies: asked once
        await tg.send(user, photo=photo("LOOSE", len(content)), media_group_id="g2")
    asked = [p for p in tg.sent(user.id) if p["text"] == tg.t("en")("tg_upload_which_claim")]
    assert len(asked) == 1 and button_data(asked[0]) == [f"upl:claim:{claim.id}:"]
    assert await Document.all().count() == 0
    await tg.press(user, f"upl:claim:{claim.id}:")
    await tg.press(user, f"upl:kind:{claim.id}:photos")
    [doc] = await Document.all()
    assert (doc.claim_id, doc.original_name) == (claim.id, "photos:photo")


async def test_uploading_to_someone_elses_claim_is_not_found(tg: Rig) -> None:
    _, user = await tg.linked(language="en")
    theirs = await _claim(await f.customer())
    await tg.press(user, f"upl:claim:{theirs.id}:")
    assert tg.last_text(user.id) == tg.t("en")("tg_not_found")
    await tg.press(user, f"upl:kind:{theirs.id}:photos")
    assert tg.last_text(user.id) == tg.t("en")("tg_not_found")
    content = jpeg(3)
    tg.fake.add_file("X", content)
    await tg.send(user, photo=photo("X", len(content)))
    assert await Document.filter(claim_id=theirs.id).count() == 0


async def test_no_open_claim_means_nothing_to_upload(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    await _claim(owner, status=ClaimStatus.CLOSED)
    await tg.send(user, "/upload")
    assert tg.last_text(user.id) == tg.t("en")("tg_upload_no_open_claims", hotline="95500")


async def test_the_running_count_is_per_claim(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    first = await _claim(owner)
    second = await Claim.create(number="RDAA-SECOND-1", policy=await f.policy(owner),
                                customer=owner, status=ClaimStatus.REPORTED,
                                reported_at=datetime(2026, 11, 12, tzinfo=UTC),
                                required_documents=["photos"])
    for n, claim in enumerate((first, second)):
        await tg.press(user, f"upl:claim:{claim.id}:")
        await tg.press(user, f"upl:kind:{claim.id}:photos")
        content = jpeg(20 + n)
        tg.fake.add_file(f"C{n}", content)
        await tg.send(user, photo=photo(f"C{n}", len(content)))
        assert tg.last_text(user.id) == tg.t("en")("tg_upload_received", count=1,
                                                   claim=claim.number)


async def test_conversation_memory_keeps_only_conversations_in_progress(tg: Rig) -> None:
    owner, user = await tg.linked(language="en")
    claim = await _claim(owner)
    for n in range(3):
        await tg.send(User(7100 + n, "en"), "/help")
    memory = tg.dispatcher.storage.storage  # type: ignore[attr-defined]
    assert len(memory) == 0
    await _into_flow(tg, user, claim)
    assert len(memory) == 1
    await tg.press(user, f"upl:done:{claim.id}:")
    assert len(memory) == 0
