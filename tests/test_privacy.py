"""A person's data rights through the operator API and ``engage customer``: the export holds
every kind of record (and the files), erasure keeps every total while the person and their
files are gone, refuses under a legal hold, is idempotent and audited, and a later import of
the same phone starts a new person; the consent evidence names each change's source."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.documents import UploadLimits, store_document
from loyalty.config import LoyaltySettings
from loyalty.earning import adjust_points, check_in
from loyalty.rewards import seed_rewards
from loyalty.vouchers import redeem
from storage.integrity import orphans
from storage.loyalty_models import LedgerEntry, LoyaltyAccount, Voucher
from storage.models import (
    Category,
    Channel,
    Claim,
    ClaimEvent,
    ClaimStatus,
    Consent,
    Customer,
    Document,
    InboundSms,
    LinkAttempt,
    Message,
    MessageStatus,
    Payment,
    PhoneSuppression,
    Policy,
    Task,
    TelegramAccount,
)
from storage.operator_models import AuditLog, Role
from storage.privacy import pseudonym
from storage.privacy_models import Erasure, SmsRedemption
from storage.suppressions import remember_number_choice
from tests import factories as f
from tests import test_operators_api as api
from tests.test_operators_api import Rig, console_login
from tests.test_sms_inbound import png

S = LoyaltySettings()
NOW = f.NOON_SHANGHAI
rig = api.rig  # the operator API rig of tests/test_operators_api.py


async def seeded(uploads: Path, *, claim_status: ClaimStatus = ClaimStatus.CLOSED,
                 phone: str = "+8613912340001", customer_no: str = "C900") -> Customer:
    """A customer with one of every kind of record."""
    await seed_rewards(S)
    c = await f.customer(name="周八", phone=phone, customer_no=customer_no, email="z@example.com",
                         birthday=date(1990, 5, 6))
    policy = await f.policy(c, vehicle="大众帕萨特")
    claim = await Claim.create(number=f"RD{c.id:06d}", policy=policy, customer=c,
                               status=claim_status, reported_at=NOW - timedelta(days=40),
                               description="追尾，对方全责")
    await ClaimEvent.create(claim=claim, status=claim_status, occurred_at=NOW - timedelta(days=1),
                            note="周八来电")
    await Payment.create(external_id=f"PAY{c.id}", policy=policy, customer=c,
                         amount_cents=350_000, paid_at=NOW - timedelta(days=100))
    limits = UploadLimits(max_bytes=5_000_000, max_pixels=10_000_000, directory=uploads)
    await store_document(customer_id=c.id, claim_id=claim.id, channel=Channel.SMS, data=png(),
                         original_name="id-card.png", limits=limits, now=NOW - timedelta(days=3))
    await Consent.create(customer=c, channel="sms", category=Category.MARKETING, granted=False,
                         source="sms:keyword", created_at=NOW - timedelta(days=2))
    await remember_number_choice(c.phone, ["marketing"], suppressed=True, channel="sms",
                                 source="sms:keyword", reference="SMstop0001",
                                 now=NOW - timedelta(days=2))
    await f.queued(c, status=MessageStatus.DELIVERED, channel=Channel.SMS, sent_at=NOW,
                   params={"name": c.name, "plate": policy.plate})
    await f.queued(c, key=f"later:{c.id}", not_before=NOW + timedelta(days=5))
    await InboundSms.create(message_sid=f"SMin{c.id}", from_phone=c.phone, customer=c,
                            body="我的车牌沪A12345", keyword="menu", reply="…",
                            created_at=NOW - timedelta(days=1))
    await adjust_points(c.id, 900, reason="seed", operator="t", key=f"seed:{c.id}",
                        now=NOW - timedelta(days=1), settings=S)
    await redeem(c.id, "car_wash", request_key=f"tg:{c.id}", now=NOW - timedelta(hours=5),
                 settings=S)
    await check_in(c.id, now=NOW - timedelta(hours=4), settings=S)
    await Task.create(kind="renewal_callback", customer=c, source="sms", note="周八请回电")
    await f.link_telegram(c)
    await SmsRedemption.create(customer=c, message_sid="SMr1", reward_code="car_wash",
                               points_cost=300, code="1234", created_at=NOW,
                               expires_at=NOW + timedelta(minutes=10))
    await LinkAttempt.create(telegram_user_id=5, phone=c.phone, outcome="linked",
                             created_at=NOW - timedelta(days=9))
    return c


async def test_export_holds_every_kind_of_record_and_the_files_audited(rig: Rig) -> None:
    c = await seeded(rig.uploads)
    status, export = await rig.call("GET", f"/api/v1/customers/{c.id}/export")
    assert status == 200
    assert export["customer"]["name"] == "周八" and export["customer"]["phone"] == c.phone
    for kind in ("telegram_accounts", "policies", "claims", "claim_events", "payments",
                 "documents", "consents", "number_choices", "messages", "inbound_sms",
                 "loyalty_account", "ledger_entries", "vouchers", "check_ins", "tasks",
                 "sms_redemptions", "telegram_link_attempts"):
        assert export[kind], kind
    assert export["inbound_sms"][0]["body"] == "我的车牌沪A12345"
    assert export["number_choices"][0]["reference"] == "SMstop0001"
    assert export["messages"][0]["status"] == "delivered"
    assert "storage_key" not in export["documents"][0]
    assert "code" not in export["sms_redemptions"][0]  # a pending confirmation code is no data
    status, body = await rig.call("GET", f"/api/v1/customers/{c.id}/export.zip")
    assert status == 200
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        names = archive.namelist()
        [document] = [n for n in names if n.startswith("documents/")]
        assert archive.read(document) == png()
        assert json.loads(archive.read("export.json"))["customer"]["id"] == c.id
    await rig.call("POST", f"/api/v1/customers/{c.id}/points",
                   json={"points": 5, "reason": "补偿", "request_key": "k"})
    _, export = await rig.call("GET", f"/api/v1/customers/{c.id}/export")
    assert [a["action"] for a in export["operator_actions"]] == [
        "customer.export", "customer.export", "points.adjust"]  # this export is logged after
    exports = await AuditLog.filter(action="customer.export").order_by("id")
    assert [(e.operator_name, e.target_id) for e in exports] == [("op-admin", str(c.id))] * 3
    status, _ = await rig.call("GET", f"/api/v1/customers/{c.id}/export", Role.AGENT)
    assert status == 403


async def totals(rig: Rig, campaign_id: int) -> dict[str, Any]:
    _, stats = await rig.call("GET", f"/api/v1/campaigns/{campaign_id}/stats")
    _, dashboard = await rig.call("GET", "/api/v1/dashboard")
    entries = await LedgerEntry.all().values_list("amount", flat=True)
    return {"ledger": sum(int(a) for a in entries),  # type: ignore[call-overload]
            "balances": sorted(await LoyaltyAccount.all().values_list("balance", flat=True)),
            "messages": await Message.all().count(),
            "stats": {k: stats[k] for k in ("enqueued", "sent", "delivered", "failed",
                                            "by_status", "by_channel")},
            "dashboard": {k: dashboard[k] for k in ("insured_today", "planned", "delivery")}}


async def test_erasure_keeps_every_total_removes_the_person_and_files_and_is_idempotent(
    rig: Rig,
) -> None:
    c = await seeded(rig.uploads)
    other = await seeded(rig.uploads, phone="+8613912340002", customer_no="C901")
    _, campaign = await rig.call("POST", "/api/v1/campaigns", json=api._campaign())
    for owner in (c, other):
        await f.queued(owner, key=f"camp:{owner.id}", campaign_id=campaign["id"],
                       status=MessageStatus.SENT, channel=Channel.SMS, sent_at=NOW)
    await InboundSms.create(message_sid="SMbefore", from_phone=c.phone, body="STOP",
                            created_at=NOW - timedelta(days=400))  # before it was a customer
    # Files are kept by content: the same photo from both stays for the other one.
    limits = UploadLimits(max_bytes=5_000_000, max_pixels=10_000_000, directory=rig.uploads)
    own, _ = await store_document(customer_id=c.id, claim_id=None, channel=Channel.TELEGRAM,
                                  data=png((20, 20), noise=True), original_name="licence.png",
                                  limits=limits, now=NOW)
    shared = await Document.get(customer_id=other.id)
    assert len([p for p in rig.uploads.rglob("*") if p.is_file()]) == 2
    before = await totals(rig, campaign["id"])
    status, result = await rig.call("POST", f"/api/v1/customers/{c.id}/erase")
    assert status == 200, result
    assert (result["already_erased"], result["documents_deleted"], result["inbound_deleted"],
            result["messages_skipped"]) == (False, 2, 2, 2)  # a reminder, a voucher notice
    after = await totals(rig, campaign["id"])
    assert after == before
    gone = await Customer.get(id=c.id)
    assert (gone.name, gone.phone, gone.birthday, gone.email, gone.customer_no) == (
        pseudonym(c.id), "", None, "", None)
    assert [p for p in rig.uploads.rglob("*") if p.is_file()] == [
        rig.uploads / shared.storage_key]
    assert not (rig.uploads / own.storage_key).exists()
    assert not await Document.filter(customer_id=c.id).exists()
    assert not await InboundSms.filter(customer_id=c.id).exists()
    assert not await TelegramAccount.filter(customer_id=c.id).exists()
    assert not await SmsRedemption.filter(customer_id=c.id).exists()
    assert not await LinkAttempt.filter(phone=c.phone).exists()
    assert await Policy.filter(customer_id=c.id, plate="", vehicle="").count() == 1
    assert (await Claim.get(customer_id=c.id)).description == ""
    assert (await Task.get(customer_id=c.id)).note == ""
    for message in await Message.filter(customer_id=c.id):
        assert message.params == {}
    assert (await Message.get(dedup_key=f"later:{c.id}")).skip_reason == "erased"
    assert [found.count for found in await orphans()] == [0]  # the customer row stays
    forever = await PhoneSuppression.filter(phone=c.phone, channel="*", suppressed=True)
    assert {str(r.category) for r in forever} == {cat.value for cat in Category}
    assert await Voucher.filter(customer_id=c.id).count() == 1  # kept: the totals need it
    # the other customer is untouched
    assert (await Customer.get(id=other.id)).name == "周八"
    assert await Document.filter(customer_id=other.id).count() == 1
    # again: nothing changes, one audit row, one erasure
    status, again = await rig.call("POST", f"/api/v1/customers/{c.id}/erase")
    assert status == 200 and again["already_erased"]
    assert await Erasure.filter(customer_id=c.id).count() == 1
    [entry] = await AuditLog.filter(action="customer.erase")
    assert (entry.operator_name, entry.target_id) == ("op-admin", str(c.id))
    # the export now shows only the pseudonym and the kept totals
    _, export = await rig.call("GET", f"/api/v1/customers/{c.id}/export")
    assert export["customer"]["name"] == pseudonym(c.id)
    assert export["documents"] == [] and export["inbound_sms"] == []
    assert "周八" not in json.dumps(export, ensure_ascii=False)
    _, profile = await rig.call("GET", f"/api/v1/customers/{c.id}")
    assert profile["customer"]["phone_shared"] == 0  # erased records share no number


async def test_erasure_is_refused_while_a_claim_is_open_listing_it(rig: Rig) -> None:
    c = await seeded(rig.uploads, claim_status=ClaimStatus.SURVEYED)
    await Task.create(kind="complaint", customer=c, source="web")
    status, answer = await rig.call("POST", f"/api/v1/customers/{c.id}/erase")
    assert status == 409 and answer["error"] == "legal_hold"
    claim = await Claim.get(customer_id=c.id)
    assert answer["blockers"][0] == f"claim {claim.number} (surveyed)"
    assert answer["blockers"][1].startswith("complaint task ")
    assert (await Customer.get(id=c.id)).name == "周八"
    assert await Document.filter(customer_id=c.id).count() == 1
    assert not await Erasure.exists()
    assert not await AuditLog.filter(action="customer.erase").exists()
    status, _ = await rig.call("POST", f"/api/v1/customers/{c.id}/erase", Role.AGENT)
    assert status == 403


async def test_a_later_import_of_the_same_phone_does_not_bring_the_person_back(
    rig: Rig,
) -> None:
    c = await seeded(rig.uploads)
    phone = c.phone
    await rig.call("POST", f"/api/v1/customers/{c.id}/erase")
    csv_text = f"customer_no,phone,name\nC900,{phone},周八\n"
    status, report = await rig.call("POST", "/api/v1/imports", params={"kind": "customers"},
                                    data=csv_text.encode(), headers={"Content-Type": "text/csv"})
    assert status == 200 and report["created"] == 1, report
    again = await Customer.get(customer_no="C900")
    assert again.id != c.id
    for model in (Voucher, Document, Task, Message):
        assert not await model.filter(customer_id=again.id).exists()  # type: ignore[attr-defined]
    assert not await LoyaltyAccount.filter(customer_id=again.id).exists()
    assert (await Customer.get(id=c.id)).name == pseudonym(c.id)
    # the number's remembered opt-out reaches the new record
    refused = await Consent.filter(customer_id=again.id, channel="*", granted=False
                                   ).values_list("category", flat=True)
    assert sorted(refused) == sorted(c.value for c in Category)  # every category, alerts too


async def test_consent_evidence_csv_names_sources_and_message_sids(rig: Rig) -> None:
    c = await seeded(rig.uploads)
    await Consent.create(customer=c, channel="telegram", category=Category.CARE, granted=True,
                         source="telegram:settings", reference="update:4711", created_at=NOW)
    status, body = await rig.call("GET", "/api/v1/consents.csv",
                                  params={"customer_id": str(c.id)})
    assert status == 200
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert rows[0] == ["customer_id", "customer_no", "channel", "category", "granted", "source",
                       "reference", "at"]
    assert rows[1][:7] == [str(c.id), "C900", "sms", "marketing", "no", "sms:keyword",
                           "SMstop0001"]
    assert rows[2][2:7] == ["telegram", "care", "yes", "telegram:settings", "update:4711"]
    status, _ = await rig.call("GET", "/api/v1/consents.csv", Role.AGENT)
    assert status == 403


# -- engage customer ------------------------------------------------------------------------


def test_cli_export_erase_and_consents(engage_url: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    uploads = tmp_path / "data" / "uploads"

    async def seed() -> int:
        return (await seeded(uploads)).id

    cid = f.on_database(engage_url, seed)
    (tmp_path / "config.toml").write_text(f'[uploads]\ndirectory = "{uploads}"\n',
                                          encoding="utf-8")
    assert main(["customer", "export", "--phone", "139 1234 0001", "--out", "out"]) == 0
    assert f"customer {cid}:" in capsys.readouterr().out
    export = json.loads((tmp_path / "out" / f"customer-{cid}.json").read_text("utf-8"))
    assert export["customer"]["customer_no"] == "C900"
    with zipfile.ZipFile(tmp_path / "out" / f"customer-{cid}.zip") as archive:
        assert any(n.startswith("documents/") for n in archive.namelist())
    assert main(["customer", "erase", "--customer-no", "C900"]) == 2
    assert "--yes" in capsys.readouterr().err
    assert main(["customer", "erase", "--customer-no", "C900", "--yes"]) == 0
    assert f"customer {cid} erased: 1 documents" in capsys.readouterr().out
    assert main(["customer", "erase", "--id", str(cid), "--yes"]) == 0
    assert "already erased" in capsys.readouterr().out
    assert main(["customer", "consents", "--out", "consents.csv"]) == 0
    lines = (tmp_path / "consents.csv").read_text("utf-8").splitlines()
    assert lines[0].startswith("customer_id,") and len(lines) >= 2

    async def audited() -> list[tuple[str, str]]:
        rows = await AuditLog.all().order_by("id").values_list("action", "operator_name")
        return [(str(a), str(n)) for a, n in rows]

    actions = f.on_database(engage_url, audited)
    assert [a for a, _ in actions] == ["customer.export", "customer.erase"]
    assert all(n.startswith("cli:") for _, n in actions)


def test_cli_refuses_a_shared_phone_and_an_open_claim(engage_url: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    async def seed() -> None:
        c = await seeded(tmp_path / "uploads", claim_status=ClaimStatus.REPORTED)
        await f.customer(name="周九", phone=c.phone)

    f.on_database(engage_url, seed)
    assert main(["customer", "export", "--phone", "+8613912340001"]) == 2
    assert "2 customers have phone +86*******0001" in capsys.readouterr().err
    assert main(["customer", "erase", "--customer-no", "C900", "--yes"]) == 2
    assert "cannot be erased while these are open: claim RD" in capsys.readouterr().err


async def test_console_admin_exports_and_erases_from_the_customer_page(rig: Rig) -> None:
    c = await seeded(rig.uploads)
    held = await seeded(rig.uploads, phone="+8613912340003", customer_no="C902",
                        claim_status=ClaimStatus.REPORTED)
    csrf = await console_login(rig.client, rig.tokens[Role.ADMIN])
    page = await (await rig.client.get(f"/console/customers/{c.id}?lang=en")).text()
    assert f'href="/api/v1/customers/{c.id}/export.zip"' in page and 'id="erase-form"' in page
    resp = await rig.client.get(f"/api/v1/customers/{c.id}/export.zip")  # the session works
    assert resp.status == 200 and resp.content_type == "application/zip"
    url = f"/console/customers/{c.id}/erase"
    resp = await rig.client.post(url, data={"csrf_token": csrf, "confirm": "yes"},
                                 allow_redirects=False)
    assert resp.headers["Location"].endswith("err=erase_unconfirmed")
    assert not await Erasure.exists()
    resp = await rig.client.post(url, data={"csrf_token": csrf, "confirm": str(c.id)},
                                 allow_redirects=False)
    assert resp.headers["Location"].endswith("ok=customer_erased")
    assert (await Customer.get(id=c.id)).name == pseudonym(c.id)
    page = await (await rig.client.get(f"/console/customers/{c.id}?lang=en")).text()
    assert 'id="erased"' in page and 'id="erase-form"' not in page
    page = await (await rig.client.get(f"/console/customers/{held.id}?lang=en")).text()
    assert 'id="blockers"' in page and f"RD{held.id:06d}</a> · reported" in page
    assert 'id="erase-form"' not in page


async def test_console_agent_sees_no_privacy_actions(rig: Rig) -> None:
    c = await seeded(rig.uploads)
    csrf = await console_login(rig.client, rig.tokens[Role.AGENT])
    page = await (await rig.client.get(f"/console/customers/{c.id}")).text()
    assert 'id="privacy"' not in page
    resp = await rig.client.post(f"/console/customers/{c.id}/erase",
                                 data={"csrf_token": csrf, "confirm": str(c.id)})
    assert resp.status == 403
    assert not await Erasure.exists()
