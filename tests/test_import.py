"""``engage import``: streamed, batched CSV upsert of customers, policies, claims and payments."""

from __future__ import annotations

import io
import random
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from tortoise import connections
from tortoise.transactions import in_transaction

from bot.cli import main
from loyalty.earning import link_referrer
from storage import importer as importer_module
from storage.importer import ImportFileError, ImportReport, import_csv
from storage.importing import customers as customers_module
from storage.importing.cells import Phones, cents, moment
from storage.importing.customers import REFERRAL_ALPHABET
from storage.importing.rows import RowError
from storage.models import (
    Claim,
    ClaimEvent,
    ClaimStatus,
    Customer,
    Language,
    Payment,
    PaymentKind,
    Policy,
    PolicyStatus,
    Product,
    Region,
)
from storage.phones import InvalidPhone, normalise_phone
from storage.sql import Statements

NOW = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)
LATER = datetime(2026, 6, 2, 4, 0, tzinfo=UTC)
SHANGHAI_0930 = datetime(2026, 5, 1, 1, 30, tzinfo=UTC)  # 2026-05-01 09:30 in Asia/Shanghai


def phone(n: int) -> str:
    return f"1380013{n:04d}"


def e164(n: int) -> str:
    return f"+86{phone(n)}"


def write(tmp_path: Path, name: str, text: str, *, bom: bool = False) -> Path:
    path = tmp_path / name
    data = text.encode("utf-8")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


async def run(kind: str, path: Path, **options: Any) -> tuple[ImportReport, list[str]]:
    out = io.StringIO()
    options.setdefault("now", NOW)
    report = await import_csv(kind, path, out=out, **options)
    return report, out.getvalue().splitlines()


def counts(report: ImportReport) -> tuple[int, int, int, int]:
    return report.created, report.updated, report.unchanged, report.rejected


async def snapshot(model: Any, key: str) -> list[dict[str, Any]]:
    return list(await model.all().order_by(key).values())


CUSTOMERS = f"""\
phone,name,birthday,lunar_birthday,language,timezone,region,referred_by,email
{phone(1)},张三,1985-05-17,是,zh-CN,,SH,,zhang@example.com
+86 138-0013-0002,李四,,,en,Europe/London,,{phone(1)},
0086{phone(3)},王五,2000-02-29,false,,,sh,{phone(1)},
{phone(4)},赵六,,,,,,{phone(3)},
"""


@pytest.fixture
async def shanghai(db: str) -> Region:
    return await Region.create(code="SH", name="上海", latitude=31.23, longitude=121.47)


async def customers(tmp_path: Path, *numbers: int) -> None:
    rows = "".join(f"{phone(n)},客户{n}\n" for n in numbers)
    report, _ = await run("customers", write(tmp_path, "owners.csv", "phone,name\n" + rows))
    assert report.created == len(numbers)


# --- customers --------------------------------------------------------------------------------

async def test_customers_file_creates_customers_with_e164_phones_and_referral_codes(
    tmp_path: Path, shanghai: Region
) -> None:
    report, out = await run("customers", write(tmp_path, "c.csv", CUSTOMERS))

    assert counts(report) == (4, 0, 0, 0)
    assert out == ["customers: 4 accepted (4 created, 0 updated, 0 unchanged), 0 rejected"]
    zhang = await Customer.get(phone=e164(1))
    assert (zhang.name, zhang.birthday, zhang.birthday_md, zhang.lunar_birthday) == \
        ("张三", date(1985, 5, 17), 517, True)
    assert (zhang.language, zhang.timezone, zhang.region_id, zhang.email) == \
        (Language.ZH_CN, "Asia/Shanghai", shanghai.id, "zhang@example.com")
    assert zhang.referred_by_id is None
    li = await Customer.get(phone=e164(2))
    assert (li.language, li.timezone, li.birthday, li.birthday_md, li.region_id, li.email) == \
        (Language.EN, "Europe/London", None, None, None, "")
    assert li.referred_by_id == zhang.id
    wang = await Customer.get(phone=e164(3))
    assert (wang.birthday_md, wang.lunar_birthday, wang.region_id) == (229, False, shanghai.id)
    assert wang.referred_by_id == zhang.id
    zhao = await Customer.get(phone=e164(4))
    assert zhao.referred_by_id == wang.id  # referrer earlier in the same batch
    codes = await Customer.all().values_list("referral_code", flat=True)
    assert len(set(codes)) == 4
    assert all(re.fullmatch(f"[{REFERRAL_ALPHABET}]{{8}}", str(code)) for code in codes)


async def test_rows_written_in_bulk_read_back_through_the_orm_as_aware_utc(
    tmp_path: Path, shanghai: Region
) -> None:
    await run("customers", write(tmp_path, "c.csv", CUSTOMERS))
    zhang = await Customer.get(phone=e164(1))
    assert zhang.created_at == NOW and zhang.updated_at == NOW
    assert zhang.created_at.utcoffset() is not None
    assert (zhang.birthday, zhang.lunar_birthday, zhang.region_id) == \
        (date(1985, 5, 17), True, shanghai.id)
    # and what the ORM writes, the bulk reader sees as the same values
    made = await Customer.create(name="钱七", phone=e164(7), referral_code="ORM00001",
                                 birthday=date(1990, 1, 2), lunar_birthday=True,
                                 language=Language.EN)
    async with in_transaction() as conn:
        [row] = await Statements(conn).select_in(
            Customer, "phone", {e164(7)}, ("birthday", "lunar_birthday", "language", "created_at"))
    assert row == (date(1990, 1, 2), True, Language.EN, made.created_at)


async def test_bad_rows_are_reported_by_line_and_column_and_good_rows_still_land(
    tmp_path: Path, shanghai: Region
) -> None:
    text = (
        "phone,name,birthday,region,language\n"       # 1
        f'{phone(1)},"张\n三",1990-01-01,,\n'           # 2-3: a quoted cell over two lines
        "12345,李四,,,\n"                              # 4
        f"{phone(5)},王五,1990-13-01,,\n"               # 5
        f"{phone(6)},,,,\n"                            # 6
        f"{phone(7)},赵六,,XX,\n"                       # 7
        f"{phone(8)},钱七,,,fr\n"                       # 8
        f"{phone(9)},孙八,,\n"                          # 9
        f'{phone(10)},"周\n九",,,\n'                    # 10-11
        f"{phone(11)},吴十,2999-01-01,,\n"              # 12
        "\n"                                           # 13: blank lines are skipped
        f"{phone(12)},郑十一,,sh,EN\n"                  # 14
    )
    report, out = await run("customers", write(tmp_path, "c.csv", text))

    assert counts(report) == (3, 0, 0, 7)
    assert out[0].startswith("line 4: phone: not a ")
    assert out[1:] == [
        "line 5: birthday: not a date (YYYY-MM-DD): '1990-13-01'",
        "line 6: name: required",
        "line 7: region: unknown region 'XX'",
        "line 8: language: expected one of zh-CN|en: 'fr'",
        "line 9: row: 4 cells, the header has 5",
        "line 12: birthday: not a plausible birthday: 2999-01-01",
        "customers: 3 accepted (3 created, 0 updated, 0 unchanged), 7 rejected",
    ]
    assert sorted(name for (name,) in await Customer.all().values_list("name")) == \
        ["周\n九", "张\n三", "郑十一"]


async def test_error_messages_never_show_a_whole_phone_number(
    tmp_path: Path, db: str
) -> None:
    text = (f"phone,name,referred_by\n{phone(1)},张三,{phone(99)}\n"
            f"+86 139 1234 567,李四,\n{phone(2)},王五,{phone(2)}\n")
    report, out = await run("customers", write(tmp_path, "c.csv", text))
    assert report.rejected == 3
    assert out[0] == ("line 2: referred_by: no customer with phone +86*******0099 "
                      "(imported already or earlier in the file)")
    assert out[2] == "line 4: referred_by: a customer cannot refer themselves"
    joined = "\n".join(out)
    assert phone(99) not in joined and "1391234567" not in joined.replace(" ", "")


async def test_referrer_later_in_the_file_is_refused_whatever_the_batch_size(
    tmp_path: Path, db: str
) -> None:
    text = f"phone,name,referred_by\n{phone(1)},张三,{phone(2)}\n{phone(2)},李四,\n"
    for batch_size in (1, 2000):
        path = write(tmp_path, f"c{batch_size}.csv", text)
        report, out = await run("customers", path, batch_size=batch_size)
        assert counts(report) == (1, 0, 0, 1)
        assert out[0].startswith("line 2: referred_by: no customer with phone +86*******0002")
        await Customer.all().delete()


async def test_reimport_keeps_the_recorded_referrer_and_reports_the_line(
    tmp_path: Path, db: str
) -> None:
    await run("customers", write(tmp_path, "a.csv", f"phone,name\n{phone(1)},张三\n"
                                 f"{phone(2)},李四\n{phone(3)},王五\n"))
    zhang, li, wang = [await Customer.get(phone=e164(n)) for n in (1, 2, 3)]
    await link_referrer(wang.id, zhang.referral_code)  # in the bot, by the ref_ deep link
    text = (f"phone,name,referred_by,email\n{phone(3)},王五,{phone(2)},wang@example.com\n"
            f"{phone(4)},赵六,,\n{phone(5)},钱七,{phone(4)},\n")
    report, out = await run("customers", write(tmp_path, "b.csv", text))
    assert out == [
        "line 2: referred_by: already referred by +86*******0001 "
        "(kept, the rest of the row was imported)",
        "customers: 3 accepted (2 created, 1 updated, 0 unchanged), 0 rejected, 1 warning",
    ]
    assert (report.rejected, report.warnings) == (0, 1)
    wang = await Customer.get(id=wang.id)
    assert (wang.email, wang.referred_by_id) == ("wang@example.com", zhang.id)
    # A referrer created earlier in the same batch does not replace one either.
    text = f"phone,name,referred_by\n{phone(6)},孙八,\n{phone(5)},钱七,{phone(6)}\n"
    report, out = await run("customers", write(tmp_path, "c.csv", text))
    assert out[0] == ("line 3: referred_by: already referred by +86*******0004 "
                      "(kept, the rest of the row was imported)")
    assert (await Customer.get(phone=e164(5))).referred_by_id == (
        await Customer.get(phone=e164(4))).id
    assert li.referred_by_id is None


async def test_reimport_naming_the_same_referrer_is_silent(tmp_path: Path, db: str) -> None:
    text = f"phone,name,referred_by\n{phone(1)},张三,\n{phone(2)},李四,{phone(1)}\n"
    await run("customers", write(tmp_path, "a.csv", text))
    report, out = await run("customers", write(tmp_path, "b.csv", text))
    assert out == ["customers: 2 accepted (0 created, 0 updated, 2 unchanged), 0 rejected"]
    assert report.warnings == 0
    # A first referrer for a customer who had none is still recorded.
    await run("customers", write(tmp_path, "c.csv", f"phone,name\n{phone(3)},王五\n"))
    report, out = await run("customers", write(
        tmp_path, "d.csv", f"phone,name,referred_by\n{phone(3)},王五,{phone(1)}\n"))
    assert counts(report) == (0, 1, 0, 0) and report.warnings == 0
    assert (await Customer.get(phone=e164(3))).referred_by_id == (
        await Customer.get(phone=e164(1))).id


async def test_referral_code_drawn_twice_is_drawn_again(
    tmp_path: Path, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await Customer.create(name="老客户", phone=e164(9), referral_code="TAKEN222")
    draws = iter([["TAKEN222", "FRESH333"], ["TWICE444", "TWICE444"]])
    real = customers_module.new_referral_codes
    monkeypatch.setattr(customers_module, "new_referral_codes",
                        lambda count: next(draws, None) or real(count))
    path = write(tmp_path, "c.csv", f"phone,name\n{phone(1)},张三\n{phone(2)},李四\n")

    report, _ = await run("customers", path)

    assert report.created == 2
    codes = set(await Customer.filter(phone__in=[e164(1), e164(2)])
                .values_list("referral_code", flat=True))
    assert len(codes) == 2 and not codes & {"TAKEN222", "TWICE444"}


async def test_bom_header_case_and_whitespace_are_accepted(tmp_path: Path, db: str) -> None:
    path = write(tmp_path, "c.csv", f" Phone ,NAME, Email\r\n{phone(1)}, 张三 ,a@b.cn\r\n",
                 bom=True)
    report, _ = await run("customers", path)
    assert report.created == 1
    customer = await Customer.get(phone=e164(1))
    assert (customer.name, customer.email) == ("张三", "a@b.cn")


async def test_unknown_columns_are_ignored_with_a_note(tmp_path: Path, db: str) -> None:
    path = write(tmp_path, "c.csv", f"phone,name,vip_level\n{phone(1)},张三,3\n")
    report, out = await run("customers", path)
    assert report.created == 1
    assert out[0] == "note: ignoring unknown column(s) vip_level"


async def test_reimporting_the_same_file_changes_nothing(tmp_path: Path, shanghai: Region) -> None:
    path = write(tmp_path, "c.csv", CUSTOMERS)
    await run("customers", path)
    before = await snapshot(Customer, "phone")

    report, out = await run("customers", path, now=LATER)

    assert counts(report) == (0, 0, 4, 0)
    assert out == ["customers: 4 accepted (0 created, 0 updated, 4 unchanged), 0 rejected"]
    assert await snapshot(Customer, "phone") == before


async def test_changed_row_is_updated_and_blank_cells_keep_what_is_there(
    tmp_path: Path, shanghai: Region
) -> None:
    await run("customers", write(tmp_path, "c.csv", CUSTOMERS))
    changed = f"phone,name,birthday,language,region,email\n{phone(1)},张 三,,en,,\n"
    report, _ = await run("customers", write(tmp_path, "c2.csv", changed), now=LATER)

    assert counts(report) == (0, 1, 0, 0)
    zhang = await Customer.get(phone=e164(1))
    assert (zhang.name, zhang.language, zhang.updated_at, zhang.created_at) == \
        ("张 三", Language.EN, LATER, NOW)
    assert (zhang.birthday, zhang.region_id, zhang.email, zhang.lunar_birthday) == \
        (date(1985, 5, 17), shanghai.id, "zhang@example.com", True)


async def test_same_phone_twice_in_one_file_applies_the_later_row(
    tmp_path: Path, db: str
) -> None:
    text = (f"phone,name,email\n{phone(1)},张三,\n{phone(2)},李四,\n"
            f"+86{phone(1)},张三,zhang@example.com\n")
    report, _ = await run("customers", write(tmp_path, "c.csv", text))
    assert counts(report) == (2, 1, 0, 0)
    assert (await Customer.get(phone=e164(1))).email == "zhang@example.com"
    assert await Customer.all().count() == 2


async def test_ten_thousand_customers_import_in_batches(tmp_path: Path, db: str) -> None:
    rows = "".join(f"139{i:08d},客户{i},19{i % 90 + 10}-0{i % 9 + 1}-1{i % 9}\n"
                   for i in range(10_000))
    path = write(tmp_path, "big.csv", "phone,name,birthday\n" + rows)

    report, out = await run("customers", path)

    assert counts(report) == (10_000, 0, 0, 0)
    assert out == ["customers: 10,000 accepted (10,000 created, 0 updated, 0 unchanged), "
                   "0 rejected"]
    assert await Customer.all().count() == 10_000
    assert len(set(await Customer.all().values_list("referral_code", flat=True))) == 10_000
    last = await Customer.get(phone="+8613900009999")
    assert (last.name, last.birthday, last.birthday_md) == ("客户9999", date(1919, 1, 10), 110)


async def test_long_cells_end_a_batch_early_and_change_nothing_else(
    tmp_path: Path, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer_module, "_BATCH_BYTES", 4_000)
    monkeypatch.setattr(importer_module, "_CHECK_EVERY", 2)
    writes: list[int] = []
    real_write = customers_module.CustomerImport.write

    async def counting_write(self: Any, conn: Any, batch: Any) -> Any:
        writes.append(len(batch))
        return await real_write(self, conn, batch)

    monkeypatch.setattr(customers_module.CustomerImport, "write", counting_write)
    rows = "".join(f"{phone(n)},客户{n},{'长' * 200}{n}@example.com\n" for n in range(40))

    report, _ = await run("customers", write(tmp_path, "c.csv", "phone,name,email\n" + rows))

    assert len(writes) > 2 and sum(writes) == 40
    assert counts(report) == (40, 0, 0, 0)
    assert (await Customer.get(phone=e164(39))).email == f"{'长' * 200}39@example.com"


async def test_sqlite_page_cache_is_raised_for_the_import_only(
    tmp_path: Path, db: str, is_postgres: bool
) -> None:
    if is_postgres:
        pytest.skip("a SQLite connection setting")
    client = connections.get("default")
    await client.execute_script("PRAGMA cache_size = -2000")
    seen: list[int] = []
    real_write = customers_module.CustomerImport.write

    async def spying_write(self: Any, conn: Any, batch: Any) -> Any:
        _, rows = await conn.execute_query("PRAGMA cache_size")
        seen.append(rows[0][0])
        return await real_write(self, conn, batch)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(customers_module.CustomerImport, "write", spying_write)
        await run("customers", write(tmp_path, "c.csv", f"phone,name\n{phone(1)},张三\n"))

    assert seen == [-importer_module.SQLITE_CACHE_MIB * 1024]
    _, rows = await client.execute_query("PRAGMA cache_size")
    assert rows[0][0] == -2000


async def test_progress_line_counts_rows_and_reaches_the_end_of_the_file(
    tmp_path: Path, db: str
) -> None:
    path = write(tmp_path, "c.csv", "phone,name\n" + "".join(
        f"{phone(n)},客户{n}\n" for n in range(50)))
    bar = io.StringIO()
    await run("customers", path, progress=True, progress_stream=bar, batch_size=10)
    last = bar.getvalue().rsplit("\r", 1)[-1]
    assert last.startswith("customers: 50 rows") and "100.0%" in last and last.endswith("\n")


# --- policies ---------------------------------------------------------------------------------

POLICIES = f"""\
number,phone,product,plate,vehicle,start_date,end_date,premium,status,renews
P-2025-1,{phone(1)},交强险,沪A·12345,大众 帕萨特,2025-03-01,2026-02-28,950.00,,
P-2026-1,{phone(1)},compulsory,沪a 12345,,2026-03-01,2027-02-28,"1,000.5",,P-2025-1
P-2026-2,{phone(2)},商业险,京B-99999,,2026-01-01,2026-12-31,¥3200,active,
"""


async def test_policies_file_creates_policies_and_links_a_renewal_in_the_same_file(
    tmp_path: Path, db: str
) -> None:
    await customers(tmp_path, 1, 2)
    report, out = await run("policies", write(tmp_path, "p.csv", POLICIES))

    assert counts(report) == (3, 0, 0, 0), out
    old = await Policy.get(number="P-2025-1")
    new = await Policy.get(number="P-2026-1")
    other = await Policy.get(number="P-2026-2")
    owner = await Customer.get(phone=e164(1))
    assert (old.product, old.plate, old.vehicle, old.premium_cents, old.customer_id) == \
        (Product.COMPULSORY, "沪A12345", "大众 帕萨特", 95000, owner.id)
    assert (old.status, old.renewed_by_id, old.renewed_at) == (PolicyStatus.RENEWED, new.id, NOW)
    assert (new.status, new.premium_cents, new.start_date, new.end_date) == \
        (PolicyStatus.ACTIVE, 100050, date(2026, 3, 1), date(2027, 2, 28))
    assert (other.product, other.plate, other.premium_cents, other.coverage) == \
        (Product.COMMERCIAL, "京B99999", 320000, {})


async def test_reimporting_policies_keeps_the_renewal_and_changes_nothing(
    tmp_path: Path, db: str
) -> None:
    await customers(tmp_path, 1, 2)
    path = write(tmp_path, "p.csv", POLICIES)
    await run("policies", path)
    before = await snapshot(Policy, "number")

    report, _ = await run("policies", path, now=LATER)

    assert counts(report) == (0, 0, 3, 0)
    assert await snapshot(Policy, "number") == before


async def test_renewal_of_a_policy_imported_earlier_links_across_files(
    tmp_path: Path, db: str
) -> None:
    await customers(tmp_path, 1)
    header = POLICIES.splitlines()[0]
    first, second = POLICIES.splitlines()[1:3]
    await run("policies", write(tmp_path, "p1.csv", f"{header}\n{first}\n"))

    report, _ = await run("policies", write(tmp_path, "p2.csv", f"{header}\n{second}\n"),
                          now=LATER)

    assert counts(report) == (1, 0, 0, 0)
    old = await Policy.get(number="P-2025-1")
    new = await Policy.get(number="P-2026-1")
    assert (old.status, old.renewed_by_id, old.renewed_at, old.updated_at) == \
        (PolicyStatus.RENEWED, new.id, LATER, LATER)
    # an older export that still calls the renewed policy active does not undo the link
    stale = first.replace("950.00,,", "950.00,active,")
    report, _ = await run("policies", write(tmp_path, "p3.csv", f"{header}\n{stale}\n"))
    assert counts(report) == (0, 0, 1, 0)
    assert (await Policy.get(number="P-2025-1")).status is PolicyStatus.RENEWED


async def test_bad_policy_rows_are_reported_and_the_rest_land(tmp_path: Path, db: str) -> None:
    await customers(tmp_path, 1)
    base = "沪A1,,2026-03-01,2027-02-28"
    text = (
        "number,phone,product,plate,vehicle,start_date,end_date,premium,renews\n"
        f"P-1,13899999999,交强险,{base},100,\n"
        f"P-2,{phone(1)},交强险,沪A1,,2026-03-01,2026-03-01,100,\n"
        f"P-3,{phone(1)},交强险,{base},100.123,\n"
        f"P-4,{phone(1)},交强险,{base},-5,\n"
        f"P-5,{phone(1)},交强险,{base},100,P-404\n"
        f"P-6,{phone(1)},life,{base},100,\n"
        f"P-7,{phone(1)},商业险,{base},100,P-8\n"
        f"P-8,{phone(1)},商业险,{base},100.10,\n"
        f"P-9,{phone(1)},商业险,{base},100,P-8\n"
        f"P-10,{phone(1)},商业险,{base},100,P-8\n"
    )
    _, out = await run("policies", write(tmp_path, "p.csv", text))

    assert out == [
        "line 2: phone: no customer with phone +86*******9999",
        "line 3: end_date: must be after start_date",
        "line 4: premium: more than two decimal places: '100.123'",
        "line 5: premium: must not be negative: '-5'",
        "line 6: renews: no policy with number P-404 (imported already or earlier in the file)",
        "line 7: product: expected one of compulsory|commercial: 'life'",
        "line 8: renews: no policy with number P-8 (imported already or earlier in the file)",
        "line 11: renews: policy P-8 is renewed by another row of this file",
        "policies: 2 accepted (2 created, 0 updated, 0 unchanged), 8 rejected",
    ]
    assert (await Policy.get(number="P-8")).renewed_by_id == \
        (await Policy.get(number="P-9")).id


# --- claims -----------------------------------------------------------------------------------

async def policies(tmp_path: Path) -> None:
    await customers(tmp_path, 1, 2)
    report, _ = await run("policies", write(tmp_path, "p.csv", POLICIES))
    assert report.created == 3


CLAIMS = """\
number,policy,status,reported_at,estimated,paid,description
C-1,P-2026-2,reported,2026-05-01 09:30,5000,,"追尾，
后保险杠受损"
C-2,P-404,reported,2026-05-02,,,
C-3,P-2026-2,定损,2026-05-03T10:00:00+08:00,1200.5,,
C-4,P-2026-2,lost,2026-05-03,,,
"""


async def test_claims_take_the_customer_from_the_policy_and_record_a_first_event(
    tmp_path: Path, db: str
) -> None:
    await policies(tmp_path)
    _, out = await run("claims", write(tmp_path, "c.csv", CLAIMS))

    assert out == [
        "line 4: policy: no policy with number P-404",
        "line 6: status: expected one of reported|registered|surveyed|loss_assessed|approved|"
        "paid|closed|rejected|withdrawn: 'lost'",
        "claims: 2 accepted (2 created, 0 updated, 0 unchanged), 2 rejected",
    ]
    policy = await Policy.get(number="P-2026-2")
    first = await Claim.get(number="C-1")
    assert (first.policy_id, first.customer_id, first.status, first.reported_at) == \
        (policy.id, policy.customer_id, ClaimStatus.REPORTED, SHANGHAI_0930)
    assert (first.estimated_cents, first.paid_cents, first.description) == \
        (500000, None, "追尾，\n后保险杠受损")
    assert first.required_documents == []
    assessed = await Claim.get(number="C-3")
    assert (assessed.status, assessed.estimated_cents) == (ClaimStatus.LOSS_ASSESSED, 120050)
    events = await ClaimEvent.filter(claim_id=first.id).values_list("status", "occurred_at")
    assert events == [(ClaimStatus.REPORTED, SHANGHAI_0930)]


async def test_claim_status_change_adds_an_event_and_a_repeat_adds_none(
    tmp_path: Path, db: str
) -> None:
    await policies(tmp_path)
    await run("claims", write(tmp_path, "c.csv", CLAIMS))
    paid = ("number,policy,status,reported_at,paid\n"
            "C-1,P-2026-2,paid,2026-05-01 09:30,4800\n"
            "C-3,P-2026-2,loss_assessed,2026-05-03T02:00:00Z,\n")
    path = write(tmp_path, "c2.csv", paid)

    report, _ = await run("claims", path, now=LATER)
    again, _ = await run("claims", path, now=datetime(2026, 6, 3, tzinfo=UTC))

    assert counts(report) == (0, 1, 1, 0)
    assert counts(again) == (0, 0, 2, 0)
    claim = await Claim.get(number="C-1")
    assert (claim.status, claim.paid_cents, claim.estimated_cents) == \
        (ClaimStatus.PAID, 480000, 500000)
    events = await ClaimEvent.filter(claim_id=claim.id).values_list("status", "occurred_at")
    assert events == [(ClaimStatus.REPORTED, SHANGHAI_0930), (ClaimStatus.PAID, LATER)]


# --- payments ---------------------------------------------------------------------------------

PAYMENTS = """\
external_id,policy,kind,amount,paid_at
PAY-1,P-2026-2,,3200,2026-01-01
PAY-2,P-2026-2,退费,100.00,2026-02-01T12:00:00Z
PAY-3,P-2026-2,premium,0,2026-02-01
PAY-4,P-404,premium,1,2026-02-01
"""


async def test_payments_upsert_by_external_id(tmp_path: Path, db: str) -> None:
    await policies(tmp_path)
    report, out = await run("payments", write(tmp_path, "pay.csv", PAYMENTS))

    assert out[:2] == ["line 4: amount: must be greater than zero",
                       "line 5: policy: no policy with number P-404"]
    assert counts(report) == (2, 0, 0, 2)
    policy = await Policy.get(number="P-2026-2")
    first = await Payment.get(external_id="PAY-1")
    assert (first.kind, first.amount_cents, first.policy_id, first.customer_id, first.paid_at) \
        == (PaymentKind.PREMIUM, 320000, policy.id, policy.customer_id,
            datetime(2025, 12, 31, 16, 0, tzinfo=UTC))
    refund = await Payment.get(external_id="PAY-2")
    assert (refund.kind, refund.amount_cents, refund.created_at) == \
        (PaymentKind.REFUND, 10000, NOW)

    changed = PAYMENTS.replace("PAY-2,P-2026-2,退费,100.00", "PAY-2,P-2026-2,refund,120")
    report, _ = await run("payments", write(tmp_path, "pay2.csv", changed), now=LATER)

    assert counts(report) == (0, 1, 1, 2)
    refund = await Payment.get(external_id="PAY-2")
    assert (refund.amount_cents, refund.created_at) == (12000, NOW)
    assert await Payment.all().count() == 2


# --- whole files ------------------------------------------------------------------------------

async def test_unusable_files_raise_one_line_errors_and_write_nothing(
    tmp_path: Path, db: str
) -> None:
    cases = {
        tmp_path / "missing.csv": "no such file",
        tmp_path: "is a directory, not a file",
        write(tmp_path, "empty.csv", ""): "empty file (expected a header row)",
        write(tmp_path, "bom.csv", "", bom=True): "empty file (expected a header row)",
        write(tmp_path, "cols.csv", f"phone,nom\n{phone(1)},张三\n"): "missing column(s) name",
        write(tmp_path, "dup.csv", f"phone,name,Name\n{phone(1)},张三,李四\n"):
            "duplicate column(s) name",
    }
    bad = tmp_path / "gbk.csv"
    bad.write_bytes(f"phone,name\n{phone(1)},张三\n{phone(2)},".encode() + "李四\n".encode("gbk"))
    cases[bad] = "not UTF-8 text (bad byte on line 3); save the file as UTF-8 CSV"
    for path, reason in cases.items():
        with pytest.raises(ImportFileError) as info:
            await run("customers", path)
        assert str(info.value) == f"{path}: {reason}"
        assert "\n" not in str(info.value)
    assert await Customer.all().count() == 0


@pytest.fixture
def cli_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "engage.sqlite3"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ENGAGE_CONFIG", raising=False)
    monkeypatch.setenv("ENGAGE_DATABASE__URL", f"sqlite://{path}")
    return path


def test_cli_exit_codes_say_all_good_some_rejected_or_unusable_file(
    tmp_path: Path, cli_database: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path, "good.csv", f"phone,name\n{phone(1)},张三\n")
    some_bad = write(tmp_path, "bad.csv", f"phone,name\n{phone(2)},李四\n{phone(3)},\n")
    no_name = write(tmp_path, "cols.csv", f"phone\n{phone(4)}\n")

    assert main(["import", "customers", str(good)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == \
        "customers: 1 accepted (1 created, 0 updated, 0 unchanged), 0 rejected"
    assert main(["import", "customers", str(some_bad)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "line 3: name: required",
        "customers: 1 accepted (1 created, 0 updated, 0 unchanged), 1 rejected",
    ]
    assert main(["import", "customers", str(no_name)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == \
        f"engage: {no_name}: missing column(s) name"
    assert main(["import", "customers", str(tmp_path / "nope.csv")]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == \
        f"engage: {tmp_path / 'nope.csv'}: no such file"


# --- cells ------------------------------------------------------------------------------------

def test_phone_shortcut_agrees_with_normalise_phone_for_every_mobile_prefix() -> None:
    phones = Phones("CN")
    rnd = random.Random(20260601)

    def slow(text: str) -> str | None:
        try:
            return normalise_phone(text, "CN")
        except InvalidPhone:
            return None

    def fast(text: str) -> str | None:
        try:
            return phones(text, "phone")
        except RowError:
            return None

    for prefix in range(10_000, 20_000):
        number = f"{prefix}{rnd.randrange(1_000_000):06d}"
        for text in (number, f"+86 {number[:3]}-{number[3:7]}-{number[7:]}", number[:-1]):
            assert fast(text) == slow(text), text


@pytest.mark.parametrize(("text", "expected"), [
    ("0", 0), ("12", 1200), ("12.5", 1250), ("12.50", 1250), ("12.500", 1250),
    ("1,234.56", 123456), ("¥99", 9900), ("￥0.01", 1),
])
def test_amounts_in_yuan_become_cents(text: str, expected: int) -> None:
    assert cents(text, "premium") == expected


@pytest.mark.parametrize(("text", "problem"), [
    ("12.345", "more than two decimal places"), ("-1", "must not be negative"),
    ("1e3", "not an amount in yuan"), ("12,34", "not an amount in yuan"),
    ("NaN", "not an amount in yuan"), ("", "not an amount in yuan"),
])
def test_bad_amounts_are_refused(text: str, problem: str) -> None:
    with pytest.raises(RowError) as info:
        cents(text, "premium")
    assert info.value.column == "premium" and info.value.problem.startswith(problem)


def test_naive_and_date_only_times_are_shanghai_and_stored_as_utc() -> None:
    from zoneinfo import ZoneInfo

    shanghai = ZoneInfo("Asia/Shanghai")
    assert moment("2026-05-01 09:30", "t", shanghai) == SHANGHAI_0930
    assert moment("2026-05-01", "t", shanghai) == datetime(2026, 4, 30, 16, tzinfo=UTC)
    assert moment("2026-05-01T01:30:00Z", "t", shanghai) == SHANGHAI_0930
    with pytest.raises(RowError):
        moment("2026/05/01", "t", shanghai)
